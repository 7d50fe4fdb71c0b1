"""Drift and jump detection on the daily metrics history.

Every series is one (calib_type, metric, detector, amp).  Its daily value is the median of
that day's rows (several exposures per night collapse to one number).  All series of one
(calib_type, metric) are processed together as an ``(n_series, n_days)`` matrix, so a year
of 3,200 amps x 10 metrics is a few dozen numpy passes.

* **Scatter**: per series, the standard deviation of its night-to-night changes within
  4 robust sigmas (``cpmosaic.robust.MAD_TO_SIGMA`` x MAD), raised towards its peers'
  typical scatter when its own history is short (never lowered: a noisy amp stays noisy).
* **Jump**: the median of (up to) three nights from night t on differs from the median of
  the three nights before, less the trend before them, by more than ``k`` standard errors,
  and night t's own change carries most of it.  A lone outlier night inside the history is
  not a jump (the level after it has not changed); on the last night it is.
* **Drift**: a least-squares slope over the last ``window`` nights of the series with its
  jumps taken out (so a jump is never also a drift), times the window's span, beyond ``k``
  standard errors.  Reported once, on the night it crosses (on while above ``k/2``); a
  "drift" that one step fits twice as well as a line is reported as that jump instead.

>>> alerts = detect_changes(history_df, window=10, k=6.0)               # doctest: +SKIP
>>> alerts[["detector_name", "amp", "metric", "day_obs", "kind", "size"]]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..robust import MAD_TO_SIGMA

log = logging.getLogger(__name__)

__all__ = ["ALERT_COLUMNS", "Daily", "daily_matrix", "detect_changes"]

#: Columns of :func:`detect_changes`' table, in order.
ALERT_COLUMNS = (
    "calib_type", "detector", "detector_name", "amp", "metric", "day_obs", "kind", "size",
    "significance", "before", "after", "window_start", "run", "run_change",
)
_SERIES = ("calib_type", "metric", "detector", "amp")


@dataclass
class Daily:
    """Daily medians of every series: ``values[i, j]`` is series i on ``days[j]`` (NaN: none)."""

    values: np.ndarray  # (n_series, n_days) float64
    runs: np.ndarray  # (n_series, n_days) int32 codes into run_labels, -1 where no data
    days: np.ndarray  # (n_days,) int64 YYYYMMDD, increasing
    series: pd.DataFrame  # n_series rows: calib_type, metric, detector, detector_name, amp
    run_labels: np.ndarray  # object array of run names


def _int_codes(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted codes and unique values of integers: a lookup table when their range is small
    (detector ids, YYYYMMDD days), so 10 million values need no hashing."""
    if len(a) and a.dtype.kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if hi - lo < 50_000_000:
            present = np.bincount(a - lo, minlength=hi - lo + 1) > 0
            lookup = np.cumsum(present) - 1
            return lookup[a - lo].astype("int64"), lo + np.flatnonzero(present)
    codes, uniques = pd.factorize(a, sort=True)
    return codes.astype("int64"), np.asarray(uniques)


def _codes(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Sorted integer codes (-1 for missing) of a column, and the values they stand for."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.codes.to_numpy().astype("int64"), np.asarray(col.cat.categories, dtype=object)
    if col.dtype.kind in "iu" and not col.isna().any():
        return _int_codes(col.to_numpy(dtype="int64"))
    codes, uniques = pd.factorize(col, use_na_sentinel=True, sort=True)
    return codes.astype("int64"), np.asarray(uniques, dtype=object)


def _ordinal(days: np.ndarray) -> np.ndarray:
    """YYYYMMDD ints -> days since the epoch (for slopes per calendar day)."""
    d = pd.to_datetime(pd.Series(days).astype(str), format="%Y%m%d")
    return ((d - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy().astype("float64")


def daily_matrix(df: pd.DataFrame) -> Daily:
    """Collapse a tidy metrics table to one value per series and day (the median).

    Examples
    --------
    >>> daily = daily_matrix(store.load("bias"))               # doctest: +SKIP
    >>> daily.values.shape                                      # doctest: +SKIP
    (32000, 365)
    """
    value = pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    day = pd.to_numeric(df["day_obs"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    keep = np.isfinite(value) & np.isfinite(day)
    if not keep.all():
        df, value, day = df[keep], value[keep], day[keep]
    key = np.zeros(len(df), dtype="int64")
    for name in _SERIES:  # in place: ten million rows make every temporary count
        codes, uniques = _codes(df[name])
        key *= len(uniques) + 1
        key += codes
        key += 1
    # sort=True keeps each (calib_type, metric) block contiguous: the key's leading digits.
    sid, _ = pd.factorize(key, sort=True)
    del key
    col, days = _int_codes(day.astype("int64"))
    n_s, n_t = int(sid.max()) + 1 if len(sid) else 0, len(days)
    lin = sid.astype("int64") * n_t + col
    values = np.full(n_s * n_t, np.nan)
    single = np.bincount(lin, minlength=n_s * n_t).astype("int32")[lin] == 1
    values[lin[single]] = value[single]
    if not single.all():  # several exposures a night: their median
        med = pd.Series(value[~single]).groupby(lin[~single]).median()
        values[med.index.to_numpy()] = med.to_numpy()
    run_codes, labels = _codes(df["run"]) if "run" in df.columns else (np.full(len(df), -1), np.array([], object))
    runs = np.full(n_s * n_t, -1, dtype="int32")
    runs[lin] = run_codes
    first = np.full(n_s, -1, dtype="int64")
    first[sid[::-1]] = np.arange(len(sid))[::-1]
    cols = [c for c in ("calib_type", "metric", "detector", "detector_name", "amp") if c in df.columns]
    series = df.iloc[first][cols].reset_index(drop=True)
    for c in cols:
        if c != "detector":
            series[c] = series[c].astype(object).where(series[c].notna(), "").astype(str)
    if "detector_name" not in series.columns:
        series["detector_name"] = ""
    return Daily(values.reshape(n_s, n_t), runs.reshape(n_s, n_t), days.astype("int64"), series, labels)


def _threshold(min_size, calib_type: str, metric: str) -> float:
    if min_size is None:
        return 0.0
    if isinstance(min_size, Mapping):
        return float(min_size.get((calib_type, metric), min_size.get(metric, 0.0)))
    return float(min_size)


def _med3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise median of up to three values (NaN = absent; two -> their mean), and count."""
    fa, fb, fc = np.isfinite(a), np.isfinite(b), np.isfinite(c)
    n = fa.astype("int8") + fb + fc
    total = np.where(fa, a, 0.0) + np.where(fb, b, 0.0) + np.where(fc, c, 0.0)
    med3 = np.fmax(np.fmin(a, b), np.fmin(np.fmax(a, b), c))  # right when all three are there
    return np.where(n == 3, med3, np.where(n > 0, total / np.maximum(n, 1), np.nan)), n


def _row_nanmedian(a: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN (a sort: much faster than np.nanmedian's masked path)."""
    srt = np.sort(a, axis=1)  # NaN sort last
    n = np.isfinite(a).sum(axis=1)
    r = np.arange(len(a))
    lo, hi = srt[r, np.maximum((n - 1) // 2, 0)], srt[r, np.maximum(n // 2, 0)]
    return np.where(n > 0, (lo + hi) / 2, np.nan)


def _nanmedian_rows(st: np.ndarray) -> np.ndarray:
    """Median along axis 0 of a short stack, ignoring NaN (cheaper than np.nanmedian here)."""
    srt = np.sort(st, axis=0)  # NaN sort last
    n = np.isfinite(st).sum(axis=0)
    lo = np.take_along_axis(srt, np.maximum((n - 1) // 2, 0)[None], axis=0)[0]
    hi = np.take_along_axis(srt, np.maximum(n // 2, 0)[None], axis=0)[0]
    return np.where(n > 0, (lo + hi) / 2, np.nan)


#: Variance of the median of n unit normals (n = 0..3), for a level's standard error.
_MEDIAN_VAR = np.array([np.inf, 1.0, 0.5, 0.4487])


class _Rolling:
    """Least-squares slopes against t over the last `window` columns ending at each column.

    The sums that depend only on which nights have data are computed once per block; each
    fit then costs two cumulative sums.
    """

    def __init__(self, valid: np.ndarray, t: np.ndarray, window: int) -> None:
        self.valid, self.window = valid, window
        self.tt = (t - t[0])[None, :]
        v = valid.astype("float64")
        self.cnt, st, stt = self._roll(v), self._roll(v * self.tt), self._roll(v * self.tt * self.tt)
        with np.errstate(all="ignore"):
            self.mean_t = st / self.cnt
            self.sxx = stt - st * self.mean_t

    def _roll(self, a: np.ndarray) -> np.ndarray:
        c = np.cumsum(a, axis=1)
        c[:, self.window:] -= c[:, :-self.window].copy()
        return c

    def slope(self, y: np.ndarray) -> np.ndarray:
        """Slope per column (NaN where it cannot be fitted)."""
        yv = np.where(self.valid, y, 0.0)
        sy, sty = self._roll(yv), self._roll(yv * self.tt)
        with np.errstate(all="ignore"):
            return (sty - self.mean_t * sy) / self.sxx


def _block(x: np.ndarray, runs: np.ndarray, t: np.ndarray, *, window: int, k: float,
           min_points: int, size_floor: float, shrink: float) -> dict[str, np.ndarray]:
    """Jumps and drift onsets of one (calib_type, metric) block of series (rows x nights).

    Returns flat cell indices (``row * n_days + column``) and values of the jumps and of the
    drift onsets.  Whole-matrix passes are kept to what every night needs (differences,
    scatter, despiking, rolling fits); the jump test itself runs only on nights whose own
    change is large enough to be one (about 1% of them).
    """
    n, n_t = x.shape
    valid = np.isfinite(x)
    cols = np.broadcast_to(np.arange(n_t), x.shape)
    last = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    first = np.minimum.accumulate(np.where(valid, cols, n_t)[:, ::-1], axis=1)[:, ::-1]
    # previous / next night with data, as flat cells (-1 when none)
    row0 = (np.arange(n) * n_t)[:, None]
    prev_c = np.concatenate([np.full((n, 1), -1), last[:, :-1]], axis=1)
    next_c = np.concatenate([first[:, 1:], np.full((n, 1), n_t)], axis=1)
    prev_f = np.where(prev_c >= 0, row0 + prev_c, -1).ravel()
    next_f = np.where(next_c < n_t, row0 + next_c, -1).ravel()
    xf, tf = x.ravel(), np.tile(t, n)

    def step(c, links):  # neighbour cells of cells c (-1 stays -1)
        return np.where(c >= 0, links[np.maximum(c, 0)], -1)

    def val(a, c):
        return np.where(c >= 0, a[np.maximum(c, 0)], np.nan)

    every = np.arange(n * n_t)
    with np.errstate(all="ignore"):
        d = (x - val(xf, prev_f).reshape(n, n_t))
        med_d = _row_nanmedian(d)[:, None]
        dev = d - med_d
        s_mad = MAD_TO_SIGMA * _row_nanmedian(np.abs(dev))
        # The MAD only finds the outliers: with its 37% efficiency a month of nights gives a
        # sigma 20% low often enough to raise false alarms across 30,000 series, so the
        # scatter is the standard deviation of the changes within 4 MAD-sigmas (efficiency
        # near 100%, jumps still fall outside).
        inl = np.abs(dev) <= 4.0 * s_mad[:, None]
        m = inl.sum(axis=1).astype("float64")
        s_amp = np.sqrt(np.where(inl, dev * dev, 0.0).sum(axis=1) / np.maximum(m - 1, 1))
        ok_amp = (m >= 3) & np.isfinite(s_amp)
        # (no peer with three changes: too little history to judge anything, no alerts)
        pooled = float(np.median(s_amp[ok_amp])) if ok_amp.any() else np.nan
        level = _row_nanmedian(x)[:, None]
        # The typical scatter of an amp's peers: absolute, or relative to the amp's level
        # when the block's values sit well away from zero (noise, gains, percentiles scale
        # with their level: a bad amp at ten times its peers' level scatters ten times more).
        prior = np.full(n, pooled)
        lvl = np.abs(level[:, 0])
        use = ok_amp & (lvl > 0)
        if use.any() and np.median(lvl[use]) > 10 * pooled:
            prior = np.maximum(prior, np.median(s_amp[use] / lvl[use]) * lvl)
        # Shrink each amp's variance towards that (empirical Bayes), but only upwards: a
        # week of history can give a small sigma by chance (9 changes can have a MAD a fifth
        # of the truth), while an amp noisier than its peers really is that noisy.
        s_amp = np.where(ok_amp, s_amp, prior)
        s_eff = np.maximum(s_amp, np.sqrt((m * s_amp**2 + shrink * prior**2) / (m + shrink)))
        sig = np.maximum(s_eff[:, None] / np.sqrt(2.0), 1e-9 * np.maximum(np.abs(level), 1e-300))
        sig_f = np.repeat(sig[:, 0], n_t)

        # Lone outlier nights (off the median of them and their neighbours by > k sigma) are
        # replaced by that median before any slope is fitted; a median of three keeps steps.
        # Only nights with data on both sides: at the ends a spike and a jump look alike.
        y = x - level
        yf = y.ravel()
        c = every[(np.abs(d) > k * sig).ravel() & (prev_f >= 0) & (next_f >= 0)]
        near, _ = _med3(val(yf, prev_f[c]), yf[c], val(yf, next_f[c]))
        spike = np.abs(yf[c] - near) > k * sig_f[c]
        yf[c[spike]] = near[spike]
        # The trend before a night must not include an earlier jump: fit it with every
        # step beyond 4 sigma taken out (a slow drift's steps are far smaller).
        dy = y - val(yf, prev_f).reshape(n, n_t)
        dy -= _row_nanmedian(dy)[:, None]
        clean = y - np.cumsum(np.where(np.abs(dy) > 4.0 * s_eff[:, None], dy, 0.0), axis=1)
        roll = _Rolling(valid, t, window)
        fitted = ((roll.cnt >= min_points) & (roll.sxx > 0)).ravel()
        slope_f, sxx_f = roll.slope(clean).ravel(), roll.sxx.ravel()

        # Jump: the level of (up to) three nights from night t on against the three before,
        # less the trend of the `window` nights before those (so a drift is not a run of
        # jumps); a lone outlier night does not move a median of three.  Only nights whose
        # own change is sizeable (0.4 k sigma_d) are tested.
        c = every[(np.abs(dev) >= 0.4 * k * s_eff[:, None]).ravel()]
        p1 = prev_f[c]
        p2 = step(p1, prev_f)
        p3 = step(p2, prev_f)
        p4 = step(p3, prev_f)
        n1 = next_f[c]
        n2 = step(n1, next_f)
        before, nb = _med3(val(xf, p3), val(xf, p2), val(xf, p1))
        after, na = _med3(xf[c], val(xf, n1), val(xf, n2))
        gap = _med3(tf[c], val(tf, n1), val(tf, n2))[0] - _med3(val(tf, p3), val(tf, p2), val(tf, p1))[0]
        # The trend window ends before the "before" nights: one that overlaps them
        # correlates with them and widens the statistic's tails.
        pre = (p4 >= 0) & fitted[np.maximum(p4, 0)]
        b_pre = np.where(pre, slope_f[np.maximum(p4, 0)], 0.0)
        var_b = np.where(pre, 1.0 / sxx_f[np.maximum(p4, 0)], 0.0)
        delta = after - before - b_pre * gap
        z = delta / (sig_f[c] * np.sqrt(_MEDIAN_VAR[na] + _MEDIAN_VAR[nb] + var_b * gap**2))
        # ... and it happened on night t: its own step carries most of the shift, both
        # against the trend before and against the steps of the nights around it (a fast
        # drift that no trend window has caught yet moves every night, a jump one night).
        df_ = d.ravel()
        own = df_[c] - b_pre * (tf[c] - val(tf, p1))
        around = df_[c] - _nanmedian_rows(np.stack([val(df_, p1), val(df_, p2), val(df_, n1), val(df_, n2)]))
        s_c = s_eff[c // n_t]
        hit = ((np.abs(z) >= k) & (np.abs(delta) >= size_floor)
               & (own * delta > 0) & (np.abs(own) >= 0.5 * np.abs(delta))
               & (around * delta > 0) & (np.abs(around) >= np.maximum(0.5 * np.abs(delta), 0.5 * k * s_c)))
        jc, jd, jz, jb, ja = c[hit], delta[hit], z[hit], before[hit], after[hit]

        def drift_of(cells, sizes):  # drift on the series with the given jumps taken out
            corr = np.zeros(n * n_t)
            corr[cells] = sizes
            yd = y - np.cumsum(corr.reshape(n, n_t), axis=1)
            return yd, _drift(yd, roll, t, sig, window=window, k=k, min_points=min_points,
                              size_floor=size_floor)

        yd, dr = drift_of(jc, jd)
        # A drift's trend is only known with a lag: inside a running drift, a "jump" the same
        # way must be a jump on its own night's change alone.
        p1 = np.maximum(prev_f[jc], 0)
        on = (prev_f[jc] >= 0) & dr["active"].ravel()[p1] & (np.sign(jd) == dr["sign"].ravel()[p1])
        weak = np.abs(df_[jc] - dr["slope"].ravel()[p1] * (tf[jc] - tf[p1])) < k * s_eff[jc // n_t]
        if (on & weak).any():
            keep = ~(on & weak)
            jc, jd, jz, jb, ja = jc[keep], jd[keep], jz[keep], jb[keep], ja[keep]
            yd, dr = drift_of(jc, jd)
    # A step too small for the three-night test still tilts a ten-night line: a "drift"
    # that one step fits better than a line is reported as the jump it is.
    onsets, extra = [], []
    for i, j in zip(*np.nonzero(dr["onset"])):
        lo, hi = dr["start"][j], min(j + 4, n_t)
        split = _step_fit(yd[i, lo:hi], t[lo:hi])
        if split is None:
            onsets.append(i * n_t + j)
            continue
        col, size, n_b, n_a = split
        cell = i * n_t + lo + col
        if cell not in jc and cell not in extra:
            extra.append(cell)
            jc, jd = np.append(jc, cell), np.append(jd, size)
            jz = np.append(jz, size / (sig[i, 0] * np.sqrt(1.0 / n_b + 1.0 / n_a)))
            jb, ja = np.append(jb, xf[cell] - size), np.append(ja, xf[cell])
    rf = runs.ravel()
    run_change = (prev_f[jc] >= 0) & (rf[jc] != rf[np.maximum(prev_f[jc], 0)])
    oc = np.asarray(onsets, dtype="int64")
    oj = oc % n_t
    return {"jump": jc, "delta": jd, "z": jz, "before": jb, "after": ja, "run_change": run_change,
            "onset": oc, "size": dr["size"].ravel()[oc], "zd": dr["zd"].ravel()[oc],
            "start": dr["start"][oj], "first": xf[oc - oj + dr["start"][oj]], "last": xf[oc]}


def _step_fit(y: np.ndarray, t: np.ndarray) -> tuple[int, float, int, int] | None:
    """(first column after the step, step, n before, n after) when one step fits the points
    at least twice as well (residual sum of squares) as a straight line, else None."""
    ok = np.isfinite(y)
    yv, tv, cols = y[ok], t[ok], np.flatnonzero(ok)
    if len(yv) < 5:
        return None
    a = np.polyfit(tv, yv, 1)
    rss_line = float(np.sum((yv - np.polyval(a, tv)) ** 2))
    csum, csq = np.cumsum(yv), np.cumsum(yv * yv)
    n = len(yv)
    nb = np.arange(2, n)  # at least two points before the step, one after
    sb, qb = csum[nb - 1], csq[nb - 1]
    sa, qa = csum[-1] - sb, csq[-1] - qb
    rss = (qb - sb * sb / nb) + (qa - sa * sa / (n - nb))
    best = int(np.argmin(rss))
    if not rss[best] < 0.5 * rss_line:
        return None
    k = int(nb[best])
    return int(cols[k]), float(sa[best] / (n - k) - sb[best] / k), k, n - k


def _drift(y: np.ndarray, roll: _Rolling, t: np.ndarray, sig: np.ndarray, *, window: int,
           k: float, min_points: int, size_floor: float) -> dict[str, np.ndarray]:
    """Drift episodes: onset (first night over k), and per night active, sign, slope, size, z."""
    n, n_t = y.shape
    cnt, sxx = roll.cnt, roll.sxx
    slope = roll.slope(y)
    with np.errstate(all="ignore"):
        start = np.maximum(np.arange(n_t) - window + 1, 0)
        size = slope * (t - t[start])[None, :]
        zd = slope * np.sqrt(sxx) / sig
    ok = (cnt >= min_points) & (sxx > 0) & np.isfinite(zd)
    strong = ok & (np.abs(zd) >= k) & (np.abs(size) >= size_floor)
    onset = np.zeros_like(strong)
    active = np.zeros_like(strong)
    signs = np.zeros(y.shape)
    on = np.zeros(n, dtype=bool)
    sign = np.zeros(n)
    for j in range(n_t):  # hysteresis: one alert per episode, not one per night
        zj = np.where(ok[:, j], zd[:, j], 0.0)
        cont = on & (~ok[:, j] | (zj * sign >= k / 2))
        new = strong[:, j] & ~cont
        on = cont | new
        sign = np.where(new, np.sign(zj), sign)
        onset[:, j], active[:, j], signs[:, j] = new, on, np.where(on, sign, 0.0)
    return {"onset": onset, "active": active, "sign": signs, "slope": slope, "size": size,
            "zd": zd, "start": start}


def detect_changes(df: pd.DataFrame, *, window: int = 10, k: float = 6.0,
                   min_size: float | Mapping | None = None, min_points: int | None = None,
                   shrink: float = 10.0, skip_metrics: Sequence[str] = ("SUCCESS",)) -> pd.DataFrame:
    """Find drifts and jumps in a tidy metrics history.

    Parameters
    ----------
    df
        Tidy metrics table over several days (``HistoryStore.load()`` or ``load_metrics``).
    window
        Nights (with data) over which a drift's slope is fitted.
    k
        Threshold in robust sigmas, for jumps and drifts alike.
    min_size
        Absolute size an alert must also reach, in metric units: one number, or a mapping
        from ``metric`` or ``(calib_type, metric)`` to a number.
    min_points
        Nights needed in a window to fit a drift (default ``max(3, window // 2 + 1)``).
    shrink
        Weight, in nights, of the calib_type/metric's typical scatter in each amp's sigma.
    skip_metrics
        Metrics not examined: pass/fail flags belong to :func:`validity_ranges`' failures.

    Returns
    -------
    DataFrame
        One row per alert, columns :data:`ALERT_COLUMNS`; ``kind`` is ``"jump"`` or
        ``"drift"``, ``size`` is signed (metric units: the jump, or the drift's change over
        the window), ``significance`` in robust sigmas, ``run_change`` marks a jump on the
        night the series' run (calibration) changed.

    Examples
    --------
    >>> alerts = detect_changes(df, window=10, k=6)                      # doctest: +SKIP
    >>> alerts.loc[0, ["detector_name", "amp", "metric", "kind"]].tolist()  # doctest: +SKIP
    ['R22_S11', 'C07', 'MEAN', 'jump']
    """
    if window < 2:
        raise ValueError("window must be at least 2 nights")
    min_points = max(3, window // 2 + 1) if min_points is None else int(min_points)
    skip = df["metric"].isin(list(skip_metrics)).to_numpy(dtype=bool)
    if skip.any():  # (a copy of a year of rows only when there is something to drop)
        df = df[~skip]
    daily = daily_matrix(df)
    if daily.values.size == 0:
        return _empty_alerts()
    t = _ordinal(daily.days)
    ser = daily.series
    block = (ser["calib_type"] + "\0" + ser["metric"]).to_numpy()
    bounds = np.flatnonzero(np.r_[True, block[1:] != block[:-1], True])
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        ctype, metric = ser.at[lo, "calib_type"], ser.at[lo, "metric"]
        r = _block(daily.values[lo:hi], daily.runs[lo:hi], t, window=window, k=k, min_points=min_points,
                   size_floor=_threshold(min_size, ctype, metric), shrink=shrink)
        n_t = len(t)
        for kind, cells in (("jump", r["jump"]), ("drift", r["onset"])):
            if not len(cells):
                continue
            i, j = cells // n_t, cells % n_t
            p = ser.iloc[lo + i].reset_index(drop=True)
            p["day_obs"] = daily.days[j]
            p["kind"] = kind
            rc = daily.runs[lo + i, j]
            labels = daily.run_labels if len(daily.run_labels) else np.array([""], dtype=object)
            p["run"] = np.where(rc >= 0, labels[np.clip(rc, 0, len(labels) - 1)], "")
            if kind == "jump":
                p["size"], p["significance"] = r["delta"], np.abs(r["z"])
                p["before"], p["after"] = r["before"], r["after"]
                p["window_start"] = pd.NA
                p["run_change"] = r["run_change"]
            else:
                p["size"], p["significance"] = r["size"], np.abs(r["zd"])
                p["before"], p["after"] = r["first"], r["last"]
                p["window_start"] = daily.days[r["start"]]
                p["run_change"] = False
            parts.append(p)
    if not parts:
        return _empty_alerts()
    out = pd.concat(parts, ignore_index=True)
    out["window_start"] = out["window_start"].astype("Int64")
    out = out.sort_values(["day_obs", "calib_type", "metric", "detector", "amp", "kind"], kind="stable")
    log.info("history: %d jump(s), %d drift(s)", (out["kind"] == "jump").sum(), (out["kind"] == "drift").sum())
    return out[list(ALERT_COLUMNS)].reset_index(drop=True)


def _empty_alerts() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    for c in ("detector", "day_obs"):
        out[c] = out[c].astype("int64")
    for c in ("size", "significance", "before", "after"):
        out[c] = out[c].astype("float64")
    out["window_start"] = out["window_start"].astype("Int64")
    out["run_change"] = out["run_change"].astype(bool)
    return out
