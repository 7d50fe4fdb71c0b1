"""cpmosaic.synth: determinism, raw layout, anomalies, cp_verify structures and values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("astropy")
fits = pytest.importorskip("astropy.io.fits")
pq = pytest.importorskip("pyarrow.parquet")

from cpmosaic.synth import read_manifest, synthesize  # noqa: E402

DETS = ["R22_S11", "R22_S12", "R22_S10", "R22_S01", "R10_S02", "R00_SG0", "R04_SW0"]
KW = dict(shrink=16, seed=3, n_days=4, detectors=DETS, butler=False)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("synth"), workers=2, **KW)


@pytest.fixture(scope="module")
def camera(synth):
    return synth.load_camera()


def _image(path) -> np.ndarray:
    with fits.open(path) as h:
        return np.array(next(x for x in h if x.name == "IMAGE").data, dtype=np.float64)


def _files(m, dataset_type):
    return [f for f in m.verify_files if f["dataset_type"] == dataset_type]


def _load_yaml(path):
    return yaml.safe_load(Path(path).read_text())


# -- manifest and determinism ------------------------------------------------------
def test_manifest_round_trip(synth):
    again = read_manifest(synth.root)
    assert again.to_json_dict() == synth.to_json_dict()
    assert again.detectors == tuple(sorted(synth.load_camera().ids))
    assert {a["kind"] for a in again.anomalies} == {"hot_amp", "noisy_amp", "dead_detector"}
    assert {t["kind"] for t in again.trends} == {"drift", "jump"}
    assert all(Path(e["path"]).is_file() for kind in ("raw", "processed", "calib") for e in again.images[kind])
    doc = json.loads((synth.root / "manifest.json").read_text())
    assert not any(Path(e["path"]).is_absolute() for e in doc["images"]["raw"])  # relocatable


def test_same_seed_same_bytes(synth, tmp_path):
    other = synthesize(tmp_path / "again", workers=1, **KW)
    assert other.to_json_dict() == synth.to_json_dict()
    for kind in ("raw", "processed", "calib"):
        for a, b in zip(synth.images[kind], other.images[kind]):
            with fits.open(a["path"]) as ha, fits.open(b["path"]) as hb:
                assert len(ha) == len(hb)
                for x, y in zip(ha, hb):
                    if x.data is not None:
                        assert x.data.dtype == y.data.dtype and x.data.tobytes() == y.data.tobytes()
    for e in synth.images["raw"][:5]:  # raws are byte-identical files (no timestamps)
        assert Path(e["path"]).read_bytes() == (other.root / Path(e["path"]).relative_to(synth.root)).read_bytes()
    for a, b in zip(synth.verify_files, other.verify_files):
        assert Path(a["path"]).read_bytes() == Path(b["path"]).read_bytes()


def test_other_seed_differs(synth, tmp_path):
    other = synthesize(tmp_path / "seed4", **{**KW, "seed": 4, "n_days": 1, "verify": False, "calibs": False,
                                              "raw": False})
    p1 = synth.paths("processed", calib_type="flat", detector="R22_S11")[0]
    p2 = other.paths("processed", calib_type="flat", detector="R22_S11")[0]
    assert not np.array_equal(_image(p1), _image(p2))


# -- raw files ---------------------------------------------------------------------
def test_raw_headers_like_reference(synth, reference_dir):
    refs = sorted((reference_dir / "raw").glob("*.fits*"))
    assert refs
    prim, seg, names = [], [], []
    for r in refs:
        with fits.open(r) as h:
            prim.append(h[0].header)
            seg.append(h[1].header)
            names.append([x.name for x in h][:17])
    must_primary = set.intersection(*(set(h.keys()) for h in prim))
    must_primary |= {"RAFTBAY", "CCDSLOT", "LSST_NUM", "CCD_MANU", "IMGTYPE", "EXPTIME", "DARKTIME", "OBSID",
                     "DAYOBS", "SEQNUM", "MJD-OBS", "FILTER", "DETSIZE", "INSTRUME", "TELESCOP"}
    must_segment = set.intersection(*(set(h.keys()) for h in seg)) | {"EXTNAME", "DATASEC", "DETSEC", "DETSIZE",
                                                                      "CHANNEL"}
    e2v = next(e for e in synth.images["raw"] if e["detector_name"] == "R22_S11")
    with fits.open(e2v["path"], checksum=True) as h:
        assert must_primary <= set(h[0].header.keys())
        for x in h[1:]:
            assert must_segment <= set(x.header.keys())
        assert [x.name for x in h] == names[0]  # PRIMARY, Segment10..17, Segment07..00
        for k in set.intersection(*(set(p.keys()) for p in prim)) - {"CHECKSUM", "DATASUM", "TELESCOP"}:
            assert type(h[0].header[k]) is type(prim[0][k]), k
        hdr = h[0].header
        assert int(f"{hdr['DAYOBS']}{hdr['SEQNUM']:05d}") == e2v["exposure"]
        assert Path(e2v["path"]).name == f"{e2v['exposure']}-R22-S11-det094.fits"


def test_full_size_segment_headers_match_reference(reference_dir):
    from cpmosaic.camera import get_camera
    from cpmosaic.synth.raw import segment_header

    cam = get_camera("LSSTCam")
    for name, det in (("3019031900001-R10-S02-det029.fits", "R10_S02"), ("30211212000310-R22-S22-det098.fits", "R22_S22")):
        with fits.open(reference_dir / "raw" / name) as h:
            by_name = {x.name: x.header for x in h[1:17]}
        for ch, amp in enumerate(cam[det].amplifiers, start=1):
            ours, ref = segment_header(cam[det], amp, ch), by_name[amp.segment_name]
            for k in ("DATASEC", "DETSIZE", "DTV1", "DTM1_1"):
                assert ours[k] == ref[k], (det, amp.name, k)
            # x ranges agree; the reference's y ranges carry the DM-36115 swap
            assert ours["DETSEC"].split(",")[0] == ref["DETSEC"].split(",")[0]


def test_raw_shapes_follow_raw_bbox(synth, camera):
    for e in synth.images["raw"]:
        det = camera[e["detector"]]
        with fits.open(e["path"]) as h:
            assert len(h) == 1 + len(det.amplifiers)
            for amp in det.amplifiers:
                assert h[amp.segment_name].data.shape == amp.raw_bbox.shape
                assert h[amp.segment_name].data.dtype.kind == "i"


@pytest.mark.parametrize("name", ["R22_S11", "R10_S02", "R04_SW0", "R00_SG0"])
def test_raw_is_flipped_processed_image(synth, camera, name):
    """raw data box = bias level + flip(processed amp region) / gain (the documented convention).

    A processed bias keeps the raw's noise realisation, so with the right flips
    only rounding is left; a wrong flip leaves read noise (several e-).
    """
    det = camera[name]
    raw = synth.paths("raw", calib_type="bias", detector=name)[0]
    proc = _image(synth.paths("processed", calib_type="bias", detector=name)[0])
    with fits.open(raw) as h:
        for amp in det.amplifiers:
            seg = h[amp.segment_name].data.astype(float)
            level = seg[amp.raw_serial_overscan_bbox.slices].mean()
            data = (seg[amp.raw_data_bbox.slices] - level) * amp.gain
            data = data[:: -1 if amp.flip_y else 1, :: -1 if amp.flip_x else 1]
            diff = data - proc[amp.bbox.slices]
            assert abs(np.median(diff)) < amp.gain, amp.name
            assert np.std(diff - np.median(diff)) < 0.5 * amp.gain, amp.name


# -- anomalies where the manifest says ----------------------------------------------
def test_hot_and_noisy_amps_in_processed_bias(synth, camera):
    hot, noisy = synth.anomaly("hot_amp"), synth.anomaly("noisy_amp")
    det = camera[hot["detector"]]
    img = _image(synth.paths("processed", calib_type="bias", detector=det.name)[0])
    med = {a.name: np.median(img[a.bbox.slices]) for a in det.amplifiers}
    others = [v for k, v in med.items() if k != hot["amp"]]
    assert med[hot["amp"]] - np.median(others) == pytest.approx(hot["size"], abs=5)
    assert hot["box"] == list(det.amp(hot["amp"]).bbox.as_tuple())
    x, y = det.box_center_mm(det.amp(hot["amp"]).bbox)
    assert (hot["x_mm"], hot["y_mm"]) == pytest.approx((x, y), abs=1e-3)
    det = camera[noisy["detector"]]
    img = _image(synth.paths("processed", calib_type="bias", detector=det.name)[0])
    std = {a.name: np.std(img[a.bbox.slices]) for a in det.amplifiers}
    ratio = std[noisy["amp"]] / np.median([v for k, v in std.items() if k != noisy["amp"]])
    assert 2.0 < ratio < 4.0


def test_dead_detector_is_zero(synth):
    dead = synth.anomaly("dead_detector")
    for kind in ("raw", "processed", "calib"):
        for p in synth.paths(kind, detector=dead["detector"]):
            with fits.open(p) as h:
                for x in h:
                    if x.data is not None and x.name != "MASK":
                        assert not np.any(x.data), (kind, p)


def test_flat_vignetting_and_calib_differences(synth, camera):
    centre = np.median(_image(synth.paths("calib", calib_type="flat", detector="R22_S11", label="A")[0]))
    corner = np.median(_image(synth.paths("calib", calib_type="flat", detector="R00_SG0", label="A")[0]))
    assert centre == pytest.approx(1.0, abs=0.03) and corner < 0.9 * centre
    assert synth.calib_differences and not synth.identical_b
    for ct in synth.calib_types:
        boxes = {d["detector"]: d for d in synth.calib_differences if d["calib_type"] == ct}
        for det in camera:
            a = _image(synth.paths("calib", calib_type=ct, detector=det.id, label="A")[0])
            b = _image(synth.paths("calib", calib_type=ct, detector=det.id, label="B")[0])
            changed = a != b
            if det.id not in boxes:
                assert not changed.any(), (ct, det.name)
                continue
            d = boxes[det.id]
            x0, y0, w, h = d["box"]
            inside = np.zeros_like(changed)
            inside[y0:y0 + h, x0:x0 + w] = True
            assert not (changed & ~inside).any() and changed[inside].mean() > 0.99
            got = (b / a)[inside] if d["kind"] == "gain_step" else (b - a)[inside]
            assert np.median(got) == pytest.approx(d["size"], rel=1e-4)


@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning")
@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_identical_b_corrupt_and_missing_dead(tmp_path):
    m = synthesize(tmp_path, shrink=32, seed=1, n_days=1, detectors=["R22_S11", "R22_S12", "R22_S21"],
                   calib_types=("flat",), raw=False, verify=False, butler=False, identical_b=True, corrupt=True,
                   dead="missing", workers=1)
    dead = m.anomaly("dead_detector")["detector"]
    assert not m.paths("processed", detector=dead) and not m.paths("calib", detector=dead)
    assert m.calib_differences == ()
    (bad,) = m.corrupt
    for det in set(m.detectors) - {dead}:
        a, b = (m.paths("calib", detector=det, label=lb)[0] for lb in "AB")
        if bad["path"] not in (a, b):
            assert np.array_equal(_image(a), _image(b))
    with pytest.raises(Exception):
        _image(bad["path"])


# -- cp_verify outputs -------------------------------------------------------------
def test_layout_follows_engineering_md(synth):
    vroot = synth.verify_root
    # Results are .parq, as the Butler's POSIX datastore names them; run-level flats carry a filter
    det_exp = re.compile(r"^(?P<run>.+)/(?P<dt>verify\w+)/(?P<day>\d{8})/(?P=dt)_LSSTCam_(?P<exp>\d{13})"
                         r"(_(?P<det>R\d\d_S\w\w))?_(?P<ru>[^/]+)\.(yaml|parq)$")
    run_tier = re.compile(r"^(?P<run>.+)/(?P<dt>verify\w+)/((?P<band>[a-z]+)/(?P<pf>(?P=band)_\d+)/)?(?P=dt)_LSSTCam_"
                          r"((?P=band)_(?P=pf)_)?(?P<ru>[^/]+)\.(yaml|parq)$")
    runs = {r for v in synth.runs.values() for r in v.values()}
    on_disk = {p for p in vroot.rglob("*") if p.is_file()}
    assert on_disk == {Path(f["path"]) for f in synth.verify_files}
    for f in synth.verify_files:
        rel = Path(f["path"]).relative_to(vroot).as_posix()
        m = (run_tier if f["tier"] == "run" else det_exp).match(rel)
        assert m, rel
        assert m["run"] in runs and m["ru"] == m["run"].replace("/", "_") and m["run"] == f["run"]
        if f["tier"] != "run":
            assert int(m["exp"]) == f["exposure"] and int(m["day"]) == f["day_obs"]
            assert (m["det"] is not None) == (f["tier"] == "det")
        else:
            assert (m["pf"] is not None) == (f["calib_type"] == "flat")


def test_stats_yaml_structures_match_reference(synth, camera, reference_dir):
    ref = _load_yaml(reference_dir / "cp_verify" / "verifyBiasDetStats_R22_S11.yaml")
    ours = _load_yaml(next(f["path"] for f in _files(synth, "verifyBiasDetStats") if f["detector"] == 94))
    assert list(ours) == list(ref)
    assert list(ours["AMP"]) == sorted(camera[94].amp_names) == list(ref["AMP"])
    for amp in ours["AMP"]:
        assert list(ours["AMP"][amp]) == list(ref["AMP"][amp])
        assert all(type(v) is float for v in ours["AMP"][amp].values())
        assert list(ours["VERIFY"]["AMP"][amp]) == list(ref["VERIFY"]["AMP"][amp])
        assert all(type(v) is bool for v in ours["VERIFY"]["AMP"][amp].values())
        assert list(ours["ISR"]["CALIBDIST"][amp]) == list(ref["ISR"]["CALIBDIST"][amp])
        assert list(ours["ISR"]["BIASSHIFT"][amp]) == list(ref["ISR"]["BIASSHIFT"][amp])
    assert list(ours["VERIFY"]) == list(ref["VERIFY"]) and list(ours["METADATA"]) == list(ref["METADATA"])
    assert set(ours["ISR"]) <= set(ref["ISR"]) and ours["CATALOG"] == {} and ours["DET"] == {}
    ref_exp = _load_yaml(reference_dir / "cp_verify" / "verifyBiasExpStats_2025061800123.yaml")
    ref_run = _load_yaml(reference_dir / "cp_verify" / "verifyBiasStats.yaml")
    for f in _files(synth, "verifyBiasExpStats"):
        doc = _load_yaml(f["path"])
        assert set(doc) == {d.name for d in camera} | {"SUCCESS"}
        for name, sub in doc.items():
            if name != "SUCCESS":
                want = ref_exp["R22_S11"] if not sub["SUCCESS"] else ref_exp["R22_S10"]
                assert list(sub) == list(want)
                assert all(re.fullmatch(r"C\d\d \w+", s) for s in sub.get("FAILURES", []))
    for f in _files(synth, "verifyBiasStats"):
        doc = _load_yaml(f["path"])
        assert [type(k) for k in doc] == [type(k) for k in ref_run][:1] * (len(doc) - 1) + [str]
        assert all(re.fullmatch(r"R\d\d_S\w\w C\d\d \w+", s) for v in doc.values() if isinstance(v, dict)
                   for s in v.get("FAILURES", []))


def test_results_columns_and_types_match_reference(synth, reference_dir):
    import pyarrow as pa

    row = json.loads((reference_dir / "cp_verify" / "verifyBiasDetResults_row.json").read_text())
    table = pq.read_table(_files(synth, "verifyBiasDetResults")[0]["path"])
    assert table.column_names == list(row)
    for name, value in row.items():
        t = table.schema.field(name).type
        if isinstance(value, bool):
            assert t == pa.bool_(), name
        elif isinstance(value, int):
            assert t == pa.int64(), name
        elif isinstance(value, float):
            assert t == pa.float64(), name
        elif name.endswith("_PROF"):
            assert pa.types.is_fixed_size_list(t) and t.value_type == pa.float64(), name
        else:
            assert t == pa.string(), name
    prof = table.column("BIAS_SERIAL_PROF").to_pylist()[0]
    assert isinstance(prof, list) and len(prof) == table.schema.field("BIAS_SERIAL_PROF").type.list_size
    run = pq.read_table(_files(synth, "verifyBiasResults")[0]["path"])
    assert not any(p.suffix == ".parquet" for p in synth.verify_root.rglob("*"))
    assert run.schema == table.schema and run.num_rows == 16 * 6 + 8  # every amp of every detector
    flat = pq.read_table(_files(synth, "verifyFlatDetResults")[0]["path"]).to_pandas()
    det_rows = flat[flat["amplifier"].isna()]
    assert len(det_rows) == 1 and np.isfinite(det_rows["FLAT_DET_MEAN"]).all()
    dark = pq.read_table(_files(synth, "verifyDarkDetResults")[0]["path"])
    assert "DARK_AMP_CORNER" not in dark.column_names and "DARK_CR_NOISE" in dark.column_names


def test_verify_flags_are_the_thresholds(synth, camera):
    from cpmosaic.synth.cpverify import STAGE

    for f in synth.verify_files:
        if f["tier"] != "run" or not f["dataset_type"].endswith("Results"):
            continue
        s = STAGE[f["calib_type"]]
        df = pq.read_table(f["path"]).to_pandas()
        for r in df.itertuples(index=False):
            r = r._asdict()
            if s == "FLAT" and np.isfinite(r.get("flat_SCATTER", np.nan)):  # the exposure merge row
                # cp_verify: absolute std of the detector means, against 0.05
                means = df[(df["exposure"] == r["exposure"]) & df["amplifier"].isna()]["FLAT_DET_MEAN"].dropna()
                assert r["flat_SCATTER"] == pytest.approx(np.std(means.to_numpy()), rel=1e-12)
                assert r["flat_VERIFY_SCATTER"] == bool(r["flat_SCATTER"] <= 0.05)
                continue
            if not isinstance(r["amplifier"], str):  # the detector-level row
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = np.float64(r[f"{s}_DET_SCATTER"]) / r[f"{s}_DET_MEAN"]
                    assert r[f"{s}_DET_VERIFY_SCATTER"] == bool(ratio <= 0.05)
                continue
            amp = camera[int(r["detector"])].amp(r["amplifier"])
            with np.errstate(invalid="ignore", divide="ignore"):
                if s == "FLAT":
                    want = {"NOISE": r["FLAT_NOISE"] <= np.sqrt(r["FLAT_MEAN"])}
                else:
                    mean, noise, cr = (np.float64(r[f"{s}_{k}"]) for k in ("MEAN", "NOISE", "CR_NOISE"))
                    want = {"MEAN": abs(mean) < noise, "NOISE": (noise - amp.read_noise) / amp.read_noise <= 0.05,
                            "CR_NOISE": abs(noise - cr) / cr <= 0.05}
            for test, ok in want.items():
                assert r[f"{s}_VERIFY_{test}"] == bool(ok), (f["path"], r["detector"], r["amplifier"], test)
            assert r[f"{s}_VERIFY_SUCCESS"] == all(want.values())


def test_failures_are_exactly_the_injected_ones(synth, camera):
    found = set()
    for f in synth.verify_files:
        if f["tier"] == "run" and f["dataset_type"].endswith("Stats"):
            for key, v in _load_yaml(f["path"]).items():
                for s in v.get("FAILURES", []) if isinstance(v, dict) else []:
                    found.add((f["calib_type"], s))
    hot, noisy, dead = (synth.anomaly(k) for k in ("hot_amp", "noisy_amp", "dead_detector"))
    want = {("bias", f"{hot['detector_name']} {hot['amp']} MEAN")}
    want |= {(ct, f"{noisy['detector_name']} {noisy['amp']} {t}") for ct in ("bias", "dark")
             for t in ("NOISE", "READ_NOISE_CONSISTENT")}
    want |= {(ct, f"{dead['detector_name']} {a} {t}") for ct in ("bias", "dark")
             for a in camera[dead["detector"]].amp_names for t in ("MEAN", "CR_NOISE")}
    # flats: the run tier lists only the exposure test (absolute SCATTER, which always fails)
    want |= {("flat", "SCATTER")}
    assert found == want


def _run_values(m, calib_type, detector, amp, metric):
    out = {}
    for f in m.verify_files:
        if f["tier"] == "run" and f["dataset_type"] == f"verify{calib_type.capitalize()}Results":
            df = pq.read_table(f["path"]).to_pandas()
            df = df[df["amplifier"].notna()]
            out[f["day_obs"]] = df.groupby(["detector", "amplifier"])[f"{calib_type.upper()}_{metric}"].mean()
    days = sorted(out)
    return days, {k: np.array([out[d][k] for d in days]) for k in out[days[0]].index}


def test_drift_and_jump_are_in_the_history(synth):
    drift, jump = synth.trend("drift"), synth.trend("jump")
    days, series = _run_values(synth, drift["calib_type"], drift["detector"], drift["amp"], drift["metric"])
    assert days == list(synth.days)
    x = np.arange(len(days))
    y = series[(drift["detector"], drift["amp"])]
    slope = np.polyfit(x, y, 1)[0]
    assert slope * (len(days) - 1) == pytest.approx(drift["size"], abs=0.25 * abs(drift["size"]))
    dead = synth.anomaly("dead_detector")["detector"]
    others = [np.ptp(v) for k, v in series.items() if k != (drift["detector"], drift["amp"]) and k[0] != dead]
    assert max(others) < 0.3 * abs(drift["size"])  # nothing else drifts
    days, series = _run_values(synth, jump["calib_type"], jump["detector"], jump["amp"], jump["metric"])
    y = series[(jump["detector"], jump["amp"])]
    after = np.array(days) >= jump["start_day"]
    assert y[after].mean() - y[~after].mean() == pytest.approx(jump["size"], abs=0.2 * abs(jump["size"]))


def test_cli_synth(tmp_path, capsys):
    from cpmosaic.cli import main

    rc = main(["synth", "-o", str(tmp_path), "--days", "2", "--detectors", "R22_S11,R22_S12,94",
               "--types", "bias", "--no-butler", "--workers", "1", "--no-progress", "--no-raw"])
    assert rc == 0
    m = read_manifest(tmp_path)
    assert m.calib_types == ("bias",) and len(m.detectors) == 2 and not m.images["raw"]
    assert "wrote" in capsys.readouterr().out


def test_synth_read_noise_consistent_only_for_a_truthy_overscan_read_noise():
    """verifyBias/verifyDark: ``if overscanReadNoise:`` guards the flag; 0 writes none, NaN fails."""
    from cpmosaic.synth.cpverify import evaluate

    amp = {"MEAN": 0.0, "NOISE": 6.0, "CR_NOISE": 6.0}
    assert "READ_NOISE_CONSISTENT" not in evaluate("bias", amp, read_noise=6.0, gain=1.5, read_noise_adu=0.0)
    assert evaluate("dark", amp, read_noise=6.0, gain=1.5, read_noise_adu=float("nan"))["READ_NOISE_CONSISTENT"] is False
    assert evaluate("bias", amp, read_noise=6.0, gain=1.5, read_noise_adu=4.0)["READ_NOISE_CONSISTENT"] is True
    assert evaluate("bias", amp, read_noise=6.0, gain=1.5, read_noise_adu=4.5)["READ_NOISE_CONSISTENT"] is False
