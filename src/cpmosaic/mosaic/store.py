"""Mosaic stores: zarr v3 groups with OME-Zarr 0.5 metadata, and the reader API.

Layout of a store (``STORE`` a local path or an fsspec URL)::

    STORE/zarr.json          group; attributes {"ome": {...}, "cpmosaic": {...}}
    STORE/0/zarr.json        level 0 (finest), float32, dimension_names ["y", "x"], sharded
    STORE/0/c/I/J            one shard object (inner chunks + index)
    STORE/0/done/I_J         build marker of shard (I, J): JSON stats, written after the shard
    STORE/1/ ...             levels 1..n, each half the resolution of the one before

Pixel ``(i, j)`` centre of level ``k`` is at focal-plane ``(y, x) = translation_k +
scale_k * (i, j)`` micrometres (``ome.multiscales[0].datasets[k].coordinateTransformations``).
The markers live under the level arrays (not in a ``.cpmosaic`` folder of the group)
because zarr warns about unknown objects beside a group's members, and they go when
the level is deleted.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

import numpy as np

from .plan import MosaicPlan, Placement

log = logging.getLogger(__name__)

__all__ = ["MosaicStore", "open_mosaic", "ome_attributes", "merge_windows", "FORMAT_VERSION"]

#: Version of the ``cpmosaic`` attribute schema.
FORMAT_VERSION = 1
#: Percentiles of the default display window.
WINDOW_PERCENTILES = (0.5, 99.5)
_QUANTILES = np.linspace(0.0, 1.0, 101)


def open_group(store, mode: str = "r", storage_options: dict | None = None):
    """A zarr group from a path, fsspec URL or zarr store."""
    import zarr

    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    kw = {"storage_options": storage_options} if storage_options and isinstance(store, str) and "://" in store else {}
    return zarr.open_group(store, mode=mode, zarr_format=3, **kw)


def marker_key(level: int, i: int, j: int) -> str:
    """Store key (relative to the group) of the marker of shard ``(i, j)`` of ``level``."""
    return f"{level}/done/{i}_{j}"


_LEVELS: dict = {}
_LEVELS_LOCK = threading.Lock()


def open_level(store, level: int, mode: str = "r+"):
    """One level array of a store, without parsing the (large) group attributes.

    Opened arrays are kept per process (reading ``zarr.json`` costs milliseconds
    and a build opens a level once per shard); :func:`forget_levels` drops them.
    """
    import zarr

    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    key = (store if isinstance(store, str) else id(store), level, mode)
    with _LEVELS_LOCK:
        array = _LEVELS.get(key)
    if array is None:
        array = zarr.open_array(store, path=str(level), mode=mode, zarr_format=3)
        with _LEVELS_LOCK:
            _LEVELS[key] = array
    return array


def forget_levels() -> None:
    """Drop the arrays :func:`open_level` keeps (call when a build ends: a store may be rewritten)."""
    with _LEVELS_LOCK:
        _LEVELS.clear()


def write_marker(array, i: int, j: int, content: dict) -> None:
    """Record shard ``(i, j)`` of a level array as written (call after writing its data)."""
    from zarr.core.buffer import default_buffer_prototype

    buf = default_buffer_prototype().buffer.from_bytes(json.dumps(content, sort_keys=True).encode())
    from zarr.core.sync import sync

    # the async API: not every store (fsspec ones) has the *_sync shortcuts
    sync((array.store_path / f"done/{i}_{j}").set(buf))


def _set_json(store_path, key: str, doc: dict) -> None:
    """Write ``doc`` as compact JSON at ``key`` under a zarr ``StorePath``."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    def plain(v):
        if isinstance(v, np.generic):
            return v.item()
        raise TypeError(f"{type(v).__name__} is not JSON serializable")

    text = json.dumps(doc, default=plain, separators=(", ", ": "))
    sync((store_path / key).set(default_buffer_prototype().buffer.from_bytes(text.encode())))


def write_group_attributes(group, attributes: dict) -> None:
    """Replace all attributes of a group (its ``zarr.json``), as ``group.update_attributes``
    would write them but with the C JSON encoder in one go.

    zarr copies the attributes through ``dataclasses.asdict`` (a deep walk of every
    placement and amp box, ~10 ms a write for a full camera) before encoding them.
    The in-memory ``group`` object is not updated: read attributes from the store.
    """
    _set_json(group.store_path, "zarr.json", {"attributes": attributes, "zarr_format": 3, "node_type": "group"})


def create_levels(group, levels, compressors) -> None:
    """Create the (empty) level arrays of a new store.

    The first is created by zarr; the others get its metadata document with their
    own shape, shard and chunk shape (zarr's ``create_array`` costs milliseconds each).
    """
    import zarr
    from zarr.core.buffer import default_buffer_prototype

    def create(lv):
        return zarr.create_array(group.store_path / str(lv.level), shape=lv.shape, dtype="float32",
                                 chunks=lv.chunks, shards=lv.shards, compressors=compressors, fill_value=np.nan,
                                 dimension_names=("y", "x"), zarr_format=3)

    first = create(levels[0])
    try:
        doc = json.loads(first.metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes())
        sharding = doc["codecs"][0]
        ok = sharding["name"] == "sharding_indexed" and doc["chunk_grid"]["name"] == "regular"
    except (KeyError, IndexError, TypeError, ValueError):
        ok = False
    for lv in levels[1:]:
        if not ok:
            create(lv)
            continue
        doc["shape"] = list(lv.shape)
        doc["chunk_grid"]["configuration"]["chunk_shape"] = list(lv.shards)
        sharding["configuration"]["chunk_shape"] = list(lv.chunks)
        _set_json(group.store_path, f"{lv.level}/zarr.json", doc)


def read_markers(group, plan: MosaicPlan) -> dict[tuple[int, int, int], dict]:
    """Markers present in a store: ``{(level, i, j): content}``."""
    from zarr.core.sync import sync

    store = group.store
    base = group.store_path.path
    prefix = f"{base}/" if base else ""

    async def listing(p: str) -> list[str]:
        return [k async for k in store.list_prefix(p)]

    out = {}
    for lv in plan.levels:
        keys = sync(listing(f"{prefix}{lv.level}/done/"))
        for key in keys:
            name = key.rsplit("/", 1)[-1]
            try:
                i, j = (int(v) for v in name.split("_"))
            except ValueError:
                continue
            raw = sync((group.store_path / marker_key(lv.level, i, j)).get())
            if raw is None:
                continue
            try:
                out[(lv.level, i, j)] = json.loads(raw.to_bytes())
            except ValueError:  # a marker cut by a kill: the shard is redone
                log.debug("unreadable marker %s", key)
    return out


def delete_marker(group, level: int, i: int, j: int) -> None:
    from zarr.core.sync import sync

    sync((group.store_path / marker_key(level, i, j)).delete())


def shard_stats(data: np.ndarray, max_sample: int = 16384, stride: int = 4) -> dict:
    """Deterministic summary of a shard for display windows: count, min, max, 101 quantiles.

    Taken on every ``stride``-th row and column, quantiles on at most
    ``max_sample`` of those (display windows need no more, and OME's window
    min/max are a data range for viewers, not a measurement; with stride 3 and
    65536 values this took 10% of a full-resolution build).
    """
    finite = data[::stride, ::stride]
    finite = finite[np.isfinite(finite)]
    n = int(finite.size)
    if n == 0:
        return {"n": 0}
    sample = finite[:: max(1, n // max_sample)]
    q = np.quantile(sample.astype(np.float64), _QUANTILES)
    return {"n": n, "min": float(finite.min()), "max": float(finite.max()), "q": [float(v) for v in q]}


def merge_windows(stats: list[dict], percentiles: tuple[float, float] = WINDOW_PERCENTILES) -> dict | None:
    """Combine shard summaries into a display window ``{min, max, start, end}`` (None if no data)."""
    stats = [s for s in stats if s.get("n")]
    if not stats:
        return None
    vals = np.concatenate([np.asarray(s["q"], float) for s in stats])
    weights = np.concatenate([np.full(len(s["q"]), s["n"] / len(s["q"])) for s in stats])
    order = np.argsort(vals, kind="stable")
    vals, cum = vals[order], np.cumsum(weights[order])
    cum = (cum - weights[order] / 2) / cum[-1]
    lo, hi = (float(np.interp(p / 100.0, cum, vals)) for p in percentiles)
    return {"min": float(min(s["min"] for s in stats)), "max": float(max(s["max"] for s in stats)),
            "start": lo, "end": hi}


def ome_attributes(plan: MosaicPlan, name: str, window: dict | None = None) -> dict:
    """The ``ome`` attribute (OME-Zarr 0.5) of a mosaic store."""
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in ("y", "x")]
    datasets = []
    for lv in plan.levels:
        s = plan.scale_um(lv.level)
        ty, tx = plan.translation_um(lv.level)
        datasets.append({"path": str(lv.level), "coordinateTransformations": [
            {"type": "scale", "scale": [s, s]}, {"type": "translation", "translation": [ty, tx]}]})
    ome: dict[str, Any] = {
        "version": "0.5",
        "multiscales": [{
            "name": name, "axes": axes, "datasets": datasets, "type": "mean",
            "metadata": {"description": "NaN-ignoring 2x2 mean of the level before",
                         "method": "cpmosaic.kernels.pyramid_reduce"},
        }],
    }
    if window is not None:
        ome["omero"] = {
            "name": name, "version": "0.5",
            "channels": [{"label": name, "color": "FFFFFF", "active": True, "coefficient": 1.0,
                          "family": "linear", "inverted": False, "window": dict(window)}],
            "rdefs": {"model": "greyscale", "defaultT": 0, "defaultZ": 0},
        }
    return ome


class MosaicStore:
    """A mosaic store opened for reading (see :func:`open_mosaic`).

    Attributes
    ----------
    group
        The zarr group.
    levels
        The zarr arrays of levels 0..n (finest first).
    attrs
        The ``cpmosaic`` attributes (camera, binning, placements, inputs, missing, windows).
    ome
        The ``ome`` attributes.
    """

    def __init__(self, group) -> None:
        self.group = group
        attrs = group.attrs.asdict()
        if "cpmosaic" not in attrs or "ome" not in attrs:
            raise ValueError(f"{group.store_path}: not a cpmosaic mosaic store (no 'cpmosaic'/'ome' attributes)")
        self.attrs: dict = attrs["cpmosaic"]
        self.ome: dict = attrs["ome"]
        self.plan = MosaicPlan.from_dict(self.attrs)
        self.levels = [group[str(lv.level)] for lv in self.plan.levels]
        ms = self.ome["multiscales"][0]
        self._transforms = []
        for ds in ms["datasets"]:
            t = {c["type"]: c for c in ds["coordinateTransformations"]}
            translation = t.get("translation", {}).get("translation", (0.0, 0.0))
            self._transforms.append((tuple(t["scale"]["scale"]), tuple(translation)))

    def __repr__(self) -> str:
        return (f"<MosaicStore {self.camera} binning={self.binning} levels={self.n_levels} "
                f"shape={self.levels[0].shape} complete={self.complete}>")

    @property
    def n_levels(self) -> int:
        return len(self.levels)

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
        return tuple(self.levels[level].shape)

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
        h, w = self.levels[level].shape
        x0, y0 = (tx - sx / 2) / 1000.0, (ty - sy / 2) / 1000.0
        return (x0, x0 + w * sx / 1000.0, y0, y0 + h * sy / 1000.0)

    def pixel_to_focal_plane(self, level: int, i, j) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i``, column ``j`` (pixel centres) of ``level`` -> focal-plane ``(x, y)`` mm."""
        (sy, sx), (ty, tx) = self._transforms[level]
        return ((tx + sx * np.asarray(j, float)) / 1000.0, (ty + sy * np.asarray(i, float)) / 1000.0)

    def focal_plane_to_pixel(self, level: int, x_mm, y_mm) -> tuple[np.ndarray, np.ndarray]:
        """Focal-plane mm -> fractional ``(i, j)`` (row, column) of ``level``."""
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
        return [p.name for p in self.plan.placements if p.name not in missing]

    @property
    def missing(self) -> list[dict]:
        """``{"id", "name", "reason", ...}`` for detectors without data."""
        return list(self.attrs.get("missing", []))

    @property
    def inputs(self) -> list[dict]:
        return list(self.attrs.get("inputs", []))

    def window(self, level: int = 0) -> tuple[float, float]:
        """Default display range ``(start, end)`` of ``level`` (0.5-99.5 percentiles)."""
        windows = self.attrs.get("windows") or []
        w = windows[level] if level < len(windows) else None
        if not w:
            return (0.0, 1.0)
        return (float(w["start"]), float(w["end"]))

    def read(self, level: int = 0, y0: int | None = None, y1: int | None = None,
             x0: int | None = None, x1: int | None = None) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of ``level`` as float32 (bounds clipped to the level)."""
        arr = self.levels[level]
        h, w = arr.shape
        ys = slice(*slice(y0, y1).indices(h)[:2])
        xs = slice(*slice(x0, x1).indices(w)[:2])
        return np.asarray(arr[ys, xs])

    def to_dask(self, level: int = 0):
        """``level`` as a dask array with one block per shard."""
        import dask.array as da

        arr = self.levels[level]
        chunks = getattr(arr, "shards", None) or arr.chunks
        return da.from_zarr(arr, chunks=chunks)


def open_mosaic(store, storage_options: dict | None = None) -> MosaicStore:
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
    from ..errors import InputError

    try:
        group = open_group(store, "r", storage_options)
    except (FileNotFoundError, KeyError) as exc:
        raise InputError(str(store), f"not a zarr store ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # zarr raises its own errors for non-groups
        if type(exc).__name__ in ("GroupNotFoundError", "NodeNotFoundError", "ContainsArrayError"):
            raise InputError(str(store), "no mosaic store here") from None
        raise
    try:
        return MosaicStore(group)
    except ValueError as exc:
        raise InputError(str(store), str(exc)) from None
