"""Benchmark the explorer: zoomed views of a whole-LSSTCam store, amp taps, memory over zooms.

Stores (built once, kept in ``--workdir``, default /work/bench-explore, outside the repo):
a whole LSSTCam mosaic (205 detectors at real size, 4k x 4k each) and an LSSTComCam
mosaic (9 detectors) of the same binning, from synthetic float32 FITS files written there
first.  At binning 1 the LSSTCam store is 3.2 Gpix; ``--binning 2`` (0.8 Gpix) is what a
shared 2-core machine builds in reasonable time.

Measured in one process:

* **view**: time to produce a 1000 x 800 view (level choice, window read, regrid to the
  screen, stretch) at the coarsest zoom (whole camera), a middle zoom (one raft) and the
  finest (a 1000 x 800 pixel window of level 0), LSSTCam vs ComCam (the ratio shows whether
  the time is flat in the mosaic's size); best of ``--repeats``; target <= 100 ms each.
  Baseline in the same run: reading the same window with ``MosaicStore.read`` alone.
* **tap**: time from an amp tap (``Explorer.tap_heatmap``) to every linked panel updated
  (the selected-amp outline on the heat map and the mosaic, the history line, the cut-out,
  the table) on a live bokeh document (``get_root``: the panels follow synchronously), in
  process, over 20 different amps of a whole-camera table with 10 nights of history;
  target <= 300 ms.
  The same in headless chromium (when /usr/bin/chromium is there): click on the heat map ->
  the amp's heading, cut-out and outlines replaced and painted in the page (server round trip
  included), over 10 amps; canvas output (the app's), then WebGL output as the baseline.
  ``--only-tap`` runs just this part.
* **memory**: RSS of the process after 200 zoom and pan steps (and after each 50).

Usage::

    python benchmarks/bench_explore.py --binning 2            # build once, then measure
    python benchmarks/bench_explore.py --binning 2 --repeats 7
    # binning 1 (3.2 Gpix) from a store built by the CLI, the view and memory parts only:
    python benchmarks/bench_explore.py --binning 1 --workdir /work/scratch/napari \
        --lsstcam-store /work/scratch/napari/lsstcam-b1.zarr --parts view,memory
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _timing import best_of

HERE = Path(__file__).resolve().parent


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_inputs(directory: Path, camera_name: str, seed: int = 0) -> list[Path]:
    """One synthetic processed FITS file per detector of *camera_name* (real size)."""
    from cpmosaic.camera import get_camera
    from cpmosaic.io import write_processed_fits

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    noise: dict = {}
    paths = []
    for det in get_camera(camera_name):
        path = directory / f"calexp_{det.name}.fits"
        if not path.exists():
            if det.shape not in noise:
                noise[det.shape] = rng.normal(1000.0, 5.0, det.shape).astype(np.float32)
            yy = np.linspace(0, 50, det.shape[0], dtype=np.float32)[:, None]  # a gradient: views differ
            write_processed_fits(path, noise[det.shape] + yy + np.float32(det.id),
                                 header={"DETNAME": det.name, "DETECTOR": det.id, "INSTRUME": camera_name})
        paths.append(path)
    return paths


def build(workdir: Path, camera_name: str, binning: int) -> Path:
    from cpmosaic.mosaic import build_mosaic, open_mosaic

    store = workdir / f"{camera_name}_b{binning}.zarr"
    try:
        if open_mosaic(store).complete:
            return store
    except Exception:
        pass
    files = make_inputs(workdir / f"inputs_{camera_name}", camera_name)
    t = time.perf_counter()
    build_mosaic(files, store, binning=binning, overwrite=True, progress=False, name=f"{camera_name} bench")
    print(f"built {store} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return store


def zooms(store) -> dict[str, tuple]:
    """Coarsest (whole mosaic), middle (one raft, ~127 mm) and finest (1000 x 800 level-0 pixels);
    "finest_panned" is the finest panned by half a pixel, so the window straddles one more row and
    column of pixels than the screen has and is regridded (an aligned 800 x 1000 window is not)."""
    from cpmosaic.viz.viewport import full_range

    (x0, x1), (y0, y1) = full_range(store)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    px = abs(store.scale_um(0)[1]) / 1000.0
    return {"coarsest": ((x0, x1), (cy - (x1 - x0) * 0.4, cy + (x1 - x0) * 0.4)),
            "middle": ((cx - 63.5, cx + 63.5), (cy - 50.8, cy + 50.8)),
            "finest": ((cx - 500 * px, cx + 500 * px), (cy - 400 * px, cy + 400 * px)),
            "finest_panned": ((cx - 499.5 * px, cx + 500.5 * px), (cy - 399.5 * px, cy + 400.5 * px))}


def tiny_table():
    """One metric row: the view benchmarks need an app, not metrics."""
    import pandas as pd

    return pd.DataFrame({"instrument": "LSSTCam", "calib_type": "bias", "run": "r", "exposure": 1, "day_obs": 20250101,
                         "mjd": 60676.0, "detector": 94, "detector_name": "R22_S11", "amp": "C00", "tier": "amp",
                         "metric": "NOISE", "value": [1.0], "passed": [True]})


def bench_views(stores: dict, repeats: int) -> list[dict]:
    """Each zoom's view on every camera, the cameras interleaved within each repeat (so a burst
    of load from elsewhere hits both), best of *repeats*; the window read alone likewise."""
    from cpmosaic.viz.explorer import ExploreSources, Explorer
    from cpmosaic.viz.viewport import plan_view

    df = tiny_table()
    apps = {cam: Explorer(ExploreSources(df.assign(instrument=cam, detector=store.plan.placements[0].id,
                                                    detector_name=store.plan.placements[0].name),
                                         stores=[store]), width=1000)
            for cam, store in stores.items()}
    rows = []
    for name in ("coarsest", "middle", "finest", "finest_panned"):
        ranges = {cam: zooms(store)[name] for cam, store in stores.items()}
        wins = {cam: plan_view(stores[cam], *ranges[cam], 1000, 800) for cam in stores}
        for cam in stores:  # warm: stretch fitted, chunks' codecs loaded
            apps[cam].view_image(*ranges[cam], width=1000, height=800)
        best = {(cam, what): float("inf") for cam in stores for what in ("view", "read")}
        for _ in range(repeats):
            for cam, store in stores.items():
                xr, yr = ranges[cam]
                win = wins[cam]
                t = best_of(lambda: apps[cam].view_image(xr, yr, width=1000, height=800))[0]
                best[cam, "view"] = min(best[cam, "view"], t)
                t = best_of(lambda: store.read(win.level, *win.rows, *win.cols))[0]
                best[cam, "read"] = min(best[cam, "read"], t)
        for cam, store in stores.items():
            rows.append({"camera": cam, "zoom": name, "level": wins[cam].level, "window": list(wins[cam].shape),
                         "view_ms": round(best[cam, "view"] * 1e3, 1), "read_only_ms": round(best[cam, "read"] * 1e3, 1),
                         "store_gpix": round(np.prod(store.shape(0)) / 1e9, 3)})
    return rows


def bench_tap(stores: dict, workdir: Path, n: int = 20) -> dict:
    """Amp taps on an app with metrics, history and the LSSTCam store; every panel rebuilt."""
    import pandas as pd

    from cpmosaic.camera import get_camera
    from cpmosaic.metrics.history import HistoryStore
    from cpmosaic.viz.explorer import ExploreSources, Explorer

    cam = get_camera("LSSTCam")
    rng = np.random.default_rng(1)
    rows = []
    for day in range(20250101, 20250111):
        for det in cam:
            for amp in det.amplifiers:
                rows.append(("LSSTCam", "bias", f"run{day}", day * 100000 + 10, day, 60676.0, det.id, det.name,
                             amp.name, "amp", "NOISE", float(rng.normal(6, 0.3)), True))
    df = pd.DataFrame(rows, columns=["instrument", "calib_type", "run", "exposure", "day_obs", "mjd", "detector",
                                     "detector_name", "amp", "tier", "metric", "value", "passed"])
    hist_dir = workdir / "history"
    history = HistoryStore(hist_dir)
    if not history.calib_types():
        history.add(df)
    app = Explorer(ExploreSources(df, stores=[stores["LSSTCam"]], history=history), calib_type="bias",
                   metric="NOISE")
    import panel as pn

    pn.panel(app).get_root()  # the panels exist and follow the parameters, as in a served page
    amps = [(d, a.name) for d in cam.select(("science",)) for a in d.amplifiers]
    picks = [amps[i] for i in rng.choice(len(amps), n + 1, replace=False)]

    def tap(det, amp):
        x, y = det.box_center_mm(det.amp(amp).bbox)
        t = time.perf_counter()
        # the panels of the live root follow synchronously: outlines, history line, cut-out, table
        key = app.tap_heatmap(x, y)
        dt = time.perf_counter() - t
        assert key == (det.name, amp), key
        assert f'data-amp="{amp}"' in app.table_pane.object and len(app.amp_series()) == 10
        return dt

    tap(*picks[0])  # warm: history loaded once per (calib type, metric)
    times = [tap(*p) for p in picks[1:]]
    out = {"taps": n, "median_ms": round(float(np.median(times)) * 1e3, 1),
           "max_ms": round(float(np.max(times)) * 1e3, 1)}
    sources = app.sources

    def factory(webgl=False):
        return Explorer(sources, calib_type="bias", metric="NOISE", webgl=webgl)

    # canvas (the app's output) and, as the baseline in the same run, bokeh's WebGL output
    out["browser"] = bench_browser_tap(factory, picks[:11], sources.geometry)
    out["browser_webgl"] = bench_browser_tap(factory, picks[:11], sources.geometry, webgl=True)
    return out


def bench_browser_tap(app_factory, amps, geometry, n: int = 10, webgl: bool = False) -> dict:
    """Click -> every tap-linked panel updated in the page, in headless chromium over the DevTools protocol.

    The app is served in this process (``pn.serve``, threaded).  Before each click the page
    watches, once per animation frame, for the new amp's heading, the cut-out titled with the
    amp, and the selected-amp outline (on the heat map and the mosaic) at the amp's place;
    the time is stamped at the next frame after all are there (so they have been painted).
    ``webgl`` serves the plots with bokeh's WebGL output (software GL in headless chromium).
    Also counts the websocket frames the page receives per tap.
    """
    import asyncio
    import socket

    import panel as pn

    from cpmosaic.viz.explore_data import outline_xy

    sys.path.insert(0, str(HERE.parent / "tests"))
    import explore_fixtures as fx
    from test_explore_browser import open_app

    if not fx.CHROMIUM.exists():
        return {"skipped": "no /usr/bin/chromium"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = pn.serve(lambda: app_factory(webgl=webgl), port=port, address="127.0.0.1", show=False, threaded=True,
                      verbose=False, websocket_origin=[f"127.0.0.1:{port}"])
    import subprocess
    import tempfile

    profile = tempfile.mkdtemp(prefix="bench-explore-chromium-")
    cmd = [str(fx.CHROMIUM), *fx.FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watch = """(() => { window.__done = null; const want = %s;
        const ok = () => {
          const h = __cpm.deep('#cpm-selected-amp');
          if (!h || h.dataset.amp != want[1] || h.dataset.detector != want[0]) return false;
          if (!__cpm.plots().some(v => v.model.title.text.startsWith(want[0] + ' ' + want[1] + ':'))) return false;
          const sel = __cpm.plots().flatMap(v => v.model.renderers).filter(r => (r.tags || [])[0] == 'cpm-selected');
          return sel.length >= 2 && sel.every(r => {
            const x = Array.from(r.data_source.data.x).filter(Number.isFinite);
            return x.length && Math.abs(Math.min(...x) - want[2]) < 1e-6; }); };
        const tick = () => { if (ok()) requestAnimationFrame(() => { window.__done = performance.now(); });
                             else requestAnimationFrame(tick); };
        window.__t0 = performance.now(); requestAnimationFrame(tick); return true; })()"""
    try:
        dport = None
        while dport is None:
            line = proc.stderr.readline()
            if "DevTools listening on ws://127.0.0.1:" in line:
                dport = int(line.split("127.0.0.1:")[1].split("/")[0])
        time.sleep(1.0)

        async def go():
            dt = await fx.DevTools.open(dport)
            await open_app(dt, f"http://127.0.0.1:{port}/")
            await dt.send("Network.enable")
            times, frames = [], []
            for det, amp in amps[: n + 1]:
                x, y = det.box_center_mm(det.amp(amp).bbox)
                px, py = await dt.eval(f"__cpm.point('^heat map', {x}, {y})")
                g = geometry[(geometry["detector_name"] == det.name) & (geometry["amp"] == amp)]
                xmin = float(np.nanmin(outline_xy(g)[:, 0]))
                dt.events.clear()
                await dt.eval(watch % json.dumps([det.name, amp, xmin]))
                await dt.click(px, py)
                try:
                    await dt.wait_for("window.__done != null", 60)
                except AssertionError:
                    state = await dt.eval("""(() => { const h = __cpm.deep('#cpm-selected-amp');
                        return [h && h.dataset.detector, h && h.dataset.amp, __cpm.titles(),
                                __cpm.plots().flatMap(v => v.model.renderers).filter(r => (r.tags || [])[0] ==
                                'cpm-selected').map(r => Math.min(...Array.from(r.data_source.data.x).filter(
                                Number.isFinite)))]; })()""")
                    raise AssertionError(f"tap on {det.name} {amp} (x min {xmin}): the page shows {state}") from None
                times.append(await dt.eval("window.__done - window.__t0"))
                frames.append(sum(e.get("method") == "Network.webSocketFrameReceived" for e in dt.events))
            dt.ws.close()
            return times[1:], frames[1:]  # the first tap loads the history

        times, frames = asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.stop()
        import shutil

        shutil.rmtree(profile, ignore_errors=True)
    return {"output": "webgl" if webgl else "canvas", "taps": len(times),
            "median_ms": round(float(np.median(times)), 1), "max_ms": round(float(np.max(times)), 1),
            "all_ms": [round(float(t)) for t in times], "ws_frames_per_tap": int(np.median(frames))}


def bench_memory(store, steps: int = 200) -> dict:
    from cpmosaic.viz.explorer import ExploreSources, Explorer
    from cpmosaic.viz.viewport import full_range

    df = tiny_table()
    app = Explorer(ExploreSources(df, stores=[store]), width=1000)
    (x0, x1), (y0, y1) = full_range(store)
    rng = np.random.default_rng(2)
    marks = {}
    start = rss_mib()
    for i in range(steps):
        span = (x1 - x0) * 0.5 ** rng.integers(0, 9)  # zoom: whole camera .. 1/256 of it
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)  # pan
        app.view_image((cx - span / 2, cx + span / 2), (cy - span * 0.4, cy + span * 0.4), width=1000, height=800)
        if (i + 1) % max(50, steps // 10) == 0:
            marks[i + 1] = round(rss_mib(), 1)
    return {"steps": steps, "rss_start_mib": round(start, 1), "rss_mib": marks, "reads_kept": len(app.reads)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/work/bench-explore", help="where stores are built and kept")
    ap.add_argument("--binning", type=int, default=1, help="detector pixels per level-0 pixel (default 1)")
    ap.add_argument("--repeats", type=int, default=5, help="best of N per view (default 5)")
    ap.add_argument("--build-only", action="store_true", help="build the stores and stop")
    ap.add_argument("--lsstcam-store", help="an existing LSSTCam store instead of one built in --workdir "
                    "(e.g. `cpmosaic mosaic /work/bench-inputs/lsstcam -o S --binning 1`)")
    ap.add_argument("--comcam-store", help="an existing LSSTComCam store instead of one built in --workdir")
    ap.add_argument("--parts", default="view,tap,memory", help="comma-separated parts to run (default all three)")
    ap.add_argument("--memory-steps", type=int, default=200, help="zoom and pan steps of the memory part (default 200)")
    ap.add_argument("--only-tap", action="store_true", help="only the tap benchmark (same as --parts tap)")
    args = ap.parse_args(argv)
    from cpmosaic.mosaic import open_mosaic

    parts = {"tap"} if args.only_tap else set(args.parts.split(","))
    if not parts or parts - {"view", "tap", "memory"}:
        ap.error(f"--parts: expected names from view,tap,memory, got {args.parts!r}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    given = {"LSSTComCam": args.comcam_store, "LSSTCam": args.lsstcam_store}
    stores, paths = {}, {}
    for cam in ("LSSTComCam", "LSSTCam"):
        paths[cam] = str(given[cam] or build(work, cam, args.binning))
        stores[cam] = open_mosaic(paths[cam])
        if stores[cam].binning != args.binning:  # the LSSTCam / ComCam ratio compares one binning
            ap.error(f"{paths[cam]}: binning {stores[cam].binning}, not --binning {args.binning}")
    if args.build_only:
        return 0
    out = {"binning": args.binning, "load": os.getloadavg(),
           "stores": {cam: {"path": paths[cam], "gpix": round(np.prod(s.shape(0)) / 1e9, 3)} for cam, s in stores.items()}}
    if "view" in parts:
        out["views"] = bench_views(stores, args.repeats)
    if "tap" in parts:
        out["tap"] = bench_tap(stores, work)
    if "memory" in parts:
        out["memory"] = bench_memory(stores["LSSTCam"], args.memory_steps)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
