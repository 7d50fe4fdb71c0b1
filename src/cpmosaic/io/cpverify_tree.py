"""cp_verify outputs in a directory tree laid out as a Butler POSIX datastore lays files out.

The file policy of cpmosaic for trees lives here: which files are cp_verify
products (``.yaml``, ``.parq`` as the Butler's datastore names parquet files,
and ``.parquet``), what data id a path gives, and in what order products are
read so that Results tables win over Stats dictionaries.

Layout (ENGINEERING.md, and the Butler's default file template)::

    ROOT/<run>/<datasetType>/<day_obs>/[<physical_filter>/<obs_id>/]<datasetType>_<instrument>_..._<run_>.<ext>

>>> p = parse_product_path("out/u/me/r1/verifyFlatDetResults/20190319/r_57/MC_C_20190319_000001/"
...     "verifyFlatDetResults_LSSTCam_r_57_MC_C_20190319_000001_R22_S11_u_me_r1.parq", "out")
>>> p.run, p.exposure, p.detector, p.day_obs
('u/me/r1', 3019031900001, 'R22_S11', 20190319)
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, UnknownDetectorError
from .cpverify import (_DET_NAME_RE, NO_EXPOSURE, DatasetTypeInfo, day_obs_of_exposure, parse_dataset_type,
                       read_stats_yaml, stats_to_chunk)
from .cpverify_results import has_verdicts, read_results_table, results_to_chunk

log = logging.getLogger(__name__)

__all__ = ["PRODUCT_SUFFIXES", "Product", "exposure_id_from_obs_id", "find_products", "parse_product_path",
           "read_product", "read_tree"]

#: File suffixes of cp_verify products (the Butler writes parquet as ``.parq``).
PRODUCT_SUFFIXES = (".yaml", ".yml", ".parq", ".parquet")
#: obs_lsst's controller codes in the order that sets the exposure-id year offset
#: (``translators/lsst.py``: CONTROLLERS = "OC" + "HPQS"; 1000 years each).
CONTROLLERS = "OCHPQS"
_OBS_ID = re.compile(r"(?:^|_)(?:[A-Z]{2}_)?([OCHPQS])_(\d{8})_(\d{5,6})(?:_|$)")


def exposure_id_from_obs_id(obs_id: str) -> int | None:
    """obs_lsst's exposure id of an obs_id such as ``MC_C_20190319_000001``.

    >>> exposure_id_from_obs_id("MC_C_20190319_000001"), exposure_id_from_obs_id("MC_O_20250618_000123")
    (3019031900001, 2025061800123)
    """
    m = _OBS_ID.search(obs_id)
    if not m:
        return None
    day, seq = int(m.group(2)), int(m.group(3))
    return (day + 1000 * 10000 * CONTROLLERS.index(m.group(1))) * 100000 + seq


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
        if info is None:
            return None
        run = "/".join(rel_dir[:idx]) if has_root else (rel_dir[idx - 1] if idx else "")
    stem = re.sub(r"\.(yaml|yml|parquet|parq|json)$", "", name)
    rest = stem[len(dtype) + 1:] if stem.startswith(dtype + "_") else ""
    # the Butler's file template writes the run with "/" (and other non-word characters) as "_"
    for run_token in dict.fromkeys((run.replace("/", "_"), re.sub(r"\W", "_", run))):
        if run_token and rest.endswith("_" + run_token):
            rest = rest[: -len(run_token) - 1]
            break
        if run_token and rest == run_token:
            rest = ""
            break
    tokens = [t for t in rest.split("_") if t]
    instrument = tokens[0] if tokens and not tokens[0].isdigit() and not _DET_NAME_RE.match(rest) else None
    exposure: int | None = None
    detector: int | str | None = None
    m = _DET_NAME_RE.search(rest)
    rest_wo = rest[: m.start()] + rest[m.end():] if m else rest
    if m:
        detector = m.group(0)
    m13 = re.search(r"(?:^|_)(\d{13})(?:_|$)", rest_wo)
    mobs = _OBS_ID.search(rest_wo) or re.search(r"(?:^|_)(\d{8})_(\d{5,6})(?:_|$)", rest_wo)
    if m13:
        exposure = int(m13.group(1))
        rest_wo = rest_wo.replace(m13.group(1), "")
    elif mobs:
        exposure = (exposure_id_from_obs_id(mobs.group(0).strip("_")) if mobs.re is _OBS_ID
                    else int(mobs.group(1)) * 100000 + int(mobs.group(2)))
        rest_wo = rest_wo.replace(mobs.group(0), "_")
    if detector is None and info.tier == "detector":
        ints = [t for t in rest_wo.split("_") if t.isdigit() and len(t) <= 4]
        if ints:
            detector = int(ints[-1])
    day = next((d for d in reversed(rel_dir[(idx or 0) + 1:]) if re.fullmatch(r"\d{8}", d)), "") if idx is not None \
        else (rel_dir[-1] if rel_dir and re.fullmatch(r"\d{8}", rel_dir[-1]) else "")
    day_obs = int(day) if day else None
    if day_obs is None and exposure is not None:
        day_obs = day_obs_of_exposure(exposure)
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
    # Run directories are often symlinks into another user's area: follow them, but visit each
    # real directory once, so a link back up the tree cannot loop.
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        rel = tuple(x for x in Path(os.path.relpath(dirpath, root)).parts if x not in (".", ""))
        idx = _dataset_folder(rel)
        for fn in sorted(filenames):
            if not fn.endswith(PRODUCT_SUFFIXES):
                continue
            # ROOT may be one run's own folder: then the run is that folder's name.
            rel_run = (root.resolve().name,) + rel if idx == 0 else rel
            prod = _parse_in_dir(fn, rel_run, os.path.join(dirpath, fn), idx=None if idx is None else idx + (idx == 0))
            if prod is not None and prod.info.kind != "Matrix":
                out.append(prod)
    return out


def read_product(product: Product, problems: list | None = None) -> tuple[dict[str, np.ndarray], str | None]:
    """Read one file product into a chunk (InputError when unreadable).

    Values of the wrong type are skipped with a warning and added to *problems*.
    """
    if product.info.kind == "Results":
        table = read_results_table(product.source)
        return results_to_chunk(table, product.info, exposure=product.exposure, detector=product.detector,
                                source=product.source, problems=problems)
    doc = read_stats_yaml(product.source)
    return stats_to_chunk(doc, product.info, exposure=product.exposure, detector=product.detector,
                          source=product.source, problems=problems), None


def read_tree(root: str | os.PathLike, wanted: set[str] | None = None, progress: bool | None = None, camera=None
              ) -> tuple[list[tuple[dict, dict]], list[dict]]:
    """Chunks of every cp_verify product below *root*: Results first, Stats only for data no Results cover.

    Returns ``(chunks, problems)`` for ``cpmosaic.metrics.table.build_table``.

    Three passes, each over a thread pool (pyarrow and file I/O release the GIL):
    run-level Results; then detector/exposure Results of the (run, calib_type)
    groups whose run-level table is missing or unreadable; then the Stats files
    whose (exposure, detector) no Results table gave.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .. import progress as prog
    from ..camera import get_camera
    from ..errors import CpmosaicError

    root = Path(root)
    products = [p for p in find_products(root) if wanted is None or p.info.calib_type in wanted]
    chunks: list[tuple[dict, dict]] = []
    problems: list[dict] = []

    def read(p):
        try:
            chunk, instrument = read_product(p, problems)  # list.append is atomic under the GIL
        except (CpmosaicError, UnknownDetectorError, KeyError, TypeError, ValueError) as exc:
            problem = exc.problem if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            return p, None, {"source": p.source, "problem": problem}
        meta = {"source": p.source, "calib_type": p.info.calib_type, "run": p.run,
                "instrument": instrument or p.instrument, "priority": p.info.priority, "day_obs": p.day_obs}
        return p, (chunk, meta), None

    def det_id(p) -> int | None:
        """The detector id a file name gives (names through the camera), for coverage checks."""
        if p.detector is None or isinstance(p.detector, int):
            return p.detector
        try:
            det = (camera or get_camera(p.instrument or "LSSTCam")).get(p.detector)
        except Exception:  # an instrument without a built-in camera: no shortcut
            return None
        return None if det is None else det.id

    covered: dict[tuple[str, str], set] = defaultdict(set)
    done_groups: set[tuple[str, str]] = set()
    workers = max(1, min(4, os.cpu_count() or 1))
    with prog.bar(len(products), desc="cp_verify outputs", progress=progress, unit="file") as bar, \
            ThreadPoolExecutor(workers) as pool:

        def run_pass(todo: list) -> None:
            for p, got, problem in pool.map(read, sorted(todo, key=lambda p: p.source)):
                bar.update(1)
                if problem is not None:
                    problems.append(problem)
                    log.warning("%s: %s", problem["source"], problem["problem"])
                    continue
                chunks.append(got)
                if p.info.kind == "Results":
                    key = (p.run, p.info.calib_type)
                    if has_verdicts(got[0]):  # defects Results carry no verdicts: their Stats still count
                        covered[key].update(zip(got[0]["exposure"].tolist(), got[0]["detector"].tolist()))
                    if p.info.tier == "run":
                        done_groups.add(key)

        results = [p for p in products if p.info.kind == "Results"]
        run_pass([p for p in results if p.info.tier == "run"])
        rest = [p for p in results if p.info.tier != "run" and (p.run, p.info.calib_type) not in done_groups]
        bar.update(sum(1 for p in results if p.info.tier != "run") - len(rest))
        run_pass(rest)
        stats = []
        for p in products:
            if p.info.kind == "Results":
                continue
            cov = covered.get((p.run, p.info.calib_type))
            if p.info.tier == "detector" and cov and (NO_EXPOSURE if p.exposure is None else p.exposure, det_id(p)) in cov:
                bar.update(1)
                continue
            stats.append(p)
        run_pass(stats)
    return chunks, problems
