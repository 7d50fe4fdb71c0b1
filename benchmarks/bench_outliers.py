"""Outlier findings on a full LSSTCam history: cost of populations and grouping into findings.

A tidy table of ``--nights`` nights x 205 detectors x 16 amps x ``--metrics`` bias metrics
(values drawn around the camera's nominal per-amp read noise, so the two vendors differ; a
hot amp, a noisy amp and a dead detector injected) is scored in the same process by:

* baseline: robust z per (calib_type, run, exposure, tier, metric) over the whole focal plane
  (``focal_plane_z(by_sensor_type=False)``, the grouping before populations per sensor type);
* ``focal_plane_z``: the same per sensor type;
* ``outlier_rows``: population and history z, flagged values;
* ``find_outliers``: flagged values grouped into ranked findings.

Times are the best of ``--repeat``; ratios are against the baseline.

    python benchmarks/bench_outliers.py --nights 10 --metrics 6
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd
from _timing import best_of


#: Bias metrics that follow an amp's read noise, as cp_verify writes them.
METRICS = ("NOISE", "CR_NOISE", "READ_NOISE_ADU", "BIAS_SHIFT_NOISE", "BIAS_DIST_16.0_PCT", "BIAS_DIST_84.0_PCT")


def make_table(nights: int, n_metrics: int, seed: int = 0) -> pd.DataFrame:
    from cpmosaic.camera import get_camera
    from cpmosaic.metrics import COLUMNS

    cam = get_camera("LSSTCam")
    rng = np.random.default_rng(seed)
    dets = np.array([d.id for d in cam for _ in d.amplifiers])
    names = np.array([d.name for d in cam for _ in d.amplifiers], dtype=object)
    amps = np.array([a.name for d in cam for a in d.amplifiers], dtype=object)
    rn = np.array([a.read_noise if a.read_noise > 0 else 6.0 for d in cam for a in d.amplifiers])
    n = len(dets)
    frames = []
    for night in range(nights):
        day = 20250601 + night
        for m in range(n_metrics):
            value = rn * rng.uniform(0.97, 1.03, n) * (1.0 + 0.1 * m)
            value[(names == "R22_S11") & (amps == "C07")] *= 3.0
            value[names == "R23_S11"] = 0.0
            frames.append(pd.DataFrame({
                "instrument": "LSSTCam", "calib_type": "bias", "run": f"run{night}",
                "exposure": day * 100000 + 1, "day_obs": day, "mjd": np.nan, "detector": dets,
                "detector_name": names, "amp": amps, "tier": "amp", "metric": METRICS[m % len(METRICS)], "value": value,
                "passed": pd.NA}))
    df = pd.concat(frames, ignore_index=True)[list(COLUMNS)]
    df["exposure"] = df["exposure"].astype("Int64")
    df["day_obs"] = df["day_obs"].astype("Int64")
    df["passed"] = df["passed"].astype("boolean")
    return df


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--metrics", type=int, default=6, help="how many of METRICS (at most 6)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    from cpmosaic.metrics.outliers import find_outliers, focal_plane_z, outlier_rows

    df = make_table(args.nights, min(args.metrics, len(METRICS)))
    cases = [("baseline: focal-plane z, one population", lambda: focal_plane_z(df, by_sensor_type=False)),
             ("focal_plane_z per sensor type", lambda: focal_plane_z(df)),
             ("outlier_rows (population + history)", lambda: outlier_rows(df)),
             ("find_outliers (findings)", lambda: find_outliers(df))]
    print(f"{len(df):,} rows ({args.nights} nights x {args.metrics} metrics x 3,280 amps); "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| case | best s | ratio to baseline | rows out |")
    print("|---|---|---|---|")
    base = None
    for name, fn in cases:
        t, out = best_of(fn, args.repeat)
        base = base or t
        print(f"| {name} | {t:.2f} | {t / base:.2f} | {len(out):,} |")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
