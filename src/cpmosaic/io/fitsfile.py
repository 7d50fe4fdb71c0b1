"""FITS files at the byte level: opening, memory maps with controlled readahead, preads.

What the exposure readers need below the format: :func:`open_fits` (astropy,
memory-mapped, every header checked for truncation and corruption), gzip/bzip2/xz
streams decompressed once (:func:`source`), a read-only :class:`FileMap` whose
readahead we control, :func:`pread_exact` into a caller's buffer, and the
:class:`ImageLayout` of an uncompressed image HDU (where its pixels lie and how
they are scaled), so rows can be read without astropy.

>>> from cpmosaic.io.fitsfile import image_layout
>>> image_layout({"NAXIS": 2, "BITPIX": 16, "NAXIS1": 6, "NAXIS2": 4, "BZERO": 32768}, 2880)
ImageLayout(offset=2880, dtype=dtype('>i2'), shape=(4, 6), scaling=Scaling(bzero=32768.0, bscale=1.0, blank=None))
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

__all__ = ["FileMap", "ImageLayout", "Scaling", "image_layout", "open_fits", "pread_exact", "source",
           "stream_kind", "unscale"]

#: BITPIX -> big-endian numpy dtype, for images read through our own map.
_BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class Scaling(NamedTuple):
    """FITS pixel scaling (standard 4.0, section 5.3): physical = bzero + bscale * stored."""

    bzero: float
    bscale: float
    blank: int | None  #: stored value meaning "no data" (integer images only)


class ImageLayout(NamedTuple):
    """Where an uncompressed 2-D image lies in its file, and how it is scaled."""

    offset: int  #: byte offset of the first pixel
    dtype: np.dtype  #: stored (big-endian) dtype
    shape: tuple[int, int]  #: ``(ny, nx)``
    scaling: Scaling | None = None  #: None: the stored values are the pixel values

    @property
    def row_bytes(self) -> int:
        return self.shape[1] * self.dtype.itemsize


def image_layout(h: Mapping[str, Any], offset: int) -> ImageLayout | None:
    """The :class:`ImageLayout` of an uncompressed 2-D image with header ``h`` whose data
    start at byte ``offset``; None for anything else (astropy reads those)."""
    if h.get("NAXIS") != 2 or h.get("BITPIX") not in _BITPIX:
        return None
    layout = ImageLayout(offset, np.dtype(_BITPIX[h["BITPIX"]]), (int(h["NAXIS2"]), int(h["NAXIS1"])))
    bzero = h.get("BZERO", 0) or 0
    bscale = h.get("BSCALE", 1)
    bscale = 1 if bscale is None else bscale
    if bzero == 0 and bscale == 1:
        return layout
    blank = h.get("BLANK") if h["BITPIX"] > 0 else None
    return layout._replace(scaling=Scaling(float(bzero), float(bscale), blank))


def unscale(data: np.ndarray, scaling: Scaling) -> np.ndarray:
    """Physical values of scaled pixels: float32, BLANK as NaN.

    >>> unscale(np.array([0, 1, -1], ">i2"), Scaling(32768.0, 1.0, -1)).tolist()
    [32768.0, 32769.0, nan]
    """
    out = data.astype(np.float64) * scaling.bscale + scaling.bzero
    if scaling.blank is not None:
        out[data == scaling.blank] = np.nan
    return out.astype(np.float32)


def pread_exact(fd: int, view: memoryview, start: int) -> None:
    """Fill *view* from byte *start* of the open file *fd* (``preadv``, which releases the GIL).

    Raises
    ------
    EOFError
        The file ends before the view is full.
    """
    got, nbytes = 0, len(view)
    while got < nbytes:  # a short read only at the end of the file
        n = os.preadv(fd, [view[got:]], start + got) if hasattr(os, "preadv") else \
            _pread_into(fd, view[got:], start + got)
        if n <= 0:
            raise EOFError(f"bytes {start}:{start + nbytes} end past the end of the file")
        got += n


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """``os.preadv`` for systems without it (one read at ``offset``)."""
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


class FileMap:
    """A read-only memory map of a FITS file whose readahead we control.

    A page fault on an ordinary map makes the kernel read ``read_ahead_kb``
    around it: 8 MB on some disks, so ten rows of an image cost megabytes.  The
    map is advised MADV_RANDOM (no read-around) and each read asks for exactly
    its byte range with MADV_WILLNEED, which still reads it in one go.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import mmap

        self._mmap_mod = mmap
        with open(path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._size = len(self._mm)
        self._buffer: np.ndarray | None = None
        if hasattr(self._mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
            self._mm.madvise(mmap.MADV_RANDOM)

    @property
    def buffer(self) -> np.ndarray:
        """The whole file as a uint8 array (no copy)."""
        if self._buffer is None:
            self._buffer = np.frombuffer(self._mm, dtype=np.uint8)
        return self._buffer

    def willneed(self, start: int, length: int) -> None:
        """Ask the kernel to read ``[start, start + length)`` now, in one go."""
        start, length = max(0, start), min(length, self._size - max(0, start))
        if length > 0 and hasattr(self._mm, "madvise") and hasattr(self._mmap_mod, "MADV_WILLNEED"):
            page = start - start % self._mmap_mod.PAGESIZE
            self._mm.madvise(self._mmap_mod.MADV_WILLNEED, page, start + length - page)

    def release(self, start: int = 0, length: int | None = None) -> None:
        """MADV_DONTNEED ``[start, start + length)`` (default: all): drop those pages from
        this process, not from the page cache."""
        length = self._size - start if length is None else min(length, self._size - start)
        if length > 0 and hasattr(self._mm, "madvise") and hasattr(self._mmap_mod, "MADV_DONTNEED"):
            page = start - start % self._mmap_mod.PAGESIZE
            try:
                self._mm.madvise(self._mmap_mod.MADV_DONTNEED, page, start + length - page)
            except (OSError, ValueError):  # closed meanwhile, or not supported here
                pass

    def rows(self, layout: ImageLayout, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0:y1`` of the image at *layout*, as stored: a view into the map."""
        dtype, nx = layout.dtype, layout.shape[1]
        start = layout.offset + y0 * layout.row_bytes
        length = (y1 - y0) * layout.row_bytes
        if start + length > self._size:
            raise EOFError(f"rows {y0}:{y1} end at byte {start + length}, past the end of the file ({self._size})")
        self.willneed(start, length)
        return np.frombuffer(self._mm, dtype=dtype, count=(y1 - y0) * nx, offset=start).reshape(y1 - y0, nx)

    def close(self) -> None:
        self._buffer = None
        try:
            self._mm.close()
        except BufferError:  # a caller still holds a view; the map goes with it
            pass


def open_fits(path: str | os.PathLike):
    """Open a FITS file memory-mapped, headers scanned, or raise InputError.

    Memory mapping is what lets a row range of an uncompressed file be read
    without reading the rest; lazy HDU loading plus one pass over the headers
    never touches pixel data.
    """
    from astropy.io import fits

    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a directory, not a FITS file")
    opened, size = source(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(opened, mode="readonly", memmap=True, lazy_load_hdus=True)
        except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError) as exc:
            raise InputError(p, f"not a readable FITS file ({exc})") from None
        try:
            n = len(hdul)  # reads every header
            for hdu in hdul:
                hdu.header  # noqa: B018 - force the header parse now, inside the guard
        except Exception as exc:
            hdul.close()
            raise InputError(p, f"corrupt FITS file ({type(exc).__name__}: {exc})") from None
    for w in caught:
        text = str(w.message)
        if "truncated" in text.lower():
            hdul.close()
            raise InputError(p, f"file is truncated ({text})")
        log.debug("%s: astropy: %s", p, text)
    if n == 0:
        hdul.close()
        raise InputError(p, "FITS file has no HDUs")
    for i, hdu in enumerate(hdul):  # belt and braces: astropy warns only for some cuts
        info = hdu.fileinfo()  # the HDU's own fileinfo: HDUList.fileinfo re-verifies headers (slow)
        if info and info["datSpan"] and info["datLoc"] + info["datSpan"] > size + 2879:
            hdul.close()
            raise InputError(p, f"file is truncated: HDU {i} ends past the end of the file ({size} bytes)")
    return hdul


_STREAMS = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ": "lzma"}


def source(p: Path):
    """``(what to give fits.open, data size)``.

    A gzip/bzip2/xz stream is decompressed into memory once: astropy would
    otherwise re-decompress from the start of the stream on every backward seek,
    which is what reading a tile-compressed image tile by tile does (minutes per
    file instead of a fraction of a second).  Reading headers only would not save
    much: reaching the last header means decompressing everything before it.
    """
    module = stream_kind(p)
    if module is not None:
        import importlib
        import io

        try:
            data = importlib.import_module(module).decompress(p.read_bytes())
        except (OSError, EOFError, ValueError) as exc:
            raise InputError(p, f"{module} stream is corrupt or truncated ({exc})") from None
        return io.BytesIO(data), len(data)
    return p, p.stat().st_size


def stream_kind(p: Path) -> str | None:
    """The decompression module for a gzip/bzip2/xz file, None for a plain one."""
    with open(p, "rb") as f:
        magic = f.read(6)
    for prefix, module in _STREAMS.items():
        if magic.startswith(prefix):
            return module
    return None
