"""Progress reporting: a tqdm bar on terminals, quiet elsewhere.

Long-running functions accept ``progress: bool | None``; ``None`` means "show a
bar when stderr is a terminal and the CLI has not turned bars off".  Bars never
go to a redirected stderr unless a caller passes ``progress=True`` itself (a
command's explicit ``--progress``); :func:`enable` (the CLI's ``--no-progress``)
can only turn them off.  Notebooks can use dask's own progress bars instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_FORCED: bool | None = None


def enable(flag: bool | None = True) -> None:
    """Allow progress bars on a terminal (True or None) or turn them off (False)."""
    global _FORCED
    _FORCED = flag


def wanted(progress: bool | None = None) -> bool:
    """Whether to draw a bar: ``progress`` when given, else on a terminal unless turned off.

    >>> wanted(False), wanted(True)
    (False, True)
    """
    if progress is not None:
        return progress
    if _FORCED is False:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def track(iterable: Iterable[T], *, total: int | None = None, desc: str = "", progress: bool | None = None) -> Iterator[T]:
    """Iterate with a progress bar when progress is wanted."""
    if not wanted(progress):
        yield from iterable
        return
    from tqdm.auto import tqdm

    with tqdm(iterable, total=total, desc=desc, unit="it", dynamic_ncols=True, file=sys.stderr) as bar:
        yield from bar


@contextmanager
def bar(total: int, desc: str = "", progress: bool | None = None, unit: str = "it"):
    """A manual bar: ``with bar(n) as b: b.update(1)``; a no-op object when off."""
    if not wanted(progress):
        class _Null:
            def update(self, n: int = 1) -> None:
                pass

            def set_postfix_str(self, s: str) -> None:
                pass

        yield _Null()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr) as b:
        yield b
