"""The local task runner (no dask): results, dependency order, failures, pieces freed,
and whole builds on every scheduler giving the same store."""

from __future__ import annotations

import gc
import random
import threading
import time
import weakref

import numpy as np
import pytest

from cpmosaic.mosaic import build_mosaic, open_mosaic
from cpmosaic.mosaic.graph import z_order
from cpmosaic.mosaic.runner import Task, run_local, to_delayed
from test_mosaic_build import assert_same_store, camera, inputs  # noqa: F401 - fixtures


class Piece:
    """A weak-referenceable piece (what a shard task hands to the next level)."""

    def __init__(self, value: int) -> None:
        self.value = value


def random_dag(n: int, seed: int) -> list[Task]:
    """Tasks computing ``own + sum(deps' values)``; deps are random earlier tasks."""
    rng = random.Random(seed)
    tasks = []
    for k in range(n):
        deps = tuple(sorted({f"t{rng.randrange(k)}" for _ in range(rng.randrange(4))})) if k else ()

        def f(own, *ins):
            time.sleep(0.001 * (own % 3))
            value = own + sum(p.value for _, p in ins)
            return value, Piece(value)

        tasks.append(Task(f"t{k}", f, (k,), deps=deps, order=rng.random()))
    return tasks


def sequential_values(tasks: list[Task]) -> list[int]:
    """The plain reference: each task's value from its own number and its deps' values."""
    value: dict[str, int] = {}
    for k, t in enumerate(tasks):
        value[t.key] = k + sum(value[d] for d in t.deps)
    return [value[t.key] for t in tasks]


@pytest.mark.parametrize("workers", [1, 2, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_results_match_a_sequential_reference(workers, seed):
    tasks = random_dag(60, seed)
    assert run_local(tasks, workers) == sequential_values(tasks)


def test_each_task_starts_after_its_dependencies_and_at_most_n_run_at_once():
    started, finished, lock = {}, {}, threading.Lock()
    running, most = [0], [0]
    tasks = random_dag(40, 7)
    for t in tasks:
        inner = t.func

        def f(*a, _inner=inner, _key=t.key):
            with lock:
                started[_key] = time.perf_counter()
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                return _inner(*a)
            finally:
                with lock:
                    running[0] -= 1
                    finished[_key] = time.perf_counter()

        t.func = f
    done = []
    run_local(tasks, 3, on_done=lambda t: done.append(t.key))
    assert sorted(done) == sorted(t.key for t in tasks)
    assert most[0] <= 3 and most[0] > 1
    for t in tasks:
        for d in t.deps:
            assert finished[d] <= started[t.key]


def test_first_failure_is_raised_and_nothing_new_starts():
    ran = []

    def ok(k):
        ran.append(k)
        time.sleep(0.01)
        return k, None

    def bad(k):
        raise ValueError(f"task {k} broke")

    tasks = [Task(f"t{k}", bad if k == 3 else ok, (k,), order=k) for k in range(20)]
    with pytest.raises(ValueError, match="task 3 broke"):
        run_local(tasks, 2)
    assert len(ran) < 19  # stopped early: at most the tasks in flight when 3 failed ran on
    with pytest.raises(ValueError, match="task 3 broke"):
        run_local(tasks, 1)


def test_pieces_are_dropped_once_every_dependent_has_them():
    refs: dict[str, weakref.ref] = {}

    def make(k):
        p = Piece(k)
        refs[f"a{k}"] = weakref.ref(p)
        return k, p

    def take(k, *ins):
        return k + sum(p.value for _, p in ins), None

    def check(names, *ins):
        gc.collect()
        return [refs[n]() is None for n in names], None

    tasks = [Task(f"a{k}", make, (k,), order=k) for k in range(4)]
    tasks += [Task("b", take, (10,), deps=("a0", "a1")), Task("c", take, (20,), deps=("a1", "a2"))]
    tasks += [Task("d", check, (["a0", "a1", "a2"],), deps=("b", "c"))]
    for workers in (1, 2):
        out = run_local(tasks, workers)
        assert out[4] == 11 and out[5] == 23
        assert out[6] == [True, True, True]  # a3 has no dependent: dropped at once too


def test_dependencies_must_come_first():
    with pytest.raises(ValueError, match="not an earlier task"):
        run_local([Task("b", lambda x: (x, None), (), deps=("a",)), Task("a", lambda: (1, None), ())])


def test_dask_runs_the_same_tasks():
    dask = pytest.importorskip("dask")
    tasks = random_dag(30, 3)
    got = dask.compute(*to_delayed(tasks), scheduler="sync")
    assert list(got) == sequential_values(tasks)


def test_z_order_visits_each_2x2_block_together():
    cells = sorted(((i, j) for i in range(8) for j in range(8)), key=lambda c: z_order(*c))
    for n in range(0, 64, 4):
        assert len({(i // 2, j // 2) for i, j in cells[n:n + 4]}) == 1


@pytest.mark.parametrize("scheduler", ["sync", "processes"])
def test_every_scheduler_builds_the_same_store(inputs, camera, tmp_path, scheduler):  # noqa: F811
    kw = dict(camera=camera, binning=5, chunk=32, shard=(64, 64), progress=False)
    build_mosaic([inputs], tmp_path / "threads.zarr", num_workers=3, **kw)
    build_mosaic([inputs], tmp_path / "other.zarr", scheduler=scheduler, num_workers=2, **kw)
    assert_same_store(tmp_path / "threads.zarr", tmp_path / "other.zarr")
    assert np.isfinite(open_mosaic(tmp_path / "threads.zarr").read(0)).any()
