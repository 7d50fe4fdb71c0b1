"""The display layer (``cpmosaic.viz.display``) against the libraries it builds on, same run.

On one float32 image (``--size`` square, lognormal sky with NaN gaps, seeded):

* eq_hist: the display layer's quantile table (fitted once on a subsample, applied with
  ``np.interp``; one mapping for every tile of a store) vs datashader's
  ``transfer_functions.eq_hist`` (a 65,536-bin histogram of the whole image each call),
  applying a fitted table and fitting + applying;
* stretch: ``display.Normalize`` (float32, astropy's stretch in place) vs astropy's
  stretch applied the plain way (``stretch(clip((x - lo) / (hi - lo)))``, float64);
* colour: ``display.to_rgba`` (256-entry table) vs datashader's ``tf.shade(how="linear",
  span=(0, 1))`` on the same display values (the colour path ``cpmosaic png`` had);
* interval: ``display.interval_limits("zscale")`` vs astropy's ``ZScaleInterval`` on the
  finite values;
* tile colour: ``serve.tiles.to_rgba`` on a 256 x 256 tile (asinh) vs the tile server's colour
  code before the display layer (copied below as ``old_tile_rgba``: its own asinh, round to
  0..255, LUT), per tile.

Prints a markdown table: best of ``--repeats`` in ms, and ours / library.

    python benchmarks/bench_display.py
    python benchmarks/bench_display.py --size 1024 --repeats 3
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _timing import best_of


def old_tile_rgba(data: np.ndarray, lo: float, hi: float, lut: np.ndarray) -> np.ndarray:
    """The tile server's colour path before the display layer (serve/tiles.py, asinh)."""
    bad = ~np.isfinite(data)
    with np.errstate(invalid="ignore"):
        v = np.clip((data.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
        v = np.arcsinh(v / 0.1) / np.arcsinh(1.0 / 0.1)
    idx = np.nan_to_num(v * 255.0 + 0.5, nan=0.0).clip(0, 255).astype(np.uint8)
    rgba = lut[idx]
    rgba[bad] = 0
    return rgba


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    import datashader.transfer_functions as tf
    import xarray as xr
    from astropy.visualization import AsinhStretch, ZScaleInterval

    from cpmosaic.viz import display

    rng = np.random.default_rng(20261206)
    img = rng.lognormal(6.0, 1.0, (args.size, args.size)).astype(np.float32)
    img[:, : args.size // 16] = np.nan  # a gap between detectors
    lo, hi = display.interval_limits("percentile", img)
    norm = display.fit("asinh", None, limits=(lo, hi))
    values = norm(img)
    lut = display.colormap_lut("fire")
    fire = list(display.palette("fire"))
    mask = ~np.isfinite(img)

    eq = display.fit("eq_hist", img)

    from cpmosaic.serve import tiles

    class _Styles:  # a store's fitted mapping, as StoreStyleCache hands it out
        def normalize(self, style):
            return norm

    tile = img[1000:1256, 1000:1256] if args.size >= 1256 else img[:256, :256]
    style = tiles.Style(stretch="asinh", rescale=(lo, hi), colormap="fire")

    rows = [
        ("tile colour 256 x 256 (asinh, fire)", lambda: tiles.to_rgba(tile, style, _Styles()),
         lambda: old_tile_rgba(tile, lo, hi, lut), "tiles.py before the display layer"),
        ("eq_hist apply (one table per store)", lambda: eq(img), lambda: tf.eq_hist(img, mask=mask),
         "datashader eq_hist"),
        ("eq_hist fit + apply", lambda: display.fit("eq_hist", img)(img), lambda: tf.eq_hist(img, mask=mask),
         "datashader eq_hist"),
        ("asinh stretch", lambda: norm(img),
         lambda: AsinhStretch(0.1)(np.clip((img.astype(np.float64) - lo) / (hi - lo), 0, 1)),
         "astropy AsinhStretch, float64"),
        ("colour (values -> RGBA)", lambda: display.to_rgba(values, lut),
         lambda: tf.shade(xr.DataArray(values, dims=("y", "x")), cmap=fire, how="linear", span=(0.0, 1.0)),
         "datashader tf.shade linear"),
        ("zscale interval", lambda: display.interval_limits("zscale", img),
         lambda: ZScaleInterval().get_limits(img[np.isfinite(img)]), "astropy ZScaleInterval"),
    ]
    print(f"\nimage {args.size} x {args.size} float32, best of {args.repeats}; load {os.getloadavg()[0]:.2f}\n")
    print("| step | cpmosaic.viz.display ms | baseline ms | baseline | display / baseline |")
    print("|---|---:|---:|---|---:|")
    for name, ours, lib, lib_name in rows:
        ours(), lib()  # warm: imports, numba/astropy caches
        n = args.repeats * (50 if name.startswith("tile") else 1)
        a, b = best_of(ours, n)[0] * 1e3, best_of(lib, n)[0] * 1e3
        print(f"| {name} | {a:.2f} | {b:.2f} | {lib_name} | {a / b:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
