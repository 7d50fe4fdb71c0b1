"""Build the calibration report: every plot of a calibration as PNG, interactive HTML, an index.

Layout of the output directory::

    index.html            summary (cp_verify's answer), alerts, comparison, every figure
    png/<key>.png         static figures (``cpmosaic.viz.save_png``, no browser)
    interactive/<page>.html  standalone BokehJS pages (inline resources, offline), one per
                          calib type (a tab per metric), scatter, history, comparison, mosaic
    failures.html, outliers.html, alerts.html  sortable tables; .csv beside them
    summary.json          the pass/fail summary, counts, comparison summary, recommendations
    figures.json          every figure: key, kind, titles, files and the PNG's pixel transforms

Interactive pages group many plots: one BokehJS copy per page instead of per plot keeps a
full LSSTCam report to a few pages (and seconds).  ``interactive=False`` skips them.

>>> r = build_report("cpv_out/", "report/")                 # doctest: +SKIP
>>> r.index                                                  # doctest: +SKIP
PosixPath('report/index.html')
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence, TypeAlias
from urllib.parse import quote

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..camera import Camera
    from ..metrics.history import HistoryStore
    from ..viz.save import PanelTransform

log = logging.getLogger(__name__)

#: What a report reads: a tidy metrics table, a directory of cp_verify outputs or a Butler root.
Source: TypeAlias = pd.DataFrame | str | os.PathLike

__all__ = ["Figure", "ReportResult", "build_report", "load_source", "FIGURES_FILE"]

FIGURES_FILE = "figures.json"


@dataclass
class Figure:
    """One figure of the report.

    ``png`` and ``html`` are relative to the report directory (``html`` may end in
    ``#tab``); ``panels`` are the PNG's :class:`cpmosaic.viz.save.PanelTransform` fields
    (data -> pixel), one per panel.
    """

    key: str
    section: str
    kind: str
    title: str
    png: str
    html: str | None = None
    calib_type: str | None = None
    tier: str | None = None
    metric: str | None = None
    size: tuple[int, int] = (0, 0)
    panels: list[dict] = field(default_factory=list)

    def transform(self, i: int = 0) -> PanelTransform:
        """Panel *i*'s :class:`~cpmosaic.viz.save.PanelTransform` (focal-plane mm -> PNG pixels)."""
        from ..viz.save import PanelTransform

        p = dict(self.panels[i])
        p["xlim"], p["ylim"] = tuple(p["xlim"]), tuple(p["ylim"])
        return PanelTransform(**p)


@dataclass
class ReportResult:
    """What :func:`build_report` wrote and found."""

    out_dir: Path
    index: Path
    figures: list[Figure]
    pages: list[Path]
    summary: dict
    n_failures: int
    n_outliers: int
    alerts: pd.DataFrame | None = None
    recommendations: list[dict] = field(default_factory=list)
    comparison: dict | None = None
    problems: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: The outlier findings, ranked (:func:`cpmosaic.metrics.find_outliers`); ``n_outliers`` rows.
    outliers: pd.DataFrame | None = None

    def top_findings(self, n: int = 3) -> str:
        """The first *n* findings in a few words: ``dead or off detector R23_S11, hot amp R02_S01 C05``."""
        o = self.outliers
        if o is None or not len(o):
            return ""
        return ", ".join(f"{r.finding} {r.detector_name}" + (f" {r.amp}" if r.amp else "")
                         for r in o.head(n).itertuples())

    @property
    def partial(self) -> bool:
        """Some inputs could not be read (the CLI exits 3)."""
        return bool(self.problems)

    def figure(self, kind: str, calib_type: str | None = None, metric: str | None = None,
               tier: str | None = "amp") -> Figure:
        """The first figure of a kind (``heatmap``, ``histogram``, ...) for a calib type and metric."""
        for f in self.figures:
            if f.kind == kind and calib_type in (None, f.calib_type) and metric in (None, f.metric) \
                    and (tier is None or f.tier in (None, tier)):
                return f
        raise KeyError(f"no {kind} figure for {calib_type} {metric}")


def load_source(source: Source, *, collections: str | Sequence[str] | None = None,
                camera: Camera | str | os.PathLike | None = None,
                progress: bool | None = None) -> pd.DataFrame:
    """The tidy metrics table of a report source.

    Parameters
    ----------
    source
        A tidy table, a directory of cp_verify outputs or a Butler repository root.
    collections
        Butler collections to read; for a directory, the runs to keep (``fnmatch``
        patterns matched against the ``run`` column), so both sources select alike.
    """
    from ..errors import InputError
    from ..metrics import load_metrics

    if isinstance(collections, str):
        collections = [collections]
    if isinstance(source, pd.DataFrame):
        df = source
    else:
        from ..io.butler import is_butler_repo

        is_butler = is_butler_repo(source)
        df = load_metrics(source, collections=list(collections) if collections and is_butler else None,
                          camera=camera, progress=progress)
        if collections and not is_butler:
            runs = df["run"].astype(str)
            keep = np.zeros(len(df), bool)
            for pat in collections:
                keep |= runs.map(lambda r, p=pat: fnmatch.fnmatchcase(r, p)).to_numpy(dtype=bool)
            problems = df.attrs.get("problems", [])
            df = df[keep].reset_index(drop=True)
            df.attrs["problems"] = problems
            if not len(df):
                raise InputError(source, f"no run matches {', '.join(collections)}")
    return df


def _json_default(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, Path):
        return str(v)
    if v is pd.NA or v is None:
        return None
    return str(v)


class _Writer:
    """Writes PNGs as they are made and collects the tabs of each interactive page."""

    def __init__(self, out: Path, interactive: bool, bar) -> None:
        self.out = out
        self.interactive = interactive
        self.bar = bar
        self.figures: list[Figure] = []
        self.pages: dict[str, list[tuple[str, object]]] = {}
        self.titles: dict[str, str] = {}
        self.t_png = 0.0
        self.t_html = 0.0
        (out / "png").mkdir(parents=True, exist_ok=True)
        if interactive:
            (out / "interactive").mkdir(parents=True, exist_ok=True)

    def png(self, obj, key: str, *, section: str, kind: str, title: str, page: str | None = None,
            tab: str | None = None, **meta) -> Figure:
        from ..viz import save_png

        t0 = time.perf_counter()
        rel = f"png/{key}.png"
        r = save_png(obj, self.out / rel)
        self.t_png += time.perf_counter() - t0
        html = None
        if self.interactive and page is not None:  # the fragment names the tab (page.TAB_SCRIPT)
            html = f"interactive/{page}.html" + (f"#{quote(tab)}" if tab else "")
        fig = Figure(key, section, kind, title, rel, html, size=tuple(r.image.size),
                     panels=[dataclasses.asdict(p) for p in r.panels], **meta)
        self.figures.append(fig)
        return fig

    def tab(self, page: str, title: str, label: str, objs: Sequence) -> None:
        """Add a tab (its plots in a 2-column layout) to an interactive page."""
        if not self.interactive:
            return
        from ..viz.style import holoviews

        hv = holoviews()
        objs = [o for o in objs if o is not None]
        obj = objs[0] if len(objs) == 1 else hv.Layout(objs).cols(2)
        self.pages.setdefault(page, []).append((label, obj))
        self.titles[page] = title

    def write_pages(self) -> list[Path]:
        """Render and write every interactive page (one BokehJS copy each)."""
        from .page import write_interactive

        t0 = time.perf_counter()
        paths = []
        for name, tabs in self.pages.items():
            paths.append(write_interactive(self.out / "interactive" / f"{name}.html", tabs, self.titles[name]))
            self.bar.update(1)
        self.t_html += time.perf_counter() - t0
        return paths


def _keep(df: pd.DataFrame | None, calib_types, metrics) -> pd.DataFrame | None:
    """Rows of the chosen calib types and metrics (all when None); ``attrs`` kept."""
    if df is None or (not calib_types and not metrics):
        return df
    keep = np.ones(len(df), bool)
    if calib_types:
        keep &= df["calib_type"].astype(str).str.lower().isin([c.lower() for c in calib_types]).to_numpy()
    if metrics:
        # exposure- and detector-level verdicts stay: cp_verify's answer needs them
        keep &= (df["metric"].astype(str).isin(list(metrics)) | (df["metric"] == "SUCCESS")).to_numpy(dtype=bool)
    out = df[keep].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


def _history(history, window: int):
    """History table (text columns), alerts, validity ranges and recommendations of a store."""
    from ..errors import InputError
    from ..metrics.drift import detect_changes
    from ..metrics.history import HistoryStore, recommendations, validity_ranges

    store = history if hasattr(history, "load") else HistoryStore(history)
    if not store.calib_types():
        raise InputError(str(getattr(store, "path", history)), "no history store here")
    h = store.load()
    for c in h.columns:  # categoricals would make every groupby a cartesian product
        if isinstance(h[c].dtype, pd.CategoricalDtype):
            h[c] = h[c].astype(str)
    alerts = detect_changes(h, window=window)
    return h, alerts, validity_ranges(h, alerts), recommendations(h, alerts)


def _order(item) -> tuple:
    return (item.calib_type, 0 if item.tier == "amp" else 1, item.metric)


def _calib_sections(w: _Writer, items, tests, df, results, diff, df_b, labels, camera,
                    color_range: str = "focal_plane") -> None:
    from .plots import (comparison_plots, metric_heatmap, metric_histogram_plot, select, test_histogram, test_info,
                        test_only_info)

    for item in items:
        rows = select(df, item)
        rows_b = select(df_b, item) if df_b is not None else None
        info = test_info(rows, results, item)
        sec, page = f"calib:{item.calib_type}", item.calib_type
        meta = dict(calib_type=item.calib_type, tier=item.tier, metric=item.metric)
        title = f"{item.calib_type} calibration: every metric"
        heat = metric_heatmap(rows, item, camera=camera, color_range=color_range)
        w.png(heat, f"{item.slug}-heatmap", section=sec, kind="heatmap", title=f"{item.calib_type} {item.label}",
              page=page, tab=item.label, **meta)
        hist = metric_histogram_plot(rows, item, info, rows_b=rows_b if rows_b is not None and len(rows_b) else None,
                                     labels=labels)
        w.png(hist, f"{item.slug}-histogram", section=sec, kind="histogram",
              title=f"{item.calib_type} {item.label} histogram", page=page, tab=item.label, **meta)
        extra = []
        th = test_histogram(item, info) if info is not None else None
        if th is not None:
            w.png(th, f"{item.slug}-test", section=sec, kind="test_histogram",
                  title=f"{item.calib_type} {item.label}: tested quantity", page=page, tab=item.label, **meta)
            extra.append(th)
        cmp = comparison_plots(diff, item, camera=camera, labels=labels) if diff is not None else None
        if cmp is not None:
            for obj, kind in zip(cmp, ("difference_heatmap", "difference_histogram", "ab_scatter")):
                w.png(obj, f"{item.slug}-{kind}", section=sec, kind=kind,
                      title=f"{item.calib_type} {item.label} {kind.replace('_', ' ')}", page=page, tab=item.label,
                      **meta)
            extra += list(cmp)
        w.tab(page, title, item.label, [heat, hist] + extra)
        w.bar.update(1)
    for item, rows in tests:  # tests of a quantity that is no metric: its heat map and histogram
        sec, page = f"calib:{item.calib_type}", item.calib_type
        meta = dict(calib_type=item.calib_type, tier=item.tier, metric=item.metric)
        heat = metric_heatmap(rows, item, camera=camera, color_range=color_range)
        w.png(heat, f"{item.slug}-heatmap", section=sec, kind="heatmap", title=f"{item.calib_type} {item.label} test",
              page=page, tab=item.label, **meta)
        th = test_histogram(item, test_only_info(rows))
        w.png(th, f"{item.slug}-test", section=sec, kind="test_histogram",
              title=f"{item.calib_type} {item.label}: tested quantity", page=page, tab=item.label, **meta)
        w.tab(page, f"{item.calib_type} calibration: every metric", item.label, [heat, th])
        w.bar.update(1)


def build_report(source: Source, out_dir: str | os.PathLike, *, collections: str | Sequence[str] | None = None,
                 against: Source | None = None, collections_b: str | Sequence[str] | None = None,
                 history: str | os.PathLike | HistoryStore | None = None,
                 mosaics: Sequence = (), image_comparisons: Mapping[str, pd.DataFrame] | None = None,
                 calib_types: Sequence[str] | None = None, metrics: Sequence[str] | None = None,
                 camera: Camera | str | os.PathLike | None = None, labels: tuple[str, str] | None = None, title: str | None = None,
                 interactive: bool = True, z: float = 5.0, history_window: int = 10, note: str | None = None,
                 progress: bool | None = None, color_range: str = "focal_plane",
                 storage_options: dict | None = None) -> ReportResult:
    """Write every plot of a calibration, the tables and the pass/fail summary under *out_dir*.

    Parameters
    ----------
    source
        cp_verify outputs: a directory tree, a Butler repository root (with
        *collections*) or a tidy table (:func:`cpmosaic.metrics.load_metrics`).
    collections
        Butler collections, or run patterns to keep from a directory tree.
    against, collections_b
        A second calibration B (same kinds of source; the source is A): its values are
        overlaid on the histograms, and difference heat maps, histograms and B-vs-A
        scatters are added (differences are B - A, as ``cpmosaic compare``).
    history, history_window
        A history store (path or :class:`~cpmosaic.metrics.HistoryStore`): candlesticks by
        night with drift and jump alerts (``detect_changes(window=history_window)``),
        validity ranges, recommendations.
    mosaics
        Mosaic stores (paths, URLs or opened): the image and overlays of its calib type's metrics.
    storage_options
        fsspec options of mosaic store URLs (``s3://...``), e.g. ``{"anon": True}``.
    image_comparisons
        Per calib type, the per-amp image differences of two calibrations
        (:func:`cpmosaic.metrics.compare_images`).
    calib_types, metrics
        Only these calibration types and metrics (default all; the tests' verdicts stay).
    labels
        Names of the source (A) and of *against* (B) in titles and legends (default ``("A", "B")``).
    interactive
        Write the interactive HTML pages (the slow part; PNGs and index are always written).
    z
        Outlier threshold in robust sigmas.
    note
        A line under the title (where the data came from, when the source is a table).
    color_range
        Heat-map colour ranges: ``"focal_plane"`` (one median +- 4 sigma_MAD for every amp)
        or ``"sensor_type"`` (each sensor type its own, so a vendor step does not saturate
        half the focal plane); see :func:`cpmosaic.viz.focal_plane_heatmap`.

    Returns
    -------
    ReportResult
    """
    from .. import progress as prog
    from ..metrics import compare_metrics, comparison_summary, evaluate, find_outliers, summary
    from ..metrics.ptc import find_ptc
    from ..viz.heatmap import resolve_camera
    from . import page
    from .plots import (coupled_pairs, coupled_scatter, image_difference_heatmap, mosaic_plots, plot_items,
                        test_only_items, trend_plot)

    if color_range not in ("focal_plane", "sensor_type"):
        raise ValueError(f"color_range must be 'focal_plane' or 'sensor_type', not {color_range!r}")
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = labels or ("A", "B")

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - t0
        return now

    t = time.perf_counter()
    df = load_source(source, collections=collections, camera=camera, progress=progress)
    df_b = load_source(against, collections=collections_b, camera=camera, progress=progress) \
        if against is not None else None
    problems = list(df.attrs.get("problems", [])) + (list(df_b.attrs.get("problems", [])) if df_b is not None else [])
    cam = resolve_camera(camera, df)
    t = lap("load", t)
    # Tests, verdicts and tables cover the whole calibration; a choice of calib types or
    # metrics narrows the plots only (a test may need metrics that are not drawn).
    ptc, ptc_where = find_ptc(None if isinstance(source, pd.DataFrame) else source, collections, df, camera=cam)
    results = evaluate(df, camera=cam, ptc=ptc)
    summ = summary(df, results)
    summ["ptc"] = ptc_where
    failures = results[results["passed"].eq(False).fillna(False) | results["cp_verify_passed"].eq(False).fillna(False)
                       | results["disagreement"].ne("")]
    hist = alerts = validity = None
    recs: list[dict] = []
    if history is not None:  # first: its drift and jump alerts are outlier findings too
        t = lap("evaluate", t)
        hist, alerts, validity, recs = _history(history, history_window)
        # a night file the store skipped is a partial input, as in ``cpmosaic history``
        problems += [{"source": str(p), "problem": str(r)} for p, r in hist.attrs.get("problems", [])]
        t = lap("history", t)
    outliers = find_outliers(df, z=z, camera=cam, alerts=alerts)
    df, df_b = _keep(df, calib_types, metrics), _keep(df_b, calib_types, metrics)
    if df is None or not len(df):
        from ..errors import InputError

        raise InputError(None if isinstance(source, pd.DataFrame) else source,
                         f"no rows of calib types {calib_types} and metrics {metrics}")
    diff = compare_metrics(df, df_b) if df_b is not None else None
    cmp_summary = comparison_summary(diff) if diff is not None else None
    t = lap("evaluate", t)
    stores: list[tuple[str, object]] = []
    for s in mosaics:
        from ..viz.mosaic_view import open_store

        st = open_store(s, storage_options)
        stores.append((Path(os.fspath(s)).stem if isinstance(s, (str, os.PathLike)) else f"mosaic{len(stores)}", st))

    items = plot_items(df)
    tests = [(i, r) for i, r in test_only_items(results, items)
             if (not metrics or i.metric in metrics) and (not calib_types or i.calib_type in calib_types)]
    pairs = coupled_pairs(df)
    hist_items = [] if hist is None else sorted(
        (c, m) for c, m in {(str(c), str(m)) for c, m in zip(hist["calib_type"], hist["metric"])}
        if m != "SUCCESS" and (not metrics or m in metrics) and (not calib_types or c in calib_types))
    # one step per metric, scatter, comparison, trend, mosaic, and one per interactive page
    n_steps = len(items) + len(tests) + len(pairs) + len(image_comparisons or {}) + len(hist_items) + len(stores)
    n_pages = (len({i.calib_type for i in items}) + bool(pairs) + bool(image_comparisons) + bool(hist_items)
               + len(stores)) if interactive else 0
    with prog.bar(n_steps + n_pages, desc="report", progress=progress, unit="step") as bar:
        w = _Writer(out, interactive, bar)
        _calib_sections(w, items, tests, df, results, diff, df_b, labels, cam, color_range)
        for ct, x, y, ref in pairs:
            sc = coupled_scatter(df, ct, x, y, ref, camera=cam)
            key = f"scatter-{ct}-{y}-{x}"
            w.png(sc, key, section="scatter", kind="scatter", title=f"{ct}: {y} vs {x}", page="scatter",
                  tab=f"{ct} {y} vs {x}", calib_type=ct, metric=y)
            w.tab("scatter", "coupled metrics", f"{ct} {y} vs {x}", [sc])
            bar.update(1)
        for ct, diffs in (image_comparisons or {}).items():
            for col in ("mean", "max_abs"):
                hm = image_difference_heatmap(diffs, ct, col, camera=cam)
                w.png(hm, f"imagediff-{ct}-{col}", section="comparison", kind="image_difference", page="comparison",
                      tab=f"{ct} {col}", title=f"{ct} calibration B - A ({col})", calib_type=ct, metric=col)
                w.tab("comparison", "image-level comparison of two calibrations", f"{ct} {col}", [hm])
            bar.update(1)
        for ct, metric in hist_items:
            tr = trend_plot(hist, ct, metric, alerts)
            w.png(tr, f"history-{ct}-{metric}", section="history", kind="candlestick", page="history",
                  tab=f"{ct} {metric}", title=f"{ct} {metric} by night", calib_type=ct, metric=metric)
            w.tab("history", "metrics by night", f"{ct} {metric}", [tr])
            bar.update(1)
        for name, st in stores:
            for label, ttl, view in mosaic_plots(st, df, name=name):
                w.png(view, f"mosaic-{name}-{label}", section="mosaic", kind="mosaic", page=f"mosaic-{name}",
                      tab=label, title=ttl, metric=None if label == "image" else label)
                w.tab(f"mosaic-{name}", f"mosaic {name}", label, [view])
            bar.update(1)
        timings["png"] = w.t_png
        pages = w.write_pages()
        timings["html"] = w.t_html
    t = time.perf_counter()
    tables = page.write_tables(out, failures=failures, outliers=outliers, alerts=alerts, validity=validity)
    result = ReportResult(out, out / "index.html", w.figures, pages, summ, int(len(failures)), int(len(outliers)),
                          alerts, recs, cmp_summary, problems, timings, outliers)
    doc = {"summary": summ, "n_failures": result.n_failures, "n_outliers": result.n_outliers,
           "n_alerts": None if alerts is None else int(len(alerts)), "recommendations": recs,
           "comparison": cmp_summary, "problems": problems,
           "source": str(source) if not isinstance(source, pd.DataFrame) else "table",
           "collections": collections, "against": None if against is None else str(against)}
    (out / "summary.json").write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    (out / FIGURES_FILE).write_text(json.dumps([dataclasses.asdict(f) for f in w.figures], indent=1,
                                               default=_json_default) + "\n")
    page.write_index(result, title=title or "cpmosaic calibration report", source=source, collections=collections,
                     against=against, labels=labels, tables=tables, failures=failures, outliers=outliers,
                     validity=validity, items=sorted(items + [i for i, _ in tests], key=_order), camera=cam.name,
                     note=note)
    lap("index", t)
    timings["total"] = time.perf_counter() - t_start
    log.info("report: %d figures, %d pages in %.1f s -> %s", len(w.figures), len(pages), timings["total"],
             result.index)
    return result
