"""The mosaic grid: placements, rotations, levels and shards (no files, no zarr)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.mosaic.plan import make_plan, rotate_box, source_window


@pytest.fixture(scope="module")
def lsstcam():
    return get_camera("LSSTCam")


def _overlaps(boxes: np.ndarray) -> list[tuple[int, int]]:
    y0, y1, x0, x1 = (boxes[:, k] for k in range(4))
    oy = (np.maximum(y0[:, None], y0[None]) < np.minimum(y1[:, None], y1[None]))
    ox = (np.maximum(x0[:, None], x0[None]) < np.minimum(x1[:, None], x1[None]))
    hit = np.triu(oy & ox, 1)
    return list(zip(*np.nonzero(hit)))


@pytest.mark.parametrize("binning", [1, 2, 4, 8, 16])
def test_lsstcam_detectors_do_not_overlap(lsstcam, binning):
    plan = make_plan(lsstcam, binning)
    assert len(plan.placements) == 205
    boxes = np.array([p.box for p in plan.placements])
    assert _overlaps(boxes) == []
    assert boxes[:, 0].min() == 0 and boxes[:, 2].min() == 0
    assert boxes[:, 1].max() == plan.shape[0] and boxes[:, 3].max() == plan.shape[1]


@pytest.mark.parametrize("binning", [1, 8])
def test_placement_follows_the_formula(lsstcam, binning):
    """Each box starts at round(extent / (pixel * b)) and lies within 1 px of the true extent."""
    plan = make_plan(lsstcam, binning)
    s = 0.01 * binning
    corners = {d.id: d.box_corners_mm(d.bbox) for d in lsstcam}
    gx0 = min(math.floor(c[:, 0].min() / s + 0.5) for c in corners.values())
    gy0 = min(math.floor(c[:, 1].min() / s + 0.5) for c in corners.values())
    assert plan.origin == (gy0, gx0)
    for p in plan.placements:
        c = corners[p.id]
        true = (c[:, 1].min() / s - gy0, c[:, 1].max() / s - gy0, c[:, 0].min() / s - gx0, c[:, 0].max() / s - gx0)
        assert p.box[0] == math.floor(c[:, 1].min() / s + 0.5) - gy0
        assert p.box[2] == math.floor(c[:, 0].min() / s + 0.5) - gx0
        assert np.all(np.abs(np.array(p.box) - np.array(true)) <= 1.0), (p.name, p.box, true)


def test_quarter_turns_cover_all_cases(lsstcam):
    qs = {p.n_quarter for p in make_plan(lsstcam, 8).placements}
    assert qs == {0, 1, 2, 3}


@pytest.mark.parametrize("binning", [1, 3])
def test_detector_pixels_land_where_the_camera_puts_them(binning):
    """Map detector pixels through np.rot90 of an index image; the output pixel centre
    (from the plan's transform) must be within one output pixel of pixel_to_focal_plane."""
    cam = shrink_camera(get_camera("LSSTCam"), 32)
    plan = make_plan(cam, binning)
    s = cam.detectors[0].pixel_size_mm * binning
    for det in cam:
        p = plan.placement(det.id)
        h, w = det.shape
        bh, bw = -(-h // binning), -(-w // binning)
        index = np.arange(bh * bw).reshape(bh, bw)
        rotated = np.rot90(index, -det.n_quarter)
        assert rotated.shape == (p.box[1] - p.box[0], p.box[3] - p.box[2])
        for x, y in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 3, h // 2)]:
            ii, jj = np.argwhere(rotated == (y // binning) * bw + x // binning)[0]
            fx, fy = plan.pixel_to_focal_plane(0, p.box[0] + ii, p.box[2] + jj)
            tx, ty = det.pixel_to_focal_plane(x, y)
            assert abs(fx - tx) <= s and abs(fy - ty) <= s, (det.name, det.n_quarter, x, y)


@pytest.mark.parametrize("q", [0, 1, 2, 3])
def test_rotate_box_and_source_window_match_rot90(q, rng):
    a = rng.integers(0, 1000, size=(7, 11))
    r = np.rot90(a, -q)
    for _ in range(20):
        i0, j0 = rng.integers(0, r.shape[0]), rng.integers(0, r.shape[1])
        i1, j1 = rng.integers(i0 + 1, r.shape[0] + 1), rng.integers(j0 + 1, r.shape[1] + 1)
        r0, r1, c0, c1 = source_window((i0, i1, j0, j1), a.shape, q)
        np.testing.assert_array_equal(np.rot90(a[r0:r1, c0:c1], -q), r[i0:i1, j0:j1])
        assert rotate_box((r0, r1, c0, c1), a.shape, q) == (i0, i1, j0, j1)


def test_levels_halve_down_to_one_chunk(lsstcam):
    plan = make_plan(lsstcam, 8, chunk=256)
    shapes = [lv.shape for lv in plan.levels]
    for a, b in zip(shapes, shapes[1:]):
        assert b == (-(-a[0] // 2), -(-a[1] // 2))
    assert max(shapes[-1]) <= 256 and max(shapes[-2]) > 256
    for lv in plan.levels:
        assert lv.shards[0] % 256 == 0 and lv.shards[1] % 256 == 0
        assert lv.shards[0] * lv.shards[1] * 4 <= 32 * 2**20
    # level 0 at binning 8 is one shard wide: each detector row is read once
    assert plan.levels[0].n_shards[1] == 1
    s0 = plan.scale_um(0)
    assert s0 == pytest.approx(80.0)
    for k in range(plan.n_levels):  # pixel edges of every level start at the same place
        ty, tx = plan.translation_um(k)
        assert tx - plan.scale_um(k) / 2 == pytest.approx(plan.origin[1] * s0)


def test_full_resolution_shards_bound_memory(lsstcam):
    plan = make_plan(lsstcam, 1)
    assert plan.shape[0] > 60000 and plan.shape[1] > 60000
    for lv in plan.levels:
        assert lv.shards[0] * lv.shards[1] * 4 <= 32 * 2**20


def test_amp_boxes_tile_the_detector(lsstcam):
    plan = make_plan(lsstcam, 8)
    for p in plan.placements:
        area = sum((b[1] - b[0]) * (b[3] - b[2]) for b in p.amp_boxes.values())
        h, w = p.box[1] - p.box[0], p.box[3] - p.box[2]
        assert h * w <= area <= h * w + 16 * (h + w)  # ceil at amp edges may overlap by a pixel
        for b in p.amp_boxes.values():
            assert p.box[0] <= b[0] < b[1] <= p.box[1] and p.box[2] <= b[2] < b[3] <= p.box[3]


def test_bad_arguments(lsstcam):
    with pytest.raises(ValueError, match="binning"):
        make_plan(lsstcam, 0)
    with pytest.raises(ValueError, match="even"):
        make_plan(lsstcam, 8, chunk=255)
    with pytest.raises(ValueError, match="multiple"):
        make_plan(lsstcam, 8, chunk=256, shard=(300, 512))
