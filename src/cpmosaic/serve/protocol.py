"""uvicorn's httptools HTTP protocol with a timeout on receiving each request head.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for a
client that opens a connection and sends nothing, or sends its headers a byte at a time.
Here a connection that has not sent a whole request head within ``HEADER_TIMEOUT`` seconds
(environment ``CPMOSAIC_SERVE_HEADER_TIMEOUT``, default 10) of connecting, or of starting a
request, is closed.  HTTP/1.0 clients that ask for keep-alive (``ab -k``, some proxies) get it,
where uvicorn closes their connection after each response.  A module-level class, so
uvicorn's worker processes can import it.
"""

from __future__ import annotations

import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeaderTimeoutProtocol", "ENV"]

ENV = "CPMOSAIC_SERVE_HEADER_TIMEOUT"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes connections slow to send a request head."""

    _head_timer = None

    def _arm(self) -> None:
        self._disarm()
        timeout = float(os.environ.get(ENV, "10"))
        self._head_timer = self.loop.call_later(timeout, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        cycle = self.cycle
        if (cycle is not None and self.parser.get_http_version() == "1.0" and self.parser.should_keep_alive()
                and not self.parser.should_upgrade()):
            cycle.keep_alive = True
            send = cycle.send

            async def send_keep_alive(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"keep-alive")]}
                await send(message)

            cycle.send = send_keep_alive  # type: ignore[method-assign]  # this cycle's send only

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)
