"""Camera geometry: detectors, amplifiers, transforms, built-in cameras."""

from .compact import camera_from_dict, camera_to_dict, read_camera_json, write_camera_json
from .model import DETECTOR_TYPES, Amplifier, Box, Camera, Detector
from .obs_lsst import read_obs_lsst_yaml
from .registry import BUILTIN_CAMERAS, CAMERA_FILE, camera_beside, get_camera, load_camera
from .shrink import shrink_camera

__all__ = [
    "Amplifier",
    "BUILTIN_CAMERAS",
    "CAMERA_FILE",
    "Box",
    "Camera",
    "DETECTOR_TYPES",
    "Detector",
    "camera_beside",
    "camera_from_dict",
    "camera_to_dict",
    "get_camera",
    "load_camera",
    "read_camera_json",
    "read_obs_lsst_yaml",
    "shrink_camera",
    "write_camera_json",
]
