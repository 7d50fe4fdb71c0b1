"""Serve mosaic stores over HTTP: XYZ tiles, Deep Zoom, TileJSON, statistics, cut-outs and the OME-Zarr files.

An ASGI app (Starlette) run by uvicorn:

>>> from cpmosaic.serve import create_app                       # doctest: +SKIP
>>> app = create_app(["visit.zarr"], public_url="https://example.org/mosaics")  # doctest: +SKIP

mount ``app`` in your own Starlette/FastAPI service, or run
``cpmosaic serve visit.zarr [more.zarr | NAME=PATH ...] [--host 127.0.0.1] [--port 8000] [--workers N]``.
A store is named after its folder without ``.zarr`` (``NAME=PATH`` names it).

Endpoints (a contract: users' scripts depend on these names)
------------------------------------------------------------
``/``                                    index: stores, links, a small built-in XYZ viewer
``/stores.json``                         the stores with zooms and bounds
``/{name}/tilejson.json``                TileJSON 3.0.0 (scheme "xyz"); ``bounds``/``center`` are
                                         focal-plane mm (x, y), NOT longitude/latitude
``/{name}/tiles/{z}/{x}/{y}.png``        256 px RGBA XYZ tile, y = 0 at the top, +y (focal plane) up
``/{name}/tiles/{z}/{x}/{y}@2x.png``     the same area at 512 px
``/{name}/dzi.dzi``                      Deep Zoom descriptor (TileSize 254, Overlap 1, png)
``/{name}/dzi_files/{level}/{col}_{row}.png``  Deep Zoom tiles (level 0 is 1x1)
``/{name}/info``                         shapes per level, bounds mm, camera, binning, detectors
                                         present/missing, display window, tile zooms
``/{name}/statistics?level=&p=&bins=``   min, max, mean, std, median, percentiles, histogram
                                         (default: the coarsest level)
``/{name}/point?x_mm=&y_mm=``            level-0 value at a focal-plane point, its detector and amp
                                         (404 outside the mosaic)
``/{name}/zarr/...``                     the store's files, read-only, with Range support (local or
                                         object store through fsspec; vizarr, ome-zarr-py open
                                         ``http://HOST/{name}/zarr``)
``/{name}.zarr/...``                     the same files under a ``*.zarr`` name (napari-ome-zarr
                                         opens ``http://HOST/{name}.zarr``)
``/{name}/cutout.fits?x0=&y0=&x1=&y1=&level=``  FITS cut-out of a focal-plane box (mm) with a
                                         linear WCS in mm, detectors/amps and provenance
                                         (400 beyond a size bound)

Tile query parameters (TiTiler's conventions): ``rescale=min,max``, ``stretch=`` (linear, sqrt, log,
asinh, zscale, percentile, eq_hist; limits and eq_hist tables are store-wide so tiles agree),
``colormap_name=`` (gray, colorcet or bokeh names), ``colormap=`` (JSON ``{"0": [r,g,b(,a)], ...}``),
``nodata=`` (a value drawn transparent; NaN always is); ``overlay=METRIC&calib_type=&run=``
colours amp polygons by a metric (``serve --metrics SOURCE``).  Tiles have an ``ETag``;
``If-None-Match`` gets 304.

Every response has ``Access-Control-Allow-Origin: *``.  Errors are JSON ``{"error", "status",
"parameter"}``: 400 for a bad parameter (named), 404 for unknown stores, endpoints, files and
out-of-range tiles, 416 for an unsatisfiable Range.  Tiles outside every detector are a transparent PNG, without reading data.
"""

from __future__ import annotations

__all__ = ["create_app", "make_server", "TileServer", "TileGrid"]


def __getattr__(name: str):
    # lazy: ``cpmosaic serve --help`` must not import PIL/zarr/starlette
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("make_server", "TileServer"):
        from . import server

        return getattr(server, name)
    if name == "TileGrid":
        from .tiles import TileGrid

        return TileGrid
    raise AttributeError(name)
