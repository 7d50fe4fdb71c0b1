"""The mosaic engine: plan a focal-plane grid, build a multi-resolution store, read it.

>>> from cpmosaic.mosaic import build_mosaic, open_mosaic      # doctest: +SKIP
>>> report = build_mosaic(["visit/"], "visit.zarr", binning=8)  # doctest: +SKIP
>>> m = open_mosaic("visit.zarr")                              # doctest: +SKIP
>>> m.read(m.n_levels - 1)                                     # doctest: +SKIP

Stores are zarr v3 groups with OME-Zarr 0.5 metadata (see ``store.py`` for the layout).
"""

from .build import BuildReport, build_mosaic
from .inputs import InputSet, find_inputs
from .plan import LevelSpec, MosaicPlan, Placement, make_plan
from .store import MosaicStore, open_mosaic

__all__ = [
    "BuildReport",
    "InputSet",
    "LevelSpec",
    "MosaicPlan",
    "MosaicStore",
    "Placement",
    "build_mosaic",
    "find_inputs",
    "make_plan",
    "open_mosaic",
]
