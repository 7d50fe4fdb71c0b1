"""Benchmark raw LSSTCam files to a binning-8 mosaic: cpmosaic against the naive way.

Real-size raws are written to a temporary directory (``--workdir``): per detector
16 int32 amp segments of 576 x 2048 (E2V and ITL layouts, wavefront half-chips
have 8), uncompressed, 75.5 MB a file (``--compress``: RICE_1, about a third),
nearest the focal-plane centre first.  Each segment holds a bias level with a
per-row drift, in the data box and the serial overscan alike, plus signal and
noise in the data box.  In one run, alternating ``--repeats`` times and keeping
the best of each:

* cpmosaic: ``build_mosaic(files, binning=8, overscan="median", apply_gains=True)``,
  the whole multi-resolution store;
* the naive way: for each file, astropy reads every segment, numpy takes the
  per-row median of the serial overscan, subtracts it, trims to the data box,
  multiplies by the gain and flips the amp into place; then the detector is
  binned by a block mean, turned by its quarter turns and pasted into one
  full-plane array, saved with ``np.save`` (level 0 only: less work than the
  store's pyramid).

Imports, numba kernels and the camera geometry are loaded before the clock
starts (both sides); the files sit in the page cache (written just before).
A check that both give the same level-0 pixels (where both have a full block)
is printed with the figures.

Usage::

    python benchmarks/bench_raw_mosaic.py                   # 4 detectors, 302 MB of raws
    python benchmarks/bench_raw_mosaic.py --detectors 9 --repeats 3
    python benchmarks/bench_raw_mosaic.py --detectors 9 --compress
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def detector_order(camera) -> list:
    """Detectors nearest the focal-plane centre first (the first 9 are raft R22)."""
    return sorted(camera, key=lambda d: (round(float(np.hypot(*d.center_mm)), 3), d.id))


def make_raws(directory: Path, n: int, compress: bool, seed: int = 0) -> list[Path]:
    """``n`` real-size raws (see the module docstring); existing files are kept."""
    from astropy.io import fits

    from cpmosaic.camera import get_camera

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cache: dict = {}
    paths = []
    for det in detector_order(get_camera("LSSTCam"))[:n]:
        path = directory / f"2025061800001-{det.raft}-{det.sensor}-det{det.id:03d}.fits"
        paths.append(path)
        if path.exists():
            continue
        head = fits.Header({"INSTRUME": "LSSTCam", "RAFTBAY": det.raft, "CCDSLOT": det.sensor, "DAYOBS": "20250618",
                            "SEQNUM": 1, "CONTRLLR": "O", "IMGTYPE": "FLAT", "EXPTIME": 15.0})  # fmt: skip
        hdus = [fits.PrimaryHDU(header=head)]
        for amp in sorted(det.amplifiers, key=lambda a: a.hdu):
            shape = amp.raw_bbox.shape
            if shape not in cache:  # one noise field per layout: writing, not drawing, is what we time
                d = amp.raw_data_bbox
                seg = rng.normal(0.0, 6.0, shape)
                seg[d.slices] += rng.normal(20000.0 / 1.5, 120.0, d.shape)
                cache[shape] = seg
            level = 15000 + 300 * amp.hdu + rng.normal(0.0, 3.0, shape[0]).cumsum()  # per-row drift
            data = np.rint(cache[shape] + level[:, None]).astype(np.int32)
            header = fits.Header({"EXTNAME": amp.segment_name})
            hdus.append(fits.CompImageHDU(data, header=header, compression_type="RICE_1") if compress
                        else fits.ImageHDU(data, header=header))  # fmt: skip
        fits.HDUList(hdus).writeto(path, overwrite=True)
    return paths


def naive_detector(path: Path, det) -> np.ndarray:
    """astropy read, per-amp per-row median overscan, trim, gain, flips (float32)."""
    from astropy.io import fits

    out = np.empty(det.shape, np.float32)
    with fits.open(path) as hdul:
        for amp in det.amplifiers:
            seg = hdul[amp.segment_name].data.astype(np.float32)
            data = seg[amp.raw_data_bbox.slices] - np.median(seg[amp.raw_serial_overscan_bbox.slices], axis=1)[:, None]
            data *= np.float32(amp.gain)
            if amp.flip_x:
                data = data[:, ::-1]
            if amp.flip_y:
                data = data[::-1]
            out[amp.bbox.slices] = data
    return out


def naive_mosaic(paths: list[Path], binning: int) -> np.ndarray:
    """The visualizeVisit way (``naive_visualize_visit.naive_mosaic``) on raws assembled with astropy."""
    from cpmosaic.camera import get_camera

    from naive_visualize_visit import naive_mosaic as visualize_visit

    cam = get_camera("LSSTCam")

    def read(path: Path) -> tuple[str, np.ndarray]:
        name = "_".join(path.name.split("-")[1:3])
        return name, naive_detector(path, cam[name])

    return visualize_visit(paths, cam, binning, read=read)


def warm_up(path: Path, work: Path) -> None:
    """Imports, numba kernels and camera geometry, before any clock starts (both sides)."""
    from cpmosaic.mosaic import build_mosaic

    build_mosaic([path], work / "warm.zarr", binning=8, overscan="median", apply_gains=True, overwrite=True,
                 progress=False)  # fmt: skip
    naive_mosaic([path], 8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detectors", type=int, default=4, help="raws (75.5 MB each uncompressed; default 4)")
    ap.add_argument("--binning", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each side; best kept (default 2)")
    ap.add_argument("--compress", action="store_true", help="RICE_1 tile-compressed raws")
    ap.add_argument("--workdir", help="where to write raws and outputs (default: a temporary directory)")
    args = ap.parse_args(argv)

    from cpmosaic.mosaic import build_mosaic, open_mosaic

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_raw_mosaic_"))
    try:
        paths = make_raws(work / "raws", args.detectors, args.compress)
        size = sum(p.stat().st_size for p in paths)
        for p in paths:  # into the page cache
            p.read_bytes()
        warm_up(paths[0], work)
        best = {"cpmosaic": math.inf, "naive": math.inf}
        for _ in range(args.repeats):
            t = time.perf_counter()
            build_mosaic(paths, work / "m.zarr", binning=args.binning, overscan="median", apply_gains=True,
                         overwrite=True, progress=False)  # fmt: skip
            best["cpmosaic"] = min(best["cpmosaic"], time.perf_counter() - t)
            t = time.perf_counter()
            naive = naive_mosaic(paths, args.binning)
            np.save(work / "naive.npy", naive)
            best["naive"] = min(best["naive"], time.perf_counter() - t)
        got = open_mosaic(work / "m.zarr").read(0)
        both = np.isfinite(got) & np.isfinite(naive) if got.shape == naive.shape else None
        check = ("shapes differ" if both is None else
                 f"max |cpmosaic - naive| {np.abs(got[both] - naive[both]).max():.3g} e- over {both.sum()} pixels")
        load = os.getloadavg()[0]
        w = sys.stdout.write
        w(f"{args.detectors} raw(s), {size / 1e6:.0f} MB {'RICE_1' if args.compress else 'uncompressed'}, "
          f"binning {args.binning}, best of {args.repeats}; {check}; load {load:.2f}\n\n")
        w("| case | wall s | input MB/s | speed-up |\n|---|---:|---:|---:|\n")
        for name in ("cpmosaic", "naive"):
            w(f"| {name} | {best[name]:.2f} | {size / 1e6 / best[name]:.0f} | "
              f"{best['naive'] / best[name]:.1f}x |\n")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
