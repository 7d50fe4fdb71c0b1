"""``cpmosaic history add|show|check``: the daily history of cp_verify metrics.

add    read cp_verify outputs (a directory tree or a Butler repository) into the store,
       one file per calibration type and night (a night already there is replaced)
show   per-night candlesticks (min, quartiles, max over amps) of the stored metrics
check  drifts and jumps in the stored history; exit status 1 when there are any (for a
       nightly job), with a recommendation per calibration type in table mode

A night file that cannot be read is named on stderr and skipped: the other nights are
still shown and checked, and the exit status is 3 (partial), whatever the alerts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ._records import records
from .options import camera_type, day_obs_type, positive_int

EXIT_OK, EXIT_ALERTS, EXIT_PARTIAL = 0, 1, 3

log = logging.getLogger("cpmosaic")

#: Alert columns printed in table mode (JSON carries all of them).
TABLE_COLUMNS = ("day_obs", "kind", "calib_type", "detector_name", "amp", "metric", "size", "significance",
                 "before", "after")


def register(sub) -> None:
    p = sub.add_parser("history", help="daily history of metrics: add, show, check drifts and jumps",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    hsub = p.add_subparsers(dest="history_command", metavar="ACTION", required=True)

    add = hsub.add_parser("add", help="add the nights of cp_verify outputs to the store")
    add.add_argument("source", metavar="SOURCE", help="directory of cp_verify outputs or Butler repository root")
    add.add_argument("--store", required=True, metavar="PATH", help="history store directory")
    add.add_argument("--collection", action="append", dest="collections", metavar="C",
                     help="Butler collection to read (repeatable)")
    add.add_argument("--camera", type=camera_type, help="camera name or file (default: from the data)")
    add.set_defaults(func=run_add)

    show = hsub.add_parser("show", help="per-night candlesticks over amps")
    show.add_argument("--store", required=True, metavar="PATH", help="history store directory")
    show.add_argument("--calib-type", metavar="T", help="only this calibration type")
    show.add_argument("--metric", metavar="M", help="only this metric (default: every metric)")
    show.add_argument("--by", choices=("day", "detector"), default="day", help="one candle per night, or per detector")
    show.add_argument("--start", type=day_obs_type, metavar="YYYYMMDD", help="first night")
    show.add_argument("--end", type=day_obs_type, metavar="YYYYMMDD", help="last night")
    show.add_argument("--format", choices=("table", "csv", "json"), default="table")
    show.set_defaults(func=run_show)

    check = hsub.add_parser("check", help="find drifts and jumps; exit 1 when there are any")
    check.add_argument("--store", required=True, metavar="PATH", help="history store directory")
    check.add_argument("--calib-type", metavar="T", help="only this calibration type")
    check.add_argument("--format", choices=("table", "json"), default="table")
    check.add_argument("--window", type=positive_int, default=10, metavar="N", help="nights in a drift's fit (default 10)")
    check.add_argument("--k", type=float, default=6.0, metavar="K", help="threshold in robust sigmas (default 6)")
    check.add_argument("--since", type=day_obs_type, metavar="YYYYMMDD",
                       help="only report alerts from this night on (the whole history is still used)")
    check.set_defaults(func=run_check)


def _store(path: str, must_exist: bool = True):
    from ..errors import InputError
    from ..metrics.history import HistoryStore

    store = HistoryStore(path)
    if must_exist and not store.calib_types():
        raise InputError(path, "no history here (run `cpmosaic history add SOURCE --store PATH` first)")
    return store


def run_add(args: argparse.Namespace) -> int:
    from .. import progress
    from ..errors import InputError
    from ..metrics import load_metrics

    progress.enable(None)
    df = load_metrics(args.source, collections=args.collections, camera=args.camera)
    problems = df.attrs.get("problems", [])
    if not len(df):
        raise InputError(args.source, "no metrics found")
    store = _store(args.store, must_exist=False)
    import pyarrow.parquet as pq

    existing = {(t, d) for t in store.calib_types() for d in store.days(t)}
    for ctype, day in store.add(df):
        what = "replaced" if (ctype, day) in existing else "added"
        n = pq.ParquetFile(store.file(ctype, day)).metadata.num_rows  # what is there now, from the footer
        sys.stdout.write(f"{what} {ctype} {day} ({n} rows)\n")
    if problems:
        log.warning("%d input(s) could not be read; the rest was stored", len(problems))
        return EXIT_PARTIAL
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..metrics.nightly import candlesticks

    store = _store(args.store)
    df = store.load(calib_type=args.calib_type, metric=args.metric, start=args.start, end=args.end,
                    columns=["calib_type", "day_obs", "detector", "detector_name", "metric", "value"])
    parts = []
    pairs = df[["calib_type", "metric"]].drop_duplicates().astype(str).sort_values(["calib_type", "metric"])
    for ctype, metric in pairs.itertuples(index=False, name=None):
        c = candlesticks(df, metric, calib_type=ctype, by=args.by)
        c.insert(1, "metric", metric)
        parts.append(c)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["calib_type", "metric", "day_obs", "min", "q1", "median", "q3", "max", "n"])
    if args.format == "json":
        sys.stdout.write(json.dumps(records(out), indent=1) + "\n")
    elif args.format == "csv":
        sys.stdout.write(out.to_csv(index=False))
    else:
        sys.stdout.write((out.to_string(index=False, float_format=lambda v: f"{v:.6g}") if len(out) else "(no rows)")
                         + "\n")
    return _partial(df) or EXIT_OK


def _partial(df) -> int:
    """EXIT_PARTIAL when night files were skipped (each was already logged by name), else 0."""
    skipped = df.attrs.get("problems", [])
    if skipped:
        log.warning("%d night file(s) could not be read and were skipped: %s", len(skipped),
                    ", ".join(p for p, _ in skipped))
        return EXIT_PARTIAL
    return 0


def run_check(args: argparse.Namespace) -> int:
    from ..metrics.drift import detect_changes
    from ..metrics.history import as_day_obs
    from ..metrics.nightly import recommendations, validity_ranges

    store = _store(args.store)
    df = store.load(calib_type=args.calib_type)
    partial = _partial(df)
    alerts = detect_changes(df, window=args.window, k=args.k)
    recs = recommendations(df, alerts)
    since = as_day_obs(args.since)
    if since is not None:
        alerts = alerts[alerts["day_obs"] >= since].reset_index(drop=True)
    if args.format == "json":
        sys.stdout.write(json.dumps(records(alerts), indent=1) + "\n")
    else:
        w = sys.stdout.write
        days = store.days(args.calib_type)
        w(f"{len(alerts)} alert(s) in {len(days)} night(s) {days[0]}..{days[-1]} "
          f"(window {args.window}, k {args.k:g})\n")
        if len(alerts):
            w(alerts[list(TABLE_COLUMNS)].to_string(index=False, float_format=lambda v: f"{v:.4g}") + "\n")
        w("\nrecommendations:\n")
        for r in recs:
            flag = "NEW CALIBRATION" if r["recommend_new"] else "ok"
            w(f"  {r['calib_type']:<10} {flag:<16} {r['reason']}\n")
        # DMTN-192's validity range: the nights over which each calibration kept passing
        spans = validity_ranges(df, alerts)
        if len(spans):
            w("\nvalidity ranges:\n")
            for v in spans.itertuples(index=False):
                end = f"ended by {v.ended_by}" if isinstance(v.ended_by, str) and v.ended_by else "still valid"
                w(f"  {v.calib_type:<10} {v.run:<32} {v.first_day}..{v.last_day} ({v.n_days} night(s)), {end}\n")
    # a skipped night outranks alerts: the check did not see the whole history
    return partial or (EXIT_ALERTS if len(alerts) else EXIT_OK)
