"""A real S3 API on loopback for the object-store tests (not a test module).

``moto_server`` starts moto's S3 server on 127.0.0.1 once per session and gives its
endpoint; tests reach it either through the environment s3fs reads
(``tests/test_mosaic_integrity.py``) or through ``--storage-options`` /
``storage_options=`` (:func:`s3_options`), with nothing in the environment.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: Credentials moto accepts (any will do); the AWS test convention.
KEY = SECRET = "testing"


def s3_options(endpoint: str) -> dict:
    """s3fs options that reach the moto server at ``endpoint`` with no environment."""
    return {"endpoint_url": endpoint, "key": KEY, "secret": SECRET}


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """The endpoint URL (``http://127.0.0.1:PORT``) of a moto S3 server; skips when moto is absent."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    server = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(server).exists():
        pytest.skip("moto_server not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    pytest.skip("moto_server did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
