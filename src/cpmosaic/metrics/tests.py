"""DMTN-101 verification tests, re-evaluated from the tidy metrics table.

Each test is computed for every (calib_type, run, exposure, detector, amp) that
carries the statistics it needs, as cp_verify computes it:

========= ====== ================================ ======================================
type      tier   test                             passes when
========= ====== ================================ ======================================
bias/dark amp    MEAN                             abs(MEAN) < NOISE
bias/dark amp    NOISE                            (NOISE - rn) / rn <= 0.05
bias/dark amp    CR_NOISE                         abs(NOISE - CR_NOISE) / CR_NOISE <= 0.05
bias/dark amp    READ_NOISE_CONSISTENT            (gain x READ_NOISE_ADU - rn) / rn <= 0.05
flat      amp    NOISE                            NOISE <= sqrt(MEAN)
flat      det    SCATTER                          SCATTER / MEAN <= 0.05
flat      exp    SCATTER                          std / mean of the detector means <= 0.05 (*)
defects   amp    OUTLIERS, STDEV, MIN, MAX        masked stats within the unmasked ones
ptc       amp    PTC_GAIN, PTC_NOISE              within 5 % of AMP_GAIN / AMP_NOISE
ptc       amp    PTC_TURNOFF                      PTC_TURNOFF * PTC_GAIN > 90000 e-
ptc       amp    PTC_BFE_A00                      inside the vendor's a00 range
gain      amp    GAIN_FROM_FLAT_PAIR, ISR_NOISE   within 5 % of AMP_GAIN / AMP_NOISE
========= ====== ================================ ======================================

**Read noise rn and gain** (bias/dark NOISE and READ_NOISE_CONSISTENT): cp_verify's
``verifyBias``/``verifyDark`` use the PTC's read noise and gain
(``getExposureReadNoises`` / ``getExposureGains``), which its outputs do not carry.
With ``Thresholds.read_noise == "auto"`` (default) rn and gain are the PTC's where
the table holds a PTC verification (:mod:`cpmosaic.metrics.ptc`) or one is passed,
else the camera's nominal values; ``"camera"`` always takes the nominal ones.  Where
neither has a value, rn is the measured one below.  With ``"table"`` rn is what the
data carry: a ``READ_NOISE`` metric of the amp (electrons), else ``READ_NOISE_ADU`` x
gain, else the reference one.  The ``reference`` column says which was used
(``ptc``, ``nominal``, ``measured``).

(*) **Flat EXP SCATTER is degenerate in cp_verify**: it is the *absolute* standard
deviation of the detector means (in their units, thousands of e- for a flat) tested
against 0.05, so real flats always fail it.  ``passed`` here is the meaningful test,
the relative scatter of the same detector means (std / mean <= 0.05);
``cp_verify_passed`` keeps cp_verify's flag and ``note`` shows both.

**Disagreements** with cp_verify's flag carry a reason in ``disagreement``: ``nominal
read noise`` (no PTC: cp_verify used the PTC's), ``threshold changed``, ``value
missing`` (a statistic the test needs is absent or NaN: not measured, never a pass),
``relative scatter`` (the degenerate test above), ``not re-evaluated``, else
``unexplained``.

A test whose inputs are present but whose comparison is undefined (0/0, sqrt of
a negative mean) fails, as the comparison with NaN does in cp_verify.

>>> results = evaluate(df)                                   # doctest: +SKIP
>>> results[~results.passed.astype(bool)][["detector_name", "amp", "test", "value", "threshold"]]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .disagreement import disagreement

if TYPE_CHECKING:
    from ..camera import Camera

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_THRESHOLDS", "RESULT_COLUMNS", "Thresholds", "evaluate", "summary"]

RESULT_COLUMNS = ("calib_type", "run", "exposure", "day_obs", "detector", "detector_name", "amp", "tier",
                  "test", "value", "threshold", "passed", "cp_verify_passed", "reference", "disagreement", "note")
_IDX = ["calib_type", "run", "exposure", "day_obs", "detector", "detector_name", "amp", "tier"]


@dataclass(frozen=True)
class Thresholds:
    """DMTN-101 / cp_verify thresholds (defaults are cp_verify's configuration defaults)."""

    noise_tolerance: float = 0.05              #: bias/dark NOISE: (NOISE - rn)/rn <=
    cr_noise_tolerance: float = 0.05           #: bias/dark CR_NOISE relative difference <=
    read_noise_consistent_tolerance: float = 0.05
    read_noise: str = "auto"                   #: "auto", "camera" or "table" (see module docstring)
    flat_det_scatter: float = 0.05             #: flat DET SCATTER/MEAN <=
    flat_exp_scatter: float = 0.05             #: flat EXP SCATTER <=
    ptc_gain_percent: float = 5.0              #: |PTC_GAIN - AMP_GAIN|/AMP_GAIN * 100 <
    ptc_noise_percent: float = 5.0
    ptc_turnoff_electrons: float = 90000.0     #: PTC_TURNOFF * PTC_GAIN >
    a00_itl: tuple[float, float] = (-4.56e-6, 6.91e-7)   #: (min, max) exclusive
    a00_e2v: tuple[float, float] = (-3.52e-6, -2.61e-6)
    gain_percent: float = 5.0                  #: gain from flat pairs vs nominal, percent <
    gain_noise_percent: float = 5.0            #: ISR_NOISE vs nominal, percent <


DEFAULT_THRESHOLDS = Thresholds()


def _wide(df: pd.DataFrame, calib_types: tuple[str, ...], tier: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Values and cp_verify flags as (row key) x metric frames."""
    sub = df[df["calib_type"].isin(calib_types) & (df["tier"] == tier)]
    if sub.empty:
        return pd.DataFrame(), pd.DataFrame()
    sub = sub.assign(exposure=sub["exposure"].fillna(-1), day_obs=sub["day_obs"].fillna(-1))
    keyed = sub.set_index(_IDX + ["metric"])
    values = keyed["value"].unstack("metric")
    flags = keyed["passed"].astype("float64").unstack("metric")
    return values, flags


def _col(w: pd.DataFrame, name: str) -> np.ndarray:
    return w[name].to_numpy(dtype=float) if name in w.columns else np.full(len(w), np.nan)


def _camera_lookup(keys: pd.MultiIndex, df: pd.DataFrame, camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nominal gain, read noise and vendor for each (detector, amp) of *keys*."""
    from ..camera import get_camera

    n = len(keys)
    gain, rn = np.full(n, np.nan), np.full(n, np.nan)
    vendor = np.full(n, "", dtype=object)
    if n == 0:
        return gain, rn, vendor
    if camera is None:
        inst = df["instrument"].iloc[0] if len(df) else "LSSTCam"
        try:
            camera = get_camera(inst)
        except Exception:  # an instrument cpmosaic has no camera for: no nominal values
            log.warning("no camera for instrument %r: nominal gain/read noise unavailable", inst)
            return gain, rn, vendor
    else:
        camera = get_camera(camera)
    dets = keys.get_level_values("detector").to_numpy()
    amps = keys.get_level_values("amp").to_numpy()
    cache: dict[tuple[int, str], tuple[float, float, str]] = {}
    for i, (d, a) in enumerate(zip(dets.tolist(), amps.tolist())):
        hit = cache.get((d, a))
        if hit is None:
            det = camera.get(int(d))
            amp = det.amplifiers[det.amp_names.index(a)] if det is not None and a in det.amp_names else None
            phys = (det.physical_type.split("_")[0] if det is not None else "")
            hit = (amp.gain, amp.read_noise, phys) if amp is not None else (np.nan, np.nan, phys)
            cache[(d, a)] = hit
        gain[i], rn[i], vendor[i] = hit
    return gain, rn, vendor


def _have(*arrays) -> np.ndarray:
    """Rows where every input statistic is present."""
    out = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        out &= ~np.isnan(np.asarray(a, dtype=float))
    return out


def _result(w: pd.DataFrame, test: str, value, threshold, passed, flags: pd.DataFrame, flag_names,
            present: np.ndarray | None = None, reference=None, note=None) -> pd.DataFrame:
    value = np.asarray(value, dtype=float)
    threshold = np.broadcast_to(np.asarray(threshold, dtype=float), value.shape)
    ok = _have(value, threshold) if present is None else np.asarray(present, dtype=bool)
    cpv = np.full(len(w), np.nan)
    for name in flag_names:  # the first flag column present wins
        if name in flags.columns:
            f = flags[name].reindex(w.index).to_numpy(dtype=float)
            cpv = np.where(np.isnan(cpv), f, cpv)
    out = w.index.to_frame(index=False)[_IDX]
    out["test"] = test
    out["value"] = value
    out["threshold"] = threshold
    out["passed"] = pd.arrays.BooleanArray(np.asarray(passed, dtype=bool) & ok, ~ok)
    out["cp_verify_passed"] = pd.arrays.BooleanArray(cpv == 1.0, np.isnan(cpv))
    out["reference"] = "" if reference is None else np.broadcast_to(np.asarray(reference, dtype=object), value.shape)
    out["note"] = "" if note is None else np.broadcast_to(np.asarray(note, dtype=object), value.shape)
    # inputs present but the comparison undefined (0/0: a dead amp): say why it fails
    undefined = ok & np.isnan(value)
    if undefined.any():
        out["note"] = np.where(undefined & (out["note"].to_numpy(dtype=object) == ""),
                               "undefined (0/0 or NaN): fails, as cp_verify's comparison with NaN does",
                               out["note"].to_numpy(dtype=object))
    return out[ok]


def _ptc_lookup(keys: pd.MultiIndex, ptc: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """PTC gain and read noise for each (detector, amp) of *keys* (NaN where the PTC has none)."""
    n = len(keys)
    if ptc is None or not len(ptc) or n == 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    ref = ptc.set_index(["detector", "amp"])
    idx = pd.MultiIndex.from_arrays([keys.get_level_values("detector").astype("int64"),
                                     keys.get_level_values("amp").astype(str)])
    ref = ref[~ref.index.duplicated()].reindex(idx)
    return ref["gain"].to_numpy(dtype=float), ref["read_noise"].to_numpy(dtype=float)


def _bias_dark(w, f, df, th: Thresholds, camera, ptc=None) -> list[pd.DataFrame]:
    mean, noise, cr = _col(w, "MEAN"), _col(w, "NOISE"), _col(w, "CR_NOISE")
    nom_gain, nom_rn, _ = _camera_lookup(w.index, df, camera)
    nom_rn = np.where(nom_rn > 0, nom_rn, np.nan)
    nom_gain = np.where(nom_gain > 0, nom_gain, np.nan)
    if th.read_noise not in ("auto", "camera", "table"):
        raise ValueError(f"Thresholds.read_noise must be 'auto', 'camera' or 'table', not {th.read_noise!r}")
    ptc_gain, ptc_rn = _ptc_lookup(w.index, ptc if th.read_noise != "camera" else None)
    # The reference read noise and gain: the PTC's (what cp_verify used), else nominal.
    use_ptc = ~np.isnan(ptc_rn)
    ref_rn = np.where(use_ptc, ptc_rn, nom_rn)
    gain = np.where(~np.isnan(ptc_gain), ptc_gain, _col(w, "GAIN"))
    gain = np.where(np.isnan(gain), nom_gain, gain)
    measured = _col(w, "READ_NOISE_ADU") * gain
    table_rn = _col(w, "READ_NOISE")
    table_rn = np.where(np.isnan(table_rn), measured, table_rn)
    if th.read_noise == "table":
        rn = np.where(np.isnan(table_rn), ref_rn, table_rn)
        ref = np.where(~np.isnan(table_rn), "measured", np.where(use_ptc, "ptc", "nominal"))
    else:
        rn = np.where(np.isnan(ref_rn), table_rn, ref_rn)
        ref = np.where(use_ptc, "ptc", np.where(np.isnan(ref_rn), "measured", "nominal"))
    with np.errstate(invalid="ignore", divide="ignore"):
        noise_rel = (noise - rn) / rn
        cr_rel = np.abs(noise - cr) / cr
        rn_rel = (measured - ref_rn) / ref_rn
    rn_note = np.array([f"read noise {r:.4g} e- ({k})" if np.isfinite(r) else "" for r, k in zip(rn, ref)],
                       dtype=object)
    rnc_ref = np.where(use_ptc, "ptc", "nominal")
    rnc_note = np.array([f"overscan {m:.4g} e- (gain {g:.4g}) against read noise {r:.4g} e- ({k})"
                         if np.isfinite(m) and np.isfinite(r) else "" for m, g, r, k in
                         zip(measured, gain, ref_rn, rnc_ref)], dtype=object)
    return [
        _result(w, "MEAN", np.abs(mean), noise, np.abs(mean) < noise, f, ["MEAN"], _have(mean, noise)),
        _result(w, "NOISE", noise_rel, th.noise_tolerance, noise_rel <= th.noise_tolerance, f, ["NOISE"],
                _have(noise, rn), reference=ref, note=rn_note),
        _result(w, "CR_NOISE", cr_rel, th.cr_noise_tolerance, cr_rel <= th.cr_noise_tolerance, f, ["CR_NOISE"],
                _have(noise, cr)),
        # A zero overscan read noise (an unpowered amp) is not measured: cp_verify writes no
        # flag there (verifyBias/verifyDark test only a truthy overscan read noise).
        _result(w, "READ_NOISE_CONSISTENT", rn_rel, th.read_noise_consistent_tolerance,
                rn_rel <= th.read_noise_consistent_tolerance, f,
                ["READ_NOISE_CONSISTENT", "READ_NOISE_ADU"], _have(measured, ref_rn) & (measured != 0),
                reference=rnc_ref, note=rnc_note),
    ]


def _flat_amp(w, f, df, th, camera) -> list[pd.DataFrame]:
    noise, mean = _col(w, "NOISE"), _col(w, "MEAN")
    with np.errstate(invalid="ignore"):
        limit = np.sqrt(mean)
    return [_result(w, "NOISE", noise, limit, noise <= limit, f, ["NOISE"], _have(noise, mean))]


def _flat_det(w, f, df, th, camera) -> list[pd.DataFrame]:
    scatter, mean = _col(w, "SCATTER"), _col(w, "MEAN")
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = scatter / mean
    return [_result(w, "SCATTER", rel, th.flat_det_scatter, rel <= th.flat_det_scatter, f, ["SCATTER"],
                    _have(scatter, mean))]


def _detector_means(df: pd.DataFrame) -> dict[tuple, np.ndarray]:
    """(run, exposure) -> the flat's detector means (detector-tier MEAN, else the mean of its amps)."""
    flat = df[(df["calib_type"] == "flat") & (df["metric"] == "MEAN") & (df["detector"] >= 0)]
    if not len(flat):
        return {}
    flat = flat.assign(exposure=flat["exposure"].astype("float64").fillna(-1))
    det = flat[flat["tier"] == "detector"].groupby(["run", "exposure", "detector"])["value"].median()
    amp = flat[flat["tier"] == "amp"].groupby(["run", "exposure", "detector"])["value"].mean()
    means = det.combine_first(amp)
    return {k: g.to_numpy(dtype=float) for k, g in means.groupby(level=[0, 1])}


def _flat_exp(w, f, df, th, camera) -> list[pd.DataFrame]:
    """cp_verify's absolute EXP SCATTER (kept as its flag) beside the relative scatter (our verdict)."""
    s_abs = _col(w, "SCATTER")
    means = _detector_means(df)
    runs = w.index.get_level_values("run")
    exps = w.index.get_level_values("exposure").astype(float)
    rel, notes = np.full(len(w), np.nan), []
    for i, (run, exp) in enumerate(zip(runs, exps)):
        m = means.get((run, exp))
        m = m[np.isfinite(m)] if m is not None else np.empty(0)
        if len(m) >= 2 and np.mean(m) != 0:
            rel[i] = float(np.std(m) / np.mean(m))
        notes.append(f"cp_verify tests the absolute scatter {s_abs[i]:.4g} (std of the detector means, in their "
                     f"units: degenerate for real flats of thousands of e-) against {th.flat_exp_scatter:g}; "
                     f"here the relative scatter, std/mean of {len(m)} detector means, is {rel[i]:.4g}")
    return [_result(w, "SCATTER", rel, th.flat_exp_scatter, rel <= th.flat_exp_scatter, f, ["SCATTER"],
                    present=_have(s_abs) | _have(rel), reference="relative scatter", note=np.array(notes, object))]


def _defects(w, f, df, th, camera) -> list[pd.DataFrame]:
    out = []
    for test, masked, unmasked, le in (("OUTLIERS", "OUTLIERS", "UNMASKED_OUTLIERS", True),
                                       ("STDEV", "STDEV", "UNMASKED_STDEV", True),
                                       ("MIN", "MIN", "UNMASKED_MIN", False),
                                       ("MAX", "MAX", "UNMASKED_MAX", True)):
        v, t = _col(w, masked), _col(w, unmasked)
        out.append(_result(w, test, v, t, (v <= t) if le else (v >= t), f, [test]))
    return out


def _amp_gain_noise(w, df, camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each amp's reference gain and read noise (AMP_GAIN, AMP_NOISE, else the camera's
    nominal values) and its vendor."""
    nom_gain, nom_rn, vendor = _camera_lookup(w.index, df, camera)
    amp_gain, amp_noise = _col(w, "AMP_GAIN"), _col(w, "AMP_NOISE")
    return (np.where(np.isnan(amp_gain), nom_gain, amp_gain), np.where(np.isnan(amp_noise), nom_rn, amp_noise),
            vendor)


def _percent_off(v, ref):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(v - ref) / ref * 100.0


def _ptc(w, f, df, th: Thresholds, camera) -> list[pd.DataFrame]:
    amp_gain, amp_noise, vendor = _amp_gain_noise(w, df, camera)
    gain, noise = _col(w, "PTC_GAIN"), _col(w, "PTC_NOISE")
    dg, dn = _percent_off(gain, amp_gain), _percent_off(noise, amp_noise)
    turnoff = _col(w, "PTC_TURNOFF") * gain
    a00 = _col(w, "PTC_BFE_A00")
    lo = np.where(vendor == "E2V", th.a00_e2v[0], np.where(vendor == "ITL", th.a00_itl[0], np.nan))
    hi = np.where(vendor == "E2V", th.a00_e2v[1], np.where(vendor == "ITL", th.a00_itl[1], np.nan))
    nearer = np.where(np.abs(a00 - lo) < np.abs(a00 - hi), lo, hi)
    return [
        _result(w, "PTC_GAIN", dg, th.ptc_gain_percent, dg < th.ptc_gain_percent, f, ["PTC_GAIN"]),
        _result(w, "PTC_NOISE", dn, th.ptc_noise_percent, dn < th.ptc_noise_percent, f, ["PTC_NOISE"]),
        _result(w, "PTC_TURNOFF", turnoff, th.ptc_turnoff_electrons, turnoff > th.ptc_turnoff_electrons, f,
                ["PTC_TURNOFF"]),
        _result(w, "PTC_BFE_A00", a00, nearer, (a00 > lo) & (a00 < hi), f, ["PTC_BFE_A00"]),
    ]


def _gain(w, f, df, th: Thresholds, camera) -> list[pd.DataFrame]:
    amp_gain, amp_noise, _ = _amp_gain_noise(w, df, camera)
    corr = _col(w, "GAIN_CORRECTION_FACTOR")
    gain = _col(w, "GAIN_FROM_FLAT_PAIR") * np.where(np.isnan(corr), 1.0, corr)
    dg, dn = _percent_off(gain, amp_gain), _percent_off(_col(w, "ISR_NOISE"), amp_noise)
    return [
        _result(w, "GAIN_FROM_FLAT_PAIR", dg, th.gain_percent, dg < th.gain_percent, f, ["GAIN_FROM_FLAT_PAIR"]),
        _result(w, "ISR_NOISE", dn, th.gain_noise_percent, dn < th.gain_noise_percent, f, ["ISR_NOISE"]),
    ]


_SPECS = (
    (("bias", "dark"), "amp", _bias_dark),
    (("flat",), "amp", _flat_amp),
    (("flat",), "detector", _flat_det),
    (("flat",), "exposure", _flat_exp),
    (("defects",), "amp", _defects),
    (("ptc",), "amp", _ptc),
    (("gain",), "amp", _gain),
)


def evaluate(df: pd.DataFrame, thresholds: Thresholds | None = None, *, camera: Camera | str | None = None,
             failures_only: bool = False, ptc: pd.DataFrame | None = None) -> pd.DataFrame:
    """Re-evaluate the DMTN-101 tests on a tidy metrics table.

    Parameters
    ----------
    df
        The tidy table (``load_metrics``).
    thresholds
        Test thresholds; default :data:`DEFAULT_THRESHOLDS`.
    camera
        Camera for nominal gain / read noise / vendor (default: the table's instrument).
    failures_only
        Keep only rows that failed here or in cp_verify.
    ptc
        Per-amp PTC gain and read noise (``detector, amp, gain, read_noise``); default
        the table's own PTC verification (:func:`cpmosaic.metrics.ptc.ptc_reference`).

    Returns
    -------
    pandas.DataFrame
        One row per (calib_type, run, exposure, detector, amp, test) with columns
        ``RESULT_COLUMNS``: ``value`` is the tested quantity, ``threshold`` its
        limit, ``passed`` this evaluation, ``cp_verify_passed`` cp_verify's flag
        (``<NA>`` where none).  Tests cp_verify flagged but cpmosaic does not
        re-evaluate appear with ``passed`` ``<NA>``.  ``reference`` says which read
        noise a test used (``ptc``, ``nominal``, ``measured``), ``disagreement`` why
        the verdict differs from cp_verify's (empty where they agree), ``note``
        explains a value (the read noise used, the two flat EXP SCATTER figures).

    Examples
    --------
    >>> res = evaluate(load_metrics("cpv_out"))                 # doctest: +SKIP
    >>> (res.passed == res.cp_verify_passed).all()              # doctest: +SKIP
    True
    """
    from .ptc import ptc_reference

    th = thresholds or DEFAULT_THRESHOLDS
    if ptc is None:
        ptc = ptc_reference(df)
    parts: list[pd.DataFrame] = []
    for types, tier, fn in _SPECS:
        values, flags = _wide(df, types, tier)
        if values.empty:
            continue
        extra_args = (ptc,) if fn is _bias_dark else ()
        parts.extend(part for part in fn(values, flags, df, th, camera, *extra_args) if len(part))
    # cp_verify verdicts that no re-evaluated row covers (tests cpmosaic does not
    # implement, or verdict-only rows from exposure/run Stats without statistics).
    flagged = df[df["passed"].notna() & (df["metric"] != "SUCCESS")]
    if len(flagged):
        extra = flagged[_IDX].copy()
        extra["exposure"] = extra["exposure"].fillna(-1)
        extra["day_obs"] = extra["day_obs"].fillna(-1)
        extra["test"] = flagged["metric"].replace({"READ_NOISE_ADU": "READ_NOISE_CONSISTENT"}).to_numpy()
        extra["value"] = flagged["value"].to_numpy()
        extra["threshold"] = np.nan
        extra["passed"] = pd.array([pd.NA] * len(flagged), dtype="boolean")
        extra["cp_verify_passed"] = flagged["passed"].to_numpy()
        extra["reference"] = ""
        extra["note"] = ""
        if parts:
            keys = ["calib_type", "run", "exposure", "detector", "amp", "tier", "test"]
            done = pd.concat([p[keys] for p in parts], ignore_index=True)
            hit = extra[keys].merge(done.assign(_hit=True), on=keys, how="left")["_hit"].notna().to_numpy()
            extra = extra[~hit]
        if len(extra):
            parts.append(extra.reset_index(drop=True))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in RESULT_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    for c in ("exposure", "day_obs"):
        out[c] = out[c].astype("Int64").mask(out[c] < 0)
    out["detector"] = out["detector"].astype(np.int64)
    out["reference"] = out["reference"].fillna("").astype(object)
    out["note"] = out["note"].fillna("").astype(object)
    out["disagreement"] = disagreement(out, th, DEFAULT_THRESHOLDS)
    out = out.sort_values(["calib_type", "run", "exposure", "detector", "amp", "test"], kind="stable")
    if failures_only:
        out = out[out["passed"].eq(False).fillna(False) | out["cp_verify_passed"].eq(False).fillna(False)]
    return out.reset_index(drop=True)[list(RESULT_COLUMNS)]


def _dtype(col: str):
    return {"exposure": "Int64", "day_obs": "Int64", "detector": "int64", "value": "float64",
            "threshold": "float64", "passed": "boolean", "cp_verify_passed": "boolean"}.get(col, "str")


def _failure_label(row) -> str:
    # the exposure-wide test (flat EXP SCATTER) has no detector: say which SCATTER it is
    test = f"EXP {row.test}" if row.tier == "exposure" else row.test
    parts = [row.detector_name or "", row.amp or "", test]
    return " ".join(p for p in parts if p)


def summary(df: pd.DataFrame, results: pd.DataFrame | None = None, thresholds: Thresholds | None = None,
            *, camera: Camera | str | None = None) -> dict:
    """cp_verify's single pass/fail answer, overall and per exposure, beside the re-evaluation.

    cp_verify's answer for an exposure is its exposure-level ``SUCCESS`` verdict
    when the table has one, else the AND of its per-test flags.

    Returns
    -------
    dict
        ``cp_verify_success`` (bool or None where cp_verify gave no verdicts),
        ``success`` (this re-evaluation, cp_verify's flag where a test is not
        re-evaluated), ``n_tests``, ``n_failures``, ``n_passed``, ``n_not_measured``
        (no value: never counted as passing, even where cp_verify's flag says so),
        ``n_cp_verify_failures``,
        ``agreement`` (fraction of tests with both verdicts that agree, or None),
        ``disagreements`` (reason -> count), ``flat_exp_scatter`` (True when the flat
        EXP SCATTER was judged on the relative scatter) and ``exposures``: a list of per (calib_type, run, exposure) dicts with
        the same keys plus ``failures`` (``"R22_S11 C07 NOISE"`` labels).

    Examples
    --------
    >>> summary(df)["cp_verify_success"]                        # doctest: +SKIP
    False
    """
    res = results if results is not None else evaluate(df, thresholds, camera=camera)
    # Not measured (no value, no verdict of ours): never a pass, even where cp_verify
    # flagged it passing; cp_verify's failure still counts.
    missing = res["disagreement"].eq("value missing") if "disagreement" in res.columns else False
    unmeasured = (res["passed"].isna() & (res["value"].isna() | missing)).to_numpy(dtype=bool)
    own = res["passed"].fillna(res["cp_verify_passed"]).mask(unmeasured & res["cp_verify_passed"].eq(True)
                                                                .fillna(False).to_numpy(dtype=bool))
    both = res["passed"].notna() & res["cp_verify_passed"].notna()
    succ = df[(df["metric"] == "SUCCESS") & (df["detector"] == -1) & df["passed"].notna()]
    exp_verdict = {(r.calib_type, r.run, -1 if pd.isna(r.exposure) else int(r.exposure)): bool(r.passed)
                   for r in succ.itertuples()}
    per: list[dict] = []
    keys = res[["calib_type", "run", "exposure"]].assign(exposure=res["exposure"].fillna(-1))
    groups = {k: idx for k, idx in keys.groupby(["calib_type", "run", "exposure"], sort=True).groups.items()}
    for k in exp_verdict:
        groups.setdefault(k, pd.Index([]))
    for key in sorted(groups, key=lambda k: (k[0], k[1], int(k[2]))):
        idx = groups[key]
        sub, sub_own = res.loc[idx], own.loc[idx]
        cpv_flags = sub["cp_verify_passed"].dropna()
        cpv = exp_verdict.get(key, bool(cpv_flags.all()) if len(cpv_flags) else None)
        fails = sub[sub_own.eq(False).fillna(False)]
        per.append({
            "calib_type": key[0], "run": key[1], "exposure": None if int(key[2]) < 0 else int(key[2]),
            "cp_verify_success": cpv, "success": bool(not len(fails)),
            "n_tests": int(len(sub)), "n_failures": int(len(fails)),
            "n_not_measured": int(unmeasured[res.index.get_indexer(idx)].sum()),
            "n_cp_verify_failures": int((~cpv_flags.astype(bool)).sum()),
            "failures": [_failure_label(r) for r in fails.itertuples()],
        })
    verdicts = [p["cp_verify_success"] for p in per if p["cp_verify_success"] is not None]
    return {
        "cp_verify_success": (all(verdicts) if verdicts else None),
        "success": bool(not own.eq(False).fillna(False).any()),
        "n_tests": int(len(res)),
        "n_failures": int(own.eq(False).fillna(False).sum()),
        "n_passed": int(own.eq(True).fillna(False).sum()),
        "n_not_measured": int(unmeasured.sum()),
        "n_cp_verify_failures": int(res["cp_verify_passed"].eq(False).fillna(False).sum()),
        "agreement": (float((res["passed"][both] == res["cp_verify_passed"][both]).mean()) if both.any() else None),
        "disagreements": ({str(k): int(v) for k, v in res.loc[res["disagreement"] != "", "disagreement"]
                          .value_counts().items()} if "disagreement" in res.columns else {}),
        "flat_exp_scatter": bool(((res["calib_type"] == "flat") & (res["tier"] == "exposure")
                                  & (res["test"] == "SCATTER")).any()),
        "exposures": per,
    }
