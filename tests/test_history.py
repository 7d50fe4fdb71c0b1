"""cpmosaic.metrics.history: the per-night store, candlesticks, validity ranges, `cpmosaic history`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpmosaic.errors import InputError
from cpmosaic.metrics.drift import detect_changes
from cpmosaic.metrics.history import (STORE_COLUMNS, HistoryStore, candlesticks, day_obs_from_mjd,
                                      recommendations, validity_ranges)

AMPS = ("C10", "C11", "C12", "C13", "C00", "C01", "C02", "C03")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def tidy(seed: int, days, *, calib_type: str = "bias", n_det: int = 3, runs=None, metrics=("MEAN", "NOISE"),
         jump=None) -> pd.DataFrame:
    """A seeded tidy table: one exposure per night, ``runs``: night -> run (default "r1");
    ``jump=(detector, amp, metric, night, size)``."""
    rng = np.random.default_rng(seed)
    keys = [(d, a, m) for d in range(n_det) for a in AMPS for m in metrics]
    base = rng.normal(10.0, 1.0, len(keys))
    rows = []
    for day in days:
        vals = base + rng.normal(0.0, 0.1, len(keys))
        for i, (d, a, m) in enumerate(keys):
            v = vals[i] + (jump[4] if jump and (d, a, m) == jump[:3] and day >= jump[3] else 0.0)
            rows.append((calib_type, (runs or {}).get(day, "r1"), day * 100000 + 1, day, d, f"R22_S{d:02d}", a, m, v))
    df = pd.DataFrame(rows, columns=["calib_type", "run", "exposure", "day_obs", "detector", "detector_name", "amp",
                                     "metric", "value"])
    return df.assign(instrument="LSSTCam", tier="amp", mjd=60800.0, passed=pd.array([True] * len(df), "boolean"),
                     exposure=df["exposure"].astype("Int64"), day_obs=df["day_obs"].astype("Int64"))


def nights(first: int, n: int) -> list[int]:
    return pd.date_range(str(first), periods=n).strftime("%Y%m%d").astype(int).tolist()


# -- the store ----------------------------------------------------------------------
def test_add_and_load_round_trip(tmp_path):
    store = HistoryStore(tmp_path / "h")
    df = pd.concat([tidy(0, nights(20250601, 3)), tidy(1, nights(20250601, 2), calib_type="Dark")])
    assert store.add(df) == [("bias", 20250601), ("bias", 20250602), ("bias", 20250603),
                             ("dark", 20250601), ("dark", 20250602)]
    assert store.calib_types() == ["bias", "dark"] and store.days("dark") == [20250601, 20250602]
    assert store.days() == [20250601, 20250602, 20250603]
    assert (tmp_path / "h" / "bias" / "day_obs=20250603.parquet").is_file()
    back = store.load()
    assert list(back.columns) == list(STORE_COLUMNS) and len(back) == len(df)
    assert isinstance(back["metric"].dtype, pd.CategoricalDtype)
    assert str(back["passed"].dtype) == "boolean" and str(back["day_obs"].dtype) == "Int64"
    assert back["detector"].dtype == np.int64
    key = ["calib_type", "day_obs", "detector", "amp", "metric"]
    a = back.astype({"calib_type": str, "amp": str, "metric": str}).sort_values(key).reset_index(drop=True)
    b = df.assign(calib_type=df["calib_type"].str.lower()).sort_values(key).reset_index(drop=True)
    np.testing.assert_array_equal(a["value"], b["value"])
    assert a["exposure"].tolist() == b["exposure"].tolist()


def test_load_filters(tmp_path):
    store = HistoryStore(tmp_path)
    store.add(pd.concat([tidy(0, nights(20250601, 5)), tidy(1, nights(20250601, 5), calib_type="flat")]))
    part = store.load("bias", metric="NOISE", start=20250602, end="2025-06-04", columns=["day_obs", "metric", "value"])
    assert list(part.columns) == ["day_obs", "metric", "value"]
    assert set(part["metric"]) == {"NOISE"} and sorted(set(part["day_obs"])) == [20250602, 20250603, 20250604]
    assert len(store.load(metric=["MEAN", "NOISE"], start=20250605)) == 2 * 3 * len(AMPS) * 2
    assert store.load("dark").empty and list(store.load("dark").columns) == list(STORE_COLUMNS)
    with pytest.raises(InputError):
        store.load(start="June")


def test_readding_a_night_replaces_it_and_day_comes_from_the_data(tmp_path):
    store = HistoryStore(tmp_path)
    store.add(tidy(0, nights(20250601, 2)))
    newer = tidy(5, [20250602], metrics=("MEAN",))
    assert store.add(newer) == [("bias", 20250602)]
    again = store.load(start=20250602)
    assert len(again) == len(newer) and set(again["metric"]) == {"MEAN"}
    # no day_obs: taken from the MJD (Rubin's day_obs is the date at UTC-12h)
    no_day = tidy(1, [20250601]).assign(day_obs=pd.array([None] * 48, "Int64"), mjd=60830.7)
    assert store.add(no_day) == [("bias", int(day_obs_from_mjd([60830.7])[0]))]
    assert day_obs_from_mjd(np.array([60800.0, 60800.6])).tolist() == [20250504, 20250505]
    assert not list(tmp_path.rglob(".*"))  # no temporary files left


def test_failed_write_keeps_the_old_night(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    store = HistoryStore(tmp_path)
    store.add(tidy(0, [20250601]))
    before = store.load()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError):
        store.add(tidy(9, [20250601]))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(store.load(), before)
    assert not list(tmp_path.rglob(".*"))


def test_bad_input(tmp_path):
    store = HistoryStore(tmp_path)
    with pytest.raises(InputError, match="lacks column"):
        store.add(tidy(0, [20250601]).drop(columns=["metric"]))
    with pytest.raises(InputError, match="directory"):
        store.add(tidy(0, [20250601], calib_type="../evil"))


def test_readable_by_pandas_pyarrow_and_dask(tmp_path):
    ds = pytest.importorskip("pyarrow.dataset")
    store = HistoryStore(tmp_path)
    df = pd.concat([tidy(0, nights(20250601, 3)), tidy(1, nights(20250601, 2), calib_type="dark")])
    store.add(df)
    (tmp_path / "bias" / ".day_obs=20250609.parquet.tmp").write_bytes(b"half written")  # a writer mid-way
    assert len(pd.read_parquet(tmp_path)) == len(df)
    assert ds.dataset(tmp_path, format="parquet").count_rows() == len(df)
    dd = pytest.importorskip("dask.dataframe")
    ddf = dd.read_parquet(str(tmp_path))
    assert len(ddf) == len(df) and set(ddf.columns) == set(STORE_COLUMNS)


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {src!r})
    import numpy as np, pandas as pd
    from cpmosaic.metrics.history import HistoryStore
    store, first, seed = HistoryStore(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(seed)
    for rep in range(3):
        for i in range(6):
            for day in (first + i, 20250101):  # its own nights, and one night both write
                n = 4000
                df = pd.DataFrame({{"calib_type": "bias", "run": f"w{{seed}}", "day_obs": day, "mjd": 0.0,
                                   "detector": rng.integers(0, 189, n), "amp": "C10", "metric": "MEAN",
                                   "value": np.full(n, float(seed)), "passed": True}})
                HistoryStore(sys.argv[1]).add(df)
""")


def test_two_processes_adding_at_once_lose_nothing(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(src=SRC))
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, str(script), str(store), str(first), str(seed)])
             for first, seed in ((20250201, 1), (20250301, 2))]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    h = HistoryStore(store)
    assert h.days("bias") == [20250101] + list(range(20250201, 20250207)) + list(range(20250301, 20250307))
    for day in h.days("bias"):
        night = h.load(start=day, end=day)
        assert len(night) == 4000 and night["value"].nunique() == 1  # whole, from one writer
    assert not list(store.rglob(".*"))


# -- summaries -------------------------------------------------------------------------
def test_candlesticks():
    df = tidy(3, nights(20250601, 4))
    c = candlesticks(df, "NOISE", "bias")
    assert list(c.columns) == ["calib_type", "day_obs", "min", "q1", "median", "q3", "max", "n"]
    night = df[(df["metric"] == "NOISE") & (df["day_obs"] == 20250602)]["value"]
    row = c[c["day_obs"] == 20250602].iloc[0]
    assert row["n"] == len(night) and row["median"] == pytest.approx(night.median())
    assert row["q1"] == pytest.approx(night.quantile(0.25)) and row["max"] == night.max()
    per_det = candlesticks(df, "NOISE", by="detector")
    assert len(per_det) == 4 * 3 and set(per_det["n"]) == {len(AMPS)}
    assert {"detector", "detector_name"} <= set(per_det.columns)


def test_validity_ranges_per_run():
    days = nights(20250601, 20)
    runs = {d: ("calibA" if i < 10 else "calibB") for i, d in enumerate(days)}
    df = tidy(4, days, runs=runs, jump=(1, "C12", "MEAN", days[5], 3.0))
    df.loc[(df["detector"] == 2) & (df["amp"] == "C00") & (df["metric"] == "NOISE"), "passed"] = False  # always
    late = (df["detector"] == 0) & (df["amp"] == "C01") & (df["metric"] == "MEAN") & (df["day_obs"] >= days[14])
    df.loc[late, "passed"] = False
    alerts = detect_changes(df)
    assert alerts[["day_obs", "kind"]].values.tolist() == [[days[5], "jump"]]
    vr = validity_ranges(df, alerts).set_index("run")
    assert vr.loc["calibA", ["first_day", "last_day", "n_days", "ended_by", "ended_on"]].tolist() == \
        [days[0], days[4], 5, "jump", days[5]]
    assert vr.loc["calibB", ["first_day", "last_day", "n_days", "ended_by"]].tolist() == \
        [days[10], days[13], 4, "failure"]
    rec = recommendations(df, alerts)
    assert rec == [{"calib_type": "bias", "run": "calibB", "recommend_new": True, "day_obs": days[14],
                    "reason": f"failure on {days[14]}: R22_S00 C01 MEAN fails"}]


def test_validity_with_a_run_per_night_and_no_alerts():
    days = nights(20250601, 8)
    df = tidy(5, days, runs={d: f"verify.{d}" for d in days}, jump=(0, "C10", "NOISE", days[4], 3.0))
    alerts = detect_changes(df)
    vr = validity_ranges(df, alerts)
    assert len(vr) == 1 and vr.iloc[0][["run", "n_days", "ended_by", "ended_on"]].tolist() == \
        [f"verify.{days[0]}", 4, "jump", days[4]]
    assert recommendations(df, alerts)[0]["recommend_new"] is True
    quiet = tidy(6, days)
    assert validity_ranges(quiet, detect_changes(quiet)).iloc[0]["ended_by"] is None
    assert recommendations(quiet, detect_changes(quiet))[0]["recommend_new"] is False


def test_a_valid_calibration_with_old_failures_is_not_called_passing():
    """Tests failing since the first night do not end a validity (DMTN-192), and the reason
    says they fail instead of 'passing'."""
    days = nights(20250601, 6)
    df = tidy(8, days)
    assert recommendations(df, detect_changes(df))[0]["reason"].endswith("; every test passing")
    old = (df["detector"] == 1) & df["amp"].isin(["C00", "C01"]) & (df["metric"] == "NOISE")
    df.loc[old, "passed"] = False                     # failing every night, from the first
    rec = recommendations(df, detect_changes(df))[0]
    assert rec["recommend_new"] is False
    assert "passing" not in rec["reason"] and "(2 test(s) already failing on that first night)" in rec["reason"]


# -- the command line -------------------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cpmosaic", "history", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def verify_tree(tmp_path_factory):
    import cpmosaic.synth as synth

    m = synth.synthesize(tmp_path_factory.mktemp("synth"), seed=1, raw=False, processed=False, calibs=False,
                         butler=False, profiles=False, workers=2, progress=False,
                         detectors=["R22_S11", "R10_S02", "R42_S00", "R24_S00"])
    return m


def test_cli_add_show_check(verify_tree, tmp_path):
    store = str(tmp_path / "store")
    r = cli("add", str(verify_tree.verify_root), "--store", store)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("added bias 20251118 (")
    assert len(r.stdout.splitlines()) == 3 * 10
    r = cli("add", str(verify_tree.verify_root), "--store", store)
    assert r.returncode == 0 and all(line.startswith("replaced ") for line in r.stdout.splitlines())

    r = cli("show", "--store", store, "--calib-type", "dark", "--metric", "MEAN", "--format", "json")
    candles = json.loads(r.stdout)
    assert r.returncode == 0 and len(candles) == 10
    assert set(candles[0]) == {"calib_type", "metric", "day_obs", "min", "q1", "median", "q3", "max", "n"}

    r = cli("check", "--store", store, "--format", "json")
    assert r.returncode == 1, r.stderr
    alerts = json.loads(r.stdout)
    assert {"calib_type", "detector", "detector_name", "amp", "metric", "day_obs", "kind", "size"} <= set(alerts[0])
    got = {(a["calib_type"], a["detector_name"], a["amp"], a["metric"], a["kind"]) for a in alerts}
    assert got == {(t["calib_type"], t["detector_name"], t["amp"], t["metric"], t["kind"]) for t in verify_tree.trends}
    r = cli("check", "--store", store, "--calib-type", "flat")
    assert r.returncode == 0 and "recommendations:" in r.stdout and "flat" in r.stdout
    assert "validity ranges:" in r.stdout and "still valid" in r.stdout
    r = cli("check", "--store", store)
    ended = {line.split()[0]: line for line in r.stdout.split("validity ranges:")[1].splitlines() if line.strip()}
    for t in verify_tree.trends:  # the injected change ends its calibration's validity
        assert f"ended by {t['kind']}" in ended[t["calib_type"]], ended


def test_cli_check_table_and_errors(tmp_path):
    store = HistoryStore(tmp_path / "store")
    days = nights(20250601, 12)
    store.add(tidy(7, days, jump=(2, "C03", "MEAN", days[8], 5.0)))
    r = cli("check", "--store", str(store.path))
    assert r.returncode == 1 and "jump" in r.stdout and "NEW CALIBRATION" in r.stdout
    r = cli("check", "--store", str(store.path), "--since", str(days[10]), "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout) == []
    r = cli("check", "--store", str(tmp_path / "nothing"))
    assert r.returncode == 1 and "no history" in r.stderr
    assert cli("check").returncode == 2  # --store is required


# -- damaged nights ---------------------------------------------------------------------
def _damage(store: HistoryStore, day: int, how: str) -> Path:
    f = store.file("bias", day)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2] if how == "truncated" else b"\0" * len(data))
    return f


@pytest.mark.parametrize("how", ["truncated", "zeroed"])
def test_a_corrupt_night_is_named_and_skipped(tmp_path, caplog, how):
    store = HistoryStore(tmp_path / "store")
    days = nights(20250601, 12)
    df = tidy(7, days, jump=(2, "C03", "MEAN", days[8], 5.0))
    store.add(df)
    bad = _damage(store, days[3], how)
    back = store.load()
    assert sorted(set(back["day_obs"])) == [d for d in days if d != days[3]]  # every other night is there
    assert len(back) == len(df) - (df["day_obs"] == days[3]).sum()
    assert [p for p, _ in back.attrs["problems"]] == [str(bad)]
    assert str(bad) in caplog.text
    assert store.load(start=days[5]).attrs["problems"] == []  # a range without it reads clean

    r = cli("show", "--store", str(store.path), "--metric", "MEAN", "--format", "json")
    assert r.returncode == 3 and str(bad) in r.stderr
    assert sorted({c["day_obs"] for c in json.loads(r.stdout)}) == [d for d in days if d != days[3]]
    r = cli("check", "--store", str(store.path), "--format", "json")
    assert r.returncode == 3 and str(bad) in r.stderr  # partial, not the 1 of "alerts"
    alerts = json.loads(r.stdout)
    assert [(a["detector"], a["amp"], a["metric"], a["kind"], a["day_obs"]) for a in alerts] == \
        [(2, "C03", "MEAN", "jump", days[8])]  # the other nights were still checked


def test_night_files_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        store = HistoryStore(tmp_path / "a")
        store.add(tidy(0, [20250601]))
        assert store.file("bias", 20250601).stat().st_mode & 0o777 == 0o644
        os.umask(0o027)
        store = HistoryStore(tmp_path / "b")
        store.add(tidy(0, [20250601]))
        assert store.file("bias", 20250601).stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_report_over_a_corrupt_night_is_partial(tmp_path):
    """``cpmosaic report --history``: the skipped night is a problem of the report (exit 3)."""
    from cpmosaic.report import build_report

    store = HistoryStore(tmp_path / "store")
    days = nights(20250601, 6)
    df = tidy(7, days)
    store.add(df)
    bad = _damage(store, days[2], "truncated")
    last = df[df["day_obs"] == days[-1]].reset_index(drop=True)
    res = build_report(last, tmp_path / "out", history=store, metrics=["MEAN"], interactive=False,
                       history_window=5, progress=False)
    assert res.partial and [p["source"] for p in res.problems] == [str(bad)]
    assert "cannot read" in res.problems[0]["problem"]
