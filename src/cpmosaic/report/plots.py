"""The report's views: which plots a metrics table calls for, and how each is made.

Every function returns a HoloViews object built by :mod:`cpmosaic.viz`; nothing here
writes files (see :mod:`cpmosaic.report.build`).  The report draws one
``(calib_type, tier, metric)`` at a time: amp-level and detector-level rows of the same
metric name (flat ``MEAN``) are different quantities and are never mixed.

Thresholds come from the DMTN-101 re-evaluation (:func:`cpmosaic.metrics.evaluate`):
where a test compares the metric itself with a limit (flat ``NOISE <= sqrt(MEAN)``,
bias ``abs(MEAN) < NOISE``) the limit is drawn on the metric's histogram, in metric
units; where the test compares a derived quantity (``(NOISE - rn) / rn <= 0.05``) a
second histogram of that quantity carries the exact limit.

>>> import pandas as pd
>>> df = pd.DataFrame({"calib_type": "bias", "tier": "amp", "metric": ["NOISE", "MEAN", "SUCCESS"],
...                    "value": [1.0, 2.0, 1.0], "detector": 94, "amp": "C10"})
>>> [(i.calib_type, i.tier, i.metric) for i in plot_items(df)]
[('bias', 'amp', 'MEAN'), ('bias', 'amp', 'NOISE')]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["PlotItem", "TestInfo", "COUPLED", "plot_items", "select", "test_info", "metric_heatmap",
           "metric_histogram_plot", "test_histogram", "test_only_items", "test_only_info", "coupled_pairs",
           "coupled_scatter", "comparison_plots", "trend_plot", "mosaic_plots", "store_calib_type", "image_difference_heatmap"]

#: Metrics that are verdicts, not measurements: no plot of their own.
SKIP_METRICS = frozenset({"SUCCESS"})
#: Tiers with one value per amp or per detector (exposure- and run-level values are one number).
MAPPED_TIERS = ("amp", "detector")
#: Coupled metrics drawn against each other: calib types -> (x, y, reference line).
COUPLED = (
    (("bias", "dark"), "CR_NOISE", "NOISE", "y = x"),
    (("flat",), "MEAN", "NOISE", "y = sqrt(x)"),
)
#: Metrics overlaid on mosaics of a calib type, first found first.
MOSAIC_METRICS = ("MEAN", "NOISE")


@dataclass(frozen=True)
class PlotItem:
    """One (calib_type, tier, metric) with values to draw."""

    calib_type: str
    tier: str
    metric: str
    n: int = 0

    @property
    def label(self) -> str:
        """Tab and caption label: ``MEAN``, or ``MEAN (detector)`` for detector-level values."""
        return self.metric if self.tier == "amp" else f"{self.metric} ({self.tier})"

    @property
    def slug(self) -> str:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.metric)
        return f"{self.calib_type}-{self.tier}-{safe}"


@dataclass
class TestInfo:
    """How a metric's DMTN-101 test relates to the metric.

    ``kind`` is ``"direct"`` (the tested value is the metric), ``"abs"`` (its absolute
    value) or ``"derived"`` (another quantity); ``lines`` are ``(label, value)`` to draw on
    the metric's histogram (metric units), ``values``/``limit`` the tested quantity and its
    median limit, ``n_failed`` the failing rows.
    """

    kind: str
    lines: list[tuple[str, float]] = field(default_factory=list)
    values: np.ndarray | None = None
    limit: float | None = None
    n_failed: int = 0
    varies: bool = False


def _text(col: pd.Series) -> pd.Series:
    """A str column from a categorical or object one (comparisons then never see categories)."""
    return col.astype(str) if isinstance(col.dtype, pd.CategoricalDtype) else col


def plot_items(df: pd.DataFrame) -> list[PlotItem]:
    """Every ``(calib_type, tier, metric)`` with finite amp- or detector-level values, sorted."""
    sub = df[df["tier"].isin(MAPPED_TIERS) & ~df["metric"].isin(SKIP_METRICS)]
    sub = sub[np.isfinite(sub["value"].to_numpy(dtype=float, na_value=np.nan))]
    counts = sub.groupby([_text(sub["calib_type"]), _text(sub["tier"]), _text(sub["metric"])],
                         sort=True, observed=True).size()
    order = {t: i for i, t in enumerate(MAPPED_TIERS)}
    items = [PlotItem(str(c), str(t), str(m), int(n)) for (c, t, m), n in counts.items()]
    return sorted(items, key=lambda i: (i.calib_type, order[i.tier], i.metric))


def select(df: pd.DataFrame | None, item: PlotItem) -> pd.DataFrame | None:
    """The rows of one plot item (None stays None)."""
    if df is None:
        return None
    keep = (df["calib_type"] == item.calib_type) & (df["tier"] == item.tier) & (df["metric"] == item.metric)
    return df[keep.to_numpy(dtype=bool, na_value=False)]


def test_info(rows: pd.DataFrame, results: pd.DataFrame | None, item: PlotItem) -> TestInfo | None:
    """The test of *item* in the re-evaluation *results*, or None when it has none with limits.

    Whether the tested value is the metric is decided from the data (the rows are joined
    on run, exposure, detector and amp), so new tests need no table here.
    """
    if results is None or not len(results):
        return None
    r = results[(results["calib_type"] == item.calib_type) & (results["tier"] == item.tier)
                & (results["test"] == item.metric) & results["threshold"].notna()]
    if not len(r):
        return None
    keys = ["run", "exposure", "detector", "amp"]
    m = rows[keys + ["value"]].astype({"run": str, "amp": str})
    j = r[keys + ["value", "threshold"]].astype({"run": str, "amp": str}).merge(m, on=keys, suffixes=("", "_m"))
    tv, mv = j["value"].to_numpy(float), j["value_m"].to_numpy(float)
    ok = np.isfinite(tv) & np.isfinite(mv)
    th = r["threshold"].to_numpy(float)
    th = th[np.isfinite(th)]
    n_failed = int(r["passed"].eq(False).fillna(False).sum())
    limit = float(np.median(th)) if th.size else None
    if limit is None:
        return None
    same = lambda a, b: bool(ok.any()) and bool(np.isclose(a[ok], b[ok], rtol=1e-6, atol=1e-12).mean() > 0.99)  # noqa: E731
    # Short labels: the PNG renderer centres text on the line.  A limit that varies by amp
    # (flat NOISE <= sqrt(MEAN)) is drawn at its median and says so in the title.
    varies = bool(th.size) and not np.allclose(th, th[0])
    values = r["value"].to_numpy(float)
    if same(tv, mv):
        return TestInfo("direct", [("limit", limit)], values, limit, n_failed, varies)
    if same(tv, np.abs(mv)):
        return TestInfo("abs", [("-limit", -limit), ("limit", limit)], values, limit, n_failed, varies)
    return TestInfo("derived", [], values, limit, n_failed, varies)


def test_only_items(results: pd.DataFrame | None, items: list[PlotItem]) -> list[tuple[PlotItem, pd.DataFrame]]:
    """Tests whose quantity is no metric of the table (READ_NOISE_CONSISTENT): item and tidy rows.

    The rows carry the tested value as ``value`` and the verdict as ``passed``, so the
    heat map outlines failing amps; the item's ``metric`` is the test name.
    """
    if results is None or not len(results):
        return []
    have = {(i.calib_type, i.tier, i.metric) for i in items}
    r = results[results["tier"].isin(MAPPED_TIERS) & results["threshold"].notna()
                & np.isfinite(results["value"].to_numpy(dtype=float, na_value=np.nan))]
    out = []
    for (ct, tier, test), g in r.groupby(["calib_type", "tier", "test"], sort=True):
        if (ct, tier, test) in have:
            continue
        rows = g.assign(metric=test, passed=g["passed"].fillna(g["cp_verify_passed"]))
        out.append((PlotItem(str(ct), str(tier), str(test), int(len(g))), rows.reset_index(drop=True)))
    return out


def test_only_info(rows: pd.DataFrame) -> TestInfo:
    """The :class:`TestInfo` of a :func:`test_only_items` entry (its values are the tested quantity)."""
    th = rows["threshold"].to_numpy(float)
    return TestInfo("derived", [], rows["value"].to_numpy(float), float(np.nanmedian(th)),
                    int(rows["passed"].eq(False).fillna(False).sum()))


def metric_heatmap(rows: pd.DataFrame, item: PlotItem, *, camera=None, width: int = 700,
                   color_range: str = "focal_plane"):
    """Focal-plane heat map of one item (failing amps outlined from the table's flags)."""
    from ..viz import focal_plane_heatmap

    return focal_plane_heatmap(rows, item.metric, camera=camera, calib_type=item.calib_type, width=width,
                               title=f"{item.calib_type} {item.label}", color_range=color_range)


def metric_histogram_plot(rows: pd.DataFrame, item: PlotItem, info: TestInfo | None, *,
                          rows_b: pd.DataFrame | None = None, labels: tuple[str, str] = ("A", "B")):
    """Histogram of one item's values, the test's limits drawn, run B overlaid when given."""
    from ..viz import metric_histogram

    lines = info.lines if info is not None else []
    vals = rows["value"].to_numpy(float)
    vals = vals[np.isfinite(vals)]
    # Keep the bulk readable: bins span the data and the limits, not a single far outlier alone.
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    for _, v in lines:
        lo, hi = min(lo, v), max(hi, v)
    log_y = vals.size > 50
    title = f"{item.calib_type} {item.label}" + (f" ({info.n_failed} failing)" if info and info.n_failed else "")
    if info is not None and info.lines and info.varies:
        title += ", limit: median over amps"
    h = metric_histogram(rows, item.metric, df_b=rows_b, labels=labels, calib_type=item.calib_type,
                         thresholds=lines or None, log_y=log_y, value_range=(lo, hi), title=title)
    return _log_floor(h) if log_y else h


def _log_floor(overlay):
    """Log counts on the histograms themselves, not only on their overlay.

    ``cpmosaic.viz``'s histograms set ``logy`` on the Overlay; the bokeh Histogram plot
    inside then keeps its bars' bottom at 0, which a log axis cannot place, and BokehJS
    draws no bars at all.  With ``logy`` on the Histogram element HoloViews lifts the
    bottom onto the axis.
    """
    from ..viz.style import holoviews

    hv = holoviews()
    return overlay.map(lambda h: h.opts(logy=True), hv.Histogram)


def test_histogram(item: PlotItem, info: TestInfo):
    """Histogram of a derived test quantity with its exact limit (None when the test is direct)."""
    from ..viz import metric_histogram

    if info.kind != "derived" or info.values is None or info.limit is None:
        return None
    vals = info.values[np.isfinite(info.values)]
    t = pd.DataFrame({"metric": f"{item.metric} test", "value": vals})
    lo, hi = (min(float(vals.min()), info.limit), max(float(vals.max()), info.limit)) if vals.size else (0, 1)
    h = metric_histogram(t, f"{item.metric} test", thresholds={"limit": info.limit}, log_y=vals.size > 50,
                         value_range=(lo, hi),
                         title=f"{item.calib_type} {item.label}: tested quantity ({info.n_failed} failing)")
    return _log_floor(h) if vals.size > 50 else h


def coupled_pairs(df: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """``(calib_type, x_metric, y_metric, reference)`` of :data:`COUPLED` present in *df* (amp level)."""
    amp = df[df["tier"] == "amp"]
    have = set(zip(_text(amp["calib_type"]), _text(amp["metric"])))
    out = []
    for types, x, y, ref in COUPLED:
        for ct in types:
            if (ct, x) in have and (ct, y) in have:
                out.append((ct, x, y, ref))
    return sorted(out)


def coupled_scatter(df: pd.DataFrame, calib_type: str, x: str, y: str, reference: str, *, camera=None):
    """Scatter of two coupled metrics per amp, coloured by sensor vendor, with the reference line."""
    from ..viz import metric_scatter
    from ..viz.style import holoviews

    hv = holoviews()
    sub = df[(df["tier"] == "amp") & (df["calib_type"] == calib_type) & df["metric"].isin([x, y])]
    sc = metric_scatter(sub, x, y, camera=camera, calib_type=calib_type)
    if reference == "y = x":
        line = hv.Slope(1.0, 0.0).opts(color="#d62728", line_dash="dashed", line_width=1)
    else:  # flat: the DMTN-101 limit NOISE <= sqrt(MEAN), the photon noise of the level
        xs = sub.loc[sub["metric"] == x, "value"].to_numpy(float)
        xs = xs[np.isfinite(xs) & (xs > 0)]
        grid = np.linspace(xs.min(), xs.max(), 50) if xs.size else np.array([0.0, 1.0])
        line = hv.Curve((grid, np.sqrt(np.clip(grid, 0, None))), kdims=[x], vdims=[y], label="sqrt(MEAN)").opts(
            color="#d62728", line_dash="dashed", line_width=1)
    # Head room above the points: the PNG renderer puts the legend in the top-right corner,
    # where a flat's points (high MEAN, high NOISE) would otherwise hide under it.
    xv = sub.loc[sub["metric"] == x, "value"].to_numpy(float)
    yv = sub.loc[sub["metric"] == y, "value"].to_numpy(float)
    xv, yv = xv[np.isfinite(xv)], yv[np.isfinite(yv)]
    opts = {}
    if xv.size and yv.size:
        dx, dy = (np.ptp(xv) or 1.0), (np.ptp(yv) or 1.0)
        opts = dict(xlim=(float(xv.min() - 0.03 * dx), float(xv.max() + 0.03 * dx)),
                    ylim=(float(yv.min() - 0.03 * dy), float(yv.max() + 0.45 * dy)))
    return (sc * line).opts(title=f"{calib_type}: {y} vs {x} ({reference})", **opts)


def comparison_plots(diff: pd.DataFrame, item: PlotItem, *, camera=None, labels: tuple[str, str] = ("A", "B")):
    """Difference heat map, difference histogram and B-vs-A scatter of one item (None if no pairs)."""
    from ..viz import ab_scatter, difference_heatmap, difference_histogram

    d = diff[(diff["calib_type"] == item.calib_type) & (diff["tier"] == item.tier) & (diff["metric"] == item.metric)]
    d = d[d["value_a"].notna() & d["value_b"].notna()]
    if not len(d):
        return None
    name = f"{item.calib_type} {item.label}"
    return (difference_heatmap(d, item.metric, camera=camera, calib_type=item.calib_type, width=600,
                               title=f"{name}: {labels[1]} - {labels[0]}"),
            _log_floor(difference_histogram(d, item.metric, calib_type=item.calib_type)),
            ab_scatter(d, item.metric, calib_type=item.calib_type, labels=labels))


def trend_plot(history: pd.DataFrame, calib_type: str, metric: str, alerts: pd.DataFrame | None,
               max_amps: int = 3):
    """Candlesticks by night of one metric from the history, alerted amps drawn as lines."""
    from ..viz import metric_trend

    a = None
    amps: list[str] = []
    if alerts is not None and len(alerts):
        a = alerts[(alerts["calib_type"] == calib_type) & (alerts["metric"] == metric)]
        amps = list(dict.fromkeys(f"{d}/{p}" for d, p in zip(a["detector_name"], a["amp"])))[:max_amps]
    n = len(a) if a is not None else 0
    plot = metric_trend(history, metric, calib_type=calib_type, amps=amps or None, alerts=a,
                        title=f"{calib_type} {metric} by night" + (f" ({n} alert{'s' * (n != 1)})" if n else ""))
    lim = _trend_range(history, calib_type, metric, amps)
    return plot.opts(ylim=lim) if lim is not None else plot


def _trend_range(history: pd.DataFrame, calib_type: str, metric: str, amps: list[str]) -> tuple | None:
    """y range of a trend: the boxes (quartiles) and the alerted amps' values, padded.

    One hot amp's whisker would otherwise set the scale and flatten a drift of a few
    tenths into the axis; whiskers beyond the range are cut at the frame.
    """
    from ..viz.timeseries import daily_stats

    st = daily_stats(history, metric, calib_type)
    vals = [st["q1"].to_numpy(float), st["q3"].to_numpy(float)]
    if amps:
        sel = (history["calib_type"] == calib_type) & (history["metric"] == metric)
        sub = history[sel.to_numpy(dtype=bool, na_value=False)]
        names = (sub["detector_name"].astype(str) + "/" + sub["amp"].astype(str)).to_numpy()
        vals.append(sub["value"].to_numpy(float)[np.isin(names, amps)])
    v = np.concatenate(vals) if vals else np.array([])
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo or abs(hi) * 0.1 or 1.0
    full = (float(np.nanmin(st["min"])), float(np.nanmax(st["max"])))
    # padded by half the span, never beyond the data's own extremes
    return (max(lo - 0.5 * span, full[0] - 0.05 * span), min(hi + 0.5 * span, full[1] + 0.05 * span))


def store_calib_type(store) -> str | None:
    """The calibration type of a mosaic's inputs (their IMGTYPE), when they agree."""
    return store.calib_type


def mosaic_plots(store, df: pd.DataFrame | None, *, name: str, width: int = 800) -> list[tuple[str, str, object]]:
    """``(label, title, view)`` of a mosaic store: the image, then overlays of its calib type's metrics."""
    from ..viz import mosaic_view

    ct = store_calib_type(store)
    # zscale, as rubintv and the cp_verify notebooks show residuals: the store's
    # percentile window is dragged out by a dead detector and hides vignetting
    out = [("image", f"{name}: {ct or 'mosaic'} image",
            mosaic_view(store, width=width, stretch="zscale", title=f"{name} ({ct or 'mosaic'})"))]
    if df is None or ct is None:
        return out
    amp = df[(df["tier"] == "amp") & (df["calib_type"] == ct)]
    for metric in MOSAIC_METRICS:
        rows = amp[amp["metric"] == metric]
        if len(rows):
            out.append((metric, f"{name}: {ct} image + {metric}",
                        mosaic_view(store, width=width, overlay_df=rows, metric=metric, calib_type=ct,
                                    title=f"{name} + {ct} {metric}")))
    return out


def image_difference_heatmap(diff: pd.DataFrame, calib_type: str, column: str = "mean", *, camera=None):
    """Heat map of a per-amp image difference statistic (``compare_images``), diverging around 0."""
    from ..viz import focal_plane_heatmap

    tidy = pd.DataFrame({"detector": diff["detector"], "amp": diff["amp"], "metric": column,
                         "value": diff[column].astype(float)})
    symmetric = column in ("mean", "median")
    return focal_plane_heatmap(tidy, column, camera=camera, symmetric=symmetric, failing=False,
                               cmap=None if symmetric else "viridis", value_label=f"B - A {column}",
                               title=f"{calib_type} calibration B - A: {column} per amp")
