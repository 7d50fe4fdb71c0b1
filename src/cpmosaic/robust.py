"""Robust statistics: median, MAD-based sigma, robust z and colour ranges, in one place.

Every part of cpmosaic that asks "how far from typical is this value?" uses these
functions: heat-map colour ranges, outlier z-scores and drift detection.  So a colour
range and a z-score computed from the same sample always agree.

sigma_MAD
    ``MAD_TO_SIGMA * median(|x - median(x)|)``, the median absolute deviation scaled
    to a Gaussian sigma (astropy's ``mad_std``; analysis_tools' ``sigmaMad``).

The one fallback
    Where more than half the values are equal the MAD is 0.  Sigma then falls back to
    ``MEANAD_TO_SIGMA * mean(|x - median(x)|)`` (the mean absolute deviation scaled to a
    Gaussian sigma), so the few values that differ get large but finite scores.  Only a
    constant sample has sigma 0; its values all score 0.

>>> import numpy as np
>>> x = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
>>> round(sigma_mad(x), 4)
1.4826
>>> robust_z(x).round(3).tolist()
[-1.349, -0.674, 0.0, 0.674, 65.426]
>>> robust_z([5.0, 5.0, 5.0, 5.0, 6.0]).round(3).tolist()  # MAD 0: the fallback
[0.0, 0.0, 0.0, 0.0, 3.989]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MAD_TO_SIGMA",
    "MEANAD_TO_SIGMA",
    "color_range",
    "robust_stats",
    "robust_z",
    "sigma_from_deviations",
    "sigma_mad",
    "symmetric_range",
    "z_scores",
]

#: 1 / Phi^-1(3/4): the MAD of a Gaussian times this is its sigma (astropy's mad_std factor).
MAD_TO_SIGMA = 1.482602218505602
#: sqrt(pi / 2): the mean absolute deviation of a Gaussian times this is its sigma.
MEANAD_TO_SIGMA = math.sqrt(math.pi / 2.0)


def _finite(values: ArrayLike) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    return a[np.isfinite(a)]


def sigma_from_deviations(mad: Any, mean_absdev: Any) -> np.ndarray:
    """Sigma from a sample's MAD and mean absolute deviation (both about the median).

    Vectorised, for callers that already hold per-group deviations (pandas
    ``groupby``): ``MAD_TO_SIGMA * mad``, or the fallback
    ``MEANAD_TO_SIGMA * mean_absdev`` where the MAD is 0.

    >>> sigma_from_deviations([1.0, 0.0], [2.0, 0.5]).round(4).tolist()
    [1.4826, 0.6267]
    """
    mad = np.asarray(mad, dtype=float)
    mean_absdev = np.asarray(mean_absdev, dtype=float)
    return np.where(mad > 0, MAD_TO_SIGMA * mad, MEANAD_TO_SIGMA * mean_absdev)


def robust_stats(values: ArrayLike) -> tuple[float, float, int]:
    """``(median, sigma, n)`` of the finite values (``(nan, nan, 0)`` when there are none).

    >>> robust_stats([1.0, 2.0, np.nan, 3.0])
    (2.0, 1.482602218505602, 3)
    """
    a = _finite(values)
    if a.size == 0:
        return math.nan, math.nan, 0
    med = float(np.median(a))
    dev = np.abs(a - med)
    sigma = float(sigma_from_deviations(np.median(dev), dev.mean()))
    return med, sigma, int(a.size)


def sigma_mad(values: ArrayLike) -> float:
    """Robust sigma of the finite values (MAD-based, with the documented fallback).

    >>> sigma_mad([0.0, 0.0, 0.0])
    0.0
    """
    return robust_stats(values)[1]


def z_scores(values: ArrayLike, median: Any, sigma: Any) -> np.ndarray:
    """``(values - median) / sigma``; where sigma is 0 (a constant sample) the score is 0.

    NaN values stay NaN.  Arguments broadcast, so per-group medians and sigmas work.
    """
    x = np.asarray(values, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - np.asarray(median, dtype=float)) / sigma
    return np.where(sigma == 0, np.where(np.isnan(x), np.nan, 0.0), z)


def robust_z(values: ArrayLike) -> np.ndarray:
    """Robust z-scores of one sample: ``(x - median) / sigma``; NaN values stay NaN.

    >>> robust_z([np.nan, 1.0, 1.0]).tolist()
    [nan, 0.0, 0.0]
    """
    x = np.asarray(values, dtype=float)
    med, sigma, n = robust_stats(x)
    if n == 0:
        return np.full(x.shape, np.nan)
    return z_scores(x, med, sigma)


def color_range(values: ArrayLike, nsigma: float = 4.0, log: bool = False,
                clip: bool = True) -> tuple[float, float]:
    """Colour range median +- *nsigma* sigma (the sigma of :func:`robust_stats`).

    The range analysis_tools' FocalPlaneGeometryPlot uses.  With ``log=True`` it is
    computed on log10 of the positive values and returned in data units.  With
    ``clip`` it is clipped to the data, so a tight distribution does not waste colours
    beyond it.  A constant or empty input still gives a non-empty range.

    >>> color_range([1.0, 1.0, 1.0])
    (0.99, 1.01)
    >>> color_range([])
    (0.0, 1.0)
    """
    a = _finite(values)
    if log:
        a = a[a > 0]
    if a.size == 0:
        return (1.0, 10.0) if log else (0.0, 1.0)
    if log:
        a = np.log10(a)
    med, sigma, _ = robust_stats(a)
    lo, hi = med - nsigma * sigma, med + nsigma * sigma
    if clip:
        lo, hi = max(lo, float(a.min())), min(hi, float(a.max()))
    if not hi > lo:
        half = 0.01 * abs(med) if med != 0 else 1.0
        lo, hi = med - half, med + half
    if log:
        return float(10.0**lo), float(10.0**hi)
    return float(lo), float(hi)


def symmetric_range(values: ArrayLike, nsigma: float = 4.0) -> tuple[float, float]:
    """A range centred on 0 holding median +- *nsigma* sigma (for differences).

    >>> symmetric_range([0.0, 0.0])
    (-1.0, 1.0)
    """
    a = _finite(values)
    if a.size == 0:
        return (-1.0, 1.0)
    med, sigma, _ = robust_stats(a)
    half = abs(med) + nsigma * sigma
    if not half > 0:
        half = float(np.abs(a).max()) or 1.0
    return (-float(half), float(half))
