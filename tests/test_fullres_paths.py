"""The full-resolution fast paths (issue 13): each against an independent reference.

* ``bin_rotate_into`` unbinned, unturned or half-turned (a numpy byte-swapping
  copy): against ``reference.bin_rotate_into`` and bit for bit against the input.
* ``pyramid_reduce`` on native float32 (``kernels/halve.py``): against
  ``reference.pyramid_reduce`` and bit for bit against the general kernel.
* Shards: every stored chunk is the bytes numcodecs' own codec makes; files
  written with ``O_DIRECT`` hold exactly the bytes given.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr

from cpmosaic.kernels import bin_rotate_into, block_reduce, pyramid_reduce, reference
from cpmosaic.kernels.halve import halve_mean_into
from cpmosaic.mosaic import shardio
from cpmosaic.mosaic.shardio import ALIGN, shard_writer, write_file
from cpmosaic.mosaic.store import _QUANTILES, parse_compressor, shard_stats


@pytest.mark.parametrize("dtype", [">f4", "<f4"])
@pytest.mark.parametrize("n_quarter", [0, 2, -2, 4])
@pytest.mark.parametrize("oy,ox", [(0, 0), (-13, 20), (50, -40), (10, 300), (-400, 0), (279, 319)])
def test_unbinned_placement_is_a_bit_exact_copy(rng, dtype, n_quarter, oy, ox):
    img = rng.normal(100, 5, (300, 257)).astype(dtype)
    img[5, 7] = np.nan
    img.view(np.uint32)[9, 9] = np.uint32(0x7FC01234).astype(img.dtype.byteorder + "u4")  # a NaN with a payload
    got = np.full((280, 320), -1.0, np.float32)
    want = got.copy()
    bin_rotate_into(img, 1, n_quarter, got, oy, ox)
    reference.bin_rotate_into(img, 1, n_quarter, want, oy, ox, "mean")
    assert np.array_equal(got, want, equal_nan=True)
    # every placed pixel keeps its bits (NaN payloads too): the window of the turned input
    turned = np.ascontiguousarray(np.rot90(img.astype("<f4"), -n_quarter))
    y0, y1 = max(0, oy), min(280, oy + turned.shape[0])
    x0, x1 = max(0, ox), min(320, ox + turned.shape[1])
    if y0 < y1 and x0 < x1:
        assert np.array_equal(got[y0:y1, x0:x1].view(np.uint32),
                              turned[y0 - oy:y1 - oy, x0 - ox:x1 - ox].view(np.uint32))


def test_halve_hand_computed():
    img = np.array([[1, 2, np.nan, np.nan], [3, 6, np.nan, 5]], np.float32)
    out = np.full((1, 2), -1.0, np.float32)
    halve_mean_into(img, out)
    assert out.tolist() == [[3.0, 5.0]]
    assert np.isnan(pyramid_reduce(np.full((2, 2), np.nan, np.float32))).all()


@pytest.mark.parametrize("seed", range(6))
def test_pyramid_reduce_float32_matches_reference_and_general_kernel(seed):
    rng = np.random.default_rng(seed)
    for ny, nx in [(1, 1), (1, 7), (6, 1), (2, 2), (7, 9), (64, 65), (33, 20), (128, 256)]:
        img = rng.normal(rng.uniform(-1e3, 1e3), rng.uniform(0.01, 1e3), (ny, nx)).astype(np.float32)
        img[rng.random(img.shape) < rng.uniform(0, 0.9)] = np.nan
        for a in (img, img[:, ::-1], img[::-1]):  # strided views too
            got = pyramid_reduce(a)
            want = reference.pyramid_reduce(a)
            assert got.shape == want.shape == (-(-ny // 2), -(-nx // 2))
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)
            general = block_reduce(a, 2, "mean")  # float64 accumulators, the same order of sums
            assert np.array_equal(got.view(np.uint32), general.view(np.uint32))


def test_shard_stats_quantiles_are_numpys_of_the_sample(rng):
    data = rng.normal(50, 10, (512, 384)).astype(np.float32)
    data[:, :40] = np.nan
    s = shard_stats(data, max_sample=1000, stride=3)
    finite = data[::3, ::3]
    finite = finite[np.isfinite(finite)]
    sample = finite[:: finite.size // 1000].astype(np.float64)
    assert s["n"] == finite.size and s["min"] == finite.min() and s["max"] == finite.max()
    assert s["q"] == [float(v) for v in np.quantile(sample, _QUANTILES)]


def _stored_chunks(path, n):
    raw = path.read_bytes()
    index = np.frombuffer(raw[-(16 * n + 4):-4], "<u8").reshape(-1, 2)
    return [None if o == 2**64 - 1 else raw[int(o):int(o + m)] for o, m in index]


@pytest.mark.parametrize("compressor", ["blosc-lz4-bitshuffle", "blosc-lz4", "blosc-zstd", "zstd-3", "none"])
@pytest.mark.parametrize("direct_io", [True, False])
def test_stored_chunks_are_the_codecs_bytes(tmp_path, rng, monkeypatch, compressor, direct_io):
    from numcodecs import Blosc, Zstd

    monkeypatch.setattr(shardio, "USE_DIRECT_IO", direct_io)
    arr = zarr.create_array(tmp_path / "a.zarr", shape=(300, 512), dtype="float32", chunks=(64, 64),
                            shards=(128, 256), compressors=parse_compressor(compressor), fill_value=np.nan,
                            zarr_format=3)
    writer = shard_writer(arr)
    data = rng.normal(100, 5, (128, 256)).astype(np.float32)
    data[:64, :64] = np.nan  # an empty chunk: not stored
    writer.write(0, 1, (0, 128, 256, 512), data)
    edge = rng.normal(7, 1, (300 - 256, 200)).astype(np.float32)  # past the level's edge: NaN-padded
    writer.write(2, 0, (256, 300, 0, 200), edge)
    conf = arr.metadata.codecs[0].codecs[1:] if compressor != "none" else []
    codec = None
    if conf:
        c = conf[0].to_dict()["configuration"]
        codec = Zstd(level=c["level"]) if compressor.startswith("zstd") else \
            Blosc(cname=c["cname"], clevel=c["clevel"], shuffle={"shuffle": 1, "bitshuffle": 2}.get(c["shuffle"], 0),
                  blocksize=c["blocksize"])
    for (i, j), block, (h, w) in (((0, 1), data, (128, 256)), ((2, 0), edge, (44, 200))):
        stored = _stored_chunks(tmp_path / "a.zarr" / "c" / str(i) / str(j), 2 * 4)
        for a in range(2):
            for b in range(4):
                chunk = np.full((64, 64), np.nan, np.float32)
                part = block[a * 64:(a + 1) * 64, b * 64:(b + 1) * 64]
                chunk[:part.shape[0], :part.shape[1]] = part
                k = a * 4 + b
                if not np.isfinite(chunk).any():
                    assert stored[k] is None, (i, j, k)
                    continue
                assert stored[k] == (chunk.tobytes() if codec is None else bytes(codec.encode(chunk))), (i, j, k)
    back = np.asarray(zarr.open_array(tmp_path / "a.zarr", mode="r")[:])
    assert np.array_equal(back[:128, 256:], data, equal_nan=True)
    assert np.array_equal(back[256:, :200], edge, equal_nan=True)


def _takes_o_direct(folder) -> bool:
    """Whether the filesystem of ``folder`` takes an aligned ``O_DIRECT`` write (tmpfs does not)."""
    import mmap

    try:
        fd = os.open(folder / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except OSError:
        return False
    try:
        os.write(fd, mmap.mmap(-1, ALIGN))  # an anonymous map is page-aligned
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(folder / "probe")


@pytest.mark.parametrize("n", [1, ALIGN - 1, ALIGN, ALIGN + 1, 3 * ALIGN + 5, 2**20])
@pytest.mark.parametrize("direct", [True, False])
def test_write_file_holds_the_bytes(tmp_path, rng, n, direct):
    raw = np.empty(n + 2 * ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    data = raw[start:start + n]
    data[:] = rng.integers(0, 256, n, np.uint8)
    path = tmp_path / "f"
    used = write_file(str(path), data, direct=direct)
    assert path.read_bytes() == data.tobytes()
    assert used == (direct and n >= ALIGN and _takes_o_direct(tmp_path))
    unaligned = raw[start + 1:start + 1 + n]  # O_DIRECT needs an aligned address: written through the cache
    assert write_file(str(path), unaligned, direct=True) is False
    assert path.read_bytes() == unaligned.tobytes()
    assert os.path.getsize(path) == n



def test_background_write_hands_back_its_error_and_leaves_no_partial(tmp_path, rng):
    arr = zarr.create_array(tmp_path / "a.zarr", shape=(64, 64), dtype="float32", chunks=(32, 32), shards=(64, 64),
                            compressors=parse_compressor("blosc-lz4-bitshuffle"), fill_value=np.nan, zarr_format=3)
    writer = shard_writer(arr)
    data = rng.normal(0, 1, (64, 64)).astype(np.float32)
    done = writer.write(0, 0, (0, 64, 0, 64), data, background=True)
    done.result()
    assert np.array_equal(np.asarray(zarr.open_array(tmp_path / "a.zarr", mode="r")[:]), data)
    target = tmp_path / "a.zarr" / "c" / "0" / "0"
    target.unlink()
    target.mkdir()  # a folder where the shard goes: the rename fails in the IO thread
    (target / "x").write_bytes(b"")
    failed = writer.write(0, 0, (0, 64, 0, 64), data, background=True)
    with pytest.raises(OSError):
        failed.result()
    assert not list((tmp_path / "a.zarr" / "c" / "0").glob("*.partial"))


def test_background_writes_work_in_a_forked_child(tmp_path, rng):
    import multiprocessing

    arr = zarr.create_array(tmp_path / "a.zarr", shape=(64, 128), dtype="float32", chunks=(32, 32), shards=(64, 64),
                            compressors=parse_compressor("blosc-lz4-bitshuffle"), fill_value=np.nan, zarr_format=3)
    writer = shard_writer(arr)
    data = rng.normal(0, 1, (64, 64)).astype(np.float32)
    writer.write(0, 0, (0, 64, 0, 64), data, background=True).result()  # the parent's IO threads exist

    def child():
        shard_writer(arr).write(0, 1, (0, 64, 64, 128), data + 1, background=True).result(timeout=60)

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(90)
    assert proc.exitcode == 0
    back = np.asarray(zarr.open_array(tmp_path / "a.zarr", mode="r")[:])
    assert np.array_equal(back, np.hstack([data, data + 1]))
