"""Realistic synthetic LSST calibration data, deterministic from a seed.

:func:`synthesize` writes raw exposures (real raw layout and headers),
processed images and calibration products (afw layout), cp_verify outputs at
detector, exposure and run tier over several days (with a drift and a jump), and
optionally a Butler repository, with anomalies at known places recorded in a
:class:`Manifest` (``ROOT/manifest.json``).

>>> from cpmosaic.synth import synthesize, read_manifest        # doctest: +SKIP
>>> m = synthesize("/tmp/synth", shrink=16, n_days=3)            # doctest: +SKIP
>>> m.anomaly("hot_amp")["detector_name"], m.paths("processed")[:1]   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .manifest import Manifest, read_manifest
from .night import synthesize

if TYPE_CHECKING:
    from ..camera import Camera

__all__ = ["Manifest", "make_butler_repo", "read_manifest", "synthesize"]


def make_butler_repo(root: str | os.PathLike, source: Manifest | str | os.PathLike, *,
                     camera: Camera | str | None = None, instrument: str | None = None,
                     chain: str = "u/cpv/verify", calib_chain: str = "u/cpv/calib", images: bool = True,
                     transfer: str = "copy", mode: str = "auto", overwrite: bool = True) -> Path:
    """See :func:`cpmosaic.synth.butler.make_butler_repo` (imported on use: it needs lsst-daf-butler)."""
    from .butler import make_butler_repo as _make

    return _make(root, source, camera=camera, instrument=instrument, chain=chain, calib_chain=calib_chain,
                 images=images, transfer=transfer, mode=mode, overwrite=overwrite)
