"""``cpmosaic mosaic INPUT... -o STORE``: build a multi-resolution focal-plane mosaic."""

from __future__ import annotations

import argparse
import logging
import sys

from .options import add_storage_options

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("mosaic", help="build a focal-plane mosaic store (zarr v3 + OME-Zarr 0.5)",
                       description=__doc__)
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="FITS files (raw or processed), directories (searched recursively) or "
                        "butler://ROOT?collection=C&dataset=T URLs")
    p.add_argument("-o", "--output", required=True, metavar="STORE", help="output store: a path or an fsspec URL")
    add_storage_options(p)
    p.add_argument("--camera", metavar="NAME|PATH", help="camera (default: from the file headers)")
    p.add_argument("--binning", type=int, default=1, metavar="N", help="detector pixels per level-0 pixel (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask.distributed scheduler (tcp://host:port), or threads (default), sync, processes")
    p.add_argument("--workers", type=int, metavar="N", help="local threads (default: as many as memory allows)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="finish an interrupted build (only missing shards)")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.add_argument("--overscan", choices=("median", "mean", "single", "none"), default="median",
                   help="overscan correction of raw files (default median per row)")
    p.add_argument("--apply-gains", action="store_true", help="raw files: multiply by amp gains (ADU -> e-)")
    p.add_argument("--chunk", type=int, default=256, metavar="PX", help="chunk (tile) size (default 256)")
    p.add_argument("--compressor", default=None,
                   help="blosc-lz4-bitshuffle (default for a new store; a resumed one keeps its own), blosc-lz4, "
                        "blosc-zstd, zstd[-LEVEL] (1..22) or none")
    p.add_argument("--butler", metavar="ROOT", help="Butler repository to take inputs from")
    p.add_argument("--collection", help="Butler collection (with --butler)")
    p.add_argument("--dataset-type", help="Butler dataset type, e.g. verifyBiasProc (with --butler)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal)")
    p.set_defaults(func=run)


def _usage(message: str) -> int:
    log.error("%s", message)
    return 2


def run(args: argparse.Namespace) -> int:
    from ..mosaic._startup import lean_process

    lean_process()  # this process runs our kernels only, and starts faster (see cpmosaic.mosaic._startup)
    from ..errors import CameraError, InputError
    from ..mosaic.build import build_mosaic
    from ..mosaic.inputs import CameraNotNamedError, butler_paths
    from ..mosaic.plan import BinningError, OptionError
    from ..mosaic.schedule import parse_scheduler
    from ..mosaic.store import StoreExistsError, compressor_codecs

    # every option checked before anything is read or written
    if args.binning < 1:
        return _usage(f"--binning must be >= 1, got {args.binning}")
    if args.workers is not None and args.workers < 1:
        return _usage(f"--workers must be >= 1, got {args.workers}")
    if args.chunk < 2 or args.chunk % 2:
        return _usage(f"--chunk must be even and >= 2, got {args.chunk}")
    for flag, check, value in (("--compressor", compressor_codecs, args.compressor or "none"),
                               ("--scheduler", parse_scheduler, args.scheduler)):
        try:
            check(value)
        except ValueError as exc:
            return _usage(f"{flag}: {exc}")
    inputs = list(args.inputs)
    if args.butler:
        if not (args.collection and args.dataset_type):
            return _usage("--butler needs --collection and --dataset-type")
        inputs += butler_paths(root=args.butler, collection=args.collection, dataset_type=args.dataset_type)
    if not inputs:
        return _usage("no inputs: give FITS files, directories or --butler")
    try:
        report = build_mosaic(inputs, args.output, camera=args.camera, binning=args.binning,
                              scheduler=args.scheduler, resume=args.resume, overwrite=args.overwrite,
                              overscan=args.overscan, apply_gains=args.apply_gains, chunk=args.chunk,
                              compressor=args.compressor, num_workers=args.workers, progress=args.progress,
                              storage_options=args.storage_options)
    except BinningError as exc:
        return _usage(f"--binning: {exc}")
    except CameraError as exc:  # a bad --camera value or file
        return _usage(f"--camera: {exc}" if args.camera else str(exc))
    except CameraNotNamedError as exc:
        return _usage(f"{exc}: give --camera NAME|PATH")
    except StoreExistsError as exc:
        log.error("%s%s", exc, "" if "not a zarr store" in str(exc) else
                  "; use --resume to finish it or --overwrite to replace it")
        return 1
    except InputError as exc:
        if str(exc.problem).startswith("cannot resume"):
            log.error("%s (use --overwrite to start again)", exc)
            return 1
        raise
    except OptionError as exc:
        return _usage(str(exc))  # an option value the library refused before writing anything
    plan = report.plan
    out = sys.stdout.write
    out(f"{report.store}: {plan.camera_name} binning {plan.binning}, {plan.n_levels} levels, "
        f"level 0 {plan.shape[1]} x {plan.shape[0]}, {report.detectors} detectors, "
        f"{report.shards_written} shards written" + (f", {report.shards_skipped} already done" if report.shards_skipped
                                                     else "") + "\n")
    no_input = [m for m in report.missing if m.get("reason") == "no input"]
    if no_input:
        out(f"{len(no_input)} detectors had no input\n")
    if report.partial:
        err = sys.stderr.write
        for b in report.bad_inputs:
            err(f"bad input: {b['path']}: {b['reason']}\n")
        for f in report.failed:
            err(f"failed: {f['name']} ({f['path']}): {f['reason']}\n")
        err(f"mosaic built without {len(report.bad_inputs) + len(report.failed)} bad input(s); "
            "those detectors are empty (NaN)\n")
        return 3
    return 0
