"""Calibration metrics: cp_verify ingestion, DMTN-101 tests, outliers, comparisons, history.

>>> from cpmosaic.metrics import load_metrics, evaluate, summary   # doctest: +SKIP
>>> df = load_metrics("cpv_out")                                    # doctest: +SKIP
>>> summary(df)["success"]                                          # doctest: +SKIP
False

Nothing heavy is imported here (no lsst.daf.butler, no astropy): the CLI imports
this module at start-up.
"""

from __future__ import annotations

from .compare import compare_images, compare_metrics, comparison_summary
from .drift import ALERT_COLUMNS, Daily, daily_matrix, detect_changes
from .history import (STORE_COLUMNS, HistoryStore, as_day_obs, candlesticks, day_obs_from_mjd, recommendations,
                      validity_ranges)
from .images import image_metrics, metrics_from_images
from .outliers import (FINDING_COLUMNS, MAD_TO_SIGMA, OUTLIER_COLUMNS, ROW_COLUMNS, find_outliers, focal_plane_z, history_z,
                       outlier_rows, robust_z, sensor_types, to_csv, to_json)
from .ptc import PTC_COLUMNS, find_ptc, ptc_reference, read_ptc_file
from .table import COLUMNS, EXPOSURE_WIDE, build_table, empty_table, load_metrics
from .tests import DEFAULT_THRESHOLDS, Thresholds, evaluate, summary

__all__ = [
    "ALERT_COLUMNS",
    "Daily",
    "HistoryStore",
    "STORE_COLUMNS",
    "as_day_obs",
    "candlesticks",
    "daily_matrix",
    "day_obs_from_mjd",
    "detect_changes",
    "recommendations",
    "validity_ranges",
    "COLUMNS",
    "DEFAULT_THRESHOLDS",
    "EXPOSURE_WIDE",
    "FINDING_COLUMNS",
    "MAD_TO_SIGMA",
    "OUTLIER_COLUMNS",
    "PTC_COLUMNS",
    "ROW_COLUMNS",
    "Thresholds",
    "build_table",
    "compare_images",
    "compare_metrics",
    "comparison_summary",
    "empty_table",
    "evaluate",
    "find_outliers",
    "find_ptc",
    "focal_plane_z",
    "history_z",
    "image_metrics",
    "load_metrics",
    "metrics_from_images",
    "outlier_rows",
    "ptc_reference",
    "read_ptc_file",
    "robust_z",
    "sensor_types",
    "summary",
    "to_csv",
    "to_json",
]

