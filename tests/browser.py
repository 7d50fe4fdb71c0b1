"""Helpers for tests that open pages in headless chromium (not a test module).

``serve(directory)`` serves a directory on 127.0.0.1 in a thread and records each request
with its status; ``chromium(url, profile)`` runs headless chromium with networking
features off and console logging on; ``console_errors`` picks JavaScript errors out of its
log.  Tests skip cleanly when :data:`CHROMIUM` is absent (see :func:`have_chromium`).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import subprocess
import threading
from pathlib import Path
from typing import Iterator

CHROMIUM = Path("/usr/bin/chromium")


def have_chromium() -> bool:
    return CHROMIUM.exists()


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """``(base URL, [(path, status), ...])`` of an HTTP server for *directory*, while in the block."""
    requests: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def log_request(self, code="-", size="-"):
            requests.append((self.path, int(code) if str(code).isdigit() else 0))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def chromium(url: str, profile: Path, *extra: str, budget_ms: int = 8000) -> subprocess.CompletedProcess:
    """Load *url* in headless chromium and dump the DOM (stdout); console messages go to stderr."""
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", "--dump-dom", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    """Console lines that report a JavaScript error or a failed load."""
    lines = [ln for ln in stderr.splitlines() if "CONSOLE" in ln]
    return [ln for ln in lines if re.search(r"Uncaught|Error|Failed to load", ln)]
