"""Image stretches for the mosaic view, in the style of ``astropy.visualization``.

An *interval* picks the data limits ``(vmin, vmax)``; a *stretch* maps ``[0, 1] -> [0, 1]``;
:class:`ImageNormalize` composes them and can map display values back to data values
(for colour-bar labels).  NaN stays NaN.

>>> import numpy as np
>>> norm = make_normalize("asinh", np.linspace(0, 100, 101))
>>> [round(float(v), 3) for v in norm(np.array([0.0, 100.0]))]
[0.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "LinearStretch", "SqrtStretch", "LogStretch", "AsinhStretch", "HistEqStretch",
    "ManualInterval", "MinMaxInterval", "PercentileInterval", "ZScaleInterval",
    "ImageNormalize", "make_normalize", "STRETCHES",
]


def _finite(data, max_sample: int = 200_000) -> np.ndarray:
    a = np.asarray(data, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if a.size > max_sample:  # a regular subsample is enough for limits and quantiles
        a = a[:: a.size // max_sample]
    return a


# -- intervals ------------------------------------------------------------------
@dataclass(frozen=True)
class ManualInterval:
    vmin: float
    vmax: float

    def get_limits(self, data) -> tuple[float, float]:
        return float(self.vmin), float(self.vmax)


@dataclass(frozen=True)
class MinMaxInterval:
    def get_limits(self, data) -> tuple[float, float]:
        a = _finite(data)
        return (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)


@dataclass(frozen=True)
class PercentileInterval:
    """Central *percentile* per cent of the finite values (99.5 -> 0.25 .. 99.75)."""

    percentile: float = 99.5

    def get_limits(self, data) -> tuple[float, float]:
        a = _finite(data)
        if not a.size:
            return (0.0, 1.0)
        cut = (100.0 - self.percentile) / 2.0
        lo, hi = np.percentile(a, [cut, 100.0 - cut])
        return float(lo), float(hi)


@dataclass(frozen=True)
class ZScaleInterval:
    """IRAF's zscale: a line fitted to the sorted sample with iterative rejection."""

    n_samples: int = 1000
    contrast: float = 0.25
    max_reject: float = 0.5
    krej: float = 2.5
    max_iterations: int = 5

    def get_limits(self, data) -> tuple[float, float]:
        a = _finite(data)
        if a.size == 0:
            return (0.0, 1.0)
        s = np.sort(a[:: max(1, a.size // self.n_samples)])
        n = s.size
        lo, hi = float(s[0]), float(s[-1])
        x = np.arange(n, dtype=float)
        good = np.ones(n, bool)
        slope, intercept = 0.0, float(np.median(s))
        for _ in range(self.max_iterations):
            if good.sum() < max(5, int(n * (1 - self.max_reject))):
                break
            slope, intercept = np.polyfit(x[good], s[good], 1)
            resid = s - (slope * x + intercept)
            sigma = np.std(resid[good])
            new = np.abs(resid) < self.krej * max(sigma, 1e-30)
            if (new == good).all():
                break
            good = new
        centre = np.median(s)
        slope = slope / self.contrast
        zmin = max(lo, centre - (n / 2) * slope)
        zmax = min(hi, centre + (n / 2) * slope)
        return (float(zmin), float(zmax)) if zmax > zmin else (lo, hi)


# -- stretches on [0, 1] ---------------------------------------------------------
@dataclass(frozen=True)
class LinearStretch:
    def __call__(self, x):
        return x

    def inverse(self, y):
        return y


@dataclass(frozen=True)
class SqrtStretch:
    def __call__(self, x):
        return np.sqrt(np.clip(x, 0, None))

    def inverse(self, y):
        return np.asarray(y) ** 2


@dataclass(frozen=True)
class LogStretch:
    """``log(a x + 1) / log(a + 1)``."""

    a: float = 1000.0

    def __call__(self, x):
        return np.log1p(self.a * np.clip(x, 0, None)) / np.log1p(self.a)

    def inverse(self, y):
        return np.expm1(np.asarray(y) * np.log1p(self.a)) / self.a


@dataclass(frozen=True)
class AsinhStretch:
    """``asinh(x / a) / asinh(1 / a)``: linear near 0, logarithmic above *a*."""

    a: float = 0.1

    def __call__(self, x):
        return np.arcsinh(np.asarray(x) / self.a) / np.arcsinh(1.0 / self.a)

    def inverse(self, y):
        return self.a * np.sinh(np.asarray(y) * np.arcsinh(1.0 / self.a))


class HistEqStretch:
    """Histogram equalisation (equal-population colours, as bokeh's ``eq_hist``)."""

    def __init__(self, normalised_data, n: int = 1024) -> None:
        a = _finite(normalised_data)
        self.q = np.quantile(a, np.linspace(0, 1, n)) if a.size else np.linspace(0, 1, n)
        self.q = np.maximum.accumulate(self.q)
        self.levels = np.linspace(0, 1, n)

    def __call__(self, x):
        return np.interp(x, self.q, self.levels, left=0.0, right=1.0)

    def inverse(self, y):
        return np.interp(y, self.levels, self.q)


# -- composition -----------------------------------------------------------------
@dataclass
class ImageNormalize:
    """Data -> [0, 1] display values: ``stretch((clip(data) - vmin) / (vmax - vmin))``."""

    vmin: float
    vmax: float
    stretch: object = LinearStretch()

    def __call__(self, data) -> np.ndarray:
        span = (self.vmax - self.vmin) or 1.0
        with np.errstate(invalid="ignore"):
            x = np.clip((np.asarray(data, dtype=np.float32) - self.vmin) / span, 0.0, 1.0)
            out = np.asarray(self.stretch(x), dtype=np.float32)
        return np.where(np.isfinite(np.asarray(data, dtype=np.float32)), out, np.float32(np.nan))

    def inverse(self, values) -> np.ndarray:
        """Display values in [0, 1] -> data values."""
        return self.vmin + np.asarray(self.stretch.inverse(np.asarray(values, float))) * (self.vmax - self.vmin)


#: Names accepted by :func:`make_normalize`: (interval, stretch) factories.
STRETCHES = {
    "linear": (MinMaxInterval, LinearStretch),
    "sqrt": (lambda: PercentileInterval(99.5), SqrtStretch),
    "log": (lambda: PercentileInterval(99.5), LogStretch),
    "asinh": (lambda: PercentileInterval(99.5), AsinhStretch),
    "zscale": (ZScaleInterval, LinearStretch),
    "percentile": (lambda: PercentileInterval(99.5), LinearStretch),
    "eq_hist": (MinMaxInterval, None),
}


def make_normalize(name: str, data, limits: tuple[float, float] | None = None) -> ImageNormalize:
    """The :class:`ImageNormalize` for a stretch *name* fitted to *data*.

    *limits* replaces the interval (e.g. a mosaic store's per-level window).

    >>> import numpy as np
    >>> n = make_normalize("linear", np.array([0.0, 10.0]))
    >>> n(np.array([5.0])).tolist()
    [0.5]
    """
    try:
        interval_f, stretch_f = STRETCHES[name]
    except KeyError:
        raise ValueError(f"unknown stretch {name!r}; choose one of {sorted(STRETCHES)}") from None
    lo, hi = limits if limits is not None else interval_f().get_limits(data)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    if stretch_f is None:
        sample = _finite(data)
        stretch = HistEqStretch(np.clip((sample - lo) / (hi - lo), 0, 1))
    else:
        stretch = stretch_f()
    return ImageNormalize(float(lo), float(hi), stretch)
