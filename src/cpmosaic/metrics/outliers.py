"""Robust outliers a scientist can act on: one finding per cause, ranked by severity.

Scoring compares like with like (all statistics from :mod:`cpmosaic.robust`):

* **population**: every amp value against the amps that should agree with it: the same
  (calib_type, run, exposure, tier, metric) *and sensor type* (E2V, ITL, ITL_G guider,
  ITL_WF wavefront, from the camera).  LSSTCam's vendors differ in gain and read noise, so
  one focal-plane median would flag a whole vendor; and a metric constant within one
  population (MAD 0) scores 0 there without touching the other population.
* **history**: every value against the same amp's other values (calib_type, tier, metric,
  detector, amp) when it has at least ``min_history`` of them, its sigma floored at the
  typical history sigma of that metric (a few quiet nights must not make an ordinary
  value look extreme).
* **drift / jump alerts** of :func:`cpmosaic.metrics.drift.detect_changes`, when given.

Flagged values (``|z| >= z``) are then grouped into **findings**, one per cause:

* a detector with at least half of its amps flagged on one metric in one exposure is
  *detector-wide*: every flagged value of that detector is one finding ("dead or off
  detector" when most of those values are exactly 0), its amps summarised;
* every other amp is one finding listing its metrics ("hot amp", "noisy amp", "drift",
  "jump", "amp outlier");
* a detector-level value (flat detector MEAN, SCATTER) of a detector that is not
  detector-wide is a finding of its own.

A finding's **severity** is the largest ``|z|`` among its values (an alert's significance
counts as its z); ties go to the finding with more flagged values.  ``find_outliers``
returns the findings ranked by severity; :func:`outlier_rows` the flagged values one by
one.

>>> out = find_outliers(df, z=5)                              # doctest: +SKIP
>>> out[["rank", "finding", "detector_name", "amp", "metrics", "severity"]].head(10)  # doctest: +SKIP
>>> to_csv(out, "outliers.csv"); to_json(out, "outliers.json")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..camera import Camera

from ..robust import MAD_TO_SIGMA, robust_z, sigma_from_deviations, z_scores

log = logging.getLogger(__name__)

__all__ = ["MAD_TO_SIGMA", "OUTLIER_COLUMNS", "FINDING_COLUMNS", "ROW_COLUMNS", "find_outliers", "focal_plane_z",
           "history_z", "outlier_rows", "robust_z", "sensor_types", "to_csv", "to_json"]

#: The first columns of both tables (the contract of ``cpmosaic metrics --outliers``).
OUTLIER_COLUMNS = ("detector", "detector_name", "amp", "metric", "value", "z", "reason", "calib_type", "run",
                   "exposure", "day_obs", "tier", "median", "sigma", "n", "kind")
#: :func:`outlier_rows`' columns: one flagged value per row.
ROW_COLUMNS = OUTLIER_COLUMNS + ("sensor_type",)
#: :func:`find_outliers`' columns: one finding per row; the OUTLIER_COLUMNS describe its
#: worst value, ``metrics`` lists every ``calib_type metric`` it holds.
FINDING_COLUMNS = OUTLIER_COLUMNS + ("rank", "finding", "severity", "n_amps", "n_values", "metrics",
                                     "sensor_type", "members")
_FP_GROUP = ["calib_type", "run", "exposure", "tier", "metric", "sensor_type"]
_HIST_GROUP = ["calib_type", "tier", "metric", "detector", "amp"]


def sensor_types(df: pd.DataFrame, camera: Camera | str | None = None) -> pd.Series:
    """Each row's sensor type (the camera's ``physical_type``: E2V, ITL, ITL_G, ITL_WF).

    ``""`` where the camera is unknown or has no such detector (those rows form one
    population of their own).
    """
    from ..camera import get_camera

    out = pd.Series("", index=df.index, dtype=object)
    if not len(df):
        return out
    try:
        cam = get_camera(camera if camera is not None else
                         (df["instrument"].iloc[0] if "instrument" in df.columns else "LSSTCam"))
    except Exception as exc:  # an instrument cpmosaic has no camera for: one population
        log.warning("no camera for the outlier populations (%s): every detector compared with every other", exc)
        return out
    ids, inverse = np.unique(df["detector"].to_numpy(), return_inverse=True)
    dets = [cam.get(int(d)) if d >= 0 else None for d in ids]
    names = np.array([det.physical_type if det is not None else "" for det in dets], dtype=object)
    return pd.Series(names[inverse.ravel()], index=df.index, dtype=object)


def _keys(df: pd.DataFrame, keys: list[str]) -> list[pd.Series]:
    out = []
    for k in keys:  # groupby drops NA keys; run-level rows have no exposure
        col = df[k]
        if col.isna().any():
            col = col.astype("float64").fillna(-1) if k in ("exposure", "day_obs") else col.astype(object).fillna("")
        out.append(col)
    return out


def _grouped_z(df: pd.DataFrame, keys: list[str]) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Robust z of ``value`` within groups: (z, median, sigma, group size)."""
    by = _keys(df, keys)
    g = df["value"].groupby(by, sort=False)
    med = g.transform("median")
    absdev = (df["value"] - med).abs()
    g2 = absdev.groupby(by, sort=False)
    sigma = pd.Series(sigma_from_deviations(g2.transform("median").to_numpy(), g2.transform("mean").to_numpy()),
                      index=df.index)
    z = pd.Series(z_scores(df["value"].to_numpy(), med.to_numpy(), sigma.to_numpy()), index=df.index)
    return z, med, sigma, g.transform("count")


def _scorable(df: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    sel = df["value"].notna() & (df["detector"] >= 0) & (df["metric"] != "SUCCESS")
    if metrics is not None:
        sel &= df["metric"].isin(list(metrics))
    return df[sel]


def focal_plane_z(df: pd.DataFrame, *, min_group: int = 8, camera: Camera | str | None = None, by_sensor_type: bool = True) -> pd.DataFrame:
    """Every row with its robust z within its population (columns z, median, sigma, n, sensor_type).

    A population is one (calib_type, run, exposure, tier, metric) and, with
    *by_sensor_type*, one sensor type.  Groups with fewer than *min_group* values get
    z NaN (too few for a median).
    """
    sub = _scorable(df)
    sub = sub.assign(sensor_type=sensor_types(sub, camera) if by_sensor_type else "")
    z, med, sigma, n = _grouped_z(sub, _FP_GROUP)
    return sub.assign(z=z.where(n >= min_group), median=med, sigma=sigma, n=n)


def history_z(df: pd.DataFrame, *, min_history: int = 5, sigma_floor: float = 1.0) -> pd.DataFrame:
    """Every row with the robust z of its value against the same amp's other values.

    Only series with at least *min_history* exposures (or days) get a z.  A short
    history can have a tiny MAD by chance, so each series' sigma is floored at
    *sigma_floor* times the median series sigma of its (calib_type, tier, metric).
    """
    sub = _scorable(df)
    z, med, sigma, n = _grouped_z(sub, _HIST_GROUP)
    scored = n >= min_history
    if scored.any() and sigma_floor > 0:
        typical = sigma[scored].groupby(_keys(sub.loc[scored], _HIST_GROUP[:3])).transform("median")
        floor = pd.Series(np.nan, index=sub.index)
        floor[scored] = sigma_floor * typical
        sigma = sigma.where(~(sigma < floor), floor)
        z = pd.Series(z_scores(sub["value"].to_numpy(), med.to_numpy(), sigma.to_numpy()), index=sub.index)
    return sub.assign(z=z.where(scored), median=med, sigma=sigma, n=n)


def _reason(kind: str, z: np.ndarray, med: np.ndarray, n: np.ndarray, pop: np.ndarray) -> list[str]:
    out = []
    for zi, mi, ni, pi in zip(z.tolist(), med.tolist(), n.tolist(), pop.tolist()):
        side = "above" if zi > 0 else "below"
        size = "inf" if math.isinf(zi) else f"{abs(zi):.1f}"
        if kind == "focal_plane":
            where = f"the {pi} median" if pi else "the focal-plane median"
            out.append(f"focal_plane: {size} sigma {side} {where} {mi:.6g} of {int(ni)} amps")
        else:
            out.append(f"history: {size} sigma {side} this amp's own median {mi:.6g} of {int(ni)} values")
    return out


def outlier_rows(df: pd.DataFrame, *, z: float = 5.0, focal_plane: bool = True, history: bool = True,
                 metrics: Iterable[str] | None = None, min_group: int = 8, min_history: int = 5,
                 sigma_floor: float = 1.0, camera: Camera | str | None = None, by_sensor_type: bool = True) -> pd.DataFrame:
    """Every value more than *z* robust sigmas from its population or from its history.

    Columns :data:`ROW_COLUMNS`, sorted by decreasing ``|z|``; ``kind`` is
    ``focal_plane`` (against its population) or ``history``.
    """
    parts = []
    sub = df if metrics is None else df[df["metric"].isin(list(metrics))]
    if focal_plane:
        parts.append(("focal_plane", focal_plane_z(sub, min_group=min_group, camera=camera,
                                                   by_sensor_type=by_sensor_type)))
    if history:
        h = history_z(sub, min_history=min_history, sigma_floor=sigma_floor)
        parts.append(("history", h.assign(sensor_type=sensor_types(h, camera) if by_sensor_type else "")))
    frames = []
    for kind, scored in parts:
        hit = scored[scored["z"].abs() >= z]
        if hit.empty:
            continue
        frames.append(hit.assign(kind=kind, reason=_reason(kind, hit["z"].to_numpy(), hit["median"].to_numpy(),
                                                           hit["n"].to_numpy(), hit["sensor_type"].to_numpy())))
    if not frames:
        return _empty(ROW_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out = out.assign(_absz=out["z"].abs()).sort_values(
        ["_absz", "calib_type", "detector", "amp", "metric"], ascending=[False, True, True, True, True],
        kind="stable")
    out["n"] = out["n"].astype(np.int64)
    return out.reset_index(drop=True)[list(ROW_COLUMNS)]


def _alert_rows(alerts: pd.DataFrame, camera, by_sensor_type: bool = True) -> pd.DataFrame:
    """Drift / jump alerts as flagged values: z = signed significance, value = after."""
    if alerts is None or not len(alerts):
        return _empty(ROW_COLUMNS)
    a = alerts.reset_index(drop=True)
    sig = pd.to_numeric(a["significance"], errors="coerce").abs() * np.sign(pd.to_numeric(a["size"], errors="coerce"))
    reason = [f"{k}: {s:+.4g} ({abs(g):.1f} sigma) on night {d}" for k, s, g, d in
              zip(a["kind"], a["size"], sig, a["day_obs"])]
    out = pd.DataFrame({
        "detector": a["detector"].astype(np.int64), "detector_name": a["detector_name"].astype(str),
        "amp": a["amp"].astype(object).fillna("").astype(str), "metric": a["metric"].astype(str),
        "value": pd.to_numeric(a["after"], errors="coerce"), "z": sig.to_numpy(dtype=float), "reason": reason,
        "calib_type": a["calib_type"].astype(str), "run": a.get("run", pd.Series([""] * len(a))).astype(object),
        "exposure": pd.array([pd.NA] * len(a), dtype="Int64"),
        "day_obs": pd.array(pd.to_numeric(a["day_obs"], errors="coerce"), dtype="Int64"),
        "tier": "amp", "median": pd.to_numeric(a["before"], errors="coerce"), "sigma": np.nan,
        "n": np.int64(0), "kind": a["kind"].astype(str),
    })
    out["sensor_type"] = sensor_types(out, camera) if by_sensor_type else ""
    return out


def _amp_label(worst: pd.Series, kinds: set[str]) -> str:
    metric, z = str(worst["metric"]), float(worst["z"])
    for k in ("jump", "drift"):  # a change in time is the cause; the population flag follows it
        if k in kinds:
            return k
    if kinds == {"history"}:
        return "history change"
    if "NOISE" in metric and z > 0:
        return "noisy amp"
    if metric == "MEAN" and worst["calib_type"] in ("bias", "dark"):
        return "hot amp" if z > 0 else "cold amp"
    return "amp outlier"


def _noise_like(metric: str) -> bool:
    """Metrics that scale with an amp's read noise (what a known noisy amp moves)."""
    return "NOISE" in metric or "_DIST_" in metric


def _nominal_noise_z(cam) -> dict[tuple[int, str], tuple[float, float]]:
    """(detector, amp) -> (nominal read noise, its robust z among the amps of its sensor type)."""
    if cam is None:
        return {}
    keys, rn, types = [], [], []
    for det in cam:
        for a in det.amplifiers:
            keys.append((det.id, a.name))
            rn.append(a.read_noise if a.read_noise and a.read_noise > 0 else np.nan)
            types.append(det.physical_type)
    rn_a, types_a = np.asarray(rn, float), np.asarray(types, object)
    z = np.full(len(rn_a), np.nan)
    for t in set(types):
        sel = types_a == t
        z[sel] = robust_z(rn_a[sel])
    return {k: (r, zz) for k, r, zz in zip(keys, rn_a.tolist(), z.tolist())}


def _findings(rows: pd.DataFrame, camera, z_cut: float) -> pd.DataFrame:
    """Group flagged values into one finding per cause (see the module docstring)."""
    if not len(rows):
        return _empty(FINDING_COLUMNS)
    from ..camera import get_camera

    rows = rows.reset_index(drop=True)
    try:
        cam = get_camera(camera) if camera is not None else None
    except Exception:
        cam = None
    nominal = _nominal_noise_z(cam)
    amps_of = rows[rows["amp"] != ""].groupby("detector")["amp"].nunique().to_dict()

    def n_amps(d: int) -> int:
        det = cam.get(int(d)) if cam is not None else None
        return len(det.amp_names) if det is not None else max(int(amps_of.get(d, 1)), 1)

    # Detector-wide: at least half of a detector's amps flagged on one metric of one
    # exposure; every flagged value of that detector and (calib_type, metric) joins it.
    fp = rows[(rows["kind"] == "focal_plane") & (rows["amp"] != "")]
    wide: set[tuple[int, str, str]] = set()
    if len(fp):
        cnt = fp.groupby(_keys(fp, ["detector", "calib_type", "run", "exposure", "metric"]))["amp"].nunique()
        for key, c in cnt.items():
            if c >= max(2, math.ceil(0.5 * n_amps(int(key[0])))):
                wide.add((int(key[0]), str(key[1]), str(key[4])))
    wide_dets = {w[0] for w in wide}
    in_wide = np.array([(int(d), str(c), str(m)) in wide or (int(d) in wide_dets and a == "")
                        for d, c, m, a in zip(rows["detector"], rows["calib_type"], rows["metric"], rows["amp"])],
                       dtype=bool)
    amp_key = np.where(in_wide, "", rows["amp"].astype(str).to_numpy())
    rows = rows.assign(_amp=amp_key, _absz=rows["z"].abs())
    out = []
    for (det, amp), g in rows.groupby(["detector", "_amp"], sort=False):
        g = g.sort_values("_absz", ascending=False, kind="stable")
        worst = g.iloc[0]
        metrics = list(dict.fromkeys(f"{c} {m}" for c, m in zip(g["calib_type"], g["metric"])))
        kinds = set(g["kind"])
        flagged_amps = sorted(a for a in set(g["amp"]) if a)
        wide_det = amp == "" and int(det) in wide_dets
        if wide_det:
            zero = float((g["value"].abs() <= 1e-12).mean())
            label = "dead or off detector" if zero >= 0.5 else "detector-wide"
            na = n_amps(int(det))
            reason = (f"{label}: {len(flagged_amps)} of {na} amps flagged in {len(metrics)} metric(s) "
                      f"({', '.join(metrics[:6])}{', ...' if len(metrics) > 6 else ''}); worst: {worst['reason']}")
        elif amp == "":
            label, na = "detector outlier", 0
            reason = f"{label}: {', '.join(metrics)}; worst: {worst['reason']}"
        else:
            label, na = _amp_label(worst, kinds), 1
            reason = f"{label}: {', '.join(metrics)}; worst: {worst['reason']}"
        # Known: only noise-like metrics, high, on amps whose nominal read noise is itself an
        # outlier of their sensor type: the camera already says these amps are noisy.
        known = False
        if label in ("noisy amp", "detector-wide") and all(_noise_like(m.split(" ", 1)[1]) for m in metrics):
            looked_up = [nominal.get((int(det), a)) for a in (flagged_amps or [amp])]
            nom = [v for v in looked_up if v is not None and np.isfinite(v[1])]
            if nom and np.median([v[1] for v in nom]) >= z_cut:
                known = True
                label = "known noisy amp" if amp else "known noisy detector"
                rn = np.median([v[0] for v in nom])
                reason = (f"{label} (nominal read noise {rn:.4g} e-, itself {np.median([v[1] for v in nom]):.0f} "
                          f"sigma above its sensor type): " + reason.split(": ", 1)[1])
        rec = {c: worst[c] for c in OUTLIER_COLUMNS}
        rec.update(amp=amp, reason=reason, kind="+".join(sorted(kinds)), finding=label,
                   severity=float(worst["_absz"]), n_amps=int(na if amp == "" else 1),
                   n_values=int(len(g)), metrics=", ".join(metrics), sensor_type=worst["sensor_type"],
                   members=", ".join(f"{worst['detector_name']} {a}" for a in (flagged_amps or [amp])).strip(),
                   _known=known, _rn=(np.median([v[0] for v in nom]) if known else np.nan))
        out.append(rec)
    res = _merge_known(pd.DataFrame(out))
    res = res.sort_values(["_known", "severity", "n_values", "detector", "amp"],
                          ascending=[True, False, False, True, True], kind="stable").reset_index(drop=True)
    res["rank"] = np.arange(1, len(res) + 1, dtype=np.int64)
    for c in ("detector", "n", "n_amps", "n_values"):
        res[c] = res[c].astype(np.int64)
    for c in ("exposure", "day_obs"):
        res[c] = pd.array(pd.to_numeric(res[c], errors="coerce"), dtype="Int64")
    return res[list(FINDING_COLUMNS)]


def _merge_known(res: pd.DataFrame) -> pd.DataFrame:
    """The known noisy amps and detectors of a sensor type as one finding: one cause (the
    camera's nominal read noise), however many amps show it."""
    known = res[res["_known"]]
    if not len(known):
        return res
    merged = []
    for st, g in known.groupby("sensor_type", sort=False):
        g = g.sort_values("severity", ascending=False, kind="stable")
        rec = g.iloc[0].to_dict()
        n_amps = int(g["n_amps"].sum())
        metrics = list(dict.fromkeys(m for ms in g["metrics"] for m in ms.split(", ")))
        members = ", ".join(f"{m} ({rn:.3g} e-)" for m, a, rn in zip(g["members"], g["amp"], g["_rn"]) if a)
        dets = ", ".join(n for n, a in zip(g["detector_name"], g["amp"]) if not a)
        rec.update(
            amp="", finding="known noisy amps", n_amps=n_amps, n_values=int(g["n_values"].sum()),
            metrics=", ".join(metrics), members=", ".join(p for p in (members, dets) if p),
            reason=(f"known noisy amps: {n_amps} {st or ''} amps ({len(g)} entries) whose nominal read noise in "
                    f"the camera is itself an outlier of their sensor type; their noise metrics follow it, "
                    f"as cp_verify's NOISE test (against that read noise) expects; worst: {g.iloc[0]['reason']}"))
        merged.append(rec)
    return pd.concat([res[~res["_known"]], pd.DataFrame(merged)], ignore_index=True)


def find_outliers(df: pd.DataFrame, *, z: float = 5.0, focal_plane: bool = True, history: bool = True,
                  metrics: Iterable[str] | None = None, min_group: int = 8, min_history: int = 5,
                  sigma_floor: float = 1.0, camera: Camera | str | None = None, by_sensor_type: bool = True,
                  alerts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Findings a scientist can act on: flagged values grouped by cause, ranked by severity.

    Parameters
    ----------
    df
        The tidy metrics table.
    z
        Threshold on abs(z).
    focal_plane, history
        Which comparisons to make (population and own history).
    metrics
        Only these metrics (default all but SUCCESS).
    min_group, min_history
        Fewest values a population / an amp's history needs to be scored.
    sigma_floor
        History sigma floor, as a fraction of the metric's median history sigma.
    camera
        Camera for sensor types and amp counts (default: the table's instrument).
    by_sensor_type
        Populations per sensor type (default); False compares the whole focal plane.
    alerts
        Drift / jump alerts (:func:`cpmosaic.metrics.drift.detect_changes`) to fold in.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FINDING_COLUMNS`, one row per finding, ranked (``rank`` 1 first) by
        ``severity``.  ``detector``, ``amp``, ``metric``, ``value``, ``z``, ``median``,
        ``sigma``, ``n``, ``calib_type``, ``run``, ``exposure``, ``day_obs``, ``tier``
        describe its worst value; ``amp`` is ``""`` for a detector-wide finding
        (``n_amps`` says how many amps it covers); ``metrics`` lists every
        ``calib_type metric`` flagged; ``kind`` joins the comparisons that flagged it
        (``focal_plane``, ``history``, ``drift``, ``jump``).

    Examples
    --------
    >>> find_outliers(df, z=5)[["finding", "detector_name", "amp", "metrics"]].head()   # doctest: +SKIP
    """
    if camera is None and len(df) and "instrument" in df.columns:
        camera = df["instrument"].iloc[0]
    rows = outlier_rows(df, z=z, focal_plane=focal_plane, history=history, metrics=metrics, min_group=min_group,
                        min_history=min_history, sigma_floor=sigma_floor, camera=camera,
                        by_sensor_type=by_sensor_type)
    if alerts is not None and len(alerts):
        extra = _alert_rows(alerts, camera, by_sensor_type)
        rows = extra if not len(rows) else pd.concat([rows, extra], ignore_index=True)
    return _findings(rows, camera, z)


def _dtype(col: str):
    return {"detector": "int64", "value": "float64", "z": "float64", "median": "float64", "sigma": "float64",
            "n": "int64", "exposure": "Int64", "day_obs": "Int64", "rank": "int64", "severity": "float64",
            "n_amps": "int64", "n_values": "int64"}.get(col, "str")


def _empty(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in columns})


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
