"""The display layer: how data values become colours, in one place for every view.

``cpmosaic png``, the tile server, the notebook views and the report (its HTML plots and
its PNG rasteriser) all draw through this module, so one store shows the same colours
everywhere.  The path is::

    data --interval--> (vmin, vmax) --stretch--> [0, 1] --quantise--> 0..255 --table--> RGBA

Intervals
    ``minmax``, ``percentile`` (central 99 %), ``zscale`` (IRAF's), ``mad``
    (median +- 5 sigma_MAD, from :mod:`cpmosaic.robust`) or explicit limits.
Stretches
    ``linear``, ``sqrt``, ``log`` (``a = 1000``), ``asinh`` (``a = 0.1``): astropy's
    :mod:`astropy.visualization` classes, with their inverses for colour-bar labels;
    ``eq_hist``: equal-population colours from a quantile table fitted once on a sample,
    so every tile of a store uses the same mapping (datashader's ``eq_hist`` recomputes
    its histogram on each image; it is this module's test reference).
Quantisation
    256 equal bins: ``index = min(floor(v * 256), 255)``, bokeh's ``LinearColorMapper``
    rule, so a bokeh plot of display values over ``clim=(0, 1)`` with :func:`palette`'s
    colours and a PNG drawn here pick the same colour.
Colour tables
    ``(256, 4)`` uint8 RGBA, by name: ``gray`` (exactly ``i``), colorcet, bokeh
    (``viridis``, ``magma``...), else whatever HoloViews resolves.

The names a user types (``--stretch``, ``stretch=``) are :data:`STRETCHES`; each
names an interval and a stretch (see :data:`STRETCH_INTERVALS`).  Nothing heavy is
imported at module level (astropy's visualization package is loaded on first use):
the CLI and the tile server import this module.

>>> import numpy as np
>>> norm = fit("linear", np.arange(11.0), limits=(0.0, 10.0))
>>> norm(np.array([0.0, 5.0, 10.0, np.nan])).tolist()
[0.0, 0.5, 1.0, nan]
>>> quantize(np.array([0.0, 0.5, 1.0])).tolist()
[0, 128, 255]
>>> to_rgba(np.array([[0.5, np.nan]]), colormap_lut("gray")).tolist()
[[[128, 128, 128, 255], [0, 0, 0, 0]]]
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "STRETCHES", "STRETCH_INTERVALS", "INTERVALS", "LEVELS", "Normalize", "HistEqStretch",
    "interval_limits", "stretch_transform", "fit", "quantize", "to_rgba",
    "colormap_lut", "lut_from_stops", "palette", "sample_finite",
]

StretchName = Literal["linear", "sqrt", "log", "asinh", "zscale", "percentile", "eq_hist"]
IntervalName = Literal["minmax", "percentile", "zscale", "mad", "window"]

#: Stretch names a user types (``cpmosaic png --stretch``, the server's ``stretch=``,
#: ``mosaic_view(stretch=)``), one list everywhere.
STRETCHES: tuple[str, ...] = ("linear", "sqrt", "log", "asinh", "zscale", "percentile", "eq_hist")
#: Interval names of :func:`interval_limits`.
INTERVALS: tuple[str, ...] = ("minmax", "percentile", "zscale", "mad")
#: The interval each stretch name uses when no limits are given.  ``window`` means the
#: store's display window (0.5-99.5 percentiles of level 0, computed at build time) when the
#: store has one, else ``percentile`` of the sample.
STRETCH_INTERVALS: dict[str, str] = {
    "linear": "window", "sqrt": "window", "log": "window", "asinh": "window",
    "zscale": "zscale", "percentile": "percentile", "eq_hist": "minmax",
}
#: Colour levels of the quantisation and of every colour table.
LEVELS = 256
#: Central percentage of the ``percentile`` interval (0.5 .. 99.5 per cent).
PERCENTILE = 99.0
#: Half-width of the ``mad`` interval in sigma_MAD.
MAD_NSIGMA = 5.0
#: Largest sample the intervals and the eq_hist table are fitted on (a regular subsample).
MAX_SAMPLE = 1_000_000
#: Points of the eq_hist quantile table.
EQ_HIST_POINTS = 1025
#: Sample the eq_hist table is fitted on: its quantiles at 1/1024 steps need no more.
EQ_HIST_SAMPLE = 262_144


def sample_finite(data: ArrayLike, max_sample: int = MAX_SAMPLE) -> np.ndarray:
    """The finite values of *data* as float64, a regular subsample when more than *max_sample*.

    >>> sample_finite([1.0, np.nan, 3.0]).tolist()
    [1.0, 3.0]
    """
    a = np.asarray(data).ravel()
    if a.size > 4 * max_sample:  # thin first: finiteness of a huge array costs more than the fit
        a = a[:: a.size // (2 * max_sample)]
    a = a[np.isfinite(a)].astype(np.float64)
    if a.size > max_sample:
        a = a[:: -(-a.size // max_sample)]
    return a


# -- intervals -------------------------------------------------------------------------
def interval_limits(name: str, data: ArrayLike, *, percentile: float = PERCENTILE,
                    nsigma: float = MAD_NSIGMA) -> tuple[float, float]:
    """Data limits ``(vmin, vmax)`` of the finite values by interval *name*.

    ``minmax``, ``percentile`` and ``zscale`` are astropy's ``MinMaxInterval``,
    ``PercentileInterval(percentile)`` and ``ZScaleInterval()``; ``mad`` is median +-
    *nsigma* sigma_MAD, clipped to the data (:func:`cpmosaic.robust.color_range`).
    An empty sample gives ``(0, 1)``; a constant one a range around its value.

    >>> interval_limits("minmax", [3.0, np.nan, 1.0])
    (1.0, 3.0)
    >>> interval_limits("percentile", np.arange(201.0))
    (1.0, 199.0)
    """
    if name not in INTERVALS:
        raise ValueError(f"unknown interval {name!r}: use one of {', '.join(INTERVALS)}")
    a = sample_finite(data)
    if a.size == 0:
        return (0.0, 1.0)
    if name == "mad":
        from ..robust import color_range

        lo, hi = color_range(a, nsigma)
    else:
        from astropy.visualization import MinMaxInterval, PercentileInterval, ZScaleInterval

        interval = {"minmax": MinMaxInterval, "zscale": ZScaleInterval,
                    "percentile": lambda: PercentileInterval(percentile)}[name]()
        lo, hi = interval.get_limits(a)
    return _nonempty(float(lo), float(hi))


def _nonempty(lo: float, hi: float) -> tuple[float, float]:
    if not hi > lo:  # a constant image: centre its value
        half = abs(lo) * 1e-6 or 0.5
        return lo - half, lo + half
    return lo, hi


# -- stretches ---------------------------------------------------------------------------
class HistEqStretch:
    """Histogram equalisation on ``[0, 1]``: each colour holds the same share of the sample.

    The table is the sample's quantiles at ``EQ_HIST_POINTS`` equal steps, so the mapping
    is the sample's empirical CDF (to 1/1024) and is the same for every image it is applied
    to (every tile of a store).  ``inverse`` maps display values back to ``[0, 1]``.

    >>> s = HistEqStretch(np.array([0.0, 0.0, 0.0, 1.0]))
    >>> float(s(np.array([0.5]))[0]) > 0.7  # three quarters of the sample are at 0
    True
    """

    def __init__(self, sample01: ArrayLike, n: int = EQ_HIST_POINTS) -> None:
        a = sample_finite(sample01, EQ_HIST_SAMPLE)
        self.levels = np.linspace(0.0, 1.0, n)
        q = np.quantile(a, self.levels) if a.size else self.levels.copy()
        self.q = np.maximum.accumulate(q)

    def __call__(self, values: ArrayLike, clip: bool = True) -> np.ndarray:
        x = np.asarray(values)
        return np.interp(x, self.q, self.levels, left=0.0, right=1.0).astype(x.dtype if x.dtype.kind == "f"
                                                                              else np.float64)

    @property
    def inverse(self) -> Callable[[ArrayLike], np.ndarray]:
        return lambda y: np.interp(np.asarray(y, dtype=float), self.levels, self.q)


@functools.lru_cache(maxsize=8)
def stretch_transform(name: str) -> Any:
    """The ``[0, 1] -> [0, 1]`` transform of stretch *name* (astropy's, with ``.inverse``).

    ``zscale`` and ``percentile`` are linear (they name intervals); ``eq_hist`` needs a
    sample: use :class:`HistEqStretch` or :func:`fit`.

    >>> float(stretch_transform("sqrt")(np.array([0.25]))[0])
    0.5
    """
    from astropy.visualization import AsinhStretch, LinearStretch, LogStretch, SqrtStretch

    table = {"linear": LinearStretch, "zscale": LinearStretch, "percentile": LinearStretch,
             "sqrt": SqrtStretch, "log": lambda: LogStretch(a=1000.0), "asinh": lambda: AsinhStretch(a=0.1)}
    if name not in table:
        raise ValueError(f"stretch {name!r} has no fixed transform: use one of {', '.join(table)}")
    return table[name]()


#: Stretch names whose transform is the identity on ``[0, 1]`` (they name only an interval).
_IDENTITY_STRETCHES = ("linear", "zscale", "percentile")


@dataclass(frozen=True)
class Normalize:
    """Data -> display values in ``[0, 1]``: ``stretch(clip((data - vmin) / (vmax - vmin)))``.

    NaN stays NaN.  :meth:`inverse` maps display values back to data values (colour-bar
    labels).  Build one with :func:`fit`.
    """

    vmin: float
    vmax: float
    stretch: str = "linear"
    transform: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # the identity stretches load astropy's LinearStretch only when asked for it (inverse):
        # a tile export with a linear stretch then never imports astropy.visualization
        if self.transform is None and self.stretch not in _IDENTITY_STRETCHES:
            object.__setattr__(self, "transform", stretch_transform(self.stretch))

    def _stretch(self) -> Any:
        if self.transform is None:
            object.__setattr__(self, "transform", stretch_transform(self.stretch))
        return self.transform

    def __call__(self, data: ArrayLike) -> np.ndarray:
        """Display values (float32), NaN where *data* is not finite."""
        d = np.asarray(data, dtype=np.float32)
        span = np.float32(self.vmax - self.vmin)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            x = (d - np.float32(self.vmin)) / span
            np.clip(x, 0.0, 1.0, out=x)
            # identity: astropy's LinearStretch(clip=False) returns x itself, as float64
            out = x if self.transform is None else np.asarray(self.transform(x, clip=False), dtype=np.float32)
        out[~np.isfinite(d)] = np.nan
        return out

    @property
    def affine(self) -> bool:
        """True when the stretch is the identity on ``[0, 1]`` (``linear``, ``zscale``,
        ``percentile``): the display value is ``clip((data - vmin) / span, 0, 1)`` alone, which
        :func:`cpmosaic.kernels.colour.colour_index` computes in one pass.

        >>> Normalize(0.0, 1.0, "zscale").affine, Normalize(0.0, 1.0, "sqrt").affine
        (True, False)
        """
        t = self.transform
        if t is None:
            return True
        if isinstance(t, HistEqStretch):
            return False
        from astropy.visualization import LinearStretch

        return type(t) is LinearStretch and t.slope == 1 and t.intercept == 0

    def inverse(self, values: ArrayLike) -> np.ndarray:
        """Display values in ``[0, 1]`` -> data values.

        >>> Normalize(0.0, 100.0, "sqrt").inverse([0.5]).tolist()
        [25.0]
        """
        y = np.asarray(self._stretch().inverse(np.asarray(values, dtype=float)), dtype=float)
        return self.vmin + y * (self.vmax - self.vmin)


def fit(stretch: str, sample: ArrayLike | None, *, limits: tuple[float, float] | None = None,
        window: tuple[float, float] | None = None) -> Normalize:
    """The :class:`Normalize` of stretch *name* fitted to *sample*.

    Parameters
    ----------
    stretch
        One of :data:`STRETCHES`.
    sample
        Data the interval (and the eq_hist table) is fitted on: for a store, its coarsest
        level, so every view of the store agrees.
    limits
        Explicit ``(vmin, vmax)``: no interval is fitted.
    window
        The store's display window, used by the stretches whose interval is ``window``.

    Raises
    ------
    ValueError
        For an unknown stretch, naming the known ones.

    >>> n = fit("asinh", None, limits=(0.0, 1.0))
    >>> round(float(n(np.array([0.1]))[0]), 4)  # asinh(1) / asinh(10)
    0.294
    """
    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}: use one of {', '.join(STRETCHES)}")
    if limits is not None:
        lo, hi = _nonempty(float(limits[0]), float(limits[1]))
    else:
        kind = STRETCH_INTERVALS[stretch]
        if kind == "window" and window is not None:
            lo, hi = _nonempty(float(window[0]), float(window[1]))
        else:
            lo, hi = interval_limits("percentile" if kind == "window" else kind,
                                     sample if sample is not None else [])
    if stretch == "eq_hist":
        a = sample_finite(sample if sample is not None else [], EQ_HIST_SAMPLE)
        return Normalize(lo, hi, stretch, HistEqStretch(np.clip((a - lo) / (hi - lo), 0.0, 1.0)))
    return Normalize(lo, hi, stretch)


# -- quantisation and colour -----------------------------------------------------------------
def quantize(values01: ArrayLike) -> np.ndarray:
    """Colour index 0..255 of display values: ``min(floor(v * 256), 255)``, NaN -> 0.

    >>> quantize([0.0, 1 / 256 - 1e-9, 1 / 256, 1.0]).tolist()
    [0, 0, 1, 255]
    """
    v = np.asarray(values01, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        idx = np.nan_to_num(v * np.float32(LEVELS), nan=0.0)
    return np.clip(idx, 0, LEVELS - 1).astype(np.uint8)


def to_rgba(values01: ArrayLike, lut: np.ndarray, mask: ArrayLike | None = None) -> np.ndarray:
    """Display values ``(...,)`` -> RGBA uint8 ``(..., 4)``; NaN (and *mask*) transparent."""
    v = np.asarray(values01, dtype=np.float32)
    rgba = lut[quantize(v)]
    bad = ~np.isfinite(v)
    if mask is not None:
        bad |= np.asarray(mask, dtype=bool)
    rgba[bad] = 0
    return rgba


def _hex_rgb(c: str) -> tuple[int, int, int]:
    c = c.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _interpolated(rgb: np.ndarray) -> np.ndarray:
    """A colour list resampled to LEVELS entries (unchanged when it has LEVELS)."""
    if len(rgb) == LEVELS:
        return rgb.astype(np.uint8)
    pos = np.linspace(0, LEVELS - 1, len(rgb))
    grid = np.arange(LEVELS)
    return np.stack([np.interp(grid, pos, rgb[:, c]) for c in range(rgb.shape[1])], axis=1).round().astype(np.uint8)


@functools.lru_cache(maxsize=64)
def colormap_lut(name: str) -> np.ndarray:
    """The ``(256, 4)`` uint8 RGBA table of colour map *name*.

    ``gray`` (``grey``) is exactly ``(i, i, i, 255)``; then colorcet's palettes (``fire``,
    ``kbc``, ``coolwarm``...), bokeh's 256-colour ones (``viridis``, ``magma``...), then any
    name HoloViews resolves.  A table with fewer colours is interpolated to 256.

    Raises
    ------
    ValueError
        For a name none of them knows.

    >>> colormap_lut("gray")[[0, 255]].tolist()
    [[0, 0, 0, 255], [255, 255, 255, 255]]
    """
    if name.lower() in ("gray", "grey", "greys_r"):
        ramp = np.arange(LEVELS, dtype=np.uint8)
        return np.stack([ramp, ramp, ramp, np.full(LEVELS, 255, np.uint8)], axis=1)
    colours = _named_colours(name)
    rgb = _interpolated(np.array([_hex_rgb(c) for c in colours], dtype=float))
    lut = np.concatenate([rgb, np.full((LEVELS, 1), 255, np.uint8)], axis=1)
    lut.setflags(write=False)
    return lut


def _named_colours(name: str) -> list[str]:
    import colorcet

    if name in colorcet.palette:
        return list(colorcet.palette[name])
    from bokeh import palettes

    for cand in (f"{name[:1].upper()}{name[1:]}256", f"{name}256", name):
        pal = getattr(palettes, cand, None)
        if isinstance(pal, (list, tuple)) and pal and all(isinstance(c, str) for c in pal):
            return list(pal)
    try:
        from holoviews.plotting.util import process_cmap

        found = process_cmap(name, ncolors=LEVELS)
    except Exception:  # noqa: BLE001  (holoviews raises several kinds for unknown names)
        found = None
    if found:
        from PIL import ImageColor

        return ["#%02x%02x%02x" % ImageColor.getrgb(c)[:3] for c in found]
    raise ValueError(f"unknown colour map {name!r}: use a colorcet name (gray, fire, kbc, bmy, coolwarm, "
                     "rainbow) or a bokeh one (viridis, magma, inferno, plasma, cividis)")


def lut_from_stops(stops: dict[int, list[int]] | list[tuple[int, list[int]]]) -> np.ndarray:
    """A ``(256, 4)`` table from colour stops ``{index: [r, g, b(, a)]}``, linearly interpolated.

    >>> lut_from_stops({0: [0, 0, 0], 255: [255, 0, 0, 128]})[[0, 255]].tolist()
    [[0, 0, 0, 255], [255, 0, 0, 128]]
    """
    items = sorted(stops.items() if isinstance(stops, dict) else stops)
    keys = np.array([k for k, _ in items], float)
    cols = np.array([(list(v) + [255])[:4] for _, v in items], float)
    grid = np.arange(LEVELS)
    return np.stack([np.interp(grid, keys, cols[:, c]) for c in range(4)], axis=1).round().astype(np.uint8)


def palette(name: str) -> list[str]:
    """The 256 ``#rrggbb`` colours of :func:`colormap_lut` (for bokeh/HoloViews ``cmap=``).

    >>> palette("gray")[:2]
    ['#000000', '#010101']
    """
    return ["#%02x%02x%02x" % tuple(int(c) for c in row[:3]) for row in colormap_lut(name)]


def parse_stops_json(text: str) -> list[tuple[int, list[int]]]:
    """Colour stops from JSON ``{"0": [r, g, b], ..., "255": [r, g, b, a]}`` (sorted).

    Raises
    ------
    ValueError
        When the text is not such a document.
    """
    try:
        doc = json.loads(text)
        stops = {int(k): [int(c) for c in v] for k, v in doc.items()}
    except (ValueError, TypeError, AttributeError):
        raise ValueError('expected JSON {"0": [r, g, b], ..., "255": [r, g, b, a]}') from None
    if not stops or any(not 0 <= k <= 255 or len(v) not in (3, 4) for k, v in stops.items()):
        raise ValueError('expected JSON {"0": [r, g, b], ..., "255": [r, g, b, a]} with keys 0..255')
    return sorted(stops.items())
