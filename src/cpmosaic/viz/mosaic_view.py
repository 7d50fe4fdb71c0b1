"""Mosaic image views: one pyramid level as an image in focal-plane mm, and a zoomable explorer.

The store's arrays are ``[y, x]`` with y up; ``hv.Image`` wants its first row at the top,
so the view flips rows for display (the data never are).  Axes are focal-plane mm, the
same frame as :func:`~cpmosaic.viz.heatmap.focal_plane_heatmap`, so amp polygons overlay
exactly.  Colours come from :mod:`cpmosaic.viz.display`, fitted as ``cpmosaic png`` and the
tile server fit them (:func:`cpmosaic.viz.render.store_normalize`); the image holds display
values in [0, 1] drawn with the display layer's 256 colours, whose quantisation is bokeh's,
so the browser, the PNG rasteriser and ``cpmosaic png`` pick the same colour.

>>> import numpy as np
>>> class Tiny:  # anything with MosaicStore's reading interface works
...     camera = "LSSTCam"; levels = [np.arange(12, dtype="f4").reshape(3, 4)]; n_levels = 1
...     def extent_mm(self, k): return (0.0, 4.0, 0.0, 3.0)
...     def read(self, k, y0=None, y1=None, x0=None, x1=None): return self.levels[k][y0:y1, x0:x1]
>>> img = mosaic_view(Tiny(), stretch="linear")
>>> round(float(img.Image.I[0.5, 2.5]) * 11)  # top-left of the view is row 2 (y up): value 8
8
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from . import display, style
from .display import Normalize

if TYPE_CHECKING:
    import holoviews as hv
    import pandas as pd

__all__ = ["mosaic_view", "mosaic_explorer", "open_store", "choose_level", "level_for_span", "pixel_window"]


def open_store(store_or_path, storage_options: dict | None = None):
    """A :class:`cpmosaic.mosaic.MosaicStore` from a path/URL, or the store-like object itself.

    ``storage_options`` are the fsspec options of a URL (``s3://...``), as :func:`cpmosaic.mosaic.open_mosaic`.
    """
    if isinstance(store_or_path, (str, os.PathLike)):
        from ..mosaic import open_mosaic

        return open_mosaic(os.fspath(store_or_path), storage_options)
    return store_or_path


def _shape(store, k: int) -> tuple[int, int]:
    return tuple(store.levels[k].shape[-2:])


def _pixel_mm(store, k: int) -> tuple[float, float]:
    x0, x1, y0, y1 = store.extent_mm(k)
    h, w = _shape(store, k)
    return (x1 - x0) / w, (y1 - y0) / h


def level_for_span(store, span_mm: float, width: int) -> int:
    """Coarsest level with at least *width* pixels across *span_mm* (else the finest, 0)."""
    n = getattr(store, "n_levels", len(store.levels))
    for k in range(n - 1, -1, -1):
        if span_mm / _pixel_mm(store, k)[0] >= width:
            return k
    return 0


def choose_level(store, width: int) -> int:
    """The level to show a whole mosaic *width* pixels wide."""
    x0, x1, _, _ = store.extent_mm(0)
    return level_for_span(store, x1 - x0, width)


def pixel_window(store, k: int, x_range, y_range) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` pixel slice of level *k* covering a focal-plane mm range (clipped)."""
    ex0, _, ey0, _ = store.extent_mm(k)
    px, py = _pixel_mm(store, k)
    h, w = _shape(store, k)
    c0 = min(max(int(math.floor((x_range[0] - ex0) / px)), 0), w)
    c1 = min(max(int(math.ceil((x_range[1] - ex0) / px)), 0), w)
    r0 = min(max(int(math.floor((y_range[0] - ey0) / py)), 0), h)
    r1 = min(max(int(math.ceil((y_range[1] - ey0) / py)), 0), h)
    return r0, r1, c0, c1


def _fit(stretch: str, limits: tuple[float, float] | None, store: Any) -> Normalize:
    """The store's mapping for *stretch* (as ``cpmosaic png`` and the tiles), unless *limits*."""
    from .render import store_normalize

    return store_normalize(store, stretch, limits)


def _colorbar_opts(norm: Normalize) -> dict:
    """Colour-bar ticks at display positions labelled in data units (the stretch is nonlinear)."""
    from bokeh.models import FixedTicker

    ticks = style.nice_ticks(norm.vmin, norm.vmax, 6)
    pos = np.asarray(norm(ticks), dtype=float)
    keep = np.isfinite(pos) & (pos >= 0) & (pos <= 1)
    labels = {float(round(p, 6)): style.format_tick(float(t), norm.vmax - norm.vmin)
              for p, t in zip(pos[keep], ticks[keep])}
    return {"ticker": FixedTicker(ticks=list(labels)), "major_label_overrides": labels}


def _image(hv: Any, disp: np.ndarray, bounds: tuple, norm: Normalize, cmap: str, label: str) -> Any:
    # rows flipped: hv.Image's first row is the top of the picture, the store's is the bottom
    img = hv.Image(np.ascontiguousarray(disp[::-1]), bounds=bounds, kdims=["x", "y"],
                   vdims=[hv.Dimension("display", label=label, range=(0.0, 1.0))])
    return img.opts(cmap=display.palette(cmap), clim=(0.0, 1.0), colorbar=True, colorbar_opts=_colorbar_opts(norm),
                    tools=["hover"], clipping_colors={"NaN": (0, 0, 0, 0)})


def mosaic_view(store_or_path: Any, level: int | None = None, *, stretch: str = "asinh", cmap: str = "gray",
                overlay_df: pd.DataFrame | None = None, metric: str | None = None, alpha: float = 0.35,
                width: int = 800,
                calib_type: str | None = None, limits: tuple[float, float] | None = None,
                title: str | None = None) -> hv.Overlay:
    """One pyramid level as an image in focal-plane mm, with stretch, colour bar and metric overlay.

    Parameters
    ----------
    store_or_path
        A mosaic store path/URL or an opened :class:`~cpmosaic.mosaic.MosaicStore`.
    level
        Pyramid level; default the coarsest at least *width* pixels wide.  Larger levels are
        reduced to the display size with datashader (``regrid``, mean of pixels).
    stretch
        One of :data:`cpmosaic.viz.display.STRETCHES`.
    overlay_df, metric
        A tidy metrics table and metric to draw as amp polygons over the image (*alpha*).
    limits
        Data range for the stretch; default as ``cpmosaic png`` and the tile server choose
        it (:func:`cpmosaic.viz.render.store_normalize`).

    Returns
    -------
    holoviews.Overlay
    """
    hv = style.holoviews()
    store = open_store(store_or_path)
    k = choose_level(store, width) if level is None else int(level)
    data = np.asarray(store.read(k), dtype=np.float32)
    x0, x1, y0, y1 = store.extent_mm(k)
    bounds = (x0, y0, x1, y1)
    if data.shape[1] > width:
        from holoviews.operation.datashader import regrid

        height = max(1, int(round(width * data.shape[0] / data.shape[1])))
        raw = hv.Image(np.ascontiguousarray(data[::-1]), bounds=bounds, kdims=["x", "y"])
        small = regrid(raw, width=width, height=height, dynamic=False, upsample=False)
        data = np.asarray(small.dimension_values(2, flat=False), dtype=np.float32)  # y ascending
        bounds = small.bounds.lbrt()
    norm = _fit(stretch, limits, store)
    layers = [_image(hv, norm(data), bounds, norm, cmap, f"{stretch} stretch")]
    if overlay_df is not None:
        if metric is None:
            raise ValueError("mosaic_view: give the metric to overlay with overlay_df")
        from .heatmap import focal_plane_heatmap

        cam = getattr(store, "camera", None)
        heat = focal_plane_heatmap(overlay_df, metric, camera=cam if cam else None, calib_type=calib_type,
                                   fill_alpha=alpha, colorbar=False, labels="raft", failing=False)
        layers += [el for el in heat if el.group not in ("Missing", "DetectorLabels")]
    if title is None:
        title = f"level {k} ({stretch})" + (f" + {metric}" if overlay_df is not None else "")
    return hv.Overlay(layers).opts(title=title, data_aspect=1, frame_width=width, xlabel="focal plane x (mm)",
                                   ylabel="focal plane y (mm)", show_legend=False)


def mosaic_explorer(store_or_path: Any, *, stretch: str = "asinh", cmap: str = "gray", width: int = 800,
                    limits: tuple[float, float] | None = None) -> hv.DynamicMap:
    """Zoomable view for notebooks: the pyramid level follows the zoom.

    A ``hv.DynamicMap`` driven by a ``RangeXY`` stream reads only the visible window of the
    coarsest level that still has *width* pixels across it (``MosaicStore.read``).  The
    stretch is the store's (fitted once, on the coarsest level) so colours do not jump while zooming.

    Examples
    --------
    >>> dmap = mosaic_explorer("visit.zarr")   # doctest: +SKIP
    >>> dmap                                    # doctest: +SKIP
    """
    hv = style.holoviews()
    store = open_store(store_or_path)
    norm = _fit(stretch, limits, store)
    full = store.extent_mm(0)

    def view(x_range=None, y_range=None):
        xr = tuple(x_range) if x_range else full[:2]
        yr = tuple(y_range) if y_range else full[2:]
        k = level_for_span(store, xr[1] - xr[0], width)
        r0, r1, c0, c1 = pixel_window(store, k, xr, yr)
        ex0, _, ey0, _ = store.extent_mm(k)
        px, py = _pixel_mm(store, k)
        if r1 <= r0 or c1 <= c0:  # panned off the mosaic
            return _image(hv, np.full((1, 1), np.nan, np.float32), (xr[0], yr[0], xr[1], yr[1]), norm, cmap,
                          f"{stretch} stretch").opts(data_aspect=1, frame_width=width)
        data = np.asarray(store.read(k, r0, r1, c0, c1), dtype=np.float32)
        bounds = (ex0 + c0 * px, ey0 + r0 * py, ex0 + c1 * px, ey0 + r1 * py)
        return _image(hv, norm(data), bounds, norm, cmap, f"{stretch} stretch").relabel(f"level {k}").opts(
            data_aspect=1, frame_width=width, xlabel="focal plane x (mm)", ylabel="focal plane y (mm)")

    # options are set on each image: .opts on the DynamicMap itself would wrap the callback
    return hv.DynamicMap(view, streams=[hv.streams.RangeXY()])
