"""Find the inputs of a mosaic: FITS files, directories and Butler datasets.

Every file is identified from its headers (:func:`cpmosaic.io.identify`); files
that cannot be used are recorded with the reason and the rest go on.  Inputs
from more than one camera are refused (:class:`~cpmosaic.errors.MixedCamerasError`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ..camera import Camera, camera_beside, get_camera
from ..errors import CpmosaicError, InputError, MixedCamerasError
from ..io.cache import EXPOSURES, ExposureCache, open_file_budget

log = logging.getLogger(__name__)

__all__ = ["EXPOSURES", "ExposureCache", "InputSet", "butler_paths", "expand_paths", "find_inputs"]

#: Files :func:`find_inputs` keeps open after identifying them (for the build).
KEEP_OPEN = open_file_budget()
#: File name endings taken from directories (files named explicitly are always tried).
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.fz", ".fz", ".fits.gz")
_DETNAME = re.compile(r"R\d\d_S[A-Z0-9]{2,3}")


class CameraNotNamedError(InputError):
    """The inputs do not say which camera they come from (the caller must name it)."""


@dataclass
class InputSet:
    """Identified inputs, one file per detector.

    Attributes
    ----------
    camera
        The camera of the inputs (or the one the caller gave).
    files
        Detector id -> :class:`cpmosaic.io.ExposureInfo` of its file.
    bad
        ``{"path", "reason", "detector"?}`` for inputs that cannot be used.
    skipped
        ``{"path", "reason"}`` for usable files left out (a second file for a detector).
    opened
        Absolute path -> the :class:`cpmosaic.io.Exposure` that identified it, still
        open (at most :data:`KEEP_OPEN` of them), so that a build does not parse the
        headers again; a build takes them over (:meth:`cpmosaic.io.cache.ExposureCache.adopt`).
    """

    camera: Camera
    files: dict = field(default_factory=dict)
    bad: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    opened: dict = field(default_factory=dict, repr=False, compare=False)

    def close(self) -> None:
        """Close the exposures kept open from identification."""
        opened, self.opened = self.opened, {}
        for exp in opened.values():
            exp.close()

    def __len__(self) -> int:
        return len(self.files)


def expand_paths(inputs) -> tuple[list[str], list[dict]]:
    """Files named by ``inputs`` (files, directories searched recursively, Butler URLs).

    Returns ``(files, bad)`` with ``bad`` the inputs that do not exist.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: list[str] = []
    bad: list[dict] = []
    for item in inputs:
        text = os.fspath(item)
        if text.startswith("butler://"):
            files.extend(butler_paths(text))
            continue
        p = Path(text)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(FITS_SUFFIXES))
            if not found:
                log.warning("%s: no FITS files in this directory", p)
            files.extend(found)
        elif p.exists():
            files.append(str(p))
        else:
            bad.append({"path": str(p), "reason": "file not found"})
    return list(dict.fromkeys(files)), bad  # each file once, in the order given


def butler_paths(url: str | None = None, *, root: str | None = None, collection: str | None = None,
                 dataset_type: str | None = None, where: str = "") -> list[str]:
    """Files of Butler datasets: ``butler://ROOT?collection=C&dataset=T`` or keywords.

    Needs ``lsst.daf.butler``; the query is ``cpmosaic.io.butler.dataset_files``.
    """
    if url is not None:
        u = urlparse(url)
        root = (u.netloc + u.path) if u.netloc else u.path
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        collection = q.get("collection", collection)
        dataset_type = q.get("dataset", q.get("datasetType", dataset_type))
        where = q.get("where", where)
    if not (root and collection and dataset_type):
        raise InputError(url or root, "a Butler input needs a repository root, a collection and a dataset type")
    from ..io.butler import dataset_files

    paths = [path for _, path in dataset_files(root, collection, dataset_type, where=where)]
    if not paths:
        raise InputError(url or root, f"no {dataset_type} datasets in collection {collection}")
    return sorted(paths)


def _camera_of(info) -> str | None:
    from ..io.header import camera_for_instrument

    return camera_for_instrument(info.instrument) or info.instrument or info.camera


def _guess_detector(path: str, camera: Camera | None):
    # Only used to say *which* detector a broken file was meant to be.
    if camera is None:
        return None
    for name in _DETNAME.findall(Path(path).name):
        if name in camera:
            return camera[name]
    return None


def find_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike], camera: Camera | str | os.PathLike | None = None) -> InputSet:
    """Identify mosaic inputs and choose one file per detector.

    Parameters
    ----------
    inputs
        Paths (files or directories), ``butler://`` URLs, or a mix.
    camera
        The camera to place detectors with; default: the one the headers name.

    Returns
    -------
    InputSet

    Raises
    ------
    InputError
        Nothing usable was found.
    MixedCamerasError
        The inputs come from more than one camera.
    """
    from ..io import open_exposure

    files, bad = expand_paths(inputs)
    cam = get_camera(camera) if camera is not None else None
    infos = []
    opened: dict = {}
    for path in files:
        try:
            # what identify() does, keeping the file open (headers parsed) for the build
            exp = open_exposure(path, cam)
            infos.append(exp.info)
            if len(opened) < KEEP_OPEN:
                opened[os.path.abspath(path)] = exp
            else:
                exp.close()
        except (CpmosaicError, OSError, ValueError) as exc:
            reason = exc.problem if isinstance(exc, InputError) else str(exc)
            bad.append({"path": path, "reason": reason})
            log.warning("%s: %s", path, reason)
    by_camera: dict[str, list[str]] = {}
    for info in infos:
        by_camera.setdefault(str(_camera_of(info)), []).append(info.path)
    if len(by_camera) > 1:
        parts = [f"{name}: {', '.join(p[:3])}{' ...' if len(p) > 3 else ''} ({len(p)} files)"
                 for name, p in sorted(by_camera.items())]
        _close_all(opened)
        raise MixedCamerasError("inputs come from more than one camera; give one camera's files per mosaic. "
                                + "; ".join(parts))
    if not infos:
        raise _no_input(files, bad)
    if cam is None:
        name = next(iter(by_camera))
        if name == "None":
            _close_all(opened)
            raise CameraNotNamedError(None, f"cannot tell the camera of the inputs (no INSTRUME key), e.g. "
                                            f"{infos[0].path}; name the camera")
        # a camera.json beside the data (shrunk synthetic cameras) describes the camera
        # the headers name, as for single files (cpmosaic.io.header.resolve_camera)
        nearby = camera_beside(infos[0].path)
        cam = nearby if nearby is not None and nearby.name == name else get_camera(name)
    elif next(iter(by_camera)).lower() != cam.name.lower():
        log.warning("inputs say camera %s; placing them with camera %s as asked", next(iter(by_camera)), cam.name)
    result = InputSet(cam)
    for info in sorted(infos, key=lambda i: i.path):
        if info.detector is None or info.detector not in cam:
            bad.append({"path": info.path, "reason": f"cannot tell which {cam.name} detector this is"})
            continue
        det = cam[info.detector]
        kind_shape = tuple(info.shape)
        if kind_shape != det.shape:
            bad.append({"path": info.path, "detector": det.id,
                        "reason": f"image shape {kind_shape} is not {det.name}'s {det.shape} in camera {cam.name} "
                                  f"(wrong camera?)"})
            continue
        if det.id in result.files:
            result.skipped.append({"path": info.path, "reason": f"second file for {det.name}; using "
                                                                f"{result.files[det.id].path}"})
            continue
        result.files[det.id] = info
    for b in bad:
        if "detector" not in b:
            det = _guess_detector(b["path"], cam)
            if det is not None:
                b["detector"] = det.id
    result.bad = bad
    if result.skipped:
        log.warning("%d file(s) skipped as second files for a detector", len(result.skipped))
    exposures = {i.exposure for i in result.files.values() if i.exposure is not None}
    if len(exposures) > 1:
        log.warning("inputs span %d exposures (%s); one mosaic usually shows one", len(exposures),
                    ", ".join(str(e) for e in sorted(exposures)[:5]))
    used = {os.path.abspath(i.path) for i in result.files.values()}
    for p in [p for p in opened if p not in used]:
        opened.pop(p).close()
    if not result.files:
        raise _no_input(files, bad)
    result.opened = opened
    return result


def _close_all(opened: dict) -> None:
    for exp in opened.values():
        exp.close()
    opened.clear()


def _no_input(files: list, bad: list) -> InputError:
    if not files and not bad:
        return InputError(None, "no input files given (no FITS files found)")
    if not bad:
        return InputError(None, "no usable input files")
    first = bad[0]
    return InputError(None, f"no usable input files: {len(bad)} bad; first: {first['path']}: {first['reason']}")
