"""Reading a mosaic store: :func:`open_mosaic` and :class:`MosaicStore`.

:func:`read_metadata` reads only the metadata documents (JSON) of a local store,
without zarr or numpy: what ``cpmosaic info`` shows, in a few milliseconds.
The layout is described in :mod:`cpmosaic.mosaic.store`.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from .plan import MosaicPlan, Placement

__all__ = ["MosaicMetadata", "MosaicStore", "open_mosaic", "read_metadata"]


class MosaicMetadata:
    """What a mosaic store says about itself: attributes, level shapes, coordinates.

    Attributes
    ----------
    attrs
        The ``cpmosaic`` attributes (camera, binning, placements, inputs, missing, windows).
    ome
        The ``ome`` attributes.
    """

    def __init__(self, where: str, attrs: dict, level_grids: list[tuple]) -> None:
        if "cpmosaic" not in attrs or "ome" not in attrs:
            raise ValueError(f"{where}: not a cpmosaic mosaic store (no 'cpmosaic'/'ome' attributes)")
        self.attrs: dict = attrs["cpmosaic"]
        self.ome: dict = attrs["ome"]
        #: per level ``(shape, chunks, shards or None)``
        self.grids = level_grids
        try:
            self._transforms = []
            for ds in self.ome["multiscales"][0]["datasets"]:
                t = {c["type"]: c for c in ds["coordinateTransformations"]}
                translation = t.get("translation", {}).get("translation", (0.0, 0.0))
                self._transforms.append((tuple(t["scale"]["scale"]), tuple(translation)))
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(f"{where}: damaged OME attributes ({type(exc).__name__}: {exc})") from None

    @property
    def plan(self) -> MosaicPlan:
        from .plan import MosaicPlan

        plan = self.__dict__.get("_plan")
        if plan is None:
            plan = self.__dict__["_plan"] = MosaicPlan.from_dict(self.attrs)
        return plan

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.camera} binning={self.binning} levels={self.n_levels} "
                f"shape={self.shape(0)} complete={self.complete}>")

    @property
    def n_levels(self) -> int:
        return len(self.grids)

    def chunks(self, level: int = 0) -> tuple[int, int]:
        """Inner chunk (tile) shape of ``level``."""
        return tuple(self.grids[level][1])

    def shards(self, level: int = 0) -> tuple[int, int] | None:
        """Shard shape of ``level`` (None: not sharded)."""
        sh = self.grids[level][2]
        return None if sh is None else tuple(sh)

    @property
    def camera(self) -> str:
        """Name of the camera the mosaic was built for."""
        return self.attrs["camera"]

    @property
    def binning(self) -> int:
        """Detector pixels per level-0 pixel, per axis."""
        return int(self.attrs["binning"])

    @property
    def complete(self) -> bool:
        """False while a build is running or after one was interrupted."""
        return bool(self.attrs.get("complete", False))

    def shape(self, level: int = 0) -> tuple[int, int]:
        return tuple(self.grids[level][0])

    def level_scale(self, level: int) -> int:
        """Detector pixels per output pixel of ``level``, per axis."""
        return self.binning * 2**level

    def scale_um(self, level: int) -> tuple[float, float]:
        """``(sy, sx)`` pixel size of ``level`` in micrometres."""
        return self._transforms[level][0]

    def translation_um(self, level: int) -> tuple[float, float]:
        """Focal-plane ``(y, x)`` micrometres of the centre of pixel (0, 0) of ``level``."""
        return self._transforms[level][1]

    def extent_mm(self, level: int = 0) -> tuple[float, float, float, float]:
        """``(xmin, xmax, ymin, ymax)`` of the pixel edges of ``level`` in focal-plane mm."""
        (sy, sx), (ty, tx) = self._transforms[level]
        h, w = self.shape(level)
        x0, y0 = (tx - sx / 2) / 1000.0, (ty - sy / 2) / 1000.0
        return (x0, x0 + w * sx / 1000.0, y0, y0 + h * sy / 1000.0)

    def pixel_to_focal_plane(self, level: int, i, j) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i``, column ``j`` (pixel centres) of ``level`` -> focal-plane ``(x, y)`` mm."""
        import numpy as np

        (sy, sx), (ty, tx) = self._transforms[level]
        return ((tx + sx * np.asarray(j, float)) / 1000.0, (ty + sy * np.asarray(i, float)) / 1000.0)

    def focal_plane_to_pixel(self, level: int, x_mm, y_mm) -> tuple[np.ndarray, np.ndarray]:
        """Focal-plane mm -> fractional ``(i, j)`` (row, column) of ``level``."""
        import numpy as np

        (sy, sx), (ty, tx) = self._transforms[level]
        return ((np.asarray(y_mm, float) * 1000.0 - ty) / sy, (np.asarray(x_mm, float) * 1000.0 - tx) / sx)

    @property
    def placements(self) -> dict[str, Placement]:
        """Detector name -> :class:`Placement` (level-0 box ``(y0, y1, x0, x1)``, quarter turns, amp boxes)."""
        return {p.name: p for p in self.plan.placements}

    @property
    def present(self) -> list[str]:
        """Names of the detectors with data."""
        missing = {m["name"] for m in self.missing}
        return [p["name"] for p in self.attrs.get("placements", []) if p["name"] not in missing]

    @property
    def missing(self) -> list[dict]:
        """``{"id", "name", "reason", ...}`` for detectors without data."""
        return list(self.attrs.get("missing", []))

    @property
    def inputs(self) -> list[dict]:
        return list(self.attrs.get("inputs", []))

    @property
    def calib_type(self) -> str | None:
        """The calibration type of the inputs (their IMGTYPE, lower case) when they agree, else None."""
        kinds = {str(i.get("image_type") or "").lower() for i in self.inputs}
        kinds.discard("")
        return kinds.pop() if len(kinds) == 1 else None

    def window(self, level: int = 0) -> tuple[float, float] | None:
        """Default display range ``(start, end)`` of ``level`` (0.5-99.5 percentiles).

        None when the store has none (a build still running, or a level without
        data): a caller picks its own fallback.
        """
        windows = self.attrs.get("windows") or []
        w = windows[level] if level < len(windows) else None
        if not w:
            return None
        return (float(w["start"]), float(w["end"]))



class MosaicStore(MosaicMetadata):
    """A mosaic store opened for reading (see :func:`open_mosaic`).

    Attributes
    ----------
    group
        The zarr group.
    levels
        The zarr arrays of levels 0..n (finest first).
    attrs, ome
        As :class:`MosaicMetadata`.
    """

    def __init__(self, group: Any) -> None:
        self.group = group
        attrs = group.attrs.asdict()
        where = str(group.store_path)
        n = len((attrs.get("cpmosaic") or {}).get("levels") or [])
        self.levels = [_level(group, k) for k in range(n)]
        grids = [(tuple(a.shape), tuple(a.chunks), tuple(a.shards) if getattr(a, "shards", None) else None)
                 for a in self.levels]
        super().__init__(where, attrs, grids)
        try:
            self.plan  # noqa: B018 - a damaged plan is refused at the door
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: damaged cpmosaic attributes ({type(exc).__name__}: {exc})") from None

    def read(self, level: int = 0, y0: int | None = None, y1: int | None = None,
             x0: int | None = None, x1: int | None = None) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of ``level`` as float32 (bounds clipped to the level)."""
        import numpy as np

        arr = self.levels[level]
        h, w = arr.shape
        ys = slice(*slice(y0, y1).indices(h)[:2])
        xs = slice(*slice(x0, x1).indices(w)[:2])
        return np.asarray(arr[ys, xs])

    def to_dask(self, level: int = 0) -> Any:
        """``level`` as a dask array with one block per shard."""
        import dask.array as da

        arr = self.levels[level]
        chunks = getattr(arr, "shards", None) or arr.chunks
        return da.from_zarr(arr, chunks=chunks)


def open_mosaic(store: str | os.PathLike | Any, storage_options: dict | None = None) -> MosaicStore:
    """Open a mosaic store for reading.

    Parameters
    ----------
    store
        Local path, fsspec URL (``memory://...``, ``s3://...``) or zarr store.

    Examples
    --------
    >>> m = open_mosaic("visit.zarr")            # doctest: +SKIP
    >>> m.levels[0].shape, m.extent_mm(0)        # doctest: +SKIP
    """
    from .store import open_group

    try:
        group = open_group(store, "r", storage_options)
    except (FileNotFoundError, KeyError) as exc:
        raise InputError(str(store), f"not a zarr store ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # zarr raises its own errors for non-groups
        if type(exc).__name__ in ("GroupNotFoundError", "NodeNotFoundError", "ContainsArrayError"):
            raise InputError(str(store), "no mosaic store here") from None
        if isinstance(store, str) and "://" in store:  # the object store refused: endpoint, credentials, options
            raise InputError(store, f"cannot open ({type(exc).__name__}: {exc}); check the storage options") from exc
        raise
    try:
        return MosaicStore(group)
    except ValueError as exc:
        raise InputError(str(store), str(exc)) from None


def _level(group, level: int):
    """Level array ``level`` of ``group``; ValueError naming it when its metadata is missing."""
    try:
        arr = group[str(level)]
    except Exception as exc:  # noqa: BLE001 - zarr raises KeyError or its own NodeNotFoundError
        raise ValueError(f"{group.store_path}: level {level} has no readable metadata ({level}/zarr.json: "
                         f"{type(exc).__name__}); the store is damaged") from None
    if not hasattr(arr, "shape") or getattr(arr, "ndim", 2) != 2:
        raise ValueError(f"{group.store_path}: level {level} is not a 2-d array")
    return arr


def _grid(doc: dict, where: str) -> tuple:
    """``(shape, chunks, shards)`` of a zarr v3 array metadata document."""
    try:
        shape = tuple(int(v) for v in doc["shape"])
        outer = tuple(int(v) for v in doc["chunk_grid"]["configuration"]["chunk_shape"])
        codecs = doc.get("codecs") or []
        if codecs and codecs[0].get("name") == "sharding_indexed":
            return shape, tuple(int(v) for v in codecs[0]["configuration"]["chunk_shape"]), outer
        return shape, outer, None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{where}: not a zarr v3 array ({type(exc).__name__}: {exc})") from None


def read_metadata(store, storage_options: dict | None = None) -> MosaicMetadata:
    """The metadata of a mosaic store: for a local path read as JSON (no zarr,
    no numpy), for anything else through :func:`open_mosaic`.

    Raises
    ------
    InputError
        Not a mosaic store, or a damaged one (the message says which level).
    """
    path = os.fspath(store) if isinstance(store, (str, os.PathLike)) else None
    if path is None or "://" in path:
        return open_mosaic(store, storage_options)

    def load(rel: str, what: str) -> dict:
        try:
            with open(os.path.join(path, rel, "zarr.json") if rel else os.path.join(path, "zarr.json"), "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            if not rel:
                raise InputError(path, "not a zarr store (no zarr.json)") from None
            raise InputError(path, f"level {rel} has no readable metadata ({rel}/zarr.json: missing); "
                                   "the store is damaged") from None
        except (OSError, ValueError) as exc:
            raise InputError(path, f"{what} metadata unreadable ({type(exc).__name__}: {exc})") from None

    root = load("", "group")
    if root.get("node_type") != "group" or root.get("zarr_format") != 3:
        raise InputError(path, "no mosaic store here (not a zarr v3 group)")
    attrs = root.get("attributes") or {}
    levels = (attrs.get("cpmosaic") or {}).get("levels") or []
    try:
        grids = [_grid(load(str(k), f"level {k}"), f"{path}: level {k}") for k in range(len(levels))]
        return MosaicMetadata(path, attrs, grids)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(path, str(exc).split(": ", 1)[-1]) from None
