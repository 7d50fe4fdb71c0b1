"""NaN- and mask-aware block reduction (binning) and the 2x2 pyramid step.

The input is streamed row by row: each raw row is decoded (byte-swapped if it is
big-endian) into a float64 scratch row and folded into float64 per-block
accumulators; a finished block row is written out as float32.  Every input pixel
is read once and nothing image-sized is allocated besides the output.
"""

from __future__ import annotations

import numpy as np

from ._jit import check_image, check_int, check_mask_bits, check_out, decode_row, mask_view, ngjit, raw_view

__all__ = ["HOW", "block_reduce", "pyramid_reduce"]

#: Reductions accepted by :func:`block_reduce` and ``bin_rotate_into``.
HOW = {"mean": 0, "sum": 1, "max": 2, "min": 3}


@ngjit
def reduce_block_row(raw, swap, kind, mask, use_mask, bits, factor, how, by, rowbuf, acc, cnt, res):
    """Reduce block row ``by`` of ``raw`` into ``res[:nbx]`` (float32, NaN where empty).

    ``rowbuf`` (len nx), ``acc`` and ``cnt`` (len nbx) are caller-owned scratch so a
    whole image is reduced without allocating per row.
    """
    ny, nx = raw.shape
    nbx = res.shape[0]
    y0 = by * factor
    y1 = min(y0 + factor, ny)
    init = 0.0
    if how == 2:
        init = -np.inf
    elif how == 3:
        init = np.inf
    for b in range(nbx):
        acc[b] = init
        cnt[b] = 0
    for y in range(y0, y1):
        decode_row(raw, y, 0, nx, swap, kind, rowbuf)
        if use_mask:
            for x in range(nx):
                if (np.uint64(mask[y, x]) & bits) != np.uint64(0):
                    rowbuf[x] = np.nan
        if factor == 1:
            # No blocks to loop over: keep the inner loop trivial.
            for x in range(nx):
                v = rowbuf[x]
                if v == v:
                    acc[x] = v
                    cnt[x] = 1
            continue
        for b in range(nbx):
            x0 = b * factor
            x1 = min(x0 + factor, nx)
            c = 0
            if how <= 1:
                s = 0.0
                for x in range(x0, x1):
                    v = rowbuf[x]
                    if v == v:
                        s += v
                        c += 1
                acc[b] += s
            elif how == 2:
                m = acc[b]
                for x in range(x0, x1):
                    v = rowbuf[x]
                    if v == v:
                        if v > m:
                            m = v
                        c += 1
                acc[b] = m
            else:
                m = acc[b]
                for x in range(x0, x1):
                    v = rowbuf[x]
                    if v == v:
                        if v < m:
                            m = v
                        c += 1
                acc[b] = m
            cnt[b] += c
    for b in range(nbx):
        c = cnt[b]
        if c == 0:
            res[b] = np.nan
        elif how == 0:
            res[b] = np.float32(acc[b] / c)
        else:
            res[b] = np.float32(acc[b])


@ngjit
def _block_reduce_core(raw, swap, kind, mask, use_mask, bits, factor, how, out):
    nx = raw.shape[1]
    nby, nbx = out.shape
    rowbuf = np.empty(nx, np.float64)
    acc = np.empty(nbx, np.float64)
    cnt = np.empty(nbx, np.int64)
    for by in range(nby):
        reduce_block_row(raw, swap, kind, mask, use_mask, bits, factor, how, by, rowbuf, acc, cnt, out[by])


def reduced_shape(shape: tuple[int, int], factor: int) -> tuple[int, int]:
    """Output shape of a block reduction: ``ceil(n / factor)`` on each axis."""
    return (-(-shape[0] // factor), -(-shape[1] // factor))


def check_factor_how(factor: object, how: object) -> tuple[int, int]:
    """Validate ``factor`` (int >= 1) and ``how``; return ``(factor, how code)``."""
    factor = check_int(factor, "factor", minimum=1)
    if how not in HOW:
        raise ValueError(f"how={how!r} is not one of {sorted(HOW)}")
    return factor, HOW[how]


def block_reduce(
    image: np.ndarray,
    factor: int,
    how: str = "mean",
    mask: np.ndarray | None = None,
    mask_bits: int = 0xFFFFFFFF,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Bin an image by an integer factor, ignoring NaN and masked pixels.

    Parameters
    ----------
    image
        2-D array ``[y, x]``: float32/float64/int16/uint16/int32/..., native or
        big-endian (decoded row by row inside the kernel, never copied whole).
    factor
        Block size, ``>= 1``.  Edge blocks that stick out of the image reduce over
        the pixels that exist.  ``factor=1`` gives a float32 copy with masked
        pixels set to NaN.
    how
        ``"mean"``, ``"sum"``, ``"max"`` or ``"min"``.  Accumulation is float64.
    mask
        Optional integer (or bool) array of ``image``'s shape; pixels with
        ``mask & mask_bits != 0`` are ignored, like NaN pixels.
    mask_bits
        Bits of ``mask`` that make a pixel bad.
    out
        Optional native float32 output of shape ``(ceil(ny/f), ceil(nx/f))``.

    Returns
    -------
    numpy.ndarray
        float32 ``(ceil(ny/f), ceil(nx/f))``; NaN for blocks without a valid pixel
        (also for ``"sum"``).

    Examples
    --------
    >>> a = np.arange(9, dtype=np.float32).reshape(3, 3)
    >>> block_reduce(a, 2)
    array([[2. , 3.5],
           [6.5, 8. ]], dtype=float32)
    """
    image = check_image(image)
    factor, how_code = check_factor_how(factor, how)
    raw, swap, kind = raw_view(image)
    m, use_mask = mask_view(mask, image.shape)
    bits = check_mask_bits(mask_bits)
    shape = reduced_shape(image.shape, factor)
    if out is None:
        out = np.empty(shape, np.float32)
    else:
        out = check_out(out)
        if out.shape != shape:
            raise ValueError(f"out shape {out.shape} != expected {shape} for image {image.shape} and factor={factor}")
    if image.size:
        _block_reduce_core(raw, swap, kind, m, use_mask, bits, factor, how_code, out)
    return out


def pyramid_reduce(image: np.ndarray) -> np.ndarray:
    """One pyramid level down: NaN-ignoring 2x2 mean, output ``ceil(n/2)``.

    Examples
    --------
    >>> pyramid_reduce(np.array([[1, np.nan], [3, 4]], np.float32))
    array([[2.6666667]], dtype=float32)
    """
    return block_reduce(image, 2, "mean")
