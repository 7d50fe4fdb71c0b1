"""Linked, level-aware views of metrics and mosaics: a Panel app for notebooks and the browser.

:func:`explore` returns an :class:`Explorer`, a Panel ``Viewer``: show it in a notebook
cell, or serve it (``cpmosaic explore SOURCE``).  Its panels are linked:

- **heat map** of the chosen calib type, run, night and metric (colour range from a
  slider; failing amps outlined red, outliers orange);
- **histogram** of the per-amp values drawn on the heat map; a range selected on it
  (box select) outlines those amps on the heat map and on the mosaic;
- **mosaic** image, the amps coloured by the metric when the overlay is on; zooming reads
  only the visible window of the pyramid level whose pixels match the screen
  (:mod:`cpmosaic.viz.viewport`), and the heat map follows its focal-plane range (and
  the mosaic the heat map's);
- a tap on an amp (heat map or mosaic, :mod:`cpmosaic.viz.amp_pick`) selects it: its
  **history** (candlesticks with the amp's own series, from a history store), its
  **cut-out** at full resolution (level 0) and the **table** of its metrics with
  cp_verify's verdicts and cpmosaic's.  What a tap changes is updated in place
  (:mod:`cpmosaic.viz.explore_links`): no HoloViews plot is re-rendered by a tap.

The selection (calib type, run, night, metric, amp) is in the URL of a served app
(:mod:`cpmosaic.viz.explore_state`), so a link opens on the same amp elsewhere; keys step
through amps, detectors and metrics there (:mod:`cpmosaic.viz.explore_keys`).

>>> app = explore("cpv_out", mosaic_stores=["bias.zarr"], history="history")   # doctest: +SKIP
>>> app                                                                         # doctest: +SKIP
"""

from __future__ import annotations

import html
import logging
import os
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd
import panel as pn
import param

from . import style
from .amp_pick import amp_key, amps_in_range
from .explore_data import amp_metrics, choices, default_metric, metric_label, outline_xy, select_rows
from .explore_links import TapLinks, follow_ranges
from .explore_state import QUERY_KEYS, ExploreState, describe, to_query
from .explore_widgets import make_widgets, sync_widgets
from .explore_sources import ExploreSources
from .viewport import regrid_mean, amp_cutout, full_range, plan_view

log = logging.getLogger(__name__)

__all__ = ["Explorer", "ExploreSources", "explore", "amp_cutout"]

#: DOM id of the selected-amp heading (what tests and users look for).
AMP_TITLE_ID = "cpm-selected-amp"
#: Title of the heat map plot (the selection is in the widgets and the amp heading).
HEAT_TITLE = "heat map (tap an amp)"
HIST_TITLE = "values per amp (box-select a range)"


class Explorer(pn.viewable.Viewer):
    """The explorer app: parameters are the selection, panels follow them (see module doc).

    Build it with :func:`explore` (or from shared :class:`ExploreSources`, one per session
    when served).  ``select_amp(detector_name, amp)``, ``tap_heatmap(x, y)``
    and ``select_range(lo, hi)`` do in Python what a tap or a box selection does in the
    browser.
    """

    calib_type = param.String(default="", doc="calibration type (bias, dark, flat, ...)")
    run = param.String(default="", doc="run (collection); empty: every run")
    day = param.String(default="", doc="night YYYY-MM-DD; empty: every night")
    metric = param.String(default="", doc="metric on the heat map and histogram")
    detector = param.String(default="", doc="detector name of the selected amp")
    amp = param.String(default="", doc="selected amp")
    overlay = param.Boolean(default=True, doc="colour the mosaic's amps by the metric")
    clim = param.Range(default=None, doc="colour range of the heat map")
    value_range = param.Range(default=None, doc="range selected on the histogram (amps highlighted)")

    def __init__(self, sources: "ExploreSources", *, width: int = 560, stretch: str = "asinh", webgl: bool = False,
                 **params) -> None:
        super().__init__(**params)
        self.webgl = bool(webgl)  # canvas by default: few glyphs, and no slow software-GL blits without a GPU
        self.links = TapLinks()
        self.sources = sources
        self.df, self.against, self.camera = sources.df, sources.against, sources.camera
        self.geometry, self.results, self.outliers = sources.geometry, sources.results, sources.outliers
        self.history, self.stores, self.store_types = sources.history, sources.stores, sources.store_types
        self.width = int(width)
        self.stretch = stretch
        self._norms: dict[int, object] = {}
        self._history_cache: dict[tuple[str, str], pd.DataFrame] = {}
        self._values_cache: dict[tuple, pd.DataFrame] = {}
        self.reads: list = []  # ViewWindow of each mosaic read, newest last (bounded)
        self._init_selection()
        self.param.watch(self._on_calib_type, ["calib_type"])
        self.param.watch(self._on_data_selection, ["run", "day", "metric"])
        self._build()
        self.param.watch(self._show_amp, ["calib_type", "metric", "detector", "amp"])
        self._show_amp()

    # -- state -----------------------------------------------------------------
    @property
    def state(self) -> ExploreState:
        return ExploreState(**{k: getattr(self, k) for k in QUERY_KEYS})

    def _init_selection(self) -> None:
        opts = choices(self.df, self.state)
        if not self.calib_type and opts["calib_type"]:
            self.calib_type = opts["calib_type"][0]
        opts = choices(self.df, self.state)
        if not self.day and not self.run and opts["day"]:
            self.day = opts["day"][-1]
        opts = choices(self.df, self.state)
        if not self.metric or self.metric not in opts["metric"]:
            self.metric = default_metric(opts["metric"])
        self.clim = self._default_clim()

    def _on_calib_type(self, *events) -> None:
        opts = choices(self.df, ExploreState(calib_type=self.calib_type))
        upd = {}
        if self.run and self.run not in opts["run"]:
            upd["run"] = ""
        if self.day and self.day not in opts["day"]:
            upd["day"] = opts["day"][-1] if opts["day"] else ""
        if upd:
            self.param.update(**upd)
        self._on_data_selection(*events)

    def _on_data_selection(self, *events) -> None:
        opts = choices(self.df, self.state)
        if self.metric not in opts["metric"] and opts["metric"]:
            self.metric = default_metric(opts["metric"])
            return  # the metric watcher comes back here
        self.param.update(clim=self._default_clim(), value_range=None)
        self._sync_widgets()

    def amp_values(self) -> pd.DataFrame:
        """Per-amp values of the selection (``amp_values``: geometry, ``value``, ``failed``)."""
        from .heatmap import amp_values

        s = self.state
        key = (s.calib_type, s.run, s.day, s.metric)
        hit = self._values_cache.get(key)
        if hit is None:
            rows = select_rows(self.df, s)
            fails = self._failures(rows)
            hit = amp_values(rows, s.metric, camera=self.camera, failing=fails) if len(rows) else \
                self.geometry.assign(value=np.nan, n=0, failed=False)
            if len(self._values_cache) > 32:
                self._values_cache.clear()
            self._values_cache[key] = hit
        return hit

    def _failures(self, rows: pd.DataFrame) -> list[tuple[int, str]]:
        """Amps failing this metric here (cpmosaic's tests) or in cp_verify."""
        s = self.state
        res = select_rows(self.results, ExploreState(calib_type=s.calib_type, run=s.run, day=s.day), metric=False)
        res = res[res["test"].astype(str) == s.metric]
        bad = res[res["passed"].eq(False).fillna(False) | res["cp_verify_passed"].eq(False).fillna(False)]
        out = set(zip(bad["detector"].astype(int), bad["amp"].astype(str)))
        cpv = rows[rows["passed"].eq(False).fillna(False)] if "passed" in rows else rows.iloc[:0]
        out |= set(zip(cpv["detector"].astype(int), cpv["amp"].astype(str)))
        return sorted(out)

    def _outlier_amps(self) -> pd.DataFrame:
        s = self.state
        o = select_rows(self.outliers, s)
        keys = set(zip(o["detector"].astype(int), o["amp"].astype(str)))
        g = self.geometry
        hit = [(int(d), str(a)) in keys for d, a in zip(g["detector"], g["amp"])]
        # detector-level outliers (amp "") mark the whole detector's amps
        dets = {d for d, a in keys if a == ""}
        hit = np.array(hit) | g["detector"].isin(dets).to_numpy()
        return g[hit]

    def _default_clim(self) -> tuple[float, float] | None:
        v = self.amp_values()["value"].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if not v.size:
            return None
        lo, hi = (float(x) for x in style.robust_range(v))
        return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)

    # -- actions (what taps and selections do) -----------------------------------
    def select_amp(self, detector: str, amp: str) -> None:
        """Select an amp: the history, cut-out and table follow."""
        self.param.update(detector=str(detector), amp=str(amp))

    def tap_heatmap(self, x: float | None, y: float | None) -> tuple[str, str] | None:
        """Select the amp at focal-plane ``(x, y)`` mm (a tap on the heat map or mosaic)."""
        if x is None or y is None:
            return None
        key = amp_key(self.geometry, x, y)
        if key is not None:
            self.select_amp(*key)
        return key

    def select_range(self, lo: float | None, hi: float | None) -> pd.DataFrame:
        """Highlight the amps whose value lies in ``[lo, hi]``; returns them."""
        self.value_range = None if lo is None and hi is None else (lo, hi)
        return self.highlighted()

    def highlighted(self) -> pd.DataFrame:
        """The amps of the selected histogram range (empty when none is selected)."""
        if self.value_range is None:
            return self.amp_values().iloc[:0]
        return amps_in_range(self.amp_values(), *self.value_range)

    # -- the mosaic ----------------------------------------------------------------
    def store(self):
        """The mosaic store of the selected calib type (else the first one; None without stores)."""
        if not self.stores:
            return None
        for s, t in zip(self.stores, self.store_types):
            if t == self.calib_type:
                return s
        return self.stores[0]

    def _norm(self, store):
        """The store's one display normalisation (as `cpmosaic png` and the tiles draw it)."""
        from .render import store_normalize

        key = id(store)
        if key not in self._norms:
            self._norms[key] = store_normalize(store, self.stretch)
        return self._norms[key]

    def view_image(self, x_range=None, y_range=None, width: int | None = None, height: int | None = None):
        """The mosaic view of a focal-plane range: ``(ViewWindow, display array y-up in [0, 1])``.

        Reads only the window of the level :func:`~cpmosaic.viz.viewport.plan_view`
        chooses, then reduces it to the screen size (datashader ``regrid``, mean).
        """
        store = self.store()
        full_x, full_y = full_range(store)
        xr = tuple(x_range) if x_range and None not in x_range else full_x
        yr = tuple(y_range) if y_range and None not in y_range else full_y
        width = int(width or self.width)
        height = int(height or max(1, round(width * (yr[1] - yr[0]) / (xr[1] - xr[0]))))
        win = plan_view(store, xr, yr, width, height)
        self.reads.append(win)
        del self.reads[:-64]
        if win.empty:
            return win, np.full((1, 1), np.nan, np.float32)
        data = np.asarray(store.read(win.level, *win.rows, *win.cols), dtype=np.float32)
        h, w = data.shape
        if w > width or h > height:
            data = regrid_mean(data, win.bounds_mm, min(w, width), min(h, height))
        return win, np.asarray(self._norm(store)(data), dtype=np.float32)

    def _mosaic_dmap(self, hv):
        store = self.store()

        def image(x_range=None, y_range=None, calib_type=None):
            win, disp = self.view_image(x_range, y_range)
            if win.empty:
                xr, yr = tuple(x_range or (0, 1)), tuple(y_range or (0, 1))
                bounds = (xr[0], yr[0], xr[1], yr[1])
            else:
                bounds = win.bounds_mm
            img = hv.Image(np.ascontiguousarray(disp[::-1]), bounds=bounds, kdims=["x", "y"],
                           vdims=[hv.Dimension("display", range=(0.0, 1.0))])
            return img.opts(cmap="gray", clim=(0.0, 1.0), tools=["hover"], clipping_colors={"NaN": (0, 0, 0, 0)},
                            title=f"mosaic {self.store_label()} (level {win.level})")

        fx, fy = full_range(store)
        dmap = hv.DynamicMap(image, streams=[hv.streams.RangeXY(x_range=fx, y_range=fy),
                                             hv.streams.Params(self, ["calib_type"])])
        return dmap

    def store_label(self) -> str:
        s = self.store()
        if s is None:
            return ""
        return str(s.attrs.get("name") or "") if hasattr(s, "attrs") else ""

    # -- panel builders ----------------------------------------------------------------
    def _heat(self, calib_type, run, day, metric, clim):
        from .heatmap import focal_plane_heatmap

        vals = self.amp_values()
        # one row per amp already (medians); focal_plane_heatmap re-reduces it harmlessly
        table = pd.DataFrame({"detector": vals["detector"], "amp": vals["amp"], "metric": metric,
                              "value": vals["value"]}).dropna(subset=["value"])
        if table.empty:
            table = pd.DataFrame({"detector": [int(self.geometry["detector"].iloc[0])],
                                  "amp": [str(self.geometry["amp"].iloc[0])], "metric": metric, "value": [np.nan]})
        plot = focal_plane_heatmap(table, metric, camera=self.camera, clim=clim, failing=False, labels="raft",
                                   width=self.width, title=f"{describe(self.state.with_amp('', ''))}")
        return plot

    def _marks(self, **_):
        """Outlier (orange) and failing (red) amp outlines of the selection, one Path each."""
        hv = style.holoviews()
        vals = self.amp_values()
        return hv.Overlay([
            hv.Path([outline_xy(self._outlier_amps())], kdims=["x", "y"], group="Outliers").opts(
                color="#ff7f0e", line_width=1.5),
            hv.Path([outline_xy(vals[vals["failed"]])], kdims=["x", "y"], group="Failing").opts(
                color=style.FAIL_COLOR, line_width=2.0),
        ])

    def _mark_highlight(self, **_):
        """Outlines of the amps in the histogram's selected range (cyan)."""
        hv = style.holoviews()
        return hv.Path([outline_xy(self.highlighted())], kdims=["x", "y"], group="Highlighted").opts(
            color="#00e5ff", line_width=2.5)

    def _show_amp(self, *_) -> None:
        """Show the selected amp in the tap-linked glyphs: outlines, history series, cut-out."""
        g = self.geometry
        xy = outline_xy(g[(g["detector_name"] == self.detector) & (g["amp"] == self.amp)])
        self.links.show_outline(xy[:, 0], xy[:, 1])
        if self.history is not None:
            pts = self.amp_series()
            self.links.show_series(pts["date"].to_numpy(), pts["value"].to_numpy())
        if self.stores:
            cut = self.cutout_image()
            if cut is None:
                s = self.state
                self.links.show_cutout(None, title=f"no pixels of {s.detector} {s.amp} in this mosaic"
                                       if s.amp else "tap an amp")
            else:
                win, img, title = cut
                self.links.show_cutout(img, win.bounds_mm, title)

    def _in_page(self, fn, *args, doc=None) -> None:
        """A change from the page (a tap, a key): *fn*, then every panel's change in one message."""
        doc = doc or pn.state.curdoc
        if doc is None:
            fn(*args)
            return
        from panel.io.state import set_curdoc

        t = time.perf_counter()
        with set_curdoc(doc), pn.io.hold(doc):
            fn(*args)
        log.debug("explore: %s%s took %.0f ms", getattr(fn, "__name__", fn), args[-2:],
                  (time.perf_counter() - t) * 1e3)

    def _overlay_amps(self, overlay, **_):
        hv = style.holoviews()
        vals = self.amp_values()
        have = vals[vals["value"].notna()]
        cmap = style.DEFAULT_CMAP
        lo, hi = self.clim or (0.0, 1.0)
        return hv.Rectangles(have[["x0", "y0", "x1", "y1", "value", "detector_name", "amp"]],
                             kdims=["x0", "y0", "x1", "y1"], vdims=["value", "detector_name", "amp"]).opts(
            color="value", cmap=cmap, clim=(lo, hi), fill_alpha=0.35 if overlay else 0.0, line_color=None)

    def _hist(self, calib_type, run, day, metric):
        from .distributions import metric_histogram

        vals = self.amp_values()["value"]
        a = pd.DataFrame({"metric": metric, "value": vals.to_numpy(dtype=float)})
        b = None
        if self.against is not None:
            from .heatmap import amp_values

            rows = select_rows(self.against, ExploreState(calib_type=calib_type, metric=metric))
            if len(rows):
                b = pd.DataFrame({"metric": metric,
                                  "value": amp_values(rows, metric, camera=self.camera)["value"].to_numpy()})
        plot = metric_histogram(a, metric, df_b=b, labels=("this run", "against"), width=self.width, height=260,
                                title=HIST_TITLE)
        return plot

    def _hist_selection(self, boundsx=None) -> None:
        if boundsx is None:
            return
        self.select_range(*boundsx)

    def history_rows(self) -> pd.DataFrame:
        """The history store's rows of the selected calib type and metric (cached)."""
        s = self.state
        key = (s.calib_type, s.metric)
        hist = self._history_cache.get(key)
        if hist is None:
            hist = self.history.load(s.calib_type or None, metric=s.metric or None)
            hist = hist.astype({c: str for c in hist.select_dtypes("category").columns})
            if len(self._history_cache) > 8:
                self._history_cache.clear()
            self._history_cache[key] = hist
        return hist

    def _trend(self, calib_type, metric):
        """Candlesticks of the metric over every amp, night by night (``metric_trend``)."""
        from .timeseries import metric_trend

        hv = style.holoviews()
        hist = self.history_rows()
        if hist.empty or not (hist["metric"] == metric).any():
            out = hv.Overlay([hv.Segments([], kdims=["date", "min", "date2", "max"]),
                              hv.Rectangles([], kdims=["x0", "q1", "x1", "q3"]),
                              hv.Segments([], kdims=["x0", "median", "x1", "median"])])
        else:
            out = metric_trend(hist, metric, calib_type=calib_type or None, width=self.width, height=260)
        # the candles' first dimension is "min": say what the axis holds
        return out.opts(ylabel=metric_label(metric, calib_type), xlabel="night")

    def amp_series(self) -> pd.DataFrame:
        """``date, value``: the selected amp's median of the metric per night in the history."""
        s = self.state
        hist = self.history_rows()
        rows = hist[(hist["detector_name"] == s.detector) & (hist["amp"] == s.amp) & (hist["metric"] == s.metric)
                    & hist["day_obs"].notna()]
        by_day = rows.groupby(rows["day_obs"].astype("int64"))["value"].median()
        dates = pd.to_datetime(by_day.index.astype(str), format="%Y%m%d")
        return pd.DataFrame({"date": dates.to_numpy(), "value": by_day.to_numpy(dtype=float)})

    def cutout_image(self):
        """The selected amp at level 0 (full resolution), stretched on its own (zscale).

        ``(ViewWindow, 8-bit image with row 0 at the bottom, title)``, or None without one.
        """
        from .display import fit, quantize

        s = self.state
        cut = amp_cutout(self.store(), s.detector, s.amp) if (s.detector and s.amp) else None
        if cut is None:
            return None
        win, data = cut
        # 8-bit grey levels by the display layer's one quantisation (a quarter of float32's bytes)
        img = quantize(fit("zscale", data)(data)[::-1])
        h, w = data.shape
        return win, img, f"{s.detector} {s.amp}: level 0, {w} x {h} px"

    def _table_html(self) -> str:
        from .tables import table_html

        s = self.state
        head = describe(s) if s.detector and s.amp else "no amp selected"
        out = [f'<h3 id="{AMP_TITLE_ID}" data-detector="{html.escape(s.detector)}" '
               f'data-amp="{html.escape(s.amp)}">{html.escape(head)}</h3>']
        if s.detector and s.amp:
            t = amp_metrics(self.df, s, results=self.results, against=self.against)
            if self.against is None:
                t = t.drop(columns=["against"])
            out.append(table_html(t, table_id="cpm-amp-metrics", max_rows=500))
        return "\n".join(out)

    def _highlight_html(self) -> str:
        hi = self.highlighted()
        if self.value_range is None:
            text, lo, up = "box-select a range on the histogram to outline its amps", "", ""
        else:
            lo, up = (f"{v:.6g}" if v is not None else "" for v in self.value_range)
            names = ", ".join(f"{d} {a}" for d, a in zip(hi["detector_name"].head(8), hi["amp"].head(8)))
            more = " ..." if len(hi) > 8 else ""
            text = f"{len(hi)} amps with {self.metric} in [{lo}, {up}] outlined: {names}{more}"
        return (f'<p id="cpm-highlight" data-n="{len(hi)}" data-lo="{lo}" data-hi="{up}" '
                f'style="font:12px system-ui,sans-serif;margin:2px 0">{html.escape(text)}</p>')

    # -- layout ----------------------------------------------------------------------
    def _widgets(self):
        return make_widgets(self)

    def _sync_widgets(self) -> None:
        sync_widgets(self)

    def _on_loop(self, fn, *args) -> None:
        """Run a stream's consequence on the served document's event loop (at once elsewhere).

        HoloViews may call stream subscribers off the loop; changes made there reach the browser
        only when the loop next wakes (the next message from the page, up to a second later).
        ``add_next_tick_callback`` wakes it, and the changes go out together.
        """
        doc = getattr(self, "_doc", None)
        if doc is None:
            fn(*args)
            return

        def run() -> None:
            t = time.perf_counter()
            with pn.io.hold(doc):  # every panel's change in one message
                fn(*args)
            log.debug("explore: %s took %.0f ms", getattr(fn, "__name__", fn), (time.perf_counter() - t) * 1e3)

        doc.add_next_tick_callback(run)

    def _figure_hook(self, role: str):
        """A plot hook for each figure of the app: its output backend, and on the focal-plane figures
        the selected-amp outline, the tap handler and the range link.

        The heat map and the mosaic show the same focal-plane range: at the end of a zoom or pan
        on either, the other takes its four range ends in the page (:func:`follow_ranges`).
        The ranges are not shared models, so the mosaic's ``RangeXY`` stream (the level-aware
        window read) hears a zoom of either.
        """
        outline = self.links.outline_hook() if role in ("heat", "mosaic") else None

        def hook(plot, element) -> None:
            fig = plot.state
            fig.output_backend = "webgl" if self.webgl else "canvas"
            if outline is None:
                return
            tapped = self.__dict__.setdefault("_tapped", set())  # hooks run on every update: once per figure
            if fig.id not in tapped:
                tapped.add(fig.id)
                fig.on_event("tap", lambda event: self._in_page(self.tap_heatmap, event.x, event.y,
                                                                 doc=fig.document))
            outline(plot, element)
            figs = self.__dict__.setdefault("_figures", {})
            figs[role] = fig
            heat, mosaic = figs.get("heat"), figs.get("mosaic")
            if heat is None or mosaic is None:
                return
            linked = self.__dict__.setdefault("_linked", set())
            key = (heat.id, mosaic.id)
            if key in linked:
                return
            linked.add(key)
            for a, b in ((mosaic, heat), (heat, mosaic)):
                a.js_on_event("rangesupdate", follow_ranges(b))

        return hook

    def _build(self) -> None:
        hv = style.holoviews()
        Params = hv.streams.Params
        sel = ["calib_type", "run", "day", "metric"]
        focal_opts = dict(data_aspect=1, frame_width=self.width, xlabel="focal plane x (mm)",
                          ylabel="focal plane y (mm)", show_legend=False)

        def layers():
            """The outlines drawn over the heat map and the mosaic; each redraws only on its own change.
            The selected amp's outline is not one of them: a tap changes it in place (TapLinks)."""
            return (hv.DynamicMap(self._marks, streams=[Params(self, sel)])
                    * hv.DynamicMap(self._mark_highlight, streams=[Params(self, sel + ["value_range"])]))

        heat = hv.DynamicMap(self._heat, streams=[Params(self, sel + ["clim"])])
        self.heat_plot = (heat * layers()).opts({"Overlay": dict(
            title=HEAT_TITLE, hooks=[self._figure_hook("heat")], **focal_opts)})
        hist = hv.DynamicMap(self._hist, streams=[Params(self, sel)])
        # the box-select tool and its stream ride on an empty element: HoloViews attaches a
        # stream's callback through an element, not through a DynamicMap of overlays
        grip = hv.Scatter([], kdims=["value"], vdims=["count"]).opts(tools=["xbox_select"],
                                                                     active_tools=["xbox_select"])
        self.hist_plot = (hist * grip).opts({"Overlay": dict(title=HIST_TITLE, width=self.width, height=260,
                                                             show_legend=self.against is not None,
                                                             hooks=[self._figure_hook("hist")])})
        self.hist_bounds = hv.streams.BoundsX(source=grip, boundsx=None)
        self.hist_bounds.add_subscriber(lambda boundsx=None: self._on_loop(self._hist_selection, boundsx))
        self.mosaic_plot = self.history_plot = None
        if self.stores:
            over = hv.DynamicMap(self._overlay_amps, streams=[Params(self, sel + ["overlay", "clim"])])
            self.mosaic_plot = (self._mosaic_dmap(hv) * over * layers()).opts(
                {"Overlay": dict(title="mosaic (tap an amp; zoom reads the matching level)",
                                 hooks=[self._figure_hook("mosaic")], **focal_opts)})
        if self.history is not None:
            trend = hv.DynamicMap(self._trend, streams=[Params(self, ["calib_type", "metric"])])
            self.history_plot = trend.opts({"Overlay": dict(
                title="history: every amp (candles), the selected amp (magenta)", width=self.width, height=260,
                show_legend=False, hooks=[self._figure_hook("history"), self.links.series_hook()])})
        self.table_pane = pn.pane.HTML(self._table_html(), sizing_mode="stretch_width", name="amp table")
        self.highlight_pane = pn.pane.HTML(self._highlight_html(), sizing_mode="stretch_width")
        self.param.watch(lambda *e: setattr(self.table_pane, "object", self._table_html()),
                         ["calib_type", "run", "day", "detector", "amp"])
        self.param.watch(lambda *e: setattr(self.highlight_pane, "object", self._highlight_html()),
                         ["value_range", "metric"])

    def __panel__(self):
        # URL state only where there is a URL: a served app (a notebook output has none)
        doc = pn.state.curdoc
        served = doc is not None and getattr(doc, "session_context", None) is not None
        if served:
            self._doc = doc
        if served and pn.state.location is not None and not getattr(self, "_synced", False):
            pn.state.location.sync(self, QUERY_KEYS)  # the URL's selection wins ...
            location = pn.state.location

            def show_all() -> None:  # ... then the URL shows all of it (defaults too), once the page is up
                location.update_query(**dict(parse_qsl(to_query(self.state))))

            pn.state.onload(show_all)
            self._synced = True
        widgets = self._widgets()
        if served:  # keys, like the URL, belong to a served page
            from .explore_keys import listener, press

            widgets.append(listener(lambda key: self._in_page(press, self, key)))
        # linked_axes: Panel shares the x/y ranges of these panes, so the heat map follows the mosaic's zoom
        focal = [pn.pane.HoloViews(p, backend="bokeh", linked_axes=True)
                 for p in (self.heat_plot, self.mosaic_plot) if p is not None]
        history = (pn.pane.HoloViews(self.history_plot, backend="bokeh", linked_axes=False)
                   if self.history_plot is not None else
                   pn.pane.Markdown("*no history store given (`--history PATH`)*"))
        side = min(self.width, 360)
        cutout = (pn.pane.Bokeh(self.links.cutout_figure(side, side)) if self.stores else
                  pn.pane.Markdown("*no mosaic store given (`--mosaic STORE`)*"))
        main = pn.Column(pn.Row(*focal), pn.pane.HoloViews(self.hist_plot, backend="bokeh", linked_axes=False),
                         self.highlight_pane, pn.Row(history, cutout), self.table_pane)
        return pn.Row(widgets, main)


def explore(metrics_source: str | os.PathLike | pd.DataFrame, mosaic_stores: Any = (), history: Any = None,
            against: str | os.PathLike | pd.DataFrame | None = None, *, camera: Any = None, width: int = 560,
            stretch: str = "asinh", storage_options: dict | None = None, **selection: Any) -> Explorer:
    """The linked explorer of a metrics table, its mosaics and history (a Panel app).

    Parameters
    ----------
    metrics_source
        cp_verify outputs (directory tree or file, as ``load_metrics`` reads) or a tidy
        metrics DataFrame.
    mosaic_stores
        Mosaic stores (paths/URLs or opened stores), one per calib type; the one whose
        calib type is selected is shown.
    storage_options
        fsspec options of mosaic store URLs (``s3://...``), e.g. ``{"anon": True}``.
    history
        A history store (path or :class:`~cpmosaic.metrics.HistoryStore`) for the amp's history.
    against
        Another metrics source (path or DataFrame) overlaid on the histogram and listed in
        the amp table.
    selection
        Initial ``calib_type``, ``run``, ``day`` (YYYY-MM-DD), ``metric``, ``detector``, ``amp``.

    Returns
    -------
    Explorer
        Displays in a notebook; ``cpmosaic explore`` serves it.

    Examples
    --------
    >>> app = explore("cpv_out", mosaic_stores=["bias.zarr"], history="history",
    ...               metric="NOISE", detector="R22_S11", amp="C07")   # doctest: +SKIP
    >>> app.servable()                                                   # doctest: +SKIP
    """
    unknown = set(selection) - set(QUERY_KEYS) - {"overlay"}
    if unknown:
        raise TypeError(f"explore: unknown selection field(s) {sorted(unknown)}; use {sorted(QUERY_KEYS)}")
    sources = ExploreSources.load(metrics_source, mosaic_stores, history, against, camera=camera,
                                  storage_options=storage_options)
    return Explorer(sources, width=width, stretch=stretch, **selection)


def state_dict(app: Explorer) -> dict:
    """The app's selection as a plain dict (for logs and tests)."""
    return asdict(app.state)
