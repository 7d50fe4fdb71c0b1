"""``cpmosaic serve STORE [STORE...]``: serve mosaic stores over HTTP (tiles, Deep Zoom, TileJSON, zarr).

Endpoints are listed in :mod:`cpmosaic.serve`; open ``http://HOST:PORT/`` for the viewer.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve mosaic stores as XYZ/Deep Zoom tiles and OME-Zarr over HTTP",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", metavar="STORE", nargs="+",
                   help="mosaic store path or URL; NAME=PATH names it (default: folder name without .zarr)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free one; default 8000)")
    p.add_argument("--cache-mb", type=int, default=64, help="memory for rendered tiles (default 64 MB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        log.error("--port must be 0..65535, got %d", args.port)
        return 2
    from ..serve.app import make_server

    server = make_server(args.stores, host=args.host, port=args.port, cache_bytes=args.cache_mb * 2**20)
    for name, s in server.stores.items():
        log.info("%s: %s (%s, %d levels, zoom 0..%d)", name, s.location, s.m.camera, s.m.n_levels, s.grid.maxzoom)
    log.info("serving on %s/ (Ctrl-C stops)", server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()
    return 0
