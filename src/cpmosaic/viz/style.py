"""Colour ranges, colormaps, ticks and common plot options shared by every view.

Pure numpy/PIL here (plus HoloViews' colormap lookup, imported lazily) so that the
PNG renderer in :mod:`cpmosaic.viz.save` and the bokeh views agree on colours.

>>> [round(v, 4) for v in robust_range([1.0, 2.0, 3.0, 4.0, 100.0])]  # clipped to the data below
[1.0, 8.9304]
"""

from __future__ import annotations

import functools
import math
from typing import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .. import robust as _robust

__all__ = [
    "MAD_TO_SIGMA",
    "DEFAULT_CMAP",
    "DIVERGING_CMAP",
    "MISSING_COLOR",
    "FAIL_COLOR",
    "VENDOR_COLORS",
    "holoviews",
    "robust_range",
    "symmetric_range",
    "category_colors",
    "colormap_rgb",
    "map_colors",
    "to_rgb",
    "nice_ticks",
    "log_ticks",
    "format_tick",
    "font",
    "axis_ticks",
    "draw_colorbar",
    "draw_legend",
    "vertical_text",
    "dashed_line",
    "draw_axes",
]

#: sigma = MAD_TO_SIGMA * MAD for a normal distribution (what analysis_tools uses); one value,
#: in :mod:`cpmosaic.robust`.
MAD_TO_SIGMA = _robust.MAD_TO_SIGMA
DEFAULT_CMAP = "viridis"
#: Diverging, centred on 0 for differences (colorcet's perceptually uniform coolwarm).
DIVERGING_CMAP = "coolwarm"
MISSING_COLOR = "#c8c8c8"
FAIL_COLOR = "#ff2a00"
VENDOR_COLORS = {
    "E2V": "#1f77b4",
    "ITL": "#ff7f0e",
    "ITL_G": "#2ca02c",
    "ITL_WF": "#d62728",
    "science": "#1f77b4",
    "guider": "#2ca02c",
    "wavefront": "#d62728",
    "focus": "#9467bd",
}
_CATEGORY10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def holoviews():
    """Import HoloViews with the bokeh backend registered and return the module.

    Importing ``holoviews.plotting.bokeh`` registers the backend's options without
    ``hv.extension`` (which would write notebook output from inside a library call).
    """
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401  (registers the backend)

    if hv.Store.current_backend != "bokeh":
        hv.Store.set_current_backend("bokeh")
    return hv


def robust_range(values: ArrayLike, nsigma: float = 4.0, log: bool = False) -> tuple[float, float]:
    """Colour range median +- *nsigma* sigma_MAD, clipped to the data (:func:`cpmosaic.robust.color_range`).

    With ``log=True`` the range is computed on log10 of the positive values and
    returned in data units.  A constant or empty input still gives a non-empty range.

    >>> robust_range([1.0, 1.0, 1.0])
    (0.99, 1.01)
    """
    return _robust.color_range(values, nsigma=nsigma, log=log)


def symmetric_range(values: ArrayLike, nsigma: float = 4.0) -> tuple[float, float]:
    """A range centred on 0 that holds median +- *nsigma* sigma_MAD (:func:`cpmosaic.robust.symmetric_range`).

    >>> symmetric_range([0.0, 0.0])
    (-1.0, 1.0)
    """
    return _robust.symmetric_range(values, nsigma=nsigma)


def category_colors(categories: Iterable) -> dict:
    """A colour per category: the vendor/detector-type colours first, then Category10."""
    out, i = {}, 0
    for c in categories:
        if c in out:
            continue
        if c in VENDOR_COLORS:
            out[c] = VENDOR_COLORS[c]
        else:
            out[c] = _CATEGORY10[i % len(_CATEGORY10)]
            i += 1
    return out


@functools.lru_cache(maxsize=64)
def _rgb_cached(color: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    return ImageColor.getrgb(color)[:3]


def to_rgb(color) -> tuple[int, int, int]:
    """``"#ff0000"``, ``"red"`` or an RGB(A) tuple (0-1 or 0-255) -> ``(r, g, b)`` ints."""
    if isinstance(color, str):
        return _rgb_cached(color)
    if hasattr(color, "values") and not isinstance(color, (tuple, list, np.ndarray)):
        return to_rgb(list(color.values)[0])  # a HoloViews Cycle/Palette: its first colour
    c = tuple(color)[:3]
    if all(isinstance(v, float) for v in c) and max(c) <= 1.0:
        return tuple(int(round(255 * v)) for v in c)  # type: ignore[return-value]
    return tuple(int(v) for v in c)  # type: ignore[return-value]


def colormap_rgb(cmap: str | Sequence, n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 table of a colormap: a name (:func:`cpmosaic.viz.display.colormap_lut`,
    the table of every view) or a list of colours."""
    from . import display

    if isinstance(cmap, str):
        table = display.colormap_lut(cmap)[:, :3]
        return table if n == len(table) else table[np.linspace(0, len(table) - 1, n).round().astype(int)]
    return np.array([to_rgb(c) for c in cmap], dtype=np.uint8)


def map_colors(values, clim: tuple[float, float], cmap="viridis", log: bool = False,
               nan_color=MISSING_COLOR) -> np.ndarray:
    """Values -> ``(N, 3)`` uint8 colours, clipped to *clim*, NaN -> *nan_color*.

    The quantisation is the display layer's (:func:`cpmosaic.viz.display.quantize` for a
    256-colour table: bokeh's rule).

    >>> map_colors([0.0, 5.0, np.nan], (0, 1), "gray").tolist()  # 5 is clipped to white
    [[0, 0, 0], [255, 255, 255], [200, 200, 200]]
    """
    from . import display

    table = colormap_rgb(cmap)
    v = np.asarray(values, dtype=float)
    lo, hi = (float(clim[0]), float(clim[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        if log:
            lo, hi = math.log10(max(lo, 1e-300)), math.log10(max(hi, 1e-300))
            v = np.log10(np.where(v > 0, v, np.nan))
        t = (v - lo) / (hi - lo) if hi > lo else np.full_like(v, 0.5)
    if len(table) == display.LEVELS:
        idx = display.quantize(t).astype(int)
    else:
        idx = np.clip(np.nan_to_num(t, nan=0.0) * len(table), 0, len(table) - 1).astype(int)
    out = table[idx]
    out[~np.isfinite(t)] = to_rgb(nan_color)
    return out


def nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    """About *n* round tick values (1, 2, 5 x 10^k steps) inside ``[lo, hi]``.

    >>> nice_ticks(0, 10).tolist()
    [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return np.array([lo]) if math.isfinite(lo) else np.array([])
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = np.arange(first, hi + step * 1e-9, step)
    return np.round(ticks / step) * step  # strip float noise such as 0.30000000000000004


def log_ticks(lo: float, hi: float) -> np.ndarray:
    """Decades inside ``[lo, hi]`` (both > 0); 1-2-5 steps when fewer than two decades fit."""
    if lo <= 0 or hi <= lo:
        return np.array([])
    k0, k1 = math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9)
    ticks = 10.0 ** np.arange(k0, k1 + 1)
    if len(ticks) < 2:
        ticks = np.array([m * 10.0**k for k in range(k0 - 1, k1 + 1) for m in (1, 2, 5)])
        ticks = ticks[(ticks >= lo) & (ticks <= hi)]
    step = max(1, len(ticks) // 8)
    return ticks[::step]


def format_tick(v: float, span: float | None = None) -> str:
    """Short tick label: integers plain, small/large numbers in %g."""
    if v == 0:
        return "0"
    if span is not None and span >= 5 and float(v).is_integer() and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.4g}"


# -- PIL drawing helpers of the PNG renderer (cpmosaic.viz.save) ------------------------
def font(size: int = 12):
    """PIL's default font at *size* px (the bundled FreeType font; no system fonts needed)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font, one size
        return ImageFont.load_default()


def dashed_line(draw, p0, p1, col, width, dash) -> None:
    """A straight line, dashed unless *dash* is empty or ``"solid"``."""
    if not dash or dash == "solid":
        draw.line([p0, p1], fill=col, width=width)
        return
    n = max(2, int(math.hypot(p1[0] - p0[0], p1[1] - p0[1]) // 6))
    xs, ys = np.linspace(p0[0], p1[0], n), np.linspace(p0[1], p1[1], n)
    for i in range(0, n - 1, 2):
        draw.line([(xs[i], ys[i]), (xs[i + 1], ys[i + 1])], fill=col, width=width)


def axis_ticks(lim, lg: bool, dt: bool) -> tuple[np.ndarray, list[str]]:
    """Tick positions and labels: linear, log, or dates (*lim* in epoch milliseconds)."""
    if dt:
        days = (lim[1] - lim[0]) / 86_400_000
        step = next((s for s in (1, 2, 5, 7, 14, 30, 61, 91, 182, 365) if days / s <= 7), 730)
        first = math.ceil(lim[0] / 86_400_000 / step) * step
        ticks = np.arange(first, lim[1] / 86_400_000, step) * 86_400_000.0
        return ticks, [str(np.datetime64(int(t), "ms").astype("datetime64[D]")) for t in ticks]
    ticks = log_ticks(*lim) if lg else nice_ticks(*lim)
    span = lim[1] - lim[0]
    return ticks, [format_tick(t, span) for t in ticks]


def vertical_text(img, xy, text, font, fill=(0, 0, 0, 255)) -> None:
    """Text rotated 90 degrees counter-clockwise (y-axis and colour-bar labels)."""
    from PIL import Image, ImageDraw

    w = int(font.getlength(text)) + 4
    tmp = Image.new("RGBA", (w, font.size + 6), (0, 0, 0, 0))
    ImageDraw.Draw(tmp).text((2, 1), text, font=font, fill=fill)
    tmp = tmp.rotate(90, expand=True)
    img.alpha_composite(tmp, (int(xy[0]), max(0, int(xy[1] - tmp.size[1] / 2))))


def draw_colorbar(img, cb: dict, x: int, y: int, h: int, small, font) -> None:
    """A vertical colour bar at (x, y), *h* px tall; ticks in data units or the
    ``colorbar_opts["major_label_overrides"]`` of the element (stretched images)."""
    from PIL import ImageDraw

    d = ImageDraw.Draw(img)
    lo, hi = cb["clim"]
    lg = cb["log"] and lo > 0
    frac = np.linspace(1, 0, h)
    vals = 10 ** (np.log10(lo) + frac * (np.log10(hi) - np.log10(lo))) if lg else lo + frac * (hi - lo)
    cols = map_colors(vals, (lo, hi), cb["cmap"], log=lg)
    for i, c in enumerate(cols):
        d.line((x, y + i, x + 14, y + i), fill=(*c, 255))
    d.rectangle((x, y, x + 14, y + h - 1), outline=(0, 0, 0, 255))
    overrides = (cb["po"].get("colorbar_opts") or {}).get("major_label_overrides")
    if overrides:
        ticks, labels = np.array(list(overrides), dtype=float), [str(v) for v in overrides.values()]
    else:
        ticks, labels = axis_ticks((lo, hi), lg, False)
    for t, lab in zip(ticks, labels):
        f = (math.log10(t / lo) / math.log10(hi / lo)) if lg else (t - lo) / (hi - lo)
        if 0 <= f <= 1:
            py = y + (1 - f) * (h - 1)
            d.line((x + 14, py, x + 18, py), fill=(0, 0, 0, 255))
            d.text((x + 20, py), lab, fill=(0, 0, 0, 255), font=small, anchor="lm")
    label = cb["po"].get("clabel") or cb["el"].vdims[0].pprint_label
    vertical_text(img, (x + 76, y + h / 2), str(label), font)


def draw_legend(d, entries, right: int, top: int, font) -> None:
    """A boxed legend of ``(label, rgb)`` entries with its top-right corner at (right, top)."""
    entries = list(dict(entries).items())[:12]
    w = max(int(font.getlength(str(k))) for k, _ in entries) + 26
    d.rectangle((right - w, top, right, top + 16 * len(entries) + 4), fill=(255, 255, 255, 220),
                outline=(120, 120, 120, 255))
    for i, (k, c) in enumerate(entries):
        yy = top + 4 + 16 * i
        d.rectangle((right - w + 4, yy + 2, right - w + 16, yy + 12), fill=(*tuple(c)[:3], 255))
        d.text((right - w + 20, yy + 7), str(k), fill=(0, 0, 0, 255), font=font, anchor="lm")


def draw_axes(img, tr, title: str, xlabel: str, ylabel: str, x_dates: bool, font, small) -> None:
    """Frame border, title, ticks and axis labels around a panel whose transform is *tr*."""
    from PIL import ImageDraw

    d = ImageDraw.Draw(img)
    left, top, fw, fh = tr.left, tr.top, tr.width, tr.height
    black = (0, 0, 0, 255)
    d.rectangle((left - 1, top - 1, left + fw, top + fh), outline=black)
    if title:
        d.text((left + fw / 2, 6), title, fill=black, font=font, anchor="mt")
    for t, lab in zip(*axis_ticks(tr.xlim, tr.logx, x_dates)):
        px, _ = tr.to_pixel(t, tr.ylim[0])
        d.line((px, top + fh, px, top + fh + 4), fill=black)
        d.text((px, top + fh + 6), lab, fill=black, font=small, anchor="mt")
    for t, lab in zip(*axis_ticks(tr.ylim, tr.logy, False)):
        _, py = tr.to_pixel(tr.xlim[0], t)
        d.line((left - 4, py, left, py), fill=black)
        d.text((left - 6, py), lab, fill=black, font=small, anchor="rm")
    d.text((left + fw / 2, top + fh + 26), xlabel, fill=black, font=font, anchor="mt")
    vertical_text(img, (4, top + fh / 2), ylabel, font)
