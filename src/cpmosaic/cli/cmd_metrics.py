"""``cpmosaic metrics SOURCE``: the tidy table of cp_verify metrics, its failures or outliers.

SOURCE is a directory of cp_verify outputs or a Butler repository (then give
--collection).  Exit status 3 when some inputs could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._records import records as plain_records
from .options import camera_type

EXIT_OK, EXIT_PARTIAL = 0, 3
#: Columns of ``--outliers`` as a terminal table (CSV and JSON carry every column).
OUTLIER_TABLE = ("rank", "finding", "detector_name", "amp", "n_amps", "calib_type", "metric", "value", "z",
                 "severity", "kind", "metrics")


def register(sub) -> None:
    p = sub.add_parser("metrics", help="cp_verify metrics as a table, failures or outliers",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="directory of cp_verify outputs or Butler repository root")
    p.add_argument("--collection", action="append", dest="collections", metavar="C",
                   help="Butler collection to read (repeatable)")
    p.add_argument("--camera", type=camera_type, help="camera name or file (default: from the data)")
    p.add_argument("--calib-type", action="append", dest="calib_types", metavar="TYPE",
                   help="only this calibration type: bias, dark, flat, ... (repeatable)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--failures", action="store_true", help="the DMTN-101 test failures instead of the metrics")
    what.add_argument("--outliers", action="store_true", help="robust outliers instead of the metrics")
    p.add_argument("--z", type=float, default=5.0, help="outlier threshold in robust sigmas (default 5)")
    p.add_argument("--images-as", metavar="TYPE", default=None,
                   help="when SOURCE holds calibration images and no cp_verify outputs, measure the "
                        "per-amp statistics on the images as this calibration type (default: bias)")
    p.set_defaults(func=run)


def records(df) -> list[dict]:
    """JSON-ready records of a DataFrame (NA/NaN -> None, numpy -> Python).

    Exposure-wide rows of the tidy table (detector -1, no name, no amp) get nulls
    there: "no detector" reads better to a script than a sentinel id.
    """
    out = plain_records(df)
    if "detector" in df.columns:
        for r in out:
            if r["detector"] == -1:
                r["detector"] = None
                for key in ("detector_name", "amp"):
                    if r.get(key) == "":
                        r[key] = None
    return out


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
    from ..metrics import evaluate, find_outliers

    log = logging.getLogger("cpmosaic")
    progress.enable(None)
    df = _load(args, log)
    problems = df.attrs.get("problems", [])
    verdict = None
    if args.failures:
        from ..metrics import summary
        from ..metrics.ptc import find_ptc

        ptc, where = find_ptc(args.source, args.collections, df, camera=args.camera)
        results = evaluate(df, camera=args.camera, ptc=ptc)
        verdict = summary(df, results, camera=args.camera)
        verdict["ptc"] = where
        # failures of either verdict, and every disagreement with cp_verify (with its reason)
        out = results[(results["passed"].eq(False) | results["cp_verify_passed"].eq(False)).fillna(False)
                      | results["disagreement"].ne("")].reset_index(drop=True)
    elif args.outliers:
        out = find_outliers(df, z=args.z, camera=args.camera, alerts=_alerts(df, log))
        if args.format == "table":
            out = out[[c for c in OUTLIER_TABLE if c in out.columns]]
    else:
        out = df
    write_frame(out, args.format, args.output)
    if verdict is not None:
        _print_verdict(verdict, sys.stdout if args.format == "table" and not args.output else sys.stderr)
    if problems:
        log.warning("%d input(s) could not be read; see the warnings above", len(problems))
        return EXIT_PARTIAL
    return EXIT_OK


def _alerts(df, log):
    """Drift and jump alerts of a table holding three nights or more (None otherwise)."""
    days = df["day_obs"].dropna().unique() if "day_obs" in df.columns else []
    if len(days) < 3:
        return None
    from ..metrics.drift import detect_changes

    alerts = detect_changes(df, window=min(10, len(days)))
    log.info("%d drift/jump alert(s) in %d nights folded into the outliers", len(alerts), len(days))
    return alerts


def _load(args: argparse.Namespace, log):
    """The tidy table of SOURCE; from the images themselves when it holds no cp_verify output."""
    from pathlib import Path

    from ..errors import InputError
    from ..metrics import load_metrics

    try:
        return load_metrics(args.source, collections=args.collections, camera=args.camera,
                            calib_types=args.calib_types)
    except InputError as exc:
        src = Path(args.source)
        fits = src.is_dir() and any(p.suffix in (".fits", ".fz", ".gz") for p in src.rglob("*.f*"))
        if "no readable cp_verify outputs" not in str(exc) or not fits:
            raise
    from ..metrics import metrics_from_images

    calib_type = args.images_as or "bias"
    log.info("%s holds no cp_verify outputs: measuring per-amp statistics on its images as %s",
             args.source, calib_type)
    return metrics_from_images(args.source, camera=args.camera, calib_type=calib_type)


def _print_verdict(v: dict, stream) -> None:
    def word(ok):
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")

    agree = v.get("agreement")
    stream.write(f"cp_verify: {word(v.get('cp_verify_success'))}   re-evaluated: {word(v.get('success'))}   "
                 f"{v.get('n_failures', 0)} failing test(s) of {v.get('n_tests', 0)}"
                 + (f", {v['n_not_measured']} not measured" if v.get("n_not_measured") else "")
                 + (f", agreement with cp_verify {agree:.1%}" if agree is not None else "") + "\n")
    ptc = v.get("ptc")
    stream.write("read noise and gain: " + (ptc if ptc else "no PTC in SOURCE: the camera's nominal values "
                                             "(cp_verify used the PTC's; NOISE/READ_NOISE_CONSISTENT may differ)")
                 + "\n")
    for reason, n in (v.get("disagreements") or {}).items():
        stream.write(f"  {n} verdict(s) differ from cp_verify's: {reason}\n")
    if v.get("flat_exp_scatter"):
        stream.write("  flat EXP SCATTER: cp_verify tests the absolute standard deviation of the detector means "
                     "against 0.05, so real flats always fail it; the re-evaluation tests the relative scatter "
                     "(std/mean <= 0.05) and keeps cp_verify's flag beside it (see 'note')\n")
    for e in v.get("exposures", []):
        if not e.get("success", True) or e.get("cp_verify_success") is False:
            fails = e.get("failures", [])
            stream.write(f"  {e.get('calib_type')} {e.get('exposure')}: {word(e.get('cp_verify_success'))}"
                         f" / {word(e.get('success'))}  {', '.join(fails[:6])}{' ...' if len(fails) > 6 else ''}\n")
