"""Benchmark tile latency of ``cpmosaic serve`` over HTTP on loopback against a 300 ms budget.

A store is built (or ``--store`` given) from synthetic processed FITS of a shrunk LSSTCam:
``--shrink 8 --binning 1`` makes detectors of 512 x 500 pixels, a level 0 of about 7900 px
square, the size of a real full-camera store at binning 8.  For each zoom, ``--tiles``
random tiles that touch a detector (seeded) are fetched:

* server cold: first request of each tile from a fresh server (renders; zarr files are in
  the page cache, as on a server that has been up a while);
* server warm: the same tiles again (the LRU answers);
* direct: the same windows rendered in this process without HTTP (``render_tile``): the
  server's overhead is cold minus direct;
* naive: read the whole pyramid level the tile needs with plain zarr, slice, block-mean,
  stretch, PIL encode (what a tile endpoint without windowed reads would do).

Prints a markdown table (milliseconds, p50 / p95).

Usage::

    python benchmarks/bench_tiles.py --quick
    python benchmarks/bench_tiles.py --shrink 8 --binning 1 --tiles 40
    python benchmarks/bench_tiles.py --store visit.zarr
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

BUDGET_MS = 300.0


def build_store(workdir: Path, shrink: int, binning: int) -> Path:
    from astropy.io import fits

    from cpmosaic.camera import get_camera, shrink_camera
    from cpmosaic.mosaic import build_mosaic

    cam = shrink_camera(get_camera("LSSTCam"), shrink)
    d = workdir / "in"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for det in cam:
        h, w = det.shape
        y, x = np.mgrid[0:h, 0:w]
        img = (det.id * 1000 + x + 10 * y + rng.normal(0, 5, (h, w))).astype(np.float32)
        hdr = fits.Header({"DETNAME": det.name, "INSTRUME": "LSSTCam"})
        fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(img, name="IMAGE")]).writeto(d / f"{det.name}.fits")
    out = workdir / "visit.zarr"
    t0 = time.perf_counter()
    build_mosaic([d], out, camera=cam, binning=binning, progress=False)
    print(f"built {out} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return out


def pick_tiles(srv_store, z: int, n: int, rng) -> list[tuple[int, int]]:
    """Up to ``n`` distinct tiles of zoom ``z`` that touch a detector."""
    g, m = srv_store.grid, srv_store.m
    cands = []
    for y in range(2**z):
        for x in range(2**z):
            i0, i1, j0, j1 = g.tile_box(z, x, y)
            box = (max(i0, 0), max(min(i1, g.height), 0), max(j0, 0), max(min(j1, g.width), 0))
            if m.plan.placements_in(box):
                cands.append((x, y))
    idx = rng.permutation(len(cands))[:n]
    return [cands[i] for i in idx]


def naive_tile(arr, grid, z: int, x: int, y: int, lo: float, hi: float) -> bytes:
    """Whole-level read per tile: plain zarr + numpy + PIL."""
    import io

    from PIL import Image

    e = grid.maxzoom - z
    n_levels = grid.n_levels
    k = min(e, n_levels - 1)
    f = 2 ** (e - k)
    level = np.asarray(arr[k][...])
    i0, i1, j0, j1 = (v // 2**k for v in grid.tile_box(z, x, y))
    win = np.full((i1 - i0, j1 - j0), np.nan, np.float32)
    h, w = level.shape
    ci0, ci1, cj0, cj1 = max(i0, 0), min(i1, h), max(j0, 0), min(j1, w)
    if ci1 > ci0 and cj1 > cj0:
        win[ci0 - i0:ci1 - i0, cj0 - j0:cj1 - j0] = level[ci0:ci1, cj0:cj1]
    if f > 1:
        win = np.nanmean(win.reshape(win.shape[0] // f, f, win.shape[1] // f, f), axis=(1, 3))
    v = np.nan_to_num(np.clip((win[::-1] - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)
    rgba = np.stack([v, v, v, np.where(np.isfinite(win[::-1]), 255, 0).astype(np.uint8)], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def pct(ms: list[float]) -> str:
    if not ms:
        return "-"
    return f"{np.percentile(ms, 50):.1f} / {np.percentile(ms, 95):.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", help="an existing mosaic store (default: build one)")
    ap.add_argument("--shrink", type=int, default=8)
    ap.add_argument("--binning", type=int, default=1)
    ap.add_argument("--tiles", type=int, default=30, help="random tiles per zoom")
    ap.add_argument("--quick", action="store_true", help="--shrink 16 --tiles 10")
    ap.add_argument("--workdir", help="where to build (default: a temporary directory)")
    args = ap.parse_args(argv)
    if args.quick:
        args.shrink, args.tiles = 16, 10
    import logging
    import warnings

    import zarr

    from cpmosaic.serve import tiles
    from cpmosaic.serve.app import make_server

    warnings.simplefilter("ignore", RuntimeWarning)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        store = Path(args.store) if args.store else build_store(Path(tmp), args.shrink, args.binning)
        srv = make_server([f"visit={store}"], port=0)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        s = srv.stores["visit"]
        lo, hi = s.styles.limits(tiles.Style())
        q = f"?rescale={lo},{hi}"
        arrays = [zarr.open_array(str(store), path=str(k), mode="r") for k in range(s.m.n_levels)]
        rng = np.random.default_rng(20261125)
        h, w = s.m.shape(0)
        rows = []
        for z in range(s.grid.maxzoom + 1):
            picks = pick_tiles(s, z, args.tiles, rng)
            res: dict[str, list[float]] = {"cold": [], "warm": [], "direct": [], "naive": []}
            for phase in ("cold", "warm"):
                for x, y in picks:
                    t0 = time.perf_counter()
                    with urllib.request.urlopen(f"{srv.url}/visit/tiles/{z}/{x}/{y}.png{q}", timeout=30) as r:
                        r.read()
                    res[phase].append((time.perf_counter() - t0) * 1e3)
            style = tiles.Style(rescale=(lo, hi))
            for x, y in picks:
                t0 = time.perf_counter()
                tiles.render_tile(s.m, s.grid, s.styles, z, x, y, style=style)
                res["direct"].append((time.perf_counter() - t0) * 1e3)
            for x, y in picks[: max(3, len(picks) // 3)]:  # naive is slow at fine zooms: fewer
                t0 = time.perf_counter()
                naive_tile(arrays, s.grid, z, x, y, lo, hi)
                res["naive"].append((time.perf_counter() - t0) * 1e3)
            k = min(max(s.grid.maxzoom - z, 0), s.m.n_levels - 1)
            ok = np.percentile(res["cold"], 95) <= BUDGET_MS if res["cold"] else True
            rows.append((z, k, len(picks), pct(res["cold"]), pct(res["warm"]), pct(res["direct"]),
                         pct(res["naive"]), "yes" if ok else "NO"))
        srv.shutdown()
        srv.server_close()
    print(f"\nstore: level 0 {w} x {h}, {s.m.n_levels} levels, chunks {s.m.levels[0].chunks}, "
          f"shards {getattr(s.m.levels[0], 'shards', None)}; tiles 256 px, ms p50 / p95\n")
    print("| z | level | tiles | server cold | server warm (LRU) | direct render | naive full-level "
          "| p95 cold <= 300 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
