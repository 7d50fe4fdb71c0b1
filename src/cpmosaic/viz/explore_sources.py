"""What every explorer session shares, loaded once: metrics, verdicts, outliers, stores, history.

:class:`ExploreSources` reads the sources :func:`cpmosaic.viz.explore` names (paths or
objects) and evaluates them once, so each browser session of ``cpmosaic explore`` starts
from the same tables.
"""

from __future__ import annotations

import logging
import os

import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["ExploreSources"]


def _load(source, camera=None) -> pd.DataFrame:
    if source is None or isinstance(source, pd.DataFrame):
        return source
    from ..metrics import load_metrics

    return load_metrics(source, camera=camera)


class ExploreSources:
    """What every explorer session shares, loaded once: the metrics and their evaluation,
    outliers, the camera's amp geometry, the mosaic stores and the history store."""

    def __init__(self, df: pd.DataFrame, *, stores=(), history=None, against: pd.DataFrame | None = None,
                 camera=None) -> None:
        from ..metrics import evaluate, find_outliers
        from .heatmap import amp_geometry, resolve_camera

        self.df = df
        self.against = against
        self.camera = resolve_camera(camera, df)
        self.geometry = amp_geometry(self.camera)
        self.results = evaluate(df, camera=self.camera)
        try:
            self.outliers = find_outliers(df, history=False)
        except Exception as exc:  # a table too small to score: no outlier marks, say why
            log.warning("explore: no outliers (%s)", exc)
            self.outliers = pd.DataFrame(columns=["calib_type", "run", "day_obs", "detector", "amp", "metric"])
        self.history = history
        self.stores = list(stores)
        self.store_types = [getattr(s, "calib_type", None) for s in self.stores]

    @classmethod
    def load(cls, metrics_source, mosaic_stores=(), history=None, against=None, *, camera=None,
             storage_options: dict | None = None) -> "ExploreSources":
        """Read the sources :func:`explore` names (paths or objects); ``storage_options`` for store URLs."""
        from ..metrics.history import HistoryStore
        from .mosaic_view import open_store

        df = _load(metrics_source, camera)
        if df is None or df.empty:
            raise ValueError(f"explore: no metrics in {metrics_source!r}")
        b = _load(against, camera)
        if isinstance(mosaic_stores, (str, os.PathLike)) or hasattr(mosaic_stores, "levels"):
            mosaic_stores = [mosaic_stores]
        stores = [open_store(s, storage_options) for s in mosaic_stores or ()]
        hist = HistoryStore(history) if isinstance(history, (str, os.PathLike)) else history
        return cls(df, stores=stores, history=hist, against=b, camera=camera)
