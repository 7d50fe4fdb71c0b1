"""Exposure metadata, the common reader interface, and the format dispatch.

Three kinds of file are read:

* ``raw``: multi-HDU LSST raws (``Segment10`` ... ``Segment00``), assembled from
  camera geometry (:mod:`cpmosaic.io.fits_raw`);
* ``processed``: afw-style IMAGE/MASK/VARIANCE files (:mod:`cpmosaic.io.fits_processed`);
* ``image``: a plain single-image FITS file (primary or first image HDU).

Examples
--------
>>> from cpmosaic.io import identify, open_exposure        # doctest: +SKIP
>>> identify("raw.fits").detector_name                     # doctest: +SKIP
'R22_S11'
>>> with open_exposure("raw.fits") as exp:                 # doctest: +SKIP
...     bottom = exp.read(slice(0, 100))                   # only the C0x amps are read
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import CpmosaicError, InputError
from .fitsscan import ScanError, ScannedFile, ScannedHDU, scan_fits

if TYPE_CHECKING:  # astropy is imported where a file is opened
    from ..camera import Camera, Detector

log = logging.getLogger(__name__)

__all__ = ["Exposure", "ExposureInfo", "ExposureKind", "identify", "open_exposure", "open_fits"]

ExposureKind = Literal["raw", "processed", "image"]
OVERSCAN_CHOICES = ("median", "mean", "single", "none")
#: Decode row-tiled RICE images with :mod:`cpmosaic.io.rice` (False: astropy only).
FAST_RICE = True


@dataclass(frozen=True)
class ExposureInfo:
    """What one exposure file is, from its headers alone.

    ``shape`` is the ``(ny, nx)`` of the assembled image (for a raw, the
    detector's trimmed size).  Fields a header does not give are None.
    """

    path: str
    kind: ExposureKind
    instrument: str | None
    camera: str | None
    detector: int | None
    detector_name: str | None
    exposure: int | None
    day_obs: int | None
    seq_num: int | None
    mjd: float | None
    image_type: str | None
    filter: str | None
    exposure_time: float | None
    dark_time: float | None
    shape: tuple[int, int]
    #: CONTRLLR: the controller code that, with day_obs and seq_num, makes ``exposure``.
    controller: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``shape`` as a list)."""
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        return d

    def to_header(self) -> dict[str, Any]:
        """FITS cards that carry this metadata (None values left out)."""
        cards = {
            "INSTRUME": self.instrument or self.camera,
            "DETNAME": self.detector_name,
            "DETECTOR": self.detector,
            "EXPOSURE": self.exposure,
            "DAYOBS": None if self.day_obs is None else str(self.day_obs),
            "SEQNUM": self.seq_num,
            "CONTRLLR": self.controller,
            "MJD-OBS": self.mjd,
            "IMGTYPE": self.image_type,
            "FILTER": self.filter,
            "EXPTIME": self.exposure_time,
            "DARKTIME": self.dark_time,
        }
        if self.detector_name and "_" in self.detector_name:
            cards["RAFTBAY"], cards["CCDSLOT"] = self.detector_name.split("_", 1)
        return {k: v for k, v in cards.items() if v is not None}


class Exposure:
    """An open exposure file; read pixels with :meth:`read`.

    Use as a context manager (or call :meth:`close`).  Rows are array rows of
    the assembled image ``[y, x]``, y growing upwards.  One Exposure is not
    thread safe: serialise reads of it (different Exposures are independent).
    """

    def __init__(self, info: ExposureInfo, detector: "Detector | None", camera: "Camera | None", hdul) -> None:
        self.info = info
        self.detector = detector
        self.camera = camera
        self._hdul = hdul
        self._map: _FileMap | None = None
        self._fd: int | None = None
        self._map_ok: bool | None = None
        self._layouts: dict[int, Any] = {}
        self._rice: dict | None = None

    @property
    def path(self) -> Path:
        return Path(self.info.path)

    @property
    def shape(self) -> tuple[int, int]:
        return self.info.shape

    def _rows(self, rows: slice | None) -> tuple[int, int]:
        if rows is None:
            return 0, self.shape[0]
        if not isinstance(rows, slice):
            raise TypeError(f"rows must be a slice or None, got {type(rows).__name__}")
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise ValueError(f"rows must be a contiguous slice (step 1), got step {step}")
        return start, max(start, stop)

    def read(self, rows: slice | None = None) -> np.ndarray:
        """Pixels as native float32 ``[y, x]`` (all rows, or ``rows``)."""
        raise NotImplementedError

    def read_stored(self, rows: slice | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Pixels ``[y, x]`` as the file stores them, without a conversion copy where possible.

        Gives the same values as :meth:`read` but possibly big-endian (``'>f4'``)
        and possibly a view into the file's memory map, valid until :meth:`close`:
        for consumers that decode byte order themselves (the
        :mod:`cpmosaic.kernels` binning kernels).  The default is :meth:`read`.

        ``out``: a C-contiguous uint8 buffer the reader may read the rows into
        (and return a view of) instead, where the pixels lie plainly in the file:
        a caller reusing one buffer keeps it hot in cache and maps no file pages.
        """
        return self.read(rows)

    def _read_into(self, layout: tuple, y0: int, y1: int, out: np.ndarray) -> np.ndarray | None:
        """Rows ``y0:y1`` of a plain image ``layout`` read into ``out`` (a view of it), or
        None when ``out`` is too small."""
        offset, dtype, (_, nx) = layout[:3]
        row = nx * dtype.itemsize
        nbytes = (y1 - y0) * row
        if out.nbytes < nbytes or out.dtype != np.uint8 or not out.flags.c_contiguous:
            return None
        view = memoryview(out)[:nbytes]
        if self._fd is None:
            self._fd = os.open(self.info.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        start = offset + y0 * row
        got = 0
        while got < nbytes:  # preadv releases the GIL; a short read only at the end of the file
            n = os.preadv(self._fd, [view[got:]], start + got) if hasattr(os, "preadv") else \
                _pread_into(self._fd, view[got:], start + got)
            if n <= 0:
                raise EOFError(f"rows {y0}:{y1} end at byte {start + nbytes}, past the end of the file")
            got += n
        return np.frombuffer(out, dtype, count=(y1 - y0) * nx).reshape(y1 - y0, nx)

    def read_mask(self, rows: slice | None = None) -> np.ndarray | None:
        """The integer mask plane, or None when the file has none."""
        return None

    def _hdu_rows(self, index: int, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0:y1`` of the 2-D image in HDU *index*, as stored (maybe big-endian).

        Uncompressed images come from our own memory map (see :class:`_FileMap`),
        row-tiled RICE images from :mod:`cpmosaic.io.rice` over that map, anything
        else from astropy's ``section`` (which decompresses only the tiles needed).
        The result may be a view into the map: copy it before closing.
        """
        hdul = self._require_open()
        hdu = hdul[index]
        try:
            layout = self._layout(index)
            if layout is None:
                return self._astropy()[index].section[y0:y1]
            fmap = self._file_map()
            if isinstance(layout, tuple):
                data = fmap.rows(*layout[:3], y0, y1)
                return data if len(layout) == 3 else _unscale(data, *layout[3])
            from .rice import decode_rows, tile_span

            if y1 <= y0:
                return np.empty((0, layout.shape[1]), layout.dtype)
            fmap.willneed(layout.table_offset + (y0 // layout.tile_rows) * layout.row_bytes,
                          ((y1 - 1) // layout.tile_rows - y0 // layout.tile_rows + 1) * layout.row_bytes)  # fmt: skip
            start, stop = tile_span(fmap.buffer, layout, y0, y1)
            fmap.willneed(start, stop - start)
            return decode_rows(fmap.buffer, layout, y0, y1)
        except CpmosaicError:
            raise
        except Exception as exc:  # astropy/zlib raise a zoo of types on corrupt data
            raise InputError(self.info.path, f"{hdu.name or f'HDU {index}'}: cannot read rows {y0}:{y1} "
                                             f"({type(exc).__name__}: {exc})") from None  # fmt: skip

    def _layout(self, index: int):
        """How to read HDU *index* ourselves: ``(offset, dtype, shape)`` for a plain
        image (plus ``(bzero, bscale, blank)`` for a scaled one, e.g. unsigned
        16-bit), a :class:`~cpmosaic.io.rice.RiceLayout`, or None (use astropy).
        Worked out once per HDU."""
        if index in self._layouts:
            return self._layouts[index]
        hdu = self._hdul[index]
        layout = None
        h = hdu.header
        if isinstance(hdu, ScannedHDU):
            if hdu.compressed:
                if FAST_RICE:
                    from .rice import rice_layout

                    layout = rice_layout(h, hdu.data_offset)
            elif hdu.is_image:
                layout = _image_layout(h, hdu.data_offset)
        else:
            from astropy.io import fits

            if not self._mappable():
                pass
            elif isinstance(hdu, fits.CompImageHDU):
                if FAST_RICE:
                    layout = self._rice_layouts().get(index)
            elif hdu.is_image:
                layout = _image_layout(h, int(hdu.fileinfo()["datLoc"]))
        self._layouts[index] = layout
        return layout

    def _rice_layouts(self) -> dict:
        """RICE layouts of every compressed HDU, from the binary-table headers.

        astropy shows a compressed HDU's image header; the tile table's header
        and offset come from opening the file once more with image compression
        disabled, closed again straight away.
        """
        if self._rice is None:
            from astropy.io import fits

            from .rice import rice_layout

            self._rice = {}
            with fits.open(self.info.path, disable_image_compression=True, lazy_load_hdus=True) as tables:
                for i, hdu in enumerate(tables):
                    if hdu.header.get("ZIMAGE"):
                        self._rice[i] = rice_layout(hdu.header, int(hdu.fileinfo()["datLoc"]))
        return self._rice

    def _mappable(self) -> bool:
        if self._map_ok is None:
            self._map_ok = _stream_kind(Path(self.info.path)) is None
        return self._map_ok

    def _file_map(self) -> "_FileMap":
        if self._map is None:
            self._map = _FileMap(self.info.path)
        return self._map

    def release_pages(self, rows: slice | None = None) -> None:
        """Unmap the file pages reads have touched (they stay in the page cache).

        Mapped pages count in the process's resident size while the file is
        open; a build that keeps files open across tasks calls this after each
        read it has consumed.  ``rows``: only the pages of those rows where the
        reader can tell (the whole map otherwise).  Views handed out stay valid
        (a later access maps the page again).
        """
        if self._map is not None:
            self._map.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._hdul is not None:
            self._hdul.close()
            self._hdul = None

    def _require_open(self):
        """The open HDUs: an astropy ``HDUList``, or a :class:`~cpmosaic.io.fitsscan.ScannedFile`."""
        if self._hdul is None:
            raise ValueError(f"{self.info.path}: exposure is closed")
        return self._hdul

    def _astropy(self):
        """The astropy ``HDUList``, opened now if the file was only scanned (see :func:`_open`)."""
        hdul = self._require_open()
        if isinstance(hdul, ScannedFile):
            self._hdul = hdul = open_fits(self.info.path)
            self._layouts.clear()
        return hdul

    def __enter__(self) -> "Exposure":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close must not leak the file handle
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        i = self.info
        return f"<{type(self).__name__} {i.kind} {i.detector_name} exposure={i.exposure} shape={i.shape} {i.path}>"


#: BITPIX -> big-endian numpy dtype, for images read through our own map.
_BITPIX = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class _FileMap:
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

    def rows(self, offset: int, dtype: np.dtype, shape: tuple[int, int], y0: int, y1: int) -> np.ndarray:
        ny, nx = shape
        start = offset + y0 * nx * dtype.itemsize
        length = (y1 - y0) * nx * dtype.itemsize
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
    source, size = _source(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(source, mode="readonly", memmap=True, lazy_load_hdus=True)
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


def _source(p: Path):
    """``(what to give fits.open, data size)``.

    A gzip/bzip2/xz stream is decompressed into memory once: astropy would
    otherwise re-decompress from the start of the stream on every backward seek,
    which is what reading a tile-compressed image tile by tile does (minutes per
    file instead of a fraction of a second).  Reading headers only would not save
    much: reaching the last header means decompressing everything before it.
    """
    module = _stream_kind(p)
    if module is not None:
        import importlib
        import io

        try:
            data = importlib.import_module(module).decompress(p.read_bytes())
        except (OSError, EOFError, ValueError) as exc:
            raise InputError(p, f"{module} stream is corrupt or truncated ({exc})") from None
        return io.BytesIO(data), len(data)
    return p, p.stat().st_size


def _stream_kind(p: Path) -> str | None:
    """The decompression module for a gzip/bzip2/xz file, None for a plain one."""
    with open(p, "rb") as f:
        magic = f.read(6)
    for prefix, module in _STREAMS.items():
        if magic.startswith(prefix):
            return module
    return None


def _hdu_kind(hdul, path=None) -> tuple[ExposureKind, int]:
    """``(kind, index of the image HDU)``; -1 for raws, whose segments are many, and
    :data:`NO_IMAGE` when no HDU holds a 2-D image.

    Raises
    ------
    InputError
        A guider stamp file, or an afw-style file whose IMAGE plane is missing (its
        MASK or VARIANCE would otherwise be taken for the image).
    """
    names = [str(h.name).upper() for h in hdul]
    if any(n.startswith("SEGMENT") for n in names):
        return "raw", -1
    _refuse_guider(hdul, path)
    types = [names[i] if names[i] in _AFW_PLANES else str(h.header.get("EXTTYPE", "")).strip().upper()
             for i, h in enumerate(hdul)]
    for i, t in enumerate(types):
        if t == "IMAGE":
            return "processed", i
    planes = sorted({t for t in types if t in _AFW_PLANES})
    if planes:
        raise InputError(path, f"processed (afw) file without its IMAGE HDU: it has {' and '.join(planes)} "
                               "but no IMAGE plane to show")  # fmt: skip
    for i, h in enumerate(hdul):
        if getattr(h, "is_image", False) and h.header.get("NAXIS", 0) == 2:
            return "image", i
    return "image", NO_IMAGE


#: :func:`_hdu_kind`'s index when a file holds no 2-D image.
NO_IMAGE = -2
_AFW_PLANES = ("IMAGE", "MASK", "VARIANCE")


def _refuse_guider(hdul, path) -> None:
    """Raise InputError for a guider stamp file.

    The camera writes a guider's regions of interest as a primary header with
    N_STAMPS, ROISEG, ROICOLS and ROIROWS (CCS ``guider-primary.spec``; obs_lsst's
    ``_ingest_guider`` takes ``*SG*_guider.fits`` names) and one small ``IMAGE``
    HDU per stamp: a time series of a few hundred pixels, not a detector image.
    """
    h = hdul[0].header
    stamps = h.get("N_STAMPS")
    if stamps is None and h.get("ROISEG") is None and "STAMPCLS" not in h:
        return
    where = "_".join(str(h.get(k)) for k in ("RAFTBAY", "CCDSLOT") if h.get(k)) or "a guider"
    size = f" of {h.get('ROIROWS')} x {h.get('ROICOLS')} pixels" if h.get("ROIROWS") and h.get("ROICOLS") else ""
    raise InputError(path, f"guider stamp file ({stamps if stamps is not None else len(hdul) - 1} stamp(s){size} "
                           f"from {where} {h.get('ROISEG') or ''}): not a full-frame exposure; give the "
                           "guider detector's raw or processed file instead")  # fmt: skip


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """``os.preadv`` for systems without it (one read at ``offset``)."""
    data = os.pread(fd, len(view), offset)
    view[:len(data)] = data
    return len(data)


def _unscale(data: np.ndarray, bzero: float, bscale: float, blank: int | None) -> np.ndarray:
    """Physical values of scaled pixels (FITS 4.0 section 5.3): float32, BLANK as NaN."""
    out = data.astype(np.float64) * bscale + bzero
    if blank is not None:
        out[data == blank] = np.nan
    return out.astype(np.float32)


def _image_layout(h, offset: int) -> tuple | None:
    """``(offset, dtype, shape)`` of an uncompressed 2-D image with header ``h``, plus
    ``(bzero, bscale, blank)`` when it is scaled (astropy's section cannot scale a
    memory map); None for other images."""
    if h.get("NAXIS") != 2 or h.get("BITPIX") not in _BITPIX:
        return None
    layout = (offset, np.dtype(_BITPIX[h["BITPIX"]]), (int(h["NAXIS2"]), int(h["NAXIS1"])))
    bzero = h.get("BZERO", 0) or 0
    bscale = h.get("BSCALE", 1)
    bscale = 1 if bscale is None else bscale
    if bzero == 0 and bscale == 1:
        return layout
    blank = h.get("BLANK") if h["BITPIX"] > 0 else None
    return (*layout, (float(bzero), float(bscale), blank))


def _plain_image(hdu: ScannedHDU) -> bool:
    """A 2-D image HDU stored as plain, unscaled pixels (readable straight from the file)."""
    if not hdu.is_image or hdu.compressed:
        return False
    layout = _image_layout(hdu.header, hdu.data_offset)
    return layout is not None and len(layout) == 3


def _scan(path) -> ScannedFile | None:
    """Headers of a raw, or of a plain processed or image file, from
    :mod:`cpmosaic.io.fitsscan`; or None.

    None sends the file to astropy: compressed or scaled processed images,
    gzip'd files, and anything the scanner does not understand (astropy then
    words the error for a broken file).  A raw segment the reader cannot decode
    itself (a compression other than RICE) opens astropy when it is read.
    """
    p = Path(path)
    try:
        if not p.is_file() or _stream_kind(p) is not None:
            return None
        scanned = scan_fits(p)
    except (ScanError, OSError):
        return None
    kind, index = _hdu_kind(scanned, p)
    if kind == "raw":
        # segments read through our own map: plain, scaled or RICE (else astropy opens the file)
        return scanned
    if index < 0 or not _plain_image(scanned[index]):
        return None
    return scanned


def _open(path, camera, overscan: str, apply_gains: bool) -> Exposure:
    if overscan not in OVERSCAN_CHOICES:
        raise ValueError(f"overscan={overscan!r} is not one of {OVERSCAN_CHOICES}")
    scanned = _scan(path)
    if scanned is not None:
        kind, index = _hdu_kind(scanned, path)
        try:
            if kind == "raw":
                from .fits_raw import RawExposure

                return RawExposure.from_hdul(Path(path), scanned, camera, overscan=overscan, apply_gains=apply_gains)
            from .fits_processed import ImageExposure

            return ImageExposure.from_hdul(Path(path), scanned, camera, kind, index)
        except CpmosaicError:
            raise
        except (ValueError, TypeError, KeyError, IndexError):
            pass  # an odd header value: let astropy read it
    hdul = open_fits(path)
    try:
        kind, index = _hdu_kind(hdul, path)
        if kind == "raw":
            from .fits_raw import RawExposure

            return RawExposure.from_hdul(Path(path), hdul, camera, overscan=overscan, apply_gains=apply_gains)
        if index == NO_IMAGE:
            raise InputError(path, "no image data: no Segment HDUs, no IMAGE HDU and no 2-D image HDU")
        from .fits_processed import ImageExposure

        return ImageExposure.from_hdul(Path(path), hdul, camera, kind, index)
    except CpmosaicError:
        hdul.close()
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        hdul.close()
        raise InputError(path, f"cannot read ({type(exc).__name__}: {exc})") from None


def identify(path: str | os.PathLike, camera: "Camera | str | os.PathLike | None" = None) -> ExposureInfo:
    """Describe an exposure file from its headers only (no pixel decompression).

    Parameters
    ----------
    path
        A raw, processed or plain image FITS file.
    camera
        A camera (or its name/path); default: from the INSTRUME key.

    Raises
    ------
    InputError
        The file is missing, not FITS, truncated, lacks a segment, has a
        segment of the wrong shape or names an unknown detector.

    Examples
    --------
    >>> identify("3019031900001-R10-S02-det029.fits").detector  # doctest: +SKIP
    29
    """
    exp = _open(path, camera, "median", False)
    exp.close()
    return exp.info


def open_exposure(
    path: str | os.PathLike,
    camera: "Camera | str | os.PathLike | None" = None,
    *,
    overscan: str = "median",
    apply_gains: bool = False,
) -> Exposure:
    """Open an exposure file for reading.

    Parameters
    ----------
    path
        A raw, processed or plain image FITS file.
    camera
        A camera (or its name/path); default: from the INSTRUME key.
    overscan
        Raw files: ``"median"`` (per-row, default), ``"mean"`` (per-row),
        ``"single"`` (one median per amp) or ``"none"``.
    apply_gains
        Raw files: multiply by each amp's gain (ADU -> electrons).

    Examples
    --------
    >>> with open_exposure("raw.fits", overscan="mean") as exp:   # doctest: +SKIP
    ...     image = exp.read()            # float32, exp.shape == exp.detector.shape
    """
    return _open(path, camera, overscan, apply_gains)
