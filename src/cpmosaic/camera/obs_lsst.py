"""Reader of obs_lsst camera YAML (``camera/lsstCam.yaml`` and friends).

The files use YAML anchors and merge keys (``<<``), which PyYAML's safe loader
resolves; each entry under ``CCDs`` is then a complete detector description.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from ..errors import CameraError
from .model import DETECTOR_TYPES, Amplifier, Box, Camera, Detector, check_detector_geometry

__all__ = ["read_obs_lsst_yaml", "amplifier_from_obs_lsst"]

log = logging.getLogger(__name__)


def amplifier_from_obs_lsst(name: str, spec: dict, source: str = "") -> Amplifier:
    """One amplifier from its (merged) obs_lsst YAML mapping."""
    try:
        data = Box.from_obs_lsst(spec["rawDataBBox"])
        ix, iy = (int(v) for v in spec["ixy"])
        flip_x, flip_y = (bool(v) for v in spec["flipXY"])
        return Amplifier(
            name=name,
            hdu=int(spec["hdu"]),
            ix=ix,
            iy=iy,
            flip_x=flip_x,
            flip_y=flip_y,
            # the assembled layout obs_lsst uses: amps tile the detector on a grid
            bbox=Box(ix * data.width, iy * data.height, data.width, data.height),
            raw_bbox=Box.from_obs_lsst(spec["rawBBox"]),
            raw_data_bbox=data,
            raw_serial_prescan_bbox=Box.from_obs_lsst(spec["rawSerialPrescanBBox"]),
            raw_serial_overscan_bbox=Box.from_obs_lsst(spec["rawSerialOverscanBBox"]),
            raw_parallel_overscan_bbox=Box.from_obs_lsst(spec["rawParallelOverscanBBox"]),
            gain=float(spec.get("gain", 1.0)),
            read_noise=float(spec.get("readNoise", float("nan"))),
            saturation=float(spec.get("saturation", float("nan"))),
            read_corner=str(spec.get("readCorner", "LL")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CameraError(f"{source}: amplifier {name}: missing or malformed field ({exc!r})") from None


def _detector(name: str, spec: dict, source: str) -> Detector:
    try:
        (bx0, by0), (bx1, by1) = spec["bbox"]
        pixel = spec.get("pixelSize", [0.01, 0.01])
        if abs(float(pixel[0]) - float(pixel[1])) > 1e-12:
            raise CameraError(f"{source}: detector {name}: non-square pixels {pixel} are not supported")
        amps = tuple(
            amplifier_from_obs_lsst(amp_name, amp_spec, f"{source}: detector {name}")
            for amp_name, amp_spec in spec["amplifiers"].items()
        )
        hdus = [a.hdu for a in amps]
        if len(set(hdus)) != len(hdus):
            # obs_lsst's wavefront chips give C14 the HDU of C13; readers that
            # find segments by EXTNAME (as cpmosaic's do) are not affected.
            log.warning("%s: detector %s lists duplicate amplifier HDUs %s", source, name, hdus)
        det_type = int(spec.get("detectorType", 0))
        det = Detector(
            id=int(spec["id"]),
            name=name,
            type=DETECTOR_TYPES.get(det_type, "science"),
            physical_type=str(spec.get("physicalType", "")),
            width=int(bx1) - int(bx0) + 1,  # obs_lsst bbox max is inclusive
            height=int(by1) - int(by0) + 1,
            refpos=(float(spec["refpos"][0]), float(spec["refpos"][1])),
            offset_mm=(float(spec["offset"][0]), float(spec["offset"][1])),
            yaw_deg=float(spec.get("yaw", 0.0)),
            pixel_size_mm=float(pixel[0]),
            amplifiers=amps,
            serial=str(spec.get("serial", "")),
        )
        check_detector_geometry(det, source)
        return det
    except CameraError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CameraError(f"{source}: detector {name}: missing or malformed field ({exc!r})") from None


def read_obs_lsst_yaml(path: str | os.PathLike) -> Camera:
    """Read an obs_lsst camera description.

    Parameters
    ----------
    path
        A camera YAML file such as obs_lsst's ``policy/lsstCam.yaml``.

    Returns
    -------
    Camera

    Raises
    ------
    CameraError
        When the file is missing, is not YAML, or lacks a required field; the
        message names the file and the detector or amplifier at fault.
    """
    source = os.fspath(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CameraError(f"{source}: cannot read camera file ({exc.strerror or exc})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CameraError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("CCDs"), dict):
        raise CameraError(f"{source}: not an obs_lsst camera description (no 'CCDs' mapping)")
    detectors = tuple(_detector(name, spec, source) for name, spec in doc["CCDs"].items())
    return Camera(
        name=str(doc.get("name", Path(path).stem)),
        detectors=detectors,
        plate_scale=float(doc.get("plateScale", float("nan"))),
        focal_plane_parity=bool(doc.get("focalPlaneParity", False)),
    )
