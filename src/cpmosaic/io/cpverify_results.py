"""cp_verify Results tables (``verify<X>[Det|Exp]Results``) into chunks of the tidy table.

Column rules, from cp_verify's ``repackStats`` / ``pack`` (docs/CPVERIFY.md):
``{STAGE}_{stat}`` columns are values, ``{STAGE}_[DET_|EXP_]VERIFY_{test}`` and
boolean columns are verdicts (never values), the stage prefix is matched in any
case, and a lower-case prefix (``flat_``, the flat exposure merge's stageName)
marks the exposure-level row.  Identifying columns of the wrong type make the
table unusable (InputError); value columns of the wrong type are skipped with
a warning and recorded as problems.  Chunks are described in
``cpmosaic.io.cpverify``.

>>> import pyarrow as pa
>>> t = pa.table({"exposure": [1, 1], "detector": [94, 94], "amplifier": ["C10", None],
...               "FLAT_MEAN": [1.0, None], "flat_SCATTER": [None, 2.0], "flat_VERIFY_SCATTER": [None, False]})
>>> chunk, _ = results_to_chunk(t, parse_dataset_type("verifyFlatExpResults"))
>>> [(tier, m, d) for tier, m, d in zip(chunk["tier"], chunk["metric"], chunk["detector"].tolist())]
[('amp', 'MEAN', 94), ('exposure', 'SCATTER', -1)]
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..errors import InputError
from .cpverify import (_DET_NAME_RE, _ID_COLUMNS, _TEST_ALIASES, BY_NAME, CHUNK_KEYS, EXPOSURE_WIDE, NO_EXPOSURE,
                       DatasetTypeInfo, _det_fields, _is_text_name, _problem)
from .cpverify import parse_dataset_type  # noqa: F401  (the module doctest uses it)

log = logging.getLogger(__name__)

__all__ = ["has_verdicts", "read_results_table", "results_to_chunk"]


def read_results_table(path: str | os.PathLike, *, scalars_only: bool = True):
    """Read a Results parquet file (``.parq`` or ``.parquet``) into a pyarrow Table.

    InputError when the file is corrupt.  With *scalars_only* the list columns
    (NaN-padded profiles, most of the bytes) are not read at all: the tidy
    table keeps scalars only.
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


def _kind(col) -> str:
    """``bool``, ``int``, ``float``, ``str``, ``null`` or ``other`` (lists, 2-D columns, objects)."""
    import pyarrow as pa

    if isinstance(col, (pa.ChunkedArray, pa.Array)):
        t = col.type
        return ("bool" if pa.types.is_boolean(t) else "int" if pa.types.is_integer(t)
                else "float" if pa.types.is_floating(t) else "null" if pa.types.is_null(t)
                else "str" if (pa.types.is_string(t) or pa.types.is_large_string(t)) else "other")
    arr = np.ma.asarray(getattr(col, "values", col))
    if arr.ndim != 1:
        return "other"
    k = arr.dtype.kind
    if k == "O":  # pandas object columns: judge by the non-null cells
        cells = [v for v in np.ma.compressed(arr) if v is not None]
        if not cells:
            return "null"
        if all(isinstance(v, str) for v in cells):
            return "str"
        if all(isinstance(v, (bool, np.bool_)) for v in cells):
            return "bool"
        return "float" if all(isinstance(v, (int, float, np.integer, np.floating)) for v in cells) else "other"
    return {"b": "bool", "i": "int", "u": "int", "f": "float", "U": "str", "S": "str"}.get(k, "other")


def _to_float(col) -> tuple[np.ndarray, np.ndarray]:
    """A scalar column as float64 (NaN for nulls) and its null mask (a NaN cell is not null)."""
    import pyarrow as pa

    if isinstance(col, (pa.ChunkedArray, pa.Array)):
        null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        return col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64), null
    arr = np.ma.asarray(getattr(col, "values", col))
    null = np.ma.getmaskarray(arr)
    if arr.dtype.kind == "O":
        null = null | np.array([v is None for v in arr.data], dtype=bool)
        data = np.array([np.nan if n else float(v) for v, n in zip(arr.data, null)], dtype=np.float64)
        return data, null
    return np.where(null, np.nan, arr.data.astype(np.float64)), null


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


def _examples(col, n: int, k: int = 3) -> str:
    vals = [v for v in _to_str(col, n) if v][:k]
    return ", ".join(repr(v) for v in vals)


#: Calibration types verified per exposure (their Results rows need an exposure);
#: the others (linearity, crosstalk, ptc, ...) verify a calibration per detector.
_EXPOSURE_TYPES = frozenset({"bias", "dark", "flat", "defects", "bfk"})
_VERIFY_RE = re.compile(r"^(?:(DET|EXP)_)?VERIFY_(.+)$")


@dataclass
class _Column:
    """One value or verdict column, its stage prefix removed."""

    base: str  # e.g. MEAN, DET_MEAN, SCATTER
    verdict: bool
    merge: bool  # written by an exposure merge (lower-case stage prefix: flat_SCATTER)
    values: np.ndarray
    null: np.ndarray


def _split_name(name: str, stage: str) -> tuple[str, bool]:
    """(name without the stage prefix, written by a merge task); the prefix is matched case-insensitively.

    >>> _split_name("flat_VERIFY_SCATTER", "FLAT"), _split_name("FLAT_DET_MEAN", "FLAT")
    (('VERIFY_SCATTER', True), ('DET_MEAN', False))
    """
    head = name[: len(stage) + 1]
    if head.upper() == stage + "_" and len(name) > len(head):
        return name[len(head):], head != stage + "_"
    return name, False


def _verdict_of(base: str) -> str | None:
    """The test a ``[DET_|EXP_]VERIFY_{test}`` name (or one with a further prefix) judges."""
    m = _VERIFY_RE.match(base)
    if m is None and "_VERIFY_" in base:  # another task's prefix left on: X_VERIFY_TEST
        m = _VERIFY_RE.match(base[base.index("_VERIFY_") + 1:])
    if m is None:
        return None
    return (f"{m.group(1)}_" if m.group(1) else "") + m.group(2)


def _check_ids(cols: dict, n: int, source: str) -> None:
    """The columns that place rows: wrong types there make the whole table unusable."""
    amp = cols.get("amplifier", cols.get("amp"))
    name = "amplifier" if "amplifier" in cols else "amp"
    if amp is not None and _kind(amp) not in ("str", "null"):
        raise InputError(source, f"column {name!r} holds {_kind(amp)} values ({_examples(amp, n)}), "
                                 "not amp names such as 'C10'")
    if "exposure" in cols:
        k = _kind(cols["exposure"])
        if k in ("str", "other", "bool"):
            raise InputError(source, f"column 'exposure' holds {k} values ({_examples(cols['exposure'], n)}), "
                                     "not integer exposure ids")
        if k == "float":
            v, null = _to_float(cols["exposure"])
            if np.any(~null & (v != np.round(v))):
                raise InputError(source, f"column 'exposure' holds fractional values "
                                         f"({', '.join(map(str, v[~null & (v != np.round(v))][:3]))})")
    if "detector" in cols:
        k = _kind(cols["detector"])
        if k == "float":
            v, null = _to_float(cols["detector"])
            bad = ~null & (v != np.round(v))
            if bad.any():
                raise InputError(source, f"column 'detector' holds fractional values "
                                         f"({', '.join(map(str, v[bad][:3]))}), not detector ids")
        elif k == "str":
            names = [x for x in _to_str(cols["detector"], n) if x]
            odd = [x for x in names if not (x.isdigit() or _DET_NAME_RE.fullmatch(x))]
            if odd:
                raise InputError(source, f"column 'detector' holds {odd[:3]}, not detector ids or names")
        elif k in ("bool", "other"):
            raise InputError(source, f"column 'detector' holds {k} values, not detector ids")


def results_to_chunk(table, info: DatasetTypeInfo, *, exposure: int | None = None,
                     detector: int | str | None = None, source: str | None = None,
                     problems: list | None = None) -> tuple[dict[str, np.ndarray], str | None]:
    """Long-form rows of one Results table, built column by column (no per-row loop).

    Rows with an amplifier are amp rows; rows without one are detector rows
    (``FLAT_DET_*``, ``DEFECTS_N_BAD_COLUMNS``) unless they carry a value of an
    exposure merge (``flat_SCATTER``): then they are the exposure-level row
    (``tier`` "exposure", ``detector`` :data:`EXPOSURE_WIDE`), whatever
    detector cp_verify wrote there.  ``{STAGE}_{stat}`` columns become metrics
    (prefix removed case-insensitively, ``DET_`` folded on detector rows);
    ``*VERIFY_{test}`` and boolean columns give ``passed`` and are never values.
    Null cells are "not applicable" and dropped; NaN cells are "not measured"
    and kept (never passing).

    Returns the chunk and the instrument named in the table (or None).

    Raises
    ------
    InputError
        The table has no rows, or lacks or mistypes the columns that place
        its rows (``amplifier`` as text; ``detector``/``exposure`` as integers
        where the data id does not give them): read anyway, its rows would
        land on the wrong amps.  A value column of the wrong type (text where
        numbers belong, a verdict that is not boolean) is skipped instead,
        with a warning naming *source* and the column, and added to *problems*.
    """
    source = source or info.name
    names = [n for n, _ in _columns(table)]
    cols = dict(_columns(table))
    n = len(table)
    required = ["amplifier" if "amp" not in cols else "amp"]
    if detector is None:
        required.append("detector")
    if exposure is None and info.calib_type in _EXPOSURE_TYPES:
        required.append("exposure")
    absent = [c for c in required if c not in cols]
    if absent:
        raise InputError(source, f"Results table lacks column(s) {', '.join(absent)} "
                         f"(has {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
    if n == 0:
        raise InputError(source, "empty Results table (no rows)")
    _check_ids(cols, n, source)
    stage = info.calib_type.upper()
    instrument = None
    if "instrument" in cols:
        vals = [v for v in _to_str(cols["instrument"], n)[:1] if v]
        instrument = vals[0] if vals else None
    if "exposure" in cols and _kind(cols["exposure"]) != "null":
        e, null = _to_float(cols["exposure"])
        exp = np.where(null, NO_EXPOSURE if exposure is None else exposure, e).astype(np.int64)
    else:
        exp = np.full(n, NO_EXPOSURE if exposure is None else exposure, np.int64)
    det_ids = np.full(n, BY_NAME, np.int64)
    det_names = np.full(n, None, dtype=object)
    if "detector" in cols and _kind(cols["detector"]) in ("int", "float"):
        d, null = _to_float(cols["detector"])
        det_ids = np.where(null, BY_NAME, d).astype(np.int64)
    elif "detector" in cols and _kind(cols["detector"]) == "str":
        strs = _to_str(cols["detector"], n)
        digits = np.array([s.isdigit() for s in strs], dtype=bool)
        det_ids[digits] = [int(s) for s in strs[digits]]
        det_names[~digits] = strs[~digits]
    elif detector is not None:
        did, dname = _det_fields(detector)
        det_ids[:], det_names[:] = did, dname
    amp_col = cols.get("amplifier", cols.get("amp"))
    amps = _to_str(amp_col, n) if amp_col is not None else np.full(n, "", dtype=object)
    mjd = _to_float(cols["mjd"])[0] if "mjd" in cols and _kind(cols["mjd"]) in ("int", "float") else np.full(n, np.nan)

    columns: list[_Column] = []
    rejected: set[str] = set()  # value columns of the wrong type: their verdicts go too (no silent NaN)
    for name in names:
        if name in _ID_COLUMNS:
            continue
        base, merge = _split_name(name, stage)
        kind = _kind(cols[name])
        test = _verdict_of(base)
        if kind in ("other", "null"):
            log.debug("%s: skipping non-scalar column %s", source, name)
            continue
        if kind == "str":
            if test is not None or not _is_text_name(base):
                _problem(problems, source, f"column {name!r} holds text ({_examples(cols[name], n)}) where "
                                           f"{'verdicts' if test else 'numbers'} belong; skipped")
                rejected.add(test or base)
            continue
        fvals, null = _to_float(cols[name])
        if test is not None or kind == "bool":
            if kind != "bool" and np.any(~null & ~np.isin(fvals, (0.0, 1.0))):
                _problem(problems, source, f"column {name!r} is a verdict but holds values other than "
                                           f"true/false ({', '.join(map(str, fvals[~null][:3]))}); skipped")
                continue
            base = test if test is not None else base
            if base.rsplit("_", 1)[-1] == "SUCCESS" and base in ("SUCCESS", "DET_SUCCESS", "EXP_SUCCESS"):
                continue
            columns.append(_Column(base, True, merge, fvals, null))
        else:
            columns.append(_Column(base, False, merge, fvals, null))

    if rejected:
        columns = [c for c in columns if not (c.verdict and (c.base in rejected or _TEST_ALIASES.get(c.base) in rejected))]
    has_amp = amps != ""
    merge_cols = [c for c in columns if c.merge or c.base.startswith("EXP_")]
    exp_row = ~has_amp & np.any([~c.null for c in merge_cols], axis=0) if merge_cols else np.zeros(n, bool)
    groups = (("amp", np.flatnonzero(has_amp)), ("detector", np.flatnonzero(~has_amp & ~exp_row)),
              ("exposure", np.flatnonzero(exp_row)))
    parts: list[dict[str, np.ndarray]] = []
    for tier, idx in groups:
        if idx.size == 0:
            continue
        values, flags = _group_columns(columns, tier, idx)
        used: set[str] = set()
        for metric, (vals, null) in values.items():
            flag = flags.get(metric)
            if flag is None:
                alias = next((t for t, m in _TEST_ALIASES.items() if m == metric and t in flags), None)
                if alias:
                    flag = flags[alias]
                    used.add(alias)
            used.add(metric)
            fvals, fnull = flag if flag is not None else (np.full(idx.size, np.nan), np.ones(idx.size, bool))
            passed = np.where(fnull, np.nan, fvals)
            passed = np.where(np.isnan(vals) & (passed == 1.0), np.nan, passed)  # not measured: never a pass
            keep = ~null | ~fnull
            parts.append(_part(idx[keep], tier, metric, vals[keep], passed[keep], exp, det_ids, det_names, amps, mjd))
        for test, (fvals, fnull) in flags.items():
            if test not in used:
                keep = ~fnull
                parts.append(_part(idx[keep], tier, test, np.full(int(keep.sum()), np.nan), fvals[keep],
                                   exp, det_ids, det_names, amps, mjd))
    if not parts:
        return _empty_chunk(), instrument
    chunk = {k: np.concatenate([p[k] for p in parts]) for k in CHUNK_KEYS}
    return chunk, instrument


def _group_columns(columns: list[_Column], tier: str, idx: np.ndarray):
    """Values and verdicts ``{metric: (values, null)}`` of one row group.

    Amp rows use unscoped columns; detector rows fold ``DET_X`` into ``X``
    (the scoped column wins where it has a value); the exposure row uses only
    the merge task's columns and ``EXP_X``.
    """
    values: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    flags: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    scoped: list[tuple[str, _Column]] = []
    for c in columns:
        head, _, tail = c.base.partition("_")
        is_scoped = head in ("DET", "EXP") and bool(tail)
        if tier == "exposure":
            if c.merge and not is_scoped:
                scoped.append((c.base, c))
            elif is_scoped and head == "EXP":
                scoped.append((tail, c))
            continue
        # a merge column (``flat_X``) only ever has values on the merge row; elsewhere a prefix
        # in another case (``Bias_MEAN``) is still the table's own statistic
        if is_scoped:
            if tier == "detector" and head == "DET":
                scoped.append((tail, c))
            continue
        (flags if c.verdict else values)[c.base] = (c.values[idx], c.null[idx])
    for name, c in scoped:
        target = flags if c.verdict else values
        v, null = c.values[idx], c.null[idx]
        if name in target:
            ov, onull = target[name]
            target[name] = (np.where(null, ov, v), null & onull)
        else:
            target[name] = (v, null)
    return values, flags


def _part(idx, tier, metric, vals, flag, exp, det_ids, det_names, amps, mjd) -> dict[str, np.ndarray]:
    k = idx.size
    det = det_ids[idx]
    if tier == "exposure":
        det = np.full(k, EXPOSURE_WIDE, np.int64)
    return {
        "exposure": exp[idx], "detector": det,
        "detector_name": det_names[idx] if tier != "exposure" else np.full(k, None, object),
        "amp": amps[idx], "tier": np.full(k, tier, object), "metric": np.full(k, metric, object),
        "value": np.asarray(vals, np.float64), "passed": np.asarray(flag, np.float64), "mjd": mjd[idx],
    }


def has_verdicts(chunk: dict[str, np.ndarray]) -> bool:
    """True when a chunk holds any verdict (defects Results hold none: their tests are in the Stats)."""
    return bool(np.isfinite(chunk["passed"]).any())


def _empty_chunk() -> dict[str, np.ndarray]:
    out = {k: np.empty(0, dtype=object) for k in ("detector_name", "amp", "tier", "metric")}
    out.update(exposure=np.empty(0, np.int64), detector=np.empty(0, np.int64),
               value=np.empty(0), passed=np.empty(0), mjd=np.empty(0))
    return out
