"""Distributions of metrics: histograms (with thresholds, two runs overlaid) and scatters.

>>> import pandas as pd
>>> df = pd.DataFrame({"metric": "NOISE", "value": [1.0, 2.0, 2.5], "detector": 94, "amp": "C10"})
>>> type(metric_histogram(df, "NOISE", thresholds={"max": 3.0})).__name__
'Overlay'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import style

if TYPE_CHECKING:
    import holoviews as hv

    from ..camera import Camera

__all__ = ["metric_histogram", "metric_scatter", "histogram_edges", "threshold_items"]


def _select(df: pd.DataFrame, metric: str, calib_type: str | None) -> pd.DataFrame:
    sub = df[df["metric"] == metric]
    if calib_type is not None and "calib_type" in sub.columns:
        sub = sub[sub["calib_type"] == calib_type]
    return sub


def threshold_items(thresholds) -> list[tuple[str, float]]:
    """Normalise thresholds given as ``{label: value}``, ``[value, ...]`` or ``[(label, value)]``.

    >>> threshold_items({"max": 2.0}), threshold_items([1, 2])
    ([('max', 2.0)], [('1', 1.0), ('2', 2.0)])
    """
    if thresholds is None:
        return []
    if isinstance(thresholds, Mapping):
        return [(str(k), float(v)) for k, v in thresholds.items()]
    if np.isscalar(thresholds):
        thresholds = [thresholds]
    out = []
    for t in thresholds:
        if isinstance(t, (tuple, list)) and len(t) == 2:
            out.append((str(t[0]), float(t[1])))
        else:
            out.append((f"{float(t):g}", float(t)))
    return out


def histogram_edges(values: Sequence[np.ndarray], bins: int = 50, value_range=None,
                    log_x: bool = False) -> np.ndarray:
    """Common bin edges for several samples (finite values; positive ones for ``log_x``)."""
    allv = np.concatenate([np.asarray(v, float) for v in values]) if values else np.array([])
    allv = allv[np.isfinite(allv) & ((allv > 0) if log_x else True)]
    if value_range is None:
        value_range = (allv.min(), allv.max()) if allv.size else (0.0, 1.0)
    lo, hi = map(float, value_range)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    if log_x:
        return np.logspace(np.log10(lo), np.log10(hi), bins + 1)
    return np.linspace(lo, hi, bins + 1)


def metric_histogram(df: pd.DataFrame, metric: str, *, df_b: pd.DataFrame | None = None,
                     labels: tuple[str, str] = ("A", "B"), calib_type: str | None = None,
                     thresholds: Mapping[str, float] | Sequence[float] | None = None, log_y: bool = False,
                     log_x: bool = False, bins: int = 50,
                     value_range: tuple[float, float] | None = None, title: str | None = None,
                     width: int = 600, height: int = 350) -> hv.Overlay:
    """Histogram of one metric's values (every row), optionally a second run overlaid.

    Parameters
    ----------
    df, df_b
        Tidy metrics tables; ``df_b`` (e.g. another run) is overlaid with the same bins.
    thresholds
        Test thresholds drawn as dashed vertical lines: ``{label: value}`` or a list.
    log_y
        Logarithmic counts axis (as eo_pipe's step histograms).
    value_range
        Bin range; values outside it are not counted.

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"metric": "NOISE", "value": [1.0, 2.0]})
    >>> plot = metric_histogram(a, "NOISE", df_b=a, log_y=True)
    >>> len(plot)
    2
    """
    hv = style.holoviews()
    samples = [_select(df, metric, calib_type)["value"].to_numpy(float)]
    names = [labels[0]]
    if df_b is not None:
        samples.append(_select(df_b, metric, calib_type)["value"].to_numpy(float))
        names.append(labels[1])
    edges = histogram_edges(samples, bins, value_range, log_x)
    colors = ["#1f77b4", "#ff7f0e"]
    layers = []
    ymax = 1
    for vals, name, col in zip(samples, names, colors):
        counts, _ = np.histogram(vals[np.isfinite(vals)], bins=edges)
        ymax = max(ymax, int(counts.max()) if counts.size else 1)
        h = hv.Histogram((edges, counts), kdims=[hv.Dimension("value", label=metric)], vdims=["count"],
                         label=name if df_b is not None else "")
        layers.append(h.opts(color=col, fill_alpha=0.45 if df_b is not None else 0.8,
                             line_color=col, tools=["hover"]))
    for name, value in threshold_items(thresholds):
        layers.append(hv.VLine(value, label="").opts(color="#d62728", line_dash="dashed", line_width=2))
        layers.append(hv.Text(value, ymax * (3 if log_y else 1.02), f" {name}", halign="left",
                              valign="bottom").opts(text_color="#d62728", text_font_size="9pt"))
    if title is None:
        title = " ".join(p for p in (calib_type, metric) if p)
    return hv.Overlay(layers).opts(title=title, logy=log_y, logx=log_x, width=width, height=height,
                                   xlabel=metric, ylabel="count", legend_position="top_right",
                                   show_legend=df_b is not None)


def _pair_table(df: pd.DataFrame, x_metric: str, y_metric: str, calib_type: str | None) -> pd.DataFrame:
    """One row per (run, exposure, detector, amp) with both metrics as columns."""
    sub = df[df["metric"].isin([x_metric, y_metric])]
    if calib_type is not None and "calib_type" in sub.columns:
        sub = sub[sub["calib_type"] == calib_type]
    keys = [k for k in ("run", "exposure", "detector", "amp") if k in sub.columns]
    wide = sub.groupby(keys + ["metric"], dropna=False, sort=False)["value"].median().unstack("metric")
    for m in (x_metric, y_metric):
        if m not in wide.columns:
            wide[m] = np.nan
    return wide.reset_index().dropna(subset=[x_metric, y_metric])


def metric_scatter(df: pd.DataFrame, x_metric: str, y_metric: str, *, color_by: str | None = "physical_type",
                   camera: Camera | str | None = None, calib_type: str | None = None,
                   datashade_threshold: int = 50_000, dynamic: bool = False, title: str | None = None,
                   width: int = 600, height: int = 500) -> Any:
    """Scatter of two metrics per amp (e.g. NOISE vs CR_NOISE), coloured by a category.

    Parameters
    ----------
    color_by
        ``"physical_type"`` (sensor vendor), ``"detector_type"``, ``"raft"``, any column of
        *df*, or ``None``.  Camera attributes are joined on the detector id.
    datashade_threshold
        Above this many points the scatter is datashaded (categorical counts, one colour
        per category).  ``dynamic=False`` gives a static ``hv.RGB`` (what a saved file can
        hold); ``dynamic=True`` re-aggregates on zoom in a live notebook.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"detector": 94, "amp": ["C10", "C10"], "metric": ["NOISE", "CR_NOISE"],
    ...                    "value": [5.0, 5.5]})
    >>> type(metric_scatter(df, "NOISE", "CR_NOISE")).__name__
    'Scatter'
    """
    hv = style.holoviews()
    from .heatmap import amp_geometry, resolve_camera

    pairs = _pair_table(df, x_metric, y_metric, calib_type)
    if color_by is not None and color_by not in pairs.columns:
        if color_by in df.columns:
            extra = df.drop_duplicates(["detector", "amp"])[["detector", "amp", color_by]]
        else:
            geo = amp_geometry(resolve_camera(camera, df))
            if color_by not in geo.columns:
                raise ValueError(f"cannot colour by {color_by!r}: not a table column nor a camera attribute")
            extra = geo[["detector", "amp", color_by]]
        pairs = pairs.merge(extra.astype({"detector": int}), on=["detector", "amp"], how="left")
    if title is None:
        title = f"{y_metric} vs {x_metric}" + (f" ({calib_type})" if calib_type else "")
    common = dict(title=title, width=width, height=height, xlabel=x_metric, ylabel=y_metric)
    cats = list(dict.fromkeys(pairs[color_by].fillna("?").astype(str))) if color_by else []
    colors = style.category_colors(cats)
    if len(pairs) > datashade_threshold:
        import datashader as ds
        from holoviews.operation.datashader import datashade

        data = pairs[[x_metric, y_metric]].copy()
        if color_by:
            data[color_by] = pd.Categorical(pairs[color_by].fillna("?").astype(str), categories=cats)
            agg = ds.count_cat(color_by)
        else:
            data["_"] = pd.Categorical(["all"] * len(data))
            agg, colors = ds.count_cat("_"), {"all": "#1f77b4"}
        pts = hv.Points(data, kdims=[x_metric, y_metric], vdims=[c for c in data.columns[2:]])
        shaded = datashade(pts, aggregator=agg, color_key=colors, dynamic=dynamic, width=width, height=height)
        # Empty labelled points give the datashaded image a legend (in bokeh and in save_png).
        keys = [hv.Points([], kdims=[x_metric, y_metric], label=k).opts(color=c) for k, c in colors.items()]
        return hv.Overlay([shaded] + keys).opts(**common) if color_by else shaded.opts(**common)
    vdims = [y_metric] + [c for c in (color_by, "detector", "amp") if c and c in pairs.columns]
    scatter = hv.Scatter(pairs, kdims=[x_metric], vdims=list(dict.fromkeys(vdims)))
    opts = dict(size=4, alpha=0.6, tools=["hover"], **common)
    if color_by:
        opts.update(color=color_by, cmap=colors, show_legend=True, legend_position="top_left")
    return scatter.opts(**opts)
