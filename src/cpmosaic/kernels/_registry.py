"""One table of kernels that drives both the tests and the benchmark (numbagg style).

``KERNELS[name]`` is a dict with

``numba`` / ``numpy``
    Callables with the same signature, returning an array or a dict of arrays
    (in-place kernels are wrapped to return their ``out``).
``make_args``
    ``make_args(rng, shape, dtype, **options) -> (args, kwargs)``: seeded inputs
    for an image of ``shape`` (``(ny, nx)``) and ``dtype`` (e.g. ``">i4"``).
    Calling it twice with equal seeds gives equal, independent inputs, so the
    two implementations never share a mutable ``out``.
``rtol`` / ``atol``
    Agreement expected between the two.

``n_inputs`` (default 1)
    How many leading arguments are input images; :func:`nbytes` counts them
    for GB/s figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import reference as ref
from .assemble import assemble_amp
from .binning import block_reduce, pyramid_reduce
from .rotate import bin_rotate_into, rotate_quarter
from .stats import amp_difference_statistics, amp_statistics

__all__ = ["KERNELS", "make_image", "nbytes"]

Args = tuple[tuple[Any, ...], dict[str, Any]]


def make_image(rng: np.random.Generator, shape: tuple[int, int], dtype: str, nan_frac: float = 0.0,
               level: float = 1000.0, noise: float = 10.0) -> np.ndarray:  # fmt: skip
    """A bias-like image: Gaussian noise about ``level``, a few hot pixels, some NaN."""
    img = rng.normal(level, noise, shape)
    hot = rng.random(shape) < 1e-3
    img[hot] += rng.uniform(100 * noise, 1000 * noise, hot.sum())
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        img = np.clip(np.rint(img), info.min, info.max)
    elif nan_frac:
        img[rng.random(shape) < nan_frac] = np.nan
    return img.astype(dt)


def make_mask(rng: np.random.Generator, shape: tuple[int, int], frac: float = 0.05) -> np.ndarray:
    """An int32 mask with random bits 0-3 set on ``frac`` of the pixels."""
    m = np.zeros(shape, np.int32)
    sel = rng.random(shape) < frac
    m[sel] = 1 << rng.integers(0, 4, sel.sum())
    return m


def nbytes(name: str, args: tuple[Any, ...]) -> int:
    """Input bytes kernel ``name`` reads: its leading ``n_inputs`` image arguments."""
    return sum(a.nbytes for a in args[: KERNELS[name].get("n_inputs", 1)])


# --------------------------------------------------------------------------- assembly
def _assemble_args(mode: str) -> Callable[..., Args]:
    def make(rng: np.random.Generator, shape: tuple[int, int], dtype: str = ">i4", *, flip_x: bool | None = None,
             flip_y: bool | None = None, rows: tuple[int, int] | None = None, gain: float | None = None,
             nan_frac: float = 0.0) -> Args:  # fmt: skip
        ny, nx = shape
        # Raw layout like ITL/E2V: prescan columns, data, serial overscan; a
        # parallel overscan below the data rows is left out of the data box.
        pre = min(3, max(nx // 8, 0))
        osw = max(nx // 9, 1)
        dw = max(nx - pre - osw, 1)
        dh = max(ny - ny // 50, 1)
        seg = make_image(rng, (ny, pre + dw + osw), dtype, nan_frac=nan_frac, level=15000.0, noise=5.0)
        fx = bool(rng.integers(2)) if flip_x is None else flip_x
        fy = bool(rng.integers(2)) if flip_y is None else flip_y
        r0, r1 = (0, dh) if rows is None else rows
        oy0, ox0 = int(rng.integers(0, 3)), int(rng.integers(0, 3))
        out = np.full((dh + oy0 + 2, dw + ox0 + 2), -7.0, np.float32)
        g = float(rng.uniform(0.8, 1.8)) if gain is None else gain
        kw = dict(overscan=mode, gain=g, row_start=r0, row_stop=r1)
        return (seg, (pre, 0, dw, dh), (pre + dw, 0, osw, dh), out, oy0, ox0, fx, fy), kw

    return make


def _returning_out(fn: Callable[..., None], out_index: int) -> Callable[..., np.ndarray]:
    def run(*args: Any, **kwargs: Any) -> np.ndarray:
        fn(*args, **kwargs)
        return args[out_index]

    run.__name__ = getattr(fn, "__name__", "run")
    return run


# --------------------------------------------------------------------------- binning
def _reduce_args(how: str) -> Callable[..., Args]:
    def make(rng: np.random.Generator, shape: tuple[int, int], dtype: str = "float32", *, factor: int | None = None,
             masked: bool = False, nan_frac: float = 0.01) -> Args:  # fmt: skip
        img = make_image(rng, shape, dtype, nan_frac=nan_frac)
        f = int(rng.integers(1, 6)) if factor is None else factor
        kw: dict[str, Any] = dict(how=how)
        if masked:
            kw.update(mask=make_mask(rng, shape), mask_bits=0b0101)
        return (img, f), kw

    return make


def _pyramid_args(rng: np.random.Generator, shape: tuple[int, int], dtype: str = "float32", *,
                  nan_frac: float = 0.01) -> Args:  # fmt: skip
    return (make_image(rng, shape, dtype, nan_frac=nan_frac),), {}


def _rotate_args(rng: np.random.Generator, shape: tuple[int, int], dtype: str = "float32", *,
                 n_quarter: int | None = None) -> Args:  # fmt: skip
    n = int(rng.integers(-5, 6)) if n_quarter is None else n_quarter
    return (make_image(rng, shape, dtype), n), {}


def _bin_rotate_args(rng: np.random.Generator, shape: tuple[int, int], dtype: str = "float32", *,
                     factor: int | None = None, n_quarter: int | None = None, masked: bool = False,
                     offset: tuple[int, int] | None = None, nan_frac: float = 0.01,
                     how: str | None = None) -> Args:  # fmt: skip
    img = make_image(rng, shape, dtype, nan_frac=nan_frac)
    f = int(rng.integers(1, 6)) if factor is None else factor
    n = int(rng.integers(-4, 5)) if n_quarter is None else n_quarter
    by, bx = -(-shape[0] // f), -(-shape[1] // f)
    size = max(by, bx)
    out = np.full((size + 3, size + 5), -7.0, np.float32)
    if offset is None:  # often partly outside the mosaic
        offset = (int(rng.integers(-size // 2 - 1, size // 2 + 4)), int(rng.integers(-size // 2 - 1, size // 2 + 6)))
    kw: dict[str, Any] = dict(how=str(rng.choice(["mean", "sum", "max", "min"])) if how is None else how)
    if masked:
        kw.update(mask=make_mask(rng, shape), mask_bits=0b0011)
    return (img, f, n, out, offset[0], offset[1]), kw


# --------------------------------------------------------------------------- statistics
def amp_boxes(shape: tuple[int, int], nx_amp: int = 8, ny_amp: int = 2) -> np.ndarray:
    """``(x0, y0, w, h)`` boxes tiling ``shape`` as ``ny_amp`` x ``nx_amp`` amps (edges absorb remainders)."""
    ny, nx = shape
    xs = np.linspace(0, nx, nx_amp + 1).astype(int)
    ys = np.linspace(0, ny, ny_amp + 1).astype(int)
    return np.array([(xs[i], ys[j], xs[i + 1] - xs[i], ys[j + 1] - ys[j])
                     for j in range(ny_amp) for i in range(nx_amp)
                     if xs[i + 1] > xs[i] and ys[j + 1] > ys[j]], dtype=np.int64)  # fmt: skip


def _stats_args(rng: np.random.Generator, shape: tuple[int, int], dtype: str = "float32", *,
                masked: bool = False, nan_frac: float = 0.01, n_threads: int = 1) -> Args:  # fmt: skip
    img = make_image(rng, shape, dtype, nan_frac=nan_frac)
    kw: dict[str, Any] = dict(nsigma=3.0, niter=3, n_threads=n_threads)
    if masked:
        kw.update(mask=make_mask(rng, shape), mask_bits=0b0110)
    return (img, amp_boxes(shape)), kw


def _diff_args(rng: np.random.Generator, shape: tuple[int, int], dtype: str = "float32", *,
               masked: bool = False, nan_frac: float = 0.01, n_threads: int = 1) -> Args:  # fmt: skip
    a = make_image(rng, shape, dtype, nan_frac=nan_frac)
    b = a.copy()
    sel = rng.random(shape) < 0.3
    b[sel] = (b[sel] + rng.normal(0, 2.0, sel.sum())).astype(b.dtype)
    kw: dict[str, Any] = dict(tolerance=0.5, nsigma=3.0, niter=3, n_threads=n_threads)
    if masked:
        kw.update(mask=make_mask(rng, shape), mask_bits=0b1000)
    return (a, b, amp_boxes(shape)), kw


# --------------------------------------------------------------------------- the table
KERNELS: dict[str, dict[str, Any]] = {}
for _mode in ("median", "mean", "single", "none"):
    KERNELS[f"assemble_amp_{_mode}"] = dict(
        numba=_returning_out(assemble_amp, 3), numpy=_returning_out(ref.assemble_amp, 3),
        make_args=_assemble_args(_mode), rtol=1e-6, atol=1e-3,
    )  # fmt: skip
for _how in ("mean", "sum", "max", "min"):
    KERNELS[f"block_reduce_{_how}"] = dict(
        numba=block_reduce, numpy=ref.block_reduce, make_args=_reduce_args(_how), rtol=1e-6, atol=1e-6
    )
KERNELS["pyramid_reduce"] = dict(numba=pyramid_reduce, numpy=ref.pyramid_reduce, make_args=_pyramid_args,
                                 rtol=1e-6, atol=1e-6)  # fmt: skip
KERNELS["rotate_quarter"] = dict(numba=rotate_quarter, numpy=ref.rotate_quarter, make_args=_rotate_args,
                                 rtol=0.0, atol=0.0)  # fmt: skip
KERNELS["bin_rotate_into"] = dict(
    numba=_returning_out(bin_rotate_into, 3), numpy=_returning_out(ref.bin_rotate_into, 3),
    make_args=_bin_rotate_args, rtol=1e-6, atol=1e-6,
)  # fmt: skip
KERNELS["amp_statistics"] = dict(numba=amp_statistics, numpy=ref.amp_statistics, make_args=_stats_args,
                                 rtol=1e-9, atol=1e-9)  # fmt: skip
KERNELS["amp_difference_statistics"] = dict(
    numba=amp_difference_statistics, numpy=ref.amp_difference_statistics, make_args=_diff_args,
    rtol=1e-9, atol=1e-9, n_inputs=2,
)  # fmt: skip
