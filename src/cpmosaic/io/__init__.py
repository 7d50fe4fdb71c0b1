"""Exposure readers and writers: raw, processed (afw layout) and plain FITS images.

>>> from cpmosaic.io import identify, open_exposure     # doctest: +SKIP
>>> info = identify("raw.fits")                          # headers only   # doctest: +SKIP
>>> with open_exposure("raw.fits") as exp:               # doctest: +SKIP
...     image = exp.read()                               # assembled, overscan-corrected

astropy is imported on first use of a reader or writer, not by ``import cpmosaic.io``.
"""

from __future__ import annotations

from .exposure import Exposure, ExposureInfo
from .formats import identify, open_exposure

__all__ = [
    "AFW_MASK_PLANES",
    "Exposure",
    "ExposureInfo",
    "ImageExposure",
    "RawExposure",
    "assemble_to_fits",
    "identify",
    "open_exposure",
    "write_processed_fits",
]

_LAZY = {
    "AFW_MASK_PLANES": "fits_processed",
    "ImageExposure": "fits_processed",
    "write_processed_fits": "fits_processed",
    "RawExposure": "fits_raw",
    "assemble_to_fits": "assemble",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
