"""The report opens in headless chromium, offline: the index and an interactive page render.

Skips cleanly when ``/usr/bin/chromium`` is absent.  The report directory is served on
127.0.0.1; chromium's network features are off, so a page that needed a CDN would log an
error or fail to build its plots.
"""

from __future__ import annotations

import re

import pytest

from browser import chromium, console_errors, have_chromium, serve

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="headless chromium not installed (/usr/bin/chromium)")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from cpmosaic.report import build_report
    from cpmosaic.synth import synthesize

    root = tmp_path_factory.mktemp("browser")
    m = synthesize(root / "data", detectors=["R22_S10", "R22_S11", "R22_S12", "R00_SW0"], n_days=1, raw=False,
                   processed=False, calibs=False, calib_types=("bias",), butler=False, progress=False)
    return build_report(m.verify_root, root / "report", metrics=["MEAN", "NOISE", "CR_NOISE"], progress=False)


def test_index_renders_offline(report, tmp_path):
    with serve(report.out_dir) as (base, requests):
        res = chromium(f"{base}/index.html", tmp_path / "profile")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "cp_verify: FAIL" in res.stdout or "cp_verify: PASS" in res.stdout
    assert len(re.findall(r"<img\b", res.stdout)) == len(report.figures)
    assert console_errors(res.stderr) == []
    # everything the page asked for was there, and it was all local
    assert requests and all(code in (200, 304) for path, code in requests if path != "/favicon.ico"), requests


def test_interactive_page_renders_offline(report, tmp_path):
    with serve(report.out_dir) as (base, requests):
        res = chromium(f"{base}/interactive/bias.html#NOISE", tmp_path / "profile")
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r'class="bk-Tabs', res.stdout), res.stdout[:2000]  # BokehJS built the document
    assert "document idle" in res.stderr
    assert console_errors(res.stderr) == []
    assert [p for p, _ in requests if p != "/favicon.ico"] == ["/interactive/bias.html"]
