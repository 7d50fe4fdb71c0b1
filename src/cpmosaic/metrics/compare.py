"""Compare two calibrations: metric by metric (tidy tables) or pixel by pixel (images).

Metric level: every (calib_type, tier, detector, amp, metric) of table A is joined
with B.  When both tables hold the same exposures of a calibration type the join
also matches exposures; otherwise each side is reduced to its per-amp median
over exposures first.  ``diff = value_b - value_a``; identical inputs give
exactly zero.

Image level: calibration frames of the same detector from two directories (or
two Butler collections) are differenced amp by amp with
``cpmosaic.kernels.amp_difference_statistics``.

>>> diff = compare_metrics(load_metrics("runA"), load_metrics("runB"))   # doctest: +SKIP
>>> comparison_summary(diff)["fraction_identical"]                       # doctest: +SKIP
1.0
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import CpmosaicError, InputError

if TYPE_CHECKING:
    from ..camera import Camera

log = logging.getLogger(__name__)

__all__ = ["DIFF_COLUMNS", "IMAGE_DIFF_COLUMNS", "compare_images", "compare_metrics", "comparison_summary",
           "image_files_by_detector"]

_KEY = ["calib_type", "tier", "detector", "detector_name", "amp", "metric"]
DIFF_COLUMNS = tuple(_KEY[:1]) + ("exposure",) + tuple(_KEY[1:]) + (
    "value_a", "value_b", "diff", "abs_diff", "rel_diff", "n_a", "n_b")
IMAGE_DIFF_COLUMNS = ("detector", "detector_name", "amp", "mean", "median", "robust_sigma", "max_abs",
                      "frac_differing", "n_pixels")


def _reduce(df: pd.DataFrame, by_exposure: bool) -> pd.DataFrame:
    """One value per key (and exposure): the median, which is the value itself when unique."""
    keys = _KEY + (["exposure"] if by_exposure else [])
    sub = df[df["value"].notna()]
    if by_exposure:
        sub = sub.assign(exposure=sub["exposure"].astype("float64").fillna(-1.0))
    g = sub.groupby(keys, sort=False, dropna=False)["value"]
    out = g.agg(["median", "size"]).reset_index()
    return out.rename(columns={"median": "value", "size": "n"})


def compare_metrics(a: pd.DataFrame, b: pd.DataFrame, *, by_exposure: bool | None = None) -> pd.DataFrame:
    """Per-amp differences of every metric between two tidy tables.

    Parameters
    ----------
    a, b
        Tidy metrics tables (two runs, collections or sources).
    by_exposure
        Join on exposure too.  None (default): per calibration type, when A and
        B hold the same set of exposures.

    Returns
    -------
    pandas.DataFrame
        Columns ``DIFF_COLUMNS``: ``exposure`` is ``<NA>`` for rows compared as
        medians over exposures; ``value_a``/``value_b`` NaN for keys only on one
        side; ``diff = value_b - value_a``, ``rel_diff = diff / abs(value_a)``
        (0 where both are 0); ``n_a``/``n_b`` count the values behind each side.

    Examples
    --------
    >>> d = compare_metrics(df, df.copy())                          # doctest: +SKIP
    >>> bool((d["diff"] == 0).all())                                 # doctest: +SKIP
    True
    """
    frames = []
    types = sorted(set(a["calib_type"].dropna()) | set(b["calib_type"].dropna()))
    for ct in types:
        sa, sb = a[a["calib_type"] == ct], b[b["calib_type"] == ct]
        same = set(sa["exposure"].dropna().tolist()) == set(sb["exposure"].dropna().tolist())
        by_exp = same if by_exposure is None else by_exposure
        ra, rb = _reduce(sa, by_exp), _reduce(sb, by_exp)
        keys = _KEY + (["exposure"] if by_exp else [])
        m = ra.merge(rb, on=keys, how="outer", suffixes=("_a", "_b"), sort=False)
        if not by_exp:
            m["exposure"] = np.nan
        frames.append(m)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in DIFF_COLUMNS})
    m = pd.concat(frames, ignore_index=True)
    va, vb = m["value_a"].to_numpy(float), m["value_b"].to_numpy(float)
    diff = vb - va
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(va))
    m["diff"], m["abs_diff"], m["rel_diff"] = diff, np.abs(diff), rel
    m["exposure"] = m["exposure"].astype("float64")
    m["exposure"] = m["exposure"].where(m["exposure"] >= 0).astype("Int64")
    for c in ("n_a", "n_b"):
        m[c] = m[c].fillna(0).astype(np.int64)
    m = m.sort_values(["calib_type", "exposure", "detector", "tier", "amp", "metric"], kind="stable")
    return m.reset_index(drop=True)[list(DIFF_COLUMNS)]


def comparison_summary(diff: pd.DataFrame, top: int = 10) -> dict:
    """Summary of :func:`compare_metrics`: how much is identical, the largest differences.

    Returns
    -------
    dict
        ``n_compared`` (keys on both sides), ``n_identical``, ``fraction_identical``,
        ``max_abs_diff``, ``largest`` (top-N records by abs_diff), ``by_metric``
        (per calib_type/metric: n, n_identical, max and median abs_diff),
        ``only_in_a``, ``only_in_b`` (counts of keys on one side only).
    """
    both = diff["value_a"].notna() & diff["value_b"].notna()
    cmp = diff[both]
    ident = cmp["diff"] == 0
    largest = cmp[~ident].sort_values("abs_diff", ascending=False, kind="stable").head(top)
    by_metric = {}
    for (ct, metric), g in cmp.groupby(["calib_type", "metric"], sort=True):
        by_metric[f"{ct}/{metric}"] = {
            "n": int(len(g)), "n_identical": int((g["diff"] == 0).sum()),
            "max_abs_diff": _num(g["abs_diff"].max()), "median_abs_diff": _num(g["abs_diff"].median()),
        }
    return {
        "n_compared": int(len(cmp)),
        "n_identical": int(ident.sum()),
        "fraction_identical": (float(ident.mean()) if len(cmp) else None),
        "max_abs_diff": (_num(cmp["abs_diff"].max()) if len(cmp) else None),
        "largest": [_record(r) for r in largest.itertuples(index=False)],
        "by_metric": by_metric,
        "only_in_a": int((diff["value_a"].notna() & diff["value_b"].isna()).sum()),
        "only_in_b": int((diff["value_b"].notna() & diff["value_a"].isna()).sum()),
    }


def _num(v):
    if v is None or v is pd.NA:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _record(r) -> dict:
    return {
        "calib_type": r.calib_type, "exposure": None if pd.isna(r.exposure) else int(r.exposure),
        "detector": int(r.detector), "detector_name": r.detector_name, "amp": r.amp, "tier": r.tier,
        "metric": r.metric, "value_a": _num(r.value_a), "value_b": _num(r.value_b), "diff": _num(r.diff),
    }


# -- image level -------------------------------------------------------------------------

_FITS_SUFFIXES = (".fits", ".fit", ".fits.fz", ".fits.gz", ".fz")
_DET_IN_NAME = re.compile(r"R[0-9X]{2}_S(?:\d\d|[GW]\d)")


def image_files_by_detector(directory: str | os.PathLike, camera=None,
                            problems: list[dict] | None = None) -> dict[int, str]:
    """FITS files of a directory (recursively) keyed by detector id.

    The detector comes from the headers (``cpmosaic.io.identify``), else from a
    detector name in the file name; files naming no known detector, and second
    files for one detector, are reported in *problems*.
    """
    from ..camera import get_camera
    from ..io import identify

    problems = problems if problems is not None else []
    cam = get_camera(camera) if camera is not None else None
    out: dict[int, str] = {}
    root = Path(directory)
    if not root.is_dir():
        raise InputError(directory, "not a directory of calibration FITS files")
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(_FITS_SUFFIXES)):
        det = None
        try:
            det = identify(path, cam).detector
        except (CpmosaicError, OSError, ValueError, KeyError) as exc:
            log.debug("%s: identify failed: %s", path, exc)
        if det is None:
            m = _DET_IN_NAME.search(path.name)
            c = cam or get_camera("LSSTCam")
            if m and m.group(0) in c:
                det = c[m.group(0)].id
        if det is None:
            problems.append({"source": str(path), "problem": "no detector in the headers or the file name"})
            log.warning("%s: no detector in the headers or the file name; skipped", path)
            continue
        if det in out:
            problems.append({"source": str(path), "problem": f"second file for detector {det} (kept {out[det]})"})
            log.warning("%s: second file for detector %s; skipped", path, det)
            continue
        out[int(det)] = str(path)
    return out


def _read(path: str, camera):
    from ..io import open_exposure

    with open_exposure(path, camera) as exp:
        return exp.read(), exp.detector


def compare_images(a: str | os.PathLike, b: str | os.PathLike, *, camera: Camera | str | os.PathLike | None = None, collection_a: str | None = None,
                   collection_b: str | None = None, dataset_type: str = "bias", tolerance: float = 0.0,
                   progress: bool | None = None) -> pd.DataFrame:
    """Per-amp difference statistics ``B - A`` of two calibrations over the focal plane.

    Parameters
    ----------
    a, b
        Directories of calibration FITS files (paired by detector), or Butler
        repository roots with *collection_a* / *collection_b*.
    camera
        Camera for detector and amp geometry (default: from the files).
    dataset_type
        Butler dataset type of the calibration (``bias``, ``dark``, ``flat``).
    tolerance
        ``frac_differing`` counts pixels with abs(B - A) > tolerance.

    Returns
    -------
    pandas.DataFrame
        Columns ``IMAGE_DIFF_COLUMNS``, one row per amp of every detector in both;
        ``attrs["problems"]`` lists unreadable or unpaired files.

    Examples
    --------
    >>> d = compare_images("bias_v1/", "bias_v2/")                  # doctest: +SKIP
    >>> d.groupby("detector_name").max_abs.max().sort_values().tail()  # doctest: +SKIP
    """
    from .. import progress as prog
    from ..camera import get_camera
    from ..kernels import amp_difference_statistics

    problems: list[dict] = []
    cam = get_camera(camera) if camera is not None else None
    files = []
    for src, coll in ((a, collection_a), (b, collection_b)):
        if coll is not None:
            from ..io.butler import calibration_files

            files.append(calibration_files(src, coll, dataset_type))
        else:
            files.append(image_files_by_detector(src, cam, problems))
    fa, fb = files
    for det in sorted(set(fa) ^ set(fb)):
        side, path = ("A", fa[det]) if det in fa else ("B", fb[det])
        problems.append({"source": path, "problem": f"detector {det} only in {side}"})
        log.warning("%s: detector %s only in %s; not compared", path, det, side)
    rows: list[pd.DataFrame] = []
    common = sorted(set(fa) & set(fb))
    for det in prog.track(common, total=len(common), desc="detectors", progress=progress):
        try:
            img_a, det_a = _read(fa[det], cam)
            img_b, _ = _read(fb[det], cam)
            geom = det_a if det_a is not None else (cam or get_camera("LSSTCam"))[det]
            if img_a.shape != img_b.shape or img_a.shape != geom.shape:
                raise InputError(fb[det], f"shape {img_b.shape} vs {img_a.shape} (A), camera {geom.shape}")
            boxes = np.array([amp.bbox.as_tuple() for amp in geom.amplifiers], dtype=np.int64)
            # The kernel differences its first argument minus its second: B - A.
            st = amp_difference_statistics(img_b, img_a, boxes, tolerance=tolerance)
        except (CpmosaicError, OSError, ValueError, KeyError) as exc:
            problem = exc.problem if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            problems.append({"source": f"{fa[det]} | {fb[det]}", "problem": problem})
            log.warning("detector %s: %s; skipped", det, problem)
            continue
        frame = pd.DataFrame({"detector": geom.id, "detector_name": geom.name,
                              "amp": [amp.name for amp in geom.amplifiers]})
        for k in ("mean", "median", "robust_sigma", "max_abs", "frac_differing"):
            frame[k] = np.asarray(st[k], dtype=float)
        frame["n_pixels"] = np.asarray(st["n_pixels"], dtype=np.int64)
        rows.append(frame)
    out = (pd.concat(rows, ignore_index=True) if rows
           else pd.DataFrame({c: pd.Series(dtype="float64") for c in IMAGE_DIFF_COLUMNS}))
    out = out[list(IMAGE_DIFF_COLUMNS)]
    out.attrs["problems"] = problems
    return out
