"""Which reader a file needs, and the entry points that open it.

Three kinds of file are read:

* ``raw``: multi-HDU LSST raws (``Segment10`` ... ``Segment00``), assembled from
  camera geometry (:mod:`cpmosaic.io.fits_raw`);
* ``processed``: afw-style IMAGE/MASK/VARIANCE files (:mod:`cpmosaic.io.fits_processed`);
* ``image``: a plain single-image FITS file (primary or first image HDU).

Files that look like exposures but are not are refused with a reason: a guider
stamp file, an afw file without its IMAGE plane.  Headers come from our own scan
(:mod:`cpmosaic.io.fitsscan`) where the pixels can be read without astropy, else
from astropy (:func:`cpmosaic.io.fitsfile.open_fits`).

Examples
--------
>>> from cpmosaic.io import identify, open_exposure        # doctest: +SKIP
>>> identify("raw.fits").detector_name                     # doctest: +SKIP
'R22_S11'
>>> with open_exposure("raw.fits") as exp:                 # doctest: +SKIP
...     bottom = exp.read(slice(0, 100))                   # only the C0x amps are read
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CpmosaicError, InputError
from .exposure import Exposure, ExposureInfo, ExposureKind
from .fitsfile import image_layout, open_fits, stream_kind
from .fitsscan import ScanError, ScannedFile, ScannedHDU, scan_fits

if TYPE_CHECKING:  # astropy is imported where a file is opened
    from ..camera import Camera

__all__ = ["NO_IMAGE", "OVERSCAN_CHOICES", "identify", "open_exposure"]

OVERSCAN_CHOICES = ("median", "mean", "single", "none")


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


def _plain_image(hdu: ScannedHDU) -> bool:
    """A 2-D image HDU stored as plain, unscaled pixels (readable straight from the file)."""
    if not hdu.is_image or hdu.compressed:
        return False
    layout = image_layout(hdu.header, hdu.data_offset)
    return layout is not None and layout.scaling is None


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
        if not p.is_file() or stream_kind(p) is not None:
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
