"""Camera geometry against the obs_lsst reference files and hand-computed cases."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from cpmosaic.camera import (
    Box,
    get_camera,
    read_camera_json,
    read_obs_lsst_yaml,
    shrink_camera,
    write_camera_json,
)
from cpmosaic.errors import CameraError, UnknownDetectorError

BUILTINS = {"LSSTCam": "lsstCam.yaml", "LSSTComCam": "LSSTComCam.yaml", "LATISS": "LATISS.yaml"}


def afw_pixel_to_fp(offset, yaw_deg, refpos, pixel_mm, x, y):
    """Independent implementation of afw's Orientation (fp = offset + R(yaw) (pix - refpos) * p)."""
    t = math.radians(yaw_deg)
    dx, dy = (x - refpos[0]) * pixel_mm, (y - refpos[1]) * pixel_mm
    return offset[0] + math.cos(t) * dx - math.sin(t) * dy, offset[1] + math.sin(t) * dx + math.cos(t) * dy


@pytest.fixture(scope="module", params=sorted(BUILTINS))
def pair(request, reference_dir):
    import yaml

    path = reference_dir / "camera" / BUILTINS[request.param]
    return get_camera(request.param), yaml.safe_load(path.read_text())


def test_builtins_agree_with_obs_lsst_yaml(pair):
    cam, doc = pair
    ccds = doc["CCDs"]
    assert sorted(cam.names) == sorted(ccds)
    for name, spec in ccds.items():
        det = cam[name]
        assert det.id == spec["id"]
        assert det.physical_type == spec["physicalType"]
        (x0, y0), (x1, y1) = spec["bbox"]
        assert (det.width, det.height) == (x1 - x0 + 1, y1 - y0 + 1)
        assert det.refpos == tuple(spec["refpos"])
        assert det.yaw_deg == float(spec.get("yaw", 0.0))
        assert det.n_quarter == math.floor((float(spec.get("yaw", 0.0)) + 45) / 90) % 4
        # centres of every amp within 1 um of afw's formula, computed independently
        for amp_name, a in spec["amplifiers"].items():
            amp = det.amp(amp_name)
            (dx0, dy0), (w, h) = a["rawDataBBox"]
            assert (amp.ix, amp.iy) == tuple(a["ixy"])
            assert (amp.flip_x, amp.flip_y) == tuple(a["flipXY"])
            assert amp.bbox == Box(a["ixy"][0] * w, a["ixy"][1] * h, w, h)
            for key, box in [
                ("rawBBox", amp.raw_bbox),
                ("rawDataBBox", amp.raw_data_bbox),
                ("rawSerialPrescanBBox", amp.raw_serial_prescan_bbox),
                ("rawSerialOverscanBBox", amp.raw_serial_overscan_bbox),
                ("rawParallelOverscanBBox", amp.raw_parallel_overscan_bbox),
            ]:
                assert box.as_list() == a[key], (name, amp_name, key)
            if det.type != "wavefront":  # the wavefront C14 HDU is corrected, see below
                assert amp.hdu == a["hdu"]
            cx = a["ixy"][0] * w + (w - 1) / 2
            cy = a["ixy"][1] * h + (h - 1) / 2
            want = afw_pixel_to_fp(spec["offset"], spec.get("yaw", 0.0), spec["refpos"], spec["pixelSize"][0], cx, cy)
            got = det.box_center_mm(amp.bbox)
            assert np.allclose(got, want, atol=1e-3), (name, amp_name, got, want)


def test_wavefront_hdus_follow_segment_order(reference_dir):
    cam = get_camera("LSSTCam")
    for det in cam:
        hdus = [a.hdu for a in det.amplifiers]
        assert len(set(hdus)) == len(hdus), det.name
        for a in det.amplifiers:  # Segment10..17 are HDUs 1-8, Segment07..00 HDUs 9-16
            want = int(a.name[2]) + 1 if a.name[1] == "1" else 16 - int(a.name[2])
            assert a.hdu == want, (det.name, a.name)


def test_lsstcam_against_detector_table(reference_dir):
    cam = get_camera("LSSTCam")
    rows = list(csv.DictReader((reference_dir / "camera" / "lsstCam_detectors.csv").open()))
    assert len(rows) == len(cam) == 205
    for row in rows:
        det = cam[row["name"]]
        assert det.id == int(row["id"])
        assert det.n_quarter == int(row["nQuarter_mod4"])
        assert det.offset_mm == (float(row["offset_x_mm"]), float(row["offset_y_mm"]))
        xmin, xmax, ymin, ymax = det.extent_mm
        # the table rounds to 0.01 mm
        assert np.allclose([xmin, xmax, ymin, ymax], [float(row[k]) for k in ("fp_xmin", "fp_xmax", "fp_ymin", "fp_ymax")], atol=0.006)


def test_lsstcam_census():
    cam = get_camera("LSSTCam")
    types = [d.type for d in cam]
    assert types.count("science") == 189 and types.count("guider") == 8 and types.count("wavefront") == 8
    phys = [d.physical_type for d in cam if d.type == "science"]
    assert phys.count("E2V") == 117 and phys.count("ITL") == 72
    assert cam[94].name == "R22_S11" and cam["R43_S22"].id == 188
    assert [cam[i].raft for i in (189, 193, 197, 201)] == ["R00", "R04", "R40", "R44"]
    assert {d.n_quarter for d in cam if d.raft in ("R00", "R04", "R40", "R44")} == {0, 1, 2, 3}


@pytest.mark.parametrize("q", [0, 1, 2, 3])
def test_rotation_direction_through_formula(q):
    """A pixel step along +x must move along R(90 q) (1, 0) in the focal plane."""
    cam = get_camera("LSSTCam")
    det = next(d for d in cam if d.n_quarter == q)
    x0, y0 = det.pixel_to_focal_plane(100.0, 200.0)
    x1, y1 = det.pixel_to_focal_plane(101.0, 200.0)
    step = np.array([x1 - x0, y1 - y0]) / det.pixel_size_mm
    want = [round(math.cos(math.pi / 2 * q)), round(math.sin(math.pi / 2 * q))]
    assert np.allclose(step, want, atol=1e-9)


def test_round_trip_pixel_focal_plane(rng):
    cam = get_camera("LSSTCam")
    for det in cam.detectors[::7]:
        x = rng.uniform(0, det.width, 50)
        y = rng.uniform(0, det.height, 50)
        fx, fy = det.pixel_to_focal_plane(x, y)
        bx, by = det.focal_plane_to_pixel(fx, fy)
        assert np.allclose(bx, x, atol=1e-9) and np.allclose(by, y, atol=1e-9)


def test_science_detectors_do_not_overlap():
    cam = get_camera("LSSTCam")
    ext = np.array([d.extent_mm for d in cam])
    for i in range(len(ext)):
        a = ext[i]
        b = ext[i + 1:]
        overlap = (np.minimum(a[1], b[:, 1]) - np.maximum(a[0], b[:, 0]) > 1e-6) & (
            np.minimum(a[3], b[:, 3]) - np.maximum(a[2], b[:, 2]) > 1e-6
        )
        assert not overlap.any(), cam.detectors[i].name


def test_reader_round_trip_compact_json(tmp_path, reference_dir):
    cam = read_obs_lsst_yaml(reference_dir / "camera" / "LSSTComCam.yaml")
    write_camera_json(cam, tmp_path / "comcam.json")
    back = read_camera_json(tmp_path / "comcam.json")
    assert back == cam
    assert get_camera(tmp_path / "comcam.json") == cam


def test_shrunk_camera_keeps_footprints():
    cam = get_camera("LSSTCam")
    small = shrink_camera(cam, 16)
    for det, s in zip(cam, small):
        assert s.name == det.name and s.n_quarter == det.n_quarter
        assert np.allclose(s.center_mm, det.center_mm, atol=0.02)
        assert np.allclose(s.extent_mm, det.extent_mm, atol=0.01 * 16 * 8 / 2)  # < f/2 px per amp
        for a in s.amplifiers:
            assert a.raw_data_bbox.x1 <= a.raw_serial_overscan_bbox.x0
            assert a.bbox.x1 <= s.width and a.bbox.y1 <= s.height


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(CameraError, match="unknown camera 'HSC'"):
        get_camera("HSC")
    with pytest.raises(UnknownDetectorError, match="R99_S99"):
        get_camera("LSSTCam")["R99_S99"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("CCDs:\n  R22_S11:\n    id: 1\n")
    with pytest.raises(CameraError, match=r"bad.yaml: detector R22_S11"):
        read_obs_lsst_yaml(bad)
    with pytest.raises(CameraError, match="not found"):
        get_camera(tmp_path / "missing.yaml")


def test_camera_show_json(reference_dir):
    out = subprocess.run(
        [sys.executable, "-m", "cpmosaic", "camera", "show", "LSSTCam", "--format", "json"],
        capture_output=True, text=True, check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["name"] == "LSSTCam" and len(doc["detectors"]) == 205
    det = {d["name"]: d for d in doc["detectors"]}["R40_SG1"]
    assert set(det) >= {"id", "name", "type", "physical_type", "n_quarter", "center_mm", "corners_mm", "amps"}
    assert len(det["corners_mm"]) == 4 and len(det["amps"]) == 16
    assert set(det["amps"][0]) >= {"name", "center_mm", "corners_mm"}
    # from the YAML file too, with the same answer
    out2 = subprocess.run(
        [sys.executable, "-m", "cpmosaic", "camera", "show", str(reference_dir / "camera" / "lsstCam.yaml"), "--format", "json"],
        capture_output=True, text=True, check=True,
    )
    doc2 = json.loads(out2.stdout)
    for a, b in zip(doc["detectors"], doc2["detectors"]):
        assert a["center_mm"] == b["center_mm"] and a["corners_mm"] == b["corners_mm"]


def test_cli_bad_camera_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "cpmosaic", "camera", "show", "nope"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown camera 'nope'" in out.stderr


def test_public_api_resolves_and_import_stays_light():
    code = (
        "import sys, cpmosaic\n"
        "heavy = [m for m in ('holoviews', 'bokeh', 'datashader', 'panel', 'dask', 'pandas', 'numba') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in cpmosaic.__all__ if getattr(cpmosaic, n, None) is None]\n"
        "assert not missing, missing\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("field, value, words", [
    ("pixel_size_mm", 0.0, "pixel size must be a positive number of mm, got 0.0"),
    ("pixel_size_mm", -0.01, "pixel size must be a positive number of mm, got -0.01"),
    ("offset_mm", [float("nan"), 1.0], "offset must be finite"),
])
def test_impossible_geometry_names_the_file_and_detector(tmp_path, field, value, words):
    from cpmosaic.camera.compact import camera_to_dict

    doc = camera_to_dict(get_camera("LSSTCam"))
    det = next(d for d in doc["detectors"] if d["name"] == "R22_S11")
    det[field] = value
    path = tmp_path / "cam.json"
    path.write_text(json.dumps(doc))  # Python writes NaN as the NaN literal, which it reads back
    with pytest.raises(CameraError) as info:
        get_camera(path)
    assert str(path) in str(info.value) and "R22_S11" in str(info.value) and words in str(info.value)
    assert "different pixel sizes" not in str(info.value)
    # and through the CLI: one line, exit 2, no traceback
    r = subprocess.run([sys.executable, "-m", "cpmosaic", "mosaic", str(tmp_path), "-o", str(tmp_path / "m.zarr"),
                        "--camera", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and str(path) in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "m.zarr").exists()


def test_obs_lsst_yaml_with_zero_pixel_size_names_the_file(tmp_path, reference_dir):
    text = (reference_dir / "camera" / "lsstCam.yaml").read_text()
    assert "pixelSize : [0.010, 0.010]" in text
    bad = tmp_path / "zero.yaml"
    bad.write_text(text.replace("pixelSize : [0.010, 0.010]", "pixelSize : [0.0, 0.0]", 1))
    with pytest.raises(CameraError, match=r"zero.yaml: detector \w+: pixel size must be a positive number"):
        read_obs_lsst_yaml(bad)
