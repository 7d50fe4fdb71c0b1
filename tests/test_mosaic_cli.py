"""``cpmosaic mosaic``, ``info`` and ``png`` end to end (in-process ``main``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from cpmosaic.camera import get_camera, shrink_camera, write_camera_json
from cpmosaic.cli.main import main
from cpmosaic.mosaic import open_mosaic

#: Detectors written: a spread over the focal plane, corner rafts included.
NAMES = ["R22_S11", "R22_S12", "R02_S00", "R42_S21", "R43_S22", "R00_SG0", "R04_SW1", "R44_SG0", "R40_SW0",
         "R10_S01", "R34_S20"]
BRIGHT = "R43_S22"  # high focal-plane y


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    camera = shrink_camera(get_camera("LSSTCam"), 32)
    write_camera_json(camera, d / "cam.json")
    (d / "in").mkdir()
    for name in NAMES:
        det = camera[name]
        value = 1000.0 if name == BRIGHT else 1.0
        image = np.full(det.shape, value, np.float32)
        hdr = fits.Header({"DETNAME": det.name, "INSTRUME": "LSSTCam"})
        fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(image, name="IMAGE")]).writeto(
            d / "in" / f"img_{name}.fits")
    return d, camera


@pytest.fixture(scope="module")
def store(setup):
    d, _ = setup
    out = d / "m.zarr"
    assert main(["mosaic", str(d / "in"), "-o", str(out), "--camera", str(d / "cam.json"), "--binning", "2",
                 "--chunk", "64", "--no-progress"]) == 0
    return out


def test_mosaic_builds_and_info_describes(store, capsys):
    m = open_mosaic(store)
    assert sorted(m.present) == sorted(NAMES) and m.binning == 2
    capsys.readouterr()
    assert main(["info", str(store)]) == 0
    text = capsys.readouterr().out
    assert "binning 2" in text and f"{len(NAMES)} present" in text and "64x64" in text
    assert main(["info", str(store), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["camera"] == "LSSTCam" and len(doc["levels"]) == m.n_levels
    assert doc["levels"][0]["shape"] == list(m.levels[0].shape) and doc["levels"][0]["shards"]
    assert sorted(doc["detectors"]["present"]) == sorted(NAMES)
    assert {x["reason"] for x in doc["detectors"]["missing"]} == {"no input"}


def test_existing_store_needs_resume_or_overwrite(setup, store, capsys):
    d, _ = setup
    args = ["mosaic", str(d / "in"), "-o", str(store), "--camera", str(d / "cam.json"), "--binning", "2",
            "--chunk", "64", "--no-progress"]
    assert main(args) == 1
    assert main(args + ["--resume"]) == 0
    assert "already done" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse: --resume and --overwrite are mutually exclusive
        main(args + ["--resume", "--overwrite"])


def test_png_is_up_right_and_not_blank(store, tmp_path):
    from PIL import Image

    m = open_mosaic(store)
    out = tmp_path / "m.png"
    assert main(["png", str(store), "-o", str(out), "--level", "0", "--stretch", "linear",
                 "--limits", "0", "1000"]) == 0
    img = np.asarray(Image.open(out).convert("RGBA"))
    h, w = m.shape(0)
    assert img.shape[:2] == (h, w)
    alpha = img[..., 3] > 0
    assert alpha.any() and not alpha.all()  # NaN is transparent
    lum = img[..., :3].astype(float).mean(axis=2)
    rows = np.nonzero(lum > 200)[0]
    assert rows.size and rows.max() < h / 3  # the bright detector at high y is at the top
    p = m.placements[BRIGHT]
    assert p.box[0] > h / 2  # ...and it sits in the high rows of the data
    assert main(["png", str(store), "-o", str(tmp_path / "w.png"), "--width", "300", "--stretch", "zscale",
                 "--cmap", "viridis", "--background", "grey"]) == 0
    img2 = Image.open(tmp_path / "w.png")
    assert img2.width == 300 and abs(img2.height - 300 * h / w) <= 1


@pytest.mark.parametrize("stretch", ["log", "asinh", "percentile", "eq_hist"])
def test_png_stretches(store, tmp_path, stretch):
    from PIL import Image

    out = tmp_path / f"{stretch}.png"
    assert main(["png", str(store), "-o", str(out), "--width", "120", "--stretch", stretch]) == 0
    img = np.asarray(Image.open(out).convert("RGBA"))
    assert img.shape[1] == 120 and np.ptp(img[..., :3][img[..., 3] > 0]) > 0


def test_bad_file_exits_3(setup, tmp_path, capsys):
    d, camera = setup
    (tmp_path / "in").mkdir()
    for f in (d / "in").glob("*.fits"):
        (tmp_path / "in" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "in" / "img_R22_S11.fits").write_bytes(b"garbage" * 500)
    code = main(["mosaic", str(tmp_path / "in"), "-o", str(tmp_path / "m.zarr"), "--camera", str(d / "cam.json"),
                 "--binning", "4", "--no-progress"])
    assert code == 3
    err = capsys.readouterr().err
    assert "img_R22_S11.fits" in err
    m = open_mosaic(tmp_path / "m.zarr")
    assert "R22_S11" not in m.present
    assert np.isnan(m.read(0, *m.placements["R22_S11"].box)).all()


def test_usage_errors(setup, tmp_path):
    d, _ = setup
    (tmp_path / "empty").mkdir()
    assert main(["mosaic", str(tmp_path / "empty"), "-o", str(tmp_path / "e.zarr")]) == 1
    assert main(["mosaic", "-o", str(tmp_path / "e.zarr")]) == 2  # no inputs: usage
    assert main(["info", str(tmp_path / "nothing.zarr")]) == 2  # not a store: usage
    comcam = get_camera("LSSTComCam")
    (tmp_path / "mixed").mkdir()
    for cam, inst in ((shrink_camera(get_camera("LSSTCam"), 32), "LSSTCam"), (comcam, "LSSTComCam")):
        det = cam["R22_S11"]
        hdr = fits.Header({"DETNAME": det.name, "INSTRUME": inst})
        fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(np.zeros(det.shape, np.float32), name="IMAGE")]
                     ).writeto(tmp_path / "mixed" / f"{inst}.fits")
    assert main(["mosaic", str(tmp_path / "mixed"), "-o", str(tmp_path / "x.zarr")]) == 1


@pytest.mark.butler
def test_butler_inputs(setup, tmp_path, capsys):
    """Datasets of a real (SQLite + POSIX) Butler repository, by URL and by --butler options."""
    butler_mod = pytest.importorskip("lsst.daf.butler")
    Butler, DatasetRef, DatasetType, FileDataset = (butler_mod.Butler, butler_mod.DatasetRef, butler_mod.DatasetType,
                                                    butler_mod.FileDataset)

    class FitsFile(butler_mod.FormatterV2):  # ingest only records the file; nothing reads it through the Butler
        default_extension = ".fits"
        supported_extensions = frozenset({".fits"})

    d, camera = setup
    root, run = str(tmp_path / "repo"), "u/cp/bias"
    Butler.makeRepo(root)
    butler = Butler.from_config(root, writeable=True, run=run)
    butler.registry.insertDimensionData("instrument", {"name": "LSSTCam", "detector_max": 205, "visit_max": 10**9,
                                                       "exposure_max": 10**9, "class_name": "lsst.obs.lsst.LsstCam"})
    names = NAMES[:3]
    butler.registry.insertDimensionData("detector", *[
        {"instrument": "LSSTCam", "id": camera[n].id, "full_name": n, "raft": n[:3], "name_in_raft": n[4:],
         "purpose": "SCIENCE"} for n in names])
    dt = DatasetType("verifyBiasProc", ("instrument", "detector"), "StructuredDataDict", universe=butler.dimensions)
    butler.registry.registerDatasetType(dt)
    for n in names:
        ref = DatasetRef(dt, {"instrument": "LSSTCam", "detector": camera[n].id}, run=run)
        butler.ingest(FileDataset(path=str(d / "in" / f"img_{n}.fits"), refs=[ref], formatter=FitsFile),
                      transfer="copy")
    url = f"butler://{root}?collection={run}&dataset=verifyBiasProc"
    cam = str(d / "cam.json")
    assert main(["mosaic", url, "-o", str(tmp_path / "a.zarr"), "--camera", cam, "--binning", "4",
                 "--no-progress"]) == 0
    assert sorted(open_mosaic(tmp_path / "a.zarr").present) == sorted(names)
    assert main(["mosaic", "--butler", root, "--collection", run, "--dataset-type", "verifyBiasProc",
                 "-o", str(tmp_path / "b.zarr"), "--camera", cam, "--binning", "4", "--no-progress"]) == 0
    assert open_mosaic(tmp_path / "b.zarr").inputs[0]["path"].startswith(root)
    assert main(["mosaic", f"butler://{root}?collection={run}&dataset=nothingHere", "-o",
                 str(tmp_path / "c.zarr"), "--camera", cam]) == 1


def test_mosaic_of_synth_output_needs_no_camera(tmp_path, capsys):
    """``cpmosaic synth`` writes a shrunk camera as camera.json beside its data; ``mosaic``
    places the files with it (as single-file commands do) without ``--camera``."""
    data = tmp_path / "syn"
    assert main(["synth", "-o", str(data), "--shrink", "32", "--detectors", "R22_S11,R22_S12", "--days", "1",
                 "--no-raw", "--no-calibs", "--no-verify", "--no-butler", "--image-only", "--no-progress"]) == 0
    assert (data / "camera.json").exists()
    flats = sorted(data.rglob("*.fits"))
    flats = [p for p in flats if "flat" in p.parts]
    assert flats
    out = tmp_path / "m.zarr"
    assert main(["mosaic", *map(str, flats), "-o", str(out), "--no-progress"]) == 0
    m = open_mosaic(out)
    assert sorted(m.present) == ["R22_S11", "R22_S12"]
    assert m.levels[0].shape[0] < 400  # placed with the shrunk camera, not the real one
    box = m.placements["R22_S11"].box
    assert np.isfinite(m.read(0, *box)).any()
