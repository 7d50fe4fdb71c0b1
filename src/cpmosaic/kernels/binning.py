"""NaN- and mask-aware block reduction (binning) and the 2x2 pyramid step.

The input is streamed row by row: each raw element is decoded (byte-swapped if
it is big-endian) on the fly and folded into float64 per-column accumulators;
columns are folded into blocks and written out as float32 once per block row.
Every input pixel is read once and nothing image-sized is allocated besides the
output.
"""

from __future__ import annotations

import numpy as np

from ._jit import check_image, check_int, check_mask_bits, check_out, decode_one, mask_view, ngjit, raw_view

__all__ = ["HOW", "block_reduce", "pyramid_reduce"]

#: Reductions accepted by :func:`block_reduce` and ``bin_rotate_into``.
HOW = {"mean": 0, "sum": 1, "max": 2, "min": 3}


@ngjit
def _accum_row(src, msrc, use_mask, bits, swap, kind, how, first, acc):
    """Fold one raw row into per-column accumulators; return its count of bad pixels.

    Decoding is fused in (no scratch row) and NaN/masked pixels are selected
    away rather than branched around, so each loop vectorises.  The first row
    of a block assigns instead of accumulating, which saves an init pass.
    """
    bad = 0
    n = src.shape[0]
    if how <= 1:
        if first:
            for x in range(n):
                v = decode_one(src[x], swap, kind)
                if use_mask and (np.uint64(msrc[x]) & bits) != np.uint64(0):
                    v = np.nan
                ok = v == v
                acc[x] = v if ok else 0.0
                bad += 0 if ok else 1
        else:
            for x in range(n):
                v = decode_one(src[x], swap, kind)
                if use_mask and (np.uint64(msrc[x]) & bits) != np.uint64(0):
                    v = np.nan
                ok = v == v
                acc[x] += v if ok else 0.0
                bad += 0 if ok else 1
    elif how == 2:
        for x in range(n):
            v = decode_one(src[x], swap, kind)
            if use_mask and (np.uint64(msrc[x]) & bits) != np.uint64(0):
                v = np.nan
            a = -np.inf if first else acc[x]
            acc[x] = v if v > a else a
            bad += 0 if v == v else 1
    else:
        for x in range(n):
            v = decode_one(src[x], swap, kind)
            if use_mask and (np.uint64(msrc[x]) & bits) != np.uint64(0):
                v = np.nan
            a = np.inf if first else acc[x]
            acc[x] = v if v < a else a
            bad += 0 if v == v else 1
    return bad


@ngjit
def _accum_count_row(src, msrc, use_mask, bits, swap, kind, how, acc, cnt):
    """:func:`_accum_row` and :func:`_count_row` in one pass: for the rest of a block
    row once one of its rows held a bad pixel (then most do: one NaN in a
    thousand dirties 98% of 4k-wide rows, and two passes cost 1.4x).  Never a
    block's first row, so it always accumulates."""
    bad = 0
    n = src.shape[0]
    if how <= 1 and not use_mask:  # the common case, one plain loop so that it vectorises
        for x in range(n):
            v = decode_one(src[x], swap, kind)
            ok = v == v
            acc[x] += v if ok else 0.0
            cnt[x] += ok
            bad += not ok
        return bad
    for x in range(n):
        v = decode_one(src[x], swap, kind)
        if use_mask and (np.uint64(msrc[x]) & bits) != np.uint64(0):
            v = np.nan
        ok = v == v
        a = acc[x]
        if how <= 1:
            acc[x] = a + (v if ok else 0.0)
        elif how == 2:
            acc[x] = v if v > a else a
        else:
            acc[x] = v if v < a else a
        cnt[x] += ok
        bad += not ok
    return bad


@ngjit
def _count_row(src, msrc, use_mask, bits, swap, kind, cnt):
    """Per-column valid counts of one row (only run for rows holding bad pixels)."""
    for x in range(src.shape[0]):
        v = decode_one(src[x], swap, kind)
        if use_mask and (np.uint64(msrc[x]) & bits) != np.uint64(0):
            v = np.nan
        cnt[x] += 1.0 if v == v else 0.0


@ngjit
def _copy_row(src, msrc, use_mask, bits, swap, kind, res):
    for x in range(src.shape[0]):
        v = decode_one(src[x], swap, kind)
        if use_mask and (np.uint64(msrc[x]) & bits) != np.uint64(0):
            v = np.nan
        res[x] = np.float32(v)


@ngjit
def reduce_block_row(raw, swap, kind, mask, use_mask, bits, factor, how, by, acc, cnt, res):
    """Reduce block row ``by`` of ``raw`` into ``res[:nbx]`` (float32, NaN where empty).

    ``acc`` and ``cnt`` (float64, len nx) are caller-owned scratch so a whole
    image is reduced without allocating per row.  Rows are first folded into
    per-*column* accumulators (element-wise, SIMD-friendly, no reduction
    dependency); columns are folded into blocks once per block row.  Clean rows
    (no NaN, nothing masked: the usual case) are only counted, not per column;
    after the first row with a bad pixel, rows are accumulated and counted
    per column in one pass.
    """
    if factor == 1:  # every "block" is one pixel: decode, mask, store
        _copy_row(raw[by], mask[by] if use_mask else mask[0], use_mask, bits, swap, kind, res)
        return
    ny = raw.shape[0]
    y0 = by * factor
    y1 = min(y0 + factor, ny)
    nclean = 0.0
    dirty = False
    for y in range(y0, y1):
        src = raw[y]
        msrc = mask[y] if use_mask else mask[0]
        if dirty:  # cnt counts this row's valid pixels, clean or not
            _accum_count_row(src, msrc, use_mask, bits, swap, kind, how, acc, cnt)
        elif _accum_row(src, msrc, use_mask, bits, swap, kind, how, y == y0, acc) == 0:
            nclean += 1.0
        else:
            cnt[:] = 0.0
            dirty = True
            _count_row(src, msrc, use_mask, bits, swap, kind, cnt)
    _fold_columns(acc, cnt, dirty, nclean, raw.shape[1], factor, how, res)


@ngjit
def _finish(a, c, how):
    """Block value from its accumulator ``a`` and valid count ``c`` (NaN if empty)."""
    if how == 0:
        return np.float32(a / c)  # 0/0 is NaN for an empty block (numpy error model)
    return np.float32(a) if c > 0.0 else np.float32(np.nan)


@ngjit
def _fold_full_blocks(acc, cnt, dirty, nclean, nblocks, factor, how, res):
    """Blocks ``0..nblocks-1`` (all ``factor`` columns wide), b-outer/k-inner.

    Called with a literal ``factor`` from :func:`_fold_columns`; once LLVM inlines
    it the inner loop has a constant trip count and stride, unrolls, and the
    block loop vectorises with interleaved loads.
    """
    cfull = factor * nclean
    for b in range(nblocks):
        x0 = b * factor
        a = acc[x0]
        c = cfull
        for k in range(1, factor):
            v = acc[x0 + k]
            if how <= 1:
                a += v
            elif how == 2:
                a = v if v > a else a
            else:
                a = v if v < a else a
        if dirty:
            for k in range(factor):
                c += cnt[x0 + k]
        res[b] = _finish(a, c, how)


@ngjit
def _fold_columns(acc, cnt, dirty, nclean, nx, factor, how, res):
    """Fold per-column accumulators into blocks of ``factor`` columns.

    A column's valid count is ``nclean`` plus, if any row was dirty, ``cnt``.
    Common factors get a constant-stride loop (see :func:`_fold_full_blocks`);
    others loop over blocks with the in-block offset outside.  The last,
    partial block is done on its own.
    """
    nbx = res.shape[0]
    nfull = nx // factor
    if factor == 2:
        _fold_full_blocks(acc, cnt, dirty, nclean, nfull, 2, how, res)
    elif factor == 4:
        _fold_full_blocks(acc, cnt, dirty, nclean, nfull, 4, how, res)
    elif factor == 8:
        _fold_full_blocks(acc, cnt, dirty, nclean, nfull, 8, how, res)
    else:
        for k in range(1, factor):
            if how <= 1:
                for b in range(nfull):
                    acc[b * factor] += acc[b * factor + k]
            elif how == 2:
                for b in range(nfull):
                    a = acc[b * factor]
                    v = acc[b * factor + k]
                    acc[b * factor] = v if v > a else a
            else:
                for b in range(nfull):
                    a = acc[b * factor]
                    v = acc[b * factor + k]
                    acc[b * factor] = v if v < a else a
            if dirty:
                for b in range(nfull):
                    cnt[b * factor] += cnt[b * factor + k]
        for b in range(nfull):
            c = (cnt[b * factor] if dirty else 0.0) + nclean * factor
            res[b] = _finish(acc[b * factor], c, how)
    if nfull < nbx:  # partial last block
        x0 = nfull * factor
        a = acc[x0]
        c = (cnt[x0] if dirty else 0.0) + nclean
        for x in range(x0 + 1, nx):
            v = acc[x]
            c += (cnt[x] if dirty else 0.0) + nclean
            if how <= 1:
                a += v
            elif how == 2:
                a = v if v > a else a
            else:
                a = v if v < a else a
        res[nbx - 1] = _finish(a, c, how)


@ngjit
def _block_reduce_core(raw, swap, kind, mask, use_mask, bits, factor, how, out):
    nx = raw.shape[1]
    nby, nbx = out.shape
    acc = np.empty(nx, np.float64)
    cnt = np.empty(nx, np.float64)
    for by in range(nby):
        reduce_block_row(raw, swap, kind, mask, use_mask, bits, factor, how, by, acc, cnt, out[by])


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
    image = check_image(image)
    if image.dtype != np.dtype("=f4") or image.shape[0] < 2 or image.shape[1] < 2:
        return block_reduce(image, 2, "mean")
    from .halve import halve_mean_into

    ny, nx = image.shape
    out = np.empty(reduced_shape(image.shape, 2), np.float32)
    halve_mean_into(image, out)
    if ny % 2:  # the last row of blocks is one input row high
        block_reduce(image[ny - 1:], 2, "mean", out=out[-1:])
    if nx % 2:  # the last column, one input column wide
        block_reduce(image[:, nx - 1:], 2, "mean", out=out[:, -1:])
    return out
