"""Shrunk cameras: the same focal plane with fewer, larger pixels.

Tests and the quick demo need realistic layouts without 16-megapixel
detectors.  A camera shrunk by ``factor`` keeps every detector's footprint in
the focal plane (pixels grow by ``factor``), keeps the amp grid, flips, HDUs
and raw layout (prescan, data, overscan, parallel overscan), only smaller.
"""

from __future__ import annotations

import dataclasses

from .model import Amplifier, Box, Camera, Detector

__all__ = ["shrink_camera"]


def _shrink_amp(a: Amplifier, f: int, data_w: int, data_h: int) -> Amplifier:
    pre = max(1, a.raw_serial_prescan_bbox.width // f)
    ovw = max(8, a.raw_serial_overscan_bbox.width // f)
    povh = max(4, a.raw_parallel_overscan_bbox.height // f)
    return dataclasses.replace(
        a,
        bbox=Box(a.ix * data_w, a.iy * data_h, data_w, data_h),
        raw_bbox=Box(0, 0, pre + data_w + ovw, data_h + povh),
        raw_data_bbox=Box(pre, 0, data_w, data_h),
        raw_serial_prescan_bbox=Box(0, 0, pre, data_h),
        raw_serial_overscan_bbox=Box(pre + data_w, 0, ovw, data_h),
        raw_parallel_overscan_bbox=Box(pre, data_h, data_w, povh),
    )


def _shrink_detector(d: Detector, f: int) -> Detector:
    a0 = d.amplifiers[0]
    # pixels grow by exactly f so they stay square; amp sizes round to the
    # nearest whole pixel, so footprints change by less than f/2 pixels per amp
    data_w = max(2, round(a0.raw_data_bbox.width / f))
    data_h = max(2, round(a0.raw_data_bbox.height / f))
    nx = max(a.ix for a in d.amplifiers) + 1
    ny = max(a.iy for a in d.amplifiers) + 1
    width, height = nx * data_w, ny * data_h
    # keep the detector centre where it was, and refpos's offset from it
    refpos = (
        (width - 1) / 2 + (d.refpos[0] - (d.width - 1) / 2) / f,
        (height - 1) / 2 + (d.refpos[1] - (d.height - 1) / 2) / f,
    )
    return dataclasses.replace(
        d,
        width=width,
        height=height,
        refpos=refpos,
        pixel_size_mm=d.pixel_size_mm * f,
        amplifiers=tuple(_shrink_amp(a, f, data_w, data_h) for a in d.amplifiers),
    )


def shrink_camera(camera: Camera, factor: int) -> Camera:
    """A copy of *camera* whose detectors are *factor* times smaller per axis.

    >>> from cpmosaic.camera import get_camera
    >>> small = shrink_camera(get_camera("LSSTCam"), 16)
    >>> small["R22_S11"].shape
    (250, 256)
    """
    if int(factor) != factor or factor < 1:
        raise ValueError(f"shrink factor must be a positive integer, got {factor!r}")
    if factor == 1:
        return camera
    dets = tuple(_shrink_detector(d, int(factor)) for d in camera)
    return Camera(f"{camera.name}", dets, camera.plate_scale, camera.focal_plane_parity)
