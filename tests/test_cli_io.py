"""``cpmosaic inspect`` and ``cpmosaic assemble`` through a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from cpmosaic.camera import get_camera, shrink_camera, write_camera_json
from cpmosaic.io import open_exposure, write_processed_fits

SMALL = shrink_camera(get_camera("LSSTCam"), 16)
KEYS = {"path", "kind", "instrument", "camera", "detector", "detector_name", "exposure", "day_obs", "seq_num",
        "controller", "mjd", "image_type", "filter", "exposure_time", "dark_time", "shape"}  # fmt: skip


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cpmosaic", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)  # fmt: skip


def small_raw(path, det_name="R22_S11", seq=5, value=100):
    """A small raw: constant data ``value`` over an overscan of 1000 in every amp."""
    det = SMALL[det_name]
    raft, slot = det_name.split("_")
    hdr = fits.Header({"INSTRUME": "LSSTCam", "RAFTBAY": raft, "CCDSLOT": slot, "DAYOBS": "20250101",
                       "SEQNUM": seq, "IMGTYPE": "BIAS", "EXPTIME": 0.0})  # fmt: skip
    hdus = [fits.PrimaryHDU(header=hdr)]
    for amp in sorted(det.amplifiers, key=lambda a: a.hdu):
        seg = np.full(amp.raw_bbox.shape, 1000, np.int32)
        seg[amp.raw_data_bbox.slices] += value
        hdus.append(fits.ImageHDU(seg, header=fits.Header({"EXTNAME": amp.segment_name})))
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.fixture
def files(tmp_path):
    cam = tmp_path / "small.json"
    write_camera_json(SMALL, cam)
    raw1 = small_raw(tmp_path / "raw1.fits")
    raw2 = small_raw(tmp_path / "raw2.fits", "R10_S02", seq=6)
    proc = write_processed_fits(tmp_path / "proc.fits", np.zeros((10, 12)), header={"DETNAME": "R22_S11",
                                "DETECTOR": 94, "INSTRUME": "LSSTCam", "DAYOBS": "20250101", "SEQNUM": 9})  # fmt: skip
    bad = tmp_path / "bad.fits"
    bad.write_text("not a FITS file\n")
    return {"cam": cam, "raw1": raw1, "raw2": raw2, "proc": proc, "bad": bad, "missing": tmp_path / "missing.fits"}


def test_inspect_json_partial(files):
    r = cli("inspect", "--format", "json", "--camera", files["cam"], files["raw1"], files["bad"], files["proc"])
    assert r.returncode == 3, r.stderr
    docs = json.loads(r.stdout)
    assert [d["path"] for d in docs] == [str(files[k]) for k in ("raw1", "bad", "proc")]
    good = [d for d in docs if "error" not in d]
    assert len(good) == 2 and all(set(d) == KEYS for d in good)
    assert (good[0]["kind"], good[0]["detector_name"], good[0]["detector"], good[0]["shape"]) == (
        "raw", "R22_S11", 94, list(SMALL["R22_S11"].shape))  # fmt: skip
    assert good[0]["exposure"] == 2025010100005 and good[1]["kind"] == "processed" and good[1]["shape"] == [10, 12]
    bad = docs[1]
    assert set(bad) == KEYS | {"error"} and str(files["bad"]) in bad["error"]
    assert str(files["bad"]) in r.stderr and "Traceback" not in r.stderr


def test_inspect_exit_codes_and_table(files):
    r = cli("inspect", "--camera", files["cam"], files["raw1"], files["raw2"])
    assert r.returncode == 0, r.stderr
    assert "R22_S11" in r.stdout and "R10_S02" in r.stdout
    r = cli("inspect", files["bad"], files["missing"])
    assert r.returncode == 1
    assert str(files["bad"]) in r.stderr and str(files["missing"]) in r.stderr and "not found" in r.stderr


def test_assemble_partial(files, tmp_path):
    out = tmp_path / "out"
    r = cli("assemble", files["raw1"], files["bad"], files["raw2"], "-o", out, "--camera", files["cam"],
            "--overscan", "mean", "--gains")  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert str(files["bad"]) in r.stderr and "Traceback" not in r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["2025010100005-R22_S11-det094.fits", "2025010100006-R10_S02-det029.fits"]
    with open_exposure(out / names[0], SMALL) as exp:
        image = exp.read()
        assert image.shape == SMALL["R22_S11"].shape
        gains = np.array([SMALL["R22_S11"].amp(a.name).gain for a in SMALL["R22_S11"].amplifiers])
        np.testing.assert_allclose(np.unique(image), np.unique(100 * gains.astype(np.float32)), rtol=1e-6)


def test_assemble_all_bad(files, tmp_path):
    r = cli("assemble", files["bad"], files["missing"], "-o", tmp_path / "out2")
    assert r.returncode == 1
    assert not list((tmp_path / "out2").iterdir())


def test_inspect_reference_raws(reference_dir):
    raws = sorted((reference_dir / "raw").glob("*.fits*"))
    r = cli("inspect", "--format", "json", *raws)
    assert r.returncode == 0, r.stderr
    got = {d["detector_name"]: (d["camera"], d["detector"], tuple(d["shape"])) for d in json.loads(r.stdout)}
    assert got == {"R10_S02": ("LSSTCam", 29, (4000, 4072)), "R22_S00": ("LSSTComCam", 0, (4000, 4072)),
                   "R22_S22": ("LSSTCam", 98, (4004, 4096)), "R22_S11": ("LSSTCam", 94, (4004, 4096))}  # fmt: skip


def test_camera_usage_errors_and_advice(files, tmp_path):
    """A bad --camera is a usage error (2) naming the flag; a raw whose INSTRUME names no camera
    fails in the library with Python advice (camera=) and in the CLI with the flag."""
    from cpmosaic.errors import UnknownInstrumentError

    r = cli("inspect", "--camera", "nope", files["raw1"])
    assert r.returncode == 2 and "argument --camera: unknown camera 'nope'" in r.stderr, r.stderr
    r = cli("camera", "show", "nope")
    assert r.returncode == 2 and "unknown camera 'nope'" in r.stderr
    foo = small_raw(tmp_path / "foo.fits")
    fits.setval(foo, "INSTRUME", value="FOO")
    with pytest.raises(UnknownInstrumentError, match=r"INSTRUME='FOO': pass camera=") as info:
        open_exposure(foo)
    assert "--" not in str(info.value) and info.value.source == str(foo)
    r = cli("inspect", foo)
    assert r.returncode == 1 and f"{foo}: no camera for INSTRUME='FOO': name the camera with --camera" in r.stderr
    r = cli("inspect", "--camera", files["cam"], foo)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args, flag", [
    (["history", "show", "--store", "S", "--start", "2025-13"], "--start"),
    (["history", "check", "--store", "S", "--since", "yesterday"], "--since"),
    (["history", "check", "--store", "S", "--window", "0"], "--window"),
    (["report", "SRC", "--window", "-2"], "--window"),
    (["metrics", "SRC", "--camera", "LSSTCamm"], "--camera"),
])
def test_bad_option_values_exit_2(args, flag, capsys):
    """Usage errors exit 2 before any work, naming the flag and the bad value."""
    from cpmosaic.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"argument {flag}:" in err and args[-1] in err, err
