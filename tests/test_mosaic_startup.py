"""The build's numba start-up (mosaic._startup): kernels still give the reference results,
freshly compiled functions still work, and the skipped parts are skipped (each in a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")

CHECK = """
import sys
import numpy as np
from cpmosaic.mosaic import _startup
if LEAN:
    _startup.lean_process()
_startup.load_numba_target()
from cpmosaic.kernels import bin_rotate_into, pyramid_reduce
from cpmosaic.kernels import reference as ref
rng = np.random.default_rng(1)
img = rng.normal(size=(37, 29)).astype('>f4')
img[3, 4] = np.nan
out = np.full((5, 4), np.nan, np.float32)
bin_rotate_into(img, 8, 0, out, 0, 0)
assert np.allclose(out, ref.block_reduce(img.astype('f4'), 8), equal_nan=True, rtol=1e-6)
half = pyramid_reduce(out)
assert np.allclose(half, ref.pyramid_reduce(out), equal_nan=True, rtol=1e-6)
import numba
@numba.njit
def grown(n):  # compiled now: allocates (NRT) and counts references
    a = np.arange(n)
    b = a[1:]
    return b.sum() + len([a, b])
assert grown(10) == 47
print('cffi' in sys.modules, 'scipy.linalg' in sys.modules, 'numba.core.typing.cffi_utils' in sys.modules)
try:
    import cffi
    print('cffi importable', cffi.FFI() is not None)
except ImportError:
    print('cffi importable', None)
from numba.core import config
print('opt', int(config.OPT))
"""


def run(lean: bool) -> list[str]:
    r = subprocess.run([sys.executable, "-c", f"LEAN = {lean}\n" + CHECK], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": SRC})
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")


@pytest.mark.parametrize("lean", [False, True])
def test_kernels_and_new_compiles_after_the_cheap_start(lean):
    modules, importable, opt = run(lean)[:3]
    cffi_loaded, scipy_linalg, _ = modules.split()
    assert scipy_linalg == "False"  # the BLAS probe was skipped
    assert opt == "opt 3"  # the optimisation level is put back
    if lean:
        assert cffi_loaded == "False"  # numba's C parser never built
    try:
        import cffi  # noqa: F401
    except ImportError:
        return
    assert importable == "cffi importable True"  # and cffi still works for everyone else


def test_the_command_collects_cycles_again_once_started():
    code = ("import gc\nfrom cpmosaic.mosaic import _startup\n_startup.lean_process()\noff = not gc.isenabled()\n"
            "_startup.startup_done()\nprint(off, gc.isenabled(), gc.get_freeze_count() > 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": SRC})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "True"]
