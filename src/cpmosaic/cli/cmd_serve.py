"""``cpmosaic serve STORE [STORE...]``: serve mosaic stores over HTTP (tiles, Deep Zoom, TileJSON, zarr).

Endpoints are listed in :mod:`cpmosaic.serve`; open ``http://HOST:PORT/`` for the viewer.
The server is uvicorn running the Starlette app of :func:`cpmosaic.serve.create_app`.
"""

from __future__ import annotations

import argparse
import logging

from .options import add_storage_options
from .serve_explore import add_explore_options

log = logging.getLogger(__name__)


def int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer in ``lo..hi``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{v} is outside {lo}..{'' if hi is None else hi}")
        return v
    return parse


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve mosaic stores as XYZ/Deep Zoom tiles and OME-Zarr over HTTP",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", metavar="STORE", nargs="+",
                   help="mosaic store path or URL; NAME=PATH names it (default: folder name without .zarr)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int_in(0, 65535), default=8000, help="port (0: any free one; default 8000)")
    p.add_argument("--workers", type=int_in(1, 256), default=1, help="server processes (default 1)")
    p.add_argument("--cache-mb", type=int_in(0), default=64, help="memory for rendered tiles (default 64 MB)")
    p.add_argument("--chunk-cache-mb", type=int_in(0), default=64,
                   help="memory for decoded chunks, per store (default 64 MB)")
    add_storage_options(p)
    p.add_argument("--root-path", default="", metavar="PREFIX",
                   help="path prefix a reverse proxy serves this under (e.g. /mosaics)")
    p.add_argument("--public-url", default=None, metavar="URL",
                   help="external URL written into TileJSON (default http://HOST:PORT/PREFIX; "
                        "the Host header is never trusted)")
    p.add_argument("--metrics", metavar="SOURCE", default=None,
                   help="cp_verify outputs (or a Butler repository) for overlay=METRIC tiles")
    p.add_argument("--backlog", type=int_in(1, 65535), default=2048, help="listen backlog (default 2048)")
    p.add_argument("--keep-alive", type=positive_float, default=5.0,
                   help="seconds an idle keep-alive connection stays open (default 5)")
    p.add_argument("--header-timeout", type=positive_float, default=10.0,
                   help="seconds a client has to send a request head (default 10)")
    add_explore_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serve.server import ServeConfig, run as serve_run
    from ..serve.stores import store_names

    if args.root_path and not args.root_path.startswith("/"):
        args.root_path = "/" + args.root_path
    cfg = ServeConfig(stores=args.stores, host=args.host, port=args.port, workers=args.workers,
                      cache_bytes=args.cache_mb * 2**20, chunk_cache_bytes=args.chunk_cache_mb * 2**20,
                      storage_options=args.storage_options, public_url=args.public_url,
                      root_path=args.root_path.rstrip("/"), metrics=args.metrics, backlog=args.backlog,
                      keep_alive=args.keep_alive, header_timeout=args.header_timeout)
    # open every store once here: a bad one fails now, with its name, not in each worker
    from ..serve.stores import ServedStore

    for name, loc in store_names(args.stores).items():
        s = ServedStore(name, loc, args.storage_options, 0)
        log.info("%s: %s (%s, %d levels, zoom 0..%d)", name, loc, s.m.camera, s.m.n_levels, s.grid.maxzoom)

    if args.explore:
        from .serve_explore import run_with_explore

        return run_with_explore(args, cfg, store_names(args.stores))

    def ready(url: str) -> None:
        log.info("serving on %s/ with %d worker(s) (Ctrl-C stops)", url, args.workers)

    try:
        serve_run(cfg, ready)
    except KeyboardInterrupt:
        pass
    log.info("stopped")
    return 0
