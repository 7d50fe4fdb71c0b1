"""Tile addressing and rendering for mosaic stores (pure functions, no HTTP).

Tile world (XYZ)
----------------
Level 0 of a store is ``W x H`` pixels.  ``maxzoom = Z`` is the smallest zoom with
``256 * 2**Z >= max(W, H)``: at zoom ``Z`` one tile pixel is one level-0 pixel, at zoom
``z`` it is ``2**(Z - z)`` level-0 pixels and reads pyramid level ``Z - z`` (the coarsest
level, reduced further by a NaN-ignoring block mean, when the store has fewer levels).
The mosaic sits in the middle of the ``256 * 2**Z`` square world, shifted by a whole
zoom-0 pixel so that every level's pixel grid falls on tile pixel edges (no resampling
between pixels).  XYZ rows run from the top (``y = 0``) and the data rows grow with
focal-plane y, so tiles are flipped: +y (north in the focal plane) is up.
``@2x`` tiles cover the same area with 512 pixels (one level finer).

Deep Zoom
---------
``TileSize 254``, ``Overlap 1``; level ``L = ceil(log2(max(W, H)))`` is level 0 of the
store, level ``l`` is ``2**(L - l)`` times smaller, level 0 is 1x1.  Row 0 of a Deep Zoom
image is its top (+y up, as the XYZ tiles) and every level is anchored at the top-left
corner (:mod:`cpmosaic.serve.geometry`), not at the bottom edge as the store's pyramid is.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from ..kernels import block_reduce
from ..mosaic.store import MosaicStore
from ..viz import display
from ..viz.display import STRETCHES
from .geometry import DeepZoom, dzi_levels, padded_window

log = logging.getLogger(__name__)

__all__ = ["BadParameter", "OutOfRange", "Style", "TileGrid", "parse_style", "render_tile", "render_dzi_tile", "dzi_levels",
           "tile_values", "dzi_values", "dzi_window",
           "dzi_descriptor", "empty_png", "encode_png", "render_png", "colormap_lut", "read_padded"]

TILE = 256
DZI_TILE, DZI_OVERLAP = 254, 1


class BadParameter(ValueError):
    """A query parameter with a bad value (the server answers 400 naming ``param``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class OutOfRange(LookupError):
    """A tile, Deep Zoom level or tile outside the store's grid (the server answers 404).

    Its own class, so that only a request outside the grid becomes a 404: an IndexError
    from a bug inside rendering stays a 500 with its traceback in the log.
    """


@dataclass(frozen=True)
class TileGrid:
    """The XYZ tile world of a store (see the module docstring).

    ``offset_x`` / ``offset_y`` are level-0 pixels between the world's left / bottom edge
    and the mosaic's column 0 / row 0.
    """

    width: int
    height: int
    n_levels: int
    maxzoom: int
    offset_x: int
    offset_y: int

    @classmethod
    def for_store(cls, m: MosaicStore) -> "TileGrid":
        h, w = m.shape(0)
        z = max(0, math.ceil(math.log2(max(w, h) / TILE))) if max(w, h) > TILE else 0
        unit = 2**z  # one zoom-0 tile pixel, in level-0 pixels

        def centre(n: int) -> int:
            return unit * ((TILE - -(-n // unit)) // 2)

        return cls(w, h, m.n_levels, z, centre(w), centre(h))

    @property
    def world(self) -> int:
        """Side of the tile world in level-0 pixels."""
        return TILE * 2**self.maxzoom

    def n_tiles(self, z: int) -> int:
        return 2**z

    def tile_box(self, z: int, x: int, y: int) -> tuple[int, int, int, int]:
        """Level-0 box ``(i0, i1, j0, j1)`` (rows from the bottom, may exceed the mosaic) of a tile."""
        span = TILE * 2 ** (self.maxzoom - z)
        j0 = x * span - self.offset_x
        i0 = self.world - (y + 1) * span - self.offset_y
        return (i0, i0 + span, j0, j0 + span)

    def tile_bounds_mm(self, m: MosaicStore, z: int, x: int, y: int) -> tuple[float, float, float, float]:
        """Focal-plane ``(xmin, ymin, xmax, ymax)`` mm of a tile's edges."""
        i0, i1, j0, j1 = self.tile_box(z, x, y)
        xmin, _, ymin, _ = m.extent_mm(0)
        sy, sx = (s / 1000.0 for s in m.scale_um(0))
        return (xmin + j0 * sx, ymin + i0 * sy, xmin + j1 * sx, ymin + i1 * sy)

    def world_bounds_mm(self, m: MosaicStore) -> tuple[float, float, float, float]:
        """Focal-plane ``(xmin, ymin, xmax, ymax)`` mm of the whole tile world (tile 0/0/0)."""
        return self.tile_bounds_mm(m, 0, 0, 0)


@dataclass(frozen=True)
class Style:
    """How values become colours: stretch, limits (None: the store's), LUT name, nodata."""

    stretch: str = "linear"
    rescale: tuple[float, float] | None = None
    colormap: str = "gray"  # a name, or "json:<canonical JSON>" for colormap=
    nodata: float | None = None

    def key(self) -> tuple:
        return (self.stretch, self.rescale, self.colormap, self.nodata)


def parse_style(query: dict[str, list[str]]) -> Style:
    """A :class:`Style` from TiTiler-style query parameters (``parse_qs`` output).

    ``rescale=min,max``, ``stretch=`` (one of ``STRETCHES``), ``colormap_name=``,
    ``colormap=`` (JSON ``{"0": [r, g, b(, a)], ..., "255": [...]}``, stops interpolated),
    ``nodata=`` (a value drawn transparent, NaN always is).  Unknown parameters are ignored.

    Raises
    ------
    BadParameter
        For a bad value, naming the parameter.
    """
    def one(name: str) -> str | None:
        v = query.get(name)
        return v[-1] if v else None

    stretch = one("stretch") or "linear"
    if stretch not in STRETCHES:
        raise BadParameter("stretch", f"unknown stretch {stretch!r}; use one of {', '.join(STRETCHES)}")
    rescale = None
    if (r := one("rescale")) is not None:
        try:
            lo, hi = (float(v) for v in r.split(","))
        except ValueError:
            raise BadParameter("rescale", f"expected min,max numbers, got {r!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise BadParameter("rescale", f"need finite min < max, got {r!r}")
        rescale = (lo, hi)
    cmap = one("colormap_name") or "gray"
    if (cj := one("colormap")) is not None:
        try:
            stops = display.parse_stops_json(cj)
        except ValueError as exc:
            raise BadParameter("colormap", str(exc)) from None
        cmap = "json:" + json.dumps(stops)
    try:
        colormap_lut(cmap)
    except ValueError as exc:
        raise BadParameter("colormap_name", str(exc)) from None
    nodata = None
    if (nd := one("nodata")) is not None:
        try:
            nodata = float(nd)
        except ValueError:
            raise BadParameter("nodata", f"expected a number, got {nd!r}") from None
        if math.isnan(nodata):
            nodata = None  # NaN is always transparent
    return Style(stretch, rescale, cmap, nodata)


@functools.lru_cache(maxsize=64)
def colormap_lut(name: str) -> np.ndarray:
    """A ``(256, 4)`` uint8 RGBA table for a colour map name (``gray`` is exactly ``i``), or for
    ``"json:<stops>"`` from ``colormap=`` (:func:`cpmosaic.viz.display.colormap_lut`)."""
    if name.startswith("json:"):
        return display.lut_from_stops([(int(k), v) for k, v in json.loads(name[5:])])
    return display.colormap_lut(name)


class StoreStyleCache:
    """Store-wide display mappings (tiles of one view must agree), one per stretch and rescale.

    The mapping is :func:`cpmosaic.viz.render.store_normalize`: the one ``cpmosaic png`` and
    the notebook views use for the same store.
    """

    def __init__(self, m: MosaicStore) -> None:
        self.m = m
        self._lock = threading.Lock()
        self._cache: dict = {}

    def normalize(self, style: Style) -> display.Normalize:
        """The store's :class:`~cpmosaic.viz.display.Normalize` for a style's stretch and rescale."""
        from ..viz.render import store_normalize

        key = (style.stretch, style.rescale)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = store_normalize(self.m, style.stretch, style.rescale)
            return self._cache[key]

    def limits(self, style: Style) -> tuple[float, float]:
        """Data limits ``(lo, hi)`` of a style (its rescale, else the store's)."""
        n = self.normalize(style)
        return (n.vmin, n.vmax)


def to_rgba(data: np.ndarray, style: Style, styles: StoreStyleCache) -> np.ndarray:
    """Values ``[rows from top, x]`` -> RGBA uint8 (NaN and nodata transparent)."""
    mask = None if style.nodata is None else data == style.nodata
    return display.to_rgba(styles.normalize(style)(data), colormap_lut(style.colormap), mask)


def render_png(data: np.ndarray, style: Style, styles: StoreStyleCache) -> bytes:
    """PNG bytes of values ``[rows from top, x]`` in a style: the pixels of :func:`to_rgba`, in one
    pass (:func:`cpmosaic.kernels.colour.colour_index`) and one byte per pixel where the tile allows
    (:func:`cpmosaic.serve.png.encode_indexed`); a transparent tile where nothing is drawn."""
    from ..kernels.colour import colour_index
    from .png import encode_indexed

    norm = styles.normalize(style)
    values = None if norm.affine else norm(data)
    index, alpha, counts = colour_index(data, norm.vmin, norm.vmax, values, style.nodata)
    if counts[256] == index.size:
        return empty_png(index.shape[1], index.shape[0])
    return encode_indexed(index, alpha, counts, colormap_lut(style.colormap))


def encode_png(rgba: np.ndarray) -> bytes:
    """PNG bytes of an RGBA array (unfiltered, zlib level 1: :mod:`cpmosaic.serve.png`)."""
    from .png import encode

    return encode(np.ascontiguousarray(rgba))


@functools.lru_cache(maxsize=64)
def empty_png(width: int = TILE, height: int | None = None) -> bytes:
    """A transparent ``width`` x ``height`` PNG (the answer outside the focal plane)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (width, height or width), (0, 0, 0, 0)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def read_padded(m: MosaicStore, k: int, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
    """Level ``k`` rows ``[i0, i1)``, columns ``[j0, j1)``; NaN outside the level."""
    out, inside = padded_window(m.shape(k), i0, i1, j0, j1)
    if inside is not None:
        ci0, ci1, cj0, cj1 = inside
        out[ci0 - i0:ci1 - i0, cj0 - j0:cj1 - j0] = m.read(k, ci0, ci1, cj0, cj1)
    return out


def _read_at(m: MosaicStore, e: int, i0: int, i1: int, j0: int, j1: int, reader=None) -> np.ndarray:
    """Rows/cols ``[i0, i1) x [j0, j1)`` of the virtual level ``e`` (``2**e`` level-0 px a pixel;
    beyond the coarsest level by block means, below 0 by repetition).  ``reader(k, i0, i1, j0, j1)``
    reads store levels (default :func:`read_padded`; the server passes its chunk cache)."""
    read = reader or functools.partial(read_padded, m)
    k = min(max(e, 0), m.n_levels - 1)
    if e < 0:
        u = 2**-e
        a = read(0, i0 // u, -(-i1 // u), j0 // u, -(-j1 // u))
        a = np.repeat(np.repeat(a, u, axis=0), u, axis=1)
        oi, oj = i0 - (i0 // u) * u, j0 - (j0 // u) * u
        return a[oi:oi + i1 - i0, oj:oj + j1 - j0]
    f = 2 ** (e - k)
    a = read(k, i0 * f, i1 * f, j0 * f, j1 * f)
    # beyond the coarsest level: the same NaN-ignoring block mean the pyramid is built with
    return a if f == 1 else block_reduce(a, f, "mean")


def tile_values(m: MosaicStore, grid: TileGrid, z: int, x: int, y: int, scale: int = 1,
                reader=None) -> np.ndarray | None:
    """Values of XYZ tile ``z/x/y`` (rows from the top), or None where no detector is.

    Raises
    ------
    OutOfRange
        When the tile address is outside ``0..maxzoom`` or the ``2**z`` grid.
    """
    if not 0 <= z <= grid.maxzoom or not (0 <= x < 2**z and 0 <= y < 2**z):
        raise OutOfRange(f"tile {z}/{x}/{y} is outside the grid (zoom 0..{grid.maxzoom}, x and y 0..2**z-1)")
    i0, i1, j0, j1 = grid.tile_box(z, x, y)
    # placements, not pixels: outside every detector costs no read at all
    if not m.plan.placements_in((max(i0, 0), max(min(i1, grid.height), 0), max(j0, 0), max(min(j1, grid.width), 0))):
        return None
    e = grid.maxzoom - z - (scale.bit_length() - 1)
    n = TILE * scale
    if e >= 0:
        p = 2**e
        data = _read_at(m, e, i0 // p, i0 // p + n, j0 // p, j0 // p + n, reader)
    else:
        u = 2**-e
        data = _read_at(m, e, i0 * u, i0 * u + n, j0 * u, j0 * u + n, reader)
    if not np.isfinite(data).any():
        return None
    return data[::-1]


def render_tile(m: MosaicStore, grid: TileGrid, styles: StoreStyleCache, z: int, x: int, y: int,
                scale: int = 1, style: Style = Style(), reader=None) -> bytes:
    """PNG bytes of XYZ tile ``z/x/y`` (``scale`` 2 for @2x); transparent outside the detectors.

    Raises
    ------
    OutOfRange
        When the tile address is outside ``0..maxzoom`` or the ``2**z`` grid.
    """
    data = tile_values(m, grid, z, x, y, scale, reader)
    if data is None:
        return empty_png(TILE * scale)
    return render_png(data, style, styles)


def dzi_descriptor(width: int, height: int) -> str:
    """The Deep Zoom ``.dzi`` XML document."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" TileSize="{DZI_TILE}" '
            f'Overlap="{DZI_OVERLAP}" Format="png"><Size Width="{width}" Height="{height}"/></Image>\n')


def dzi_window(m: MosaicStore, level: int, col: int, row: int) -> tuple[int, int, int, int]:
    """Display rows and columns ``(r0, r1, c0, c1)`` of Deep Zoom tile ``level/col_row`` (overlap
    included) at its level.

    Raises
    ------
    OutOfRange
        For a level or tile outside the image.
    """
    h0, w0 = m.shape(0)
    top = dzi_levels(w0, h0)
    if not 0 <= level <= top:
        raise OutOfRange(f"Deep Zoom level {level} is outside 0..{top}")
    d = 2 ** (top - level)
    w, h = -(-w0 // d), -(-h0 // d)
    if not (0 <= col <= (w - 1) // DZI_TILE and 0 <= row <= (h - 1) // DZI_TILE):
        raise OutOfRange(f"Deep Zoom tile {col}_{row} is outside level {level} ({w} x {h} pixels)")
    return (max(row * DZI_TILE - DZI_OVERLAP, 0), min((row + 1) * DZI_TILE + DZI_OVERLAP, h),
            max(col * DZI_TILE - DZI_OVERLAP, 0), min((col + 1) * DZI_TILE + DZI_OVERLAP, w))


def dzi_values(m: MosaicStore, level: int, col: int, row: int, dz: DeepZoom | None = None) -> np.ndarray:
    """Values of Deep Zoom tile ``level/col_row`` (rows from the top), every level anchored at
    the top-left corner (see :mod:`cpmosaic.serve.geometry`)."""
    r0, r1, c0, c1 = dzi_window(m, level, col, row)
    dz = dz or DeepZoom(m.shape(0), m.n_levels, functools.partial(read_padded, m))
    return dz.read(dz.top - level, r0, r1, c0, c1)


def render_dzi_tile(m: MosaicStore, styles: StoreStyleCache, level: int, col: int, row: int,
                    style: Style = Style(), dz: DeepZoom | None = None) -> bytes:
    """PNG bytes of Deep Zoom tile ``level/col_row`` (transparent where no detector is).

    Raises
    ------
    OutOfRange
        For a level or tile outside the image.
    """
    return render_png(dzi_values(m, level, col, row, dz), style, styles)  # transparent where nothing is drawn
