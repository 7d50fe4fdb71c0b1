"""Focal-plane heat map: one polygon per amp, coloured by a metric.

Geometry comes from :mod:`cpmosaic.camera` only (``Detector.box_corners_mm``), so corner
rafts are rotated as the camera says.  When every amp is an axis-aligned rectangle in the
focal plane (true of LSSTCam, LSSTComCam and LATISS, whose yaws are multiples of 90
degrees) the amps are drawn as ``hv.Rectangles`` (one columnar bokeh ``quad`` glyph:
about 0.1 s for 3,216 amps); otherwise as ``hv.Polygons``, which HoloViews handles one
polygon at a time (about 5 s to render 3,216).

>>> import numpy as np, pandas as pd
>>> from cpmosaic.viz.heatmap import amp_geometry
>>> from cpmosaic.camera import get_camera
>>> geo = amp_geometry(get_camera("LSSTCam"))
>>> len(geo), bool(geo.axis_aligned.all())
(3216, True)
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Iterable, Sequence, TypeAlias

import numpy as np
import pandas as pd

from . import display, style

if TYPE_CHECKING:
    from ..camera.model import Camera

log = logging.getLogger(__name__)
#: Amps to outline as failing: ``None`` (the table's ``passed``), ``False`` (none), a failures
#: table or ``(detector_id, amp)`` pairs.
Failing: TypeAlias = pd.DataFrame | Iterable[tuple[int, str]] | bool | None

__all__ = ["amp_geometry", "amp_values", "focal_plane_heatmap", "resolve_camera", "sensor_type_z"]

_GEOMETRY_CACHE: dict[int, tuple[object, pd.DataFrame]] = {}


def resolve_camera(camera: Camera | str | os.PathLike | None = None, df: pd.DataFrame | None = None) -> Camera:
    """The camera to draw: *camera* (object or name), else the table's instrument, else LSSTCam."""
    from ..camera import Camera, get_camera

    if camera is None and df is not None and "instrument" in df.columns:
        names = pd.unique(df["instrument"].dropna())
        if len(names) == 1:
            camera = str(names[0])
        elif len(names) > 1:
            from ..errors import MixedCamerasError

            raise MixedCamerasError(f"the table holds several instruments: {sorted(map(str, names))}")
    if camera is None:
        camera = "LSSTCam"
    return camera if isinstance(camera, Camera) else get_camera(camera)


def amp_geometry(camera: Camera) -> pd.DataFrame:
    """One row per amp: ids, names, vendor, type and the amp polygon in focal-plane mm.

    Columns: ``detector, detector_name, amp, raft, physical_type, detector_type, xs, ys``
    (4 corners each, from ``box_corners_mm``), ``x0, y0, x1, y1`` (bounding box), ``cx, cy``
    and ``axis_aligned``.  Cached per camera object (cameras are immutable).
    """
    hit = _GEOMETRY_CACHE.get(id(camera))
    if hit is not None and hit[0] is camera:
        return hit[1]
    rows = []
    for det in camera:
        for amp in det.amplifiers:
            c = det.box_corners_mm(amp.bbox)
            rows.append((det.id, det.name, amp.name, det.raft, det.physical_type, det.type,
                         c[:, 0], c[:, 1]))
    geo = pd.DataFrame(rows, columns=["detector", "detector_name", "amp", "raft", "physical_type",
                                      "detector_type", "xs", "ys"])
    xs, ys = np.stack(geo["xs"].to_numpy()), np.stack(geo["ys"].to_numpy())
    geo["x0"], geo["x1"] = xs.min(axis=1), xs.max(axis=1)
    geo["y0"], geo["y1"] = ys.min(axis=1), ys.max(axis=1)
    geo["cx"], geo["cy"] = xs.mean(axis=1), ys.mean(axis=1)
    # A rectangle's corners each sit on its bounding box in x and in y.
    on_x = np.isclose(xs, geo["x0"].to_numpy()[:, None]) | np.isclose(xs, geo["x1"].to_numpy()[:, None])
    on_y = np.isclose(ys, geo["y0"].to_numpy()[:, None]) | np.isclose(ys, geo["y1"].to_numpy()[:, None])
    geo["axis_aligned"] = (on_x & on_y).all(axis=1)
    _GEOMETRY_CACHE[id(camera)] = (camera, geo)
    return geo


def _failing_keys(sub: pd.DataFrame, failing: Failing, metric: str) -> set[tuple[int, str]]:
    """(detector, amp) pairs to outline: from ``passed == False`` or a failures table/list."""
    if failing is False:
        return set()
    if failing is None:
        if "passed" not in sub.columns:
            return set()
        bad = sub[sub["passed"].fillna(True).astype(bool) == False]  # noqa: E712 (nullable)
        return set(zip(bad["detector"].astype(int), bad["amp"].astype(str)))
    if isinstance(failing, pd.DataFrame):
        f = failing
        if "passed" in f.columns:
            f = f[f["passed"].fillna(False).astype(bool) == False]  # noqa: E712
        for col in ("metric", "test"):  # evaluate() names its tests after the metrics
            if col in f.columns and (f[col] == metric).any():
                f = f[f[col] == metric]
                break
        amps = f["amp"].astype(str) if "amp" in f.columns else pd.Series([""] * len(f), index=f.index)
        return set(zip(f["detector"].astype(int), amps))
    if failing is True:
        raise ValueError("failing must be None, False, a failures table or (detector, amp) pairs, not True")
    return {(int(d), str(a)) for d, a in failing}


def amp_values(df: pd.DataFrame, metric: str, *, camera: Camera | str | None = None,
               calib_type: str | None = None, exposure: int | Iterable[int] | None = None,
               failing: Failing = None) -> pd.DataFrame:
    """Per-amp values of *metric* joined to the amp geometry (one row per camera amp).

    The value is the median over exposures and runs when there are several; detector-level
    rows (``amp == ""``) colour every amp of their detector that has no amp-level value.
    Adds ``value`` (NaN where missing), ``n`` (rows behind the value) and ``failed``.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"detector": [94, 94], "amp": ["C10", "C10"], "metric": "NOISE",
    ...                    "value": [1.0, 3.0]})
    >>> v = amp_values(df, "NOISE")
    >>> float(v.set_index(["detector_name", "amp"]).loc[("R22_S11", "C10"), "value"])
    2.0
    """
    cam = resolve_camera(camera, df)
    geo = amp_geometry(cam)
    sub = df[df["metric"] == metric]
    if calib_type is not None and "calib_type" in sub.columns:
        sub = sub[sub["calib_type"] == calib_type]
    if exposure is not None and "exposure" in sub.columns:
        wanted = [exposure] if np.isscalar(exposure) else list(exposure)
        sub = sub[sub["exposure"].isin(wanted)]
    # exposure-wide rows (flat EXP SCATTER: tier "exposure", detector -1) belong to no amp or detector
    sub = sub[sub["detector"].notna() & (sub["detector"] >= 0)]
    if "tier" in sub.columns:
        sub = sub[sub["tier"] != "exposure"]
    sub = sub.assign(detector=sub["detector"].astype(int), amp=sub["amp"].fillna("").astype(str))
    stats = sub.groupby(["detector", "amp"], sort=False)["value"].agg(["median", "size"])
    stats = stats.rename(columns={"median": "value", "size": "n"}).reset_index()
    amp_level = stats[stats["amp"] != ""]
    det_level = stats[stats["amp"] == ""].drop(columns="amp")
    out = geo.merge(amp_level, on=["detector", "amp"], how="left")
    if len(det_level):
        fill = out[["detector"]].merge(det_level, on="detector", how="left")
        need = out["value"].isna().to_numpy()
        out.loc[need, "value"] = fill.loc[need, "value"].to_numpy()
        out.loc[need, "n"] = fill.loc[need, "n"].to_numpy()
    out["n"] = out["n"].fillna(0).astype(int)
    out["value"] = out["value"].astype(float)
    bad = _failing_keys(sub, failing, metric)
    keys = list(zip(out["detector"], out["amp"]))
    bad_dets = {d for d, a in bad if a == ""}
    out["failed"] = [(k in bad) or (k[0] in bad_dets) for k in keys]
    unknown = set(sub["detector"]) - set(geo["detector"])
    if unknown:
        log.warning("%d detector ids not in camera %s ignored: %s", len(unknown), cam.name, sorted(unknown)[:5])
    return out


def _separated(polys: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Closed outlines joined into one NaN-separated path (one fast bokeh glyph)."""
    xs, ys = [], []
    for c in polys:
        xs += list(c[:, 0]) + [c[0, 0], np.nan]
        ys += list(c[:, 1]) + [c[0, 1], np.nan]
    return np.array(xs), np.array(ys)


def _outlines(cam, hv):
    """Detector outlines (thin), raft outlines (thick) and their label positions."""
    det_x, det_y = _separated(d.corners_mm for d in cam)
    rafts: dict[str, list] = {}
    for d in cam:
        rafts.setdefault(d.raft, []).append(d.corners_mm)
    boxes, raft_labels = [], []
    for name, cs in rafts.items():
        c = np.concatenate(cs)
        x0, y0, x1, y1 = c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()
        boxes.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
        raft_labels.append(((x0 + x1) / 2, y1 - 0.06 * (y1 - y0), name))
    raft_x, raft_y = _separated(boxes)
    dets = hv.Path([np.column_stack([det_x, det_y])], kdims=["x", "y"], group="DetectorOutline").opts(
        color="#404040", line_width=0.6)
    raft_path = hv.Path([np.column_stack([raft_x, raft_y])], kdims=["x", "y"], group="RaftOutline").opts(
        color="black", line_width=1.4)
    det_labels = [(*d.center_mm, d.sensor) for d in cam]
    return dets, raft_path, raft_labels, det_labels


def _amp_element(hv, table: pd.DataFrame, vdims: list, group: str):
    """Rectangles when all amps are axis-aligned, Polygons otherwise."""
    if table["axis_aligned"].all():
        data = table[["x0", "y0", "x1", "y1"] + [v.name if hasattr(v, "name") else v for v in vdims]]
        return hv.Rectangles(data, kdims=["x0", "y0", "x1", "y1"], vdims=vdims, group=group)
    names = [v.name if hasattr(v, "name") else v for v in vdims]
    polys = [dict({"x": r.xs, "y": r.ys}, **{k: getattr(r, k) for k in names}) for r in table.itertuples()]
    return hv.Polygons(polys, kdims=["x", "y"], vdims=vdims, group=group)


def sensor_type_z(values: Any, sensor_types: Any, log: bool = False) -> np.ndarray:
    """Robust z of each value within its sensor type (:func:`cpmosaic.robust.robust_z`).

    The shade of a per-sensor-type colour range: median +- 4 sigma_MAD of each type maps
    to -4 .. 4.  With ``log`` the z is of log10 of the positive values.

    >>> sensor_type_z([1.0, 2.0, 3.0, 10.0, 20.0, 30.0], ["E2V"] * 3 + ["ITL"] * 3).round(3).tolist()
    [-0.674, 0.0, 0.674, -0.674, 0.0, 0.674]
    """
    from ..robust import robust_z

    v = np.asarray(values, dtype=float)
    if log:
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(v > 0, np.log10(v), np.nan)
    types = np.asarray(sensor_types, dtype=object)
    out = np.full(v.shape, np.nan)
    for t in pd.unique(types):
        sel = types == t
        out[sel] = robust_z(v[sel])
    return out


def focal_plane_heatmap(df: pd.DataFrame, metric: str, *, camera: Camera | str | None = None,
                        calib_type: str | None = None, exposure: int | Iterable[int] | None = None,
                        log: bool = False, clim: tuple[float, float] | None = None, failing: Failing = None,
                        side_histogram: bool = False, title: str | None = None,
                        cmap: str | Sequence[str] | None = None, symmetric: bool = False, labels: str = "both",
                        width: int = 700, value_label: str | None = None, fill_alpha: float = 1.0,
                        colorbar: bool = True, color_range: str = "focal_plane") -> Any:
    """Focal-plane heat map of one metric, every amp a polygon in focal-plane mm.

    Parameters
    ----------
    df
        Tidy metrics table (``detector``, ``amp``, ``metric``, ``value``; optionally
        ``calib_type``, ``exposure``, ``passed``, ``instrument``).
    metric
        Metric name (``"NOISE"``).
    camera
        Camera object or name; default the table's ``instrument``, else LSSTCam.
    calib_type, exposure
        Restrict the rows first; several exposures are reduced by the median.
    log
        Logarithmic colour scale (the default range is then computed in log10).
    clim
        Colour range; default median +- 4 sigma_MAD (``symmetric=True``: centred on 0), the
        statistics of :mod:`cpmosaic.robust`.
    color_range
        ``"focal_plane"``: one colour range for every amp; ``"sensor_type"``: each sensor
        type (E2V, ITL, ITL_G, ITL_WF) scaled to its own median +- 4 sigma_MAD, so a vendor
        step does not saturate half the focal plane; the colour is then the robust z within
        the amp's sensor type (the hover still shows the value).
    failing
        ``None``: outline amps with ``passed == False``; a failures table (``detector``,
        ``amp``, optionally ``passed`` and ``metric``/``test``: rows of this metric when any,
        else every failure) or an iterable of ``(detector_id, amp)``; ``False``: no outlines.
    side_histogram
        Adjoin a histogram of the amp values (returns an ``hv.AdjointLayout``).
    labels
        ``"raft"``, ``"detector"``, ``"both"`` or ``"none"``.
    cmap
        A colour-map name of :func:`cpmosaic.viz.display.colormap_lut` (default ``viridis``,
        ``coolwarm`` when diverging) or a list of colours; the plot gets the display
        layer's 256 colours (bokeh's quantisation), the PNG rasteriser the same table.

    Returns
    -------
    holoviews.Overlay or holoviews.AdjointLayout

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"detector": [94], "amp": ["C10"], "metric": "NOISE", "value": [5.0]})
    >>> plot = focal_plane_heatmap(df, "NOISE", labels="none")
    >>> type(plot).__name__
    'Overlay'
    """
    hv = style.holoviews()
    cam = resolve_camera(camera, df)
    table = amp_values(df, metric, camera=cam, calib_type=calib_type, exposure=exposure, failing=failing)
    have = table[table["value"].notna()]
    miss = table[table["value"].isna()]
    if color_range not in ("focal_plane", "sensor_type"):
        raise ValueError(f"color_range must be 'focal_plane' or 'sensor_type', not {color_range!r}")
    label = value_label or metric
    shade_by, clabel = "value", label
    if color_range == "sensor_type":
        have = have.assign(shade=sensor_type_z(have["value"], have["physical_type"], log=log))
        shade_by, clabel, log = "shade", f"{label}: sigma from its sensor type's median", False
        clim = clim if clim is not None else (-4.0, 4.0)
    if clim is None:
        clim = style.symmetric_range(have["value"]) if symmetric else style.robust_range(have["value"], log=log)
    cmap = cmap or (style.DIVERGING_CMAP if symmetric or color_range == "sensor_type" else style.DEFAULT_CMAP)
    # The display layer's table, not a name for HoloViews to resolve: the HTML, the PNG
    # rasteriser (viz.save), the mosaics and the tiles then share one value-to-colour path.
    colours = display.palette(cmap) if isinstance(cmap, str) else list(cmap)
    value_dim = hv.Dimension("value", label=label)
    vdims = [value_dim, "detector_name", "amp", "detector", "physical_type", "n"] + (
        ["shade"] if shade_by == "shade" else [])
    tips = [("detector", "@detector_name (@detector)"), ("amp", "@amp"), (label, "@value{0.[0000]}"),
            ("vendor", "@physical_type"), ("rows", "@n")]
    amps = _amp_element(hv, have, vdims, "Amps").opts(
        color=shade_by, cmap=colours, clim=tuple(map(float, clim)), logz=log, colorbar=colorbar,
        clabel=clabel, line_color=None, fill_alpha=fill_alpha, tools=["hover"], hover_tooltips=tips)
    missing = _amp_element(hv, miss, ["detector_name", "amp", "detector"], "Missing").opts(
        color=style.MISSING_COLOR, line_color=None, fill_alpha=fill_alpha, tools=["hover"],
        hover_tooltips=[("detector", "@detector_name (@detector)"), ("amp", "@amp"), (label, "no data")])
    dets, rafts, raft_labels, det_labels = _outlines(cam, hv)
    layers = [amps, missing, dets, rafts]
    failed = table[table["failed"]]
    if len(failed):
        fx, fy = _separated(np.column_stack([r.xs, r.ys]) for r in failed.itertuples())
        layers.append(hv.Path([np.column_stack([fx, fy])], kdims=["x", "y"], group="Failing").opts(
            color=style.FAIL_COLOR, line_width=2.0))
    if labels in ("detector", "both"):
        layers.append(hv.Labels(det_labels, kdims=["x", "y"], vdims=["text"], group="DetectorLabels").opts(
            text_font_size="5pt", text_color="#202020", text_alpha=0.7))
    if labels in ("raft", "both"):
        layers.append(hv.Labels(raft_labels, kdims=["x", "y"], vdims=["text"], group="RaftLabels").opts(
            text_font_size="8pt", text_color="black", text_font_style="bold"))
    if title is None:
        parts = [calib_type, metric, None if exposure is None else f"exposure {exposure}"]
        title = " ".join(str(p) for p in parts if p)
    overlay = hv.Overlay(layers).opts(
        title=title, data_aspect=1, frame_width=width, xlabel="focal plane x (mm)",
        ylabel="focal plane y (mm)", show_legend=False, toolbar="above")
    if not side_histogram:
        return overlay
    vals = have["value"].to_numpy()
    if log:
        vals = vals[vals > 0]
        edges = np.logspace(np.log10(clim[0]), np.log10(clim[1]), 41)
    else:
        edges = np.linspace(clim[0], clim[1], 41)
    counts, _ = np.histogram(np.clip(vals, edges[0], edges[-1]), bins=edges)
    hist = hv.Histogram((edges, counts), kdims=[value_dim], vdims=["amps"]).opts(
        color="#8c8c8c", line_color="#606060", width=180, logx=log)
    return overlay << hist
