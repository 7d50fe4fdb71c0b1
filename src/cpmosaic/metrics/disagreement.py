"""Why a re-evaluated verdict differs from cp_verify's flag (the ``disagreement`` column).

Used by :func:`cpmosaic.metrics.tests.evaluate`; the reasons are listed in that module's
docstring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .tests import Thresholds

__all__ = ["disagreement"]


#: (calib_type group, tier, test) -> the Thresholds fields behind it.
_THRESHOLD_FIELDS = {
    ("biasdark", "amp", "NOISE"): ("noise_tolerance",), ("biasdark", "amp", "CR_NOISE"): ("cr_noise_tolerance",),
    ("biasdark", "amp", "READ_NOISE_CONSISTENT"): ("read_noise_consistent_tolerance",),
    ("flat", "detector", "SCATTER"): ("flat_det_scatter",), ("flat", "exposure", "SCATTER"): ("flat_exp_scatter",),
    ("ptc", "amp", "PTC_GAIN"): ("ptc_gain_percent",), ("ptc", "amp", "PTC_NOISE"): ("ptc_noise_percent",),
    ("ptc", "amp", "PTC_TURNOFF"): ("ptc_turnoff_electrons",), ("ptc", "amp", "PTC_BFE_A00"): ("a00_itl", "a00_e2v"),
    ("gain", "amp", "GAIN_FROM_FLAT_PAIR"): ("gain_percent",), ("gain", "amp", "ISR_NOISE"): ("gain_noise_percent",),
}


#: (calib_type group, tier) -> the tests evaluate() implements there: a flag of one of them
#: without a verdict of ours lacks an input ("value missing"), it is not an unknown test.
_IMPLEMENTED = {
    ("biasdark", "amp"): {"MEAN", "NOISE", "CR_NOISE", "READ_NOISE_CONSISTENT"},
    ("flat", "amp"): {"NOISE"}, ("flat", "detector"): {"SCATTER"}, ("flat", "exposure"): {"SCATTER"},
    ("defects", "amp"): {"OUTLIERS", "STDEV", "MIN", "MAX"},
    ("ptc", "amp"): {"PTC_GAIN", "PTC_NOISE", "PTC_TURNOFF", "PTC_BFE_A00"},
    ("gain", "amp"): {"GAIN_FROM_FLAT_PAIR", "ISR_NOISE"},
}


def disagreement(res: pd.DataFrame, th: Thresholds, default: Thresholds) -> np.ndarray:
    """Why each verdict differs from cp_verify's flag ("" where they agree or cp_verify has none)."""
    changed = {f for f in type(th).__dataclass_fields__ if getattr(th, f) != getattr(default, f)}
    passed, cpv = res["passed"], res["cp_verify_passed"]
    differ = (passed.notna() & cpv.notna() & (passed != cpv)).fillna(False).to_numpy(dtype=bool)
    missing = (passed.isna() & cpv.notna()).to_numpy(dtype=bool)
    out = np.full(len(res), "", dtype=object)
    for i in np.flatnonzero(differ | missing):
        r = res.iloc[i]
        group = "biasdark" if r["calib_type"] in ("bias", "dark") else r["calib_type"]
        fields = [f for f in _THRESHOLD_FIELDS.get((group, r["tier"], r["test"]), ()) if f in changed]
        if missing[i]:
            known = r["test"] in _IMPLEMENTED.get((group, r["tier"]), ())
            out[i] = "value missing" if known or not np.isfinite(r["value"]) else "not re-evaluated"
        elif fields:
            out[i] = "threshold changed: " + ", ".join(
                f"{f} {getattr(th, f)} (cp_verify {getattr(default, f)})" for f in fields)
        elif r["reference"] == "relative scatter":
            out[i] = "relative scatter: cp_verify's flat EXP SCATTER tests the absolute one"
        elif r["reference"] == "nominal" and group == "biasdark":
            out[i] = "nominal read noise: no PTC found, cp_verify used the PTC's"
        elif r["reference"] == "measured":
            out[i] = "measured read noise: no PTC or nominal value"
        else:
            out[i] = "unexplained"
    return out
