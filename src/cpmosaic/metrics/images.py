"""Per-amp metrics measured directly on images, for data without cp_verify outputs.

Statistics follow cp_verify's choices (afw statistics, 3 sigma, 3 iterations):
``MEAN`` (plain mean), ``MEDIAN``, ``STDEV``, ``CLIPPED_MEAN`` and ``NOISE``
(the clipped standard deviation, cp_verify's ``STDEVCLIP``), from
``cpmosaic.kernels.amp_statistics``.  Rows are tidy-table rows (tier ``amp``,
``passed`` ``<NA>``).

>>> df = metrics_from_images("bias_frames/", calib_type="bias")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd

from ..errors import CpmosaicError, InputError
from .table import COLUMNS, _frame

if TYPE_CHECKING:
    from ..camera import Camera, Detector

log = logging.getLogger(__name__)

__all__ = ["IMAGE_METRICS", "image_metrics", "metrics_from_images"]

#: tidy metric name -> key of ``amp_statistics``'s result.
IMAGE_METRICS = {"MEAN": "mean", "MEDIAN": "median", "STDEV": "stdev", "CLIPPED_MEAN": "clipped_mean",
                 "NOISE": "clipped_stdev"}


def image_metrics(image: np.ndarray, detector: Detector, *, calib_type: str = "bias", run: str = "",
                  exposure: int | None = None, day_obs: int | None = None, mjd: float | None = None,
                  instrument: str = "LSSTCam", nsigma: float = 3.0, niter: int = 3,
                  mask: np.ndarray | None = None, n_threads: int | None = 1) -> pd.DataFrame:
    """Tidy rows of one detector image: every amp x ``IMAGE_METRICS``.

    Parameters
    ----------
    image
        Assembled ``[y, x]`` detector image (the detector's shape).
    detector
        The camera Detector (gives id, name and amp boxes).

    Examples
    --------
    >>> from cpmosaic.camera import get_camera
    >>> det = get_camera("LSSTCam")["R22_S11"]
    >>> img = np.zeros(det.shape, np.float32)
    >>> float(image_metrics(img, det).query("metric == 'NOISE'").value.max())
    0.0
    """
    from ..kernels import amp_statistics

    if tuple(image.shape) != tuple(detector.shape):
        raise InputError(None, f"image shape {image.shape} is not detector {detector.name}'s {detector.shape}")
    boxes = np.array([a.bbox.as_tuple() for a in detector.amplifiers], dtype=np.int64)
    st = amp_statistics(image, boxes, nsigma=nsigma, niter=niter, mask=mask, n_threads=n_threads)
    namp, nmet = len(boxes), len(IMAGE_METRICS)
    if day_obs is None and exposure is not None:
        from ..io.cpverify import day_obs_of_exposure

        day_obs = day_obs_of_exposure(exposure)
    cols = {
        "instrument": np.full(namp * nmet, instrument, object),
        "calib_type": np.full(namp * nmet, calib_type, object),
        "run": np.full(namp * nmet, run, object),
        "exposure": np.full(namp * nmet, -1 if exposure is None else exposure, np.int64),
        "day_obs": np.full(namp * nmet, -1 if day_obs is None else day_obs, np.int64),
        "mjd": np.full(namp * nmet, np.nan if mjd is None else mjd),
        "detector": np.full(namp * nmet, detector.id, np.int64),
        "detector_name": np.full(namp * nmet, detector.name, object),
        "amp": np.tile(np.array([a.name for a in detector.amplifiers], object), nmet),
        "tier": np.full(namp * nmet, "amp", object),
        "metric": np.repeat(np.array(list(IMAGE_METRICS), object), namp),
        "value": np.concatenate([np.asarray(st[k], dtype=float) for k in IMAGE_METRICS.values()]),
        "passed": np.full(namp * nmet, np.nan),
    }
    return _frame(cols, problems=[])


def _image_files(source) -> list[Path]:
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            return sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(
                (".fits", ".fit", ".fits.fz", ".fits.gz", ".fz")))
        return [p]
    return [Path(s) for s in source]


def metrics_from_images(source: str | os.PathLike | Iterable[str | os.PathLike], *,
                        camera: Camera | str | os.PathLike | None = None,
                        calib_type: str = "bias", run: str | None = None, nsigma: float = 3.0,
                        niter: int = 3, progress: bool | None = None) -> pd.DataFrame:
    """Tidy metrics table measured on calibration images (a directory or a list of files).

    A file that cannot be read or matched to a detector is recorded in
    ``attrs["problems"]`` and skipped; InputError when none could be measured.

    Examples
    --------
    >>> df = metrics_from_images("bias/", calib_type="bias", run="u/me/bias")  # doctest: +SKIP
    """
    from .. import progress as prog
    from ..camera import get_camera
    from ..io import open_exposure

    files = _image_files(source)
    run = run if run is not None else (Path(source).name if isinstance(source, (str, os.PathLike)) else "")
    cam = get_camera(camera) if camera is not None else None
    frames, problems = [], []
    for path in prog.track(files, total=len(files), desc="images", progress=progress):
        try:
            with open_exposure(path, cam) as exp:
                det = exp.detector
                if det is None:
                    raise InputError(path, "no detector in the headers")
                info = exp.info
                frames.append(image_metrics(exp.read(), det, calib_type=calib_type, run=run,
                                            exposure=info.exposure, day_obs=info.day_obs, mjd=info.mjd,
                                            instrument=info.instrument or (cam.name if cam else "LSSTCam"),
                                            nsigma=nsigma, niter=niter, n_threads=None))
        except (CpmosaicError, OSError, ValueError, KeyError) as exc:
            problem = exc.problem if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            problems.append({"source": str(path), "problem": problem})
            log.warning("%s: %s; skipped", path, problem)
    if not frames:
        raise InputError(source if isinstance(source, (str, os.PathLike)) else None,
                         "no image could be measured" + (f" ({problems[0]['problem']})" if problems else ""))
    df = pd.concat(frames, ignore_index=True)[list(COLUMNS)]
    df.attrs["problems"] = problems
    return df
