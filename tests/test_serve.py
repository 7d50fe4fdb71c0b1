"""The tile server over real HTTP on 127.0.0.1: tiles against numpy, Deep Zoom, /point, zarr files, errors."""

from __future__ import annotations

import io
import json
import math
import threading
import urllib.error
import urllib.request
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from cli_fixtures import served_url, start_cli, stop_cli
from PIL import Image

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.mosaic import build_mosaic, open_mosaic
from cpmosaic.serve.app import make_server

SHRINK = 32  # as tests/test_mosaic_build.py: detectors of 128 x 125 pixels
#: Rafts written (the others, corner rafts included, are missing: NaN).  R43 is high in y, R01 low.
RAFTS = ("R01", "R10", "R22", "R43")
LO, HI = 10000.0, 150000.0


def write_detector(path: Path, det) -> None:
    """Distinctive content, id*1000 + x + 10*y (orientation errors show), as a processed FITS."""
    h, w = det.shape
    y, x = np.mgrid[0:h, 0:w]
    hdr = fits.Header({"DETNAME": det.name, "INSTRUME": "LSSTCam"})
    image = (det.id * 1000 + x + 10 * y).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(image, name="IMAGE")]).writeto(path)


def make_store(tmp_path_factory) -> Path:
    """The served test store: the RAFTS' detectors of a shrunk LSSTCam, binning 2 (the server tests share it)."""
    cam = shrink_camera(get_camera("LSSTCam"), SHRINK)
    d = tmp_path_factory.mktemp("serve_in")
    for det in cam:
        if det.raft in RAFTS:
            write_detector(d / f"img_{det.name}.fits", det)
    out = tmp_path_factory.mktemp("serve_store") / "visit.zarr"
    build_mosaic([d], out, camera=cam, binning=2, chunk=64, shard=(128, 128), progress=False)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory)


@pytest.fixture(scope="module")
def server(store):
    srv = make_server([str(store), f"other={store}"], host="127.0.0.1", port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def get(srv, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(srv.url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def png(srv, path: str) -> np.ndarray:
    status, headers, body = get(srv, path)
    assert status == 200, body
    assert headers["Content-Type"] == "image/png"
    im = Image.open(io.BytesIO(body))
    # tiles are grey, palette (with tRNS), grey+alpha or RGBA PNGs: whichever is smallest
    assert im.mode in ("L", "P", "LA", "RGBA"), im.mode
    return np.asarray(im.convert("RGBA"))


def gray(values: np.ndarray) -> np.ndarray:
    """Independent linear stretch with rescale=LO,HI onto the gray ramp (NaN -> alpha 0)."""
    v = np.clip((values.astype(np.float64) - LO) / (HI - LO), 0, 1)
    g = np.floor(np.nan_to_num(v) * 255 + 0.5).astype(np.int16)
    return np.where(np.isfinite(values), g, -1)


def observed(rgba: np.ndarray) -> np.ndarray:
    assert np.array_equal(rgba[..., 0], rgba[..., 1]) and np.array_equal(rgba[..., 0], rgba[..., 2])
    return np.where(rgba[..., 3] > 0, rgba[..., 0].astype(np.int16), -1)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert np.array_equal(got < 0, want < 0), "transparent pixels differ"
    # float32 vs float64 arithmetic may round a value sitting on .5 the other way
    assert np.abs(got - want).max() <= 1


def level0_world(m, zmax: int, ox: int, oy: int) -> np.ndarray:
    """Level 0 placed in the tile world at maxzoom (256 * 2**zmax pixels a side), +y up as tiles are."""
    a = m.read(0)
    world = np.full((256 * 2**zmax,) * 2, np.nan)
    world[oy:oy + a.shape[0], ox:ox + a.shape[1]] = a
    return world[::-1]


def offsets(srv, m) -> tuple[int, int, int]:
    """(maxzoom, ox, oy) from TileJSON: level-0 pixels between the world's left/bottom and the mosaic."""
    tj = json.loads(get(srv, "/visit/tilejson.json")[2])
    wx0, wy0, _, _ = tj["world_bounds_mm"]
    xmin, _, ymin, _ = m.extent_mm(0)
    px = m.scale_um(0)[0] / 1000.0
    return tj["maxzoom"], round((xmin - wx0) / px), round((ymin - wy0) / px)


def test_tilejson(server, store):
    status, headers, body = get(server, "/visit/tilejson.json")
    tj = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert tj["tilejson"] == "3.0.0" and tj["scheme"] == "xyz" and tj["name"] == "visit"
    assert tj["tiles"][0].endswith("/visit/tiles/{z}/{x}/{y}.png") and tj["tiles"][0].startswith(server.url)
    m = open_mosaic(store)
    xmin, xmax, ymin, ymax = m.extent_mm(0)
    assert tj["bounds"] == pytest.approx([xmin, ymin, xmax, ymax])
    assert tj["minzoom"] == 0 and 256 * 2 ** tj["maxzoom"] >= max(m.shape(0)) > 128 * 2 ** tj["maxzoom"]
    assert len(tj["center"]) == 3 and "not longitude/latitude" in tj["description"]
    assert set(json.loads(get(server, "/stores.json")[2])) == {"visit", "other"}


def test_tile_sizes_and_cache(server):
    assert png(server, "/visit/tiles/1/0/0.png").shape == (256, 256, 4)
    assert png(server, "/visit/tiles/1/0/0@2x.png").shape == (512, 512, 4)
    hits = server.cache.hits
    png(server, "/visit/tiles/1/0/0.png")
    assert server.cache.hits == hits + 1


def test_concurrent_requests_agree(server):
    """Threads rendering the same uncached tiles at once get the same bytes as one at a time."""
    paths = [f"/visit/tiles/2/{x}/{y}.png?stretch=asinh&rescale=1,2e5" for x in range(4) for y in range(4)]
    results: dict[str, bytes] = {}

    def fetch(p: str) -> None:
        results[p] = get(server, p)[2]

    threads = [threading.Thread(target=fetch, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    server.cache.clear()
    assert all(results[p] == get(server, p)[2] for p in paths)


def test_z0_tile_is_the_whole_mosaic(server, store):
    m = open_mosaic(store)
    zmax, ox, oy = offsets(server, m)
    f = 2**zmax
    a = m.read(0)
    h, w = a.shape
    pad = np.full((-(-h // f) * f, -(-w // f) * f), np.nan)
    pad[:h, :w] = a
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        small = np.nanmean(pad.reshape(pad.shape[0] // f, f, pad.shape[1] // f, f), axis=(1, 3))
    world = np.full((256, 256), np.nan)
    world[oy // f:oy // f + small.shape[0], ox // f:ox // f + small.shape[1]] = small
    got = observed(png(server, f"/visit/tiles/0/0/0.png?rescale={LO},{HI}"))
    assert_close(got, gray(world[::-1]))
    assert (got >= 0).sum() == np.isfinite(small).sum()


def test_max_zoom_tiles_are_level0_flipped(server, store):
    """At maxzoom a tile pixel is a level-0 pixel: each tile is the stretched window, +y up."""
    m = open_mosaic(store)
    zmax, ox, oy = offsets(server, m)
    flipped = level0_world(m, zmax, ox, oy)
    n = 2**zmax
    for y in range(n):
        for x in range(n):
            got = observed(png(server, f"/visit/tiles/{zmax}/{x}/{y}.png?rescale={LO},{HI}"))
            assert_close(got, gray(flipped[256 * y:256 * (y + 1), 256 * x:256 * (x + 1)]))
    # @2x at maxzoom: each level-0 pixel twice in each direction
    got = observed(png(server, f"/visit/tiles/{zmax}/1/1@2x.png?rescale={LO},{HI}"))
    assert_close(got, np.repeat(np.repeat(gray(flipped[256:512, 256:512]), 2, 0), 2, 1))


def test_plus_y_is_up(server, store):
    m = open_mosaic(store)
    zmax, ox, oy = offsets(server, m)
    f = 2**zmax
    tile = png(server, "/visit/tiles/0/0/0.png")
    rows = {}
    for name in ("R43_S11", "R01_S11"):
        y0, y1, x0, x1 = m.placements[name].box
        row = 255 - (oy + (y0 + y1) // 2) // f
        col = (ox + (x0 + x1) // 2) // f
        assert tile[row, col, 3] == 255, name
        rows[name] = row
    assert rows["R43_S11"] < 128 < rows["R01_S11"]
    # the focal-plane y of R43 is high
    assert m.pixel_to_focal_plane(0, m.placements["R43_S11"].box[0], 0)[1] > 0


def test_empty_tile_is_transparent(server, store):
    """Tiles over missing rafts or outside the focal plane are transparent PNGs of the full size."""
    m = open_mosaic(store)
    zmax, ox, oy = offsets(server, m)
    flipped = level0_world(m, zmax, ox, oy)
    empty = [(x, y) for y in range(2**zmax) for x in range(2**zmax)
             if np.isnan(flipped[256 * y:256 * (y + 1), 256 * x:256 * (x + 1)]).all()]
    assert empty
    for x, y in empty:
        for suffix, n in (("", 256), ("@2x", 512)):
            tile = png(server, f"/visit/tiles/{zmax}/{x}/{y}{suffix}.png")
            assert tile.shape == (n, n, 4) and not tile[..., 3].any()


@pytest.mark.parametrize("stretch", ["linear", "log", "asinh", "zscale", "percentile", "eq_hist"])
def test_stretches_and_colormaps(server, stretch):
    t = png(server, f"/visit/tiles/1/0/1.png?stretch={stretch}&colormap_name=viridis")
    opaque = t[t[..., 3] > 0]
    assert opaque.size and (opaque[:, 0] != opaque[:, 2]).any()  # coloured, not gray


def test_nodata_and_json_colormap(server, store):
    m = open_mosaic(store)
    zmax, ox, oy = offsets(server, m)
    a = m.read(0)
    i, j = np.argwhere(np.isfinite(a))[0]
    x, y = (ox + j) % 256, 255 - (oy + i) % 256
    path = f"/visit/tiles/{zmax}/{(ox + j) // 256}/{2**zmax - 1 - (oy + i) // 256}.png"
    assert png(server, path)[y, x, 3] == 255
    assert png(server, path + f"?nodata={float(a[i, j])!r}")[y, x, 3] == 0
    cmap = urllib.request.quote(json.dumps({"0": [255, 0, 0], "255": [255, 0, 0, 255]}))
    red = png(server, path + f"?colormap={cmap}")
    assert tuple(red[y, x]) == (255, 0, 0, 255)


def test_dzi(server, store):
    m = open_mosaic(store)
    h, w = m.shape(0)
    status, headers, body = get(server, "/visit/dzi.dzi")
    assert status == 200 and "xml" in headers["Content-Type"]
    root = ET.fromstring(body)
    ns = "{http://schemas.microsoft.com/deepzoom/2008}"
    assert root.tag == f"{ns}Image" and root.get("TileSize") == "254" and root.get("Overlap") == "1"
    size = root.find(f"{ns}Size")
    assert (int(size.get("Width")), int(size.get("Height"))) == (w, h)
    top = math.ceil(math.log2(max(w, h)))
    assert png(server, "/visit/dzi_files/0/0_0.png").shape[:2] == (1, 1)
    flipped = m.read(0)[::-1]
    got = observed(png(server, f"/visit/dzi_files/{top}/1_0.png?rescale={LO},{HI}"))
    assert_close(got, gray(flipped[0:255, 253:509]))
    got = observed(png(server, f"/visit/dzi_files/{top}/1_1.png?rescale={LO},{HI}"))
    assert_close(got, gray(flipped[253:509, 253:509]))
    assert get(server, f"/visit/dzi_files/{top}/99_0.png")[0] == 404
    assert get(server, f"/visit/dzi_files/{top + 1}/0_0.png")[0] == 404


def test_point(server, store):
    m = open_mosaic(store)
    a = m.read(0)
    for name in ("R22_S11", "R43_S02"):
        y0, y1, x0, x1 = m.placements[name].box
        i, j = y0 + 3, x1 - 5
        x_mm, y_mm = (float(v) for v in m.pixel_to_focal_plane(0, i, j))
        doc = json.loads(get(server, f"/visit/point?x_mm={x_mm!r}&y_mm={y_mm!r}")[2])
        assert doc["value"] == float(a[i, j]) and doc["detector"] == name
        assert (doc["row"], doc["col"]) == (i, j) and doc["amp"]
    status, _, body = get(server, "/visit/point?x_mm=9999&y_mm=0")
    assert status == 404 and "outside" in json.loads(body)["error"]


def test_info_and_statistics(server, store):
    m = open_mosaic(store)
    info = json.loads(get(server, "/visit/info")[2])
    assert [lv["shape"] for lv in info["levels"]] == [list(m.shape(k)) for k in range(m.n_levels)]
    assert info["camera"] == m.camera and info["binning"] == 2
    assert "R22_S11" in info["detectors"]["present"] and info["detectors"]["missing"]
    st = json.loads(get(server, "/visit/statistics?level=2&p=50")[2])
    d = m.read(2)
    d = d[np.isfinite(d)]
    assert st["min"] == pytest.approx(d.min()) and st["max"] == pytest.approx(d.max())
    assert st["mean"] == pytest.approx(d.mean(dtype=np.float64)) and st["count"] == d.size
    assert st["percentiles"]["p50"] == pytest.approx(np.median(d))
    assert json.loads(get(server, "/visit/statistics")[2])["level"] == m.n_levels - 1


def test_zarr_files_over_http(server, store):
    status, headers, body = get(server, "/visit/zarr/zarr.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body == (store / "zarr.json").read_bytes()
    shard = next(p for p in sorted((store / "0" / "c").rglob("*")) if p.is_file())
    rel = shard.relative_to(store).as_posix()
    data = shard.read_bytes()
    status, headers, body = get(server, f"/visit/zarr/{rel}", {"Range": "bytes=-20"})
    assert status == 206 and body == data[-20:] and headers["Content-Range"].endswith(f"/{len(data)}")
    status, _, body = get(server, f"/visit/zarr/{rel}", {"Range": "bytes=4-9"})
    assert status == 206 and body == data[4:10]
    for bad in ("/visit/zarr/../../../etc/passwd", "/visit/zarr/%2e%2e/%2e%2e/etc/passwd", "/visit/zarr/0/nope"):
        assert get(server, bad)[0] == 404


def test_ome_zarr_reads_the_store_over_http(server, store):
    pytest.importorskip("ome_zarr")
    pytest.importorskip("aiohttp")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    m = open_mosaic(store)
    nodes = list(Reader(parse_url(f"{server.url}/visit/zarr"))())
    pyramid = nodes[0].data
    assert [tuple(d.shape) for d in pyramid] == [m.shape(k) for k in range(m.n_levels)]
    assert np.array_equal(np.asarray(pyramid[-1]), m.read(m.n_levels - 1), equal_nan=True)


def test_cors_and_errors(server):
    for path, status, param in [
        ("/visit/tiles/0/0/0.png?stretch=nope", 400, "stretch"),
        ("/visit/tiles/0/0/0.png?rescale=5", 400, "rescale"),
        ("/visit/tiles/0/0/0.png?rescale=5,1", 400, "rescale"),
        ("/visit/tiles/0/0/0.png?colormap_name=nope", 400, "colormap_name"),
        ("/visit/tiles/0/0/0.png?colormap=%7Bx", 400, "colormap"),
        ("/visit/tiles/0/0/0.png?nodata=abc", 400, "nodata"),
        ("/visit/statistics?level=99", 400, "level"),
        ("/visit/point?x_mm=1", 400, "y_mm"),
        ("/visit/point?x_mm=a&y_mm=1", 400, "x_mm"),
        ("/nosuch/tilejson.json", 404, None),
        ("/visit/nosuch", 404, None),
        ("/visit/tiles/30/0/0.png", 404, None),
        ("/visit/tiles/1/2/0.png", 404, None),
    ]:
        code, headers, body = get(server, path)
        doc = json.loads(body)
        assert code == status and doc["status"] == status, path
        assert doc.get("parameter") == param, path
        assert headers["Access-Control-Allow-Origin"] == "*" and headers["Content-Type"] == "application/json"
    for path in ("/", "/visit/tiles/0/0/0.png", "/visit/dzi.dzi", "/visit/zarr/zarr.json", "/visit/info"):
        assert get(server, path)[1]["Access-Control-Allow-Origin"] == "*", path
    req = urllib.request.Request(server.url + "/visit/zarr/zarr.json", method="OPTIONS")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
        assert "Range" in r.headers["Access-Control-Allow-Headers"]


def test_index_page(server):
    status, headers, body = get(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    text = body.decode()
    assert "visit/tilejson.json" in text and "other/dzi.dzi" in text and "http" not in text.split("<script>")[1]


def test_cli_serve(store):
    """``cpmosaic serve STORE --port 0`` starts, says its URL, answers, and stops on SIGTERM."""
    proc, line, _ = start_cli(["serve", str(store), "--port", "0"])
    try:
        url = served_url(line)
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/visit/info", timeout=10) as r:
            assert json.loads(r.read())["name"] == "visit"
    finally:
        stop_cli(proc)


@pytest.mark.browser
def test_viewer_in_headless_chromium(server, tmp_path):
    from browser import chromium, have_chromium

    if not have_chromium():
        pytest.skip("no /usr/bin/chromium")
    before = len(server.requests)
    result = chromium(server.url + "/?store=visit", tmp_path / "profile", budget_ms=5000)
    tile_requests = [r for r in list(server.requests)[before:] if "/visit/tiles/" in r[1]]
    assert tile_requests and all(r[2] == 200 for r in tile_requests)
    assert 'data-tiles-loaded="' in result.stdout
    loaded = int(result.stdout.split('data-tiles-loaded="')[1].split('"')[0])
    assert loaded == len(tile_requests)


def test_out_of_range_is_its_own_error(store):
    """Only a request outside the grid is a 404: tiles raise OutOfRange, not any IndexError."""
    from cpmosaic.mosaic import open_mosaic
    from cpmosaic.serve import tiles

    m = open_mosaic(store)
    grid = tiles.TileGrid.for_store(m)
    assert not issubclass(tiles.OutOfRange, IndexError)
    for z, x, y in [(grid.maxzoom + 1, 0, 0), (0, 1, 0), (2, 0, 4), (-1, 0, 0)]:
        with pytest.raises(tiles.OutOfRange):
            tiles.tile_values(m, grid, z, x, y)
    assert tiles.tile_values(m, grid, 0, 0, 0) is not None
