"""The calibration report: every plot of a calibration as PNG and interactive HTML, with an index.

>>> from cpmosaic.report import build_report                       # doctest: +SKIP
>>> r = build_report("repo", "report/", collections="u/me/verifyBias")  # doctest: +SKIP
>>> r.index, r.summary["cp_verify_success"]                         # doctest: +SKIP

Nothing heavy is imported here: HoloViews and bokeh load when a report is built.
"""

from __future__ import annotations

from .build import FIGURES_FILE, Figure, ReportResult, build_report, load_source

__all__ = ["FIGURES_FILE", "Figure", "ReportResult", "build_report", "load_source"]
