"""A build's shard tasks, and running them on local threads without dask.

A build's graph (:mod:`.graph`) is a list of :class:`Task`, each task after
the tasks it depends on.  A task runs as ``func(*args, *outputs of deps)``
and returns ``(result, piece)``: the small result the build collects and the
piece its dependents take (see :mod:`.tasks`).

:func:`run_local` runs the list on a pool of threads (the kernels and the
codecs release the GIL): the default scheduler of a build, which thus imports
no dask at all (dask's threaded scheduler costs ~0.1 s of imports, and its
graph as much again, in a command that takes ~2 s).  :func:`to_delayed` turns
the same list into dask delayed objects for dask's process scheduler and for
dask.distributed.

Order: a task whose dependencies are done runs before a task without
dependencies starts (the halved pieces it takes are then freed at once), and
tasks without dependencies start in their ``order`` (the graph gives level-0
shards a Z order, so the four shards under a level-1 shard finish close
together).

>>> from operator import add
>>> tasks = [Task("a", lambda: (1, 10), ()), Task("b", lambda: (2, 20), ()),
...          Task("c", lambda x, pa, pb: (x + pa[1] + pb[1], None), (3,), deps=("a", "b"))]
>>> run_local(tasks, num_workers=2)
[1, 2, 33]
"""

from __future__ import annotations

import heapq
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Task", "run_local", "to_delayed"]


@dataclass(eq=False)
class Task:
    """One task: ``func(*args, *[output of d for d in deps])``, named ``key``."""

    key: str
    func: Callable
    args: tuple
    deps: tuple[str, ...] = ()
    order: Any = 0


def _plan(tasks: list[Task]) -> tuple[list[list[int]], list[int]]:
    """Dependents of each task (by index) and how many dependencies each waits for."""
    index = {t.key: n for n, t in enumerate(tasks)}
    dependents: list[list[int]] = [[] for _ in tasks]
    for n, t in enumerate(tasks):
        for d in t.deps:
            if index.get(d, n) >= n:
                raise ValueError(f"task {t.key!r} depends on {d!r}, which is not an earlier task")
            dependents[index[d]].append(n)
    return dependents, [len(t.deps) for t in tasks]


def run_local(tasks: list[Task], num_workers: int = 1, on_done: Callable[[Task], None] | None = None) -> list:
    """Run ``tasks`` on ``num_workers`` threads (1: in this thread); each task's result, in order.

    The first task to raise stops the run: tasks already running finish, no
    other starts, and its exception is raised here.  ``on_done(task)`` is
    called in this thread after each task.
    """
    dependents, waiting = _plan(tasks)
    index = {t.key: n for n, t in enumerate(tasks)}
    outputs: dict[int, Any] = {}  # pieces not yet taken by every dependent
    uses = [len(d) for d in dependents]
    results: list = [None] * len(tasks)
    fresh = [(t.order, n) for n, t in enumerate(tasks) if not t.deps]
    heapq.heapify(fresh)
    ready: list[int] = []  # tasks whose dependencies are done (a stack: depth first)

    def start_args(n: int) -> tuple:
        t = tasks[n]
        return (*t.args, *(outputs[index[d]] for d in t.deps))

    def finish(n: int, output) -> None:
        results[n] = output[0]
        outputs[n] = output
        for d in tasks[n].deps:  # its inputs are taken: drop those no one else waits for
            m = index[d]
            uses[m] -= 1
            if uses[m] == 0:
                del outputs[m]
        if not uses[n]:
            del outputs[n]
        for m in dependents[n]:
            waiting[m] -= 1
            if waiting[m] == 0:
                ready.append(m)
        if on_done is not None:
            on_done(tasks[n])

    def next_task() -> int | None:
        if ready:
            return ready.pop()
        return heapq.heappop(fresh)[1] if fresh else None

    if num_workers <= 1:
        while (n := next_task()) is not None:
            finish(n, tasks[n].func(*start_args(n)))
        return results

    done: queue.SimpleQueue = queue.SimpleQueue()

    def work(n: int, args: tuple) -> None:
        try:
            done.put((n, tasks[n].func(*args), None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            done.put((n, None, exc))

    running = 0
    error: BaseException | None = None
    threads: list[threading.Thread] = []
    jobs: queue.SimpleQueue = queue.SimpleQueue()

    def worker() -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            work(*job)
            del job  # not held while waiting for the next: its pieces may go

    try:
        while True:
            while error is None and running < num_workers and (n := next_task()) is not None:
                if len(threads) < num_workers:
                    threads.append(threading.Thread(target=worker, name=f"cpmosaic-build-{len(threads)}",
                                                    daemon=True))
                    threads[-1].start()
                jobs.put((n, start_args(n)))
                running += 1
            if not running:
                break
            n, output, exc = done.get()
            running -= 1
            if exc is not None:
                error = error or exc
            elif error is None:
                finish(n, output)
    except BaseException as exc:  # an interrupt in this thread: let the running tasks end first
        error = error or exc
        while running:
            done.get()
            running -= 1
    finally:
        for _ in threads:
            jobs.put(None)
        for th in threads:
            th.join()
    if error is not None:
        raise error
    if any(waiting):  # cannot happen with tasks in dependency order; never return a short list
        raise RuntimeError("some tasks never became ready")
    return results


def to_delayed(tasks: list[Task]) -> list:
    """The tasks' results as dask delayed objects (for dask's process scheduler and dask.distributed).

    An :class:`~.tasks.Opaque` argument that several tasks share (the camera)
    becomes one node of the dask graph, so that a cluster sends it once.
    """
    from dask.delayed import delayed

    from .tasks import Opaque, result_of

    seen: dict[int, int] = {}
    for t in tasks:
        for a in t.args:
            seen[id(a)] = seen.get(id(a), 0) + 1
    shared: dict[int, Any] = {}
    nodes: dict[str, Any] = {}
    out = []
    for t in tasks:
        args = []
        for a in t.args:
            if isinstance(a, Opaque) and seen[id(a)] > 1:
                if id(a) not in shared:
                    shared[id(a)] = delayed(a, pure=True, name=f"cpmosaic-shared-{len(shared)}-{t.key}")
                args.append(shared[id(a)])
            else:
                args.append(a)
        node = delayed(t.func, pure=False)(*args, *(nodes[d] for d in t.deps), dask_key_name=t.key)
        nodes[t.key] = node
        out.append(delayed(result_of, pure=True)(node, dask_key_name=f"cpmosaic-result-{t.key}"))
    return out
