"""Amps from focal-plane points and value ranges: the hit tests behind the explorer's links.

Plain functions on the amp geometry table of :func:`cpmosaic.viz.heatmap.amp_geometry`
(one row per amp, its polygon ``xs, ys`` in focal-plane mm and bounding box
``x0, x1, y0, y1``), so a tap on the heat map or on the mosaic (both drawn in
focal-plane mm) names the same amp.

>>> from cpmosaic.camera import get_camera
>>> from cpmosaic.viz.heatmap import amp_geometry
>>> geo = amp_geometry(get_camera("LSSTCam"))
>>> row = geo[(geo.detector_name == "R22_S11") & (geo.amp == "C07")].iloc[0]
>>> hit = amp_at(geo, row.cx, row.cy)
>>> geo.loc[hit, "detector_name"], geo.loc[hit, "amp"]
('R22_S11', 'C07')
>>> amp_at(geo, 1e4, 1e4) is None   # far outside the focal plane
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["amp_at", "amp_key", "amps_in_range", "points_in_polygons", "step_amp"]


def points_in_polygons(x: float, y: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Whether ``(x, y)`` lies inside each polygon (rows of vertex arrays *xs*, *ys*).

    Even-odd ray casting; a point exactly on a shared edge belongs to the polygon on its
    lower/left side of the edge only, so it never lands in two amps.

    >>> sq = np.array([[0.0, 1.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 1.0, 1.0]])
    >>> points_in_polygons(0.5, 0.5, *sq).tolist(), points_in_polygons(1.5, 0.5, *sq).tolist()
    ([True], [False])
    """
    xs, ys = np.atleast_2d(np.asarray(xs, float)), np.atleast_2d(np.asarray(ys, float))
    x2, y2 = np.roll(xs, -1, axis=1), np.roll(ys, -1, axis=1)
    crosses = (ys > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = xs + (y - ys) * (x2 - xs) / (y2 - ys)
    return ((crosses & (x < x_cross)).sum(axis=1) % 2) == 1


def amp_at(geometry: pd.DataFrame, x: float, y: float):
    """Index label of the amp of *geometry* whose polygon holds focal-plane ``(x, y)`` mm, or None.

    Bounding boxes first (cheap, vectorised over all amps), polygons for the few candidates.
    """
    if x is None or y is None or not (np.isfinite(x) and np.isfinite(y)):
        return None
    box = ((geometry["x0"].to_numpy() <= x) & (x <= geometry["x1"].to_numpy())
           & (geometry["y0"].to_numpy() <= y) & (y <= geometry["y1"].to_numpy()))
    cand = geometry[box]
    if cand.empty:
        return None
    inside = points_in_polygons(x, y, np.stack(cand["xs"].to_numpy()), np.stack(cand["ys"].to_numpy()))
    hits = cand.index[inside]
    return hits[0] if len(hits) else None


def amp_key(geometry: pd.DataFrame, x: float, y: float) -> tuple[str, str] | None:
    """``(detector_name, amp)`` at focal-plane ``(x, y)`` mm, or None off the amps."""
    hit = amp_at(geometry, x, y)
    if hit is None:
        return None
    return str(geometry.at[hit, "detector_name"]), str(geometry.at[hit, "amp"])


def amps_in_range(values: pd.DataFrame, lo: float | None, hi: float | None) -> pd.DataFrame:
    """Rows of a per-amp values table (``amp_values``: ``value`` column) with ``lo <= value <= hi``.

    A missing bound is open; NaN values never match.

    >>> t = pd.DataFrame({"amp": ["C00", "C01", "C02"], "value": [1.0, 5.0, float("nan")]})
    >>> amps_in_range(t, 0.5, 2.0)["amp"].tolist(), amps_in_range(t, 2.0, None)["amp"].tolist()
    (['C00'], ['C01'])
    """
    v = values["value"].to_numpy(dtype=float)
    keep = np.isfinite(v)
    if lo is not None:
        keep &= v >= float(lo)
    if hi is not None:
        keep &= v <= float(hi)
    return values[keep]


def step_amp(geometry: pd.DataFrame, detector: str, amp: str, step: int = 1,
             by: str = "amp") -> tuple[str, str] | None:
    """The amp *step* places after ``(detector, amp)`` in the geometry's order (the camera's).

    ``by="amp"`` walks the amps one by one (into the next detector after a detector's last
    amp); ``by="detector"`` moves to the same-named amp of the next detector (its first amp
    when it has no such name).  Both wrap around the camera.  With no amp selected (or one
    not in *geometry*) the first amp (or the last, for a negative step) is the answer; None
    for an empty geometry.

    >>> from cpmosaic.camera import get_camera
    >>> from cpmosaic.viz.heatmap import amp_geometry
    >>> geo = amp_geometry(get_camera("LSSTComCam"))
    >>> step_amp(geo, "R22_S00", "C10"), step_amp(geo, "R22_S00", "C10", by="detector")
    (('R22_S00', 'C11'), ('R22_S01', 'C10'))
    >>> step_amp(geo, "", "", -1)
    ('R22_S22', 'C00')
    """
    if geometry.empty:
        return None
    names = geometry["detector_name"].astype(str).to_numpy()
    amps = geometry["amp"].astype(str).to_numpy()
    here = np.flatnonzero((names == str(detector)) & (amps == str(amp)))
    if not here.size:
        i = 0 if step >= 0 else len(names) - 1
        return str(names[i]), str(amps[i])
    if by == "amp":
        i = (int(here[0]) + int(step)) % len(names)
        return str(names[i]), str(amps[i])
    if by != "detector":
        raise ValueError(f"step_amp: by must be 'amp' or 'detector', got {by!r}")
    dets = list(dict.fromkeys(names))
    d = dets[(dets.index(str(detector)) + int(step)) % len(dets)]
    same = np.flatnonzero((names == d) & (amps == str(amp)))
    i = int(same[0]) if same.size else int(np.flatnonzero(names == d)[0])
    return str(names[i]), str(amps[i])
