"""Processed (afw-style) and plain image FITS files: reader and writer.

afw writes an Exposure as HDU 0 (metadata only), then IMAGE (float32), MASK
(int32, plane bits in ``MP_<PLANE>`` keys) and VARIANCE (float32), each with
``EXTNAME = EXTTYPE = plane``; the image origin xy0 is stored as
``LTV1, LTV2 = -x0, -y0``.  Calibration products (bias, dark, flat) use the same layout.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..errors import InputError
from .exposure import Exposure, ExposureInfo, ExposureKind
from .fitsfile import ImageLayout
from .fitsscan import ScannedFile
from .header import HeaderStack, _as_int, _as_str, exposure_metadata, find_detector, resolve_camera

if TYPE_CHECKING:
    # astropy is imported where files are written: a build reads through our own header scan
    from astropy.io import fits

    from ..camera import Camera, Detector

log = logging.getLogger(__name__)

__all__ = ["AFW_MASK_PLANES", "ImageExposure", "carry_header", "write_processed_fits"]

#: afw's default mask planes and bits.
AFW_MASK_PLANES: dict[str, int] = {
    "BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4,
    "DETECTED": 5, "DETECTED_NEGATIVE": 6, "SUSPECT": 7, "NO_DATA": 8,
}  # fmt: skip

# Cards that describe an HDU's layout, not the exposure: never copied between HDUs.
_STRUCTURAL = {
    "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "EXTTYPE",
    "EXTVER", "BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM", "INHERIT", "TFIELDS", "THEAP", "END",
    "LTV1", "LTV2",
}  # fmt: skip
_STRUCTURAL_PREFIXES = ("NAXIS", "ZNAXIS", "ZTILE", "ZNAME", "ZVAL", "TTYPE", "TFORM", "TUNIT", "TDIM")


def _structural(key: str) -> bool:
    k = key.upper()
    return k in _STRUCTURAL or k.startswith(_STRUCTURAL_PREFIXES) or k in (
        "ZIMAGE", "ZBITPIX", "ZCMPTYPE", "ZQUANTIZ", "ZDITHER0", "ZSIMPLE", "ZTENSION", "ZEXTEND",
        "ZPCOUNT", "ZGCOUNT", "ZHECKSUM", "ZDATASUM", "ZBLANK")  # fmt: skip


def carry_header(header: "fits.Header | Mapping[str, Any] | None") -> fits.Header:
    """A copy of *header* without layout cards, ready to become a primary header."""
    from astropy.io import fits

    out = fits.Header()
    if header is None:
        return out
    if isinstance(header, ExposureInfo):
        header = header.to_header()
    if isinstance(header, fits.Header):
        for card in header.cards:
            if card.keyword and not _structural(card.keyword):
                # a fresh card from the image: keeps HIERARCH/CONTINUE as they were
                out.append(fits.Card.fromstring(card.image), end=True)
        return out
    for key, value in header.items():
        if value is None or _structural(key):
            continue
        if isinstance(value, np.generic):
            value = value.item()
        # keys longer than 8 characters or with spaces need HIERARCH; say so to avoid a warning
        if (len(key) > 8 or " " in key) and not key.upper().startswith("HIERARCH "):
            key = f"HIERARCH {key}"
        out[key] = value
    return out


def _atomic_write(hdul: fits.HDUList, path: Path) -> None:
    # A unique name beside the target (same file system, so the rename is atomic);
    # not mkstemp, whose 0600 mode would outlive the rename.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        hdul.writeto(tmp, overwrite=True, checksum=False)
        os.replace(tmp, path)  # readers see the old file or the whole new one, never half of it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_processed_fits(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    header: "fits.Header | Mapping[str, Any] | ExposureInfo | None" = None,
    mask_planes: Mapping[str, int] | None = None,
    xy0: tuple[int, int] = (0, 0),
) -> Path:
    """Write an image (and optional mask and variance) in afw's exposure layout.

    HDU 0 carries *header* (DETNAME, DETECTOR and exposure metadata such as
    INSTRUME, DAYOBS, SEQNUM, EXPOSURE, MJD-OBS, IMGTYPE, FILTER, EXPTIME); then
    IMAGE (float32), MASK (int32, with ``MP_<PLANE>`` keys) and VARIANCE
    (float32). MASK and VARIANCE are written only when given, which keeps synthetic
    images a third the size. The file is written to a temporary name in the same
    directory and renamed, so it appears whole or not at all.

    Parameters
    ----------
    path
        Output file (overwritten).
    image
        2-D image ``[y, x]``; stored as float32.
    mask, variance
        Planes of the same shape as *image*.
    header
        Metadata for HDU 0: an astropy Header, a dict or an :class:`ExposureInfo`.
    mask_planes
        Plane name -> bit; default afw's (BAD=0, SAT=1, ... NO_DATA=8) when a mask is given.
    xy0
        Origin of the image in the parent (detector) frame, stored as ``LTV1/2 = -x0, -y0``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from cpmosaic.io import open_exposure
    >>> p = os.path.join(tempfile.mkdtemp(), "bias.fits")
    >>> _ = write_processed_fits(p, np.ones((4, 6)), header={"DETNAME": "R22_S11", "DETECTOR": 94,
    ...                                                       "INSTRUME": "LSSTCam"})
    >>> with open_exposure(p) as exp:
    ...     exp.info.detector_name, exp.shape, float(exp.read()[0, 0])
    ('R22_S11', (4, 6), 1.0)
    """
    path = Path(path)
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    from astropy.io import fits

    x0, y0 = (int(v) for v in xy0)
    primary = fits.PrimaryHDU(header=carry_header(header))
    hdus = [primary]

    def plane(data: np.ndarray, name: str, dtype) -> fits.ImageHDU:
        data = np.asarray(data)
        if data.shape != image.shape:
            raise ValueError(f"{name.lower()} shape {data.shape} differs from image shape {image.shape}")
        hdu = fits.ImageHDU(np.ascontiguousarray(data, dtype=dtype), name=name)
        h = hdu.header
        h["EXTTYPE"] = name
        h["INHERIT"] = True
        h["LTV1"], h["LTV2"] = -x0, -y0
        # afw's "A" WCS: parent-frame pixel of the 1-based array pixel
        h["CTYPE1A"], h["CTYPE2A"] = "LINEAR", "LINEAR"
        h["CRPIX1A"], h["CRPIX2A"] = 1.0, 1.0
        h["CRVAL1A"], h["CRVAL2A"] = float(x0), float(y0)
        h["WCSNAMEA"] = "PARENT"
        return hdu

    hdus.append(plane(image, "IMAGE", np.float32))
    if mask is not None:
        m = plane(mask, "MASK", np.int32)
        planes = dict(AFW_MASK_PLANES if mask_planes is None else mask_planes)
        for name, bit in planes.items():
            if not 0 <= int(bit) < 32:
                raise ValueError(f"mask plane {name} has bit {bit}; bits must be 0..31")
            m.header[f"HIERARCH MP_{name.upper()}" if len(name) > 5 else f"MP_{name.upper()}"] = int(bit)
        hdus.append(m)
    if variance is not None:
        hdus.append(plane(variance, "VARIANCE", np.float32))
    _atomic_write(fits.HDUList(hdus), path)
    log.debug("wrote %s", path)
    return path


def _find(hdul, name: str) -> int | None:
    for i, h in enumerate(hdul):
        if str(h.name).upper() == name or str(h.header.get("EXTTYPE", "")).strip().upper() == name:
            return i
    return None


class ImageExposure(Exposure):
    """A processed (afw layout, kind ``processed``) or plain single-image file (``image``)."""

    def __init__(self, info: ExposureInfo, detector: Detector | None, camera: Camera | None,
                 hdul: fits.HDUList | ScannedFile | None, image_index: int,
                 mask_index: int | None = None, variance_index: int | None = None,
                 xy0: tuple[int, int] = (0, 0)) -> None:  # fmt: skip
        super().__init__(info, detector, camera, hdul)
        self.image_index = image_index
        self.mask_index = mask_index
        self.variance_index = variance_index
        self.xy0 = xy0

    @classmethod
    def from_hdul(cls, path: Path, hdul: fits.HDUList | ScannedFile, camera: Camera | str | os.PathLike | None,
                  kind: ExposureKind, index: int) -> ImageExposure:
        img_header = hdul[index].header
        header = HeaderStack([hdul[0].header] if index == 0 else [hdul[0].header, img_header])
        shape = (int(img_header.get("NAXIS2", 0)), int(img_header.get("NAXIS1", 0)))
        if int(img_header.get("NAXIS", 0)) != 2 or min(shape) <= 0:
            raise InputError(path, f"HDU {index} is not a 2-D image (NAXIS={img_header.get('NAXIS')})")
        cam = resolve_camera(header, camera, path)
        det = find_detector(header, cam, path, required=False) if cam is not None else None
        det_id: int | None
        det_name: str | None
        if det is not None:
            det_id, det_name = det.id, det.name
        else:  # no camera to ask: take what the header says
            det_id = _as_int(header.first(("DETECTOR", "DET_ID", "CCDNUM", "LSST BUTLER DATAID DETECTOR")))
            det_name = _as_str(header.get("DETNAME"))
            if det_name is None and header.get("RAFTBAY") and header.get("CCDSLOT"):
                det_name = f"{_as_str(header.get('RAFTBAY'))}_{_as_str(header.get('CCDSLOT'))}"
        info = ExposureInfo(path=str(path), kind=kind, camera=cam.name if cam else None, detector=det_id,
                            detector_name=det_name, shape=shape, **exposure_metadata(header, path))  # fmt: skip
        mask_i = var_i = None
        if kind == "processed":
            mask_i, var_i = _find(hdul, "MASK"), _find(hdul, "VARIANCE")
        xy0 = (-(_as_int(header.get("LTV1")) or 0), -(_as_int(header.get("LTV2")) or 0))
        return cls(info, det, cam, hdul, index, mask_i, var_i, xy0)

    @property
    def mask_planes(self) -> dict[str, int]:
        """Mask plane name -> bit, from the MASK HDU's ``MP_*`` keys."""
        if self.mask_index is None:
            return {}
        h = self._require_open()[self.mask_index].header
        return {k[3:]: int(v) for k, v in h.items() if k.upper().startswith("MP_")}

    def _plane(self, index: int, rows: slice | None, dtype, copy: bool = True) -> np.ndarray:
        r0, r1 = self._rows(rows)
        hdu = self._require_open()[index]
        if _hdu_rows(hdu) != self.shape:
            raise InputError(self.info.path, f"{hdu.name} has shape {_hdu_rows(hdu)}, IMAGE has {self.shape}")
        data = self._hdu_rows(index, r0, r1)
        if not copy and data.dtype.kind == "f" and data.dtype.itemsize == np.dtype(dtype).itemsize:
            return data  # as stored (maybe big-endian, maybe a view into the map): same values
        return np.array(data, dtype=dtype)  # a native-order copy: nothing points into the map

    def read_stored(self, rows: slice | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """The IMAGE plane as stored: float32 ``[y, x]``, maybe big-endian and a view
        into the file map (valid until :meth:`close`) or into ``out``; see
        :meth:`Exposure.read_stored`."""
        if out is not None and self._mappable():
            layout = self._layout(self.image_index)
            if isinstance(layout, ImageLayout) and layout.scaling is None and layout.dtype == np.dtype(">f4"):
                r0, r1 = self._rows(rows)
                try:
                    data = self._read_into(layout, r0, r1, out)
                except OSError as exc:
                    raise InputError(self.info.path, f"IMAGE: cannot read rows {r0}:{r1} ({exc})") from None
                if data is not None:
                    return data
        return self._plane(self.image_index, rows, np.float32, copy=False)

    def release_pages(self, rows: slice | None = None) -> None:
        """See :meth:`Exposure.release_pages`; ``rows`` of the IMAGE plane only."""
        layout = self._layouts.get(self.image_index)
        if rows is None or self._map is None or not isinstance(layout, ImageLayout):
            return super().release_pages()
        r0, r1 = self._rows(rows)
        self._map.release(layout.offset + r0 * layout.row_bytes, (r1 - r0) * layout.row_bytes)

    def read(self, rows: slice | None = None) -> np.ndarray:
        """The IMAGE plane as float32 ``[y, x]``, NaN kept."""
        return self._plane(self.image_index, rows, np.float32)

    def read_mask(self, rows: slice | None = None) -> np.ndarray | None:
        """The MASK plane as int32, or None when there is none."""
        return None if self.mask_index is None else self._plane(self.mask_index, rows, np.int32)

    def read_variance(self, rows: slice | None = None) -> np.ndarray | None:
        """The VARIANCE plane as float32, or None when there is none."""
        return None if self.variance_index is None else self._plane(self.variance_index, rows, np.float32)


def _hdu_rows(hdu) -> tuple[int, int]:
    h = hdu.header
    return int(h.get("NAXIS2", 0)), int(h.get("NAXIS1", 0))
