"""``run_demo`` and ``cpmosaic demo`` on a small subset of detectors: every step, the injected
drift and jump found, the report written."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpmosaic.demo import SMALL_DETECTORS


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from cpmosaic.demo import run_demo

    # the report draws one metric (its plots are tested in test_report.py); the pipeline is whole
    return run_demo(tmp_path_factory.mktemp("demo"), detectors=SMALL_DETECTORS, days=5, metrics=["MEAN"],
                    interactive=False, progress=False)


def test_demo_writes_the_report(demo):
    assert demo.index.is_file() and demo.index.name == "index.html"
    text = demo.index.read_text()
    assert "cp_verify: FAIL" in text and "Mosaics" in text and "History" in text
    kinds = {f.kind for f in demo.report.figures}
    assert {"heatmap", "histogram", "difference_heatmap", "candlestick", "mosaic", "image_difference"} <= kinds


def test_demo_finds_the_injected_drift_and_jump(demo):
    assert {t["kind"] for t in demo.injected} == {"drift", "jump"}
    assert {t["kind"] for t in demo.found} == {"drift", "jump"}
    recs = {r["calib_type"]: r for r in demo.report.recommendations}
    for t in demo.injected:
        assert recs[t["calib_type"]]["recommend_new"]


def _expected_findings(manifest) -> list[tuple[int, str, str]]:
    """(detector, amp, what) of every injected anomaly and trend, from the manifest only."""
    out = [(int(a["detector"]), a["amp"] or "", a["kind"]) for a in manifest.anomalies]
    out += [(int(t["detector"]), t["amp"], t["kind"]) for t in manifest.trends]
    return out


def test_demo_injected_anomalies_lead_the_findings(demo):
    """The issue's target: every injected anomaly (hot amp, noisy amp, dead detector, drift,
    jump) in the top ten findings, at most 50 rows, as the report's table and the summary say."""
    found = demo.report.outliers
    assert len(found) == demo.report.n_outliers <= 50
    expected = _expected_findings(demo.manifest)
    assert {k for _, _, k in expected} == {"hot_amp", "noisy_amp", "dead_detector", "drift", "jump"}
    top = found.head(10)
    for det, amp, kind in expected:
        hit = top[(top["detector"] == det) & (top["amp"] == amp)]
        assert len(hit) == 1, (kind, det, amp, found[["rank", "finding", "detector_name", "amp"]].head(15))
        if kind in ("drift", "jump"):
            assert kind in hit.iloc[0]["kind"].split("+")
        if kind == "dead_detector":
            assert hit.iloc[0]["finding"] == "dead or off detector"
    line = next(ln for ln in demo.summary_lines() if ln.startswith("outliers:"))
    assert line.startswith(f"outliers: {len(found)} findings (top: {found.iloc[0]['finding']} ")


def test_demo_mosaics_and_comparisons(demo):
    from cpmosaic.mosaic import open_mosaic

    assert set(demo.mosaics) == {"bias", "dark", "flat"}
    for path in demo.mosaics.values():
        store = open_mosaic(path)
        assert store.complete and len(store.present) == len(SMALL_DETECTORS)
    # calibration B differs from A exactly where the synthesizer put a difference
    for d in demo.manifest.calib_differences:
        diff = demo.image_comparisons[d["calib_type"]]
        changed = diff[diff["max_abs"] > 0]
        assert list(zip(changed["detector_name"], changed["amp"])) == [(d["detector_name"], d["amp"])]
    lines = demo.summary_lines()
    assert lines[0].startswith("cp_verify: FAIL") and any("found 2" in ln for ln in lines)


def test_cli_demo(tmp_path, capsys):
    from cpmosaic import progress
    from cpmosaic.cli.main import main

    out = tmp_path / "cli-demo"
    try:
        rc = main(["demo", "-o", str(out), "--detectors", "R22_S10,R22_S11", "R22_S12", "--days", "3",
                   "--metric", "NOISE", "--no-interactive", "--no-progress"])
    finally:
        progress.enable(None)
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    index = Path(lines[-1])
    assert index == (out / "report" / "index.html").resolve() and index.is_file()
    assert any(ln.startswith("cp_verify:") for ln in lines)
    assert main(["demo", "-o", str(out), "--days", "2"]) == 2
