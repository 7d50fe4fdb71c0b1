"""Benchmark the tile service (uvicorn + Starlette) against the old ThreadingHTTPServer, libvips and rio-tiler.

Every figure has its baseline measured in the same run:

* warm: random cached tiles of a binning-8-sized LSSTCam store, 8 concurrent keep-alive
  clients (an asyncio client in its own process), tiles/s and p50/p99 latency, new server vs
  the old ``http.server`` one (the source of ``--baseline-rev``, run from ``git archive``);
* cold: distinct tiles at the finest zoom of a full-resolution store, each asked once from a
  fresh server (the zarr files are in the page cache), tiles/s, new vs old;
* rss: peak server RSS under 32 concurrent clients asking tiles and ``/statistics`` mixed;
* export: ``cpmosaic export-tiles --format dzi`` vs libvips ``dzsave`` on the same image
  (level 0 linearly scaled to 8 bits) and vs the previous ``export-tiles``
  (``--export-before-rev``), whole processes interleaved, wall and CPU time, peak memory;
* tile_render: per-tile colour + PNG in process, ``render_png`` vs the RGBA path it replaced;
* rio-tiler: in-process tile latency of rio-tiler on a COG of the same tile world vs
  :func:`cpmosaic.serve.tiles.render_tile`, same tiles, same rescale, PNG out.

Stores are built with ``cpmosaic synth`` + ``cpmosaic mosaic`` unless given::

    python benchmarks/bench_tiles.py --workdir /tmp/b                       # builds both stores
    python benchmarks/bench_tiles.py --store8 b8.zarr --full full.zarr      # existing stores
    python benchmarks/bench_tiles.py --quick                                # small stores, fewer requests
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def build_store(workdir: Path, shrink: int, name: str) -> Path:
    out = workdir / f"{name}.zarr"
    if out.exists():
        return out
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    synth = workdir / f"{name}_in"
    args = ["--full"] if shrink == 1 else ["--shrink", str(shrink)]
    subprocess.run([PY, "-m", "cpmosaic", "synth", "-o", str(synth), *args, "--days", "1", "--types", "flat",
                    "--no-raw", "--no-calibs", "--no-verify", "--no-butler", "--no-progress"], check=True, env=env)
    subprocess.run([PY, "-m", "cpmosaic", "mosaic", str(synth / "processed"), "-o", str(out), "--no-progress"],
                   check=True, env=env)
    shutil.rmtree(synth)
    return out


class Server:
    """``cpmosaic serve`` in a subprocess, from a source tree (``src``)."""

    def __init__(self, src: Path, stores: list[str], *extra: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen([PY, "-m", "cpmosaic", "serve", *stores, "--port", "0", *extra],
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.url = None
        deadline = time.monotonic() + 120
        while self.url is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            if "serving on " in line:
                self.url = line.split("serving on ")[1].split()[0].rstrip("/")
        if self.url is None:
            raise RuntimeError(f"server from {src} did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        host, port = re.match(r"http://([^:/]+):(\d+)", self.url).groups()
        self.host, self.port = host, int(port)
        for _ in range(200):  # uvicorn binds before it serves
            try:
                run_clients(self.host, self.port, ["/stores.json"], 1)
                break
            except OSError:
                time.sleep(0.05)

    def rss_mb(self) -> float:
        import psutil

        p = psutil.Process(self.proc.pid)
        return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]) / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def _clients(host: str, port: int, paths: list[str], conc: int) -> dict:
    lat: list[float] = []
    status: dict[int, int] = {}
    it = iter(paths)

    async def worker():
        reader, writer = await asyncio.open_connection(host, port)
        for p in it:
            t0 = time.perf_counter()
            writer.write(f"GET {p} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            code = int(head[9:12])
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(m.group(1)) if m else 0)
            lat.append(time.perf_counter() - t0)
            status[code] = status.get(code, 0) + 1
            if re.search(rb"(?i)connection:\s*close", head):
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return {"wall": time.perf_counter() - t0, "lat": lat, "status": status}


def _client_process(args, q) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    q.put(asyncio.run(_clients(*args)))


def run_clients(host: str, port: int, paths: list[str], conc: int) -> dict:
    """``conc`` keep-alive connections in a separate process fetching ``paths``."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_client_process, args=((host, port, paths, conc), q))
    p.start()
    res = q.get(timeout=900)
    p.join()
    return res


def summary(res: dict) -> dict:
    lat = np.array(res["lat"]) * 1e3
    return {"n": len(lat), "per_s": len(lat) / res["wall"], "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "status": res["status"]}


def tiles_touching(store: str, zooms, n: int, seed: int) -> list[tuple[int, int, int]]:
    from cpmosaic.mosaic import open_mosaic
    from cpmosaic.serve.tiles import TileGrid

    m = open_mosaic(store)
    g = TileGrid.for_store(m)
    rng = np.random.default_rng(seed)
    out = []
    for z in zooms:
        cands = []
        for y in range(2**z):
            for x in range(2**z):
                i0, i1, j0, j1 = g.tile_box(z, x, y)
                if m.plan.placements_in((max(i0, 0), max(min(i1, g.height), 0), max(j0, 0), max(min(j1, g.width), 0))):
                    cands.append((z, x, y))
        out += [cands[i] for i in rng.permutation(len(cands))[: n // len(zooms) + 1]]
    rng.shuffle(out)
    return out[:n]


def maxzoom(store: str) -> int:
    from cpmosaic.mosaic import open_mosaic
    from cpmosaic.serve.tiles import TileGrid

    return TileGrid.for_store(open_mosaic(store)).maxzoom


def bench_warm(old: Path, new: Path, store: str, n: int) -> dict:
    z = maxzoom(store)
    tl = tiles_touching(store, range(z + 1), 400, 1)
    paths = [f"/s/tiles/{a}/{b}/{c}.png" for a, b, c in tl]
    rng = np.random.default_rng(2)
    load = [paths[i] for i in rng.integers(0, len(paths), n)]
    out = {}
    for label, src in (("old", old), ("new", new)):
        srv = Server(src, [f"s={store}"])
        try:
            run_clients(srv.host, srv.port, paths, 8)  # warm every tile
            out[label] = summary(run_clients(srv.host, srv.port, load, 8))
        finally:
            srv.stop()
    return out


def bench_cold(old: Path, new: Path, store: str, n: int) -> dict:
    z = maxzoom(store)
    tl = tiles_touching(store, [z], 2 * n, 3)
    out = {}
    for label, src, part in (("old", old, tl[:n]), ("new", new, tl[n:])):
        srv = Server(src, [f"s={store}"])
        try:
            out[label] = summary(run_clients(srv.host, srv.port, [f"/s/tiles/{a}/{b}/{c}.png" for a, b, c in part], 8))
        finally:
            srv.stop()
    return out


def bench_rss(src: Path, store: str, n: int, stats_levels) -> dict:
    from cpmosaic.mosaic import open_mosaic

    m = open_mosaic(store)
    z = maxzoom(store)
    tl = tiles_touching(store, range(z + 1), n, 4)
    paths = [f"/s/tiles/{a}/{b}/{c}.png" for a, b, c in tl]
    for i, k in enumerate(stats_levels):
        for j in range(4):
            paths.insert((i * 4 + j) * len(paths) // (4 * len(stats_levels) + 1),
                         f"/s/statistics?level={k}&p={1 + j},{99 - j}")
    srv = Server(src, [f"s={store}"])
    peak = [srv.rss_mb()]
    start = peak[0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak.append(srv.rss_mb())
            except Exception:
                break
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        res = summary(run_clients(srv.host, srv.port, paths, 32))
    finally:
        stop.set()
        th.join()
        srv.stop()
    return res | {"rss_start_mb": start, "rss_peak_mb": max(peak), "levels": list(stats_levels),
                  "shape": list(m.shape(0))}


def _timed(cmd: list[str], env=None) -> tuple[float, float, float]:
    """``(wall s, peak RSS MB, CPU s)`` of one process under ``/usr/bin/time``."""
    r = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M %U %S", *cmd], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    t, kb, u, sy = r.stderr.strip().splitlines()[-1].split()[1:]
    return float(t), float(kb) / 1024, float(u) + float(sy)


def bench_export(src: Path, store: str, work: Path, repeats: int = 3, before_src: Path | None = None) -> dict:
    """``export-tiles --format dzi`` and libvips ``dzsave`` as whole processes, interleaved
    ``repeats`` times (each into a fresh folder); the median of each, and every run.  With
    ``before_src``, the same command from an earlier source tree runs in the same rotation."""
    from cpmosaic.mosaic import open_mosaic

    m = open_mosaic(store)
    lo, hi = m.window(0)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    ours = [PY, "-m", "cpmosaic", "-q", "export-tiles", store, "--format", "dzi", "-o", str(work / "ours"),
            "--rescale", f"{lo},{hi}"]
    try:
        import pyvips  # noqa: F401
        have_vips = True
    except ImportError:
        have_vips = False
    raw = work / "level0.v"
    if have_vips and not raw.exists():
        subprocess.run([PY, "-c", f"""
import numpy as np, pyvips, sys
sys.path.insert(0, {str(src)!r})
from cpmosaic.mosaic import open_mosaic
a = np.ascontiguousarray(open_mosaic({store!r}).read(0)[::-1])
pyvips.Image.new_from_array(a).write_to_file({str(raw)!r})
"""], check=True)
    vips = [PY, "-c", f"import pyvips; im = pyvips.Image.new_from_file({str(raw)!r}); "
                      f"im = ((im - {lo}) * (255.0 / ({hi} - {lo}))).cast('uchar'); "
                      f"im.dzsave({str(work / 'vips')!r}, tile_size=254, overlap=1, suffix='.png[compression=1]')"]
    runs: dict[str, list] = {"cpmosaic": [], "vips": [], "cpmosaic_before": []}
    jobs = [("cpmosaic", ours, ["ours"], env), ("vips", vips, ["vips_files", "vips.dzi"], None)]
    if before_src is not None:
        jobs.append(("cpmosaic_before", ours[:-4] + ["-o", str(work / "before"), *ours[-2:]],
                     ["before"], {**os.environ, "PYTHONPATH": str(before_src)}))
    for rep in range(-1, repeats):  # rep -1: a warm-up of each (page cache, numba's cache of a fresh tree)
        for key, cmd, outs, job_env in jobs:
            if key == "vips" and not have_vips:
                continue
            for o in outs:  # a fresh folder each time: overwriting files costs more than writing them
                p = work / o
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            t, mb, cpu = _timed(cmd, job_env)
            if rep >= 0:
                runs[key].append({"seconds": t, "cpu_s": cpu, "peak_mb": mb, "load": os.getloadavg()[0]})
    out = {}
    for key, folder in (("cpmosaic", "ours"), ("vips", "vips_files"), ("cpmosaic_before", "before")):
        if not runs[key]:
            out[key] = "pyvips not installed" if key == "vips" else "not run"
            continue
        out[key] = {f"median_{k}": float(np.median([r[k] for r in runs[key]])) for k in ("seconds", "cpu_s", "peak_mb")}
        out[key]["best_seconds"] = min(r["seconds"] for r in runs[key])  # the least disturbed by other jobs
        out[key] |= {"tiles": len(list((work / folder).rglob("*.png"))),
                     "bytes": sum(f.stat().st_size for f in (work / folder).rglob("*.png")), "runs": runs[key]}
    if have_vips:
        out["ratio_seconds_vips_over_cpmosaic"] = out["vips"]["median_seconds"] / out["cpmosaic"]["median_seconds"]
        out["ratio_best_seconds_vips_over_cpmosaic"] = out["vips"]["best_seconds"] / out["cpmosaic"]["best_seconds"]
        out["vips"]["input"] = "level 0 as a float32 .v file (not counted), linear to 8 bits, 1 band"
    if runs["cpmosaic_before"]:
        out["ratio_seconds_before_over_cpmosaic"] = (out["cpmosaic_before"]["median_seconds"]
                                                     / out["cpmosaic"]["median_seconds"])
    return out


def bench_tile_render(store: str, n: int = 200) -> dict:
    """Per-tile colour + PNG, in process: ``render_png`` (one-pass kernel, palette/grey PNG) vs the
    RGBA path it replaced (``to_rgba`` + the RGBA encoder), on the same finest-level Deep Zoom
    tiles, interleaved, best of 3 passes each; the output bytes of both."""
    from cpmosaic.serve import tiles
    from cpmosaic.serve.stores import ServedStore

    s = ServedStore("b8", store, None, 0)
    lo, hi = s.m.window(0)
    style = tiles.parse_style({"rescale": [f"{lo},{hi}"]})
    top = s.deepzoom.top
    h, w = s.deepzoom.level_shape(top)
    rng = np.random.default_rng(0)
    cells = [(int(c), int(r)) for c, r in zip(rng.integers(0, w // 254, n), rng.integers(0, h // 254, n))]
    data = [tiles.dzi_values(s.m, top, c, r, s.deepzoom) for c, r in cells]
    paths = {"rgba (before)": lambda d: tiles.encode_png(tiles.to_rgba(d, style, s.styles)),
             "render_png": lambda d: tiles.render_png(d, style, s.styles)}
    best = {k: float("inf") for k in paths}
    size = {}
    for _ in range(3):
        for k, f in paths.items():
            f(data[0])
            t0 = time.perf_counter()
            out = [f(d) for d in data]
            best[k] = min(best[k], (time.perf_counter() - t0) / len(data))
            size[k] = sum(len(b) for b in out) / len(out)
    return {"tiles": len(data), "us_per_tile": {k: 1e6 * v for k, v in best.items()},
            "bytes_per_tile": size, "speedup": best["rgba (before)"] / best["render_png"]}


_RIO = r"""
import json, sys, time
import numpy as np
import rasterio
from rasterio.transform import from_bounds
from rio_tiler.io import Reader
world_path, cog, lo, hi, jobs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), json.loads(sys.argv[5])
world = np.load(world_path, mmap_mode="r")
n = world.shape[0]
e = 20037508.342789244
with rasterio.open(cog, "w", driver="COG", width=n, height=n, count=1, dtype="float32", crs="EPSG:3857",
                   transform=from_bounds(-e, -e, e, e, n, n), nodata=float("nan"), blocksize=256,
                   compress="LZ4", overview_resampling="average") as dst:
    dst.write(np.asarray(world), 1)
out = {}
with Reader(cog) as r:
    for z, tl in jobs.items():
        lat = []
        for x, y in tl:
            t0 = time.perf_counter()
            img = r.tile(x, y, int(z), tilesize=256, resampling_method="average")
            img.rescale(((lo, hi),))
            img.render(img_format="PNG")
            lat.append(time.perf_counter() - t0)
        out[z] = lat
print(json.dumps(out))
"""


def bench_riotiler(store: str, work: Path, n: int) -> dict:
    """rio-tiler in its own process (GDAL and the zarr codecs in one process corrupted the heap
    once here), on a COG of the tile world in Web Mercator: its tile z/x/y is ours."""
    from cpmosaic.mosaic import open_mosaic
    from cpmosaic.serve import tiles

    m = open_mosaic(store)
    g = tiles.TileGrid.for_store(m)
    lo, hi = m.window(0)
    a = m.read(0)
    world = np.full((g.world, g.world), np.nan, np.float32)
    world[g.offset_y:g.offset_y + a.shape[0], g.offset_x:g.offset_x + a.shape[1]] = a
    np.save(work / "world.npy", world[::-1])
    del world, a
    styles = tiles.StoreStyleCache(m)
    jobs, ours = {}, {}
    for z in (g.maxzoom, max(g.maxzoom - 2, 0)):
        tl = [(x, y) for _, x, y in tiles_touching(store, [z], n, 5)]
        jobs[str(z)] = tl
        lat = []
        for x, y in tl:
            t0 = time.perf_counter()
            tiles.render_tile(m, g, styles, z, x, y, style=tiles.Style(rescale=(lo, hi)))
            lat.append(time.perf_counter() - t0)
        ours[str(z)] = lat
    r = subprocess.run([PY, "-c", _RIO, str(work / "world.npy"), str(work / "world.tif"), str(lo), str(hi),
                        json.dumps(jobs)], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr[-1500:]}
    rio = json.loads(r.stdout)
    return {f"z{z}": {"tiles": len(jobs[z]), "cpmosaic_p50_ms": 1e3 * float(np.median(ours[z])),
                      "cpmosaic_p95_ms": 1e3 * float(np.percentile(ours[z], 95)),
                      "riotiler_p50_ms": 1e3 * float(np.median(rio[z])),
                      "riotiler_p95_ms": 1e3 * float(np.percentile(rio[z], 95))} for z in jobs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store8", help="binning-8-sized LSSTCam store (default: build with --shrink 8)")
    ap.add_argument("--full", help="full-resolution store (default: build with --full)")
    ap.add_argument("--workdir", help="where to build and write (default: a temporary directory)")
    ap.add_argument("--baseline-rev", default="08469ba", help="git revision of the old server")
    ap.add_argument("--quick", action="store_true", help="shrink 16/4 stores, fewer requests")
    ap.add_argument("--only", default="warm,cold,rss,export,tile_render,riotiler")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each export (median reported)")
    ap.add_argument("--export-before-rev", default="eab195e",
                    help="git revision whose export-tiles runs beside the current one ('' to skip)")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(args.workdir or tmp)
        old = Path(tmp) / "baseline"
        old.mkdir()
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline_rev, "src"], check=True,
                             capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=tar, check=True)
        old_src, new_src = old / "src", ROOT / "src"
        s8 = args.store8 or str(build_store(work, 16 if args.quick else 8, "b8"))
        needs_full = bool(only & {"cold", "rss"})
        full = args.full or (str(build_store(work, 4 if args.quick else 1, "full")) if needs_full else "")
        n = 1000 if args.quick else 6000
        def emit(name: str, value) -> None:  # one JSON line per section, as soon as it is measured
            print(json.dumps({name: value, "loadavg": os.getloadavg()}, default=str), flush=True)

        emit("start", {"store8": s8, "full": full, "baseline_rev": args.baseline_rev})
        if "warm" in only:
            emit("warm", bench_warm(old_src, new_src, s8, n))
        if "cold" in only:
            emit("cold", bench_cold(old_src, new_src, full, n // 4))
        if "rss" in only:
            emit("rss_full_new", bench_rss(new_src, full, n // 4, [0, 1, 2, 3]))
            emit("rss_b8_new", bench_rss(new_src, s8, n // 4, [1, 2]))
            emit("rss_b8_old", bench_rss(old_src, s8, n // 4, [1, 2]))
        if "export" in only:
            before = None
            if args.export_before_rev:
                before = Path(tmp) / "export_before"
                before.mkdir()
                tar = subprocess.run(["git", "-C", str(ROOT), "archive", args.export_before_rev, "src"], check=True,
                                     capture_output=True).stdout
                subprocess.run(["tar", "-x", "-C", str(before)], input=tar, check=True)
                before = before / "src"
            emit("export", bench_export(new_src, s8, work / "export", args.repeats, before))
        if "tile_render" in only:
            emit("tile_render", bench_tile_render(s8))
        if "riotiler" in only:
            emit("riotiler", bench_riotiler(s8, work, 40 if args.quick else 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
