"""Start-up cost of a build: numba's CPU target without its BLAS probe.

The first numba kernel a process loads (even from numba's cache) sets up
numba's CPU target, whose ``numba.np.arraymath`` checks once whether BLAS is
there by importing ``scipy.linalg`` (0.3-0.45 s, a sixth of a whole binning-8
build of the focal plane).  The answer only picks the loop behind numba's
``np.vdot``/``np.correlate`` of floats (BLAS or a plain loop); every linear
algebra function still checks for BLAS itself when it is compiled.
cpmosaic's kernels use none of them, so a build lets numba set up its target
with the probe answering "no BLAS" and puts the probe back at once.
"""

from __future__ import annotations

import sys

__all__ = ["load_numba_target"]


def load_numba_target() -> None:
    """Import numba's array registries without the scipy probe (once, before the first kernel)."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return  # already set up, or scipy already paid for: nothing to save
    try:
        from numba.np import linalg
    except ImportError:
        return
    probe = linalg.ensure_blas

    def no_blas() -> None:
        raise ImportError("BLAS probe skipped at start-up (cpmosaic.mosaic._startup)")

    linalg.ensure_blas = no_blas
    try:
        import numba.np.arraymath  # noqa: F401 - its import runs the probe
    finally:
        linalg.ensure_blas = probe
