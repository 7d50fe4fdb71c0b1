"""Raw file -> processed (afw-layout) file: ``cpmosaic assemble``'s library call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .formats import open_exposure

if TYPE_CHECKING:
    from ..camera import Camera

__all__ = ["assemble_to_fits"]


def assemble_to_fits(
    raw_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    camera: "Camera | str | os.PathLike | None" = None,
    *,
    overscan: str = "median",
    apply_gains: bool = False,
) -> Path:
    """Assemble one raw into a processed (afw-layout) FITS file in *out_dir*.

    The file is ``{exposure}-{DETNAME}-det{id:03d}.fits``, with obs_lsst's exposure id
    (see :func:`cpmosaic.io.header.exposure_id`); its primary header
    keeps the raw's primary header and adds DETNAME, DETECTOR and the exposure
    metadata, plus ``BUNIT`` and how the overscan was treated.

    Examples
    --------
    >>> assemble_to_fits("raw.fits", "out")      # doctest: +SKIP
    PosixPath('out/2021121200310-R22_S22-det098.fits')
    """
    from .fits_processed import carry_header, write_processed_fits

    with open_exposure(raw_path, camera, overscan=overscan, apply_gains=apply_gains) as exp:
        info = exp.info
        if info.kind != "raw":
            raise InputError(raw_path, f"is a {info.kind} file, not a raw file with amp segments")
        image = exp.read()
        header = carry_header(exp.header)
    for key, value in info.to_header().items():
        header[key] = value
    header["BUNIT"] = ("electron" if apply_gains else "adu", "pixel unit")
    header["OVERSCAN"] = (overscan, "serial overscan correction (cpmosaic)")
    header["GAINCORR"] = (bool(apply_gains), "amp gains applied (cpmosaic)")
    header["ORIGFILE"] = (Path(raw_path).name, "raw file assembled")
    stem = "unknown" if info.exposure is None else str(info.exposure)
    out = Path(out_dir) / f"{stem}-{info.detector_name}-det{info.detector:03d}.fits"
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_processed_fits(out, image, header=header)
