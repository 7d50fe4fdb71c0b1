"""One writer per store: a build id, a writer claim and a lock.

Two builds writing one store would leave shards of both, so:

* A store records the id of the build that created it (``cpmosaic.build_id``,
  kept by ``--resume``); every shard marker carries it.
* The process writing the store records a claim (``0/owner.json``: build id, a
  fresh writer id, host, pid).  Each shard task checks the claim is still its
  own before writing; a build checks it again, and that every marker carries
  its build id, before it marks the store complete.  A second writer that took
  the store over (``--overwrite``) thus stops the first, and a store is never
  marked complete with shards of two builds.
* On a local disk the claim is also held with an OS lock (``flock``) on a file
  beside the store, so a second build of the same output is refused at once.
  Object stores have no locks: there the claim is written, then read back after
  a pause, and the later of two simultaneous claims wins (the other build stops
  before writing a shard or, at the latest, when it finishes).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator

from ..errors import CpmosaicError
from ._zarrio import get_bytes, set_json

__all__ = [
    "OWNER_KEY",
    "StoreInUseError",
    "check_claim",
    "foreign_markers",
    "local_lock",
    "lock_path",
    "new_id",
    "write_claim",
]

#: Key of the writer claim, relative to the group (inside level 0: zarr ignores it there).
OWNER_KEY = "0/owner.json"
#: Pause between writing a claim on an object store and reading it back.
SETTLE_S = 0.5


class StoreInUseError(CpmosaicError, RuntimeError):
    """Another build is writing (or took over) the same store."""


def new_id() -> str:
    """A fresh random id (build or writer)."""
    return uuid.uuid4().hex


def _is_local(store) -> bool:
    return isinstance(store, str) and "://" not in store


def lock_path(store: str) -> str:
    """The lock file of a local store: ``.NAME.cpmosaic-lock`` beside it."""
    p = os.path.abspath(store).rstrip(os.sep)
    return os.path.join(os.path.dirname(p), f".{os.path.basename(p)}.cpmosaic-lock")


@contextlib.contextmanager
def local_lock(store) -> Iterator[None]:
    """Hold the OS lock of a local store meanwhile (nothing for other stores).

    Raises
    ------
    StoreInUseError
        Another process holds it.
    """
    if not _is_local(store):
        yield
        return
    import fcntl

    path = lock_path(store)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreInUseError(f"{store}: another cpmosaic build is writing this store"
                                      + (f" ({holder})" if holder else "")) from None
            raise
        # the holder before us may have removed the file after we opened it: lock the live one
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def write_claim(group, build_id: str, writer: str) -> None:
    """Claim the store for ``writer`` (of build ``build_id``); on object stores wait and
    read it back, so that the later of two simultaneous claims wins."""
    set_json(group.store_path, OWNER_KEY, {"build_id": build_id, "writer": writer, "host": socket.gethostname(),
                                           "pid": os.getpid(), "started": time.time()})
    store = group.store
    fs = getattr(store, "fs", None)
    in_memory = type(store).__name__ == "MemoryStore" or "memory" in str(getattr(fs, "protocol", ""))
    if type(store).__name__ not in ("LocalStore", "LocalRoot") and not in_memory:
        time.sleep(SETTLE_S)
        check_claim(group.store_path, writer, "")


def read_claim(store_path) -> dict | None:
    raw = get_bytes(store_path, OWNER_KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def check_claim(store_path, writer: str, where: str) -> None:
    """Raise :class:`StoreInUseError` unless ``writer`` still holds the claim.

    ``store_path`` is the group's zarr ``StorePath``.
    """
    claim = read_claim(store_path)
    if claim is None or claim.get("writer") != writer:
        who = "the claim was removed" if claim is None else \
            f"build {claim.get('build_id', '?')[:8]} (pid {claim.get('pid')} on {claim.get('host')}) took it over"
        raise StoreInUseError(f"{store_path}: another build is writing this store ({who}); "
                              f"this one stopped{' ' + where if where else ''}")


def foreign_markers(markers: dict, build_id: str | None) -> list:
    """Shards ``(level, i, j)`` whose marker names another build than ``build_id``."""
    return sorted(k for k, m in markers.items() if m.get("build_id") != build_id)
