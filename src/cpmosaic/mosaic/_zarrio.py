"""The few zarr internals a build needs, in one place, pinned to the versions tested.

zarr 3's public API has no synchronous call to write or read one object of a
store (a shard marker, a hand-written metadata document): the stores' methods
are coroutines, run on zarr's own IO loop by ``zarr.core.sync.sync`` (an
fsspec store is bound to that loop, so another loop will not do).  Group
attributes are written as one ``zarr.json`` document instead of through
``Group.update_attributes``, which deep-copies ~150 kB of placements and
encodes them with the pure-Python indenting encoder (~70 ms a write).

:data:`TESTED` is the range these were tested with (``pyproject.toml`` pins the
same, and ``tests/test_mosaic_store.py`` checks each helper against zarr's public
reading API).  :func:`check_zarr` refuses other versions at the start of a build.
"""

from __future__ import annotations

import json
import os
import uuid

import numpy as np

__all__ = ["TESTED", "check_zarr", "delete_key", "delete_prefix", "get_bytes", "list_keys", "local_root", "set_bytes",
           "set_json"]

#: zarr versions the helpers here were tested with: ``>= TESTED[0], < TESTED[1]``.
TESTED = ((3, 1), (3, 5))


def _version(text: str) -> tuple[int, int]:
    parts = []
    for p in text.split(".")[:2]:
        digits = "".join(c for c in p if c.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)  # type: ignore[return-value]


def check_zarr() -> None:
    """Raise ImportError when the installed zarr is outside :data:`TESTED`."""
    import zarr

    v = _version(zarr.__version__)
    if not TESTED[0] <= v < TESTED[1]:
        lo, hi = (".".join(map(str, t)) for t in TESTED)
        raise ImportError(f"cpmosaic mosaic stores need zarr >= {lo}, < {hi} (tested); found {zarr.__version__}")


def _sync(coro):
    from zarr.core.sync import sync

    return sync(coro)


def local_root(store) -> str | None:
    """The folder of a local store: zarr's ``LocalStore`` or a :class:`~.localstore.LocalRoot`
    (None: another store)."""
    root = getattr(store, "root", None)
    if root is None or type(store).__name__ not in ("LocalStore", "LocalRoot"):
        return None
    return os.fspath(root)


def _local_file(store_path, key: str) -> str | None:
    """The file of ``key`` under a ``StorePath`` of a local store (None: another store).

    Small objects of a local store (markers, the writer claim) are read and
    written as files: through zarr each costs a round trip to its IO thread
    (~1 ms on a busy machine, twice per shard).  Written as zarr's local store
    writes them: to a temporary name, then renamed.
    """
    root = local_root(store_path.store)
    if root is None:
        return None
    rel = "/".join(p for p in (store_path.path, key) if p)
    return os.path.join(root, *rel.split("/"))


def set_bytes(store_path, key: str, data: bytes) -> None:
    """Write ``data`` at ``key`` under a zarr ``StorePath``."""
    path = _local_file(store_path, key)
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    from zarr.buffer import default_buffer_prototype

    _sync((store_path / key).set(default_buffer_prototype().buffer.from_bytes(data)))


def get_bytes(store_path, key: str) -> bytes | None:
    """The object at ``key`` under a zarr ``StorePath``, or None."""
    path = _local_file(store_path, key)
    if path is not None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
    raw = _sync((store_path / key).get())
    return None if raw is None else raw.to_bytes()


def delete_key(store_path, key: str) -> None:
    path = _local_file(store_path, key)
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    _sync((store_path / key).delete())


def delete_prefix(store, prefix: str) -> None:
    """Delete every key of ``store`` under ``prefix`` ("" for all)."""
    _sync(store.delete_dir(prefix))


def list_keys(store, prefix: str) -> list[str]:
    """Keys of ``store`` under ``prefix``, sorted (stores list in their own order)."""
    root = local_root(store)
    if root is not None and prefix.endswith("/"):  # a folder's files, as zarr's local store lists them
        folder = os.path.join(root, *prefix.strip("/").split("/"))
        keys = []
        for dirpath, _, names in os.walk(folder):
            rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
            keys += [f"{rel}/{n}" for n in names]
        return sorted(keys)

    async def listing() -> list[str]:
        return [k async for k in store.list_prefix(prefix)]

    return sorted(_sync(listing()))


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


def set_json(store_path, key: str, doc: dict) -> None:
    """Write ``doc`` as compact JSON (the C encoder) at ``key`` under a ``StorePath``."""
    set_bytes(store_path, key, json.dumps(doc, default=_plain, separators=(", ", ": ")).encode())
