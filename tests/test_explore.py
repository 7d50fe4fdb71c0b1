"""The explorer without a browser: level and window choice, amp hit tests, URL state, linked panels.

References are independent of the code under test: the OME-Zarr transforms read from the
store's own metadata, the zarr arrays read directly, the camera's pixel transforms, Panel's
own ``Location`` object, and plain pandas on the metrics table.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from cpmosaic.camera import get_camera
from cpmosaic.viz.amp_pick import amp_key, amps_in_range
from cpmosaic.viz.explore_state import QUERY_KEYS, ExploreState, describe, from_query, to_query
from cpmosaic.viz.heatmap import amp_geometry
from cpmosaic.viz.viewport import level_for_view, plan_view, read_view, window_for_view



# -- level choice and window read --------------------------------------------------------------

def _transforms(store):
    """(scale, translation) per level in um, straight from the OME metadata."""
    out = []
    for ds in store.group.attrs.asdict()["ome"]["multiscales"][0]["datasets"]:
        t = {c["type"]: c for c in ds["coordinateTransformations"]}
        out.append((t["scale"]["scale"], t.get("translation", {}).get("translation", [0.0, 0.0])))
    return out


def _expected_window(store, k, x_range, y_range):
    """Rows/cols whose pixel (centre +- half a pixel) overlaps the range, by brute force."""
    (sy, sx), (ty, tx) = _transforms(store)[k]
    h, w = store.levels[k].shape
    cx = (tx + sx * np.arange(w)) / 1000.0
    cy = (ty + sy * np.arange(h)) / 1000.0
    cols = np.flatnonzero((cx + sx / 2000.0 > x_range[0]) & (cx - sx / 2000.0 < x_range[1]))
    rows = np.flatnonzero((cy + sy / 2000.0 > y_range[0]) & (cy - sy / 2000.0 < y_range[1]))
    return (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)


@pytest.fixture(scope="module")
def store(explore_demo):
    from cpmosaic.mosaic import open_mosaic

    return open_mosaic(explore_demo.mosaics["bias"])


def test_level_and_window_for_three_zooms(store):
    tr = _transforms(store)
    pixel_mm = [max(abs(s[0]), abs(s[1])) / 1000.0 for s, _ in tr]
    assert len(pixel_mm) >= 3, "the demo store needs at least 3 levels"
    # three zooms around R22_S11 on a 200 x 160 screen: spans of 1.5 pixels of levels 2, 1 and 0 per
    # screen pixel (the synthetic detectors are 16 times smaller, so the store is small too)
    (sy, sx), (ty, tx) = tr[0]
    h, w = store.levels[0].shape
    x_all = ((tx - sx / 2) / 1000.0, (tx + sx * (w - 0.5)) / 1000.0)
    y_all = ((ty - sy / 2) / 1000.0, (ty + sy * (h - 0.5)) / 1000.0)
    cx, cy = get_camera("LSSTCam")["R22_S11"].center_mm
    W, H = 200, 160
    zooms = []
    for k in (2, 1, 0):
        half = 1.5 * pixel_mm[k] * W / 2
        zooms.append(((cx - half, cx + half), (cy - half * H / W, cy + half * H / W)))
    levels = []
    for xr, yr in zooms:
        screen = max((xr[1] - xr[0]) / W, (yr[1] - yr[0]) / H)
        fits = [k for k, p in enumerate(pixel_mm) if p <= screen]
        expected_level = max(fits) if fits else 0
        win, data = read_view(store, xr, yr, W, H)
        assert win.level == expected_level == level_for_view(store, xr, yr, W, H)
        rows, cols = _expected_window(store, win.level, xr, yr)
        assert (win.rows, win.cols) == (rows, cols)
        np.testing.assert_array_equal(data, np.asarray(store.levels[win.level][rows[0]:rows[1], cols[0]:cols[1]]))
        # the window's edges lie within half a pixel of the requested range (or the mosaic's edge)
        x0, y0, x1, y1 = win.bounds_mm
        assert x0 <= max(xr[0], x_all[0]) + 1e-9 and x1 >= min(xr[1], x_all[1]) - 1e-9
        assert y0 <= max(yr[0], y_all[0]) + 1e-9 and y1 >= min(yr[1], y_all[1]) - 1e-9
        # and at most one pixel beyond it on each side
        px = pixel_mm[win.level]
        assert x0 > min(max(xr[0], x_all[0]) - px, x_all[0]) - 1e-9
        assert x1 < max(min(xr[1], x_all[1]) + px, x_all[1]) + 1e-9
        # at most about twice the screen's pixels are read
        assert win.shape[1] <= 2 * W + 2 and win.shape[0] <= 2 * H + 2
        levels.append(win.level)
    assert levels == [2, 1, 0]


def test_window_off_the_mosaic_is_empty_and_bad_screens_refused(store):
    win = window_for_view(store, 0, (5000.0, 5100.0), (5000.0, 5100.0))
    assert win.empty
    win, data = read_view(store, (5000.0, 5100.0), (5000.0, 5100.0), 100, 100)
    assert win.empty and data.size == 0
    with pytest.raises(ValueError, match="screen size"):
        plan_view(store, (0, 1), (0, 1), 0, 100)
    with pytest.raises(ValueError, match="empty focal-plane range"):
        plan_view(store, (1, 1), (0, 1), 100, 100)


# -- amp hit testing ----------------------------------------------------------------------------

def _amp_by_pixels(cam, x, y):
    """(detector, amp) holding focal-plane (x, y) by the camera's own pixel transforms."""
    for det in cam:
        px, py = (float(v) for v in det.focal_plane_to_pixel(x, y))
        for amp in det.amplifiers:
            b = amp.bbox
            if b.x0 - 0.5 <= px < b.x1 - 0.5 and b.y0 - 0.5 <= py < b.y1 - 0.5:
                return det.name, amp.name
    return None


@pytest.mark.parametrize("camera_name", ["LSSTCam", "LSSTComCam"])
def test_amp_hit_testing_matches_the_camera(camera_name, rng):
    cam = get_camera(camera_name)
    geo = amp_geometry(cam)
    x0, x1, y0, y1 = cam.extent_mm
    pts = np.column_stack([rng.uniform(x0, x1, 400), rng.uniform(y0, y1, 400)])
    # and every 17th amp's centre, from the camera (corner rafts included)
    centres = [det.box_center_mm(a.bbox) for det in cam for a in det.amplifiers][::17]
    found = 0
    for x, y in list(map(tuple, pts)) + centres:
        expected = _amp_by_pixels(cam, x, y)
        assert amp_key(geo, x, y) == expected, (x, y)
        found += expected is not None
    assert found > len(centres)  # not only misses
    assert amp_key(geo, float("nan"), 0.0) is None


def test_amps_in_range_matches_a_plain_filter(rng):
    t = pd.DataFrame({"amp": [f"C{i:02d}" for i in range(50)], "value": rng.normal(5, 1, 50)})
    t.loc[3, "value"] = np.nan
    got = amps_in_range(t, 4.5, 5.5)["amp"].tolist()
    assert got == [a for a, v in zip(t["amp"], t["value"]) if 4.5 <= v <= 5.5]


# -- URL state ------------------------------------------------------------------------------------

def test_url_state_round_trip():
    s = ExploreState(calib_type="bias", run="u/cpv/verifyBias.20251124a", day="2025-11-24", metric="NOISE",
                     detector="R22_S11", amp="C07")
    q = to_query(s)
    assert "det=R22_S11" in q and "amp=C07" in q and "day=2025-11-24" in q and "run=u%2Fcpv" in q
    assert from_query("?" + q) == s
    assert from_query(q + "&zoom=3") == s  # unknown keys ignored
    assert from_query("day=20251124").day == "2025-11-24"
    assert from_query({"metric": ["MEAN"]}).metric == "MEAN"
    assert describe(s) == "R22_S11 C07 NOISE on 2025-11-24 (bias)"
    with pytest.raises(ValueError, match="not a day"):
        from_query("day=yesterday")


def test_panel_location_syncs_the_explorer(explore_metrics):
    from panel.io.location import Location

    from cpmosaic.viz.explorer import ExploreSources, Explorer

    app = Explorer(ExploreSources(explore_metrics))
    loc = Location(search="?calib=bias&day=2025-11-19&metric=MEAN&det=R22_S11&amp=C07")
    failed = []
    loc.sync(app, QUERY_KEYS, on_error=failed.append)  # Panel swallows a watcher's error: record it
    assert failed == []
    assert (app.calib_type, app.day, app.metric, app.detector, app.amp) == (
        "bias", "2025-11-19", "MEAN", "R22_S11", "C07")
    assert 'data-amp="C07"' in app.table_pane.object and "MEAN" in app.table_pane.object
    app.select_amp("R22_S12", "C10")
    assert from_query(loc.search).detector == "R22_S12" and from_query(loc.search).amp == "C10"
    assert from_query(loc.search).day == "2025-11-19"


# -- linked panels in-process -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(explore_demo):
    from cpmosaic.viz import explore

    return explore(explore_demo.manifest.verify_root, mosaic_stores=[explore_demo.mosaics["bias"]],
                   history=explore_demo.history, calib_type="bias", metric="NOISE")


def test_tap_selects_the_amp_and_the_panels_follow(app, explore_metrics, store, explore_demo):
    cam = get_camera("LSSTCam")
    det = cam["R22_S12"]
    amp = det.amp("C03")
    x, y = det.box_center_mm(amp.bbox)
    assert app.tap_heatmap(x, y) == ("R22_S12", "C03")
    assert (app.detector, app.amp) == ("R22_S12", "C03")
    html = app.table_pane.object
    assert 'data-detector="R22_S12"' in html and 'data-amp="C03"' in html
    # the table's NOISE value is the amp's value in the metrics table (plain pandas)
    df = explore_metrics
    day = int(app.day.replace("-", ""))
    rows = df[(df.calib_type == "bias") & (df.day_obs == day) & (df.detector_name == "R22_S12") & (df.amp == "C03")
              & (df.metric == "NOISE")]
    assert len(rows) >= 1
    assert f"{rows['value'].iloc[0]:.4g}" in html
    # the cut-out is the amp's level-0 pixels: its centre maps back into the amp
    from cpmosaic.viz.explorer import amp_cutout

    win, data = amp_cutout(store, "R22_S12", "C03")
    assert win.level == 0 and data.shape == win.shape
    (sy, sx), (ty, tx) = _transforms(store)[0]
    mid_x = (tx + sx * (win.cols[0] + win.cols[1] - 1) / 2) / 1000.0
    mid_y = (ty + sy * (win.rows[0] + win.rows[1] - 1) / 2) / 1000.0
    assert _amp_by_pixels(cam, mid_x, mid_y) == ("R22_S12", "C03")
    small = explore_demo.manifest.load_camera()["R22_S12"].amp("C03").bbox  # the synthetic, smaller pixels
    expected_px = (small.width // store.binning) * (small.height // store.binning)
    assert abs(data.size - expected_px) <= data.shape[0] + data.shape[1]
    # the history panel draws this amp's own series: its nightly values in the history store
    from cpmosaic.metrics.history import HistoryStore

    h = pd.read_parquet(explore_demo.history)
    h = h[(h["calib_type"] == "bias") & (h["metric"] == "NOISE") & (h["detector_name"] == "R22_S12")
          & (h["amp"] == "C03")]
    expected = h.groupby("day_obs")["value"].median()
    series = app.links.series  # what the history figure's selected-amp line draws
    np.testing.assert_allclose(series["value"], expected.to_numpy())
    assert list(series["date"]) == list(pd.to_datetime(expected.index.astype(str), format="%Y%m%d"))
    assert len(expected) == len(HistoryStore(explore_demo.history).days("bias"))
    # the cut-out panel shows those pixels (8-bit, y up), placed on the amp's focal-plane box
    cut = app.links.cutout
    x0, y0, x1, y1 = win.bounds_mm
    assert (cut["x"][0], cut["y"][0], cut["dw"][0], cut["dh"][0]) == pytest.approx((x0, y0, x1 - x0, y1 - y0))
    assert cut["image"][0].shape == data.shape and cut["image"][0].dtype == np.uint8
    # zscale-stretched: the brightest pixel row of the data is the brightest of the image, flipped
    assert int(np.argmax(data.mean(axis=1))) == data.shape[0] - 1 - int(np.argmax(cut["image"][0].mean(axis=1)))
    # the selected-amp outline is the camera's amp box, closed
    ox, oy = app.links.outline["x"], app.links.outline["y"]
    box = det.amp("C03").bbox
    cx, cy = det.pixel_to_focal_plane(np.array([box.x0, box.x0 + box.width]) - 0.5,
                                      np.array([box.y0, box.y0 + box.height]) - 0.5)
    corners = np.column_stack([cx, cy])
    assert np.nanmin(ox) == pytest.approx(corners[:, 0].min(), abs=0.02)
    assert np.nanmax(oy) == pytest.approx(corners[:, 1].max(), abs=0.02)
    # a tap off the focal plane changes nothing
    assert app.tap_heatmap(4000.0, 4000.0) is None and app.amp == "C03"


def test_histogram_range_highlights_the_right_amps(app, explore_metrics):
    app.param.update(calib_type="bias", metric="NOISE")
    df = explore_metrics
    day = int(app.day.replace("-", ""))
    sub = df[(df.calib_type == "bias") & (df.day_obs == day) & (df.metric == "NOISE") & (df.amp != "")]
    med = sub.groupby(["detector_name", "amp"])["value"].median()
    lo, hi = float(med.quantile(0.25)), float(med.quantile(0.75))
    app.hist_bounds.event(boundsx=(lo, hi))  # what a box selection on the histogram sends
    got = set(zip(app.highlighted()["detector_name"], app.highlighted()["amp"]))
    assert got == {k for k, v in med.items() if lo <= v <= hi}
    assert 0 < len(got) < len(med)
    # the heat map's and the mosaic's highlight layers outline exactly those amps
    path = app._mark_highlight()
    assert path.group == "Highlighted"
    assert f"{len(got)} amps with NOISE" in app.highlight_pane.object
    assert np.isnan(path.array()[:, 0]).sum() == len(got)
    app.select_range(None, None)
    assert app.highlighted().empty


def test_zoom_reads_the_matching_level(app, store):
    app.calib_type = "bias"
    x0, x1, y0, y1 = get_camera("LSSTCam")["R22_S11"].extent_mm
    win, disp = app.view_image((x0, x1), (y0, y1), width=500, height=500)
    assert win.level == level_for_view(store, (x0, x1), (y0, y1), 500, 500)
    assert disp.shape[0] <= 500 and disp.shape[1] <= 500
    assert np.nanmin(disp) >= 0 and np.nanmax(disp) <= 1
    n = len(app.reads)
    app.view_image((x0, (x0 + x1) / 2), (y0, (y0 + y1) / 2))
    assert len(app.reads) == n + 1 and app.reads[-1].level <= win.level


def test_unknown_selection_is_refused(explore_demo):
    from cpmosaic.viz import explore

    with pytest.raises(TypeError, match="unknown selection"):
        explore(explore_demo.manifest.verify_root, colour="red")


def test_cli_refuses_bad_input_with_a_clear_error(tmp_path, caplog):
    from cpmosaic.cli.main import main

    missing = tmp_path / "no-such-dir"
    assert main(["explore", str(missing)]) == 1
    assert str(missing) in caplog.text and "no such file" in caplog.text
    caplog.clear()
    assert main(["explore", str(tmp_path), "--port", "0"]) == 1
    assert "--port must be 1..65535" in caplog.text
    with pytest.raises(SystemExit) as exc:  # argparse: usage error
        main(["explore"])
    assert exc.value.code == 2
