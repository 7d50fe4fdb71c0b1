"""What an exposure file is (:class:`ExposureInfo`) and how any of them is read (:class:`Exposure`).

:class:`Exposure` reads the rows of an image HDU from our own memory map
(uncompressed, :mod:`cpmosaic.io.fitsfile`), with our RICE decoder
(:mod:`cpmosaic.io.rice`) or through astropy; the readers of each format
(:mod:`cpmosaic.io.fits_raw`, :mod:`cpmosaic.io.fits_processed`) build on it, and
:mod:`cpmosaic.io.formats` picks the reader for a file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import CpmosaicError, InputError
from .fitsfile import FileMap, ImageLayout, image_layout, open_fits, pread_exact, stream_kind, unscale
from .fitsscan import ScannedFile, ScannedHDU

if TYPE_CHECKING:  # astropy is imported where a file is opened
    from astropy.io import fits

    from ..camera import Camera, Detector
    from .rice import RiceLayout

log = logging.getLogger(__name__)

__all__ = ["Exposure", "ExposureInfo", "ExposureKind"]

ExposureKind = Literal["raw", "processed", "image"]
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

    def __init__(self, info: ExposureInfo, detector: Detector | None, camera: Camera | None,
                 hdul: fits.HDUList | ScannedFile | None) -> None:
        self.info = info
        self.detector = detector
        self.camera = camera
        self._hdul = hdul
        self._map: FileMap | None = None
        self._fd: int | None = None
        self._map_ok: bool | None = None
        self._layouts: dict[int, ImageLayout | RiceLayout | None] = {}
        self._rice: dict | None = None

    @property
    def path(self) -> Path:
        return Path(self.info.path)

    @property
    def shape(self) -> tuple[int, int]:
        return self.info.shape

    @property
    def header(self) -> Any:
        """The primary header (astropy ``Header``, opened on demand)."""
        return self._astropy()[0].header

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

    def _read_into(self, layout: ImageLayout, y0: int, y1: int, out: np.ndarray) -> np.ndarray | None:
        """Rows ``y0:y1`` of a plain image ``layout`` read into ``out`` (a view of it), or
        None when ``out`` is too small."""
        nbytes = (y1 - y0) * layout.row_bytes
        if out.nbytes < nbytes or out.dtype != np.uint8 or not out.flags.c_contiguous:
            return None
        if self._fd is None:
            self._fd = os.open(self.info.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        start = layout.offset + y0 * layout.row_bytes
        try:
            pread_exact(self._fd, memoryview(out)[:nbytes], start)
        except EOFError:
            raise EOFError(f"rows {y0}:{y1} end at byte {start + nbytes}, past the end of the file") from None
        nx = layout.shape[1]
        return np.frombuffer(out, layout.dtype, count=(y1 - y0) * nx).reshape(y1 - y0, nx)

    def read_mask(self, rows: slice | None = None) -> np.ndarray | None:
        """The integer mask plane, or None when the file has none."""
        return None

    def _hdu_rows(self, index: int, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0:y1`` of the 2-D image in HDU *index*, as stored (maybe big-endian).

        Uncompressed images come from our own memory map (see :class:`~cpmosaic.io.fitsfile.FileMap`),
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
            if isinstance(layout, ImageLayout):
                data = fmap.rows(layout, y0, y1)
                return data if layout.scaling is None else unscale(data, layout.scaling)
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

    def _layout(self, index: int) -> "ImageLayout | RiceLayout | None":
        """How to read HDU *index* ourselves: an :class:`~cpmosaic.io.fitsfile.ImageLayout`
        for an uncompressed image (scaled ones, e.g. unsigned 16-bit, included), a
        :class:`~cpmosaic.io.rice.RiceLayout`, or None (use astropy).  Worked out
        once per HDU."""
        if index in self._layouts:
            return self._layouts[index]
        hdu = self._require_open()[index]
        layout: ImageLayout | RiceLayout | None = None
        h = hdu.header
        if isinstance(hdu, ScannedHDU):
            if hdu.compressed:
                if FAST_RICE:
                    from .rice import rice_layout

                    layout = rice_layout(h, hdu.data_offset)
            elif hdu.is_image:
                layout = image_layout(h, hdu.data_offset)
        else:
            from astropy.io import fits

            if not self._mappable():
                pass
            elif isinstance(hdu, fits.CompImageHDU):
                if FAST_RICE:
                    layout = self._rice_layouts().get(index)
            elif hdu.is_image:
                layout = image_layout(h, int(hdu.fileinfo()["datLoc"]))
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
            self._map_ok = stream_kind(Path(self.info.path)) is None
        return self._map_ok

    def _file_map(self) -> FileMap:
        if self._map is None:
            self._map = FileMap(self.info.path)
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

    def _require_open(self) -> fits.HDUList | ScannedFile:
        """The open HDUs: an astropy ``HDUList``, or a :class:`~cpmosaic.io.fitsscan.ScannedFile`."""
        if self._hdul is None:
            raise ValueError(f"{self.info.path}: exposure is closed")
        return self._hdul

    def _astropy(self):
        """The astropy ``HDUList``, opened now if the file was only scanned (see
        :func:`cpmosaic.io.formats.open_exposure`)."""
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
