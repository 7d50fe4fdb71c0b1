"""`cpmosaic metrics` end to end on synthetic data: JSON nulls, the verdict, images as a source."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cpmosaic.camera import camera_beside, get_camera
from cpmosaic.synth import synthesize

DETECTORS = ["R22_S11", "R22_S12", "R22_S21", "R00_SG0"]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("night")
    return synthesize(root, detectors=DETECTORS, n_days=3, raw=False, butler=False, workers=1, progress=False)


def cpmosaic(*args):
    return subprocess.run([sys.executable, "-m", "cpmosaic", *map(str, args)], capture_output=True, text=True)


def test_camera_json_beside_the_data_is_used(night):
    cam = camera_beside(night.paths("calib", calib_type="bias", label="A")[0])
    assert cam is not None and cam.name == "LSSTCam"
    assert cam["R22_S11"].shape != get_camera("LSSTCam")["R22_S11"].shape  # the shrunk one
    assert camera_beside("/") is None


def test_json_exposure_wide_rows_have_null_detector(night):
    out = cpmosaic("metrics", night.verify_root, "--format", "json", "--calib-type", "flat")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    wide = [r for r in rows if r["tier"] == "exposure"]
    assert wide and all(r["detector"] is None and r["detector_name"] is None and r["amp"] is None for r in wide)
    amps = [r for r in rows if r["tier"] == "amp"]
    assert all(isinstance(r["detector"], int) and r["detector_name"] in DETECTORS for r in amps)


def test_failures_prints_cp_verify_verdict(night):
    out = cpmosaic("metrics", night.verify_root, "--failures", "--calib-type", "bias")
    assert out.returncode == 0, out.stderr
    verdict = [line for line in out.stdout.splitlines() if line.startswith("cp_verify:")]
    assert verdict and "FAIL" in verdict[0] and "agreement with cp_verify 100.0%" in verdict[0]
    hot = night.anomaly("hot_amp")
    assert f"{hot['detector_name']} {hot['amp']} MEAN" in out.stdout


def test_images_without_cp_verify_outputs_are_measured(night):
    from astropy.io import fits

    folder = night.paths("calib", calib_type="bias", label="A")[0].parent
    out = cpmosaic("metrics", folder, "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = [r for r in json.loads(out.stdout) if r["metric"] == "MEAN"]
    assert {r["detector_name"] for r in rows} == set(DETECTORS)
    # one amp checked against numpy on the file itself
    r = next(r for r in rows if r["detector_name"] == "R22_S11" and r["amp"] == "C00")
    cam = camera_beside(folder)
    box = cam["R22_S11"].amp("C00").bbox
    path = next(p for p in night.paths("calib", calib_type="bias", label="A") if "R22_S11" in p.name)
    img = fits.getdata(path, "IMAGE")
    assert r["value"] == pytest.approx(float(np.nanmean(img[box.slices])), rel=1e-5, abs=1e-6)
