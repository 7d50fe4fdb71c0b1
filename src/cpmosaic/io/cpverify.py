"""cp_verify outputs: dataset-type names, the chunk format, and Stats YAML dictionaries.

cp_verify writes, per calibration type ``X`` and tier, a Stats dictionary
(``verifyXDetStats``, ``verifyXExpStats``, ``verifyXStats``) and a Results table
(``verifyXDetResults``, ...).  This module turns one product into a *chunk*: a
dict of equal-length numpy arrays in the long form of the tidy metrics table,
plus the scalars that hold for the whole product (Results tables:
``cpmosaic.io.cpverify_results``).  ``cpmosaic.io.cpverify_tree``
finds the products in a directory tree, ``cpmosaic.io.butler`` in a Butler
repository; ``cpmosaic.metrics.table`` resolves detectors with the camera,
merges chunks and removes duplicates.

Chunk arrays: ``exposure`` (int64, :data:`NO_EXPOSURE` = none), ``detector``
(int64: the id, :data:`EXPOSURE_WIDE` = a row about the whole exposure,
:data:`BY_NAME` = given by name only), ``detector_name`` (object, ``None`` when
unknown), ``amp``, ``tier``, ``metric`` (object), ``value``, ``passed``
(float64: 1, 0 or NaN) and ``mjd`` (float64).

How cp_verify's code writes these products (docs/CPVERIFY.md has the sources):

* columns ``{STAGE}_{stat}`` hold values, ``{STAGE}_[DET_]VERIFY_{test}``
  verdicts (never values); the stage prefix is the task's ``stageName``, in
  upper case for the per-detector tasks and ``flat`` for the flat exposure merge;
* the flat exposure merge appends ONE row (``flat_SCATTER``,
  ``flat_VERIFY_SCATTER``, no amplifier, ``detector`` = the first input
  detector): the exposure-level SCATTER, read here as an ``exposure``-tier row;
* linearity (``verifyLinearizer*``) writes its verdicts as boolean
  ``LINEARITY_{test}`` columns without ``VERIFY``: a boolean column is a verdict.

Values of the wrong type are never turned into NaN silently: a file whose
identifying columns have the wrong type raises :class:`InputError`; a value
column or YAML entry of the wrong type is skipped with a warning naming the
file and the column (key), and added to the caller's *problems* list.  A NaN
value is "not measured": it is kept, and its cp_verify verdict is never read
as a pass.

>>> info = parse_dataset_type("verifyFlatDetResults")
>>> info.calib_type, info.tier, info.kind
('flat', 'detector', 'Results')
>>> parse_dataset_type("verifyLinearizerResults").calib_type
'linearity'
>>> parse_dataset_type("verifyDefectsIndividualExpStats").calib_type
'defects'
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

__all__ = ["BY_NAME", "CALIB_TYPES", "CHUNK_KEYS", "EXPOSURE_WIDE", "NO_EXPOSURE", "DatasetTypeInfo",
           "day_obs_of_exposure", "parse_dataset_type", "read_stats_yaml", "stats_to_chunk"]

#: cp_verify's calibration names (as in dataset type names) -> tidy calib_type.
CALIB_TYPES: dict[str, str] = {
    "Bias": "bias", "Dark": "dark", "Flat": "flat", "Defects": "defects", "Defect": "defects",
    "Crosstalk": "crosstalk", "Linearity": "linearity", "Ptc": "ptc", "Gain": "gain", "Bfk": "bfk",
    "Cti": "cti",
}
#: Dataset-type stems that name a calibration type other than their own lower case
#: (cp_verify's pipelines: verifyLinearizer.yaml, verifyDefectsIndividual.yaml).
_CALIB_STEMS = (("DefectsIndividual", "defects"), ("DefectsPostsFlat", "defects"), ("Linearizer", "linearity"),
                ("GainFromFlatPairs", "gain"))
CHUNK_KEYS = ("exposure", "detector", "detector_name", "amp", "tier", "metric", "value", "passed", "mjd")
#: ``exposure`` of rows with no exposure (run- or calibration-level products).
NO_EXPOSURE = -1
#: ``detector`` of rows that describe a whole exposure (flat EXP SCATTER, SUCCESS).
EXPOSURE_WIDE = -1
#: ``detector`` of rows that name their detector only (resolved with the camera later).
BY_NAME = -2
#: The smallest exposure id of the ``{day_obs}{seq_num:05d}`` form (day_obs >= 1e7).
DAYOBS_EXPOSURE_MIN = 10**12

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
    if raw.endswith("Isr") or "Residual" in raw:
        return None
    calib = CALIB_TYPES.get(raw) or next((c for stem, c in _CALIB_STEMS if raw.startswith(stem)), raw.lower())
    return DatasetTypeInfo(name, calib, _TIERS[m["tier"]], m["kind"])


def day_obs_of_exposure(exposure: int) -> int | None:
    """The day_obs an obs_lsst exposure id encodes; None for ids of another form.

    obs_lsst (``translators/lsst.py``) builds ids as ``{day_obs}{seq:05d}`` with
    1000 added to the year per controller code after "O" (C, H, P, Q, S).

    >>> day_obs_of_exposure(2025061800123), day_obs_of_exposure(3019031900001)
    (20250618, 20190319)
    >>> day_obs_of_exposure(42) is None
    True
    """
    if exposure < DAYOBS_EXPOSURE_MIN:
        return None
    day = int(exposure) // 100000
    year = day // 10000
    year -= 1000 * max(0, (year - 2000) // 1000)
    return year * 10000 + day % 10000


def _problem(problems: list | None, source: str | None, text: str) -> None:
    """Warn about one bad column or key (the rest of the input is still read) and record it."""
    log.warning("%s: %s", source or "cp_verify output", text)
    if problems is not None:
        problems.append({"source": source or "cp_verify output", "problem": text})


#: Keys and columns that legitimately hold text (e.g. LINEARITY_LINEARITY_TYPE).
_TEXT_SUFFIXES = ("TYPE", "NAME", "UNIT", "UNITS", "FILTER", "BAND")


def _is_text_name(name: str) -> bool:
    return str(name).upper().endswith(_TEXT_SUFFIXES)


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


class _Checker:
    """Type checks of Stats values: numbers pass, text where numbers belong is a problem."""

    def __init__(self, source: str | None, problems: list | None) -> None:
        self.source, self.problems = source, problems
        self.rejected: set[str] = set()  # keys of values of the wrong type (their verdicts are dropped too)

    def number(self, v: Any, key: str) -> float | None:
        """A statistic as float; NaN for null ("not measured"); None to skip it."""
        if v is None:
            return math.nan
        if (x := _scalar(v)) is not None:
            return x
        if isinstance(v, str) and not _is_text_name(key.rsplit(".", 1)[-1]):
            _problem(self.problems, self.source, f"key {key} holds {v!r}, not a number")
            self.rejected.add(key)
        return None  # lists (profiles), dicts, text such as LINEARITY_TYPE

    def verdict(self, v: Any, key: str) -> bool | None:
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        _problem(self.problems, self.source, f"key {key} holds {v!r}, not a verdict (true/false)")
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
        if value is not None and math.isnan(value) and passed:
            passed = None  # a value not measured never passes
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
                   detector: int | str | None = None, source: str | None = None,
                   problems: list | None = None) -> dict[str, np.ndarray]:
    """Long-form rows of one Stats dictionary (any tier).

    Detector tier: ``AMP`` {amp: {stat: v}} and ``METADATA`` {stat: {amp: v}} give
    amp rows, ``DET`` gives detector rows, ``VERIFY`` gives the ``passed`` flags.
    Exposure and run tiers hold verdicts: per detector (or exposure) ``SUCCESS``
    rows (value 1/0) and one row per entry of ``FAILURES`` (value NaN, passed
    False); statistics under ``EXP`` become exposure-wide rows (detector -1).
    A value that is text where a number belongs, or a verdict that is not a
    boolean, is skipped with a warning naming *source* and the key, and added
    to *problems*.
    """
    rows = _Rows()
    check = _Checker(source, problems)
    mjd = _scalar((doc.get("ISR") or {}).get("MJD")) if isinstance(doc.get("ISR"), dict) else None
    if info.tier == "detector":
        _detector_stats(doc, rows, exposure, detector, mjd, check)
    else:
        _verdict_stats(doc, rows, info, exposure, detector, mjd, check)
    return rows.chunk()


def _detector_stats(doc: dict, rows: _Rows, exposure, detector, mjd, check: _Checker) -> None:
    det_id, det_name = _det_fields(detector)
    verify = v if isinstance(v := doc.get("VERIFY"), dict) else {}
    amp_verify = a if isinstance(a := verify.get("AMP"), dict) else {}
    det_verify = {k: v for k, v in (verify.get("DET") or {}).items()} if isinstance(verify.get("DET"), dict) else {}
    # Some tasks (ptc, gain) put detector-level verdicts at the top of VERIFY.
    det_verify.update({k: v for k, v in verify.items() if k not in ("AMP", "DET", "EXP") and isinstance(v, bool)})
    det_verify = {k: f for k, v in det_verify.items() if (f := check.verdict(v, f"VERIFY.DET.{k}")) is not None}
    amp_verify = {str(amp): {t: f for t, v in tests.items() if (f := check.verdict(v, f"VERIFY.AMP.{amp}.{t}")) is not None}
                  for amp, tests in amp_verify.items() if isinstance(tests, dict)}
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
                        if (x := check.number(v, f"AMP.{key}.{stat}")) is not None:
                            amp_values[(str(key), str(stat))] = x
                else:  # METADATA / CATALOG: {stat: {amp: v}}
                    for amp, v in val.items():
                        if (x := check.number(v, f"{section}.{key}.{amp}")) is not None:
                            amp_values.setdefault((str(amp), str(key)), x)
            elif (x := check.number(val, f"{section}.{key}")) is not None:
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
            if f"AMP.{amp}.{test}" in check.rejected or f"METADATA.{_TEST_ALIASES.get(test)}.{amp}" in check.rejected:
                continue
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


def _verdict_stats(doc: dict, rows: _Rows, info: DatasetTypeInfo, exposure, detector, mjd, check: _Checker) -> None:
    verify = v if isinstance(v := doc.get("VERIFY"), dict) else {}
    exp_verify = e if isinstance(e := verify.get("EXP"), dict) else {}

    def add_exposure_level(exp, body: dict) -> None:
        for stat, v in (body.get("EXP") or {}).items() if isinstance(body.get("EXP"), dict) else ():
            if (x := check.number(v, f"EXP.{stat}")) is not None:
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
