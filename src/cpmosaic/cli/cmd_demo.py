"""``cpmosaic demo``: the main job on built-in synthetic data, with no setup.

Synthesizes a night of LSSTCam data (bias, dark, flat; calibration runs A and B; several
nights of cp_verify outputs with an injected drift and jump, a hot amp, a noisy amp and a
dead detector), builds a mosaic per calibration type, computes and evaluates the metrics,
finds outliers, fills and checks a history store, compares the last night with the first
and calibration B with A, and writes the report.  Prints a short summary and, last, the
path of the report's index.html.
"""

from __future__ import annotations

import argparse
import logging
import sys


def register(sub) -> None:
    p = sub.add_parser("demo", help="the whole job on synthetic data: synthesize, mosaic, metrics, report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="cpmosaic-demo", metavar="DIR",
                   help="output directory (default ./cpmosaic-demo)")
    p.add_argument("--full", action="store_true",
                   help="real LSSTCam detector size (large: about 200 MB per detector; use --detectors)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    p.add_argument("--detectors", nargs="+", metavar="DET",
                   help="detector names or ids (space or comma separated; default all 205)")
    p.add_argument("--days", type=int, default=10, metavar="N", help="nights of history (default 10, at least 3)")
    p.add_argument("--metric", action="append", dest="metrics", metavar="M",
                   help="plot only this metric in the report (repeatable; default all)")
    p.add_argument("--no-interactive", action="store_true", help="no interactive pages in the report")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import progress
    from ..demo import run_demo
    if args.days < 3:
        logging.getLogger("cpmosaic").error("--days must be at least 3")
        return 2
    progress.enable(False if args.no_progress else True)
    detectors = [d.strip() for arg in args.detectors for d in arg.split(",") if d.strip()] if args.detectors else None
    result = run_demo(args.output, full=args.full, seed=args.seed, detectors=detectors, days=args.days,
                      interactive=not args.no_interactive, metrics=args.metrics)
    w = sys.stdout.write
    for line in result.summary_lines():
        w(line + "\n")
    w(f"{result.index}\n")
    return 0
