"""Bounded caches of the tile service: rendered bytes and decoded chunk blocks.

Both are byte-bounded LRUs, safe to share between the server's threads.  The chunk cache
keeps decoded float32 blocks aligned to the level's chunk grid, so neighbouring tiles that
are not aligned to chunks (Deep Zoom's 254-pixel tiles, the XYZ world's offsets) decode
each chunk once.
"""

from __future__ import annotations

import collections
import threading
from typing import Callable, Hashable

import numpy as np

from .geometry import padded_window

__all__ = ["LRU", "ChunkCache"]


class LRU:
    """Thread-safe LRU of ``key -> value`` bounded by the sum of ``size(value)`` in bytes.

    >>> c = LRU(10)
    >>> c.put("a", b"12345"); c.put("b", b"123456"); c.get("a") is None, c.get("b")
    (True, b'123456')
    """

    def __init__(self, max_bytes: int, size: Callable = len) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache size must be >= 0 bytes, got {max_bytes}")
        self.max_bytes, self.size = max_bytes, 0
        self._sizeof = size
        self._d: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Hashable):
        with self._lock:
            v = self._d.get(key)
            if v is None:
                self.misses += 1
                return None
            self.hits += 1
            self._d.move_to_end(key)
            return v

    def put(self, key: Hashable, value) -> None:
        n = self._sizeof(value)
        if n > self.max_bytes:
            return
        with self._lock:
            if key in self._d:
                return
            self._d[key] = value
            self.size += n
            while self.size > self.max_bytes and self._d:
                self.size -= self._sizeof(self._d.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self.size = 0


class ChunkCache:
    """Windows of store levels assembled from cached, chunk-aligned decoded blocks.

    ``read(k, i0, i1, j0, j1)`` has the signature of :func:`cpmosaic.serve.tiles.read_padded`
    (NaN outside the level).  Missing blocks of one window are read in one call.
    """

    def __init__(self, m, max_bytes: int) -> None:
        self.m = m
        self.lru = LRU(max_bytes, size=lambda a: a.nbytes)
        self.chunks = [tuple(lv.chunks) for lv in m.levels]

    def read(self, k: int, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        h, w = self.m.shape(k)
        out, inside = padded_window((h, w), i0, i1, j0, j1)
        if inside is None:
            return out
        ci0, ci1, cj0, cj1 = inside
        if self.lru.max_bytes == 0:
            out[ci0 - i0:ci1 - i0, cj0 - j0:cj1 - j0] = self.m.read(k, ci0, ci1, cj0, cj1)
            return out
        ch, cw = self.chunks[k]
        rows = range(ci0 // ch, (ci1 - 1) // ch + 1)
        cols = range(cj0 // cw, (cj1 - 1) // cw + 1)
        blocks, missing = {}, []
        for a in rows:
            for b in cols:
                blk = self.lru.get((k, a, b))
                if blk is None:
                    missing.append((a, b))
                else:
                    blocks[a, b] = blk
        if missing:
            a0, a1 = min(a for a, _ in missing), max(a for a, _ in missing) + 1
            b0, b1 = min(b for _, b in missing), max(b for _, b in missing) + 1
            region = self.m.read(k, a0 * ch, min(a1 * ch, h), b0 * cw, min(b1 * cw, w))
            for a, b in missing:
                blk = np.ascontiguousarray(region[(a - a0) * ch:(a - a0 + 1) * ch, (b - b0) * cw:(b - b0 + 1) * cw])
                blocks[a, b] = blk
                self.lru.put((k, a, b), blk)
        for (a, b), blk in blocks.items():
            y0, x0 = a * ch, b * cw
            sy0, sy1 = max(ci0, y0), min(ci1, y0 + blk.shape[0])
            sx0, sx1 = max(cj0, x0), min(cj1, x0 + blk.shape[1])
            out[sy0 - i0:sy1 - i0, sx0 - j0:sx1 - j0] = blk[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        return out
