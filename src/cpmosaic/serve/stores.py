"""The stores behind the server: reader, tile grid, caches, files (local or fsspec), statistics.

Nothing here knows HTTP: the ASGI app (:mod:`cpmosaic.serve.app`) turns the exceptions of
this module into status codes (:class:`NotFound` 404, :class:`BadRange` 416,
:class:`~cpmosaic.serve.tiles.BadParameter` 400).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import posixpath
import re
import threading
from pathlib import Path

import numpy as np

from ..mosaic.store import MosaicStore, open_mosaic
from .cache import LRU, ChunkCache
from .geometry import DeepZoom
from .tiles import StoreStyleCache, TileGrid

log = logging.getLogger(__name__)

__all__ = ["ServedStore", "store_names", "NotFound", "BadRange", "parse_range", "STATS_SAMPLE_PIXELS"]

#: Pixels /statistics reads at most per level (a lattice of whole chunks beyond it).
STATS_SAMPLE_PIXELS = 2**22
#: Largest file body sent from a store in one response (zarr shards are a few MB).
MAX_FILE_BYTES = 256 * 2**20


class NotFound(LookupError):
    """No such store, file or point (404)."""


class BadRange(ValueError):
    """A Range header that cannot be satisfied (416)."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


def store_names(locations: list[str]) -> dict[str, str]:
    """``{name: location}``: ``NAME=PATH`` as given, else the folder name without ``.zarr``
    (``-2``, ``-3`` ... appended to repeats).

    >>> store_names(["a/bias.zarr", "flat=b/x.zarr", "s3://bucket/bias.zarr"])
    {'bias': 'a/bias.zarr', 'flat': 'b/x.zarr', 'bias-2': 's3://bucket/bias.zarr'}
    """
    out: dict[str, str] = {}
    for loc in locations:
        name, sep, path = loc.partition("=")
        if not sep or "/" in name or "://" in loc.split("=", 1)[0]:
            path = loc
            name = re.sub(r"\.zarr$", "", Path(loc.rstrip("/")).name) or "mosaic"
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        name = re.sub(r"\.zarr$", "", name) or "mosaic"  # NAME.zarr is the published alias
        base, i = name, 2
        while name in out:
            name, i = f"{base}-{i}", i + 1
        out[name] = path
    return out


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a ``Range: bytes=...`` header, None to send it all.

    Raises :class:`BadRange` for a range that cannot be satisfied (inverted, or past the end),
    ``ValueError`` for one that is not understood (the server ignores it, as RFC 9110 says).

    >>> parse_range("bytes=-20", 100), parse_range("bytes=4-9", 100), parse_range("bytes=90-", 100)
    ((80, 100), (4, 10), (90, 100))
    """
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or m.groups() == ("", ""):
        raise ValueError(f"unsupported Range {header!r}")
    a, b = m.groups()
    if a == "":  # suffix: the last b bytes (zarr's shard index)
        n = int(b)
        if n == 0:
            raise BadRange("Range: a zero-length suffix", size)
        return (max(size - n, 0), size)
    start = int(a)
    if b and int(b) < start:
        raise BadRange(f"Range: last byte {b} before first byte {a}", size)
    if start >= size:
        raise BadRange(f"Range: first byte {start} is past the end ({size} bytes)", size)
    return (start, min(int(b) + 1, size) if b else size)


def _clean_relpath(rel: str) -> str:
    """A store-relative file path, or :class:`NotFound` for anything that could leave the store."""
    if "\x00" in rel or "\\" in rel or rel.startswith("/") or any(ord(c) < 32 for c in rel):
        raise NotFound(f"no file {rel!r}")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise NotFound(f"no file {rel!r}")
    return posixpath.join(*parts)


class ServedStore:
    """One store behind the server: the reader, its tile grid, caches and store-wide display state."""

    def __init__(self, name: str, location: str, storage_options: dict | None = None,
                 chunk_cache_bytes: int = 64 * 2**20) -> None:
        self.name = name
        self.location = location
        self.storage_options = storage_options or {}
        self.m: MosaicStore = open_mosaic(location, storage_options=self.storage_options or None)
        self.grid = TileGrid.for_store(self.m)
        self.styles = StoreStyleCache(self.m)
        self.chunks = ChunkCache(self.m, chunk_cache_bytes)
        self.deepzoom = DeepZoom(self.m.shape(0), self.m.n_levels, self.chunks.read)
        # the ETag prefix: changes when the store's metadata does (a rebuild)
        self.version = hashlib.blake2b(json.dumps(self.m.attrs, sort_keys=True, default=str).encode(),
                                       digest_size=6).hexdigest()
        self._fs = None
        self._root = ""
        self._stats_lock = threading.Lock()
        self._samples: dict[int, tuple[np.ndarray, bool]] = {}
        self.statistics_cache = LRU(4 * 2**20, size=lambda d: len(json.dumps(d)))

    # -- files --------------------------------------------------------------------------------
    def _filesystem(self):
        if self._fs is None:
            import fsspec

            if "://" in self.location:
                fs, root = fsspec.core.url_to_fs(self.location, **self.storage_options)
            else:
                fs, root = fsspec.filesystem("file"), str(Path(self.location).resolve())
            self._fs, self._root = fs, root.rstrip("/")
        return self._fs

    def file_info(self, rel: str) -> tuple[str, int, str]:
        """``(full path, size, etag)`` of a file of the store (:class:`NotFound` if none)."""
        rel = _clean_relpath(rel)
        fs = self._filesystem()
        path = f"{self._root}/{rel}"
        if "://" not in self.location:
            real = Path(path).resolve()
            root = Path(self._root)
            if root not in real.parents or not real.is_file():  # symlinks out of the store too
                raise NotFound(f"no file {rel!r} in store {self.name!r}")
            st = real.stat()
            return str(real), st.st_size, f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        try:
            info = fs.info(path)
        except (FileNotFoundError, OSError, ValueError):
            raise NotFound(f"no file {rel!r} in store {self.name!r}") from None
        if info.get("type") != "file":
            raise NotFound(f"no file {rel!r} in store {self.name!r}")
        tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("created") or ""
        digest = hashlib.blake2b(f"{path}|{info.get('size')}|{tag}".encode(), digest_size=8).hexdigest()
        return path, int(info["size"]), f'"{digest}"'

    def read_file(self, path: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a path from :meth:`file_info` (Range reads on object stores)."""
        if end - start > MAX_FILE_BYTES:
            raise BadRange(f"Range: more than {MAX_FILE_BYTES} bytes at once; ask a smaller range", end)
        if "://" not in self.location:
            with open(path, "rb") as fh:
                fh.seek(start)
                return fh.read(end - start)
        return self._filesystem().cat_file(path, start=start, end=end)

    # -- statistics -----------------------------------------------------------------------------
    def sample(self, k: int) -> tuple[np.ndarray, bool]:
        """Finite values of level ``k``: all of them when the level has at most
        :data:`STATS_SAMPLE_PIXELS` pixels, else a lattice of whole chunks of about that many
        (``(values, exact)``; computed once per level, bounded memory)."""
        with self._stats_lock:
            if k not in self._samples:
                self._samples[k] = self._compute_sample(k)
            return self._samples[k]

    def _compute_sample(self, k: int) -> tuple[np.ndarray, bool]:
        h, w = self.m.shape(k)
        if h * w <= STATS_SAMPLE_PIXELS:
            d = self.m.read(k)
            return d[np.isfinite(d)].astype(np.float32), True
        ch, cw = self.m.levels[k].chunks
        nr, nc = -(-h // ch), -(-w // cw)
        step = max(1, math.ceil(math.sqrt(nr * nc * ch * cw / STATS_SAMPLE_PIXELS)))
        parts = []
        # offset the lattice by half a step so it crosses the middle of the focal plane
        for a in range(step // 2, nr, step):
            for b in range(step // 2, nc, step):
                blk = self.m.read(k, a * ch, (a + 1) * ch, b * cw, (b + 1) * cw)
                parts.append(blk[np.isfinite(blk)])
        return (np.concatenate(parts).astype(np.float32) if parts else np.empty(0, np.float32)), False

    @functools.cached_property
    def summary_bounds(self) -> tuple[float, float, float, float]:
        xmin, xmax, ymin, ymax = self.m.extent_mm(0)
        return (xmin, ymin, xmax, ymax)
