"""The mosaic engine: plan a focal-plane grid, build a multi-resolution store, read it.

>>> from cpmosaic.mosaic import build_mosaic, open_mosaic      # doctest: +SKIP
>>> report = build_mosaic(["visit/"], "visit.zarr", binning=8)  # doctest: +SKIP
>>> m = open_mosaic("visit.zarr")                              # doctest: +SKIP
>>> m.read(m.n_levels - 1)                                     # doctest: +SKIP

Stores are zarr v3 groups with OME-Zarr 0.5 metadata (see ``store.py`` for the layout).
"""

from __future__ import annotations

import importlib

#: name -> module, imported on first use (reading a store needs no dask, the CLI's
#: --help nothing of this)
_LAZY = {
    "BuildReport": ".build",
    "build_mosaic": ".build",
    "InputSet": ".inputs",
    "find_inputs": ".inputs",
    "LevelSpec": ".plan",
    "MosaicPlan": ".plan",
    "Placement": ".plan",
    "make_plan": ".plan",
    "MosaicStore": ".reader",
    "open_mosaic": ".reader",
}

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


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
