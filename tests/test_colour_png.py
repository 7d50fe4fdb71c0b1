"""The one-pass colour kernel and the tile PNG encoder against the display layer.

``colour_index`` must give the colour indices of :mod:`cpmosaic.viz.display` (stretch, then
``min(floor(v * 256), 255)``) byte for byte, and every PNG form :func:`encode_indexed` picks
(grey, palette with a transparent entry, grey+alpha, RGBA) must decode (with Pillow, an
independent decoder) to :func:`cpmosaic.viz.display.to_rgba`'s pixels.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cpmosaic.kernels import colour_index, reference
from cpmosaic.serve import tiles
from cpmosaic.serve.png import encode, encode_indexed
from cpmosaic.viz import display


def decode(png: bytes) -> tuple[str, np.ndarray]:
    im = Image.open(io.BytesIO(png))
    return im.mode, np.asarray(im.convert("RGBA"))


def image(rng, shape=(254, 300), bad=0.05) -> np.ndarray:
    d = rng.normal(5.0, 3.0, shape).astype(np.float32)
    d[rng.random(shape) < bad] = np.nan
    d[0, :6] = [np.inf, -np.inf, 3.0, 1e30, -1e30, 0.0]
    return d


class _Styles:
    """A StoreStyleCache stand-in holding one fitted Normalize (no store needed)."""

    def __init__(self, norm: display.Normalize) -> None:
        self.norm = norm

    def normalize(self, style: tiles.Style) -> display.Normalize:
        return self.norm


@pytest.mark.parametrize("stretch", display.STRETCHES)
@pytest.mark.parametrize("nodata", [None, 3.0])
def test_colour_index_is_the_display_layers_quantisation(stretch, nodata):
    rng = np.random.default_rng(7)
    d = image(rng)
    norm = display.fit(stretch, d)
    values = None if norm.affine else norm(d)
    index, alpha, counts = colour_index(d, norm.vmin, norm.vmax, values, nodata)
    # the display layer: Normalize -> quantize, transparent where not finite (or nodata)
    v = norm(d)
    bad = ~np.isfinite(v) | (np.zeros(d.shape, bool) if nodata is None else d == nodata)
    assert np.array_equal(alpha, np.where(bad, 0, 255))
    assert np.array_equal(index[~bad], display.quantize(v)[~bad])
    assert (index[bad] == 0).all()
    assert counts[256] == bad.sum() and np.array_equal(counts[:256], np.bincount(index[~bad], minlength=256))
    # and the plain-numpy twin
    for got, want in zip((index, alpha, counts), reference.colour_index(d, norm.vmin, norm.vmax, values, nodata)):
        assert np.array_equal(got, want)


def test_affine_stretches_are_the_identity_ones():
    assert [s for s in display.STRETCHES if display.fit(s, np.arange(100.0)).affine] == ["linear", "zscale", "percentile"]


def test_colour_index_hand_values_and_views():
    d = np.array([[-1.0, 0.0, 2.5, 5.0, 9.99, 10.0, 11.0, np.nan]], np.float32)
    index, alpha, counts = colour_index(d, 0.0, 10.0)
    # floor(x * 256) for x = clip(d / 10): 0, 0, 64, 128, 255 (255.74), 255 (256 -> 255), 255
    assert index.tolist() == [[0, 0, 64, 128, 255, 255, 255, 0]]
    assert alpha.tolist() == [[255] * 7 + [0]]
    assert counts[0] == 2 and counts[64] == 1 and counts[255] == 3 and counts[256] == 1
    big = np.random.default_rng(1).normal(size=(40, 90)).astype(np.float32)
    view = big[3:30, 7:80:2]  # a strided view, as a tile cut out of a strip
    for got, want in zip(colour_index(view, -2, 2), reference.colour_index(view, -2, 2)):
        assert np.array_equal(got, want)


def test_colour_index_rejects_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        colour_index(np.zeros(5, np.float32), 0, 1)
    with pytest.raises(ValueError, match="values shape"):
        colour_index(np.zeros((2, 2), np.float32), 0, 1, values=np.zeros((2, 3), np.float32))


def _grey_ramp_lut() -> np.ndarray:
    return display.colormap_lut("gray")


@pytest.mark.parametrize("case, lut_name, mode", [
    ("opaque", "gray", "L"),            # every pixel drawn, grey table: 1-byte grey
    ("free-index", "gray", "P"),        # transparency on an index no pixel uses
    ("all-used", "gray", "LA"),         # all 256 greys drawn and some transparent
    ("opaque", "fire", "P"),            # a colour table: palette
    ("free-index", "fire", "P"),
    ("all-used", "fire", "RGBA"),
    ("free-index", "json", "P"),        # a table with its own alpha (tRNS)
])
def test_every_png_form_decodes_to_the_display_pixels(case, lut_name, mode):
    rng = np.random.default_rng(3)
    if lut_name == "json":
        lut = display.lut_from_stops({0: [0, 0, 255, 0], 128: [0, 255, 0, 128], 255: [255, 0, 0]})
    else:
        lut = display.colormap_lut(lut_name)
    v = rng.random((60, 70)).astype(np.float32)
    if case == "all-used":
        v.ravel()[:256] = (np.arange(256) + 0.5) / 256
    else:
        v = v * 0.5  # indices 0..127 only: 128..255 are free
    if case != "opaque":
        v[5:9, 10:30] = np.nan
    index, alpha, counts = colour_index(v, 0.0, 1.0)
    want = display.to_rgba(v, lut)
    got_mode, rgba = decode(encode_indexed(index.copy(), alpha, counts, lut))
    assert got_mode == mode
    assert np.array_equal(rgba, want)


def test_render_png_is_to_rgba_for_every_stretch_and_map():
    rng = np.random.default_rng(11)
    for stretch in display.STRETCHES:
        for cmap in ("gray", "viridis"):
            for nodata in (None, 3.0):
                d = image(rng)
                styles = _Styles(display.fit(stretch, d))
                style = tiles.Style(stretch, None, cmap, nodata)
                _, rgba = decode(tiles.render_png(d, style, styles))
                assert np.array_equal(rgba, tiles.to_rgba(d, style, styles)), (stretch, cmap, nodata)


def test_render_png_of_nothing_drawn_is_the_empty_tile():
    d = np.full((10, 12), np.nan, np.float32)
    styles = _Styles(display.fit("linear", None, limits=(0.0, 1.0)))
    assert tiles.render_png(d, tiles.Style(), styles) == tiles.empty_png(12, 10)


def test_encode_grey_la_and_rgba_arrays():
    rng = np.random.default_rng(5)
    for shape, mode in (((7, 9), "L"), ((7, 9, 2), "LA"), ((7, 9, 4), "RGBA")):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        im = Image.open(io.BytesIO(encode(a)))
        assert im.mode == mode and np.array_equal(np.asarray(im), a)
