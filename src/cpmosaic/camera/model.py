"""Camera geometry: immutable Camera, Detector and Amplifier.

Conventions (those of afw and obs_lsst):

* Detector pixel coordinates have integer pixel *centres*; pixel (0, 0) covers
  x in [-0.5, 0.5).  Arrays are indexed ``image[y, x]``.
* Pixel -> focal plane (mm): ``fp = offset + R(yaw) @ ((pix - refpos) * pixel_size)``
  with ``R`` the counter-clockwise rotation matrix.
* ``n_quarter = floor((yaw + 45) / 90) mod 4``: afw has no modulo, and corner
  rafts carry yaws such as 450 and 540 degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Collection, Iterator, Literal

import numpy as np
from numpy.typing import ArrayLike

from ..errors import UnknownDetectorError

__all__ = ["Box", "Amplifier", "Detector", "Camera", "DetectorType", "DETECTOR_TYPES"]

DetectorType = Literal["science", "focus", "guider", "wavefront"]
#: afw's DetectorType enumeration, by its integer code in camera YAML.
DETECTOR_TYPES: dict[int, DetectorType] = {0: "science", 1: "focus", 2: "guider", 3: "wavefront"}


@dataclass(frozen=True)
class Box:
    """An integer pixel box: origin (x0, y0) and size (width, height)."""

    x0: int
    y0: int
    width: int
    height: int

    @classmethod
    def from_obs_lsst(cls, value) -> "Box":
        """Build from obs_lsst's ``[[x0, y0], [w, h]]``."""
        (x0, y0), (w, h) = value
        return cls(int(x0), int(y0), int(w), int(h))

    @property
    def x1(self) -> int:
        """One past the last column."""
        return self.x0 + self.width

    @property
    def y1(self) -> int:
        """One past the last row."""
        return self.y0 + self.height

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices selecting the box from an ``[y, x]`` array."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(x0, y0, width, height)``, the form the kernels take."""
        return (self.x0, self.y0, self.width, self.height)

    def as_list(self) -> list[list[int]]:
        """obs_lsst's ``[[x0, y0], [w, h]]``."""
        return [[self.x0, self.y0], [self.width, self.height]]


@dataclass(frozen=True)
class Amplifier:
    """One amplifier (segment) of a detector.

    ``bbox`` is the data area in assembled (trimmed) detector pixels; the
    ``raw_*`` boxes are in the coordinates of the raw segment as read out.
    """

    name: str
    hdu: int
    ix: int
    iy: int
    flip_x: bool
    flip_y: bool
    bbox: Box
    raw_bbox: Box
    raw_data_bbox: Box
    raw_serial_prescan_bbox: Box
    raw_serial_overscan_bbox: Box
    raw_parallel_overscan_bbox: Box
    gain: float = 1.0
    read_noise: float = float("nan")
    saturation: float = float("nan")
    read_corner: str = "LL"

    @property
    def segment_name(self) -> str:
        """The raw FITS EXTNAME of this amp, e.g. ``Segment07`` for ``C07``."""
        return "Segment" + self.name[1:]


def _rotation(yaw_deg: float) -> np.ndarray:
    """Counter-clockwise rotation matrix, exact for multiples of 90 degrees."""
    q, rem = divmod(yaw_deg, 90.0)
    if rem == 0.0:
        c, s = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[int(q) % 4]
    else:
        t = math.radians(yaw_deg)
        c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s], [s, c]], dtype=float)


def check_detector_geometry(det: "Detector", source: str) -> None:
    """Raise CameraError (naming ``source`` and the detector) for impossible geometry:
    a pixel size that is not a positive number, a non-finite offset, reference
    position or yaw, or an empty detector."""
    from ..errors import CameraError

    where = f"{source}: detector {det.name}"
    if not (math.isfinite(det.pixel_size_mm) and det.pixel_size_mm > 0):
        raise CameraError(f"{where}: pixel size must be a positive number of mm, got {det.pixel_size_mm!r}")
    for label, values in (("offset", det.offset_mm), ("refpos", det.refpos), ("yaw", (det.yaw_deg,))):
        if not all(math.isfinite(v) for v in values):
            raise CameraError(f"{where}: {label} must be finite, got {values if len(values) > 1 else values[0]!r}")
    if det.width < 1 or det.height < 1:
        raise CameraError(f"{where}: size must be at least 1 x 1 pixels, got {det.width} x {det.height}")


@dataclass(frozen=True)
class Detector:
    """One detector (CCD) and its place in the focal plane."""

    id: int
    name: str
    type: DetectorType
    physical_type: str
    width: int
    height: int
    refpos: tuple[float, float]
    offset_mm: tuple[float, float]
    yaw_deg: float
    pixel_size_mm: float
    amplifiers: tuple[Amplifier, ...]
    serial: str = ""
    _amp_index: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_amp_index", {a.name: a for a in self.amplifiers})

    # -- identity -----------------------------------------------------------
    @property
    def raft(self) -> str:
        """Raft part of the name (``R22`` of ``R22_S11``)."""
        return self.name.split("_")[0]

    @property
    def sensor(self) -> str:
        """Sensor part of the name (``S11`` of ``R22_S11``)."""
        return self.name.split("_")[-1]

    @property
    def n_quarter(self) -> int:
        """Quarter turns counter-clockwise, taken mod 4."""
        return int(math.floor((self.yaw_deg + 45.0) / 90.0)) % 4

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the assembled image."""
        return (self.height, self.width)

    def amp(self, name: str) -> Amplifier:
        """The amplifier called *name* (``"C07"``)."""
        try:
            return self._amp_index[name]
        except KeyError:
            raise UnknownDetectorError(
                f"detector {self.name} has no amplifier {name!r}; it has {sorted(self._amp_index)}"
            ) from None

    @property
    def amp_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.amplifiers)

    # -- transforms ---------------------------------------------------------
    @property
    def rotation(self) -> np.ndarray:
        return _rotation(self.yaw_deg)

    def pixel_to_focal_plane(self, x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Detector pixel coordinates -> focal-plane mm.

        >>> from cpmosaic.camera import get_camera
        >>> det = get_camera("LSSTCam")["R22_S11"]
        >>> [round(float(v), 6) for v in det.pixel_to_focal_plane(2047.5, 2001.5)]
        [0.0, 0.0]
        """
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        r = self.rotation
        dx = (x - self.refpos[0]) * self.pixel_size_mm
        dy = (y - self.refpos[1]) * self.pixel_size_mm
        return (self.offset_mm[0] + r[0, 0] * dx + r[0, 1] * dy,
                self.offset_mm[1] + r[1, 0] * dx + r[1, 1] * dy)

    def focal_plane_to_pixel(self, fx: ArrayLike, fy: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Focal-plane mm -> detector pixel coordinates (inverse of the above)."""
        fx = np.asarray(fx, dtype=float) - self.offset_mm[0]
        fy = np.asarray(fy, dtype=float) - self.offset_mm[1]
        r = self.rotation  # inverse of a rotation is its transpose
        dx = r[0, 0] * fx + r[1, 0] * fy
        dy = r[0, 1] * fx + r[1, 1] * fy
        return (dx / self.pixel_size_mm + self.refpos[0], dy / self.pixel_size_mm + self.refpos[1])

    def box_corners_mm(self, box: Box) -> np.ndarray:
        """The four outer corners of a pixel box in focal-plane mm, shape (4, 2).

        Order: (x0, y0), (x1, y0), (x1, y1), (x0, y1) in pixel space, so the
        polygon is counter-clockwise in the detector frame.
        """
        xs = np.array([box.x0, box.x1, box.x1, box.x0], dtype=float) - 0.5
        ys = np.array([box.y0, box.y0, box.y1, box.y1], dtype=float) - 0.5
        fx, fy = self.pixel_to_focal_plane(xs, ys)
        return np.column_stack([fx, fy])

    def box_center_mm(self, box: Box) -> tuple[float, float]:
        """Focal-plane mm of the centre of a pixel box."""
        fx, fy = self.pixel_to_focal_plane(box.x0 + (box.width - 1) / 2.0, box.y0 + (box.height - 1) / 2.0)
        return float(fx), float(fy)

    @property
    def bbox(self) -> Box:
        return Box(0, 0, self.width, self.height)

    @property
    def corners_mm(self) -> np.ndarray:
        """Outer corners of the detector's data area in focal-plane mm, shape (4, 2)."""
        return self.box_corners_mm(self.bbox)

    @property
    def center_mm(self) -> tuple[float, float]:
        """Focal-plane mm of the centre of the data area."""
        return self.box_center_mm(self.bbox)

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` of the data area in focal-plane mm."""
        c = self.corners_mm
        return (float(c[:, 0].min()), float(c[:, 0].max()), float(c[:, 1].min()), float(c[:, 1].max()))


@dataclass(frozen=True)
class Camera:
    """A camera: an ordered collection of detectors.

    Index by detector id (int) or name (str):

    >>> from cpmosaic.camera import get_camera
    >>> cam = get_camera("LSSTCam")
    >>> cam[94].name, cam["R22_S11"].id, len(cam)
    ('R22_S11', 94, 205)
    """

    name: str
    detectors: tuple[Detector, ...]
    plate_scale: float = float("nan")  # arcsec / mm
    focal_plane_parity: bool = False
    _by_id: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)
    _by_name: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        dets = tuple(sorted(self.detectors, key=lambda d: d.id))
        object.__setattr__(self, "detectors", dets)
        object.__setattr__(self, "_by_id", {d.id: d for d in dets})
        object.__setattr__(self, "_by_name", {d.name: d for d in dets})
        if len(self._by_id) != len(dets) or len(self._by_name) != len(dets):
            from ..errors import CameraError

            raise CameraError(f"camera {self.name}: detector ids and names must be unique")

    def __len__(self) -> int:
        return len(self.detectors)

    def __iter__(self) -> Iterator[Detector]:
        return iter(self.detectors)

    def __contains__(self, key) -> bool:
        return key in self._by_id or key in self._by_name

    def __getitem__(self, key: int | str) -> Detector:
        try:
            if isinstance(key, (int, np.integer)):
                return self._by_id[int(key)]
            return self._by_name[key]
        except KeyError:
            raise UnknownDetectorError(
                f"camera {self.name} has no detector {key!r} "
                f"(ids {min(self._by_id)}..{max(self._by_id)}, names like {self.detectors[0].name})"
            ) from None

    def get(self, key: int | str, default: Detector | None = None) -> Detector | None:
        return self[key] if key in self else default

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(self._by_id)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.detectors)

    def select(self, types: Collection[str] = ("science", "guider", "wavefront", "focus"),
               names: Collection[str] | None = None) -> Camera:
        """A camera holding only some detectors (by type and/or name)."""
        keep = [d for d in self.detectors if d.type in types and (names is None or d.name in names)]
        return Camera(self.name, tuple(keep), self.plate_scale, self.focal_plane_parity)

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` over every detector, focal-plane mm."""
        e = np.array([d.extent_mm for d in self.detectors])
        return (float(e[:, 0].min()), float(e[:, 1].max()), float(e[:, 2].min()), float(e[:, 3].max()))
