"""Exact order statistics of a float buffer by radix selection (no sort).

Each float maps to an unsigned *key* whose integer order is the float order
(flip every bit of a negative, the sign bit of a positive).  A 65536-bin
histogram of the top 16 key bits (:func:`hist_top`) says which prefix holds each
wanted rank; each further pass histograms the next 16 bits of just the
prefixes still in play, so float32 needs two passes and float64 four.  Every
pass is a streaming, branch-free scatter: no data-dependent partitioning and
its mispredictions, and exact answers (ties and -0.0 included).
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import OVERLOAD_OPTIONS, ngjit

__all__ = ["NBINS", "NRANK", "TRASH", "fkey", "hist_top", "key_bits", "key_value", "lerp", "median_only",
           "quartiles", "radix_select"]  # fmt: skip

_SIGN32 = np.uint64(0x80000000)
_MASK32 = np.uint64(0xFFFFFFFF)
_SIGN64 = np.uint64(0x8000000000000000)
_DIGIT = np.uint64(0xFFFF)
NBINS = 65536
NRANK = 8  # min, max and two neighbours for each of the three quartiles
TRASH = NRANK  # hist2 row that collects elements of no interest


# --------------------------------------------------------------------------- keys
def fkey(x):  # pragma: no cover - replaced by the overload in jitted code
    raise NotImplementedError


@overload(fkey, jit_options=OVERLOAD_OPTIONS)
def _ov_fkey(x):
    # Flip all bits of negatives and the sign bit of positives: unsigned order of
    # the result is the float order (-0.0 sorts just below +0.0, both value 0).
    if x == types.float32:

        def impl(x):
            u = np.uint64(np.float32(x).view(np.uint32))
            if u & _SIGN32:
                return (~u) & _MASK32
            return u | _SIGN32

        return impl
    if x == types.float64:

        def impl(x):
            u = np.float64(x).view(np.uint64)
            if u & _SIGN64:
                return ~u
            return u | _SIGN64

        return impl
    return None


def key_value(key, like):  # pragma: no cover
    raise NotImplementedError


@overload(key_value, jit_options=OVERLOAD_OPTIONS)
def _ov_key_value(key, like):
    if like == types.float32:

        def impl(key, like):
            u = key ^ _SIGN32 if key & _SIGN32 else (~key) & _MASK32
            return np.float64(np.uint32(u).view(np.float32))

        return impl
    if like == types.float64:

        def impl(key, like):
            u = key ^ _SIGN64 if key & _SIGN64 else ~key
            return np.uint64(u).view(np.float64)

        return impl
    return None


def key_bits(like):  # pragma: no cover
    raise NotImplementedError


@overload(key_bits, jit_options=OVERLOAD_OPTIONS)
def _ov_key_bits(like):
    if like == types.float32:
        return lambda like: 32
    if like == types.float64:
        return lambda like: 64
    return None


# --------------------------------------------------------------------------- selection
@ngjit
def hist_top(buf, n, hist1):
    """Histogram of the top 16 key bits of ``buf[:n]`` (level 1 of the radix select)."""
    hist1[:] = 0
    shift = np.uint64(key_bits(buf[0]) - 16)
    for i in range(n):
        hist1[fkey(buf[i]) >> shift] += 1


@ngjit
def _resolve(h, t0, t1, prefix, resid):
    """Targets ``t0..t1-1`` (ascending residual rank) pick their digit from histogram ``h``."""
    cum = 0
    d = 0
    for t in range(t0, t1):
        while cum + h[d] <= resid[t]:
            cum += h[d]
            d += 1
        resid[t] -= cum
        prefix[t] = (prefix[t] << np.uint64(16)) | np.uint64(d)


@ngjit
def radix_select(buf, n, hist1, hist2, slot, ranks, vals):
    """Exact order statistics ``vals[t] = sorted(buf[:n])[ranks[t]]``.

    ``hist1`` must hold :func:`hist_top` of ``buf[:n]``.  ``hist2`` is
    ``(NRANK + 1, 65536)`` int32 scratch, ``slot`` a uint8[65536] filled with
    ``TRASH`` (restored on return).
    """
    nt = ranks.shape[0]
    nbits = key_bits(buf[0])
    # The digit sweeps need ascending ranks (quartile neighbours of a tiny box
    # need not be); work in sorted order and put the values back at the end.
    order = np.argsort(ranks)
    prefix = np.zeros(nt, np.uint64)
    resid = ranks[order]
    _resolve(hist1, 0, nt, prefix, resid)
    gstart = np.empty(nt + 1, np.int64)
    gpref = np.empty(nt, np.uint64)
    for level in range(2, nbits // 16 + 1):
        # Targets sharing a prefix form a contiguous run (ranks are sorted).
        ng = 0
        for t in range(nt):
            if t == 0 or prefix[t] != prefix[t - 1]:
                gstart[ng] = t
                gpref[ng] = prefix[t]
                ng += 1
        gstart[ng] = nt
        hist2[:ng, :] = 0
        shift = np.uint64(nbits - 16 * level)
        if level == 2:
            # Branch-free: a lookup table sends every element to its group's
            # histogram or to a trash row nobody reads.  (A compare per group
            # mispredicts on every third element and was 4x slower.)
            # Elements of no interest (most of them) land in the first 256
            # cells of the trash row, so their writes stay in L1.
            top = np.uint64(nbits - 16)
            for g in range(ng):
                slot[gpref[g]] = g
            for i in range(n):
                key = fkey(buf[i])
                g = slot[key >> top]
                d = (key >> shift) & _DIGIT
                hist2[g, d if g != TRASH else d & np.uint64(0xFF)] += 1
            for g in range(ng):
                slot[gpref[g]] = TRASH
        else:  # float64 only: prefixes are 32+ bits, too wide for a table
            pshift = np.uint64(nbits - 16 * (level - 1))
            for i in range(n):
                key = fkey(buf[i])
                kp = key >> pshift
                for g in range(ng):
                    if kp == gpref[g]:
                        hist2[g, (key >> shift) & _DIGIT] += 1
                        break
        for g in range(ng):
            _resolve(hist2[g], gstart[g], gstart[g + 1], prefix, resid)
    for t in range(nt):
        vals[order[t]] = key_value(prefix[t], buf[0])


@ngjit
def lerp(a, b, g):
    """numpy's ``_lerp``: exact at both ends, monotone."""
    diff = b - a
    if g >= 0.5:
        return b - diff * (1.0 - g)
    return a + diff * g


@ngjit
def quartiles(buf, n, hist1, hist2, slot):
    """``(min, q25, median, q75, max)`` of ``buf[:n]``; numpy's linear quantiles.

    The extremes ride along as ranks 0 and n-1 of the same radix selection, so
    they cost no pass of their own.  All NaN when ``n == 0``.
    """
    if n == 0:
        return np.nan, np.nan, np.nan, np.nan, np.nan
    ranks = np.empty(NRANK, np.int64)
    gam = np.empty(3, np.float64)
    ranks[0] = 0
    ranks[NRANK - 1] = n - 1
    for i in range(3):
        vi = (n - 1) * (0.25 * (i + 1))
        lo = int(np.floor(vi))
        gam[i] = vi - lo
        ranks[1 + 2 * i] = lo
        ranks[2 + 2 * i] = min(lo + 1, n - 1)
    vals = np.empty(NRANK, np.float64)
    radix_select(buf, n, hist1, hist2, slot, ranks, vals)
    q25 = lerp(vals[1], vals[2], gam[0])
    q50 = lerp(vals[3], vals[4], gam[1])
    q75 = lerp(vals[5], vals[6], gam[2])
    return vals[0], q25, q50, q75, vals[NRANK - 1]


@ngjit
def median_only(buf, n, hist1, hist2, slot):
    """Median of ``buf[:n]`` (numpy's definition); ``hist1`` must hold its :func:`hist_top`."""
    if n == 0:
        return np.nan
    vi = (n - 1) * 0.5
    lo = int(np.floor(vi))
    ranks = np.empty(2, np.int64)
    ranks[0] = lo
    ranks[1] = min(lo + 1, n - 1)
    vals = np.empty(2, np.float64)
    radix_select(buf, n, hist1, hist2, slot, ranks, vals)
    return lerp(vals[0], vals[1], vi - lo)
