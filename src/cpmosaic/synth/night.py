"""Orchestration: :func:`synthesize` writes a whole synthetic data set and its manifest.

Directory layout under ``root``::

    manifest.json                  what was written (see :class:`Manifest`)
    camera.json                    the (shrunk) camera, cpmosaic's compact format
    raw/<day_obs>/<exposure>/<exposure>-<RAFT>-<SENSOR>-det<id:03d>.fits
    processed/<calib_type>/<day_obs>/<exposure>/postISRCCD_<instrument>_<exposure>_<det>.fits
    calibs/<run>/<calib_type>/<calib_type>_<instrument>_<det>_<run with / as _>.fits
    verify/<run>/<datasetType>/<day_obs>/<datasetType>_<instrument>_<exposure>[_<det>]_<run_>.<yaml|parq>
    verify/<run>/<datasetType>/[<band>/<filter>/]<datasetType>_<instrument>_[<band>_<filter>_]<run_>.<yaml|parq> (run)

Results are ``.parq`` files, as the Butler's POSIX datastore names parquet.
    butler/                        a Butler repository holding the verify datasets (optional)

Every detector x exposure (and detector x calibration) is an independent task
with its own seeded generator, so ``workers`` threads give identical bytes.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..camera import Camera, get_camera, shrink_camera, write_camera_json
from . import cpverify as cpv
from .images import (CALIB_TYPES, MASK_PLANES, TYPE_CODE, DetectorModel, ExposureMeta, SignalParams, calib_image,
                     derive_rng, exposure_image, flat_level, make_detector_model, mjd_of, pick_anomalies,
                     pick_calib_differences)
from .manifest import MANIFEST_FORMAT, Manifest, read_manifest  # noqa: F401 - re-exported

__all__ = ["synthesize", "Manifest", "read_manifest", "SEQ_BASE"]

log = logging.getLogger(__name__)

#: First sequence number of each calibration type within a day.
SEQ_BASE = {"bias": 10, "dark": 40, "flat": 70}
CALIB_LABELS = ("A", "B")


def _days(first_day: int, n_days: int) -> list[int]:
    d0 = _dt.date(first_day // 10000, first_day // 100 % 100, first_day % 100)
    return [int((d0 + _dt.timedelta(days=i)).strftime("%Y%m%d")) for i in range(n_days)]


def _schedule(instrument: str, days: Sequence[int], calib_types: Sequence[str], per_day: int,
              params: SignalParams) -> list[ExposureMeta]:
    out = []
    for day in days:
        for ct in calib_types:
            for i in range(per_day):
                seq = SEQ_BASE[ct] + i
                exptime = float(params.exptime[ct])
                out.append(ExposureMeta(instrument, ct, day, seq, mjd_of(day, 0.75 + seq * 60.0 / 86400.0),
                                        exptime, exptime + params.dark_overhead))
    return out


def _processed_header(det, meta: ExposureMeta | None, instrument: str, calib_type: str, run: str | None = None) -> dict:
    h = {"INSTRUME": instrument, "DETNAME": det.name, "DETECTOR": det.id, "RAFTBAY": det.raft,
         "CCDSLOT": det.sensor, "BUNIT": "electron" if meta is not None else ""}
    if meta is not None:
        h.update({"EXPOSURE": meta.exposure, "OBSID": meta.obs_id, "DAYOBS": str(meta.day_obs),
                  "SEQNUM": meta.seq_num, "MJD-OBS": meta.mjd, "DATE-OBS": meta.date_obs, "IMGTYPE": meta.imgtype,
                  "EXPTIME": meta.exptime, "DARKTIME": meta.darktime, "FILTER": meta.physical_filter})
    else:  # a calibration product: what afw's calibs say about themselves
        h.update({"OBSTYPE": calib_type, "IMGTYPE": calib_type.upper(), "FILTER": "r_57",
                  "CALIB_ID": f"raftName={det.raft} detectorName={det.sensor} detector={det.id}",
                  "CALIB_RUN": run})
    return h


def _resolve_camera(camera: str | Camera, shrink: int | None, detectors) -> Camera:
    cam = get_camera(camera) if isinstance(camera, str) else camera
    if shrink and shrink > 1:
        cam = shrink_camera(cam, int(shrink))
    if detectors:
        wanted = {str(d) for d in detectors}
        keep = [d.name for d in cam if d.name in wanted or str(d.id) in wanted]
        missing = wanted - {d.name for d in cam} - {str(d.id) for d in cam}
        if missing:
            from ..errors import UnknownDetectorError
            raise UnknownDetectorError(f"camera {cam.name} has no detector(s) {sorted(missing)}")
        cam = cam.select(names=set(keep))
    return cam


def _exposure_task(root: Path, model: DetectorModel, meta: ExposureMeta, *, seed: int, params: SignalParams,
                   raw: bool, processed: bool, compress: bool, planes: str, dead_mode: str) -> list[dict]:
    from .raw import raw_filename, write_raw

    det = model.detector
    if model.dead and dead_mode == "missing":
        return []
    rng = derive_rng(seed, TYPE_CODE[meta.calib_type], det.id, meta.exposure)
    exp = exposure_image(model, meta.calib_type, rng, darktime=meta.darktime,
                         level=flat_level(seed, meta.exposure, params), params=params,
                         planes=processed and planes == "all", bias=raw or meta.calib_type == "bias")
    base = {"detector": det.id, "detector_name": det.name, "calib_type": meta.calib_type,
            "exposure": meta.exposure, "day_obs": meta.day_obs}
    out = []
    if raw:
        p = root / "raw" / str(meta.day_obs) / str(meta.exposure) / raw_filename(meta.exposure, det)
        write_raw(p, model, meta, exp, rng, compress=compress)
        out.append({"kind": "raw", "path": p, **base})
    if processed:
        from ..io import write_processed_fits

        img = exp.image
        if meta.calib_type == "bias":
            img += exp.bias  # in place: the raw (if any) is already written
        if model.dead and dead_mode == "nan":
            img = np.full_like(img, np.nan)
        p = (root / "processed" / meta.calib_type / str(meta.day_obs) / str(meta.exposure)
             / f"postISRCCD_{meta.instrument}_{meta.exposure}_{det.name}.fits")
        full = planes == "all"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_processed_fits(p, img, mask=exp.mask if full else None, variance=exp.variance if full else None,
                             header=_processed_header(det, meta, meta.instrument, meta.calib_type),
                             mask_planes=MASK_PLANES)
        out.append({"kind": "processed", "path": p, **base})
    return out


def _apply_difference(img: np.ndarray, det, diff: dict) -> None:
    x0, y0, w, h = diff["box"]
    region = img[y0:y0 + h, x0:x0 + w]
    if diff["kind"] == "gain_step":
        region *= np.float32(diff["size"])
    else:
        region += np.float32(diff["size"])


def _calib_task(root: Path, model: DetectorModel, calib_type: str, label: str, run: str, *, seed: int,
                params: SignalParams, instrument: str, differences: Sequence[dict], identical_b: bool,
                planes: str, dead_mode: str) -> list[dict]:
    from ..io import write_processed_fits

    det = model.detector
    if model.dead and dead_mode == "missing":
        return []
    # B reuses A's noise: the two runs differ only where a difference is injected
    rng = derive_rng(seed, 10 + TYPE_CODE[calib_type], det.id)
    img, var, mask = calib_image(model, calib_type, rng, params)
    if label == "B" and not identical_b:
        for d in differences:
            if d["calib_type"] == calib_type and d["detector"] == det.id:
                _apply_difference(img, det, d)
    if model.dead and dead_mode == "nan":
        img[:] = np.nan
    p = root / "calibs" / run / calib_type / f"{calib_type}_{instrument}_{det.name}_{run.replace('/', '_')}.fits"
    full = planes == "all"
    p.parent.mkdir(parents=True, exist_ok=True)
    write_processed_fits(p, img, mask=mask if full else None, variance=var if full else None,
                         header=_processed_header(det, None, instrument, calib_type, run), mask_planes=MASK_PLANES)
    return [{"kind": "calib", "path": p, "detector": det.id, "detector_name": det.name, "calib_type": calib_type,
             "label": label, "run": run}]


def _verify_task(vroot: Path, camera: Camera, models: dict[int, DetectorModel], calib_type: str, day: int,
                 run: str, metas: Sequence[ExposureMeta], *, seed: int, days: Sequence[int], trends,
                 params: SignalParams, prof_len: tuple[int, int] | None) -> list[dict]:
    """Every verify product of one calibration type on one day (one RUN collection).

    As cp_verify's pipelines write them (docs/CPVERIFY.md): detector tables are
    stacked into the exposure table, the flat exposure merge appends its
    SCATTER row, and the run table stacks the exposure tables.  Run-level flat
    products carry the physical_filter in their data id (and so in their path).
    """
    inst = metas[0].instrument
    files: list[dict] = []

    def rec(path, dstype, tier, exposure=None, detector=None, physical_filter=None):
        files.append({"path": path, "dataset_type": dstype, "run": run, "calib_type": calib_type, "tier": tier,
                      "day_obs": day, "exposure": exposure, "detector": detector,
                      "physical_filter": physical_filter})

    def write(path, doc_or_cols, tier):
        if path.suffix == ".yaml":
            cpv.write_yaml(path, doc_or_cols)
        else:
            cpv.write_parquet(path, calib_type, doc_or_cols, prof_len, tier)

    products = (("Stats", "yaml"), ("Results", "parq"))
    exp_docs, run_cols = {}, []
    for meta in metas:
        det_docs, exp_cols = {}, []
        for det in camera:
            m = cpv.measure(calib_type, models[det.id], meta, seed=seed, days=days, trends=trends, params=params)
            doc, cols = cpv.detector_products(calib_type, models[det.id], meta, m, prof_len=prof_len)
            det_docs[det.name] = doc
            exp_cols.append(cols)
            for product, ext in products:
                dst = cpv.dataset_type(calib_type, "det", product)
                p = cpv.verify_path(vroot, run, dst, instrument=inst, day_obs=day, exposure=meta.exposure,
                                    detector_name=det.name, ext=ext)
                write(p, doc if ext == "yaml" else [cols], "det")
                rec(p, dst, "det", meta.exposure, det.id)
        exp_docs[meta.exposure] = cpv.exposure_stats(calib_type, det_docs)
        extra = cpv.merge_row(calib_type, meta, next(iter(camera)).id, exp_docs[meta.exposure])
        if extra is not None:
            exp_cols.append({k: [v] for k, v in extra.items()})
        run_cols += exp_cols
        pf = meta.physical_filter if calib_type == "flat" else None
        for product, ext in products:
            dst = cpv.dataset_type(calib_type, "exp", product)
            p = cpv.verify_path(vroot, run, dst, instrument=inst, day_obs=day, exposure=meta.exposure, ext=ext)
            write(p, exp_docs[meta.exposure] if ext == "yaml" else exp_cols, "exp")
            rec(p, dst, "exp", meta.exposure, physical_filter=pf)
    pf = metas[0].physical_filter if calib_type == "flat" else None
    for product, ext in products:
        dst = cpv.dataset_type(calib_type, "run", product)
        p = cpv.verify_path(vroot, run, dst, instrument=inst, ext=ext, physical_filter=pf)
        write(p, cpv.run_stats(exp_docs) if ext == "yaml" else run_cols, "run")
        rec(p, dst, "run", physical_filter=pf)
    return files


def _corrupt_one(images: dict[str, list[dict]], dead: set[int]) -> dict | None:
    """Truncate one image file (not the dead detector's) so that readers must cope."""
    for kind in ("processed", "raw", "calib"):
        cands = [e for e in images.get(kind, []) if e["detector"] not in dead]
        if cands:
            e = cands[len(cands) // 2]
            p = Path(e["path"])
            data = p.read_bytes()
            # keep the first header block, then garbage: a truncated, unreadable file
            p.write_bytes(data[:2880] + b"\x00corrupt\x00" * 16)
            return {"path": p, "kind": kind, "detector": e["detector"], "detector_name": e["detector_name"],
                    "problem": "truncated after the primary header"}
    return None


def synthesize(root: str | os.PathLike, *, camera: str | Camera = "LSSTCam", shrink: int | None = 16, seed: int = 0,
               n_days: int = 10, first_day: int = 20251118, calib_types: Sequence[str] = CALIB_TYPES,
               exposures_per_day: int = 1, image_days: int = 1, raw: bool = True, processed: bool = True,
               calibs: bool = True, verify: bool = True, butler: bool | None = None, workers: int | None = None,
               detectors: Iterable[str | int] | None = None, corrupt: bool = False, identical_b: bool = False,
               compress: bool = False, planes: str = "all", dead: str = "zeros", profiles: bool = True,
               params: SignalParams | None = None, progress: bool | None = None) -> Manifest:
    """Write a deterministic synthetic data set under *root* and return its manifest.

    Parameters
    ----------
    root
        Output directory (created; existing files with the same names are replaced).
    camera, shrink
        Camera name or object; ``shrink`` > 1 makes detectors that many times
        smaller per axis (same footprint), ``None``/1 keeps full size.
    seed
        Everything written is a function of the seed (and the other arguments).
    n_days, first_day, exposures_per_day
        The verify history: ``n_days`` consecutive day_obs from ``first_day``, each
        with ``exposures_per_day`` exposures of every type in ``calib_types``.
    image_days
        Raw and processed images are written for the first ``image_days`` days.
    raw, processed, calibs, verify, butler
        What to write; ``butler=None`` makes a Butler repository when
        ``lsst.daf.butler`` can be imported.
    workers
        Threads (default: CPU count); results do not depend on it.
    detectors
        Names or ids of a subset of detectors.
    corrupt
        Truncate one image file (recorded in the manifest) to exercise error paths.
    identical_b
        Make calibration run B identical to run A (no injected differences).
    compress, planes, dead, profiles
        RICE_1 raws; processed planes ``"all"`` (IMAGE, MASK, VARIANCE) or
        ``"image"``; the dead detector as ``"zeros"``, ``"nan"`` or ``"missing"``
        files; bias/dark profile columns in the Results tables.
    """
    from ..progress import bar

    if dead not in ("zeros", "nan", "missing"):
        raise ValueError(f"dead must be 'zeros', 'nan' or 'missing', got {dead!r}")
    if planes not in ("all", "image"):
        raise ValueError(f"planes must be 'all' or 'image', got {planes!r}")
    bad = [c for c in calib_types if c not in CALIB_TYPES]
    if bad:
        raise ValueError(f"unknown calibration types {bad}; expected some of {CALIB_TYPES}")
    calib_types = tuple(c for c in CALIB_TYPES if c in calib_types)
    params = params or SignalParams()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    cam = _resolve_camera(camera, shrink, detectors)
    instrument = cam.name
    write_camera_json(cam, root / "camera.json")
    days = _days(first_day, n_days)
    metas = _schedule(instrument, days, calib_types, exposures_per_day, params)
    anomalies = pick_anomalies(cam, seed, params)
    trends = cpv.pick_trends(cam, seed, days, calib_types, anomalies)
    diffs = [] if identical_b else pick_calib_differences(cam, seed, calib_types, anomalies)
    models = {d.id: make_detector_model(d, seed, anomalies, params) for d in cam}
    dead_ids = {a["detector"] for a in anomalies if a["kind"] == "dead_detector"}
    runs = {ct: {day: f"u/cpv/verify{ct.capitalize()}.{day}a" for day in days} for ct in calib_types}
    calib_runs = {label: f"u/cpv/calib{label}" for label in CALIB_LABELS}

    tasks: list[tuple[str, Callable[[], list[dict]]]] = []
    image_day_set = set(days[:image_days])
    if raw or processed:
        for meta in metas:
            if meta.day_obs in image_day_set:
                for det in cam:
                    tasks.append(("image", functools.partial(
                        _exposure_task, root, models[det.id], meta, seed=seed, params=params, raw=raw,
                        processed=processed, compress=compress, planes=planes, dead_mode=dead)))
    if calibs:
        for label, run in calib_runs.items():
            for ct in calib_types:
                for det in cam:
                    tasks.append(("calib", functools.partial(
                        _calib_task, root, models[det.id], ct, label, run, seed=seed, params=params,
                        instrument=instrument, differences=diffs, identical_b=identical_b, planes=planes,
                        dead_mode=dead)))
    if verify:
        prof_len = (max(a.bbox.width for d in cam for a in d.amplifiers),
                    max(a.bbox.height for d in cam for a in d.amplifiers)) if profiles else None
        trend_objs = [cpv.Trend(**t) for t in trends]
        for ct in calib_types:
            for day in days:
                day_metas = [m for m in metas if m.calib_type == ct and m.day_obs == day]
                tasks.append(("verify", functools.partial(
                    _verify_task, root / "verify", cam, models, ct, day, runs[ct][day], day_metas, seed=seed,
                    days=days, trends=trend_objs, params=params, prof_len=prof_len)))

    n_workers = max(1, int(workers or os.cpu_count() or 1))
    results: list[list[dict]] = [[] for _ in tasks]
    log.info("synthesizing %d tasks for %d detectors of %s into %s", len(tasks), len(cam), instrument, root)
    with bar(len(tasks), desc="synth", progress=progress, unit="task") as b:
        if n_workers == 1:
            for i, (_, fn) in enumerate(tasks):
                results[i] = fn()
                b.update(1)
        else:
            with ThreadPoolExecutor(n_workers) as pool:
                futures = [pool.submit(fn) for _, fn in tasks]
                for i, f in enumerate(futures):  # in submission order: the manifest never depends on timing
                    results[i] = f.result()
                    b.update(1)
    images: dict[str, list[dict]] = {"raw": [], "processed": [], "calib": []}
    verify_files: list[dict] = []
    for (what, _), res in zip(tasks, results):
        for entry in res:
            (verify_files.append(entry) if what == "verify" else images[entry["kind"]].append(entry))
    corrupt_entries = []
    if corrupt:
        c = _corrupt_one(images, dead_ids)
        if c:
            corrupt_entries.append(c)
            log.info("corrupted %s", c["path"])
    butler_root = None
    if butler is None:
        import importlib.util

        butler = verify and importlib.util.find_spec("lsst") is not None and \
            importlib.util.find_spec("lsst.daf.butler") is not None
    manifest = Manifest(
        root=root, instrument=instrument, camera=cam.name, camera_file=root / "camera.json",
        shrink=int(shrink or 1), seed=int(seed), days=tuple(days), calib_types=calib_types,
        detectors=tuple(d.id for d in cam), exposures=tuple(m.to_dict() for m in metas),
        images={k: tuple(v) for k, v in images.items()}, anomalies=tuple(anomalies),
        calib_differences=tuple(diffs), trends=tuple(trends), runs=runs, calib_runs=calib_runs,
        verify_root=root / "verify" if verify else None, verify_files=tuple(verify_files),
        butler_root=None, corrupt=tuple(corrupt_entries), identical_b=identical_b)
    manifest.write()
    if butler and verify:
        from .butler import make_butler_repo

        butler_root = make_butler_repo(root / "butler", manifest)
        manifest = manifest.replace(butler_root=butler_root)
        manifest.write()
    return manifest
