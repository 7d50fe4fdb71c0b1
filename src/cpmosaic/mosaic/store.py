"""Mosaic stores: zarr v3 groups with OME-Zarr 0.5 metadata, and the reader API.

Layout of a store (``STORE`` a local path or an fsspec URL)::

    STORE/zarr.json          group; attributes {"ome": {...}, "cpmosaic": {...}}
    STORE/0/zarr.json        level 0 (finest), float32, dimension_names ["y", "x"], sharded
    STORE/0/c/I/J            one shard object (inner chunks + index)
    STORE/0/done/I_J         build marker of shard (I, J): JSON stats, written after the shard
    STORE/1/ ...             levels 1..n, each half the resolution of the one before

Pixel ``(i, j)`` centre of level ``k`` is at focal-plane ``(y, x) = translation_k +
scale_k * (i, j)`` micrometres (``ome.multiscales[0].datasets[k].coordinateTransformations``).
    STORE/0/owner.json       the writer's claim (build id, writer id, host, pid), see owner.py

The markers live under the level arrays (not in a ``.cpmosaic`` folder of the group)
because zarr warns about unknown objects beside a group's members, and they go when
the level is deleted.

This module writes and prepares stores; :mod:`cpmosaic.mosaic.reader` reads them
(:func:`open_mosaic`, re-exported here).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import threading
from typing import Any, Literal

import numpy as np

from ..errors import InputError
from ._zarrio import (
    delete_key,
    delete_prefix,
    get_bytes,
    list_keys,
    set_bytes,
    set_json,
)
from .localstore import LocalGroup, LocalLevel, empty_folder, is_local, level_document
from .plan import MosaicPlan, OptionError
from .reader import MosaicStore, open_mosaic

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_COMPRESSOR",
    "FORMAT_VERSION",
    "MosaicStore",
    "merge_windows",
    "ome_attributes",
    "open_mosaic",
    "compressor_codecs",
    "parse_compressor",
    "prepare_store",
]

#: Version of the ``cpmosaic`` attribute schema.
FORMAT_VERSION = 1
#: The compressor of new stores: on real-looking float32 detector data it compresses
#: best of blosc-lz4, blosc-zstd and zstd 1-5, and encodes fastest after "none"
#: (benchmarks/RESULTS.md, ``bench_mosaic.py --codecs``).
DEFAULT_COMPRESSOR = "blosc-lz4-bitshuffle"
#: Compressor names a build accepts (``zstd-LEVEL``: LEVEL 1..22).
COMPRESSORS = ("blosc-lz4", "lz4", "blosc-zstd", "blosc-lz4-bitshuffle", "zstd", "zstd-LEVEL", "none")
#: Percentiles of the default display window.
WINDOW_PERCENTILES = (0.5, 99.5)
_QUANTILES = np.linspace(0.0, 1.0, 101)


def open_group(store: Any, mode: Literal["r", "r+", "a", "w", "w-"] = "r",
               storage_options: dict | None = None) -> Any:
    """A zarr group from a path, fsspec URL or zarr store."""
    import zarr

    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    if storage_options and isinstance(store, str) and "://" in store:
        return zarr.open_group(store, mode=mode, zarr_format=3, storage_options=storage_options)
    return zarr.open_group(store, mode=mode, zarr_format=3)


def marker_key(level: int, i: int, j: int) -> str:
    """Store key (relative to the group) of the marker of shard ``(i, j)`` of ``level``."""
    return f"{level}/done/{i}_{j}"


_LEVELS: dict = {}
_LEVELS_LOCK = threading.Lock()


def open_level(store, level: int, mode: str = "r+"):
    """One level array of a store, without parsing the (large) group attributes.

    Opened arrays are kept per process (reading ``zarr.json`` costs milliseconds
    and a build opens a level once per shard); :func:`forget_levels` drops them.
    A local path gives a :class:`~.localstore.LocalLevel` (no zarr).
    """
    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    key = (store if isinstance(store, str) else id(store), level, mode)
    with _LEVELS_LOCK:
        array = _LEVELS.get(key)
    if array is None:
        if is_local(store):
            array = LocalLevel(store, level, mode)
        else:
            import zarr

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
    set_bytes(array.store_path, f"done/{i}_{j}", json.dumps(content, sort_keys=True).encode())


def write_group_attributes(group, attributes: dict) -> None:
    """Replace all attributes of a group (its ``zarr.json``), as ``group.update_attributes``
    would write them but with the C JSON encoder in one go (see :mod:`._zarrio`).

    The in-memory ``group`` object is not updated: read attributes from the store.
    """
    set_json(group.store_path, "zarr.json", {"attributes": attributes, "zarr_format": 3, "node_type": "group"})


def create_levels(group, levels, codecs: list[dict]) -> None:
    """Create the (empty) level arrays of a new store (``codecs``: :func:`compressor_codecs`).

    A local store gets the documents zarr would write (:func:`.localstore.level_document`).
    Otherwise the first is created by zarr; the others get its metadata document with their
    own shape, shard and chunk shape (zarr's ``create_array`` costs milliseconds each).
    """
    if isinstance(group, LocalGroup):
        for lv in levels:
            set_json(group.store_path, f"{lv.level}/zarr.json", level_document(lv.shape, lv.shards, lv.chunks, codecs))
        return
    import zarr
    from zarr.buffer import default_buffer_prototype

    compressors = zarr_codecs(codecs)

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
        set_json(group.store_path, f"{lv.level}/zarr.json", doc)


def read_markers(group, plan: MosaicPlan) -> dict[tuple[int, int, int], dict]:
    """Markers present in a store: ``{(level, i, j): content}``, in ``(level, i, j)`` order
    whatever order the store lists them in."""
    base = group.store_path.path
    prefix = f"{base}/" if base else ""
    out = {}
    for lv in plan.levels:
        for key in list_keys(group.store, f"{prefix}{lv.level}/done/"):
            name = key.rsplit("/", 1)[-1]
            try:
                i, j = (int(v) for v in name.split("_"))
            except ValueError:
                continue
            raw = get_bytes(group.store_path, marker_key(lv.level, i, j))
            if raw is None:
                continue
            try:
                out[(lv.level, i, j)] = json.loads(raw)
            except ValueError:  # a marker cut by a kill: the shard is redone
                log.debug("unreadable marker %s", key)
    return dict(sorted(out.items()))


def delete_marker(group, level: int, i: int, j: int) -> None:
    delete_key(group.store_path, marker_key(level, i, j))


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
    sample = finite[:: max(1, n // max_sample)].astype(np.float64)
    sample.sort()  # the same quantiles; numpy's selection of 101 of them is 6x slower on unsorted values
    q = np.quantile(sample, _QUANTILES)
    return {"n": n, "min": float(finite.min()), "max": float(finite.max()), "q": [float(v) for v in q]}


def merge_windows(stats: list[dict], percentiles: tuple[float, float] = WINDOW_PERCENTILES) -> dict | None:
    """Combine shard summaries into a display window ``{min, max, start, end}`` (None if no data).

    The result does not depend on the order of ``stats``:

    >>> a = {"n": 4, "min": 0.0, "max": 1.0, "q": [0.0, 1.0]}
    >>> b = {"n": 4, "min": 1.0, "max": 3.0, "q": [1.0, 3.0]}
    >>> merge_windows([a, b]) == merge_windows([b, a])
    True
    """
    stats = [s for s in stats if s.get("n")]
    if not stats:
        return None
    vals = np.concatenate([np.asarray(s["q"], float) for s in stats])
    weights = np.concatenate([np.full(len(s["q"]), s["n"] / len(s["q"])) for s in stats])
    # by value, ties by weight: the same window whatever order the shards come in
    order = np.lexsort((weights, vals))
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




# -- preparation (before a build writes a shard) ---------------------------------------


def _blosc(cname: str, clevel: int, shuffle: str) -> dict:
    return {"name": "blosc", "configuration": {"typesize": 4, "cname": cname, "clevel": clevel, "shuffle": shuffle,
                                               "blocksize": 0}}


def compressor_codecs(name: str) -> list[dict]:
    """The zarr v3 codec documents of a compressor name (as zarr writes them for float32; no
    zarr needed); ValueError naming the value when it is not one.

    ``blosc-lz4`` (alias ``lz4``): blosc with lz4 and byte shuffle; ``blosc-lz4-bitshuffle``;
    ``blosc-zstd``: blosc with zstd level 1 and byte shuffle; ``zstd`` / ``zstd-LEVEL``
    (1..22, default 1); ``none``.

    >>> compressor_codecs("zstd-3")
    [{'name': 'zstd', 'configuration': {'level': 3, 'checksum': False}}]
    >>> compressor_codecs("zstd-99")
    Traceback (most recent call last):
    ...
    cpmosaic.mosaic.plan.OptionError: compressor 'zstd-99': zstd levels are 1..22
    """
    text = str(name).strip().lower()
    if text in ("blosc-lz4", "lz4"):
        return [_blosc("lz4", 5, "shuffle")]
    if text == "blosc-lz4-bitshuffle":
        return [_blosc("lz4", 5, "bitshuffle")]
    if text == "blosc-zstd":
        return [_blosc("zstd", 1, "shuffle")]
    if text == "zstd" or text.startswith("zstd-"):
        level_text = text[5:] or "1"
        try:
            level = int(level_text) if text != "zstd" else 1
        except ValueError:
            raise OptionError(f"compressor {name!r}: zstd-LEVEL needs a whole number LEVEL, 1..22") from None
        if not 1 <= level <= 22:
            raise OptionError(f"compressor {name!r}: zstd levels are 1..22")
        return [{"name": "zstd", "configuration": {"level": level, "checksum": False}}]
    if text == "none":
        return []
    raise OptionError(f"compressor {name!r} is not one of blosc-lz4, lz4, blosc-lz4-bitshuffle, blosc-zstd, "
                      "zstd, zstd-LEVEL (1..22), none")


def zarr_codecs(codecs: list[dict]) -> list:
    """zarr codec objects of codec documents (:func:`compressor_codecs`)."""
    from zarr.codecs import BloscCodec, ZstdCodec

    out: list = []
    for c in codecs:
        conf = c["configuration"]
        if c["name"] == "blosc":
            out.append(BloscCodec(cname=conf["cname"], clevel=conf["clevel"], shuffle=conf["shuffle"]))
        else:
            out.append(ZstdCodec(level=conf["level"], checksum=conf["checksum"]))
    return out


def parse_compressor(name: str) -> list:
    """zarr codecs of a compressor name (see :func:`compressor_codecs`); ValueError naming the
    value when it is not one.

    >>> [type(c).__name__ for c in parse_compressor("zstd-3")]
    ['ZstdCodec']
    """
    return zarr_codecs(compressor_codecs(name))


def is_store(store) -> bool:
    """Whether a zarr group exists at ``store``."""
    if is_local(store):
        return LocalGroup.exists(store)
    try:
        open_group(store, "r")
        return True
    except Exception:  # noqa: BLE001 - zarr raises several types for "nothing here"
        return False


def check_resume(group, attrs: dict, store) -> dict:
    """The stored ``cpmosaic`` attributes, if a build with ``attrs`` may resume this store.

    Raises
    ------
    InputError
        The store was started with other settings or inputs (the message says which).
    """
    old = group.attrs.asdict().get("cpmosaic")
    if old is None:
        raise InputError(str(store), "cannot resume: not a cpmosaic mosaic store")
    if attrs.get("build", {}).get("compressor") is None:  # not asked for: the store's own
        attrs["build"] = {**attrs["build"], "compressor": (old.get("build") or {}).get("compressor")}
    for key in ("camera", "binning", "pixel_size_mm", "origin", "levels", "placements", "build"):
        if old.get(key) != attrs.get(key):
            raise InputError(str(store), f"cannot resume: the store was started with a different {key}")
    if {r["detector"]: r["path"] for r in old.get("inputs", [])} != \
            {r["detector"]: r["path"] for r in attrs["inputs"]}:
        raise InputError(str(store), "cannot resume: the store was started with other input files")
    return old


class StoreExistsError(InputError, FileExistsError):
    """A store (or something else) is already at the output and neither resume nor overwrite was asked."""


def open_build_group(store, mode: Literal["r+", "w"]):
    """The group a build writes: a :class:`~.localstore.LocalGroup` for a local path (no
    zarr; ``"w"`` empties the folder, as zarr does), else a zarr group."""
    if not is_local(store):
        return open_group(store, mode)
    if mode == "w":
        if os.path.isdir(store):
            empty_folder(store)  # the old files go on a background thread
        os.makedirs(store, exist_ok=True)
        group = LocalGroup(store)
        set_json(group.store_path, "zarr.json", {"attributes": {}, "zarr_format": 3, "node_type": "group"})
        return group
    if not LocalGroup.exists(store):
        raise FileNotFoundError(f"{store}: no zarr group here")
    return LocalGroup(store)


def prepare_store(store, plan: MosaicPlan, attrs: dict, codecs: list[dict], resume: bool, overwrite: bool):
    """Open (resume) or create the store with its metadata and empty level arrays
    (``codecs``: :func:`compressor_codecs`).

    Returns ``(group, attrs, created)``: ``attrs`` the store's ``cpmosaic``
    attributes (the stored ones when resuming: its build id), ``created`` whether
    this call made the store (so a failed start can remove it: :func:`remove_store`).
    """
    exists = is_store(store)
    if isinstance(store, str) and "://" not in store:
        if os.path.isfile(store) or (os.path.isdir(store) and os.listdir(store) and not exists):
            raise StoreExistsError(store, "exists and is not a zarr store; refusing to write over it")
    if exists and resume:
        group = open_build_group(store, "r+")
        old = check_resume(group, attrs, store)
        return group, {**attrs, "build_id": old.get("build_id"), "failed": old.get("failed", [])}, False
    if exists and not overwrite:
        raise StoreExistsError(str(store), "a store already exists here (resume it or overwrite it)")
    created = not exists and not (isinstance(store, str) and "://" not in store and os.path.isdir(store))
    if attrs["build"].get("compressor") is None:
        attrs["build"] = {**attrs["build"], "compressor": DEFAULT_COMPRESSOR}
    group = open_build_group(store, "w")
    try:
        write_group_attributes(group, {"ome": ome_attributes(plan, attrs["name"]), "cpmosaic": attrs})
        create_levels(group, plan.levels, codecs)
    except BaseException:
        remove_store(store, created)
        raise
    return group, attrs, True


def remove_store(store, whole: bool = True) -> None:
    """Delete what a failed start wrote at ``store`` (the folder itself when ``whole``)."""
    forget_levels()
    try:
        if isinstance(store, str) and "://" not in store:
            if whole:
                shutil.rmtree(store, ignore_errors=True)
            else:  # an empty folder the user made: keep it, empty
                for entry in os.listdir(store):
                    path = os.path.join(store, entry)
                    shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
            return
        group = open_group(store, "r+")
        delete_prefix(group.store, group.store_path.path)
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the error that caused it
        log.warning("%s: could not remove what the failed start wrote (%s)", store, exc)


def compact_json():
    """zarr writes metadata without indentation meanwhile.

    The group attributes hold every detector's placement and amp boxes (~150 kB
    of JSON); indented, Python's pure-Python encoder takes ~70 ms per write
    instead of ~6 ms for the C one.  Readers see the same JSON.  Without zarr imported
    (a local build) nothing goes through zarr.
    """
    if "zarr" not in sys.modules:
        return contextlib.nullcontext()
    import zarr

    return zarr.config.set({"json_indent": None})


def fast_codecs():
    """zarr's fused codec pipeline meanwhile (where this zarr has it).

    The default (batched) pipeline schedules a coroutine and a thread hop per
    chunk, about 1 ms each on a busy machine, several times the lz4 work; the
    fused one (opt-in in zarr 3) encodes a shard's chunks synchronously.  Same
    bytes on disk.  Arrays keep the pipeline they were opened with, so level
    arrays are opened (:func:`open_level`) inside this context; stores without
    synchronous IO fall back to the async path inside zarr.  Without zarr imported (a
    local build) nothing goes through zarr; :class:`~.localstore.LocalLevel` opens its
    zarr array (if ever) inside this context.
    """
    if "zarr" not in sys.modules:
        return contextlib.nullcontext()
    import zarr

    try:
        from zarr.core.codec_pipeline import FusedCodecPipeline  # noqa: F401
    except ImportError:  # older zarr
        return contextlib.nullcontext()
    return zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.FusedCodecPipeline"})
