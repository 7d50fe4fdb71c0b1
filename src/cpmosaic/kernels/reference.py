"""Plain-numpy twins of every kernel: simple, obviously correct, slow.

The tests compare each numba kernel against the function of the same name
here.  Nothing in this module is used at run time by the package.  Where the
kernels define something precisely (quantile interpolation, the afw clipping
loop, the rounding of ``|d - median|``) the twin spells the same definition out
with whole-array numpy operations.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from .stats import DIFF_KEYS, IQ_TO_STDEV, MAD_TO_STDEV, STAT_KEYS

__all__ = [
    "amp_difference_statistics",
    "amp_statistics",
    "assemble_amp",
    "bin_rotate_into",
    "block_reduce",
    "colour_index",
    "pyramid_reduce",
    "quantile",
    "rotate_quarter",
    "sigma_clip",
]


# --------------------------------------------------------------------------- assembly
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
    """Reference for :func:`cpmosaic.kernels.assemble_amp`."""
    seg = np.asarray(segment).astype(np.float64)  # also fixes the byte order
    dx0, dy0, dw, dh = (int(v) for v in data_box)
    ox0, oy0, ow, oh = (int(v) for v in overscan_box)
    data = seg[dy0 : dy0 + dh, dx0 : dx0 + dw]
    with warnings.catch_warnings():  # all-NaN rows: NaN is the documented answer
        warnings.simplefilter("ignore", RuntimeWarning)
        if overscan == "none":
            level = np.zeros((dh, 1))
        elif overscan == "single":
            level = np.full((dh, 1), np.nanmedian(seg[oy0 : oy0 + oh, ox0 : ox0 + ow]))
        else:
            rows = seg[dy0 : dy0 + dh, ox0 : ox0 + ow]  # overscan of the same raw rows
            reduce = np.nanmedian if overscan == "median" else np.nanmean
            level = reduce(rows, axis=1, keepdims=True)
    img = (data - level) * float(gain)
    if flip_x:
        img = img[:, ::-1]
    if flip_y:
        img = img[::-1]
    stop = dh if row_stop is None else int(row_stop)
    out[out_y0 + row_start : out_y0 + stop, out_x0 : out_x0 + dw] = img[row_start:stop].astype(np.float32)


# --------------------------------------------------------------------------- binning
def block_reduce(
    image: np.ndarray,
    factor: int,
    how: str = "mean",
    mask: np.ndarray | None = None,
    mask_bits: int = 0xFFFFFFFF,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Reference for :func:`cpmosaic.kernels.block_reduce` (pad with NaN, reshape, nan-reduce)."""
    img = np.asarray(image).astype(np.float64)
    if mask is not None:
        bad = (np.asarray(mask).astype(np.uint64) & np.uint64(mask_bits)) != 0
        img[bad] = np.nan
    ny, nx = img.shape
    nby, nbx = -(-ny // factor), -(-nx // factor)
    padded = np.full((nby * factor, nbx * factor), np.nan)
    padded[:ny, :nx] = img
    blocks = padded.reshape(nby, factor, nbx, factor)
    count = np.sum(~np.isnan(blocks), axis=(1, 3))
    with warnings.catch_warnings():  # all-NaN blocks are fixed up below
        warnings.simplefilter("ignore", RuntimeWarning)
        funcs: dict[str, Callable[..., np.ndarray]] = {"mean": np.nanmean, "sum": np.nansum, "max": np.nanmax,
                                                       "min": np.nanmin}
        func = funcs[how]
        res = func(blocks, axis=(1, 3))
    res = np.where(count > 0, res, np.nan).astype(np.float32)
    if out is not None:
        out[...] = res
        return out
    return res


def pyramid_reduce(image: np.ndarray) -> np.ndarray:
    """Reference for :func:`cpmosaic.kernels.pyramid_reduce`."""
    return block_reduce(image, 2, "mean")


# --------------------------------------------------------------------------- rotation
def rotate_quarter(image: np.ndarray, n_quarter: int) -> np.ndarray:
    """Reference for :func:`cpmosaic.kernels.rotate_quarter`, from the rotation matrix.

    Output pixel ``(i, j)`` (row, column) is at ``(x, y) = (j - cx', i - cy')``
    from the output centre; it comes from the input pixel at ``R(-theta) (x, y)``
    from the input centre, with ``R`` the counter-clockwise rotation matrix.
    """
    img = np.asarray(image)
    n = int(n_quarter) % 4
    ny, nx = img.shape
    oy, ox = (ny, nx) if n % 2 == 0 else (nx, ny)
    c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][n]  # cos, sin of n * 90 degrees
    i, j = np.mgrid[0:oy, 0:ox]
    x = j - (ox - 1) / 2.0
    y = i - (oy - 1) / 2.0
    xs = c * x + s * y + (nx - 1) / 2.0  # R(-theta) = [[c, s], [-s, c]]
    ys = -s * x + c * y + (ny - 1) / 2.0
    return np.ascontiguousarray(img[np.rint(ys).astype(int), np.rint(xs).astype(int)])


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
    """Reference for :func:`cpmosaic.kernels.bin_rotate_into`: reduce, rotate, clip, paste."""
    q = rotate_quarter(block_reduce(image, factor, how, mask, mask_bits), n_quarter)
    hh, ww = out.shape
    y0, x0 = max(out_y0, 0), max(out_x0, 0)
    y1, x1 = min(out_y0 + q.shape[0], hh), min(out_x0 + q.shape[1], ww)
    if y0 < y1 and x0 < x1:
        out[y0:y1, x0:x1] = q[y0 - out_y0 : y1 - out_y0, x0 - out_x0 : x1 - out_x0]


# --------------------------------------------------------------------------- statistics
def quantile(values: np.ndarray, q: float) -> float:
    """numpy's default ("linear") quantile of 1-D float64 values, written out."""
    v = np.sort(values)
    n = v.size
    if n == 0:
        return np.nan
    vi = (n - 1) * q
    lo = int(np.floor(vi))
    hi = min(lo + 1, n - 1)
    g = vi - lo
    a, b = v[lo], v[hi]
    return float(b - (b - a) * (1.0 - g)) if g >= 0.5 else float(a + (b - a) * g)


def sigma_clip(values: np.ndarray, nsigma: float, niter: int) -> tuple[float, float, int]:
    """afw MEANCLIP/STDEVCLIP on 1-D float64 values: ``(mean, stdev, n_kept)``.

    Iteration 1 clips at median +- nsigma * 0.7413 * IQR, later ones at
    mean +- nsigma * stdev of the previous kept set; each clips the full set.
    Stops early once the kept set repeats (identical results from then on).
    """
    n = values.size
    iqr = quantile(values, 0.75) - quantile(values, 0.25)
    c = quantile(values, 0.5)
    hw = nsigma * IQ_TO_STDEV * iqr
    mean, std, nk, prev = np.nan, np.nan, 0, None
    for _ in range(niter):
        if np.isnan(c) or np.isnan(hw):
            return np.nan, np.nan, 0
        keep = np.abs(values - c) <= hw
        if not keep.any():
            return np.nan, np.nan, 0
        if prev is not None and np.array_equal(keep, prev):
            break
        kept = values[keep]
        mean = float(kept.mean())
        std = float(kept.std(ddof=1)) if kept.size > 1 else np.nan
        nk, prev = int(kept.size), keep
        c = mean
        hw = nsigma * std if n > 1 else nsigma * IQ_TO_STDEV * iqr
    return mean, std, nk


def _valid(image: np.ndarray, mask: np.ndarray | None, mask_bits: int) -> np.ndarray:
    ok = np.isfinite(image)
    if mask is not None:
        ok &= (np.asarray(mask).astype(np.uint64) & np.uint64(mask_bits)) == 0
    return ok


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
    """Reference for :func:`cpmosaic.kernels.amp_statistics`."""
    img = np.asarray(image)
    if img.dtype.kind != "f" or not img.dtype.isnative:
        small = img.dtype.itemsize <= 2 or (img.dtype.kind == "f" and img.dtype.itemsize == 4)
        img = img.astype(np.float32 if small else np.float64)
    ok = _valid(img, mask, mask_bits)
    out: dict[str, list[float]] = {k: [] for k in STAT_KEYS}
    for x0, y0, w, h in np.asarray(boxes, dtype=np.int64).reshape(-1, 4).tolist():
        sl = (slice(y0, y0 + h), slice(x0, x0 + w))
        v = img[sl][ok[sl]].astype(np.float64)
        n = v.size
        cmean, cstd, nk = sigma_clip(v, nsigma, niter)
        row = {
            "mean": v.mean() if n else np.nan,
            "median": quantile(v, 0.5),
            "stdev": v.std(ddof=1) if n > 1 else np.nan,
            "clipped_mean": cmean,
            "clipped_stdev": cstd,
            "n_pixels": n,
            "n_clipped": nk,
            "min": v.min() if n else np.nan,
            "max": v.max() if n else np.nan,
        }
        for k in STAT_KEYS:
            out[k].append(row[k])
    return {k: np.asarray(out[k], dtype=np.int64 if k.startswith("n_") else np.float64) for k in STAT_KEYS}


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
    """Reference for :func:`cpmosaic.kernels.amp_difference_statistics`."""
    a, b = np.asarray(a), np.asarray(b)
    both32 = a.dtype.kind == b.dtype.kind == "f" and a.dtype.itemsize == b.dtype.itemsize == 4
    dt = np.float32 if both32 else np.float64
    d = a.astype(dt) - b.astype(dt)
    ok = _valid(d, mask, mask_bits)
    out: dict[str, list[float]] = {k: [] for k in DIFF_KEYS}
    for x0, y0, w, h in np.asarray(boxes, dtype=np.int64).reshape(-1, 4).tolist():
        sl = (slice(y0, y0 + h), slice(x0, x0 + w))
        dv = d[sl][ok[sl]]
        v = dv.astype(np.float64)
        n = v.size
        med = quantile(v, 0.5)
        dev = np.abs(v - med).astype(dt).astype(np.float64)  # the kernel's rounding
        cmean, cstd, nk = sigma_clip(v, nsigma, niter)
        row = {
            "mean": v.mean() if n else np.nan,
            "median": med,
            "robust_sigma": MAD_TO_STDEV * quantile(dev, 0.5),
            "max_abs": np.abs(v).max() if n else np.nan,
            "frac_differing": np.mean(np.abs(v) > tolerance) if n else np.nan,
            "n_pixels": n,
            "clipped_mean": cmean,
            "clipped_stdev": cstd,
            "n_clipped": nk,
        }
        for k in DIFF_KEYS:
            out[k].append(row[k])
    return {k: np.asarray(out[k], dtype=np.int64 if k.startswith("n_") else np.float64) for k in DIFF_KEYS}


# --------------------------------------------------------------------------- colour
def colour_index(
    data: np.ndarray,
    vmin: float,
    vmax: float,
    values: np.ndarray | None = None,
    nodata: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference for :func:`cpmosaic.kernels.colour.colour_index`: whole-array float32 steps."""
    d = np.asarray(data, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if values is None:
            x = np.clip((d - np.float32(vmin)) / np.float32(vmax - vmin), np.float32(0), np.float32(1))
        else:
            x = np.asarray(values, dtype=np.float32)
        bad = ~np.isfinite(d) | ~np.isfinite(x)
        if nodata is not None:
            bad |= d == np.float32(nodata)
        index = np.floor(np.where(bad, 0, x) * np.float32(256)).clip(0, 255).astype(np.uint8)
    alpha = np.where(bad, 0, 255).astype(np.uint8)
    counts = np.append(np.bincount(index[~bad], minlength=256), np.count_nonzero(bad)).astype(np.int64)
    return index, alpha, counts
