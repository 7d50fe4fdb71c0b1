"""Benchmark the mosaic builder on real-size LSSTCam detectors.

Synthetic processed float32 FITS files at real size (E2V 4096 x 4004, 64 MB each)
are written to a temporary directory (``--workdir``), nearest the focal-plane
centre first (9 = raft R22).  In one run:

* ``np.copyto`` bandwidth of this machine (the ceiling for any read + bin);
* cpmosaic builds at each ``--binning`` (default 8 and 1): wall time, effective
  input GB/s (file bytes / wall) and its ratio to the copy bandwidth, peak RSS;
* the naive way at binning 8 (``naive_visualize_visit.py``: astropy read +
  reshape-mean per detector, serial, one full-plane array, as pipe_tasks'
  visualizeVisit does) - target: cpmosaic >= 5x faster;
* ome-zarr-py ``write_image`` making the pyramid (local mean) of the naive
  assembled array - target: cpmosaic's whole build faster, with lower peak memory;
* ``--scaling 9,50,205``: peak memory of binning-1 builds as the detector count
  grows (target <= 2 GiB and flat);
* ``--whole N``: the whole ``cpmosaic mosaic --binning 8`` command against the
  whole naive process (``naive_visualize_visit.py``), each a fresh Python
  process as a user runs it (imports, numba's cached kernels and all), N pairs
  run alternately; and the start-up of ``cpmosaic --help`` and ``cpmosaic info``
  against ``python -c pass`` - targets: >= 5x, and under 0.3 s; wall and CPU
  seconds; ``--baseline-src DIR`` adds another cpmosaic's whole command (an
  earlier commit's ``src``) to the same rotation, as a before/after;
* ``--startup N``: only the command's start-up (``startup_probe.py``: up to its shard
  tasks, kernels loaded), N alternating runs, wall and CPU seconds;
* ``--codecs``: compressors on real-looking level-0 data (speed, size), and
  where the time of a full-resolution build goes against the same bytes written
  by numpy to the same disk (see :func:`codec_table`).

Every case runs in its own child process, so its peak RSS (VmHWM) is its
alone; "peak anon" leaves out memory-mapped input pages (page cache).  Imports,
numba kernels and the camera geometry are loaded before the clock starts (both
sides).  ``--repeats N`` alternates the b=8 build and the naive way N times and
keeps the best of each, which holds up on a machine other jobs load.  Inputs are
warm in the page cache (written just before).  205 real-size detectors are 13 GB
of FITS.

Usage::

    python benchmarks/bench_mosaic.py --quick
    python benchmarks/bench_mosaic.py --detectors 9
    python benchmarks/bench_mosaic.py --detectors 9 --binning 8 --repeats 5   # loaded machine
    python benchmarks/bench_mosaic.py --detectors 205 --scaling 9,50,205 --workdir /big/disk
    python benchmarks/bench_mosaic.py --detectors 205 --inputs /big/disk/inputs --workdir /big/disk
    python benchmarks/bench_mosaic.py --detectors 205 --binning 8 --whole 5 --inputs /big/disk/inputs
    python benchmarks/bench_mosaic.py --detectors 205 --binning 8 --whole 5 --only-whole --inputs /big/disk/inputs \
        --baseline-src /tmp/before/src   # git archive eab195e src | tar -x -C /tmp/before
    python benchmarks/bench_mosaic.py --detectors 205 --fullres blosc-lz4-bitshuffle,blosc-lz4-bitshuffle:cached \
        --steps --inputs /big/disk/inputs --workdir /big/disk   # full resolution, floors, per-step profile
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def peak_rss() -> int:
    """Peak resident memory of this process in bytes.

    VmHWM, not ``ru_maxrss``: Linux keeps ``ru_maxrss`` across ``execve``, so a
    child would report its parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class AnonPeak:
    """Samples the private (anonymous) resident memory every 10 ms: what the work
    needs, without memory-mapped input pages (page cache, counted in VmHWM)."""

    def __init__(self) -> None:
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
            self._stop.wait(0.01)

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def warm_up() -> None:
    """Imports and numba kernels loaded before the clock starts (both sides alike)."""
    import astropy.io.fits  # noqa: F401
    import dask  # noqa: F401
    import zarr  # noqa: F401

    import cpmosaic.io  # noqa: F401
    from cpmosaic.camera import get_camera
    from cpmosaic.kernels import bin_rotate_into, pyramid_reduce

    get_camera("LSSTCam")  # camera geometry is loaded once per process (both sides use it)

    a = np.ones((8, 8), np.float32)
    bin_rotate_into(a, 2, 1, np.zeros((4, 4), np.float32), 0, 0)
    bin_rotate_into(a.astype(">f4"), 2, 1, np.zeros((4, 4), np.float32), 0, 0)
    pyramid_reduce(a)


# -- inputs --------------------------------------------------------------------------


def detector_order(camera) -> list:
    """Detectors nearest the focal-plane centre first (the first 9 are raft R22)."""
    return sorted(camera, key=lambda d: (round(float(np.hypot(*d.center_mm)), 3), d.id))


def make_inputs(directory: Path, n: int, seed: int = 0) -> list[Path]:
    from cpmosaic.camera import get_camera
    from cpmosaic.io import write_processed_fits

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    noise: dict = {}
    paths = []
    for det in detector_order(get_camera("LSSTCam"))[:n]:
        path = directory / f"calexp_{det.name}.fits"
        if not path.exists():
            if det.shape not in noise:
                noise[det.shape] = rng.normal(1000.0, 5.0, det.shape).astype(np.float32)
            write_processed_fits(path, noise[det.shape] + np.float32(det.id),
                                 header={"DETNAME": det.name, "DETECTOR": det.id, "INSTRUME": "LSSTCam"})
        paths.append(path)
    return paths


# -- cases (each runs in a child process) -------------------------------------------------


def case_build(files: list[str], store: str, binning: int, workers: int | None, compressor: str = "blosc-lz4",
               direct: bool = True, sync: bool = False, direct_io: bool = True) -> dict:
    from cpmosaic.mosaic import build_mosaic, shardio, tasks
    from cpmosaic.mosaic.build import default_workers

    tasks.USE_SHARD_WRITER = direct
    shardio.USE_DIRECT_IO = direct_io  # False: shards written through the page cache
    warm_up()
    base = peak_rss()
    with AnonPeak() as anon:
        t = time.perf_counter()
        report = build_mosaic(files, store, binning=binning, overwrite=True, num_workers=workers, progress=False,
                              compressor=compressor)
        wall = time.perf_counter() - t
        if sync:
            os.sync()  # writeback of what the build left dirty in the page cache
        synced = time.perf_counter() - t
    return {"wall": wall, "synced": synced, "rss": peak_rss(), "rss_base": base, "anon": anon.peak,
            "shards": report.shards_written, "bytes": _tree_bytes(store),
            "workers": workers or default_workers(report.plan, 3 * 2**29), "shape": list(report.plan.shape)}


def _tree_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def case_floor(folder: str, nbytes: int, files: int, direct: bool = False) -> dict:
    """The same bytes written by numpy to the same disk, as ``files`` files, then ``os.sync``;
    ``direct``: with ``O_DIRECT`` from a page-aligned buffer (no page-cache copy), as the build does."""
    import mmap

    os.makedirs(folder, exist_ok=True)
    size = max(1, nbytes // files)
    aligned = mmap.mmap(-1, size)  # anonymous maps start on a page
    block = np.frombuffer(aligned, np.uint8)
    block[:] = np.random.default_rng(0).integers(0, 255, size, np.uint8)
    head = size // 4096 * 4096 if direct else 0
    t = time.perf_counter()
    for k in range(files):
        path = os.path.join(folder, f"{k}")
        if head:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
            os.write(fd, memoryview(aligned)[:head])
            os.close(fd)
        with open(path, "r+b" if head else "wb") as f:
            f.seek(head)
            f.write(memoryview(aligned)[head:])
    wall = time.perf_counter() - t
    os.sync()
    return {"wall": wall, "synced": time.perf_counter() - t, "bytes": block.nbytes * files}


def case_naive(files: list[str], out: str, binning: int) -> dict:
    sys.path.insert(0, str(HERE))
    from naive_visualize_visit import naive_mosaic

    warm_up()
    base = peak_rss()
    with AnonPeak() as anon:
        t = time.perf_counter()
        mosaic = naive_mosaic(files, "LSSTCam", binning)
        np.save(out, mosaic)
        wall = time.perf_counter() - t
    return {"wall": wall, "rss": peak_rss(), "rss_base": base, "anon": anon.peak, "shape": list(mosaic.shape)}


def case_omezarr(array_path: str, store: str, levels: int) -> dict:
    import zarr
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    image = np.load(array_path)
    base = peak_rss()
    with AnonPeak() as anon:
        t = time.perf_counter()
        group = zarr.open_group(store, mode="w")
        write_image(image, group, scale_factors=[2**k for k in range(1, levels)], method=Methods.LOCAL_MEAN,
                    axes="yx", storage_options={"chunks": (256, 256)})
        wall = time.perf_counter() - t
    return {"wall": wall, "rss": peak_rss(), "rss_base": base, "anon": anon.peak, "shape": list(image.shape)}


def case_steps(**kwargs) -> dict:
    sys.path.insert(0, str(HERE))
    from fullres_steps import step_profile

    warm_up()
    return step_profile(**kwargs)


CASES = {"build": case_build, "naive": case_naive, "omezarr": case_omezarr, "floor": case_floor,
         "steps": case_steps}


def run_child(job: str, **kwargs) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps({"job": job, **kwargs})]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{job} failed:\n{proc.stderr[-3000:]}")


def copy_bandwidth(nbytes: int, repeats: int = 5) -> float:
    """``np.copyto`` GB/s (read + write counted once, like a read of the input)."""
    a = np.ones(nbytes // 4, np.float32)
    b = np.empty_like(a)
    best = min(_timed(lambda: np.copyto(b, a)) for _ in range(repeats))
    return nbytes / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# -- codecs ------------------------------------------------------------------------------

#: Compressor names (as ``--compressor`` takes them) compared by :func:`codec_table`.
CODECS = ("none", "blosc-lz4", "blosc-lz4-bitshuffle", "blosc-zstd", "zstd-1", "zstd-3", "zstd-5")


def real_looking_shard(kind: str, seed: int = 0) -> np.ndarray:
    """A real-size E2V detector as cpmosaic.synth draws it (signal, shot and read noise,
    per-amp structure, cosmic rays), in electrons: ``kind`` bias or flat."""
    from cpmosaic.camera import get_camera
    from cpmosaic.synth.images import exposure_image, make_detector_model

    det = get_camera("LSSTCam")["R22_S11"]
    model = make_detector_model(det, seed)
    rng = np.random.default_rng(seed)
    ex = exposure_image(model, kind, rng, darktime=0.0 if kind == "bias" else 30.0, planes=False,
                        bias=kind == "bias")
    img = ex.image if ex.bias is None else ex.image + ex.bias
    return np.ascontiguousarray(img[:4096, :4096], np.float32)


def _numcodec(name: str):
    """The numcodecs codec zarr's own codec object for ``name`` wraps (same bytes)."""
    from numcodecs import Blosc, Zstd

    if name == "none":
        return None
    if name.startswith("zstd-"):
        return Zstd(level=int(name[5:]))
    cname = "zstd" if name == "blosc-zstd" else "lz4"
    clevel = 1 if cname == "zstd" else 5
    shuffle = Blosc.BITSHUFFLE if name.endswith("bitshuffle") else Blosc.SHUFFLE
    return Blosc(cname=cname, clevel=clevel, shuffle=shuffle, blocksize=0)


def codec_table(repeats: int = 3) -> list[tuple]:
    """Encode and decode speed (one thread, MB/s of float32) and compression ratio of each
    of :data:`CODECS` on the 256 x 256 chunks of a real-size bias and flat.

    The codecs are numcodecs' objects that zarr's ``BloscCodec``/``ZstdCodec`` wrap
    (``cpmosaic.mosaic.store.parse_compressor`` makes those), with the same settings.
    """
    from numcodecs import blosc

    blosc.set_nthreads(1)  # one build thread per shard: the same as in a build
    rows = []
    for kind in ("bias", "flat"):
        img = real_looking_shard(kind)
        chunks = [np.ascontiguousarray(img[y:y + 256, x:x + 256]) for y in range(0, 4096, 256)
                  for x in range(0, 4096, 256)]
        nbytes = img.nbytes
        for name in CODECS:
            codec = _numcodec(name)
            if codec is None:
                t = min(_timed(lambda: [c.tobytes() for c in chunks]) for _ in range(repeats))
                rows.append((kind, name, nbytes / t / 1e6, nbytes / t / 1e6, 1.0))
                continue
            out = [codec.encode(c) for c in chunks]
            enc_t = min(_timed(lambda: [codec.encode(c) for c in chunks]) for _ in range(repeats))
            dec_t = min(_timed(lambda: [codec.decode(o) for o in out]) for _ in range(repeats))
            assert np.array_equal(np.frombuffer(codec.decode(out[5]), np.float32).reshape(256, 256), chunks[5])
            rows.append((kind, name, nbytes / enc_t / 1e6, nbytes / dec_t / 1e6, nbytes / sum(len(o) for o in out)))
    return rows


def fullres_table(files: list[str], work: Path, workers: int | None, setups: list[tuple[str, bool, bool]],
                  steps: bool = False) -> list[tuple]:
    """Full-resolution builds with each ``(compressor, direct shard writes, O_DIRECT)`` setup,
    each followed by two floors writing as many bytes, as as many files, to the same disk:
    numpy through the page cache, and with ``O_DIRECT``; all with ``os.sync``.  ``steps``:
    then the same build again with the per-step timers (:mod:`fullres_steps`), printed."""
    in_bytes = sum(os.path.getsize(f) for f in files)
    rows = []
    for compressor, direct, direct_io in setups:
        os.sync()
        store = str(work / "full.zarr")
        r = run_child("build", files=files, store=store, binning=1, workers=workers, compressor=compressor,
                      direct=direct, sync=True, direct_io=direct_io)
        shutil.rmtree(store, ignore_errors=True)
        floors = []
        for odirect in (False, True):
            os.sync()
            floors.append(run_child("floor", folder=str(work / "floor"), nbytes=r["bytes"], files=r["shards"],
                                    direct=odirect))
            shutil.rmtree(work / "floor", ignore_errors=True)
        fl, fd = floors
        how = f"{compressor}, {'direct shards' if direct else 'through zarr'}" + \
            ("" if not direct else ", O_DIRECT" if direct_io else ", page cache")
        rows.append((f"b=1 {how}", len(files), 1, f"{r['wall']:.2f}", f"{in_bytes / r['wall'] / 1e9:.2f}",
                     _mib(r["rss"]), _mib(r["anon"]),
                     f"+sync {r['synced']:.2f} s; wrote {r['bytes'] / 1e9:.2f} GB "
                     f"({in_bytes / r['bytes']:.2f}x smaller than the input); floor (numpy, same bytes, same disk) "
                     f"{fl['wall']:.2f} s, +sync {fl['synced']:.2f} s; with O_DIRECT {fd['wall']:.2f} s, "
                     f"+sync {fd['synced']:.2f} s: build {r['wall'] / fl['wall']:.2f}x / "
                     f"{r['wall'] / fd['wall']:.2f}x, with sync {r['synced'] / fl['synced']:.2f}x / "
                     f"{r['synced'] / fd['synced']:.2f}x the floors; load {os.getloadavg()[0]:.1f}"))
        if steps:
            p = run_child("steps", files=files, store=store, compressor=compressor, direct_io=direct_io)
            shutil.rmtree(store, ignore_errors=True)
            out = sys.stdout.write
            out(f"\nsteps of b=1 {how}: wall {p['wall']:.2f} s, user {p['user']:.2f} s, sys {p['sys']:.2f} s "
                f"(load {os.getloadavg()[0]:.1f})\n\n| step | CPU s | wall s | calls |\n|---|---:|---:|---:|\n")
            for label, cpu, wall, calls in p["steps"]:
                out(f"| {label} | {cpu:.2f} | {wall:.2f} | {calls} |\n")
    return rows


# -- whole processes -------------------------------------------------------------------


def _child_env(src: str | None = None) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: modules come from their .pyc
    src = src or str(HERE.parent / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def timed_process(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one whole process.

    CPU seconds hold up better than wall time on a machine other jobs load (they
    still grow with contention for caches and memory bandwidth).
    """
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def whole_commands(files: list[str], work: Path, repeats: int, baseline_src: str | None = None) -> list[tuple]:
    """``cpmosaic mosaic --binning 8`` and the naive process, whole, alternately; start-up times.

    With ``baseline_src`` (a ``src`` folder of another cpmosaic, e.g. ``git archive`` of
    an earlier commit) its whole command runs in the same rotation, as a before/after.
    """
    import compileall

    for src in filter(None, (str(HERE.parent / "src"), baseline_src)):
        compileall.compile_dir(str(Path(src) / "cpmosaic"), quiet=1)  # a pip install has them
    env = _child_env()
    py = sys.executable
    store = str(work / "whole.zarr")

    def ours_cmd(out: str) -> list[str]:
        return [py, "-m", "cpmosaic", "-q", "mosaic", *files, "-o", out, "--binning", "8", "--overwrite",
                "--no-progress"]

    naive_cmd = [py, str(HERE / "naive_visualize_visit.py"), *files, "-o", str(work / "naive_whole.npy"),
                 "--binning", "8"]
    cases = [("ours", ours_cmd(store), env), ("naive", naive_cmd, env)]
    if baseline_src:
        cases.insert(1, ("baseline", ours_cmd(str(work / "whole_baseline.zarr")), _child_env(baseline_src)))
    for _, cmd, e in cases[:-1]:
        timed_process(cmd, e)  # numba's cache and the page cache warm for both
    runs: dict[str, list] = {k: [] for k, _, _ in cases}
    loads = [os.getloadavg()[0]]
    for _ in range(repeats):
        for k, cmd, e in cases:
            runs[k].append(timed_process(cmd, e))
        loads.append(os.getloadavg()[0])
    best = {k: min(v) for k, v in runs.items()}
    cpu = {k: min(c for _, c in v) for k, v in runs.items()}
    load = f"load {min(loads):.1f}-{max(loads):.1f}"

    def walls(k: str) -> str:
        return ", ".join(f"{w:.2f}" for w, _ in runs[k])

    n = best["naive"][0]
    rows = [("whole `cpmosaic mosaic --binning 8`", len(files), 8, f"{best['ours'][0]:.2f}", "-", "-", "-",
             f"{n / best['ours'][0]:.1f}x the naive whole process (best of {repeats} alternating; CPU "
             f"{cpu['ours']:.2f} s, {cpu['naive'] / cpu['ours']:.1f}x less; {load}; all: {walls('ours')})")]
    if baseline_src:
        rows.append((f"whole command of {baseline_src}", len(files), 8, f"{best['baseline'][0]:.2f}", "-", "-", "-",
                     f"{n / best['baseline'][0]:.1f}x the naive; ours {best['baseline'][0] / best['ours'][0]:.2f}x "
                     f"faster, CPU {cpu['baseline']:.2f} s ({cpu['baseline'] / cpu['ours']:.2f}x); "
                     f"all: {walls('baseline')}"))
    rows.append(("whole naive process b=8", len(files), 8, f"{n:.2f}", "-", "-", "-",
                 f"CPU {cpu['naive']:.2f} s; all: {walls('naive')}"))
    # (no peak RSS for whole processes: a forked child's ru_maxrss starts at its parent's)
    starts = {"python -c pass": [py, "-c", "pass"], "cpmosaic --help": [py, "-m", "cpmosaic", "--help"],
              "cpmosaic info STORE": [py, "-m", "cpmosaic", "info", store]}
    timings: dict[str, list] = {k: [] for k in starts}
    for _ in range(max(5, repeats)):
        for k, cmd in starts.items():
            timings[k].append(timed_process(cmd, env))
    for k, t in timings.items():
        w, _ = min(t)
        rows.append((k, "-", "-", f"{w:.3f}", "-", "-", "-",
                     f"best of {len(t)}, interleaved" + ("; target < 0.3 s" if k != "python -c pass" else "")))
    return rows


def startup_commands(files: list[str], work: Path, repeats: int, baseline_src: str | None = None) -> list[tuple]:
    """Start-up of the whole command (``startup_probe.py``: up to the shard tasks, kernels
    loaded), this cpmosaic and ``baseline_src``'s alternately, ``repeats`` each."""
    import statistics

    probe = [sys.executable, str(HERE / "startup_probe.py")]
    cases = [("this cpmosaic", _child_env(), str(work / "startup.zarr"))]
    if baseline_src:
        cases.append((f"cpmosaic of {baseline_src}", _child_env(baseline_src), str(work / "startup_baseline.zarr")))
    runs: dict[str, list] = {k: [] for k, _, _ in cases}
    loads = [os.getloadavg()[0]]
    for n in range(repeats + 1):
        for k, env, store in cases:
            r = subprocess.run([*probe, store, *files], env=env, capture_output=True, text=True)
            line = [x for x in r.stdout.splitlines() if x.startswith("STARTUP ")]
            if r.returncode or not line:
                raise RuntimeError(f"start-up probe failed:\n{r.stderr[-2000:]}")
            if n:  # the first round warms the .pyc files and the page cache
                runs[k].append(tuple(float(v) for v in line[-1].split()[1:]))
        loads.append(os.getloadavg()[0])
    rows = []
    for k, v in runs.items():
        w, c = [x[0] for x in v], [x[1] for x in v]
        rows.append((f"start-up of the command, {k}", len(files), 8, f"{min(w):.3f}", "-", "-", "-",
                     f"to the shard tasks, kernels loaded; CPU best {min(c):.3f} s, median {statistics.median(c):.3f}"
                     f" s; wall median {statistics.median(w):.3f} s; {repeats} alternating; load "
                     f"{min(loads):.1f}-{max(loads):.1f}"))
    return rows


# -- main ------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 detectors, small copy test")
    ap.add_argument("--detectors", type=int, default=9, help="detectors in the main comparison (9, 50, 205)")
    ap.add_argument("--binning", default="8,1", help="binnings of the builds, comma separated (default 8,1)")
    ap.add_argument("--scaling", default="", help="detector counts for the binning-1 memory scan, e.g. 9,50,205")
    ap.add_argument("--workers", type=int, help="build threads (default: the builder's choice)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="run the b=8 build and the naive way alternately N times and report the best of each "
                         "(comparable figures on a loaded machine)")
    ap.add_argument("--workdir", help="where to write inputs and outputs (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--inputs", help="directory of the input FITS files, made there if missing and kept "
                                     "(default: inside the work directory)")
    ap.add_argument("--whole", type=int, default=0, metavar="N",
                    help="also time the whole cpmosaic mosaic command and the whole naive process, N pairs")
    ap.add_argument("--only-whole", action="store_true", help="only the --whole comparison")
    ap.add_argument("--startup", type=int, default=0, metavar="N",
                    help="only the start-up of the whole command (to its shard tasks), N alternating runs "
                         "(with --baseline-src: against that cpmosaic too)")
    ap.add_argument("--baseline-src", metavar="DIR",
                    help="with --whole: also the whole command of the cpmosaic in DIR (a src folder, e.g. "
                         "`git archive COMMIT src | tar -x -C DIR/..`), in the same rotation")
    ap.add_argument("--codecs", action="store_true", help="only the codec table (no inputs needed)")
    ap.add_argument("--fullres", default="",
                    help="only full-resolution builds against the disk floor, for each of these compressors "
                         "(comma separated; a trailing :zarr writes through zarr, :cached writes shards through the "
                         "page cache instead of with O_DIRECT), e.g. blosc-lz4-bitshuffle,blosc-lz4-bitshuffle:cached")
    ap.add_argument("--steps", action="store_true",
                    help="with --fullres: also time each step of the build (CPU and wall, summed over threads)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        result = CASES[spec.pop("job")](**spec)
        sys.stdout.write("RESULT " + json.dumps(result) + "\n")
        return 0

    if args.codecs:
        out = sys.stdout.write
        out(f"\n{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}\n\n")
        out("| data | compressor | encode MB/s | decode MB/s | ratio |\n|---|---|---:|---:|---:|\n")
        for kind, name, enc, dec, ratio in codec_table():
            out(f"| {kind} | {name} | {enc:.0f} | {dec:.0f} | {ratio:.3f} |\n")
        return 0
    n = 3 if args.quick else args.detectors
    binnings = [int(b) for b in args.binning.split(",") if b]
    scaling = [int(c) for c in args.scaling.split(",") if c]
    work = Path(tempfile.mkdtemp(prefix="bench_mosaic_", dir=args.workdir))
    rows = []
    try:
        t = time.perf_counter()
        all_files = make_inputs(Path(args.inputs) if args.inputs else work / "inputs", max([n, *scaling]))
        files = [str(p) for p in all_files[:n]]
        in_bytes = sum(os.path.getsize(f) for f in files)
        sys.stderr.write(f"wrote {len(all_files)} inputs in {time.perf_counter() - t:.1f} s\n")
        if args.startup:
            return _print(startup_commands(files, work, args.startup, args.baseline_src), n, in_bytes)
        if args.only_whole:
            rows.extend(whole_commands(files, work, max(1, args.whole), args.baseline_src))
            binnings, scaling = [], []
        if args.fullres:
            setups = [(c.split(":")[0], not c.endswith(":zarr"), not c.endswith((":zarr", ":cached")))
                      for c in args.fullres.split(",") if c]
            rows.extend(fullres_table(files, work, args.workers, setups, args.steps))
            binnings, scaling = [], []
        bw = copy_bandwidth(2**27 if args.quick else 2**29)
        rows.append(("np.copyto", "-", "-", f"{1.0 / bw:.3f} s/GB", f"{bw:.2f}", "-", "-", "memory bandwidth ceiling"))
        ours = {}
        naive_runs = []
        for b in binnings:
            r = run_child("build", files=files, store=str(work / f"m{b}.zarr"), binning=b, workers=args.workers)
            if b == 8:  # interleaved with the naive way, so both see the same machine load
                naive_runs.append(run_child("naive", files=files, out=str(work / "naive.npy"), binning=8))
                for _ in range(args.repeats - 1):
                    again = run_child("build", files=files, store=str(work / f"m{b}.zarr"), binning=b,
                                      workers=args.workers)
                    r = min(r, again, key=lambda x: x["wall"])
                    naive_runs.append(run_child("naive", files=files, out=str(work / "naive.npy"), binning=8))
            ours[b] = r
            gbs = in_bytes / r["wall"] / 1e9
            rows.append((f"cpmosaic build b={b}", n, b, f"{r['wall']:.2f}", f"{gbs:.2f}", _mib(r["rss"]),
                         _mib(r["anon"]),
                         f"{gbs / bw:.0%} of copyto; {r['workers']} threads; {r['shards']} shards; "
                         f"level 0 {r['shape'][1]}x{r['shape'][0]}"))
        if args.whole and not args.only_whole:
            rows.extend(whole_commands(files, work, args.whole, args.baseline_src))
        if not binnings:
            return _print(rows, n, in_bytes)
        nv = min(naive_runs, key=lambda x: x["wall"]) if naive_runs else \
            run_child("naive", files=files, out=str(work / "naive.npy"), binning=8)
        gbs = in_bytes / nv["wall"] / 1e9
        note = f"cpmosaic {nv['wall'] / ours[8]['wall']:.1f}x faster" if 8 in ours else ""
        if len(naive_runs) > 1:
            note += f" (best of {len(naive_runs)} alternating runs each)"
        rows.append(("naive visualizeVisit b=8", n, 8, f"{nv['wall']:.2f}", f"{gbs:.2f}", _mib(nv["rss"]),
                     _mib(nv["anon"]), note))
        from cpmosaic.mosaic import make_plan

        levels = make_plan("LSSTCam", 8).n_levels
        oz = run_child("omezarr", array_path=str(work / "naive.npy"), store=str(work / "omezarr.zarr"), levels=levels)
        note = (f"pyramid of the in-memory array only; cpmosaic whole build {oz['wall'] / ours[8]['wall']:.1f}x "
                f"faster, peak RSS {ours[8]['rss'] / oz['rss']:.2f}x, anon {ours[8]['anon'] / oz['anon']:.2f}x"
                if 8 in ours else "")
        rows.append(("ome-zarr-py write_image b=8", n, 8, f"{oz['wall']:.2f}", "-", _mib(oz["rss"]), _mib(oz["anon"]),
                     note))
        for c in scaling:
            r = run_child("build", files=[str(p) for p in all_files[:c]], store=str(work / f"s{c}.zarr"),
                          binning=1, workers=args.workers)
            size = sum(os.path.getsize(p) for p in all_files[:c])
            rows.append(("cpmosaic build b=1 (scaling)", c, 1, f"{r['wall']:.2f}", f"{size / r['wall'] / 1e9:.2f}",
                         _mib(r["rss"]), _mib(r["anon"]),
                         f"{r['workers']} threads; after imports {_mib(r['rss_base'])} MiB"))
            shutil.rmtree(work / f"s{c}.zarr", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return _print(rows, n, in_bytes)


def _print(rows: list, n: int, in_bytes: int) -> int:
    out = sys.stdout.write
    out(f"\nInputs: {n} real-size LSSTCam detectors ({in_bytes / 1e9:.2f} GB of float32 FITS, warm page cache); "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the end.\n\n")
    out("| case | detectors | binning | wall s | input GB/s | peak RSS MiB | peak anon MiB | notes |\n")
    out("|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        out("| " + " | ".join(str(v) for v in r) + " |\n")
    return 0


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.0f}"


if __name__ == "__main__":
    raise SystemExit(main())
