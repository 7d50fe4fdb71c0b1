"""Assemble one raw amplifier segment into a detector image.

The raw segment (as FITS gives it, big-endian allowed) is read once: per output
row we decode that raw row's overscan pixels into a small scratch row and take
their level, then decode, subtract, scale and store the data pixels in one
vectorised loop, straight into the (possibly flipped) detector row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._jit import (
    check_image,
    check_int,
    check_out,
    KIND_FLOAT,
    KIND_SIGNED,
    decode_int_row,
    decode_one,
    decode_row,
    nanmedian_inplace,
    ngjit,
    ngjit_fast,
    raw_view,
)

__all__ = ["OVERSCAN_MODES", "assemble_amp"]

#: Overscan subtraction modes accepted by :func:`assemble_amp`.
OVERSCAN_MODES = {"none": 0, "median": 1, "mean": 2, "single": 3}


@ngjit
def _box_level(raw, swap, kind, int_raw, ox0, oy0, ow, oh):
    """NaN-ignoring median over a whole overscan box ("single" mode)."""
    ivals = np.empty(ow * oh, np.int64)
    if int_raw:
        lo = np.int64(2**62)
        hi = np.int64(-(2**62))
        for r in range(oh):
            a, b = decode_int_row(raw, oy0 + r, ox0, ow, swap, kind == KIND_SIGNED, ivals[r * ow : (r + 1) * ow])
            lo = min(lo, a)
            hi = max(hi, b)
        return _int_median(ivals, ow * oh, lo, hi)
    buf = np.empty(ow * oh, np.float64)
    for r in range(oh):
        decode_row(raw, oy0 + r, ox0, ow, swap, kind, buf[r * ow : (r + 1) * ow])
    return _median(buf, ow * oh, ivals)


@ngjit
def _int_range(vals, n, ivals):
    """``ivals[:n] = vals[:n]`` as int64, plus their min and max, in one vectorised pass.

    Returns ``(ok, lo, hi)``; ``ok`` is False if any value is NaN, not an
    integer or too large, and then ``lo``/``hi`` mean nothing.
    """
    bad = 0
    lo = np.int64(2**62)
    hi = np.int64(-(2**62))
    for i in range(n):
        v = vals[i]
        good = v == np.floor(v) and abs(v) < 4.0e18
        bad += not good
        iv = np.int64(v) if good else np.int64(0)
        ivals[i] = iv
        lo = iv if iv < lo else lo
        hi = iv if iv > hi else hi
    return bad == 0, lo, hi


@ngjit_fast
def _row_mean(buf, n):
    """NaN-ignoring mean; selects instead of branches so it vectorises.

    (``c += ok``, not ``c += 1 if ok else 0``: LLVM gives up on the latter
    next to a float reduction.)
    """
    s = 0.0
    c = 0
    for i in range(n):
        v = buf[i]
        ok = v == v
        s += v if ok else 0.0
        c += ok
    return s / c if c > 0 else np.nan


@ngjit
def _median(vals, n, ivals):
    """Median of overscan pixels ``vals[:n]``, as ``np.nanmedian``; may reorder ``vals``.

    Raw ADU are integers (also in float files), so the median is the smallest
    integer ``t`` with more than half of the values ``<= t``: a bisection over
    ``[min, max]`` whose steps are vectorised compare-and-count passes, with no
    data-dependent branch per pixel (a quickselect on 64 values is dominated by
    mispredictions, a counting sort by store-to-load stalls).  A cosmic ray only
    adds a step or two.  Non-integral or NaN data use selection instead.
    ``ivals`` (int64) is scratch.
    """
    if n > 0:
        ok, lo, hi = _int_range(vals, n, ivals)
        if ok:
            return _int_median(ivals, n, lo, hi)
    return nanmedian_inplace(vals, n)


@ngjit
def _int_median(ivals, n, lo, hi):
    """Median of integers ``ivals[:n]`` (``n > 0``) lying in ``[lo, hi]``, by bisection.

    The count is inlined and the bounds move by selects, not branches: the
    direction of each step is a coin toss the branch predictor always loses.
    """
    k = (n - 1) // 2  # 0-based rank of the (lower) middle value
    a, b = lo, hi
    while a < b:
        m = a + ((b - a) >> 1)
        c = 0
        for i in range(n):
            c += ivals[i] <= m
        above = c > k
        b = m if above else b
        a = a if above else m + 1
    if n % 2 == 1:
        return np.float64(a)
    # even count: rank k+1 is a again, or the smallest value above a (one fused pass)
    c = 0
    nxt = np.int64(2**62)
    for i in range(n):
        v = ivals[i]
        c += v <= a
        cand = v if v > a else np.int64(2**62)  # two selects: vectorises, unlike `and`
        nxt = cand if cand < nxt else nxt
    return np.float64(a) if c > k + 1 else (np.float64(a) + np.float64(nxt)) / 2.0


@ngjit
def _assemble_core(raw, swap, kind, dx0, dy0, dw, dh, ox0, oy0, ow, oh, out, out_y0, out_x0,
                   flip_x, flip_y, mode, gain, row_start, row_stop):  # fmt: skip
    obuf = np.empty(max(ow, 1), np.float64)
    ibuf = np.empty(max(ow, 1), np.int64)
    row = np.empty(max(dw, 1), np.float32)
    # 16/32-bit integer raws (all CCD raws) are medianed without float decoding.
    int_raw = kind != KIND_FLOAT and raw.itemsize <= 4
    level = 0.0
    if mode == 3:
        level = _box_level(raw, swap, kind, int_raw, ox0, oy0, ow, oh)
    for i in range(row_start, row_stop):
        # r is the output row (relative to out_y0); flip_y maps it to the data-box row.
        # Raw rows are always read in ascending order (flip_y writes the output
        # bottom-up instead): a descending read stream defeats the hardware
        # prefetcher and costs 2.5x.
        r = row_start + row_stop - 1 - i if flip_y else i
        y = dy0 + (dh - 1 - r if flip_y else r)
        # The serial overscan of the same raw row: same readout, same bias drift.
        if mode == 1 and int_raw and ow > 0:
            lo, hi = decode_int_row(raw, y, ox0, ow, swap, kind == KIND_SIGNED, ibuf)
            level = _int_median(ibuf, ow, lo, hi)
        elif mode == 1 or mode == 2:
            decode_row(raw, y, ox0, ow, swap, kind, obuf)
            level = _median(obuf, ow, ibuf) if mode == 1 else _row_mean(obuf, ow)
        src = raw[y, dx0 : dx0 + dw]
        dst = out[out_y0 + r, out_x0 : out_x0 + dw]
        # Decode, subtract, scale and store in one loop (swap/kind are loop
        # invariant, so LLVM unswitches and vectorises each variant).
        if flip_x or flip_y:
            # Forward into a scratch row that stays in L1, then copied out: a loop
            # that decodes in reverse vectorises badly (3x slower).  With flip_y the
            # output rows go bottom-up, and each is stored from its last element
            # down, so that the whole write stream descends: rows descending but
            # each written upwards (a sawtooth) defeats the prefetcher (2x slower).
            # Unsigned indices skip numba's negative-index wraparound, which
            # otherwise stops the reversed loops from vectorising.
            for j in range(dw):
                row[j] = np.float32((decode_one(src[j], swap, kind) - level) * gain)
            last = np.uint64(dw - 1)
            if not flip_y:
                for j in range(dw):
                    dst[j] = row[last - np.uint64(j)]
            elif flip_x:
                for j in range(dw):
                    dst[last - np.uint64(j)] = row[j]
            else:
                for j in range(dw):
                    k = last - np.uint64(j)
                    dst[k] = row[k]
        else:
            for j in range(dw):
                dst[j] = np.float32((decode_one(src[j], swap, kind) - level) * gain)


def _check_box(box: Sequence[int], name: str, shape: tuple[int, int], allow_empty: bool = False) -> tuple[int, ...]:
    try:
        vals = tuple(check_int(v, name) for v in np.asarray(box).ravel().tolist())
    except ValueError:
        raise ValueError(f"{name}={box!r} must be 4 integers (x0, y0, width, height)") from None
    if len(vals) != 4:
        raise ValueError(f"{name}={box!r} must be 4 integers (x0, y0, width, height)")
    x0, y0, w, h = vals
    ny, nx = shape
    empty_ok = allow_empty and (w == 0 or h == 0)
    if not empty_ok and (w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > nx or y0 + h > ny):
        raise ValueError(f"{name}={vals} lies outside the segment of shape (ny={ny}, nx={nx}) or is empty")
    return vals


def assemble_amp(
    segment: np.ndarray,
    data_box: Sequence[int],
    overscan_box: Sequence[int],
    out: np.ndarray,
    out_y0: int,
    out_x0: int,
    flip_x: bool,
    flip_y: bool,
    *,
    overscan: str = "median",
    gain: float = 1.0,
    row_start: int = 0,
    row_stop: int | None = None,
) -> None:
    """Overscan-subtract, gain-correct, flip and place one raw amplifier segment.

    Parameters
    ----------
    segment
        2-D raw amplifier array ``[y, x]`` (int16/uint16/int32/uint32/float32/
        float64, native or big-endian as a FITS memmap gives it).  Big-endian data
        are byte-swapped row by row inside the kernel, never copied whole.
    data_box, overscan_box
        ``(x0, y0, width, height)`` in raw segment pixels (obs_lsst's
        ``[[x0, y0], [w, h]]`` flattened), e.g. ITL ``(3, 0, 509, 2000)`` and
        ``(512, 0, 64, 2000)``.  With the per-row modes the overscan box must cover
        the data box rows: the level for raw row ``y`` comes from overscan row ``y``.
        The whole overscan box is used; pass a narrower one to drop columns.
    out
        Native float32 2-D detector image, written in place.
    out_y0, out_x0
        Where the data box's (flipped) first row/column lands in ``out``.  The
        amp must fit inside ``out``.
    flip_x, flip_y
        Reverse the columns / rows of the data box.
    overscan
        ``"median"`` (per-row median), ``"mean"`` (per-row mean), ``"single"``
        (one median over the whole overscan box) or ``"none"``.  NaN overscan
        pixels are ignored; a row with none valid gives NaN.
    gain
        Multiplier applied after overscan subtraction (e-/ADU).
    row_start, row_stop
        Output rows to write, relative to ``out_y0`` (i.e. after the flip):
        ``out[out_y0+row_start : out_y0+row_stop]``.  ``row_stop=None`` means the
        data-box height.  "single" still takes its level from the whole box.

    Examples
    --------
    >>> seg = np.full((4, 6), 10, dtype=">i4"); seg[:, 4:] = 3
    >>> det = np.zeros((4, 4), np.float32)
    >>> assemble_amp(seg, (0, 0, 4, 4), (4, 0, 2, 4), det, 0, 0, False, False)
    >>> float(det[0, 0])
    7.0
    """
    segment = check_image(segment, "segment")
    raw, swap, kind = raw_view(segment, "segment")
    out = check_out(out)
    if overscan not in OVERSCAN_MODES:
        raise ValueError(f"overscan={overscan!r} is not one of {sorted(OVERSCAN_MODES)}")
    mode = OVERSCAN_MODES[overscan]
    shape = segment.shape
    dx0, dy0, dw, dh = _check_box(data_box, "data_box", shape)
    ox0, oy0, ow, oh = _check_box(overscan_box, "overscan_box", shape, allow_empty=mode == 0)
    if mode in (1, 2) and (oy0 > dy0 or oy0 + oh < dy0 + dh):
        raise ValueError(
            f"overscan_box={(ox0, oy0, ow, oh)} rows do not cover data_box={(dx0, dy0, dw, dh)} rows; "
            f"per-row overscan={overscan!r} needs them to"
        )
    out_y0 = check_int(out_y0, "out_y0")
    out_x0 = check_int(out_x0, "out_x0")
    if out_y0 < 0 or out_x0 < 0 or out_y0 + dh > out.shape[0] or out_x0 + dw > out.shape[1]:
        raise ValueError(
            f"amp of shape ({dh}, {dw}) at (out_y0={out_y0}, out_x0={out_x0}) does not fit in out of shape {out.shape}"
        )
    row_start = check_int(row_start, "row_start")
    row_stop = dh if row_stop is None else check_int(row_stop, "row_stop")
    if not 0 <= row_start <= row_stop <= dh:
        raise ValueError(f"row_start={row_start}, row_stop={row_stop} must satisfy 0 <= row_start <= row_stop <= {dh}")
    gain = float(gain)
    if not np.isfinite(gain):
        raise ValueError(f"gain={gain!r} must be finite")
    _assemble_core(raw, swap, kind, dx0, dy0, dw, dh, ox0, oy0, ow, oh, out, out_y0, out_x0,
                   bool(flip_x), bool(flip_y), mode, gain, row_start, row_stop)  # fmt: skip
