"""Outlier findings on a synthetic night with LSSTCam's two vendor populations.

The table is built here from the camera's real per-amp nominal read noise (E2V and ITL
differ), with anomalies injected by hand; the expected findings follow from the injection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpmosaic.camera import get_camera
from cpmosaic.metrics import COLUMNS, find_outliers
from cpmosaic.metrics.outliers import (
    FINDING_COLUMNS,
    OUTLIER_COLUMNS,
    focal_plane_z,
    outlier_rows,
)

CAM = get_camera("LSSTCam")
SCIENCE = [d for d in CAM if d.type == "science"]


def _ordinary_rn(det, amp: str) -> bool:
    """An amp whose nominal read noise is typical of its vendor (injections go there)."""
    rn = np.array([a.read_noise for d in SCIENCE if d.physical_type == det.physical_type for a in d.amplifiers])
    own = det.amplifiers[det.amp_names.index(amp)].read_noise
    return abs(own - np.median(rn)) < 0.3


def _night(rng, *, exposures=(1, 2), hot=None, noisy=None, dead=None, dets=None) -> pd.DataFrame:
    """bias MEAN / NOISE / CR_NOISE per amp: noise = nominal read noise x U(0.97, 1.03)."""
    rows = []
    for e in exposures:
        for det in (dets or CAM):
            for amp in det.amplifiers:
                rn = amp.read_noise if amp.read_noise > 0 else 6.0
                noise = rn * rng.uniform(0.97, 1.03)
                mean = rng.normal(0.0, 0.05)
                if (det.id, amp.name) == hot:
                    mean += 50.0
                if (det.id, amp.name) == noisy:
                    noise *= 3.0
                vals = {"MEAN": mean, "NOISE": noise, "CR_NOISE": noise * rng.uniform(1.0, 1.02)}
                if det.id == dead:
                    vals = {k: 0.0 for k in vals}
                for metric, v in vals.items():
                    rows.append(("LSSTCam", "bias", "run1", 2025060100000 + e, 20250601, np.nan, det.id, det.name,
                                 amp.name, "amp", metric, v, pd.NA))
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["exposure"] = df["exposure"].astype("Int64")
    df["day_obs"] = df["day_obs"].astype("Int64")
    df["passed"] = df["passed"].astype("boolean")
    return df


@pytest.fixture(scope="module")
def anomalies():
    rng = np.random.default_rng(5)
    e2v = [d for d in SCIENCE if d.physical_type == "E2V"]
    itl = [d for d in SCIENCE if d.physical_type == "ITL"]
    hot_det = next(d for d in e2v[5:] if _ordinary_rn(d, "C03"))
    noisy_det = next(d for d in itl[3:] if _ordinary_rn(d, "C12"))
    return {"hot": (hot_det.id, "C03"), "noisy": (noisy_det.id, "C12"), "dead": itl[10].id, "rng": rng}


@pytest.fixture(scope="module")
def night(anomalies):
    return _night(anomalies["rng"], hot=anomalies["hot"], noisy=anomalies["noisy"], dead=anomalies["dead"])


def test_population_z_is_per_sensor_type(night):
    """The z of each value is computed against its sensor type only (a plain numpy reference)."""
    scored = focal_plane_z(night)
    types = {d.id: d.physical_type for d in CAM}
    assert set(scored["sensor_type"]) == {"E2V", "ITL", "ITL_G", "ITL_WF"}
    for (exp, metric, st), g in scored.groupby(["exposure", "metric", "sensor_type"]):
        assert {types[d] for d in g["detector"]} == {st}
        x = g["value"].to_numpy()
        med = np.median(x)
        ref = (x - med) / (1.482602218505602 * np.median(np.abs(x - med)))
        np.testing.assert_allclose(g["z"].to_numpy(), ref, rtol=1e-12, atol=1e-9)


def test_injected_anomalies_lead_and_the_table_is_short(night, anomalies):
    out = find_outliers(night, z=5)
    assert list(out.columns) == list(FINDING_COLUMNS)
    assert len(out) <= 50
    assert out["rank"].tolist() == list(range(1, len(out) + 1))
    top = out.head(10)
    names = {d.id: d.name for d in CAM}
    dead = top[top["detector"] == anomalies["dead"]]
    assert len(dead) == 1 and dead.iloc[0]["finding"] == "dead or off detector"
    assert dead.iloc[0]["amp"] == "" and dead.iloc[0]["n_amps"] == 16
    # one entry for 16 amps x 2 exposures x (NOISE, CR_NOISE); a MEAN of 0 is ordinary for a bias
    assert dead.iloc[0]["n_values"] == 16 * 2 * 2
    assert set(dead.iloc[0]["metrics"].split(", ")) == {"bias NOISE", "bias CR_NOISE"}
    assert out["detector"].eq(anomalies["dead"]).sum() == 1
    d, a = anomalies["hot"]
    hot = top[(top["detector"] == d) & (top["amp"] == a)]
    assert len(hot) == 1 and hot.iloc[0]["finding"] == "hot amp" and hot.iloc[0]["metric"] == "MEAN"
    assert hot.iloc[0]["detector_name"] == names[d] and hot.iloc[0]["z"] > 100
    d, a = anomalies["noisy"]
    noisy = top[(top["detector"] == d) & (top["amp"] == a)]
    assert len(noisy) == 1 and noisy.iloc[0]["finding"] == "noisy amp"
    assert set(noisy.iloc[0]["metrics"].split(", ")) == {"bias NOISE", "bias CR_NOISE"}
    assert noisy.iloc[0]["sensor_type"] == "ITL"
    # severity: the largest |z| of the finding's values, ranked
    rows = outlier_rows(night, z=5)
    worst = rows[(rows.detector == d) & (rows.amp == a)]["z"].abs().max()
    assert noisy.iloc[0]["severity"] == pytest.approx(worst)
    assert (out["severity"].iloc[:3].diff().dropna() <= 0).all()


def test_known_noisy_amps_are_one_finding_after_the_new_ones(night, anomalies):
    """Amps the camera itself lists with a read noise far above their vendor's: one finding,
    ranked after the unexpected ones (cp_verify's NOISE test expects their noise)."""
    out = find_outliers(night, z=5)
    known = out[out["finding"] == "known noisy amps"]
    assert len(known) >= 1 and known["sensor_type"].is_unique
    first_known = known["rank"].min()
    assert (out[out["finding"] != "known noisy amps"]["rank"] < first_known).all()
    # the worst known amp of the real camera, R43_S20 C14 (nominal 61.8 e-), is listed there
    assert any("R43_S20 C14" in m for m in known["members"])
    noisy = out[(out["detector"] == anomalies["noisy"][0]) & (out["amp"] == anomalies["noisy"][1])]
    assert noisy.iloc[0]["rank"] < first_known


def test_constant_population_does_not_flag_the_other(rng):
    """A metric constant over E2V (MAD 0) and spread over ITL: nothing is flagged per sensor
    type; one focal-plane population (the E2V majority, MAD 0) would flag every ITL amp."""
    dets = [d for d in SCIENCE if d.physical_type == "E2V"] + [d for d in SCIENCE if d.physical_type == "ITL"][:10]
    df = _night(rng, exposures=(1,), dets=dets)
    df = df[df["metric"] == "MEAN"].copy()
    is_itl = df["detector"].map({d.id: d.physical_type for d in dets}).eq("ITL").to_numpy()
    df.loc[~is_itl, "value"] = 0.0
    df.loc[is_itl, "value"] = rng.normal(3.0, 0.1, is_itl.sum())
    assert find_outliers(df, z=5).empty
    assert outlier_rows(df, z=5).empty
    whole = outlier_rows(df, z=5, by_sensor_type=False)
    assert len(whole) == is_itl.sum() and set(whole["sensor_type"]) == {""}


def test_alerts_become_findings(night):
    alerts = pd.DataFrame([{"calib_type": "bias", "detector": 30, "detector_name": "R10_S10", "amp": "C06",
                            "metric": "MEAN", "day_obs": 20250601, "kind": "jump", "size": 2.0, "significance": 12.0,
                            "before": 0.0, "after": 2.0, "window_start": 20250520, "run": "run1",
                            "run_change": False}])
    out = find_outliers(night, z=5, alerts=alerts)
    jump = out[(out["detector"] == 30) & (out["amp"] == "C06")]
    assert len(jump) == 1 and jump.iloc[0]["finding"] == "jump" and "jump" in jump.iloc[0]["kind"]
    assert jump.iloc[0]["severity"] >= 12.0


def test_json_keys_kept(night):
    import json

    from cpmosaic.metrics import to_json

    recs = json.loads(to_json(find_outliers(night, z=5)))
    assert set(OUTLIER_COLUMNS) | {"finding", "severity", "n_amps", "metrics", "rank"} <= set(recs[0])


def test_drift_and_jump_alerts_join_the_top_findings():
    """Ten nights, a bias MEAN jump on one amp and a drift on another: detect_changes finds
    them and find_outliers ranks them among the top ten beside a hot amp."""
    from cpmosaic.metrics.drift import detect_changes

    rng = np.random.default_rng(9)
    dets = [d for d in SCIENCE if d.physical_type == "E2V"][:20] + [d for d in SCIENCE if d.physical_type == "ITL"][:20]
    jump, drift, hot = (dets[3].id, "C04"), (dets[25].id, "C11"), (dets[30].id, "C02")
    nights = []
    for i in range(10):
        n = _night(rng, exposures=(1,), dets=dets, hot=hot)
        n["day_obs"] = pd.array([20250601 + i] * len(n), dtype="Int64")
        n["exposure"] = pd.array([(20250601 + i) * 100000 + 1] * len(n), dtype="Int64")
        mean = n["metric"] == "MEAN"
        n.loc[mean & (n["detector"] == jump[0]) & (n["amp"] == jump[1]) & (i >= 5), "value"] += 2.0
        n.loc[mean & (n["detector"] == drift[0]) & (n["amp"] == drift[1]), "value"] += 1.0 * i / 9
        nights.append(n)
    df = pd.concat(nights, ignore_index=True)
    alerts = detect_changes(df, window=10)
    assert {(a.kind, a.detector, a.amp) for a in alerts.itertuples()} >= {("jump", *jump), ("drift", *drift)}
    out = find_outliers(df, z=5, alerts=alerts)
    top = out.head(10)
    for kind, (d, a) in (("jump", jump), ("drift", drift), ("hot amp", hot)):
        hit = top[(top["detector"] == d) & (top["amp"] == a)]
        assert len(hit) == 1 and hit.iloc[0]["finding"] == kind, (kind, out.head(12).to_string())
    assert len(out) <= 50
