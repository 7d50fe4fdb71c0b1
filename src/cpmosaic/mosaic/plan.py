"""The output grid of a focal-plane mosaic: where each detector goes, levels, shards.

Level 0 pixels are ``b x b`` detector pixels (``b`` the binning).  The grid is
anchored to the focal plane: level-0 column ``j`` covers focal-plane x in
``[(gx0 + j) * S, (gx0 + j + 1) * S)`` mm with ``S = pixel_size * b``, rows the same
in y (the row index grows with focal-plane y).  A detector is binned in its own
frame (blocks start at its pixel (0, 0); a partial block at the high end uses the
pixels that exist), turned by its quarter turns (``np.rot90(binned, -q)``) and
placed with its lower-left corner at the level-0 pixel nearest to the corner of
its focal-plane extent::

    x0 = floor(xmin_mm / S + 0.5) - gx0,   y0 = floor(ymin_mm / S + 0.5) - gy0

so every detector lies within one level-0 pixel of its true place.  Levels
``1..n`` halve the resolution until a level fits one chunk.

Shards (the unit one writer owns, see ``build.py``) are as wide as the level when
that fits the shard byte budget: a task then reads each detector row it needs
once for the whole width, so every input pixel is read once per build at level 0.
Where the level is wider than the budget allows, shards split in x and a
detector straddling a shard column has its rows read once per straddled shard
(the price of bounded memory).  Shard heights are capped so a level has at
least ``min_shard_rows`` shard rows (parallelism).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ..camera import Camera, Detector, get_camera
from ..errors import CameraError

def _ints2(v) -> tuple[int, int]:
    a, b = (int(x) for x in v)
    return a, b


def _ints4(v) -> tuple[int, int, int, int]:
    a, b, c, d = (int(x) for x in v)
    return a, b, c, d


__all__ = ["LevelSpec", "MosaicPlan", "Placement", "make_plan", "rotate_box", "source_window"]

#: Default inner chunk (tile) size and the byte budget of one shard.  16 MB,
#: not 32: a build holds about three shards per thread (the buffer, zarr's
#: encoded chunks and the assembled shard), so this halves its peak memory and
#: flattens it in the detector count (full resolution, 2 threads: 9 / 50 / 205
#: detectors 271 / 338 / 380 MB instead of 272 / 370 / 488 MB), for ~15% more
#: build time at full resolution (more shard columns, more tasks).
DEFAULT_CHUNK = 256
DEFAULT_SHARD_BYTES = 16 * 2**20
DEFAULT_MIN_SHARD_ROWS = 16


class OptionError(ValueError):
    """A build option with a value it cannot take (raised before anything is written)."""


class BinningError(OptionError):
    """A binning the camera cannot be mosaicked at."""


def _round_half_up(v: float) -> int:
    # Python's round() is banker's rounding; a grid must not depend on parity.
    return int(math.floor(v + 0.5))


def _roundup(n: int, m: int) -> int:
    return -(-n // m) * m


def rotate_box(box: tuple[int, int, int, int], shape: tuple[int, int], q: int) -> tuple[int, int, int, int]:
    """Map a box of an array to the same pixels of ``np.rot90(array, -q)``.

    Parameters
    ----------
    box
        ``(y0, y1, x0, x1)``, half-open, in the unrotated array.
    shape
        ``(M, N)`` shape of the unrotated array.
    q
        Quarter turns counter-clockwise (y up), taken mod 4.

    Returns
    -------
    tuple
        ``(y0, y1, x0, x1)`` in the rotated array.
    """
    r0, r1, c0, c1 = box
    m, n = shape
    q %= 4
    if q == 0:
        return (r0, r1, c0, c1)
    if q == 1:  # R[i, j] = A[M-1-j, i]
        return (c0, c1, m - r1, m - r0)
    if q == 2:  # R[i, j] = A[M-1-i, N-1-j]
        return (m - r1, m - r0, n - c1, n - c0)
    return (n - c1, n - c0, r0, r1)  # q == 3: R[i, j] = A[j, N-1-i]


def source_window(window: tuple[int, int, int, int], shape: tuple[int, int], q: int) -> tuple[int, int, int, int]:
    """The box of an array whose ``np.rot90(., -q)`` is ``window`` of the rotated array.

    The inverse of :func:`rotate_box`: ``window`` is ``(i0, i1, j0, j1)`` in the
    rotated array, ``shape`` the unrotated shape ``(M, N)``.
    """
    i0, i1, j0, j1 = window
    m, n = shape
    q %= 4
    if q == 0:
        return (i0, i1, j0, j1)
    if q == 1:
        return (m - j1, m - j0, i0, i1)
    if q == 2:
        return (m - i1, m - i0, n - j1, n - j0)
    return (j0, j1, n - i1, n - i0)


@dataclass(frozen=True)
class Placement:
    """Where one detector lands in level 0.

    ``box`` is ``(y0, y1, x0, x1)`` in level-0 pixels, half-open; it holds the
    detector binned by the plan's binning then turned by ``n_quarter``.
    ``amp_boxes`` maps amp name to its level-0 box, same convention.
    """

    id: int
    name: str
    type: str
    n_quarter: int
    box: tuple[int, int, int, int]
    detector_shape: tuple[int, int]
    amp_boxes: dict = field(default_factory=dict, compare=False)

    @property
    def binned_shape(self) -> tuple[int, int]:
        """Shape of the binned detector before rotation."""
        h, w = self.box[1] - self.box[0], self.box[3] - self.box[2]
        return (w, h) if self.n_quarter % 2 else (h, w)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "n_quarter": self.n_quarter,
            "box": list(self.box),
            "detector_shape": list(self.detector_shape),
            "amp_boxes": {k: list(v) for k, v in self.amp_boxes.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> Placement:
        return cls(
            int(d["id"]), d["name"], d.get("type", "science"), int(d["n_quarter"]),
            _ints4(d["box"]), _ints2(d["detector_shape"]),
            {k: tuple(int(x) for x in v) for k, v in d.get("amp_boxes", {}).items()},
        )

    def overlap(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
        """Intersection of this placement with ``box`` (level-0 coordinates), or None."""
        y0, y1 = max(self.box[0], box[0]), min(self.box[1], box[1])
        x0, x1 = max(self.box[2], box[2]), min(self.box[3], box[3])
        if y0 >= y1 or x0 >= x1:
            return None
        return (y0, y1, x0, x1)

    def detector_window(self, box: tuple[int, int, int, int], binning: int) -> tuple[int, int, int, int] | None:
        """Detector pixels ``(r0, r1, c0, c1)`` needed to fill ``box`` of level 0.

        Starts are multiples of ``binning`` so blocks stay aligned with the
        detector's own block grid.
        """
        ov = self.overlap(box)
        if ov is None:
            return None
        win = (ov[0] - self.box[0], ov[1] - self.box[0], ov[2] - self.box[2], ov[3] - self.box[2])
        r0, r1, c0, c1 = source_window(win, self.binned_shape, self.n_quarter)
        h, w = self.detector_shape
        return (r0 * binning, min(r1 * binning, h), c0 * binning, min(c1 * binning, w))


@dataclass(frozen=True)
class LevelSpec:
    """One resolution level: shape, inner chunks and shards (all ``(y, x)``)."""

    level: int
    shape: tuple[int, int]
    chunks: tuple[int, int]
    shards: tuple[int, int]

    @property
    def factor(self) -> int:
        """Level-0 pixels per pixel of this level, per axis."""
        return 2**self.level

    @property
    def n_shards(self) -> tuple[int, int]:
        return (-(-self.shape[0] // self.shards[0]), -(-self.shape[1] // self.shards[1]))

    def shard_box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of shard ``(i, j)``, clipped to the level."""
        sh, sw = self.shards
        return (i * sh, min((i + 1) * sh, self.shape[0]), j * sw, min((j + 1) * sw, self.shape[1]))

    def iter_shards(self) -> Iterator[tuple[int, int]]:
        ny, nx = self.n_shards
        for i in range(ny):
            for j in range(nx):
                yield i, j

    def to_dict(self) -> dict:
        return {"level": self.level, "shape": list(self.shape), "chunks": list(self.chunks),
                "shards": list(self.shards)}


def _shard_shape(shape: tuple[int, int], chunks: tuple[int, int], shard_bytes: int, min_rows: int) -> tuple[int, int]:
    h, w = shape
    ch, cw = chunks
    ws = min(_roundup(w, cw), max(cw, (shard_bytes // (4 * ch)) // cw * cw))
    hs = max(ch, (shard_bytes // (4 * ws)) // ch * ch)
    hs = min(hs, max(ch, _roundup(-(-h // max(1, min_rows)), ch)), _roundup(h, ch))
    return (hs, ws)


@dataclass(frozen=True)
class MosaicPlan:
    """The whole output grid: placements and levels.

    ``origin`` is ``(gy0, gx0)``: level-0 pixel ``(0, 0)`` covers focal-plane
    ``[gx0 * S, (gx0 + 1) * S)`` mm in x (and the same in y) with ``S`` the level-0
    pixel size in mm (:attr:`pixel_mm`).
    """

    camera_name: str
    binning: int
    pixel_size_mm: float
    origin: tuple[int, int]
    placements: tuple[Placement, ...]
    levels: tuple[LevelSpec, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.levels[0].shape

    @property
    def pixel_mm(self) -> float:
        """Level-0 pixel size in mm."""
        return self.pixel_size_mm * self.binning

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def placement(self, key: int | str) -> Placement:
        for p in self.placements:
            if p.id == key or p.name == key:
                return p
        raise KeyError(key)

    def scale_um(self, level: int) -> float:
        """Pixel size of ``level`` in micrometres."""
        return self.pixel_mm * 1000.0 * 2**level

    def translation_um(self, level: int) -> tuple[float, float]:
        """Focal-plane ``(y, x)`` in micrometres of the centre of pixel (0, 0) of ``level``."""
        s0 = self.pixel_mm * 1000.0
        edge_y, edge_x = self.origin[0] * s0, self.origin[1] * s0
        half = self.scale_um(level) / 2.0
        return (edge_y + half, edge_x + half)

    def pixel_to_focal_plane(self, level: int, i: ArrayLike, j: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Pixel ``(i, j)`` (row, column) of ``level`` -> focal-plane ``(x, y)`` mm."""
        ty, tx = self.translation_um(level)
        s = self.scale_um(level)
        return ((tx + s * np.asarray(j, float)) / 1000.0, (ty + s * np.asarray(i, float)) / 1000.0)

    def placements_in(self, box: tuple[int, int, int, int]) -> list[Placement]:
        """Placements that overlap a level-0 box ``(y0, y1, x0, x1)``."""
        return [p for p in self.placements if p.overlap(box) is not None]

    def to_dict(self) -> dict:
        return {
            "camera": self.camera_name,
            "binning": self.binning,
            "pixel_size_mm": self.pixel_size_mm,
            "origin": list(self.origin),
            "placements": [p.to_dict() for p in self.placements],
            "levels": [lv.to_dict() for lv in self.levels],
        }

    @classmethod
    def from_dict(cls, d: dict) -> MosaicPlan:
        return cls(
            d["camera"], int(d["binning"]), float(d["pixel_size_mm"]), _ints2(d["origin"]),
            tuple(Placement.from_dict(p) for p in d["placements"]),
            tuple(LevelSpec(int(v["level"]), tuple(v["shape"]), tuple(v["chunks"]), tuple(v["shards"]))
                  for v in d["levels"]),
        )


def _pixel_size(camera: Camera) -> float:
    sizes = np.array([d.pixel_size_mm for d in camera])
    p = float(np.median(sizes))
    if np.any(np.abs(sizes - p) > 1e-9 * p):
        raise CameraError(f"camera {camera.name}: detectors with different pixel sizes cannot share one mosaic grid")
    return p


def _amp_boxes(det: Detector, b: int, binned: tuple[int, int]) -> dict:
    out = {}
    q = det.n_quarter  # a property: once per detector, not per amp
    for a in det.amplifiers:
        bb = a.bbox
        box = (bb.y0 // b, -(-bb.y1 // b), bb.x0 // b, -(-bb.x1 // b))
        out[a.name] = rotate_box(box, binned, q)
    return out


def make_plan(
    camera: Camera | str,
    binning: int = 1,
    *,
    chunk: int | tuple[int, int] = DEFAULT_CHUNK,
    shard: tuple[int, int] | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    min_shard_rows: int = DEFAULT_MIN_SHARD_ROWS,
    detectors: Iterable[int | str] | None = None,
) -> MosaicPlan:
    """Plan the mosaic grid of a camera.

    Parameters
    ----------
    camera
        A Camera or a name/path for :func:`cpmosaic.camera.get_camera`.
    binning
        Detector pixels per level-0 pixel, per axis (1 = full resolution).
    chunk
        Inner chunk (tile) shape of every level.
    shard
        Shard shape for every level (multiples of ``chunk``); default: chosen
        per level from ``shard_bytes`` (see the module notes).
    shard_bytes
        Byte budget of one shard when ``shard`` is not given.
    min_shard_rows
        Cap shard heights so a level has at least this many shard rows.
    detectors
        Detector ids or names to place (default: every detector).  The grid
        always spans the whole camera so stores of one camera line up.

    Returns
    -------
    MosaicPlan

    Examples
    --------
    >>> plan = make_plan("LSSTCam", 8)
    >>> plan.shape, plan.n_levels
    ((7906, 7918), 6)
    """
    camera = get_camera(camera)
    b = int(binning)
    if b != binning or b < 1:
        raise BinningError(f"binning must be a positive integer, got {binning!r}")
    chunks = (int(chunk), int(chunk)) if np.isscalar(chunk) else _ints2(chunk)
    if min(chunks) < 2 or chunks[0] % 2 or chunks[1] % 2:
        # pyramid tasks read back whole chunks; even chunks keep the 2x2 blocks aligned
        raise OptionError(f"chunk sizes must be even and >= 2, got {chunks}")
    if shard is not None and (shard[0] % chunks[0] or shard[1] % chunks[1]):
        raise OptionError(f"shard shape {shard} must be a multiple of the chunk shape {chunks}")
    px = _pixel_size(camera)
    smallest = min(camera, key=lambda d: min(d.height, d.width))
    if b > min(smallest.height, smallest.width):
        raise BinningError(f"binning {b} is larger than the smallest detector ({smallest.name}, "
                         f"{smallest.width} x {smallest.height} pixels): detectors would be less than one "
                         f"level-0 pixel and could land on each other; use at most "
                         f"{min(smallest.height, smallest.width)}")
    s = px * b
    raw = []
    for det in camera:
        xmin, _, ymin, _ = det.extent_mm
        bh, bw = -(-det.height // b), -(-det.width // b)
        rh, rw = (bw, bh) if det.n_quarter % 2 else (bh, bw)
        raw.append((det, _round_half_up(ymin / s), _round_half_up(xmin / s), rh, rw, (bh, bw)))
    gy0 = min(r[1] for r in raw)
    gx0 = min(r[2] for r in raw)
    height = max(r[1] - gy0 + r[3] for r in raw)
    width = max(r[2] - gx0 + r[4] for r in raw)
    keep = None if detectors is None else {str(d) for d in detectors}
    placements = []
    for det, y, x, rh, rw, binned in raw:
        if keep is not None and str(det.id) not in keep and det.name not in keep:
            continue
        y0, x0 = y - gy0, x - gx0
        amps = {k: (v[0] + y0, v[1] + y0, v[2] + x0, v[3] + x0) for k, v in _amp_boxes(det, b, binned).items()}
        placements.append(Placement(det.id, det.name, det.type, det.n_quarter, (y0, y0 + rh, x0, x0 + rw),
                                    (det.height, det.width), amps))
    levels = []
    shape = (height, width)
    k = 0
    while True:
        if shard is None:
            shards = _shard_shape(shape, chunks, shard_bytes, min_shard_rows)
        else:
            shards = (min(shard[0], _roundup(shape[0], chunks[0])), min(shard[1], _roundup(shape[1], chunks[1])))
        levels.append(LevelSpec(k, shape, chunks, shards))
        if shape[0] <= chunks[0] and shape[1] <= chunks[1]:
            break
        shape = (-(-shape[0] // 2), -(-shape[1] // 2))
        k += 1
    return MosaicPlan(camera.name, b, px, (gy0, gx0), tuple(placements), tuple(levels))
