"""The main job on built-in synthetic data: ``cpmosaic demo`` and :func:`run_demo`.

One call does what a calibration scientist does with a night of data:

1. synthesize a realistic night (bias, dark, flat; processed exposures; calibration runs A
   and B; ``days`` nights of cp_verify outputs with an injected drift and jump; a hot amp,
   a noisy amp and a dead detector), :func:`cpmosaic.synth.synthesize`;
2. build one mosaic store per calib type from the processed exposures;
3. read the metrics, add every night to a history store;
4. compare: the last night's metrics against the first night's (metric level), and
   calibration B against A pixel by pixel (image level);
5. write the report of the last night (every plot, tests, outliers, candlesticks with the
   drift and jump alerts, mosaics with metric overlays) and return its summary.

Layout of ``out_dir``: ``data/`` (the synthetic data and its ``manifest.json``),
``mosaics/<calib_type>.zarr``, ``history/``, ``report/index.html``.

>>> r = run_demo("cpmosaic-demo", detectors=["R22_S11", "R22_S12"], days=5)   # doctest: +SKIP
>>> print(r.report.index)                                                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .report.build import ReportResult
    from .synth.manifest import Manifest

log = logging.getLogger(__name__)

__all__ = ["DemoResult", "run_demo", "SMALL_DETECTORS", "small_detectors"]

#: A small but useful subset (the notebooks' CPMOSAIC_DEMO_SMALL=1): the centre raft, a
#: corner raft (rotated wavefront and guider sensors) and an outer raft.
SMALL_DETECTORS = ("R22_S00", "R22_S01", "R22_S02", "R22_S10", "R22_S11", "R22_S12", "R22_S20", "R22_S21",
                   "R22_S22", "R00_SG0", "R00_SG1", "R00_SW0", "R10_S10", "R10_S11")
#: Level-0 pixels per detector width the mosaics aim at (binning = width / this).
MOSAIC_PIXELS_PER_DETECTOR = 128


def small_detectors() -> list[str] | None:
    """:data:`SMALL_DETECTORS` when ``CPMOSAIC_DEMO_SMALL`` is set (not ``0``), else None (all)."""
    return list(SMALL_DETECTORS) if os.environ.get("CPMOSAIC_DEMO_SMALL", "0") not in ("", "0") else None


@dataclass
class DemoResult:
    """What :func:`run_demo` made and found.

    ``alerts`` are the history's drift and jump alerts; ``injected`` the drift and jump
    the synthesizer put in (``manifest.trends``); ``found`` the injected ones an alert
    matches (same calib type, detector, amp and metric, of the same kind).
    """

    out_dir: Path
    manifest: Manifest
    report: ReportResult | None
    mosaics: dict[str, Path]
    history: Path
    image_comparisons: dict
    timings: dict[str, float] = field(default_factory=dict)
    _alerts: Any = field(default=None, repr=False)

    @property
    def index(self) -> Path | None:
        """The report's index.html (None when no report was written)."""
        return None if self.report is None else self.report.index

    @property
    def alerts(self):
        """The history's drift and jump alerts (computed here when no report was written)."""
        if self.report is not None:
            return self.report.alerts
        if self._alerts is None:
            from .metrics.drift import detect_changes
            from .metrics.history import HistoryStore

            self._alerts = detect_changes(HistoryStore(self.history).load(), window=min(10, len(self.manifest.days)))
        return self._alerts

    @property
    def injected(self) -> list[dict]:
        return list(self.manifest.trends)

    @property
    def found(self) -> list[dict]:
        a = self.alerts
        if a is None or not len(a):
            return []
        keys = set(zip(a["kind"], a["calib_type"], a["detector_name"], a["amp"], a["metric"]))
        return [t for t in self.injected
                if (t["kind"], t["calib_type"], t["detector_name"], t["amp"], t["metric"]) in keys]

    def summary_lines(self) -> list[str]:
        """A few lines for a terminal: verdict, alerts, outliers, comparisons, timing."""
        r = self.report
        lines = []
        if r is not None:
            s = r.summary
            word = {True: "PASS", False: "FAIL", None: "no verdict"}
            lines += [f"cp_verify: {word[s.get('cp_verify_success')]} ({s.get('n_failures', 0)} failing tests of "
                      f"{s.get('n_tests', 0)}; re-evaluated: {word[s.get('success')]})",
                      f"outliers: {r.n_outliers} findings"
                      + (f" (top: {r.top_findings(3)}, ...)" if r.n_outliers > 3 else
                         f" ({r.top_findings(3)})" if r.n_outliers else "")]
        a = self.alerts
        if a is not None:
            lines.append(f"history alerts: {len(a)} in {len(self.manifest.days)} nights "
                         f"(injected {len(self.injected)}, found {len(self.found)})")
            for row in a.head(5).itertuples():
                lines.append(f"  {row.kind:<5} {row.day_obs} {row.calib_type} {row.detector_name} {row.amp} "
                             f"{row.metric} {row.size:+.3g} ({row.significance:.1f} sigma)")
        for rec in r.recommendations if r is not None else ():
            if rec["recommend_new"]:
                lines.append(f"new {rec['calib_type']} recommended: {rec['reason']}")
        for ct, d in self.image_comparisons.items():
            if len(d):
                worst = d.loc[d["max_abs"].idxmax()]
                lines.append(f"calib B - A {ct}: {int((d['max_abs'] > 0).sum())} of {len(d)} amps differ, "
                             f"largest {worst['detector_name']} {worst['amp']} ({worst['max_abs']:.3g})")
        lines.append(f"took {self.timings.get('total', 0):.0f} s")
        return lines


def _lap(timings: dict, name: str, t0: float) -> float:
    now = time.perf_counter()
    timings[name] = now - t0
    log.info("demo: %s took %.1f s", name, now - t0)
    return now


def run_demo(out_dir: str | os.PathLike = "cpmosaic-demo", *, full: bool = False, seed: int = 0,
             detectors: Sequence[str | int] | None = None, days: int = 10, interactive: bool = True,
             metrics: Sequence[str] | None = None, mosaics: bool = True, compare: bool = True,
             report: bool = True, progress: bool | None = None) -> DemoResult:
    """Synthesize a night, build mosaics, compute and compare metrics, check history, write the report.

    Parameters
    ----------
    out_dir
        Where everything goes (created; earlier demo files there are replaced).
    full
        Real LSSTCam detector size (4k x 4k; ~200 MB of images per detector: use with
        *detectors*); default detectors 16 times smaller per axis, same focal plane.
    seed
        Seed of the synthetic data (the result is a function of it).
    detectors
        Names or ids of a subset of detectors (default all 205).
    days
        Nights of cp_verify history (at least 3; the drift and jump are injected in them).
    interactive
        Write the report's interactive HTML pages.
    metrics
        Only these metrics in the report's plots (default all; tests and tables cover all).
    mosaics, compare, report
        Build the mosaics, run the comparisons, write the report (notebooks that draw
        inline turn the report off; the data, metrics and history are always made).
    progress
        Progress bars (None: on a terminal or when the CLI asks).

    Returns
    -------
    DemoResult
    """
    from .metrics import compare_images, load_metrics
    from .metrics.history import HistoryStore
    from .mosaic import build_mosaic
    from .report import build_report
    from .synth import synthesize

    if days < 3:
        raise ValueError("the demo needs at least 3 nights of history")
    t_start = t = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shrink = 1 if full else 16
    if full:
        log.warning("full-size detectors: about %d MB of images per detector",
                    9 * 4096 * 4000 * 4 // 2**20)
    # Raw files and a Butler repository are not needed by any step here (the report reads
    # the cp_verify tree, mosaics the processed images), so they are not written: speed.
    m = synthesize(out / "data", shrink=shrink, seed=seed, n_days=days, detectors=detectors, raw=False,
                   butler=False, planes="image", progress=progress)
    t = _lap(timings, "synthesize", t)
    cam = m.load_camera()
    width = max(d.bbox.width for d in cam)
    binning = max(1, round(width / MOSAIC_PIXELS_PER_DETECTOR))
    stores: dict[str, Path] = {}
    for ct in m.calib_types if mosaics else ():
        files = m.paths("processed", calib_type=ct)
        if files:
            store = out / "mosaics" / f"{ct}.zarr"
            build_mosaic(files, store, camera=cam, binning=binning, overwrite=True, name=f"{ct} {m.days[0]}",
                         progress=progress)
            stores[ct] = store
    t = _lap(timings, "mosaics", t)
    if m.verify_root is None:  # synthesize(verify=True) writes one; a guard for the type checker
        raise RuntimeError(f"{out / 'data'}: the synthetic night has no cp_verify outputs")
    df = load_metrics(m.verify_root, progress=progress)
    history = out / "history"
    history_store = HistoryStore(history)
    history_store.add(df)
    t = _lap(timings, "metrics+history", t)
    first, last = m.days[0], m.days[-1]
    day = df["day_obs"].astype("Int64")
    tonight = df[(day == last).fillna(False).to_numpy(dtype=bool)].reset_index(drop=True)
    reference = df[(day == first).fillna(False).to_numpy(dtype=bool)].reset_index(drop=True)
    image_cmp = {}
    for ct in m.calib_types if compare else ():
        a, b = (out / "data" / "calibs" / m.calib_runs[lb] / ct for lb in ("A", "B"))
        if a.is_dir() and b.is_dir():
            image_cmp[ct] = compare_images(a, b, camera=cam, progress=progress)
    t = _lap(timings, "compare", t)
    result = None
    if report:
        result = build_report(tonight, out / "report", against=reference if compare else None, history=history_store,
                              mosaics=list(stores.values()), image_comparisons=image_cmp, metrics=metrics,
                              labels=(f"night {last}", f"night {first}"),
                              title=f"cpmosaic demo: calibration verification of night {last}",
                              interactive=interactive, history_window=min(10, days), progress=progress,
                              note=f"synthetic LSSTCam data (seed {seed}, {len(m.detectors)} detectors, "
                                   f"{days} nights) in {out / 'data'}; cp_verify outputs in {m.verify_root}, "
                                   f"history store {history}")
        t = _lap(timings, "report", t)
    timings["total"] = time.perf_counter() - t_start
    return DemoResult(out, m, result, stores, history, image_cmp, timings)
