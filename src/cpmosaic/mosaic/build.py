"""Build a mosaic store: the steps of :func:`build_mosaic`.

1. Validate every option (scheduler, compressor, binning, chunk) and identify
   the inputs, before anything is written.
2. Claim the output (:mod:`.owner`: an OS lock on a local disk, a writer claim
   in the store) and create (or reopen, ``resume``) the store with its
   metadata (:func:`.store.prepare_store`).  A start that fails removes what it
   created.
3. Run one task per shard (:mod:`.tasks`, :mod:`.graph`, :mod:`.schedule`);
   detectors that fail to read are left empty and the shards they touched redone.
4. Check the store holds only this build's shards and is still claimed by it,
   then write the display windows and ``complete``.

Memory stays flat in the detector count (see :mod:`.tasks`); glibc's allocator
is tuned for the build and put back when it returns (:mod:`._memory`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from ..camera import Camera
from ..io.cache import EXPOSURES, ReadOptions
from ._memory import big_blocks_mapped
from ._startup import load_numba_target, startup_done
from ._zarrio import check_zarr
from .localstore import is_local, wait_for_deletions
from .graph import build_graph, level_box
from .inputs import InputSet, find_inputs
from .owner import (
    SETTLE_S,
    StoreInUseError,
    check_claim,
    foreign_markers,
    local_lock,
    new_id,
    write_claim,
)
from .plan import DEFAULT_CHUNK, DEFAULT_SHARD_BYTES, MosaicPlan, OptionError, make_plan
from .schedule import Scheduler, parse_scheduler, run_graph
from .store import (
    DEFAULT_COMPRESSOR,
    FORMAT_VERSION,
    compact_json,
    compressor_codecs,
    delete_marker,
    fast_codecs,
    forget_levels,
    merge_windows,
    ome_attributes,
    prepare_store,
    read_markers,
    remove_store,
    write_group_attributes,
)
from .tasks import READ_BAND_BYTES

log = logging.getLogger(__name__)

__all__ = ["BuildReport", "build_mosaic"]

#: Memory the local scheduler's workers may use together, by default.
DEFAULT_MEMORY_BUDGET = 3 * 2**29  # 1.5 GiB


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


def default_workers(plan: MosaicPlan, memory_budget: int) -> int:
    """Local threads that fit ``memory_budget`` (at most the CPU count)."""
    per_shard = max(lv.shards[0] * lv.shards[1] * 4 for lv in plan.levels)
    per_task = 3 * per_shard + 2 * READ_BAND_BYTES  # shard buffer, its encoded copy, a band of rows
    return max(1, min(os.cpu_count() or 1, memory_budget // per_task))


def _store_spec(store, storage_options: dict | None = None):
    spec = os.fspath(store) if isinstance(store, os.PathLike) else store
    if isinstance(spec, str) and "://" not in spec:
        spec = os.path.abspath(spec)  # workers of a cluster may run elsewhere
    elif isinstance(spec, str):
        _check_reachable(spec, storage_options)
        if storage_options:
            # the options travel inside the store object (it pickles with its filesystem),
            # so every task and every worker of a cluster opens the URL with them
            from zarr.storage import FsspecStore

            spec = FsspecStore.from_url(spec, storage_options=storage_options, read_only=False)
    return spec


def _check_reachable(url: str, storage_options: dict | None) -> None:
    """Ask the object store about ``url`` once, so that a wrong endpoint, credentials or
    option fails here with one line (zarr would take "no answer" for "no store yet")."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        fs.exists(root)
    except Exception as exc:  # noqa: BLE001 - each filesystem raises its own types
        raise InputError(url, f"cannot reach the store ({type(exc).__name__}: {exc}); "
                              "check the storage options") from exc


class DiskFullError(InputError, OSError):
    """The output ran out of space (the error names the store)."""


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def build_mosaic(
    inputs: str | os.PathLike | Iterable[str | os.PathLike] | InputSet,
    store: str | os.PathLike | Any,
    *,
    camera: Camera | str | os.PathLike | None = None,
    binning: int = 1,
    scheduler: str | Any | None = None,
    resume: bool = False,
    overwrite: bool = False,
    overscan: str = "median",
    apply_gains: bool = False,
    chunk: int = DEFAULT_CHUNK,
    shard: tuple[int, int] | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    compressor: str | None = None,
    num_workers: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    name: str | None = None,
    progress: bool | None = None,
    storage_options: dict | None = None,
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
        None or ``"threads"`` (local threads), ``"sync"``, ``"processes"``, a
        ``tcp://`` address or a ``distributed.Client`` (see :mod:`.schedule`).
    resume
        Finish an interrupted build: only shards without a marker are made.
    overwrite
        Replace an existing store.
    overscan, apply_gains
        Raw-file options passed to :func:`cpmosaic.io.open_exposure`.
    chunk, shard, shard_bytes
        Chunk (tile) size, shard shape or shard byte budget (see :func:`make_plan`).
    compressor
        ``"blosc-lz4-bitshuffle"`` (:data:`~cpmosaic.mosaic.store.DEFAULT_COMPRESSOR`,
        for a new store; a resumed store keeps its own), ``"blosc-lz4"``,
        ``"zstd"``/``"zstd-LEVEL"``, ``"none"`` and more
        (:func:`~cpmosaic.mosaic.store.parse_compressor`).
    num_workers, memory_budget
        Local threads (default: as many as fit ``memory_budget``).
    name
        Image name in the OME metadata (default: the exposure id or camera name).
    progress
        Show a progress bar (None: when stderr is a terminal).
    storage_options
        fsspec options of an output URL (``s3://...``), e.g.
        ``{"endpoint_url": "http://host:9000", "key": "...", "secret": "..."}``.

    Returns
    -------
    BuildReport

    Raises
    ------
    OptionError
        A bad option (a ValueError naming it and its value); nothing is written.
    InputError
        No usable input, or the store exists (without ``resume``/``overwrite``,
        :class:`~cpmosaic.mosaic.store.StoreExistsError`), or cannot be resumed.
    StoreInUseError
        Another build is writing the same store (:mod:`cpmosaic.mosaic.owner`).
    SchedulerError
        The dask.distributed scheduler cannot be reached (nothing is written).
    DiskFullError
        The output ran out of space (names the store).
    MixedCamerasError
        Inputs from more than one camera.

    Examples
    --------
    >>> build_mosaic(["visit/"], "visit.zarr", binning=8, compressor="zstd-99")  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    cpmosaic.mosaic.plan.OptionError: compressor 'zstd-99': zstd levels are 1..22
    """
    if not is_local(os.fspath(store) if isinstance(store, os.PathLike) else store):
        check_zarr()  # a local path is written without zarr (.localstore)
    sched = parse_scheduler(scheduler)
    codecs = compressor_codecs(compressor or DEFAULT_COMPRESSOR)
    if overscan not in ("median", "mean", "single", "none"):
        raise OptionError(f"overscan {overscan!r} is not one of median, mean, single, none")
    if num_workers is not None and num_workers < 1:
        raise OptionError(f"num_workers must be >= 1, got {num_workers}")
    if resume and overwrite:
        raise OptionError("resume and overwrite exclude each other")
    options = ReadOptions(overscan, bool(apply_gains))
    if sched.local:
        load_numba_target()  # before the first kernel: see cpmosaic.mosaic._startup
    inputs = inputs if isinstance(inputs, InputSet) else find_inputs(inputs, camera)
    try:
        cam = inputs.camera
        plan = make_plan(cam, binning, chunk=chunk, shard=shard, shard_bytes=shard_bytes)
        store_spec = _store_spec(store, storage_options)
        # messages name the path or URL, not the repr of the store object the options made
        label = store if isinstance(store, str) and not isinstance(store_spec, str) else str(store_spec)
        sched.connect()
    except BaseException:
        inputs.close()
        raise
    try:
        with big_blocks_mapped(), local_lock(store_spec):
            report = _build(inputs, plan, store_spec, sched, codecs, compressor, options, resume, overwrite,
                            num_workers or default_workers(plan, memory_budget), name, progress)
        report.store = label
        return report
    except OSError as exc:
        if _disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(label, f"no space left on the device ({exc.strerror}); "
                                       "the store is incomplete") from exc
        raise
    finally:
        inputs.close()
        sched.close()
        wait_for_deletions()  # an overwritten store's old files (localstore.empty_folder)


def _build(inputs: InputSet, plan: MosaicPlan, store, sched: Scheduler, codecs: list, compressor: str | None,
           options: ReadOptions, resume: bool, overwrite: bool, workers: int, name, progress) -> BuildReport:
    cam = inputs.camera
    exposures = sorted({i.exposure for i in inputs.files.values() if i.exposure is not None})
    name = name or (f"{cam.name} {exposures[0]}" if len(exposures) == 1 else cam.name)
    attrs = {
        "format_version": FORMAT_VERSION, "name": name, **plan.to_dict(),
        "build": {**options.to_dict(), "compressor": compressor}, "build_id": new_id(),
        "inputs": _input_records(inputs), "bad_inputs": inputs.bad, "skipped_inputs": inputs.skipped,
        "missing": _missing(plan, inputs, []), "failed": [], "windows": None, "complete": False,
    }
    writer = new_id()
    forget_levels()  # a store at this address may have been rebuilt since it was last opened here
    created = False
    try:
        with compact_json():
            group, attrs, created = prepare_store(store, plan, attrs, codecs, resume, overwrite)
        write_claim(group, attrs["build_id"], writer)
    except BaseException as exc:
        if created:  # a failed start leaves nothing behind
            remove_store(store)
        if _disk_full(exc):
            raise DiskFullError(str(store), f"no space left on the device while creating the store "
                                            f"({getattr(exc, 'strerror', exc)}); nothing was left there") from exc
        raise
    build_id = attrs["build_id"]
    failed = list(attrs.get("failed", [])) if resume else []
    attrs["failed"] = failed
    sources = {d: os.path.abspath(info.path) for d, info in inputs.files.items()}
    for f in failed:
        sources.pop(f["id"], None)
    done = set(read_markers(group, plan)) if resume else set()
    total = sum(lv.n_shards[0] * lv.n_shards[1] for lv in plan.levels)
    log.info("mosaic of %d detectors, binning %d: %d levels, level 0 %s, %d shards (%d done), %s",
             len(sources), plan.binning, plan.n_levels, plan.shape, total, len(done),
             f"{workers} threads" if sched.local else f"scheduler {sched.describe()}")
    locked = sched.local and isinstance(store, str) and "://" not in store  # the OS lock is ours
    graph = build_graph(plan, cam, store, sources, done, options, build_id=build_id, writer=writer, locked=locked)
    _adopt(inputs, cam, options, local=sched.local)
    startup_done()
    with fast_codecs(), _taken_over_says_so(group, writer):
        results = run_graph(graph, sched, workers, progress)
    new_failed = [f for r in results for f in r["failures"]]
    if new_failed:
        failed = _repair(group, plan, cam, store, sources, options, failed, new_failed, attrs, sched, workers,
                         progress, writer)
    markers = _own_markers(group, plan, cam, store, sources, options, build_id, writer, sched, workers, progress)
    windows = [merge_windows([m for (k, _, _), m in markers.items() if k == lv.level]) for lv in plan.levels]
    attrs.update({"failed": failed, "missing": _missing(plan, inputs, failed), "windows": windows, "complete": True})
    with compact_json():
        write_group_attributes(group, {"ome": ome_attributes(plan, name, windows[0]), "cpmosaic": attrs})
    report = BuildReport(str(store), plan, len(plan.placements) - len(attrs["missing"]),
                         attrs["missing"], inputs.bad, failed, len(results), len(done))
    if report.partial:
        log.warning("built with problems: %d bad input(s), %d detector(s) failed to read",
                    len(inputs.bad), len(failed))
    return report


@contextlib.contextmanager
def _taken_over_says_so(group, writer: str):
    """A task failing because another build took the store over (and rewrote or removed
    what this one expected) raises :class:`StoreInUseError`, not the error it met."""
    try:
        yield
    except StoreInUseError:
        raise
    except Exception as exc:
        try:
            check_claim(group.store_path, writer, f"(a task failed: {type(exc).__name__}: {exc})")
        except StoreInUseError as taken:
            raise taken from exc
        except Exception:  # noqa: BLE001 - the claim cannot be read: report the first error
            pass
        raise


def _own_markers(group, plan, cam, store, sources, options, build_id, writer, sched, workers, progress) -> dict:
    """The store's markers, once every shard is this build's and the store still its own.

    Shards another build wrote (writes of a writer this one took the store from,
    in flight when it did) are made again, once, after a pause for such writes
    to land; if any is still another build's, the store is left incomplete.
    """
    markers = read_markers(group, plan)
    check_claim(group.store_path, writer, "before marking the store complete")
    foreign = foreign_markers(markers, build_id)
    if not foreign:
        return markers
    log.warning("%s: %d shard(s) were written by another build meanwhile; making them again", store, len(foreign))
    time.sleep(SETTLE_S)
    only: dict[int, set] = {}
    for k, i, j in foreign:
        only.setdefault(k, set()).add((i, j))
    with fast_codecs():
        run_graph(build_graph(plan, cam, store, sources, set(), options, build_id=build_id, writer=writer,
                              only=only), sched, workers, progress)
    markers = read_markers(group, plan)
    check_claim(group.store_path, writer, "before marking the store complete")
    foreign = foreign_markers(markers, build_id)
    if foreign:
        raise StoreInUseError(f"{store}: {len(foreign)} shard(s) (first: level {foreign[0][0]}, shard "
                              f"{foreign[0][1]},{foreign[0][2]}) were written by another build; the store is "
                              "left incomplete")
    return markers


def _adopt(inputs: InputSet, cam, options: ReadOptions, local: bool) -> None:
    """Hand the files :func:`find_inputs` left open to the local tasks (no second header parse)."""
    opened, inputs.opened = inputs.opened, {}
    for path, exp in opened.items():
        if not (local and EXPOSURES.adopt(path, exp, cam, options)):
            exp.close()


def _repair(group, plan, cam, store, sources, options, failed, new_failed, attrs, sched, workers, progress,
            writer):
    """Rebuild every shard a failed detector touched, without that detector (it stays NaN)."""
    by_id = {f["id"]: f for f in new_failed}
    failed = failed + [by_id[i] for i in sorted(by_id)]
    for f in by_id.values():
        log.warning("%s (%s): %s; it stays empty", f["name"], f["path"], f["reason"])
        sources.pop(f["id"], None)
    only: dict[int, set] = {}
    for lv in plan.levels:
        for det_id in by_id:
            y0, y1, x0, x1 = level_box(plan.placement(det_id).box, lv.level)
            sh, sw = lv.shards
            for i in range(y0 // sh, -(-y1 // sh)):
                for j in range(x0 // sw, -(-x1 // sw)):
                    only.setdefault(lv.level, set()).add((i, j))
    # Record the failure and forget the affected shards first, so a kill here resumes correctly.
    attrs["failed"] = failed
    check_claim(group.store_path, writer, "before recording failed detectors")
    with compact_json():
        write_group_attributes(group, {"ome": ome_attributes(plan, attrs["name"]), "cpmosaic": attrs})
    for k, cells in only.items():
        for i, j in cells:
            delete_marker(group, k, i, j)
    with fast_codecs():
        run_graph(build_graph(plan, cam, store, sources, set(), options, build_id=attrs["build_id"], writer=writer,
                              only=only), sched, workers, progress)
    return failed
