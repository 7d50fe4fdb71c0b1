"""Render a mosaic store to an RGBA image (``cpmosaic png``), through the display layer.

Data rows grow with focal-plane y; images are drawn with +y up (rows flipped for display;
the data never are).  NaN (no detector) is transparent, or a background colour when asked.
Colours come from :mod:`cpmosaic.viz.display`, fitted by :func:`store_normalize` on the
store's coarsest level (or its display window), exactly as the tile server and the notebook
views fit them, so one store shows the same colours in all three.
datashader, xarray and PIL are imported inside the functions (CLI start-up).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..mosaic.store import MosaicStore, open_mosaic
from . import display
from .display import STRETCHES

log = logging.getLogger(__name__)

__all__ = ["STRETCHES", "store_normalize", "store_window", "choose_level", "render_rgba", "render_image",
           "render_png", "TooLargeToRender"]

#: Largest image (pixels) render_image will read in one go.
MAX_RENDER_PIXELS = 16384**2


class TooLargeToRender(ValueError):
    """The level asked for is over :data:`MAX_RENDER_PIXELS`: choose a coarser ``level`` or a
    smaller ``width``.  ``level``, ``width`` and ``height`` say which and how large."""

    def __init__(self, level: int, width: int, height: int) -> None:
        self.level, self.width, self.height = level, width, height
        super().__init__(f"level {level} is {width} x {height} pixels, over the {MAX_RENDER_PIXELS:,} pixels "
                         "rendered at once: choose a coarser level or a smaller width")


def store_window(store: Any) -> tuple[float, float] | None:
    """The store's display window of level 0 (``None`` when it has none)."""
    w = store.window(0) if hasattr(store, "window") else None
    if w is None:
        return None
    lo, hi = float(w[0]), float(w[1])
    return (lo, hi) if hi > lo else None


def store_normalize(store: Any, stretch: str = "linear",
                    limits: tuple[float, float] | None = None) -> display.Normalize:
    """The :class:`~cpmosaic.viz.display.Normalize` every view of *store* uses for *stretch*.

    Explicit *limits* win; else the windowed stretches (linear, sqrt, log, asinh) use the
    store's level-0 display window; every other interval and the eq_hist table are fitted on
    the coarsest level (a few hundred pixels square: a cheap sample of the whole mosaic).
    """
    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}: use one of {', '.join(STRETCHES)}")
    window = store_window(store)
    needs_sample = limits is None and not (display.STRETCH_INTERVALS[stretch] == "window" and window)
    sample = None
    if needs_sample or stretch == "eq_hist":
        n = getattr(store, "n_levels", None) or len(store.levels)
        sample = np.asarray(store.read(n - 1), dtype=np.float32)
    return display.fit(stretch, sample, limits=limits, window=window)


def choose_level(mosaic: MosaicStore, width: int | None) -> int:
    """The coarsest level at least ``width`` pixels wide (the finest when none is)."""
    if width is None:
        for k in range(mosaic.n_levels):
            if mosaic.shape(k)[0] * mosaic.shape(k)[1] <= 4096**2:
                return k
        return mosaic.n_levels - 1
    for k in range(mosaic.n_levels - 1, -1, -1):
        if mosaic.shape(k)[1] >= width:
            return k
    return 0


def _values(m: MosaicStore, k: int, width: int | None) -> np.ndarray:
    """Level *k*, resampled to *width* columns when asked (datashader raster, mean)."""
    data = m.read(k)
    h, w = data.shape
    if width is None or width == w:
        return data
    import datashader as ds
    import xarray as xr

    (sy, sx), (ty, tx) = m.scale_um(k), m.translation_um(k)
    arr = xr.DataArray(data, coords={"y": (ty + sy * np.arange(h)) / 1000.0, "x": (tx + sx * np.arange(w)) / 1000.0},
                       dims=("y", "x"), name="mosaic")
    out_w = int(width)
    out_h = max(1, int(round(h * out_w / w)))
    xmin, xmax, ymin, ymax = m.extent_mm(k)
    canvas = ds.Canvas(plot_width=out_w, plot_height=out_h, x_range=(xmin, xmax), y_range=(ymin, ymax))
    return np.asarray(canvas.raster(arr, downsample_method="mean", upsample_method="nearest").values)


def render_rgba(mosaic: MosaicStore | str, *, level: int | None = None, width: int | None = None,
                stretch: str = "linear", cmap: str = "gray",
                limits: tuple[float, float] | None = None,
                storage_options: dict | None = None) -> np.ndarray:
    """A mosaic level as RGBA uint8 ``(rows from the top, x, 4)``, +y up; NaN transparent.

    See :func:`render_image` for the parameters.
    """
    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}: use one of {', '.join(STRETCHES)}")
    lut = display.colormap_lut(cmap)  # a bad name fails before any read
    m = mosaic if isinstance(mosaic, MosaicStore) else open_mosaic(mosaic, storage_options)
    k = choose_level(m, width) if level is None else int(level)
    if not 0 <= k < m.n_levels:
        raise ValueError(f"level {k} does not exist: the store has levels 0..{m.n_levels - 1}")
    h, w = m.shape(k)
    if h * w > MAX_RENDER_PIXELS:
        raise TooLargeToRender(k, w, h)
    norm = store_normalize(m, stretch, limits)
    values = _values(m, k, width)
    return display.to_rgba(norm(values[::-1]), lut)


def render_image(mosaic: MosaicStore | str, *, level: int | None = None, width: int | None = None,
                 stretch: str = "linear", cmap: str = "gray", background: str | None = None,
                 limits: tuple[float, float] | None = None, storage_options: dict | None = None) -> Any:
    """Render a mosaic to a PIL image (+y up).

    Parameters
    ----------
    mosaic
        A :class:`MosaicStore` or a store path/URL.
    level
        Level to draw at its own size; default: chosen from ``width``.
    width
        Output width in pixels (height follows the aspect ratio); the level is
        resampled with ``datashader.Canvas.raster`` (mean).
    stretch
        One of :data:`~cpmosaic.viz.display.STRETCHES`.
    cmap
        Colour map name (:func:`~cpmosaic.viz.display.colormap_lut`).
    background
        Colour under NaN (``"grey"``); default transparent.
    limits
        Explicit display limits ``(lo, hi)``; default as :func:`store_normalize` picks them.
    storage_options
        fsspec options of a store URL (``s3://...``), e.g. ``{"anon": True}``.

    Returns
    -------
    PIL.Image.Image
    """
    from PIL import Image

    img = Image.fromarray(render_rgba(mosaic, level=level, width=width, stretch=stretch, cmap=cmap,
                                      limits=limits, storage_options=storage_options), "RGBA")
    if background:
        under = Image.new("RGBA", img.size, background)
        img = Image.alpha_composite(under, img)
    return img


def render_png(mosaic: MosaicStore | str, path: str | os.PathLike, **kwargs: Any) -> tuple[int, int]:
    """Render (see :func:`render_image`) and save a PNG; returns ``(width, height)``."""
    pil = render_image(mosaic, **kwargs)
    pil.save(os.fspath(path), format="PNG")
    log.info("wrote %s (%d x %d)", path, pil.width, pil.height)
    return pil.width, pil.height
