"""The explorer's selection widgets: calib type, run, night, metric, colour range, overlay.

Functions of an :class:`~cpmosaic.viz.explorer.Explorer` (its parameters are the selection;
the widgets are kept on it as ``_w_*`` so a change of selection can update them).  An empty
run or night means every one, and says so.

>>> _every("run", ["r1"])
{'(every run)': '', 'r1': 'r1'}
>>> _step(0.0, 10.0)
0.01
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn

from .explore_data import choices

__all__ = ["make_widgets", "sync_widgets"]


def make_widgets(self) -> Any:
    """The selection widgets of an explorer, linked both ways to its parameters (kept on it as ``_w_*``)."""
    opts = choices(self.df, self.state)
    self._w_calib = pn.widgets.Select(name="calib type", options=opts["calib_type"], value=self.calib_type)
    self._w_run = pn.widgets.Select(name="run", options=_every("run", opts["run"]), value=self.run)
    self._w_day = pn.widgets.Select(name="night", options=_every("night", opts["day"]), value=self.day)
    self._w_metric = pn.widgets.Select(name="metric", options=opts["metric"], value=self.metric)
    lo, hi = self.clim or (0.0, 1.0)
    self._w_clim = pn.widgets.EditableRangeSlider(name="colour range", start=lo, end=hi, value=(lo, hi),
                                                  step=_step(lo, hi))
    self._w_overlay = pn.widgets.Checkbox(name="metric overlay on the mosaic", value=self.overlay)
    for w, p in ((self._w_calib, "calib_type"), (self._w_run, "run"), (self._w_day, "day"),
                 (self._w_metric, "metric"), (self._w_overlay, "overlay")):
        w.link(self, value=p)
    self._w_clim.param.watch(lambda e: setattr(self, "clim", tuple(e.new)), "value")
    return pn.Column(self._w_calib, self._w_run, self._w_day, self._w_metric, self._w_clim, self._w_overlay,
                     width=260)


def sync_widgets(self) -> None:
    """Options and values of the widgets after the selection changed (no-op before they exist)."""
    if not hasattr(self, "_w_calib"):
        return
    opts = choices(self.df, self.state)
    self._w_run.options = _every("run", opts["run"])
    self._w_day.options = _every("night", opts["day"])
    self._w_metric.options = opts["metric"]
    for w, v in ((self._w_calib, self.calib_type), (self._w_run, self.run), (self._w_day, self.day),
                 (self._w_metric, self.metric)):
        if w.value != v:
            w.value = v
    if self.clim is not None:
        lo, hi = self.clim
        self._w_clim.param.update(start=lo, end=hi, value=(lo, hi), step=_step(lo, hi))


def _every(what: str, values: list[str]) -> dict[str, str]:
    """Select options with a labelled empty choice (a bare "" showed as a blank widget)."""
    return {f"(every {what})": "", **{v: v for v in values}}


def _step(lo: float, hi: float) -> float:
    span = abs(hi - lo) or 1.0
    return float(10 ** np.floor(np.log10(span / 200)))
