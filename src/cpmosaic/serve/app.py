"""The HTTP tile server: ``http.server.ThreadingHTTPServer``, one or more stores by name.

See :mod:`cpmosaic.serve` for the endpoints.  Every response carries
``Access-Control-Allow-Origin: *`` (zarr viewers fetch across origins); errors are JSON
``{"error": ..., "parameter": ...}`` with 400 (bad parameter) or 404 (unknown store,
tile or file).  Rendered tiles are kept in a byte-bounded LRU.
"""

from __future__ import annotations

import collections
import html
import json
import logging
import math
import mimetypes
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from ..mosaic.store import MosaicStore, open_mosaic
from . import tiles
from .tiles import BadParameter, StoreStyleCache, TileGrid

log = logging.getLogger(__name__)

__all__ = ["ServedStore", "TileServer", "make_server", "store_names", "VIEWER_HTML"]

#: Bytes of rendered tiles kept in memory.
CACHE_BYTES = 64 * 2**20
#: Largest level /statistics reads (pixels).
MAX_STATS_PIXELS = 2**26


class ServedStore:
    """One store behind the server: the reader, its tile grid, its store-wide display state."""

    def __init__(self, name: str, location: str) -> None:
        self.name = name
        self.location = location
        self.m: MosaicStore = open_mosaic(location)
        self.grid = TileGrid.for_store(self.m)
        self.styles = StoreStyleCache(self.m)
        # files are served only from a local directory (remote stores have their own URLs)
        self.root = Path(location).resolve() if "://" not in location and Path(location).is_dir() else None


def store_names(locations: list[str]) -> dict[str, str]:
    """``{name: location}``: ``NAME=PATH`` as given, else the folder name without ``.zarr``
    (``-2``, ``-3`` ... appended to repeats)."""
    out: dict[str, str] = {}
    for loc in locations:
        name, sep, path = loc.partition("=")
        if not sep or "/" in name or "://" in loc.split("=", 1)[0]:
            path = loc
            name = re.sub(r"\.zarr$", "", Path(loc.rstrip("/")).name) or "mosaic"
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        base, i = name, 2
        while name in out:
            name, i = f"{base}-{i}", i + 1
        out[name] = path
    return out


class LRU:
    """Thread-safe byte-bounded LRU of ``key -> bytes``."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes, self.size = max_bytes, 0
        self._d: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            v = self._d.get(key)
            if v is None:
                self.misses += 1
                return None
            self.hits += 1
            self._d.move_to_end(key)
            return v

    def put(self, key, value: bytes) -> None:
        with self._lock:
            if key in self._d:
                return
            self._d[key] = value
            self.size += len(value)
            while self.size > self.max_bytes and self._d:
                self.size -= len(self._d.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self.size = 0


class TileServer(ThreadingHTTPServer):
    """The server: ``stores`` by name, the tile ``cache``, and ``requests`` (a bounded log of
    ``(method, path, status, milliseconds)``)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], stores: dict[str, ServedStore], cache_bytes: int = CACHE_BYTES):
        self.stores = stores
        self.cache = LRU(cache_bytes)
        self.requests: collections.deque = collections.deque(maxlen=10000)
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(locations: list[str], host: str = "127.0.0.1", port: int = 8000,
                cache_bytes: int = CACHE_BYTES) -> TileServer:
    """A :class:`TileServer` for store paths/URLs (``NAME=PATH`` names one); call ``serve_forever``."""
    stores = {name: ServedStore(name, loc) for name, loc in store_names(locations).items()}
    return TileServer((host, port), stores, cache_bytes)


_TILE = re.compile(r"^tiles/(\d+)/(\d+)/(\d+)(@2x)?\.png$")
_DZI_TILE = re.compile(r"^dzi_files/(\d+)/(\d+)_(\d+)\.png$")


class HTTPError(Exception):
    def __init__(self, status: int, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status, self.parameter = status, parameter


def _float(query: dict, name: str) -> float:
    v = query.get(name)
    if not v:
        raise HTTPError(400, f"{name}: required", name)
    try:
        f = float(v[-1])
    except ValueError:
        raise HTTPError(400, f"{name}: expected a number, got {v[-1]!r}", name) from None
    if not math.isfinite(f):
        raise HTTPError(400, f"{name}: must be finite", name)
    return f


def _level(query: dict, s: ServedStore, default: int) -> int:
    v = query.get("level")
    if not v:
        return default
    try:
        k = int(v[-1])
    except ValueError:
        raise HTTPError(400, f"level: expected an integer, got {v[-1]!r}", "level") from None
    if not 0 <= k < s.m.n_levels:
        raise HTTPError(400, f"level: {k} is outside 0..{s.m.n_levels - 1}", "level")
    return k


class Handler(BaseHTTPRequestHandler):
    server: TileServer
    protocol_version = "HTTP/1.1"  # keep-alive: tile clients fetch many small files

    # -- plumbing -------------------------------------------------------------------------
    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Range, Accept-Ranges")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _json(self, doc, status: int = 200) -> None:
        self._send(status, json.dumps(doc, allow_nan=False, default=_plain).encode(), "application/json",
                   {"Cache-Control": "no-cache"})

    def do_OPTIONS(self) -> None:  # CORS preflight (Range requests from zarr viewers)
        self._t0, self._status = time.perf_counter(), 204
        self.send_response(204)
        for k, v in (("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
                     ("Access-Control-Allow-Headers", "Range, Content-Type"), ("Access-Control-Max-Age", "86400"),
                     ("Content-Length", "0")):
            self.send_header(k, v)
        self.end_headers()
        self.server.requests.append(("OPTIONS", self.path, 204, 0.0))

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._t0, self._status = time.perf_counter(), 500
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=False)
        try:
            self._route(unquote(url.path), query)
        except HTTPError as exc:
            doc = {"error": str(exc), "status": exc.status}
            if exc.parameter:
                doc["parameter"] = exc.parameter
            self._json(doc, exc.status)
        except BadParameter as exc:
            self._json({"error": str(exc), "status": 400, "parameter": exc.param}, 400)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:  # one bad request must not take the server down
            log.exception("error serving %s", self.path)
            self._json({"error": f"{type(exc).__name__}: {exc}", "status": 500}, 500)
        finally:
            ms = (time.perf_counter() - self._t0) * 1000.0
            self.server.requests.append((self.command, self.path, self._status, ms))

    # -- routes ---------------------------------------------------------------------------
    def _route(self, path: str, query: dict) -> None:
        if path in ("/", "/index.html"):
            return self._send(200, index_html(self.server.stores).encode(), "text/html; charset=utf-8")
        if path == "/stores.json":
            return self._json({n: self._summary(s) for n, s in self.server.stores.items()})
        name, _, rest = path.lstrip("/").partition("/")
        s = self.server.stores.get(name)
        if s is None:
            raise HTTPError(404, f"no store named {name!r}; stores: {', '.join(self.server.stores) or 'none'}")
        if rest in ("", "viewer"):
            return self._send(302, b"", "text/plain", {"Location": f"/?store={name}"})
        if rest == "tilejson.json":
            return self._json(self._tilejson(s))
        if m := _TILE.match(rest):
            z, x, y = (int(v) for v in m.groups()[:3])
            return self._tile(s, ("xyz", z, x, y, 2 if m.group(4) else 1), query)
        if rest == "dzi.dzi":
            h, w = s.m.shape(0)
            return self._send(200, tiles.dzi_descriptor(w, h).encode(), "application/xml")
        if m := _DZI_TILE.match(rest):
            return self._tile(s, ("dzi", *(int(v) for v in m.groups())), query)
        if rest == "info":
            return self._json(self._info(s))
        if rest == "statistics":
            return self._json(self._statistics(s, query))
        if rest == "point":
            return self._json(self._point(s, query))
        if rest == "zarr" or rest.startswith("zarr/"):
            return self._file(s, rest[5:])
        raise HTTPError(404, f"no endpoint {path!r}")

    def _tile(self, s: ServedStore, addr: tuple, query: dict) -> None:
        style = tiles.parse_style(query)
        key = (s.name, addr, style.key())
        png = self.server.cache.get(key)
        if png is None:
            try:
                if addr[0] == "xyz":
                    png = tiles.render_tile(s.m, s.grid, s.styles, *addr[1:], style=style)
                else:
                    png = tiles.render_dzi_tile(s.m, s.styles, *addr[1:], style=style)
            except IndexError as exc:
                raise HTTPError(404, str(exc)) from None
            self.server.cache.put(key, png)
        self._send(200, png, "image/png", {"Cache-Control": "public, max-age=600"})

    def _summary(self, s: ServedStore) -> dict:
        xmin, xmax, ymin, ymax = s.m.extent_mm(0)
        return {"name": s.name, "camera": s.m.camera, "shape": list(s.m.shape(0)), "minzoom": 0,
                "maxzoom": s.grid.maxzoom, "bounds": [xmin, ymin, xmax, ymax],
                "world_bounds_mm": list(s.grid.world_bounds_mm(s.m))}

    def _base(self) -> str:
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return f"http://{host}"

    def _tilejson(self, s: ServedStore) -> dict:
        xmin, xmax, ymin, ymax = s.m.extent_mm(0)
        base = f"{self._base()}/{s.name}"
        return {
            "tilejson": "3.0.0", "name": s.name, "version": "1.0.0", "scheme": "xyz",
            "tiles": [f"{base}/tiles/{{z}}/{{x}}/{{y}}.png"],
            "minzoom": 0, "maxzoom": s.grid.maxzoom,
            "bounds": [xmin, ymin, xmax, ymax],
            "center": [(xmin + xmax) / 2, (ymin + ymax) / 2, min(2, s.grid.maxzoom)],
            "description": "Focal-plane mosaic; bounds and center are focal-plane millimetres "
                           "(x, y), not longitude/latitude. +y is up.",
            "crs": "focal-plane mm", "tile_size": tiles.TILE,
            "world_bounds_mm": list(s.grid.world_bounds_mm(s.m)),
            "tiles_2x": [f"{base}/tiles/{{z}}/{{x}}/{{y}}@2x.png"],
        }

    def _info(self, s: ServedStore) -> dict:
        m = s.m
        xmin, xmax, ymin, ymax = m.extent_mm(0)
        return {
            "name": s.name, "camera": m.camera, "binning": m.binning, "complete": m.complete,
            "bounds": [xmin, ymin, xmax, ymax], "bounds_units": "focal-plane mm (xmin, ymin, xmax, ymax)",
            "levels": [{"level": k, "shape": list(m.shape(k)), "extent_mm": list(m.extent_mm(k)),
                        "scale_um": list(m.scale_um(k)), "window": list(m.window(k)),
                        "dtype": str(m.levels[k].dtype)} for k in range(m.n_levels)],
            "window": list(m.window(0)),
            "detectors": {"present": m.present, "missing": m.missing},
            "tiles": {"minzoom": 0, "maxzoom": s.grid.maxzoom, "tile_size": tiles.TILE,
                      "world_bounds_mm": list(s.grid.world_bounds_mm(m)),
                      "dzi_top_level": tiles.dzi_levels(m.shape(0)[1], m.shape(0)[0])},
            "zarr": s.root is not None,
        }

    def _statistics(self, s: ServedStore, query: dict) -> dict:
        k = _level(query, s, s.m.n_levels - 1)
        h, w = s.m.shape(k)
        if h * w > MAX_STATS_PIXELS:
            raise HTTPError(400, f"level: {k} has {h * w} pixels, more than {MAX_STATS_PIXELS}; ask a coarser one",
                            "level")
        raw = ",".join(query.get("p", []) + query.get("percentiles", [])) or "1,2,5,25,50,75,95,98,99"
        try:
            pct = [float(v) for v in raw.split(",") if v]
            if not all(0 <= p <= 100 for p in pct):
                raise ValueError
        except ValueError:
            raise HTTPError(400, f"p: expected numbers in 0..100, got {raw!r}", "p") from None
        bins = query.get("bins", ["10"])[-1]
        if not bins.isdigit() or not 1 <= int(bins) <= 1000:
            raise HTTPError(400, f"bins: expected an integer 1..1000, got {bins!r}", "bins")
        data = s.m.read(k)
        v = data[np.isfinite(data)].astype(np.float64)
        doc = {"level": k, "shape": [h, w], "count": int(v.size), "valid_percent": 100.0 * v.size / max(h * w, 1)}
        if v.size == 0:
            return doc | {"min": None, "max": None, "mean": None, "std": None, "median": None, "percentiles": {}}
        counts, edges = np.histogram(v, bins=int(bins))
        q = np.percentile(v, pct) if pct else []
        return doc | {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()), "std": float(v.std()),
                      "median": float(np.median(v)), "percentiles": {f"p{p:g}": float(x) for p, x in zip(pct, q)},
                      "histogram": [counts.tolist(), edges.tolist()]}

    def _point(self, s: ServedStore, query: dict) -> dict:
        x, y = _float(query, "x_mm"), _float(query, "y_mm")
        fi, fj = s.m.focal_plane_to_pixel(0, x, y)
        # pixel (i, j) covers [i - 0.5, i + 0.5)
        i, j = int(math.floor(float(fi) + 0.5)), int(math.floor(float(fj) + 0.5))
        h, w = s.m.shape(0)
        if not (0 <= i < h and 0 <= j < w):
            raise HTTPError(404, f"point ({x}, {y}) mm is outside the mosaic (bounds {list(s.m.extent_mm(0))})")
        value = float(s.m.read(0, i, i + 1, j, j + 1)[0, 0])
        det = amp = None
        for p in s.m.plan.placements_in((i, i + 1, j, j + 1)):
            det = p.name
            for a, (y0, y1, x0, x1) in p.amp_boxes.items():
                if y0 <= i < y1 and x0 <= j < x1:
                    amp = a
        return {"x_mm": x, "y_mm": y, "level": 0, "row": i, "col": j,
                "value": value if math.isfinite(value) else None, "detector": det, "amp": amp}

    def _file(self, s: ServedStore, rel: str) -> None:
        if s.root is None:
            raise HTTPError(404, f"store {s.name!r} is not a local directory; its files are not served")
        target = (s.root / rel).resolve()
        if (target != s.root and s.root not in target.parents) or not target.is_file():
            raise HTTPError(404, f"no file {rel!r} in store {s.name!r}")
        size = target.stat().st_size
        ctype = "application/json" if target.suffix == ".json" else (
            mimetypes.guess_type(target.name)[0] or "application/octet-stream")
        rng = self.headers.get("Range")
        start, end, status = 0, size, 200
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or m.groups() == ("", ""):
                raise HTTPError(400, f"Range: unsupported {rng!r}", "Range")
            a, b = m.groups()
            if a == "":  # suffix: the last b bytes (zarr's shard index)
                start = max(size - int(b), 0)
            else:
                start, end = int(a), min(int(b) + 1, size) if b else size
            if start >= size and size > 0:
                return self._send(416, b"", "application/octet-stream", {"Content-Range": f"bytes */{size}"})
            status = 206
        with open(target, "rb") as fh:
            fh.seek(start)
            body = fh.read(end - start)
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{size}"
        self._send(status, body, ctype, headers)


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


def index_html(stores: dict[str, ServedStore]) -> str:
    """The index page: the stores with their endpoints, and a small XYZ viewer (no CDN)."""
    items = []
    for n in stores:
        e = html.escape(n)
        items.append(f'<li><a href="?store={e}">{e}</a>: <a href="{e}/tilejson.json">tilejson</a> '
                     f'<a href="{e}/info">info</a> <a href="{e}/statistics">statistics</a> '
                     f'<a href="{e}/dzi.dzi">dzi</a> <a href="{e}/zarr/zarr.json">zarr</a></li>')
    summary = {n: {"maxzoom": s.grid.maxzoom, "world_bounds_mm": list(s.grid.world_bounds_mm(s.m))}
               for n, s in stores.items()}
    page = VIEWER_HTML.replace("__STORES_LIST__", "\n".join(items))
    return page.replace("__STORES_JSON__", json.dumps(summary).replace("</", "<\\/"))


#: The index page (``__STORES_LIST__`` and ``__STORES_JSON__`` are filled in by :func:`index_html`).
VIEWER_HTML = r'''<!doctype html>
<html><head><meta charset="utf-8"><title>cpmosaic tile server</title>
<style>
body{font:14px sans-serif;margin:12px}#map{position:relative;overflow:hidden;width:768px;height:512px;
background:#333;cursor:grab;user-select:none}#map img{position:absolute;width:256px;height:256px}
#bar>*{margin-right:6px}#pos{font-family:monospace}
</style></head><body>
<h1>cpmosaic tile server</h1>
<ul id="stores">__STORES_LIST__</ul>
<div id="bar">store <select id="store"></select>
stretch <select id="stretch"><option>linear</option><option>log</option><option>asinh</option>
<option>zscale</option><option>percentile</option><option>eq_hist</option></select>
colormap <input id="cmap" value="gray" size="8"> rescale <input id="rescale" placeholder="min,max" size="12">
<button id="zin">+</button><button id="zout">&minus;</button></div>
<div id="map"></div><p id="pos">click the mosaic for the value at a point</p>
<script>
"use strict";
const STORES = __STORES_JSON__;
const $ = (id) => document.getElementById(id);
const map = $("map");
let name = new URLSearchParams(location.search).get("store") || Object.keys(STORES)[0];
let z = 1, cx = 256, cy = 256, loaded = 0;  // zoom and map centre in world pixels of zoom z
for (const n of Object.keys(STORES)) $("store").add(new Option(n, n, false, n === name));
function query() {
  const p = new URLSearchParams({stretch: $("stretch").value, colormap_name: $("cmap").value});
  if ($("rescale").value) p.set("rescale", $("rescale").value);
  return p.toString();
}
function draw() {
  if (!name) return;
  const W = map.clientWidth, H = map.clientHeight, n = 1 << z, x0 = cx - W / 2, y0 = cy - H / 2;
  const hi = window.devicePixelRatio > 1 ? "@2x" : "";
  map.replaceChildren();
  for (let ty = Math.max(0, Math.floor(y0 / 256)); ty <= Math.min(n - 1, Math.floor((y0 + H) / 256)); ty++) {
    for (let tx = Math.max(0, Math.floor(x0 / 256)); tx <= Math.min(n - 1, Math.floor((x0 + W) / 256)); tx++) {
      const img = new Image();
      img.onload = () => { loaded++; document.body.dataset.tilesLoaded = loaded; };
      img.src = `${name}/tiles/${z}/${tx}/${ty}${hi}.png?${query()}`;
      img.style.left = (tx * 256 - x0) + "px"; img.style.top = (ty * 256 - y0) + "px";
      map.appendChild(img);
    }
  }
}
function zoom(dz) {
  const nz = Math.min(STORES[name].maxzoom, Math.max(0, z + dz));
  cx *= 2 ** (nz - z); cy *= 2 ** (nz - z); z = nz; draw();
}
let drag = null;
map.onmousedown = (e) => { drag = [e.clientX, e.clientY, cx, cy, false]; };
window.onmouseup = (e) => {
  if (drag && !drag[4]) {  // a click, not a drag: ask /point
    const r = map.getBoundingClientRect(), b = STORES[name].world_bounds_mm, s = 256 * 2 ** z;
    const wx = cx - map.clientWidth / 2 + e.clientX - r.left, wy = cy - map.clientHeight / 2 + e.clientY - r.top;
    const x = b[0] + wx / s * (b[2] - b[0]), y = b[3] - wy / s * (b[3] - b[1]);
    fetch(`${name}/point?x_mm=${x.toFixed(3)}&y_mm=${y.toFixed(3)}`).then((res) => res.json()).then((d) => {
      $("pos").textContent = d.error ? d.error : `x=${x.toFixed(2)} mm y=${y.toFixed(2)} mm ` +
        `${d.detector || "-"} ${d.amp || ""} value=${d.value}`;
    });
  }
  drag = null;
};
window.onmousemove = (e) => {
  if (!drag) return;
  drag[4] = drag[4] || Math.abs(e.clientX - drag[0]) + Math.abs(e.clientY - drag[1]) > 3;
  cx = drag[2] - (e.clientX - drag[0]); cy = drag[3] - (e.clientY - drag[1]); draw();
};
map.onwheel = (e) => { e.preventDefault(); zoom(e.deltaY < 0 ? 1 : -1); };
$("zin").onclick = () => zoom(1); $("zout").onclick = () => zoom(-1);
$("store").onchange = () => { name = $("store").value; z = 1; cx = cy = 256; draw(); };
for (const id of ["stretch", "cmap", "rescale"]) $(id).onchange = draw;
draw();
</script></body></html>
'''
