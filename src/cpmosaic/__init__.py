"""cpmosaic: focal-plane mosaics and calibration-verification metrics.

The public API, by stage of the pipeline (camera -> exposures -> kernels ->
mosaic store -> metrics -> views).  Everything but the errors is imported on
first use, so ``import cpmosaic`` (and ``cpmosaic --help``) stays light: not
even numpy is imported until a name needs it.

>>> import cpmosaic
>>> cam = cpmosaic.get_camera("LSSTCam")
>>> len(cam), cam["R22_S11"].physical_type
(205, 'E2V')
"""

from __future__ import annotations

import importlib

from .errors import (
    CameraError,
    CpmosaicError,
    InputError,
    MixedCamerasError,
    UnknownDetectorError,
)

__version__ = "0.1.0"

#: name -> module it comes from (imported on first use)
_LAZY = {
    # camera
    "Amplifier": "cpmosaic.camera",
    "Box": "cpmosaic.camera",
    "Camera": "cpmosaic.camera",
    "Detector": "cpmosaic.camera",
    "get_camera": "cpmosaic.camera",
    "load_camera": "cpmosaic.camera",
    "shrink_camera": "cpmosaic.camera",
    # exposures
    "identify": "cpmosaic.io",
    "open_exposure": "cpmosaic.io",
    "write_processed_fits": "cpmosaic.io",
    # mosaics
    "build_mosaic": "cpmosaic.mosaic",
    "open_mosaic": "cpmosaic.mosaic",
    "make_plan": "cpmosaic.mosaic",
    # metrics
    "load_metrics": "cpmosaic.metrics",
    "evaluate": "cpmosaic.metrics",
    "find_outliers": "cpmosaic.metrics",
    "outlier_rows": "cpmosaic.metrics",
    "find_ptc": "cpmosaic.metrics",
    "compare_metrics": "cpmosaic.metrics",
    "compare_images": "cpmosaic.metrics",
    "HistoryStore": "cpmosaic.metrics",
    "detect_changes": "cpmosaic.metrics",
    # outputs
    "build_report": "cpmosaic.report",
    "synthesize": "cpmosaic.synth",
    "run_demo": "cpmosaic.demo",
}

__all__ = [
    "CameraError",
    "CpmosaicError",
    "InputError",
    "MixedCamerasError",
    "UnknownDetectorError",
    *sorted(_LAZY),
]


def __getattr__(name: str):
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'cpmosaic' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
