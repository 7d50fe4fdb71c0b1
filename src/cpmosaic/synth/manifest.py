"""The manifest of a synthetic data set: what :func:`cpmosaic.synth.synthesize` wrote, where.

Its own module so that readers of a data set (the Butler repository maker, tests,
the demo) need not import the generator.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..camera import Camera

__all__ = ["MANIFEST_FORMAT", "Manifest", "read_manifest"]

MANIFEST_FORMAT = "cpmosaic-synth/1"
_PATH_FIELDS = ("camera_file", "verify_root", "butler_root")


@dataclass(frozen=True)
class Manifest:
    """What :func:`synthesize` wrote.  Paths are absolute here, relative to ``root`` on disk.

    ``images`` maps ``"raw"``, ``"processed"``, ``"calib"`` to entries
    ``{path, detector, detector_name, calib_type, exposure, day_obs}`` (calib
    entries have ``label`` "A"/"B" and ``run`` instead of exposure).
    ``anomalies`` entries: ``{kind: hot_amp|noisy_amp|dead_detector, detector,
    detector_name, amp, box [x0, y0, w, h], x_mm, y_mm, size, unit, fails}``.
    ``calib_differences``: where run B differs from A (``calib_type``, ``kind``
    offset|gain_step, ``size``, place as above).  ``trends``: the drift and the
    jump (:class:`cpmosaic.synth.cpverify.Trend` fields).  ``runs``: calib type ->
    day_obs -> RUN collection of the verify outputs.  ``verify_files`` entries:
    ``{path, dataset_type, run, calib_type, tier (det|exp|run), day_obs,
    exposure, detector}``.
    """

    root: Path
    instrument: str
    camera: str
    camera_file: Path
    shrink: int
    seed: int
    days: tuple[int, ...]
    calib_types: tuple[str, ...]
    detectors: tuple[int, ...]
    exposures: tuple[dict, ...]
    images: dict[str, tuple[dict, ...]]
    anomalies: tuple[dict, ...]
    calib_differences: tuple[dict, ...]
    trends: tuple[dict, ...]
    runs: dict[str, dict[int, str]]
    calib_runs: dict[str, str]
    verify_root: Path | None
    verify_files: tuple[dict, ...]
    butler_root: Path | None
    corrupt: tuple[dict, ...]
    identical_b: bool = False

    def replace(self, **changes: Any) -> "Manifest":
        return dataclasses.replace(self, **changes)

    def load_camera(self) -> Camera:
        """The camera the data were made with (the shrunk one when shrunk)."""
        from ..camera import read_camera_json

        return read_camera_json(self.camera_file)

    def paths(self, kind: str, *, calib_type: str | None = None, detector: int | str | None = None,
              label: str | None = None) -> list[Path]:
        """Image files of one kind (``raw``, ``processed``, ``calib``), optionally filtered."""
        out = []
        for e in self.images.get(kind, ()):
            if calib_type is not None and e["calib_type"] != calib_type:
                continue
            if detector is not None and detector not in (e["detector"], e["detector_name"]):
                continue
            if label is not None and e.get("label") != label:
                continue
            out.append(Path(e["path"]))
        return out

    def anomaly(self, kind: str) -> dict | None:
        """The first anomaly of a kind (``hot_amp``, ``noisy_amp``, ``dead_detector``), or None."""
        return next((a for a in self.anomalies if a["kind"] == kind), None)

    def trend(self, kind: str) -> dict | None:
        """The ``drift`` or ``jump`` definition, or None."""
        return next((t for t in self.trends if t["kind"] == kind), None)

    def to_json_dict(self) -> dict:
        def rel(p) -> str | None:
            return None if p is None else Path(os.path.relpath(Path(p), self.root)).as_posix()

        def entries(items):
            return [{**e, "path": rel(e["path"])} for e in items]

        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "root"}
        d.update({k: rel(getattr(self, k)) for k in _PATH_FIELDS})
        d["images"] = {k: entries(v) for k, v in self.images.items()}
        d["verify_files"] = entries(self.verify_files)
        d["corrupt"] = entries(self.corrupt)
        d["runs"] = {ct: {str(day): run for day, run in v.items()} for ct, v in self.runs.items()}
        return {"format": MANIFEST_FORMAT, **d}

    def write(self) -> Path:
        path = self.root / "manifest.json"
        path.write_text(json.dumps(self.to_json_dict(), indent=1) + "\n")
        return path

    @classmethod
    def from_json_dict(cls, doc: dict, root: Path) -> "Manifest":
        def ab(p):
            return None if p is None else root / p

        def entries(items):
            return tuple({**e, "path": ab(e["path"])} for e in items)

        kw = {f.name: doc[f.name] for f in dataclasses.fields(cls) if f.name in doc}
        kw.update({k: ab(doc.get(k)) for k in _PATH_FIELDS})
        for k in ("days", "calib_types", "detectors", "exposures", "anomalies", "calib_differences", "trends"):
            kw[k] = tuple(doc.get(k, ()))
        kw["images"] = {k: entries(v) for k, v in doc.get("images", {}).items()}
        kw["verify_files"] = entries(doc.get("verify_files", ()))
        kw["corrupt"] = entries(doc.get("corrupt", ()))
        kw["runs"] = {ct: {int(day): run for day, run in v.items()} for ct, v in doc.get("runs", {}).items()}
        return cls(root=root, **kw)


def read_manifest(root: str | os.PathLike) -> Manifest:
    """Read ``ROOT/manifest.json`` (or the manifest file itself) written by :func:`synthesize`."""
    from ..errors import InputError

    p = Path(root)
    path = p / "manifest.json" if p.is_dir() else p
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read synthetic-data manifest ({exc})") from None
    if doc.get("format") != MANIFEST_FORMAT:
        raise InputError(path, f"not a cpmosaic synth manifest (format {doc.get('format')!r})")
    return Manifest.from_json_dict(doc, path.parent.resolve())
