"""FITS cut-outs of a store by focal-plane box, for DS9 and Firefly users.

The primary HDU holds the pixels of one pyramid level (row 1 at the bottom, +y up, as
DS9 shows FITS), with a linear WCS in focal-plane millimetres (``CTYPE1 = 'FPX'``,
``CTYPE2 = 'FPY'``, ``CUNIT = 'mm'``), the store's camera, binning and level, and the
detectors the box covers (``DET0001`` ...).  A ``COVERAGE`` table lists every detector and
amp the box covers with its level-0 box; a ``PROVENANCE`` table lists the store's inputs.
"""

from __future__ import annotations

import io
import math

import numpy as np

from ..mosaic.store import MosaicStore

__all__ = ["cutout_fits", "cutout_box", "CutoutError", "MAX_PIXELS"]

#: Largest cut-out (pixels): 64 MB of float32.
MAX_PIXELS = 4096 * 4096


class CutoutError(ValueError):
    """A cut-out that cannot be made (``status`` 400 or 404, naming ``parameter``)."""

    def __init__(self, message: str, status: int = 400, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status, self.parameter = status, parameter


def cutout_box(m: MosaicStore, box_mm: tuple[float, float, float, float], level: int) -> tuple[int, int, int, int]:
    """Rows and columns ``(i0, i1, j0, j1)`` of ``level`` whose pixel centres lie in the
    focal-plane box ``(x0, y0, x1, y1)`` mm (any corner order), clipped to the level."""
    x0, y0, x1, y1 = box_mm
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    with np.errstate(over="ignore"):  # huge boxes: infinite pixels, clamped below
        ia, ja = m.focal_plane_to_pixel(level, xa, ya)
        ib, jb = m.focal_plane_to_pixel(level, xb, yb)
    h, w = m.shape(level)

    def first(v, n: int) -> int:  # first pixel centre >= v; huge boxes give inf: clamp first
        return math.ceil(min(max(float(v), 0.0), float(n)))

    def end(v, n: int) -> int:  # one past the last pixel centre <= v
        return min(math.floor(min(max(float(v), -1.0), float(n))) + 1, n)

    return (first(ia, h), end(ib, h), first(ja, w), end(jb, w))


def cutout_fits(m: MosaicStore, box_mm: tuple[float, float, float, float], level: int = 0,
                name: str = "mosaic", max_pixels: int = MAX_PIXELS) -> bytes:
    """FITS bytes of the pixels of ``level`` inside a focal-plane box (mm).

    Raises
    ------
    CutoutError
        400 when the box holds more than ``max_pixels`` pixels, 404 when it holds none.
    """
    from astropy.io import fits

    i0, i1, j0, j1 = cutout_box(m, box_mm, level)
    n = (i1 - i0) * (j1 - j0)
    if i1 <= i0 or j1 <= j0:
        raise CutoutError(f"the box {list(box_mm)} mm holds no pixel of level {level} "
                          f"(bounds {list(m.extent_mm(level))})", 404)
    if n > max_pixels:
        raise CutoutError(f"the box holds {i1 - i0} x {j1 - j0} = {n} pixels of level {level}, more than "
                          f"{max_pixels}; ask a smaller box or a coarser level", 400, "level")
    data = m.read(level, i0, i1, j0, j1).astype(np.float32, copy=False)
    sy, sx = (v / 1000.0 for v in m.scale_um(level))
    x_c, y_c = m.pixel_to_focal_plane(level, i0, j0)
    hdr = fits.Header()
    for key, value, comment in (
            ("WCSNAME", "FOCALPLANE", "focal-plane coordinates"),
            ("CTYPE1", "FPX", "focal-plane x"), ("CTYPE2", "FPY", "focal-plane y"),
            ("CUNIT1", "mm", ""), ("CUNIT2", "mm", ""),
            ("CRPIX1", 1.0, "FITS pixel of CRVAL1"), ("CRPIX2", 1.0, "FITS pixel of CRVAL2"),
            ("CRVAL1", float(x_c), "[mm] x of the centre of pixel (1, 1)"),
            ("CRVAL2", float(y_c), "[mm] y of the centre of pixel (1, 1)"),
            ("CDELT1", sx, "[mm] pixel size in x"), ("CDELT2", sy, "[mm] pixel size in y"),
            ("CAMERA", m.camera, "camera of the mosaic"), ("BINNING", m.binning, "detector pixels per level-0 px"),
            ("LEVEL", level, "pyramid level (0 finest)"),
            ("LVLSCALE", m.level_scale(level), "detector pixels per pixel"),
            ("STORE", name, "store the cut-out comes from"),
            ("ROW0", i0, "level row of FITS row 1"), ("COL0", j0, "level column of FITS column 1"),
            ("COMPLETE", m.complete, "the store's build finished")):
        hdr[key] = (value, comment)
    d = 2**level
    box0 = (i0 * d, i1 * d, j0 * d, j1 * d)
    placements = m.plan.placements_in(box0)
    hdr["NDET"] = (len(placements), "detectors in the cut-out")
    for n_, p in enumerate(placements, 1):
        hdr[f"DET{n_:04d}"] = p.name
    rows = []
    for p in placements:
        for amp, (y0, y1, x0, x1) in p.amp_boxes.items():
            if y0 < box0[1] and box0[0] < y1 and x0 < box0[3] and box0[2] < x1:
                rows.append((p.name, p.id, amp, y0, y1, x0, x1))
    hdr["NAMP"] = (len(rows), "amps in the cut-out")
    missing = {d_["name"] for d_ in m.missing}
    hdr.add_history(f"cpmosaic cut-out of store {name!r}, level {level}, rows {i0}:{i1}, columns {j0}:{j1}")
    inputs = m.inputs
    hdr["NINPUTS"] = (len(inputs), "input files of the store (PROVENANCE table)")
    cov = fits.BinTableHDU.from_columns([
        fits.Column("DETECTOR", "16A", array=[r[0] for r in rows]),
        fits.Column("DET_ID", "J", array=[r[1] for r in rows]),
        fits.Column("AMP", "8A", array=[r[2] for r in rows]),
        fits.Column("MISSING", "L", array=[r[0] in missing for r in rows]),
        *(fits.Column(c, "J", array=[r[3 + i] for r in rows]) for i, c in enumerate(("Y0", "Y1", "X0", "X1")))],
        name="COVERAGE")
    cov.header["COMMENT"] = "level-0 pixel boxes (half-open) of the detectors and amps in the cut-out"
    mine = {p.name for p in placements}
    used = [r for r in inputs if r.get("detector_name") in mine]
    prov = fits.BinTableHDU.from_columns([
        fits.Column("DETECTOR", "16A", array=[str(r.get("detector_name", "")) for r in used]),
        fits.Column("PATH", f"{max([len(str(r.get('path', ''))) for r in used] + [1])}A",
                    array=[str(r.get("path", "")) for r in used]),
        fits.Column("KIND", "16A", array=[str(r.get("kind", "")) for r in used]),
        fits.Column("EXPOSURE", "K", array=[int(r.get("exposure") or -1) for r in used])], name="PROVENANCE")
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(data, hdr), cov, prov]).writeto(buf)
    return buf.getvalue()
