"""The calibration report of a full LSSTCam night: every metric of bias, dark and flat.

Data: one night of synthetic cp_verify outputs for all 205 detectors x 16 amps
(``synthesize(shrink=16, raw=False, processed=False, calibs=False, n_days=1)``: the metrics
do not depend on the detector size), read from the directory tree as a user's would be.

Measured in one process, on the same data:

* ``report, PNG + index``: ``build_report(..., interactive=False)`` from the directory
  (reading the metrics included): every heat map, histogram, tested-quantity histogram and
  coupled-metric scatter as a PNG (``save_png``), the tables, the index;
* ``report, full``: the same plus the interactive pages (one standalone HTML per calib
  type, a tab per metric, BokehJS inline once per page);
* baseline: what a script does without the report, per plot a plain
  ``hv.save(plot, "x.html", resources=INLINE)`` of the same heat map / histogram (one
  standalone file per plot), timed on ``--baseline-plots`` plots and extrapolated to the
  report's number of heat maps and histograms.  (HoloViews cannot write a bokeh PNG
  without a browser driver; the report's PNGs have no baseline of that kind.)

    python benchmarks/bench_report.py                   # prints a markdown table
    python benchmarks/bench_report.py --baseline-plots 4 --keep /tmp/bench-report
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def baseline(df, n_plots: int, out: Path) -> tuple[float, int]:
    """Seconds per plot of a plain holoviews/bokeh standalone save, over heat maps and histograms."""
    import holoviews as hv
    from bokeh.resources import INLINE

    from cpmosaic.report.plots import metric_heatmap, metric_histogram_plot, plot_items, select

    items = plot_items(df)[:max(1, n_plots // 2)]
    out.mkdir(parents=True, exist_ok=True)
    total, n = 0.0, 0
    for item in items:
        rows = select(df, item)
        for kind, make in (("heat", lambda: metric_heatmap(rows, item)),
                           ("hist", lambda: metric_histogram_plot(rows, item, None))):
            t0 = time.perf_counter()
            hv.save(make(), out / f"{item.slug}-{kind}.html", backend="bokeh", resources=INLINE)
            total += time.perf_counter() - t0
            n += 1
    return total / n, n


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-plots", type=int, default=6, help="plots timed for the baseline (default 6)")
    ap.add_argument("--keep", type=Path, help="keep the data and reports here (default: a temporary directory)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("bokeh", "param", "numba"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    from cpmosaic.metrics import load_metrics
    from cpmosaic.report import build_report
    from cpmosaic.synth import synthesize

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    m, t_synth = timed(lambda: synthesize(root / "data", shrink=16, raw=False, processed=False, calibs=False,
                                          n_days=1, butler=False, progress=False))
    df, t_load = timed(lambda: load_metrics(m.verify_root))
    import holoviews  # noqa: F401  (imports are not the report's cost: warm them once)

    from cpmosaic.viz.style import holoviews as _hv

    _hv()
    png, t_png = timed(lambda: build_report(m.verify_root, root / "report-png", interactive=False, progress=False))
    full, t_full = timed(lambda: build_report(m.verify_root, root / "report-full", progress=False))
    per_plot, n_base = baseline(df, args.baseline_plots, root / "baseline")
    n_heat_hist = sum(f.kind in ("heatmap", "histogram") for f in full.figures)
    n_amps = df[df["tier"] == "amp"].groupby(["detector", "amp"]).ngroups
    n_metrics = len({(f.calib_type, f.tier, f.metric) for f in full.figures if f.kind == "heatmap"})

    print(f"\nLSSTCam, {df['detector'].nunique() - (df['detector'] < 0).any()} detectors, {n_amps} amps, "
          f"{n_metrics} (calib type, metric) heat maps, {len(df):,} metric values "
          f"(synthesized in {t_synth:.1f} s, read in {t_load:.1f} s)\n")
    print("| what | figures | pages | time (s) | per figure (ms) |")
    print("|---|---:|---:|---:|---:|")
    print(f"| report, PNG + index (read included) | {len(png.figures)} | 0 | {t_png:.1f} | "
          f"{1000 * t_png / len(png.figures):.0f} |")
    print(f"| report, full: PNG + interactive pages | {len(full.figures)} | {len(full.pages)} | {t_full:.1f} | "
          f"{1000 * t_full / len(full.figures):.0f} |")
    for k in ("load", "evaluate", "png", "html", "index"):
        print(f"| &nbsp; full report: {k} | | | {full.timings.get(k, 0):.1f} | |")
    print(f"| baseline: hv.save standalone HTML per plot (measured on {n_base}) | {n_heat_hist} | {n_heat_hist} | "
          f"{per_plot * n_heat_hist:.1f} (extrapolated) | {1000 * per_plot:.0f} |")
    size = sum(p.stat().st_size for p in (root / "report-full").rglob("*") if p.is_file()) / 2**20
    base_size = sum(p.stat().st_size for p in (root / "baseline").glob("*.html")) / max(1, n_base) * n_heat_hist / 2**20
    print(f"\nreport directory {size:.0f} MB; the baseline's {n_heat_hist} standalone files would be "
          f"{base_size:.0f} MB")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
