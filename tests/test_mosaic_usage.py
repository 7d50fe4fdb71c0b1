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
    assert r.returncode == 2 and f"--port: {port} is outside 0..65535" in r.stderr
    assert "Traceback" not in r.stderr


def _modules_after(code: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC})
    assert r.returncode == 0, r.stderr
    return set(r.stdout.strip().splitlines()[-1].split())


def test_commands_import_only_what_they_need(tmp_path):
    """Start-up: --help and info load no heavy library; a local build loads no dask or distributed."""
    import numpy as np
    from astropy.io import fits

    from cpmosaic.camera import get_camera, shrink_camera, write_camera_json

    cam = shrink_camera(get_camera("LSSTCam"), 32)
    write_camera_json(cam, tmp_path / "cam.json")
    (tmp_path / "in").mkdir()
    det = cam["R22_S11"]
    fits.HDUList([fits.PrimaryHDU(header=fits.Header({"DETNAME": det.name, "INSTRUME": "LSSTCam"})),
                  fits.ImageHDU(np.ones(det.shape, np.float32), name="IMAGE")]).writeto(tmp_path / "in" / "a.fits")
    store = tmp_path / "m.zarr"
    build = _modules_after(
        "from cpmosaic.cli.main import main\n"
        f"assert main(['-q', 'mosaic', {str(tmp_path / 'in')!r}, '-o', {str(store)!r}, '--camera', "
        f"{str(tmp_path / 'cam.json')!r}, '--binning', '4', '--no-progress']) == 0")
    assert "numba" in build and "cpmosaic.mosaic.tasks" in build  # it did build
    assert not {"dask", "dask.array", "distributed", "scipy.linalg", "pandas", "holoviews", "bokeh"} & build
    info = _modules_after(f"from cpmosaic.cli.main import main\nassert main(['info', {str(store)!r}]) == 0")
    assert not {"numpy", "zarr", "dask", "numba", "astropy"} & info
    helped = _modules_after("import contextlib, io\nfrom cpmosaic.cli.main import main\n"
                            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
                            "    main(['--help'])")
    assert not {"zarr", "dask", "numba", "astropy", "pandas", "holoviews"} & helped
