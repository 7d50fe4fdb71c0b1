"""Shared pieces of the explorer and notebook tests (not a test module).

``explore_demo`` runs :func:`cpmosaic.demo.run_demo` on a few detectors (3 nights, cp_verify
outputs, one bias mosaic store, a history store), the same data the notebooks use.
``browser`` starts headless chromium (fresh profile, networking features off) with remote
debugging; :class:`DevTools` drives one of its pages over the DevTools protocol with
tornado's websocket client (tornado comes with bokeh: no browser driver is downloaded).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")

DETECTORS = ("R22_S10", "R22_S11", "R22_S12", "R00_SW0")


@pytest.fixture(scope="session")
def explore_demo(tmp_path_factory):
    from cpmosaic.demo import run_demo

    out = tmp_path_factory.mktemp("explore-demo")
    return run_demo(out, detectors=list(DETECTORS), days=3, compare=False, report=False, progress=False)


@pytest.fixture(scope="session")
def explore_metrics(explore_demo):
    from cpmosaic.metrics import load_metrics

    return load_metrics(explore_demo.manifest.verify_root, progress=False)


class DevTools:
    """A minimal Chrome DevTools protocol client on one page target."""

    def __init__(self, ws):
        self.ws, self.n = ws, 0
        self.events: list[dict] = []  # every event received while waiting for replies

    @property
    def exceptions(self) -> list[dict]:
        return [e["params"] for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

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
            if "method" in msg:
                self.events.append(msg)

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
        await self.wait_for("document.readyState == 'complete'")

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
