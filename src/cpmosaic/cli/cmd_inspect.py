"""``cpmosaic inspect FILE...``: what each exposure file is (detector, metadata, shape).

Reads headers only.  Exit status 0 when every file was readable, 3 when some
were not (the others are still listed), 1 when none was.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .options import camera_type, with_cli_advice

log = logging.getLogger(__name__)

#: Keys of every JSON object, in order (plus ``error`` for a bad file).
FIELDS = ("path", "kind", "instrument", "camera", "detector", "detector_name", "exposure", "day_obs", "seq_num",
          "controller", "mjd", "image_type", "filter", "exposure_time", "dark_time", "shape")  # fmt: skip


def register(sub) -> None:
    p = sub.add_parser("inspect", help="identify raw/processed exposure files", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("files", nargs="+", metavar="FILE", help="FITS files (raw, processed or plain images)")
    p.add_argument("--camera", type=camera_type, metavar="NAME|PATH", help="camera to use (default: from INSTRUME)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run)


def exit_code(n_good: int, n_bad: int) -> int:
    """0 all good, 3 partial, 1 all bad (the CLI's rule for batches)."""
    from .main import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL

    return EXIT_OK if n_bad == 0 else (EXIT_FAILURE if n_good == 0 else EXIT_PARTIAL)


def _fmt(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def run(args: argparse.Namespace) -> int:
    from ..camera import get_camera
    from ..errors import CpmosaicError
    from ..io import identify

    camera = get_camera(args.camera) if args.camera else None
    docs: list[dict] = []
    n_bad = 0
    for path in args.files:
        try:
            docs.append(identify(path, camera).to_dict())
        except (CpmosaicError, OSError) as exc:  # one bad file never stops the batch
            n_bad += 1
            log.error("%s", with_cli_advice(exc))
            docs.append({**dict.fromkeys(FIELDS), "path": path, "error": str(exc)})
    if args.format == "json":
        json.dump(docs, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        w = sys.stdout.write
        w(f"{'detector':<8} {'id':>3} {'kind':<9} {'camera':<10} {'exposure':>14} {'type':<8} {'filter':<8} "
          f"{'exptime':>7} {'shape':>11}  path\n")  # fmt: skip
        for d in docs:
            if "error" in d:
                w(f"{'ERROR':<8} {'':>3} {d['error']}\n")
                continue
            shape = "x".join(map(str, d["shape"]))
            w(f"{_fmt(d['detector_name']):<8} {_fmt(d['detector']):>3} {d['kind']:<9} {_fmt(d['camera']):<10} "
              f"{_fmt(d['exposure']):>14} {_fmt(d['image_type']):<8} {_fmt(d['filter']):<8} "
              f"{_fmt(d['exposure_time'], '.2f'):>7} {shape:>11}  {d['path']}\n")  # fmt: skip
    return exit_code(len(docs) - n_bad, n_bad)
