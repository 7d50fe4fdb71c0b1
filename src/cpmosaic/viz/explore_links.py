"""What a tap on an amp changes in the explorer, as plain bokeh models updated in place.

A tap selects one amp; four panels follow it: its outline on the heat map and on the
mosaic, its own series on the history plot, and its full-resolution cut-out.  Going through
HoloViews for these (a ``DynamicMap`` per layer, re-rendered on each tap) cost about 0.4 s on
the server and a re-layout in the browser per tap.  Here each is a ``ColumnDataSource``
whose ``data`` is replaced, so a tap sends a few small patches and redraws only those
glyphs.

:class:`TapLinks` keeps one source per drawn figure (a notebook may draw the app more than
once), remembers the current selection so a figure drawn later starts from it, and hands
out the HoloViews hooks that attach the glyphs.

>>> import numpy as np
>>> links = TapLinks()
>>> links.show_outline(np.array([0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0]))
>>> links.outline["x"].tolist()
[0.0, 1.0, 1.0]
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["TapLinks", "OUTLINE_COLOR", "cutout_ranges", "follow_ranges"]

#: Colour of the selected amp (outline and history line).
OUTLINE_COLOR = "#ff00ff"


def cutout_ranges(bounds_mm, aspect: float = 1.0) -> tuple[tuple[float, float], tuple[float, float]]:
    """x and y ranges (mm) showing *bounds_mm* ``(x0, y0, x1, y1)`` whole on a frame of width/height *aspect*.

    Equal scales on both axes (the amp keeps its shape); the shorter side is padded about
    the centre.

    >>> cutout_ranges((0.0, 0.0, 5.0, 20.0))
    ((-7.5, 12.5), (0.0, 20.0))
    """
    x0, y0, x1, y1 = (float(v) for v in bounds_mm)
    w, h = x1 - x0, y1 - y0
    half_w = max(w, h * aspect) / 2
    half_h = half_w / aspect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - half_w, cx + half_w), (cy - half_h, cy + half_h)


def follow_ranges(target):
    """A ``CustomJS`` for a figure's ``rangesupdate`` event: *target* takes the same x and y ranges.

    Both ends of both axes are set in one ``setv`` (no intermediate range, no re-read of half
    a window), only when they differ, then the target's own ``rangesupdate`` is sent (what
    its range streams listen to); a page-wide flag stops two figures that follow each other
    from echoing the change back.
    """
    from bokeh.models import CustomJS

    return CustomJS(args=dict(xr=target.x_range, yr=target.y_range), code="""
        if (window.__cpm_following) return;
        const e = cb_obj, near = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a));
        if (near(xr.start, e.x0) && near(xr.end, e.x1) && near(yr.start, e.y0) && near(yr.end, e.y1)) return;
        window.__cpm_following = true;
        try {
          xr.setv({start: e.x0, end: e.x1}); yr.setv({start: e.y0, end: e.y1});
          // a range set in code sends no rangesupdate: send it, so the target's RangeXY stream
          // (the mosaic's window read) hears the change as it hears a zoom
          for (const view of xr.linked_plots) view.trigger_ranges_update_event();
        } finally { window.__cpm_following = false; }
    """)


class TapLinks:
    """The selected amp's glyphs: outline, history series and cut-out (see module doc).

    ``outline``, ``series`` and ``cutout`` hold the current data (what every source shows).
    """

    def __init__(self) -> None:
        self.outline: dict[str, np.ndarray] = {"x": np.empty(0), "y": np.empty(0)}
        self.series: dict[str, np.ndarray] = {"date": np.empty(0, "datetime64[ns]"), "value": np.empty(0)}
        self.cutout: dict[str, list] = {"image": [np.zeros((1, 1), np.uint8)], "x": [0.0], "y": [0.0],
                                        "dw": [1.0], "dh": [1.0]}
        self.cutout_title = "tap an amp"
        self._outline_sources: list = []
        self._series_sources: list = []
        self._cutout_figures: list = []

    # -- updates (a tap) ---------------------------------------------------------------
    def show_outline(self, x: np.ndarray, y: np.ndarray) -> None:
        """Outline the selected amp: a NaN-separated closed path in focal-plane mm."""
        self.outline = {"x": np.asarray(x, float), "y": np.asarray(y, float)}
        for src in self._outline_sources:
            src.data = dict(self.outline)

    def show_series(self, date: np.ndarray, value: np.ndarray) -> None:
        """The selected amp's own values night by night on the history plot."""
        self.series = {"date": np.asarray(date, "datetime64[ns]"), "value": np.asarray(value, float)}
        for src in self._series_sources:
            src.data = dict(self.series)

    def show_cutout(self, image: np.ndarray | None, bounds_mm=None, title: str = "") -> None:
        """The cut-out: an 8-bit image (row 0 at the bottom, y up) and its ``(x0, y0, x1, y1)`` mm."""
        if image is None:
            self.cutout = {"image": [np.zeros((1, 1), np.uint8)], "x": [0.0], "y": [0.0], "dw": [1.0], "dh": [1.0]}
            bounds_mm = (0.0, 0.0, 1.0, 1.0)
        else:
            x0, y0, x1, y1 = (float(v) for v in bounds_mm)
            self.cutout = {"image": [np.ascontiguousarray(image)], "x": [x0], "y": [y0], "dw": [x1 - x0],
                           "dh": [y1 - y0]}
        self.cutout_title = title
        for fig, src in self._cutout_figures:
            self._set_cutout(fig, src, bounds_mm)

    def _set_cutout(self, fig, src, bounds_mm) -> None:
        src.data = dict(self.cutout)
        (x0, x1), (y0, y1) = cutout_ranges(bounds_mm, fig.frame_width / fig.frame_height)
        fig.x_range.update(start=x0, end=x1)
        fig.y_range.update(start=y0, end=y1)
        fig.title.text = self.cutout_title

    # -- glyphs --------------------------------------------------------------------------
    def outline_hook(self) -> Callable:
        """A HoloViews plot hook: the selected-amp outline on this figure."""
        def hook(plot, element) -> None:
            fig = plot.state
            if any(r.tags == ["cpm-selected"] for r in fig.renderers):
                return  # hooks run again on each update; the glyph is already there
            from bokeh.models import ColumnDataSource

            src = ColumnDataSource(dict(self.outline))
            # the overlay level is painted on its own canvas layer: a tap does not repaint the
            # heat map's 3,216 patches or the mosaic image under it
            r = fig.line("x", "y", source=src, color=OUTLINE_COLOR, line_width=3.5, level="overlay")
            r.tags = ["cpm-selected"]  # on the renderer (a glyph method's tags= go to the glyph)
            self._outline_sources.append(src)

        return hook

    def series_hook(self) -> Callable:
        """A HoloViews plot hook: the selected amp's series (line and points) on the history figure."""
        def hook(plot, element) -> None:
            fig = plot.state
            if any(r.tags == ["cpm-series"] for r in fig.renderers):
                return
            from bokeh.models import ColumnDataSource

            src = ColumnDataSource(dict(self.series))
            fig.line("date", "value", source=src, color=OUTLINE_COLOR, line_width=2).tags = ["cpm-series"]
            fig.scatter("date", "value", source=src, color=OUTLINE_COLOR, size=6).tags = ["cpm-series-points"]
            self._series_sources.append(src)

        return hook

    def cutout_figure(self, width: int = 360, height: int = 360):
        """A bokeh figure of the cut-out (grey levels 0-255, focal-plane mm axes, fixed frame)."""
        from bokeh.models import ColumnDataSource, Image, LinearColorMapper
        from bokeh.palettes import Greys256
        from bokeh.plotting import figure

        fig = figure(frame_width=int(width), frame_height=int(height), title=self.cutout_title,
                     x_axis_label="focal plane x (mm)", y_axis_label="focal plane y (mm)",
                     tools="pan,wheel_zoom,box_zoom,reset,save", output_backend="canvas")
        src = ColumnDataSource(dict(self.cutout))
        mapper = LinearColorMapper(palette=Greys256, low=0, high=255)
        fig.add_glyph(src, Image(image="image", x="x", y="y", dw="dw", dh="dh", color_mapper=mapper))
        self._cutout_figures.append((fig, src))
        d = self.cutout
        self._set_cutout(fig, src, (d["x"][0], d["y"][0], d["x"][0] + d["dw"][0], d["y"][0] + d["dh"][0]))
        return fig
