"""Data values to colour indices in one pass: the display layer's stretch and quantisation.

:mod:`cpmosaic.viz.display` maps ``data -> [0, 1] -> 0..255 -> RGBA`` with several whole-array
numpy passes (subtract, divide, clip, stretch, isfinite, multiply, clip, cast, table gather,
mask).  A tile encoder only needs the colour index and whether the pixel is drawn, so this
kernel does the same float32 arithmetic element by element, once:

* ``affine`` (the linear stretches): ``x = clip((d - vmin) / span, 0, 1)`` in float32, as
  :class:`~cpmosaic.viz.display.Normalize` computes it, then ``min(floor(x * 256), 255)``;
* otherwise the caller passes the display values already stretched (``values``) and the
  kernel only quantises them.

A pixel is transparent (index 0, alpha 0) where the data are not finite, where the display
value is not finite, or where the data equal ``nodata``; the same rule as
:func:`cpmosaic.viz.display.to_rgba` with the tile server's nodata mask.  ``counts[i]`` is the
number of drawn pixels of index ``i`` and ``counts[256]`` the number of transparent ones, which
lets the PNG encoder choose a palette with a free entry for transparency.
"""

from __future__ import annotations

import numpy as np

from ._jit import ngjit

__all__ = ["colour_index"]

_LEVELS = 256


@ngjit
def _index_kernel(values, data, affine, vmin, span, has_nodata, nodata, index, alpha, counts):
    h, w = data.shape
    zero = np.float32(0.0)
    one = np.float32(1.0)
    levels = np.float32(256.0)
    for i in range(h):
        for j in range(w):
            d = data[i, j]
            bad = not np.isfinite(d) or (has_nodata and d == nodata)
            if not bad:
                if affine:
                    x = (d - vmin) / span
                    if x < zero:
                        x = zero
                    elif x > one:
                        x = one
                else:
                    x = values[i, j]
                    bad = not np.isfinite(x)
            if bad:
                index[i, j] = 0
                alpha[i, j] = 0
                counts[256] += 1
                continue
            k = int(x * levels)  # x >= 0 here (affine: clipped; stretches: [0, 1])
            if k > 255:
                k = 255
            elif k < 0:
                k = 0
            index[i, j] = k
            alpha[i, j] = 255
            counts[k] += 1


def colour_index(data: np.ndarray, vmin: float, vmax: float, values: np.ndarray | None = None,
                 nodata: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour indices, alpha and index counts of a 2-D float32 image.

    Parameters
    ----------
    data
        The data values (2-D; cast to float32, as the display layer does).
    vmin, vmax
        The linear stretch's limits; used when *values* is None.
    values
        Display values in ``[0, 1]`` (a non-linear stretch already applied, NaN where not
        drawn), same shape as *data*; None for the linear stretch computed here.
    nodata
        A data value drawn transparent (NaN always is).

    Returns
    -------
    index : numpy.ndarray
        uint8 ``min(floor(x * 256), 255)``, 0 where transparent.
    alpha : numpy.ndarray
        uint8, 255 where drawn, 0 where transparent.
    counts : numpy.ndarray
        int64 ``(257,)``: drawn pixels of each index, then the transparent ones.

    Examples
    --------
    >>> idx, a, n = colour_index(np.array([[0.0, 5.0, 10.0, np.nan]], np.float32), 0.0, 10.0)
    >>> idx.tolist(), a.tolist(), int(n[256])
    ([[0, 128, 255, 0]], [[255, 255, 255, 0]], 1)
    """
    d = np.asarray(data, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"colour_index: data must be 2-D, got shape {d.shape}")
    affine = values is None
    v = d if values is None else np.asarray(values, dtype=np.float32)
    if v.shape != d.shape:
        raise ValueError(f"colour_index: values shape {v.shape} differs from data shape {d.shape}")
    index = np.empty(d.shape, np.uint8)
    alpha = np.empty(d.shape, np.uint8)
    counts = np.zeros(_LEVELS + 1, np.int64)
    with np.errstate(over="ignore"):
        nd = np.float32(nodata) if nodata is not None else np.float32(0.0)
    _index_kernel(v, d, affine, np.float32(vmin), np.float32(vmax - vmin), nodata is not None, nd,
                  index, alpha, counts)
    return index, alpha, counts
