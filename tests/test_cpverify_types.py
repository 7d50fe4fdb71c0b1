"""Wrong types in cp_verify outputs are errors, never silent NaN; NaN is "not measured".

Each case spoils one file of an otherwise good bias run (built by the
test_metrics_ingest builders in the reference structures): the reader warns
with the file and the column (or YAML key), reads everything else, and the
CLI exits 3 (partial).  From a file tree and from a real Butler repository.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cpmosaic.metrics import load_metrics
from test_metrics_ingest import DETS, EXPOSURES, RUN, layout_path, make_bias_tree

BAD_DET, BAD_EXP = "R22_S12", EXPOSURES[1]


def _det_results(root):
    return layout_path(root, RUN, "verifyBiasDetResults", exposure=BAD_EXP, detector=BAD_DET, ext="parquet")


def _replace(table: pa.Table, name: str, values) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, pa.array(values))


def _results_case(kind):
    """(spoil the DetResults table, the column the warning must name)."""
    def strings(t):
        return _replace(t, "BIAS_NOISE", [f"{x:.3f}" for x in t.column("BIAS_NOISE").to_pylist()])

    def int_amp(t):
        return _replace(t, "amplifier", list(range(t.num_rows)))

    def frac_det(t):
        return _replace(t, "detector", [95.5] * t.num_rows)

    def str_exposure(t):
        return _replace(t, "exposure", [f"exp{x}" for x in t.column("exposure").to_pylist()])

    def empty(t):
        return t.slice(0, 0)

    def odd_amp(t):
        names = t.column("amplifier").to_pylist()
        return _replace(t, "amplifier", ["C99"] + names[1:])

    def verdict_values(t):
        return _replace(t, "BIAS_VERIFY_NOISE", [2.5] * t.num_rows)

    return {"strings": (strings, "BIAS_NOISE"), "int_amp": (int_amp, "amplifier"),
            "frac_det": (frac_det, "detector"), "str_exposure": (str_exposure, "exposure"),
            "empty": (empty, "empty Results table"), "odd_amp": (odd_amp, "C99"),
            "verdict_values": (verdict_values, "BIAS_VERIFY_NOISE")}[kind]


CASES = ["strings", "int_amp", "frac_det", "str_exposure", "empty", "odd_amp", "verdict_values"]


@pytest.mark.parametrize("kind", CASES)
def test_bad_results_column_warns_and_reads_the_rest(tmp_path, caplog, kind):
    make_bias_tree(tmp_path, stats=False, results=True)
    layout_path(tmp_path, RUN, "verifyBiasResults", ext="parquet").unlink()  # read the detector tables
    path = _det_results(tmp_path)
    spoil, named = _results_case(kind)
    pq.write_table(spoil(pq.read_table(path)), path)
    with caplog.at_level(logging.WARNING):
        df = load_metrics(tmp_path)
    mine = [p for p in df.attrs["problems"] if p["source"] == str(path)]
    assert mine and named in mine[0]["problem"], df.attrs["problems"]
    warned = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert warned and named in warned[0]
    # every other detector x exposure is read in full
    noise = df[(df.tier == "amp") & (df.metric == "NOISE")]
    others = noise[~((noise.detector_name == BAD_DET) & (noise.exposure == BAD_EXP))]
    assert len(others) == (len(EXPOSURES) * len(DETS) - 1) * 16
    assert np.isfinite(others.value).all()
    assert not (noise.value.isna() & noise.passed.eq(True)).any()


def test_yaml_value_not_a_number(tmp_path, caplog):
    make_bias_tree(tmp_path, stats=True, results=False)
    path = layout_path(tmp_path, RUN, "verifyBiasDetStats", exposure=BAD_EXP, detector=BAD_DET)
    doc = yaml.safe_load(path.read_text())
    doc["AMP"]["C10"]["NOISE"] = "six point two"
    doc["VERIFY"]["AMP"]["C11"]["MEAN"] = "yes"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with caplog.at_level(logging.WARNING):
        df = load_metrics(tmp_path)
    msgs = [p["problem"] for p in df.attrs["problems"] if p["source"] == str(path)]
    assert any("AMP.C10.NOISE" in m for m in msgs) and any("VERIFY.AMP.C11.MEAN" in m for m in msgs)
    assert "AMP.C10.NOISE" in caplog.text and str(path) in caplog.text
    row = df[(df.detector_name == BAD_DET) & (df.exposure == BAD_EXP) & (df.tier == "amp")]
    assert row[(row.amp == "C10") & (row.metric == "NOISE")].empty  # not a silent NaN
    assert len(row[row.metric == "NOISE"]) == 15  # the rest of the file is read


def test_nan_is_not_measured_and_never_passes(tmp_path):
    make_bias_tree(tmp_path, stats=False, results=True)
    layout_path(tmp_path, RUN, "verifyBiasResults", ext="parquet").unlink()
    path = _det_results(tmp_path)
    t = pq.read_table(path)
    noise = t.column("BIAS_NOISE").to_pylist()
    noise[0] = float("nan")
    t = _replace(t, "BIAS_NOISE", noise)
    t = _replace(t, "BIAS_VERIFY_NOISE", [True] * t.num_rows)  # a verdict cp_verify could not have earned
    pq.write_table(t, path)
    df = load_metrics(tmp_path)
    assert df.attrs["problems"] == []
    amp0 = t.column("amplifier")[0].as_py()
    r = df[(df.detector_name == BAD_DET) & (df.exposure == BAD_EXP) & (df.amp == amp0) & (df.metric == "NOISE")]
    assert len(r) == 1 and np.isnan(r.value.item())  # kept, as "not measured"
    assert r.passed.isna().item()  # not True
    assert str(df["passed"].dtype) == "boolean"


@pytest.mark.parametrize("command", ["metrics", "report"])
def test_cli_exit_3_on_bad_types(tmp_path, command):
    from cpmosaic.cli.main import main

    make_bias_tree(tmp_path / "src", stats=False, results=True)
    layout_path(tmp_path / "src", RUN, "verifyBiasResults", ext="parquet").unlink()
    path = _det_results(tmp_path / "src")
    pq.write_table(_results_case("int_amp")[0](pq.read_table(path)), path)
    args = [command, str(tmp_path / "src")]
    args += ["-o", str(tmp_path / "out.csv"), "--format", "csv"] if command == "metrics" else \
        ["-o", str(tmp_path / "rep"), "--no-interactive", "--no-progress"]
    assert main(args) == 3


@pytest.mark.butler
def test_butler_bad_types_are_problems(tmp_path, caplog):
    """The same checks when the Results table comes from a real Butler (an astropy Table)."""
    pytest.importorskip("lsst.daf.butler")
    from astropy.table import Table
    from lsst.daf.butler import Butler, DatasetType

    from test_butler_source import _register

    make_bias_tree(tmp_path / "tree", stats=False, results=True)
    good = pq.read_table(layout_path(tmp_path / "tree", RUN, "verifyBiasResults", ext="parquet"))
    root = tmp_path / "repo"
    Butler.makeRepo(str(root))
    butler = Butler.from_config(str(root), writeable=True)
    _register(butler)
    butler.registry.registerDatasetType(DatasetType("verifyBiasDetResults", ("instrument", "exposure", "detector"),
                                                    "ArrowAstropy", universe=butler.dimensions))
    from test_metrics_ingest import CAM
    for exp in EXPOSURES:
        for name in DETS:
            sel = good.filter(pa.compute.and_(pa.compute.equal(good.column("exposure"), exp),
                                              pa.compute.equal(good.column("detector"), CAM[name].id)))
            if (exp, name) == (BAD_EXP, BAD_DET):
                sel = _results_case("strings")[0](sel)
            butler.put(Table(sel.to_pydict()), "verifyBiasDetResults", run="u/test/verifyBias/a",
                       instrument="LSSTCam", exposure=exp, detector=CAM[name].id)
    butler.close()
    with caplog.at_level(logging.WARNING):
        df = load_metrics(root, collections="u/test/verifyBias/a")
    assert any("BIAS_NOISE" in p["problem"] and "text" in p["problem"] for p in df.attrs["problems"])
    bad = df[(df.detector_name == BAD_DET) & (df.exposure == BAD_EXP)]
    assert bad[bad.metric == "NOISE"].empty and len(bad[bad.metric == "MEAN"]) == 16
    assert len(df[(df.metric == "NOISE") & (df.tier == "amp")]) == (len(EXPOSURES) * len(DETS) - 1) * 16
