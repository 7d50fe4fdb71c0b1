"""Writing one whole shard of a level straight to a local disk.

A build's task owns whole shards (see :mod:`.tasks`), so it can write a shard
as one file without zarr's read-modify-write machinery: the chunks that hold
data are encoded one after the other (the codec releases the GIL, so the
build's threads compress in parallel) into one page-aligned buffer the task
lends (blosc through numcodecs' own ``blosc_compress_ctx``, so no bytes object
is made per chunk), and the buffer goes to the disk in one write with
``O_DIRECT``: the disk reads it from our memory, the CPU does not copy it into
the page cache (that copy cost as much CPU as compressing: 0.8 s per GB here,
against 0.03 s with ``O_DIRECT``), and the gigabytes written do not push the
inputs out of the cache.  Where the filesystem refuses ``O_DIRECT`` (tmpfs), or
with ``CPMOSAIC_DIRECT_IO=0``, the write goes through the page cache.

Through zarr the same shard costs a coroutine and a thread hop per chunk, a
copy of every encoded chunk into one buffer and a wait on zarr's IO loop
(a fifth of a full-resolution build).

The file is the one zarr writes (zarr v3 ``sharding_indexed``: chunks, then
the index of ``(offset, nbytes)`` little-endian uint64 pairs, empty chunks
``2**64 - 1``, then the CRC32C of the index), written to a temporary name and
renamed as zarr's local store does.  :func:`shard_writer` returns a writer only
for a layout it knows to be exactly this (read from the level's own
``zarr.json``); anything else goes through zarr.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

__all__ = ["ShardWriter", "shard_writer", "write_file"]

_EMPTY = np.uint64(2**64 - 1)
#: Alignment of ``O_DIRECT`` writes (address and length): a page covers 512- and 4096-byte sectors.
ALIGN = 4096
#: Write shards with ``O_DIRECT`` where the filesystem takes it.
USE_DIRECT_IO = os.environ.get("CPMOSAIC_DIRECT_IO", "1") != "0"
_BLOSC_MAX_OVERHEAD = 16
_SHUFFLES = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


_IO_POOL: tuple[int, ThreadPoolExecutor] | None = None
_IO_LOCK = threading.Lock()


def _io_pool() -> ThreadPoolExecutor:
    """The process's shard-file writers: two threads, which spend their time waiting on the disk.

    Made again in a forked child (a pool's threads do not survive a fork).
    """
    global _IO_POOL
    with _IO_LOCK:
        if _IO_POOL is None or _IO_POOL[0] != os.getpid():
            _IO_POOL = (os.getpid(), ThreadPoolExecutor(2, thread_name_prefix="cpmosaic-shard-io"))
        return _IO_POOL[1]


def _blosc_compress_ctx():
    """c-blosc's ``blosc_compress_ctx`` from numcodecs' own extension (None if it has no such symbol).

    The call numcodecs' ``Blosc.encode`` makes outside the main thread (same
    library, same arguments, one internal thread), so the bytes are the same,
    but into our buffer.  ctypes drops the GIL for the call.
    """
    try:
        from numcodecs import blosc

        fn = ctypes.CDLL(blosc.__file__).blosc_compress_ctx
    except (ImportError, OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p,
                   ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


class _BloscInto:
    """Blosc-compress a float32 chunk into a caller's buffer, as numcodecs' ``Blosc`` with ``conf`` would."""

    def __init__(self, fn, conf: dict) -> None:
        self.fn, self.clevel, self.shuffle = fn, int(conf["clevel"]), _SHUFFLES[conf["shuffle"]]
        self.cname, self.blocksize = conf["cname"].encode(), int(conf.get("blocksize", 0))
        self.typesize = int(conf.get("typesize", 4))

    def __call__(self, src: int, nbytes: int, dest: int, room: int) -> int:
        """Compress ``nbytes`` at address ``src`` to address ``dest`` (``room`` bytes free); the size."""
        n = self.fn(self.clevel, self.shuffle, self.typesize, nbytes, src, dest, room, self.cname, self.blocksize, 1)
        if n <= 0:
            raise RuntimeError(f"blosc_compress_ctx failed ({n}) on a chunk of {nbytes} bytes")
        return n


def write_file(path: str, data: np.ndarray, direct: bool = True) -> bool:
    """Write uint8 ``data`` (a buffer starting on an :data:`ALIGN` boundary) as file ``path``.

    With ``direct``, the whole pages go with ``O_DIRECT`` and the last partial
    page through the page cache.  Returns whether ``O_DIRECT`` was used (False:
    the filesystem refused it, and the file was written through the cache).
    """
    view = memoryview(data).cast("B")
    total = len(view)
    fd = -1
    if direct and hasattr(os, "O_DIRECT") and total >= ALIGN and data.ctypes.data % ALIGN == 0:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            direct = False
    else:
        direct = False
    if fd < 0:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        done = 0
        if direct:
            head = total // ALIGN * ALIGN
            try:
                while done < head:
                    done += os.write(fd, view[done:head])
                    if done % ALIGN:
                        break  # a short write off a page boundary: the rest through the cache
            except OSError as exc:
                if exc.errno != errno.EINVAL or done:
                    raise
                direct = False  # opened, but the filesystem refuses the writes
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        while done < total:
            done += os.write(fd, view[done:])
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return direct


def _chunk_codec(codecs: list):
    """The numcodecs codec of a chunk's codec list (bytes + at most one compressor), or False."""
    if not codecs or codecs[0].get("name") != "bytes" or \
            (codecs[0].get("configuration") or {}).get("endian", "little") != "little":
        return False
    rest = codecs[1:]
    if not rest:
        return None
    if len(rest) > 1:
        return False
    name, conf = rest[0].get("name"), rest[0].get("configuration") or {}
    if name == "blosc":
        from numcodecs import Blosc

        shuffle = _SHUFFLES.get(str(conf.get("shuffle")))
        if shuffle is None:
            return False
        fn = _blosc_compress_ctx()
        if fn is not None:
            return _BloscInto(fn, conf)
        return Blosc.from_config({"cname": conf["cname"], "clevel": int(conf["clevel"]), "shuffle": shuffle,
                                  "blocksize": int(conf.get("blocksize", 0)), "typesize": int(conf.get("typesize", 4))})
    if name == "zstd":
        from numcodecs import Zstd

        return Zstd(level=int(conf.get("level", 0)), checksum=bool(conf.get("checksum", False)))
    return False


class ShardWriter:
    """Writes whole shards of one float32 level array of a local zarr v3 store.

    ``codec``: None (raw chunks), a :class:`_BloscInto`, or a numcodecs codec.
    """

    def __init__(self, folder: str, shape: tuple[int, int], shards: tuple[int, int], chunks: tuple[int, int],
                 codec) -> None:
        self.folder, self.shape, self.shards, self.chunks, self.codec = folder, shape, shards, chunks, codec
        self.direct = USE_DIRECT_IO
        self._made: set[str] = set()  # shard-row folders made (a set add is atomic: threads may share it)

    def path(self, i: int, j: int) -> str:
        return os.path.join(self.folder, "c", str(i), str(j))

    def _ranges(self, i: int, j: int, region: tuple[int, int, int, int]) -> tuple[range, range]:
        """The chunk rows and columns of shard ``(i, j)`` that ``region`` touches."""
        sh, sw = self.shards
        ch, cw = self.chunks
        y0, y1, x0, x1 = region
        return range((y0 - i * sh) // ch, -(-(y1 - i * sh) // ch)), range((x0 - j * sw) // cw, -(-(x1 - j * sw) // cw))

    def room(self, i: int, j: int, region: tuple[int, int, int, int]) -> int:
        """Bytes of the buffer :meth:`write` needs for ``region`` of shard ``(i, j)``."""
        rows, cols = self._ranges(i, j, region)
        ny, nx = self.shards[0] // self.chunks[0], self.shards[1] // self.chunks[1]
        return len(rows) * len(cols) * (4 * self.chunks[0] * self.chunks[1] + _BLOSC_MAX_OVERHEAD) + \
            16 * ny * nx + 4 + 2 * ALIGN

    def write(self, i: int, j: int, region: tuple[int, int, int, int], data: np.ndarray,
              buf: np.ndarray | None = None, background: bool = False) -> Future | None:
        """Write shard ``(i, j)`` holding ``data`` at ``region`` (level coordinates, chunk-aligned
        starts) and nothing (NaN) elsewhere; a shard without data is removed, as zarr does.

        ``buf``: a uint8 scratch buffer of at least :meth:`room` bytes (else one is made).
        ``background``: encode here, then hand the file write to this process's IO thread and
        return its future (None if there was nothing to write); ``buf`` must stay untouched
        until it is done.  A thread waiting on the disk then leaves its core to the caller.
        """
        import google_crc32c

        sh, sw = self.shards
        ch, cw = self.chunks
        index = np.full((sh // ch, sw // cw, 2), _EMPTY, np.uint64)
        y0, y1, x0, x1 = region
        rows, cols = self._ranges(i, j, region)
        room = self.room(i, j, region)
        if buf is None or buf.nbytes < room:
            buf = np.empty(room, np.uint8)
        start = -buf.ctypes.data % ALIGN
        out = buf[start:start + room - ALIGN]  # page-aligned, as O_DIRECT wants
        chunk = np.empty(self.chunks, np.float32)
        # addresses taken once: numpy's .ctypes costs microseconds, and there are 74,000 chunks in a build
        out_at, chunk_at, chunk_bytes = out.ctypes.data, chunk.ctypes.data, chunk.nbytes
        codec, into = self.codec, isinstance(self.codec, _BloscInto)
        offset = 0
        for a in rows:
            cy0 = i * sh + a * ch
            for b in cols:
                cx0 = j * sw + b * cw
                ry0, ry1 = max(cy0, y0), min(cy0 + ch, y1)
                rx0, rx1 = max(cx0, x0), min(cx0 + cw, x1)
                if ry0 >= ry1 or rx0 >= rx1:
                    continue
                piece = data[ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0]
                # an empty chunk is not stored (zarr's write_empty_chunks=False); a sparse sample
                # settles it for most chunks with data without a pass over all of them
                if not (np.isfinite(piece[::32, ::32]).any() or not np.isnan(piece).all()):
                    continue
                if (ry1 - ry0, rx1 - rx0) != (ch, cw):  # past the region's (or the level's) edge: NaN-padded,
                    chunk.fill(np.nan)                   # as zarr pads it
                chunk[ry0 - cy0:ry1 - cy0, rx0 - cx0:rx1 - cx0] = piece
                if codec is None:
                    n = chunk.nbytes
                    out[offset:offset + n] = chunk.reshape(-1).view(np.uint8)
                elif into:
                    n = codec(chunk_at, chunk_bytes, out_at + offset, out.nbytes - offset)
                else:
                    encoded = np.frombuffer(codec.encode(chunk), np.uint8)
                    n = encoded.nbytes
                    out[offset:offset + n] = encoded
                index[a, b] = (offset, n)
                offset += n
        path = self.path(i, j)
        if not offset:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return None
        raw = index.astype("<u8").reshape(-1).view(np.uint8)
        out[offset:offset + raw.nbytes] = raw
        offset += raw.nbytes
        out[offset:offset + 4] = np.array([google_crc32c.value(raw.tobytes())], "<u4").view(np.uint8)
        offset += 4
        folder = os.path.dirname(path)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        if background:
            return _io_pool().submit(self._put, path, out[:offset])
        self._put(path, out[:offset])
        return None

    def _put(self, path: str, data: np.ndarray) -> None:
        """Write ``data`` as a temporary file, then rename it to ``path`` (as zarr's local store does)."""
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        if self.direct and not write_file(tmp, data, direct=True):
            self.direct = False  # refused here: the rest of this level is written through the cache
        elif not self.direct:
            write_file(tmp, data, direct=False)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise


def shard_writer(array) -> ShardWriter | None:
    """A :class:`ShardWriter` for a level array of a local store, or None (write through zarr)."""
    from ._zarrio import local_root

    root = local_root(array.store_path.store)
    if root is None:
        return None
    folder = os.path.join(root, array.store_path.path)
    try:
        with open(os.path.join(folder, "zarr.json"), "rb") as f:
            doc = json.loads(f.read())
        if doc.get("data_type") != "float32" or doc.get("fill_value") != "NaN" or len(doc["shape"]) != 2:
            return None
        keys = doc["chunk_key_encoding"]
        if keys.get("name") != "default" or (keys.get("configuration") or {}).get("separator", "/") != "/":
            return None
        (sharding,) = doc["codecs"]
        conf = sharding["configuration"]
        if sharding["name"] != "sharding_indexed" or conf.get("index_location", "end") != "end":
            return None
        if [c.get("name") for c in conf["index_codecs"]] != ["bytes", "crc32c"] or \
                (conf["index_codecs"][0].get("configuration") or {}).get("endian", "little") != "little":
            return None
        codec = _chunk_codec(conf["codecs"])
        if codec is False:
            return None
        sy, sx = (int(v) for v in doc["chunk_grid"]["configuration"]["chunk_shape"])
        cy, cx = (int(v) for v in conf["chunk_shape"])
        if sy % cy or sx % cx:
            return None
        h, w = (int(v) for v in doc["shape"])
        return ShardWriter(folder, (h, w), (sy, sx), (cy, cx), codec)
    except (OSError, ValueError, KeyError, TypeError):
        return None
