"""The explorer as a Bokeh server: one :class:`~cpmosaic.viz.explorer.Explorer` per browser session.

``cpmosaic explore`` runs it on its own; ``cpmosaic serve STORE... --explore SOURCE`` runs
it in the tile server's process, on the same asyncio event loop (Panel 1.10 mounts into
FastAPI only through the separate ``bokeh-fastapi`` package, and the tile server is plain
Starlette), on a port of its own.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["explore_server"]


def explore_server(sources: Any, *, host: str = "127.0.0.1", port: int = 5006, title: str = "cpmosaic explore",
                   **explorer: Any):
    """A Bokeh ``Server`` (not started) serving the explorer of *sources* at ``http://host:port/``.

    Created inside a running asyncio loop, it runs on that loop (tornado wraps it); call
    ``start()`` then, and ``stop()`` when done.  Websocket connections are accepted from pages
    of this host and port only (bound to every interface: also of this machine's own names).
    *explorer* are :class:`~cpmosaic.viz.explorer.Explorer` keywords.
    """
    import panel as pn

    from .explorer import Explorer

    if not 0 < int(port) < 65536:
        raise ValueError(f"explore port must be 1..65535, got {port}")

    def session() -> Explorer:
        return Explorer(sources, **explorer)

    names = [host, "localhost", "127.0.0.1"]
    if host in ("0.0.0.0", "::", ""):  # every interface: pages may come by this machine's own names too
        import socket

        names += [socket.gethostname(), socket.getfqdn()]
    origins = [f"{h}:{port}" for h in dict.fromkeys(names) if h]
    return pn.serve(session, port=int(port), address=host, websocket_origin=origins, show=False, start=False,
                    title=title, verbose=False)
