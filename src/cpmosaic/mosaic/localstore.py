"""A local store as a build writes it: plain files in the zarr v3 layout, no zarr.

A build of a local path needs from zarr only its layout: the metadata
documents (``zarr.json``, JSON), the shard files (written by :mod:`.shardio`)
and the markers (small files).  Importing zarr and opening its groups and
arrays costs ~0.2 s of a ~2 s whole command, so a build of a local path works
on these stand-ins for zarr's group, array and ``StorePath``; the few things
zarr still does on a local store (reading level k-1 back on a resume, writing a
shard without the direct writer) go to a zarr array opened on first use.

The documents are the ones zarr writes (``tests/test_mosaic_localstore.py``
compares them with zarr's own for every compressor, and reads the stores with
zarr, ome-zarr-py and napari's reader).

>>> level_document((100, 60), (64, 64), (32, 32), [])["codecs"][0]["configuration"]["chunk_shape"]
[32, 32]
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import uuid
from typing import Any

__all__ = ["LocalGroup", "LocalLevel", "LocalPath", "LocalRoot", "empty_folder", "is_local", "level_document",
           "read_document", "wait_for_deletions"]

log = logging.getLogger(__name__)


def is_local(store) -> bool:
    """Whether ``store`` is a local path (not a URL, not a zarr store object)."""
    return isinstance(store, str) and "://" not in store


class LocalRoot:
    """The folder of a local store (as zarr's ``LocalStore``, only its ``root``)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __str__(self) -> str:
        return f"file://{self.root}"

    __repr__ = __str__


class LocalPath:
    """A key prefix in a local store (as zarr's ``StorePath``: ``store``, ``path``, ``/``)."""

    def __init__(self, store: LocalRoot, path: str = "") -> None:
        self.store, self.path = store, path

    def __truediv__(self, other: str) -> LocalPath:
        return LocalPath(self.store, "/".join(p for p in (self.path, other) if p))

    def file(self, key: str = "") -> str:
        rel = "/".join(p for p in (self.path, key) if p)
        return os.path.join(self.store.root, *rel.split("/")) if rel else self.store.root

    def __str__(self) -> str:
        return "/".join(p for p in (str(self.store), self.path) if p)

    __repr__ = __str__


def read_document(path: str) -> dict | None:
    """The JSON document at ``path`` (None: missing or not JSON)."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class _Attributes:
    def __init__(self, doc: dict) -> None:
        self._doc = doc

    def asdict(self) -> dict:
        return dict(self._doc)


class LocalGroup:
    """The root group of a local store: ``store``, ``store_path``, ``attrs``."""

    def __init__(self, root: str) -> None:
        self.store = LocalRoot(os.path.abspath(root))
        self.store_path = LocalPath(self.store)

    @property
    def attrs(self) -> _Attributes:
        doc = read_document(self.store_path.file("zarr.json")) or {}
        return _Attributes(doc.get("attributes") or {})

    @staticmethod
    def exists(root: str) -> bool:
        """Whether a zarr v3 group is at ``root`` (what ``zarr.open_group(root, mode="r")`` accepts)."""
        doc = read_document(os.path.join(root, "zarr.json"))
        return doc is not None and doc.get("zarr_format") == 3 and doc.get("node_type") == "group"


class LocalLevel:
    """One level array of a local store: its geometry from its ``zarr.json``; reading and
    writing pieces (``a[y0:y1, x0:x1]``) through a zarr array opened on first use."""

    def __init__(self, root: str, level: int, mode: str = "r+") -> None:
        self.store_path = LocalPath(LocalRoot(os.path.abspath(root)), str(level))
        self.mode = mode
        doc = read_document(self.store_path.file("zarr.json"))
        try:
            if doc is None or doc.get("node_type") != "array":
                raise ValueError("no array metadata")
            self.shape = tuple(int(v) for v in doc["shape"])
            self.shards = tuple(int(v) for v in doc["chunk_grid"]["configuration"]["chunk_shape"])
            inner = doc["codecs"][0]
            sharded = inner.get("name") == "sharding_indexed"
            self.chunks = tuple(int(v) for v in inner["configuration"]["chunk_shape"]) if sharded else self.shards
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise FileNotFoundError(f"{self.store_path.file('zarr.json')}: not a level array ({exc})") from None
        self._zarr: Any = None

    def _array(self):
        if self._zarr is None:
            import zarr

            from .store import fast_codecs

            with fast_codecs():  # the pipeline an array uses is chosen when it is opened
                self._zarr = zarr.open_array(self.store_path.store.root, path=self.store_path.path, mode=self.mode,
                                             zarr_format=3)
        return self._zarr

    def __getitem__(self, key):
        return self._array()[key]

    def __setitem__(self, key, value) -> None:
        self._array()[key] = value


def level_document(shape: tuple[int, int], shards: tuple[int, int], chunks: tuple[int, int],
                   compressors: list[dict]) -> dict:
    """The ``zarr.json`` of a float32, NaN-filled, sharded level array (as zarr 3 writes it)."""
    return {
        "shape": list(shape), "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shards)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": "NaN",
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": list(chunks),
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, *compressors],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
            "index_location": "end"}}],
        "attributes": {}, "dimension_names": ["y", "x"], "zarr_format": 3, "node_type": "array",
        "storage_transformers": [],
    }


_DELETIONS: list[threading.Thread] = []
_DELETIONS_LOCK = threading.Lock()


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def empty_folder(folder: str) -> None:
    """Empty ``folder``, keeping the folder itself (its permissions, a link to it).

    Deleting the old store of an ``--overwrite`` (its files' cached pages freed
    by the kernel) took 0.1-0.2 s of a ~2 s command on one core while the other
    idled: the entries are moved into a hidden sibling ``.NAME.cpmosaic-trash-ID``
    and deleted on a background thread (:func:`wait_for_deletions` waits for it;
    a build calls it before it returns).  Trash a killed build left is deleted
    with it.  Where the entries cannot be moved (another filesystem, no rights
    on the parent) they are deleted here.
    """
    folder = os.path.abspath(folder).rstrip(os.sep) or os.sep
    parent, name = os.path.split(folder)
    prefix = f".{name}.cpmosaic-trash-"
    try:
        stale = [os.path.join(parent, e) for e in os.listdir(parent) if e.startswith(prefix)]
    except OSError:
        stale = []
    trash = os.path.join(parent, prefix + uuid.uuid4().hex[:12])
    moved = False
    try:
        os.mkdir(trash)
        moved = True
        for entry in os.listdir(folder):
            os.rename(os.path.join(folder, entry), os.path.join(trash, entry))
    except OSError as exc:
        log.debug("%s: deleting the old store in place (%s)", folder, exc)
        for entry in os.listdir(folder):
            _remove(os.path.join(folder, entry))
    doomed = stale + ([trash] if moved else [])
    if not doomed:
        return

    def delete() -> None:
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)

    th = threading.Thread(target=delete, name="cpmosaic-delete-old-store", daemon=True)
    with _DELETIONS_LOCK:
        _DELETIONS.append(th)
    th.start()


def wait_for_deletions() -> None:
    """Wait until the background deletions of :func:`empty_folder` are done."""
    with _DELETIONS_LOCK:
        pending, _DELETIONS[:] = list(_DELETIONS), []
    for th in pending:
        th.join()
