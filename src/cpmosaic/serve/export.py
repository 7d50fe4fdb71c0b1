"""Static tile pyramids for hosting without a server: Deep Zoom or XYZ, written to a directory.

The tiles are the server's tiles, byte for byte (same readers, same stretches, the same
:func:`cpmosaic.serve.tiles.render_png`).  Deep Zoom writes ``NAME.dzi`` and
``NAME_files/L/C_R.png`` (every tile, transparent where no detector is: viewers ask for all of
them), one row of tiles per task from one strip of its level (each chunk decoded once); XYZ
writes ``Z/X/Y.png`` for the tiles that touch a detector and a ``tilejson.json`` with a relative
template.

Tasks run on a thread pool (numba, ISA-L/zlib and the zarr codecs release the GIL), or on dask
(``use_dask=True``: dask's threaded scheduler, for a caller that wants dask's diagnostics or
scheduling).  At most ``workers`` tasks are in memory at once and each holds one strip, so
memory does not grow with the mosaic.  Dask is imported only when asked for: a whole
``cpmosaic export-tiles`` process is dominated by its start-up on small stores.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import tiles
from .geometry import DeepZoom, padded_window
from .stores import ServedStore

log = logging.getLogger(__name__)

__all__ = ["export_tiles", "dzi_tile_addresses", "xyz_tile_addresses", "BandReader", "ShardRows", "TileWriter"]

#: XYZ tiles rendered per task (a Deep Zoom task is one row of tiles).
BATCH = 64
#: Largest aligned store level (bytes, float32) kept whole while a Deep Zoom export runs.
KEEP_ALIGNED_BYTES = 128 * 2**20


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


class ShardRows:
    """Whole rows of shards of one level, read straight from a local store's shard files.

    zarr reads a shard's chunks with several thread hand-offs each (file read and decode, both
    through ``asyncio.to_thread``): about 0.4 ms of Python per 256 x 256 chunk, more than the
    decode itself, and on a busy machine every hand-off waits for a core.  For the layout
    ``cpmosaic mosaic`` writes (a local store, ``sharding_indexed`` with its index at the end,
    inner chunks ``bytes`` (little-endian float32) + ``blosc``) this reads each shard file in one
    call and decodes its chunks in the calling thread (blosc releases the GIL).  The shard
    index's CRC32C is checked, as zarr checks it, and a chunk must lie inside its file: a
    damaged shard is an error that names its file.  :meth:`for_level` answers None for any
    other layout, and the caller reads through zarr.
    """

    def __init__(self, root: str, array_path: str, metadata, shape: tuple[int, int],
                 shard: tuple[int, int], inner: tuple[int, int]) -> None:
        self.root, self.path, self.md = root, array_path, metadata
        self.shape, self.shard, self.inner = shape, shard, inner
        self.per_shard = (shard[0] // inner[0], shard[1] // inner[1])
        self.fill = np.float32(metadata.fill_value)

    @classmethod
    def for_level(cls, arr) -> "ShardRows | None":
        try:
            from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec
            from zarr.storage import LocalStore

            store, md = arr.store_path.store, arr.metadata
            (codec,) = md.codecs
            inner_codecs = codec.codecs
            ok = (isinstance(store, LocalStore) and isinstance(codec, ShardingCodec)
                  and str(getattr(codec.index_location, "value", codec.index_location)) == "end"
                  and len(inner_codecs) == 2 and isinstance(inner_codecs[0], BytesCodec)
                  and str(getattr(inner_codecs[0].endian, "value", inner_codecs[0].endian)) == "little"
                  and isinstance(inner_codecs[1], BloscCodec) and len(arr.shape) == 2
                  and np.dtype(arr.dtype) == np.float32 and len(codec.index_codecs) == 2)
            if not ok:
                return None
            shard, inner = tuple(arr.shards), tuple(codec.chunk_shape)
            if shard[0] % inner[0] or shard[1] % inner[1]:
                return None
            return cls(str(store.root), arr.store_path.path, md, tuple(arr.shape), shard, inner)
        except (ImportError, AttributeError, TypeError, ValueError):
            return None

    def _index(self, blob: bytes, path: str) -> np.ndarray:
        """The shard's chunk index (offset, size per chunk), checked against its CRC32C."""
        import google_crc32c

        n = self.per_shard[0] * self.per_shard[1]
        start = len(blob) - 16 * n - 4
        if start < 0:
            raise ValueError(f"{path}: a shard file of {len(blob)} bytes cannot hold its index of {n} chunks")
        raw = blob[start:start + 16 * n]
        if google_crc32c.value(raw) != int.from_bytes(blob[-4:], "little"):
            raise ValueError(f"{path}: the shard index's checksum does not match (a damaged shard file)")
        index = np.frombuffer(raw, "<u8").reshape(self.per_shard + (2,))
        used = index[..., 0] != np.uint64(2**64 - 1)
        if (index[..., 0][used] + index[..., 1][used] > np.uint64(start)).any():
            raise ValueError(f"{path}: the shard index points past the chunks' bytes (a damaged shard file)")
        return index

    def read(self, row: int) -> np.ndarray:
        """Rows ``[row * shard_h, (row + 1) * shard_h)`` (clipped to the level), all columns."""
        import numcodecs.blosc

        h, w = self.shape
        sh, sw = self.shard
        ih, iw = self.inner
        r0 = row * sh
        out = np.empty((min(sh, h - r0), w), np.float32)
        for col in range(-(-w // sw)):
            path = os.path.join(self.root, self.path, self.md.encode_chunk_key((row, col)))
            c0 = col * sw
            try:
                with open(path, "rb") as fh:
                    blob = fh.read()
            except FileNotFoundError:  # a shard never written: all fill value
                out[:, c0:c0 + sw] = self.fill
                continue
            index = self._index(blob, path)
            for a in range(self.per_shard[0]):
                y0 = a * ih
                if y0 >= out.shape[0]:
                    break
                for b in range(self.per_shard[1]):
                    x0 = c0 + b * iw
                    if x0 >= w:
                        break
                    y1, x1 = min(y0 + ih, out.shape[0]), min(x0 + iw, w)
                    off, size = (int(v) for v in index[a, b])
                    if off == 2**64 - 1:  # an empty chunk
                        out[y0:y1, x0:x1] = self.fill
                        continue
                    chunk = np.frombuffer(numcodecs.blosc.decompress(blob[off:off + size]), "<f4").reshape(ih, iw)
                    out[y0:y1, x0:x1] = chunk[:y1 - y0, :x1 - x0]
        return out


class _Slot:
    """A band being read by one thread while the others wait for it."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.value: np.ndarray | None = None


class BandReader:
    """Store levels read in whole-width bands of chunk rows, each band read once.

    Deep Zoom rows start at the top edge and store chunks at the bottom one, so every chunk
    row lies under two rows of tiles (often rendered at once by two threads): a band is read
    by the first thread that needs it and kept for the next (at most ``max_bands`` per
    level).  ``keep_level`` is read whole and kept: the aligned level, which the cached
    coarse Deep Zoom level and its own rows of tiles both read.  ``read`` has the signature
    of :func:`cpmosaic.serve.tiles.read_padded` (NaN outside the level).
    """

    def __init__(self, m, keep_level: int | None = None, max_bands: int = 6) -> None:
        self.m = m
        self.keep_level = keep_level
        self.max_bands = max_bands
        self._lock = threading.Lock()
        self._bands: OrderedDict = OrderedDict()
        self._whole: np.ndarray | None = None
        self.fast = [ShardRows.for_level(level) for level in m.levels]

    def _rows(self, k: int) -> int:
        """Rows of a band of level ``k``: a row of shards (fast path) or of chunks."""
        fast = self.fast[k]
        return fast.shard[0] if fast is not None else self.m.levels[k].chunks[0]

    def _read_band(self, k: int, b: int, rows: int) -> np.ndarray:
        fast = self.fast[k]
        if fast is not None:
            return fast.read(b)
        h = self.m.shape(k)[0]
        return np.asarray(self.m.read(k, b * rows, min((b + 1) * rows, h)), dtype=np.float32)

    def _band(self, k: int, b: int, rows: int) -> np.ndarray:
        key = (k, b)
        with self._lock:
            found: _Slot | None = self._bands.get(key)
            owner = found is None
            if found is None:
                slot = self._bands[key] = _Slot()
                while len(self._bands) > self.max_bands:
                    self._bands.popitem(last=False)
            else:
                slot = found
                self._bands.move_to_end(key)
        if owner:
            try:
                slot.value = self._read_band(k, b, rows)
            finally:
                slot.ready.set()
        else:
            slot.ready.wait()
        if slot.value is None:  # the reading thread failed (and raised there)
            raise RuntimeError(f"reading rows band {b} of level {k} failed in another thread")
        return slot.value

    def _level(self, k: int) -> np.ndarray:
        with self._lock:  # read once, by the first thread that asks
            if self._whole is None:
                h, w = self.m.shape(k)
                whole = np.empty((h, w), np.float32)
                rows = self._rows(k)  # by bands: no second level-sized buffer
                for b, i in enumerate(range(0, h, rows)):
                    whole[i:i + rows] = self._read_band(k, b, rows)
                self._whole = whole
            return self._whole

    def read(self, k: int, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        """Level ``k`` rows ``[i0, i1)``, columns ``[j0, j1)``; NaN outside the level."""
        out, inside = padded_window(self.m.shape(k), i0, i1, j0, j1)
        if inside is None:
            return out
        ci0, ci1, cj0, cj1 = inside
        if k == self.keep_level:
            out[ci0 - i0:ci1 - i0, cj0 - j0:cj1 - j0] = self._level(k)[ci0:ci1, cj0:cj1]
            return out
        rows = self._rows(k)
        for b in range(ci0 // rows, (ci1 - 1) // rows + 1):
            band = self._band(k, b, rows)
            r0, r1 = max(ci0, b * rows), min(ci1, b * rows + band.shape[0])
            out[r0 - i0:r1 - i0, cj0 - j0:cj1 - j0] = band[r0 - b * rows:r1 - b * rows, cj0:cj1]
        return out


class TileWriter:
    """Files written by their own threads, so that a slow file system never stalls rendering.

    Creating a file can take a millisecond on a busy disk (journal, dirty-page throttling),
    about as long as rendering a tile; the kernel call does not hold the GIL, so a few writer
    threads hide it.  At most ``max_pending`` tiles wait in memory; :meth:`close` waits for
    the rest and raises the first error (a full disk, a read-only folder).

    One thread by default: with four, their hand-offs (futex wake-ups on a 2-core machine)
    cost more system time than the writes (whole export of a binning-8 LSSTCam store:
    1.2-2.0 s with 0.5-2.2 s of system CPU, against 1.0 s with 0.3 s with one writer).
    """

    def __init__(self, threads: int = 1, max_pending: int = 256) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tile-writer")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._errors: list[BaseException] = []

    def _write(self, path: str, data: bytes) -> None:
        try:
            with open(path, "wb") as fh:
                fh.write(data)
        except BaseException as exc:  # noqa: BLE001  (kept and raised by close)
            self._errors.append(exc)
        finally:
            self._slots.release()

    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` (its folder exists) in the background."""
        if self._errors:
            raise self._errors[0]
        self._slots.acquire()
        self._pool.submit(self._write, path, data)

    def close(self) -> None:
        """Wait for every write; raise the first error."""
        self._pool.shutdown(wait=True)
        if self._errors:
            raise self._errors[0]


def _render_batch(s: ServedStore, fmt: str, addrs: list, style, out: str, name: str, dz=None,
                  writer: TileWriter | None = None) -> int:
    n = 0
    for a in addrs:
        if fmt == "dzi":
            if a == "cached":
                dz.cached()
            else:
                level, row = a
                n += _dzi_row(dz, level, row, style, s.styles, out, name, writer)
            continue
        z, x, y = a
        png = tiles.render_tile(s.m, s.grid, s.styles, z, x, y, 1, style, s.chunks.read)
        path = os.path.join(out, str(z), str(x), f"{y}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if writer is not None:
            writer.put(path, png)
        else:
            with open(path, "wb") as fh:
                fh.write(png)
        n += 1
    return n


def _dzi_row(dz: DeepZoom, level: int, row: int, style, styles, out: str, name: str,
             writer: TileWriter | None = None) -> int:
    """Write one row of Deep Zoom tiles from one strip (the server's tiles, byte for byte:
    the strip's blocks are the tiles' blocks, both anchored at the top-left)."""
    h, w = dz.level_shape(level)
    r0, r1 = max(row * tiles.DZI_TILE - tiles.DZI_OVERLAP, 0), min((row + 1) * tiles.DZI_TILE + tiles.DZI_OVERLAP, h)
    strip = dz.read(dz.top - level, r0, r1, 0, w)
    folder = os.path.join(out, f"{name}_files", str(level))
    n_cols = -(-w // tiles.DZI_TILE)
    for col in range(n_cols):
        c0, c1 = max(col * tiles.DZI_TILE - tiles.DZI_OVERLAP, 0), min((col + 1) * tiles.DZI_TILE + tiles.DZI_OVERLAP, w)
        # render_png answers the transparent tile itself when nothing is drawn (no extra pass)
        png = tiles.render_png(strip[:, c0:c1], style, styles)
        path = os.path.join(folder, f"{col}_{row}.png")
        if writer is not None:
            writer.put(path, png)
            continue
        with open(path, "wb") as fh:
            fh.write(png)
    return n_cols


def export_tiles(store: str, out: str | os.PathLike, fmt: str = "dzi", style: tiles.Style | None = None,
                 name: str | None = None, storage_options: dict | None = None, workers: int | None = None,
                 chunk_cache_bytes: int = 0, use_dask: bool = False) -> dict:
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
        Threads (default: CPUs).
    use_dask
        Run the tasks on dask's threaded scheduler instead of a plain thread pool (same tiles).

    Examples
    --------
    >>> export_tiles("visit.zarr", "site/", "dzi", tiles.parse_style({"stretch": ["asinh"]}))  # doctest: +SKIP
    """
    if fmt not in ("dzi", "xyz"):
        raise ValueError(f"format must be 'dzi' or 'xyz', got {fmt!r}")
    style = style if style is not None else tiles.Style()
    t0 = time.perf_counter()
    s = ServedStore(name or "mosaic", str(store), storage_options, chunk_cache_bytes)
    name = name or Path(str(store).rstrip("/")).name.removesuffix(".zarr") or "mosaic"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # store-wide state first (limits, eq_hist table, the cached Deep Zoom level): every task shares it
    s.styles.normalize(style)
    n_workers = workers or os.cpu_count() or 1
    if fmt == "dzi":
        h, w = s.m.shape(0)
        (out / f"{name}.dzi").write_text(tiles.dzi_descriptor(w, h))
        for level in range(s.deepzoom.top + 1):
            (out / f"{name}_files" / str(level)).mkdir(parents=True, exist_ok=True)
        a = s.deepzoom.aligned
        ha, wa = s.m.shape(a)
        bands = BandReader(s.m, a if ha * wa * 4 <= KEEP_ALIGNED_BYTES else None, 2 * n_workers + 2)
        dz = DeepZoom(s.m.shape(0), s.m.n_levels, bands.read)
        # the cached coarse level first, built by one thread while the others render the finest
        # rows (most of the work); the coarse rows, which need it, last
        addrs = sorted(dzi_tile_addresses(s), key=lambda a: -a[0])
        batches = [["cached"]] + [[a] for a in addrs]
    else:
        dz = None
        flat = list(xyz_tile_addresses(s))
        batches = [flat[i:i + BATCH] for i in range(0, len(flat), BATCH)]
    writer = TileWriter()
    try:
        if use_dask:
            import dask

            render = dask.delayed(_render_batch, pure=False)
            counts = dask.compute(*[render(s, fmt, b, style, str(out), name, dz, writer) for b in batches],
                                  scheduler="threads", num_workers=n_workers)
        elif n_workers == 1:
            counts = tuple(_render_batch(s, fmt, b, style, str(out), name, dz, writer) for b in batches)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_workers) as pool:
                counts = tuple(pool.map(lambda b: _render_batch(s, fmt, b, style, str(out), name, dz, writer),
                                        batches))
    finally:
        writer.close()
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
