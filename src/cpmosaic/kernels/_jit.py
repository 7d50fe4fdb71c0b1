"""Numba options and the low-level jitted primitives the kernels share.

This is the one place the numba options are declared.  Kernels are serial and
release the GIL (``nogil=True``): the dask layer above runs many of them at once
in threads, and numba's own thread pool would fight with it.  ``cache=True`` keeps
the compiled machine code between processes; ``error_model="numpy"`` makes a
float division by zero give inf/NaN instead of raising, which is what NaN-aware
code wants and removes a branch from every division.

Byte order
----------
FITS data are big-endian and numba only accepts native-order arrays.  Rather
than paying a full extra pass (``arr.astype(native)``) the public wrappers hand
the kernels a *native unsigned-integer view of the same bytes*
(:func:`raw_view`), and the kernels decode each element where they use it
(:func:`decode_one`: byte swap if needed, reinterpret as int or float) or decode
a short row into a native float64 scratch row (:func:`decode_row`).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import overload

__all__ = [
    "KIND_FLOAT",
    "KIND_SIGNED",
    "KIND_UNSIGNED",
    "decode_int_row",
    "decode_one",
    "decode_row",
    "mask_view",
    "ngjit",
    "ngjit_fast",
    "raw_view",
    "select_inplace",
]

#: Serial, GIL-free, cached kernels.
ngjit = numba.njit(nogil=True, cache=True, error_model="numpy")

#: As :data:`ngjit` but lets LLVM reorder float sums and assume no NaN, so
#: reductions vectorise.  Only for loops over buffers the caller has already
#: filtered to finite values (the statistics scratch buffers); results may differ
#: from a sequential sum in the last bits.
ngjit_fast = numba.njit(
    nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "nsz", "arcp", "contract"}
)

#: ``jit_options`` of the ``@overload`` implementations (cached like :data:`ngjit`); typed Any
#: because numba's stubs leave ``cache``, which numba accepts, out of their TypedDict.
OVERLOAD_OPTIONS: Any = {"cache": True}

# How the bits of a raw element are to be read.
KIND_SIGNED = 0
KIND_UNSIGNED = 1
KIND_FLOAT = 2

_U8 = np.uint64(0xFF)


# --------------------------------------------------------------------------- Python side
def raw_view(arr: np.ndarray, name: str = "image") -> tuple[np.ndarray, bool, int]:
    """Return ``(native unsigned view, needs byteswap, kind)`` for a pixel array.

    Parameters
    ----------
    arr
        2-D array of int16/uint16/int32/uint32/int64/uint64/float32/float64, in
        either byte order.
    name
        Argument name used in error messages.

    Returns
    -------
    raw : numpy.ndarray
        The same memory viewed as native ``uint16``/``uint32``/``uint64``.
    swap : bool
        True when the bytes must be swapped to get the value.
    kind : int
        One of ``KIND_SIGNED``, ``KIND_UNSIGNED``, ``KIND_FLOAT``.
    """
    dt = arr.dtype
    if dt.kind not in "iuf" or dt.itemsize not in (2, 4, 8) or (dt.kind == "f" and dt.itemsize == 2):
        raise ValueError(f"{name} dtype {dt.str!r} is not supported (use int16/32/64, uint16/32/64, float32/64)")
    kind = {"i": KIND_SIGNED, "u": KIND_UNSIGNED, "f": KIND_FLOAT}[dt.kind]
    # A same-itemsize view is legal for any strides, so this never copies.
    raw = arr.view(np.dtype(f"=u{dt.itemsize}"))
    return raw, not dt.isnative, kind


def mask_view(mask: np.ndarray | None, shape: tuple[int, ...], name: str = "mask") -> tuple[np.ndarray, bool]:
    """Return ``(native integer mask, use_mask)`` ready for a kernel.

    ``None`` gives a 1x1 dummy and ``use_mask=False`` so the kernel signature stays
    the same.  Masks are small next to images, so a non-native byte order is
    converted here (one pass) rather than decoded in every kernel.
    """
    if mask is None:
        return np.zeros((1, 1), np.uint8), False
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError(f"{name} shape {mask.shape} does not match image shape {tuple(shape)}")
    if mask.dtype == np.bool_:
        return mask.view(np.uint8), True
    if mask.dtype.kind not in "iu":
        raise ValueError(f"{name} dtype {mask.dtype.str!r} is not an integer or bool type")
    if not mask.dtype.isnative:
        mask = mask.astype(mask.dtype.newbyteorder("="))
    return mask, True


def check_mask_bits(mask_bits: int) -> np.uint64:
    """Validate ``mask_bits`` and return it as ``np.uint64``."""
    try:
        bits = int(mask_bits)
    except (TypeError, ValueError):
        raise ValueError(f"mask_bits={mask_bits!r} is not an integer") from None
    if bits != mask_bits or not 0 <= bits < 2**64:
        raise ValueError(f"mask_bits={mask_bits!r} must be an integer in [0, 2**64)")
    return np.uint64(bits)


def check_image(image: object, name: str = "image") -> np.ndarray:
    """``np.asarray`` plus a 2-D check."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got ndim={arr.ndim} (shape {arr.shape})")
    return arr


def check_out(out: object, name: str = "out") -> np.ndarray:
    """Validate a preallocated output: native float32, 2-D, writeable."""
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got ndim={out.ndim}")
    if out.dtype != np.dtype("=f4"):
        raise ValueError(f"{name} dtype must be native float32, got {out.dtype.str!r}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def check_int(value: object, name: str, minimum: int | None = None) -> int:
    """An integral value (Python or numpy int) as ``int``, optionally ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} is not an integer")
    ivalue = int(value)
    if minimum is not None and ivalue < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")
    return ivalue


# --------------------------------------------------------------------------- bit tricks
# Scalar helpers dispatched on the raw integer width at compile time.  Constants
# are np.uint64 throughout: numba promotes uint64 (op) int64 to float64.
def bswap(u):  # pragma: no cover - replaced by the overload in jitted code
    raise NotImplementedError


@overload(bswap, jit_options=OVERLOAD_OPTIONS)
def _ov_bswap(u):
    if u == types.uint16:

        def impl(u):
            x = np.uint64(u)
            return np.uint16(((x >> np.uint64(8)) & _U8) | ((x & _U8) << np.uint64(8)))

        return impl
    if u == types.uint32:

        def impl(u):
            x = np.uint64(u)
            r = (
                ((x >> np.uint64(24)) & _U8)
                | (((x >> np.uint64(16)) & _U8) << np.uint64(8))
                | (((x >> np.uint64(8)) & _U8) << np.uint64(16))
                | ((x & _U8) << np.uint64(24))
            )
            return np.uint32(r)

        return impl
    if u == types.uint64:

        def impl(u):
            x = np.uint64(u)
            r = np.uint64(0)
            for _ in range(8):
                r = (r << np.uint64(8)) | (x & _U8)
                x = x >> np.uint64(8)
            return r

        return impl
    return None


def as_int64(u):  # pragma: no cover
    raise NotImplementedError


@overload(as_int64, jit_options=OVERLOAD_OPTIONS)
def _ov_as_int64(u):
    if u == types.uint16:
        return lambda u: np.int64(np.uint16(u).view(np.int16))
    if u == types.uint32:
        return lambda u: np.int64(np.uint32(u).view(np.int32))
    if u == types.uint64:
        return lambda u: np.uint64(u).view(np.int64)
    return None


def as_signed(u):  # pragma: no cover
    raise NotImplementedError


@overload(as_signed, jit_options=OVERLOAD_OPTIONS)
def _ov_as_signed(u):
    # LLVM folds the widening into the conversion: no int64 step at run time
    if u in (types.uint16, types.uint32, types.uint64):
        return lambda u: np.float64(as_int64(u))
    return None


def as_float(u):  # pragma: no cover
    raise NotImplementedError


@overload(as_float, jit_options=OVERLOAD_OPTIONS)
def _ov_as_float(u):
    if u == types.uint32:
        return lambda u: np.float64(np.uint32(u).view(np.float32))
    if u == types.uint64:
        return lambda u: np.uint64(u).view(np.float64)
    if u == types.uint16:
        # There is no float16 path (raw_view refuses it); this only has to type.
        return lambda u: np.float64(np.nan)
    return None


@ngjit
def decode_one(u, swap, kind):
    """One raw element as float64.  Used inside loops with loop-invariant
    ``swap``/``kind``: LLVM unswitches them, so each variant vectorises."""
    if swap:
        u = bswap(u)
    if kind == KIND_FLOAT:
        return as_float(u)
    if kind == KIND_SIGNED:
        return as_signed(u)
    return np.float64(u)


@ngjit
def decode_row(raw, y, x0, w, swap, kind, out):
    """Decode ``raw[y, x0:x0+w]`` into ``out[:w]`` as float64 (byte-swapping if asked).

    Each (swap, kind) pair gets its own loop so the per-pixel work has no branch.
    """
    src = raw[y, x0 : x0 + w]
    if swap:
        if kind == KIND_FLOAT:
            for j in range(w):
                out[j] = as_float(bswap(src[j]))
        elif kind == KIND_SIGNED:
            for j in range(w):
                out[j] = as_signed(bswap(src[j]))
        else:
            for j in range(w):
                out[j] = np.float64(bswap(src[j]))
    else:
        if kind == KIND_FLOAT:
            for j in range(w):
                out[j] = as_float(src[j])
        elif kind == KIND_SIGNED:
            for j in range(w):
                out[j] = as_signed(src[j])
        else:
            for j in range(w):
                out[j] = np.float64(src[j])


@ngjit
def decode_int_row(raw, y, x0, w, swap, signed, out):
    """Decode integer pixels ``raw[y, x0:x0+w]`` into int64 ``out[:w]``; returns ``(lo, hi)``.

    For 16- and 32-bit integer data (``signed``: two's complement, else
    unsigned), which int64 holds exactly; one branch-free pass per variant.
    """
    src = raw[y, x0 : x0 + w]
    lo = np.int64(2**62)
    hi = np.int64(-(2**62))
    if swap:
        if signed:
            for j in range(w):
                v = as_int64(bswap(src[j]))
                out[j] = v
                lo = v if v < lo else lo
                hi = v if v > hi else hi
        else:
            for j in range(w):
                v = np.int64(bswap(src[j]))
                out[j] = v
                lo = v if v < lo else lo
                hi = v if v > hi else hi
    else:
        if signed:
            for j in range(w):
                v = as_int64(src[j])
                out[j] = v
                lo = v if v < lo else lo
                hi = v if v > hi else hi
        else:
            for j in range(w):
                v = np.int64(src[j])
                out[j] = v
                lo = v if v < lo else lo
                hi = v if v > hi else hi
    return lo, hi


# --------------------------------------------------------------------------- selection
@ngjit
def select_inplace(a, lo, hi, k):
    """Partially order ``a[lo:hi+1]`` (inclusive ``hi``) so ``a[k]`` is its k-th smallest.

    Hoare partition with a median-of-three pivot: linear on average and well
    behaved on data with many equal values (integer ADU), which is what overscan
    rows look like.  NaN must have been removed by the caller.
    """
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        # a[lo..j] <= pivot <= a[i..hi]; anything strictly between equals pivot.
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@ngjit
def nanmedian_inplace(a, n):
    """Median of the non-NaN values of ``a[:n]``, as ``np.nanmedian``; reorders ``a``.

    Returns NaN when there is no valid value.  For an even count the result is
    ``(lo + hi) / 2`` like numpy.
    """
    m = 0
    for i in range(n):
        v = a[i]
        if v == v:
            a[m] = v
            m += 1
    if m == 0:
        return np.nan
    k = (m - 1) // 2
    select_inplace(a, 0, m - 1, k)
    lo = a[k]
    if m % 2 == 1:
        return lo
    hi = a[k + 1]
    for i in range(k + 2, m):
        if a[i] < hi:
            hi = a[i]
    return (lo + hi) / 2.0
