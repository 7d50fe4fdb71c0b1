"""``cpmosaic synth -o DIR``: write a deterministic synthetic data set (raw, processed,
calibration products, cp_verify outputs over several days, a Butler repository)."""

from __future__ import annotations

import argparse
import logging
import sys


def register(sub) -> None:
    p = sub.add_parser("synth", help="write realistic synthetic calibration data", description=__doc__)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--camera", default="LSSTCam", help="camera name or file (default LSSTCam)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--shrink", type=int, default=16, metavar="N",
                      help="detectors N times smaller per axis (default 16)")
    size.add_argument("--full", action="store_true", help="full-size detectors (same as --shrink 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=int, default=10, metavar="N", help="days of cp_verify history (default 10)")
    p.add_argument("--first-day", type=int, default=20251118, metavar="YYYYMMDD")
    p.add_argument("--exposures", type=int, default=1, metavar="N", help="exposures per type and day (default 1)")
    p.add_argument("--image-days", type=int, default=1, metavar="N", help="days with raw/processed images")
    p.add_argument("--types", default="bias,dark,flat", help="calibration types (default bias,dark,flat)")
    p.add_argument("--detectors", help="comma-separated detector names or ids (default all)")
    p.add_argument("--no-raw", action="store_true", help="no raw files")
    p.add_argument("--no-processed", action="store_true", help="no processed images")
    p.add_argument("--no-calibs", action="store_true", help="no calibration products")
    p.add_argument("--no-verify", action="store_true", help="no cp_verify outputs")
    p.add_argument("--no-butler", action="store_true", help="no Butler repository")
    p.add_argument("--identical-b", action="store_true", help="calibration run B identical to A")
    p.add_argument("--compress", action="store_true", help="RICE_1-compress raw segments")
    p.add_argument("--image-only", action="store_true", help="processed files without MASK and VARIANCE")
    p.add_argument("--dead", choices=("zeros", "nan", "missing"), default="zeros", help="how the dead detector looks")
    p.add_argument("--corrupt", action="store_true", help="write one corrupt file to exercise error paths")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="threads (default: CPU count)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> str | None:
    """The first bad option value, said as one line (None: all good)."""
    for flag, value, low in (("--days", args.days, 1), ("--shrink", args.shrink, 1), ("--exposures", args.exposures, 1),
                             ("--image-days", args.image_days, 0), ("--workers", args.workers, 1)):
        if value is not None and value < low:
            return f"{flag} must be >= {low}, got {value}"
    if not any(t.strip() for t in args.types.split(",")):
        return "--types names no calibration type"
    return None


def run(args: argparse.Namespace) -> int:
    from .. import progress

    problem = _check(args)
    if problem:  # before anything is written: no partial folder
        logging.getLogger(__name__).error("%s", problem)
        return 2
    from ..synth import synthesize

    progress.enable(False if args.no_progress else None)
    types = tuple(t.strip().lower() for t in args.types.split(",") if t.strip())
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else None
    m = synthesize(
        args.output, camera=args.camera, shrink=1 if args.full else args.shrink, seed=args.seed, n_days=args.days,
        first_day=args.first_day, calib_types=types, exposures_per_day=args.exposures, image_days=args.image_days,
        raw=not args.no_raw, processed=not args.no_processed, calibs=not args.no_calibs, verify=not args.no_verify,
        butler=False if args.no_butler else None, workers=args.workers, detectors=detectors, corrupt=args.corrupt,
        identical_b=args.identical_b, compress=args.compress, planes="image" if args.image_only else "all",
        dead=args.dead, progress=False if args.no_progress else None)
    w = sys.stdout.write
    w(f"wrote {m.root}\n")
    w(f"  camera {m.camera}, {len(m.detectors)} detectors, shrink {m.shrink}, seed {m.seed}\n")
    w(f"  days {m.days[0]}..{m.days[-1]} ({len(m.days)}), types {', '.join(m.calib_types)}\n")
    for kind in ("raw", "processed", "calib"):
        w(f"  {kind:<9} {len(m.images.get(kind, ())):>6} files\n")
    w(f"  verify    {len(m.verify_files):>6} files in {sum(len(v) for v in m.runs.values())} runs"
      f" under {m.verify_root}\n" if m.verify_root else "  verify         0 files\n")
    w(f"  butler    {m.butler_root or '-'}\n")
    for a in m.anomalies:
        w(f"  anomaly   {a['kind']:<14} {a['detector_name']} {a['amp'] or '':<4} "
          f"({a['x_mm']:.1f}, {a['y_mm']:.1f}) mm\n")
    for t in m.trends:
        w(f"  {t['kind']:<9} {t['calib_type']} {t['metric']} {t['detector_name']} {t['amp']} "
          f"{t['size']:+g} from {t['start_day']}\n")
    for c in m.corrupt:
        w(f"  corrupt   {c['path']}\n")
    return 0
