"""cpmosaic's compact camera format (JSON), for built-in and user cameras.

A camera file is one JSON object::

    {
      "format": "cpmosaic-camera/1",
      "name": "LSSTCam",
      "plate_scale": 20.0059,            # arcsec per mm (optional)
      "focal_plane_parity": false,       # optional
      "layouts": {                       # one per physical sensor type
        "E2V": {
          "width": 4096, "height": 4004, # assembled detector size, pixels
          "refpos": [2047.5, 2001.5],    # pixel placed at offset_mm
          "pixel_size_mm": 0.01,
          "amps": [                      # in readout (HDU) order
            {"name": "C10", "hdu": 1, "ix": 0, "iy": 1, "flip": [true, true],
             "bbox": [[0, 2002], [512, 2002]],          # assembled data box
             "raw": {"bbox": [[0, 0], [576, 2048]],     # raw segment boxes
                     "data": [[10, 0], [512, 2002]],
                     "prescan": [[0, 0], [10, 2002]],
                     "overscan": [[522, 0], [54, 2002]],
                     "parallel_overscan": [[10, 2002], [512, 46]]}},
            ...]}},
      "detectors": [
        {"id": 94, "name": "R22_S11", "type": "science", "layout": "E2V",
         "serial": "E2V-CCD250-382", "offset_mm": [0.0, 0.0], "yaw_deg": 0.0,
         "gain": [...16...], "read_noise": [...], "saturation": [...]},   # optional, per amp
        ...]
    }

Boxes are ``[[x0, y0], [width, height]]`` as in obs_lsst.  ``type`` is one of
``science``, ``guider``, ``wavefront``, ``focus``.  A detector may override
``physical_type`` (default: the layout name), ``refpos`` and ``pixel_size_mm``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CameraError
from .model import Amplifier, Box, Camera, Detector, check_detector_geometry

__all__ = ["FORMAT", "camera_to_dict", "camera_from_dict", "read_camera_json", "write_camera_json"]

FORMAT = "cpmosaic-camera/1"


def _amp_to_dict(a: Amplifier) -> dict:
    return {
        "name": a.name,
        "hdu": a.hdu,
        "ix": a.ix,
        "iy": a.iy,
        "flip": [a.flip_x, a.flip_y],
        "bbox": a.bbox.as_list(),
        "raw": {
            "bbox": a.raw_bbox.as_list(),
            "data": a.raw_data_bbox.as_list(),
            "prescan": a.raw_serial_prescan_bbox.as_list(),
            "overscan": a.raw_serial_overscan_bbox.as_list(),
            "parallel_overscan": a.raw_parallel_overscan_bbox.as_list(),
        },
    }


def _layout_key(det: Detector) -> str:
    return json.dumps(
        [det.width, det.height, det.refpos, det.pixel_size_mm, [_amp_to_dict(a) for a in det.amplifiers]]
    )


def camera_to_dict(camera: Camera) -> dict:
    """Serialise a camera, sharing one layout among detectors of one physical type."""
    layouts: dict[str, dict] = {}
    keys: dict[str, str] = {}
    detectors = []
    for det in camera:
        key = _layout_key(det)
        name = det.physical_type or "default"
        if name in keys and keys[name] != key:
            # same physical type, different layout: give it a distinct name
            name = f"{name}:{det.name}"
        if name not in keys:
            keys[name] = key
            layouts[name] = {
                "width": det.width,
                "height": det.height,
                "refpos": list(det.refpos),
                "pixel_size_mm": det.pixel_size_mm,
                "amps": [_amp_to_dict(a) for a in det.amplifiers],
            }
        entry = {
            "id": det.id,
            "name": det.name,
            "type": det.type,
            "layout": name,
            "serial": det.serial,
            "offset_mm": list(det.offset_mm),
            "yaw_deg": det.yaw_deg,
            "gain": [a.gain for a in det.amplifiers],
            "read_noise": [a.read_noise for a in det.amplifiers],
            "saturation": [a.saturation for a in det.amplifiers],
        }
        if det.physical_type != name:
            entry["physical_type"] = det.physical_type
        detectors.append(entry)
    return {
        "format": FORMAT,
        "name": camera.name,
        "plate_scale": camera.plate_scale,
        "focal_plane_parity": camera.focal_plane_parity,
        "layouts": layouts,
        "detectors": detectors,
    }


def _box(value, where: str) -> Box:
    try:
        return Box.from_obs_lsst(value)
    except (TypeError, ValueError) as exc:
        raise CameraError(f"{where}: a box must be [[x0, y0], [width, height]], got {value!r}") from exc


def _pair(value) -> tuple[float, float]:
    x, y = value  # a reference position is two numbers (a ValueError otherwise, reported with the file)
    return float(x), float(y)


def camera_from_dict(doc: dict, source: str = "<camera>") -> Camera:
    """Build a Camera from the compact format (see the module docstring)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CameraError(f"{source}: not a cpmosaic camera file (expected \"format\": \"{FORMAT}\")")
    try:
        layouts = doc["layouts"]
        detectors = []
        for d in doc["detectors"]:
            where = f"{source}: detector {d.get('name', '?')}"
            lay = layouts[d["layout"]]
            nan = float("nan")
            n_amp = len(lay["amps"])
            gains = d.get("gain") or [1.0] * n_amp
            noise = d.get("read_noise") or [nan] * n_amp
            sat = d.get("saturation") or [nan] * n_amp
            amps = []
            for i, a in enumerate(lay["amps"]):
                raw = a["raw"]
                amps.append(
                    Amplifier(
                        name=a["name"],
                        hdu=int(a["hdu"]),
                        ix=int(a["ix"]),
                        iy=int(a["iy"]),
                        flip_x=bool(a["flip"][0]),
                        flip_y=bool(a["flip"][1]),
                        bbox=_box(a["bbox"], where),
                        raw_bbox=_box(raw["bbox"], where),
                        raw_data_bbox=_box(raw["data"], where),
                        raw_serial_prescan_bbox=_box(raw["prescan"], where),
                        raw_serial_overscan_bbox=_box(raw["overscan"], where),
                        raw_parallel_overscan_bbox=_box(raw["parallel_overscan"], where),
                        gain=float(gains[i]),
                        read_noise=float(nan if noise[i] is None else noise[i]),
                        saturation=float(nan if sat[i] is None else sat[i]),
                    )
                )
            detectors.append(
                Detector(
                    id=int(d["id"]),
                    name=str(d["name"]),
                    type=d.get("type", "science"),
                    physical_type=str(d.get("physical_type", d["layout"])),
                    width=int(lay["width"]),
                    height=int(lay["height"]),
                    refpos=_pair(d.get("refpos", lay["refpos"])),
                    offset_mm=(float(d["offset_mm"][0]), float(d["offset_mm"][1])),
                    yaw_deg=float(d.get("yaw_deg", 0.0)),
                    pixel_size_mm=float(d.get("pixel_size_mm", lay["pixel_size_mm"])),
                    amplifiers=tuple(amps),
                    serial=str(d.get("serial", "")),
                )
            )
            check_detector_geometry(detectors[-1], source)
    except CameraError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CameraError(f"{source}: missing or malformed field {exc!r}") from None
    pscale = doc.get("plate_scale")
    return Camera(
        name=str(doc["name"]),
        detectors=tuple(detectors),
        plate_scale=float("nan") if pscale is None else float(pscale),
        focal_plane_parity=bool(doc.get("focal_plane_parity", False)),
    )


def read_camera_json(path: str | os.PathLike) -> Camera:
    """Read a camera in the compact JSON format."""
    source = os.fspath(path)
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise CameraError(f"{source}: cannot read camera file ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise CameraError(f"{source}: not valid JSON ({exc})") from None
    return camera_from_dict(doc, source)


def write_camera_json(camera: Camera, path: str | os.PathLike) -> None:
    """Write a camera in the compact JSON format (one detector per line)."""
    doc = camera_to_dict(camera)
    dets = doc.pop("detectors")
    head = json.dumps(doc, indent=1)[:-2]
    lines = ",\n  ".join(json.dumps(d, separators=(",", ":")) for d in dets)
    Path(path).write_text(f'{head},\n "detectors": [\n  {lines}\n ]\n}}\n')
