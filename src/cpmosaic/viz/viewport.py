"""Which pyramid level and which pixels a view of the focal plane needs: plain functions, no UI.

A view is a focal-plane range (mm) shown on a screen area of ``width x height`` pixels.
The level to read is the coarsest one whose pixels are no larger than the screen's
(so a level is never magnified while a finer one exists), and only the pixels that
overlap the range are read.  Everything comes from the store's coordinate transforms
(``MosaicStore.scale_um``, ``translation_um``, ``shape``): pixel ``(i, j)`` of level ``k``
is centred at focal-plane ``(y, x) = translation_k + scale_k * (i, j)`` micrometres.

Reading a 1000 x 800 view therefore costs about the same on any mosaic: at most about
twice the screen's pixels per axis come back, whatever the store's size.

>>> import numpy as np
>>> class Two:  # anything with MosaicStore's transforms: 2 levels, 10 um then 20 um pixels
...     n_levels = 2
...     def scale_um(self, k): return (10.0 * 2**k, 10.0 * 2**k)
...     def translation_um(self, k): return (5.0 * 2**k, 5.0 * 2**k)
...     def shape(self, k): return (100 // 2**k, 100 // 2**k)
>>> w = plan_view(Two(), (0.0, 1.0), (0.0, 1.0), 50, 50)   # 1 mm on 50 px: 20 um per screen pixel
>>> w.level, w.rows, w.cols
(1, (0, 50), (0, 50))
>>> plan_view(Two(), (0.0, 0.2), (0.0, 0.2), 50, 50).level   # 4 um per screen pixel: the finest
0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ViewWindow", "amp_cutout", "full_range", "level_for_view", "level_pixel_mm", "plan_view", "read_view",
           "regrid_mean", "screen_pixel_mm", "window_for_view"]


@dataclass(frozen=True)
class ViewWindow:
    """The pixels of one level that a view reads.

    Attributes
    ----------
    level
        Pyramid level (0 the finest).
    rows, cols
        Half-open pixel ranges ``(start, stop)`` of the level (clipped to it; empty when the
        view is off the mosaic).
    bounds_mm
        ``(x0, y0, x1, y1)`` focal-plane mm of the outer pixel edges of the window.
    """

    level: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    bounds_mm: tuple[float, float, float, float]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows[1] - self.rows[0], self.cols[1] - self.cols[0])

    @property
    def empty(self) -> bool:
        return self.shape[0] <= 0 or self.shape[1] <= 0


def _n_levels(store) -> int:
    return int(getattr(store, "n_levels", None) or len(store.levels))


def _level_shape(store, k: int) -> tuple[int, int]:
    shape = store.shape(k) if callable(getattr(store, "shape", None)) else store.levels[k].shape
    return int(shape[-2]), int(shape[-1])


def level_pixel_mm(store, level: int) -> float:
    """The larger side of a pixel of *level*, in mm (from the store's scale transform)."""
    sy, sx = store.scale_um(level)
    return max(abs(float(sy)), abs(float(sx))) / 1000.0


def screen_pixel_mm(x_range, y_range, width: int, height: int) -> float:
    """Focal-plane mm per screen pixel of a view (the larger of the two axes: the plot keeps
    the aspect ratio, so the axis that fills the screen sets the scale).

    >>> screen_pixel_mm((0, 100), (0, 40), 1000, 800)
    0.1
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"screen size must be positive, got {width} x {height}")
    dx, dy = float(x_range[1]) - float(x_range[0]), float(y_range[1]) - float(y_range[0])
    if not (dx > 0 and dy > 0):
        raise ValueError(f"empty focal-plane range x={tuple(x_range)} y={tuple(y_range)}")
    return max(dx / width, dy / height)


def level_for_view(store, x_range, y_range, width: int, height: int) -> int:
    """The coarsest level whose pixels are no larger than a screen pixel (else level 0).

    Levels are checked from the coarsest down, so a view of the whole focal plane reads
    the smallest level that still fills the screen and a view of one amp reads level 0.
    """
    screen = screen_pixel_mm(x_range, y_range, width, height)
    for k in range(_n_levels(store) - 1, -1, -1):
        # a tiny tolerance: a level whose pixels match the screen's exactly is the one to use
        if level_pixel_mm(store, k) <= screen * (1 + 1e-9):
            return k
    return 0


def window_for_view(store, level: int, x_range, y_range) -> ViewWindow:
    """The pixels of *level* that overlap a focal-plane range (any overlap counts), clipped.

    Pixel ``j`` covers ``translation + scale * (j - 1/2 .. j + 1/2)``; it is read when that
    interval overlaps the range.
    """
    (sy, sx), (ty, tx) = store.scale_um(level), store.translation_um(level)
    h, w = _level_shape(store, level)

    def span(lo_mm, hi_mm, t, s, n):
        a, b = (lo_mm * 1000.0 - t) / s, (hi_mm * 1000.0 - t) / s
        a, b = min(a, b), max(a, b)
        start = math.floor(a + 0.5)  # first pixel whose upper edge j + 1/2 lies above a
        stop = math.ceil(b + 0.5)  # one past the last pixel whose lower edge lies below b
        start, stop = min(max(start, 0), n), min(max(stop, 0), n)
        return start, max(start, stop)

    r0, r1 = span(float(y_range[0]), float(y_range[1]), ty, sy, h)
    c0, c1 = span(float(x_range[0]), float(x_range[1]), tx, sx, w)
    x0, x1 = (tx + sx * (c0 - 0.5)) / 1000.0, (tx + sx * (c1 - 0.5)) / 1000.0
    y0, y1 = (ty + sy * (r0 - 0.5)) / 1000.0, (ty + sy * (r1 - 0.5)) / 1000.0
    return ViewWindow(int(level), (r0, r1), (c0, c1), (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))


def plan_view(store, x_range, y_range, width: int, height: int) -> ViewWindow:
    """Level and pixel window for a view of *x_range*, *y_range* on a *width* x *height* screen."""
    k = level_for_view(store, x_range, y_range, width, height)
    return window_for_view(store, k, x_range, y_range)


def full_range(store) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((x0, x1), (y0, y1))``: the whole mosaic in focal-plane mm (level 0's pixel edges)."""
    h, w = _level_shape(store, 0)
    win = window_for_view(store, 0, *_edges_mm(store, h, w))
    x0, y0, x1, y1 = win.bounds_mm
    return (x0, x1), (y0, y1)


def _edges_mm(store, h: int, w: int):
    (sy, sx), (ty, tx) = store.scale_um(0), store.translation_um(0)
    xs = sorted(((tx - sx / 2) / 1000.0, (tx + sx * (w - 0.5)) / 1000.0))
    ys = sorted(((ty - sy / 2) / 1000.0, (ty + sy * (h - 0.5)) / 1000.0))
    # pull in by a quarter pixel so rounding at the edges cannot add a pixel outside
    qx, qy = abs(sx) / 4000.0, abs(sy) / 4000.0
    return (xs[0] + qx, xs[1] - qx), (ys[0] + qy, ys[1] - qy)


def read_view(store, x_range, y_range, width: int, height: int) -> tuple[ViewWindow, np.ndarray]:
    """Plan a view and read its window (``[y, x]``, y up, float32; empty when off the mosaic).

    Examples
    --------
    >>> win, data = read_view(store, (-50, 50), (-40, 40), 1000, 800)   # doctest: +SKIP
    >>> win.level, data.shape                                          # doctest: +SKIP
    """
    win = plan_view(store, x_range, y_range, width, height)
    if win.empty:
        return win, np.zeros((0, 0), np.float32)
    data = store.read(win.level, win.rows[0], win.rows[1], win.cols[0], win.cols[1])
    return win, np.asarray(data, dtype=np.float32)


def regrid_mean(data: np.ndarray, bounds, width: int, height: int) -> np.ndarray:
    """*data* (y up) reduced to ``height x width`` by the mean (datashader ``regrid``)."""
    from holoviews.operation.datashader import regrid

    from . import style

    hv = style.holoviews()
    raw = hv.Image(np.ascontiguousarray(data[::-1]), bounds=tuple(bounds), kdims=["x", "y"])
    small = regrid(raw, width=int(width), height=int(height), dynamic=False, upsample=False,
                   x_range=(bounds[0], bounds[2]), y_range=(bounds[1], bounds[3]))
    return np.asarray(small.dimension_values(2, flat=False), dtype=np.float32)


def amp_cutout(store, detector: str, amp: str):
    """``(ViewWindow, pixels)`` of one amp at level 0 of a store (the finest), or None when absent.

    The amp's level-0 box comes from the store's placements (``Placement.amp_boxes``).
    """
    place = store.placements.get(detector)
    if place is None or detector not in set(store.present) or amp not in place.amp_boxes:
        return None
    y0, y1, x0, x1 = (int(v) for v in place.amp_boxes[amp])
    (sy, sx), (ty, tx) = store.scale_um(0), store.translation_um(0)
    xa, xb = (tx + sx * (x0 - 0.5)) / 1000.0, (tx + sx * (x1 - 0.5)) / 1000.0
    ya, yb = (ty + sy * (y0 - 0.5)) / 1000.0, (ty + sy * (y1 - 0.5)) / 1000.0
    # the window of those edges pulled in by a quarter pixel is exactly the box
    qx, qy = abs(sx) / 4000.0, abs(sy) / 4000.0
    win = window_for_view(store, 0, (min(xa, xb) + qx, max(xa, xb) - qx), (min(ya, yb) + qy, max(ya, yb) - qy))
    data = np.asarray(store.read(0, *win.rows, *win.cols), dtype=np.float32)
    return win, data
