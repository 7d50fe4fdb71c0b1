"""Run the tile service with uvicorn: workers, listen backlog, idle and header timeouts.

``cpmosaic serve`` and :func:`make_server` build a :class:`ServeConfig` and run
:func:`cpmosaic.serve.app.create_app` under uvicorn (httptools and uvloop when installed):

* one socket bound here with a real listen backlog (default 2048), shared by ``workers``
  processes;
* asyncio sets ``TCP_NODELAY`` on every connection, so a response's header and body writes
  never wait for the client's delayed ACK (the 40 ms Nagle stall);
* an idle keep-alive connection is closed after ``keep_alive`` seconds, and a connection that
  has not sent a whole request head within ``header_timeout`` seconds is closed too (slow or
  idle clients cannot hold the server's resources);
* at most ``limit_concurrency`` connections are served at once (503 beyond).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["ServeConfig", "TileServer", "make_server", "run", "uvicorn_config"]

_ENV = "CPMOSAIC_SERVE_CONFIG"


@dataclasses.dataclass
class ServeConfig:
    """Everything ``cpmosaic serve`` needs; JSON-serialisable so worker processes rebuild the app."""

    stores: list[str]
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    cache_bytes: int = 64 * 2**20
    chunk_cache_bytes: int = 64 * 2**20
    storage_options: dict | None = None
    public_url: str | None = None
    root_path: str = ""
    metrics: Any = None  # a source (str) or a metrics table (in-process only)
    backlog: int = 2048
    keep_alive: float = 5.0
    header_timeout: float = 10.0
    limit_concurrency: int | None = 1024
    max_cutout_pixels: int | None = None

    def app(self):
        from .app import create_app

        return create_app(self.stores, public_url=self.public_url, cache_bytes=self.cache_bytes,
                          chunk_cache_bytes=self.chunk_cache_bytes, storage_options=self.storage_options,
                          metrics=self.metrics, max_cutout_pixels=self.max_cutout_pixels)


def _app_from_environment():
    """The app of a worker process (uvicorn's factory, given the config in the environment)."""
    return ServeConfig(**json.loads(os.environ[_ENV])).app()


def _protocol_class(header_timeout: float):
    """The HTTP protocol with a request-head timeout (None without httptools: uvicorn's h11
    protocol, keep-alive timeout only)."""
    try:
        from .protocol import ENV, HeaderTimeoutProtocol
    except ImportError:
        return None
    os.environ[ENV] = repr(float(header_timeout))
    return HeaderTimeoutProtocol


def uvicorn_config(cfg: ServeConfig, app=None):
    """A ``uvicorn.Config`` for ``cfg`` (``app``: an app object for one in-process server)."""
    import uvicorn

    protocol = _protocol_class(cfg.header_timeout)
    kw: dict[str, Any] = dict(host=cfg.host, port=cfg.port, backlog=cfg.backlog, timeout_keep_alive=cfg.keep_alive,
              limit_concurrency=cfg.limit_concurrency, root_path=cfg.root_path, lifespan="off",
              access_log=False, log_config=None, server_header=False, proxy_headers=False)
    if protocol is not None:
        kw["http"] = protocol
    if app is None:
        os.environ[_ENV] = json.dumps(dataclasses.asdict(cfg))
        return uvicorn.Config("cpmosaic.serve.server:_app_from_environment", factory=True,
                              workers=cfg.workers, **kw)
    return uvicorn.Config(app, **kw)


def _bind(cfg: ServeConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((cfg.host, cfg.port))
    sock.listen(cfg.backlog)
    sock.set_inheritable(True)
    return sock


def _url(cfg: ServeConfig, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{cfg.root_path.rstrip('/')}"


def run(cfg: ServeConfig, ready=None) -> None:
    """Serve until interrupted (``ready(url)`` is called once listening)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    sock = _bind(cfg)
    url = _url(cfg, sock)
    if cfg.public_url is None:
        cfg.public_url = url
    config = uvicorn_config(cfg)
    if ready:
        ready(url)
    try:
        if cfg.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


class TileServer:
    """One in-process uvicorn server on a thread-friendly API: ``serve_forever``, ``shutdown``,
    ``server_close``; ``url``, ``stores``, ``cache`` and ``requests`` (``(method, path, status, ms)``)."""

    def __init__(self, cfg: ServeConfig) -> None:
        import uvicorn

        self.cfg = cfg
        self.sock = _bind(cfg)
        self.url = _url(cfg, self.sock)
        if cfg.public_url is None:
            cfg.public_url = self.url
        self.app = cfg.app()
        self.stores = self.app.state.stores
        self.cache = self.app.state.cache
        self.requests = self.app.state.requests
        self._server = uvicorn.Server(uvicorn_config(cfg, self.app))
        self._done = threading.Event()

    @property
    def server_address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def serve_forever(self) -> None:
        try:
            self._server.run(sockets=[self.sock])
        finally:
            self._done.set()

    def shutdown(self) -> None:
        self._server.should_exit = True
        self._done.wait(timeout=30)

    def server_close(self) -> None:
        self.sock.close()


def make_server(locations: list[str], host: str = "127.0.0.1", port: int = 8000,
                cache_bytes: int = 64 * 2**20, **options: Any) -> TileServer:
    """A :class:`TileServer` for store paths/URLs (``NAME=PATH`` names one); run ``serve_forever``
    in a thread and stop it with ``shutdown``.  ``options`` are :class:`ServeConfig` fields.

    >>> srv = make_server(["visit.zarr"], port=0)                         # doctest: +SKIP
    >>> threading.Thread(target=srv.serve_forever, daemon=True).start()  # doctest: +SKIP
    """
    return TileServer(ServeConfig(stores=list(locations), host=host, port=port, cache_bytes=cache_bytes, **options))
