"""Views of a comparison of two runs (the per-amp table of ``cpmosaic.metrics.compare``).

The table has ``calib_type, detector, detector_name, amp, metric, value_a, value_b, diff``
(``diff = value_b - value_a``).

>>> import pandas as pd
>>> d = pd.DataFrame({"detector": 94, "detector_name": "R22_S11", "amp": ["C10", "C11"],
...                   "metric": "NOISE", "value_a": [1.0, 2.0], "value_b": [1.0, 2.0]})
>>> plot = difference_histogram(d, "NOISE")
>>> int(plot.Histogram.I.dimension_values(1).max())
2
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import style
from .heatmap import focal_plane_heatmap

if TYPE_CHECKING:
    import holoviews as hv

    from ..camera import Camera

__all__ = ["difference_heatmap", "difference_histogram", "ab_scatter", "comparison_layout", "difference_bins"]


def _select(diff: pd.DataFrame, metric: str, calib_type: str | None) -> pd.DataFrame:
    sub = diff[diff["metric"] == metric]
    if calib_type is not None and "calib_type" in sub.columns:
        sub = sub[sub["calib_type"] == calib_type]
    if "diff" not in sub.columns:
        sub = sub.assign(diff=sub["value_b"] - sub["value_a"])
    return sub


def difference_heatmap(diff: pd.DataFrame, metric: str, *, camera: Camera | str | None = None,
                       calib_type: str | None = None, relative: bool = False,
                       clim: tuple[float, float] | None = None, cmap: str = style.DIVERGING_CMAP,
                       title: str | None = None, **kwargs: Any) -> hv.Overlay:
    """Heat map of B - A per amp, diverging colormap centred on 0 (``relative``: (B - A) / A).

    Other keywords go to :func:`~cpmosaic.viz.heatmap.focal_plane_heatmap`.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"detector": 94, "amp": ["C10"], "metric": "NOISE", "value_a": [1.0],
    ...                   "value_b": [1.5]})
    >>> type(difference_heatmap(d, "NOISE", labels="none")).__name__
    'Overlay'
    """
    sub = _select(diff, metric, calib_type)
    value = sub["diff"] / sub["value_a"].where(sub["value_a"] != 0) if relative else sub["diff"]
    tidy = pd.DataFrame({"detector": sub["detector"], "amp": sub["amp"].fillna(""), "metric": metric,
                         "value": value.astype(float)})
    for col in ("instrument", "calib_type"):
        if col in sub.columns:
            tidy[col] = sub[col]
    # ASCII labels: PIL's default font (used by save_png) has no Greek letters
    label = f"{metric} (B - A)/A" if relative else f"{metric} B - A"
    if title is None:
        title = " ".join(p for p in (calib_type, metric, "difference B - A") if p)
    return focal_plane_heatmap(tidy, metric, camera=camera, calib_type=calib_type, clim=clim, cmap=cmap,
                               symmetric=clim is None, failing=False, title=title, value_label=label, **kwargs)


def difference_bins(values, bins: int = 61) -> np.ndarray:
    """Symmetric edges with one bin centred on 0, so identical runs give one spike at 0.

    >>> e = difference_bins([0.0, 0.0], bins=5)
    >>> bool(e[2] < 0 < e[3])
    True
    """
    bins = bins + 1 if bins % 2 == 0 else bins
    lo, hi = style.symmetric_range(values)
    a = np.asarray(values, float)
    a = a[np.isfinite(a)]
    # Cover the bulk (median +- 4 sigma_MAD) and outliers up to 10 times further out.
    amax = float(np.abs(a).max()) if a.size else 0.0
    half = max(hi, min(amax, 10 * hi))
    return np.linspace(-half, half, bins + 1)


def difference_histogram(diff: pd.DataFrame, metric: str, *, calib_type: str | None = None, bins: int = 61,
                         log_y: bool = True, title: str | None = None, width: int = 600,
                         height: int = 350) -> hv.Overlay:
    """Histogram of B - A with a bin centred on 0; values beyond the range go to the end bins.

    The number of exactly identical amps is given in the title, so a zero spike is explained.
    """
    hv = style.holoviews()
    d = _select(diff, metric, calib_type)["diff"].to_numpy(float)
    d = d[np.isfinite(d)]
    edges = difference_bins(d, bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    counts, _ = np.histogram(np.clip(d, centres[0], centres[-1]), bins=edges)
    same = int((d == 0).sum())
    if title is None:
        title = f"{metric}: B - A ({same} of {len(d)} identical)"
    hist = hv.Histogram((edges, counts), kdims=[hv.Dimension("diff", label=f"{metric} B - A")],
                        vdims=["count"]).opts(color="#6a51a3", line_color="#3f007d", tools=["hover"])
    zero = hv.VLine(0.0).opts(color="black", line_width=1, line_dash="dotted")
    return (hist * zero).opts(title=title, logy=log_y, width=width, height=height)


def ab_scatter(diff: pd.DataFrame, metric: str, *, calib_type: str | None = None,
               labels: tuple[str, str] = ("A", "B"), title: str | None = None, width: int = 450,
               height: int = 450) -> hv.Overlay:
    """Per-amp value in B against A with the y = x line (points off the line changed)."""
    hv = style.holoviews()
    sub = _select(diff, metric, calib_type)
    cols = [c for c in ("detector_name", "amp", "diff") if c in sub.columns]
    pts = sub[["value_a", "value_b"] + cols]
    scatter = hv.Scatter(pts, kdims=[hv.Dimension("value_a", label=f"{metric} {labels[0]}")],
                         vdims=[hv.Dimension("value_b", label=f"{metric} {labels[1]}")] + cols).opts(
        size=4, alpha=0.6, color="#1f77b4", tools=["hover"])
    line = hv.Slope(1.0, 0.0).opts(color="#d62728", line_dash="dashed", line_width=1)
    if title is None:
        title = f"{metric}: {labels[1]} vs {labels[0]}"
    return (scatter * line).opts(title=title, width=width, height=height, data_aspect=None)


def comparison_layout(diff: pd.DataFrame, metric: str, *, camera: Camera | str | None = None,
                      calib_type: str | None = None, labels: tuple[str, str] = ("A", "B")) -> hv.Layout:
    """The three comparison views in one ``hv.Layout`` (heat map, histogram, A vs B)."""
    hv = style.holoviews()
    parts = [difference_heatmap(diff, metric, camera=camera, calib_type=calib_type, width=500),
             difference_histogram(diff, metric, calib_type=calib_type),
             ab_scatter(diff, metric, calib_type=calib_type, labels=labels)]
    return hv.Layout(parts).cols(2)
