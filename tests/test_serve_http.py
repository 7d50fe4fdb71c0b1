"""The production tile service on a real uvicorn server on 127.0.0.1: Deep Zoom at every level,
ETags, bounded statistics, object stores, NAME.zarr, cut-outs, metric tiles, proxies, timeouts,
export-tiles, the CLI's flags, a load test with ``ab``, and every bad input (never a 500)."""

from __future__ import annotations

import asyncio
import io
import json
import math
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image
from cli_fixtures import served_url, start_cli
from test_serve import RAFTS, SHRINK, get, make_store, observed, write_detector  # noqa: F401  (the same fixture data)

from cpmosaic.mosaic import open_mosaic
from cpmosaic.serve import stores as stores_mod
from cpmosaic.serve import tiles
from cpmosaic.serve.geometry import trailing_zeros
from cpmosaic.serve.server import make_server


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory)


def metrics_table(m) -> pd.DataFrame:
    """A tidy metrics table: NOISE per amp = detector id + amp index / 100 (bias, run A)."""
    rows = []
    for p in m.plan.placements:
        for n, amp in enumerate(sorted(p.amp_boxes)):
            for calib, run, v in (("bias", "A", p.id + n / 100), ("dark", "B", -1.0)):
                rows.append({"instrument": "LSSTCam", "calib_type": calib, "run": run, "exposure": 1, "day_obs": 1,
                             "mjd": 0.0, "detector": p.id, "detector_name": p.name, "amp": amp, "tier": "amp",
                             "metric": "NOISE", "value": v, "passed": True})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def server(store):
    srv = make_server([str(store)], port=0, metrics=metrics_table(open_mosaic(store)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def png(srv, path: str) -> np.ndarray:
    status, headers, body = get(srv, path)
    assert status == 200, body
    assert headers["Content-Type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))


def gray(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    v = np.clip((values.astype(np.float64) - lo) / (hi - lo), 0, 1)
    return np.where(np.isfinite(values), np.floor(np.nan_to_num(v) * 255 + 0.5), -1).astype(np.int16)


def dzi_reference(m, level: int) -> tuple[np.ndarray, np.ndarray]:
    """Deep Zoom level ``level`` from level 0 in plain numpy, anchored at the TOP-left corner:
    ``(block means, blocks with every pixel finite)``."""
    a = m.read(0)[::-1].astype(np.float64)  # display rows from the top
    h, w = a.shape
    top = math.ceil(math.log2(max(h, w)))
    d = 2 ** (top - level)
    pad = np.full((-(-h // d) * d, -(-w // d) * d), np.nan)
    pad[:h, :w] = a
    blocks = pad.reshape(pad.shape[0] // d, d, pad.shape[1] // d, d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(blocks, axis=(1, 3)), np.isfinite(blocks).all(axis=(1, 3))


# -- Deep Zoom --------------------------------------------------------------------------------------
def test_deep_zoom_every_level_is_anchored_top_left(store):
    """Every level's tiles equal top-left anchored block means of level 0 (values, not colours)."""
    m = open_mosaic(store)
    h, w = m.shape(0)
    top = math.ceil(math.log2(max(h, w)))
    # the store's pyramid is anchored at the bottom and H is not a multiple of 2**top:
    # the two anchors differ at the coarse levels, so this test sees a level offset
    assert trailing_zeros(h) < m.n_levels - 1
    for level in range(top + 1):
        ref, full = dzi_reference(m, level)
        for col, row in {(0, 0), ((ref.shape[1] - 1) // 254, (ref.shape[0] - 1) // 254)}:
            got = tiles.dzi_values(m, level, col, row)
            r0, c0 = max(row * 254 - 1, 0), max(col * 254 - 1, 0)
            want = ref[r0:r0 + got.shape[0], c0:c0 + got.shape[1]]
            ok = full[r0:r0 + got.shape[0], c0:c0 + got.shape[1]]
            assert got.shape == want.shape, level
            assert np.isfinite(got[ok]).all()
            np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5, err_msg=f"level {level}")
            assert np.array_equal(np.isnan(got), np.isnan(want)), f"level {level}: coverage differs"


@pytest.mark.parametrize("level_from_top", [0, 2, 3, 4, 5])
def test_deep_zoom_png_at_several_levels(server, store, level_from_top):
    """Over HTTP with a tight rescale (a row's offset is many grey levels): tile pixels equal
    the top-anchored reference at several levels."""
    m = open_mosaic(store)
    h, w = m.shape(0)
    level = math.ceil(math.log2(max(h, w))) - level_from_top
    ref, full = dzi_reference(m, level)
    y0, y1, x0, x1 = m.placements["R22_S11"].box
    d = 2 ** (math.ceil(math.log2(max(h, w))) - level)
    col, row = (x0 + x1) // 2 // d // 254, (h - 1 - (y0 + y1) // 2) // d // 254
    r0, c0 = max(row * 254 - 1, 0), max(col * 254 - 1, 0)
    t = png(server, f"/visit/dzi_files/{level}/{col}_{row}.png?rescale=1,2")  # shape only
    want = ref[r0:r0 + t.shape[0], c0:c0 + t.shape[1]]
    ok = full[r0:r0 + t.shape[0], c0:c0 + t.shape[1]]
    # 16 x 16 pixels at the detector's centre span the whole grey ramp: a fraction of a row's
    # offset moves many grey levels
    rc, cc = (h - 1 - (y0 + y1) // 2) // d - r0, (x0 + x1) // 2 // d - c0
    rows, cols = np.arange(ok.shape[0])[:, None], np.arange(ok.shape[1])[None, :]
    band = ok & (abs(rows - rc) <= 8) & (abs(cols - cc) <= 8)
    assert band.sum() >= 4
    lo, hi = float(want[band].min()), float(want[band].max())
    got = observed(png(server, f"/visit/dzi_files/{level}/{col}_{row}.png?rescale={lo!r},{hi!r}"))
    expect = gray(want, lo, hi)
    assert np.abs(got[band] - expect[band]).max() <= 1


# -- caching, ETag ------------------------------------------------------------------------------------
def test_etag_and_304(server):
    path = "/visit/tiles/1/0/1.png?stretch=asinh"
    status, headers, body = get(server, path)
    etag = headers["ETag"]
    assert status == 200 and etag.startswith('"')
    status, h2, body2 = get(server, path, {"If-None-Match": etag})
    assert status == 304 and body2 == b"" and h2["ETag"] == etag
    assert get(server, "/visit/tiles/1/0/1.png?stretch=log")[1]["ETag"] != etag
    assert get(server, path, {"If-None-Match": '"other"'})[0] == 200
    status, headers, _ = get(server, "/visit/zarr/zarr.json")
    assert get(server, "/visit/zarr/zarr.json", {"If-None-Match": headers["ETag"]})[0] == 304


def test_tile_cache_is_bounded(store):
    srv = make_server([str(store)], port=0, cache_bytes=60_000, chunk_cache_bytes=100_000)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for x in range(4):
            for y in range(4):
                get(srv, f"/visit/tiles/2/{x}/{y}.png")
        assert 0 < srv.cache.size <= 60_000
        assert srv.stores["visit"].chunks.lru.size <= 100_000
    finally:
        srv.shutdown()
        srv.server_close()


# -- statistics ---------------------------------------------------------------------------------------
def test_statistics_once_per_level_from_a_bounded_sample(server, store, monkeypatch):
    m = open_mosaic(store)
    monkeypatch.setattr(stores_mod, "STATS_SAMPLE_PIXELS", 64 * 64 * 4)
    s = server.stores["visit"]
    s._samples.clear()
    s.statistics_cache.clear()
    docs = []
    threads = [threading.Thread(target=lambda: docs.append(json.loads(get(server, "/visit/statistics?level=0")[2])))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(docs) == 8 and all(d == docs[0] for d in docs)
    assert list(s._samples) == [0]  # one sample, computed once
    doc = docs[0]
    a = m.read(0)
    a = a[np.isfinite(a)]
    assert doc["exact"] is False and 0 < doc["sample_count"] <= 2 * 64 * 64 * 4
    assert a.min() <= doc["min"] <= doc["max"] <= a.max()
    # a coarse level that fits the bound is exact
    k = m.n_levels - 1
    d = m.read(k)
    d = d[np.isfinite(d)]
    exact = json.loads(get(server, f"/visit/statistics?level={k}&p=50")[2])
    assert exact["exact"] is True and exact["count"] == d.size
    assert exact["percentiles"]["p50"] == pytest.approx(np.median(d))


# -- files: object stores, NAME.zarr, Range ---------------------------------------------------------
@pytest.fixture(scope="module")
def memory_server(store):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.put(str(store), "/http-test/visit.zarr", recursive=True)
    srv = make_server([str(store), "mem=memory://http-test/visit.zarr"], port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()
    fs.rm("/http-test", recursive=True)


def test_object_store_tiles_and_files(memory_server, store):
    for path in ("tiles/1/0/1.png", "dzi_files/9/1_1.png", "info"):
        a, b = get(memory_server, f"/visit/{path}")[2], get(memory_server, f"/mem/{path}")[2]
        assert a == b.replace(b'"mem"', b'"visit"'), path
    status, headers, body = get(memory_server, "/mem/zarr/zarr.json")
    assert status == 200 and body == (store / "zarr.json").read_bytes()
    shard = next(p for p in sorted((store / "0" / "c").rglob("*")) if p.is_file())
    rel, data = shard.relative_to(store).as_posix(), shard.read_bytes()
    status, headers, body = get(memory_server, f"/mem/zarr/{rel}", {"Range": "bytes=-16"})
    assert status == 206 and body == data[-16:] and headers["Content-Range"] == (
        f"bytes {len(data) - 16}-{len(data) - 1}/{len(data)}")
    status, _, body = get(memory_server, f"/mem.zarr/{rel}", {"Range": "bytes=3-10"})
    assert status == 206 and body == data[3:11]
    assert get(memory_server, "/mem/zarr/0/nope")[0] == 404
    assert get(memory_server, "/mem/zarr/../../etc/passwd")[0] == 404


def test_ome_zarr_opens_the_napari_url(memory_server, store):
    """napari-ome-zarr accepts only ``*.zarr`` paths: ``http://HOST/NAME.zarr`` is one, and
    ome-zarr-py (what the plugin calls) reads the whole pyramid from it, local and object store."""
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    m = open_mosaic(store)
    for name in ("visit", "mem"):
        url = f"{memory_server.url}/{name}.zarr"
        assert url.endswith(".zarr")
        nodes = list(Reader(parse_url(url))())
        pyramid = nodes[0].data
        assert [tuple(d.shape) for d in pyramid] == [m.shape(k) for k in range(m.n_levels)]
        assert np.array_equal(np.asarray(pyramid[-2]), m.read(m.n_levels - 2), equal_nan=True)


def test_256_parallel_range_reads(server, store):
    """256 concurrent zarr-style clients (aiohttp) all get their bytes: a real listen backlog."""
    aiohttp = pytest.importorskip("aiohttp")
    shard = next(p for p in sorted((store / "0" / "c").rglob("*")) if p.is_file())
    rel, data = shard.relative_to(store).as_posix(), shard.read_bytes()

    async def main():
        conn = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=conn) as sess:
            async def one(i):
                a = i % max(len(data) - 8, 1)
                async with sess.get(f"{server.url}/visit/zarr/{rel}", headers={"Range": f"bytes={a}-{a + 7}"},
                                    timeout=aiohttp.ClientTimeout(total=60)) as r:
                    return r.status, await r.read(), a
            return await asyncio.gather(*(one(i) for i in range(256)))

    for status, body, a in asyncio.run(main()):
        assert status == 206 and body == data[a:a + 8]


# -- cut-outs -----------------------------------------------------------------------------------------
def test_cutout_fits(server, store):
    from astropy.wcs import WCS

    m = open_mosaic(store)
    y0, y1, x0, x1 = m.placements["R22_S11"].box
    # a box across R22_S11's lower-left corner, in mm
    # corners between pixel centres (a corner on a centre is a floating-point coin toss)
    xa, ya = (float(v) for v in m.pixel_to_focal_plane(1, (y0 - 10) / 2 + 0.3, (x0 - 10) / 2 + 0.3))
    xb, yb = (float(v) for v in m.pixel_to_focal_plane(1, (y0 + 30) / 2 + 0.3, (x0 + 40) / 2 + 0.3))
    status, headers, body = get(server, f"/visit/cutout.fits?x0={xb!r}&y0={yb!r}&x1={xa!r}&y1={ya!r}&level=1")
    assert status == 200 and headers["Content-Type"] == "application/fits"
    with fits.open(io.BytesIO(body)) as hdul:
        data, hdr = hdul[0].data, hdul[0].header
        cov, prov = hdul["COVERAGE"].data, hdul["PROVENANCE"].data
        # independent: level-1 pixels whose centres fall in the box
        lv = m.read(1)
        ii, jj = np.mgrid[0:lv.shape[0], 0:lv.shape[1]]
        fx, fy = m.pixel_to_focal_plane(1, ii, jj)
        inside = (fx >= min(xa, xb)) & (fx <= max(xa, xb)) & (fy >= min(ya, yb)) & (fy <= max(ya, yb))
        rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
        want = lv[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert np.array_equal(data, want, equal_nan=True)
        w = WCS(hdr)
        for (r, c) in ((0, 0), (data.shape[0] - 1, data.shape[1] - 1)):
            got = w.pixel_to_world_values(c, r)
            exp = m.pixel_to_focal_plane(1, rows[0] + r, cols[0] + c)
            assert got == pytest.approx((float(exp[0]), float(exp[1])))
        assert hdr["CUNIT1"].strip() == "mm" and hdr["LEVEL"] == 1 and hdr["CAMERA"] == m.camera
        dets = {hdr[f"DET{n:04d}"] for n in range(1, hdr["NDET"] + 1)}
        assert "R22_S11" in dets
        box0 = (rows[0] * 2, (rows[-1] + 1) * 2, cols[0] * 2, (cols[-1] + 1) * 2)
        assert dets == {p.name for p in m.plan.placements_in(box0)}
        amps = {(d.strip(), a.strip()) for d, a in zip(cov["DETECTOR"], cov["AMP"])}
        p = m.placements["R22_S11"]
        corner = next(a for a, (ay0, ay1, ax0, ax1) in p.amp_boxes.items() if ay0 == y0 and ax0 == x0)
        assert ("R22_S11", corner) in amps
        assert {d.strip() for d in prov["DETECTOR"]} <= dets and len(prov) > 0
        assert all(Path(x.strip()).exists() for x in prov["PATH"])


def test_cutout_limits(server):
    assert get(server, "/visit/cutout.fits?x0=-400&y0=-400&x1=400&y1=400&level=0")[0] == 200  # small store
    s = server.stores["visit"]
    h, w = s.m.shape(0)
    status, _, body = get(server, "/visit/cutout.fits?x0=9000&y0=9000&x1=9001&y1=9001")
    assert status == 404
    srv = make_server([f"visit={s.location}"], port=0, max_cutout_pixels=1000)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for box in ("x0=-400&y0=-400&x1=400&y1=400", "x0=-1e308&y0=-1e308&x1=1e308&y1=1e308"):
            status, _, body = get(srv, f"/visit/cutout.fits?{box}&level=0")
            assert status == 400 and "1000" in json.loads(body)["error"]
    finally:
        srv.shutdown()
        srv.server_close()


# -- metric tiles -------------------------------------------------------------------------------------
def test_metric_overlay_colours_amp_polygons(server, store):
    from bokeh.palettes import Viridis256

    m = open_mosaic(store)
    zmax = server.stores["visit"].grid.maxzoom
    g = server.stores["visit"].grid
    p = m.placements["R22_S11"]
    amps = sorted(p.amp_boxes)
    lo, hi = p.id - 1.0, p.id + 1.0
    for n in (0, 5):
        ay0, ay1, ax0, ax1 = p.amp_boxes[amps[n]]
        i, j = (ay0 + ay1) // 2, (ax0 + ax1) // 2  # level-0 pixel in the amp
        wy, wx = g.world - 1 - (i + g.offset_y), j + g.offset_x  # tile-world pixel (rows from the top)
        path = f"/visit/tiles/{zmax}/{wx // 256}/{wy // 256}.png"
        t = png(server, path + f"?overlay=NOISE&calib_type=bias&run=A&overlay_range={lo},{hi}&overlay_alpha=1")
        v = p.id + n / 100
        c = Viridis256[int((v - lo) / (hi - lo) * 255 + 0.5)]
        assert tuple(t[wy % 256, wx % 256]) == (int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16), 255)
        plain = png(server, path)
        assert tuple(plain[wy % 256, wx % 256][:3]) != tuple(t[wy % 256, wx % 256][:3])
    # half transparent: between the image and the metric colour
    t = png(server, path + f"?overlay=NOISE&calib_type=bias&overlay_range={lo},{hi}&overlay_alpha=0.5")
    assert tuple(t[wy % 256, wx % 256]) not in (tuple(plain[wy % 256, wx % 256]), (int(c[1:3], 16), 0, 0, 0))
    # Deep Zoom too
    assert png(server, "/visit/dzi_files/8/0_0.png?overlay=NOISE&calib_type=bias").shape[2] == 4


# -- proxies --------------------------------------------------------------------------------------------
def test_public_url_and_host_header(store):
    srv = make_server([str(store)], port=0, public_url="https://tiles.example.org/mosaics")
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        tj = json.loads(get(srv, "/visit/tilejson.json", {"Host": "evil.example.com"})[2])
        assert tj["tiles"][0] == "https://tiles.example.org/mosaics/visit/tiles/{z}/{x}/{y}.png"
        assert "evil" not in json.dumps(tj)
    finally:
        srv.shutdown()
        srv.server_close()
    srv = make_server([str(store)], port=0)  # default: the server's own address, not Host
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        tj = json.loads(get(srv, "/visit/tilejson.json", {"Host": "evil.example.com"})[2])
        assert tj["tiles"][0].startswith(srv.url + "/visit/") and "evil" not in json.dumps(tj)
    finally:
        srv.shutdown()
        srv.server_close()


def test_create_app_mounted_in_another_starlette_app(store):
    """Users mount the app in their own service: relative URLs carry the mount's prefix."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from cpmosaic.serve import create_app

    outer = Starlette(routes=[Route("/health", lambda r: PlainTextResponse("ok")),
                              Mount("/mosaics", create_app([str(store)]))])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(outer, lifespan="off", log_config=None))
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    base = "http://127.0.0.1:%d" % sock.getsockname()[1]
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with urllib.request.urlopen(base + "/mosaics/visit/tilejson.json", timeout=10) as r:
            tj = json.loads(r.read())
        assert tj["tiles"][0] == "/mosaics/visit/tiles/{z}/{x}/{y}.png"
        with urllib.request.urlopen(base + "/mosaics/visit/tiles/0/0/0.png", timeout=10) as r:
            assert r.headers["Content-Type"] == "image/png"
        with urllib.request.urlopen(base + "/health", timeout=10) as r:
            assert r.read() == b"ok"
    finally:
        server.should_exit = True
        th.join(timeout=10)
        sock.close()


# -- connections ------------------------------------------------------------------------------------------
def test_idle_and_header_timeouts(store):
    srv = make_server([str(store)], port=0, keep_alive=1.0, header_timeout=1.0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    host, port = srv.server_address
    try:
        silent = socket.create_connection((host, port), timeout=10)   # sends nothing
        slow = socket.create_connection((host, port), timeout=10)     # half a request head
        slow.sendall(b"GET /visit/info HTTP/1.1\r\nHost: x\r\n")
        idle = socket.create_connection((host, port), timeout=10)     # one request, then idle
        idle.sendall(b"GET /visit/info HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(12) == b"HTTP/1.1 200"
        for s in (silent, slow, idle):
            buf = b""
            while chunk := s.recv(65536):  # the server closes: recv returns b"" (else the 10 s timeout raises)
                buf += chunk
            s.close()
    finally:
        srv.shutdown()
        srv.server_close()


# -- bad inputs: never a 500, never a file outside a store ------------------------------------------------
@pytest.mark.parametrize("path,headers,status,param", [
    ("/visit/zarr/%00", {}, 404, None),
    ("/visit/zarr/zarr.json%00.png", {}, 404, None),
    ("/visit/zarr/..%2F..%2F..%2Fetc%2Fpasswd", {}, 404, None),
    ("/visit/zarr/0/../../../../etc/passwd", {}, 404, None),
    ("/visit.zarr/%2e%2e/%2e%2e/etc/passwd", {}, 404, None),
    ("/visit/zarr/zarr.json", {"Range": "bytes=9-4"}, 416, "Range"),
    ("/visit/zarr/zarr.json", {"Range": "bytes=99999999-"}, 416, "Range"),
    ("/visit/zarr/zarr.json", {"Range": "bytes=-0"}, 416, "Range"),
    ("/visit/point?x_mm=1e308&y_mm=0", {}, 404, None),
    ("/visit/point?x_mm=-1e308&y_mm=1e308", {}, 404, None),
    ("/visit/point?x_mm=nan&y_mm=0", {}, 400, "x_mm"),
    ("/visit/point?x_mm=inf&y_mm=0", {}, 400, "x_mm"),
    ("/visit/point?x_mm=1e999&y_mm=0", {}, 400, "x_mm"),
    ("/visit/statistics?level=-1", {}, 400, "level"),
    ("/visit/statistics?level=1e3", {}, 400, "level"),
    ("/visit/statistics?p=abc", {}, 400, "p"),
    ("/visit/statistics?p=101", {}, 400, "p"),
    ("/visit/statistics?bins=0", {}, 400, "bins"),
    ("/visit/statistics?bins=99999999999999999999", {}, 400, "bins"),
    ("/visit/tiles/99999999999999999999/0/0.png", {}, 404, None),
    ("/visit/tiles/1/0/99999999999999999999.png", {}, 404, None),
    ("/visit/tiles/1/0/0.jpg", {}, 404, None),
    ("/visit/tiles/1/-1/0.png", {}, 404, None),
    ("/visit/tiles/0/0/0.png?rescale=nan,1", {}, 400, "rescale"),
    ("/visit/tiles/0/0/0.png?rescale=-inf,inf", {}, 400, "rescale"),
    ("/visit/tiles/0/0/0.png?colormap=%5B1%5D", {}, 400, "colormap"),
    ("/visit/tiles/0/0/0.png?colormap=%7B%22999%22%3A%5B1%2C2%2C3%5D%7D", {}, 400, "colormap"),
    ("/visit/tiles/0/0/0.png?overlay=NOPE", {}, 400, "overlay"),
    ("/visit/tiles/0/0/0.png?overlay=NOISE&calib_type=flat", {}, 400, "calib_type"),
    ("/visit/tiles/0/0/0.png?overlay=NOISE&overlay_alpha=2", {}, 400, "overlay_alpha"),
    ("/visit/tiles/0/0/0.png?overlay=NOISE&overlay_range=3,1", {}, 400, "overlay_range"),
    ("/visit/dzi_files/99999999999999999999/0_0.png", {}, 404, None),
    ("/visit/dzi_files/3/0_0.jpg", {}, 404, None),
    ("/visit/dzi_files/3/9_9.png", {}, 404, None),
    ("/visit/cutout.fits?x0=0&y0=0&x1=1", {}, 400, "y1"),
    ("/visit/cutout.fits?x0=0&y0=0&x1=1&y1=nan", {}, 400, "y1"),
    ("/visit/cutout.fits?x0=0&y0=0&x1=1&y1=1&level=-1", {}, 400, "level"),
    ("/visit/cutout.fits?x0=0&y0=0&x1=1&y1=1&level=99", {}, 400, "level"),
    ("/nosuch/info", {}, 404, None),
    ("/visit/nosuch", {}, 404, None),
    ("/visit/tiles/a/b/c.png", {}, 404, None),
])
def test_bad_inputs(server, path, headers, status, param):
    before = len(server.requests)
    code, hdrs, body = get(server, path, headers)
    doc = json.loads(body)
    assert (code, doc["status"], doc.get("parameter")) == (status, status, param), (path, doc)
    assert hdrs["Access-Control-Allow-Origin"] == "*"
    assert not any(r[2] >= 500 for r in list(server.requests)[before:])


def test_raw_bad_requests_are_not_500(server):
    """Bytes no client library would send: a raw NUL, a bad method, a broken request line."""
    host, port = server.server_address
    for raw in (b"GET /visit/zarr/\x00 HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /visit/info HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 0\r\n\r\n", b"GARBAGE\r\n\r\n", b"GET /visit/zarr/zarr.json HTTP/1.1\r\n"
                b"Host: x\r\nRange: bytes=--\r\n\r\n"):
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(raw)
            line = s.recv(64).split(b"\r\n")[0]
        code = int(line.split()[1])
        assert code in (200, 400, 404, 405), (raw, line)  # a Range not understood is ignored: 200
    tmp = Path(server.stores["visit"].location)
    link = tmp / "escape"
    if not link.exists():
        link.symlink_to("/etc")
    try:
        assert get(server, "/visit/zarr/escape/passwd")[0] == 404
    finally:
        link.unlink()


# -- the command line -----------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [["--cache-mb", "-5"], ["--port", "70000"], ["--port", "-1"],
                                   ["--workers", "0"], ["--storage-options", "[1]"],
                                   ["--storage-options", "{bad"], ["--chunk-cache-mb", "x"],
                                   ["--header-timeout", "0"]])
def test_cli_rejects_bad_flags(store, flags):
    r = subprocess.run([sys.executable, "-m", "cpmosaic", "serve", str(store), *flags],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and flags[0] in r.stderr


def _start_cli(args: list[str]) -> tuple[subprocess.Popen, str]:
    """``cpmosaic serve *args --port 0``; the process and its base URL."""
    proc, line, _ = start_cli(["serve", *args, "--port", "0"])
    return proc, served_url(line)


def test_cli_workers_root_path_and_storage_options(store):
    proc, url = _start_cli([str(store), "--workers", "2", "--root-path", "/mosaics",
                            "--storage-options", '{"anon": true}'])
    try:
        assert url.endswith("/mosaics")
        origin = url.removesuffix("/mosaics")
        for _ in range(100):  # the workers start after the socket is bound
            try:
                with urllib.request.urlopen(origin + "/visit/tilejson.json", timeout=10) as r:
                    tj = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        # behind a proxy that strips /mosaics: the TileJSON points at the public prefix
        assert tj["tiles"][0].startswith(url + "/visit/tiles/")
        paths = [f"/visit/tiles/2/{x}/{y}.png" for x in range(4) for y in range(4)]
        with __import__("concurrent.futures").futures.ThreadPoolExecutor(8) as ex:
            codes = list(ex.map(lambda p: urllib.request.urlopen(origin + p, timeout=30).status, paths * 4))
        assert codes == [200] * len(codes)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_export_tiles_dzi_and_xyz(server, store, tmp_path):
    m = open_mosaic(store)
    out = tmp_path / "dzi"
    r = subprocess.run([sys.executable, "-m", "cpmosaic", "export-tiles", str(store), "--format", "dzi", "-o",
                        str(out), "--stretch", "asinh", "--rescale", "1e4,2e5", "--workers", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    root = ET.fromstring((out / "visit.dzi").read_text())
    size = root.find("{http://schemas.microsoft.com/deepzoom/2008}Size")
    assert (int(size.get("Height")), int(size.get("Width"))) == m.shape(0)
    h, w = m.shape(0)
    top = math.ceil(math.log2(max(h, w)))
    n_expected = 0
    for lv in range(top + 1):
        d = 2 ** (top - lv)
        n_expected += math.ceil(math.ceil(h / d) / 254) * math.ceil(math.ceil(w / d) / 254)
    assert len(list((out / "visit_files").rglob("*.png"))) == n_expected
    for level, col, row in ((top, 1, 2), (top - 2, 0, 0), (3, 0, 0)):
        path = f"/visit/dzi_files/{level}/{col}_{row}.png?stretch=asinh&rescale=1e4,2e5"
        assert (out / "visit_files" / str(level) / f"{col}_{row}.png").read_bytes() == get(server, path)[2]
    out = tmp_path / "xyz"
    r = subprocess.run([sys.executable, "-m", "cpmosaic", "export-tiles", str(store), "--format", "xyz", "-o",
                        str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    tj = json.loads((out / "tilejson.json").read_text())
    assert tj["tiles"] == ["{z}/{x}/{y}.png"] and tj["maxzoom"] == server.stores["visit"].grid.maxzoom
    files = sorted(out.rglob("*.png"))
    assert files
    for f in files[:: max(1, len(files) // 6)]:
        z, x, y = f.relative_to(out).with_suffix("").parts
        assert f.read_bytes() == get(server, f"/visit/tiles/{z}/{x}/{y}.png")[2]
    r = subprocess.run([sys.executable, "-m", "cpmosaic", "export-tiles", str(store), "-o", str(tmp_path / "x"),
                        "--stretch", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "stretch" in r.stderr


# -- load --------------------------------------------------------------------------------------------------
def test_load_with_ab(server):
    """A bounded load test: 8 keep-alive clients, 2,000 tile requests, no failure, no 5xx."""
    ab = shutil.which("ab")
    if ab is None:
        pytest.skip("ab (apache2-utils) is not installed")
    url = f"{server.url}/visit/tiles/1/0/1.png"
    get(server, "/visit/tiles/1/0/1.png")  # warm
    r = subprocess.run([ab, "-q", "-k", "-n", "2000", "-c", "8", url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Complete requests:      2000" in out and "Failed requests:        0" in out
    assert "Non-2xx responses" not in out and "Keep-Alive requests:    2000" in out
