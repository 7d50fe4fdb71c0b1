"""Option types shared by the commands: a bad value is a usage error (exit 2) that names the flag.

argparse reports an ``ArgumentTypeError`` as ``argument --camera: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..camera import Camera


def camera_type(text: str) -> Camera:
    """``--camera NAME|PATH``: the camera, or a usage error saying what is wrong with the value.

    >>> camera_type("lsstcam").name
    'LSSTCam'
    >>> camera_type("nope")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: unknown camera 'nope': give one of LSSTCam, LSSTComCam, LATISS or a path to a camera file
    """
    from ..camera import get_camera
    from ..errors import CameraError

    try:
        return get_camera(text)
    except (CameraError, OSError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def day_obs_type(text: str) -> int:
    """``--start/--end/--since YYYYMMDD`` (or ``YYYY-MM-DD``): the day_obs, or a usage error.

    >>> day_obs_type("2025-06-01")
    20250601
    """
    from ..errors import InputError
    from ..metrics.history import as_day_obs

    try:
        day = as_day_obs(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert day is not None  # as_day_obs maps only None to None
    return day


def positive_int(text: str) -> int:
    """An integer >= 1, or a usage error.

    >>> positive_int("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def storage_options_type(text: str) -> dict:
    """``--storage-options JSON``: a JSON object of fsspec options, or a usage error.

    >>> storage_options_type('{"anon": true}')
    {'anon': True}
    >>> storage_options_type("[1]")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected a JSON object, e.g. '{"anon": true}'
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise argparse.ArgumentTypeError('expected a JSON object, e.g. \'{"anon": true}\'')
    return doc


def add_storage_options(p: argparse.ArgumentParser) -> None:
    """``--storage-options JSON`` on a command that opens store URLs (``args.storage_options``)."""
    p.add_argument("--storage-options", type=storage_options_type, metavar="JSON", default=None,
                   help='fsspec options for store URLs (s3://, gs://, ...), e.g. \'{"anon": true}\' or '
                        '\'{"endpoint_url": "http://host:9000", "key": "...", "secret": "..."}\'')


def with_cli_advice(exc: Exception) -> str:
    """The message of a library error, with the command-line fix where there is one.

    The library speaks to Python callers (``pass camera=``); the command line names its flag.

    >>> from cpmosaic.errors import UnknownInstrumentError
    >>> with_cli_advice(UnknownInstrumentError("raw.fits", "FOO"))
    "raw.fits: no camera for INSTRUME='FOO': name the camera with --camera NAME|PATH"
    """
    from ..errors import UnknownInstrumentError

    if isinstance(exc, UnknownInstrumentError):
        prefix = f"{exc.source}: " if exc.source else ""
        return f"{prefix}no camera for INSTRUME={exc.instrument!r}: name the camera with --camera NAME|PATH"
    return str(exc)
