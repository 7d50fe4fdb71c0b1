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

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["PTC_COLUMNS", "ptc_reference"]

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
