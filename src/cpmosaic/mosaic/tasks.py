"""The shard tasks of a mosaic build: one task per output shard.

* Level 0: a task owns one shard of level 0.  For each detector overlapping it,
  it reads only the detector rows it needs (``Exposure.read_stored(rows, out=)``:
  the big-endian pixels as the file holds them, read with ``preadv`` into a
  pooled band buffer where the file allows, decoded by the kernel, no
  conversion copy; in bands of whole blocks of about :data:`READ_BAND_BYTES`; a
  detector turned by 1 or 3 quarters needs columns, so all its rows, band by
  band), bins, turns and pastes them into a NaN-filled (pooled) shard buffer
  with :func:`cpmosaic.kernels.bin_rotate_into`, writes the chunks that can
  hold data (on a local disk: encoded here, the file written by an IO thread
  while the task takes the shard's statistics and halves it), then the
  shard's marker, once the file is in place.
* Every task but the last level's also halves what it wrote
  (:func:`cpmosaic.kernels.pyramid_reduce`) and hands that (a quarter of a
  shard, never a level) to the tasks of the next level in memory.
* Level k > 0: a task owns one shard of level k; it pastes the halved pieces of
  its level k-1 shards.  Shards of level k-1 that have no task in this run
  (done before a resume, or outside a repair) are read back from the store, in
  chunk-aligned pieces, and halved.  Inputs are never read again.
* Writers own whole shards: zarr loses data when two writers share one.  Shards
  no detector touches get no task (readers get the fill value, NaN).
* Metadata goes first, markers after each shard, the final attributes (windows,
  ``complete``) last; ``resume=True`` runs only the shards without a marker.

Before writing, a task checks the store is still claimed by its writer
(:mod:`cpmosaic.mosaic.owner`); its marker carries the build id.

Memory is bounded by the number of workers times about three shards plus a read
band, plus the halved pieces (a quarter shard each) waiting for their next-level
task, however large the focal plane: no task holds a full plane, no file page
stays mapped, and the local scheduler's thread count is chosen to fit
``memory_budget``.  Buffers are pooled and glibc's allocator is kept from
hoarding freed blocks (:mod:`cpmosaic.mosaic._memory`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import wait

import numpy as np

from ..io.cache import EXPOSURES
from ._memory import release_free_memory
from .owner import check_claim
from .plan import rotate_box
from .shardio import shard_writer
from .specs import Level0Spec, PyramidSpec, ShardKey
from .store import open_level, shard_stats, write_marker

__all__ = ["READ_BAND_BYTES", "forget_buffers", "level0_task", "pyramid_task", "read_bands", "result_of"]

#: Detector rows are read in bands of about this many bytes.
READ_BAND_BYTES = 4 * 2**20
#: Write whole shards of local stores directly (:mod:`.shardio`); False: always through zarr.
USE_SHARD_WRITER = os.environ.get("CPMOSAIC_SHARD_WRITER", "1") != "0"


class Opaque:
    """Hands a value to a dask task untouched: dask walks dicts, lists and dataclasses
    in task arguments looking for keys, which for a camera is millions of calls."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


def _write_region(box, data_box, chunks, full: bool) -> tuple[int, int, int, int]:
    """The part of a shard ``box`` to write: all of it, or ``data_box`` grown to whole chunks.

    Writing only chunks that can hold data saves zarr a call per empty chunk (a
    full-resolution shard holds 128).  It is safe because each shard has one
    writer and its content is deterministic: a shard a killed run left behind
    (stores write whole objects) holds the same values.  A repair pass writes
    whole shards (``full``) to erase a dropped detector.
    """
    if full or data_box is None:
        return box
    ch, cw = chunks
    return (max(box[0], data_box[0] // ch * ch), min(box[1], -(-data_box[1] // ch) * ch),
            max(box[2], data_box[2] // cw * cw), min(box[3], -(-data_box[3] // cw) * cw))


def _group_path(array):
    """The group's ``StorePath`` of a level array (level arrays sit right under the group;
    zarr's or :class:`~.localstore.LocalPath`, both built from store and path)."""
    path = array.store_path.path
    return type(array.store_path)(array.store_path.store, path.rsplit("/", 1)[0] if "/" in path else "")


def _finish(array, spec, region, out: np.ndarray, failures: list):
    """Write a shard's buffer, then its marker (the order a resume relies on).

    Returns ``(result, piece)``: ``piece`` is ``(y0, x0, halved)``, the buffer
    halved for the next level with its origin in that level, or None (last level).
    """
    from ..kernels import pyramid_reduce

    key: ShardKey = spec.key
    if not spec.locked:
        check_claim(_group_path(array), spec.writer, f"before writing shard {key.i},{key.j} of level {key.level}")
    writer = _writer(array) if out.size else None
    buf = pending = None
    try:
        if writer is not None:  # the task owns the whole shard: one file, no read-modify-write
            buf = _POOL.take(writer.room(key.i, key.j, region))
            # the file is written by an IO thread while this one takes the statistics and halves
            pending = writer.write(key.i, key.j, region, out, buf, background=True)
        elif out.size:
            array[region[0]:region[1], region[2]:region[3]] = out
        stats = shard_stats(out)
        piece = None
        if spec.halve and out.size:  # region starts are even: the 2x2 blocks of the whole level
            piece = (region[0] // 2, region[2] // 2, pyramid_reduce(out))
        if pending is not None:
            pending.result()  # the shard is in place (or its error raised here) before its marker
    finally:
        if buf is not None:
            if pending is not None:
                wait([pending])  # buf is the file's data until the write is done
            _POOL.give(buf)
    write_marker(array, key.i, key.j, {"level": key.level, "i": key.i, "j": key.j, "build_id": spec.build_id,
                                       **stats})
    release_free_memory()
    return {"level": key.level, "i": key.i, "j": key.j, "failures": failures}, piece


_WRITERS: dict = {}
_WRITERS_LOCK = threading.Lock()


def _writer(array):
    """The direct shard writer of a level array (None: write through zarr), made once per build."""
    key = id(array)
    with _WRITERS_LOCK:
        if key in _WRITERS:
            return _WRITERS[key][1]
    writer = shard_writer(array) if USE_SHARD_WRITER else None
    with _WRITERS_LOCK:
        _WRITERS[key] = (array, writer)  # the array kept alive: its id stays its own
    return writer


def result_of(task_output):
    """The small part of a task's output (what the caller of the graph gets)."""
    return task_output[0]


class _BufferPool:
    """Big scratch buffers reused from task to task (shared by the threads of a process).

    A fresh 16 MB shard buffer per task would be a fresh mapping whose pages
    the kernel faults in and zeroes again (22 GB of them over a full-resolution
    build), and a fresh read buffer would not be in cache.  A task takes what
    it needs and gives it back when done; :func:`_forget` empties the pool at
    the end of a build, so nothing is held between builds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[np.ndarray] = []
        self._in_use = 0
        self._most_in_use = 0

    def take(self, nbytes: int) -> np.ndarray:
        """A uint8 buffer of at least ``nbytes``."""
        with self._lock:
            self._in_use += 1
            self._most_in_use = max(self._most_in_use, self._in_use)
            fits = [i for i, b in enumerate(self._free) if b.nbytes >= nbytes]
            if fits:  # the smallest that fits (arrays compare by value: pop by index)
                return self._free.pop(min(fits, key=lambda i: self._free[i].nbytes))
        return np.empty(nbytes, np.uint8)

    def give(self, buf: np.ndarray) -> None:
        with self._lock:
            self._in_use -= 1
            self._free.append(buf)
            # never more buffers than tasks have held at once; sizes vary: keep the biggest
            while len(self._free) + self._in_use > self._most_in_use:
                self._free.pop(min(range(len(self._free)), key=lambda i: self._free[i].nbytes))

    def clear(self) -> None:
        with self._lock:
            self._free.clear()
            self._most_in_use = self._in_use


_POOL = _BufferPool()


def forget_buffers() -> None:
    """Empty the buffer pool and forget the shard writers (end of a build)."""
    _POOL.clear()
    with _WRITERS_LOCK:
        _WRITERS.clear()


def _nan_buffer(buf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A NaN-filled float32 ``shape`` view of pool buffer ``buf``."""
    out = buf[: 4 * shape[0] * shape[1]].view(np.float32).reshape(shape)
    out.fill(np.nan)
    return out


def read_bands(pl, box, b: int) -> tuple[list[tuple[int, int]], int, int]:
    """Detector row bands ``[(r, r2)]`` and columns ``c0, c1`` a level-0 shard ``box`` reads of ``pl``.

    Bands of whole blocks bound the memory a read takes (a shard at binning 8
    spans 4096 detector rows); each band lands where its blocks go.
    """
    r0, r1, c0, c1 = pl.detector_window(box, b)
    band = max(b, (READ_BAND_BYTES // (4 * pl.detector_shape[1])) // b * b)
    return [(r, min(r + band, r1)) for r in range(r0, r1, band)], c0, c1


def level0_task(camera_arg: Opaque, store, spec_arg: Opaque, *deps):
    """Fill, write and mark one shard of level 0 (see the module notes)."""
    camera, spec = camera_arg.value, spec_arg.value
    assert isinstance(spec, Level0Spec)
    box = spec.box
    array = open_level(store, 0)
    overlaps = [o for src in spec.sources if (o := src.placement.overlap(box)) is not None]
    data_box = (min(o[0] for o in overlaps), max(o[1] for o in overlaps), min(o[2] for o in overlaps),
                max(o[3] for o in overlaps)) if overlaps else None
    region = _write_region(box, data_box, array.chunks, spec.clear)
    y0, x0 = region[0], region[2]
    shape = (region[1] - y0, region[3] - x0)
    shard_buf = _POOL.take(4 * shape[0] * shape[1])
    band_buf = _POOL.take(READ_BAND_BYTES)
    try:
        out = _nan_buffer(shard_buf, shape)
        failures = _fill_level0(camera, spec, out, y0, x0, band_buf)
        return _finish(array, spec, region, out, failures)
    finally:
        _POOL.give(band_buf)
        _POOL.give(shard_buf)


def _fill_level0(camera, spec: Level0Spec, out: np.ndarray, y0: int, x0: int, band_buf: np.ndarray) -> list:
    """Bin, turn and paste every source's rows into ``out`` (origin ``y0, x0``); the failures."""
    from ..kernels import bin_rotate_into

    box, b, options = spec.box, spec.binning, spec.options
    failures = []
    for src in spec.sources:
        pl = src.placement
        bands, c0, c1 = read_bands(pl, box, b)
        # Whole rows go into band_buf (preadv, see _BufferPool) where the file stores them
        # plainly; a detector straddling a shard column needs part of each row, and
        # reading it through the map touches only those pages, so that its pixels are
        # read once per build, not once per shard.
        buf = band_buf if c1 - c0 == pl.detector_shape[1] else None
        for r, r2 in bands:
            try:
                # as stored (big-endian): bin_rotate_into decodes it, no conversion copy
                rows = EXPOSURES.read(src.path, camera, options, slice(r, r2), stored=True, out=buf)
            except Exception as exc:  # noqa: BLE001 - any read failure leaves this detector NaN
                reason = getattr(exc, "problem", None) or f"{type(exc).__name__}: {exc}"
                failures.append({"id": pl.id, "name": pl.name, "path": src.path,
                                 "reason": f"read failed: {reason}"})
                break
            mapped = not np.may_share_memory(rows, band_buf)
            win = rotate_box((r // b, -(-r2 // b), c0 // b, -(-c1 // b)), pl.binned_shape, pl.n_quarter)
            bin_rotate_into(rows[:, c0:c1], b, pl.n_quarter, out, pl.box[0] + win[0] - y0, pl.box[2] + win[2] - x0)
            del rows
            if mapped:  # read through the file map: its pages would stay resident until the file closes
                EXPOSURES.release(src.path, camera, options, slice(r, r2))
    return failures


def _empty_shard(store, spec: PyramidSpec):
    """A shard no detector touches, in a repair pass (a detector dropped after its
    data was written): write NaN, which makes zarr delete the chunks.

    Outside repairs such shards get no task at all: a reader gets the fill value.
    """
    key = spec.key
    array = open_level(store, key.level)
    if not spec.locked:
        check_claim(_group_path(array), spec.writer, f"before clearing shard {key.i},{key.j} of level {key.level}")
    y0, y1, x0, x1 = spec.box
    array[y0:y1, x0:x1] = np.float32(np.nan)
    write_marker(array, key.i, key.j, {"level": key.level, "i": key.i, "j": key.j, "build_id": spec.build_id,
                                       "n": 0})
    return {"level": key.level, "i": key.i, "j": key.j, "failures": []}, None


def _paste(out: np.ndarray, y0: int, x0: int, py: int, px: int, piece: np.ndarray) -> None:
    """Copy the part of ``piece`` (origin ``py, px``) inside ``out`` (origin ``y0, x0``)."""
    a0, a1 = max(py, y0), min(py + piece.shape[0], y0 + out.shape[0])
    b0, b1 = max(px, x0), min(px + piece.shape[1], x0 + out.shape[1])
    if a0 < a1 and b0 < b1:
        out[a0 - y0:a1 - y0, b0 - x0:b1 - x0] = piece[a0 - py:a1 - py, b0 - px:b1 - px]


def _read_back(src, box, out: np.ndarray, y0: int, x0: int) -> None:
    """Halve ``box`` of level array ``src`` (read in chunk-aligned pieces) into ``out``."""
    from ..kernels import pyramid_reduce

    dy0, dy1, dx0, dx1 = box
    band, cw = src.chunks
    width = max(cw, (READ_BAND_BYTES // (4 * band)) // cw * cw)
    r = dy0
    while r < dy1:  # pieces end on chunk edges so that each chunk is decoded once
        r2 = min(r - r % band + band, dy1)
        c = dx0
        while c < dx1:
            c2 = min(c - c % width + width, dx1)
            _paste(out, y0, x0, r // 2, c // 2, pyramid_reduce(np.asarray(src[r:r2, c:c2])))
            c = c2
        r = r2


def pyramid_task(store, spec_arg: Opaque, *deps):
    """Make one shard of level k from the halved level k-1 shards ``deps`` hand over
    (and those read back from the store: ``spec.read_back``)."""
    spec = spec_arg.value
    assert isinstance(spec, PyramidSpec)
    if spec.data_box is None:
        return _empty_shard(store, spec)
    k = spec.key.level
    array = open_level(store, k)
    dy0, dy1, dx0, dx1 = spec.data_box
    region = _write_region(spec.box, (dy0 // 2, -(-dy1 // 2), dx0 // 2, -(-dx1 // 2)), array.chunks, spec.clear)
    y0, x0 = region[0], region[2]
    shape = (region[1] - y0, region[3] - x0)
    buf = _POOL.take(4 * shape[0] * shape[1])
    try:
        out = _nan_buffer(buf, shape)
        for _, piece in deps:
            if piece is not None:
                _paste(out, y0, x0, *piece)
        if spec.read_back:
            # Only the part of the source that detectors cover is read: reading empty
            # chunks still costs zarr a call each, and sparse mosaics are mostly empty.
            src = open_level(store, k - 1, "r")
            for box in spec.read_back:
                _read_back(src, box, out, y0, x0)
        return _finish(array, spec, region, out, [])
    finally:
        _POOL.give(buf)
