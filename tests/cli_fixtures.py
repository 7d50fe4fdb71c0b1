"""The ``cpmosaic`` CLI as a server in its own process, for the tests that talk to it over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def start_cli(args: list[str], ready: str = "serving on ", timeout: float = 120) -> tuple[subprocess.Popen, str, list[str]]:
    """``python -m cpmosaic *args`` in its own process, once its log has a line containing ``ready``.

    Returns the process, that line and the log up to it; the rest of the log is drained by a
    thread (a server that logs on must not block on a full pipe).
    """
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "cpmosaic", *args], stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if ready in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, line, lines
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError(f"{args[0]} did not start:\n{''.join(lines)}")


def served_url(line: str) -> str:
    """The base URL of a ``serving on URL`` log line, without its trailing slash."""
    return line.split("serving on ")[1].split()[0].rstrip("/")


def stop_cli(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
