"""Usage errors of the commands around the mosaic engine: one line, exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def cpmosaic(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cpmosaic", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC})


@pytest.mark.parametrize("args, words", [
    (["--days", "0"], "--days must be >= 1, got 0"),
    (["--days", "-3"], "--days must be >= 1, got -3"),
    (["--shrink", "0"], "--shrink must be >= 1, got 0"),
    (["--exposures", "0"], "--exposures must be >= 1, got 0"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
])
def test_synth_bad_numbers(tmp_path, args, words):
    out = tmp_path / "synth"
    r = cpmosaic("synth", "-o", str(out), *args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()  # no partial folder


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_serve_port_out_of_range(tmp_path, port):
    r = cpmosaic("serve", str(tmp_path), "--port", port)
    assert r.returncode == 2 and f"--port must be 0..65535, got {port}" in r.stderr
    assert "Traceback" not in r.stderr
