"""Summaries of a metrics history: per-night candlesticks, validity ranges, recommendations.

They work on a tidy history table (:meth:`cpmosaic.metrics.history.HistoryStore.load`)
and, for validity, the drift and jump alerts of :func:`cpmosaic.metrics.drift.detect_changes`.

>>> df = pd.DataFrame({"calib_type": "bias", "day_obs": [20250601] * 3 + [20250602] * 3,
...                    "metric": "NOISE", "value": [1.0, 2.0, 3.0, 2.0, 4.0, 6.0]})
>>> candlesticks(df, "NOISE")[["day_obs", "min", "median", "max", "n"]].to_dict("records")
[{'day_obs': 20250601, 'min': 1.0, 'median': 2.0, 'max': 3.0, 'n': 3}, {'day_obs': 20250602, 'min': 2.0, 'median': 4.0, 'max': 6.0, 'n': 3}]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["candlesticks", "recommendations", "validity_ranges"]


def candlesticks(df: pd.DataFrame, metric: str, calib_type: str | None = None,
                 by: str = "day") -> pd.DataFrame:
    """Per-day distribution over amps of one metric: min, quartiles, max, count.

    Parameters
    ----------
    df
        Tidy metrics table.
    metric, calib_type
        What to summarise (every calib type with that metric when None).
    by
        ``"day"``: one candle per calib type and day; ``"detector"``: one per detector and day.

    Examples
    --------
    >>> candlesticks(df, "NOISE", "bias").columns.tolist()     # doctest: +SKIP
    ['calib_type', 'day_obs', 'min', 'q1', 'median', 'q3', 'max', 'n']
    """
    if by not in ("day", "detector"):
        raise ValueError(f"by must be 'day' or 'detector', not {by!r}")
    sel = df["metric"] == metric
    if calib_type is not None:
        sel &= df["calib_type"] == calib_type
    cols = ["calib_type", "day_obs"] + (["detector", "detector_name"] if by == "detector" else [])
    part = df.loc[sel.to_numpy(dtype=bool, na_value=False), cols + ["value"]]
    part = part[np.isfinite(pd.to_numeric(part["value"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan))]
    for c in cols:
        if isinstance(part[c].dtype, pd.CategoricalDtype):
            part[c] = part[c].astype(str)
    part["day_obs"] = part["day_obs"].astype("int64")
    g = part.groupby(cols, sort=True)["value"]
    out = g.agg(["min", "median", "max", "count"])
    out["q1"], out["q3"] = g.quantile(0.25), g.quantile(0.75)
    out = out.rename(columns={"count": "n"})[["min", "q1", "median", "q3", "max", "n"]]
    return out.reset_index()


def _events(df: pd.DataFrame, alerts: pd.DataFrame, by: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nights of each calibration, and the events that can end its validity.

    A calibration is a (calib_type, run) when runs span several nights; when every run is
    one night (a verification run per night, as cp_verify's nightly jobs make), the run
    does not name the calibration and each calib type's nights form one calibration.
    """
    def text(frame: pd.DataFrame) -> pd.DataFrame:  # strings only on the few rows kept
        return frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), "").astype(str)
                               for c in ("calib_type", "run", "detector_name", "amp", "metric") if c in frame})

    day = pd.to_numeric(df["day_obs"], errors="coerce")
    ok = day.notna().to_numpy()
    keys = pd.DataFrame({"calib_type": df["calib_type"], "run": df["run"], "day_obs": day})[ok]
    nights = text(keys.groupby(list(keys.columns), observed=True).size().reset_index()[list(keys.columns)])
    nights = nights.astype({"day_obs": "int64"})
    failed = ok & df["passed"].astype("boolean").eq(False).fillna(False).to_numpy(dtype=bool) \
        if "passed" in df.columns else np.zeros(len(df), bool)
    d = text(df.loc[failed, ["calib_type", "run", "day_obs", "detector_name", "amp", "metric"]])
    d = d.astype({"day_obs": "int64"})
    per_run = nights.groupby(["calib_type", "run"])["day_obs"].nunique()
    nightly = per_run.groupby(level=0).max().le(1) & nights.groupby("calib_type")["day_obs"].nunique().gt(1)
    if by == "run":
        nightly[:] = False
    elif by != "auto":
        raise ValueError(f"by must be 'auto' or 'run', not {by!r}")
    chain = nightly.reindex(nights["calib_type"]).to_numpy(dtype=bool)
    nights = nights.assign(cal=np.where(chain, "", nights["run"]))
    first = nights.groupby(["calib_type", "cal"])["day_obs"].min().rename("first_day")
    events = [pd.DataFrame(columns=["calib_type", "cal", "day_obs", "kind", "what"])]
    if len(d):
        fail = d.merge(nights, on=["calib_type", "run", "day_obs"]).join(first, on=["calib_type", "cal"])
        key = ["calib_type", "cal", "detector_name", "amp", "metric"]
        base = fail.loc[fail["day_obs"] == fail["first_day"], key].drop_duplicates()
        new = fail[fail["day_obs"] > fail["first_day"]].merge(base, on=key, how="left", indicator=True)
        new = new[new["_merge"] == "left_only"]
        events.append(new.assign(kind="failure", what=new["detector_name"] + " " + new["amp"] + " "
                                 + new["metric"] + " fails")[["calib_type", "cal", "day_obs", "kind", "what"]])
    if len(alerts):
        a = alerts.assign(run=alerts["run"].astype(str), day_obs=alerts["day_obs"].astype("int64"))
        a = a.assign(what=a["detector_name"].astype(str) + " " + a["amp"].astype(str) + " " + a["metric"].astype(str)
                     + " " + a["kind"] + " " + a["size"].map("{:+.4g}".format)
                     + " (" + a["significance"].map("{:.1f}".format) + " sigma)")
        a = a.merge(nights, on=["calib_type", "run", "day_obs"])
        # a jump on the night a run took over is the change of calibration, not its end
        a = a[~(a["run_change"].astype(bool) & (a["cal"] != ""))]
        events.append(a[["calib_type", "cal", "day_obs", "kind", "what"]])
    ev = pd.concat(events, ignore_index=True).astype({"day_obs": "int64"})
    return nights, ev


def validity_ranges(df: pd.DataFrame, alerts: pd.DataFrame, *, by: str = "auto") -> pd.DataFrame:
    """For each calibration, the nights over which its verification keeps passing (DMTN-192).

    A calibration is valid from its first night until the night before the first of: a
    test failing that did not fail on its first night ("failure"; tests already failing
    then do not end it), or a drift or jump alert in its data ("drift", "jump").

    Parameters
    ----------
    df, alerts
        The tidy history and :func:`detect_changes`' alerts on it.
    by
        ``"run"``: each (calib_type, run) is a calibration (a jump on the night a run took
        over is the change of calibration, not an end); ``"auto"`` (default): the same,
        unless every run covers one night, then each calib type is one calibration
        (``run`` is then the run of its first night).

    Returns
    -------
    DataFrame
        calib_type, run, first_day, last_day (``<NA>`` when the first night ended it),
        n_days (nights with data in the range), ended_by (None, "failure", "drift",
        "jump"), ended_on (the night that ended it).

    Examples
    --------
    >>> validity_ranges(df, detect_changes(df))                  # doctest: +SKIP
      calib_type   run  first_day  last_day  n_days ended_by  ended_on
    0       bias  u/a1   20251118  20251123       6    drift  20251124
    """
    nights, ev = _events(df, alerts, by)
    rank = {"failure": 0, "jump": 1, "drift": 2}
    ev = ev.assign(r=ev["kind"].map(rank)).sort_values(["day_obs", "r"], kind="stable")
    end = ev.groupby(["calib_type", "cal"], sort=False).first()
    rows = []
    for (ctype, cal), g in nights.groupby(["calib_type", "cal"], sort=True):
        g = g.sort_values("day_obs")
        days = g["day_obs"].to_numpy()
        e = end.loc[(ctype, cal)] if (ctype, cal) in end.index else None
        inside = days[days < e["day_obs"]] if e is not None else days
        rows.append({"calib_type": ctype, "run": cal or g["run"].iloc[0], "first_day": int(days[0]),
                     "last_day": int(inside[-1]) if len(inside) else pd.NA, "n_days": len(inside),
                     "ended_by": None if e is None else e["kind"],
                     "ended_on": pd.NA if e is None else int(e["day_obs"])})
    cols = ["calib_type", "run", "first_day", "last_day", "n_days", "ended_by", "ended_on"]
    out = pd.DataFrame(rows, columns=cols).astype({"last_day": "Int64", "ended_on": "Int64", "first_day": "int64",
                                                   "n_days": "int64", "ended_by": object})
    out["ended_by"] = out["ended_by"].where(out["ended_by"].notna(), None)
    return out


def _failing_on(df: pd.DataFrame, calib_type: str, run: str, day: int) -> int:
    """Distinct failing (detector, amp, test) of a calib type (and run, if named) on one night."""
    if "passed" not in df.columns or not len(df):
        return 0
    sel = (df["calib_type"].astype(str) == calib_type) & (pd.to_numeric(df["day_obs"], errors="coerce") == day)
    sel &= df["passed"].astype("boolean").eq(False).fillna(False) & (df["metric"].astype(str) != "SUCCESS")
    if run:
        sel &= df["run"].astype(str) == run
    rows = df.loc[sel.to_numpy(dtype=bool), ["detector", "amp", "metric"]].astype(str)
    return int(len(rows.drop_duplicates()))


def recommendations(df: pd.DataFrame, alerts: pd.DataFrame, *, by: str = "auto") -> list[dict]:
    """For the nightly job: per calib type, should a new calibration be made, and why.

    The current calibration of a calib type is the one with the latest night (see
    :func:`validity_ranges`); a new one is recommended when its validity has ended.

    Returns
    -------
    list of dict
        ``{"calib_type", "run", "recommend_new", "reason", "day_obs"}`` by calib type;
        ``day_obs`` is the night that ended the validity (None when still valid).

    Examples
    --------
    >>> recommendations(df, detect_changes(df))[0]              # doctest: +SKIP
    {'calib_type': 'dark', 'run': 'u/a1', 'recommend_new': True, 'day_obs': 20251123,
     'reason': 'jump on 20251123: R42_S00 C00 MEAN jump +2.006 (24.5 sigma)'}
    """
    nights, ev = _events(df, alerts, by)
    vr = validity_ranges(df, alerts, by=by)
    out = []
    for ctype, g in vr.groupby("calib_type", sort=True):
        last = nights[nights["calib_type"] == ctype].groupby("cal")["day_obs"].max()
        cur = g.assign(last=[last.get(r if r in last.index else "", 0) for r in g["run"]])
        v = cur.sort_values(["last", "first_day"]).iloc[-1]
        cal = v["run"] if v["run"] in last.index else ""
        if v["ended_by"] is None:
            # Valid is not passing: tests failing since the first night do not end a validity
            # (DMTN-192), but the reader must not be told they pass.
            n_old = _failing_on(df, ctype, cal, int(v["first_day"]))
            reason = (f"still valid: no new failure, drift or jump over {v['n_days']} night(s) since "
                      f"{v['first_day']}" + (f" ({n_old} test(s) already failing on that first night)"
                                             if n_old else "; every test passing"))
            out.append({"calib_type": ctype, "run": v["run"], "recommend_new": False, "reason": reason,
                        "day_obs": None})
            continue
        day = int(v["ended_on"])
        what = ev[(ev["calib_type"] == ctype) & (ev["cal"] == cal) & (ev["day_obs"] == day)]
        what = what.sort_values("kind", key=lambda k: k.map({"jump": 0, "drift": 1, "failure": 2}))["what"]
        shown = "; ".join(what.iloc[:3]) + (f"; and {len(what) - 3} more" if len(what) > 3 else "")
        out.append({"calib_type": ctype, "run": v["run"], "recommend_new": True,
                    "reason": f"{v['ended_by']} on {day}: {shown}", "day_obs": day})
    return out
