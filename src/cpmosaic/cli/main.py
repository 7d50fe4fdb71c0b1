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
    "export_tiles",
    "explore",
    "demo",
)

#: Exit codes: 0 ok, 1 failure (or alerts for ``history check``), 2 usage,
#: 3 partial success (some inputs bad, the rest processed).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def _command_in(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names (its first non-option word), if it is one of :data:`COMMANDS`."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` (start-up: one command's module
    is imported, not all of them and what they import to register)."""
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
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(f".cmd_{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"cmd_{name}"):
                continue
            raise
        module.register(sub)
    return parser


def setup_logging(verbose: int, quiet: bool) -> None:
    """INFO by default (long jobs say what they do); -q warnings only; -v debug
    for cpmosaic; -vv debug for the libraries underneath too."""
    level = logging.WARNING if quiet else (logging.INFO if verbose == 0 else logging.DEBUG)
    logging.basicConfig(level=logging.INFO if verbose < 2 and not quiet else level,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("cpmosaic").setLevel(level)
    if verbose < 2:
        for noisy in ("numba", "distributed", "bokeh", "fsspec", "asyncio", "matplotlib", "PIL", "lsst"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(argv))
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
    except BrokenPipeError:  # output piped into head & co.
        return EXIT_OK
    except (ValueError, OSError) as exc:
        # bad option values and unreachable files or schedulers: one line, not a
        # traceback (which -v still shows)
        log.error("%s", exc, exc_info=args.verbose > 0)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
