"""Shards written straight to disk read back through zarr as zarr's own writes do."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from cpmosaic.mosaic.shardio import shard_writer
from cpmosaic.mosaic.store import parse_compressor


def make_pair(tmp_path, compressor: str, shape=(200, 300), shards=(64, 128), chunks=(32, 32)):
    arrays = []
    for name in ("zarr", "direct"):
        arrays.append(zarr.create_array(tmp_path / f"{name}.zarr", shape=shape, dtype="float32", chunks=chunks,
                                        shards=shards, compressors=parse_compressor(compressor),
                                        fill_value=np.nan, zarr_format=3))
    return arrays


@pytest.mark.parametrize("compressor", ["blosc-lz4", "blosc-lz4-bitshuffle", "blosc-zstd", "zstd-3", "none"])
def test_direct_shards_read_back_like_zarr_writes(tmp_path, rng, compressor):
    by_zarr, direct = make_pair(tmp_path, compressor)
    writer = shard_writer(direct)
    assert writer is not None
    sh, sw = 64, 128
    for i in range(-(-200 // sh)):
        for j in range(-(-300 // sw)):
            box = (i * sh, min((i + 1) * sh, 200), j * sw, min((j + 1) * sw, 300))
            data = rng.normal(100, 5, (box[1] - box[0], box[3] - box[2])).astype(np.float32)
            data[:8, :] = np.nan                     # a row of empty chunks
            data[10:14, 3:40] = np.nan                # NaN inside a chunk with data
            if (i, j) == (1, 1):
                data[:] = np.nan                      # a whole shard without data
            region = box if (i + j) % 2 else (box[0], box[1], box[2], min(box[3], box[2] + 64))
            part = data[:region[1] - region[0], :region[3] - region[2]]
            by_zarr[region[0]:region[1], region[2]:region[3]] = part
            writer.write(i, j, region, part)
    a = np.asarray(zarr.open_array(tmp_path / "zarr.zarr", mode="r")[:])
    b = np.asarray(zarr.open_array(tmp_path / "direct.zarr", mode="r")[:])
    assert np.array_equal(a, b, equal_nan=True)
    files = sorted(p.relative_to(tmp_path / "zarr.zarr") for p in (tmp_path / "zarr.zarr").rglob("c/*/*"))
    assert files == sorted(p.relative_to(tmp_path / "direct.zarr") for p in (tmp_path / "direct.zarr").rglob("c/*/*"))
    assert "c/1/1" not in {str(f) for f in files}  # an all-NaN shard is not stored
    # same chunks stored, same encoded sizes (chunk order inside a shard may differ)
    for f in files:
        za, zb = (tmp_path / "zarr.zarr" / f).read_bytes(), (tmp_path / "direct.zarr" / f).read_bytes()
        assert len(za) == len(zb), f


def test_other_layouts_go_through_zarr(tmp_path):
    a = zarr.create_array(tmp_path / "plain.zarr", shape=(64, 64), dtype="float32", chunks=(32, 32),
                          fill_value=np.nan, zarr_format=3)  # not sharded
    assert shard_writer(a) is None
    b = zarr.create_array(tmp_path / "f64.zarr", shape=(64, 64), dtype="float64", chunks=(32, 32),
                          shards=(64, 64), fill_value=np.nan, zarr_format=3)
    assert shard_writer(b) is None
    mem = zarr.create_array(zarr.storage.MemoryStore(), shape=(64, 64), dtype="float32", chunks=(32, 32),
                            shards=(64, 64), fill_value=np.nan, zarr_format=3)
    assert shard_writer(mem) is None


def test_build_is_the_same_with_and_without_direct_shards(tmp_path, monkeypatch):
    from astropy.io import fits

    from cpmosaic.camera import get_camera, shrink_camera
    from cpmosaic.mosaic import build_mosaic, open_mosaic, tasks

    cam = shrink_camera(get_camera("LSSTCam"), 32)
    (tmp_path / "in").mkdir()
    for name in ("R22_S11", "R22_S12", "R00_SG0", "R44_SW1"):
        det = cam[name]
        y, x = np.mgrid[0:det.height, 0:det.width]
        hdr = fits.Header({"DETNAME": det.name, "INSTRUME": "LSSTCam"})
        fits.HDUList([fits.PrimaryHDU(header=hdr),
                      fits.ImageHDU((det.id + 0.5 * x + y).astype(np.float32), name="IMAGE")]).writeto(
            tmp_path / "in" / f"{name}.fits")
    kw = dict(camera=cam, binning=1, chunk=64, shard=(128, 512), progress=False)
    build_mosaic([tmp_path / "in"], tmp_path / "direct.zarr", **kw)
    monkeypatch.setattr(tasks, "USE_SHARD_WRITER", False)
    build_mosaic([tmp_path / "in"], tmp_path / "zarr.zarr", **kw)
    a, b = open_mosaic(tmp_path / "direct.zarr"), open_mosaic(tmp_path / "zarr.zarr")
    for k in range(a.n_levels):
        assert np.array_equal(a.read(k), b.read(k), equal_nan=True), k
    assert a.attrs["windows"] == b.attrs["windows"]
