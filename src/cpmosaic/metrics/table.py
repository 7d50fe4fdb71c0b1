"""The tidy metrics table: one row per (run, exposure, detector, amp, metric).

``load_metrics`` reads cp_verify outputs from a directory tree (the Butler POSIX
layout of ENGINEERING.md) or a Butler repository into the table whose columns
ENGINEERING.md fixes.  Exposure-wide rows (flat ``EXP SCATTER``, an exposure's
overall ``SUCCESS``) have ``detector`` -1 and ``detector_name`` "".

>>> df = load_metrics("cpv_out")                            # doctest: +SKIP
>>> df[df.metric == "NOISE"].groupby("detector_name").value.median()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.cpverify import BY_NAME, EXPOSURE_WIDE, day_obs_of_exposure

if TYPE_CHECKING:
    from ..camera import Camera

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "EXPOSURE_WIDE", "empty_table", "load_metrics", "build_table"]

#: Column order of the tidy table (ENGINEERING.md).
COLUMNS = ("instrument", "calib_type", "run", "exposure", "day_obs", "mjd", "detector", "detector_name",
           "amp", "tier", "metric", "value", "passed")
_KEY = ["calib_type", "run", "exposure", "detector", "amp", "tier", "metric"]


def empty_table() -> pd.DataFrame:
    """A tidy table with no rows and the contract's dtypes."""
    return _frame({k: np.empty(0, dtype=object) for k in COLUMNS}, problems=[])


def _frame(cols: dict[str, np.ndarray], problems: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame({
        "instrument": pd.array(cols["instrument"], dtype="str"),
        "calib_type": pd.array(cols["calib_type"], dtype="str"),
        "run": pd.array(cols["run"], dtype="str"),
        "exposure": _nullable_int(cols["exposure"]),
        "day_obs": _nullable_int(cols["day_obs"]),
        "mjd": np.asarray(cols["mjd"], dtype=np.float64),
        "detector": np.asarray(cols["detector"], dtype=np.int64),
        "detector_name": pd.array(cols["detector_name"], dtype="str"),
        "amp": pd.array(cols["amp"], dtype="str"),
        "tier": pd.array(cols["tier"], dtype="str"),
        "metric": pd.array(cols["metric"], dtype="str"),
        "value": np.asarray(cols["value"], dtype=np.float64),
        "passed": _nullable_bool(cols["passed"]),
    })
    df.attrs["problems"] = list(problems)
    return df


def _nullable_int(a) -> pd.api.extensions.ExtensionArray:
    a = np.asarray(a)
    if a.dtype == object:
        a = a.astype(np.int64) if a.size else np.empty(0, np.int64)
    return pd.arrays.IntegerArray(a.astype(np.int64), a < 0)


def _nullable_bool(a) -> pd.api.extensions.ExtensionArray:
    a = np.asarray(a, dtype=np.float64)
    return pd.arrays.BooleanArray(a == 1.0, np.isnan(a))


def build_table(chunks: Iterable[tuple[dict, dict]], camera: Camera | None, problems: list[dict] | None = None,
                calib_types: Iterable[str] | None = None) -> pd.DataFrame:
    """Merge chunks from ``cpmosaic.io.cpverify`` into the tidy table.

    Each item is ``(chunk, meta)`` with meta keys ``source``, ``calib_type``,
    ``run``, ``instrument``, ``priority`` (lower preferred) and ``day_obs``
    (folder value or None).  Detector ids and names come from *camera*; rows of
    detectors it does not know are dropped and reported as problems.  Where
    several products give the same (calib_type, run, exposure, detector, amp,
    metric), the one with the lowest priority (Results before Stats, finer tier
    first) is kept.
    """
    from ..camera import get_camera

    problems = problems if problems is not None else []
    cams: dict[str, Camera] = {}
    parts: list[dict[str, np.ndarray]] = []
    wanted = {c.lower() for c in calib_types} if calib_types else None
    for chunk, meta in chunks:
        n = len(chunk["value"])
        if n == 0 or (wanted and meta["calib_type"] not in wanted):
            continue
        instrument = meta.get("instrument") or getattr(camera, "name", None) or "LSSTCam"
        cam = camera if camera is not None else cams.get(instrument)
        if cam is None:
            cam = cams[instrument] = get_camera(instrument)
        det_id, det_name, ok = _resolve_detectors(chunk["detector"], chunk["detector_name"], cam)
        if not ok.all():
            bad = sorted({str(x) for x in np.where(chunk["detector"] >= 0, chunk["detector"],
                                                    chunk["detector_name"])[~ok]})
            msg = f"unknown detector(s) {', '.join(bad[:5])} for camera {cam.name}"
            problems.append({"source": meta["source"], "problem": msg})
            log.warning("%s: %s; their rows are skipped", meta["source"], msg)
        ok &= _known_amps(det_id, chunk["amp"], ok, cam, meta["source"], problems)
        exposure = chunk["exposure"][ok]
        uniq, inverse = np.unique(exposure, return_inverse=True)  # a few exposures, many rows
        day = np.array([day_obs_of_exposure(int(e)) or -1 for e in uniq], np.int64)[inverse.ravel()]
        if meta.get("day_obs"):
            day = np.where(day < 0, int(meta["day_obs"]), day)
        k = int(ok.sum())
        parts.append({
            "instrument": np.full(k, instrument, object), "calib_type": np.full(k, meta["calib_type"], object),
            "run": np.full(k, meta["run"], object), "exposure": exposure, "day_obs": day,
            "mjd": chunk["mjd"][ok], "detector": det_id[ok], "detector_name": det_name[ok],
            "amp": chunk["amp"][ok], "tier": chunk["tier"][ok], "metric": chunk["metric"][ok],
            "value": chunk["value"][ok], "passed": chunk["passed"][ok],
            "_priority": np.full(k, meta.get("priority", 9), np.int8),
        })
    if not parts:
        return _frame({k: np.empty(0, dtype=object) for k in COLUMNS}, problems)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    df = pd.DataFrame(cols)
    # Fill mjd of verdict rows from other rows of the same exposure (YAML verdicts carry none).
    if df["mjd"].isna().any():
        known = df[df["mjd"].notna() & (df["exposure"] >= 0)].groupby("exposure")["mjd"].first()
        fill = df["exposure"].map(known)
        df["mjd"] = df["mjd"].fillna(fill)
    df = df.sort_values("_priority", kind="stable")
    # A value from a Results table keeps the verdict a Stats dictionary gave for it (defects
    # Results carry no verdict columns): the first non-null passed of each key, by priority.
    dup = df.duplicated(_KEY, keep=False).to_numpy()
    if dup.any() and df["passed"].isna().to_numpy()[dup].any():
        sub = df[dup]
        df.loc[dup, "passed"] = sub.groupby(_KEY, sort=False, dropna=False)["passed"].transform("first")
    df = df.drop_duplicates(_KEY, keep="first")
    df = df.sort_values(["calib_type", "run", "exposure", "detector", "tier", "amp", "metric"], kind="stable")
    df = df.reset_index(drop=True)
    # String columns are already pandas str; only the nullable columns need building.
    df["exposure"] = _nullable_int(df["exposure"].to_numpy())
    df["day_obs"] = _nullable_int(df["day_obs"].to_numpy())
    df["passed"] = _nullable_bool(df["passed"].to_numpy())
    df = df[list(COLUMNS)]
    df.attrs["problems"] = list(problems)
    return df


def _known_amps(det_id: np.ndarray, amps: np.ndarray, ok: np.ndarray, camera, source: str,
                problems: list[dict]) -> np.ndarray:
    """Mask of rows whose amp the camera's detector has (or that have no amp); the others are problems."""
    keep = np.ones(det_id.size, dtype=bool)
    has_amp = ok & (amps != "")
    if not has_amp.any():
        return keep
    pairs = {(int(d), str(a)) for d, a in zip(det_id[has_amp].tolist(), amps[has_amp].tolist())}
    bad: dict[int, list[str]] = {}
    for d, a in pairs:
        det = camera.get(d)
        if det is not None and a not in det.amp_names:
            bad.setdefault(d, []).append(a)
    for d, names in sorted(bad.items()):
        det = camera.get(d)
        sel = has_amp & (det_id == d) & np.isin(amps, names)
        keep &= ~sel
        msg = (f"column 'amplifier': amp name(s) {', '.join(sorted(names)[:5])} are not amps of {det.name} "
               f"in camera {camera.name} (it has {', '.join(det.amp_names[:3])}, ...); {int(sel.sum())} rows skipped")
        problems.append({"source": source, "problem": msg})
        log.warning("%s: %s", source, msg)
    return keep


def _resolve_detectors(ids: np.ndarray, names: np.ndarray, camera):
    """Vectorised id <-> name lookup; returns (ids, names, known mask)."""
    ids = ids.copy()
    out_names = np.full(ids.size, "", dtype=object)
    ok = np.ones(ids.size, dtype=bool)
    exposure_wide = ids == EXPOSURE_WIDE
    for uid in np.unique(ids[ids >= 0]):
        sel = ids == uid
        det = camera.get(int(uid))
        if det is None:
            ok &= ~sel
        else:
            out_names[sel] = det.name
    by_name = ids == BY_NAME
    if by_name.any():
        for uname in set(names[by_name].tolist()):
            sel = by_name & (names == uname)
            det = camera.get(uname) if isinstance(uname, str) else None
            if det is None:
                ok &= ~sel
            else:
                ids[sel] = det.id
                out_names[sel] = det.name
    out_names[exposure_wide] = ""
    return ids, out_names, ok


def load_metrics(source: str | os.PathLike, *, collections: str | list[str] | None = None,
                 camera: Camera | str | os.PathLike | None = None,
                 calib_types: Iterable[str] | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Read cp_verify outputs into the tidy metrics table.

    Parameters
    ----------
    source
        A directory tree of cp_verify outputs (ENGINEERING.md layout), one output
        file, or the root of a Butler repository (it has ``butler.yaml``).
    collections
        Butler collections to read (a str or list); required for a repository.
    camera
        Camera name, file or object for detector ids and names; default the
        instrument the data name (LSSTCam when they name none).
    calib_types
        Only these calibration types (``["bias", "flat"]``); default all.
    progress
        Progress bar (``None``: automatic).

    Returns
    -------
    pandas.DataFrame
        The tidy table; ``df.attrs["problems"]`` lists ``{"source", "problem"}``
        for inputs that could not be read.

    Raises
    ------
    InputError
        The source does not exist, a Butler collection does not exist, or
        nothing in the source could be read.

    Examples
    --------
    >>> df = load_metrics("repo", collections="u/me/verifyBias")  # doctest: +SKIP
    >>> df.attrs["problems"]                                      # doctest: +SKIP
    []
    """
    from ..camera import get_camera
    from ..io.butler import is_butler_repo
    from ..io.cpverify_tree import read_tree

    path = Path(source)
    if not path.exists():
        raise InputError(source, "no such file or directory")
    cam = get_camera(camera) if camera is not None else None
    wanted = {c.lower() for c in calib_types} if calib_types else None
    if is_butler_repo(path):
        from ..io.butler import collections_hint, read_butler

        if not collections:
            raise InputError(source, "is a Butler repository: give the collection(s) to read (--collection)"
                             + collections_hint(path))
        chunks, problems = read_butler(path, collections, calib_types=wanted, progress=progress)
    else:
        chunks, problems = read_tree(path, wanted, progress, cam)
    df = build_table(chunks, cam, problems, wanted)
    if df.empty:
        detail = "; ".join(f"{p['source']}: {p['problem']}" for p in problems[:3])
        raise InputError(source, "no readable cp_verify outputs found" + (f" ({detail})" if detail else ""))
    return df


