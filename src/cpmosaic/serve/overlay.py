"""Metric tiles: amp polygons coloured by a per-amp metric, drawn over the image tiles.

``?overlay=METRIC&calib_type=&run=`` on any tile endpoint, with a metrics table given to the
server (``cpmosaic serve --metrics SOURCE``).  Each amp's value is the median over the rows
that match (exposures); colours span the display layer's robust colour range
(:func:`cpmosaic.robust.color_range`, median +- 4 sigma) unless ``overlay_range=lo,hi``
is given, through ``overlay_cmap`` (default viridis), blended with ``overlay_alpha``
(default 0.6) over the image; amps without a value stay as the image is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .tiles import BadParameter, colormap_lut, empty_png, encode_png, to_rgba

__all__ = ["MetricOverlay", "OverlaySpec", "parse_overlay"]


class MetricOverlay:
    """Per-amp metric values by ``(metric, calib_type, run)``, from a tidy metrics table."""

    def __init__(self, df) -> None:
        self.df = df[(df["amp"].astype(str) != "") & df["detector_name"].notna()]
        self.metrics = sorted(set(self.df["metric"].astype(str)))
        self._values: dict = {}

    @classmethod
    def from_source(cls, source) -> "MetricOverlay":
        if isinstance(source, MetricOverlay):
            return source
        if hasattr(source, "columns"):
            return cls(source)
        from ..metrics import load_metrics

        return cls(load_metrics(source, progress=False))

    def values(self, metric: str, calib_type: str | None, run: str | None) -> dict[tuple[str, str], float]:
        """``{(detector_name, amp): median value}`` of the matching rows."""
        key = (metric, calib_type, run)
        if key not in self._values:
            d = self.df[self.df["metric"] == metric]
            if calib_type:
                d = d[d["calib_type"] == calib_type]
            if run:
                d = d[d["run"] == run]
            med = d.groupby(["detector_name", "amp"])["value"].median()
            self._values[key] = {(str(k[0]), str(k[1])): float(v) for k, v in med.items() if math.isfinite(v)}
        return self._values[key]


@dataclass(frozen=True)
class OverlaySpec:
    """One overlay request: the amp values, their colour range and map, the blend."""

    metric: str
    calib_type: str | None
    run: str | None
    lo: float
    hi: float
    cmap: str
    alpha: float
    values: tuple  # ((detector, amp), value) pairs, sorted

    def key(self) -> tuple:
        return (self.metric, self.calib_type, self.run, self.lo, self.hi, self.cmap, self.alpha)

    def render(self, data: np.ndarray | None, box: tuple[int, int, int, int], shape: tuple[int, int],
               style, s) -> bytes:
        """PNG of the image tile ``data`` (None: empty) covering level-0 ``box`` (rows from the
        bottom), with every amp in it coloured."""
        h, w = shape
        rgba = np.zeros((h, w, 4), np.uint8) if data is None else to_rgba(data, style, s.styles)
        i0, i1, j0, j1 = box
        fy, fx = (i1 - i0) / h, (j1 - j0) / w
        rows = i1 - (np.arange(h) + 0.5) * fy  # level-0 row of each tile row's centre
        cols = j0 + (np.arange(w) + 0.5) * fx
        lut = colormap_lut(self.cmap)
        vals = dict(self.values)
        painted = False
        for p in s.m.plan.placements_in((max(i0, 0), max(i1, 0), max(j0, 0), max(j1, 0))):
            for amp, (y0, y1, x0, x1) in p.amp_boxes.items():
                v = vals.get((p.name, amp))
                if v is None:
                    continue
                r = np.flatnonzero((rows >= y0) & (rows < y1))
                c = np.flatnonzero((cols >= x0) & (cols < x1))
                if not r.size or not c.size:
                    continue
                t = 0.0 if self.hi == self.lo else min(max((v - self.lo) / (self.hi - self.lo), 0.0), 1.0)
                colour = lut[int(t * 255 + 0.5)].astype(np.float32)
                sub = rgba[r[0]:r[-1] + 1, c[0]:c[-1] + 1].astype(np.float32)
                a = self.alpha * sub[..., 3:4] / 255.0
                a = np.where(sub[..., 3:4] > 0, a, 1.0)  # no image under it: the metric colour alone
                sub[..., :3] = sub[..., :3] * (1 - a) + colour[:3] * a
                sub[..., 3] = 255
                rgba[r[0]:r[-1] + 1, c[0]:c[-1] + 1] = (sub + 0.5).astype(np.uint8)
                painted = True
        if data is None and not painted:
            return empty_png(w, h)
        return encode_png(rgba)


def parse_overlay(query: dict[str, list[str]], source: MetricOverlay | None, s) -> OverlaySpec:
    """An :class:`OverlaySpec` from ``overlay=``, ``calib_type=``, ``run=``, ``overlay_range=``,
    ``overlay_cmap=``, ``overlay_alpha=`` (:class:`BadParameter` naming the bad one)."""
    from ..robust import color_range

    def one(name: str) -> str | None:
        v = query.get(name)
        return v[-1] if v else None

    metric = one("overlay") or ""
    if source is None:
        raise BadParameter("overlay", "this server has no metrics; start it with --metrics SOURCE")
    if metric not in source.metrics:
        shown = ", ".join(source.metrics[:20])
        raise BadParameter("overlay", f"unknown metric {metric!r}; metrics: {shown}")
    calib_type, run = one("calib_type"), one("run")
    values = source.values(metric, calib_type, run)
    if not values:
        raise BadParameter("calib_type" if calib_type else "run" if run else "overlay",
                           f"no amp values of {metric!r} for calib_type={calib_type!r} run={run!r}")
    if (r := one("overlay_range")) is not None:
        try:
            lo, hi = (float(v) for v in r.split(","))
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError
        except ValueError:
            raise BadParameter("overlay_range", f"need finite min < max, got {r!r}") from None
    else:
        lo, hi = color_range(list(values.values()))
    cmap = one("overlay_cmap") or "viridis"
    try:
        colormap_lut(cmap)
    except ValueError as exc:
        raise BadParameter("overlay_cmap", str(exc)) from None
    alpha = one("overlay_alpha") or "0.6"
    try:
        a = float(alpha)
        if not 0.0 <= a <= 1.0:
            raise ValueError
    except ValueError:
        raise BadParameter("overlay_alpha", f"expected a number in 0..1, got {alpha!r}") from None
    return OverlaySpec(metric, calib_type, run, lo, hi, cmap, a, tuple(sorted(values.items())))
