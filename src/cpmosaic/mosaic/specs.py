"""What one shard task is told to do: frozen task specs.

A build is a graph of shard tasks (:mod:`cpmosaic.mosaic.graph`); each gets
one of these specs.  They are frozen so that a task cannot change what the
graph (or a retry of the same task) sees.

>>> from cpmosaic.mosaic.specs import ShardKey
>>> ShardKey(0, 1, 2).marker_key
'0/done/1_2'
"""

from __future__ import annotations

from dataclasses import dataclass

from ..io.cache import ReadOptions
from .plan import Placement

__all__ = ["Level0Spec", "PyramidSpec", "ReadOptions", "ShardKey", "Source"]

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ShardKey:
    """Shard ``(i, j)`` of ``level``."""

    level: int
    i: int
    j: int

    @property
    def marker_key(self) -> str:
        """Store key (relative to the group) of this shard's marker."""
        return f"{self.level}/done/{self.i}_{self.j}"


@dataclass(frozen=True)
class Source:
    """One detector file feeding a level-0 shard."""

    placement: Placement
    path: str


@dataclass(frozen=True)
class Level0Spec:
    """A level-0 shard: read, bin, turn and paste ``sources`` into ``box``.

    ``clear``: write the whole shard (a repair erasing a dropped detector);
    ``halve``: hand a halved copy to the next level; ``build_id``: the store's
    build, written into the marker; ``writer``: the claim checked before
    writing, unless ``locked`` (the build holds the store's OS lock and runs on
    this machine: no other writer can be there; see :mod:`cpmosaic.mosaic.owner`).
    """

    key: ShardKey
    box: Box
    binning: int
    sources: tuple[Source, ...]
    options: ReadOptions
    clear: bool
    halve: bool
    build_id: str
    writer: str
    locked: bool = False


@dataclass(frozen=True)
class PyramidSpec:
    """A shard of level k > 0, made from the level k-1 shards below it.

    ``data_box``: the level k-1 box with data (None: nothing to paste);
    ``read_back``: level k-1 boxes to read from the store (done before a resume).
    """

    key: ShardKey
    box: Box
    data_box: Box | None
    read_back: tuple[Box, ...]
    clear: bool
    halve: bool
    build_id: str
    writer: str
    locked: bool = False
