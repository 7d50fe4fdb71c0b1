"""The tile service as an ASGI application (Starlette): :func:`create_app`.

See :mod:`cpmosaic.serve` for the endpoints.  Mount the app in your own Starlette/FastAPI
service, or run it with ``cpmosaic serve`` (uvicorn, :mod:`cpmosaic.serve.server`).  Every
response carries ``Access-Control-Allow-Origin: *`` (zarr viewers fetch across origins);
errors are JSON ``{"error", "status", "parameter"}`` with 400 (bad parameter), 404 (unknown
store, tile or file) or 416 (unsatisfiable Range); a client's mistake is never a 500.
Tiles carry an ``ETag`` and ``If-None-Match`` gets ``304 Not Modified`` without rendering.
Rendered tiles and decoded chunks are kept in byte-bounded LRUs; CPU work runs in at most
``render_threads`` threads at once so memory stays bounded under any number of clients.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import mimetypes
import os
import re
import time
from typing import Any, Mapping, Sequence

import numpy as np

from . import tiles
from .cache import LRU
from .stores import BadRange, NotFound, ServedStore, parse_range, store_names
from .tiles import BadParameter
from .viewer import VIEWER_HTML, index_html

log = logging.getLogger(__name__)

__all__ = ["create_app", "ServedStore", "store_names", "HTTPError", "VIEWER_HTML", "CACHE_BYTES",
           "CHUNK_CACHE_BYTES"]

#: Bytes of rendered tiles kept in memory (``--cache-mb``).
CACHE_BYTES = 64 * 2**20
#: Bytes of decoded chunks kept per store (``--chunk-cache-mb``).
CHUNK_CACHE_BYTES = 64 * 2**20

_TILE_NAME = re.compile(r"^(\d+)(@2x)?\.png$")
_DZI_NAME = re.compile(r"^(\d+)_(\d+)\.png$")
_CORS = {"Access-Control-Allow-Origin": "*",
         "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges, ETag"}


class HTTPError(Exception):
    """An error answered as JSON ``{"error", "status", "parameter"}``."""

    def __init__(self, status: int, message: str, parameter: str | None = None,
                 headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.parameter, self.headers = status, parameter, headers or {}


def _one(request, name: str) -> str | None:
    v = request.query_params.getlist(name)
    return v[-1] if v else None


def _float(request, name: str) -> float:
    v = _one(request, name)
    if v is None or v == "":
        raise HTTPError(400, f"{name}: required", name)
    try:
        f = float(v)
    except ValueError:
        raise HTTPError(400, f"{name}: expected a number, got {v!r}", name) from None
    if not math.isfinite(f):
        raise HTTPError(400, f"{name}: must be finite", name)
    return f


def _level(request, s: ServedStore, default: int) -> int:
    v = _one(request, "level")
    if v is None or v == "":
        return default
    try:
        k = int(v)
    except ValueError:
        raise HTTPError(400, f"level: expected an integer, got {v!r}", "level") from None
    if not 0 <= k < s.m.n_levels:
        raise HTTPError(400, f"level: {k} is outside 0..{s.m.n_levels - 1}", "level")
    return k


def _query_dict(request) -> dict[str, list[str]]:
    q: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        if v != "":
            q.setdefault(k, []).append(v)
    return q


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


def statistics_doc(s: ServedStore, k: int, pct: tuple[float, ...], bins: int) -> dict:
    """``/statistics`` of level ``k`` from the store's bounded sample of it (see
    :meth:`ServedStore.sample`)."""
    v, exact = s.sample(k)
    h, w = s.m.shape(k)
    doc: dict[str, Any] = {"level": k, "shape": [h, w], "exact": exact, "sample_count": int(v.size)}
    if exact:
        doc |= {"count": int(v.size), "valid_percent": 100.0 * v.size / max(h * w, 1)}
    else:
        doc |= {"count": None, "valid_percent": None}
    if v.size == 0:
        return doc | {"min": None, "max": None, "mean": None, "std": None, "median": None, "percentiles": {}}
    counts, edges = np.histogram(v, bins=bins)
    q = np.percentile(v, pct) if pct else []
    return doc | {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean(dtype=np.float64)),
                  "std": float(v.std(dtype=np.float64)), "median": float(np.median(v)),
                  "percentiles": {f"p{p:g}": float(x) for p, x in zip(pct, q)},
                  "histogram": [counts.tolist(), edges.tolist()]}


def create_app(stores: Sequence[str] | Mapping[str, str | ServedStore], *, public_url: str | None = None,
               cache_bytes: int = CACHE_BYTES, chunk_cache_bytes: int = CHUNK_CACHE_BYTES,
               storage_options: dict | None = None, render_threads: int | None = None,
               metrics: Any = None, max_cutout_pixels: int | None = None) -> Any:
    """The tile service as a Starlette ASGI app.

    Parameters
    ----------
    stores
        Store paths/URLs (``NAME=PATH`` names one), a ``{name: location}`` dict, or a dict of
        :class:`ServedStore`.
    public_url
        The service's external URL (``https://host/prefix``) written into TileJSON; default:
        paths relative to the host (with the ASGI ``root_path``), never the ``Host`` header.
    cache_bytes, chunk_cache_bytes
        Rendered tiles kept (all stores) and decoded chunks kept (per store).
    storage_options
        fsspec options for object-store URLs (``{"anon": True}``, endpoint, credentials).
    render_threads
        Threads rendering at once (default: 2 x CPUs, at least 4).
    metrics
        A metrics table (:func:`cpmosaic.metrics.load_metrics`) or a source to load for
        ``overlay=METRIC`` tiles.
    max_cutout_pixels
        Largest ``/cutout.fits`` (pixels); larger asks get 400.

    Examples
    --------
    >>> from starlette.applications import Starlette          # doctest: +SKIP
    >>> from starlette.routing import Mount                   # doctest: +SKIP
    >>> outer = Starlette(routes=[Mount("/mosaics", create_app(["bias.zarr"]))])  # doctest: +SKIP
    """
    import anyio
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from . import cutout, overlay

    if cache_bytes < 0 or chunk_cache_bytes < 0:
        raise ValueError("cache sizes must be >= 0")
    named: Mapping[str, str | ServedStore] = stores if isinstance(stores, Mapping) else store_names(list(stores))
    served: dict[str, ServedStore] = {
        n: (v if isinstance(v, ServedStore) else ServedStore(n, v, storage_options, chunk_cache_bytes))
        for n, v in named.items()}
    cache = LRU(cache_bytes)
    requests: collections.deque = collections.deque(maxlen=10000)
    limiter = anyio.CapacityLimiter(render_threads or max(4, 2 * (os.cpu_count() or 1)))
    metric_overlay = overlay.MetricOverlay.from_source(metrics) if metrics is not None else None
    max_cutout = max_cutout_pixels or cutout.MAX_PIXELS

    def store_of(name: str) -> ServedStore:
        s = served.get(name)
        if s is None:
            raise HTTPError(404, f"no store named {name!r}; stores: {', '.join(served) or 'none'}")
        return s

    def base_url(request: Request) -> str:
        if public_url:
            return public_url.rstrip("/")
        return request.scope.get("root_path", "").rstrip("/")

    def send(status: int, body: bytes, ctype: str, headers: dict | None = None) -> Response:
        return Response(body, status_code=status, media_type=ctype, headers={**_CORS, **(headers or {})})

    def send_json(doc, status: int = 200, headers: dict | None = None) -> Response:
        return send(status, json.dumps(doc, allow_nan=False, default=_plain).encode(), "application/json",
                    {"Cache-Control": "no-cache", **(headers or {})})

    async def work(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    def not_modified(request: Request, etag: str, headers: dict) -> Response | None:
        inm = request.headers.get("if-none-match")
        if inm and (inm.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in inm.split(",")]):
            return Response(status_code=304, headers={**_CORS, "ETag": etag, **headers})
        return None

    # -- endpoints ------------------------------------------------------------------------------
    async def index(request: Request) -> Response:
        return send(200, index_html(served).encode(), "text/html; charset=utf-8")

    async def stores_json(request: Request) -> Response:
        return send_json({n: summary(s) for n, s in served.items()})

    async def store_root(request: Request) -> Response:
        name = store_of(request.path_params["name"]).name
        root = request.scope.get("root_path", "").rstrip("/")
        return send(302, b"", "text/plain", {"Location": f"{root}/?store={name}"})

    async def tilejson(request: Request) -> Response:
        s = store_of(request.path_params["name"])
        xmin, ymin, xmax, ymax = s.summary_bounds
        base = f"{base_url(request)}/{s.name}"
        extra = "?" + request.url.query if request.url.query else ""
        return send_json({
            "tilejson": "3.0.0", "name": s.name, "version": "1.0.0", "scheme": "xyz",
            "tiles": [f"{base}/tiles/{{z}}/{{x}}/{{y}}.png{extra}"],
            "minzoom": 0, "maxzoom": s.grid.maxzoom,
            "bounds": [xmin, ymin, xmax, ymax],
            "center": [(xmin + xmax) / 2, (ymin + ymax) / 2, min(2, s.grid.maxzoom)],
            "description": "Focal-plane mosaic; bounds and center are focal-plane millimetres "
                           "(x, y), not longitude/latitude. +y is up.",
            "crs": "focal-plane mm", "tile_size": tiles.TILE,
            "world_bounds_mm": list(s.grid.world_bounds_mm(s.m)),
            "tiles_2x": [f"{base}/tiles/{{z}}/{{x}}/{{y}}@2x.png{extra}"],
        })

    async def tile_response(request: Request, s: ServedStore, addr: tuple) -> Response:
        query = _query_dict(request)
        style = tiles.parse_style(query)
        ov = overlay.parse_overlay(query, metric_overlay, s) if "overlay" in query else None
        key = (s.name, addr, style.key(), ov.key() if ov else None)
        etag = '"%s-%s"' % (s.version, hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest())
        headers = {"Cache-Control": "public, max-age=600", "ETag": etag}
        if (r := not_modified(request, etag, headers)) is not None:
            return r
        png = cache.get(key)
        if png is None:
            try:
                png = await work(render, s, addr, style, ov)
            except tiles.OutOfRange as exc:
                raise HTTPError(404, str(exc)) from None
            cache.put(key, png)
        return send(200, png, "image/png", headers)

    def render(s: ServedStore, addr: tuple, style, ov) -> bytes:
        if addr[0] == "xyz":
            _, z, x, y, scale = addr
            data = tiles.tile_values(s.m, s.grid, z, x, y, scale, s.chunks.read)
            n = tiles.TILE * scale
            if ov is not None:
                i0, i1, j0, j1 = s.grid.tile_box(z, x, y)
                return ov.render(data, (i0, i1, j0, j1), (n, n), style, s)
            if data is None:
                return tiles.empty_png(n)
        else:
            _, level, col, row = addr
            data = tiles.dzi_values(s.m, level, col, row, s.deepzoom)
            if ov is not None:
                r0, r1, c0, c1 = tiles.dzi_window(s.m, level, col, row)
                d = 2 ** (s.deepzoom.top - level)
                h0 = s.m.shape(0)[0]
                box = (h0 - r1 * d, h0 - r0 * d, c0 * d, c1 * d)
                return ov.render(data, box, data.shape, style, s)
        return tiles.render_png(data, style, s.styles)  # the transparent tile where nothing is drawn

    async def xyz_tile(request: Request) -> Response:
        s = store_of(request.path_params["name"])
        m = _TILE_NAME.match(request.path_params["y"])
        if not m:
            raise HTTPError(404, f"no endpoint {request.url.path!r}")
        z, x = request.path_params["z"], request.path_params["x"]
        return await tile_response(request, s, ("xyz", z, x, int(m.group(1)), 2 if m.group(2) else 1))

    async def dzi(request: Request) -> Response:
        s = store_of(request.path_params["name"])
        h, w = s.m.shape(0)
        return send(200, tiles.dzi_descriptor(w, h).encode(), "application/xml",
                    {"Cache-Control": "public, max-age=600"})

    async def dzi_tile(request: Request) -> Response:
        s = store_of(request.path_params["name"])
        m = _DZI_NAME.match(request.path_params["tile"])
        if not m:
            raise HTTPError(404, f"no endpoint {request.url.path!r}")
        return await tile_response(request, s, ("dzi", request.path_params["level"], int(m.group(1)),
                                                int(m.group(2))))

    async def info(request: Request) -> Response:
        return send_json(info_doc(store_of(request.path_params["name"])))

    async def statistics(request: Request) -> Response:
        s = store_of(request.path_params["name"])
        k = _level(request, s, s.m.n_levels - 1)
        raw = ",".join(request.query_params.getlist("p") + request.query_params.getlist("percentiles"))
        raw = raw or "1,2,5,25,50,75,95,98,99"
        try:
            pct = tuple(float(v) for v in raw.split(",") if v)
            if not all(0 <= p <= 100 for p in pct) or len(pct) > 100:
                raise ValueError
        except ValueError:
            raise HTTPError(400, f"p: expected up to 100 numbers in 0..100, got {raw!r}", "p") from None
        bins = _one(request, "bins") or "10"
        if not bins.isdigit() or not 1 <= int(bins) <= 1000:
            raise HTTPError(400, f"bins: expected an integer 1..1000, got {bins!r}", "bins")
        key = (k, pct, int(bins))
        doc = s.statistics_cache.get(key)
        if doc is None:
            doc = await work(statistics_doc, s, k, pct, int(bins))
            s.statistics_cache.put(key, doc)
        return send_json(doc)

    async def point(request: Request) -> Response:
        s = store_of(request.path_params["name"])
        x, y = _float(request, "x_mm"), _float(request, "y_mm")
        return send_json(await work(point_doc, s, x, y))

    async def zarr_file(request: Request) -> Response:
        s = store_of(request.path_params["name"])
        return await file_response(request, s, request.path_params.get("path", ""))

    async def file_response(request: Request, s: ServedStore, rel: str) -> Response:
        try:
            path, size, etag = await work(s.file_info, rel)
        except NotFound as exc:
            raise HTTPError(404, str(exc)) from None
        ctype = "application/json" if rel.endswith(".json") else (
            mimetypes.guess_type(rel)[0] or "application/octet-stream")
        headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache", "ETag": etag}
        if (r := not_modified(request, etag, headers)) is not None:
            return r
        start, end, status = 0, size, 200
        rng = request.headers.get("range")
        if rng:
            try:
                got = parse_range(rng, size)
            except BadRange as exc:
                raise HTTPError(416, str(exc), "Range", {"Content-Range": f"bytes */{size}"}) from None
            except ValueError:
                got = None  # a Range we do not understand is ignored (RFC 9110)
            if got is not None:
                (start, end), status = got, 206
        try:
            body = b"" if request.method == "HEAD" else await work(s.read_file, path, start, end)
        except BadRange as exc:
            raise HTTPError(416, str(exc), "Range", {"Content-Range": f"bytes */{size}"}) from None
        except FileNotFoundError:
            raise HTTPError(404, f"no file {rel!r} in store {s.name!r}") from None
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        if request.method == "HEAD":
            headers["Content-Length"] = str(end - start)
        return send(status, body, ctype, headers)

    async def cutout_fits(request: Request) -> Response:
        s = store_of(request.path_params["name"])
        box = tuple(_float(request, p) for p in ("x0", "y0", "x1", "y1"))
        k = _level(request, s, 0)
        try:
            body = await work(cutout.cutout_fits, s.m, box, k, s.name, max_cutout)
        except cutout.CutoutError as exc:
            raise HTTPError(exc.status, str(exc), exc.parameter) from None
        fname = f"{s.name}_cutout_L{k}.fits"
        return send(200, body, "application/fits", {"Content-Disposition": f'inline; filename="{fname}"',
                                                    "Cache-Control": "public, max-age=600"})

    async def options(request: Request) -> Response:  # CORS preflight (Range requests from zarr viewers)
        return Response(status_code=204, headers={
            "Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
            "Access-Control-Allow-Headers": "Range, Content-Type, If-None-Match", "Access-Control-Max-Age": "86400"})

    # -- errors -----------------------------------------------------------------------------------
    def error_doc(status: int, message: str, parameter: str | None = None, headers: dict | None = None):
        doc = {"error": message, "status": status}
        if parameter:
            doc["parameter"] = parameter
        return send_json(doc, status, headers)

    async def on_http_error(request: Request, exc: HTTPError) -> Response:
        return error_doc(exc.status, str(exc), exc.parameter, exc.headers)

    async def on_bad_parameter(request: Request, exc: BadParameter) -> Response:
        return error_doc(400, str(exc), exc.param)

    async def on_starlette(request: Request, exc: StarletteHTTPException) -> Response:
        msg = f"no endpoint {request.url.path!r}" if exc.status_code == 404 else str(exc.detail)
        return error_doc(exc.status_code, msg, None, dict(exc.headers or {}))

    async def on_error(request: Request, exc: Exception) -> Response:
        log.exception("error serving %s", request.url.path)
        return error_doc(500, f"{type(exc).__name__}: {exc}")

    methods = ["GET", "HEAD"]
    routes = [
        Route("/", index, methods=methods), Route("/index.html", index, methods=methods),
        Route("/stores.json", stores_json, methods=methods),
        Route("/{name}.zarr", zarr_file, methods=methods),
        Route("/{name}.zarr/{path:path}", zarr_file, methods=methods),
        Route("/{name}", store_root, methods=methods), Route("/{name}/", store_root, methods=methods),
        Route("/{name}/viewer", store_root, methods=methods),
        Route("/{name}/tilejson.json", tilejson, methods=methods),
        Route("/{name}/tiles/{z:int}/{x:int}/{y}", xyz_tile, methods=methods),
        Route("/{name}/dzi.dzi", dzi, methods=methods),
        Route("/{name}/dzi_files/{level:int}/{tile}", dzi_tile, methods=methods),
        Route("/{name}/info", info, methods=methods),
        Route("/{name}/statistics", statistics, methods=methods),
        Route("/{name}/point", point, methods=methods),
        Route("/{name}/cutout.fits", cutout_fits, methods=methods),
        Route("/{name}/zarr", zarr_file, methods=methods),
        Route("/{name}/zarr/{path:path}", zarr_file, methods=methods),
    ]

    class Preflight:
        """OPTIONS on any path answers the CORS preflight; every request is logged to ``requests``."""

        def __init__(self, app) -> None:
            self.app = app

        async def __call__(self, scope, receive, send_):
            if scope["type"] != "http":
                return await self.app(scope, receive, send_)
            if scope["method"] == "OPTIONS":
                await (await options(Request(scope)))(scope, receive, send_)
                requests.append(("OPTIONS", scope["path"], 204, 0.0))
                return
            t0, status = time.perf_counter(), [0]

            async def record(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send_(message)

            try:
                await self.app(scope, receive, record)
            finally:
                requests.append((scope["method"], scope["path"], status[0], (time.perf_counter() - t0) * 1e3))

    from starlette.middleware import Middleware

    handlers: dict[Any, Any] = {HTTPError: on_http_error, BadParameter: on_bad_parameter,
                                StarletteHTTPException: on_starlette, Exception: on_error}
    app = Starlette(routes=routes, middleware=[Middleware(Preflight)], exception_handlers=handlers)
    app.state.stores = served
    app.state.cache = cache
    app.state.requests = requests
    return app


def summary(s: ServedStore) -> dict:
    xmin, ymin, xmax, ymax = s.summary_bounds
    return {"name": s.name, "camera": s.m.camera, "shape": list(s.m.shape(0)), "minzoom": 0,
            "maxzoom": s.grid.maxzoom, "bounds": [xmin, ymin, xmax, ymax],
            "world_bounds_mm": list(s.grid.world_bounds_mm(s.m))}


def _listed(window: tuple[float, float] | None) -> list[float] | None:
    return None if window is None else list(window)


def info_doc(s: ServedStore) -> dict:
    m = s.m
    xmin, ymin, xmax, ymax = s.summary_bounds
    return {
        "name": s.name, "camera": m.camera, "binning": m.binning, "complete": m.complete,
        "bounds": [xmin, ymin, xmax, ymax], "bounds_units": "focal-plane mm (xmin, ymin, xmax, ymax)",
        "levels": [{"level": k, "shape": list(m.shape(k)), "extent_mm": list(m.extent_mm(k)),
                    "scale_um": list(m.scale_um(k)), "window": _listed(m.window(k)),
                    "dtype": str(m.levels[k].dtype)} for k in range(m.n_levels)],
        "window": _listed(m.window(0)),
        "detectors": {"present": m.present, "missing": m.missing},
        "tiles": {"minzoom": 0, "maxzoom": s.grid.maxzoom, "tile_size": tiles.TILE,
                  "world_bounds_mm": list(s.grid.world_bounds_mm(m)),
                  "dzi_top_level": tiles.dzi_levels(m.shape(0)[1], m.shape(0)[0])},
        "zarr": True,
    }


def point_doc(s: ServedStore, x: float, y: float) -> dict:
    """Level-0 value, detector and amp at focal-plane ``(x, y)`` mm (:class:`HTTPError` 404 outside)."""
    with np.errstate(over="ignore"):  # 1e308 mm: an infinite pixel, outside
        fi, fj = s.m.focal_plane_to_pixel(0, x, y)
    h, w = s.m.shape(0)
    # pixel (i, j) covers [i - 0.5, i + 0.5); huge finite mm give inf pixels: outside too
    if not (np.isfinite(fi) and np.isfinite(fj) and -0.5 <= fi < h - 0.5 and -0.5 <= fj < w - 0.5):
        raise HTTPError(404, f"point ({x}, {y}) mm is outside the mosaic (bounds {list(s.m.extent_mm(0))})")
    i, j = int(math.floor(float(fi) + 0.5)), int(math.floor(float(fj) + 0.5))
    value = float(s.chunks.read(0, i, i + 1, j, j + 1)[0, 0])
    det = amp = None
    for p in s.m.plan.placements_in((i, i + 1, j, j + 1)):
        det = p.name
        for a, (y0, y1, x0, x1) in p.amp_boxes.items():
            if y0 <= i < y1 and x0 <= j < x1:
                amp = a
    return {"x_mm": x, "y_mm": y, "level": 0, "row": i, "col": j,
            "value": value if math.isfinite(value) else None, "detector": det, "amp": amp}


from .server import TileServer, make_server  # noqa: E402, F401  (the runner; kept importable from here)
