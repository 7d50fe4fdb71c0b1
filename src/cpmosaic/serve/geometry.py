"""Deep Zoom geometry: every level anchored at the top-left corner of the image.

A Deep Zoom image of ``W x H`` pixels has levels ``0..L`` (``L = ceil(log2(max(W, H)))``);
level ``l`` is ``ceil(W / d) x ceil(H / d)`` with ``d = 2**(L - l)`` and its pixel
``(r, c)`` (``r`` from the top) covers the level-0 pixels ``[r d, (r + 1) d) x [c d, (c + 1) d)``
counted from the top-left corner.  A store's pyramid is anchored at the bottom-left (data row
0 is the bottom, +y up), so its level ``k`` blocks coincide with Deep Zoom blocks only when
``2**k`` divides ``H``.  :class:`DeepZoom` therefore reads the finest store level that is
aligned (``2**a`` divides ``H``) and reduces it 2 x 2 at a time from the top, the same
NaN-ignoring mean the store's pyramid is built with.  Levels far above ``a`` would need large
reads per tile, so the first level of at most :data:`CACHED_PIXELS` pixels is computed once,
streaming, and kept.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from ..kernels import block_reduce

__all__ = ["DeepZoom", "dzi_levels", "padded_window", "trailing_zeros", "CACHED_PIXELS"]

#: Largest Deep Zoom level (pixels) computed whole and kept for the coarser levels.
CACHED_PIXELS = 2048 * 2048


def dzi_levels(width: int, height: int) -> int:
    """Index of the top (full resolution) Deep Zoom level: ``ceil(log2(max(W, H)))``.

    >>> dzi_levels(3960, 3954), dzi_levels(1, 1)
    (12, 0)
    """
    return math.ceil(math.log2(max(width, height))) if max(width, height) > 1 else 0


def padded_window(shape: tuple[int, int], i0: int, i1: int, j0: int,
                  j1: int) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """A NaN float32 window of rows ``[i0, i1)``, columns ``[j0, j1)`` of a level of ``shape``,
    and the part of it inside the level (``(ci0, ci1, cj0, cj1)``; None if none is).

    >>> out, inside = padded_window((4, 4), -1, 2, 3, 6)
    >>> out.shape, inside
    ((3, 3), (0, 2, 3, 4))
    """
    h, w = shape
    out = np.full((i1 - i0, j1 - j0), np.nan, np.float32)
    ci0, ci1, cj0, cj1 = max(i0, 0), min(i1, h), max(j0, 0), min(j1, w)
    return out, ((ci0, ci1, cj0, cj1) if ci1 > ci0 and cj1 > cj0 else None)


def trailing_zeros(n: int) -> int:
    """Largest ``a`` with ``2**a`` dividing ``n`` (``n > 0``).

    >>> trailing_zeros(3954), trailing_zeros(4096), trailing_zeros(7)
    (1, 12, 0)
    """
    return (n & -n).bit_length() - 1


def halve(a: np.ndarray, times: int) -> np.ndarray:
    """``times`` NaN-ignoring 2 x 2 means from the top-left (ragged edges reduce what exists)."""
    for _ in range(times):
        a = block_reduce(a, 2, "mean")
    return a


class DeepZoom:
    """Top-left anchored Deep Zoom levels of a store, read by window.

    ``reader(k, i0, i1, j0, j1)`` returns rows ``[i0, i1)``, columns ``[j0, j1)`` of store
    level ``k`` (data rows from the bottom), NaN outside the level.
    """

    def __init__(self, shape0: tuple[int, int], n_levels: int, reader) -> None:
        self.height, self.width = shape0
        self.top = dzi_levels(self.width, self.height)
        self.reader = reader
        # finest store level whose blocks start at the top edge as Deep Zoom's do
        self.aligned = min(trailing_zeros(self.height), n_levels - 1)
        e = self.aligned
        while self.level_shape_e(e)[0] * self.level_shape_e(e)[1] > CACHED_PIXELS:
            e += 1
        self.cached_e = e
        self._cached: np.ndarray | None = None
        self._lock = threading.Lock()

    def level_shape_e(self, e: int) -> tuple[int, int]:
        """``(height, width)`` of the level ``2**e`` times smaller than level 0."""
        d = 2**e
        return (-(-self.height // d), -(-self.width // d))

    def level_shape(self, level: int) -> tuple[int, int]:
        """``(height, width)`` of Deep Zoom level ``level``."""
        return self.level_shape_e(self.top - level)

    def _source(self, e: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Display rows ``[r0, r1)`` (from the top), columns ``[c0, c1)`` of level ``2**e``,
        with ``e`` the aligned store level or the cached one."""
        if e == self.cached_e and e > self.aligned:
            full = self.cached()
            out = np.full((r1 - r0, c1 - c0), np.nan, np.float32)
            h, w = full.shape
            a0, a1, b0, b1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
            if a1 > a0 and b1 > b0:
                out[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = full[a0:a1, b0:b1]
            return out
        h = self.height >> e  # exact: 2**e divides the height
        return self.reader(e, h - r1, h - r0, c0, c1)[::-1]

    def cached(self) -> np.ndarray:
        """The whole level ``2**cached_e`` (display rows from the top), computed once by strips."""
        with self._lock:
            if self._cached is None:
                a, e = self.aligned, self.cached_e
                f = 2 ** (e - a)
                h, w = self.level_shape_e(e)
                wa = w * f
                out = np.empty((h, w), np.float32)
                strip = max(1, (8 * 2**20) // max(wa * f, 1))  # rows of level e per read: ~32 MB
                for r in range(0, h, strip):
                    r1 = min(r + strip, h)
                    out[r:r1] = halve(self._source(a, r * f, r1 * f, 0, wa), e - a)[: r1 - r, :w]
                self._cached = out
            return self._cached

    def read(self, e: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Display rows ``[r0, r1)`` (from the top), columns ``[c0, c1)`` of the level
        ``2**e`` times smaller than level 0 (NaN outside the image)."""
        if e <= self.aligned:
            return self._source(e, r0, r1, c0, c1)
        base = self.cached_e if e >= self.cached_e else self.aligned
        f = 2 ** (e - base)
        a = self._source(base, r0 * f, r1 * f, c0 * f, c1 * f)
        return halve(a, e - base).astype(np.float32, copy=False)
