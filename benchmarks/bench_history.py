"""The metrics history: add a night, load a year, detect drifts and jumps.

A synthetic tidy metrics table of ``--days`` nights (365) x ``--amps`` amps (3,200, as
200 detectors x 16) x ``--metrics`` metrics (10), stationary Gaussian noise plus one
injected drift and one jump, is written to a ``HistoryStore`` (one parquet file per
night).  Then, in the same process on the same data:

* adding (replacing) one night: ``HistoryStore.add``;
* loading the whole history: ``HistoryStore.load`` (one multi-threaded pyarrow dataset
  scan, dictionary-encoded strings), against two baselines: ``pd.read_parquet`` of each
  night's file one after the other plus ``pd.concat``, and ``pd.read_csv`` of the same
  rows in one CSV file;
* drift and jump detection over every series: ``detect_changes``;
* candlesticks of one metric over the year.

    python benchmarks/bench_history.py            # a year
    python benchmarks/bench_history.py --quick    # 30 nights, no CSV baseline
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from cpmosaic.metrics.drift import detect_changes
from cpmosaic.metrics.history import HistoryStore, candlesticks
from _timing import best_of

AMPS = [f"C{i:02d}" for i in (10, 11, 12, 13, 14, 15, 16, 17, 7, 6, 5, 4, 3, 2, 1, 0)]


def make_history(n_days: int, n_amps: int, n_metrics: int, seed: int) -> tuple[pd.DataFrame, list[tuple]]:
    """The synthetic year (categorical strings, as the store gives them) and the injected changes."""
    rng = np.random.default_rng(seed)
    n_det = max(1, n_amps // 16)
    metrics = ["MEAN", "NOISE", "CR_NOISE", "AMP_CORNER", "READ_NOISE_ADU", "BIAS_SHIFT_NOISE",
               "BIAS_DIST_5.0_PCT", "BIAS_DIST_50.0_PCT", "BIAS_DIST_95.0_PCT", "SCATTER"][:n_metrics]
    metrics += [f"M{i}" for i in range(len(metrics), n_metrics)]
    days = pd.date_range("2025-01-01", periods=n_days).strftime("%Y%m%d").astype(int).to_numpy()
    n_series = n_det * 16 * n_metrics
    # series order: detector, amp, metric; nights vary fastest (one exposure a night)
    vals = rng.normal(100.0, 10.0, n_series)[:, None] + rng.normal(0.0, 1.0, (n_series, n_days))
    drift_row, jump_row = n_series // 3, 2 * n_series // 3
    d0 = n_days // 2
    vals[drift_row, d0:] += 1.5 * np.arange(1, n_days - d0 + 1)
    vals[jump_row, d0 + 3:] += 20.0
    det = np.repeat(np.arange(n_det), 16 * n_metrics)
    amp = np.tile(np.repeat(np.arange(16), n_metrics), n_det)
    met = np.tile(np.arange(n_metrics), n_det * 16)

    def per_row(codes, cats):
        return pd.Categorical.from_codes(np.repeat(codes, n_days), categories=cats)

    n = n_series * n_days
    df = pd.DataFrame({
        "instrument": pd.Categorical.from_codes(np.zeros(n, np.int8), ["LSSTCam"]),
        "calib_type": pd.Categorical.from_codes(np.zeros(n, np.int8), ["bias"]),
        "run": pd.Categorical.from_codes(np.zeros(n, np.int8), ["u/cpv/verifyBias"]),
        "exposure": pd.array(np.tile(days * 100000 + 10, n_series), dtype="Int64"),
        "day_obs": pd.array(np.tile(days, n_series), dtype="Int64"),
        "mjd": np.tile(np.arange(n_days) + 60676.1, n_series),
        "detector": np.repeat(det, n_days),
        "detector_name": per_row(det, [f"R{d // 9:02d}_S{d % 9:02d}" for d in range(n_det)]),
        "amp": per_row(amp, AMPS),
        "tier": pd.Categorical.from_codes(np.zeros(n, np.int8), ["amp"]),
        "metric": per_row(met, metrics),
        "value": vals.ravel(),
        "passed": pd.array(np.ones(n, bool), dtype="boolean"),
    })
    injected = [("drift", int(det[drift_row]), AMPS[amp[drift_row]], metrics[met[drift_row]]),
                ("jump", int(det[jump_row]), AMPS[amp[jump_row]], metrics[met[jump_row]])]
    return df, injected


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30 nights and no CSV baseline")
    ap.add_argument("--days", type=int, default=None, help="nights (default 365, 30 with --quick)")
    ap.add_argument("--amps", type=int, default=3200)
    ap.add_argument("--metrics", type=int, default=10)
    ap.add_argument("--no-csv", action="store_true", help="skip the pd.read_csv baseline")
    ap.add_argument("--store", help="store directory (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n_days = args.days or (30 if args.quick else 365)
    csv = not (args.no_csv or args.quick)

    t_make, (df, injected) = best_of(lambda: make_history(n_days, args.amps, args.metrics, args.seed))
    rows = len(df)
    per_night = rows // n_days
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.store or Path(tmp) / "history")
        store = HistoryStore(root)
        t_all, _ = best_of(lambda: store.add(df))
        size = sum(f.stat().st_size for f in root.rglob("*.parquet"))
        last = int(df["day_obs"].iloc[n_days - 1])
        night = df[df["day_obs"] == last]
        t_one, _ = best_of(lambda: store.add(night), repeat=3)
        del night
        t_load, loaded = best_of(lambda: store.load(), repeat=2)
        assert len(loaded) == rows
        files = store.files()
        t_serial, _ = best_of(lambda: pd.concat([pd.read_parquet(f) for f in files], ignore_index=True))
        t_csv = None
        if csv:
            import pyarrow as pa
            import pyarrow.csv as pacsv

            path = Path(tmp) / "history.csv"
            pacsv.write_csv(pa.Table.from_pandas(loaded.astype({"passed": "object"}), preserve_index=False), path)
            t_csv, _ = best_of(lambda: pd.read_csv(path))
            path.unlink()
        t_detect, alerts = best_of(lambda: detect_changes(loaded))
        t_candle, _ = best_of(lambda: candlesticks(loaded, "NOISE", "bias"))

    found = sorted(zip(alerts["kind"], alerts["detector"], alerts["amp"], alerts["metric"]))
    print(f"# cpmosaic history: {n_days} nights x {args.amps} amps x {args.metrics} metrics = {rows:,} rows "
          f"({per_night:,} a night), {size / 2**20:.0f} MiB on disk")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, pandas {pd.__version__}; data made in {t_make:.1f} s\n")
    print("| step | time (s) | rows/s |")
    print("|---|---:|---:|")

    def line(name, t, n):
        print(f"| {name} | {t:.3f} | {n / t:,.0f} |")

    line(f"add all {n_days} nights (HistoryStore.add)", t_all, rows)
    line("add (replace) one night", t_one, per_night)
    line("load the history (HistoryStore.load)", t_load, rows)
    line(f"baseline: pd.read_parquet of {len(files)} files, serially + concat", t_serial, rows)
    if t_csv is not None:
        line("baseline: pd.read_csv of the same rows", t_csv, rows)
    line("detect drifts and jumps (detect_changes)", t_detect, rows)
    line("candlesticks of one metric", t_candle, rows // args.metrics)
    print(f"\nalerts: {len(alerts)} (injected: {', '.join(' '.join(map(str, i)) for i in injected)}); "
          f"found: {', '.join(' '.join(map(str, f)) for f in found) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
