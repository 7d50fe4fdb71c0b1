"""Build a mosaic store: one dask task per output shard.

* Level 0: a task owns one shard of level 0.  For each detector overlapping it,
  it reads only the detector rows it needs (``Exposure.read_stored(rows, out=)``:
  the big-endian pixels as the file holds them, read with ``preadv`` into a
  pooled band buffer where the file allows, decoded by the kernel, no
  conversion copy; in bands of whole blocks of about :data:`READ_BAND_BYTES`; a
  detector turned by 1 or 3 quarters needs columns, so all its rows, band by
  band), bins, turns and pastes them into a NaN-filled (pooled) shard buffer
  with :func:`cpmosaic.kernels.bin_rotate_into`, writes the chunks that can
  hold data, then the shard's marker.
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

Memory is bounded by the number of workers times about three shards plus a read
band, plus the halved pieces (a quarter shard each) waiting for their next-level
task, however large the focal plane: no task holds a full plane, no file page
stays mapped, and the local scheduler's thread count is chosen to fit
``memory_budget``.  Buffers are pooled and glibc's allocator is kept from
hoarding freed blocks (:mod:`cpmosaic.mosaic._memory`).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import progress as _progress
from ..errors import InputError
from ._memory import release_free_memory, use_mmap_for_big_blocks
from .inputs import EXPOSURES, InputSet, find_inputs
from .plan import DEFAULT_CHUNK, DEFAULT_SHARD_BYTES, MosaicPlan, make_plan, rotate_box
from .store import (
    FORMAT_VERSION,
    delete_marker,
    forget_levels,
    merge_windows,
    ome_attributes,
    open_group,
    create_levels,
    open_level,
    read_markers,
    shard_stats,
    write_group_attributes,
    write_marker,
)

log = logging.getLogger(__name__)

__all__ = ["BuildReport", "build_mosaic"]

#: Memory the local scheduler's workers may use together, by default.
DEFAULT_MEMORY_BUDGET = 3 * 2**29  # 1.5 GiB
_KEY = "cpmosaic-shard"
#: Detector rows are read in bands of about this many bytes.
READ_BAND_BYTES = 4 * 2**20


@dataclass
class BuildReport:
    """What a build did.

    ``partial`` is True when some inputs were bad or some detectors failed to
    read (the CLI exits 3).
    """

    store: str
    plan: MosaicPlan
    detectors: int
    missing: list = field(default_factory=list)
    bad_inputs: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    shards_written: int = 0
    shards_skipped: int = 0

    @property
    def partial(self) -> bool:
        return bool(self.bad_inputs or self.failed)


# -- tasks (module level so that they pickle for dask.distributed) ------------------


class _Opaque:
    """Hands a value to a dask task untouched: dask walks dicts, lists and dataclasses
    in task arguments looking for keys, which for a camera is millions of calls."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


def _compressors(name: str):
    from zarr.codecs import BloscCodec, ZstdCodec

    if name in ("blosc-lz4", "lz4"):
        return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]
    if name.startswith("zstd"):
        level = int(name.split("-")[1]) if "-" in name else 1
        return [ZstdCodec(level=level)]
    if name == "none":
        return []
    raise ValueError(f"unknown compressor {name!r}: use blosc-lz4, zstd[-LEVEL] or none")


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


def _finish(array, spec: dict, region, out: np.ndarray, failures: list):
    """Write a shard's buffer, then its marker (the order a resume relies on).

    Returns ``(result, piece)``: ``piece`` is ``(y0, x0, halved)``, the buffer
    halved for the next level with its origin in that level, or None (last level).
    """
    from ..kernels import pyramid_reduce

    if out.size:
        array[region[0]:region[1], region[2]:region[3]] = out
    write_marker(array, spec["i"], spec["j"], {"level": spec["level"], "i": spec["i"], "j": spec["j"],
                                               **shard_stats(out)})
    piece = None
    if spec.get("halve") and out.size:  # region starts are even: the 2x2 blocks of the whole level
        piece = (region[0] // 2, region[2] // 2, pyramid_reduce(out))
    release_free_memory()
    return {"level": spec["level"], "i": spec["i"], "j": spec["j"], "failures": failures}, piece


def _result(task_output):
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


def _nan_buffer(buf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A NaN-filled float32 ``shape`` view of pool buffer ``buf``."""
    out = buf[: 4 * shape[0] * shape[1]].view(np.float32).reshape(shape)
    out.fill(np.nan)
    return out


def _bands(pl, box, b: int) -> tuple[list[tuple[int, int]], int, int]:
    """Detector row bands ``[(r, r2)]`` and columns ``c0, c1`` a level-0 shard ``box`` reads of ``pl``.

    Bands of whole blocks bound the memory a read takes (a shard at binning 8
    spans 4096 detector rows); each band lands where its blocks go.
    """
    r0, r1, c0, c1 = pl.detector_window(box, b)
    band = max(b, (READ_BAND_BYTES // (4 * pl.detector_shape[1])) // b * b)
    return [(r, min(r + band, r1)) for r in range(r0, r1, band)], c0, c1


def _level0_task(camera: _Opaque, store, spec: _Opaque, *deps):
    """Fill, write and mark one shard of level 0 (see the module notes)."""
    camera, spec = camera.value, spec.value
    use_mmap_for_big_blocks()  # on a cluster's workers too
    box = spec["box"]
    array = open_level(store, 0)
    overlaps = [src["placement"].overlap(box) for src in spec["sources"]]
    data_box = (min(o[0] for o in overlaps), max(o[1] for o in overlaps), min(o[2] for o in overlaps),
                max(o[3] for o in overlaps)) if overlaps else None
    region = _write_region(box, data_box, array.chunks, spec["clear"])
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


def _fill_level0(camera, spec: dict, out: np.ndarray, y0: int, x0: int, band_buf: np.ndarray) -> list:
    """Bin, turn and paste every source's rows into ``out`` (origin ``y0, x0``); the failures."""
    from ..kernels import bin_rotate_into

    box, b = spec["box"], spec["binning"]
    failures = []
    for src in spec["sources"]:
        pl = src["placement"]
        bands, c0, c1 = _bands(pl, box, b)
        # Whole rows go into band_buf (preadv, see _BufferPool) where the file stores them
        # plainly; a detector straddling a shard column needs part of each row, and
        # reading it through the map touches only those pages, so that its pixels are
        # read once per build, not once per shard.
        buf = band_buf if c1 - c0 == pl.detector_shape[1] else None
        for r, r2 in bands:
            try:
                # as stored (big-endian): bin_rotate_into decodes it, no conversion copy
                rows = EXPOSURES.read(src["path"], camera, spec, slice(r, r2), stored=True, out=buf)
            except Exception as exc:  # noqa: BLE001 - any read failure leaves this detector NaN
                reason = getattr(exc, "problem", None) or f"{type(exc).__name__}: {exc}"
                failures.append({"id": pl.id, "name": pl.name, "path": src["path"],
                                 "reason": f"read failed: {reason}"})
                break
            mapped = not np.may_share_memory(rows, band_buf)
            win = rotate_box((r // b, -(-r2 // b), c0 // b, -(-c1 // b)), pl.binned_shape, pl.n_quarter)
            bin_rotate_into(rows[:, c0:c1], b, pl.n_quarter, out, pl.box[0] + win[0] - y0, pl.box[2] + win[2] - x0)
            del rows
            if mapped:  # read through the file map: its pages would stay resident until the file closes
                EXPOSURES.release(src["path"], camera, spec, slice(r, r2))
    return failures


def _empty_shard(store, spec: dict):
    """A shard no detector touches, in a repair pass (a detector dropped after its
    data was written): write NaN, which makes zarr delete the chunks.

    Outside repairs such shards get no task at all: a reader gets the fill value.
    """
    k = spec["level"]
    array = open_level(store, k)
    y0, y1, x0, x1 = spec["box"]
    array[y0:y1, x0:x1] = np.float32(np.nan)
    write_marker(array, spec["i"], spec["j"], {"level": k, "i": spec["i"], "j": spec["j"], "n": 0})
    return {"level": k, "i": spec["i"], "j": spec["j"], "failures": []}, None


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


def _pyramid_task(store, spec: _Opaque, *deps):
    """Make one shard of level k from the halved level k-1 shards ``deps`` hand over
    (and those read back from the store: ``spec["read_back"]``)."""
    spec = spec.value
    if spec["data_box"] is None:
        return _empty_shard(store, spec)
    k = spec["level"]
    array = open_level(store, k)
    dy0, dy1, dx0, dx1 = spec["data_box"]
    region = _write_region(spec["box"], (dy0 // 2, -(-dy1 // 2), dx0 // 2, -(-dx1 // 2)), array.chunks,
                           spec["clear"])
    y0, x0 = region[0], region[2]
    shape = (region[1] - y0, region[3] - x0)
    buf = _POOL.take(4 * shape[0] * shape[1])
    try:
        return _fill_pyramid(store, spec, array, region, _nan_buffer(buf, shape), deps)
    finally:
        _POOL.give(buf)


def _fill_pyramid(store, spec: dict, array, region, out: np.ndarray, deps) -> tuple:
    """Paste the halved pieces (and read-back shards) into ``out``, then write it."""
    k = spec["level"]
    y0, x0 = region[0], region[2]
    for _, piece in deps:
        if piece is not None:
            _paste(out, y0, x0, *piece)
    if spec["read_back"]:
        # Only the part of the source that detectors cover is read: reading empty
        # chunks still costs zarr a call each, and sparse mosaics are mostly empty.
        src = open_level(store, k - 1, "r")
        for box in spec["read_back"]:
            _read_back(src, box, out, y0, x0)
    return _finish(array, spec, region, out, [])


# -- graph -------------------------------------------------------------------------


def _data_box(plan: MosaicPlan, sources: dict, level: int, region: tuple[int, int, int, int]):
    """Bounding box (even-aligned, inside ``region`` of ``level``) of the detectors with data, or None."""
    hits = []
    for p in plan.placements:
        if p.id not in sources:
            continue
        b = _level_box(p.box, level)
        y0, y1 = max(b[0], region[0]), min(b[1], region[1])
        x0, x1 = max(b[2], region[2]), min(b[3], region[3])
        if y0 < y1 and x0 < x1:
            hits.append((y0, y1, x0, x1))
    if not hits:
        return None
    y0, x0 = min(h[0] for h in hits), min(h[2] for h in hits)
    # region starts are even; even starts keep the 2x2 blocks of the whole level
    return (y0 - y0 % 2, max(h[1] for h in hits), x0 - x0 % 2, max(h[3] for h in hits))


def _level_box(box0: tuple[int, int, int, int], level: int) -> tuple[int, int, int, int]:
    f = 2**level
    return (box0[0] // f, -(-box0[1] // f), box0[2] // f, -(-box0[3] // f))


def _graph(plan: MosaicPlan, camera, store, sources: dict, done: set, options: dict, only=None):
    """Delayed tasks of every shard not in ``done`` (``only``: per level, the shard set to run).

    Returns ``(tasks, uses)``, ``uses`` the number of reads (bands) of each input file.
    Each shard's task returns ``(result, halved piece)``; ``tasks`` are the
    results alone, so that pieces are dropped once the next level has them.
    """
    import dask

    token = uuid.uuid4().hex[:8]
    cam = dask.delayed(_Opaque(camera), pure=True, name=f"cpmosaic-camera-{token}")
    tasks: dict[tuple[int, int, int], Any] = {}
    empty: set = set()  # shards without data (no task, nothing in the store)
    uses: Counter = Counter()
    last = plan.levels[-1].level
    for lv in plan.levels:
        k = lv.level
        for i, j in lv.iter_shards():
            if (k, i, j) in done or (only is not None and (i, j) not in only.get(k, ())):
                continue
            box = lv.shard_box(i, j)
            name = f"{_KEY}-{k}-{i}-{j}-{token}"
            if k == 0:
                srcs = [{"placement": p, "path": sources[p.id]} for p in plan.placements_in(box) if p.id in sources]
                if srcs:  # shard rows start at different detectors so that threads seldom share a file
                    srcs = srcs[i % len(srcs):] + srcs[:i % len(srcs)]
                if not srcs and only is None:
                    empty.add((k, i, j))
                    continue  # nothing to write: readers get the fill value (NaN); see _empty_shard
                for s in srcs:
                    uses[s["path"]] += len(_bands(s["placement"], box, plan.binning)[0])
                spec = {"level": 0, "i": i, "j": j, "box": box, "binning": plan.binning, "sources": srcs,
                        "clear": only is not None, "halve": k < last, **options}
                call = dask.delayed(_level0_task, pure=False)
                tasks[(k, i, j)] = call(cam, store, _Opaque(spec), dask_key_name=name)
            else:
                prev = plan.levels[k - 1]
                sy0, sy1, sx0, sx1 = 2 * box[0], 2 * box[1], 2 * box[2], 2 * box[3]
                ph, pw = prev.shards
                children = [(a, c) for a in range(sy0 // ph, min(-(-sy1 // ph), prev.n_shards[0]))
                            for c in range(sx0 // pw, min(-(-sx1 // pw), prev.n_shards[1]))]
                deps = [tasks[(k - 1, a, c)] for a, c in children if (k - 1, a, c) in tasks]
                data_box = _data_box(plan, sources, k - 1, (sy0, min(sy1, prev.shape[0]), sx0, min(sx1, prev.shape[1])))
                if data_box is None and only is None:
                    empty.add((k, i, j))
                    continue
                read_back = []  # level k-1 shards without a task here: done before, in the store
                if data_box is not None:
                    for a, c in children:
                        if (k - 1, a, c) in tasks or (k - 1, a, c) in empty:
                            continue
                        cb = prev.shard_box(a, c)
                        db = _data_box(plan, sources, k - 1, (max(cb[0], sy0), min(cb[1], sy1),
                                                              max(cb[2], sx0), min(cb[3], sx1)))
                        if db is not None:
                            read_back.append(db)
                spec = {"level": k, "i": i, "j": j, "box": box, "clear": only is not None,
                        "data_box": data_box, "read_back": read_back, "halve": k < last}
                call = dask.delayed(_pyramid_task, pure=False)
                tasks[(k, i, j)] = call(store, _Opaque(spec), *deps, dask_key_name=name)
    results = [dask.delayed(_result, pure=True)(t, dask_key_name=f"cpmosaic-result-{key[0]}-{key[1]}-{key[2]}-{token}")
               for key, t in tasks.items()]
    return results, dict(uses)


def _forget() -> None:
    """Close cached input files, drop cached level arrays and scratch buffers (end of a
    build, on every worker)."""
    EXPOSURES.clear()
    forget_levels()
    _POOL.clear()


def _local_scheduler(scheduler):
    """The scheduler function of a local scheduler name.

    Handing dask the function (not the name) skips its check for a
    dask.distributed client, which imports ``distributed`` (~0.4 s, more than
    the whole build of a raft at binning 8).
    """
    name = (scheduler or "threads").lower()
    if name in ("threads", "threading"):
        from dask.threaded import get

        return get
    if name in ("sync", "synchronous", "single-threaded"):
        from dask.local import get_sync

        return get_sync
    return scheduler  # "processes": dask's own lookup


def _run(graph: tuple, scheduler, num_workers: int, show_progress: bool | None) -> list[dict]:
    """Compute the tasks locally or on a dask.distributed cluster, counting shards."""
    tasks, uses = graph
    if not tasks:
        return []
    import dask

    client, own = None, False
    if scheduler is not None and not isinstance(scheduler, str):
        client = scheduler  # a distributed.Client
    elif isinstance(scheduler, str) and scheduler not in ("threads", "threading", "sync", "synchronous",
                                                          "single-threaded", "processes"):
        from distributed import Client

        client, own = Client(scheduler), True
    try:
        with _progress.bar(len(tasks), desc="shards", progress=show_progress, unit="shard") as bar:
            if client is not None:
                from distributed import as_completed

                futures = client.compute(tasks)
                try:
                    for _ in as_completed(futures):
                        bar.update(1)
                    return client.gather(futures)
                finally:
                    client.run(_forget)
            from dask.callbacks import Callback

            def posttask(key, result, dsk, state, worker_id):
                if str(key).startswith(_KEY):
                    bar.update(1)

            EXPOSURES.expect(uses)  # files close after their last read
            try:
                with Callback(posttask=posttask):
                    return list(dask.compute(*tasks, scheduler=_local_scheduler(scheduler), num_workers=num_workers))
            finally:
                _forget()
    finally:
        if own:
            client.close()


# -- build -------------------------------------------------------------------------


def _input_records(inputs: InputSet) -> list[dict]:
    recs = []
    for det_id, info in sorted(inputs.files.items()):
        d = info.to_dict()
        d["path"] = os.path.abspath(d["path"])
        recs.append({"detector": det_id, "detector_name": inputs.camera[det_id].name, **d})
    return recs


def _missing(plan: MosaicPlan, inputs: InputSet, failed: list[dict]) -> list[dict]:
    why: dict[int, dict] = {}
    for b in inputs.bad:
        if "detector" in b:
            why.setdefault(b["detector"], {"reason": b["reason"], "path": b["path"]})
    for f in failed:
        why[f["id"]] = {"reason": f["reason"], "path": f["path"]}
    out = []
    for p in plan.placements:
        if p.id in inputs.files and p.id not in why:
            continue
        out.append({"id": p.id, "name": p.name, **why.get(p.id, {"reason": "no input"})})
    return out


def _check_resume(group, attrs: dict, store) -> None:
    old = group.attrs.asdict().get("cpmosaic")
    if old is None:
        raise InputError(str(store), "cannot resume: not a cpmosaic mosaic store (use --overwrite)")
    for key in ("camera", "binning", "pixel_size_mm", "origin", "levels", "placements", "build"):
        if old.get(key) != attrs.get(key):
            raise InputError(str(store), f"cannot resume: the store was started with a different {key} "
                                         "(use --overwrite to start again)")
    if {r["detector"]: r["path"] for r in old.get("inputs", [])} != \
            {r["detector"]: r["path"] for r in attrs["inputs"]}:
        raise InputError(str(store), "cannot resume: the store was started with other input files (use --overwrite)")


def _is_store(store) -> bool:
    try:
        open_group(store, "r")
        return True
    except Exception:  # noqa: BLE001 - zarr raises several types for "nothing here"
        return False


def _prepare(store, plan: MosaicPlan, attrs: dict, compressor: str, resume: bool, overwrite: bool):
    """Open (resume) or create the store with metadata and empty level arrays."""
    exists = _is_store(store)
    if isinstance(store, (str, os.PathLike)) and "://" not in os.fspath(store):
        p = os.fspath(store)
        if os.path.isfile(p) or (os.path.isdir(p) and os.listdir(p) and not exists):
            raise InputError(p, "exists and is not a zarr store; refusing to write over it")
    if exists and resume:
        group = open_group(store, "r+")
        _check_resume(group, attrs, store)
        return group
    if exists and not overwrite:
        raise InputError(str(store), "a store already exists here; use --resume to finish it or --overwrite")
    group = open_group(store, "w")
    write_group_attributes(group, {"ome": ome_attributes(plan, attrs["name"]), "cpmosaic": attrs})
    create_levels(group, plan.levels, _compressors(compressor))
    return group


def _compact_json():
    """zarr writes metadata without indentation meanwhile.

    The group attributes hold every detector's placement and amp boxes (~150 kB
    of JSON); indented, Python's pure-Python encoder takes ~70 ms per write
    instead of ~6 ms for the C one.  Readers see the same JSON.
    """
    import zarr

    return zarr.config.set({"json_indent": None})


def _fast_codecs():
    """zarr's fused codec pipeline meanwhile (where this zarr has it).

    The default (batched) pipeline schedules a coroutine and a thread hop per
    chunk, about 1 ms each on a busy machine, several times the lz4 work; the
    fused one (opt-in in zarr 3) encodes a shard's chunks synchronously.  Same
    bytes on disk.  Arrays keep the pipeline they were opened with, so level
    arrays are opened (:func:`open_level`) inside this context; stores without
    synchronous IO fall back to the async path inside zarr.
    """
    import contextlib

    import zarr

    try:
        from zarr.core.codec_pipeline import FusedCodecPipeline  # noqa: F401
    except ImportError:  # older zarr
        return contextlib.nullcontext()
    return zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.FusedCodecPipeline"})


def _default_workers(plan: MosaicPlan, memory_budget: int) -> int:
    per_shard = max(lv.shards[0] * lv.shards[1] * 4 for lv in plan.levels)
    per_task = 3 * per_shard + 2 * READ_BAND_BYTES  # shard buffer, its encoded copy, a band of rows
    return max(1, min(os.cpu_count() or 1, memory_budget // per_task))


def build_mosaic(
    inputs,
    store,
    *,
    camera=None,
    binning: int = 1,
    scheduler=None,
    resume: bool = False,
    overwrite: bool = False,
    overscan: str = "median",
    apply_gains: bool = False,
    chunk: int = DEFAULT_CHUNK,
    shard: tuple[int, int] | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    compressor: str = "blosc-lz4",
    num_workers: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    name: str | None = None,
    progress: bool | None = None,
) -> BuildReport:
    """Build a multi-resolution focal-plane mosaic store.

    Parameters
    ----------
    inputs
        FITS files, directories (searched recursively), ``butler://`` URLs, or an
        :class:`~cpmosaic.mosaic.inputs.InputSet`.
    store
        Output: a local path, an fsspec URL (``memory://x``, ``s3://b/x``) or a zarr store.
    camera
        Camera (or name/path); default: the one the input headers name.
    binning
        Detector pixels per level-0 pixel, per axis.
    scheduler
        None or ``"threads"`` (local threads), ``"sync"``, a ``tcp://`` address
        or a ``distributed.Client``.
    resume
        Finish an interrupted build: only shards without a marker are made.
    overwrite
        Replace an existing store.
    overscan, apply_gains
        Raw-file options passed to :func:`cpmosaic.io.open_exposure`.
    chunk, shard, shard_bytes
        Chunk (tile) size, shard shape or shard byte budget (see :func:`make_plan`).
    compressor
        ``"blosc-lz4"`` (default), ``"zstd"``/``"zstd-LEVEL"`` or ``"none"``.
    num_workers, memory_budget
        Local threads (default: as many as fit ``memory_budget``).
    name
        Image name in the OME metadata (default: the exposure id or camera name).
    progress
        Show a progress bar (None: when on a terminal or asked by the CLI).

    Returns
    -------
    BuildReport

    Raises
    ------
    InputError
        No usable input, or the store exists (without ``resume``/``overwrite``).
    MixedCamerasError
        Inputs from more than one camera.
    """
    use_mmap_for_big_blocks()  # see cpmosaic.mosaic._memory: flat memory over hundreds of shards
    inputs = inputs if isinstance(inputs, InputSet) else find_inputs(inputs, camera)
    cam = inputs.camera
    plan = make_plan(cam, binning, chunk=chunk, shard=shard, shard_bytes=shard_bytes)
    exposures = sorted({i.exposure for i in inputs.files.values() if i.exposure is not None})
    name = name or (f"{cam.name} {exposures[0]}" if len(exposures) == 1 else cam.name)
    options = {"overscan": overscan, "apply_gains": bool(apply_gains)}
    store_spec = os.fspath(store) if isinstance(store, os.PathLike) else store
    if isinstance(store_spec, str) and "://" not in store_spec:
        store_spec = os.path.abspath(store_spec)  # workers of a cluster may run elsewhere
    attrs = {
        "format_version": FORMAT_VERSION, "name": name, **plan.to_dict(),
        "build": {**options, "compressor": compressor},
        "inputs": _input_records(inputs), "bad_inputs": inputs.bad, "skipped_inputs": inputs.skipped,
        "missing": _missing(plan, inputs, []), "failed": [], "windows": None, "complete": False,
    }
    forget_levels()  # a store at this address may have been rebuilt since it was last opened here
    with _compact_json():
        group = _prepare(store_spec, plan, attrs, compressor, resume, overwrite)
    failed = list(group.attrs.asdict()["cpmosaic"].get("failed", [])) if resume else []
    sources = {d: os.path.abspath(info.path) for d, info in inputs.files.items()}
    for f in failed:
        sources.pop(f["id"], None)
    done = set(read_markers(group, plan)) if resume else set()
    workers = num_workers or _default_workers(plan, memory_budget)
    total = sum(lv.n_shards[0] * lv.n_shards[1] for lv in plan.levels)
    log.info("mosaic of %d detectors, binning %d: %d levels, level 0 %s, %d shards (%d done), %s",
             len(sources), plan.binning, plan.n_levels, plan.shape, total, len(done),
             "distributed" if scheduler not in (None, "threads") else f"{workers} threads")
    graph = _graph(plan, cam, store_spec, sources, done, options)
    _adopt(inputs, cam, options, local=scheduler is None or isinstance(scheduler, str) and scheduler in _LOCAL)
    with _fast_codecs():
        results = _run(graph, scheduler, workers, progress)
    new_failed = [f for r in results for f in r["failures"]]
    if new_failed:
        failed = _repair(group, plan, cam, store_spec, sources, options, failed, new_failed, attrs, scheduler,
                         workers, progress)
    markers = read_markers(group, plan)
    windows = [merge_windows([m for (k, _, _), m in markers.items() if k == lv.level]) for lv in plan.levels]
    attrs.update({"failed": failed, "missing": _missing(plan, inputs, failed), "windows": windows, "complete": True})
    with _compact_json():
        write_group_attributes(group, {"ome": ome_attributes(plan, name, windows[0]), "cpmosaic": attrs})
    report = BuildReport(str(store_spec), plan, len(plan.placements) - len(attrs["missing"]),
                         attrs["missing"], inputs.bad, failed, len(results), len(done))
    if report.partial:
        log.warning("built with problems: %d bad input(s), %d detector(s) failed to read",
                    len(inputs.bad), len(failed))
    return report


_LOCAL = ("threads", "threading", "sync", "synchronous", "single-threaded")


def _adopt(inputs: InputSet, cam, options: dict, local: bool) -> None:
    """Hand the files :func:`find_inputs` left open to the local tasks (no second header parse)."""
    opened, inputs.opened = inputs.opened, {}
    for path, exp in opened.items():
        if not (local and EXPOSURES.adopt(path, exp, cam, options)):
            exp.close()


def _repair(group, plan, cam, store, sources, options, failed, new_failed, attrs, scheduler, workers, progress):
    """Rebuild every shard a failed detector touched, without that detector (it stays NaN)."""
    by_id = {f["id"]: f for f in new_failed}
    failed = failed + [by_id[i] for i in sorted(by_id)]
    for f in by_id.values():
        log.warning("%s (%s): %s; it stays empty", f["name"], f["path"], f["reason"])
        sources.pop(f["id"], None)
    only: dict[int, set] = {}
    for lv in plan.levels:
        for det_id in by_id:
            y0, y1, x0, x1 = _level_box(plan.placement(det_id).box, lv.level)
            sh, sw = lv.shards
            for i in range(y0 // sh, -(-y1 // sh)):
                for j in range(x0 // sw, -(-x1 // sw)):
                    only.setdefault(lv.level, set()).add((i, j))
    # Record the failure and forget the affected shards first, so a kill here resumes correctly.
    attrs["failed"] = failed
    with _compact_json():
        write_group_attributes(group, {"ome": ome_attributes(plan, attrs["name"]), "cpmosaic": attrs})
    for k, cells in only.items():
        for i, j in cells:
            delete_marker(group, k, i, j)
    with _fast_codecs():
        _run(_graph(plan, cam, store, sources, set(), options, only), scheduler, workers, progress)
    return failed
