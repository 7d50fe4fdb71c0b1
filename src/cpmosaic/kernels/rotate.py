"""Quarter-turn rotations for ``[y, x]`` arrays whose row index grows with y (y up).

A counter-clockwise quarter turn in the focal plane is ``np.rot90(a, -1)`` for
such arrays (numpy's ``rot90`` is counter-clockwise for row 0 at the *top*).
:func:`bin_rotate_into` fuses block reduction, rotation and placement into a
mosaic so the mosaic builder never materialises a binned or rotated detector.
"""

from __future__ import annotations

import numpy as np

from ._jit import KIND_FLOAT, check_image, check_int, check_mask_bits, check_out, mask_view, ngjit, raw_view
from .binning import check_factor_how, reduce_block_row, reduced_shape

__all__ = ["bin_rotate_into", "rotate_quarter"]


_TILE = 64  # 64 x 64 tiles: a source and a destination tile both stay in L1/L2


@ngjit
def _rotate_core(src, nq, dst):
    """``dst = np.rot90(src, -nq)`` for nq in 1..3, tile by tile.

    A quarter turn is a transpose plus a flip; done naively one of the two
    arrays is walked down its columns, touching a new cache line per element
    (numpy's strided copy is ~10x slower than memory bandwidth).  Working in
    square tiles keeps both the reads and the writes within a few cache lines.
    """
    ny, nx = src.shape
    # Reversed indices are unsigned: numba's negative-index wraparound check
    # would otherwise keep these loops from vectorising.
    lastx = np.uint64(nx - 1)
    if nq == 2:
        for i in range(ny):
            srow = src[ny - 1 - i]
            drow = dst[i]
            for j in range(nx):
                drow[j] = srow[lastx - np.uint64(j)]
        return
    # nq == 1: dst[i, j] = src[ny-1-j, i];  nq == 3: dst[i, j] = src[j, nx-1-i]   (dst is nx x ny)
    for i0 in range(0, nx, _TILE):
        i1 = min(i0 + _TILE, nx)
        for j0 in range(0, ny, _TILE):
            j1 = min(j0 + _TILE, ny)
            if nq == 1:
                for j in range(j0, j1):
                    srow = src[ny - 1 - j]
                    for i in range(i0, i1):
                        dst[i, j] = srow[i]
            else:
                for j in range(j0, j1):
                    srow = src[j]
                    for i in range(i0, i1):
                        dst[i, j] = srow[lastx - np.uint64(i)]


def rotate_quarter(image: np.ndarray, n_quarter: int) -> np.ndarray:
    """Rotate by ``n_quarter`` counter-clockwise quarter turns (y-up arrays).

    Equivalent to ``np.rot90(image, -n_quarter)``: a pixel at ``(x, y)`` relative
    to the array centre lands at ``R(90 deg * n) (x, y)`` with ``R`` the usual
    counter-clockwise rotation matrix.  ``n_quarter`` is taken mod 4 (negative
    turns are clockwise).

    Returns
    -------
    numpy.ndarray
        A new C-contiguous array of the same dtype and byte order (a copy even
        for ``n=0``).  Pixels are moved as raw bytes, so big-endian input needs
        no decoding.

    Examples
    --------
    >>> rotate_quarter(np.array([[0, 1, 2], [3, 4, 5]]), 1)  # row 0 is the bottom
    array([[3, 0],
           [4, 1],
           [5, 2]])
    """
    image = check_image(image)
    n = check_int(n_quarter, "n_quarter") % 4
    if n == 0 or image.size == 0 or image.dtype.itemsize not in (1, 2, 4, 8) or image.dtype.hasobject:
        return np.ascontiguousarray(np.rot90(image, -n)) if n else image.copy(order="C")
    shape = image.shape if n == 2 else image.shape[::-1]
    out = np.empty(shape, image.dtype)
    utype = np.dtype(f"=u{image.dtype.itemsize}")
    _rotate_core(image.view(utype), n, out.view(utype))
    return out


def _place_rows(image: np.ndarray, nq: int, out: np.ndarray, oy0: int, ox0: int) -> None:
    """Unbinned float32 pixels, unturned or half-turned, into ``out`` at ``(oy0, ox0)``, clipped.

    The full-resolution case of :func:`_bin_rotate_core` (factor 1, no mask,
    ``nq`` 0 or 2) is a plain (byte-swapping) copy, which numpy's cast loops do
    at several times the speed of the general kernel's decode to float64 and
    back.  A float32 cast keeps every bit, NaN payloads included.
    """
    ny, nx = image.shape
    src = image if nq == 0 else image[::-1, ::-1]
    y0, y1 = max(0, -oy0), min(ny, out.shape[0] - oy0)
    x0, x1 = max(0, -ox0), min(nx, out.shape[1] - ox0)
    if y0 < y1 and x0 < x1:
        np.copyto(out[oy0 + y0:oy0 + y1, ox0 + x0:ox0 + x1], src[y0:y1, x0:x1])


@ngjit
def _bin_rotate_core(raw, swap, kind, mask, use_mask, bits, factor, how, nq, out, oy0, ox0):
    ny, nx = raw.shape
    nby = (ny + factor - 1) // factor
    nbx = (nx + factor - 1) // factor
    hh, ww = out.shape
    acc = np.empty(nx, np.float64)
    cnt = np.empty(nx, np.float64)
    res = np.empty(nbx, np.float32)
    # Reduced pixel (p, q) goes to rotated (i, j):
    #   n=0: (p, q)   n=1: (q, nby-1-p)   n=2: (nby-1-p, nbx-1-q)   n=3: (nbx-1-q, p)
    # Block row p therefore fills one out row (n=0, 2) or one out column (n=1, 3);
    # rows that land wholly outside ``out`` are never read.
    for p in range(nby):
        if nq == 0 or nq == 2:
            orow = oy0 + (p if nq == 0 else nby - 1 - p)
            if orow < 0 or orow >= hh:
                continue
            # q range whose column lands inside [0, ww)
            if nq == 0:
                q0 = max(0, -ox0)
                q1 = min(nbx, ww - ox0)
            else:
                q0 = max(0, ox0 + nbx - ww)
                q1 = min(nbx, ox0 + nbx)
            if q0 >= q1:
                continue
            reduce_block_row(raw, swap, kind, mask, use_mask, bits, factor, how, p, acc, cnt, res)
            if nq == 0:
                for q in range(q0, q1):
                    out[orow, ox0 + q] = res[q]
            else:
                for q in range(q0, q1):
                    out[orow, ox0 + nbx - 1 - q] = res[q]
        else:
            ocol = ox0 + (nby - 1 - p if nq == 1 else p)
            if ocol < 0 or ocol >= ww:
                continue
            if nq == 1:
                q0 = max(0, -oy0)
                q1 = min(nbx, hh - oy0)
            else:
                q0 = max(0, oy0 + nbx - hh)
                q1 = min(nbx, oy0 + nbx)
            if q0 >= q1:
                continue
            reduce_block_row(raw, swap, kind, mask, use_mask, bits, factor, how, p, acc, cnt, res)
            if nq == 1:
                for q in range(q0, q1):
                    out[oy0 + q, ocol] = res[q]
            else:
                for q in range(q0, q1):
                    out[oy0 + nbx - 1 - q, ocol] = res[q]


def bin_rotate_into(
    image: np.ndarray,
    factor: int,
    n_quarter: int,
    out: np.ndarray,
    out_y0: int,
    out_x0: int,
    how: str = "mean",
    mask: np.ndarray | None = None,
    mask_bits: int = 0xFFFFFFFF,
) -> None:
    """Block-reduce, rotate and paste an image into a mosaic, in one pass.

    Equivalent to ``rotate_quarter(block_reduce(image, factor, how, mask, mask_bits),
    n_quarter)`` written into ``out[out_y0:, out_x0:]``, but without the two
    temporaries.  Parts that fall outside ``out`` (``out_y0``/``out_x0`` may be
    negative) are skipped, and their input rows are not even read.  Blocks
    without a valid pixel write NaN.

    Parameters
    ----------
    image
        2-D ``[y, x]`` array, any dtype :func:`block_reduce` accepts (big-endian too).
    factor
        Block size ``>= 1``.
    n_quarter
        Counter-clockwise quarter turns (mod 4), as :func:`rotate_quarter`.
    out
        Native float32 2-D mosaic, written in place.
    out_y0, out_x0
        Position of the rotated, binned image's ``[0, 0]`` in ``out``.
    how, mask, mask_bits
        As :func:`block_reduce`.

    Examples
    --------
    >>> mosaic = np.zeros((2, 3), np.float32)
    >>> bin_rotate_into(np.ones((4, 2), np.float32), 2, 1, mosaic, 0, 1)
    >>> mosaic
    array([[0., 1., 1.],
           [0., 0., 0.]], dtype=float32)
    """
    image = check_image(image)
    factor, how_code = check_factor_how(factor, how)
    nq = check_int(n_quarter, "n_quarter") % 4
    out = check_out(out)
    out_y0 = check_int(out_y0, "out_y0")
    out_x0 = check_int(out_x0, "out_x0")
    raw, swap, kind = raw_view(image)
    m, use_mask = mask_view(mask, image.shape)
    bits = check_mask_bits(mask_bits)
    if image.size == 0:
        return
    nby, nbx = reduced_shape(image.shape, factor)
    rh, rw = (nby, nbx) if nq % 2 == 0 else (nbx, nby)
    if out_y0 >= out.shape[0] or out_x0 >= out.shape[1] or out_y0 + rh <= 0 or out_x0 + rw <= 0:
        return
    if factor == 1 and nq % 2 == 0 and not use_mask and kind == KIND_FLOAT and raw.dtype == np.uint32:
        _place_rows(image, nq, out, out_y0, out_x0)
        return
    _bin_rotate_core(raw, swap, kind, m, use_mask, bits, factor, how_code, nq, out, out_y0, out_x0)
