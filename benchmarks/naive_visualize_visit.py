"""The baseline: a focal-plane mosaic made the way pipe_tasks' visualizeVisit makes it.

Serially, for each detector: read the whole image with astropy, bin it by a
plain block mean (reshape + mean, NaN not excluded, the partial edge block
dropped as afw's binImage does), turn it by its quarter turns and paste it into
one full-plane array at its focal-plane position snapped to binned pixels.
Nothing here is shared with cpmosaic's engine except the camera geometry.

Usage::

    python benchmarks/naive_visualize_visit.py DIR_OR_FILES... -o mosaic.npy [--binning 8]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np


def _read(path: Path) -> tuple[str, np.ndarray]:
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        name = hdul[0].header.get("DETNAME")
        for hdu in hdul:
            if hdu.name == "IMAGE" or (hdu.data is not None and hdu.data.ndim == 2):
                return name, np.asarray(hdu.data, dtype=np.float32)
    raise ValueError(f"{path}: no image")


def naive_mosaic(files, camera="LSSTCam", binning: int = 8, read=_read) -> np.ndarray:
    """Assemble a binned focal-plane mosaic serially (the visualizeVisit way).

    Parameters
    ----------
    files
        Processed detector FITS files (IMAGE HDU, DETNAME in the primary header).
    camera
        Camera or camera name (for detector positions and rotations).
    binning
        Block size.
    read
        ``read(path) -> (detector name, float32 image)``; default: the processed file's
        IMAGE (a raw benchmark passes its own astropy assembly).

    Returns
    -------
    numpy.ndarray
        float32 mosaic, NaN where no detector is, row index growing with y.
    """
    from cpmosaic.camera import get_camera

    cam = get_camera(camera)
    s = cam.detectors[0].pixel_size_mm * binning
    boxes = {}
    for det in cam:
        xmin, _, ymin, _ = det.extent_mm
        h, w = det.height // binning, det.width // binning
        if det.n_quarter % 2:
            h, w = w, h
        boxes[det.name] = (math.floor(ymin / s + 0.5), math.floor(xmin / s + 0.5), h, w)
    gy = min(b[0] for b in boxes.values())
    gx = min(b[1] for b in boxes.values())
    shape = (max(b[0] - gy + b[2] for b in boxes.values()), max(b[1] - gx + b[3] for b in boxes.values()))
    mosaic = np.full(shape, np.nan, np.float32)
    for path in files:
        name, image = read(Path(path))
        det = cam[name]
        h, w = image.shape[0] // binning, image.shape[1] // binning
        binned = image[: h * binning, : w * binning].reshape(h, binning, w, binning).mean(axis=(1, 3))
        binned = np.rot90(binned, -det.n_quarter)
        y0, x0 = boxes[name][0] - gy, boxes[name][1] - gx
        mosaic[y0:y0 + binned.shape[0], x0:x0 + binned.shape[1]] = binned
    return mosaic


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+")
    p.add_argument("-o", "--output", required=True, help="output .npy (or .fits)")
    p.add_argument("--binning", type=int, default=8)
    p.add_argument("--camera", default="LSSTCam")
    args = p.parse_args(argv)
    files = []
    for item in args.inputs:
        q = Path(item)
        files.extend(sorted(q.rglob("*.fits")) if q.is_dir() else [q])
    t0 = time.perf_counter()
    mosaic = naive_mosaic(files, args.camera, args.binning)
    if args.output.endswith(".fits"):
        from astropy.io import fits

        fits.PrimaryHDU(mosaic).writeto(args.output, overwrite=True)
    else:
        np.save(args.output, mosaic)
    sys.stdout.write(f"{len(files)} detectors -> {mosaic.shape} in {time.perf_counter() - t0:.2f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
