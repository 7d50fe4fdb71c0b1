"""``cpmosaic info STORE``: levels, shapes, chunks and shards, detectors present and missing."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .options import add_storage_options


def register(sub) -> None:
    p = sub.add_parser("info", help="describe a mosaic store", description=__doc__)
    p.add_argument("store", metavar="STORE", help="mosaic store path or URL")
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_storage_options(p)
    p.set_defaults(func=run)


def info_document(m, store: str) -> dict:
    """The JSON document of ``info --format json``."""
    levels = []
    for k in range(m.n_levels):
        levels.append({
            "level": k, "shape": list(m.shape(k)), "chunks": list(m.chunks(k)),
            "shards": list(m.shards(k)) if m.shards(k) else None,
            "detector_pixels_per_pixel": m.level_scale(k), "scale_um": list(m.scale_um(k)),
            "translation_um": list(m.translation_um(k)), "extent_mm": list(m.extent_mm(k)),
            "window": None if m.window(k) is None else list(m.window(k)),
        })
    return {
        "store": store, "camera": m.camera, "binning": m.binning, "complete": m.complete,
        "name": m.attrs.get("name"), "levels": levels,
        "detectors": {"present": m.present, "missing": m.missing},
        "inputs": len(m.inputs), "bad_inputs": m.attrs.get("bad_inputs", []),
    }


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..mosaic.reader import read_metadata

    try:
        m = read_metadata(args.store, args.storage_options)  # JSON only for a local store: no zarr, no numpy
    except InputError as exc:  # not a store, or a damaged one: one line, no traceback
        logging.getLogger(__name__).error("%s", exc)
        return 2
    doc = info_document(m, args.store)
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    w = sys.stdout.write
    w(f"{args.store}: {doc['name']} ({m.camera}, binning {m.binning})"
      + ("" if m.complete else "  INCOMPLETE: resume the build with cpmosaic mosaic --resume") + "\n")
    w(f"{'level':>5} {'shape (y, x)':>16} {'chunks':>11} {'shards':>13} {'det px/px':>9} {'x mm':>19} {'y mm':>19} "
      f"{'display window':>23}\n")
    for lv in doc["levels"]:
        sh = "x".join(map(str, lv["shards"])) if lv["shards"] else "-"
        ext = lv["extent_mm"]
        w(f"{lv['level']:>5} {lv['shape'][0]:>7} x {lv['shape'][1]:<6} {'x'.join(map(str, lv['chunks'])):>11} "
          f"{sh:>13} {lv['detector_pixels_per_pixel']:>9} {ext[0]:>9.2f}..{ext[1]:<8.2f} {ext[2]:>9.2f}..{ext[3]:<8.2f} "
          + (f"{lv['window'][0]:>11.4g}..{lv['window'][1]:<10.4g}" if lv["window"] else f"{'-':>11}")
          + "\n")
    present, missing = doc["detectors"]["present"], doc["detectors"]["missing"]
    w(f"detectors: {len(present)} present, {len(missing)} missing\n")
    no_input = [d["name"] for d in missing if d.get("reason") == "no input"]
    if no_input:
        w(f"  no input ({len(no_input)}): {' '.join(no_input[:20])}{' ...' if len(no_input) > 20 else ''}\n")
    for d in missing:
        if d.get("reason") != "no input":
            w(f"  {d['name']}: {d['reason']}" + (f" ({d['path']})" if d.get("path") else "") + "\n")
    return 0
