"""``cpmosaic explore SOURCE [--mosaic STORE]... [--history PATH] [--against OTHER] [--port P]``.

Serves the linked explorer (:func:`cpmosaic.viz.explore`) as a Panel app: heat map,
histogram, mosaic, and the tapped amp's history, cut-out and metrics.  The selection is
in the page's URL, e.g.::

    http://127.0.0.1:5006/?calib=bias&day=2025-11-24&metric=NOISE&det=R22_S11&amp=C07

Listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise.
"""

from __future__ import annotations

import argparse
import logging

from .options import add_storage_options

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("explore", help="linked heat map, histogram, mosaic and amp views in the browser",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="cp_verify outputs (directory tree or file)")
    p.add_argument("--mosaic", action="append", dest="mosaics", default=[], metavar="STORE",
                   help="mosaic store (repeatable: one per calib type)")
    add_storage_options(p)
    p.add_argument("--history", metavar="PATH", help="history store (cpmosaic history add) for the amp's history")
    p.add_argument("--against", metavar="OTHER", help="other cp_verify outputs to compare with")
    p.add_argument("--camera", help="camera name or file (default: from the data)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5006, help="port (default 5006)")
    p.add_argument("--show", action="store_true", help="open a browser tab")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..viz.explore_serve import explore_server
    from ..viz.explorer import ExploreSources

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be 1..65535, got {args.port}")
    sources = ExploreSources.load(args.source, args.mosaics, args.history, args.against, camera=args.camera,
                                  storage_options=args.storage_options)
    log.info("explore: %d metric rows, %d mosaic store(s), history %s", len(sources.df), len(sources.stores),
             "yes" if sources.history is not None else "no")

    server = explore_server(sources, host=args.host, port=args.port)
    server.start()
    # said once the socket listens, so a script (or a test) that waits for this line can connect
    log.info("serving on http://%s:%d/ (Ctrl-C stops)", args.host, args.port)
    if args.show:
        server.io_loop.add_callback(server.show, "/")
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        log.info("stopped")
    return 0
