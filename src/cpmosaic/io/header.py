"""Header parsing shared by the readers: camera, detector and exposure metadata.

Everything here works on anything with a ``.get(key)`` (an astropy ``Header``
or a plain dict), so it can be tested without files and needs no astropy import.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
from typing import Any, Iterable, Mapping

from ..camera import Camera, Detector, get_camera
from ..errors import CameraError, InputError, UnknownDetectorError

log = logging.getLogger(__name__)

__all__ = [
    "CONTROLLERS",
    "HeaderStack",
    "camera_for_instrument",
    "exposure_id",
    "exposure_metadata",
    "find_detector",
    "resolve_camera",
]

#: INSTRUME values (lower case) -> built-in camera.  ``COMCAM`` is what the
#: ComCam test-stand files of 2019 carry; ``LSSTCamSim`` is the simulator.
_INSTRUMENTS: dict[str, str] = {
    "lsstcam": "LSSTCam",
    "lsstcamsim": "LSSTCam",
    "lsstcam-imsim": "LSSTCam",
    "lsst_cam": "LSSTCam",
    "lsstcomcam": "LSSTComCam",
    "lsstcomcamsim": "LSSTComCam",
    "comcam": "LSSTComCam",
    "latiss": "LATISS",
    "lsst_atiss": "LATISS",  # what LATISS raws carry (obs_lsst translators/latiss.py can_translate)
    "auxtel": "LATISS",
}

# Header keys, in order of preference.
_ID_KEYS = ("DETECTOR", "DET_ID", "CCDNUM", "LSST BUTLER DATAID DETECTOR")
_NAME_KEYS = ("DETNAME", "DET_NAME", "CCDNAME")
_EXPOSURE_KEYS = ("EXPOSURE", "EXPID", "EXP_ID", "LSST BUTLER DATAID EXPOSURE")
_DAYOBS_KEYS = ("DAYOBS", "DAY_OBS", "LSST BUTLER DATAID DAY_OBS")
_SEQNUM_KEYS = ("SEQNUM", "SEQ_NUM")
_MJD_KEYS = ("MJD-OBS", "MJD-BEG", "MJD")  # MJD alone is when the file was written
_IMGTYPE_KEYS = ("IMGTYPE", "OBSTYPE")
_FILTER_KEYS = ("FILTER", "FILTBAND", "FILTER1", "PHYSICAL_FILTER")
_MJD_EPOCH = _dt.datetime(1858, 11, 17)

#: obs_lsst's controller codes (``translators/lsst.py`` CONTROLLERS): an exposure id adds
#: 1000 years to day_obs per place in this string.  Order matters; never reorder.
CONTROLLERS = "OCHPQS"
_CONTROLLER_INCREMENT = 1000_00_00
#: After these day_obs the controller's counter was unified with OCS's, so obs_lsst adds
#: no offset any more (``compute_exposure_id``: ``dayobs > 20231004`` for C,
#: ``dayobs > 20250417`` for P, Q and S).
_UNIFIED_AFTER = {"C": 20231004, "P": 20250417, "Q": 20250417, "S": 20250417}


class HeaderStack:
    """Look keys up in several headers in turn (an extension's, then the primary's)."""

    def __init__(self, headers: Iterable[Mapping[str, Any] | None]) -> None:
        self.headers = [h for h in headers if h is not None]

    def get(self, key: str, default: Any = None) -> Any:
        for h in self.headers:
            try:
                value = h.get(key)
            except (KeyError, ValueError):  # astropy refuses some malformed keys
                value = None
            if value is not None and not (isinstance(value, str) and not value.strip()):
                return value
        return default

    def first(self, keys: Iterable[str]) -> Any:
        for k in keys:
            v = self.get(k)
            if v is not None:
                return v
        return None


def _as_int(value: Any) -> int | None:
    f = _as_float(value)
    return int(f) if f is not None and f == int(f) else None


def _as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(str(value).strip())
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def camera_for_instrument(instrument: str | None) -> str | None:
    """The built-in camera name for an INSTRUME value, or None when unknown.

    >>> camera_for_instrument("lsstCam"), camera_for_instrument("COMCAM")
    ('LSSTCam', 'LSSTComCam')
    """
    if not instrument:
        return None
    key = str(instrument).strip().lower()
    if key in _INSTRUMENTS:
        return _INSTRUMENTS[key]
    if "comcam" in key:
        return "LSSTComCam"
    if key.startswith("lsstcam"):
        return "LSSTCam"
    return None


def resolve_camera(header: HeaderStack, camera: "Camera | str | os.PathLike | None", path) -> Camera | None:
    """The camera the caller named, else the one INSTRUME names; None when neither.

    A ``camera.json`` beside the data (see :func:`cpmosaic.camera.camera_beside`)
    describing the camera INSTRUME names takes precedence over the built-in one.
    """
    if camera is not None:
        return get_camera(camera)
    name = camera_for_instrument(header.get("INSTRUME"))
    if not name:
        return None
    if path is not None:
        from ..camera import camera_beside

        nearby = camera_beside(path)
        if nearby is not None and nearby.name == name:
            return nearby
    return get_camera(name)


def find_detector(header: HeaderStack, camera: Camera, path, *, required: bool = True) -> Detector | None:
    """The camera detector a header describes.

    Tries DETNAME, then RAFTBAY + CCDSLOT, then a detector id key; a camera with
    a single detector (LATISS) needs none of them.
    """
    name = _as_str(header.first(_NAME_KEYS))
    if name is None:
        raft, slot = _as_str(header.get("RAFTBAY")), _as_str(header.get("CCDSLOT"))
        if raft and slot:
            name = f"{raft}_{slot}"
    det_id = None
    for key in _ID_KEYS:
        value = header.get(key)
        if value is None:
            continue
        if _as_int(value) is not None:
            det_id = _as_int(value)
            break
        if name is None and isinstance(value, str):  # some files put the name here
            name = value.strip()
            break
    try:
        if name is not None:
            det = camera[name]
            if det_id is not None and det_id != det.id:
                log.warning("%s: detector id %d in the header disagrees with %s (id %d in %s); using the name",
                            path, det_id, name, det.id, camera.name)
            return det
        if det_id is not None:
            return camera[det_id]
    except (UnknownDetectorError, CameraError):
        what = name if name is not None else f"id {det_id}"
        raise InputError(path, f"unknown detector {what}: camera {camera.name} has no such detector") from None
    if len(camera) == 1:
        return camera.detectors[0]
    if required:
        raise InputError(path, "cannot tell the detector: no DETNAME, RAFTBAY/CCDSLOT or DETECTOR key in the header")
    return None


def exposure_id(day_obs: int | None, seq_num: int | None, controller: str | None = None) -> int | None:
    """Rubin's exposure id, as obs_lsst's ``LsstBaseTranslator.compute_exposure_id`` makes it.

    ``int(f"{day_obs}{seq_num:05d}")``, with ``1000 * k`` years added to day_obs for the
    k-th controller of ``"OCHPQS"`` (CONTRLLR header; "O" and None add nothing).  CCS
    ("C") exposures after 2023-10-04 and simulated ones ("P", "Q", "S") after
    2025-04-17 share OCS's counter and get no offset.

    Raises
    ------
    ValueError
        An unknown controller code or a sequence number of more than five digits.

    Examples
    --------
    >>> exposure_id(20250618, 123)
    2025061800123
    >>> exposure_id(20190319, 1, "C"), exposure_id(20240321, 720, "S"), exposure_id(20240101, 5, "C")
    (3019031900001, 7024032100720, 2024010100005)
    """
    if day_obs is None or seq_num is None:
        return None
    day_obs, seq_num = int(day_obs), int(seq_num)
    if not 0 <= seq_num < 10**5:
        raise ValueError(f"sequence number {seq_num} does not fit the exposure id's five digits")
    code = (controller or "").strip().upper() or None
    if code is not None and day_obs > _UNIFIED_AFTER.get(code, 99999999):
        code = None
    if code is not None:
        index = CONTROLLERS.find(code)
        if index < 0 or len(code) != 1:
            raise ValueError(f"controller {controller!r} is not one of obs_lsst's {', '.join(CONTROLLERS)}")
        day_obs += _CONTROLLER_INCREMENT * index
    return int(f"{day_obs}{seq_num:05d}")


def _day_obs_from_mjd(mjd: float) -> int:
    # Rubin's observing day rolls over at 12:00 TAI (UTC-12h); a second's leap
    # difference cannot move a night-time exposure across noon.
    day = _MJD_EPOCH + _dt.timedelta(days=mjd - 0.5)
    return int(day.strftime("%Y%m%d"))


def exposure_metadata(header: HeaderStack, path=None) -> dict[str, Any]:
    """The exposure fields of :class:`~cpmosaic.io.ExposureInfo` from a header.

    Missing values are None; ``dark_time`` falls back to ``exposure_time`` (as
    obs_lsst does), ``day_obs`` to the date of MJD-OBS - 12 h, and ``exposure``
    to obs_lsst's id from DAYOBS, SEQNUM and CONTRLLR (:func:`exposure_id`).  A
    calibration product (CALIB_ID set) has no exposure, as in obs_lsst.

    Raises
    ------
    InputError
        CONTRLLR names no controller obs_lsst knows (naming *path*).
    """
    mjd = _as_float(header.first(_MJD_KEYS))
    day_obs = _as_int(header.first(_DAYOBS_KEYS))
    if day_obs is None and mjd is not None:
        day_obs = _day_obs_from_mjd(mjd)
    seq_num = _as_int(header.first(_SEQNUM_KEYS))
    controller = _as_str(header.get("CONTRLLR"))
    exposure = _as_int(header.first(_EXPOSURE_KEYS))
    if exposure is None and header.get("CALIB_ID") is None:
        try:
            exposure = exposure_id(day_obs, seq_num, controller)
        except ValueError as exc:
            raise InputError(path, f"cannot form the exposure id: {exc}") from None
    image_type = _as_str(header.first(_IMGTYPE_KEYS))
    exposure_time = _as_float(header.get("EXPTIME"))
    dark_time = _as_float(header.get("DARKTIME"))
    return {
        "instrument": _as_str(header.get("INSTRUME")),
        "exposure": exposure,
        "day_obs": day_obs,
        "seq_num": seq_num,
        "controller": controller.upper() if controller else None,
        "mjd": mjd,
        "image_type": image_type.upper() if image_type else None,
        "filter": _as_str(header.first(_FILTER_KEYS)),
        "exposure_time": exposure_time,
        "dark_time": dark_time if dark_time is not None else exposure_time,
    }
