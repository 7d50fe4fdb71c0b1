"""Exceptions raised by cpmosaic.

Every error that comes from bad input names the input (a file, a camera, a
collection) and says what is wrong with it, so a user can fix it without
reading a traceback.  They subclass the builtin that fits, so callers that
already catch ``ValueError`` or ``FileNotFoundError`` keep working.
"""

from __future__ import annotations

import os

__all__ = [
    "CpmosaicError",
    "InputError",
    "UnknownInstrumentError",
    "CameraError",
    "UnknownDetectorError",
    "MixedCamerasError",
]


class CpmosaicError(Exception):
    """Base class of every error cpmosaic raises on purpose."""


class InputError(CpmosaicError, ValueError):
    """An input file or source cannot be used.

    Parameters
    ----------
    source
        The file, directory or URL at fault.
    problem
        What is wrong, phrased so that it reads after "source: ".
    """

    def __init__(self, source: str | os.PathLike | None, problem: str) -> None:
        self.source = None if source is None else os.fspath(source)
        self.problem = problem
        prefix = f"{self.source}: " if self.source else ""
        super().__init__(prefix + problem)


class UnknownInstrumentError(InputError):
    """A file whose instrument (``INSTRUME``) names no camera cpmosaic knows: the caller must name one.

    >>> str(UnknownInstrumentError("raw.fits", "FOO"))
    "raw.fits: no camera for INSTRUME='FOO': pass camera= (a camera name or file)"
    """

    def __init__(self, source: str | os.PathLike | None, instrument: object) -> None:
        self.instrument = instrument
        super().__init__(source, f"no camera for INSTRUME={instrument!r}: pass camera= (a camera name or file)")


class CameraError(CpmosaicError, ValueError):
    """A camera description is invalid or cannot be found."""


class UnknownDetectorError(CameraError, KeyError):
    """A detector name or id that the camera does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MixedCamerasError(CpmosaicError, ValueError):
    """Inputs from more than one camera were given to one mosaic or table."""
