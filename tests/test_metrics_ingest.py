"""Ingestion of cp_verify outputs into the tidy metrics table.

The fixtures are built here, by hand, in the structures of the reference files
(FACTS.md, ../shared/reference/cp_verify): Stats YAML at detector, exposure and
run tier and Results parquet tables, laid out as ENGINEERING.md says.  Other
test modules import the builders.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cpmosaic.camera import get_camera
from cpmosaic.errors import InputError
from cpmosaic.metrics import COLUMNS, load_metrics

CAM = get_camera("LSSTCam")
RUN = "u/test/verifyBias"
DAY = 20250618
EXPOSURES = (2025061800123, 2025061800124)
DETS = ("R22_S10", "R22_S11", "R22_S12")
MJD = 60844.98765


# -- builders (imported by the other metrics test modules) ------------------------------------

def layout_path(root, run, dtype, *, exposure=None, detector=None, ext="yaml", instrument="LSSTCam") -> Path:
    """ENGINEERING.md: ROOT/<run>/<dtype>/<day_obs>/<dtype>_<inst>_<exposure>_<detector>_<run_>.<ext>."""
    parts = [dtype, instrument] + ([str(exposure)] if exposure is not None else [])
    parts += [detector] if detector else []
    name = "_".join(parts + [run.replace("/", "_")]) + f".{ext}"
    folder = Path(root, *run.split("/"), dtype)
    folder = folder / str(exposure // 100000) if exposure is not None else folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def bias_values(rng, det_name, exposure, *, noisy=()):
    """Per-amp bias statistics in electrons, READ_NOISE_ADU, and cp_verify's flags by its formulas."""
    det = CAM[det_name]
    out = {}
    for amp in det.amplifiers:
        rn = amp.read_noise
        noise = rn * rng.uniform(0.97, 1.03) * (1.2 if amp.name in noisy else 1.0)
        st = {"MEAN": float(rng.normal(0, 0.05)), "NOISE": float(noise),
              "CR_NOISE": float(noise * rng.uniform(1.0, 1.02)), "AMP_CORNER": float(rng.normal(0, 0.1))}
        rn_adu = float(rn / amp.gain * rng.uniform(0.97, 1.02))
        v = {"CR_NOISE": abs(st["NOISE"] - st["CR_NOISE"]) / st["CR_NOISE"] <= 0.05,
             "MEAN": abs(st["MEAN"]) < st["NOISE"], "NOISE": (st["NOISE"] - rn) / rn <= 0.05}
        v["SUCCESS"] = all(v.values())
        v["READ_NOISE_CONSISTENT"] = not ((rn_adu * amp.gain - rn) / rn > 0.05)
        out[amp.name] = (st, rn_adu, {k: bool(x) for k, x in v.items()})
    return out


def bias_det_doc(values, *, profile_len=64):
    """A verifyBiasDetStats document (with a large ISR section, as cp_verify writes)."""
    return {
        "AMP": {a: dict(sorted(st.items())) for a, (st, _, _) in values.items()},
        "CATALOG": {}, "DET": {},
        "ISR": {"MJD": MJD, "PROJECTION": {"AMP_HPROJECTION": {a: [0.1] * profile_len for a in values}},
                "CTI": None},
        "METADATA": {"READ_NOISE_ADU": {a: rn for a, (_, rn, _) in values.items()}},
        "SUCCESS": all(v["SUCCESS"] for _, _, v in values.values()),
        "VERIFY": {"AMP": {a: v for a, (_, _, v) in values.items()}},
    }


def bias_results_columns(values, exposure, det_name):
    """Results rows (dict of lists) of one detector, as the reference row shows."""
    cols: dict[str, list] = {}

    def add(k, v):
        cols.setdefault(k, []).append(v)

    for a, (st, rn, v) in values.items():
        add("instrument", "LSSTCam"); add("exposure", exposure); add("detector", CAM[det_name].id)
        add("mjd", MJD); add("amplifier", a)
        for k, x in st.items():
            add(f"BIAS_{k}", x)
        for k, x in v.items():
            add(f"BIAS_VERIFY_{k}", x)
        add("BIAS_READ_NOISE_ADU", rn); add("BIAS_BIAS_SHIFT_COUNT", 0); add("BIAS_BIAS_SHIFT_NOISE", rn)
        add("BIAS_BIAS_DIST_50.0_PCT", st["MEAN"])
        add("BIAS_SERIAL_PROF", [1.0, 2.0, float("nan")])  # NaN-padded array column
    return cols


def write_parquet(path, columns: list[dict]) -> Path:
    merged = {k: [x for c in columns for x in c[k]] for k in columns[0]}
    pq.write_table(pa.table(merged), path)
    return path


def write_yaml(path, doc) -> Path:
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def make_bias_tree(root, *, results=True, stats=True, noisy=(("R22_S11", "C07"),), seed=1):
    """A bias run: DetStats/DetResults per detector and exposure, ExpStats, run Stats and Results.

    Returns {(exposure, detector name): values}.
    """
    rng = np.random.default_rng(seed)
    all_values = {}
    run_cols = []
    exp_docs = {}
    for exp in EXPOSURES:
        exp_doc = {}
        for name in DETS:
            vals = bias_values(rng, name, exp, noisy=[a for d, a in noisy if d == name and exp == EXPOSURES[0]])
            all_values[(exp, name)] = vals
            doc = bias_det_doc(vals)
            cols = bias_results_columns(vals, exp, name)
            run_cols.append(cols)
            if stats:
                write_yaml(layout_path(root, RUN, "verifyBiasDetStats", exposure=exp, detector=name), doc)
            if results:
                write_parquet(layout_path(root, RUN, "verifyBiasDetResults", exposure=exp, detector=name,
                                          ext="parquet"), [cols])
            fails = [f"{a} {t}" for a, (_, _, v) in vals.items() for t, ok in v.items()
                     if not ok and t not in ("SUCCESS", "READ_NOISE_CONSISTENT")]
            exp_doc[name] = {"FAILURES": fails, "SUCCESS": False} if fails else {"SUCCESS": True}
        exp_doc["SUCCESS"] = all(d["SUCCESS"] for d in exp_doc.values())
        exp_docs[exp] = exp_doc
        if stats:
            write_yaml(layout_path(root, RUN, "verifyBiasExpStats", exposure=exp), exp_doc)
    run_doc: dict = {}
    for exp, d in exp_docs.items():
        fails = [f"{n} {f}" for n, sub in d.items() if isinstance(sub, dict) for f in sub.get("FAILURES", [])]
        run_doc[exp] = {"FAILURES": fails, "SUCCESS": False} if fails else {"SUCCESS": True}
    run_doc["SUCCESS"] = all(v["SUCCESS"] for v in run_doc.values())
    if stats:
        write_yaml(layout_path(root, RUN, "verifyBiasStats"), run_doc)
    if results:
        write_parquet(layout_path(root, RUN, "verifyBiasResults", ext="parquet"), run_cols)
    return all_values


# -- tests ------------------------------------------------------------------------------------

def test_reference_detector_stats_loads(reference_dir, tmp_path):
    src = reference_dir / "cp_verify" / "verifyBiasDetStats_R22_S11.yaml"
    df = load_metrics(src)
    assert list(df.columns) == list(COLUMNS)
    amp_stats = df[df.metric.isin(["MEAN", "NOISE", "CR_NOISE", "AMP_CORNER"])]
    assert len(amp_stats) == 16 * 4 and amp_stats.amp.nunique() == 16
    assert set(df.detector) == {94} and set(df.detector_name) == {"R22_S11"}
    doc = yaml.safe_load(src.read_text())
    c07 = df[(df.amp == "C07") & (df.metric == "NOISE")].iloc[0]
    assert c07.value == doc["AMP"]["C07"]["NOISE"]
    assert not c07.passed and doc["VERIFY"]["AMP"]["C07"]["NOISE"] is False
    assert df[df.metric == "READ_NOISE_ADU"].value.tolist() == [doc["METADATA"]["READ_NOISE_ADU"][a]
                                                               for a in sorted(doc["AMP"])]
    assert df.mjd.unique().tolist() == [doc["ISR"]["MJD"]]
    assert (df.tier == "amp").all() and df.exposure.isna().all()


def test_reference_exposure_and_run_tiers(reference_dir, tmp_path):
    ref = reference_dir / "cp_verify"
    shutil.copy(ref / "verifyBiasExpStats_2025061800123.yaml",
                layout_path(tmp_path, RUN, "verifyBiasExpStats", exposure=2025061800123))
    shutil.copy(ref / "verifyBiasStats.yaml", layout_path(tmp_path, RUN, "verifyBiasStats"))
    df = load_metrics(tmp_path)
    fail = df[df.passed.eq(False) & (df.amp != "")]
    assert fail[["detector_name", "amp", "metric"]].values.tolist() == [["R22_S11", "C07", "NOISE"]]
    assert fail.iloc[0].detector == 94 and math.isnan(fail.iloc[0].value)
    succ = df[(df.metric == "SUCCESS") & (df.tier == "exposure")].set_index("exposure")["passed"]
    assert succ.to_dict() == {2025061800123: False, 2025061800124: True}
    dets = df[(df.metric == "SUCCESS") & (df.tier == "detector")].set_index("detector_name")["passed"]
    assert dets.to_dict() == {"R22_S10": True, "R22_S11": False, "R22_S12": True}
    assert set(df.day_obs.dropna()) == {20250618} and set(df.run) == {RUN}


def test_results_preferred_and_columns(tmp_path):
    values = make_bias_tree(tmp_path)
    df = load_metrics(tmp_path)
    assert df.attrs["problems"] == []
    amp = df[df.tier == "amp"]
    # 2 exposures x 3 detectors x 16 amps x (4 stats + READ_NOISE_ADU + 3 scalar extras)
    assert len(amp) == 2 * 3 * 16 * 8
    assert "SERIAL_PROF" not in set(df.metric)  # array column skipped
    assert {"BIAS_SHIFT_COUNT", "BIAS_DIST_50.0_PCT"} <= set(df.metric)  # Results-only extras: Results won
    row = amp[(amp.exposure == EXPOSURES[0]) & (amp.detector_name == "R22_S11") & (amp.amp == "C07")]
    st, rn, v = values[(EXPOSURES[0], "R22_S11")]["C07"]
    got = row.set_index("metric")
    assert got.loc["NOISE", "value"] == st["NOISE"] and bool(got.loc["NOISE", "passed"]) == v["NOISE"]
    assert got.loc["READ_NOISE_ADU", "value"] == rn
    assert bool(got.loc["READ_NOISE_ADU", "passed"]) == v["READ_NOISE_CONSISTENT"]
    assert pd.isna(got.loc["AMP_CORNER", "passed"])
    assert (amp.day_obs == DAY).all() and (amp.mjd == MJD).all() and (amp.instrument == "LSSTCam").all()
    assert not df.duplicated(["run", "exposure", "detector", "amp", "tier", "metric"]).any()


def test_stats_only_equals_results_only(tmp_path):
    make_bias_tree(tmp_path / "a", results=False)
    make_bias_tree(tmp_path / "b", stats=False)
    a, b = load_metrics(tmp_path / "a"), load_metrics(tmp_path / "b")
    keys = ["exposure", "detector", "amp", "metric"]
    common = ["MEAN", "NOISE", "CR_NOISE", "AMP_CORNER", "READ_NOISE_ADU"]
    ja = a[a.metric.isin(common)].set_index(keys).sort_index()
    jb = b[b.metric.isin(common)].set_index(keys).sort_index()
    assert ja.index.equals(jb.index)
    assert (ja.value == jb.value).all() and (ja.passed == jb.passed).all()


def test_flat_detector_rows_and_exposure_scatter(tmp_path):
    run = "u/test/verifyFlat"
    exp = EXPOSURES[0]
    cols = {"instrument": [], "exposure": [], "detector": [], "physical_filter": [], "mjd": [], "amplifier": [],
            "FLAT_MEAN": [], "FLAT_NOISE": [], "FLAT_VERIFY_NOISE": [], "FLAT_DET_MEAN": [],
            "FLAT_DET_SCATTER": [], "FLAT_DET_VERIFY_SCATTER": []}
    for amp in CAM[94].amp_names + (None,):
        row = {"instrument": "LSSTCam", "exposure": exp, "detector": 94, "physical_filter": "empty", "mjd": MJD,
               "amplifier": amp, "FLAT_MEAN": 20000.0 if amp else None, "FLAT_NOISE": 130.0 if amp else None,
               "FLAT_VERIFY_NOISE": True if amp else None, "FLAT_DET_MEAN": None if amp else 20000.0,
               "FLAT_DET_SCATTER": None if amp else 150.0, "FLAT_DET_VERIFY_SCATTER": None if amp else True}
        for k in cols:
            cols[k].append(row[k])
    write_parquet(layout_path(tmp_path, run, "verifyFlatDetResults", exposure=exp, detector="R22_S11",
                              ext="parquet"), [cols])
    write_yaml(layout_path(tmp_path, run, "verifyFlatExpStats", exposure=exp),
               {"R22_S11": {"SUCCESS": True}, "EXP": {"SCATTER": 0.01},
                "VERIFY": {"EXP": {"SCATTER": True, "SUCCESS": True}}, "SUCCESS": True})
    df = load_metrics(tmp_path)
    det = df[df.tier == "detector"].set_index("metric")
    assert det.loc["MEAN", "value"] == 20000.0 and det.loc["SCATTER", "value"] == 150.0
    assert bool(det.loc["SCATTER", "passed"]) and (det.amp == "").all()
    assert len(df[(df.tier == "amp") & (df.metric == "MEAN")]) == 16
    e = df[(df.tier == "exposure") & (df.metric == "SCATTER")].iloc[0]
    assert e.detector == -1 and e.detector_name == "" and e.value == 0.01 and e.passed


def test_run_tier_mixed_keys_and_exposure_fallback(tmp_path):
    p = layout_path(tmp_path, RUN, "verifyBiasStats")
    p.write_text("2025061800123:\n  FAILURES:\n  - R22_S11 C07 NOISE\n  SUCCESS: false\n"
                 "'2025061800124':\n  SUCCESS: true\nSUCCESS: false\n")
    df = load_metrics(tmp_path)
    assert set(df.exposure) == set(EXPOSURES)
    f = df[df.amp == "C07"].iloc[0]
    assert (f.detector, f.metric, bool(f.passed), f.day_obs) == (94, "NOISE", False, 20250618)


def test_corrupt_inputs_reported_partial(tmp_path, caplog):
    make_bias_tree(tmp_path, results=False)
    bad_yaml = layout_path(tmp_path, RUN, "verifyBiasDetStats", exposure=EXPOSURES[1], detector="R22_S12")
    bad_yaml.write_text("AMP: {C00: [unclosed\n")
    bad_parquet = layout_path(tmp_path, "u/test/other", "verifyBiasResults", ext="parquet")
    bad_parquet.write_bytes(b"PAR1 this is not parquet")
    unknown = layout_path(tmp_path, RUN, "verifyBiasDetStats", exposure=EXPOSURES[1], detector="R99_S11")
    write_yaml(unknown, {"AMP": {"C00": {"MEAN": 1.0}}})
    with caplog.at_level(logging.WARNING):
        df = load_metrics(tmp_path)
    sources = {p["source"] for p in df.attrs["problems"]}
    assert {str(bad_yaml), str(bad_parquet), str(unknown)} <= sources
    for path in (bad_yaml, bad_parquet, unknown):
        assert str(path) in caplog.text
    # everything else was read
    assert set(df[df.tier == "amp"].detector_name) == set(DETS)
    assert len(df[(df.detector_name == "R22_S12") & (df.exposure == EXPOSURES[1]) & (df.tier == "amp")]) == 0


def test_nothing_readable_raises(tmp_path):
    with pytest.raises(InputError, match="no readable"):
        load_metrics(tmp_path)
    (tmp_path / "x.yaml").write_text("not: [valid")
    with pytest.raises(InputError, match=str(tmp_path)):
        load_metrics(tmp_path / "missing")


def test_calib_type_filter_and_camera(tmp_path):
    make_bias_tree(tmp_path, results=False)
    assert len(load_metrics(tmp_path, calib_types=["bias"], camera="LSSTCam"))
    with pytest.raises(InputError):
        load_metrics(tmp_path, calib_types=["flat"])


def test_cli_metrics_json_and_partial_exit(tmp_path, capsys):
    from cpmosaic.cli.main import main

    make_bias_tree(tmp_path, results=False)
    out = tmp_path / "m.json"
    assert main(["metrics", str(tmp_path), "--format", "json", "-o", str(out)]) == 0
    recs = json.loads(out.read_text())
    need = {"instrument", "calib_type", "run", "exposure", "day_obs", "mjd", "detector", "detector_name", "amp",
            "metric", "value", "passed"}
    assert need <= set(recs[0]) and {r["passed"] for r in recs} <= {True, False, None}
    layout_path(tmp_path, RUN, "verifyBiasStats").write_text("{{{ broken")
    assert main(["metrics", str(tmp_path), "--format", "csv", "-o", str(tmp_path / "m.csv")]) == 3
    assert main(["metrics", str(tmp_path), "--failures"]) == 3
    assert "C07" in capsys.readouterr().out
    assert main(["metrics", str(tmp_path), "--outliers", "--z", "3", "--format", "json"]) == 3


@pytest.mark.parametrize("column", ["amplifier", "exposure", "detector"])
def test_run_results_missing_identifying_column_is_a_problem(tmp_path, column):
    """A run-level Results table that cannot place its rows is reported, not misread."""
    make_bias_tree(tmp_path, stats=True, results=True)
    run_file = layout_path(tmp_path, RUN, "verifyBiasResults", ext="parquet")
    table = pq.read_table(run_file)
    pq.write_table(table.drop([column]), run_file)
    df = load_metrics(tmp_path)
    problems = [p for p in df.attrs["problems"] if p["source"] == str(run_file)]
    assert problems and column in problems[0]["problem"]
    # the per-detector products still give every amp of every exposure
    amps = df[(df.tier == "amp") & (df.metric == "NOISE")]
    assert len(amps) == len(EXPOSURES) * len(DETS) * 16


def test_defects_individual_named_and_evaluated(tmp_path):
    """verifyDefectsIndividual* products (CpVerifyDefectsTask) read as calib_type defects, with their tests."""
    from cpmosaic.metrics import evaluate

    rng = np.random.default_rng(9)
    exp, det = EXPOSURES[0], "R22_S11"
    cols: dict[str, list] = {}
    verify = {}
    for amp in CAM[det].amp_names:
        st = {"DEFECT_PIXELS": float(rng.integers(10, 50)), "OUTLIERS": float(rng.integers(0, 5)),
              "MEDIAN": 0.0, "STDEV": float(rng.uniform(4, 6)), "MIN": float(rng.uniform(-40, -30)),
              "MAX": float(rng.uniform(30, 40))}
        un = {"UNMASKED_OUTLIERS": st["OUTLIERS"] + (-1 if amp == "C03" else 3),  # C03 fails OUTLIERS
              "UNMASKED_STDEV": st["STDEV"] * 1.5, "UNMASKED_MIN": st["MIN"] - 100, "UNMASKED_MAX": st["MAX"] + 100}
        st.update(un)
        v = {"OUTLIERS": un["UNMASKED_OUTLIERS"] >= st["OUTLIERS"], "STDEV": un["UNMASKED_STDEV"] >= st["STDEV"],
             "MIN": un["UNMASKED_MIN"] <= st["MIN"], "MAX": un["UNMASKED_MAX"] >= st["MAX"]}
        v["SUCCESS"] = all(v.values())
        verify[amp] = {k: bool(x) for k, x in v.items()}
        row = {"instrument": "LSSTCam", "exposure": exp, "detector": CAM[det].id, "mjd": MJD, "amplifier": amp}
        row.update({f"DEFECTS_{k}": x for k, x in st.items()})
        row.update({"DEFECTS_N_HOT": 3.0, "DEFECTS_N_COLD": 1.0, "DEFECTS_N_BAD_COLUMNS": None})
        for k, x in row.items():
            cols.setdefault(k, []).append(x)
    det_row = {"instrument": "LSSTCam", "exposure": exp, "detector": CAM[det].id, "mjd": MJD, "amplifier": None,
               "DEFECTS_N_BAD_COLUMNS": 7.0}  # the detector row of repackStats
    for k in cols:
        cols[k].append(det_row.get(k))
    run = "u/test/verifyDefects"
    pq.write_table(pa.table(cols), layout_path(tmp_path, run, "verifyDefectsIndividualDetResults", exposure=exp,
                                               detector=det, ext="parq"))
    write_yaml(layout_path(tmp_path, run, "verifyDefectsIndividualDetStats", exposure=exp, detector=det),
               {"AMP": {}, "VERIFY": {"AMP": verify}, "SUCCESS": False})
    df = load_metrics(tmp_path)
    assert set(df.calib_type) == {"defects"} and df.attrs["problems"] == []
    nbc = df[(df.tier == "detector") & (df.metric == "N_BAD_COLUMNS")]
    assert nbc.value.tolist() == [7.0]
    outl = df[(df.tier == "amp") & (df.metric == "OUTLIERS")].set_index("amp")
    assert outl.loc["C03", "passed"] == False and outl.drop("C03").passed.all()  # noqa: E712
    assert outl.loc["C10", "value"] == cols["DEFECTS_OUTLIERS"][0]
    res = evaluate(df)
    d = res[(res.calib_type == "defects") & (res.test == "OUTLIERS")].set_index("amp")
    assert len(d) == 16 and d.loc["C03", "passed"] == False and d.drop("C03").passed.all()  # noqa: E712
    assert d.cp_verify_passed.astype(bool).equals(d.passed.astype(bool))


def test_stage_prefix_case_insensitive_and_verify_never_a_value(tmp_path):
    """``Bias_MEAN`` / ``bias_VERIFY_MEAN`` read as BIAS_MEAN and its verdict; no VERIFY column is a value."""
    cols = {"instrument": ["LSSTCam"] * 2, "exposure": [EXPOSURES[0]] * 2, "detector": [94, 94],
            "amplifier": ["C10", "C11"], "Bias_MEAN": [0.1, 0.2], "bias_VERIFY_MEAN": [True, False],
            "BIAS_VERIFY_NOISE": [1, 0]}  # an integer verdict column is still only a verdict
    pq.write_table(pa.table(cols), layout_path(tmp_path, RUN, "verifyBiasDetResults", exposure=EXPOSURES[0],
                                               detector="R22_S11", ext="parq"))
    df = load_metrics(tmp_path)
    assert df.attrs["problems"] == []
    mean = df[df.metric == "MEAN"].set_index("amp")
    assert mean.value.to_dict() == {"C10": 0.1, "C11": 0.2}
    assert mean.passed.tolist() == [True, False]
    noise = df[df.metric == "NOISE"]
    assert noise.value.isna().all() and noise.passed.tolist() == [True, False]
    assert not df.metric.str.contains("VERIFY").any()
