"""DMTN-101 tests re-evaluated from the tidy table agree with cp_verify's VERIFY flags.

The fixtures write VERIFY flags computed here with cp_verify's formulas
(verifyBias, verifyFlat, verifyDefects, verifyPtc, verifyGainFromFlatPairs), so
``evaluate`` must reproduce them exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cpmosaic.camera import get_camera
from cpmosaic.metrics import DEFAULT_THRESHOLDS, Thresholds, evaluate, load_metrics, summary
from test_metrics_ingest import (EXPOSURES, MJD, RUN, bias_det_doc, bias_values, layout_path, make_bias_tree,
                                 write_yaml)

CAM = get_camera("LSSTCam")


def _agree(res):
    both = res.passed.notna() & res.cp_verify_passed.notna()
    assert both.any()
    bad = res[both & (res.passed != res.cp_verify_passed)]
    assert bad.empty, bad.to_string()
    return both


def test_bias_agrees_with_verify_flags(tmp_path):
    make_bias_tree(tmp_path)
    res = evaluate(load_metrics(tmp_path))
    both = _agree(res)
    assert set(res[both].test) == {"MEAN", "NOISE", "CR_NOISE", "READ_NOISE_CONSISTENT"}
    fails = res[res.passed.eq(False)]
    assert fails[["exposure", "detector_name", "amp", "test"]].values.tolist() == [
        [EXPOSURES[0], "R22_S11", "C07", "NOISE"]]
    row = fails.iloc[0]
    amp = CAM["R22_S11"].amp("C07")
    assert row.threshold == 0.05
    assert row.value == pytest.approx(
        (load_metrics(tmp_path).query("amp == 'C07' and metric == 'NOISE' and exposure == @EXPOSURES[0] "
                                      "and detector_name == 'R22_S11'").value.iloc[0] - amp.read_noise)
        / amp.read_noise)


def test_failures_only_and_summary(tmp_path):
    make_bias_tree(tmp_path)
    df = load_metrics(tmp_path)
    f = evaluate(df, failures_only=True)
    assert len(f) == 1 and f.iloc[0].test == "NOISE"
    s = summary(df)
    assert s["cp_verify_success"] is False and s["success"] is False and s["agreement"] == 1.0
    per = {e["exposure"]: e for e in s["exposures"]}
    assert per[EXPOSURES[0]]["cp_verify_success"] is False
    assert per[EXPOSURES[0]]["failures"] == ["R22_S11 C07 NOISE"]
    assert per[EXPOSURES[1]]["cp_verify_success"] is True and per[EXPOSURES[1]]["n_failures"] == 0


def test_thresholds_configurable_and_frozen(tmp_path):
    make_bias_tree(tmp_path, noisy=())
    df = load_metrics(tmp_path)
    assert not evaluate(df).passed.eq(False).any()
    strict = dataclasses.replace(DEFAULT_THRESHOLDS, noise_tolerance=-0.5)
    res = evaluate(df, strict)
    assert res[res.test == "NOISE"].passed.eq(False).all()
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_THRESHOLDS.noise_tolerance = 1.0
    # "table" read noise: READ_NOISE_ADU x nominal gain, within 2-3 % of nominal here
    res_t = evaluate(df, Thresholds(read_noise="table"))
    assert len(res_t[res_t.test == "NOISE"]) == len(res[res.test == "NOISE"])


def _write_det(tmp, calib, run, det, doc, exposure=EXPOSURES[0]):
    write_yaml(layout_path(tmp, run, f"verify{calib}DetStats", exposure=exposure, detector=det), doc)


def test_flat_amp_detector_exposure_tests(tmp_path):
    rng = np.random.default_rng(3)
    run = "u/test/verifyFlat"
    means = {}
    for det, scatter in (("R22_S11", 400.0), ("R22_S12", 2000.0)):
        amp_doc, ver = {}, {}
        for i, a in enumerate(CAM[det].amp_names):
            mean = 20000.0 + rng.normal(0, 50)
            noise = np.sqrt(mean) * (1.02 if i == 3 else 0.95)  # amp 3 fails NOISE <= sqrt(MEAN)
            amp_doc[a] = {"MEAN": float(mean), "NOISE": float(noise)}
            ver[a] = {"NOISE": bool(noise <= np.sqrt(mean))}
            ver[a]["SUCCESS"] = ver[a]["NOISE"]
        dmean = float(np.mean([v["MEAN"] for v in amp_doc.values()]))
        means[det] = dmean
        dv = {"SCATTER": bool(scatter / dmean <= 0.05)}
        _write_det(tmp_path, "Flat", run, det, {"AMP": amp_doc, "DET": {"MEAN": dmean, "SCATTER": scatter},
                                                "ISR": {"MJD": MJD}, "VERIFY": {"AMP": ver, "DET": dv}})
    write_yaml(layout_path(tmp_path, run, "verifyFlatExpStats", exposure=EXPOSURES[0]),
               {"EXP": {"SCATTER": 0.07}, "VERIFY": {"EXP": {"SCATTER": False}}, "SUCCESS": False})
    res = evaluate(load_metrics(tmp_path))
    _agree(res[res.tier != "exposure"])
    fails = res[res.passed.eq(False)]
    assert sorted(fails.test.value_counts().items()) == [("NOISE", 2), ("SCATTER", 1)]
    assert set(fails[fails.tier == "detector"].detector_name) == {"R22_S12"}
    # Flat EXP SCATTER: cp_verify's absolute test (0.07 > 0.05) beside the relative scatter
    # of the same detector means, which passes; the disagreement says why.
    exp = res[res.tier == "exposure"]
    assert len(exp) == 1
    row = exp.iloc[0]
    dm = np.array(list(means.values()))
    assert row.value == pytest.approx(np.std(dm) / np.mean(dm), rel=1e-12)
    assert row.passed is True or bool(row.passed) is True
    assert bool(row.cp_verify_passed) is False
    assert row.disagreement.startswith("relative scatter")
    assert "absolute scatter 0.07" in row.note
    assert summary(load_metrics(tmp_path), res)["cp_verify_success"] is False


def test_defects_ptc_gain(tmp_path):
    e2v, itl = "R22_S11", "R01_S00"
    assert CAM[e2v].physical_type == "E2V" and CAM[itl].physical_type.startswith("ITL")
    for det in (e2v, itl):
        amps = CAM[det].amp_names
        # defects: amp 0 has more masked outliers than unmasked -> OUTLIERS fails
        doc, ver = {}, {}
        for i, a in enumerate(amps):
            st = {"DEFECT_PIXELS": 10.0, "OUTLIERS": 5.0 + (10 if i == 0 else 0), "UNMASKED_OUTLIERS": 8.0,
                  "STDEV": 1.0, "UNMASKED_STDEV": 1.5, "MIN": -5.0, "UNMASKED_MIN": -9.0, "MAX": 5.0,
                  "UNMASKED_MAX": 4.0 if i == 1 else 9.0, "MEDIAN": 0.0}
            doc[a] = st
            ver[a] = {"OUTLIERS": st["UNMASKED_OUTLIERS"] >= st["OUTLIERS"], "STDEV": st["UNMASKED_STDEV"] >= st["STDEV"],
                      "MIN": st["UNMASKED_MIN"] <= st["MIN"], "MAX": st["UNMASKED_MAX"] >= st["MAX"],
                      "PROB_TEST": True}
        _write_det(tmp_path, "Defects", "u/test/defects", det, {"AMP": doc, "VERIFY": {"AMP": ver}})
        # ptc (no exposure dimension): amp 2 gain 8 % off, amp 3 low turnoff, a00 per vendor
        doc, ver = {}, {}
        lo, hi = (-3.52e-6, -2.61e-6) if det == e2v else (-4.56e-6, 6.91e-7)
        for i, a in enumerate(amps):
            g0, n0 = CAM[det].amp(a).gain, CAM[det].amp(a).read_noise
            g = g0 * (1.08 if i == 2 else 1.01)
            st = {"PTC_GAIN": g, "AMP_GAIN": g0, "PTC_NOISE": n0 * 0.98, "AMP_NOISE": n0,
                  "PTC_TURNOFF": (50000.0 if i == 3 else 90000.0), "PTC_BFE_A00": -3.0e-6, "PTC_FIT_TYPE": "FULLCOV",
                  "PTC_RAW_MEANS": [1.0, 2.0]}
            doc[a] = st
            ver[a] = {"PTC_GAIN": abs(g - g0) / g0 * 100 < 5, "PTC_NOISE": True,
                      "PTC_TURNOFF": st["PTC_TURNOFF"] * g > 90000, "PTC_BFE_A00": lo < -3.0e-6 < hi}
        write_yaml(layout_path(tmp_path, "u/test/ptc", "verifyPtcDetStats", detector=det),
                   {"AMP": doc, "VERIFY": {"AMP": ver}})
        # gain from flat pairs: amp 4 ISR noise 10 % off
        doc, ver = {}, {}
        for i, a in enumerate(amps):
            g0, n0 = CAM[det].amp(a).gain, CAM[det].amp(a).read_noise
            st = {"GAIN_FROM_FLAT_PAIR": g0 * 1.03, "GAIN_CORRECTION_FACTOR": 0.99, "AMP_GAIN": g0,
                  "ISR_NOISE": n0 * (1.1 if i == 4 else 1.0), "AMP_NOISE": n0}
            doc[a] = st
            ver[a] = {"GAIN_FROM_FLAT_PAIR": abs(g0 * 1.03 * 0.99 - g0) / g0 * 100 < 5,
                      "ISR_NOISE": abs(st["ISR_NOISE"] - n0) / n0 * 100 < 5}
        _write_det(tmp_path, "Gain", "u/test/gain", det, {"AMP": doc, "VERIFY": {"AMP": ver}})
    df = load_metrics(tmp_path)
    assert df[df.calib_type == "ptc"].exposure.isna().all()
    res = evaluate(df)
    _agree(res)
    fails = res[res.passed.eq(False)].groupby(["calib_type", "test"]).detector_name.apply(sorted).to_dict()
    assert fails == {("defects", "OUTLIERS"): [itl, e2v], ("defects", "MAX"): [itl, e2v],
                     ("ptc", "PTC_GAIN"): [itl, e2v], ("ptc", "PTC_TURNOFF"): [itl, e2v],
                     ("gain", "ISR_NOISE"): [itl, e2v]}
    # PROB_TEST is not re-evaluated: cp_verify's flag is carried with passed <NA>
    prob = res[res.test == "PROB_TEST"]
    assert len(prob) == 32 and prob.passed.isna().all() and prob.cp_verify_passed.all()


def test_synthetic_verify_flags_agree(tmp_path):
    import cpmosaic.synth as synth
    m = synth.synthesize(tmp_path / "s", n_days=2, raw=False, processed=False, calibs=False, butler=False,
                         workers=1, detectors=["R22_S11", "R01_S00", "R10_S10", "R23_S11", "R30_S00"])
    df = load_metrics(m.verify_root)
    assert df.attrs["problems"] == []
    res = evaluate(df)
    _agree(res)
    failed = {(r.calib_type, r.detector_name) for r in res[res.passed.eq(False)].itertuples()}
    for a in m.anomalies:
        for what in a["fails"]:
            assert (what.split()[0], a["detector_name"]) in failed, a
    s = summary(df, res)
    assert s["agreement"] == 1.0 and s["cp_verify_success"] is False


def _ptc_and_bias_tree(tmp_path, *, with_ptc: bool):
    """A bias run whose flags cp_verify computed with a PTC read noise 10 % above nominal and
    a PTC gain 3 % below nominal (verifyBias's formulas), and, optionally, that PTC's
    verification (verifyPtcDetStats: PTC_GAIN, PTC_NOISE) in the same tree."""
    rng = np.random.default_rng(11)
    det = CAM["R22_S11"]
    run = "u/test/verifyBias"
    amp_doc, ver, rn_adu = {}, {}, {}
    ptc = {}
    for i, amp in enumerate(det.amplifiers):
        rn_ptc, g_ptc = amp.read_noise * 1.10, amp.gain * 0.97
        ptc[amp.name] = (g_ptc, rn_ptc)
        noise = rn_ptc * (1.03 if i < 8 else 0.93)  # all pass against the PTC; 8 fail against nominal
        st = {"MEAN": float(rng.normal(0, 0.05)), "NOISE": float(noise), "CR_NOISE": float(noise * 1.01)}
        adu = rn_ptc / g_ptc * (1.0 + 0.01 * (i % 3))  # overscan within 5 % with the PTC gain
        amp_doc[amp.name], rn_adu[amp.name] = st, float(adu)
        v = {"MEAN": abs(st["MEAN"]) < st["NOISE"], "NOISE": (st["NOISE"] - rn_ptc) / rn_ptc <= 0.05,
             "CR_NOISE": abs(st["NOISE"] - st["CR_NOISE"]) / st["CR_NOISE"] <= 0.05}
        v["SUCCESS"] = all(v.values())
        overscan = g_ptc * adu
        v["READ_NOISE_CONSISTENT"] = not ((overscan - rn_ptc) / rn_ptc > 0.05)
        ver[amp.name] = {k: bool(x) for k, x in v.items()}
    _write_det(tmp_path, "Bias", run, "R22_S11", {"AMP": amp_doc, "ISR": {"MJD": MJD},
                                                  "METADATA": {"READ_NOISE_ADU": rn_adu},
                                                  "VERIFY": {"AMP": ver}})
    if with_ptc:
        doc = {a: {"PTC_GAIN": g, "AMP_GAIN": det.amp(a).gain, "PTC_NOISE": n, "AMP_NOISE": det.amp(a).read_noise,
                   "PTC_TURNOFF": 100000.0} for a, (g, n) in ptc.items()}
        write_yaml(layout_path(tmp_path, "u/test/ptc", "verifyPtcDetStats", detector="R22_S11"), {"AMP": doc})
    return ptc


def test_noise_tests_use_the_ptc_when_the_tree_has_one(tmp_path):
    ptc = _ptc_and_bias_tree(tmp_path, with_ptc=True)
    res = evaluate(load_metrics(tmp_path))
    bias = res[(res.calib_type == "bias") & res.test.isin(["NOISE", "READ_NOISE_CONSISTENT"])]
    assert len(bias) == 32 and set(bias.reference) == {"ptc"}
    _agree(bias)
    assert (bias.disagreement == "").all()
    noise = bias[bias.test == "NOISE"].set_index("amp")
    df = load_metrics(tmp_path)
    for a, (g, rn) in ptc.items():
        measured = df[(df.calib_type == "bias") & (df.amp == a) & (df.metric == "NOISE")].value.iloc[0]
        assert noise.loc[a, "value"] == pytest.approx((measured - rn) / rn, rel=1e-12)


def test_noise_tests_without_ptc_use_nominal_and_say_why_they_disagree(tmp_path):
    _ptc_and_bias_tree(tmp_path, with_ptc=False)
    res = evaluate(load_metrics(tmp_path))
    noise = res[(res.calib_type == "bias") & (res.test == "NOISE")]
    assert set(noise.reference) == {"nominal"}
    # 8 amps measured 13 % above nominal (3 % above the PTC cp_verify used): they fail here only
    differ = noise[noise.passed != noise.cp_verify_passed]
    assert len(differ) == 8
    assert set(differ.disagreement) == {"nominal read noise: no PTC found, cp_verify used the PTC's"}
    assert (noise[noise.passed == noise.cp_verify_passed].disagreement == "").all()
    # a changed threshold is named as the reason instead
    loose = evaluate(load_metrics(tmp_path), Thresholds(noise_tolerance=0.2))
    ln = loose[(loose.calib_type == "bias") & (loose.test == "NOISE")]
    assert (ln.passed == ln.cp_verify_passed).all() and (ln.disagreement == "").all()
    strict = evaluate(load_metrics(tmp_path), Thresholds(noise_tolerance=0.0))
    sn = strict[(strict.calib_type == "bias") & (strict.test == "NOISE") & (strict.passed != strict.cp_verify_passed)]
    assert len(sn) and sn.disagreement.str.startswith("threshold changed: noise_tolerance 0.0").all()
    # "camera" ignores a PTC even where there is one
    _ptc_and_bias_tree(tmp_path / "p", with_ptc=True)
    cam = evaluate(load_metrics(tmp_path / "p"), Thresholds(read_noise="camera"))
    assert set(cam[(cam.calib_type == "bias") & (cam.test == "NOISE")].reference) == {"nominal"}


def test_missing_value_is_a_named_disagreement(tmp_path):
    """A cp_verify flag whose statistic the table lacks: 'value missing', never a pass."""
    det = CAM["R22_S11"]
    amp_doc = {a: {"MEAN": 0.1} for a in det.amp_names}  # NOISE missing: MEAN and NOISE untestable
    ver = {a: {"NOISE": False, "MEAN": True} for a in det.amp_names}
    _write_det(tmp_path, "Bias", "u/test/verifyBias", "R22_S11", {"AMP": amp_doc, "ISR": {"MJD": MJD},
                                                                  "VERIFY": {"AMP": ver}})
    res = evaluate(load_metrics(tmp_path))
    noise = res[res.test == "NOISE"]
    assert len(noise) == 16 and noise.passed.isna().all()
    assert set(noise.disagreement) == {"value missing"}


def _write_ptc_fits(path, ptc: dict, detector: int | None = 94):
    """A PTC dataset file as ip_isr's PhotonTransferCurveDataset.toTable writes it (the columns
    used here; NOISE in electrons) with the DETECTOR header of IsrCalib's metadata."""
    from astropy.table import Table

    t = Table({"AMPLIFIER_NAME": list(ptc), "PTC_FIT_TYPE": ["FULLCOVARIANCE"] * len(ptc),
               "GAIN": [g for g, _ in ptc.values()], "GAIN_ERR": [0.01] * len(ptc),
               "NOISE": [n for _, n in ptc.values()], "NOISE_ERR": [0.05] * len(ptc)})
    t.meta.update({"OBSTYPE": "PTC", "INSTRUME": "LSSTCam"})
    if detector is not None:
        t.meta["DETECTOR"] = detector
    path.parent.mkdir(parents=True, exist_ok=True)
    t.write(path, format="fits", overwrite=True)
    return path


def test_ptc_dataset_in_a_file_tree(tmp_path):
    from cpmosaic.metrics.ptc import find_ptc

    ptc = _ptc_and_bias_tree(tmp_path, with_ptc=False)
    _write_ptc_fits(tmp_path / "u/test/ptc/ptc/ptc_LSSTCam_R22_S11_u_test_ptc.fits", ptc, detector=None)
    df = load_metrics(tmp_path)
    table, where = find_ptc(tmp_path, df=df, camera="LSSTCam")
    assert "1 ptc dataset" in where and len(table) == 16
    got = table.set_index("amp")
    for a, (g, n) in ptc.items():
        assert (got.loc[a, "detector"], got.loc[a, "gain"], got.loc[a, "read_noise"]) == (94, g, n)
    res = evaluate(df, ptc=table)
    bias = res[(res.calib_type == "bias") & res.test.isin(["NOISE", "READ_NOISE_CONSISTENT"])]
    assert set(bias.reference) == {"ptc"}
    _agree(bias)
    # an unreadable PTC file is skipped with a warning naming it
    (tmp_path / "u/test/ptc/ptc/ptc_LSSTCam_R22_S12_u_test_ptc.fits").write_text("not fits")
    table2, _ = find_ptc(tmp_path, df=df, camera="LSSTCam")
    assert len(table2) == 16


@pytest.mark.butler
def test_ptc_dataset_in_a_butler_repo(tmp_path):
    pytest.importorskip("lsst.daf.butler")
    from lsst.daf.butler import Butler, DatasetRef, DatasetType, FileDataset

    from cpmosaic.metrics.ptc import find_ptc

    ptc = {a: (CAM["R22_S11"].amp(a).gain * 0.97, CAM["R22_S11"].amp(a).read_noise * 1.1)
           for a in CAM["R22_S11"].amp_names}
    src = _write_ptc_fits(tmp_path / "ptc.fits", ptc)
    root = tmp_path / "repo"
    Butler.makeRepo(str(root))
    butler = Butler.from_config(str(root), writeable=True)
    reg = butler.registry
    reg.insertDimensionData("instrument", {"name": "LSSTCam", "detector_max": 205, "visit_max": 2**40,
                                           "exposure_max": 2**40, "class_name": "lsst.obs.lsst.LsstCam"})
    reg.insertDimensionData("detector", {"instrument": "LSSTCam", "id": 94, "full_name": "R22_S11",
                                         "raft": "R22", "name_in_raft": "S11", "purpose": "SCIENCE"})
    # the real dataset type: storage class PhotonTransferCurveDataset; the file is ingested
    # with cpmosaic's FITS formatter (obs_base's FitsGenericFormatter is not installed here)
    dt = DatasetType("ptc", ("instrument", "detector"), "PhotonTransferCurveDataset", universe=butler.dimensions,
                     isCalibration=True)
    reg.registerDatasetType(dt)
    reg.registerRun("u/test/ptc")
    ref = DatasetRef(dt, {"instrument": "LSSTCam", "detector": 94}, run="u/test/ptc")
    butler.ingest(FileDataset(path=str(src), refs=[ref], formatter="cpmosaic.synth.butler.FitsImageFormatter"),
                  transfer="copy")
    table, where = find_ptc(root, ["u/test/ptc"])
    assert where.startswith("PTC gain and read noise of 16 amps from 1 ptc dataset")
    got = table.set_index("amp")
    for a, (g, n) in ptc.items():
        assert (got.loc[a, "detector"], got.loc[a, "gain"], got.loc[a, "read_noise"]) == (94, g, n)
    assert find_ptc(root, ["no/such/collection"])[0].empty


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "cpmosaic", *map(str, args)], capture_output=True, text=True)


def test_cli_failures_lists_every_disagreement_with_its_reason(tmp_path):
    import json

    _ptc_and_bias_tree(tmp_path, with_ptc=False)
    out = _cli("metrics", tmp_path, "--failures", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    differ = [r for r in rows if r["disagreement"]]
    assert {r["test"] for r in differ} == {"NOISE", "READ_NOISE_CONSISTENT"}
    assert {r["disagreement"] for r in differ} == {"nominal read noise: no PTC found, cp_verify used the PTC's"}
    assert all(r["reference"] == "nominal" for r in differ)
    assert "no PTC in SOURCE" in out.stderr  # the verdict lines go to stderr with --format json
    # with the PTC in the tree: nothing differs, and the output says where the PTC came from
    _ptc_and_bias_tree(tmp_path / "p", with_ptc=True)
    table = _cli("metrics", tmp_path / "p", "--failures")
    assert table.returncode == 0, table.stderr
    assert "PTC gain and read noise of 16 amps from the PTC verification" in table.stdout
    assert "differ from cp_verify" not in table.stdout


def test_not_measured_is_never_a_pass(tmp_path):
    """A zero overscan read noise gets no READ_NOISE_CONSISTENT verdict (cp_verify writes none:
    verifyBias tests only a truthy overscan read noise), and a NaN statistic is never counted as
    passing, not even where cp_verify's flag says it passed."""
    rng = np.random.default_rng(11)
    values = bias_values(rng, "R22_S11", EXPOSURES[0])
    st, _, v = values["C00"]
    v.pop("READ_NOISE_CONSISTENT")          # cp_verify: no flag for a zero overscan read noise
    values["C00"] = (st, 0.0, v)
    st, rn_adu, v = values["C01"]
    values["C01"] = (dict(st, NOISE=float("nan")), rn_adu, dict(v, NOISE=True, MEAN=True))  # a flag we cannot check
    _write_det(tmp_path, "Bias", RUN, "R22_S11", bias_det_doc(values))
    df = load_metrics(tmp_path)
    res = evaluate(df)
    key = res.amp + " " + res.test
    rnc = res[key == "C00 READ_NOISE_CONSISTENT"]
    assert rnc.empty or rnc.passed.isna().all()
    assert res[key == "C01 READ_NOISE_CONSISTENT"].passed.eq(True).all()   # others still judged
    # NOISE is NaN: NOISE, MEAN (|MEAN| < NOISE) and CR_NOISE cannot be judged; cp_verify's
    # "passed" flags on them are shown as not measured ("value missing"), never as passes
    c01 = res[key.isin(["C01 NOISE", "C01 MEAN", "C01 CR_NOISE"])]
    assert c01.passed.isna().all() and set(c01.disagreement) == {"value missing"}
    assert set(c01.test) <= {"NOISE", "MEAN", "CR_NOISE"} and {"MEAN", "CR_NOISE"} <= set(c01.test)
    assert not res[res.value.isna()].passed.eq(True).any()
    s = summary(df, res)
    assert s["n_not_measured"] == len(c01) + len(rnc)
    assert s["n_passed"] == int(res.passed.eq(True).sum())     # only our own measured passes
    assert s["n_passed"] + s["n_failures"] + s["n_not_measured"] == s["n_tests"]
    assert s["exposures"][0]["n_not_measured"] == s["n_not_measured"]


def test_exposure_wide_failure_label_and_undefined_note(tmp_path):
    """A failing flat EXP SCATTER is labelled 'EXP SCATTER' (not one more detector SCATTER), and a
    test whose inputs are 0 (a dead amp: CR_NOISE 0/0) fails with a note saying why."""
    run = "u/test/verifyFlat"
    for det, level in (("R22_S11", 20000.0), ("R22_S12", 10000.0)):
        amp_doc = {a: {"MEAN": level, "NOISE": float(0.9 * np.sqrt(level))} for a in CAM[det].amp_names}
        _write_det(tmp_path, "Flat", run, det, {"AMP": amp_doc, "DET": {"MEAN": level, "SCATTER": 1.0},
                                                "ISR": {"MJD": MJD}})
    write_yaml(layout_path(tmp_path, run, "verifyFlatExpStats", exposure=EXPOSURES[0]),
               {"EXP": {"SCATTER": 5000.0}, "VERIFY": {"EXP": {"SCATTER": False}}, "SUCCESS": False})
    df = load_metrics(tmp_path)
    per = summary(df)["exposures"]
    assert [e["failures"] for e in per] == [["EXP SCATTER"]]   # std/mean = 1/3 > 0.05
    zero = {a: {"MEAN": 0.0, "NOISE": 0.0, "CR_NOISE": 0.0} for a in CAM["R22_S11"].amp_names}
    _write_det(tmp_path / "b", "Bias", RUN, "R22_S11", {"AMP": zero, "ISR": {"MJD": MJD}})
    res = evaluate(load_metrics(tmp_path / "b"))
    cr = res[res.test == "CR_NOISE"]
    assert len(cr) == 16 and cr.passed.eq(False).all() and cr.value.isna().all()
    assert cr.note.str.startswith("undefined (0/0").all()
