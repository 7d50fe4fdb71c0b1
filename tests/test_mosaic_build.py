"""Mosaic builds against an independent numpy assembly; OME metadata; restart; bad inputs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.errors import InputError, MixedCamerasError
from cpmosaic.mosaic import build_mosaic, open_mosaic

SHRINK = 32


def det_image(det) -> np.ndarray:
    """Distinctive content: id*1000 + x + 10*y (orientation errors show)."""
    h, w = det.shape
    y, x = np.mgrid[0:h, 0:w]
    return (det.id * 1000 + x + 10 * y).astype(np.float32)


def write_detector(path: Path, det, image=None, instrument: str = "LSSTCam") -> Path:
    image = det_image(det) if image is None else image
    hdr = fits.Header({"DETNAME": det.name, "INSTRUME": instrument})
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(image, name="IMAGE")]).writeto(path)
    return path


def reference_mosaic(cam, binning: int, present=None) -> np.ndarray:
    """Plain numpy: reshape-mean binning, np.rot90(a, -q), placement from the formula."""
    s = cam.detectors[0].pixel_size_mm * binning
    corner = {d.id: d.box_corners_mm(d.bbox) for d in cam}
    gx = min(math.floor(c[:, 0].min() / s + 0.5) for c in corner.values())
    gy = min(math.floor(c[:, 1].min() / s + 0.5) for c in corner.values())
    placed = []
    for det in cam:
        h, w = det.shape
        bh, bw = -(-h // binning), -(-w // binning)
        pad = np.full((bh * binning, bw * binning), np.nan)
        pad[:h, :w] = det_image(det)
        with np.errstate(invalid="ignore"):
            binned = np.nanmean(pad.reshape(bh, binning, bw, binning), axis=(1, 3)).astype(np.float32)
        r = np.rot90(binned, -det.n_quarter)
        y0 = math.floor(corner[det.id][:, 1].min() / s + 0.5) - gy
        x0 = math.floor(corner[det.id][:, 0].min() / s + 0.5) - gx
        placed.append((det.id, y0, x0, r))
    shape = (max(y0 + r.shape[0] for _, y0, _, r in placed), max(x0 + r.shape[1] for _, _, x0, r in placed))
    out = np.full(shape, np.nan, np.float32)
    for det_id, y0, x0, r in placed:
        if present is None or det_id in present:
            out[y0:y0 + r.shape[0], x0:x0 + r.shape[1]] = r
    return out


def reduce2(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    pad = np.full((-(-h // 2) * 2, -(-w // 2) * 2), np.nan)
    pad[:h, :w] = a
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        return np.nanmean(pad.reshape(pad.shape[0] // 2, 2, pad.shape[1] // 2, 2), axis=(1, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def camera():
    return shrink_camera(get_camera("LSSTCam"), SHRINK)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, camera) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    for det in camera:
        (d / det.raft).mkdir(exist_ok=True)
        write_detector(d / det.raft / f"img_{det.name}.fits", det)
    return d


@pytest.fixture(scope="module")
def built(tmp_path_factory, inputs, camera):
    """Binning 3 (partial blocks at the edges of every detector), small chunks and shards."""
    store = tmp_path_factory.mktemp("built") / "m.zarr"
    report = build_mosaic([inputs], store, camera=camera, binning=3, chunk=32, shard=(64, 128), progress=False)
    return store, report


def assert_same_store(a, b) -> None:
    ma, mb = open_mosaic(a), open_mosaic(b)
    assert ma.n_levels == mb.n_levels
    for k in range(ma.n_levels):
        assert np.array_equal(ma.read(k), mb.read(k), equal_nan=True), f"level {k} differs"
    assert ma.attrs.pop("build_id") != mb.attrs.pop("build_id")  # each store its own build
    assert ma.attrs == mb.attrs
    assert ma.ome == mb.ome


def test_level0_matches_numpy_assembly(built, camera):
    store, report = built
    assert not report.partial and report.detectors == 205
    m = open_mosaic(store)
    ref = reference_mosaic(camera, 3)
    got = m.read(0)
    assert got.shape == ref.shape
    assert np.array_equal(got, ref, equal_nan=True)
    assert np.isnan(got).any() and not np.isnan(got).all()


def test_full_resolution_matches_numpy_assembly(inputs, camera, tmp_path):
    report = build_mosaic([inputs], tmp_path / "b1.zarr", camera=camera, binning=1, chunk=64, progress=False)
    got = open_mosaic(tmp_path / "b1.zarr").read(0)
    assert np.array_equal(got, reference_mosaic(camera, 1), equal_nan=True)
    # one task per shard that any detector touches
    assert 0 < report.shards_written <= sum(lv.n_shards[0] * lv.n_shards[1] for lv in report.plan.levels)


def test_banded_reads_give_the_same_mosaic(inputs, camera, built, tmp_path, monkeypatch):
    """Detector rows read a few blocks at a time (as real-size detectors are) land in the same places."""
    from cpmosaic.mosaic import tasks

    monkeypatch.setattr(tasks, "READ_BAND_BYTES", 4 * 128 * 7)  # 6-row bands at binning 3, 1-chunk pyramid pieces
    build_mosaic([inputs], tmp_path / "m.zarr", camera=camera, binning=3, chunk=32, shard=(64, 128), progress=False)
    a, b = open_mosaic(tmp_path / "m.zarr"), open_mosaic(built[0])
    for k in range(a.n_levels):
        assert np.array_equal(a.read(k), b.read(k), equal_nan=True), k


def test_pyramid_levels_are_2x2_means(built):
    m = open_mosaic(built[0])
    assert m.n_levels >= 4
    for k in range(1, m.n_levels):
        ref, got = reduce2(m.read(k - 1)), m.read(k)
        assert got.shape == ref.shape
        assert np.array_equal(np.isnan(got), np.isnan(ref))
        np.testing.assert_allclose(got, ref, rtol=1e-6, equal_nan=True)
    last = m.levels[-1]
    assert last.shape[0] <= last.chunks[0] and last.shape[1] <= last.chunks[1]


def test_store_layout_and_api(built, camera):
    m = open_mosaic(built[0])
    assert m.camera == "LSSTCam" and m.binning == 3 and m.complete
    assert [m.level_scale(k) for k in range(3)] == [3, 6, 12]
    for k, arr in enumerate(m.levels):
        assert arr.dtype == np.float32
        assert tuple(arr.metadata.dimension_names) == ("y", "x")
        assert arr.chunks == (32, 32) and arr.shards[0] % 32 == 0
    xmin, xmax, ymin, ymax = m.extent_mm(0)
    cxmin, cxmax, cymin, cymax = camera.extent_mm
    px = camera.detectors[0].pixel_size_mm * 3
    assert abs(xmin - cxmin) <= px and abs(xmax - cxmax) <= px and abs(ymin - cymin) <= px
    assert len(m.placements) == 205 and m.missing == [] and len(m.present) == 205
    p = m.placements["R22_S11"]
    assert m.read(0, *p.box).shape == (p.box[1] - p.box[0], p.box[3] - p.box[2])
    lo, hi = m.window(0)
    assert 0 < lo < hi
    np.testing.assert_array_equal(m.to_dask(1).compute(), m.read(1))
    assert len(m.inputs) == 205 and m.inputs[0]["path"].endswith(".fits")
    attrs = m.group.attrs.asdict()
    assert attrs["ome"]["omero"]["channels"][0]["window"]["start"] == pytest.approx(lo)


def test_metadata_maps_pixels_to_the_focal_plane(inputs, camera, tmp_path):
    """From the OME transforms alone, a detector pixel's true focal-plane position
    lands on the output pixel holding that pixel's value (b = 1; corner rafts too)."""
    import zarr

    build_mosaic([inputs], tmp_path / "m.zarr", camera=camera, binning=1, chunk=64, progress=False)
    group = zarr.open_group(tmp_path / "m.zarr", mode="r")
    ome = group.attrs["ome"]
    ds0 = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    scale, trans = ds0[0]["scale"], ds0[1]["translation"]
    data = group["0"][:]
    names = ["R22_S11", "R01_S00", "R43_S22", "R00_SG0", "R04_SG1", "R40_SW0", "R44_SW1", "R00_SG1"]
    assert {camera[n].n_quarter for n in names} == {0, 1, 2, 3}
    for name in names:
        det = camera[name]
        h, w = det.shape
        for x, y in [(w // 4, h // 4), (3 * w // 4, h // 3), (w // 2, 3 * h // 4)]:
            fx, fy = det.pixel_to_focal_plane(x, y)
            fi, fj = (fy * 1000 - trans[0]) / scale[0], (fx * 1000 - trans[1]) / scale[1]
            i, j = round(fi), round(fj)
            win = data[i - 2:i + 3, j - 2:j + 3]
            hits = np.argwhere(win == det.id * 1000 + x + 10 * y)
            assert len(hits) == 1, (name, x, y)
            ii, jj = hits[0] + (i - 2, j - 2)
            assert abs(ii - fi) <= 0.5 + 1e-6 and abs(jj - fj) <= 0.5 + 1e-6, (name, ii - fi, jj - fj)


def test_ome_zarr_readers_accept_the_store(built):
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05 import Image

    store = built[0]
    image = Image.from_zarr(zarr.open_group(store, mode="r"))
    ms = image.attributes.ome.multiscales[0]
    assert [d.path for d in ms.datasets] == [str(k) for k in range(len(ms.datasets))]
    assert [a.name for a in ms.axes] == ["y", "x"]
    nodes = list(Reader(parse_url(str(store)))())
    assert nodes and len(nodes[0].data) == len(ms.datasets)
    np.testing.assert_array_equal(np.asarray(nodes[0].data[-1]), open_mosaic(store).read(len(ms.datasets) - 1))


def test_memory_url_and_refusals(inputs, camera, built):
    url = "memory://cpmosaic-test/m.zarr"
    build_mosaic([inputs], url, camera=camera, binning=3, chunk=32, shard=(64, 128), progress=False)
    np.testing.assert_array_equal(open_mosaic(url).read(0), open_mosaic(built[0]).read(0))
    with pytest.raises(InputError, match="already exists"):
        build_mosaic([inputs], url, camera=camera, binning=3, chunk=32, progress=False)
    with pytest.raises(InputError, match="different"):
        build_mosaic([inputs], url, camera=camera, binning=2, chunk=32, resume=True, progress=False)
    again = build_mosaic([inputs], url, camera=camera, binning=3, chunk=32, shard=(64, 128), resume=True,
                         progress=False)
    assert again.shards_written == 0 and again.shards_skipped > 0


def test_empty_and_mixed_inputs(tmp_path, camera):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no input"):
        build_mosaic([tmp_path / "empty"], tmp_path / "e.zarr", camera=camera, progress=False)
    with pytest.raises(InputError, match="no usable"):
        build_mosaic([tmp_path / "nothing.fits"], tmp_path / "e.zarr", camera=camera, progress=False)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_detector(mixed / "a.fits", camera["R22_S11"])
    comcam = get_camera("LSSTComCam")
    write_detector(mixed / "b.fits", comcam["R22_S11"], np.zeros(comcam["R22_S11"].shape, np.float32),
                   instrument="LSSTComCam")
    with pytest.raises(MixedCamerasError, match=r"LSSTComCam.*b\.fits") as err:
        build_mosaic([mixed], tmp_path / "x.zarr", progress=False)
    assert "a.fits" in str(err.value)
    assert not (tmp_path / "x.zarr").exists()


def test_bad_detector_files(inputs, camera, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    names = ["R22_S11", "R22_S12", "R00_SG0", "R10_S01"]
    for n in names:
        write_detector(d / f"img_{n}.fits", camera[n])
    raw = (d / "img_R22_S12.fits").read_bytes()
    (d / "img_R22_S12.fits").write_bytes(raw[: len(raw) - 8000])  # truncated
    (d / "img_R10_S01.fits").write_bytes(b"not a fits file" * 100)
    report = build_mosaic([d], tmp_path / "m.zarr", camera=camera, binning=2, chunk=32, progress=False)
    assert report.partial and len(report.bad_inputs) == 2
    m = open_mosaic(tmp_path / "m.zarr")
    missing = {x["name"]: x for x in m.missing}
    assert "truncated" in missing["R22_S12"]["reason"] and missing["R22_S12"]["path"].endswith("R22_S12.fits")
    assert "R10_S01" in missing and missing["R10_S01"]["reason"] != "no input"
    assert missing["R22_S22"]["reason"] == "no input"
    assert sorted(m.present) == ["R00_SG0", "R22_S11"]
    ref = reference_mosaic(camera, 2, present={camera["R22_S11"].id, camera["R00_SG0"].id})
    assert np.array_equal(m.read(0), ref, equal_nan=True)


def test_read_failure_during_build_leaves_detector_empty(inputs, camera, tmp_path, monkeypatch):
    """A file that identifies but fails to read part-way: the detector ends NaN everywhere."""
    from cpmosaic.io import fits_processed

    bad = str(inputs / "R22" / "img_R22_S11.fits")
    real = fits_processed.ImageExposure.read_stored  # what the builder reads through
    calls = {"n": 0}

    def flaky(self, rows=None, out=None):
        if str(self.info.path) == bad:
            calls["n"] += 1
            if calls["n"] > 1:  # the first shard's rows read fine, later ones fail
                raise OSError("disk error")
        return real(self, rows, out)

    monkeypatch.setattr(fits_processed.ImageExposure, "read_stored", flaky)
    files = [inputs / "R22" / f"img_{n}.fits" for n in ("R22_S11", "R22_S10", "R22_S12")]
    report = build_mosaic(files, tmp_path / "m.zarr", camera=camera, binning=1, chunk=32, shard=(64, 1024),
                          progress=False, num_workers=1)
    assert report.partial and [f["name"] for f in report.failed] == ["R22_S11"]
    m = open_mosaic(tmp_path / "m.zarr")
    assert "disk error" in {x["name"]: x for x in m.missing}["R22_S11"]["reason"]
    ref = reference_mosaic(camera, 1, present={camera["R22_S10"].id, camera["R22_S12"].id})
    for k in range(m.n_levels):
        assert np.array_equal(m.read(k), ref, equal_nan=True), k
        ref = reduce2(ref) if k + 1 < m.n_levels else ref


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from cpmosaic.camera import get_camera, shrink_camera
    from cpmosaic.mosaic import build, tasks
    real = tasks.write_marker
    def slow(*a, **k):
        real(*a, **k)
        time.sleep(0.15)
    tasks.write_marker = slow
    cam = shrink_camera(get_camera("LSSTCam"), {shrink})
    build.build_mosaic([sys.argv[1]], sys.argv[2], camera=cam, binning=3, chunk=32, shard=(64, 128),
                       num_workers=1, progress=False)
""")


def test_resume_after_sigkill_is_identical(inputs, camera, built, tmp_path):
    store = tmp_path / "killed.zarr"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(shrink=SHRINK), str(inputs), str(store)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    done_dir = store / "0" / "done"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if done_dir.is_dir() and len(list(done_dir.iterdir())) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list(done_dir.iterdir()))
    total = len(list((built[0] / "0" / "done").iterdir()))
    assert 5 <= n_done < total
    assert open_mosaic(store).complete is False
    report = build_mosaic([inputs], store, camera=camera, binning=3, chunk=32, shard=(64, 128), resume=True,
                          progress=False)
    assert report.shards_skipped >= n_done
    assert_same_store(store, built[0])
    build_id = open_mosaic(store).attrs["build_id"]
    for level in (0, 1):
        for f in sorted((built[0] / str(level) / "done").iterdir()):
            ours = json.loads((store / str(level) / "done" / f.name).read_text())
            assert ours.pop("build_id") == build_id  # markers of both runs carry the store's build id
            ref = json.loads(f.read_text())
            ref.pop("build_id")
            assert ours == ref


def test_allocator_helpers_hand_memory_back() -> None:
    # glibc only: arena pages freed by another thread go back to the system
    import sys
    import threading

    from cpmosaic.mosaic import _memory

    _memory.use_mmap_for_big_blocks()
    _memory.use_mmap_for_big_blocks()  # once per process; a second call is a no-op
    if not sys.platform.startswith("linux") or not _memory._glibc():
        pytest.skip("needs glibc")

    def anon() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))

    keep = []

    def churn() -> None:  # 80 MB of small (arena) blocks, all but the last freed
        blocks = [np.ones(200_000 // 8) for _ in range(400)]
        keep.append(blocks[-1])
        for b in blocks:
            b[:] = 2.0
        del blocks

    t = threading.Thread(target=churn)
    t.start()
    t.join()
    before = anon()
    _memory.release_free_memory()
    assert anon() < before - 40 * 2**20
