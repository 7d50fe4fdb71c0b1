"""``cpmosaic export-tiles STORE --format dzi|xyz -o DIR``: a static tile pyramid for hosting without a server.

Deep Zoom (``DIR/NAME.dzi`` + ``DIR/NAME_files/``, for OpenSeadragon) or XYZ (``DIR/Z/X/Y.png``
+ ``DIR/tilejson.json``, for Leaflet ``CRS.Simple`` or OpenLayers); the same tiles
``cpmosaic serve`` renders, streamed by rows of tiles on a thread pool (``--dask``: dask's
threaded scheduler) with bounded memory.
"""

from __future__ import annotations

import argparse
import logging

from .cmd_serve import int_in
from .options import add_storage_options

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("export-tiles", help="write a static Deep Zoom or XYZ tile pyramid of a mosaic store",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", metavar="STORE", help="mosaic store path or URL")
    p.add_argument("--format", choices=("dzi", "xyz"), default="dzi", help="tile layout (default dzi)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--name", help="image name (default: the store's folder name without .zarr)")
    p.add_argument("--stretch", default="linear",
                   help="linear, log, asinh, zscale, percentile or eq_hist (default linear)")
    p.add_argument("--rescale", metavar="MIN,MAX", help="display limits (default: the store's window)")
    p.add_argument("--colormap", default="gray", help="colour map name (default gray)")
    p.add_argument("--workers", type=int_in(1, 1024), default=None, help="threads (default: CPUs)")
    p.add_argument("--dask", action="store_true", help="run the tasks on dask's threaded scheduler (same tiles)")
    add_storage_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..mosaic._startup import lean_process, load_numba_target, startup_done

    lean_process()  # a process that runs our kernels only: see cpmosaic.mosaic._startup
    load_numba_target()  # before the colour kernel loads: no scipy BLAS probe
    from ..serve.export import export_tiles
    from ..serve.tiles import BadParameter, parse_style

    query = {"stretch": [args.stretch], "colormap_name": [args.colormap]}
    if args.rescale:
        query["rescale"] = [args.rescale]
    try:
        style = parse_style(query)
    except BadParameter as exc:
        log.error("--%s", str(exc).replace("colormap_name", "colormap"))
        return 2
    startup_done()  # the collector back on (frozen start-up objects) for the streaming part
    res = export_tiles(args.store, args.output, args.format, style, name=args.name,
                       storage_options=args.storage_options, workers=args.workers, use_dask=args.dask)
    log.info("wrote %d tiles to %s in %.1f s", res["tiles"], res["path"], res["seconds"])
    return 0
