"""cpmosaic.metrics.drift: jumps and drifts found where injected and nowhere else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpmosaic.metrics.drift import ALERT_COLUMNS, daily_matrix, detect_changes

AMPS = [f"C1{i}" for i in range(8)] + [f"C0{i}" for i in range(7, -1, -1)]
METRICS = ("MEAN", "NOISE", "CR_NOISE")


def history(seed: int, *, n_det: int = 20, n_days: int = 40, noise: float = 1.0, level: float = 100.0,
            drift=None, jump=None, spike=None, noisy=(), exposures: int = 1, missing: float = 0.0,
            start: str = "2025-01-01", calib_type: str = "bias", run: str | None = "r1") -> pd.DataFrame:
    """A seeded tidy metrics table: stationary Gaussian noise per (detector, amp, metric, night).

    ``drift=(det, amp, metric, first_night, per_night)`` and ``jump=(det, amp, metric, night,
    size)`` (sizes in units of ``noise``), ``spike`` like jump but for one night only,
    ``noisy``: (det, amp) pairs five times noisier, ``missing``: fraction of rows dropped.
    """
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, periods=n_days, freq="D").strftime("%Y%m%d").astype(int).to_numpy()
    det = np.repeat(np.arange(n_det), len(AMPS) * len(METRICS))
    amp = np.tile(np.repeat(AMPS, len(METRICS)), n_det)
    met = np.tile(METRICS, n_det * len(AMPS))
    n_s = len(det)
    scale = np.full(n_s, noise)
    for d, a in noisy:
        scale[(det == d) & (amp == a)] *= 5.0
    vals = level + rng.normal(0, level / 10, n_s)[:, None, None] \
        + scale[:, None, None] * rng.normal(0, 1, (n_s, n_days, exposures))

    def row(d, a, m):
        return int(np.flatnonzero((det == d) & (amp == a) & (met == m))[0])

    if drift:
        d, a, m, first, rate = drift
        vals[row(d, a, m), first:, :] += (rate * noise * np.arange(1, n_days - first + 1))[:, None]
    if jump:
        d, a, m, night, size = jump
        vals[row(d, a, m), night:, :] += size * noise
    if spike:
        d, a, m, night, size = spike
        vals[row(d, a, m), night, :] += size * noise
    shape = (n_s, n_days, exposures)
    df = pd.DataFrame({
        "instrument": "LSSTCam", "calib_type": calib_type,
        "run": run if run else np.broadcast_to(np.array([f"run{d}" for d in days])[None, :, None], shape).ravel(),
        "exposure": (days[None, :, None] * 100000 + np.arange(exposures)[None, None, :] + np.zeros(shape, int)).ravel(),
        "day_obs": np.broadcast_to(days[None, :, None], shape).ravel(),
        "mjd": 60676.0 + np.broadcast_to(np.arange(n_days)[None, :, None], shape).ravel(),
        "detector": np.broadcast_to(det[:, None, None], shape).ravel(),
        "detector_name": np.broadcast_to(np.array([f"R22_S{d:02d}" for d in det])[:, None, None], shape).ravel(),
        "amp": np.broadcast_to(amp[:, None, None], shape).ravel(), "tier": "amp",
        "metric": np.broadcast_to(met[:, None, None], shape).ravel(), "value": vals.ravel(), "passed": True,
    })
    if missing:
        df = df[rng.random(len(df)) >= missing]
    return df.reset_index(drop=True)


def found(alerts: pd.DataFrame) -> set:
    return set(zip(alerts["detector"], alerts["amp"], alerts["metric"], alerts["kind"]))


DRIFT = (3, "C07", "NOISE", 15, 1.5)
JUMP = (7, "C12", "MEAN", 25, 15.0)
INJECTED = {(3, "C07", "NOISE", "drift"), (7, "C12", "MEAN", "jump")}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("noise,level", [(1e-3, 0.0), (1.0, 100.0), (40.0, 5e4)])
def test_injected_found_and_nothing_else(seed, noise, level):
    alerts = detect_changes(history(seed, noise=noise, level=level, drift=DRIFT, jump=JUMP))
    assert found(alerts) == INJECTED
    assert len(alerts) == 2  # each reported once
    jump = alerts[alerts["kind"] == "jump"].iloc[0]
    assert jump["day_obs"] == 20250126 and jump["size"] == pytest.approx(15 * noise, rel=0.25)
    assert jump["significance"] >= 6 and jump["after"] - jump["before"] == pytest.approx(15 * noise, rel=0.25)
    drift = alerts[alerts["kind"] == "drift"].iloc[0]
    assert 20250116 <= drift["day_obs"] <= 20250126  # the night it crosses, soon after it began
    assert drift["size"] > 0 and drift["window_start"] < drift["day_obs"]


@pytest.mark.parametrize("seed", range(3))
def test_short_history_like_the_nightly_job(seed):
    """Ten nights, a drift from the third and a jump on the last night."""
    df = history(seed, n_days=10, drift=(3, "C07", "NOISE", 2, 2.0), jump=(7, "C12", "MEAN", 9, 15.0))
    alerts = detect_changes(df)
    assert found(alerts) == INJECTED
    assert alerts.loc[alerts["kind"] == "jump", "day_obs"].tolist() == [20250110]


@pytest.mark.parametrize("seed", range(4))
def test_stationary_noise_gives_no_alert(seed):
    df = history(seed, n_det=30, n_days=60, noisy=[(1, "C03"), (2, "C15")], missing=0.05, exposures=2)
    assert detect_changes(df).empty


def test_jump_is_not_also_a_drift_and_small_steps_are_jumps():
    for size in (15.0, 7.0):  # 7 sigma: too small for three nights, enough to tilt a line
        alerts = detect_changes(history(1, jump=(5, "C00", "CR_NOISE", 20, size)))
        assert found(alerts) == {(5, "C00", "CR_NOISE", "jump")}, size


def test_lone_outlier_night_is_not_a_change():
    assert detect_changes(history(2, spike=(4, "C05", "MEAN", 18, 30.0))).empty


def test_gaps_several_exposures_and_min_size():
    df = history(4, exposures=3, missing=0.1, drift=DRIFT, jump=JUMP)
    df = df[~df["day_obs"].isin([20250110, 20250111])]  # two nights without data
    assert found(detect_changes(df)) == INJECTED
    assert found(detect_changes(df, min_size={"MEAN": 100.0})) == {(3, "C07", "NOISE", "drift")}
    assert detect_changes(df, min_size=1e9).empty


def test_longer_window_catches_slower_drift():
    df = history(5, n_days=80, drift=(2, "C10", "MEAN", 30, 0.3))
    assert detect_changes(df).empty  # 0.3 sigma a night: about 3 sigma over 10 nights
    assert found(detect_changes(df, window=30)) == {(2, "C10", "MEAN", "drift")}


def test_too_little_history_and_empty_input():
    assert detect_changes(history(0, n_det=2, n_days=3, jump=(0, "C10", "MEAN", 2, 50.0))).empty
    empty = detect_changes(history(0, n_det=1, n_days=5).iloc[:0])
    assert list(empty.columns) == list(ALERT_COLUMNS) and empty.empty


def test_run_change_marks_jumps_on_a_new_run():
    df = history(6, n_days=20, jump=JUMP[:3] + (12, 20.0))
    df["run"] = np.where(df["day_obs"] >= 20250113, "calibB", "calibA")
    alerts = detect_changes(df)
    assert alerts[["kind", "run", "run_change"]].values.tolist() == [["jump", "calibB", True]]


def test_daily_matrix_takes_the_median_of_a_night(rng):
    df = history(7, n_det=1, n_days=5, exposures=3)
    daily = daily_matrix(df)
    assert daily.values.shape == (len(AMPS) * len(METRICS), 5)
    assert list(daily.days) == [20250101, 20250102, 20250103, 20250104, 20250105]
    first = daily.series.iloc[0]
    sel = df[(df["metric"] == first["metric"]) & (df["amp"] == first["amp"]) & (df["day_obs"] == 20250103)]
    assert daily.values[0, 2] == pytest.approx(np.median(sel["value"]))
    # categorical input (as HistoryStore.load gives) and a shuffled order give the same matrix
    cat = df.sample(frac=1.0, random_state=3).astype({c: "category" for c in ("metric", "amp", "calib_type", "run")})
    np.testing.assert_allclose(daily_matrix(cat).values, daily.values)


def test_end_to_end_on_synthesize(tmp_path):
    """synthesize + load_metrics: the manifest's drift and jump, and nothing else."""
    import cpmosaic.metrics as metrics
    import cpmosaic.synth as synth

    dets = ["R22_S11", "R22_S12", "R10_S02", "R00_SG0", "R42_S00", "R24_S00"]
    m = synth.synthesize(tmp_path / "s", seed=2, raw=False, processed=False, calibs=False, butler=False,
                         profiles=False, detectors=dets, workers=2, progress=False)
    df = metrics.load_metrics(m.verify_root)
    alerts = detect_changes(df)
    got = set(zip(alerts["calib_type"], alerts["detector_name"], alerts["amp"], alerts["metric"], alerts["kind"]))
    assert got == {(t["calib_type"], t["detector_name"], t["amp"], t["metric"], t["kind"]) for t in m.trends}
    jump = alerts[alerts["kind"] == "jump"].iloc[0]
    trend = m.trend("jump")
    assert jump["day_obs"] == trend["start_day"] and jump["size"] == pytest.approx(trend["size"], rel=0.2)
