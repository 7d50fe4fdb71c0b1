"""Butler sources of cp_verify outputs: a repository, or a tree in its datastore layout.

* A Butler repository (``butler.yaml`` at its root): :func:`read_butler` queries
  the ``verify*`` dataset types of some collections and gets each dataset;
  :func:`calibration_files` finds the files of calibration images.
  lsst.daf.butler is imported inside the functions (it is heavy and optional).
* A plain directory tree laid out as a Butler POSIX datastore lays files out:
  see ``cpmosaic.io.cpverify_tree`` (its names are re-exported here).

>>> chunks, problems = read_butler("repo", ["u/me/verifyBias"])   # doctest: +SKIP
>>> [p.info.name for p in find_products("cpv_out")][:2]           # doctest: +SKIP
['verifyBiasDetResults', 'verifyBiasDetResults']
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

from ..errors import InputError
from .cpverify import NO_EXPOSURE, parse_dataset_type, stats_to_chunk
from .cpverify_results import has_verdicts, results_to_chunk
from .cpverify_tree import Product, find_products, parse_product_path, read_product

log = logging.getLogger(__name__)

__all__ = ["Product", "calibration_files", "collections_hint", "dataset_files", "find_products", "is_butler_repo",
           "open_butler", "parse_product_path", "read_butler", "read_product"]


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


def collections_hint(root: str | os.PathLike) -> str:
    """"; it holds: a, b, ..." naming the repository's collections (chains first), for the error."""
    try:
        reg = open_butler(root).registry
        names = sorted(reg.queryCollections(), key=lambda c: (reg.getCollectionType(c).name != "CHAINED", c))
    except Exception:  # the hint is a courtesy: the error stands without it
        return ""
    if not names:
        return "; it holds no collection"
    return f"; it holds {len(names)}: " + ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")


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
    refs: list = []
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
                    (NO_EXPOSURE if exposure is None else exposure, detector) in covered.get(key, ()):
                continue
            source = f"{root}[{ref.run}] {info.name} {_fmt_id(data_id)}"
            try:
                obj = butler.get(ref)
                if info.kind == "Results":
                    chunk, instrument = results_to_chunk(obj, info, exposure=exposure, detector=detector,
                                                        source=source, problems=problems)
                    if has_verdicts(chunk):  # defects Results carry no verdicts: read their Stats too
                        covered.setdefault(key, set()).update(zip(chunk["exposure"].tolist(),
                                                                  chunk["detector"].tolist()))
                    if info.tier == "run":
                        done.add(key)
                else:
                    if not isinstance(obj, dict):
                        raise InputError(source, f"expected a dictionary, got {type(obj).__name__}")
                    chunk = stats_to_chunk(obj, info, exposure=exposure, detector=detector, source=source,
                                           problems=problems)
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
    # run-level flats are keyed by filter (physical_filter, band): name it, or two runs' tables look alike
    keys = ("instrument", "exposure", "detector", "physical_filter")
    return "{" + ", ".join(f"{k}: {data_id[k]}" for k in keys if k in data_id) + "}"


def dataset_files(root: str | os.PathLike, collection: str, dataset_type: str, *, where: str = ""
                  ) -> list[tuple[dict, str]]:
    """``(data id, local file)`` of every *dataset_type* dataset in *collection* (find-first).

    The one query of dataset files in cpmosaic (mosaic inputs and calibration
    comparisons both use it).  Calibration collections are searched without a
    validity-range constraint.  InputError when the collection does not exist,
    the query fails, or it finds no dataset.
    """
    butler = open_butler(root)
    _existing_collections(butler, root, [collection], [])
    try:
        refs = butler.query_datasets(dataset_type, collections=collection, find_first=True, where=where,
                                     explain=False, limit=None)
    except Exception as exc:  # the Butler raises many types; all mean "cannot use this input"
        raise InputError(f"{root}[{collection}]", f"cannot query {dataset_type!r}: {exc}") from None
    out = []
    for ref in refs:
        uri = butler.getURI(ref)
        out.append((dict(ref.dataId.mapping), uri.ospath if uri.isLocal else str(uri)))
    if not out:
        raise InputError(f"{root}[{collection}]", f"no {dataset_type!r} datasets")
    return out


def calibration_files(root: str | os.PathLike, collection: str, dataset_type: str) -> dict[int, str]:
    """Local files of one calibration dataset type (``bias``, ``flat``, ...) per detector id.

    InputError when the collection does not exist or holds no such dataset
    with a detector (see :func:`dataset_files`).
    """
    out = {int(data_id["detector"]): path for data_id, path in dataset_files(root, collection, dataset_type)
           if data_id.get("detector") is not None and not path.startswith(("s3:", "http:", "https:", "gs:"))}
    if not out:
        raise InputError(f"{root}[{collection}]", f"no {dataset_type!r} datasets with a detector")
    return out
