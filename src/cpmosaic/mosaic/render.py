"""Render a mosaic level to an image with datashader, with astronomy stretches.

Data rows grow with focal-plane y; images are drawn with +y up (datashader's
``to_pil(origin="lower")`` flips rows for display; the data never is).  NaN
(no detector) is transparent, or a background colour when asked.
datashader, xarray and PIL are imported inside the functions (CLI start-up).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from .store import MosaicStore, open_mosaic

log = logging.getLogger(__name__)

__all__ = ["STRETCHES", "stretch_limits", "apply_stretch", "resolve_cmap", "choose_level", "render_image", "render_png"]

STRETCHES = ("linear", "log", "asinh", "zscale", "percentile", "eq_hist")
#: Largest image (pixels) render_image will read in one go.
MAX_RENDER_PIXELS = 16384**2


def stretch_limits(data: np.ndarray, stretch: str, window: tuple[float, float] | None = None,
                   percentiles: tuple[float, float] = (0.5, 99.5)) -> tuple[float, float]:
    """Display limits ``(lo, hi)`` for a stretch.

    ``zscale`` uses astropy's ZScaleInterval, ``percentile`` the given
    percentiles of the data; the others the store's window when given, else the
    percentiles.
    """
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return (0.0, 1.0)
    if stretch == "zscale":
        from astropy.visualization import ZScaleInterval

        lo, hi = ZScaleInterval().get_limits(finite[:: max(1, finite.size // 1_000_000)])
    elif window is not None and stretch != "percentile":
        lo, hi = window
    else:
        lo, hi = np.percentile(finite, percentiles)
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        hi = lo + (abs(lo) * 1e-6 or 1.0)
    return lo, hi


def apply_stretch(data: np.ndarray, stretch: str, lo: float, hi: float, *, log_a: float = 1000.0,
                  asinh_a: float = 0.1) -> np.ndarray:
    """Map data to [0, 1] (NaN kept): linear, log (ds9's ``log10(1 + a v) / log10(1 + a)``) or asinh."""
    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}: use one of {', '.join(STRETCHES)}")
    # the stretches themselves live in one place, beside their inverses (colour bars)
    from ..viz.stretch import AsinhStretch, LogStretch

    v = np.clip((data.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    if stretch == "log":
        return LogStretch(log_a)(v).astype(np.float32)
    if stretch == "asinh":
        return AsinhStretch(asinh_a)(v)
    return v


def resolve_cmap(name: str) -> list[str]:
    """A colour list for datashader from a colorcet or bokeh palette name (``gray``, ``fire``, ``viridis``)."""
    import colorcet

    key = {"grey": "gray", "greys": "gray"}.get(name.lower(), name)
    if key in colorcet.palette:
        return list(colorcet.palette[key])
    from bokeh import palettes

    for cand in (f"{name.capitalize()}256", name):
        pal = getattr(palettes, cand, None)
        if isinstance(pal, (list, tuple)) and pal:
            return list(pal)
    raise ValueError(f"unknown colour map {name!r}: use a colorcet name (gray, fire, kbc, bmy, coolwarm, rainbow) "
                     "or a bokeh one (viridis, magma, inferno, plasma, cividis)")


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


def render_image(mosaic: MosaicStore | str, *, level: int | None = None, width: int | None = None,
                 stretch: str = "linear", cmap: str = "gray", background: str | None = None,
                 percentiles: tuple[float, float] = (0.5, 99.5), limits: tuple[float, float] | None = None):
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
        One of :data:`STRETCHES`.
    cmap
        Colour map name.
    background
        Colour under NaN (``"grey"``); default transparent.
    percentiles, limits
        Limits of ``percentile`` (and the fallback of linear/log/asinh), or explicit ``(lo, hi)``.

    Returns
    -------
    PIL.Image.Image
    """
    import datashader as ds
    import datashader.transfer_functions as tf
    import xarray as xr

    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}: use one of {', '.join(STRETCHES)}")
    m = mosaic if isinstance(mosaic, MosaicStore) else open_mosaic(mosaic)
    k = choose_level(m, width) if level is None else int(level)
    if not 0 <= k < m.n_levels:
        raise ValueError(f"level {k} does not exist: the store has levels 0..{m.n_levels - 1}")
    h, w = m.shape(k)
    if h * w > MAX_RENDER_PIXELS:
        raise ValueError(f"level {k} is {w} x {h} pixels, too large to render at once; "
                         "use a coarser --level or --width")
    data = m.read(k)
    (sy, sx), (ty, tx) = m.scale_um(k), m.translation_um(k)
    x = (tx + sx * np.arange(w)) / 1000.0
    y = (ty + sy * np.arange(h)) / 1000.0
    arr = xr.DataArray(data, coords={"y": y, "x": x}, dims=("y", "x"), name="mosaic")
    if width is not None and width != w:
        out_w = int(width)
        out_h = max(1, int(round(h * out_w / w)))
        xmin, xmax, ymin, ymax = m.extent_mm(k)
        canvas = ds.Canvas(plot_width=out_w, plot_height=out_h, x_range=(xmin, xmax), y_range=(ymin, ymax))
        arr = canvas.raster(arr, downsample_method="mean", upsample_method="nearest")
    window = m.window(k) if m.attrs.get("windows") else None
    colors = resolve_cmap(cmap)
    if stretch == "eq_hist":
        img = tf.shade(arr, cmap=colors, how="eq_hist")
    else:
        lo, hi = limits if limits is not None else stretch_limits(np.asarray(arr.values), stretch, window, percentiles)
        values = apply_stretch(np.asarray(arr.values), stretch, lo, hi)
        img = tf.shade(arr.copy(data=values), cmap=colors, how="linear", span=(0.0, 1.0))
    if background:
        img = tf.set_background(img, background)
    return img.to_pil(origin="lower")


def render_png(mosaic, path: str | os.PathLike, **kwargs) -> tuple[int, int]:
    """Render (see :func:`render_image`) and save a PNG; returns ``(width, height)``."""
    pil = render_image(mosaic, **kwargs)
    pil.save(os.fspath(path), format="PNG")
    log.info("wrote %s (%d x %d)", path, pil.width, pil.height)
    return pil.width, pil.height
