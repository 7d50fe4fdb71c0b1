"""The tables behind the explorer's panels: plain pandas, no UI.

``select_rows`` picks the rows of a selection (calib type, run, night, metric),
``amp_metrics`` builds the table of one amp's metrics with cp_verify's verdict and
cpmosaic's (``evaluate``), ``choices`` lists what the widgets offer.

>>> import pandas as pd
>>> df = pd.DataFrame({"calib_type": "bias", "run": ["r1", "r2"], "day_obs": [20251124, 20251125],
...                    "metric": "NOISE", "detector": 94, "detector_name": "R22_S11", "amp": "C07",
...                    "value": [5.0, 6.0], "passed": [True, False]})
>>> from cpmosaic.viz.explore_state import ExploreState
>>> select_rows(df, ExploreState(calib_type="bias", day="2025-11-25", metric="NOISE"))["value"].tolist()
[6.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .explore_state import ExploreState, day_obs_of, day_text

__all__ = ["select_rows", "amp_metrics", "choices", "default_metric", "metric_label", "outline_xy",
           "AMP_TABLE_COLUMNS"]

#: Columns of :func:`amp_metrics`, in order.
AMP_TABLE_COLUMNS = ("exposure", "metric", "value", "against", "threshold", "cp_verify", "cpmosaic")


def _mask(df: pd.DataFrame, column: str, value) -> np.ndarray:
    return df[column].eq(value).to_numpy(dtype=bool, na_value=False)


def select_rows(df: pd.DataFrame, state: ExploreState, *, metric: bool = True) -> pd.DataFrame:
    """Rows of *df* in the selection's calib type, run, night (and metric, unless ``metric=False``).

    Empty fields of the selection do not filter.
    """
    keep = np.ones(len(df), dtype=bool)
    if state.calib_type and "calib_type" in df.columns:
        keep &= _mask(df, "calib_type", state.calib_type)
    if state.run and "run" in df.columns:
        keep &= _mask(df, "run", state.run)
    if state.day and "day_obs" in df.columns:
        keep &= _mask(df, "day_obs", day_obs_of(state.day))
    if metric and state.metric:
        keep &= _mask(df, "metric", state.metric)
    return df[keep]


def choices(df: pd.DataFrame, state: ExploreState) -> dict[str, list[str]]:
    """What each widget offers for the selection: ``calib_type``, ``run``, ``day``, ``metric``.

    Runs and nights are those of the calib type; metrics those with amp-level values in the
    selected calib type, run and night.
    """
    out: dict[str, list[str]] = {}
    out["calib_type"] = sorted(map(str, pd.unique(df["calib_type"].dropna()))) if "calib_type" in df else []
    of_type = select_rows(df, ExploreState(calib_type=state.calib_type), metric=False)
    out["run"] = sorted(map(str, pd.unique(of_type["run"].dropna()))) if "run" in of_type else []
    days = pd.unique(of_type["day_obs"].dropna()) if "day_obs" in of_type else []
    out["day"] = [day_text(int(d)) for d in sorted(int(d) for d in days)]
    sel = select_rows(df, state, metric=False)
    amp = sel[sel["amp"].fillna("").astype(str) != ""] if "amp" in sel else sel
    out["metric"] = sorted(map(str, pd.unique(amp["metric"].dropna())))
    return out


def default_metric(metrics: list[str]) -> str:
    """NOISE when there, else MEAN, else the first."""
    for m in ("NOISE", "MEAN"):
        if m in metrics:
            return m
    return metrics[0] if metrics else ""


#: Units of cp_verify's per-amp statistics, by calib type (cp_verify measures the ISR-corrected
#: images, in electrons); metrics not listed are shown without a unit.
METRIC_UNITS = {("bias", "MEAN"): "e-", ("bias", "NOISE"): "e-", ("bias", "CR_NOISE"): "e-",
                ("dark", "MEAN"): "e-", ("dark", "NOISE"): "e-", ("dark", "CR_NOISE"): "e-",
                ("flat", "MEAN"): "e-", ("flat", "NOISE"): "e-"}


def metric_label(metric: str, calib_type: str | None = None) -> str:
    """An axis label for a metric: its name and, where known, its unit.

    >>> metric_label("NOISE", "bias"), metric_label("DIVISADERO_MAX", "bias")
    ('NOISE (e-)', 'DIVISADERO_MAX')
    """
    unit = METRIC_UNITS.get((str(calib_type or ""), str(metric)))
    return f"{metric} ({unit})" if unit else str(metric)


def amp_metrics(df: pd.DataFrame, state: ExploreState, *, results: pd.DataFrame | None = None,
                against: pd.DataFrame | None = None) -> pd.DataFrame:
    """One amp's metrics in the selection: value, cp_verify's verdict and cpmosaic's.

    Parameters
    ----------
    df
        Tidy metrics table.
    state
        The selection (its ``detector`` and ``amp`` name the amp; its metric is not a filter:
        every metric of the amp is listed).
    results
        ``cpmosaic.metrics.evaluate(df)``: its ``threshold`` and ``passed`` (``cpmosaic``)
        are joined on (exposure, metric == test).
    against
        Another tidy table; the amp's median value of each metric there is ``against``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`AMP_TABLE_COLUMNS`, sorted by metric then exposure; ``cp_verify`` and
        ``cpmosaic`` are ``passed`` / ``failed`` / empty.
    """
    rows = select_rows(df, state, metric=False)
    rows = rows[_mask(rows, "detector_name", state.detector) & _mask(rows, "amp", state.amp)]
    out = pd.DataFrame({"exposure": rows["exposure"].to_numpy() if "exposure" in rows else pd.NA,
                        "metric": rows["metric"].astype(str).to_numpy(),
                        "value": rows["value"].to_numpy(dtype=float),
                        "cp_verify": _verdict(rows["passed"] if "passed" in rows else None, len(rows))})
    out["against"] = np.nan
    out["threshold"] = np.nan
    out["cpmosaic"] = ""
    if results is not None and len(results) and len(out):
        res = select_rows(results, state, metric=False)
        res = res[_mask(res, "detector_name", state.detector) & _mask(res, "amp", state.amp)]
        if len(res):
            res = pd.DataFrame({"exposure": res["exposure"].to_numpy(), "metric": res["test"].astype(str).to_numpy(),
                                "_threshold": res["threshold"].to_numpy(dtype=float),
                                "_ours": _verdict(res["passed"], len(res))})
            res = res.drop_duplicates(["exposure", "metric"])
            out = out.merge(res, on=["exposure", "metric"], how="left")
            out["threshold"] = out["_threshold"]
            out["cpmosaic"] = out["_ours"].fillna("")
            out = out.drop(columns=["_threshold", "_ours"])
    if against is not None and len(out):
        b = select_rows(against, ExploreState(calib_type=state.calib_type), metric=False)
        b = b[_mask(b, "detector_name", state.detector) & _mask(b, "amp", state.amp)]
        med = b.groupby(b["metric"].astype(str))["value"].median()
        out["against"] = out["metric"].map(med).astype(float)
    out = out.sort_values(["metric", "exposure"], kind="stable").reset_index(drop=True)
    return out[list(AMP_TABLE_COLUMNS)]


def _verdict(passed, n: int) -> np.ndarray:
    if passed is None:
        return np.full(n, "", dtype=object)
    p = pd.array(passed, dtype="boolean")
    return np.where(p.isna(), "", np.where(p.fillna(False), "passed", "failed")).astype(object)


def outline_xy(geometry: pd.DataFrame) -> np.ndarray:
    """The amp polygons of *geometry* rows as one closed, NaN-separated ``(n, 2)`` path (one glyph).

    >>> g = pd.DataFrame({"xs": [np.array([0.0, 1, 1, 0])], "ys": [np.array([0.0, 0, 1, 1])]})
    >>> outline_xy(g).shape
    (6, 2)
    """
    if geometry.empty:
        return np.empty((0, 2))
    parts = []
    for xs, ys in zip(geometry["xs"], geometry["ys"]):
        parts.append(np.column_stack([np.r_[xs, xs[0], np.nan], np.r_[ys, ys[0], np.nan]]))
    return np.concatenate(parts)
