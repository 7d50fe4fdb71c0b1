"""Entry point: argument parsing, logging, exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import CpmosaicError

log = logging.getLogger("cpmosaic")

#: Subcommand modules, in the order --help lists them.  A module that is not
#: there yet (optional parts) is skipped.
COMMANDS = (
    "camera",
    "inspect",
    "assemble",
    "synth",
    "mosaic",
    "info",
    "png",
    "metrics",
    "compare",
    "history",
    "report",
    "serve",
    "explore",
    "demo",
)

#: Exit codes: 0 ok, 1 failure (or alerts for ``history check``), 2 usage,
#: 3 partial success (some inputs bad, the rest processed).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="cpmosaic",
        description="Focal-plane mosaics and calibration-verification metrics for the Rubin camera.",
    )
    parser.add_argument("--version", action="version", version=f"cpmosaic {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".cmd_{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"cmd_{name}"):
                continue
            raise
        module.register(sub)
    return parser


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.INFO if verbose <= 1 else logging.DEBUG)
    if not quiet and verbose == 0:
        level = logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose < 2:
        for noisy in ("numba", "distributed", "bokeh", "fsspec", "asyncio", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    setup_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except CpmosaicError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_OK
