"""Robust outliers: each amp against the focal plane, and against its own history.

The robust z-score of a value is ``(value - median) / (1.4826 * MAD)``, the MAD
(median absolute deviation) scaled to a Gaussian sigma.  Focal-plane scores use
every amp of the same (calib_type, run, exposure, tier, metric); history scores
use every value of the same (calib_type, tier, metric, detector, amp) when it
has at least ``min_history`` of them (several days or exposures), with its
sigma floored at the typical (median) history sigma of that metric: a few
quiet nights must not make an ordinary value look extreme.

>>> out = find_outliers(df, z=5)                              # doctest: +SKIP
>>> to_csv(out, "outliers.csv"); to_json(out, "outliers.json")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Iterable

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["MAD_TO_SIGMA", "OUTLIER_COLUMNS", "find_outliers", "focal_plane_z", "history_z", "robust_z",
           "to_csv", "to_json"]

MAD_TO_SIGMA = 1.4826
MEANAD_TO_SIGMA = 1.2533  # sqrt(pi / 2): mean absolute deviation -> Gaussian sigma
OUTLIER_COLUMNS = ("detector", "detector_name", "amp", "metric", "value", "z", "reason", "calib_type", "run",
                   "exposure", "day_obs", "tier", "median", "sigma", "n", "kind")
_FP_GROUP = ["calib_type", "run", "exposure", "tier", "metric"]
_HIST_GROUP = ["calib_type", "tier", "metric", "detector", "amp"]


def robust_z(values: Iterable[float]) -> np.ndarray:
    """Robust z-scores of one sample: ``(x - median) / (1.4826 MAD)``; NaN values stay NaN.

    Where the MAD is 0 (more than half the values equal) sigma falls back to
    1.2533 x the mean absolute deviation from the median (the Gaussian factor),
    so the few differing values get large but finite scores; a constant sample
    scores 0.

    >>> robust_z([1.0, 2.0, 3.0, 4.0, 100.0]).round(3).tolist()
    [-1.349, -0.674, 0.0, 0.674, 65.426]
    """
    x = np.asarray(values, dtype=float)
    if not np.isfinite(x).any():
        return np.full(x.shape, np.nan)
    med = np.nanmedian(x)
    absdev = np.abs(x - med)
    sigma = _sigma(np.nanmedian(absdev), np.nanmean(absdev))
    return _z(x, med, sigma)


def _sigma(mad, mean_absdev):
    """1.4826 MAD, or 1.2533 x mean absolute deviation where the MAD is 0."""
    return np.where(np.asarray(mad) > 0, MAD_TO_SIGMA * np.asarray(mad), MEANAD_TO_SIGMA * np.asarray(mean_absdev))


def _z(x, med, sigma) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.asarray(x - med, dtype=float)
        z = dev / sigma
    # sigma 0 only for a constant sample: everything equals the median.
    return np.where(np.asarray(sigma) == 0, 0.0, z)


def _grouped_z(df: pd.DataFrame, keys: list[str]) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Robust z of ``value`` within groups: (z, median, sigma, group size)."""
    key_df = df[keys].copy()
    for k in keys:  # groupby drops NA keys; run-level rows have no exposure
        if key_df[k].isna().any():
            key_df[k] = key_df[k].astype("float64").fillna(-1) if k in ("exposure", "day_obs") else \
                key_df[k].fillna("")
    g = df["value"].groupby([key_df[k] for k in keys], sort=False)
    med = g.transform("median")
    absdev = (df["value"] - med).abs()
    g2 = absdev.groupby([key_df[k] for k in keys], sort=False)
    mad, meanad = g2.transform("median"), g2.transform("mean")
    n = g.transform("count")
    sigma = pd.Series(_sigma(mad.to_numpy(), meanad.to_numpy()), index=df.index)
    z = pd.Series(_z(df["value"].to_numpy(), med.to_numpy(), sigma.to_numpy()), index=df.index)
    return z, med, sigma, n


def _scorable(df: pd.DataFrame, metrics: Iterable[str] | None) -> pd.DataFrame:
    sel = df["value"].notna() & (df["detector"] >= 0) & (df["metric"] != "SUCCESS")
    if metrics is not None:
        sel &= df["metric"].isin(list(metrics))
    return df[sel]


def focal_plane_z(df: pd.DataFrame, *, min_group: int = 8) -> pd.DataFrame:
    """Every row with its robust z across the focal plane (columns z, median, sigma, n).

    Groups with fewer than *min_group* values get z NaN (too few for a median).
    """
    sub = _scorable(df, None)
    z, med, sigma, n = _grouped_z(sub, _FP_GROUP)
    out = sub.assign(z=z.where(n >= min_group), median=med, sigma=sigma, n=n)
    return out


def history_z(df: pd.DataFrame, *, min_history: int = 5, sigma_floor: float = 1.0) -> pd.DataFrame:
    """Every row with the robust z of its value against the same amp's other values.

    Only series with at least *min_history* exposures (or days) get a z.  A short
    history can have a tiny MAD by chance, so each series' sigma is floored at
    *sigma_floor* times the median series sigma of its (calib_type, tier, metric).
    """
    sub = _scorable(df, None)
    z, med, sigma, n = _grouped_z(sub, _HIST_GROUP)
    scored = n >= min_history
    if scored.any() and sigma_floor > 0:
        typical = sigma[scored].groupby([sub.loc[scored, k] for k in _HIST_GROUP[:3]]).transform("median")
        floor = pd.Series(np.nan, index=sub.index)
        floor[scored] = sigma_floor * typical
        sigma = sigma.where(~(sigma < floor), floor)
        z = pd.Series(_z(sub["value"].to_numpy(), med.to_numpy(), sigma.to_numpy()), index=sub.index)
    return sub.assign(z=z.where(scored), median=med, sigma=sigma, n=n)


def _reason(kind: str, z: np.ndarray, med: np.ndarray, n: np.ndarray) -> list[str]:
    where = "the focal-plane median" if kind == "focal_plane" else "this amp's own median"
    what = "amps" if kind == "focal_plane" else "values"
    out = []
    for zi, mi, ni in zip(z.tolist(), med.tolist(), n.tolist()):
        side = "above" if zi > 0 else "below"
        size = "inf" if math.isinf(zi) else f"{abs(zi):.1f}"
        out.append(f"{kind}: {size} sigma {side} {where} {mi:.6g} of {int(ni)} {what}")
    return out


def find_outliers(df: pd.DataFrame, *, z: float = 5.0, focal_plane: bool = True, history: bool = True,
                  metrics: Iterable[str] | None = None, min_group: int = 8, min_history: int = 5,
                  sigma_floor: float = 1.0) -> pd.DataFrame:
    """Amps whose metric is more than *z* robust sigmas from the focal plane or from their history.

    Parameters
    ----------
    df
        The tidy metrics table.
    z
        Threshold on abs(z).
    focal_plane, history
        Which comparisons to make.
    metrics
        Only these metrics (default all but SUCCESS).
    min_group, min_history
        Fewest values a focal-plane group / an amp's history needs to be scored.
    sigma_floor
        History sigma floor, as a fraction of the metric's median history sigma.

    Returns
    -------
    pandas.DataFrame
        Columns ``OUTLIER_COLUMNS`` (detector, detector_name, amp, metric, value,
        z, reason first), sorted by decreasing abs(z); ``kind`` is
        ``focal_plane`` or ``history``.

    Examples
    --------
    >>> find_outliers(df, z=5)[["detector_name", "amp", "metric", "z"]].head()   # doctest: +SKIP
    """
    parts = []
    sub = df if metrics is None else df[df["metric"].isin(list(metrics))]
    if focal_plane:
        parts.append(("focal_plane", focal_plane_z(sub, min_group=min_group)))
    if history:
        h = history_z(sub, min_history=min_history, sigma_floor=sigma_floor)
        parts.append(("history", h))
    frames = []
    for kind, scored in parts:
        hit = scored[scored["z"].abs() >= z]
        if hit.empty:
            continue
        hit = hit.assign(kind=kind, reason=_reason(kind, hit["z"].to_numpy(), hit["median"].to_numpy(),
                                                   hit["n"].to_numpy()))
        frames.append(hit)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in OUTLIER_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    out = out.assign(_absz=out["z"].abs()).sort_values(
        ["_absz", "calib_type", "detector", "amp", "metric"], ascending=[False, True, True, True, True],
        kind="stable")
    out["n"] = out["n"].astype(np.int64)
    return out.reset_index(drop=True)[list(OUTLIER_COLUMNS)]


def _dtype(col: str):
    return {"detector": "int64", "value": "float64", "z": "float64", "median": "float64", "sigma": "float64",
            "n": "int64", "exposure": "Int64", "day_obs": "Int64"}.get(col, "str")


def _records(outliers: pd.DataFrame) -> list[dict]:
    recs = []
    cols = list(outliers.columns)
    for row in outliers.itertuples(index=False, name=None):
        rec = {}
        for c, v in zip(cols, row):
            if v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
                v = None if v is pd.NA or math.isnan(v) else ("inf" if v > 0 else "-inf")
            elif isinstance(v, (np.integer,)):
                v = int(v)
            elif isinstance(v, (np.floating,)):
                v = float(v)
            rec[c] = v
        recs.append(rec)
    return recs


def to_csv(outliers: pd.DataFrame, path: str | os.PathLike | None = None) -> str | None:
    """Write the outlier list as CSV (return the text when *path* is None)."""
    return outliers.to_csv(path, index=False)


def to_json(outliers: pd.DataFrame, path: str | os.PathLike | None = None) -> str:
    """The outlier list as a JSON list of records (NaN -> null); also written to *path* if given."""
    text = json.dumps(_records(outliers), indent=1)
    if path is not None:
        with open(path, "w") as fh:
            fh.write(text + "\n")
    return text
