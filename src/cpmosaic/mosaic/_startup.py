"""Start-up cost of a build: numba's CPU target without the parts cpmosaic's kernels never use.

The first numba kernel a process loads (even from numba's cache) sets up
numba's CPU target.  Three parts of that cost a whole binning-8 build of the
focal plane (~2 s) a noticeable share and serve nothing cpmosaic's kernels do:

* ``numba.np.arraymath`` checks once whether BLAS is there by importing
  ``scipy.linalg`` (0.3-0.45 s).  The answer only picks the loop behind numba's
  ``np.vdot``/``np.correlate`` of floats; every linear algebra function still
  checks for BLAS itself when it is compiled.  The build lets numba set up its
  target with the probe answering "no BLAS" and puts the probe back at once.
* numba's runtime (NRT: reference counts, allocation) is compiled from LLVM IR
  in every process, with the full optimisation pipeline (~30 ms).  Its functions
  are a few instructions each; cached kernels call them a handful of times per
  call, and a kernel compiled later links and optimises them itself.  The build
  compiles them with the pipeline at level 0 (the machine code generator keeps
  its own level).
* In the ``cpmosaic`` command only (:func:`lean_process`; a library caller's
  numba is left whole): numba's typing of cffi functions builds a C parser
  (``cffi.FFI()``, 20-60 ms), and numba looks up extension packages through
  every installed package's entry points (10-70 ms).  A command process runs
  only cpmosaic's kernels, which use neither.  The command also keeps Python's
  cyclic collector off while it starts (:func:`lean_process`): start-up
  allocates hundreds of thousands of objects that stay, and the collector walked
  them again and again (~15% of the imports' time).  It is back on, with the
  start-up's objects frozen out of its way, before the shard tasks start
  (:func:`startup_done`).
"""

from __future__ import annotations

import gc
import sys

__all__ = ["lean_process", "load_numba_target", "startup_done"]

_LEAN = False
_GC_OFF = False


def lean_process() -> None:
    """Say that this process runs cpmosaic's kernels only (the CLI), and keep the cyclic
    collector off until :func:`startup_done`: see the module notes."""
    global _LEAN, _GC_OFF
    _LEAN = True
    if gc.isenabled():
        gc.disable()
        _GC_OFF = True


def startup_done() -> None:
    """Turn the cyclic collector back on if :func:`lean_process` turned it off (the objects
    made so far, modules and the camera, are frozen: the collector leaves them alone)."""
    global _GC_OFF
    if _GC_OFF:
        gc.freeze()
        gc.enable()
        _GC_OFF = False


def load_numba_target() -> None:
    """Set numba's CPU target up without its scipy probe (once, before the first kernel)."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return  # already set up, or scipy already paid for: nothing to save
    try:
        from numba.np import linalg
    except ImportError:
        return
    if _LEAN:
        from numba.core import entrypoints

        entrypoints._already_initialized = True  # no numba_extensions entry points
        if "cffi" not in sys.modules:
            sys.modules["cffi"] = None  # type: ignore[assignment] # numba's cffi typing: off
    probe = linalg.ensure_blas

    def no_blas() -> None:
        raise ImportError("BLAS probe skipped at start-up (cpmosaic.mosaic._startup)")

    linalg.ensure_blas = no_blas
    try:
        import numba.np.arraymath  # noqa: F401 - its import runs the probe
    finally:
        linalg.ensure_blas = probe
    _compile_runtime_cheaply()
    if _LEAN and sys.modules.get("cffi", 0) is None:
        del sys.modules["cffi"]  # numba has made up its mind; others may import cffi


def _compile_runtime_cheaply() -> None:
    """Set the target up (registries and NRT) with the IR optimisation pipeline at level 0."""
    try:
        from numba.core import config
        from numba.core.registry import cpu_target
    except ImportError:
        return
    context = cpu_target.target_context  # made first: its code generator keeps the usual level
    level = getattr(config, "OPT", None)  # (numba's stubs do not declare its settings)
    if level is None:
        return
    try:
        config.OPT = type(level)(0)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return
    try:
        context.refresh()  # installs the registries and compiles the NRT
    finally:
        config.OPT = level  # type: ignore[attr-defined]
