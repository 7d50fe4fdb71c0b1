"""Comparisons: metric level (tidy tables) and image level (FITS per detector)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.errors import InputError
from cpmosaic.metrics import (compare_images, compare_metrics, comparison_summary, image_metrics, load_metrics,
                              metrics_from_images)
from test_metrics_ingest import EXPOSURES, make_bias_tree

SMALL = shrink_camera(get_camera("LSSTCam"), 16)
DETS = ("R22_S10", "R22_S11", "R01_S00")


def _write_fits(path, image, det_name):
    h = fits.Header()
    h["INSTRUME"], h["DETNAME"], h["IMGTYPE"] = "LSSTCam", det_name, "BIAS"
    fits.HDUList([fits.PrimaryHDU(header=h), fits.ImageHDU(image.astype(np.float32), name="IMAGE")]).writeto(path)


def _frames(tmp_path, rng, *, offset=0.0, offset_amp=("R22_S11", "C03"), missing=None, bad=None):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(parents=True, exist_ok=True), b.mkdir(parents=True, exist_ok=True)
    for name in DETS:
        det = SMALL[name]
        img = rng.normal(100.0, 5.0, det.shape).astype(np.float32)
        _write_fits(a / f"bias_{name}.fits", img, name)
        if name == missing:
            continue
        img_b = img.copy()
        if name == offset_amp[0]:
            ys, xs = det.amp(offset_amp[1]).bbox.slices
            img_b[ys, xs] += offset
        if name == bad:
            (b / f"bias_{name}.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
        else:
            _write_fits(b / f"bias_{name}.fits", img_b, name)
    return a, b


def test_identical_tables_exactly_zero(tmp_path):
    make_bias_tree(tmp_path)
    a = load_metrics(tmp_path)
    d = compare_metrics(a, load_metrics(tmp_path))
    assert len(d) == len(a[a.value.notna()])
    assert (d["diff"] == 0).all() and (d.abs_diff == 0).all() and (d.rel_diff == 0).all()
    assert d.exposure.notna().all()  # same exposures: joined per exposure
    s = comparison_summary(d)
    assert s["fraction_identical"] == 1.0 and s["max_abs_diff"] == 0.0 and s["largest"] == []
    assert s["only_in_a"] == s["only_in_b"] == 0 and s["n_compared"] == len(d)


def test_differences_and_one_sided_keys(tmp_path):
    make_bias_tree(tmp_path)
    a = load_metrics(tmp_path)
    b = a.copy()
    sel = (b.detector_name == "R22_S11") & (b.amp == "C03") & (b.metric == "MEAN")
    b.loc[sel, "value"] += 0.5
    b = b[~((b.detector_name == "R22_S12") & (b.amp == "C00"))]
    d = compare_metrics(a, b)
    changed = d[d["diff"] != 0]
    assert len(changed[changed.value_b.notna() & changed.value_a.notna()]) == 2  # two exposures
    assert np.allclose(changed.dropna(subset=["value_b"])["diff"], 0.5)
    s = comparison_summary(d, top=3)
    assert s["only_in_a"] == (a.value.notna() & (a.detector_name == "R22_S12") & (a.amp == "C00")).sum()
    assert s["only_in_b"] == 0
    assert s["largest"][0]["detector_name"] == "R22_S11" and s["largest"][0]["amp"] == "C03"
    assert s["largest"][0]["diff"] == pytest.approx(0.5)


def test_different_exposures_compare_medians(tmp_path):
    make_bias_tree(tmp_path)
    a = load_metrics(tmp_path)
    b = a[a.exposure == EXPOSURES[0]]
    d = compare_metrics(a, b)
    assert d.exposure.isna().all()
    row = d[(d.detector_name == "R22_S10") & (d.amp == "C00") & (d.metric == "NOISE")].iloc[0]
    vals = a[(a.detector_name == "R22_S10") & (a.amp == "C00") & (a.metric == "NOISE")].value
    assert row.value_a == np.median(vals) and row.n_a == 2 and row.n_b == 1


def test_images_identical_zero_and_offset(tmp_path, rng):
    a, b = _frames(tmp_path, rng, offset=0.0)
    d = compare_images(a, b, camera=SMALL)
    assert len(d) == 3 * 16 and d.attrs["problems"] == []
    for col in ("mean", "median", "robust_sigma", "max_abs", "frac_differing"):
        assert (d[col] == 0).all(), col
    a2, b2 = _frames(tmp_path / "x", rng, offset=2.5)
    d2 = compare_images(a2, b2, camera=SMALL).set_index(["detector_name", "amp"])
    hit = d2.loc[("R22_S11", "C03")]
    assert hit["median"] == pytest.approx(2.5, abs=1e-4) and hit.frac_differing == 1.0
    assert (d2.drop(("R22_S11", "C03")).max_abs == 0).all()


def test_images_missing_and_bad_files_skipped(tmp_path, rng):
    a, b = _frames(tmp_path, rng, missing="R22_S10", bad="R01_S00")
    d = compare_images(a, b, camera=SMALL)
    assert set(d.detector_name) == {"R22_S11"}
    sources = " ".join(p["source"] for p in d.attrs["problems"])
    assert "bias_R22_S10.fits" in sources and "bias_R01_S00.fits" in sources


def test_image_metrics_against_numpy(rng):
    det = SMALL["R22_S11"]
    img = rng.normal(10.0, 2.0, det.shape).astype(np.float32)
    df = image_metrics(img, det, calib_type="bias", run="r", exposure=2025061800123)
    assert len(df) == 16 * 5 and set(df.tier) == {"amp"} and (df.day_obs == 20250618).all()
    for amp in det.amplifiers:
        px = img[amp.bbox.slices].astype(np.float64)
        got = df[df.amp == amp.name].set_index("metric").value
        assert got["MEAN"] == pytest.approx(px.mean(), rel=1e-6)
        assert got["MEDIAN"] == pytest.approx(np.median(px), rel=1e-5)
        assert got["NOISE"] == pytest.approx(px.std(ddof=1), rel=0.05)  # clipped: close to the full stdev


def test_cli_compare(tmp_path, rng, capsys):
    from cpmosaic.cli.main import main

    make_bias_tree(tmp_path / "m")
    out = tmp_path / "out"
    assert main(["compare", str(tmp_path / "m"), str(tmp_path / "m"), "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["fraction_identical"] == 1.0
    assert json.loads(capsys.readouterr().out)["metrics"]["n_compared"] == summary["metrics"]["n_compared"]
    diff = pd.read_csv(out / "metric_differences.csv")
    assert (diff["diff"] == 0).all()
    a, b = _frames(tmp_path / "img", rng, offset=1.0)
    cam = tmp_path / "cam.json"
    from cpmosaic.camera import write_camera_json

    write_camera_json(SMALL, cam)
    assert main(["compare", str(a), str(b), "--images", "--camera", str(cam), "-o", str(out)]) == 0
    img = pd.read_csv(out / "image_differences.csv")
    assert len(img) == 48 and (img.max_abs > 0).sum() == 1
    s = json.loads((out / "summary.json").read_text())
    assert s["images"]["n_identical_amps"] == 47 and s["metrics"]["n_compared"] > 0


def test_synthetic_calibration_runs(tmp_path):
    import cpmosaic.synth as synth
    m = synth.synthesize(tmp_path / "s", n_days=1, raw=False, processed=False, verify=False, butler=False,
                         workers=1, detectors=["R22_S11", "R10_S10", "R01_S00"], calib_types=("bias",))
    runs = {}
    for e in m.images["calib"]:
        runs.setdefault(e["label"], {})[e["detector"]] = e["path"]
    from pathlib import Path

    dirs = {lb: {Path(p).parent for p in v.values()} for lb, v in runs.items()}
    assert all(len(v) == 1 for v in dirs.values())
    cam = get_camera(m.camera_file)
    d = compare_images(dirs["A"].pop(), dirs["B"].pop(), camera=cam)
    expected = {(x["detector_name"], x.get("amp")) for x in m.calib_differences if x["calib_type"] == "bias"}
    changed = set(zip(d[d.max_abs > 0].detector_name, d[d.max_abs > 0].amp))
    assert {det for det, _ in expected} == {det for det, _ in changed}
    with pytest.raises(InputError, match="nothing-here"):
        metrics_from_images(tmp_path / "nothing-here")
