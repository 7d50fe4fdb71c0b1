"""Focal-plane heat maps of a full LSSTCam table: build + PNG + standalone HTML per metric.

A synthetic tidy table (every LSSTCam amp, 3,216 = 197 x 16 + 8 x 8, ``--metrics`` metrics,
2 exposures each so the per-amp median is exercised) is drawn with
``cpmosaic.viz.focal_plane_heatmap`` and saved with ``save_png`` (PIL rasteriser) and
``save_html`` (inline BokehJS).  In the same process, on the same table, two baselines:

* naive per-amp loop: for each amp a boolean filter of the table for its value and one
  bokeh ``patch`` glyph (3,216 glyph renderers), saved with ``file_html``; the PNG drawn
  with PIL one amp at a time, each amp filtered from the table again;
* ``hv.Polygons`` from a list of 3,216 per-amp dicts (HoloViews' polygon path), saved the
  same way.

Baselines run on ``--baseline-metrics`` metrics (slow) and are extrapolated to ``--metrics``.

    python benchmarks/bench_viz.py                 # 10 metrics
    python benchmarks/bench_viz.py --metrics 3 --baseline-metrics 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_table(n_metrics: int, seed: int) -> pd.DataFrame:
    from cpmosaic.camera import get_camera
    from cpmosaic.viz.heatmap import amp_geometry

    geo = amp_geometry(get_camera("LSSTCam"))
    rng = np.random.default_rng(seed)
    parts = []
    for m in range(n_metrics):
        for e in range(2):
            parts.append(pd.DataFrame({
                "instrument": "LSSTCam", "calib_type": "bias", "run": "r", "exposure": 2026011500000 + e,
                "day_obs": 20260115, "detector": geo["detector"], "detector_name": geo["detector_name"],
                "amp": geo["amp"], "metric": f"METRIC{m}", "value": rng.normal(10 + m, 1, len(geo)),
                "passed": True}))
    df = pd.concat(parts, ignore_index=True)
    df.loc[df.index[::997], "passed"] = False
    return df.astype({"passed": "boolean"})


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def cpmosaic_one(df, metric, out: Path) -> tuple[float, float, float]:
    from cpmosaic.viz import focal_plane_heatmap, save_html, save_png

    plot, t_build = timed(lambda: focal_plane_heatmap(df, metric))
    _, t_png = timed(lambda: save_png(plot, out / f"{metric}.png"))
    _, t_html = timed(lambda: save_html(plot, out / f"{metric}.html"))
    return t_build, t_png, t_html


def naive_one(df, metric, out: Path) -> tuple[float, float, float]:
    """One glyph / one filter per amp: what a first script does."""
    from bokeh.embed import file_html
    from bokeh.plotting import figure
    from bokeh.resources import INLINE
    from PIL import Image, ImageDraw

    from cpmosaic.camera import get_camera

    cam = get_camera("LSSTCam")
    sub = df[df["metric"] == metric]

    def amps():
        for det in cam:
            for amp in det.amplifiers:
                sel = sub[(sub["detector"] == det.id) & (sub["amp"] == amp.name)]
                yield det.box_corners_mm(amp.bbox), float(sel["value"].median())

    def build():
        vals = list(amps())
        v = np.array([x[1] for x in vals])
        lo, hi = np.nanpercentile(v, [1, 99])
        fig = figure(match_aspect=True, width=800, height=800, tools="hover,pan,wheel_zoom,reset")
        for c, val in vals:
            shade = int(255 * np.clip((val - lo) / (hi - lo), 0, 1))
            fig.patch(c[:, 0], c[:, 1], fill_color=(shade, 80, 255 - shade), line_color=None)
        return fig

    fig, t_build = timed(build)

    def png():
        img = Image.new("RGB", (800, 800), "white")
        d = ImageDraw.Draw(img)
        for c, val in amps():
            shade = int(255 * np.clip((val - 5) / 20, 0, 1))
            d.polygon([(400 + x * 1.15, 400 - y * 1.15) for x, y in c], fill=(shade, 80, 255 - shade))
        img.save(out / f"naive_{metric}.png")

    _, t_png = timed(png)
    _, t_html = timed(lambda: (out / f"naive_{metric}.html").write_text(file_html(fig, INLINE, "naive")))
    return t_build, t_png, t_html


def polygons_one(df, metric, out: Path) -> tuple[float, float, float]:
    import holoviews as hv

    from cpmosaic.viz import amp_values, save_html, save_png

    def build():
        t = amp_values(df, metric)
        polys = [{"x": r.xs, "y": r.ys, "value": r.value, "detector_name": r.detector_name, "amp": r.amp}
                 for r in t.itertuples()]
        return hv.Polygons(polys, vdims=["value", "detector_name", "amp"]).opts(
            color="value", cmap="viridis", colorbar=True, tools=["hover"], data_aspect=1, frame_width=700)

    plot, t_build = timed(build)
    _, t_png = timed(lambda: save_png(plot, out / f"poly_{metric}.png"))
    _, t_html = timed(lambda: save_html(plot, out / f"poly_{metric}.html"))
    return t_build, t_png, t_html


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", type=int, default=10)
    ap.add_argument("--baseline-metrics", type=int, default=1, help="metrics the slow baselines draw (extrapolated)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    _, t_import = timed(lambda: __import__("cpmosaic.viz.style", fromlist=["x"]).holoviews())
    df = make_table(args.metrics, args.seed)
    metrics = sorted(df["metric"].unique())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cpmosaic_one(df, metrics[0], out)  # warm caches (camera geometry, colormaps, bokeh models)
        for name, fn, n in (("cpmosaic.viz (Rectangles + PIL renderer)", cpmosaic_one, args.metrics),
                            ("hv.Polygons, list of per-amp dicts", polygons_one, args.baseline_metrics),
                            ("naive per-amp loop (filter + glyph per amp)", naive_one, args.baseline_metrics)):
            times = np.array([fn(df, m, out) for m in metrics[:n]])
            per = times.mean(axis=0)
            rows.append((name, n, *per, per.sum() * args.metrics, n < args.metrics))
        sizes = {p.suffix: p.stat().st_size for p in out.glob(f"{metrics[0]}.*")}

    print(f"\nLSSTCam heat maps: {df.groupby('metric').size().iloc[0] // 2} amps x {args.metrics} metrics "
          f"(2 exposures each); holoviews+bokeh import {t_import:.2f} s (not included)\n")
    print("| method | metrics run | build s/metric | PNG s/metric | HTML s/metric | total for "
          f"{args.metrics} metrics (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, b, p, h, total, extrap in rows:
        print(f"| {name} | {n} | {b:.3f} | {p:.3f} | {h:.3f} | {total:.1f}{' (extrapolated)' if extrap else ''} |")
    base = rows[0][5]
    print(f"\nspeed-up vs naive: {rows[2][5] / base:.0f}x; vs hv.Polygons: {rows[1][5] / base:.0f}x. "
          f"Files: PNG {sizes.get('.png', 0) / 1e3:.0f} kB, HTML {sizes.get('.html', 0) / 1e6:.2f} MB (inline BokehJS).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
