"""No Nagle stall: the server's end of a keep-alive connection has TCP_NODELAY set.

The old ``http.server`` tile server wrote a response's status and headers in one ``send`` and
its body in another on a socket without ``TCP_NODELAY``: a keep-alive client with delayed ACKs
then waited about 40 ms for every body (Nagle's algorithm holds the second small segment
until the first is acknowledged).  Timing that stall would make a flaky test, so this test
checks its cause instead: it finds the *server's* socket of a real keep-alive connection among
this process's file descriptors (the uvicorn server runs in a thread here) and asks the kernel
for its ``TCP_NODELAY`` flag.  With ``TCP_NODELAY`` every write goes out at once, however the
response is split.  The client keeps Nagle on (the default) and asks for several tiles on one
connection, reading each response whole by its ``Content-Length``.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest
from test_serve import RAFTS, SHRINK, make_store, write_detector  # noqa: F401  (the same fixture data)

from cpmosaic.serve.server import make_server

TILES = ["/visit/tiles/1/0/0.png", "/visit/tiles/1/1/1.png", "/visit/dzi_files/9/0_0.png",
         "/visit/tiles/1/0/0.png"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = make_server([str(make_store(tmp_path_factory))], port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def read_response(sock: socket.socket, buf: bytearray) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 response from a keep-alive socket: status, headers, body (by Content-Length)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection before the response head"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    n = int(headers["content-length"])
    body = bytearray(rest)
    while len(body) < n:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection inside a body"
        body += chunk
    buf[:] = body[n:]
    return status, headers, bytes(body[:n])


def server_end_nodelay(client: socket.socket) -> list[int]:
    """``TCP_NODELAY`` of every socket of this process whose peer is ``client`` (the server's
    end of the client's connection)."""
    me = client.getsockname()[:2]
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            s = socket.socket(fileno=os.dup(int(fd)))
        except OSError:  # not a socket (or gone)
            continue
        try:
            if s.type == socket.SOCK_STREAM and s.getpeername()[:2] == me:
                found.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        except OSError:  # a listening or unix socket has no peer
            pass
        finally:
            s.close()
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
def test_keep_alive_responses_are_whole_and_sent_without_nagle(server):
    host, port = server.server_address
    with socket.create_connection((host, port), timeout=60) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # a default client: Nagle on
        buf = bytearray()
        bodies = []
        for path in TILES:  # one request at a time on one connection, as a viewer does
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            status, headers, body = read_response(c, buf)
            assert status == 200, body[:200]
            assert headers["content-type"] == "image/png" and body.startswith(b"\x89PNG\r\n\x1a\n")
            assert headers.get("connection", "keep-alive").lower() != "close"
            bodies.append(body)
        assert bodies[0] == bodies[-1]  # the cached tile is the rendered one
        assert not buf  # nothing beyond the announced bodies
        # the server's end of this very connection, while it is open
        flags = server_end_nodelay(c)
        assert len(flags) == 1 and flags[0] != 0, flags  # the old http.server gave [0]
