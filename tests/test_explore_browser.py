"""``cpmosaic explore`` served and driven by headless chromium over the DevTools protocol.

A real server (the CLI in a subprocess) and a real browser: a click at an amp's position on
the heat map changes the amp panels (DOM) and the URL; a drag with the histogram's box
select outlines the amps in that range (the count shown equals a plain pandas count); a
link with an amp in its query opens on that amp.  The DevTools client is tornado's
websocket client (tornado comes with bokeh), so no browser driver is downloaded.
Skips cleanly without /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cpmosaic.camera import get_camera

from explore_fixtures import explore_demo, explore_metrics  # noqa: F401  (fixtures)

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless chromium not installed (/usr/bin/chromium)"),
]

# Deep DOM search (Panel renders into shadow roots) and bokeh plot lookup by title.
HELPERS = r"""
window.__cpm = {
  deep(sel, root) {
    root = root || document;
    const el = root.querySelector(sel);
    if (el) return el;
    for (const n of root.querySelectorAll('*')) {
      if (n.shadowRoot) { const f = this.deep(sel, n.shadowRoot); if (f) return f; }
    }
    return null;
  },
  plots() {
    if (!window.Bokeh || !Bokeh.index) return [];
    return [...Bokeh.index.query(v => v.frame !== undefined && v.model.title != null)];
  },
  titles() { return this.plots().map(v => v.model.title.text); },
  plot(re) { return this.plots().find(v => new RegExp(re).test(v.model.title.text)) || null; },
  point(re, x, y) {
    const v = this.plot(re);
    const r = v.canvas_view.el.getBoundingClientRect();
    return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)];
  },
};
true
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevTools:
    """A minimal Chrome DevTools protocol client on one page target."""

    def __init__(self, ws):
        self.ws, self.n = ws, 0

    @classmethod
    async def open(cls, port: int) -> "DevTools":
        from tornado.websocket import websocket_connect

        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        ws = await websocket_connect(page["webSocketDebuggerUrl"], max_message_size=256 * 2**20)
        return cls(ws)

    async def send(self, method: str, **params):
        self.n += 1
        me = self.n
        await self.ws.write_message(json.dumps({"id": me, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.read_message(), 60))
            if msg.get("id") == me:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Runtime.exceptionThrown":
                self.exceptions.append(msg["params"])

    exceptions: list = []

    async def eval(self, expr: str):
        r = await self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait_for(self, expr: str, timeout: float = 60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                v = await self.eval(expr)
            except RuntimeError:
                v = None
            if v:
                return v
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out waiting for {expr}")

    async def goto(self, url: str):
        await self.send("Page.navigate", url=url)
        await self.wait_for("window.Bokeh && Bokeh.index && document.readyState == 'complete'")
        await self.eval(HELPERS)
        # every plot drawn: heat map, mosaic, histogram
        await self.wait_for("__cpm.titles().length >= 3 && !!__cpm.deep('#cpm-selected-amp')")

    async def click(self, x: float, y: float):
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 8):
        await self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x0, y=y0)
        await self.send("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0, button="left", clickCount=1)
        for i in range(1, steps + 1):
            t = i / steps
            await self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x0 + t * (x1 - x0),
                            y=y0 + t * (y1 - y0), button="left", buttons=1)
            await asyncio.sleep(0.02)
        await self.send("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1, button="left", clickCount=1)


@pytest.fixture(scope="module")
def server(explore_demo, tmp_path_factory):
    """``cpmosaic explore`` on the demo night, in a subprocess; yields its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("explore-server") / "server.log"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    cmd = [sys.executable, "-m", "cpmosaic", "explore", str(explore_demo.manifest.verify_root),
           "--mosaic", str(explore_demo.mosaics["bias"]), "--history", str(explore_demo.history),
           "--port", str(port)]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        end = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > end:
                    pytest.fail(f"cpmosaic explore did not start:\n{log.read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def browser(tmp_path):
    """A headless chromium with remote debugging; yields its DevTools port."""
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--remote-debugging-port=0",
           "--window-size=1500,2200", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        end = time.monotonic() + 60
        while port is None and time.monotonic() < end:
            line = proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
            elif not line and proc.poll() is not None:
                break
        if port is None:
            pytest.fail("chromium did not start its DevTools server")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _run(coro):
    return asyncio.run(coro)


def test_click_on_an_amp_selects_it_and_the_url_carries_it(server, browser):
    det = get_camera("LSSTCam")["R22_S12"]
    x, y = det.box_center_mm(det.amp("C03").bbox)

    async def go():
        dt = await DevTools.open(browser)
        await dt.send("Runtime.enable")
        await dt.send("Emulation.setDeviceMetricsOverride", width=1500, height=2200, deviceScaleFactor=1,
                      mobile=False)
        await dt.goto(server)
        titles = await dt.eval("__cpm.titles()")
        heat = next((t for t in titles if t.startswith("heat map")), None)
        assert heat is not None, titles
        px, py = await dt.eval(f"__cpm.point({json.dumps(re.escape(heat))}, {x}, {y})")
        await dt.click(px, py)
        await dt.wait_for("(__cpm.deep('#cpm-selected-amp') || {dataset: {}}).dataset.amp == 'C03'", 60)
        heading = await dt.eval("__cpm.deep('#cpm-selected-amp').textContent")
        detector = await dt.eval("__cpm.deep('#cpm-selected-amp').dataset.detector")
        table = await dt.eval("(__cpm.deep('#cpm-amp-metrics') || {}).textContent || ''")
        await dt.wait_for("location.search.includes('amp=C03')", 30)
        search = await dt.eval("location.search")
        dt.ws.close()
        return heading, detector, table, search, dt.exceptions

    heading, detector, table, search, exceptions = _run(go())
    assert detector == "R22_S12" and heading.startswith("R22_S12 C03 NOISE")
    assert "NOISE" in table and "passed" in table
    assert "det=R22_S12" in search and "amp=C03" in search and "metric=NOISE" in search
    assert exceptions == []


def test_a_link_opens_on_its_amp(server, browser):
    async def go():
        dt = await DevTools.open(browser)
        await dt.send("Emulation.setDeviceMetricsOverride", width=1500, height=2200, deviceScaleFactor=1,
                      mobile=False)
        await dt.goto(server + "?calib=bias&day=2025-11-19&metric=MEAN&det=R22_S11&amp=C07")
        await dt.wait_for("(__cpm.deep('#cpm-selected-amp') || {dataset: {}}).dataset.amp == 'C07'", 60)
        heading = await dt.eval("__cpm.deep('#cpm-selected-amp').textContent")
        dt.ws.close()
        return heading

    assert _run(go()) == "R22_S11 C07 MEAN on 2025-11-19 (bias)"


def test_histogram_box_select_outlines_the_amps_in_range(server, browser, explore_metrics):
    async def go():
        dt = await DevTools.open(browser)
        await dt.send("Emulation.setDeviceMetricsOverride", width=1500, height=2200, deviceScaleFactor=1,
                      mobile=False)
        await dt.goto(server + "?calib=bias&day=2025-11-20&metric=NOISE")
        titles = await dt.eval("__cpm.titles()")
        hist = next(t for t in titles if t.startswith("values per amp"))
        # drag across the middle half of the histogram's x range, at mid height
        x_lo, x_hi = await dt.eval(f"(() => {{ const v = __cpm.plot({json.dumps(re.escape(hist))}); "
                                   "return [v.frame.x_range.start, v.frame.x_range.end]; })()")
        a, b = x_lo + 0.3 * (x_hi - x_lo), x_lo + 0.6 * (x_hi - x_lo)
        y_mid = await dt.eval(f"(() => {{ const v = __cpm.plot({json.dumps(re.escape(hist))}); "
                              "return (v.frame.y_range.start + v.frame.y_range.end) / 2; })()")
        p0 = await dt.eval(f"__cpm.point({json.dumps(re.escape(hist))}, {a}, {y_mid})")
        p1 = await dt.eval(f"__cpm.point({json.dumps(re.escape(hist))}, {b}, {y_mid})")
        await dt.drag(*p0, *p1)
        await dt.wait_for("(__cpm.deep('#cpm-highlight') || {dataset: {}}).dataset.lo", 60)
        data = await dt.eval("Object.assign({}, __cpm.deep('#cpm-highlight').dataset)")
        dt.ws.close()
        return a, b, data

    a, b, data = _run(go())
    lo, hi = float(data["lo"]), float(data["hi"])
    assert lo == pytest.approx(a, rel=0.05, abs=1e-3) and hi == pytest.approx(b, rel=0.05, abs=1e-3)
    df = explore_metrics
    sub = df[(df.calib_type == "bias") & (df.day_obs == 20251120) & (df.metric == "NOISE") & (df.amp != "")]
    med = sub.groupby(["detector_name", "amp"])["value"].median()
    assert int(data["n"]) == int(((med >= lo) & (med <= hi)).sum()) > 0
