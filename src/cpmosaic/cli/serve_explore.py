"""``cpmosaic serve STORE... --explore SOURCE``: the tile server and the explorer in one process.

Both run on one asyncio event loop: uvicorn serves the tile app on ``--port``, the explorer's
Bokeh server (:func:`cpmosaic.viz.explore_serve.explore_server`) listens on ``--explore-port``
(default: the next port), and ``GET /explore`` on the tile server redirects there, keeping
the query (``/explore?det=R22_S11&amp=C07`` opens on that amp).
"""

from __future__ import annotations

import argparse
import logging
import socket

log = logging.getLogger(__name__)

__all__ = ["add_explore_options", "run_with_explore"]


def add_explore_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("explorer (served from the same process)")
    g.add_argument("--explore", metavar="SOURCE", default=None,
                   help="also serve the linked explorer of these cp_verify outputs (the stores are its mosaics)")
    g.add_argument("--history", metavar="PATH", default=None, help="history store for the explorer's amp history")
    g.add_argument("--against", metavar="OTHER", default=None, help="other cp_verify outputs to compare with")
    g.add_argument("--explore-port", type=int, default=None, metavar="P",
                   help="the explorer's port (default: --port + 1, or any free one with --port 0)")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def run_with_explore(args: argparse.Namespace, cfg, locations: dict[str, str]) -> int:
    """Serve the tile app and the explorer until interrupted (one worker; see module doc)."""
    import asyncio

    import uvicorn
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    from ..serve.server import _bind, _url, uvicorn_config
    from ..viz.explore_serve import explore_server
    from ..viz.explorer import ExploreSources

    if cfg.workers != 1:
        raise ValueError("--explore runs in one process: use --workers 1")
    port = args.explore_port or (cfg.port + 1 if cfg.port else _free_port(cfg.host))
    if not 0 < port < 65536 or port == cfg.port:
        raise ValueError(f"--explore-port must be 1..65535 and differ from --port, got {port}")
    sources = ExploreSources.load(args.explore, list(locations.values()), args.history, args.against,
                                  storage_options=args.storage_options)
    sock = _bind(cfg)
    url = _url(cfg, sock)
    if cfg.public_url is None:
        cfg.public_url = url
    wildcard = cfg.host in ("0.0.0.0", "::", "")

    def explore_url(name: str) -> str:
        return f"http://[{name}]:{port}/" if ":" in name else f"http://{name}:{port}/"

    async def to_explorer(request):
        # bound to every interface, the client reached us by some name of this machine: send it
        # to the explorer under that name (0.0.0.0 is no address for a browser)
        target = explore_url((request.url.hostname or "127.0.0.1") if wildcard else cfg.host)
        query = request.url.query
        return RedirectResponse(target + (f"?{query}" if query else ""), status_code=307)

    app = cfg.app()
    app.router.routes.insert(0, Route("/explore", to_explorer, methods=["GET", "HEAD"]))
    server = uvicorn.Server(uvicorn_config(cfg, app))

    async def main() -> None:
        explorer = explore_server(sources, host=cfg.host, port=port)  # on this loop
        explorer.start()
        log.info("serving on %s/ and the explorer on %s (%s/explore redirects there; Ctrl-C stops)",
                 url, explore_url("127.0.0.1" if wildcard else cfg.host), url)
        try:
            await server.serve(sockets=[sock])
        finally:
            explorer.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    log.info("stopped")
    return 0
