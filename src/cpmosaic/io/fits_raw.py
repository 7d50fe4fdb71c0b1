"""Raw LSST camera files: find the amp segments, assemble them by camera geometry.

A raw is HDU 0 (metadata) plus one int32 HDU per amplifier, ``Segment10`` ...
``Segment17`` and ``Segment07`` ... ``Segment00`` (wavefront half-chips have only
the C1x ones), often RICE tile-compressed.  Segments are found by EXTNAME, never by
HDU number (obs_lsst's YAML has a duplicated HDU for one wavefront amp), and placed
by the camera's amp boxes and flips, never by DETSEC (wrong in files before
DM-36115).  The pixel work is :func:`cpmosaic.kernels.assemble_amp`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..camera import Amplifier, Camera, Detector
from ..errors import CameraError, InputError, UnknownInstrumentError
from ..kernels import assemble_amp
from .exposure import Exposure, ExposureInfo
from .fitsscan import ScannedFile
from .header import HeaderStack, exposure_metadata, find_detector, resolve_camera

if TYPE_CHECKING:
    from astropy.io import fits

log = logging.getLogger(__name__)

__all__ = ["RawExposure", "scan_segments"]


def _hdu_shape(hdu) -> tuple[int, ...]:
    """Image shape ``(ny, nx)`` from the header.

    astropy shows a compressed HDU's image header; a scanned one
    (:mod:`cpmosaic.io.fitsscan`) is the binary table's, with ``ZNAXISn``.
    """
    h = hdu.header
    z = "Z" if h.get("ZIMAGE") else ""
    naxis = int(h.get(f"{z}NAXIS", 0))
    return tuple(int(h.get(f"{z}NAXIS{k}", 0)) for k in range(naxis, 0, -1))


def scan_segments(hdul, detector: Detector, path) -> dict[str, int]:
    """Map each amp of *detector* to the index of its segment HDU, checking shapes.

    Raises
    ------
    InputError
        A segment is missing or its shape is not the camera's raw amp shape.
    """
    by_name: dict[str, int] = {}
    for i, hdu in enumerate(hdul):
        name = str(hdu.name).upper()
        if name.startswith("SEGMENT"):
            if name in by_name:
                log.warning("%s: %s appears twice (HDUs %d and %d); using the first", path, name, by_name[name], i)
                continue
            by_name[name] = i
    found: dict[str, int] = {}
    missing = []
    for amp in detector.amplifiers:
        index = by_name.get(amp.segment_name.upper())
        if index is None:
            missing.append(amp.segment_name)
            continue
        shape = _hdu_shape(hdul[index])
        expected = amp.raw_bbox.shape
        if shape != expected:
            raise InputError(path, f"{amp.segment_name} has shape {shape}, camera geometry says {expected}")
        found[amp.name] = index
    if missing:
        raise InputError(
            path,
            f"missing segment HDU(s) {', '.join(missing)}: detector {detector.name} has "
            f"{len(detector.amplifiers)} amps, the file has {len(by_name)} segments",
        )
    extra = set(by_name) - {a.segment_name.upper() for a in detector.amplifiers}
    if extra:
        log.debug("%s: segments not in detector %s ignored: %s", path, detector.name, sorted(extra))
    return found


class RawExposure(Exposure):
    """A raw file, assembled on read into trimmed, overscan-corrected detector pixels."""

    detector: Detector  # a raw file is always matched to its detector

    def __init__(self, info: ExposureInfo, detector: Detector, camera: Camera, hdul: fits.HDUList | ScannedFile | None,
                 segments: dict[str, int], *, overscan: str = "median", apply_gains: bool = False) -> None:  # fmt: skip
        super().__init__(info, detector, camera, hdul)
        self.segments = segments
        self.overscan = overscan
        self.apply_gains = apply_gains
        for amp in detector.amplifiers:
            if amp.bbox.shape != amp.raw_data_bbox.shape:
                raise CameraError(f"{detector.name} {amp.name}: bbox {amp.bbox} and raw data box "
                                  f"{amp.raw_data_bbox} differ in size")  # fmt: skip
        area = sum(a.bbox.width * a.bbox.height for a in detector.amplifiers)
        # amps that tile the detector exactly write every pixel; otherwise start from NaN
        self._tiled = area == detector.width * detector.height

    @classmethod
    def from_hdul(cls, path: Path, hdul: fits.HDUList | ScannedFile, camera: Camera | str | os.PathLike | None, *,
                  overscan: str = "median", apply_gains: bool = False) -> RawExposure:
        header = HeaderStack([hdul[0].header])
        cam = resolve_camera(header, camera, path)
        if cam is None:
            raise UnknownInstrumentError(path, header.get("INSTRUME"))
        det = find_detector(header, cam, path)
        if det is None:  # find_detector(required=True) raises first; this narrows the type
            raise InputError(path, "no detector of the camera matches the header")
        segments = scan_segments(hdul, det, path)
        info = ExposureInfo(path=str(path), kind="raw", camera=cam.name, detector=det.id, detector_name=det.name,
                            shape=det.shape, **exposure_metadata(header, path))  # fmt: skip
        return cls(info, det, cam, hdul, segments, overscan=overscan, apply_gains=apply_gains)

    def _segment_rows(self, index: int, y0: int, y1: int) -> np.ndarray:
        return self._hdu_rows(index, y0, y1)

    def _read_amp(self, amp: Amplifier, out: np.ndarray, out_row: int, rs: int, re: int) -> None:
        """Write output rows ``rs:re`` of *amp* (relative to its bbox) at ``out[out_row:]``."""
        d, o = amp.raw_data_bbox, amp.raw_serial_overscan_bbox
        index = self.segments[amp.name]
        gain = amp.gain if self.apply_gains else 1.0
        n = re - rs
        aligned = o.y0 == d.y0 and o.height == d.height
        if self.overscan != "single" and (aligned or self.overscan == "none"):
            # Per-row correction needs only the raw rows that land in rs:re; with
            # flip_y those are counted from the top of the data box.
            y0 = d.y0 + (d.height - re if amp.flip_y else rs)
            seg = self._segment_rows(index, y0, y0 + n)
            assemble_amp(seg, (d.x0, 0, d.width, n), (o.x0, 0, o.width, n), out, out_row, amp.bbox.x0,
                         amp.flip_x, amp.flip_y, overscan=self.overscan, gain=gain)  # fmt: skip
            return
        # "single" takes one level from the whole overscan box: read the whole amp.
        ylo, yhi = min(d.y0, o.y0), max(d.y1, o.y1)
        seg = self._segment_rows(index, ylo, yhi)
        dbox = (d.x0, d.y0 - ylo, d.width, d.height)
        obox = (o.x0, o.y0 - ylo, o.width, o.height)
        if rs == 0 and re == d.height:
            assemble_amp(seg, dbox, obox, out, out_row, amp.bbox.x0, amp.flip_x, amp.flip_y,
                         overscan=self.overscan, gain=gain)  # fmt: skip
            return
        tmp = np.empty(d.shape, np.float32)
        assemble_amp(seg, dbox, obox, tmp, 0, 0, amp.flip_x, amp.flip_y, overscan=self.overscan, gain=gain,
                     row_start=rs, row_stop=re)  # fmt: skip
        out[out_row:out_row + n, amp.bbox.x0:amp.bbox.x1] = tmp[rs:re]

    def read(self, rows: slice | None = None) -> np.ndarray:
        """Assembled detector pixels (float32 ``[y, x]``), overscan subtracted, trimmed.

        A row range reads only the amps it crosses and, in uncompressed files,
        only the raw rows it needs.
        """
        self._require_open()
        r0, r1 = self._rows(rows)
        det = self.detector
        alloc = np.empty if self._tiled else (lambda shape, dtype: np.full(shape, np.nan, dtype))
        out = alloc((r1 - r0, det.width), np.float32)
        for amp in det.amplifiers:
            a0, a1 = max(r0, amp.bbox.y0), min(r1, amp.bbox.y1)
            if a0 < a1:
                self._read_amp(amp, out, a0 - r0, a0 - amp.bbox.y0, a1 - amp.bbox.y0)
        return out
