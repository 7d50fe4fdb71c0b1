"""Reading cp_verify outputs from a real Butler repository that the test builds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpmosaic.errors import InputError
from cpmosaic.metrics import evaluate, load_metrics
from test_metrics_ingest import CAM, DETS, EXPOSURES, bias_det_doc, bias_results_columns, bias_values

daf_butler = pytest.importorskip("lsst.daf.butler")
pytestmark = pytest.mark.butler

RUN_A, RUN_B = "u/test/verifyBias/a", "u/test/verifyBias/b"


def _register(butler):
    from lsst.daf.butler import DatasetType

    reg = butler.registry
    reg.insertDimensionData("instrument", {"name": "LSSTCam", "detector_max": 205, "visit_max": 2**40,
                                           "exposure_max": 2**40, "class_name": "lsst.obs.lsst.LsstCam"})
    reg.insertDimensionData("physical_filter", {"instrument": "LSSTCam", "name": "empty", "band": "white"})
    reg.insertDimensionData("day_obs", {"instrument": "LSSTCam", "id": 20250618})
    for name in DETS:
        det = CAM[name]
        reg.insertDimensionData("detector", {"instrument": "LSSTCam", "id": det.id, "full_name": name,
                                             "raft": det.raft, "name_in_raft": det.sensor, "purpose": "SCIENCE"})
    for exp in EXPOSURES:
        reg.insertDimensionData("group", {"instrument": "LSSTCam", "name": str(exp)})
        reg.insertDimensionData("exposure", {"instrument": "LSSTCam", "id": exp, "day_obs": 20250618,
                                             "group": str(exp), "physical_filter": "empty",
                                             "obs_id": f"MC_O_20250618_{exp % 100000:06d}", "seq_num": exp % 100000,
                                             "observation_type": "bias"})
    dims = {"verifyBiasDetStats": ("instrument", "exposure", "detector"), "verifyBiasExpStats": ("instrument", "exposure"),
            "verifyBiasStats": ("instrument",)}
    for name, d in dims.items():
        reg.registerDatasetType(DatasetType(name, d, "StructuredDataDict", universe=butler.dimensions))
    reg.registerDatasetType(DatasetType("verifyBiasResults", ("instrument",), "ArrowAstropy",
                                        universe=butler.dimensions))
    for run in (RUN_A, RUN_B):
        reg.registerRun(run)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Two RUN collections: A with Stats at every tier, B with a run-level Results table only."""
    from astropy.table import Table
    from lsst.daf.butler import Butler

    root = tmp_path_factory.mktemp("butler") / "repo"
    Butler.makeRepo(str(root))
    butler = Butler.from_config(str(root), writeable=True)
    _register(butler)
    rng = np.random.default_rng(5)
    cols = []
    for exp in EXPOSURES:
        exp_doc = {}
        for name in DETS:
            vals = bias_values(rng, name, exp, noisy=["C07"] if (name, exp) == ("R22_S11", EXPOSURES[0]) else [])
            butler.put(bias_det_doc(vals), "verifyBiasDetStats", run=RUN_A, instrument="LSSTCam", exposure=exp,
                       detector=CAM[name].id)
            cols.append(bias_results_columns(vals, exp, name))
            ok = all(v["SUCCESS"] for _, _, v in vals.values())
            exp_doc[name] = {"SUCCESS": True} if ok else {"FAILURES": ["C07 NOISE"], "SUCCESS": False}
        exp_doc["SUCCESS"] = all(d["SUCCESS"] for d in exp_doc.values())
        butler.put(exp_doc, "verifyBiasExpStats", run=RUN_A, instrument="LSSTCam", exposure=exp)
    butler.put({EXPOSURES[0]: {"FAILURES": ["R22_S11 C07 NOISE"], "SUCCESS": False},
                EXPOSURES[1]: {"SUCCESS": True}, "SUCCESS": False}, "verifyBiasStats", run=RUN_A, instrument="LSSTCam")
    merged = {k: [x for c in cols for x in c[k]] for k in cols[0]}
    merged["BIAS_SERIAL_PROF"] = np.array(merged["BIAS_SERIAL_PROF"])  # a 2-D (array) column
    butler.put(Table(merged), "verifyBiasResults", run=RUN_B, instrument="LSSTCam")
    return root


def test_butler_stats_collection(repo):
    df = load_metrics(repo, collections=RUN_A)
    assert df.attrs["problems"] == [] and set(df.run) == {RUN_A}
    amp = df[df.tier == "amp"]
    assert len(amp[amp.metric == "NOISE"]) == len(EXPOSURES) * len(DETS) * 16
    assert set(amp.detector_name) == set(DETS) and (amp.day_obs == 20250618).all()
    res = evaluate(df)
    both = res.passed.notna() & res.cp_verify_passed.notna()
    assert (res[both].passed == res[both].cp_verify_passed).all()
    assert res[res.passed.eq(False)][["exposure", "detector_name", "amp", "test"]].values.tolist() == [
        [EXPOSURES[0], "R22_S11", "C07", "NOISE"]]
    assert set(df[(df.tier == "exposure") & (df.metric == "SUCCESS")].passed) == {True, False}


def test_butler_results_equal_stats(repo):
    a = load_metrics(repo, collections=RUN_A)
    b = load_metrics(repo, collections=[RUN_B])
    assert "SERIAL_PROF" not in set(b.metric)
    keys = ["exposure", "detector", "amp", "metric"]
    ja = a[a.tier == "amp"].set_index(keys).sort_index()
    jb = b[b.metric.isin(set(ja.index.get_level_values("metric")))].set_index(keys).sort_index()
    assert ja.index.equals(jb.index) and (ja.value == jb.value).all()
    both = load_metrics(repo, collections=[RUN_A, RUN_B])
    assert set(both.run) == {RUN_A, RUN_B}


def test_butler_directory_layout_matches(repo, tmp_path):
    """The repository's POSIX datastore is itself a directory tree the reader understands."""
    a = load_metrics(repo, collections=RUN_A)
    tree = load_metrics(repo / "u")  # below butler.yaml: read as plain files
    assert set(tree.run) == {"test/verifyBias/a", "test/verifyBias/b"}
    ja = a[a.tier == "amp"].set_index(["exposure", "detector", "amp", "metric"]).value.sort_index()
    jt = tree[(tree.run == "test/verifyBias/a") & (tree.tier == "amp")]
    assert (jt.set_index(["exposure", "detector", "amp", "metric"]).value.sort_index() == ja).all()


def test_butler_missing_collections(repo, caplog):
    with pytest.raises(InputError, match="nope"):
        load_metrics(repo, collections="nope")
    df = load_metrics(repo, collections=[RUN_A, "also/nope"])
    assert df.attrs["problems"] == [{"source": f"{repo}[also/nope]", "problem": "collection 'also/nope' does not exist"}]
    assert "also/nope" in caplog.text
    with pytest.raises(InputError, match="collection") as err:
        load_metrics(repo)
    # the error names the collections the repository holds, so a new user can pick one
    assert RUN_A in str(err.value) and RUN_B in str(err.value)


def test_synth_butler_repo(tmp_path):
    import cpmosaic.synth as synth
    m = synth.synthesize(tmp_path / "s", n_days=1, raw=False, processed=False, calibs=True, butler=True,
                         workers=1, detectors=["R22_S11", "R01_S00", "R10_S10"], calib_types=("bias", "flat"))
    if m.butler_root is None:
        pytest.skip("synth wrote no Butler repository")
    colls = [r for runs in m.runs.values() for r in runs.values()]
    df = load_metrics(m.butler_root, collections=colls)
    chained = load_metrics(m.butler_root, collections="u/cpv/verify")  # the CHAINED collection over the runs
    assert set(chained.run) == set(colls) and len(chained) == len(df)
    tree = load_metrics(m.verify_root)
    assert df.attrs["problems"] == []
    cols = ["calib_type", "run", "exposure", "detector", "amp", "tier", "metric"]
    a = df.set_index(cols).value.sort_index()
    b = tree.set_index(cols).value.sort_index()
    common = a.index.intersection(b.index)
    assert len(common) > 0.9 * len(b)
    va, vb = a[common], b[common]
    assert ((va == vb) | (va.isna() & vb.isna())).all()
    res = evaluate(df)
    both = res.passed.notna() & res.cp_verify_passed.notna()
    assert (res[both].passed == res[both].cp_verify_passed).all()

    # image comparison of the two calibration runs, from the Butler and from the files
    from cpmosaic.camera import get_camera
    from cpmosaic.metrics import compare_images

    cam = get_camera(m.camera_file)
    via_butler = compare_images(m.butler_root, m.butler_root, collection_a=m.calib_runs["A"],
                                collection_b=m.calib_runs["B"], dataset_type="bias", camera=cam)
    dirs = {}
    for e in m.images["calib"]:
        if e["calib_type"] == "bias":
            dirs.setdefault(e["label"], set()).add(str(Path(e["path"]).parent))
    via_files = compare_images(dirs["A"].pop(), dirs["B"].pop(), camera=cam)
    assert len(via_butler) == 3 * 16 and via_butler.attrs["problems"] == []
    pd.testing.assert_frame_equal(via_butler.reset_index(drop=True), via_files.reset_index(drop=True))


def test_cli_metrics_butler(repo, tmp_path):
    from cpmosaic.cli.main import main

    out = tmp_path / "m.csv"
    assert main(["metrics", str(repo), "--collection", RUN_A, "--collection", RUN_B, "-o", str(out),
                 "--format", "csv"]) == 0
    assert set(pd.read_csv(out).run) == {RUN_A, RUN_B}
    assert main(["metrics", str(repo), "--collection", "nope"]) == 1
    assert main(["metrics", str(repo), "--collection", RUN_A, "--collection", "nope", "-o", str(out)]) == 3
    assert main(["compare", str(repo), "--collection-a", RUN_A, "--collection-b", RUN_B, "-o",
                 str(tmp_path / "c")]) == 0
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["metrics"]["n_compared"] > 0 and summary["metrics"]["max_abs_diff"] == 0.0


def test_problem_source_names_the_filter_of_a_run_level_flat():
    """A run-level flat dataset is keyed by filter (its data id has no exposure or detector):
    the problem's source says which one."""
    from cpmosaic.io.butler import _fmt_id

    assert _fmt_id({"instrument": "LSSTCam", "physical_filter": "r_57", "band": "r"}) == \
        "{instrument: LSSTCam, physical_filter: r_57}"
    assert _fmt_id({"instrument": "LSSTCam", "exposure": 7, "detector": 94}) == \
        "{instrument: LSSTCam, exposure: 7, detector: 94}"
