"""The PTC gain and read noise per amp that cp_verify's NOISE and READ_NOISE_CONSISTENT use.

cp_verify's ``verifyBias`` / ``verifyDark`` test NOISE against
``getExposureReadNoises(exposure)`` and convert the overscan READ_NOISE_ADU with
``getExposureGains(exposure)``: the PTC's read noise (e-) and gain that ISR wrote into the
exposure, which cp_verify does not store in its outputs.  To re-evaluate those tests as
cp_verify did, cpmosaic needs the PTC; where it finds none it uses the camera's nominal
values and says so (``reference`` column of :func:`cpmosaic.metrics.evaluate`).

Where a PTC is found (documented choice, kept simple):

* in the tidy table itself: cp_verify's PTC verification (``verifyPtc*`` outputs,
  calib_type ``ptc``) carries ``PTC_GAIN`` and ``PTC_NOISE`` per amp: the gain and read
  noise (e-) of the PTC dataset it verified.  A source (file tree or Butler collection)
  that holds both the bias/dark verification and the PTC verification therefore gives
  the PTC values.  With several PTC runs, the median per amp.
* a ``ptc`` dataset (``lsst.ip.isr.PhotonTransferCurveDataset`` as FITS: one table row per
  amp with ``AMPLIFIER_NAME``, ``GAIN`` and ``NOISE``, the read noise in electrons as
  ISR's ``getExposureReadNoises`` uses it): in a Butler repository, the ``ptc`` dataset
  type of the given collections (:func:`find_ptc`); in a file tree, ``ptc_*.fits``
  files under a ``ptc`` folder (the Butler datastore layout).  A dataset wins over
  the verification rows of the same amp.
* an explicit table passed by the caller (``evaluate(df, ptc=...)``) with columns
  ``detector``, ``amp``, ``gain``, ``read_noise``.

>>> import pandas as pd
>>> df = pd.DataFrame({"calib_type": "ptc", "tier": "amp", "detector": 94, "amp": ["C00", "C00"],
...                    "metric": ["PTC_GAIN", "PTC_NOISE"], "value": [1.5, 6.1]})
>>> ptc_reference(df).to_dict("records")
[{'detector': 94, 'amp': 'C00', 'gain': 1.5, 'read_noise': 6.1}]
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..camera import Camera

log = logging.getLogger(__name__)

__all__ = ["PTC_COLUMNS", "find_ptc", "ptc_reference", "read_ptc_file"]

#: Columns of :func:`ptc_reference`.
PTC_COLUMNS = ("detector", "amp", "gain", "read_noise")


def ptc_reference(df: pd.DataFrame) -> pd.DataFrame:
    """Per-amp PTC gain and read noise (e-) from the ``ptc`` rows of a tidy table.

    Returns an empty frame (columns :data:`PTC_COLUMNS`) when the table holds no PTC
    verification.  Non-positive or non-finite values are dropped (not a usable PTC).
    """
    empty = pd.DataFrame({"detector": pd.Series(dtype="int64"), "amp": pd.Series(dtype=object),
                          "gain": pd.Series(dtype="float64"), "read_noise": pd.Series(dtype="float64")})
    if not len(df) or "calib_type" not in df.columns:
        return empty
    sel = (df["calib_type"] == "ptc") & (df["tier"] == "amp") & df["metric"].isin(["PTC_GAIN", "PTC_NOISE"])
    sub = df[sel.fillna(False).to_numpy(dtype=bool)]
    if not len(sub):
        return empty
    value = pd.to_numeric(sub["value"], errors="coerce")
    sub = sub.assign(value=value.where(np.isfinite(value) & (value > 0)))
    wide = sub.pivot_table(index=["detector", "amp"], columns="metric", values="value", aggfunc="median")
    out = pd.DataFrame({
        "detector": wide.index.get_level_values(0).astype("int64"),
        "amp": wide.index.get_level_values(1).astype(str).astype(object),
        "gain": wide["PTC_GAIN"].to_numpy(dtype=float) if "PTC_GAIN" in wide else np.nan,
        "read_noise": wide["PTC_NOISE"].to_numpy(dtype=float) if "PTC_NOISE" in wide else np.nan,
    })
    log.info("PTC reference: gain and read noise of %d amps from the table's ptc verification", len(out))
    return out.reset_index(drop=True)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"detector": pd.Series(dtype="int64"), "amp": pd.Series(dtype=object),
                         "gain": pd.Series(dtype="float64"), "read_noise": pd.Series(dtype="float64")})


def read_ptc_file(path: str | os.PathLike, detector: int | None = None,
                  camera: Camera | str | None = None) -> pd.DataFrame:
    """Per-amp gain and read noise of one PTC dataset file (FITS table of ip_isr's ``toTable``).

    The detector is *detector*, else the header's ``DETECTOR``, else a detector name
    (``R22_S11``) in the file name looked up in *camera*.  ValueError naming the file when
    the table lacks ``AMPLIFIER_NAME``, ``GAIN`` or ``NOISE`` or no detector is known.
    """
    from astropy.table import Table

    t = Table.read(path, format="fits")
    missing = [c for c in ("AMPLIFIER_NAME", "GAIN", "NOISE") if c not in t.colnames]
    if missing:
        raise ValueError(f"{path}: not a PTC dataset table (no column {', '.join(missing)})")
    if detector is None and "DETECTOR" in t.meta:
        detector = int(t.meta["DETECTOR"])
    if detector is None and camera is not None:
        from ..camera import get_camera

        cam = get_camera(camera)
        for det in cam:
            if det.name in Path(path).name:
                detector = det.id
                break
    if detector is None:
        raise ValueError(f"{path}: PTC dataset without a DETECTOR header or detector name")
    amps = [a.decode() if isinstance(a, bytes) else str(a) for a in t["AMPLIFIER_NAME"]]
    return pd.DataFrame({"detector": np.full(len(amps), int(detector), dtype="int64"),
                         "amp": pd.Series(amps, dtype=object),
                         "gain": np.asarray(t["GAIN"], dtype=float),
                         "read_noise": np.asarray(t["NOISE"], dtype=float)})


def _butler_files(root: str | os.PathLike, collections: Sequence[str]) -> dict[int, str]:
    from ..io.butler import calibration_files, open_butler

    butler = open_butler(root)
    names = {dt.name for dt in butler.registry.queryDatasetTypes("ptc")}
    if "ptc" not in names:
        return {}
    files: dict[int, str] = {}
    for coll in collections:
        try:
            found = calibration_files(root, coll, "ptc")
        except Exception as exc:  # no ptc in this collection: the next one may have it
            log.debug("no ptc in %s: %s", coll, exc)
            continue
        for det, path in found.items():
            files.setdefault(det, path)
    return files


def find_ptc(source: str | os.PathLike | pd.DataFrame, collections: Sequence[str] | str | None = None,
             df: pd.DataFrame | None = None, camera: Camera | str | None = None) -> tuple[pd.DataFrame, str]:
    """The PTC reference of a source: its ``ptc`` datasets, else its PTC verification rows.

    Returns ``(table, where)``: :data:`PTC_COLUMNS` rows and a sentence saying where they
    came from ("" and an empty table when there is no PTC).  An unreadable PTC file is
    logged (naming it) and skipped.

    >>> find_ptc("/no/such/tree")[0].empty
    True
    """
    parts, where = [], []
    files: list[tuple[int | None, str]] = []
    if isinstance(source, (str, os.PathLike)) and Path(source).exists():
        from ..io.butler import is_butler_repo

        root = Path(source)
        if is_butler_repo(root):
            colls = [collections] if isinstance(collections, str) else list(collections or [])
            if colls:
                files = list(_butler_files(root, colls).items())
        elif root.is_dir():
            files = [(None, str(p)) for p in sorted(root.rglob("ptc_*.fits")) if "ptc" in p.parent.parts]
    read = 0
    for det, path in files:
        try:
            parts.append(read_ptc_file(path, det, camera=camera))
            read += 1
        except Exception as exc:
            log.warning("%s: cannot read the PTC dataset (%s); skipped", path, exc)
    if read:
        where.append(f"{read} ptc dataset(s)")
    if df is not None:
        rows = ptc_reference(df)
        if len(rows):
            parts.append(rows)
            where.append("the PTC verification (PTC_GAIN, PTC_NOISE)")
    if not parts:
        return _empty(), ""
    out = pd.concat(parts, ignore_index=True).drop_duplicates(["detector", "amp"], keep="first")
    return out.reset_index(drop=True), f"PTC gain and read noise of {len(out)} amps from " + " and ".join(where)
