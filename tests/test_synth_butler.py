"""cpmosaic.synth.butler: a real Butler repository holding every synthetic verify dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("lsst.daf.butler")
pq = pytest.importorskip("pyarrow.parquet")
fits = pytest.importorskip("astropy.io.fits")

from cpmosaic.synth import make_butler_repo, synthesize  # noqa: E402

pytestmark = pytest.mark.butler


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("synth_butler"), shrink=32, seed=5, n_days=2,
                      detectors=["R22_S11", "R22_S12", "R22_S10", "R04_SW0"], calib_types=("bias", "flat"),
                      raw=False, butler=True, workers=2)


def _data_id(m, f) -> dict:
    d = {"instrument": m.instrument}
    if f["exposure"] is not None:
        d["exposure"] = f["exposure"]
    if f["tier"] == "det":
        d["detector"] = f["detector"]
    if f.get("physical_filter") and f["exposure"] is None:  # run-level flats (CpVerifyRunMergeByFilter)
        d["physical_filter"] = f["physical_filter"]
    return d


def test_every_verify_file_is_in_the_butler(synth):
    from lsst.daf.butler import Butler

    assert synth.butler_root is not None and (synth.butler_root / "butler.yaml").is_file()
    butler = Butler.from_config(str(synth.butler_root))
    try:
        reg = butler.registry
        for f in synth.verify_files:
            got = butler.get(f["dataset_type"], _data_id(synth, f), collections=f["run"])
            if f["path"].suffix == ".yaml":
                assert got == yaml.safe_load(Path(f["path"]).read_text())
            else:
                want = pq.read_table(f["path"])
                assert got.colnames == want.column_names and len(got) == want.num_rows
                col = f"{f['calib_type'].upper()}_MEAN"
                a = np.ma.filled(np.asarray(got[col], dtype=float), np.nan)
                np.testing.assert_array_equal(a, want.column(col).to_numpy(zero_copy_only=False))
        runs = sorted({f["run"] for f in synth.verify_files})
        assert sorted(reg.getCollectionChain("u/cpv/verify")) == runs
        n = sum(1 for t in {f["dataset_type"] for f in synth.verify_files}
                for _ in reg.queryDatasets(t, collections="u/cpv/verify", findFirst=False))
        assert n == len(synth.verify_files)
        dt = reg.getDatasetType("verifyBiasDetStats")
        assert set(dt.dimensions.required) == {"instrument", "exposure", "detector"}
        assert dt.storageClass.name == "StructuredDataDict"
        assert reg.getDatasetType("verifyBiasResults").storageClass.name == "ArrowAstropy"
        # FACTS.md: run-level flats carry physical_filter, exposure-level flats exposure + physical_filter
        assert set(reg.getDatasetType("verifyFlatResults").dimensions.required) == {"instrument", "physical_filter"}
        assert set(reg.getDatasetType("verifyFlatExpResults").dimensions.names) >= {"instrument", "exposure",
                                                                                    "physical_filter"}
        # the real datastore (butler.put) names parquet files .parq and Stats .yaml
        stored = [p for p in synth.butler_root.rglob("verify*") if p.is_file()]
        assert stored and {p.suffix for p in stored} == {".parq", ".yaml"}
        assert all(p.suffix == ".parq" for p in stored if "Results" in p.name)
        det = next(iter(reg.queryDimensionRecords("detector", where="detector = 94", instrument="LSSTCam")))
        assert (det.full_name, det.raft, det.name_in_raft, det.purpose) == ("R22_S11", "R22", "S11", "SCIENCE")
        exp = next(iter(reg.queryDimensionRecords("exposure", instrument="LSSTCam",
                                                  where=f"exposure = {synth.exposures[0]['exposure']}")))
        assert exp.day_obs == synth.days[0] and exp.observation_type == synth.exposures[0]["calib_type"]
    finally:
        butler.close()


def test_calibration_images_are_ingested(synth):
    from lsst.daf.butler import Butler

    butler = Butler.from_config(str(synth.butler_root))
    try:
        for e in synth.images["calib"][:4] + synth.images["processed"][:2]:
            did = {"instrument": "LSSTCam", "detector": e["detector"]}
            name, coll = (e["calib_type"], e["run"]) if "run" in e else (
                "postISRCCD", f"u/cpv/processed/{e['calib_type']}")
            if name == "postISRCCD":
                did["exposure"] = e["exposure"]
            arr = butler.get(name, did, collections=coll)
            with fits.open(butler.getURI(name, did, collections=coll).ospath) as h, fits.open(e["path"]) as w:
                assert np.array_equal(h["IMAGE"].data, w["IMAGE"].data)
                np.testing.assert_array_equal(arr, w["IMAGE"].data)
        assert set(butler.registry.getCollectionChain("u/cpv/calib")) == set(synth.calib_runs.values())
    finally:
        butler.close()


def test_repo_from_a_bare_verify_tree_by_ingest(synth, tmp_path):
    from lsst.daf.butler import Butler

    root = make_butler_repo(tmp_path / "repo", synth.verify_root, camera=synth.load_camera(), mode="ingest")
    butler = Butler.from_config(str(root))
    try:
        for f in synth.verify_files:
            if f["tier"] == "run":
                got = butler.get(f["dataset_type"], _data_id(synth, f), collections=f["run"])
                if f["path"].suffix == ".yaml":
                    assert got == yaml.safe_load(Path(f["path"]).read_text())
                else:
                    assert len(got) == pq.read_table(f["path"]).num_rows
        n = sum(1 for t in {f["dataset_type"] for f in synth.verify_files}
                for _ in butler.registry.queryDatasets(t, collections="u/cpv/verify", findFirst=False))
        assert n == len(synth.verify_files)
    finally:
        butler.close()


def test_butler_and_tree_read_alike(synth):
    """The same tidy table from the Butler repository and from the tree, flat merge row included."""
    from cpmosaic.metrics import load_metrics

    tree = load_metrics(synth.verify_root, progress=False)
    repo = load_metrics(synth.butler_root, collections="u/cpv/verify", progress=False)
    assert tree.attrs["problems"] == [] and repo.attrs["problems"] == []
    keys = ["calib_type", "run", "exposure", "detector", "amp", "tier", "metric"]
    a = tree.set_index(keys).sort_index()
    b = repo.set_index(keys).sort_index()
    assert a.index.equals(b.index)
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    assert a["passed"].astype("object").equals(b["passed"].astype("object"))
    scat = repo[(repo.tier == "exposure") & (repo.metric == "SCATTER")]
    assert len(scat) == len({f["exposure"] for f in synth.verify_files if f["calib_type"] == "flat"
                             and f["exposure"] is not None})
    assert (scat.detector == -1).all() and scat.passed.eq(False).all()


def test_datastore_files_read_as_a_tree(synth):
    """The real datastore's own layout (filter folders, obs_id names, .parq) read as a plain tree."""
    from cpmosaic.metrics import load_metrics

    repo = load_metrics(synth.butler_root, collections="u/cpv/verify", progress=False)
    tree = load_metrics(synth.butler_root / "u", progress=False)  # below butler.yaml: plain files
    assert tree.attrs["problems"] == []
    tree = tree.assign(run="u/" + tree["run"].astype(str))
    keys = ["calib_type", "run", "exposure", "detector", "amp", "tier", "metric"]
    a = repo.set_index(keys).sort_index()
    b = tree.set_index(keys).sort_index()
    assert a.index.equals(b.index)
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    assert set(tree["day_obs"].dropna()) == set(synth.days)
