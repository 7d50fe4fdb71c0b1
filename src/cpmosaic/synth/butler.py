"""A real Butler repository (lsst-daf-butler) holding the synthetic cp_verify outputs.

:func:`make_butler_repo` creates a SQLite + POSIX-datastore repository, inserts
dimension records (instrument, detector from the camera, physical_filter,
day_obs, group, exposure), registers the verify dataset types

* detector tier ``verify<T>Det{Stats,Results}``: instrument + exposure + detector,
* exposure tier ``verify<T>Exp{Stats,Results}``: instrument + exposure (flats:
  + physical_filter),
* run tier ``verify<T>{Stats,Results}``: instrument (flats: + physical_filter),

with storage classes StructuredDataDict (Stats) and ArrowAstropy (Results),
and stores EVERY verify file of the tree in its RUN collection (``butler.put``,
or for large sets a much faster ingest of the files as they are); a CHAINED
collection (default ``u/cpv/verify``) lists all those runs.

Images: lsst-afw is not a dependency, so the calibration products (``bias``,
``dark``, ``flat``: instrument + detector, runs ``u/cpv/calibA``/``B``, chain
``u/cpv/calib``) and processed exposures (``postISRCCD``: instrument + exposure +
detector) are *ingested* as files with storage class ``NumpyArray`` and this
module's :class:`FitsImageFormatter`: ``butler.get`` returns the IMAGE plane as
a numpy array and ``butler.getURI`` the afw-layout FITS file.  Raw files are not
ingested (their formatter lives in obs_lsst).

lsst.daf.butler is imported inside the functions; this module imports without it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:
    from ..camera import Camera
    from .manifest import Manifest

__all__ = ["make_butler_repo", "scan_verify_tree", "dataset_dimensions", "FitsImageFormatter"]

log = logging.getLogger(__name__)

_PURPOSE = {"science": "SCIENCE", "guider": "GUIDER", "wavefront": "WAVEFRONT", "focus": "FOCUS"}
_CLASS = {"LSSTCam": "lsst.obs.lsst.LsstCam", "LSSTComCam": "lsst.obs.lsst.LsstComCam",
          "LATISS": "lsst.obs.lsst.Latiss"}


def _formatter_class():
    from lsst.daf.butler import FormatterV2

    class FitsImageFormatter(FormatterV2):
        """Read the IMAGE plane of an afw-layout (or plain) FITS file as a numpy array."""

        default_extension = ".fits"
        supported_extensions = frozenset({".fits", ".fz"})
        can_read_from_local_file = True

        def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
            from astropy.io import fits

            with fits.open(path, memmap=False) as hdul:
                named = [h for h in hdul if h.name == "IMAGE"]
                for hdu in named or list(hdul):
                    if hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2:
                        return np.array(hdu.data)
            raise ValueError(f"{path}: no 2-D image HDU")

        def write_local_file(self, in_memory_dataset: Any, uri) -> None:
            from astropy.io import fits

            data = np.asarray(in_memory_dataset, np.float32)
            fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="IMAGE")]).writeto(uri.ospath)

    FitsImageFormatter.__module__ = __name__
    FitsImageFormatter.__qualname__ = "FitsImageFormatter"
    return FitsImageFormatter


def __getattr__(name: str):
    # the formatter subclasses a daf_butler class: build it on first use so that
    # importing this module does not import lsst.daf.butler
    if name == "FitsImageFormatter":
        cls = _formatter_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scan_verify_tree(vroot: str | os.PathLike, instrument: str) -> Iterator[dict]:
    """Every verify dataset of a tree laid out as ENGINEERING.md says.

    Yields ``{path, dataset_type, calib_type, tier, run, exposure, detector_name,
    physical_filter}``; paths are parsed by ``cpmosaic.io.cpverify_tree`` (the
    one reader of tree layouts).  ``physical_filter`` is the folder between
    the dataset-type folder and a run-level file (flats), else None.
    """
    from ..io.cpverify_tree import find_products

    vroot = Path(vroot)
    tiers = {"detector": "det", "exposure": "exp", "run": "run"}
    for prod in find_products(vroot):
        path = Path(prod.source)
        if not prod.run:
            log.warning("%s: not below a <run>/<datasetType>/ folder; skipped", path)
            continue
        dstype = prod.info.name
        pf = path.parent.name if prod.info.tier == "run" and path.parent.name != dstype else None
        detector = prod.detector if isinstance(prod.detector, str) else None
        if prod.info.tier == "detector" and detector is None:
            log.warning("%s: no detector name in the file name; skipped", path)
            continue
        yield {"path": path, "dataset_type": dstype, "calib_type": prod.info.calib_type,
               "tier": tiers[prod.info.tier], "run": prod.run, "exposure": prod.exposure, "detector_name": detector,
               "physical_filter": pf}


def dataset_dimensions(calib_type: str, tier: str) -> list[str]:
    """The dimensions of a verify dataset type as cp_verify's connections declare them.

    Detector products: instrument, exposure, detector (CpVerifyStatsConnections);
    flat exposure products add physical_filter (CpVerifyExpMergeByFilterConnections)
    and flat run products are instrument + physical_filter
    (CpVerifyRunMergeByFilterConnections); other exposure products are
    instrument + exposure, other run products instrument only.

    >>> dataset_dimensions("flat", "run"), dataset_dimensions("bias", "exp")
    (['instrument', 'physical_filter'], ['instrument', 'exposure'])
    """
    by_filter = calib_type == "flat"
    return {"det": ["instrument", "exposure", "detector"],
            "exp": ["instrument", "exposure"] + (["physical_filter"] if by_filter else []),
            "run": ["instrument"] + (["physical_filter"] if by_filter else [])}[tier]


def _exposure_record(instrument: str, exposure: int, meta: dict | None, calib_type: str) -> dict:
    from astropy.time import Time
    from lsst.daf.butler import Timespan

    from .images import ExposureMeta, mjd_of

    day, seq = exposure // 100000, exposure % 100000
    if meta is None:  # nothing better known: derive from the id and the dataset type
        meta = ExposureMeta(instrument, calib_type, day, seq, mjd_of(day, 0.75), 0.0, 0.0).to_dict()
    em = ExposureMeta.from_dict(meta)
    t0 = Time(em.mjd, format="mjd", scale="tai")
    t1 = Time(em.mjd + max(em.exptime, 0.001) / 86400.0, format="mjd", scale="tai")
    return {"instrument": instrument, "id": exposure, "day_obs": day, "group": str(exposure),
            "physical_filter": em.physical_filter, "obs_id": em.obs_id, "exposure_time": em.exptime,
            "dark_time": em.darktime, "observation_type": em.calib_type, "observation_reason": em.calib_type,
            "seq_num": seq, "seq_start": seq, "seq_end": seq, "target_name": "", "science_program": "cpv",
            "tracking_ra": None, "tracking_dec": None, "sky_angle": None, "azimuth": None, "zenith_angle": None,
            "has_simulated": True, "can_see_sky": False, "timespan": Timespan(t0, t1)}


def _insert_dimensions(registry, camera: "Camera", instrument: str, exposures: dict[int, dict | None],
                       calib_types: dict[int, str]) -> None:
    from astropy.time import Time
    from lsst.daf.butler import Timespan

    from .images import mjd_of

    registry.insertDimensionData("instrument", {
        "name": instrument, "detector_max": max(1000, max(d.id for d in camera) + 1), "visit_max": 10**14,
        "exposure_max": 10**14, "visit_system": 2, "class_name": _CLASS.get(instrument, "")})
    registry.insertDimensionData("detector", *[
        {"instrument": instrument, "id": d.id, "full_name": d.name, "raft": d.raft, "name_in_raft": d.sensor,
         "purpose": _PURPOSE.get(d.type, "SCIENCE")} for d in camera])
    filters = {(m or {}).get("physical_filter", "r_57") for m in exposures.values()} | {"r_57"}
    registry.insertDimensionData("physical_filter", *[
        {"instrument": instrument, "name": f, "band": f.split("_")[0]} for f in sorted(filters)])
    days = sorted({e // 100000 for e in exposures})
    # Rubin's day_obs starts at 12:00 TAI (offset -12 h)
    registry.insertDimensionData("day_obs", *[
        {"instrument": instrument, "id": d,
         "timespan": Timespan(Time(mjd_of(d, 0.5), format="mjd", scale="tai"),
                              Time(mjd_of(d, 1.5), format="mjd", scale="tai"))} for d in days])
    registry.insertDimensionData("group", *[{"instrument": instrument, "name": str(e)} for e in sorted(exposures)])
    registry.insertDimensionData("exposure", *[
        _exposure_record(instrument, e, exposures[e], calib_types.get(e, "bias")) for e in sorted(exposures)])


def _load(path: Path):
    if path.suffix == ".yaml":
        import yaml

        return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    import pyarrow.parquet as pq
    from lsst.daf.butler.formatters.parquet import arrow_to_astropy

    return arrow_to_astropy(pq.read_table(path))


def make_butler_repo(root: str | os.PathLike, source: "Manifest | str | os.PathLike", *,
                     camera: "Camera | str | None" = None, instrument: str | None = None,
                     chain: str = "u/cpv/verify", calib_chain: str = "u/cpv/calib", images: bool = True,
                     transfer: str = "copy", mode: str = "auto", overwrite: bool = True) -> Path:
    """Create a Butler repository at *root* holding every verify dataset of *source*.

    Parameters
    ----------
    root
        Repository directory; an existing repository there is replaced when
        ``overwrite`` (a non-repository directory is never deleted).
    source
        A :class:`~cpmosaic.synth.Manifest`, a directory holding ``manifest.json``,
        or a bare cp_verify tree (``<run>/<datasetType>/...``; then give ``camera``).
    camera, instrument
        Needed only for a bare tree (default LSSTCam).
    chain, calib_chain
        CHAINED collections over the verify runs and over the calibration runs.
    images
        Also ingest calibration products and processed exposures of a manifest.
    transfer
        Ingest mode for image files (``copy``, ``symlink``, ``direct``, ...).
    mode
        ``put``: read each file and ``butler.put`` it (what cp_verify does; the
        datastore rewrites it, ~20-70 ms a dataset); ``ingest``: ingest the files
        as they are (a copy, ~100x faster; Results are stored with ``.parq``
        names as the ParquetFormatter wants); ``auto``: put up to 3000 datasets,
        ingest beyond.

    Returns
    -------
    Path
        The repository root.
    """
    from lsst.daf.butler import Butler, CollectionType, DatasetType

    from ..camera import get_camera
    from .manifest import Manifest, read_manifest

    if mode not in ("auto", "put", "ingest"):
        raise ValueError(f"mode must be 'auto', 'put' or 'ingest', got {mode!r}")
    src = None if isinstance(source, Manifest) else Path(source)
    manifest: Manifest | None = source if isinstance(source, Manifest) else None
    if src is not None and (src / "manifest.json").is_file():
        manifest = read_manifest(src)
    if manifest is not None:
        vroot, cam, inst = manifest.verify_root, manifest.load_camera(), manifest.instrument
        metas = {int(e["exposure"]): e for e in manifest.exposures}
    else:
        cam = get_camera(camera or "LSSTCam") if isinstance(camera, (str, type(None))) else camera
        vroot, inst, metas = src, instrument or cam.name, {}
    root = Path(root)
    if (root / "butler.yaml").exists() and overwrite:
        shutil.rmtree(root)
    entries = list(scan_verify_tree(vroot, inst)) if vroot is not None else []
    exposures = {e["exposure"]: metas.get(e["exposure"]) for e in entries if e["exposure"] is not None}
    for e in (manifest.images.get("processed", ()) if manifest and images else ()):
        exposures.setdefault(int(e["exposure"]), metas.get(int(e["exposure"])))
    kinds = {e["exposure"]: e["calib_type"] for e in entries if e["exposure"] is not None}

    Butler.makeRepo(str(root))
    butler = Butler.from_config(str(root), writeable=True)
    try:
        reg = butler.registry
        _insert_dimensions(reg, cam, inst, exposures, kinds)
        dstypes: dict[str, Any] = {}
        by_run: dict[str, list[tuple[dict, Any, dict]]] = {}
        by_name = {d.name: d.id for d in cam}
        for e in entries:
            name = e["dataset_type"]
            if name not in dstypes:
                sc = "StructuredDataDict" if name.endswith("Stats") else "ArrowAstropy"
                dstypes[name] = DatasetType(name, dataset_dimensions(e["calib_type"], e["tier"]), sc,
                                            universe=butler.dimensions)
                reg.registerDatasetType(dstypes[name])
            data_id: dict[str, Any] = {"instrument": inst}
            if e["exposure"] is not None:
                data_id["exposure"] = e["exposure"]
            if "physical_filter" in dstypes[name].dimensions.required:
                data_id["physical_filter"] = e["physical_filter"] or _filter_of(e, metas, entries)
            if e["detector_name"]:
                data_id["detector"] = by_name[e["detector_name"]]
            by_run.setdefault(e["run"], []).append((e, dstypes[name], data_id))
        if mode == "auto":
            mode = "put" if len(entries) <= 3000 else "ingest"
        for run, items in by_run.items():
            reg.registerCollection(run, CollectionType.RUN)
            if mode == "put":
                with butler.transaction():  # one commit per run, not one per dataset
                    for e, dst, data_id in items:
                        butler.put(_load(e["path"]), dst, data_id, run=run)
            else:
                _ingest_verify(butler, run, items)
        runs = list(by_run)
        if runs and chain:
            reg.registerCollection(chain, CollectionType.CHAINED)
            reg.setCollectionChain(chain, sorted(runs, reverse=True))  # newest day first
        if manifest is not None and images:
            _ingest_images(butler, manifest, inst, calib_chain, transfer)
        log.info("butler repository %s: %d verify datasets in %d runs", root, len(entries), len(runs))
    finally:
        butler.close() if hasattr(butler, "close") else None
    return root


def _filter_of(entry: dict, metas: dict, entries: list[dict]) -> str:
    """The physical_filter of a flat dataset: its exposure's, else that of the run's first exposure."""
    exposures = [entry["exposure"]] if entry["exposure"] is not None else sorted(
        e["exposure"] for e in entries if e["run"] == entry["run"] and e["exposure"] is not None)
    for exp in exposures:
        if (metas.get(exp) or {}).get("physical_filter"):
            return metas[exp]["physical_filter"]
    return "r_57"


def _ingest_verify(butler, run: str, items: list) -> None:
    """Ingest verify files unchanged (YAML copied; parquet copied to ``.parq`` and moved in)."""
    import tempfile

    from lsst.daf.butler import DatasetRef, FileDataset

    yamls, parqs = [], []
    with tempfile.TemporaryDirectory(prefix="cpmosaic-ingest-") as tmp:
        for i, (e, dst, data_id) in enumerate(items):
            ref = DatasetRef(dst, data_id, run=run)
            if e["path"].suffix == ".yaml":
                yamls.append(FileDataset(path=str(e["path"]), refs=[ref]))
            elif e["path"].suffix == ".parq":
                yamls.append(FileDataset(path=str(e["path"]), refs=[ref]))  # copied as it is
            else:
                # the ParquetFormatter accepts only ".parq" names
                target = Path(tmp) / f"{i}_{e['path'].stem}.parq"
                shutil.copyfile(e["path"], target)
                parqs.append(FileDataset(path=str(target), refs=[ref]))
        if yamls:
            butler.ingest(*yamls, transfer="copy")
        if parqs:
            butler.ingest(*parqs, transfer="move")


def _ingest_images(butler, manifest: "Manifest", inst: str, calib_chain: str, transfer: str) -> None:
    from lsst.daf.butler import CollectionType, DatasetRef, DatasetType, FileDataset

    reg = butler.registry
    fmt = f"{__name__}.FitsImageFormatter"
    corrupt = {Path(c["path"]) for c in manifest.corrupt}
    todo: dict[str, list] = {}
    dtypes: dict[str, Any] = {}

    def dtype(name: str, dims: list[str]):
        if name not in dtypes:
            dtypes[name] = DatasetType(name, dims, "NumpyArray", universe=butler.dimensions)
            reg.registerDatasetType(dtypes[name])
        return dtypes[name]

    for e in manifest.images.get("calib", ()):
        if Path(e["path"]) in corrupt:
            continue
        ref = DatasetRef(dtype(e["calib_type"], ["instrument", "detector"]),  # a dict is standardised
                         {"instrument": inst, "detector": e["detector"]}, run=e["run"])  # type: ignore[arg-type]
        todo.setdefault(e["run"], []).append(FileDataset(path=str(e["path"]), refs=[ref], formatter=fmt))
    for e in manifest.images.get("processed", ()):
        if Path(e["path"]) in corrupt:
            continue
        run = f"u/cpv/processed/{e['calib_type']}"
        ref = DatasetRef(dtype("postISRCCD", ["instrument", "exposure", "detector"]),
                         {"instrument": inst, "exposure": e["exposure"],  # a dict is standardised
                          "detector": e["detector"]}, run=run)  # type: ignore[arg-type]
        todo.setdefault(run, []).append(FileDataset(path=str(e["path"]), refs=[ref], formatter=fmt))
    for run, datasets in todo.items():
        reg.registerCollection(run, CollectionType.RUN)
        butler.ingest(*datasets, transfer=transfer)
    calib_runs = [r for r in manifest.calib_runs.values() if r in todo]
    if calib_runs and calib_chain:
        reg.registerCollection(calib_chain, CollectionType.CHAINED)
        reg.setCollectionChain(calib_chain, calib_runs)
