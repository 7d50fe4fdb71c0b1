"""Regenerate cpmosaic's built-in camera files from obs_lsst camera YAML.

    python tools/make_builtin_cameras.py ../shared/reference/camera

Reads lsstCam.yaml, LSSTComCam.yaml and LATISS.yaml and writes the compact
JSON files under src/cpmosaic/camera/data/.  One deliberate correction: obs_lsst
gives the wavefront chips' C14 the HDU of C13 (4); the raw files have Segment14
in HDU 5, so the built-in says 5.
"""

import dataclasses
import sys
from pathlib import Path

from cpmosaic.camera import read_obs_lsst_yaml, write_camera_json
from cpmosaic.camera.model import Camera

SOURCES = {"lsstCam.yaml": "lsstcam.json", "LSSTComCam.yaml": "lsstcomcam.json", "LATISS.yaml": "latiss.json"}


def fix_hdus(camera: Camera) -> Camera:
    dets = []
    for d in camera:
        hdus = [a.hdu for a in d.amplifiers]
        if len(set(hdus)) != len(hdus):
            amps = tuple(dataclasses.replace(a, hdu=i + 1) for i, a in enumerate(d.amplifiers))
            d = dataclasses.replace(d, amplifiers=amps)
        dets.append(d)
    return Camera(camera.name, tuple(dets), camera.plate_scale, camera.focal_plane_parity)


def main(src: str) -> None:
    out = Path(__file__).resolve().parents[1] / "src" / "cpmosaic" / "camera" / "data"
    out.mkdir(parents=True, exist_ok=True)
    for name, target in SOURCES.items():
        cam = fix_hdus(read_obs_lsst_yaml(Path(src) / name))
        write_camera_json(cam, out / target)
        print(f"{name} -> {out / target} ({len(cam)} detectors)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/reference/camera")
