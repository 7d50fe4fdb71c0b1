"""Built-in cameras and the one function that finds a camera by name or path."""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

from ..errors import CameraError
from .compact import camera_from_dict, read_camera_json
from .model import Camera
from .obs_lsst import read_obs_lsst_yaml

__all__ = ["BUILTIN_CAMERAS", "CAMERA_FILE", "camera_beside", "get_camera", "load_camera"]

#: A data directory may carry its own camera description under this name
#: (cpmosaic synth writes one for its shrunk cameras); files below it use it.
CAMERA_FILE = "camera.json"

#: Built-in camera names (case-insensitive) -> packaged data file.
BUILTIN_CAMERAS: dict[str, str] = {
    "LSSTCam": "lsstcam.json",
    "LSSTComCam": "lsstcomcam.json",
    "LATISS": "latiss.json",
}


@functools.lru_cache(maxsize=None)
def _builtin(name: str) -> Camera:
    import json

    data = resources.files("cpmosaic.camera") / "data" / BUILTIN_CAMERAS[name]
    return camera_from_dict(json.loads(data.read_text()), f"built-in camera {name}")


def load_camera(path: str | os.PathLike) -> Camera:
    """Read a camera file: obs_lsst YAML (``.yaml``/``.yml``) or cpmosaic JSON."""
    p = Path(path)
    if not p.exists():
        raise CameraError(f"{p}: camera file not found")
    if p.suffix.lower() in (".yaml", ".yml"):
        return read_obs_lsst_yaml(p)
    return read_camera_json(p)


def get_camera(name_or_path: "str | os.PathLike | Camera") -> Camera:
    """A built-in camera by name, or a camera read from a file.

    Parameters
    ----------
    name_or_path
        ``"LSSTCam"``, ``"LSSTComCam"`` or ``"LATISS"`` (any case), a path to
        an obs_lsst camera YAML or a cpmosaic camera JSON, or a Camera (which is
        returned as it is).

    Examples
    --------
    >>> get_camera("lsstcam").name
    'LSSTCam'
    """
    if isinstance(name_or_path, Camera):
        return name_or_path
    text = os.fspath(name_or_path)
    for name in BUILTIN_CAMERAS:
        if text.lower() == name.lower():
            return _builtin(name)
    if os.path.sep in text or Path(text).suffix or Path(text).exists():
        return load_camera(text)
    raise CameraError(
        f"unknown camera {text!r}: give one of {', '.join(BUILTIN_CAMERAS)} or a path to a camera file"
    )


@functools.lru_cache(maxsize=256)
def _camera_in(directory: str) -> Camera | None:
    path = Path(directory) / CAMERA_FILE
    return read_camera_json(path) if path.is_file() else None


def camera_beside(path: str | os.PathLike, max_up: int = 8) -> Camera | None:
    """The camera described by a ``camera.json`` in *path*'s folder or one above it.

    Data sets whose detectors differ from the built-in cameras (cpmosaic's
    shrunk synthetic data, a lab camera) carry their description beside the
    data, so that readers pick it up without a ``--camera`` on every command.

    Returns None when there is no such file within *max_up* folders.
    """
    p = Path(path).resolve()
    d = p if p.is_dir() else p.parent
    for _ in range(max_up + 1):
        try:
            cam = _camera_in(str(d))
        except CameraError:
            cam = None
        if cam is not None:
            return cam
        if d.parent == d:
            break
        d = d.parent
    return None
