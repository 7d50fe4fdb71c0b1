"""Running a build's graph: the schedulers a build accepts, validated at the door.

>>> parse_scheduler(None).name, parse_scheduler("Threads").name
('threads', 'threads')
>>> parse_scheduler("Thredas")
Traceback (most recent call last):
...
cpmosaic.mosaic.plan.OptionError: scheduler 'Thredas' is not one of threads, sync, processes, ...

The default local scheduler (``threads``, and ``sync``) runs the tasks on
our own threads (:func:`.runner.run_local`) and imports no dask.  dask runs
``processes`` (handed its scheduler as a function, so that dask does not look
for a distributed client, which imports ``distributed``, ~0.5 s); ``distributed``
is imported only for an address or a client.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from .. import progress as _progress
from ..errors import CpmosaicError
from ..io.cache import EXPOSURES
from ._memory import restore_allocator, use_mmap_for_big_blocks
from .graph import TASK_PREFIX
from .plan import OptionError
from .runner import run_local, to_delayed
from .store import forget_levels
from .tasks import forget_buffers

log = logging.getLogger(__name__)

__all__ = ["SCHEDULERS", "Scheduler", "SchedulerError", "parse_scheduler", "run_graph"]

#: Local scheduler names (any case) -> ``module:function`` of dask's scheduler, or
#: None: our own threads (:func:`.runner.run_local`).
SCHEDULERS: dict[str, str | None] = {
    "threads": None,
    "threading": None,
    "sync": None,
    "synchronous": None,
    "single-threaded": None,
    "processes": "dask.multiprocessing:get",
}
_CANONICAL = {"threading": "threads", "synchronous": "sync", "single-threaded": "sync"}
_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc|ws|wss)://\S+$")
#: Seconds to wait for a dask.distributed scheduler before giving up.
CONNECT_TIMEOUT = "10s"


class SchedulerError(CpmosaicError, ConnectionError):
    """A dask.distributed scheduler could not be reached."""


@dataclass
class Scheduler:
    """A validated scheduler: ``name`` (a local one), ``address`` or ``client``."""

    name: str | None = None
    address: str | None = None
    client: Any = None
    own_client: bool = False

    @property
    def local(self) -> bool:
        return self.name is not None

    def describe(self) -> str:
        return self.name or self.address or "a distributed.Client"

    def connect(self) -> None:
        """Connect to an address (before the store is created: a failed start leaves nothing)."""
        if self.address is None or self.client is not None:
            return
        from distributed import Client

        try:
            self.client = Client(self.address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise SchedulerError(f"cannot reach the dask scheduler at {self.address} ({type(exc).__name__}: "
                                 f"{exc})") from None
        self.own_client = True

    def close(self) -> None:
        if self.own_client and self.client is not None:
            self.client.close()
            self.client, self.own_client = None, False

    def get(self):
        """The dask scheduler function of a local scheduler (None: :func:`.runner.run_local`)."""
        spec = SCHEDULERS[self.name]
        if spec is None:
            return None
        module, func = spec.split(":")
        return getattr(importlib.import_module(module), func)


def parse_scheduler(scheduler) -> Scheduler:
    """Validate a ``scheduler`` argument of :func:`~cpmosaic.mosaic.build_mosaic`.

    None means ``"threads"``; names are case-insensitive.
    """
    if scheduler is None:
        return Scheduler(name="threads")
    if isinstance(scheduler, str):
        text = scheduler.strip()
        low = text.lower()
        if low in SCHEDULERS:
            return Scheduler(name=_CANONICAL.get(low, low))
        if _ADDRESS.match(text):
            return Scheduler(address=text)
        raise OptionError(f"scheduler {scheduler!r} is not one of threads, sync, processes, a dask.distributed "
                          "address (tcp://HOST:PORT) or a distributed.Client")
    if type(scheduler).__name__ == "Client" and hasattr(scheduler, "compute"):
        return Scheduler(client=scheduler)
    raise OptionError(f"scheduler {scheduler!r} is not a scheduler name, address or distributed.Client")


def forget_build_state() -> None:
    """Close cached input files, drop cached level arrays and scratch buffers (end of a
    build, on every worker)."""
    EXPOSURES.clear()
    forget_levels()
    forget_buffers()


def _worker_end() -> None:
    forget_build_state()
    restore_allocator()


def run_graph(graph: tuple, scheduler: Scheduler, num_workers: int, show_progress: bool | None) -> list[dict]:
    """Run the tasks (:func:`.graph.build_graph`) locally or on a dask.distributed cluster,
    counting shards; the tasks' results in order."""
    tasks, uses = graph
    if not tasks:
        return []
    with _progress.bar(len(tasks), desc="shards", progress=show_progress, unit="shard") as bar:
        if not scheduler.local:
            from distributed import as_completed

            client = scheduler.client
            client.run(use_mmap_for_big_blocks)
            futures = client.compute(to_delayed(tasks))
            try:
                for _ in as_completed(futures):
                    bar.update(1)
                return client.gather(futures)
            finally:
                client.run(_worker_end)
        EXPOSURES.expect(uses)  # files close after their last read
        try:
            get = scheduler.get()
            if get is None:
                return run_local(tasks, 1 if scheduler.name == "sync" else num_workers, lambda t: bar.update(1))
            import dask
            from dask.callbacks import Callback

            def posttask(key, result, dsk, state, worker_id):
                if str(key).startswith(TASK_PREFIX):
                    bar.update(1)

            with Callback(posttask=posttask):
                return list(dask.compute(*to_delayed(tasks), scheduler=get, num_workers=num_workers))
        finally:
            forget_build_state()
