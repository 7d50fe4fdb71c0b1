"""cp_verify outputs (Stats YAML and Results parquet) at detector, exposure and run tier.

Structures follow cp_verify (see FACTS.md and the reference files):

* detector tier ``verify<T>DetStats``: ``AMP {amp: {stat: v}}``, ``CATALOG {}``,
  ``DET`` (flat: MEAN, SCATTER), a small ``ISR`` block (BIASSHIFT, CALIBDIST, MJD;
  no AMPCORR/PROJECTION), ``METADATA {READ_NOISE_ADU: {amp: v}}`` (bias, dark),
  ``VERIFY {AMP: {amp: {test: bool, SUCCESS}}, DET: {...}}``, ``SUCCESS``;
  ``verify<T>DetResults``: one row per amp (flat: plus one detector row with no
  amplifier holding FLAT_DET_*), profile columns as real list columns;
* exposure tier ``verify<T>ExpStats`` ``{detector name: {SUCCESS, FAILURES}}``
  (flat adds ``EXP {SCATTER}`` and ``VERIFY {EXP: {SCATTER}}``, no SUCCESS
  there), ``verify<T>ExpResults``: the detector tables stacked, plus for flats
  the merge row (``flat_SCATTER``, ``flat_VERIFY_SCATTER``, no amplifier,
  ``detector`` = the first detector);
* run tier ``verify<T>Stats`` ``{exposure id (int): {SUCCESS, FAILURES}, "SUCCESS"}``
  (flat FAILURES list only the exposure tests: ``["SCATTER"]``) and
  ``verify<T>Results`` (every row of the run, merge rows included).

Values are drawn, not measured, but obey DMTN-101 as cp_verify's code
evaluates it: the VERIFY flags written are exactly what re-evaluating the
thresholds on the written values gives (:func:`evaluate`).  The flat EXP
SCATTER is, as in cp_verify (``CpVerifyFlatExpMergeTask``), the *absolute*
standard deviation of the detector means tested against 0.05, so synthetic
flats fail it as real ones do.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .images import TYPE_CODE, DetectorModel, ExposureMeta, SignalParams, derive_rng, flat_level

__all__ = [
    "STAGE",
    "DIST_LEVELS",
    "Trend",
    "dataset_type",
    "verify_path",
    "measure",
    "evaluate",
    "detector_products",
    "exposure_stats",
    "run_stats",
    "results_schema",
    "merge_row",
    "write_yaml",
    "write_parquet",
    "pick_trends",
    "failures",
]

STAGE = {"bias": "BIAS", "dark": "DARK", "flat": "FLAT"}
#: The flat exposure merge's stageName (pipelines/_ingredients/verifyFlat.yaml).
MERGE_STAGE = {"flat": "flat"}
DIST_LEVELS = ("0.0", "5.0", "16.0", "50.0", "84.0", "95.0", "100.0")
# normal quantiles of the percentile levels (0 and 100: a few sigma out)
_Z = np.array([-4.2, -1.645, -0.994, 0.0, 0.994, 1.645, 4.2])
AMP_STATS = {"bias": ("MEAN", "NOISE", "CR_NOISE", "AMP_CORNER"), "dark": ("MEAN", "NOISE", "CR_NOISE"),
             "flat": ("MEAN", "NOISE")}
AMP_TESTS = {"bias": ("MEAN", "NOISE", "CR_NOISE"), "dark": ("MEAN", "NOISE", "CR_NOISE"), "flat": ("NOISE",)}


@dataclass(frozen=True)
class Trend:
    """A drift (linear from ``start_day`` to ``end_day``) or a jump (a step from ``start_day`` on).

    ``size`` is the total change of ``metric`` (in its units) of one amp.
    """

    kind: str
    calib_type: str
    detector: int
    detector_name: str
    amp: str
    metric: str
    start_day: int
    end_day: int
    size: float

    def offset(self, day_obs: int, days: Sequence[int]) -> float:
        """The trend's contribution on ``day_obs`` (days: every day of the series, sorted)."""
        if day_obs < self.start_day:
            return 0.0
        if self.kind == "jump":
            return self.size
        i0, i1, i = days.index(self.start_day), days.index(self.end_day), days.index(min(day_obs, self.end_day))
        return self.size * (i - i0) / max(1, i1 - i0)

    def to_dict(self) -> dict:
        return asdict(self)


def dataset_type(calib_type: str, tier: str, product: str) -> str:
    """``verifyBiasDetStats`` etc.: tier in det/exp/run, product in Stats/Results."""
    mid = {"det": "Det", "exp": "Exp", "run": ""}[tier]
    return f"verify{calib_type.capitalize()}{mid}{product}"


def verify_path(root: str | os.PathLike, run: str, dstype: str, *, instrument: str, day_obs: int | None = None,
                exposure: int | None = None, detector_name: str | None = None, ext: str = "yaml",
                physical_filter: str | None = None) -> Path:
    """Where ENGINEERING.md's "cp_verify outputs on disk" puts a dataset.

    A run-level dataset with a ``physical_filter`` (flats) gets ``<band>/<filter>``
    folders and name tokens, as the Butler's default file template writes them.

    >>> verify_path("v", "u/r", "verifyFlatResults", instrument="LSSTCam", ext="parq", physical_filter="r_57")
    PosixPath('v/u/r/verifyFlatResults/r/r_57/verifyFlatResults_LSSTCam_r_r_57_u_r.parq')
    """
    parts = [dstype, instrument] + ([str(exposure)] if exposure is not None else [])
    parts += [detector_name] if detector_name else []
    band = physical_filter.split("_")[0] if physical_filter else ""
    if physical_filter and exposure is None:
        parts += [band, physical_filter]
    name = "_".join(parts + [run.replace("/", "_")]) + f".{ext}"
    folder = Path(root, *run.split("/"), dstype)
    if exposure is not None:
        return folder / str(day_obs) / name
    return (folder / band / physical_filter if physical_filter else folder) / name


def _nominal_read_noise(model: DetectorModel) -> np.ndarray:
    rn = np.array([a.read_noise for a in model.detector.amplifiers], float)
    return np.where(np.isfinite(rn) & (rn > 0), rn, model.read_noise)


def measure(calib_type: str, model: DetectorModel, meta: ExposureMeta, *, seed: int, days: Sequence[int] = (),
            trends: Sequence[Trend] = (), params: SignalParams = SignalParams()) -> dict:
    """Draw the statistics of one detector in one exposure.

    Returns ``{"amp": {stat: array per amp}, "extra": {...}, "det": {...}}``.
    """
    det = model.detector
    n = len(det.amplifiers)
    rng = derive_rng(seed, 100 + TYPE_CODE[calib_type], det.id, meta.exposure)
    w = np.array([a.bbox.width for a in det.amplifiers])
    h = np.array([a.bbox.height for a in det.amplifiers])
    amp: dict[str, np.ndarray] = {}
    extra: dict = {}
    rn = model.read_noise
    if calib_type in ("bias", "dark"):
        if calib_type == "bias":
            amp["MEAN"] = model.offset_e + rng.normal(0.0, 0.05, n)
            amp["NOISE"] = rn * rng.uniform(0.97, 1.03, n)
        else:
            amp["MEAN"] = rng.normal(0.0, 0.1, n)
            amp["NOISE"] = rn * rng.uniform(0.98, 1.04, n)
        amp["CR_NOISE"] = amp["NOISE"] * rng.uniform(1.0, 1.02, n)
        if calib_type == "bias":
            amp["AMP_CORNER"] = amp["MEAN"] + params.corner_glow_e * 0.05 + rng.normal(0.0, 0.05, n)
        extra["READ_NOISE_ADU"] = rn / model.gain * rng.uniform(0.97, 1.02, n)
        extra["SHIFT_NOISE"] = extra["READ_NOISE_ADU"] * rng.uniform(0.98, 1.03, n)
        spread = rn / np.sqrt(params.combine_n)
        # CALIBDIST: pixel distribution of the combined calibration used
        centre = model.offset_e if calib_type == "bias" else np.zeros(n)
        extra["DIST"] = centre[:, None] + spread[:, None] * _Z[None, :] * rng.uniform(0.9, 1.1, (n, 1))
        extra["SERIAL_PROF"] = [amp["MEAN"][i] + rng.normal(0, 1, w[i]) * amp["NOISE"][i] / np.sqrt(h[i]) for i in range(n)]
        extra["PARALLEL_PROF"] = [amp["MEAN"][i] + rng.normal(0, 1, h[i]) * amp["NOISE"][i] / np.sqrt(w[i]) for i in range(n)]
    elif calib_type == "flat":
        level = flat_level(seed, meta.exposure, params)
        # flat-fielded frames: what is left is the per-amp gain residual
        residual = model.response / np.mean(model.response)
        amp["MEAN"] = level * residual * (1.0 + rng.normal(0.0, 0.001, n))
        excess = np.maximum(rn**2 - _nominal_read_noise(model) ** 2, 0.0)
        amp["NOISE"] = np.sqrt(amp["MEAN"]) * rng.uniform(0.90, 0.97, n) * np.sqrt(1.0 + excess / amp["MEAN"])
        extra["DIST"] = 1.0 + 0.004 * _Z[None, :] * rng.uniform(0.9, 1.1, (n, 1))
    else:
        raise ValueError(f"unknown calibration type {calib_type!r}")
    for t in trends:
        if t.calib_type == calib_type and t.detector == det.id and t.metric in amp:
            amp[t.metric][model.amp_index(t.amp)] += t.offset(meta.day_obs, list(days))
    if model.dead:  # an unlit, unpowered detector measures zero everywhere
        amp = {k: np.zeros(n) for k in amp}
        extra = {k: ([np.zeros_like(p) for p in v] if isinstance(v, list) else np.zeros_like(v)) for k, v in extra.items()}
    out = {"amp": amp, "extra": extra, "det": {}}
    if calib_type == "flat":
        out["det"] = {"MEAN": float(np.mean(amp["MEAN"])), "SCATTER": float(np.std(amp["MEAN"]))}
    return out


def evaluate(calib_type: str, amp: Mapping[str, float], *, read_noise: float, gain: float = 1.0,
             read_noise_adu: float | None = None) -> dict[str, bool]:
    """DMTN-101 tests of one amp (cp_verify's verify()), SUCCESS last, then READ_NOISE_CONSISTENT."""
    with np.errstate(divide="ignore", invalid="ignore"):
        v: dict[str, bool] = {}
        if calib_type in ("bias", "dark"):
            v["MEAN"] = bool(abs(amp["MEAN"]) < amp["NOISE"])
            v["NOISE"] = bool((amp["NOISE"] - read_noise) / read_noise <= 0.05)
            v["CR_NOISE"] = bool(np.float64(abs(amp["NOISE"] - amp["CR_NOISE"])) / amp["CR_NOISE"] <= 0.05)
        else:
            v["NOISE"] = bool(amp["NOISE"] <= np.sqrt(amp["MEAN"]))
        v["SUCCESS"] = all(v.values())
        if read_noise_adu is not None:
            overscan = gain * read_noise_adu
            # verifyBias/verifyDark write the flag only when the overscan read noise is
            # truthy: none for 0 (an unpowered amp); NaN is truthy and fails.
            if overscan:
                v["READ_NOISE_CONSISTENT"] = not ((overscan - read_noise) / read_noise > 0.05
                                                  or not np.isfinite(overscan))
    return v


def evaluate_det(det: Mapping[str, float]) -> dict[str, bool]:
    """The flat's detector test: SCATTER / MEAN <= 0.05."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = bool(np.float64(det["SCATTER"]) / det["MEAN"] <= 0.05)
    return {"SCATTER": ok, "SUCCESS": ok}


def results_schema(calib_type: str, prof_len: tuple[int, int] | None = None, tier: str = "det"):
    """The pyarrow schema of a Results table (the columns cp_verify's repackStats writes).

    Bias profiles are ``fixed_size_list<double>[n]`` columns, as the Butler's
    ArrowAstropy storage writes 2-D table columns; ``prof_len`` gives (serial,
    parallel) lengths, ``None`` leaves the profile columns out.  Dark tables
    carry ``DARK_READ_NOISE_ADU`` and ``DARK_DARK_DIST_*`` only (verifyDark.py);
    flat exposure and run tables (``tier`` exp/run) add the merge columns.
    """
    import pyarrow as pa

    s = STAGE[calib_type]
    f64, b = pa.float64(), pa.bool_()
    fields = [("instrument", pa.string()), ("exposure", pa.int64()), ("detector", pa.int64())]
    if calib_type == "flat":
        fields.append(("physical_filter", pa.string()))
    fields += [("mjd", f64), ("amplifier", pa.string())]
    fields += [(f"{s}_{k}", f64) for k in AMP_STATS[calib_type]]
    fields += [(f"{s}_VERIFY_{k}", b) for k in AMP_TESTS[calib_type] + ("SUCCESS",)]
    if calib_type == "bias":
        fields += [(f"{s}_VERIFY_READ_NOISE_CONSISTENT", b), (f"{s}_READ_NOISE_ADU", f64),
                   (f"{s}_BIAS_SHIFT_COUNT", pa.int64()), (f"{s}_BIAS_SHIFT_NOISE", f64)]
        fields += [(f"{s}_BIAS_DIST_{lv}_PCT", f64) for lv in DIST_LEVELS]
        if prof_len is not None:
            fields += [(f"{s}_SERIAL_PROF", pa.list_(f64, prof_len[0])), (f"{s}_PARALLEL_PROF", pa.list_(f64, prof_len[1]))]
    elif calib_type == "dark":
        fields += [(f"{s}_VERIFY_READ_NOISE_CONSISTENT", b), (f"{s}_READ_NOISE_ADU", f64)]
        fields += [(f"{s}_DARK_DIST_{lv}_PCT", f64) for lv in DIST_LEVELS]
    else:
        fields += [(f"{s}_FLAT_DIST_{lv}_PCT", f64) for lv in DIST_LEVELS]
        fields += [(f"{s}_DET_MEAN", f64), (f"{s}_DET_SCATTER", f64), (f"{s}_DET_VERIFY_SCATTER", b)]
        if tier in ("exp", "run"):
            ms = MERGE_STAGE[calib_type]
            fields += [(f"{ms}_SCATTER", f64), (f"{ms}_VERIFY_SCATTER", b)]
    return pa.schema(fields)


def merge_row(calib_type: str, meta: ExposureMeta, first_detector: int, exp_doc: Mapping) -> dict | None:
    """The row the flat exposure merge appends (CpVerifyFlatExpMergeTask.pack); None for other types.

    Only instrument, exposure, the first input detector and the merge's own
    columns are set: the stacked table leaves the rest null.
    """
    if calib_type not in MERGE_STAGE:
        return None
    ms = MERGE_STAGE[calib_type]
    row: dict = {"instrument": meta.instrument, "exposure": meta.exposure, "detector": int(first_detector)}
    for test, value in exp_doc["EXP"].items():
        row[f"{ms}_{test}"] = value
        row[f"{ms}_VERIFY_{test}"] = exp_doc["VERIFY"]["EXP"][test]
    return row


def _pad(a: np.ndarray, n: int) -> list[float]:
    out = np.full(n, np.nan)
    out[: min(n, len(a))] = a[:n]
    return out.tolist()


def detector_products(calib_type: str, model: DetectorModel, meta: ExposureMeta, m: dict, *,
                      prof_len: tuple[int, int] | None = None) -> tuple[dict, dict]:
    """The DetStats document and the DetResults columns (a dict of lists) of one measurement.

    ``prof_len`` is (serial, parallel) length profiles are NaN-padded to (the
    camera-wide maximum, so every table of a run has one list length).
    """
    det = model.detector
    s = STAGE[calib_type]
    names = det.amp_names
    rn_nom = _nominal_read_noise(model)
    amp_doc: dict = {}
    verify_doc: dict = {}
    isr: dict = {}
    meta_doc: dict = {}
    cols: dict[str, list] = {f.name: [] for f in results_schema(calib_type, prof_len)}
    has_rn = "READ_NOISE_ADU" in m["extra"]
    for i, name in enumerate(names):
        stats = {k: float(m["amp"][k][i]) for k in AMP_STATS[calib_type]}
        amp_doc[name] = dict(sorted(stats.items()))
        rn_adu = float(m["extra"]["READ_NOISE_ADU"][i]) if has_rn else None
        v = evaluate(calib_type, stats, read_noise=float(rn_nom[i]), gain=float(model.gain[i]), read_noise_adu=rn_adu)
        verify_doc[name] = dict(sorted(v.items()))
        row = {"instrument": meta.instrument, "exposure": meta.exposure, "detector": det.id,
               "physical_filter": meta.physical_filter, "mjd": meta.mjd, "amplifier": name}
        row.update({f"{s}_{k}": val for k, val in stats.items()})
        row.update({f"{s}_VERIFY_{k}": val for k, val in v.items()})
        dist = [float(x) for x in m["extra"]["DIST"][i]]
        isr.setdefault("CALIBDIST", {})[name] = {
            f"LSST CALIB {s} {name} DISTRIBUTION {lv}-PCT": d for lv, d in sorted(zip(DIST_LEVELS, dist))}
        if has_rn:
            meta_doc.setdefault("READ_NOISE_ADU", {})[name] = rn_adu
            shift_noise = float(m["extra"]["SHIFT_NOISE"][i])
            if calib_type == "bias":
                isr.setdefault("BIASSHIFT", {})[name] = {"BIAS_SHIFTS": [], "LOCAL_NOISE": shift_noise}
            row[f"{s}_READ_NOISE_ADU"] = rn_adu
            if calib_type == "bias":
                row.update({f"{s}_BIAS_SHIFT_COUNT": 0, f"{s}_BIAS_SHIFT_NOISE": shift_noise})
            row.update({f"{s}_{s}_DIST_{lv}_PCT": d for lv, d in zip(DIST_LEVELS, dist)})
            if prof_len is not None and calib_type == "bias":
                row[f"{s}_SERIAL_PROF"] = _pad(m["extra"]["SERIAL_PROF"][i], prof_len[0])
                row[f"{s}_PARALLEL_PROF"] = _pad(m["extra"]["PARALLEL_PROF"][i], prof_len[1])
        else:
            row.update({f"{s}_FLAT_DIST_{lv}_PCT": d for lv, d in zip(DIST_LEVELS, dist)})
        for k in cols:
            cols[k].append(row.get(k))
    success = all(v["SUCCESS"] for v in verify_doc.values())
    doc_verify: dict = {"AMP": dict(sorted(verify_doc.items()))}
    det_doc: dict = {}
    if calib_type == "flat":
        det_doc = dict(sorted(m["det"].items()))
        dv = evaluate_det(det_doc)
        doc_verify["DET"] = dv
        success = success and dv["SUCCESS"]
        row = {"instrument": meta.instrument, "exposure": meta.exposure, "detector": det.id,
               "physical_filter": meta.physical_filter, "mjd": meta.mjd, "amplifier": None,
               f"{s}_DET_MEAN": det_doc["MEAN"], f"{s}_DET_SCATTER": det_doc["SCATTER"],
               f"{s}_DET_VERIFY_SCATTER": dv["SCATTER"]}
        for k in cols:
            cols[k].append(row.get(k))
    isr["MJD"] = meta.mjd
    doc = {
        "AMP": dict(sorted(amp_doc.items())),
        "CATALOG": {},
        "DET": det_doc,
        "ISR": dict(sorted(isr.items())),
        "METADATA": {k: dict(sorted(v.items())) for k, v in meta_doc.items()},
        "SUCCESS": bool(success),
        "VERIFY": doc_verify,
    }
    return doc, cols


def failures(doc: Mapping) -> list[str]:
    """cp_verify's failure strings of one DetStats document (``"C07 NOISE"``, ``"SCATTER"``)."""
    out = []
    ver = doc.get("VERIFY", {})
    for test, ok in ver.get("DET", {}).items():
        if test != "SUCCESS" and ok is False:
            out.append(test)
    for amp, tests in ver.get("AMP", {}).items():
        if not tests.get("SUCCESS", True):
            out += [f"{amp} {t}" for t, ok in tests.items() if t != "SUCCESS" and ok is False]
    return out


def exposure_stats(calib_type: str, det_docs: Mapping[str, Mapping]) -> dict:
    """The ExpStats document from the DetStats documents of one exposure (by detector name)."""
    out: dict = {}
    success = True
    for name in sorted(det_docs):
        d = det_docs[name]
        if d["SUCCESS"]:
            out[name] = {"SUCCESS": True}
        else:
            out[name] = {"FAILURES": failures(d), "SUCCESS": False}
            success = False
    if calib_type == "flat":
        # cp_verify: the absolute standard deviation of the detector means against 0.05
        means = np.array([d["DET"]["MEAN"] for d in det_docs.values()], float)
        scatter = float(np.std(means)) if len(means) else float("nan")
        ok = bool(scatter <= 0.05)
        out["EXP"] = {"SCATTER": scatter}
        out["VERIFY"] = {"EXP": {"SCATTER": ok}}
        success = success and ok
    out["SUCCESS"] = bool(success)
    return out


def run_stats(exp_docs: Mapping[int, Mapping]) -> dict:
    """The run-tier Stats document: int exposure keys, then ``"SUCCESS"``.

    As CpVerifyRunMergeTask merges: an exposure document with a ``VERIFY``
    section (flats) contributes only its failed exposure tests (``"SCATTER"``;
    amp and detector failures are not propagated); one without (bias, dark)
    contributes ``"{detector} {failure}"`` for each failed detector.
    """
    out: dict = {}
    for exposure in sorted(exp_docs):
        d = exp_docs[exposure]
        if d["SUCCESS"]:
            out[int(exposure)] = {"SUCCESS": True}
            continue
        fails = []
        if "VERIFY" in d:
            exp_tests = d["VERIFY"].get("EXP", {})
            if not exp_tests.get("SUCCESS", False):
                fails += [t for t, ok in exp_tests.items() if ok is False]
        else:
            for name, sub in d.items():
                if isinstance(sub, dict) and "SUCCESS" in sub and not sub["SUCCESS"]:
                    fails += [f"{name} {f}" for f in sub["FAILURES"]]
        out[int(exposure)] = {"FAILURES": fails, "SUCCESS": False}
    out["SUCCESS"] = all(v["SUCCESS"] for v in out.values())
    return out


def _nrows(columns: Mapping[str, list]) -> int:
    return max((len(v) for v in columns.values()), default=0)


def write_yaml(path: str | os.PathLike, doc: Mapping) -> Path:
    """Write a Stats document (key order as given; int and str keys may mix)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=False))
    return path


def write_parquet(path: str | os.PathLike, calib_type: str, columns: Sequence[Mapping[str, list]],
                  prof_len: tuple[int, int] | None = None, tier: str = "det") -> Path:
    """Write Results columns (dicts of lists, concatenated; absent columns are null) with the fixed schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = results_schema(calib_type, prof_len, tier)
    merged = {f.name: [v for c in columns for v in (c[f.name] if f.name in c else [None] * _nrows(c))]
              for f in schema}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(merged, schema=schema), path)
    return path


#: (metric, total size) of the default drift and jump per calibration type;
#: sizes are 10-20x the day-to-day scatter and stay inside the DMTN-101 limits.
DRIFT = {"bias": ("MEAN", 1.0), "dark": ("MEAN", 1.0), "flat": ("MEAN", -200.0)}
JUMP = {"bias": ("MEAN", 2.0), "dark": ("MEAN", 2.0), "flat": ("MEAN", -300.0)}


def pick_trends(camera, seed: int, days: Sequence[int], calib_types: Sequence[str],
                anomalies: Sequence[Mapping]) -> list[dict]:
    """One drift (bias if made) and one jump (dark if made) on amps no anomaly touches.

    The drift is linear over the whole series; the jump is a step on the middle
    day that stays.  Needs at least two days (else none).
    """
    from .images import pick_free_amps

    if len(days) < 2 or not calib_types:
        return []
    rng = derive_rng(seed, 901)
    (ddet, damp), (jdet, jamp) = pick_free_amps(camera, rng, 2, anomalies)
    dtype = "bias" if "bias" in calib_types else calib_types[0]
    jtype = "dark" if "dark" in calib_types else calib_types[-1]
    days = sorted(days)
    drift = Trend("drift", dtype, ddet.id, ddet.name, damp, DRIFT[dtype][0], days[0], days[-1], DRIFT[dtype][1])
    jump = Trend("jump", jtype, jdet.id, jdet.name, jamp, JUMP[jtype][0], days[len(days) // 2], days[-1],
                 JUMP[jtype][1])
    return [drift.to_dict(), jump.to_dict()]
