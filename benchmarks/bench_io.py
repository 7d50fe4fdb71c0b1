"""Benchmark the exposure readers against the naive astropy way.

Cases (one full-size E2V raw, 16 x 576 x 2048 int32 with bias + noise, written
to a temporary directory uncompressed and RICE_1 tile-compressed; one 4k x 4k
processed file):

* full raw read + assembly: ``open_exposure(path).read()`` vs open, ``.data`` per
  HDU, numpy median over the overscan, flip, concatenate;
* a 100-row read of the raw (``read(rows)``) vs the same naive full assembly;
* row-range reads of a processed file vs a full read of it.

Files are warm in the page cache (both sides alike); best of N runs.

Usage: ``python benchmarks/bench_io.py [--quick]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from cpmosaic.camera import get_camera
from cpmosaic.io import open_exposure, write_processed_fits
from _timing import best_of


def make_raw(path: Path, det, rng, compress: bool) -> Path:
    hdus = [fits.PrimaryHDU(header=fits.Header({"INSTRUME": "LSSTCam", "RAFTBAY": det.raft, "CCDSLOT": det.sensor,
                                                 "DAYOBS": "20250618", "SEQNUM": 1, "IMGTYPE": "FLAT"}))]  # fmt: skip
    for amp in sorted(det.amplifiers, key=lambda a: a.hdu):
        seg = rng.normal(15000, 7, amp.raw_bbox.shape)
        seg[amp.raw_data_bbox.slices] += rng.normal(20000, 140, amp.raw_data_bbox.shape)
        h = fits.Header({"EXTNAME": amp.segment_name})
        data = seg.astype(np.int32)
        hdus.append(fits.CompImageHDU(data, header=h, compression_type="RICE_1") if compress
                    else fits.ImageHDU(data, header=h))  # fmt: skip
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def naive_assembly(path: Path, det) -> np.ndarray:
    """What a script without cpmosaic does: whole HDUs, numpy, concatenate."""
    nrow = max(a.iy for a in det.amplifiers) + 1
    ncol = max(a.ix for a in det.amplifiers) + 1
    grid = [[None] * ncol for _ in range(nrow)]
    with fits.open(path) as hdul:
        for amp in det.amplifiers:
            seg = hdul[amp.segment_name].data.astype(np.float32)
            data = seg[amp.raw_data_bbox.slices] - np.median(seg[amp.raw_serial_overscan_bbox.slices], axis=1)[:, None]
            if amp.flip_x:
                data = data[:, ::-1]
            if amp.flip_y:
                data = data[::-1]
            grid[amp.iy][amp.ix] = data
    return np.concatenate([np.concatenate(row, axis=1) for row in grid], axis=0)


def read_rows(path, rows=None):
    with open_exposure(path) as exp:
        return exp.read(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args(argv)
    repeats = 2 if args.quick else 5
    rng = np.random.default_rng(7)
    det = get_camera("LSSTCam")["R22_S11"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for compress in (False, True):
            label = "RICE" if compress else "uncompressed"
            path = make_raw(tmp / f"raw_{label}.fits", det, rng, compress)
            ours = read_rows(path)  # also compiles the kernel
            ref = naive_assembly(path, det)
            assert np.allclose(ours, ref, atol=0.5), "cpmosaic and naive assemblies differ"
            t_naive = best_of(lambda: naive_assembly(path, det), repeats)[0]
            t_ours = best_of(lambda: read_rows(path), repeats)[0]
            t_rows = best_of(lambda: read_rows(path, slice(1950, 2050)), repeats)[0]
            rows.append((f"raw {label}: full assembly", t_ours, t_naive))
            rows.append((f"raw {label}: 100 rows (crossing C0x/C1x)", t_rows, t_naive))
        image = rng.normal(1000, 10, (4000, 4000)).astype(np.float32)
        proc = write_processed_fits(tmp / "proc.fits", image, variance=image, mask=np.zeros(image.shape, np.int32))
        t_full = best_of(lambda: read_rows(proc), repeats)[0]
        t_astropy = best_of(lambda: fits.getdata(proc, "IMAGE").astype(np.float32), repeats)[0]
        rows.append(("processed 4k x 4k: full read", t_full, t_astropy))
        for n in (1, 100, 1000):
            t = best_of(lambda: read_rows(proc, slice(2000, 2000 + n)), repeats)[0]
            rows.append((f"processed: {n} rows vs full read", t, t_full))
        # identification (every mosaic input is identified first): our header scan vs astropy
        from cpmosaic.io import formats as formats_module, identify

        t_scan = best_of(lambda: identify(proc), repeats * 4)[0]
        scan, formats_module._scan = formats_module._scan, lambda p: None
        try:
            t_headers = best_of(lambda: identify(proc), repeats * 4)[0]
        finally:
            formats_module._scan = scan
        rows.append(("processed: identify (header scan vs astropy)", t_scan, t_headers))
    print("| case | cpmosaic (ms) | baseline (ms) | speed-up |")
    print("|---|---:|---:|---:|")
    for name, ours, base in rows:
        print(f"| {name} | {ours * 1e3:.1f} | {base * 1e3:.1f} | {base / ours:.1f}x |")
    print("\nbaseline: naive astropy assembly for raws; astropy getdata + float32 (first processed row); "
          "cpmosaic full read (row-range rows); cpmosaic's astropy path (identify).")


if __name__ == "__main__":
    main()
