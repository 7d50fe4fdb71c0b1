"""``cpmosaic png STORE -o FILE.png``: render a mosaic level through the display layer (+y up).

Colours are those of the tile server and the notebook views for the same store, stretch
and colour map (:mod:`cpmosaic.viz.display`).
"""

from __future__ import annotations

import argparse
import sys

from .options import add_storage_options


def register(sub) -> None:
    from ..viz.display import STRETCHES  # light: numpy only at import

    p = sub.add_parser("png", help="render a mosaic store to PNG", description=__doc__)
    p.add_argument("store", metavar="STORE", help="mosaic store path or URL")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--level", type=int, metavar="N", help="draw level N at its own size")
    size.add_argument("--width", type=int, metavar="PX", help="output width in pixels")
    p.add_argument("--stretch", choices=STRETCHES, default="linear",
                   help="default linear; linear/sqrt/log/asinh use the store's display window, "
                   "zscale/percentile/eq_hist are fitted on the coarsest level")
    p.add_argument("--cmap", default="gray", metavar="NAME",
                   help="colour map: gray, a colorcet or bokeh name (default gray)")
    p.add_argument("--background", metavar="COLOR", help="colour under empty (NaN) pixels (default transparent)")
    p.add_argument("--limits", type=float, nargs=2, metavar=("LO", "HI"), help="explicit display limits")
    add_storage_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..viz.render import TooLargeToRender, render_png

    if args.width is not None and args.width < 1:
        sys.stderr.write("--width must be >= 1\n")
        return 2
    try:
        w, h = render_png(args.store, args.output, level=args.level, width=args.width, stretch=args.stretch,
                          cmap=args.cmap, background=args.background,
                          limits=tuple(args.limits) if args.limits else None,
                          storage_options=args.storage_options)
    except TooLargeToRender as exc:
        sys.stderr.write(f"cpmosaic png: level {exc.level} is {exc.width} x {exc.height} pixels, too large to "
                         "render at once: use a coarser --level or a smaller --width\n")
        return 2
    except InputError as exc:  # not a store, or a damaged one: one line, no traceback, as `info`
        sys.stderr.write(f"cpmosaic png: {exc}\n")
        return 2
    except ValueError as exc:
        if type(exc).__module__.startswith("cpmosaic.errors"):
            raise
        sys.stderr.write(f"cpmosaic png: {exc}\n")
        return 2
    sys.stdout.write(f"{args.output}: {w} x {h}\n")
    return 0
