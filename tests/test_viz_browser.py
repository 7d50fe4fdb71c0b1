"""Saved standalone HTML opens in headless chromium, offline, without console errors.

Skips cleanly when ``/usr/bin/chromium`` is absent.  The page is served from a temporary
directory by ``http.server`` on 127.0.0.1 (chromium's network features are switched off, so
any CDN request would fail and show up as a console error or a missing plot).
"""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless chromium not installed (/usr/bin/chromium)"),
]


@pytest.fixture
def served(tmp_path):
    """(directory, base URL, requested paths) of a local HTTP server for the test's files."""
    requested: list[str] = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _console_errors(stderr: str) -> list[str]:
    lines = [ln for ln in stderr.splitlines() if "CONSOLE" in ln]
    return [ln for ln in lines if re.search(r"Uncaught|Error|Failed to load", ln)]


def _table():
    from cpmosaic.camera import get_camera
    from cpmosaic.viz import amp_geometry

    geo = amp_geometry(get_camera("LSSTCam"))
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"instrument": "LSSTCam", "calib_type": "bias", "detector": geo["detector"],
                       "detector_name": geo["detector_name"], "amp": geo["amp"], "metric": "NOISE",
                       "value": rng.normal(6, 0.2, len(geo)), "passed": pd.array([True] * len(geo), "boolean")})
    df.loc[100, ["value", "passed"]] = [40.0, False]
    return df


def test_heatmap_html_renders_offline(served, tmp_path_factory):
    from cpmosaic.viz import focal_plane_heatmap, save_html

    root, base, requested = served
    save_html(focal_plane_heatmap(_table(), "NOISE", side_histogram=True), root / "heat.html")
    res = _chromium(f"{base}/heat.html", tmp_path_factory.mktemp("profile"), "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r'class="bk-(Figure|GridPlot|Column|Row)', res.stdout), res.stdout[:2000]
    assert "document idle" in res.stderr  # BokehJS finished rendering the document
    assert _console_errors(res.stderr) == []
    # the page is self-contained: nothing but itself was fetched (a favicon probe is chromium's)
    assert [p for p in requested if p != "/favicon.ico"] == ["/heat.html"]


def test_tables_html_sorts_offline(served, tmp_path_factory):
    from cpmosaic.viz import failures_table_html, save_html

    root, base, _ = served
    f = pd.DataFrame({"detector": [5, 94, 20], "amp": ["C00", "C10", "<i>C01</i>"], "test": "NOISE",
                      "value": [2.0, 10.0, 1.0], "threshold": 8.0, "passed": [True, False, True]})
    html = failures_table_html(f, only_failed=False)
    # click the "value" header once (ascending) after load, as a user would
    html += ("<script>window.addEventListener('load',()=>{const th=[...document.querySelectorAll('th')]"
             ".find(h=>h.textContent==='value');th.click();});</script>")
    save_html(html, root / "tables.html", title="failures")
    res = _chromium(f"{base}/tables.html", tmp_path_factory.mktemp("profile"), "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    values = re.findall(r'<td class="num" data-v="([^"]+)">[^<]*</td><td class="num" data-v="8.0"', res.stdout)
    assert [float(v) for v in values] == [1.0, 2.0, 10.0]
    assert 'aria-sort="ascending"' in res.stdout and "&lt;i&gt;C01&lt;/i&gt;" in res.stdout
    assert _console_errors(res.stderr) == []
