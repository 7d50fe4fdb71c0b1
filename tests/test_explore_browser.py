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
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cpmosaic.camera import get_camera

from explore_fixtures import CHROMIUM, DevTools


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


@contextlib.contextmanager
def _cpmosaic_process(args: list[str], urls: list[str], log: Path):
    """``python -m cpmosaic *args`` in a subprocess, once every one of ``urls`` answers; yields the process."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "cpmosaic", *args], stdout=fh, stderr=subprocess.STDOUT,
                                env=env)
    try:
        end = time.monotonic() + 180
        for url in urls:
            while True:
                try:
                    urllib.request.urlopen(url, timeout=5)
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > end:
                        pytest.fail(f"cpmosaic {args[0]} did not start:\n{log.read_text()}")
                    time.sleep(0.5)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(explore_demo, tmp_path_factory):
    """``cpmosaic explore`` on the demo night, in a subprocess; yields its base URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    args = ["explore", str(explore_demo.manifest.verify_root), "--mosaic", str(explore_demo.mosaics["bias"]),
            "--history", str(explore_demo.history), "--port", str(port)]
    with _cpmosaic_process(args, [url], tmp_path_factory.mktemp("explore-server") / "server.log"):
        yield url


async def open_app(dt: DevTools, url: str) -> None:
    """Load the app and wait until every plot is drawn (heat map, mosaic, histogram)."""
    await dt.send("Emulation.setDeviceMetricsOverride", width=1500, height=2200, deviceScaleFactor=1, mobile=False)
    await dt.goto(url)
    await dt.wait_for("!!(window.Bokeh && Bokeh.index)")
    await dt.eval(HELPERS)
    await dt.wait_for("__cpm.titles().length >= 3 && !!__cpm.deep('#cpm-selected-amp')")


def _run(coro):
    return asyncio.run(coro)


def test_click_on_an_amp_selects_it_and_the_url_carries_it(server, browser):
    det = get_camera("LSSTCam")["R22_S12"]
    x, y = det.box_center_mm(det.amp("C03").bbox)

    async def go():
        dt = await DevTools.open(browser)
        await dt.send("Runtime.enable")
        await open_app(dt, server)
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
        await open_app(dt, server + "?calib=bias&day=2025-11-19&metric=MEAN&det=R22_S11&amp=C07")
        await dt.wait_for("(__cpm.deep('#cpm-selected-amp') || {dataset: {}}).dataset.amp == 'C07'", 60)
        heading = await dt.eval("__cpm.deep('#cpm-selected-amp').textContent")
        dt.ws.close()
        return heading

    assert _run(go()) == "R22_S11 C07 MEAN on 2025-11-19 (bias)"


def test_histogram_box_select_outlines_the_amps_in_range(server, browser, explore_metrics):
    async def go():
        dt = await DevTools.open(browser)
        await open_app(dt, server + "?calib=bias&day=2025-11-20&metric=NOISE")
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


# the mosaic image's extent [x, dw, y, dh] (mm), and a plot's ranges [x0, x1, y0, y1]
MOSAIC_IMAGE = ("(() => { const r = __cpm.plot('^mosaic').model.renderers.find(r => r.glyph && "
                "r.glyph.type == 'Image'); const d = r.data_source.data; "
                "return [d.x[0], d.dw[0], d.y[0], d.dh[0]]; })()")
RANGES = "(() => { const m = __cpm.plot(%r).model; return [m.x_range.start, m.x_range.end, m.y_range.start, m.y_range.end]; })()"


async def _wheel_zoom(dt: DevTools, plot: str, cx: float, cy: float) -> None:
    """Wheel-zoom plot ``plot`` about page point ``(cx, cy)`` until its view is under 100 mm wide."""
    for _ in range(30):
        await dt.send("Input.dispatchMouseEvent", type="mouseWheel", x=cx, y=cy, deltaX=0, deltaY=-300)
        span = await dt.eval(f"(() => {{ const r = __cpm.plot({plot!r}).model.x_range; return r.end - r.start; }})()")
        if span < 100:
            return


def test_zooming_the_mosaic_moves_the_heat_map_and_reads_the_window(server, browser):
    async def go():
        dt = await DevTools.open(browser)
        await open_app(dt, server)
        before = await dt.eval(MOSAIC_IMAGE)
        # wheel zoom on the mosaic, about its centre, until the view is under 100 mm wide
        cx, cy = await dt.eval("(() => { const m = __cpm.plot('^mosaic').model; return __cpm.point('^mosaic', "
                               "(m.x_range.start + m.x_range.end) / 2, (m.y_range.start + m.y_range.end) / 2); })()")
        await _wheel_zoom(dt, "^mosaic", cx, cy)
        ranges = await dt.eval(RANGES % "^mosaic")
        try:
            await dt.wait_for(MOSAIC_IMAGE.replace("return [", "return d.dw[0] < 150 && ["), 60)
        except AssertionError:
            raise AssertionError(f"the mosaic did not re-read the window {ranges}: "
                                 f"image {await dt.eval(MOSAIC_IMAGE)}") from None
        after = await dt.eval(MOSAIC_IMAGE)
        heat = await dt.eval("[__cpm.plot('^heat map').model.x_range.start, __cpm.plot('^heat map').model.x_range.end]")
        dt.ws.close()
        return before, after, heat, ranges

    before, after, heat, (x0, x1, y0, y1) = _run(go())
    assert heat == pytest.approx([x0, x1])  # the heat map follows the mosaic's zoom
    assert x1 - x0 < 100 and before[1] > 2 * (x1 - x0)  # zoomed in from the whole mosaic
    x, dw, y, dh = after
    # only the window was read: it covers the view (clipped to the mosaic), give or take a few
    # pixels of the level read
    assert x <= max(x0, before[0]) + 1e-6 and x + dw >= min(x1, before[0] + before[1]) - 1e-6
    assert dw < (x1 - x0) + 5 and dh < (y1 - y0) + 5


@pytest.fixture(scope="module")
def serve_with_explore(explore_demo, tmp_path_factory):
    """``cpmosaic serve STORE --explore SOURCE``: the tile server and the explorer in one process."""
    yield from _serve_explore(explore_demo, tmp_path_factory)


def _serve_explore(explore_demo, tmp_path_factory, *extra: str):
    port, eport = _free_port(), _free_port()
    urls = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{eport}/"
    args = ["serve", f"bias={explore_demo.mosaics['bias']}", "--port", str(port),
            "--explore", str(explore_demo.manifest.verify_root), "--history", str(explore_demo.history),
            "--explore-port", str(eport), *extra]
    with _cpmosaic_process(args, list(urls), tmp_path_factory.mktemp("serve-explore") / "server.log") as proc:
        yield proc, urls


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def _redirect_target(url: str) -> str:
    """Where ``url`` answers a 307 redirect (fails if it does not redirect)."""
    try:
        urllib.request.build_opener(_NoRedirect).open(url, timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 307, e.code
        return e.headers["Location"]
    raise AssertionError(f"{url} did not redirect")


def test_serve_and_explore_from_one_process(serve_with_explore, browser):
    proc, (tiles, explorer) = serve_with_explore
    stores = json.load(urllib.request.urlopen(f"{tiles}/stores.json", timeout=10))
    assert "bias" in json.dumps(stores)

    query = "calib=bias&day=2025-11-19&metric=MEAN&det=R22_S11&amp=C07"
    assert _redirect_target(f"{tiles}/explore?{query}") == f"{explorer}?{query}"

    async def go():
        dt = await DevTools.open(browser)
        await open_app(dt, f"{tiles}/explore?{query}")  # followed to the explorer, the websocket opened
        await dt.wait_for("(__cpm.deep('#cpm-selected-amp') || {dataset: {}}).dataset.amp == 'C07'", 60)
        heading = await dt.eval("__cpm.deep('#cpm-selected-amp').textContent")
        dt.ws.close()
        return heading

    assert _run(go()) == "R22_S11 C07 MEAN on 2025-11-19 (bias)"
    assert proc.poll() is None  # one process served both


def test_serve_on_every_interface_redirects_to_the_name_the_client_used(explore_demo, tmp_path_factory):
    """Bound to 0.0.0.0, ``/explore`` sends the browser to the explorer under the name it reached
    the tile server by (``http://0.0.0.0:P/`` is no address for a browser)."""
    serving = _serve_explore(explore_demo, tmp_path_factory, "--host", "0.0.0.0")
    proc, (tiles, explorer) = next(serving)
    try:
        eport = explorer.rsplit(":", 1)[1].rstrip("/")
        tile_port = tiles.rsplit(":", 1)[1]

        for name in ("localhost", "127.0.0.1"):
            assert _redirect_target(f"http://{name}:{tile_port}/explore?amp=C07") == f"http://{name}:{eport}/?amp=C07"
    finally:
        serving.close()  # stops the server (the generator's finally)


async def _key(dt: DevTools, key: str, code: str, vk: int) -> None:
    text = key if len(key) == 1 else ""
    await dt.send("Input.dispatchKeyEvent", type="keyDown", key=key, code=code, windowsVirtualKeyCode=vk, text=text)
    await dt.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=vk)


def test_keys_step_the_amp_the_detector_and_the_metric(server, browser, explore_metrics):
    cam = get_camera("LSSTCam")
    amps = [a.name for a in cam["R22_S11"].amplifiers]
    next_amp = amps[(amps.index("C07") + 1) % len(amps)]
    dets = [d.name for d in cam]
    next_det = dets[(dets.index("R22_S11") + 1) % len(dets)]
    df = explore_metrics
    sel = df[(df.calib_type == "bias") & (df.day_obs == 20251119) & (df.amp.fillna("") != "")]
    metrics = sorted(sel["metric"].astype(str).unique())
    next_metric = metrics[(metrics.index("MEAN") + 1) % len(metrics)]
    heading = "(__cpm.deep('#cpm-selected-amp') || {dataset: {}}).dataset"

    async def go():
        dt = await DevTools.open(browser)
        await open_app(dt, server + "?calib=bias&day=2025-11-19&metric=MEAN&det=R22_S11&amp=C07")
        await dt.wait_for(f"{heading}.amp == 'C07'", 60)
        await _key(dt, "n", "KeyN", 78)
        await dt.wait_for(f"{heading}.amp == {json.dumps(next_amp)}", 30)
        await _key(dt, "ArrowDown", "ArrowDown", 40)
        await dt.wait_for(f"{heading}.detector == {json.dumps(next_det)}", 30)
        got = await dt.eval(f"[{heading}.detector, {heading}.amp]")
        await _key(dt, "m", "KeyM", 77)
        await dt.wait_for(f"location.search.includes('metric=' + {json.dumps(next_metric)})", 30)
        dt.ws.close()
        return got

    assert _run(go()) == [next_det, next_amp]


def test_zooming_the_heat_map_moves_the_mosaic_and_reads_the_window(server, browser):
    async def go():
        dt = await DevTools.open(browser)
        await open_app(dt, server)
        before = await dt.eval(MOSAIC_IMAGE)
        # wheel zoom on the heat map about the middle of the mosaic's pixels
        cx, cy = await dt.eval(f"(() => {{ const d = {MOSAIC_IMAGE}; return __cpm.point('^heat map', "
                               "d[0] + d[1] / 2, d[2] + d[3] / 2); })()")
        await _wheel_zoom(dt, "^heat map", cx, cy)
        await dt.wait_for(MOSAIC_IMAGE.replace("return [", "return d.dw[0] < 150 && ["), 60)
        heat, mosaic = await dt.eval(RANGES % "^heat map"), await dt.eval(RANGES % "^mosaic")
        after = await dt.eval(MOSAIC_IMAGE)
        dt.ws.close()
        return before, after, heat, mosaic

    before, after, heat, mosaic = _run(go())
    # the mosaic follows the heat map's zoom: the same centre, and the same span on one axis
    # (the other is widened to keep 1 mm = 1 mm on a frame of another shape)
    h, m = np.array(heat), np.array(mosaic)
    spans = h[1::2] - h[::2]
    assert (m[::2] + m[1::2]) / 2 == pytest.approx((h[::2] + h[1::2]) / 2, abs=0.01 * spans.max())
    assert np.isclose(m[1::2] - m[::2], spans, rtol=1e-6).any() and (m[1::2] - m[::2] >= spans * (1 - 1e-6)).all()
    x0, x1, y0, y1 = heat
    assert x1 - x0 < 100 and before[1] > 2 * (x1 - x0)
    x, dw, y, dh = after  # and re-read only its window (give or take a few pixels of the level)
    assert dw < (x1 - x0) + 5 and dh < (y1 - y0) + 5
    assert x <= x0 + 1e-6 or x <= before[0] + 1e-6
