"""``cpmosaic metrics SOURCE``: the tidy table of cp_verify metrics, its failures or outliers.

SOURCE is a directory of cp_verify outputs or a Butler repository (then give
--collection).  Exit status 3 when some inputs could not be read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

EXIT_OK, EXIT_PARTIAL = 0, 3


def register(sub) -> None:
    p = sub.add_parser("metrics", help="cp_verify metrics as a table, failures or outliers",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="directory of cp_verify outputs or Butler repository root")
    p.add_argument("--collection", action="append", dest="collections", metavar="C",
                   help="Butler collection to read (repeatable)")
    p.add_argument("--camera", help="camera name or file (default: from the data)")
    p.add_argument("--calib-type", action="append", dest="calib_types", metavar="TYPE",
                   help="only this calibration type: bias, dark, flat, ... (repeatable)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--failures", action="store_true", help="the DMTN-101 test failures instead of the metrics")
    what.add_argument("--outliers", action="store_true", help="robust outliers instead of the metrics")
    p.add_argument("--z", type=float, default=5.0, help="outlier threshold in robust sigmas (default 5)")
    p.set_defaults(func=run)


def _json_value(v):
    if v is None or type(v).__name__ == "NAType":  # pandas.NA, without importing pandas here
        return None
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def records(df) -> list[dict]:
    """JSON-ready records of a DataFrame (NA/NaN -> None, numpy -> Python)."""
    cols = list(df.columns)
    return [{c: _json_value(v) for c, v in zip(cols, row)} for row in df.itertuples(index=False, name=None)]


def write_frame(df, fmt: str, output: str | None) -> None:
    """Write *df* as a table, CSV or JSON list of records to *output* or stdout."""
    if fmt == "csv":
        text = df.to_csv(index=False)
    elif fmt == "json":
        text = json.dumps(records(df), indent=1) + "\n"
    else:
        text = (df.to_string(index=False) if len(df) else "(no rows)") + "\n"
    if output:
        with open(output, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


def run(args: argparse.Namespace) -> int:
    import logging

    from .. import progress
    from ..metrics import evaluate, find_outliers, load_metrics

    log = logging.getLogger("cpmosaic")
    progress.enable(None)
    df = load_metrics(args.source, collections=args.collections, camera=args.camera,
                      calib_types=args.calib_types)
    problems = df.attrs.get("problems", [])
    if args.failures:
        out = evaluate(df, camera=args.camera, failures_only=True)
    elif args.outliers:
        out = find_outliers(df, z=args.z)
    else:
        out = df
    write_frame(out, args.format, args.output)
    if problems:
        log.warning("%d input(s) could not be read; see the warnings above", len(problems))
        return EXIT_PARTIAL
    return EXIT_OK
