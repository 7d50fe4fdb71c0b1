"""A metric against date: one candlestick per day, chosen amps as lines, alerts marked.

The daily statistics are ``cpmosaic.metrics.history.candlesticks`` (columns
``day_obs, min, q1, median, q3, max, n``); a table without ``calib_type`` is one calib type.

>>> import pandas as pd
>>> df = pd.DataFrame({"metric": "NOISE", "day_obs": [20260101, 20260101, 20260102],
...                    "detector": 94, "detector_name": "R22_S11", "amp": "C10",
...                    "value": [1.0, 2.0, 3.0]})
>>> daily_stats(df, "NOISE")["median"].tolist()
[1.5, 3.0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd

from . import style

if TYPE_CHECKING:
    import holoviews as hv

__all__ = ["metric_trend", "daily_stats", "parse_amps"]


def _select(df: pd.DataFrame, metric: str, calib_type: str | None) -> pd.DataFrame:
    sub = df[(df["metric"] == metric) & df["day_obs"].notna()]
    if calib_type is not None and "calib_type" in sub.columns:
        sub = sub[sub["calib_type"] == calib_type]
    return sub


def daily_stats(df: pd.DataFrame, metric: str, calib_type: str | None = None) -> pd.DataFrame:
    """Per-day ``min, q1, median, q3, max, n`` of a metric (the history module's candlesticks).

    Raises ``ValueError`` when the metric exists for several calib types and none is chosen.
    """
    from ..metrics.history import candlesticks

    sub = _select(df, metric, calib_type)
    if "calib_type" not in sub.columns:
        sub = sub.assign(calib_type=calib_type or "")
    kinds = pd.unique(sub["calib_type"].dropna())
    if calib_type is None and len(kinds) > 1:
        raise ValueError(f"metric {metric!r} exists for calib types {sorted(map(str, kinds))}: "
                         "choose one with calib_type=")
    return candlesticks(sub, metric, calib_type=calib_type).drop(columns="calib_type", errors="ignore")


def parse_amps(amps) -> list[tuple[str, str]]:
    """``"R22_S11/C07"``, ``"R22_S11 C07"`` or ``("R22_S11", "C07")`` -> ``[(detector_name, amp)]``.

    >>> parse_amps(["R22_S11/C07", ("R01_S00", "C10")])
    [('R22_S11', 'C07'), ('R01_S00', 'C10')]
    """
    if amps is None:
        return []
    if isinstance(amps, str):
        amps = [amps]
    out = []
    for a in amps:
        if isinstance(a, str):
            det, _, amp = a.replace(" ", "/").replace(":", "/").partition("/")
            out.append((det, amp))
        else:
            out.append((str(a[0]), str(a[1])))
    return out


def _dates(day_obs) -> pd.DatetimeIndex:
    return pd.to_datetime(pd.Series(day_obs).astype("int64").astype(str), format="%Y%m%d")


def metric_trend(df: pd.DataFrame | None, metric: str, *, calib_type: str | None = None,
                 amps: Iterable | None = None, alerts: pd.DataFrame | None = None,
                 stats: pd.DataFrame | None = None, title: str | None = None,
                 width: int = 800, height: int = 350) -> hv.Overlay:
    """Candlestick per day (box q1-q3, whiskers min-max, median tick), amps as lines, alerts.

    Parameters
    ----------
    df
        Tidy metrics table with ``day_obs`` (may be ``None`` when *stats* is given).
    amps
        Amps to draw as lines of their daily median: ``["R22_S11/C07", ...]``.
    alerts
        The history alerts table (``detector_name, amp, metric, day_obs, kind, size``); rows of
        this metric are marked with red triangles at (day, the amp's value that day).
    stats
        Precomputed daily statistics (``day_obs, min, q1, median, q3, max, n``).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"metric": "NOISE", "day_obs": [20260101, 20260102], "detector": 94,
    ...                    "detector_name": "R22_S11", "amp": "C10", "value": [1.0, 2.0]})
    >>> type(metric_trend(df, "NOISE", amps=["R22_S11/C10"])).__name__
    'Overlay'
    """
    hv = style.holoviews()
    if stats is None:
        if df is None:
            raise ValueError("metric_trend needs a table (df) or daily statistics (stats)")
        stats = daily_stats(df, metric, calib_type)
    stats = stats.sort_values("day_obs").reset_index(drop=True)
    day = _dates(stats["day_obs"])
    half = pd.Timedelta(hours=7)  # boxes 14 h wide: gaps between consecutive days stay visible
    s = stats.assign(date=day.to_numpy(), x0=(day - half).to_numpy(), x1=(day + half).to_numpy())
    value = hv.Dimension("value", label=metric)
    date = "date"  # a plain name: hv's Segments range code keys ranges by label
    whiskers = hv.Segments(s.assign(date2=s["date"]), kdims=[date, "min", "date2", "max"]).opts(
        color="#404040", line_width=1)
    boxes = hv.Rectangles(s, kdims=["x0", "q1", "x1", "q3"], vdims=["day_obs", "median", "min", "max", "n"]).opts(
        color="#9ecae1", line_color="#08519c", tools=["hover"],
        hover_tooltips=[("day_obs", "@day_obs"), ("median", "@median{0.[000]}"), ("q1-q3", "@q1 - @q3"),
                        ("min-max", "@min - @max"), ("n", "@n")])
    medians = hv.Segments(s, kdims=["x0", "median", "x1", "median"]).opts(color="#08306b", line_width=2)
    layers = [whiskers, boxes, medians]
    per_amp = None
    wanted = parse_amps(amps)
    if df is not None and (wanted or alerts is not None):
        sub = _select(df, metric, calib_type)
        per_amp = sub.groupby(["detector_name", "amp", sub["day_obs"].astype("int64")])["value"].median()
    colors = style.category_colors([f"{d}/{a}" for d, a in wanted] + ["_pad"])
    for det, amp in wanted:
        if per_amp is None or (det, amp) not in per_amp.index.droplevel(2):
            continue
        line = per_amp.loc[(det, amp)]
        pts = pd.DataFrame({"date": _dates(line.index).to_numpy(), "value": line.to_numpy()})
        col = colors[f"{det}/{amp}"]
        layers.append(hv.Curve(pts, kdims=[date], vdims=[value], label=f"{det} {amp}").opts(
            color=col, line_width=2))
        layers.append(hv.Scatter(pts, kdims=[date], vdims=[value], label=f"{det} {amp}").opts(
            color=col, size=5))
    if alerts is not None and len(alerts):
        a = alerts[alerts["metric"] == metric] if "metric" in alerts.columns else alerts
        if calib_type is not None and "calib_type" in a.columns:
            a = a[a["calib_type"] == calib_type]
        if len(a):
            daily = stats.set_index("day_obs")["median"]
            vals = []
            for r in a.itertuples():
                key = (r.detector_name, r.amp, int(r.day_obs))
                v = per_amp.get(key, np.nan) if per_amp is not None else np.nan
                vals.append(v if np.isfinite(v) else daily.get(int(r.day_obs), np.nan))
            pts = pd.DataFrame({"date": _dates(a["day_obs"]).to_numpy(), "value": vals,
                                "detector_name": a["detector_name"].astype(str).to_numpy(),
                                "amp": a["amp"].astype(str).to_numpy(),
                                "kind": a["kind"].astype(str).to_numpy() if "kind" in a.columns else "",
                                "size": a["size"].to_numpy() if "size" in a.columns else np.nan})
            layers.append(hv.Scatter(pts, kdims=[date], vdims=[value, "detector_name", "amp", "kind", "size"],
                                     label="alert").opts(color="#d62728", marker="triangle", size=11,
                                                         tools=["hover"]))
    if title is None:
        title = " ".join(p for p in (calib_type, metric, "by day") if p)
    return hv.Overlay(layers).opts(title=title, width=width, height=height, xlabel="day_obs", ylabel=metric,
                                   legend_position="top_left", show_legend=True)
