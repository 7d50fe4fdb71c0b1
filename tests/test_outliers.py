"""Robust outliers: z-scores checked against a plain numpy computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cpmosaic.camera import get_camera
from cpmosaic.metrics import build_table, find_outliers, robust_z, to_csv, to_json
from cpmosaic.metrics.outliers import focal_plane_z, history_z, outlier_rows

CAM = get_camera("LSSTCam")


def _table(rng, n_days=6, dets=range(0, 40), hot=(94, "C05", 3, 40.0)):
    """A tidy table of bias NOISE for some detectors over several days; one amp jumps on one day."""
    dets = list(dets) + [94]
    chunks = []
    for day in range(n_days):
        exposure = (20250601 + day) * 100000 + 12
        rows = {k: [] for k in ("exposure", "detector", "detector_name", "amp", "tier", "metric", "value",
                                "passed", "mjd")}
        for d in dets:
            for a in CAM[d].amp_names:
                v = rng.normal(6.0, 0.1)
                if (d, a, day) == hot[:3]:
                    v += hot[3] * 0.1
                for k, x in (("exposure", exposure), ("detector", d), ("detector_name", None), ("amp", a),
                             ("tier", "amp"), ("metric", "NOISE"), ("value", v), ("passed", np.nan),
                             ("mjd", np.nan)):
                    rows[k].append(x)
        chunk = {k: np.array(v, dtype=object if k in ("detector_name", "amp", "tier", "metric") else None)
                 for k, v in rows.items()}
        chunk["exposure"] = chunk["exposure"].astype(np.int64)
        chunk["detector"] = chunk["detector"].astype(np.int64)
        chunks.append((chunk, {"source": f"day{day}", "calib_type": "bias", "run": f"run{day}",
                               "instrument": "LSSTCam", "priority": 0, "day_obs": None}))
    return build_table(chunks, CAM)


def _numpy_z(x):
    med = np.median(x)
    return (x - med) / (1.482602218505602 * np.median(np.abs(x - med)))  # 1 / Phi^-1(3/4)


def test_robust_z_matches_numpy(rng):
    x = rng.normal(10, 2, 501)
    x[7] = 100.0
    np.testing.assert_allclose(robust_z(x), _numpy_z(x), rtol=0, atol=1e-12)
    assert np.isnan(robust_z([np.nan, np.nan])).all()
    y = np.r_[np.full(10, 3.0), 4.0]  # MAD 0: finite, large score for the odd one, 0 for the rest
    z = robust_z(y)
    assert np.all(z[:10] == 0) and np.isfinite(z[10]) and z[10] > 5


def test_focal_plane_z_per_group(rng):
    df = _table(rng)
    scored = focal_plane_z(df)
    for _, g in scored.groupby(["exposure", "sensor_type"]):  # populations: one per sensor type
        np.testing.assert_allclose(g.z.to_numpy(), _numpy_z(g.value.to_numpy()), rtol=0, atol=1e-9)
    whole = focal_plane_z(df, by_sensor_type=False)
    for _, g in whole.groupby("exposure"):
        np.testing.assert_allclose(g.z.to_numpy(), _numpy_z(g.value.to_numpy()), rtol=0, atol=1e-9)
    out = outlier_rows(df, z=5, history=False)
    top = out.iloc[0]
    assert (top.detector, top.detector_name, top.amp, top.metric, top.kind) == (94, "R22_S11", "C05", "NOISE",
                                                                                "focal_plane")
    assert top.z > 20 and "focal_plane" in top.reason
    assert list(out.columns[:7]) == ["detector", "detector_name", "amp", "metric", "value", "z", "reason"]
    assert (out.z.abs().diff().dropna() <= 0).all()  # sorted by decreasing |z|


def test_history_z(rng):
    df = _table(rng)
    h = history_z(df, sigma_floor=0)
    for _, series in h.groupby(["detector", "amp"]):
        np.testing.assert_allclose(series.z.to_numpy(), _numpy_z(series.value.to_numpy()), rtol=0, atol=1e-9)
    # with the floor, a series' sigma is at least the median series sigma
    hf = history_z(df)
    assert (hf.sigma >= h.groupby(["detector", "amp"]).sigma.first().median() - 1e-12).all()
    out = outlier_rows(df, z=8, focal_plane=False)  # 20k Gaussian values: 5 sigma happens
    assert set(zip(out.detector_name, out.amp, out.exposure)) == {("R22_S11", "C05", 2025060400012)}
    assert (out.kind == "history").all()
    assert outlier_rows(df, z=5, focal_plane=False, min_history=10).empty  # 6 days are too few
    found = find_outliers(df, z=8, focal_plane=False)  # the same, as one finding
    assert found[["detector_name", "amp", "finding", "kind"]].values.tolist() == [
        ["R22_S11", "C05", "history change", "history"]]


def test_exports(rng, tmp_path):
    out = find_outliers(_table(rng), z=4)
    to_csv(out, tmp_path / "o.csv")
    back = pd.read_csv(tmp_path / "o.csv")
    assert len(back) == len(out) and back.z.tolist() == pytest.approx(out.z.tolist())
    recs = json.loads(to_json(out, tmp_path / "o.json"))
    assert recs == json.loads((tmp_path / "o.json").read_text())
    assert recs[0]["detector_name"] == "R22_S11" and isinstance(recs[0]["detector"], int)
    assert {"detector", "detector_name", "amp", "metric", "value", "z", "reason"} <= set(recs[0])
