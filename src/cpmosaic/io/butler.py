"""Butler sources of cp_verify outputs: a repository, or a tree in its datastore layout.

* A Butler repository (``butler.yaml`` at its root): :func:`read_butler` queries
  the ``verify*`` dataset types of some collections and gets each dataset;
  :func:`calibration_files` finds the files of calibration images.
  lsst.daf.butler is imported inside the functions (it is heavy and optional).
* A plain directory tree laid out as a Butler POSIX datastore lays files out
  (ENGINEERING.md): :func:`find_products` finds the cp_verify files and parses
  their data ids from the path; :func:`read_product` reads one.

>>> chunks, problems = read_butler("repo", ["u/me/verifyBias"])   # doctest: +SKIP
>>> [p.info.name for p in find_products("cpv_out")][:2]           # doctest: +SKIP
['verifyBiasDetResults', 'verifyBiasDetResults']
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from .cpverify import (_DET_NAME_RE, DatasetTypeInfo, parse_dataset_type, read_results_table, read_stats_yaml,
                       results_to_chunk, stats_to_chunk)

log = logging.getLogger(__name__)

__all__ = ["Product", "calibration_files", "find_products", "is_butler_repo", "open_butler", "parse_product_path",
           "read_butler", "read_product"]


def is_butler_repo(path: str | os.PathLike) -> bool:
    """True when *path* is the root of a Butler repository (it has ``butler.yaml``)."""
    p = Path(path)
    return p.is_dir() and (p / "butler.yaml").is_file()


def open_butler(root: str | os.PathLike):
    """A read-only Butler for *root* (InputError when lsst-daf-butler is missing or the repo is bad)."""
    try:
        from lsst.daf.butler import Butler
    except ImportError:
        raise InputError(root, "is a Butler repository but lsst-daf-butler is not installed "
                               "(pip install 'cpmosaic[butler]')") from None
    try:
        return Butler.from_config(str(root), writeable=False)
    except Exception as exc:  # the Butler raises many types for a bad repo
        raise InputError(root, f"cannot open Butler repository: {exc}") from None


def _existing_collections(butler, root, collections: list[str], problems: list[dict]) -> list[str]:
    """The collections that exist; the others are problems, and none at all is an error."""
    from lsst.daf.butler import MissingCollectionError

    ok: list[str] = []
    for name in collections:
        try:
            butler.registry.getCollectionType(name)
        except MissingCollectionError:
            problems.append({"source": f"{root}[{name}]", "problem": f"collection {name!r} does not exist"})
            log.warning("%s: collection %r does not exist", root, name)
            continue
        ok.append(name)
    if not ok:
        raise InputError(root, f"collection(s) {', '.join(map(repr, collections))} do not exist")
    return ok


def read_butler(root: str | os.PathLike, collections: str | Iterable[str], *,
                calib_types: Iterable[str] | None = None, progress: bool | None = None
                ) -> tuple[list[tuple[dict, dict]], list[dict]]:
    """Chunks (see ``cpmosaic.io.cpverify``) of every ``verify*`` dataset in *collections*.

    Each collection is searched on its own (find-first within it), so two runs
    given together both appear, each under its RUN name.  Datasets that cannot
    be read are reported in the problems list, as is a collection that does
    not exist; InputError when none of the collections exists.

    Returns
    -------
    (chunks, problems)
        ``chunks`` is a list of ``(chunk, meta)`` for ``cpmosaic.metrics.table.build_table``.
    """
    from .. import progress as prog

    colls = [collections] if isinstance(collections, str) else list(collections)
    wanted = {c.lower() for c in calib_types} if calib_types else None
    butler = open_butler(root)
    problems: list[dict] = []
    colls = _existing_collections(butler, root, colls, problems)
    infos = []
    for dt in butler.registry.queryDatasetTypes("verify*"):
        info = parse_dataset_type(dt.name)
        if info is None or info.kind == "Matrix" or (wanted and info.calib_type not in wanted):
            continue
        infos.append(info)
    refs = []
    for coll in colls:
        for info in infos:
            try:
                found = butler.query_datasets(info.name, collections=coll, find_first=True,
                                              explain=False, limit=None)
            except Exception as exc:  # e.g. a dataset type with no datasets in a chain
                log.debug("%s[%s]: %s: %s", root, coll, info.name, exc)
                continue
            refs.extend((info, ref) for ref in found)
    # Results first (the run-level table first): detector/exposure Results of a run
    # whose run-level table read are skipped, as are detector Stats whose data ids
    # a Results table already gave (the tidy table would drop them as duplicates).
    refs.sort(key=lambda r: (r[0].kind != "Results", r[0].tier != "run", r[0].priority))
    chunks: list[tuple[dict, dict]] = []
    covered: dict[tuple[str, str], set] = {}
    done: set[tuple[str, str]] = set()
    with prog.bar(len(refs), desc="Butler datasets", progress=progress, unit="dataset") as bar:
        for info, ref in refs:
            bar.update(1)
            data_id = dict(ref.dataId.mapping)
            key = (ref.run, info.calib_type)
            exposure = data_id.get("exposure")
            detector = data_id.get("detector")
            if info.kind == "Results" and info.tier != "run" and key in done:
                continue
            if info.kind == "Stats" and info.tier == "detector" and \
                    (-1 if exposure is None else exposure, detector) in covered.get(key, ()):
                continue
            source = f"{root}[{ref.run}] {info.name} {_fmt_id(data_id)}"
            try:
                obj = butler.get(ref)
                if info.kind == "Results":
                    chunk, instrument = results_to_chunk(obj, info, exposure=exposure, detector=detector,
                                                        source=source)
                    covered.setdefault(key, set()).update(zip(chunk["exposure"].tolist(),
                                                              chunk["detector"].tolist()))
                    if info.tier == "run":
                        done.add(key)
                else:
                    if not isinstance(obj, dict):
                        raise InputError(source, f"expected a dictionary, got {type(obj).__name__}")
                    chunk = stats_to_chunk(obj, info, exposure=exposure, detector=detector)
                    instrument = None
            except Exception as exc:  # one bad dataset never stops the rest
                problem = exc.problem if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
                problems.append({"source": source, "problem": problem})
                log.warning("%s: %s", source, problem)
                continue
            day = data_id.get("day_obs")
            meta = {"source": source, "calib_type": info.calib_type, "run": ref.run,
                    "instrument": instrument or data_id.get("instrument"), "priority": info.priority,
                    "day_obs": int(day) if day is not None else None}
            chunks.append((chunk, meta))
    return _prefer_results(chunks), problems


def _prefer_results(chunks: list[tuple[dict, dict]]) -> list[tuple[dict, dict]]:
    """Order chunks so the tidy table's de-duplication keeps Results first (it sorts by priority)."""
    return sorted(chunks, key=lambda c: c[1]["priority"])


def _fmt_id(data_id: dict) -> str:
    keys = ("instrument", "exposure", "detector")
    return "{" + ", ".join(f"{k}: {data_id[k]}" for k in keys if k in data_id) + "}"


def calibration_files(root: str | os.PathLike, collection: str, dataset_type: str) -> dict[int, str]:
    """Local files of one calibration dataset type (``bias``, ``flat``, ...) per detector id.

    Searches *collection* (find-first); for calibration collections, datasets
    are found without a validity-range constraint.  InputError when the
    collection does not exist or holds no such dataset.
    """
    butler = open_butler(root)
    _existing_collections(butler, root, [collection], [])
    try:
        refs = butler.query_datasets(dataset_type, collections=collection, find_first=True,
                                     explain=False, limit=None)
    except Exception as exc:
        raise InputError(f"{root}[{collection}]", f"cannot query {dataset_type!r}: {exc}") from None
    out: dict[int, str] = {}
    for ref in refs:
        det = ref.dataId.mapping.get("detector")
        uri = butler.getURI(ref)
        if det is None or not uri.isLocal:
            continue
        out[int(det)] = uri.ospath
    if not out:
        raise InputError(f"{root}[{collection}]", f"no {dataset_type!r} datasets with a detector")
    return out


# -- directory trees in the POSIX datastore layout ------------------------------------

@dataclass(frozen=True)
class Product:
    """One cp_verify output file (or Butler dataset) and its data id."""

    source: str
    info: DatasetTypeInfo
    run: str
    instrument: str | None = None
    exposure: int | None = None
    detector: int | str | None = None
    day_obs: int | None = None


def parse_product_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Product | None:
    """Data id of a file laid out as a Butler POSIX datastore lays it out.

    ``ROOT/<run>/<datasetType>/<day_obs>/<datasetType>_<instrument>_<exposure>_<detector>_<run>.<ext>``;
    the run is the path between ROOT and the dataset type folder.  Exposure and
    detector tokens may also be an obs_id (``MC_O_20250618_000123``) and a
    detector name (``R22_S11``), as the Butler's default templates write them.

    >>> p = parse_product_path("out/u/me/r1/verifyBiasDetStats/20250618/"
    ...     "verifyBiasDetStats_LSSTCam_2025061800123_R22_S11_u_me_r1.yaml", "out")
    >>> p.run, p.exposure, p.detector, p.day_obs
    ('u/me/r1', 2025061800123, 'R22_S11', 20250618)
    """
    p = Path(path)
    rel = Path(os.path.relpath(p.parent, root)).parts if root is not None else p.parent.parts
    rel = tuple(x for x in rel if x not in (".", ""))
    return _parse_in_dir(p.name, rel, str(p), has_root=root is not None)


def _dataset_folder(rel_dir: tuple[str, ...]) -> int | None:
    return next((i for i in range(len(rel_dir) - 1, -1, -1) if parse_dataset_type(rel_dir[i])), None)


def _parse_in_dir(name: str, rel_dir: tuple[str, ...], source: str, *, has_root: bool = True,
                  idx: int | None = -1) -> Product | None:
    """Parse one file name given the folders between ROOT and it."""
    if idx == -1:
        idx = _dataset_folder(rel_dir)
    if idx is None:
        # A loose file (no layout): take the dataset type from the file name.
        dtype = re.split(r"[_.]", name)[0]
        info = parse_dataset_type(dtype)
        if info is None:
            return None
        run = ""
    else:
        dtype = rel_dir[idx]
        info = parse_dataset_type(dtype)
        run = "/".join(rel_dir[:idx]) if has_root else (rel_dir[idx - 1] if idx else "")
    stem = re.sub(r"\.(yaml|yml|parquet|parq|json)$", "", name)
    rest = stem[len(dtype) + 1:] if stem.startswith(dtype + "_") else ""
    run_token = run.replace("/", "_")
    if run_token and rest.endswith("_" + run_token):
        rest = rest[: -len(run_token) - 1]
    elif run_token and rest == run_token:
        rest = ""
    tokens = [t for t in rest.split("_") if t]
    instrument = tokens[0] if tokens and not tokens[0].isdigit() and not _DET_NAME_RE.match(rest) else None
    exposure = detector = None
    m = _DET_NAME_RE.search(rest)
    rest_wo = rest[: m.start()] + rest[m.end():] if m else rest
    if m:
        detector = m.group(0)
    m13 = re.search(r"(?:^|_)(\d{13})(?:_|$)", rest_wo)
    mobs = re.search(r"(?:^|_)(\d{8})_(\d{5,6})(?:_|$)", rest_wo)
    if m13:
        exposure = int(m13.group(1))
        rest_wo = rest_wo.replace(m13.group(1), "")
    elif mobs:
        exposure = int(mobs.group(1)) * 100000 + int(mobs.group(2))
        rest_wo = rest_wo.replace(mobs.group(0), "_")
    if detector is None and info.tier == "detector":
        ints = [t for t in rest_wo.split("_") if t.isdigit() and len(t) <= 4]
        if ints:
            detector = int(ints[-1])
    day = rel_dir[-1] if rel_dir else ""
    day_obs = int(day) if re.fullmatch(r"\d{8}", day) else None
    if day_obs is None and exposure is not None:
        day_obs = exposure // 100000
    return Product(source, info, run, instrument, exposure, detector, day_obs)


def find_products(root: str | os.PathLike) -> list[Product]:
    """Every cp_verify Stats/Results file below *root* (Matrix products are skipped).

    A *root* that is itself one file gives that file.
    """
    root = Path(root)
    if root.is_file():
        prod = parse_product_path(root, None)
        return [prod] if prod and prod.info.kind != "Matrix" else []
    out: list[Product] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = tuple(x for x in Path(os.path.relpath(dirpath, root)).parts if x not in (".", ""))
        idx = _dataset_folder(rel)
        for fn in sorted(filenames):
            if not fn.endswith((".yaml", ".yml", ".parquet", ".parq")):
                continue
            # ROOT may be one run's own folder: then the run is that folder's name.
            rel_run = (root.resolve().name,) + rel if idx == 0 else rel
            prod = _parse_in_dir(fn, rel_run, os.path.join(dirpath, fn), idx=None if idx is None else idx + (idx == 0))
            if prod is not None and prod.info.kind != "Matrix":
                out.append(prod)
    return out


def read_product(product: Product) -> tuple[dict[str, np.ndarray], str | None]:
    """Read one file product into a chunk (InputError when unreadable)."""
    if product.info.kind == "Results":
        table = read_results_table(product.source)
        return results_to_chunk(table, product.info, exposure=product.exposure, detector=product.detector,
                                source=product.source)
    doc = read_stats_yaml(product.source)
    return stats_to_chunk(doc, product.info, exposure=product.exposure, detector=product.detector), None
