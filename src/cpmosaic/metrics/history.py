"""The daily metrics history: a store of one parquet file per calib type and night.

Layout (plain parquet, readable by pandas, ``pyarrow.dataset`` and ``dask.dataframe``)::

    STORE/<calib_type>/day_obs=<YYYYMMDD>.parquet

Every file holds whole rows of the tidy metrics table (``calib_type`` and ``day_obs``
included), so ``pd.read_parquet(STORE)`` gives the whole history.  Directory names carry
no ``key=value`` part on purpose: a hive partition key that repeats a column in the file
makes pyarrow refuse to merge the two.  All files share one fixed arrow schema (string
columns dictionary encoded), so readers need not unify schemas and a year loads fast.

Writes are atomic: a day goes to a dot-prefixed temporary file in its final directory
(readers ignore names starting with ``.``), flushed, then moved over the old file with
:func:`os.replace`.  No shared index file: processes adding different days never overwrite
each other's work; two adding the same day leave one complete version of it (the last).

>>> HistoryStore("/tmp/cp_history").add(tidy_df)               # doctest: +SKIP
[('bias', 20250601)]

Summaries of what it holds (candlesticks, validity ranges, recommendations) are in
:mod:`cpmosaic.metrics.nightly`, re-exported here.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .nightly import candlesticks, recommendations, validity_ranges  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

__all__ = ["HistoryStore", "STORE_COLUMNS", "as_day_obs", "candlesticks", "day_obs_from_mjd", "recommendations",
           "validity_ranges"]

#: Columns kept per row, in file order (the tidy metrics table's columns).
STORE_COLUMNS = ("instrument", "calib_type", "run", "exposure", "day_obs", "mjd", "detector", "detector_name",
                 "amp", "tier", "metric", "value", "passed")
_DICT_COLUMNS = ("instrument", "calib_type", "run", "detector_name", "amp", "tier", "metric")
_REQUIRED = ("calib_type", "metric", "value", "detector", "amp")
_CALIB_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_FILE = re.compile(r"^day_obs=(\d{8})\.parquet$")


def _schema():
    import pyarrow as pa

    d = pa.dictionary(pa.int32(), pa.string())
    types = {"exposure": pa.int64(), "day_obs": pa.int32(), "mjd": pa.float64(), "detector": pa.int16(),
             "value": pa.float64(), "passed": pa.bool_(), **{c: d for c in _DICT_COLUMNS}}
    return pa.schema([(c, types[c]) for c in STORE_COLUMNS])


def day_obs_from_mjd(mjd: np.ndarray | pd.Series) -> np.ndarray:
    """Rubin's ``day_obs`` (YYYYMMDD, the date in UTC-12h) of MJDs; 0 where MJD is NaN.

    >>> day_obs_from_mjd(np.array([60800.0, 60800.6])).tolist()
    [20250504, 20250505]
    """
    m = np.asarray(mjd, dtype="float64")
    ok = np.isfinite(m)
    days = np.floor(np.where(ok, m, 0.0) - 0.5).astype("int64")
    dates = np.datetime64("1858-11-17", "D") + days.astype("timedelta64[D]")
    y = dates.astype("datetime64[Y]").astype(int) + 1970
    mo = dates.astype("datetime64[M]").astype(int) % 12 + 1
    dd = (dates - dates.astype("datetime64[M]")).astype(int) + 1
    return np.where(ok, y * 10000 + mo * 100 + dd, 0)


def as_day_obs(value: int | str | None) -> int | None:
    """20250601, "20250601" or "2025-06-01" -> 20250601."""
    if value is None:
        return None
    text = str(value).replace("-", "").strip()
    if not re.fullmatch(r"\d{8}", text):
        raise InputError(None, f"not a day_obs (YYYYMMDD): {value!r}")
    return int(text)


class HistoryStore:
    """Per-amp metrics by day, one parquet file per (calib_type, day_obs).

    Parameters
    ----------
    path
        The store's root directory; created on the first :meth:`add`.

    Examples
    --------
    >>> store = HistoryStore(tmp_path / "history")        # doctest: +SKIP
    >>> store.add(df)                                      # doctest: +SKIP
    [('bias', 20250601), ('bias', 20250602)]
    >>> store.days("bias")                                 # doctest: +SKIP
    [20250601, 20250602]
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"HistoryStore({str(self.path)!r})"

    # -- layout -----------------------------------------------------------------
    def file(self, calib_type: str, day_obs: int) -> Path:
        """The file that holds one calib type's day."""
        return self.path / calib_type / f"day_obs={int(day_obs):08d}.parquet"

    def calib_types(self) -> list[str]:
        """Calib types with at least one day stored, sorted."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir()
                      if p.is_dir() and not p.name.startswith((".", "_")) and self._day_files(p.name))

    def _day_files(self, calib_type: str) -> dict[int, Path]:
        d = self.path / calib_type
        found = ((_FILE.match(p.name), p) for p in (d.iterdir() if d.is_dir() else ()))
        return {int(m.group(1)): p for m, p in found if m}

    def days(self, calib_type: str | None = None) -> list[int]:
        """Days stored (YYYYMMDD ints, sorted) for one calib type, or for any when None."""
        types = [calib_type] if calib_type else self.calib_types()
        return sorted({day for t in types for day in self._day_files(t)})

    # -- writing ----------------------------------------------------------------
    def add(self, df: pd.DataFrame) -> list[tuple[str, int]]:
        """Store a tidy metrics table, one file per (calib_type, day_obs) found in it.

        The day comes from the data: ``day_obs`` where set, else from ``mjd``; rows with
        neither are dropped with a warning.  A day already stored is replaced whole.

        Parameters
        ----------
        df
            A tidy metrics table (see ``docs/ENGINEERING.md``).

        Returns
        -------
        list of (calib_type, day_obs)
            The days written, sorted.

        Examples
        --------
        >>> HistoryStore(root).add(df)                     # doctest: +SKIP
        [('bias', 20250601)]
        """
        table = self._normalise(df)
        written = []
        for (ctype, day), part in table.groupby(["calib_type", "day_obs"], sort=True, observed=True):
            self._write_day(str(ctype), int(day), part)
            written.append((str(ctype), int(day)))
        log.info("history %s: wrote %d day file(s)", self.path, len(written))
        return written

    def _normalise(self, df: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in _REQUIRED if c not in df.columns]
        if "day_obs" not in df.columns and "mjd" not in df.columns:
            missing.append("day_obs or mjd")
        if missing:
            raise InputError(None, f"metrics table lacks column(s) {', '.join(missing)}")
        out = pd.DataFrame(index=df.index)
        for c in STORE_COLUMNS:
            out[c] = df[c] if c in df.columns else pd.Series(pd.NA, index=df.index, dtype="object")
        extra = sorted(set(df.columns) - set(STORE_COLUMNS))
        if extra:
            log.debug("history: not storing column(s) %s", extra)
        mjd = pd.to_numeric(out["mjd"], errors="coerce").astype("float64")
        day = pd.to_numeric(out["day_obs"], errors="coerce").astype("Float64")
        day = day.to_numpy(dtype="float64", na_value=np.nan)
        from_mjd = day_obs_from_mjd(mjd.to_numpy())
        day = np.where(np.isfinite(day) & (day > 0), day, from_mjd).astype("int64")
        out["day_obs"] = day
        ctype = _lower(out["calib_type"])
        keep = (day > 0) & ctype.notna().to_numpy()
        if not keep.all():
            log.warning("history: dropping %d row(s) with no day_obs, mjd or calib_type", int((~keep).sum()))
        out["calib_type"] = ctype
        out = out[keep]
        bad = sorted({str(t) for t in out["calib_type"].unique() if not _CALIB_TYPE.match(str(t))})
        if bad:
            raise InputError(None, f"calib_type(s) not usable as directory names: {bad}")
        return out

    def _write_day(self, calib_type: str, day_obs: int, part: pd.DataFrame) -> None:
        import pyarrow.parquet as pq

        table = _to_arrow(part)
        target = self.file(calib_type, day_obs)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The temporary file lives beside the target so os.replace is a same-filesystem
        # rename (atomic); the leading dot hides it from pyarrow, pandas and dask readers.
        # Created 0666 less the umask (as any other file, and the mosaic store's), not
        # mkstemp's 0600, which would outlive the rename and hide the night from the group.
        fd, tmp = _create_beside(target)
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.debug("history: wrote %s (%d rows)", target, table.num_rows)

    def remove(self, calib_type: str, day_obs: int) -> bool:
        """Delete one stored day; True if it was there."""
        f = self.file(calib_type, day_obs)
        if f.exists():
            f.unlink()
            return True
        return False

    # -- reading ----------------------------------------------------------------
    def files(self, calib_type: str | None = None, start: int | str | None = None,
              end: int | str | None = None) -> list[Path]:
        """The day files in a date range (inclusive), by calib type then day."""
        lo, hi = as_day_obs(start), as_day_obs(end)
        types = [calib_type] if calib_type else self.calib_types()
        out = []
        for t in types:
            for day, p in sorted(self._day_files(t).items()):
                if (lo is None or day >= lo) and (hi is None or day <= hi):
                    out.append(p)
        return out

    def load(self, calib_type: str | None = None, metric: str | Sequence[str] | None = None,
             start: int | str | None = None, end: int | str | None = None, *,
             columns: Iterable[str] | None = None) -> pd.DataFrame:
        """Read stored rows as a tidy metrics table.

        String columns come back categorical (compact; they compare equal to ``str``),
        ``day_obs`` and ``exposure`` as ``Int64``, ``passed`` as ``boolean``, ``detector``
        as ``int64`` (``Int64`` when some rows have none).  A night file that cannot be
        read (corrupt, truncated, unreadable) is logged by name and skipped; the result's
        ``attrs["problems"]`` lists them as ``(path, reason)`` (empty when all were read).

        Parameters
        ----------
        calib_type
            Only this calib type.
        metric
            Only this metric (or these metrics).
        start, end
            Inclusive day range, ``YYYYMMDD`` as int or string.
        columns
            Only these columns (default: all of :data:`STORE_COLUMNS`).

        Examples
        --------
        >>> store.load("bias", metric="NOISE", start=20250101, end="2025-01-31")  # doctest: +SKIP
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        cols = list(columns) if columns is not None else list(STORE_COLUMNS)
        unknown = set(cols) - set(STORE_COLUMNS)
        if unknown:
            raise InputError(self.path, f"no such column(s) in the history: {sorted(unknown)}")
        if calib_type is not None and not _CALIB_TYPE.match(str(calib_type)):
            raise InputError(self.path, f"not a calib type: {calib_type!r}")
        paths = self.files(calib_type, start, end)
        schema = _schema()
        problems: list[tuple[str, str]] = []
        if not paths:
            table = schema.empty_table().select(cols)
        else:
            filt = None
            if metric is not None:
                wanted = [metric] if isinstance(metric, str) else list(metric)
                filt = pc.field("metric").isin(wanted)
            try:
                table = _read(paths, schema, cols, filt)
            except (OSError, ValueError, pa.ArrowException):
                table, problems = self._read_each(paths, schema, cols, filt)
        mapping = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype()}
        out = table.to_pandas(types_mapper=mapping.get, split_blocks=True, self_destruct=True)
        if "detector" in out.columns:
            det = out["detector"]
            out["detector"] = det.astype("int64") if not det.isna().any() else det.astype("Int64")
        out.attrs["problems"] = problems
        return out

    def _read_each(self, paths: list[Path], schema, cols: list[str], filt) -> tuple:
        """Read night files one by one, skipping (and naming) those that cannot be read.

        The slow path of :meth:`load`, taken only when reading them together failed.
        """
        tables, problems = [], []
        for p in paths:
            try:
                tables.append(_read([p], schema, cols, filt))
            except Exception as exc:  # pyarrow raises a zoo of types on a corrupt file
                reason = f"cannot read this night file, skipped ({type(exc).__name__}: {exc})"
                log.warning("%s: %s", p, reason)
                problems.append((str(p), reason))
        if not tables:
            return schema.empty_table().select(cols), problems
        import pyarrow as pa

        return pa.concat_tables(tables), problems


def _read(paths: Sequence[Path], schema, cols: list[str], filt):
    """The rows of some night files as one arrow table, in the store's schema."""
    import pyarrow.dataset as ds

    dataset = ds.dataset([str(p) for p in paths], schema=schema, format="parquet")
    return dataset.to_table(columns=cols, filter=filt, use_threads=True)


def _create_beside(target: Path) -> tuple[int, str]:
    """A new, uniquely named hidden file beside *target*, mode 0666 less the umask."""
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.open(tmp, flags, 0o666), str(tmp)


def _lower(col: pd.Series) -> pd.Series:
    """Lower-cased strings; for a categorical only its categories are touched (a year of rows
    holds three calib types)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = pd.Index(col.cat.categories.astype(str)).str.lower()
        if cats.is_unique:
            return pd.Series(pd.Categorical.from_codes(col.cat.codes, categories=cats), index=col.index)
    return col.astype("string").str.lower()


def _to_arrow(part: pd.DataFrame):
    """One day's rows as an arrow table in the store's schema, sorted for compression."""
    import pyarrow as pa

    schema = _schema()
    part = part.sort_values(["metric", "detector", "amp", "exposure"], kind="stable", na_position="last")
    arrays = []
    for field in schema:
        col = part[field.name]
        if field.name in _DICT_COLUMNS:
            if isinstance(col.dtype, pd.CategoricalDtype):  # reuse the codes: no string work
                codes = col.cat.codes.to_numpy().astype("int32")
                cats = pa.array([str(c) for c in col.cat.categories], type=pa.string())
                arr = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), cats)
            else:
                values = col.astype("string").to_numpy(dtype=object, na_value=None)
                arr = pa.array(values, type=pa.string()).dictionary_encode().cast(field.type)
        elif field.name == "passed":
            arr = pa.array(col.astype("boolean"), type=pa.bool_())
        elif isinstance(col.dtype, np.dtype) and col.dtype.kind in "iu" + "f" * pa.types.is_floating(field.type):
            arr = pa.array(col.to_numpy()).cast(field.type)  # plain numpy: no missing values
        elif pa.types.is_integer(field.type):
            arr = pa.array(pd.to_numeric(col, errors="coerce").astype("Int64"), type=pa.int64()).cast(field.type)
        else:
            arr = pa.array(pd.to_numeric(col, errors="coerce").astype("float64"), type=field.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)
