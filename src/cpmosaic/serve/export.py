"""Static tile pyramids for hosting without a server: Deep Zoom or XYZ, written to a directory.

The tiles are the server's tiles, byte for byte (same readers, same stretches), rendered
in batches on dask's threaded scheduler (numpy, zlib and the zarr codecs release the GIL): at most
``workers`` batches are in memory at once and each holds one tile's data at a time, so
memory does not grow with the mosaic.  Deep Zoom writes ``NAME.dzi`` and ``NAME_files/L/C_R.png``
(every tile, transparent where no detector is: viewers ask for all of them); XYZ writes
``Z/X/Y.png`` for the tiles that touch a detector and a ``tilejson.json`` with a relative
template.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from . import tiles
from .stores import ServedStore

log = logging.getLogger(__name__)

__all__ = ["export_tiles", "dzi_tile_addresses", "xyz_tile_addresses"]

#: XYZ tiles (or Deep Zoom rows of tiles) rendered per dask task.
BATCH = 64


def dzi_tile_addresses(s: ServedStore):
    """``(level, row)`` of every row of Deep Zoom tiles, coarse levels first (a row is read
    as one strip: each chunk is decoded once)."""
    for level in range(s.deepzoom.top + 1):
        h, w = s.deepzoom.level_shape(level)
        for row in range(-(-h // tiles.DZI_TILE)):
            yield (level, row)


def xyz_tile_addresses(s: ServedStore):
    """``(z, x, y)`` of every XYZ tile that touches a detector."""
    g, m = s.grid, s.m
    for z in range(g.maxzoom + 1):
        for y in range(2**z):
            for x in range(2**z):
                i0, i1, j0, j1 = g.tile_box(z, x, y)
                if m.plan.placements_in((max(i0, 0), max(min(i1, g.height), 0), max(j0, 0), max(min(j1, g.width), 0))):
                    yield (z, x, y)


def _render_batch(s: ServedStore, fmt: str, addrs: list, style, out: str, name: str) -> int:
    n = 0
    for a in addrs:
        if fmt == "dzi":
            n += _dzi_row(s, *a, style, out, name)
            continue
        z, x, y = a
        png = tiles.render_tile(s.m, s.grid, s.styles, z, x, y, 1, style, s.chunks.read)
        path = os.path.join(out, str(z), str(x), f"{y}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(png)
        n += 1
    return n


def _dzi_row(s: ServedStore, level: int, row: int, style, out: str, name: str) -> int:
    """Write one row of Deep Zoom tiles from one strip (the server's tiles, byte for byte:
    the strip's blocks are the tiles' blocks, both anchored at the top-left)."""
    h, w = s.deepzoom.level_shape(level)
    r0, r1 = max(row * tiles.DZI_TILE - tiles.DZI_OVERLAP, 0), min((row + 1) * tiles.DZI_TILE + tiles.DZI_OVERLAP, h)
    strip = s.deepzoom.read(s.deepzoom.top - level, r0, r1, 0, w)
    folder = os.path.join(out, f"{name}_files", str(level))
    os.makedirs(folder, exist_ok=True)
    n_cols = -(-w // tiles.DZI_TILE)
    for col in range(n_cols):
        c0, c1 = max(col * tiles.DZI_TILE - tiles.DZI_OVERLAP, 0), min((col + 1) * tiles.DZI_TILE + tiles.DZI_OVERLAP, w)
        data = strip[:, c0:c1]
        if np.isfinite(data).any():
            png = tiles.encode_png(tiles.to_rgba(data, style, s.styles))
        else:
            png = tiles.empty_png(c1 - c0, r1 - r0)
        with open(os.path.join(folder, f"{col}_{row}.png"), "wb") as fh:
            fh.write(png)
    return n_cols


def export_tiles(store: str, out: str | os.PathLike, fmt: str = "dzi", style: tiles.Style | None = None,
                 name: str | None = None, storage_options: dict | None = None, workers: int | None = None,
                 chunk_cache_bytes: int = 0) -> dict:
    """Write a static tile pyramid of a store; returns ``{"tiles", "seconds", "format", "path"}``.

    Parameters
    ----------
    store
        Mosaic store path or fsspec URL.
    out
        Output directory (created).
    fmt
        ``"dzi"`` (Deep Zoom, OpenSeadragon) or ``"xyz"`` (Leaflet, OpenLayers).
    style
        Stretch, limits and colour map (:func:`cpmosaic.serve.tiles.parse_style`).
    workers
        Dask threads (default: CPUs).

    Examples
    --------
    >>> export_tiles("visit.zarr", "site/", "dzi", tiles.parse_style({"stretch": ["asinh"]}))  # doctest: +SKIP
    """
    import dask

    if fmt not in ("dzi", "xyz"):
        raise ValueError(f"format must be 'dzi' or 'xyz', got {fmt!r}")
    style = style if style is not None else tiles.Style()
    t0 = time.perf_counter()
    s = ServedStore(name or "mosaic", str(store), storage_options, chunk_cache_bytes)
    name = name or Path(str(store).rstrip("/")).name.removesuffix(".zarr") or "mosaic"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # store-wide state first (limits, eq_hist table, the cached Deep Zoom level): every task shares it
    tiles.to_rgba(s.m.read(s.m.n_levels - 1)[:1, :1], style, s.styles)
    if fmt == "dzi":
        s.deepzoom.cached()
        h, w = s.m.shape(0)
        (out / f"{name}.dzi").write_text(tiles.dzi_descriptor(w, h))
        addrs = dzi_tile_addresses(s)
    else:
        addrs = xyz_tile_addresses(s)
    batch, tasks = [], []
    render = dask.delayed(_render_batch, pure=False)
    for a in addrs:
        batch.append(a)
        if len(batch) == (BATCH if fmt == "xyz" else 1):
            tasks.append(render(s, fmt, batch, style, str(out), name))
            batch = []
    if batch:
        tasks.append(render(s, fmt, batch, style, str(out), name))
    counts = dask.compute(*tasks, scheduler="threads", num_workers=workers or os.cpu_count() or 1)
    n = int(sum(counts))
    if fmt == "xyz":
        xmin, ymin, xmax, ymax = s.summary_bounds
        (out / "tilejson.json").write_text(json.dumps({
            "tilejson": "3.0.0", "name": name, "scheme": "xyz", "tiles": ["{z}/{x}/{y}.png"],
            "minzoom": 0, "maxzoom": s.grid.maxzoom, "bounds": [xmin, ymin, xmax, ymax],
            "world_bounds_mm": list(s.grid.world_bounds_mm(s.m)), "tile_size": tiles.TILE,
            "crs": "focal-plane mm",
            "description": "Static focal-plane tiles; bounds are focal-plane mm, not lon/lat; tiles "
                           "outside every detector are not written."}, indent=1))
    dt = time.perf_counter() - t0
    log.info("%s: %d %s tiles in %.1f s -> %s", store, n, fmt, dt, out)
    return {"tiles": n, "seconds": dt, "format": fmt, "path": str(out)}
