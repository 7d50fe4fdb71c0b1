"""``cpmosaic assemble RAW... -o DIR``: trimmed, overscan-corrected detector images.

One afw-layout FITS file per raw, named ``{exposure}-{DETNAME}-det{id:03d}.fits``.
A bad raw is logged and skipped; exit status 0 when all were written, 3 when
some were, 1 when none was.
"""

from __future__ import annotations

import argparse
import logging

from .options import camera_type, with_cli_advice

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("assemble", help="assemble raw files into detector images", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("raws", nargs="+", metavar="RAW", help="raw multi-HDU FITS files")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory (created if needed)")
    p.add_argument("--camera", type=camera_type, metavar="NAME|PATH", help="camera to use (default: from INSTRUME)")
    p.add_argument("--overscan", choices=("median", "mean", "single", "none"), default="median",
                   help="serial overscan correction: per-row median (default), per-row mean, one value, none")
    p.add_argument("--gains", action="store_true", help="multiply by the camera's amp gains (electrons)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..camera import get_camera
    from ..errors import CpmosaicError
    from ..io import assemble_to_fits
    from ..progress import track
    from .cmd_inspect import exit_code

    camera = get_camera(args.camera) if args.camera else None
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, bad = [], []
    for raw in track(args.raws, total=len(args.raws), desc="assemble"):
        try:
            written.append(assemble_to_fits(raw, out_dir, camera, overscan=args.overscan, apply_gains=args.gains))
            log.debug("%s -> %s", raw, written[-1])
        except (CpmosaicError, OSError) as exc:  # log, skip, go on with the rest
            bad.append(raw)
            log.error("%s", with_cli_advice(exc))
    log.info("wrote %d of %d file(s) to %s", len(written), len(args.raws), out_dir)
    return exit_code(len(written), len(bad))
