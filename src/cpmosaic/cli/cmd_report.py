"""``cpmosaic report SOURCE -o DIR``: every plot of a calibration, its tests and outliers, in one report.

SOURCE is a directory of cp_verify outputs or a Butler repository (then give
--collection; for a directory --collection keeps the runs it names, glob patterns
allowed).  Per calibration type and metric: a focal-plane heat map and a histogram with
the test limits; scatters of coupled metrics; with --against a second calibration B
overlaid and difference heat maps, histograms and B-vs-A scatters (B - A); with --history
candlesticks by night with drift and jump alerts; with --mosaic the mosaic images with
metric overlays.  Each figure is a PNG; DIR/index.html links them, the interactive pages
(standalone, offline), the failures and outliers tables and the pass/fail summary.
Exit status 3 when some inputs could not be read.
"""

from __future__ import annotations

import argparse
import sys

from .options import add_storage_options, camera_type, positive_int

EXIT_OK, EXIT_USAGE, EXIT_PARTIAL = 0, 2, 3


def register(sub) -> None:
    p = sub.add_parser("report", help="the calibration report: every plot, tests, outliers, history",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="directory of cp_verify outputs or Butler repository root")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="report directory")
    p.add_argument("--collection", action="append", dest="collections", metavar="C",
                   help="Butler collection (or run pattern in a directory) of SOURCE (repeatable)")
    p.add_argument("--against", metavar="OTHER", help="a second calibration B to compare with (B - A)")
    p.add_argument("--collection-b", action="append", dest="collections_b", metavar="CB",
                   help="collection (or run pattern) of OTHER (repeatable)")
    p.add_argument("--history", metavar="PATH", help="history store: candlesticks by night, drift and jump alerts")
    p.add_argument("--mosaic", action="append", dest="mosaics", default=[], metavar="STORE",
                   help="mosaic store to show with metric overlays (repeatable)")
    add_storage_options(p)
    p.add_argument("--calib-type", action="append", dest="calib_types", metavar="TYPE",
                   help="plot only this calibration type (repeatable; tests and tables cover all)")
    p.add_argument("--metric", action="append", dest="metrics", metavar="M",
                   help="plot only this metric (repeatable; tests and tables cover all)")
    p.add_argument("--camera", type=camera_type, help="camera name or file (default: from the data)")
    p.add_argument("--label-a", default=None, metavar="NAME", help="name of SOURCE in titles (default A)")
    p.add_argument("--label-b", default=None, metavar="NAME", help="name of OTHER in titles (default B)")
    p.add_argument("--title", help="report title")
    p.add_argument("--z", type=float, default=5.0, help="outlier threshold in robust sigmas (default 5)")
    p.add_argument("--window", type=positive_int, default=10, metavar="N", help="nights in a drift's fit (default 10)")
    p.add_argument("--color-range", choices=("focal_plane", "sensor_type"), default="focal_plane",
                   help="heat-map colour range: one for the focal plane, or one per sensor type (E2V, ITL, "
                        "ITL_G, ITL_WF) so a vendor step does not saturate half of it (default focal_plane)")
    p.add_argument("--no-interactive", action="store_true", help="PNGs and index only (no interactive pages)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from .. import progress
    from ..report import build_report

    log = logging.getLogger("cpmosaic")
    progress.enable(False if args.no_progress else True)
    if args.collections_b and not args.against:
        log.error("--collection-b needs --against OTHER")
        return EXIT_USAGE
    result = build_report(
        args.source, args.output, collections=args.collections, against=args.against,
        collections_b=args.collections_b, history=args.history, mosaics=args.mosaics, camera=args.camera,
        calib_types=args.calib_types, metrics=args.metrics,
        labels=(args.label_a or "A", args.label_b or "B"), title=args.title, interactive=not args.no_interactive,
        z=args.z, history_window=args.window, color_range=args.color_range,
        storage_options=args.storage_options)
    s = result.summary
    word = {True: "PASS", False: "FAIL", None: "no verdict"}
    w = sys.stdout.write
    w(f"cp_verify: {word[s.get('cp_verify_success')]}; {s.get('n_failures', 0)} failing tests of "
      f"{s.get('n_tests', 0)}; {result.n_outliers} outlier findings")
    if result.alerts is not None:
        w(f"; {len(result.alerts)} history alerts")
    w(f"\n{len(result.figures)} figures, {len(result.pages)} interactive pages in {result.timings['total']:.1f} s\n")
    w(f"{result.index}\n")
    if result.partial:
        log.warning("%d input(s) could not be read; the report covers the rest", len(result.problems))
        return EXIT_PARTIAL
    return EXIT_OK
