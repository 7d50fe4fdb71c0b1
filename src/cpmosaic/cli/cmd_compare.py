"""``cpmosaic compare A B``: metric-by-metric (and, with --images, pixel) differences B - A.

A and B are directories of cp_verify outputs or Butler repositories (with
--collection-a/--collection-b; B defaults to A's repository when only
--collection-b is given).  With --images they are directories of calibration
FITS files (or repositories with collections), compared amp by amp, and the
metrics compared are measured on those images.  Writes DIR/metric_differences.csv,
DIR/summary.json (and DIR/image_differences.csv) and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .options import camera_type

EXIT_OK, EXIT_PARTIAL = 0, 3


def register(sub) -> None:
    p = sub.add_parser("compare", help="compare two calibrations (metrics, optionally images)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help="reference: directory or Butler repository")
    p.add_argument("b", metavar="B", nargs="?", help="compared: directory or Butler repository (default A)")
    p.add_argument("--collection-a", metavar="CA", help="Butler collection of A")
    p.add_argument("--collection-b", metavar="CB", help="Butler collection of B")
    p.add_argument("--camera", type=camera_type, help="camera name or file (default: from the data)")
    p.add_argument("-o", "--output", metavar="DIR", default="compare_out", help="output directory (default compare_out)")
    p.add_argument("--images", action="store_true", help="compare calibration images amp by amp")
    p.add_argument("--dataset-type", default="bias", help="Butler dataset type of the images (default bias)")
    p.add_argument("--calib-type", default=None, help="calibration type of the images (default: --dataset-type)")
    p.add_argument("--tolerance", type=float, default=0.0, help="pixels differing by more count as differing")
    p.add_argument("--top", type=int, default=10, help="largest differences listed in the summary")
    p.set_defaults(func=run)


def _image_summary(diff) -> dict:
    if not len(diff):
        return {"n_detectors": 0, "n_amps": 0}
    ident = (diff["max_abs"] == 0)
    worst = diff.sort_values("max_abs", ascending=False, kind="stable").head(10)
    return {
        "n_detectors": int(diff["detector"].nunique()), "n_amps": int(len(diff)),
        "n_identical_amps": int(ident.sum()), "fraction_identical": float(ident.mean()),
        "max_abs": float(diff["max_abs"].max()),
        "largest": [{"detector_name": r.detector_name, "amp": r.amp, "max_abs": float(r.max_abs),
                     "median": float(r.median), "frac_differing": float(r.frac_differing)}
                    for r in worst.itertuples()],
    }


def run(args: argparse.Namespace) -> int:
    import logging

    from .. import progress
    from ..metrics import compare_images, compare_metrics, comparison_summary, load_metrics, metrics_from_images

    log = logging.getLogger("cpmosaic")
    progress.enable(None)
    b = args.b or args.a
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    problems: list[dict] = []
    summary: dict = {"a": os.fspath(args.a), "b": os.fspath(b),
                     "collection_a": args.collection_a, "collection_b": args.collection_b}
    if args.images:
        img = compare_images(args.a, b, camera=args.camera, collection_a=args.collection_a,
                             collection_b=args.collection_b, dataset_type=args.dataset_type,
                             tolerance=args.tolerance)
        problems += img.attrs.get("problems", [])
        img.to_csv(out_dir / "image_differences.csv", index=False)
        summary["images"] = _image_summary(img)
        calib = args.calib_type or args.dataset_type
        sides = []
        for src, coll in ((args.a, args.collection_a), (b, args.collection_b)):
            if coll is None:
                sides.append(metrics_from_images(src, camera=args.camera, calib_type=calib))
            else:
                from ..io.butler import calibration_files

                files = sorted(calibration_files(src, coll, args.dataset_type).values())
                sides.append(metrics_from_images(files, camera=args.camera, calib_type=calib, run=coll))
        ma, mb = sides
    else:
        ma = load_metrics(args.a, collections=args.collection_a, camera=args.camera)
        mb = load_metrics(b, collections=args.collection_b, camera=args.camera)
    if ma is not None:
        problems += ma.attrs.get("problems", []) + mb.attrs.get("problems", [])
        diff = compare_metrics(ma, mb)
        diff.to_csv(out_dir / "metric_differences.csv", index=False)
        summary["metrics"] = comparison_summary(diff, top=args.top)
    summary["problems"] = problems
    with open(out_dir / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=1)
        fh.write("\n")
    json.dump(summary, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if problems:
        log.warning("%d input(s) could not be read; see the warnings above", len(problems))
        return EXIT_PARTIAL
    return EXIT_OK
