"""cpmosaic: focal-plane mosaics and calibration-verification metrics.

The public API, by stage of the pipeline (camera -> exposures -> kernels ->
mosaic store -> views):

>>> import cpmosaic
>>> cam = cpmosaic.get_camera("LSSTCam")
>>> len(cam), cam["R22_S11"].physical_type
(205, 'E2V')
"""

from .camera import Amplifier, Box, Camera, Detector, get_camera, load_camera, shrink_camera
from .errors import CameraError, CpmosaicError, InputError, MixedCamerasError, UnknownDetectorError

__version__ = "0.1.0"

__all__ = [
    "Amplifier",
    "Box",
    "Camera",
    "CameraError",
    "CpmosaicError",
    "Detector",
    "InputError",
    "MixedCamerasError",
    "UnknownDetectorError",
    "get_camera",
    "load_camera",
    "shrink_camera",
]
