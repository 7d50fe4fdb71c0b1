"""The task graph of a mosaic build: which shard task needs which.

Level-0 tasks read detectors; each task of level k > 0 takes the halved pieces
its level k-1 shard tasks hand over (in memory), and reads back
the level k-1 shards that have no task in this run (done before a resume, or
outside a repair).  Shards without data get no task: readers get the fill value.
"""

from __future__ import annotations

import uuid
from collections import Counter

from .plan import MosaicPlan
from .specs import Level0Spec, PyramidSpec, ReadOptions, ShardKey, Source
from .runner import Task
from .tasks import Opaque, level0_task, pyramid_task, read_bands

__all__ = ["TASK_PREFIX", "build_graph", "level_box", "z_order"]

#: Keys of shard tasks start with this (progress counts them).
TASK_PREFIX = "cpmosaic-shard"


def z_order(i: int, j: int) -> int:
    """Position of shard ``(i, j)`` on the Z curve (bits of ``i`` and ``j`` interleaved).

    >>> [z_order(i, j) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1), (0, 2))]
    [0, 1, 2, 3, 4]
    """
    z = 0
    for bit in range(max(i.bit_length(), j.bit_length())):
        z |= ((j >> bit) & 1) << (2 * bit) | ((i >> bit) & 1) << (2 * bit + 1)
    return z


def level_box(box0: tuple[int, int, int, int], level: int) -> tuple[int, int, int, int]:
    """A level-0 box in the pixels of ``level`` (grown to whole pixels)."""
    f = 2**level
    return (box0[0] // f, -(-box0[1] // f), box0[2] // f, -(-box0[3] // f))


def _data_box(plan: MosaicPlan, sources: dict, level: int, region: tuple[int, int, int, int]):
    """Bounding box (even-aligned, inside ``region`` of ``level``) of the detectors with data, or None."""
    hits = []
    for p in plan.placements:
        if p.id not in sources:
            continue
        b = level_box(p.box, level)
        y0, y1 = max(b[0], region[0]), min(b[1], region[1])
        x0, x1 = max(b[2], region[2]), min(b[3], region[3])
        if y0 < y1 and x0 < x1:
            hits.append((y0, y1, x0, x1))
    if not hits:
        return None
    y0, x0 = min(h[0] for h in hits), min(h[2] for h in hits)
    # region starts are even; even starts keep the 2x2 blocks of the whole level
    return (y0 - y0 % 2, max(h[1] for h in hits), x0 - x0 % 2, max(h[3] for h in hits))


def _placements_by_shard_row(plan: MosaicPlan) -> dict[int, list]:
    """Level-0 placements per shard row (a shard's candidates, in plan order)."""
    sh = plan.levels[0].shards[0]
    rows: dict[int, list] = {}
    for p in plan.placements:
        for i in range(p.box[0] // sh, -(-p.box[1] // sh)):
            rows.setdefault(i, []).append(p)
    return rows


def build_graph(plan: MosaicPlan, camera, store, sources: dict, done: set, options: ReadOptions, *,
                build_id: str, writer: str, locked: bool = False, only: dict | None = None) -> tuple[list, dict]:
    """Tasks of every shard not in ``done`` (``only``: per level, the shard set to run).

    Returns ``(tasks, uses)``: the :class:`~.runner.Task` list (each after the
    tasks it takes pieces from), ``uses`` the number of reads (bands) of each
    input file.  Each shard's task returns ``(result, halved piece)``.
    """
    token = uuid.uuid4().hex[:8]
    cam = Opaque(camera)  # one object: dask (runner.to_delayed) sends it once
    tasks: dict[tuple[int, int, int], Task] = {}
    empty: set = set()  # shards without data (no task, nothing in the store)
    uses: Counter = Counter()
    last = plan.levels[-1].level
    by_row = _placements_by_shard_row(plan)
    for lv in plan.levels:
        k = lv.level
        for i, j in lv.iter_shards():
            if (k, i, j) in done or (only is not None and (i, j) not in only.get(k, ())):
                continue
            box = lv.shard_box(i, j)
            name = f"{TASK_PREFIX}-{k}-{i}-{j}-{token}"
            key = ShardKey(k, i, j)
            if k == 0:
                srcs = [Source(p, sources[p.id]) for p in by_row.get(i, ()) if p.id in sources and p.overlap(box)]
                if srcs:  # shard rows start at different detectors so that threads seldom share a file
                    srcs = srcs[i % len(srcs):] + srcs[:i % len(srcs)]
                if not srcs and only is None:
                    empty.add((k, i, j))
                    continue  # nothing to write: readers get the fill value (NaN)
                for s in srcs:
                    uses[s.path] += len(read_bands(s.placement, box, plan.binning)[0])
                spec0 = Level0Spec(key, box, plan.binning, tuple(srcs), options, clear=only is not None,
                                   halve=k < last, build_id=build_id, writer=writer, locked=locked)
                tasks[(k, i, j)] = Task(name, level0_task, (cam, store, Opaque(spec0)), order=z_order(i, j))
                continue
            prev = plan.levels[k - 1]
            sy0, sy1, sx0, sx1 = 2 * box[0], 2 * box[1], 2 * box[2], 2 * box[3]
            ph, pw = prev.shards
            children = [(a, c) for a in range(sy0 // ph, min(-(-sy1 // ph), prev.n_shards[0]))
                        for c in range(sx0 // pw, min(-(-sx1 // pw), prev.n_shards[1]))]
            deps = tuple(tasks[(k - 1, a, c)].key for a, c in children if (k - 1, a, c) in tasks)
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
            spec = PyramidSpec(key, box, data_box, tuple(read_back), clear=only is not None, halve=k < last,
                               build_id=build_id, writer=writer, locked=locked)
            tasks[(k, i, j)] = Task(name, pyramid_task, (store, Opaque(spec)), deps=deps, order=z_order(i, j))
    return list(tasks.values()), dict(uses)
