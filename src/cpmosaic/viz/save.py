"""Save views: standalone HTML with inline resources, and PNG without a browser.

``save_html`` embeds BokehJS in the file (no CDN: reports must open offline).
``save_png`` rasterises the HoloViews object itself with PIL: Rectangles, Polygons,
Path, Labels/Text, Histogram, Curve, Scatter/Points, Segments, VLine/HLine/Slope,
Image and RGB, arranged as the Overlay/Layout/AdjointLayout says, with title, ticks,
axis labels, legend and colour bar.  The pixel transform of each panel is returned
(``PngRender.panels[i].to_pixel``) so callers and tests can find a focal-plane position.

>>> import holoviews as hv
>>> r = render_png(hv.Curve([(0, 0), (1, 1)]))
>>> r.image.size[0] > 0
True
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import style

log = logging.getLogger(__name__)

__all__ = ["save_html", "html_document", "save_png", "render_png", "PngRender", "PanelTransform",
           "CDN_MARKERS"]

#: Hosts a standalone report must never load from.
CDN_MARKERS = ("cdn.bokeh.org", "cdn.holoviz.org", "unpkg.com", "cdn.jsdelivr.net")


# --------------------------------------------------------------------------- HTML
def html_document(obj: Any, title: str | None = None) -> str:
    """A standalone HTML page for a HoloViews object, a bokeh model or an HTML fragment."""
    if isinstance(obj, str):
        if obj.lstrip().lower().startswith(("<!doctype", "<html")):
            return obj
        from html import escape

        return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{escape(title or '')}</title>"
                f"</head><body>\n{obj}\n</body></html>\n")
    from bokeh.embed import file_html
    from bokeh.model import Model
    from bokeh.resources import Resources

    if not isinstance(obj, Model):
        hv = style.holoviews()
        obj = hv.render(obj, backend="bokeh")
    page = file_html(obj, Resources(mode="inline"), title=title or "cpmosaic")
    # Panel registers an ES-module shim as a *relative* script URL on every bokeh bundle;
    # a plain bokeh document does not need it, and offline it is a 404. Drop any
    # external script/link so the page loads nothing.
    page = re.sub(r"<script\b[^>]*\bsrc=\"[^\"]*\"[^>]*>\s*</script>\s*", "", page)
    page = re.sub(r"<link\b[^>]*\bhref=\"(?:https?:)?//[^\"]*\"[^>]*>\s*", "", page)
    return page


def save_html(obj: Any, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Write *obj* as a standalone HTML file with inline BokehJS; returns the path.

    >>> import holoviews as hv, tempfile, os
    >>> p = save_html(hv.Curve([(0, 0), (1, 1)]), os.path.join(tempfile.mkdtemp(), "c.html"))
    >>> "cdn.bokeh.org" in p.read_text()
    False
    """
    path = Path(path)
    path.write_text(html_document(obj, title=title), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- PNG
@dataclass
class PanelTransform:
    """Where one panel's frame sits in the PNG and its data ranges (+y up)."""

    left: int
    top: int
    width: int
    height: int
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    logx: bool = False
    logy: bool = False

    def _t(self, v, lim, lg):
        v = np.asarray(v, dtype=float)
        lo, hi = lim
        if lg:
            with np.errstate(divide="ignore", invalid="ignore"):
                v, lo, hi = np.log10(v), math.log10(lo), math.log10(hi)
        return (v - lo) / (hi - lo)

    def to_pixel(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Data (e.g. focal-plane mm) -> PNG pixel coordinates (column, row)."""
        px = self.left + self._t(x, self.xlim, self.logx) * self.width
        py = self.top + (1.0 - self._t(y, self.ylim, self.logy)) * self.height  # y up
        return px, py


@dataclass
class PngRender:
    """A rendered PNG: the PIL image and one transform per panel."""

    image: Any  # PIL.Image.Image (PIL is imported on use)
    panels: list[PanelTransform] = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> Path:
        self.image.save(path, format="PNG", optimize=False)
        return Path(path)


def _opts(el, group: str) -> dict:
    hv = style.holoviews()
    try:
        return dict(hv.Store.lookup_options("bokeh", el, group).kwargs)
    except Exception:  # noqa: BLE001 (an element type without bokeh options)
        return {}


def _num(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind == "M":
        return a.astype("datetime64[ms]").astype("int64").astype(float)
    return a.astype(float) if a.dtype.kind in "biuf" else np.asarray(a, dtype=object)


def _geometries(el) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x, y) of each path/polygon of a Path or Polygons element.

    ``el.split()`` builds one HoloViews element per geometry (about 20 ms each: a minute
    for 3,216 amps), so read dict-of-arrays data directly, else split the NaN-separated
    coordinates HoloViews returns for the whole element.
    """
    xd, yd = el.kdims[0].name, el.kdims[1].name
    data = el.data
    if isinstance(data, list) and all(isinstance(d, dict) and xd in d and yd in d for d in data):
        return [(_num(d[xd]), _num(d[yd])) for d in data]
    if isinstance(data, list) and all(isinstance(d, np.ndarray) and d.ndim == 2 for d in data):
        return [(d[:, 0].astype(float), d[:, 1].astype(float)) for d in data]
    xs, ys = _num(el.dimension_values(0)), _num(el.dimension_values(1))
    cuts = np.flatnonzero(~np.isfinite(xs))
    parts = zip(np.split(xs, cuts), np.split(ys, cuts))
    return [(a[m], b[m]) for a, b in parts if (m := np.isfinite(a) & np.isfinite(b)).sum() > 1]


def _is_dt(el, i: int) -> bool:
    return np.asarray(el.dimension_values(i)[:1]).dtype.kind == "M"


def _extent(el, name: str, logy: bool) -> tuple[list, list]:
    """(x values, y values) that the element covers, for the panel's ranges."""
    if name in ("Rectangles", "Segments"):
        return ([_num(el.dimension_values(i)) for i in (0, 2)], [_num(el.dimension_values(i)) for i in (1, 3)])
    if name in ("Image", "RGB"):
        lft, b, r, t = el.bounds.lbrt()
        return [np.array([lft, r])], [np.array([b, t])]
    if name == "Histogram":
        c = _num(el.dimension_values(1))
        base = np.nanmin(c[c > 0]) / 2 if logy and (c > 0).any() else 0.0
        return [_num(el.edges)], [np.append(c, base)]
    if name == "VLine":
        return [np.array([float(el.data)])], []
    if name == "HLine":
        return [], [np.array([float(el.data)])]
    if name in ("Polygons", "Path", "Contours"):
        geoms = _geometries(el)
        return [g[0] for g in geoms], [g[1] for g in geoms]
    if name == "Slope":
        return [], []
    return [_num(el.dimension_values(0))], [_num(el.dimension_values(1))]


def _limits(arrays: list, lg: bool) -> tuple[float, float]:
    vals = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    vals = vals[np.isfinite(vals) & ((vals > 0) if lg else True)]
    if vals.size == 0:
        return (1.0, 10.0) if lg else (0.0, 1.0)
    lo, hi = float(vals.min()), float(vals.max())
    if lg:
        lo, hi = math.log10(lo), math.log10(hi)
    pad = 0.03 * (hi - lo) if hi > lo else (abs(lo) * 0.1 or 1.0)
    lo, hi = lo - pad, hi + pad
    return (10**lo, 10**hi) if lg else (lo, hi)


def _color_spec(el, st: dict):
    """('map', dim, table) for a colour-mapped element, ('fixed', rgb) otherwise."""
    c = st.get("color", st.get("fill_color"))
    if isinstance(c, str) and c in [d.name for d in el.dimensions()]:
        vals = el.dimension_values(c, expanded=type(el).__name__ not in ("Polygons", "Path", "Contours"))
        cmap = st.get("cmap", style.DEFAULT_CMAP)
        if np.asarray(vals).dtype.kind in "biuf":
            return ("map", c, cmap)
        cats = list(dict.fromkeys(str(v) for v in vals))
        table = cmap if isinstance(cmap, dict) else style.category_colors(cats)
        return ("cat", c, {k: style.to_rgb(table.get(k, "#7f7f7f")) for k in cats})
    try:  # a colour, or a Cycle of them; anything else (a dim expression) gets the default
        return ("fixed", style.to_rgb(c)) if c is not None else ("fixed", (31, 119, 180))
    except (ValueError, TypeError):
        return ("fixed", (31, 119, 180))


def _clim(el, dim: str, st: dict, po: dict) -> tuple[float, float]:
    cl = po.get("clim", st.get("clim"))
    if cl is not None and all(v is not None and np.isfinite(v) for v in cl):
        return float(cl[0]), float(cl[1])
    v = _num(el.dimension_values(dim))
    v = v[np.isfinite(v)]
    return (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)


def _fill_colors(el, st, po, n):
    """Per-item RGB colours for an element, the colour-bar spec if mapped, categories if any."""
    spec = _color_spec(el, st)
    per_path = type(el).__name__ in ("Polygons", "Path", "Contours")  # one value per polygon
    if spec[0] == "map":
        clim = _clim(el, spec[1], st, po)
        logz = bool(po.get("logz", False))
        vals = el.dimension_values(spec[1], expanded=not per_path)
        cols = style.map_colors(_num(vals), clim, spec[2], log=logz)
        return cols, {"clim": clim, "cmap": spec[2], "log": logz, "po": po, "el": el}, None
    if spec[0] == "cat":
        vals = [str(v) for v in el.dimension_values(spec[1], expanded=not per_path)]
        return np.array([spec[2][v] for v in vals], dtype=np.uint8).reshape(-1, 3), None, spec[2]
    return np.tile(np.array(spec[1], dtype=np.uint8), (n, 1)), None, None


def _alpha(st: dict, key: str = "fill_alpha") -> int:
    a = st.get(key, st.get("alpha", 1.0))
    return int(round(255 * float(a if a is not None else 1.0)))


def _pt(size, default: int) -> int:
    if isinstance(size, str) and size.endswith("pt"):
        return max(6, int(round(float(size[:-2]) * 1.33)))
    if isinstance(size, str) and size.endswith("px"):
        return max(6, int(float(size[:-2])))
    return default


def _draw_element(layer, el, name, tr: PanelTransform, out: dict) -> None:
    """Draw one element onto the RGB frame (coordinates relative to the frame)."""
    from PIL import Image, ImageDraw

    st, po = _opts(el, "style"), _opts(el, "plot")
    draw = ImageDraw.Draw(layer, "RGBA")
    W, H = layer.size

    def px(x, y):
        a, b = tr.to_pixel(_num(x), _num(y))
        return a - tr.left, b - tr.top

    lc = st.get("line_color", "black")
    lw = max(1, int(round(float(st.get("line_width", 1) or 1))))
    if name in ("Rectangles", "Polygons", "Histogram"):
        if name == "Polygons":
            quads = [tuple(zip(*px(x, y))) for x, y in _geometries(el)]
        else:
            if name == "Rectangles":
                x0, y0 = px(el.dimension_values(0), el.dimension_values(1))
                x1, y1 = px(el.dimension_values(2), el.dimension_values(3))
            else:  # Histogram bars from the axis floor (0, or the bottom of a log axis)
                e, c = _num(el.edges), _num(el.dimension_values(1))
                base = tr.ylim[0] if tr.logy else 0.0
                x0, y0 = px(e[:-1], np.full(len(c), base))
                x1, y1 = px(e[1:], np.where(c > 0, c, base))
            quads = [((a, b), (cc, b), (cc, d), (a, d)) for a, b, cc, d in zip(x0, y0, x1, y1)]
        if name == "Histogram" and "color" not in st and "fill_color" not in st:
            st = dict(st, color="#30a2da")
        cols, cbar, cats = _fill_colors(el, st, po, len(quads))
        if name == "Polygons" and len(cols) != len(quads):
            cols = np.array([cols[0]] * len(quads)) if len(cols) else cols
        fa = _alpha(st)
        line = None if lc is None or (isinstance(lc, str) and lc.lower() == "none") else style.to_rgb(lc)
        for q, col in zip(quads, cols):
            draw.polygon(q, fill=(*col, fa) if fa else None,
                         outline=(*line, _alpha(st, "line_alpha")) if line else None)
        if cbar and po.get("colorbar"):
            out["colorbar"] = cbar
        if cats:
            out.setdefault("legend", []).extend(cats.items())
        elif el.label:
            out.setdefault("legend", []).append((el.label, tuple(cols[0]) if len(cols) else (0, 0, 0)))
    elif name in ("Path", "Curve", "Segments", "VLine", "HLine", "Slope", "Contours"):
        col = (*style.to_rgb(st.get("color", "black") or "black"), _alpha(st, "line_alpha"))
        if name == "Path":
            for gx, gy in _geometries(el):
                xs, ys = px(gx, gy)
                ok = np.isfinite(xs) & np.isfinite(ys)
                for run in np.split(np.arange(len(xs)), np.flatnonzero(~ok)):
                    run = run[ok[run]]
                    if len(run) > 1:
                        draw.line(list(zip(xs[run], ys[run])), fill=col, width=lw)
        elif name == "Curve":
            xs, ys = px(el.dimension_values(0), el.dimension_values(1))
            draw.line(list(zip(xs, ys)), fill=col, width=lw)
        elif name == "Segments":
            x0, y0 = px(el.dimension_values(0), el.dimension_values(1))
            x1, y1 = px(el.dimension_values(2), el.dimension_values(3))
            for seg in zip(x0, y0, x1, y1):
                draw.line(seg, fill=col, width=lw)
        elif name == "VLine":
            x, _ = px([float(el.data)], [tr.ylim[0]])
            style.dashed_line(draw, (x[0], 0), (x[0], H), col, lw, st.get("line_dash"))
        elif name == "HLine":
            _, y = px([tr.xlim[0]], [float(el.data)])
            style.dashed_line(draw, (0, y[0]), (W, y[0]), col, lw, st.get("line_dash"))
        else:  # Slope: y = slope * x + intercept across the frame
            xs = np.array(tr.xlim)
            a, b = px(xs, el.slope * xs + el.y_intercept)
            style.dashed_line(draw, (a[0], b[0]), (a[1], b[1]), col, lw, st.get("line_dash"))
        if el.label and name in ("Curve", "Path"):
            out.setdefault("legend", []).append((el.label, col[:3]))
    elif name in ("Scatter", "Points"):
        xs, ys = px(el.dimension_values(0), el.dimension_values(1))
        cols, cbar, cats = _fill_colors(el, st, po, len(xs))
        r = max(1.0, float(st.get("size", 6) if np.isscalar(st.get("size", 6)) else 6) / 2)
        a = _alpha(st)
        tri = "triangle" in str(st.get("marker", ""))
        for x, y, c in zip(xs, ys, cols):
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            if tri:
                draw.polygon(((x, y - r), (x + r, y + r), (x - r, y + r)), fill=(*c, a))
            else:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=(*c, a))
        if cbar and po.get("colorbar"):
            out["colorbar"] = cbar
        if cats:
            out.setdefault("legend", []).extend(cats.items())
        elif el.label:  # empty labelled points are legend keys (e.g. for a datashaded image)
            out.setdefault("legend", []).append((el.label, tuple(cols[0]) if len(cols) else
                                                 _color_spec(el, st)[1]))
    elif name in ("Labels", "Text"):
        font = style.font(_pt(st.get("text_font_size"), 11))
        col = style.to_rgb(st.get("text_color", "black") or "black")
        items = [(el.x, el.y, el.text)] if name == "Text" else zip(
            el.dimension_values(0), el.dimension_values(1), el.dimension_values(2))
        for x, y, t in items:
            a, b = px([x], [y])
            draw.text((a[0], b[0]), str(t), fill=(*col, 255), font=font, anchor="mm")
    elif name in ("Image", "RGB"):
        lft, b, r, t = el.bounds.lbrt()
        (x0, x1), (y1, y0) = px([lft, r], [b, t])
        if name == "RGB":
            chans = [el.dimension_values(i, flat=False) for i in range(2, 2 + len(el.vdims))]
            arr = np.dstack(chans)
            arr = (arr * 255).astype(np.uint8) if arr.dtype.kind == "f" else arr.astype(np.uint8)
            if arr.shape[2] == 3:
                arr = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
        else:
            v = _num(el.dimension_values(2, flat=False))
            clim = _clim(el, el.vdims[0].name, st, po)
            rgb = style.map_colors(v.ravel(), clim, st.get("cmap", style.DEFAULT_CMAP),
                                   log=po.get("logz", False) or po.get("cnorm") == "log")
            alpha = np.where(np.isfinite(v.ravel()), _alpha(st, "alpha"), 0).astype(np.uint8)
            arr = np.column_stack([rgb, alpha]).reshape(v.shape + (4,))
            if po.get("colorbar"):
                out["colorbar"] = {"clim": clim, "cmap": st.get("cmap", style.DEFAULT_CMAP),
                                   "log": bool(po.get("logz")), "po": po, "el": el}
        # dimension_values(flat=False) is y ascending (row 0 at the bottom): flip for display.
        img = Image.fromarray(np.ascontiguousarray(arr[::-1]), "RGBA")
        size = (max(1, int(round(x1 - x0))), max(1, int(round(y1 - y0))))
        img = img.resize(size, Image.Resampling.NEAREST)
        layer.paste(img, (int(round(x0)), int(round(y0))), img)  # the alpha band is the mask
    else:
        log.debug("save_png: %s elements are not drawn", name)


def _elements(obj):
    hv = style.holoviews()
    if isinstance(obj, hv.DynamicMap):
        obj = obj[()] if not obj.kdims else obj.last
    if isinstance(obj, hv.HoloMap):
        obj = obj.last
    return obj, (list(obj) if isinstance(obj, hv.Overlay) else [obj])


def _render_panel(obj, width: int | None, height: int | None = None, side: bool = False):
    """One Overlay/Element -> (RGBA image, PanelTransform)."""
    from PIL import Image, ImageDraw
    obj, els = _elements(obj)
    po = {}
    for e in els[::-1] + [obj]:
        po.update({k: v for k, v in _opts(e, "plot").items() if v is not None})
    names = [type(e).__name__ for e in els]
    logx, logy = bool(po.get("logx")), bool(po.get("logy"))
    xs, ys = [], []
    for e, n in zip(els, names):
        a, b = _extent(e, n, logy)
        xs += a
        ys += b
    xlim = tuple(po["xlim"]) if po.get("xlim") and None not in po["xlim"] else _limits(xs, logx)
    ylim = tuple(po["ylim"]) if po.get("ylim") and None not in po["ylim"] else _limits(ys, logy)
    if "Image" in names or "RGB" in names:  # images fill the frame, no padding
        xlim = (min(np.concatenate(xs)), max(np.concatenate(xs)))
        ylim = (min(np.concatenate(ys)), max(np.concatenate(ys)))
    fw = int(width or po.get("frame_width") or po.get("width") or 600)
    if side:
        fw = min(fw, 220)
    if po.get("data_aspect") == 1 or po.get("aspect") == "equal":
        fh = int(round(fw * (ylim[1] - ylim[0]) / (xlim[1] - xlim[0])))
    else:
        fh = int(height or po.get("frame_height") or po.get("height") or round(fw * 0.6))
    fh = int(height) if side and height else min(max(fh, 60), 3 * fw)
    font, small = style.font(13), style.font(11)
    title = po.get("title") or obj.label or ""
    left, top, bottom = 70, (30 if title else 12), 46
    tr = PanelTransform(left, top, fw, fh, xlim, ylim, logx, logy)
    # An RGB frame: ImageDraw blends RGBA fills into RGB images (into RGBA ones it overwrites).
    frame = Image.new("RGB", (fw, fh), style.to_rgb(po.get("bgcolor", "white") or "white"))
    out: dict = {}
    for e, n in zip(els, names):
        _draw_element(frame, e, n, tr, out)
    cbar = out.get("colorbar")
    right = 110 if cbar else 20
    img = Image.new("RGBA", (left + fw + right, top + fh + bottom), (255, 255, 255, 255))
    img.paste(frame, (left, top))
    x_dt = any(_is_dt(e, 0) for e, n in zip(els, names) if n not in ("VLine", "HLine", "Slope", "Image", "RGB"))
    main = next((e for e, n in zip(els, names) if n not in ("Labels", "VLine", "HLine", "Slope", "Text")), els[0])
    xl = po.get("xlabel") or main.kdims[0].pprint_label
    yl = po.get("ylabel") or (main.kdims[1] if len(main.kdims) > 1 and type(main).__name__ not in
                              ("Histogram", "Curve", "Scatter") else main.vdims[0] if main.vdims else "y")
    style.draw_axes(img, tr, str(title), xl, yl if isinstance(yl, str) else yl.pprint_label, x_dt, font, small)
    d = ImageDraw.Draw(img)
    if cbar:
        style.draw_colorbar(img, cbar, left + fw + 12, top, fh, small, font)
    if out.get("legend"):
        style.draw_legend(d, out["legend"], left + fw - 8, top + 8, small)
    return img, tr


def _cell(obj, width):
    """One layout cell -> (image, transforms); an AdjointLayout puts its side plots to the right."""
    hv = style.holoviews()
    if isinstance(obj, hv.AdjointLayout):
        main, tr = _render_panel(obj.main, width)
        cells = [(main, [tr])]
        for k in ("right", "top"):
            if k in obj.keys() and obj[k] is not None:
                img, t = _render_panel(obj[k], width, height=tr.height, side=True)
                cells.append((img, [t]))
        return _stack(cells, horizontal=True)
    img, tr = _render_panel(obj, width)
    return img, [tr]


def _stack(cells, horizontal: bool):
    """Paste cells side by side (or one under another), shifting their transforms."""
    from PIL import Image

    sizes = [c[0].size for c in cells]
    W = sum(s[0] for s in sizes) if horizontal else max(s[0] for s in sizes)
    H = max(s[1] for s in sizes) if horizontal else sum(s[1] for s in sizes)
    out, pos, trs = Image.new("RGBA", (W, H), (255, 255, 255, 255)), 0, []
    for img, ts in cells:
        out.paste(img, (pos, 0) if horizontal else (0, pos))
        for t in ts:
            if horizontal:
                t.left += pos
            else:
                t.top += pos
            trs.append(t)
        pos += img.size[0] if horizontal else img.size[1]
    return out, trs


def render_png(obj: Any, *, width: int | None = None) -> PngRender:
    """Rasterise a HoloViews object with PIL (no browser); *width* is each frame's width in px.

    Layouts are tiled row by row (``cols`` of the layout, default 2); transforms are
    returned in the layout's order.
    """
    hv = style.holoviews()
    if isinstance(obj, (hv.Layout, hv.NdLayout)):
        items = list(obj)
        ncols = max(1, min(getattr(obj, "_max_cols", 2) or 2, len(items)))
        rows = [_stack([_cell(o, width) for o in items[i:i + ncols]], horizontal=True)
                for i in range(0, len(items), ncols)]
        img, trs = _stack(rows, horizontal=False)
    else:
        img, trs = _cell(obj, width)
    return PngRender(img.convert("RGB"), trs)


def save_png(obj: Any, path: str | os.PathLike, *, width: int | None = None) -> PngRender:
    """Write a static PNG of *obj* (see :func:`render_png`); returns the render with its transforms.

    >>> import holoviews as hv, tempfile, os
    >>> r = save_png(hv.Histogram(([0, 1, 2], [3, 1])), os.path.join(tempfile.mkdtemp(), "h.png"))
    >>> r.panels[0].xlim[0] < 0
    True
    """
    render = render_png(obj, width=width)
    render.save(path)
    return render
