"""Readers of cp_verify outputs: Stats YAML dictionaries and Results tables.

cp_verify writes, per calibration type ``X`` and tier, a Stats dictionary
(``verifyXDetStats``, ``verifyXExpStats``, ``verifyXStats``) and a Results table
(``verifyXDetResults``, ...).  This module turns one product into a *chunk*: a
dict of equal-length numpy arrays in the long form of the tidy metrics table,
plus the scalars that hold for the whole product.  ``cpmosaic.io.butler`` finds
the products (in a directory tree laid out as a Butler datastore, or in a Butler
repository); ``cpmosaic.metrics.table`` resolves detectors with the camera,
merges chunks and removes duplicates.

Chunk arrays: ``exposure`` (int64, -1 = none), ``detector`` (int64: the id,
-1 = exposure-wide row, -2 = given by name only), ``detector_name`` (object,
``None`` when unknown), ``amp``, ``tier``, ``metric`` (object), ``value``,
``passed`` (float64: 1, 0 or NaN) and ``mjd`` (float64).

>>> info = parse_dataset_type("verifyFlatDetResults")
>>> info.calib_type, info.tier, info.kind
('flat', 'detector', 'Results')
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

__all__ = ["CALIB_TYPES", "CHUNK_KEYS", "DatasetTypeInfo", "parse_dataset_type", "read_results_table",
           "read_stats_yaml", "results_to_chunk", "stats_to_chunk"]

#: cp_verify's calibration names (as in dataset type names) -> tidy calib_type.
CALIB_TYPES: dict[str, str] = {
    "Bias": "bias", "Dark": "dark", "Flat": "flat", "Defects": "defects", "Defect": "defects",
    "Crosstalk": "crosstalk", "Linearity": "linearity", "Ptc": "ptc", "Gain": "gain", "Bfk": "bfk",
    "Cti": "cti",
}
CHUNK_KEYS = ("exposure", "detector", "detector_name", "amp", "tier", "metric", "value", "passed", "mjd")
NO_EXPOSURE, EXPOSURE_WIDE, BY_NAME = -1, -1, -2

_DATASET_RE = re.compile(r"^verify(?P<type>[A-Z][A-Za-z]*?)(?P<tier>Det|Exp)?(?P<kind>Stats|Results|Matrix)$")
_DET_NAME_RE = re.compile(r"R[0-9X]{2}_S(?:\d\d|[GW]\d)")
_AMP_RE = re.compile(r"^C\d\d$")
_TIERS = {"Det": "detector", "Exp": "exposure", None: "run"}
#: Columns of a Results table that identify a row rather than measure something.
_ID_COLUMNS = {"instrument", "exposure", "visit", "detector", "mjd", "amplifier", "amp", "physical_filter",
               "day_obs", "run", "band", "seq_num", "obs_id", "group"}
#: cp_verify tests that judge a statistic of another name.
_TEST_ALIASES = {"READ_NOISE_CONSISTENT": "READ_NOISE_ADU"}
#: Sections of a detector Stats dictionary that never hold per-amp statistics.
_SKIP_SECTIONS = {"ISR", "SUCCESS", "VERIFY", "FAILURES"}


@dataclass(frozen=True)
class DatasetTypeInfo:
    """What a cp_verify dataset type name says: calibration type, tier, product kind."""

    name: str
    calib_type: str
    tier: str  # detector | exposure | run
    kind: str  # Stats | Results | Matrix

    @property
    def priority(self) -> int:
        """Lower is preferred: Results before Stats, finer tiers before coarser."""
        order = {"detector": 0, "exposure": 1, "run": 2}[self.tier]
        return order + (0 if self.kind == "Results" else 3)


def parse_dataset_type(name: str) -> DatasetTypeInfo | None:
    """Parse ``verify<Type>[Det|Exp]<Stats|Results|Matrix>``; None for other names.

    >>> parse_dataset_type("verifyBiasStats").tier
    'run'
    >>> parse_dataset_type("verifyBiasIsrExpBin8") is None
    True
    """
    m = _DATASET_RE.match(name)
    if not m:
        return None
    raw = m["type"]
    calib = CALIB_TYPES.get(raw, raw.lower())
    if raw.endswith("Isr") or "Residual" in raw:
        return None
    return DatasetTypeInfo(name, calib, _TIERS[m["tier"]], m["kind"])


# -- Stats YAML --------------------------------------------------------------------------

_TOP_KEY = re.compile(r"^[^\s#\-]", re.M)


def read_stats_yaml(path: str | os.PathLike) -> dict:
    """Read a Stats YAML file, skipping the (large, unused) ``ISR`` section.

    The ISR section carries per-row profiles that can be megabytes; it is cut
    out of the text before parsing, keeping only ``ISR.MJD``.  Raises
    InputError when the file is not a YAML mapping.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None
    mjd = None
    m = re.search(r"^ISR:[ \t]*\n", text, re.M)
    if m:
        nxt = _TOP_KEY.search(text, m.end())
        end = nxt.start() if nxt else len(text)
        mm = re.search(r"^\s+MJD:\s*([-+0-9.eE]+)\s*$", text[m.end():end], re.M)
        mjd = float(mm.group(1)) if mm else None
        text = text[: m.start()] + text[end:]
    try:
        doc = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise InputError(path, f"corrupt YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise InputError(path, f"expected a YAML mapping, found {type(doc).__name__}")
    if mjd is not None:
        doc["ISR"] = {"MJD": mjd}
    return doc


def _scalar(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return None


class _Rows:
    """Row accumulator for the (small) Stats dictionaries."""

    def __init__(self) -> None:
        self.cols: dict[str, list] = {k: [] for k in CHUNK_KEYS}

    def add(self, exposure, detector, name, amp, tier, metric, value, passed, mjd) -> None:
        c = self.cols
        c["exposure"].append(NO_EXPOSURE if exposure is None else int(exposure))
        c["detector"].append(detector)
        c["detector_name"].append(name)
        c["amp"].append(amp)
        c["tier"].append(tier)
        c["metric"].append(str(metric).replace(" ", "_"))
        c["value"].append(math.nan if value is None else value)
        c["passed"].append(math.nan if passed is None else float(bool(passed)))
        c["mjd"].append(math.nan if mjd is None else float(mjd))

    def chunk(self) -> dict[str, np.ndarray]:
        c = self.cols
        out = {k: np.array(c[k], dtype=object) for k in ("detector_name", "amp", "tier", "metric")}
        out["exposure"] = np.array(c["exposure"], dtype=np.int64)
        out["detector"] = np.array(c["detector"], dtype=np.int64)
        for k in ("value", "passed", "mjd"):
            out[k] = np.array(c[k], dtype=np.float64)
        return out


def _det_fields(detector: int | str | None) -> tuple[int, str | None]:
    if detector is None:
        return BY_NAME, None
    if isinstance(detector, (int, np.integer)) or str(detector).isdigit():
        return int(detector), None
    return BY_NAME, str(detector)


def _parse_failure(text: str) -> tuple[str | None, str, str]:
    """``"R22_S11 C07 NOISE"`` -> (detector name or None, amp or "", test); ``"EXP SCATTER"`` -> ("EXP", "", ...)."""
    toks = str(text).split()
    scope = toks.pop(0) if toks and toks[0] in ("EXP", "DET") and len(toks) > 1 else None
    if scope == "EXP":
        return "EXP", "", " ".join(toks)
    det = toks.pop(0) if toks and (_DET_NAME_RE.fullmatch(toks[0]) or toks[0].isdigit()) and len(toks) > 1 else None
    amp = toks.pop(0) if toks and _AMP_RE.match(toks[0]) and len(toks) > 1 else ""
    return det, amp, " ".join(toks) or "UNKNOWN"


def stats_to_chunk(doc: dict, info: DatasetTypeInfo, *, exposure: int | None = None,
                   detector: int | str | None = None) -> dict[str, np.ndarray]:
    """Long-form rows of one Stats dictionary (any tier).

    Detector tier: ``AMP`` {amp: {stat: v}} and ``METADATA`` {stat: {amp: v}} give
    amp rows, ``DET`` gives detector rows, ``VERIFY`` gives the ``passed`` flags.
    Exposure and run tiers hold verdicts: per detector (or exposure) ``SUCCESS``
    rows (value 1/0) and one row per entry of ``FAILURES`` (value NaN, passed
    False); statistics under ``EXP`` become exposure-wide rows (detector -1).
    """
    rows = _Rows()
    mjd = _scalar((doc.get("ISR") or {}).get("MJD")) if isinstance(doc.get("ISR"), dict) else None
    if info.tier == "detector":
        _detector_stats(doc, rows, exposure, detector, mjd)
    else:
        _verdict_stats(doc, rows, info, exposure, detector, mjd)
    return rows.chunk()


def _detector_stats(doc: dict, rows: _Rows, exposure, detector, mjd) -> None:
    det_id, det_name = _det_fields(detector)
    verify = doc.get("VERIFY") if isinstance(doc.get("VERIFY"), dict) else {}
    amp_verify = verify.get("AMP") if isinstance(verify.get("AMP"), dict) else {}
    det_verify = {k: v for k, v in (verify.get("DET") or {}).items()} if isinstance(verify.get("DET"), dict) else {}
    # Some tasks (ptc, gain) put detector-level verdicts at the top of VERIFY.
    det_verify.update({k: v for k, v in verify.items() if k not in ("AMP", "DET", "EXP") and isinstance(v, bool)})
    seen_amp: dict[str, set] = {}
    seen_det: set = set()
    amp_values: dict[tuple[str, str], float] = {}
    det_values: dict[str, float] = {}
    for section, body in doc.items():
        if section in _SKIP_SECTIONS or not isinstance(body, dict) or section == "EXP":
            continue
        for key, val in body.items():
            if isinstance(val, dict):
                if section == "AMP":  # {amp: {stat: v}}
                    for stat, v in val.items():
                        if (x := _scalar(v)) is not None:
                            amp_values[(str(key), str(stat))] = x
                else:  # METADATA / CATALOG: {stat: {amp: v}}
                    for amp, v in val.items():
                        if (x := _scalar(v)) is not None:
                            amp_values.setdefault((str(amp), str(key)), x)
            elif (x := _scalar(val)) is not None:
                det_values.setdefault(str(key), x)
    names = {m for _, m in amp_values}
    for (amp, metric), x in amp_values.items():
        tests = amp_verify.get(amp) or {}
        flag = tests.get(metric)
        if flag is None:
            flag = next((tests[t] for t, m in _TEST_ALIASES.items() if m == metric and t in tests), None)
        rows.add(exposure, det_id, det_name, amp, "amp", metric, x, flag, mjd)
        seen_amp.setdefault(amp, set()).add(metric)
    for amp, tests in amp_verify.items():
        for test, flag in (tests or {}).items():
            if test == "SUCCESS" or test in seen_amp.get(amp, ()) or (
                    _TEST_ALIASES.get(test) in names and _TEST_ALIASES.get(test) in seen_amp.get(amp, ())):
                continue
            rows.add(exposure, det_id, det_name, str(amp), "amp", test, None, flag, mjd)
    for metric, x in det_values.items():
        rows.add(exposure, det_id, det_name, "", "detector", metric, x, det_verify.get(metric), mjd)
        seen_det.add(metric)
    for test, flag in det_verify.items():
        if test != "SUCCESS" and test not in seen_det:
            rows.add(exposure, det_id, det_name, "", "detector", test, None, flag, mjd)


def _verdict_stats(doc: dict, rows: _Rows, info: DatasetTypeInfo, exposure, detector, mjd) -> None:
    verify = doc.get("VERIFY") if isinstance(doc.get("VERIFY"), dict) else {}
    exp_verify = verify.get("EXP") if isinstance(verify.get("EXP"), dict) else {}

    def add_exposure_level(exp, body: dict) -> None:
        for stat, v in (body.get("EXP") or {}).items() if isinstance(body.get("EXP"), dict) else ():
            if (x := _scalar(v)) is not None:
                rows.add(exp, EXPOSURE_WIDE, None, "", "exposure", stat, x, exp_verify.get(stat), mjd)
        if isinstance(body.get("SUCCESS"), bool):
            s = body["SUCCESS"]
            rows.add(exp, EXPOSURE_WIDE, None, "", "exposure", "SUCCESS", float(s), s, mjd)

    def add_detector_verdict(exp, det, body: dict) -> None:
        det_id, det_name = _det_fields(det)
        if isinstance(body.get("SUCCESS"), bool):
            s = body["SUCCESS"]
            rows.add(exp, det_id, det_name, "", "detector", "SUCCESS", float(s), s, mjd)
        for failure in body.get("FAILURES") or ():
            fdet, amp, test = _parse_failure(failure)
            if fdet == "EXP":
                rows.add(exp, EXPOSURE_WIDE, None, "", "exposure", test, None, False, mjd)
                continue
            fid, fname = _det_fields(fdet) if fdet else (det_id, det_name)
            rows.add(exp, fid, fname, amp, "amp" if amp else "detector", test, None, False, mjd)

    if info.tier == "exposure":
        add_exposure_level(exposure, doc)
        for key, body in doc.items():
            if key in ("EXP", "VERIFY", "SUCCESS") or not isinstance(body, dict):
                continue
            add_detector_verdict(exposure, key, body)
        return
    # Run tier: keys are exposure ids (int, or digit strings after a JSON trip),
    # or detector names for products without an exposure dimension (ptc).
    if isinstance(doc.get("SUCCESS"), bool) and not any(isinstance(k, int) or str(k).isdigit() for k in doc):
        add_exposure_level(None, doc)
    for key, body in doc.items():
        if not isinstance(body, dict) or key in ("EXP", "VERIFY"):
            continue
        if isinstance(key, int) or str(key).isdigit():
            exp = int(key)
            add_exposure_level(exp, body)
            for failure in body.get("FAILURES") or ():
                fdet, amp, test = _parse_failure(failure)
                if fdet == "EXP":
                    fdet = None
                fid, fname = _det_fields(fdet) if fdet else (EXPOSURE_WIDE, None)
                tier = "amp" if amp else ("detector" if fdet else "exposure")
                rows.add(exp, fid, fname, amp, tier, test, None, False, mjd)
        else:
            add_detector_verdict(None, key, body)


# -- Results tables ----------------------------------------------------------------------

def read_results_table(path: str | os.PathLike, *, scalars_only: bool = True):
    """Read a Results parquet file into a pyarrow Table (InputError when corrupt).

    With *scalars_only* the list columns (NaN-padded profiles, most of the
    bytes) are not read at all: the tidy table keeps scalars only.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        columns = None
        if scalars_only:
            schema = pf.schema_arrow
            columns = [f.name for f in schema if not (pa.types.is_list(f.type) or pa.types.is_large_list(f.type)
                                                      or pa.types.is_fixed_size_list(f.type)
                                                      or pa.types.is_struct(f.type))]
        return pf.read(columns=columns)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise InputError(path, f"corrupt parquet: {str(exc).splitlines()[0]}") from None


def _columns(table) -> Iterator[tuple[str, Any]]:
    """(name, column) pairs of a pyarrow Table, astropy Table or pandas DataFrame."""
    names = table.column_names if hasattr(table, "column_names") else list(table.columns)
    for name in names:
        yield str(name), table[name]


def _to_float(col) -> np.ndarray | None:
    """A scalar numeric/bool column as float64 with NaN for nulls; None otherwise."""
    import pyarrow as pa

    if isinstance(col, (pa.ChunkedArray, pa.Array)):
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
            return col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return None
    arr = np.ma.asarray(getattr(col, "values", col))
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        return None
    return np.ma.filled(arr.astype(np.float64), np.nan)


def _to_str(col, n: int) -> np.ndarray:
    import pyarrow as pa

    if isinstance(col, (pa.ChunkedArray, pa.Array)):
        out = col.cast(pa.string()).fill_null("").to_numpy(zero_copy_only=False)
    else:
        arr = np.ma.asarray(getattr(col, "values", col))
        out = np.ma.filled(arr.astype(str).astype(object), "") if arr.dtype.kind in "USO" else np.full(n, "", object)
    out = np.asarray(out, dtype=object)
    out[(out == "None") | (out == "nan") | (out == "--")] = ""
    return out


def results_to_chunk(table, info: DatasetTypeInfo, *, exposure: int | None = None,
                     detector: int | str | None = None,
                     source: str | None = None) -> tuple[dict[str, np.ndarray], str | None]:
    """Long-form rows of one Results table, built column by column (no per-row loop).

    Scalar ``{TYPE}_{stat}`` columns become metrics (prefix removed; a further
    ``DET_``/``EXP_`` is removed on detector/exposure rows); ``{TYPE}_[DET_]VERIFY_{test}``
    columns give ``passed``; list columns (profiles) and strings are skipped.
    Rows without an amplifier are detector rows (exposure-wide in Exp products).
    Cells whose value is null/NaN and carry no verdict are dropped.

    Returns the chunk and the instrument named in the table (or None).  A table
    without the columns that identify its rows (``amplifier``, and ``detector`` /
    ``exposure`` where the data id does not give them) raises InputError naming
    *source*: read silently, its rows would land on the wrong amps.
    """
    names = [n for n, _ in _columns(table)]
    cols = dict(_columns(table))
    n = len(table)
    required = ["amplifier" if "amp" not in cols else "amp"]
    if detector is None:
        required.append("detector")
    if exposure is None:
        required.append("exposure")
    absent = [c for c in required if c not in cols]
    if absent:
        raise InputError(source or info.name, f"Results table lacks column(s) {', '.join(absent)} "
                         f"(has {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
    if n == 0:
        return _empty_chunk(), None
    prefix = info.calib_type.upper() + "_"
    instrument = None
    if "instrument" in cols:
        vals = [v for v in _to_str(cols["instrument"], n)[:1] if v]
        instrument = vals[0] if vals else None
    exp = _to_float(cols["exposure"]) if "exposure" in cols else None
    exp = (np.where(np.isnan(exp), NO_EXPOSURE, exp).astype(np.int64) if exp is not None
           else np.full(n, NO_EXPOSURE if exposure is None else exposure, np.int64))
    det_ids = np.full(n, BY_NAME, np.int64)
    det_names = np.full(n, None, dtype=object)
    if "detector" in cols:
        d = _to_float(cols["detector"])
        if d is not None:
            det_ids = np.where(np.isnan(d), BY_NAME, d).astype(np.int64)
        else:
            det_names = _to_str(cols["detector"], n)
    elif detector is not None:
        did, dname = _det_fields(detector)
        det_ids[:], det_names[:] = did, dname
    amp_col = cols.get("amplifier", cols.get("amp"))
    amps = _to_str(amp_col, n) if amp_col is not None else np.full(n, "", dtype=object)
    mjd = _to_float(cols["mjd"]) if "mjd" in cols else None
    mjd = mjd if mjd is not None else np.full(n, np.nan)

    has_amp = amps != ""
    no_amp_tier = "exposure" if info.tier == "exposure" else "detector"
    groups = [(np.flatnonzero(has_amp), "amp"), (np.flatnonzero(~has_amp), no_amp_tier)]
    verify_re = re.compile(r"^(?:(DET|EXP)_)?VERIFY_(.+)$")
    metrics: dict[str, np.ndarray] = {}
    verdicts: dict[tuple[str | None, str], np.ndarray] = {}
    for name in names:
        if name in _ID_COLUMNS:
            continue
        base = name[len(prefix):] if name.startswith(prefix) else name
        vals = _to_float(cols[name])
        if vals is None:
            log.debug("%s: skipping non-scalar column %s", info.name, name)
            continue
        m = verify_re.match(base)
        if m:
            if m.group(2) != "SUCCESS":
                verdicts[(m.group(1), m.group(2))] = vals
        else:
            metrics[base] = vals
    parts: list[dict[str, np.ndarray]] = []
    for idx, tier in groups:
        if idx.size == 0:
            continue
        scope = {"detector": "DET", "exposure": "EXP"}.get(tier)
        # Detector rows carry FLAT_DET_MEAN where amp rows carry FLAT_MEAN: both
        # become metric MEAN, the scoped column winning where it has a value.
        group_metrics = _merge_scoped(metrics, scope, idx)
        group_verdicts = _merge_scoped({(f"{s}_" if s else "") + t: v for (s, t), v in verdicts.items()}, scope, idx)
        used: set[str] = set()
        for metric, vals in group_metrics.items():
            flag = group_verdicts.get(metric)
            if flag is None:
                alias = next((t for t, m in _TEST_ALIASES.items() if m == metric and t in group_verdicts), None)
                if alias:
                    flag = group_verdicts[alias]
                    used.add(alias)
            used.add(metric)
            flag = flag if flag is not None else np.full(idx.size, np.nan)
            parts.append(_part(idx, tier, metric, vals, flag, exp, det_ids, det_names, amps, mjd))
        for test, flag in group_verdicts.items():
            if test not in used:
                parts.append(_part(idx, tier, test, np.full(idx.size, np.nan), flag, exp, det_ids, det_names, amps, mjd))
    if not parts:
        return _empty_chunk(), instrument
    chunk = {k: np.concatenate([p[k] for p in parts]) for k in CHUNK_KEYS}
    keep = ~(np.isnan(chunk["value"]) & np.isnan(chunk["passed"]))
    return {k: v[keep] for k, v in chunk.items()}, instrument


def _merge_scoped(columns: dict[str, np.ndarray], scope: str | None, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Columns for one row group, ``{scope}_X`` folded into ``X`` (its values first)."""
    out: dict[str, np.ndarray] = {}
    scoped: dict[str, np.ndarray] = {}
    for name, vals in columns.items():
        head, _, tail = name.partition("_")
        if head in ("DET", "EXP") and tail:
            if head == scope:
                scoped[tail] = vals[idx]
            elif scope is None:
                out[name] = vals[idx]  # amp rows: keep e.g. DET_MEAN only if it has values there
            continue
        out[name] = vals[idx]
    for name, vals in scoped.items():
        out[name] = np.where(np.isnan(vals), out[name], vals) if name in out else vals
    return out


def _part(idx, tier, metric, vals, flag, exp, det_ids, det_names, amps, mjd) -> dict[str, np.ndarray]:
    k = idx.size
    det = det_ids[idx]
    if tier == "exposure":
        det = np.full(k, EXPOSURE_WIDE, np.int64)
    return {
        "exposure": exp[idx], "detector": det,
        "detector_name": det_names[idx] if tier != "exposure" else np.full(k, None, object),
        "amp": amps[idx], "tier": np.full(k, tier, object), "metric": np.full(k, metric, object),
        "value": vals, "passed": flag, "mjd": mjd[idx],
    }


def _empty_chunk() -> dict[str, np.ndarray]:
    out = {k: np.empty(0, dtype=object) for k in ("detector_name", "amp", "tier", "metric")}
    out.update(exposure=np.empty(0, np.int64), detector=np.empty(0, np.int64),
               value=np.empty(0), passed=np.empty(0), mjd=np.empty(0))
    return out
