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

from .manifest import Manifest, read_manifest
from .night import synthesize

__all__ = ["Manifest", "make_butler_repo", "read_manifest", "synthesize"]


def make_butler_repo(*args, **kwargs):
    """See :func:`cpmosaic.synth.butler.make_butler_repo` (imported on use)."""
    from .butler import make_butler_repo as _make

    return _make(*args, **kwargs)
