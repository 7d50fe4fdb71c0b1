"""The display layer against its libraries, and one store's colours in png, tiles and notebook.

References are computed here, independently of :mod:`cpmosaic.viz.display`: intervals and
stretches with ``astropy.visualization`` (and ``astropy.stats.mad_std``), eq_hist with
datashader's ``eq_hist`` or the sample's empirical CDF, colours from the raw colour lists of
colorcet and bokeh, quantised by hand as ``floor(v * 256)``.  A pixel matches when its
colour is the expected one or a neighbouring level's (one quantisation level: float32
against float64 arithmetic may cross a level edge).
"""

from __future__ import annotations

import io
from pathlib import Path

import colorcet
import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import mad_std
from astropy.visualization import (AsinhStretch, LinearStretch, LogStretch, MinMaxInterval, PercentileInterval,
                                   SqrtStretch, ZScaleInterval)
from bokeh.palettes import Magma256, Viridis256
from PIL import Image

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.mosaic import build_mosaic, open_mosaic
from cpmosaic.viz import display

#: The stretch each name applies on [0, 1], as astropy defines it (``a`` as documented).
ASTROPY_STRETCH = {"linear": LinearStretch(), "sqrt": SqrtStretch(), "log": LogStretch(a=1000.0),
                   "asinh": AsinhStretch(a=0.1), "zscale": LinearStretch(), "percentile": LinearStretch()}
RAFTS = ("R01", "R10", "R22", "R43")


def hex_table(colours: list[str]) -> np.ndarray:
    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours], dtype=np.int16)


#: Raw colour lists, not the implementation's tables.
RAW = {"fire": hex_table(list(colorcet.fire)), "viridis": hex_table(list(Viridis256)),
       "gray": np.repeat(np.arange(256, dtype=np.int16)[:, None], 3, axis=1)}


def level(v: np.ndarray) -> np.ndarray:
    """Hand quantisation of display values: floor(v * 256), 1.0 in the top level."""
    return np.minimum(np.floor(np.clip(v, 0.0, 1.0) * 256), 255).astype(int)


def assert_colours(rgb: np.ndarray, want_level: np.ndarray, cmap: str) -> np.ndarray:
    """Each colour is the table's at the expected level or one level either side; returns
    the level each colour was found at."""
    table = RAW[cmap]
    rgb = rgb[..., :3].astype(np.int16)
    found = np.full(want_level.shape, -999)
    for d in (1, -1, 0):  # the expected level last: it wins where neighbours share a colour
        at = np.clip(want_level + d, 0, 255)
        found = np.where((table[at] == rgb).all(axis=-1), at, found)
    bad = found == -999
    assert not bad.any(), f"{bad.sum()} of {bad.size} colours off by more than one level"
    return found


# -- intervals and stretches against astropy / datashader -------------------------------------
@pytest.fixture
def sample(rng) -> np.ndarray:
    a = rng.lognormal(3.0, 1.0, 100_000)
    a[::997] = np.nan
    return a


def test_intervals_match_astropy(sample):
    finite = sample[np.isfinite(sample)]
    assert display.interval_limits("minmax", sample) == pytest.approx(MinMaxInterval().get_limits(finite), rel=0)
    assert display.interval_limits("percentile", sample) == pytest.approx(
        PercentileInterval(99.0).get_limits(finite), rel=1e-12)
    assert display.interval_limits("zscale", sample) == pytest.approx(ZScaleInterval().get_limits(finite), rel=1e-12)
    med, sig = np.median(finite), mad_std(finite)
    want = (max(med - 5 * sig, finite.min()), min(med + 5 * sig, finite.max()))
    assert display.interval_limits("mad", sample) == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError, match="zscale"):
        display.interval_limits("nope", sample)


def test_constant_and_empty_samples_give_a_range():
    lo, hi = display.interval_limits("zscale", np.full(50, 7.0))
    assert lo < 7.0 < hi
    assert display.interval_limits("percentile", [np.nan]) == (0.0, 1.0)


@pytest.mark.parametrize("name", sorted(ASTROPY_STRETCH))
def test_stretch_and_inverse_match_astropy(name, sample):
    lo, hi = 5.0, 120.0
    norm = display.fit(name, sample, limits=(lo, hi))
    ref = ASTROPY_STRETCH[name]
    x = np.clip((sample - lo) / (hi - lo), 0, 1)
    want = ref(x)
    got = norm(sample.astype(np.float32))
    assert np.array_equal(np.isnan(got), np.isnan(sample))
    np.testing.assert_allclose(got[np.isfinite(sample)], want[np.isfinite(sample)], atol=2e-6)
    y = np.linspace(0, 1, 11)
    np.testing.assert_allclose(norm.inverse(y), lo + ref.inverse(y) * (hi - lo), rtol=1e-6, atol=1e-9)


def test_eq_hist_matches_datashader(sample):
    from datashader.transfer_functions import eq_hist

    finite = sample[np.isfinite(sample)]
    norm = display.fit("eq_hist", sample)
    want = eq_hist(finite)[0]  # datashader: CDF at 65,536 histogram bin centres
    got = norm(finite)
    assert np.abs(level(got) - level(want)).max() <= 1
    assert np.abs(got - want).max() < 1.0 / 256
    # display values back to data: the inverse is the sample's quantile function
    np.testing.assert_allclose(norm.inverse([0.25, 0.5, 0.75]), np.quantile(finite, [0.25, 0.5, 0.75]), rtol=2e-3)


def test_quantisation_and_colour_tables():
    v = np.array([0.0, 0.5 / 256, 1.0 / 256, 0.5, 1.0 - 1e-7, 1.0, np.nan], np.float32)
    rgba = display.to_rgba(v, display.colormap_lut("fire"))
    finite = np.isfinite(v)
    assert_colours(rgba[finite], level(v[finite].astype(float)), "fire")
    assert display.quantize(v[:6]).tolist() == [0, 0, 1, 128, 255, 255]
    assert rgba[~finite].tolist() == [[0, 0, 0, 0]]
    assert np.array_equal(display.colormap_lut("viridis")[:, :3], RAW["viridis"])
    assert display.palette("fire") == [c.lower() for c in colorcet.fire]
    with pytest.raises(ValueError, match="unknown colour map 'nope'"):
        display.colormap_lut("nope")


def test_one_list_of_stretch_names():
    from cpmosaic.cli.main import build_parser
    from cpmosaic.serve.tiles import parse_style

    png = next(a for a in build_parser()._subparsers._group_actions[0].choices["png"]._actions
               if a.dest == "stretch")
    assert tuple(png.choices) == display.STRETCHES
    for name in display.STRETCHES:  # the server accepts every name, sqrt included
        assert parse_style({"stretch": [name]}).stretch == name


# -- one store: png, tiles and notebook agree ---------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    cam = shrink_camera(get_camera("LSSTCam"), 32)
    d = tmp_path_factory.mktemp("display_in")
    rng = np.random.default_rng(3)
    for det in cam:
        if det.raft in RAFTS:
            h, w = det.shape
            y, x = np.mgrid[0:h, 0:w]
            img = (det.id * 1000 + x + 10 * y + rng.exponential(400.0, (h, w))).astype(np.float32)
            hdr = fits.Header({"DETNAME": det.name, "INSTRUME": "LSSTCam"})
            fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(img, name="IMAGE")]).writeto(
                d / f"img_{det.name}.fits")
    out = tmp_path_factory.mktemp("display_store") / "visit.zarr"
    build_mosaic([d], out, camera=cam, binning=2, chunk=64, shard=(128, 128), progress=False)
    return out


def reference_levels(m, stretch: str, values: np.ndarray) -> np.ndarray:
    """Expected colour levels of level values for a stretch, fitted as documented:
    the store's level-0 window (linear, sqrt, log, asinh) or the coarsest level."""
    coarse = m.read(m.n_levels - 1)
    coarse = coarse[np.isfinite(coarse)].astype(np.float64)
    if stretch == "eq_hist":  # the coarse level's empirical CDF
        return level(np.searchsorted(np.sort(coarse), values, side="right") / coarse.size)
    if stretch == "zscale":
        lo, hi = ZScaleInterval().get_limits(coarse)
    elif stretch == "percentile":
        lo, hi = PercentileInterval(99.0).get_limits(coarse)
    else:
        w = m.attrs["windows"][0]
        lo, hi = w["start"], w["end"]
    return level(ASTROPY_STRETCH[stretch](np.clip((values - lo) / (hi - lo), 0, 1)))


def tile_pixels(m, k: int, rows: np.ndarray, cols: np.ndarray, style) -> np.ndarray:
    """RGBA of level-k pixels (rows from the bottom) from the XYZ tiles at zoom maxzoom - k."""
    from cpmosaic.serve.tiles import StoreStyleCache, TileGrid, render_tile

    grid, styles = TileGrid.for_store(m), StoreStyleCache(m)
    z, u = grid.maxzoom - k, 2**k
    span = 256 * u
    wy = grid.world - 1 - (rows * u + grid.offset_y)  # level-0 row from the world's top
    wx = cols * u + grid.offset_x
    out = np.zeros((rows.size, 4), np.uint8)
    cache: dict = {}
    for n, (ty, tx) in enumerate(zip(wy // span, wx // span)):
        if (tx, ty) not in cache:
            png = render_tile(m, grid, styles, z, int(tx), int(ty), style=style)
            cache[tx, ty] = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
        out[n] = cache[tx, ty][(wy[n] % span) // u, (wx[n] % span) // u]
    return out


@pytest.mark.parametrize("stretch", display.STRETCHES)
def test_every_tile_stretch_against_reference(store, stretch):
    from cpmosaic.serve.tiles import Style

    m, k = open_mosaic(store), 0
    a = m.read(k)
    rng = np.random.default_rng(11)
    rows, cols = np.nonzero(np.isfinite(a))
    pick = rng.choice(rows.size, 400, replace=False)
    rows, cols = rows[pick], cols[pick]
    cmap = "gray" if stretch == "eq_hist" else "fire"
    got = tile_pixels(m, k, rows, cols, Style(stretch=stretch, colormap=cmap))
    assert (got[:, 3] == 255).all()
    assert_colours(got, reference_levels(m, stretch, a[rows, cols].astype(np.float64)), cmap)
    # outside the detectors: transparent
    nan_r, nan_c = np.nonzero(~np.isfinite(a))
    assert (tile_pixels(m, k, nan_r[:50], nan_c[:50], Style(stretch=stretch))[:, 3] == 0).all()


def test_png_tile_and_notebook_agree(store, tmp_path):
    """One store, one style (asinh, fire): the same colour at the same focal-plane positions."""
    from cpmosaic.cli.main import main
    from cpmosaic.serve.tiles import Style
    from cpmosaic.viz import mosaic_view, save_png

    m = open_mosaic(store)
    k = 1
    h, w = m.shape(k)
    a = m.read(k)
    x0, x1, y0, y1 = m.extent_mm(k)
    px, py = (x1 - x0) / w, (y1 - y0) / h
    rng = np.random.default_rng(5)
    rows, cols = np.nonzero(np.isfinite(a))
    pick = rng.choice(rows.size, 300, replace=False)
    rows, cols = rows[pick], cols[pick]
    xmm, ymm = x0 + (cols + 0.5) * px, y0 + (rows + 0.5) * py  # focal-plane positions
    want = reference_levels(m, "asinh", a[rows, cols].astype(np.float64))

    out = tmp_path / "m.png"
    assert main(["png", str(store), "-o", str(out), "--level", str(k), "--stretch", "asinh", "--cmap", "fire"]) == 0
    png = np.asarray(Image.open(out).convert("RGBA"))
    assert png.shape[:2] == (h, w)
    # the PNG's row 0 is the top (+y up); a focal-plane position's pixel from its mm
    prow = (h - 1 - np.floor((ymm - y0) / py)).astype(int)
    pcol = np.floor((xmm - x0) / px).astype(int)
    from_png = png[prow, pcol]
    assert (from_png[:, 3] == 255).all()
    lv_png = assert_colours(from_png, want, "fire")

    from_tiles = tile_pixels(m, k, rows, cols, Style(stretch="asinh", colormap="fire"))
    assert_colours(from_tiles, want, "fire")
    assert np.array_equal(from_tiles, from_png)

    view = mosaic_view(store, level=k, stretch="asinh", cmap="fire", width=w)
    img = view.Image.I
    values = np.array([img[x, y] for x, y in zip(xmm, ymm)], dtype=float)
    palette = img.opts.get("style").kwargs["cmap"]
    assert_colours(hex_table([palette[i] for i in level(values)]), want, "fire")  # what bokeh draws
    render = save_png(view, tmp_path / "view.png", width=w)
    tr = render.panels[0]
    cx, cy = tr.to_pixel(xmm, ymm)
    shown = np.asarray(render.image)[np.floor(cy).astype(int), np.floor(cx).astype(int)]
    lv_notebook = assert_colours(shown, want, "fire")
    assert np.abs(lv_notebook - lv_png).max() <= 1  # the same colour within one level


def test_too_large_render_is_a_library_error_with_cli_advice(store, tmp_path, monkeypatch, capsys):
    """The library says what is wrong in Python terms; ``cpmosaic png`` adds its flags and exits 2."""
    from cpmosaic.cli.main import main
    from cpmosaic.viz import render

    m = open_mosaic(store)
    h, w = m.shape(0)
    monkeypatch.setattr(render, "MAX_RENDER_PIXELS", h * w - 1)
    with pytest.raises(render.TooLargeToRender, match="choose a coarser level or a smaller width") as info:
        render.render_rgba(m, level=0)
    assert "--" not in str(info.value) and (info.value.level, info.value.width, info.value.height) == (0, w, h)
    assert main(["png", str(store), "-o", str(tmp_path / "a.png"), "--level", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{w} x {h}" in err and "--level" in err and "--width" in err
    assert main(["png", str(store), "-o", str(tmp_path / "b.png"), "--level", "1"]) == 0  # a coarser level fits


def test_colour_bar_labels_are_inverse_stretched(store):
    from cpmosaic.viz import mosaic_view

    view = mosaic_view(store, level=1, stretch="log", width=200)
    opts = view.Image.I.opts.get("plot").kwargs["colorbar_opts"]
    m = open_mosaic(store)
    w = m.attrs["windows"][0]
    ref = LogStretch(a=1000.0)
    for pos, label in opts["major_label_overrides"].items():
        data = w["start"] + ref.inverse(np.array([pos]))[0] * (w["end"] - w["start"])
        assert float(label) == pytest.approx(data, rel=1e-3, abs=1e-4 * (w["end"] - w["start"]))
    assert len(opts["major_label_overrides"]) >= 3


def test_display_imports_nothing_heavy():
    """The CLI and the tile server import the display layer: no plotting library at import."""
    import subprocess
    import sys

    for module in ("cpmosaic.viz.display", "cpmosaic.serve.tiles", "cpmosaic.cli.cmd_png"):
        res = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                             capture_output=True, text=True, check=True)
        loaded = {line.split("|")[-1].strip().split(".")[0] for line in res.stderr.splitlines() if "|" in line}
        assert "cpmosaic" in loaded  # the report is read right
        assert not loaded & {"holoviews", "bokeh", "datashader", "astropy", "colorcet", "panel"}, module


@pytest.mark.parametrize("name", ["gray", "viridis", "fire", "coolwarm", "magma"])
def test_heat_map_html_and_png_colour_from_the_display_tables(name, tmp_path):
    """The heat map's bokeh colour mapper holds the display layer's table for the name (gray:
    the exact ramp, not HoloViews' perceptual gray), and an amp of known value gets the raw
    colour list's entry at its hand-quantised level in bokeh and in the PNG rasteriser."""
    import holoviews as hv
    import pandas as pd
    from bokeh.core.property.vectorization import Field
    from bokeh.models import ColorBar, GlyphRenderer, Quad

    from cpmosaic.viz import focal_plane_heatmap, save_png

    raw = {**RAW, "coolwarm": hex_table(list(colorcet.coolwarm)), "magma": hex_table(list(Magma256))}[name]
    raw_hex = ["#%02x%02x%02x" % tuple(int(c) for c in row) for row in raw]
    cam = get_camera("LSSTCam")
    amps = [("R22_S11", "C10"), ("R03_S12", "C14"), ("R30_S01", "C03"), ("R14_S20", "C17")]
    values = np.array([10.5, 76.5, 200.5, 255.5]) / 256  # mid-level: float rounding cannot cross an edge
    df = pd.DataFrame({"detector": [cam[d].id for d, _ in amps], "amp": [a for _, a in amps],
                       "metric": "NOISE", "value": values})
    plot = focal_plane_heatmap(df, "NOISE", camera=cam, clim=(0.0, 1.0), cmap=name, labels="none",
                               failing=False, width=500)
    fig = hv.render(plot)
    mappers = [r.glyph.fill_color.transform for r in fig.renderers
               if isinstance(r, GlyphRenderer) and isinstance(r.glyph, Quad) and isinstance(r.glyph.fill_color, Field)]
    bar = next(b for b in fig.right if isinstance(b, ColorBar))
    assert len(mappers) == 1 and mappers[0] is bar.color_mapper
    assert [c.lower() for c in mappers[0].palette] == raw_hex == display.palette(name)
    assert (mappers[0].low, mappers[0].high) == (0.0, 1.0)

    render = save_png(plot, tmp_path / "heat.png", width=500)
    tr = render.panels[0]
    img = np.asarray(render.image.convert("RGB")).astype(np.int16)
    for (det, amp), v in zip(amps, values):
        d = cam[det]
        px, py = tr.to_pixel(*d.box_center_mm(d.amp(amp).bbox))
        assert img[int(py), int(px)].tolist() == raw[level(np.array(v))].tolist(), (name, det, amp)
