"""Per-amplifier statistics: moments, quartiles and afw-style sigma clipping.

Algorithm (per box; every step is one pass over the box's valid pixels)
-----------------------------------------------------------------------
1. Gather: copy the valid pixels (finite, unmasked) into a contiguous scratch
   buffer (rows without NaN are bulk-copied).
2. Order statistics by radix selection, exactly, with no sort: histogram the
   top 16 bits of each value's *order-preserving key* (the float's bits with the
   sign handled so unsigned order equals float order); that says which 16-bit
   prefix holds each wanted rank; one more pass histograms the next 16 bits of
   just those prefixes (float32 is done after two passes, float64 after four).
   The ranks are min, max and the two neighbours of each quartile, so min/max
   cost nothing extra.  Quartiles use numpy's default ("linear") definition,
   interpolated as numpy's ``_lerp`` does, so kernel, reference and
   ``np.quantile`` agree to the last bit.
3. Mean and stdev (ddof=1): one vectorised pass of sums about the median.
4. Sigma clipping as afw ``Statistics.cc`` (MEANCLIP/STDEVCLIP, what cp_verify
   uses): iteration 1 keeps ``|x - median| <= nsigma * 0.741301 * IQR``; later
   iterations keep ``|x - mean| <= nsigma * stdev`` of the previous iteration's
   kept pixels.  As in afw each iteration clips the *full* set of valid pixels
   (rejection is not cumulative), variances are unbiased (ddof=1), and a pixel
   exactly on the limit is kept.  One vectorised pass per iteration.

Deviations from afw, both documented in :func:`sigma_clip` and :func:`clip_pass`:
we stop early when an iteration keeps exactly the same pixels as the previous
one (afw would repeat identical iterations), and sums are taken about the
median rather than the moving centre, so a kept set of identical values (a
difference image of exact zeros) has mean exactly that value and stdev 0 (afw's
rounding can turn such a set into an empty one on the next pass).

Non-finite pixels (NaN and +-inf) are excluded, as in afw's NaN-safe mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..robust import MAD_TO_SIGMA
from ._jit import check_image, check_int, check_mask_bits, mask_view, ngjit, ngjit_fast
from ._radix import NBINS, NRANK, TRASH, hist_top, median_only, quartiles

__all__ = ["IQ_TO_STDEV", "STAT_KEYS", "DIFF_KEYS", "amp_difference_statistics", "amp_statistics"]

#: One Gaussian sigma in units of the interquartile range (afw's constant).
IQ_TO_STDEV = 0.741301109252802
#: MAD to Gaussian sigma: :data:`cpmosaic.robust.MAD_TO_SIGMA` (numba freezes a module
#: global float into the compiled kernels as a constant).
MAD_TO_STDEV = MAD_TO_SIGMA

STAT_KEYS = ("mean", "median", "stdev", "clipped_mean", "clipped_stdev", "n_pixels", "n_clipped", "min", "max")
DIFF_KEYS = ("mean", "median", "robust_sigma", "max_abs", "frac_differing", "n_pixels",
             "clipped_mean", "clipped_stdev", "n_clipped")  # fmt: skip
_INT_KEYS = ("n_pixels", "n_clipped")


# --------------------------------------------------------------------------- clipping
@ngjit_fast
def clip_pass(buf, n, c, hw, k):
    """Keep ``|x - c| <= hw``: count kept, count below, and sums of ``x - k`` over kept.

    The kept pixels are always the values in some interval, so (kept, below)
    identifies the kept *set* exactly; that is what the early stop compares.
    Sums are taken about a fixed data value ``k`` (the median), not about the
    moving centre: a kept set of identical values (a difference image that is
    mostly exact zeros) then has mean exactly ``k`` and variance exactly 0, and
    the next pass still keeps it.  Written with selects, not branches, so it
    vectorises (the buffer is all finite).
    """
    nk = 0
    nb = 0
    s = 0.0
    s2 = 0.0
    for i in range(n):
        x = np.float64(buf[i])
        e = x - c
        keep = abs(e) <= hw
        nk += 1 if keep else 0
        nb += 1 if (e < 0.0 and not keep) else 0
        d = x - k if keep else 0.0
        s += d
        s2 += d * d
    return nk, nb, s, s2


@ngjit_fast
def moments_pass(buf, n, c):
    """Sums of ``x - c`` and ``(x - c)**2``; ``c`` near the mean keeps them accurate."""
    s = 0.0
    s2 = 0.0
    for i in range(n):
        d = np.float64(buf[i]) - c
        s += d
        s2 += d * d
    return s, s2


@ngjit
def _mean_var(n, c, s, s2):
    if n == 0:
        return np.nan, np.nan
    mean = c + s / n
    if n < 2:
        return mean, np.nan
    return mean, max((s2 - s * s / n) / (n - 1), 0.0)


@ngjit
def sigma_clip(buf, n, median, iqr, nsigma, niter):
    """afw MEANCLIP/STDEVCLIP of ``buf[:n]``: ``(clipped_mean, clipped_stdev, n_kept)``.

    Iteration 1 clips about the median at ``nsigma * IQ_TO_STDEV * iqr``, later
    ones about the previous mean at ``nsigma * stdev`` (afw falls back to the
    IQR width when there is a single valid pixel; so do we).  Each iteration
    clips all ``n`` values.  Deviation from afw: the loop stops once the kept set
    repeats, which gives afw's answer without its redundant passes.  An empty
    kept set, or a NaN centre/width (one kept pixel has no stdev), gives NaN.
    """
    c = median
    hw = nsigma * IQ_TO_STDEV * iqr
    cmean = np.nan
    cvar = np.nan
    nkept = 0
    pk = -1
    pb = -1
    for _ in range(niter):
        if not (c == c and hw == hw):
            return np.nan, np.nan, 0
        nk, nb, s, s2 = clip_pass(buf, n, c, hw, median)
        if nk == 0:
            return np.nan, np.nan, 0
        if nk == pk and nb == pb:
            break  # same pixels as last time: further iterations change nothing
        cmean, cvar = _mean_var(nk, median, s, s2)
        nkept = nk
        pk, pb = nk, nb
        c = cmean
        hw = nsigma * np.sqrt(cvar) if n > 1 else nsigma * IQ_TO_STDEV * iqr
    return cmean, np.sqrt(cvar), nkept


# --------------------------------------------------------------------------- per box
@ngjit
def _gather(image, mask, use_mask, bits, x0, y0, w, h, buf):
    """Copy the valid pixels of a box into ``buf``; return their count."""
    n = 0
    for y in range(y0, y0 + h):
        row = image[y, x0 : x0 + w]
        if use_mask:
            mrow = mask[y, x0 : x0 + w]
            for x in range(w):
                v = row[x]
                if np.isfinite(v) and (np.uint64(mrow[x]) & bits) == np.uint64(0):
                    buf[n] = v
                    n += 1
            continue
        # Rows are nearly always all finite: check with a branch-free count and
        # copy in bulk; compact only the rare rows that hold NaN/inf.
        bad = 0
        for x in range(w):
            bad += 0 if np.isfinite(row[x]) else 1
        if bad == 0:
            buf[n : n + w] = row
            n += w
        else:
            for x in range(w):
                v = row[x]
                if np.isfinite(v):
                    buf[n] = v
                    n += 1
    return n


@ngjit
def _scratch(boxes, dtype_like):
    area = 1
    for b in range(boxes.shape[0]):
        area = max(area, boxes[b, 2] * boxes[b, 3])
    buf = np.empty(area, dtype_like.dtype)
    hist1 = np.empty(NBINS, np.int32)
    hist2 = np.empty((NRANK + 1, NBINS), np.int32)
    slot = np.full(NBINS, TRASH, np.uint8)
    return buf, hist1, hist2, slot


@ngjit
def _summary(buf, n, hist1, hist2, slot, nsigma, niter):
    """What both cores take of ``buf[:n]``: ``(min, median, max, mean, var, clipped mean,
    clipped stdev, n clipped)`` (NaN where empty)."""
    vmin, q25, med, q75, vmax = np.nan, np.nan, np.nan, np.nan, np.nan
    if n:
        hist_top(buf, n, hist1)
        vmin, q25, med, q75, vmax = quartiles(buf, n, hist1, hist2, slot)
    s, s2 = moments_pass(buf, n, med)
    mean, var = _mean_var(n, med, s, s2)
    cmean, cstd, nk = sigma_clip(buf, n, med, q75 - q25, nsigma, niter)
    return vmin, med, vmax, mean, var, cmean, cstd, nk


@ngjit
def _stats_core(image, mask, use_mask, bits, boxes, nsigma, niter, res):
    buf, hist1, hist2, slot = _scratch(boxes, image)
    for b in range(boxes.shape[0]):
        x0, y0, w, h = boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3]
        n = _gather(image, mask, use_mask, bits, x0, y0, w, h, buf)
        vmin, med, vmax, mean, var, cmean, cstd, nk = _summary(buf, n, hist1, hist2, slot, nsigma, niter)
        res[b, 0] = mean
        res[b, 1] = med
        res[b, 2] = np.sqrt(var)
        res[b, 3] = cmean
        res[b, 4] = cstd
        res[b, 5] = n
        res[b, 6] = nk
        res[b, 7] = vmin
        res[b, 8] = vmax


@ngjit
def _gather_diff(a, b_, mask, use_mask, bits, x0, y0, w, h, buf):
    n = 0
    for y in range(y0, y0 + h):
        ra = a[y, x0 : x0 + w]
        rb = b_[y, x0 : x0 + w]
        mrow = mask[y if use_mask else 0]
        for x in range(w):
            # The difference in the inputs' own precision, as numpy's a - b.
            d = ra[x] - rb[x]
            if np.isfinite(d) and not (use_mask and (np.uint64(mrow[x0 + x]) & bits) != np.uint64(0)):
                buf[n] = d
                n += 1
    return n


@ngjit_fast
def _abs_dev(buf, n, med, tol):
    """``buf <- |buf - med|`` (rounded to buf's dtype); also max |d| and count |d| > tol."""
    maxabs = 0.0
    ndiff = 0
    for i in range(n):
        d = np.float64(buf[i])
        ad = abs(d)
        maxabs = ad if ad > maxabs else maxabs
        ndiff += 1 if ad > tol else 0
        buf[i] = abs(d - med)
    return maxabs, ndiff


@ngjit
def _diff_core(a, b_, mask, use_mask, bits, boxes, tol, nsigma, niter, res):
    buf, hist1, hist2, slot = _scratch(boxes, a)
    for k in range(boxes.shape[0]):
        x0, y0, w, h = boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3]
        n = _gather_diff(a, b_, mask, use_mask, bits, x0, y0, w, h, buf)
        _, med, _, mean, _, cmean, cstd, nk = _summary(buf, n, hist1, hist2, slot, nsigma, niter)
        # MAD: reuse the buffer for |d - median|.
        maxabs, ndiff = _abs_dev(buf, n, med, tol)
        mad = np.nan
        if n:
            hist_top(buf, n, hist1)
            mad = median_only(buf, n, hist1, hist2, slot)
        res[k, 0] = mean
        res[k, 1] = med
        res[k, 2] = MAD_TO_STDEV * mad
        res[k, 3] = maxabs if n else np.nan
        res[k, 4] = ndiff / n if n else np.nan
        res[k, 5] = n
        res[k, 6] = cmean
        res[k, 7] = cstd
        res[k, 8] = nk


# --------------------------------------------------------------------------- Python side
def _float_image(image: object, name: str) -> np.ndarray:
    arr = check_image(image, name)
    if arr.dtype == np.dtype("=f4") or arr.dtype == np.dtype("=f8"):
        return arr
    # Assembled images are native float32 already; anything else converts once.
    target = np.float32 if arr.dtype.kind in "iu" and arr.dtype.itemsize <= 2 else np.float64
    if arr.dtype.kind == "f" and arr.dtype.itemsize == 4:
        target = np.float32
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} dtype {arr.dtype.str!r} is not numeric")
    return arr.astype(target)


def _check_boxes(boxes: object, shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(boxes)
    if arr.ndim == 1 and arr.size == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (n, 4) of (x0, y0, width, height), got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"boxes must be integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    ny, nx = shape
    for i, (x0, y0, w, h) in enumerate(arr.tolist()):
        if w <= 0 or h <= 0 or x0 < 0 or y0 < 0 or x0 + w > nx or y0 + h > ny:
            raise ValueError(f"box {i} = {(x0, y0, w, h)} is empty or outside the image of shape (ny={ny}, nx={nx})")
        if w * h >= 2**31:
            raise ValueError(f"box {i} = {(x0, y0, w, h)} has more than 2**31 pixels")
    return arr


def _check_clip(nsigma: object, niter: object) -> tuple[float, int]:
    ns = float(nsigma)  # type: ignore[arg-type]
    if not (np.isfinite(ns) and ns > 0):
        raise ValueError(f"nsigma={nsigma!r} must be a positive finite number")
    return ns, check_int(niter, "niter", minimum=0)


def _run(core: Callable, args_before: tuple, boxes: np.ndarray, args_after: tuple, ncol: int,
         n_threads: int | None) -> np.ndarray:  # fmt: skip
    """Run ``core`` over the boxes, split across ``n_threads`` (the kernels release the GIL)."""
    nbox = boxes.shape[0]
    res = np.full((nbox, ncol), np.nan)
    nt = (os.cpu_count() or 1) if n_threads is None else check_int(n_threads, "n_threads", minimum=1)
    nt = max(1, min(nt, nbox))
    if nt == 1:
        if nbox:
            core(*args_before, boxes, *args_after, res)
        return res
    # Interleave boxes so threads get similar work when box sizes vary smoothly.
    parts = [np.arange(i, nbox, nt) for i in range(nt)]
    outs = [np.empty((len(p), ncol)) for p in parts]
    with ThreadPoolExecutor(nt) as pool:
        futures = [
            pool.submit(core, *args_before, np.ascontiguousarray(boxes[p]), *args_after, o)
            for p, o in zip(parts, outs)
        ]
        for f in futures:
            f.result()
    for p, o in zip(parts, outs):
        res[p] = o
    return res


def _to_dict(res: np.ndarray, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {k: (res[:, i].astype(np.int64) if k in _INT_KEYS else res[:, i].copy()) for i, k in enumerate(keys)}


def amp_statistics(
    image: np.ndarray,
    boxes: np.ndarray,
    *,
    nsigma: float = 3.0,
    niter: int = 3,
    mask: np.ndarray | None = None,
    mask_bits: int = 0xFFFFFFFF,
    n_threads: int | None = 1,
) -> dict[str, np.ndarray]:
    """Per-box statistics of an image, with afw-style sigma clipping.

    Parameters
    ----------
    image
        2-D ``[y, x]`` image (native float32/float64 are used in place; other
        dtypes and byte orders are converted once).
    boxes
        ``(n, 4)`` integers ``(x0, y0, width, height)`` in image pixels.
    nsigma, niter
        Clipping half-width in sigma and number of iterations (cp_verify: 3, 3).
        See the module docstring for the exact afw algorithm.
    mask, mask_bits
        Pixels with ``mask & mask_bits != 0`` are excluded, as are non-finite ones.
    n_threads
        Threads to spread the boxes over (``None``: all cores).  Keep 1 when the
        caller already runs detectors in parallel (dask).

    Returns
    -------
    dict of str to numpy.ndarray
        Arrays of length n: ``mean``, ``median``, ``stdev`` (ddof=1),
        ``clipped_mean``, ``clipped_stdev`` (ddof=1), ``n_pixels`` (valid),
        ``n_clipped`` (kept by the last clip), ``min``, ``max``.  NaN (and 0
        counts) for boxes without valid pixels.

    Examples
    --------
    >>> img = np.arange(20, dtype=np.float32).reshape(4, 5)
    >>> st = amp_statistics(img, [(0, 0, 5, 2), (0, 2, 5, 2)])
    >>> st["median"], st["n_pixels"]
    (array([ 4.5, 14.5]), array([10, 10]))
    """
    img = _float_image(image, "image")
    bx = _check_boxes(boxes, img.shape)
    ns, ni = _check_clip(nsigma, niter)
    m, use_mask = mask_view(mask, img.shape)
    bits = check_mask_bits(mask_bits)
    res = _run(_stats_core, (img, m, use_mask, bits), bx, (ns, ni), len(STAT_KEYS), n_threads)
    return _to_dict(res, STAT_KEYS)


def amp_difference_statistics(
    a: np.ndarray,
    b: np.ndarray,
    boxes: np.ndarray,
    *,
    tolerance: float = 0.0,
    nsigma: float = 3.0,
    niter: int = 3,
    mask: np.ndarray | None = None,
    mask_bits: int = 0xFFFFFFFF,
    n_threads: int | None = 1,
) -> dict[str, np.ndarray]:
    """Per-box statistics of ``d = a - b`` (e.g. a regression against a reference image).

    ``d`` is computed in the inputs' common precision (float32 for two float32
    images, like numpy's ``a - b``); pixels where ``d`` is not finite (NaN in
    either input) or that are masked are excluded.

    Returns
    -------
    dict of str to numpy.ndarray
        ``mean``, ``median``, ``robust_sigma`` (MAD_TO_SIGMA * median(|d - median|),
        with ``|d - median|`` rounded to ``d``'s dtype), ``max_abs``,
        ``frac_differing`` (fraction of valid pixels with ``|d| > tolerance``),
        ``n_pixels``, and, clipped with ``nsigma``/``niter`` as
        :func:`amp_statistics`, ``clipped_mean``, ``clipped_stdev``,
        ``n_clipped``.  Identical inputs give exact zeros.

    Examples
    --------
    >>> a = np.ones((2, 4), np.float32)
    >>> amp_difference_statistics(a, a, [(0, 0, 4, 2)])["max_abs"]
    array([0.])
    """
    a = check_image(a, "a")
    b = check_image(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a shape {a.shape} != b shape {b.shape}")
    both32 = a.dtype.kind == "f" and b.dtype.kind == "f" and a.dtype.itemsize == 4 and b.dtype.itemsize == 4
    dt = np.dtype("=f4") if both32 else np.dtype("=f8")
    if a.dtype.kind not in "iuf" or b.dtype.kind not in "iuf":
        raise ValueError(f"a and b must be numeric, got {a.dtype.str!r} and {b.dtype.str!r}")
    a = a if a.dtype == dt else a.astype(dt)
    b = b if b.dtype == dt else b.astype(dt)
    bx = _check_boxes(boxes, a.shape)
    ns, ni = _check_clip(nsigma, niter)
    tol = float(tolerance)
    if not tol >= 0:
        raise ValueError(f"tolerance={tolerance!r} must be >= 0")
    m, use_mask = mask_view(mask, a.shape)
    bits = check_mask_bits(mask_bits)
    res = _run(_diff_core, (a, b, m, use_mask, bits), bx, (tol, ns, ni), len(DIFF_KEYS), n_threads)
    return _to_dict(res, DIFF_KEYS)
