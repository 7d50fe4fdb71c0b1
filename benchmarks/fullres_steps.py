"""Where a full-resolution build's time goes: CPU and wall seconds per step, summed over threads.

Run by ``bench_mosaic.py --fullres ... --steps`` in a child process: each step
function of the build is wrapped for the run with a timer of the calling
thread's CPU time (``time.thread_time``) and wall time, so the table adds up the
work of both threads.  Wall above CPU is time a thread waited: for the disk
(the ``O_DIRECT`` write), for a core, or for the GIL.  Steps nest (a level-0
task holds its reads, placement, encoding and write).
"""

from __future__ import annotations

import collections
import os
import time

#: (module, attribute, label): the steps timed, where the module has them.
STEPS = [
    ("cpmosaic.io.cache", "ExposureCache.read", "read rows (preadv or map)"),
    ("cpmosaic.kernels", "bin_rotate_into", "place rows (byteswap copy)"),
    ("cpmosaic.mosaic.tasks", "_nan_buffer", "NaN-fill shard buffer"),
    ("cpmosaic.mosaic.tasks", "shard_stats", "shard statistics"),
    ("cpmosaic.kernels", "pyramid_reduce", "halve for next level"),
    ("cpmosaic.mosaic.shardio", "ShardWriter.write", "shard write (encode + file)"),
    ("cpmosaic.mosaic.shardio", "_BloscInto.__call__", "  blosc encode"),
    ("cpmosaic.mosaic.shardio", "write_file", "  file write"),
    ("cpmosaic.mosaic.tasks", "write_marker", "marker"),
    ("cpmosaic.mosaic.tasks", "release_free_memory", "malloc_trim"),
]


def _wrap(owner, name: str, label: str, cpu: collections.Counter, wall: collections.Counter, calls: collections.Counter):
    fn = getattr(owner, name)

    def timed(*args, **kwargs):
        c, w = time.thread_time(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            cpu[label] += time.thread_time() - c
            wall[label] += time.perf_counter() - w
            calls[label] += 1

    setattr(owner, name, timed)


def step_profile(files: list[str], store: str, compressor: str, direct_io: bool = True) -> dict:
    import importlib

    from cpmosaic.mosaic import build_mosaic

    cpu: collections.Counter = collections.Counter()
    wall: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    for module, attr, label in STEPS:
        owner = importlib.import_module(module)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        if owner is not None and hasattr(owner, name):
            _wrap(owner, name, label, cpu, wall, calls)
    shardio = importlib.import_module("cpmosaic.mosaic.shardio")
    if hasattr(shardio, "USE_DIRECT_IO"):
        shardio.USE_DIRECT_IO = direct_io
    t0, w0 = os.times(), time.perf_counter()
    build_mosaic(files, store, binning=1, overwrite=True, progress=False, compressor=compressor)
    t1, w1 = os.times(), time.perf_counter()
    return {"wall": w1 - w0, "user": t1.user - t0.user, "sys": t1.system - t0.system,
            "steps": [(label, cpu[label], wall[label], calls[label]) for _, _, label in STEPS if calls[label]]}
