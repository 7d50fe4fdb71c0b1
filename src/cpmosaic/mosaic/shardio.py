"""Writing one whole shard of a level straight to a local disk.

A build's task owns whole shards (see :mod:`.tasks`), so it can write a shard
as one file without zarr's read-modify-write machinery: the chunks that hold
data are encoded one after the other (the codec releases the GIL, so the
build's threads compress in parallel), and the encoded chunks and the shard
index go to the disk in one ``writev``, with no copy gathering them first.
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

import json
import os
import uuid

import numpy as np

__all__ = ["ShardWriter", "shard_writer"]

_EMPTY = np.uint64(2**64 - 1)


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

        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}.get(conf.get("shuffle"))
        if shuffle is None:
            return False
        return Blosc.from_config({"cname": conf["cname"], "clevel": int(conf["clevel"]), "shuffle": shuffle,
                                  "blocksize": int(conf.get("blocksize", 0)), "typesize": int(conf.get("typesize", 4))})
    if name == "zstd":
        from numcodecs import Zstd

        return Zstd(level=int(conf.get("level", 0)), checksum=bool(conf.get("checksum", False)))
    return False


class ShardWriter:
    """Writes whole shards of one float32 level array of a local zarr v3 store."""

    def __init__(self, folder: str, shape: tuple[int, int], shards: tuple[int, int], chunks: tuple[int, int],
                 codec) -> None:
        self.folder, self.shape, self.shards, self.chunks, self.codec = folder, shape, shards, chunks, codec
        self._made: set[str] = set()  # shard-row folders made (a set add is atomic: threads may share it)

    def path(self, i: int, j: int) -> str:
        return os.path.join(self.folder, "c", str(i), str(j))

    def write(self, i: int, j: int, region: tuple[int, int, int, int], data: np.ndarray) -> None:
        """Write shard ``(i, j)`` holding ``data`` at ``region`` (level coordinates, chunk-aligned
        starts) and nothing (NaN) elsewhere; a shard without data is removed, as zarr does."""
        import google_crc32c

        sh, sw = self.shards
        ch, cw = self.chunks
        ny, nx = sh // ch, sw // cw
        index = np.full((ny, nx, 2), _EMPTY, np.uint64)
        parts: list = []
        offset = 0
        y0, y1, x0, x1 = region
        scratch = None
        for a in range((y0 - i * sh) // ch, -(-(y1 - i * sh) // ch)):
            cy0 = i * sh + a * ch
            for b in range((x0 - j * sw) // cw, -(-(x1 - j * sw) // cw)):
                cx0 = j * sw + b * cw
                ry0, ry1 = max(cy0, y0), min(cy0 + ch, y1)
                rx0, rx1 = max(cx0, x0), min(cx0 + cw, x1)
                if ry0 >= ry1 or rx0 >= rx1:
                    continue
                piece = data[ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0]
                if (ry1 - ry0, rx1 - rx0) == (ch, cw):
                    chunk = np.ascontiguousarray(piece)
                else:  # a chunk past the region's (or the level's) edge: NaN-padded, as zarr pads it
                    if scratch is None:
                        scratch = np.empty((ch, cw), np.float32)
                    scratch.fill(np.nan)
                    scratch[ry0 - cy0:ry1 - cy0, rx0 - cx0:rx1 - cx0] = piece
                    chunk = scratch
                # an empty chunk is not stored (zarr's write_empty_chunks=False); a sparse sample
                # settles it for most chunks with data without a pass over all of them
                if not (np.isfinite(chunk[::32, ::32]).any() or not np.isnan(chunk).all()):
                    continue
                encoded = chunk.tobytes() if self.codec is None else self.codec.encode(chunk)
                n = len(encoded)
                index[a, b] = (offset, n)
                parts.append(encoded)
                offset += n
        path = self.path(i, j)
        if not parts:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        raw = index.astype("<u8").tobytes()
        parts.append(raw)
        parts.append(np.uint32(google_crc32c.value(raw)).astype("<u4").tobytes())
        folder = os.path.dirname(path)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            total = sum(len(p) for p in parts)
            done = os.writev(fd, parts)
            if done != total:  # short write: the rest one by one
                view = memoryview(b"".join(bytes(p) for p in parts))
                while done < total:
                    done += os.write(fd, view[done:])
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)


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
        shards = tuple(int(v) for v in doc["chunk_grid"]["configuration"]["chunk_shape"])
        chunks = tuple(int(v) for v in conf["chunk_shape"])
        if shards[0] % chunks[0] or shards[1] % chunks[1]:
            return None
        return ShardWriter(folder, tuple(int(v) for v in doc["shape"]), shards, chunks, codec)
    except (OSError, ValueError, KeyError, TypeError):
        return None
