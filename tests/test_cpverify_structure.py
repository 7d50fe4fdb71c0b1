"""The synthetic cp_verify world against FACTS.md's "cp_verify as its code really writes it".

Each bullet of that section (parsed from ../shared/reference/FACTS.md) has one
check here, found by a key phrase; a bullet without a check fails
``test_every_fact_has_a_check``, so the synthetic outputs cannot drift from the
real structure again.  The checks read what ``cpmosaic synth`` wrote with
plain pyarrow / yaml (independent of cpmosaic's readers), then confirm that
cpmosaic's reader turns each structure into the right tidy rows.  The real
example files beside FACTS.md are read here too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cpmosaic.io.cpverify import EXPOSURE_WIDE, parse_dataset_type
from cpmosaic.io.cpverify_results import results_to_chunk
from cpmosaic.metrics import load_metrics
from cpmosaic.synth import synthesize

SECTION = "cp_verify as its code really writes it"
DETS = ["R22_S11", "R22_S12", "R10_S02", "R10_S01", "R00_SG0", "R04_SW0"]


def fact_bullets(facts_md: Path) -> list[str]:
    """The bullets of FACTS.md's section on cp_verify's real structure, continuation lines joined."""
    lines = facts_md.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and SECTION in line)
    bullets: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("## ") or (line.startswith("#") and not line.startswith("###")):
            break
        if line.startswith("### "):
            continue  # the heading's own continuation line
        if line.startswith("- "):
            bullets.append(line[2:].strip())
        elif line.startswith("  ") and bullets:
            bullets[-1] += " " + line.strip()
    return bullets


@pytest.fixture(scope="module")
def facts(reference_dir) -> list[str]:
    out = fact_bullets(reference_dir / "FACTS.md")
    assert out, f"no bullets under {SECTION!r} in FACTS.md"
    return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("structure"), shrink=32, seed=11, n_days=1, detectors=DETS,
                      calib_types=("bias", "dark", "flat"), raw=False, processed=False, calibs=False,
                      butler=False, workers=2, progress=False)


def _files(m, calib_type, tier, product):
    return [f for f in m.verify_files if f["calib_type"] == calib_type and f["tier"] == tier
            and f["dataset_type"].endswith(product)]


def _table(path):
    return pq.read_table(path).to_pandas()


# -- one check per fact -------------------------------------------------------------

def check_flat_merge_row(m, reference_dir):
    """'The flat exposure merge (CpVerifyFlatExpMergeTask) appends ONE extra row to the flat exposure
    and run Results tables: columns `flat_SCATTER` and `flat_VERIFY_SCATTER` ..., no amplifier, and
    `detector` set to the first input detector's id.  It is the exposure-level SCATTER ...'"""
    cam = m.load_camera()
    first = next(iter(cam)).id
    for tier in ("exp", "run"):
        for f in _files(m, "flat", tier, "Results"):
            df = _table(f["path"])
            assert {"flat_SCATTER", "flat_VERIFY_SCATTER"} <= set(df.columns)
            merge = df[df["flat_SCATTER"].notna()]
            assert len(merge) == df["exposure"].nunique()  # one per exposure
            assert merge["amplifier"].isna().all() and (merge["detector"] == first).all()
            assert merge["flat_VERIFY_SCATTER"].map(type).eq(bool).all()
    tidy = load_metrics(m.verify_root, calib_types=["flat"])
    scat = tidy[tidy["metric"] == "SCATTER"]
    exp_rows = scat[scat["tier"] == "exposure"]
    assert len(exp_rows) and (exp_rows["detector"] == EXPOSURE_WIDE).all() and (exp_rows["detector_name"] == "").all()
    # the merge row never becomes a metric of the first detector: its detector SCATTER is FLAT_DET_SCATTER
    det_first = scat[(scat["tier"] == "detector") & (scat["detector"] == first)]
    det_tab = _files(m, "flat", "det", "Results")
    want = {float(_table(f["path"]).dropna(subset=["FLAT_DET_SCATTER"])["FLAT_DET_SCATTER"].iloc[0])
            for f in det_tab if f["detector"] == first}
    assert set(det_first["value"]) == want
    assert not (tidy["metric"].str.contains("VERIFY")).any()


def check_absolute_exp_scatter(m, reference_dir):
    """'Flat EXP SCATTER is the absolute standard deviation of the detector means, tested against 0.05
    as it stands, so real flats fail it; the run-tier FAILURES for flats list only ["SCATTER"] ...
    VERIFY.EXP has no SUCCESS key.'"""
    for f in _files(m, "flat", "exp", "Stats"):
        doc = yaml.safe_load(Path(f["path"]).read_text())
        means = [d["DET"]["MEAN"] for d in (yaml.safe_load(Path(g["path"]).read_text())
                                            for g in _files(m, "flat", "det", "Stats")
                                            if g["exposure"] == f["exposure"])]
        assert doc["EXP"]["SCATTER"] == pytest.approx(float(np.std(means)), rel=1e-12)
        assert doc["VERIFY"] == {"EXP": {"SCATTER": False}}  # fails, and no SUCCESS key
        assert doc["SUCCESS"] is False
    for f in _files(m, "flat", "run", "Stats"):
        doc = yaml.safe_load(Path(f["path"]).read_text())
        for key, body in doc.items():
            if key != "SUCCESS":
                assert isinstance(key, int) and body == {"FAILURES": ["SCATTER"], "SUCCESS": False}
    tidy = load_metrics(m.verify_root, calib_types=["flat"])
    exp = tidy[(tidy["tier"] == "exposure") & (tidy["metric"] == "SCATTER")]
    assert exp["passed"].eq(False).all()


def check_dark_dist(m, reference_dir):
    """'Dark Results carry `DARK_DARK_DIST_*` (not BIAS_DIST or BIAS_SHIFT columns).'"""
    for f in _files(m, "dark", "det", "Results")[:2]:
        cols = pq.read_schema(f["path"]).names
        assert any(c.startswith("DARK_DARK_DIST_") for c in cols)
        assert not any("BIAS_DIST" in c or "BIAS_SHIFT" in c for c in cols)
    bias = pq.read_schema(_files(m, "bias", "det", "Results")[0]["path"]).names
    assert any(c.startswith("BIAS_BIAS_DIST_") for c in bias)


def check_flat_dimensions(m, reference_dir):
    """'Run-level flat dataset types have dimensions {instrument, physical_filter}; exposure-level
    flat types {instrument, exposure, physical_filter}.'"""
    from cpmosaic.synth.butler import dataset_dimensions

    assert set(dataset_dimensions("flat", "run")) == {"instrument", "physical_filter"}
    assert set(dataset_dimensions("flat", "exp")) == {"instrument", "exposure", "physical_filter"}
    assert set(dataset_dimensions("bias", "run")) == {"instrument"}
    for f in _files(m, "flat", "run", "Results") + _files(m, "flat", "run", "Stats"):
        assert f["physical_filter"] and Path(f["path"]).parent.name == f["physical_filter"]
    # the Results rows say the same filter (cp_verify's rowBase has physical_filter)
    df = _table(_files(m, "flat", "run", "Results")[0]["path"])
    assert set(df["physical_filter"].dropna()) == {_files(m, "flat", "run", "Results")[0]["physical_filter"]}


def check_verify_columns_and_names(m, reference_dir):
    """'Columns named `{PREFIX}_VERIFY_{TEST}` are verdicts (bool), never values.  Linearity outputs are
    `verifyLinearizer*` with `LINEARITY_*` columns; `verifyDefectsIndividual*` are defects outputs.'"""
    for f in m.verify_files:
        if f["dataset_type"].endswith("Results") and f["tier"] == "det":
            schema = pq.read_schema(f["path"])
            for field in schema:
                if "_VERIFY_" in field.name:
                    assert field.type == pa.bool_(), (f["path"], field.name)
    assert parse_dataset_type("verifyLinearizerDetResults").calib_type == "linearity"
    assert parse_dataset_type("verifyDefectsIndividualResults").calib_type == "defects"
    assert parse_dataset_type("verifyDefectsPostsFlatStats").calib_type == "defects"
    # a linearity table as CpVerifyLinearityTask.repackStats writes it: verdicts are boolean
    # LINEARITY_{test} columns (no VERIFY), the type is text, fits are lists; plus a detector row
    table = pa.table({
        "instrument": ["LSSTCam"] * 3, "detector": [94, 94, 94], "amplifier": ["C10", "C11", None],
        "LINEARITY_CENTERS": [[1.0, 2.0], [1.0, 2.0], None], "LINEARITY_COEFFS": [[0.1, 0.2], [0.1, 0.3], None],
        "LINEARITY_LINEARITY_TYPE": ["Spline", "Spline", None],
        "LINEARITY_FIT_PARAMS": [[0.0, 1.0], [0.0, 1.0], None],
        "LINEARITY_MAX_RESIDUAL_ERROR": [True, False, None], "LINEARITY_SUCCESS": [True, False, None]})
    problems: list = []
    chunk, _ = results_to_chunk(table, parse_dataset_type("verifyLinearizerDetResults"), source="lin.parq",
                                problems=problems)
    assert problems == []
    assert list(chunk["metric"]) == ["MAX_RESIDUAL_ERROR", "MAX_RESIDUAL_ERROR"]
    assert list(chunk["amp"]) == ["C10", "C11"] and list(chunk["passed"]) == [1.0, 0.0]
    assert np.isnan(chunk["value"]).all()  # a verdict is never a value


def check_datastore_names(m, reference_dir):
    """'The Butler's POSIX datastore names parquet files `.parq` and YAML `.yaml`, under
    `{run}/{datasetType}/{day_obs}/.../{datasetType}_{instrument}_..._{run}.parq`.'"""
    from lsst.daf.butler.formatters.parquet import ParquetFormatter

    assert ParquetFormatter.default_extension == ".parq"  # what the real datastore writes
    suffixes = {Path(f["path"]).suffix for f in m.verify_files}
    assert suffixes == {".parq", ".yaml"}
    for f in m.verify_files:
        rel = Path(f["path"]).relative_to(m.verify_root).as_posix()
        run_ = f["run"].replace("/", "_")
        assert rel.startswith(f"{f['run']}/{f['dataset_type']}/") and Path(rel).stem.endswith("_" + run_)
        assert Path(rel).name.startswith(f"{f['dataset_type']}_{m.instrument}_")
        if f["exposure"] is not None:
            assert f"/{f['day_obs']}/" in rel


def check_ptc_read_noise_not_stored(m, reference_dir):
    """'The NOISE and READ_NOISE_CONSISTENT tests use the read noise and gain of the PTC ..., which
    cp_verify does not store in its outputs.'"""
    cam = m.load_camera()
    for f in _files(m, "bias", "det", "Results")[:3]:
        df = _table(f["path"])
        assert not [c for c in df.columns if re.search(r"READ_NOISE(?!_ADU|_CONSISTENT)|GAIN|PTC", c)]
        # the NOISE verdict is the one the camera's per-amp read noise (our stand-in PTC) gives
        det = cam[int(df["detector"].iloc[0])]
        for r in df.itertuples():
            rn = det.amp(r.amplifier).read_noise
            assert r.BIAS_VERIFY_NOISE == bool((r.BIAS_NOISE - rn) / rn <= 0.05)
    doc = yaml.safe_load(Path(_files(m, "bias", "det", "Stats")[0]["path"]).read_text())
    assert "PTC" not in yaml.safe_dump(doc) and set(doc["METADATA"]) == {"READ_NOISE_ADU"}


def check_vendor_populations(m, reference_dir):
    """'LSSTCam has two science vendors with different read noise and gains (E2V and ITL), plus ITL
    guiders and wavefront half-chips: a single focal-plane median flags a whole vendor as outliers.'"""
    cam = m.load_camera()
    tidy = load_metrics(m.verify_root, calib_types=["bias"])
    noise = tidy[(tidy["tier"] == "amp") & (tidy["metric"] == "NOISE")]
    kind = noise["detector"].map(lambda d: cam[int(d)].physical_type)
    assert set(kind) == {"E2V", "ITL", "ITL_G", "ITL_WF"}
    # the camera's per-amp read noise (obs_lsst YAML) sets each population's noise
    want = noise.apply(lambda r: cam[int(r.detector)].amp(r.amp).read_noise, axis=1)
    ratio = (noise["value"] / want).to_numpy()
    dead = m.anomaly("dead_detector")
    alive = ~noise["detector"].eq(dead["detector"] if dead else -9).to_numpy()
    noisy = m.anomaly("noisy_amp")
    if noisy:
        alive &= ~(noise["detector"].eq(noisy["detector"]) & noise["amp"].eq(noisy["amp"])).to_numpy()
    assert np.all((ratio[alive] > 0.9) & (ratio[alive] < 1.1))
    med = noise[alive].groupby(kind[alive])["value"].median()
    assert abs(med["ITL"] - med["E2V"]) > 0.5  # e-: distinct populations
    gains = {t: np.median([a.gain for d in cam if d.physical_type == t for a in d.amplifiers]) for t in ("E2V", "ITL")}
    assert abs(gains["ITL"] - gains["E2V"]) > 0.05


def check_binned_products(m, reference_dir):
    """'The same pipelines write binned images: `verify{Bias,Dark,Flat}IsrExpBin8` / `Bin64` per
    detector, and focal-plane mosaics `verify{Bias,Dark,Flat}Residual8` / `Residual64`.'"""
    for t in ("Bias", "Dark", "Flat"):
        for name in (f"verify{t}IsrExpBin8", f"verify{t}IsrExpBin64", f"verify{t}Residual8", f"verify{t}Residual64"):
            assert parse_dataset_type(name) is None  # images, not metrics: never read as a table


CHECKS = {
    "flat exposure merge": check_flat_merge_row,
    "absolute standard deviation": check_absolute_exp_scatter,
    "DARK_DARK_DIST": check_dark_dist,
    "Run-level flat dataset types": check_flat_dimensions,
    "are verdicts (bool)": check_verify_columns_and_names,
    "POSIX datastore names parquet": check_datastore_names,
    "read noise and gain of the PTC": check_ptc_read_noise_not_stored,
    "two science vendors": check_vendor_populations,
    "binned images": check_binned_products,
}


def test_every_fact_has_a_check(facts):
    for bullet in facts:
        keys = [k for k in CHECKS if k in bullet]
        assert len(keys) == 1, f"FACTS.md bullet without exactly one check: {bullet[:90]!r} (matched {keys})"


@pytest.mark.parametrize("key", list(CHECKS))
def test_fact(key, facts, synth, reference_dir):
    bullet = next((b for b in facts if key in b), None)
    assert bullet is not None, f"FACTS.md no longer says {key!r}: update the check"
    if key == "POSIX datastore names parquet":
        pytest.importorskip("lsst.daf.butler")
    CHECKS[key](synth, reference_dir)


# -- the real example files ---------------------------------------------------------

def test_reference_results_row_reads_exactly(reference_dir, tmp_path):
    """verifyBiasDetResults_row.json: every scalar column is a value, every VERIFY column only a verdict."""
    row = json.loads((reference_dir / "cp_verify" / "verifyBiasDetResults_row.json").read_text())
    scalars = {k: [v] for k, v in row.items() if not k.endswith("_PROF")}
    run = tmp_path / "u/ref/run/verifyBiasDetResults/20250618"
    run.mkdir(parents=True)
    pq.write_table(pa.table(scalars), run / "verifyBiasDetResults_LSSTCam_2025061800123_R22_S11_u_ref_run.parq")
    df = load_metrics(tmp_path)
    assert df.attrs["problems"] == []
    got = df.set_index("metric")
    for k, v in row.items():
        if k.startswith("BIAS_") and not k.endswith("_PROF") and "_VERIFY_" not in k:
            assert got.loc[k[5:], "value"] == v, k
    for test in ("MEAN", "NOISE", "CR_NOISE"):
        assert bool(got.loc[test, "passed"]) is row[f"BIAS_VERIFY_{test}"]
    assert bool(got.loc["READ_NOISE_ADU", "passed"]) is row["BIAS_VERIFY_READ_NOISE_CONSISTENT"]
    assert not df["metric"].str.contains("VERIFY|SUCCESS").any()
    assert set(df["detector_name"]) == {"R22_S11"} and set(df["exposure"]) == {row["exposure"]}
    assert set(df["day_obs"]) == {20250618}


def test_reference_stats_files_read(reference_dir, tmp_path):
    """The three reference Stats files, laid out as the Butler does, read into consistent rows."""
    ref = reference_dir / "cp_verify"
    run = "u/ref/run"
    layout = {
        "verifyBiasDetStats_R22_S11.yaml": f"{run}/verifyBiasDetStats/20250618/"
                                           "verifyBiasDetStats_LSSTCam_2025061800123_R22_S11_u_ref_run.yaml",
        "verifyBiasExpStats_2025061800123.yaml": f"{run}/verifyBiasExpStats/20250618/"
                                                 "verifyBiasExpStats_LSSTCam_2025061800123_u_ref_run.yaml",
        "verifyBiasStats.yaml": f"{run}/verifyBiasStats/verifyBiasStats_LSSTCam_u_ref_run.yaml",
    }
    for src, dst in layout.items():
        (tmp_path / dst).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / dst).write_text((ref / src).read_text())
    df = load_metrics(tmp_path)
    assert df.attrs["problems"] == []
    doc = yaml.safe_load((ref / "verifyBiasDetStats_R22_S11.yaml").read_text())
    amp = df[(df["tier"] == "amp") & (df["exposure"] == 2025061800123) & (df["detector_name"] == "R22_S11")]
    for a, stats in doc["AMP"].items():
        for stat, v in stats.items():
            assert amp[(amp["amp"] == a) & (amp["metric"] == stat)]["value"].item() == v
    fails = df[df["passed"].eq(False)]
    assert ("R22_S11", "C07", "NOISE") in set(zip(fails["detector_name"], fails["amp"], fails["metric"]))


def test_exposure_scatter_is_not_on_the_heat_map(synth, caplog):
    """The merge row is no detector's value: the SCATTER heat map shows FLAT_DET_SCATTER per detector only."""
    import logging

    from cpmosaic.report.plots import plot_items
    from cpmosaic.viz.heatmap import amp_values

    tidy = load_metrics(synth.verify_root, calib_types=["flat"])
    items = {(i.tier, i.metric) for i in plot_items(tidy)}
    assert ("detector", "SCATTER") in items and not any(t == "exposure" for t, _ in items)
    with caplog.at_level(logging.WARNING):
        vals = amp_values(tidy, "SCATTER", camera=synth.load_camera(), calib_type="flat")
    assert "not in camera" not in caplog.text
    want = {}
    for f in _files(synth, "flat", "det", "Results"):
        df = _table(f["path"])
        want[int(df["detector"].iloc[0])] = float(df["FLAT_DET_SCATTER"].dropna().median())
    got = vals.groupby("detector")["value"].first()
    assert {int(d): float(v) for d, v in got.items()} == pytest.approx(want, rel=1e-12)
