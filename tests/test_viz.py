"""cpmosaic.viz: every view builds, renders with bokeh, saves as offline HTML and as a PNG
whose pixels put each amp where the camera says (+y up)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cpmosaic.camera import get_camera

hv = pytest.importorskip("holoviews")

from cpmosaic.viz import (  # noqa: E402
    ab_scatter, amp_geometry, amp_values, comparison_layout, difference_heatmap, difference_histogram,
    failures_table_html, focal_plane_heatmap, metric_histogram, metric_scatter, metric_trend, mosaic_explorer,
    mosaic_view, outliers_table_html, render_png, robust_range, save_html, save_png,
)
from cpmosaic.viz.save import CDN_MARKERS  # noqa: E402
from cpmosaic.viz.style import map_colors  # noqa: E402

HOT = ("R03_S12", "C14")          # off-centre, so a flipped or mirrored render puts it elsewhere
CORNER_HOT = ("R40_SG1", "C02")   # a guider in a rotated corner raft
MISSING = "R01_S00"


@pytest.fixture(scope="module")
def camera():
    return get_camera("LSSTCam")


@pytest.fixture(scope="module")
def tidy(camera):
    """Every LSSTCam amp, NOISE and CR_NOISE for two exposures on two days, one hot amp."""
    rng = np.random.default_rng(20261125)
    geo = amp_geometry(camera)
    rows = []
    for k, (exposure, day) in enumerate(((2026011500010, 20260115), (2026011600020, 20260116))):
        for metric, base in (("NOISE", 6.0), ("CR_NOISE", 6.2)):
            vendor = np.where(geo["physical_type"].str.startswith("E2V"), 0.5, 0.0)
            v = base + vendor + rng.normal(0, 0.2, len(geo))
            rows.append(pd.DataFrame({
                "instrument": "LSSTCam", "calib_type": "bias", "run": f"run{k}", "exposure": exposure,
                "day_obs": day, "mjd": 61000.0 + k, "detector": geo["detector"], "detector_name": geo["detector_name"],
                "amp": geo["amp"], "tier": "amp", "metric": metric, "value": v, "passed": True}))
    df = pd.concat(rows, ignore_index=True)
    df = df.astype({"exposure": "Int64", "day_obs": "Int64", "passed": "boolean"})
    for det, amp in (HOT, CORNER_HOT):
        sel = (df["detector_name"] == det) & (df["amp"] == amp) & (df["metric"] == "NOISE")
        df.loc[sel, "value"] = 60.0
        df.loc[sel, "passed"] = False
    return df[df["detector_name"] != MISSING].reset_index(drop=True)


def _center(camera, det, amp):
    d = camera[det]
    return d.box_center_mm(d.amp(amp).bbox)


# -- geometry and values -----------------------------------------------------------
def test_amp_geometry_matches_box_corners(camera):
    geo = amp_geometry(camera)
    assert len(geo) == sum(len(d.amplifiers) for d in camera) == 3216
    assert geo["axis_aligned"].all()
    for det, amp in (HOT, CORNER_HOT, ("R00_SW0", "C10")):
        row = geo[(geo.detector_name == det) & (geo.amp == amp)].iloc[0]
        c = camera[det].box_corners_mm(camera[det].amp(amp).bbox)
        assert np.allclose([row.x0, row.x1, row.y0, row.y1], [c[:, 0].min(), c[:, 0].max(), c[:, 1].min(), c[:, 1].max()])


def test_amp_values_median_missing_failing(tidy, camera):
    v = amp_values(tidy, "NOISE", camera=camera).set_index(["detector_name", "amp"])
    assert v.loc[HOT, "value"] == 60.0 and v.loc[HOT, "n"] == 2 and v.loc[HOT, "failed"]
    assert v.loc[(MISSING, "C10"), "value"] != v.loc[(MISSING, "C10"), "value"]  # NaN
    assert v["failed"].sum() == 2
    one = tidy[(tidy.metric == "NOISE") & (tidy.detector_name == "R22_S11") & (tidy.amp == "C00")]
    assert v.loc[("R22_S11", "C00"), "value"] == pytest.approx(one["value"].median())
    # a failures table instead of the passed column; detector-level rows fill their detector
    fails = pd.DataFrame({"detector": [camera["R22_S11"].id], "amp": ["C05"], "metric": ["NOISE"], "passed": [False]})
    v2 = amp_values(tidy, "NOISE", failing=fails).set_index(["detector_name", "amp"])
    assert v2["failed"].sum() == 1 and v2.loc[("R22_S11", "C05"), "failed"]
    det_rows = pd.DataFrame({"detector": [camera[MISSING].id], "amp": [""], "metric": ["NOISE"], "value": [3.0]})
    v3 = amp_values(pd.concat([tidy, det_rows]), "NOISE").set_index(["detector_name", "amp"])
    assert v3.loc[(MISSING, "C07"), "value"] == 3.0


def test_robust_range():
    rng = np.random.default_rng(1)
    a = np.append(rng.normal(10, 1, 5000), 1e6)
    lo, hi = robust_range(a)
    assert 5 < lo < 7 and 13 < hi < 15  # median +- 4 sigma_MAD, the outlier ignored
    llo, lhi = robust_range(10 ** rng.normal(0, 0.1, 1000), log=True)
    assert 0.39 < llo < 0.6 and 1.7 < lhi < 2.52  # 10**(+-4 * 0.1), clipped to the data


# -- heat map ------------------------------------------------------------------------
def test_heatmap_structure_and_bokeh(tidy):
    plot = focal_plane_heatmap(tidy, "NOISE", calib_type="bias")
    amps, missing = plot.Amps.I, plot.Missing.I
    assert isinstance(amps, hv.Rectangles) and len(amps) == 3200 and len(missing) == 16
    assert hasattr(plot, "Failing") and hasattr(plot, "RaftLabels") and hasattr(plot, "DetectorOutline")
    clim = hv.Store.lookup_options("bokeh", amps, "style").kwargs.get("clim") or \
        hv.Store.lookup_options("bokeh", amps, "plot").kwargs.get("clim")
    assert clim[1] < 10  # robust range: the hot amp saturates instead of flattening the map
    fig = hv.render(plot)
    from bokeh.models import ColorBar, HoverTool

    assert any(isinstance(t, HoverTool) for t in fig.tools)
    assert any(isinstance(r, ColorBar) for r in fig.right)
    adj = focal_plane_heatmap(tidy, "NOISE", side_histogram=True, log=True, labels="raft")
    assert isinstance(adj, hv.AdjointLayout) and isinstance(adj.right, hv.Histogram)


def test_heatmap_png_hot_amp_at_its_position(tidy, camera, tmp_path):
    plot = focal_plane_heatmap(tidy, "NOISE", calib_type="bias", labels="none", failing=False, width=640)
    r = save_png(plot, tmp_path / "heat.png", width=640)
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "heat.png").convert("RGB"))
    tr = r.panels[0]
    assert img.shape[1] == r.image.size[0] and tr.width == 640
    assert abs(tr.height - 640) < 10  # equal aspect: the focal plane is about square
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # not blank
    top = tuple(map_colors([1e9], (0, 1), "viridis")[0])
    for det, amp in (HOT, CORNER_HOT):
        px, py = tr.to_pixel(*_center(camera, det, amp))
        hot = img[int(py), int(px)]
        assert np.abs(hot.astype(int) - top).max() <= 2, (det, amp, hot)
        for other in ("C10", "C11"):  # neighbours in the same detector are ordinary
            ox, oy = tr.to_pixel(*_center(camera, det, other))
            assert np.abs(img[int(oy), int(ox)].astype(int) - hot).max() > 40
    # the hot amp is in the lower right quadrant (R03 is at y < 0, x > 0): +y is up in the PNG
    hx, hy = tr.to_pixel(*_center(camera, *HOT))
    assert hx > tr.left + tr.width / 2 and hy > tr.top + tr.height / 2
    mx, my = tr.to_pixel(*_center(camera, MISSING, "C10"))
    assert tuple(img[int(my), int(mx)]) == (200, 200, 200)  # missing amps are grey


def test_heatmap_rotated_detector_uses_polygons(camera, tmp_path):
    """A yaw that is not a multiple of 90 degrees: amps are true polygons, still placed right."""
    import dataclasses

    from cpmosaic.camera import Camera

    det = dataclasses.replace(camera["R22_S11"], yaw_deg=30.0)
    cam = Camera("tilted", (det,))
    df = pd.DataFrame({"detector": det.id, "amp": list(det.amp_names), "metric": "NOISE",
                       "value": np.where(np.array(det.amp_names) == "C07", 50.0, 5.0)})
    plot = focal_plane_heatmap(df, "NOISE", camera=cam, labels="none", clim=(0, 10))
    assert isinstance(plot.Amps.I, hv.Polygons) and len(plot.Amps.I.split()) == 16
    hv.render(plot)
    r = save_png(plot, tmp_path / "tilted.png", width=300)
    px, py = r.panels[0].to_pixel(*_center(cam, det.name, "C07"))
    assert tuple(np.asarray(r.image)[int(py), int(px)]) == tuple(map_colors([10.0], (0, 10), "viridis")[0])


def test_save_html_offline(tidy, tmp_path):
    plot = focal_plane_heatmap(tidy, "NOISE", side_histogram=True)
    text = save_html(plot, tmp_path / "heat.html").read_text()
    srcs = re.findall(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"([^\"]+)\"", text)
    assert srcs == [], srcs
    assert not any(m in s for s in srcs for m in CDN_MARKERS)
    assert "Bokeh" in text and len(text) > 500_000  # BokehJS inline


# -- distributions, history, comparison ------------------------------------------------
def test_histogram_thresholds_two_runs_png(tidy, tmp_path):
    a, b = tidy[tidy.run == "run0"], tidy[tidy.run == "run1"]
    plot = metric_histogram(a, "NOISE", df_b=b, labels=("run0", "run1"), thresholds={"max": 7.5}, log_y=True,
                            value_range=(5, 8))
    hists = [e for e in plot if isinstance(e, hv.Histogram)]
    assert len(hists) == 2 and sum(isinstance(e, hv.VLine) for e in plot) == 1
    counts = hists[0].dimension_values(1)
    assert counts.sum() == ((a.metric == "NOISE") & a.value.between(5, 8)).sum()
    hv.render(plot)
    r = save_png(plot, tmp_path / "hist.png")
    img = np.asarray(r.image)
    tr = r.panels[0]
    x, _ = tr.to_pixel(7.5, tr.ylim[0])
    column = img[tr.top + 5: tr.top + tr.height - 5, int(round(x))]
    assert (column[:, 0] > 180).any() and (column[:, 1] < 90).any()  # the red threshold line


def test_scatter_small_and_datashaded(tidy):
    sc = metric_scatter(tidy, "NOISE", "CR_NOISE", calib_type="bias")
    assert isinstance(sc, hv.Scatter) and len(sc) == 2 * 3200
    assert set(sc.dimension_values("physical_type")) >= {"E2V", "ITL"}
    hv.render(sc)
    shaded = metric_scatter(tidy, "NOISE", "CR_NOISE", color_by="detector_type", datashade_threshold=1000)
    assert isinstance(shaded.get(0), hv.RGB)
    r = render_png(shaded)
    assert len(np.unique(np.asarray(r.image).reshape(-1, 3), axis=0)) > 5


def test_trend_candles_amps_alerts(tidy, tmp_path):
    alerts = pd.DataFrame({"calib_type": ["bias"], "detector": [0], "detector_name": [HOT[0]], "amp": [HOT[1]],
                           "metric": ["NOISE"], "day_obs": [20260116], "kind": ["step"], "size": [50.0]})
    plot = metric_trend(tidy, "NOISE", calib_type="bias", amps=[f"{HOT[0]}/{HOT[1]}", "R22_S11 C00"], alerts=alerts)
    boxes = plot.Rectangles.I
    assert len(boxes) == 2
    assert plot.Scatter.Alert.dimension_values(1).tolist() == [60.0]
    assert len(plot.Curve) == 2
    hv.render(plot)
    save_png(plot, tmp_path / "trend.png")
    save_html(plot, tmp_path / "trend.html")


def test_comparison_views(tidy):
    a = tidy[(tidy.run == "run0") & (tidy.metric == "NOISE")]
    diff = a[["calib_type", "detector", "detector_name", "amp", "metric"]].assign(
        value_a=a["value"].to_numpy(), value_b=a["value"].to_numpy())
    diff["diff"] = diff["value_b"] - diff["value_a"]
    h = difference_histogram(diff, "NOISE")
    counts, edges = h.Histogram.I.dimension_values(1), h.Histogram.I.edges
    mid = np.flatnonzero((edges[:-1] < 0) & (edges[1:] > 0))
    assert counts[mid].tolist() == [len(diff)]  # identical runs: one spike at zero
    diff.loc[diff.index[:100], "value_b"] += 1.0
    diff["diff"] = diff["value_b"] - diff["value_a"]
    hm = difference_heatmap(diff, "NOISE")
    lo, hi = hv.Store.lookup_options("bokeh", hm.Amps.I, "plot").kwargs["clim"]
    assert lo == -hi and hi > 0
    sc = ab_scatter(diff, "NOISE")
    assert any(isinstance(e, hv.Slope) and e.slope == 1 for e in sc)
    layout = comparison_layout(diff, "NOISE")
    r = render_png(layout)
    assert len(r.panels) == 3


# -- mosaic ----------------------------------------------------------------------------
class _TinyStore:
    """The reading interface of MosaicStore over in-memory zarr arrays (two levels, y up)."""

    camera = "LSSTCam"

    def __init__(self):
        import zarr

        y, x = np.mgrid[0:64, 0:64].astype(np.float32)
        lvl0 = 100.0 + y  # brighter with focal-plane y
        lvl0[48:, 48:] = 5000.0  # a bright patch at +x, +y
        lvl0[:8, :8] = np.nan
        lvl1 = lvl0.reshape(32, 2, 32, 2).mean(axis=(1, 3))
        self.levels = []
        for a in (lvl0, lvl1):
            z = zarr.zeros(a.shape, dtype="float32", chunks=(16, 16))
            z[:] = a
            self.levels.append(z)
        self.n_levels = 2

    def extent_mm(self, k):
        return (-320.0, 320.0, -320.0, 320.0)

    def window(self, k):
        return None  # as MosaicStore.window for a store without a display window

    def read(self, k, y0=None, y1=None, x0=None, x1=None):
        return np.asarray(self.levels[k][y0:y1, x0:x1])


def test_mosaic_view_orientation_and_png(tidy, tmp_path):
    store = _TinyStore()
    view = mosaic_view(store, level=0, stretch="linear", width=64)
    img = view.Image.I
    assert img.bounds.lbrt() == (-320.0, -320.0, 320.0, 320.0)
    assert img[300, 300] == pytest.approx(1.0) and img[-300, 0] < 0.05  # patch at +x +y is brightest
    assert img[0, 310] > img[0, -200] > img[0, -310]  # brighter upward
    r = render_png(view, width=200)
    tr, a = r.panels[0], np.asarray(r.image).astype(int)
    tx, ty = tr.to_pixel(300, 300)
    bx, by = tr.to_pixel(300, -300)
    assert a[int(ty), int(tx)].sum() > 700 and a[int(by), int(bx)].sum() < a[int(ty), int(tx)].sum()
    for stretch in ("asinh", "log", "zscale", "percentile", "eq_hist", "sqrt"):
        assert mosaic_view(store, stretch=stretch, width=32).Image.I.range(2)[1] <= 1.0
    over = mosaic_view(store, overlay_df=tidy, metric="NOISE", alpha=0.3, width=32)
    groups = {e.group for e in over}
    assert "Amps" in groups and "Missing" not in groups
    hv.render(over)


def test_mosaic_view_of_a_built_store(tmp_path, camera):
    """A real MosaicStore (shrunk LSSTCam, three rafts): a bright detector lands on its own
    focal-plane position in the view, and the heat-map overlay shares the frame."""
    from astropy.io import fits

    from cpmosaic.camera import shrink_camera
    from cpmosaic.mosaic import build_mosaic

    small = shrink_camera(camera, 32)
    for det in small:
        if det.raft in ("R22", "R03", "R40"):
            img = np.full(det.shape, 1100.0 if det.name == HOT[0] else 100.0, np.float32)
            hdr = fits.Header({"DETNAME": det.name, "INSTRUME": "LSSTCam"})
            fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(img, name="IMAGE")]).writeto(
                tmp_path / f"img_{det.name}.fits")
    build_mosaic([tmp_path], tmp_path / "m.zarr", camera=small, binning=2, progress=False)
    view = mosaic_view(tmp_path / "m.zarr", stretch="linear", width=300)
    img = view.Image.I
    assert img[camera[HOT[0]].center_mm] == pytest.approx(1.0)
    assert img[camera["R22_S11"].center_mm] == pytest.approx(0.0)
    r = render_png(view)
    x, y = r.panels[0].to_pixel(*camera[HOT[0]].center_mm)
    assert np.asarray(r.image)[int(y), int(x)].min() > 240  # white where the bright CCD is


def test_mosaic_explorer_picks_level_from_zoom():
    store = _TinyStore()
    dmap = mosaic_explorer(store, width=30)
    full = dmap[()]
    assert full.dimension_values(2, flat=False).shape == (32, 32)  # whole mosaic, coarse level
    dmap.event(x_range=(0.0, 320.0), y_range=(0.0, 320.0))  # what a bokeh zoom sends
    zoom = dmap[()]
    assert zoom.dimension_values(2, flat=False).shape == (32, 32) and zoom.label == "level 0"
    assert zoom.bounds.lbrt() == (0.0, 0.0, 320.0, 320.0)


# -- tables, imports ---------------------------------------------------------------------
def test_tables_escaped_sortable():
    f = pd.DataFrame({"detector": [94, 3], "detector_name": ["R22_S11", "R01_S10"], "amp": ["C10", "<b>x</b>"],
                      "test": ["NOISE", "MEAN"], "value": [9.5, np.nan], "threshold": [8.0, 1.0],
                      "passed": pd.array([False, True], dtype="boolean")})
    assert "R01_S10" not in failures_table_html(f)  # passing rows left out by default
    html = failures_table_html(f, only_failed=False)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert 'data-type="num"' in html and "cpmSort" in html and 'class="fail"' in html
    assert not re.search(r"<script[^>]*src=", html)
    o = pd.DataFrame({"detector": [1, 2], "detector_name": ["a", "b"], "amp": ["C00", "C01"], "metric": "NOISE",
                      "value": [1.0, 2.0], "z": [3.0, -9.0], "reason": ["high", "low & weird"]})
    html = outliers_table_html(o)
    assert html.index(">b<") < html.index(">a<") and "low &amp; weird" in html


def test_views_of_the_metrics_modules_outputs(tidy):
    """evaluate / find_outliers / compare_metrics tables feed the views as they are."""
    metrics = pytest.importorskip("cpmosaic.metrics")
    results = metrics.evaluate(tidy)
    plot = focal_plane_heatmap(tidy, "NOISE", failing=results, labels="none")
    outlined = [e for e in plot if e.group == "Failing"]
    n_fail = results[(results["test"] == "NOISE") & (results["passed"] == False)]  # noqa: E712
    assert len(outlined) == 1 and len(n_fail.groupby(["detector", "amp"])) > 0
    assert "<table" in failures_table_html(results) and "<table" in outliers_table_html(metrics.find_outliers(tidy))
    a, b = tidy[tidy.run == "run0"], tidy[tidy.run == "run1"].assign(run="run0")
    diff = metrics.compare_metrics(a, b)
    assert len(render_png(comparison_layout(diff, "NOISE")).panels) == 3


def test_import_cpmosaic_does_not_load_plotting():
    code = ("import sys, cpmosaic, cpmosaic.cli, cpmosaic.viz; "
            "print(sorted(m for m in ('holoviews', 'bokeh', 'datashader', 'panel') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
