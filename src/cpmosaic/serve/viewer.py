"""The tile server's index page: the stores with their endpoints and a small XYZ viewer.

Plain HTML and JavaScript (no CDN, nothing to install): drag, wheel zoom, click for the value.
The stretch menu lists :data:`cpmosaic.viz.display.STRETCHES`, the names every view accepts.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

from ..viz.display import STRETCHES

if TYPE_CHECKING:
    from .stores import ServedStore

__all__ = ["VIEWER_HTML", "index_html"]


def index_html(stores: dict[str, ServedStore]) -> str:
    """The index page: the stores with their endpoints, and a small XYZ viewer (no CDN)."""
    items = []
    for n in stores:
        e = html.escape(n)
        items.append(f'<li><a href="?store={e}">{e}</a>: <a href="{e}/tilejson.json">tilejson</a> '
                     f'<a href="{e}/info">info</a> <a href="{e}/statistics">statistics</a> '
                     f'<a href="{e}/dzi.dzi">dzi</a> <a href="{e}/zarr/zarr.json">zarr</a></li>')
    summary = {n: {"maxzoom": s.grid.maxzoom, "world_bounds_mm": list(s.grid.world_bounds_mm(s.m))}
               for n, s in stores.items()}
    options = "".join(f"<option>{html.escape(n)}</option>" for n in STRETCHES)
    page = VIEWER_HTML.replace("__STORES_LIST__", "\n".join(items)).replace("__STRETCH_OPTIONS__", options)
    return page.replace("__STORES_JSON__", json.dumps(summary).replace("</", "<\\/"))


#: The index page (``__STORES_LIST__``, ``__STRETCH_OPTIONS__`` and ``__STORES_JSON__``
#: are filled in by :func:`index_html`).
VIEWER_HTML = r'''<!doctype html>
<html><head><meta charset="utf-8"><title>cpmosaic tile server</title>
<style>
body{font:14px sans-serif;margin:12px}#map{position:relative;overflow:hidden;width:768px;height:512px;
background:#333;cursor:grab;user-select:none}#map img{position:absolute;width:256px;height:256px}
#bar>*{margin-right:6px}#pos{font-family:monospace}
</style></head><body>
<h1>cpmosaic tile server</h1>
<ul id="stores">__STORES_LIST__</ul>
<div id="bar">store <select id="store"></select>
stretch <select id="stretch">__STRETCH_OPTIONS__</select>
colormap <input id="cmap" value="gray" size="8"> rescale <input id="rescale" placeholder="min,max" size="12">
<button id="zin">+</button><button id="zout">&minus;</button></div>
<div id="map"></div><p id="pos">click the mosaic for the value at a point</p>
<script>
"use strict";
const STORES = __STORES_JSON__;
const $ = (id) => document.getElementById(id);
const map = $("map");
let name = new URLSearchParams(location.search).get("store") || Object.keys(STORES)[0];
let z = 1, cx = 256, cy = 256, loaded = 0;  // zoom and map centre in world pixels of zoom z
for (const n of Object.keys(STORES)) $("store").add(new Option(n, n, false, n === name));
function query() {
  const p = new URLSearchParams({stretch: $("stretch").value, colormap_name: $("cmap").value});
  if ($("rescale").value) p.set("rescale", $("rescale").value);
  return p.toString();
}
function draw() {
  if (!name) return;
  const W = map.clientWidth, H = map.clientHeight, n = 1 << z, x0 = cx - W / 2, y0 = cy - H / 2;
  const hi = window.devicePixelRatio > 1 ? "@2x" : "";
  map.replaceChildren();
  for (let ty = Math.max(0, Math.floor(y0 / 256)); ty <= Math.min(n - 1, Math.floor((y0 + H) / 256)); ty++) {
    for (let tx = Math.max(0, Math.floor(x0 / 256)); tx <= Math.min(n - 1, Math.floor((x0 + W) / 256)); tx++) {
      const img = new Image();
      img.onload = () => { loaded++; document.body.dataset.tilesLoaded = loaded; };
      img.src = `${name}/tiles/${z}/${tx}/${ty}${hi}.png?${query()}`;
      img.style.left = (tx * 256 - x0) + "px"; img.style.top = (ty * 256 - y0) + "px";
      map.appendChild(img);
    }
  }
}
function zoom(dz) {
  const nz = Math.min(STORES[name].maxzoom, Math.max(0, z + dz));
  cx *= 2 ** (nz - z); cy *= 2 ** (nz - z); z = nz; draw();
}
let drag = null;
map.onmousedown = (e) => { drag = [e.clientX, e.clientY, cx, cy, false]; };
window.onmouseup = (e) => {
  if (drag && !drag[4]) {  // a click, not a drag: ask /point
    const r = map.getBoundingClientRect(), b = STORES[name].world_bounds_mm, s = 256 * 2 ** z;
    const wx = cx - map.clientWidth / 2 + e.clientX - r.left, wy = cy - map.clientHeight / 2 + e.clientY - r.top;
    const x = b[0] + wx / s * (b[2] - b[0]), y = b[3] - wy / s * (b[3] - b[1]);
    fetch(`${name}/point?x_mm=${x.toFixed(3)}&y_mm=${y.toFixed(3)}`).then((res) => res.json()).then((d) => {
      $("pos").textContent = d.error ? d.error : `x=${x.toFixed(2)} mm y=${y.toFixed(2)} mm ` +
        `${d.detector || "-"} ${d.amp || ""} value=${d.value}`;
    });
  }
  drag = null;
};
window.onmousemove = (e) => {
  if (!drag) return;
  drag[4] = drag[4] || Math.abs(e.clientX - drag[0]) + Math.abs(e.clientY - drag[1]) > 3;
  cx = drag[2] - (e.clientX - drag[0]); cy = drag[3] - (e.clientY - drag[1]); draw();
};
map.onwheel = (e) => { e.preventDefault(); zoom(e.deltaY < 0 ? 1 : -1); };
$("zin").onclick = () => zoom(1); $("zout").onclick = () => zoom(-1);
$("store").onchange = () => { name = $("store").value; z = 1; cx = cy = 256; draw(); };
for (const id of ["stretch", "cmap", "rescale"]) $(id).onchange = draw;
draw();
</script></body></html>
'''
