"""``export_tiles`` internals: the band reader returns the store's values, and the thread pool,
one thread and dask write the same files (the server's tiles; the CLI test in
test_serve_http compares them with a live server byte for byte)."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
from test_serve import RAFTS, SHRINK, make_store, write_detector  # noqa: F401  (the same fixture data)

from cpmosaic.mosaic import open_mosaic
from cpmosaic.serve import tiles
from cpmosaic.serve.export import BandReader, ShardRows, export_tiles


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory)


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("fast", [True, False])
def test_band_reader_is_read_padded(store, keep, fast):
    m = open_mosaic(store)
    rng = np.random.default_rng(2)
    for k in range(m.n_levels):
        h, w = m.shape(k)
        r = BandReader(m, keep_level=k if keep else None, max_bands=2)
        # the store's layout (local, sharded, blosc) is the one the shard-file path reads
        assert all(f is not None for f in r.fast)
        if not fast:
            r.fast = [None] * m.n_levels  # through zarr
        boxes = [(0, h, 0, w), (-5, 3, -2, w + 4), (h - 3, h + 9, 1, 5), (h + 1, h + 4, 0, w)]
        boxes += [tuple(sorted(rng.integers(-10, h + 10, 2))) + tuple(sorted(rng.integers(-10, w + 10, 2)))
                  for _ in range(20)]
        for i0, i1, j0, j1 in boxes:
            np.testing.assert_array_equal(r.read(k, i0, i1, j0, j1), tiles.read_padded(m, k, i0, i1, j0, j1))


def test_thread_pool_one_thread_and_dask_write_the_same_files(store, tmp_path):
    style = tiles.parse_style({"stretch": ["asinh"], "colormap_name": ["viridis"]})
    outs = []
    for i, kw in enumerate(({"workers": 3}, {"workers": 1}, {"workers": 2, "use_dask": True})):
        res = export_tiles(str(store), tmp_path / str(i), "dzi", style, **kw)
        assert res["tiles"] > 0
        outs.append(tmp_path / str(i))
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert len(files) == sum(1 for p in outs[1].rglob("*") if p.is_file())
    for other in outs[1:]:
        match, mismatch, errors = filecmp.cmpfiles(outs[0], other, [str(f) for f in files], shallow=False)
        assert not mismatch and not errors


def test_shard_rows_equal_zarr_with_empty_chunks_and_ragged_edges(tmp_path):
    """A level with never-written chunks and shards, edges not on chunk or shard boundaries."""
    import zarr
    from zarr.codecs import BloscCodec, BytesCodec

    a = zarr.create_array(str(tmp_path / "l.zarr"), shape=(300, 201), dtype="float32", chunks=(32, 48),
                          shards=(64, 96), fill_value=float("nan"),
                          serializer=BytesCodec(endian="little"), compressors=[BloscCodec(cname="lz4")])
    rng = np.random.default_rng(4)
    a[0:100, 0:150] = rng.normal(size=(100, 150)).astype(np.float32)
    a[250:300, 190:201] = 7.0
    fast = ShardRows.for_level(a)
    assert fast is not None
    got = np.concatenate([fast.read(r) for r in range(-(-300 // 64))])
    np.testing.assert_array_equal(got, a[:])


def test_shard_rows_decline_other_layouts(tmp_path):
    import zarr

    a = zarr.create_array(str(tmp_path / "plain.zarr"), shape=(10, 10), dtype="float32", chunks=(5, 5))
    assert ShardRows.for_level(a) is None  # not sharded: read through zarr


@pytest.mark.parametrize("damage", ["index", "offset", "truncated"])
def test_shard_rows_refuse_a_damaged_shard_naming_its_file(tmp_path, damage):
    """The shard-file path checks what zarr checks: the index's CRC32C (and chunks inside the file)."""
    import google_crc32c
    import zarr
    from zarr.codecs import BloscCodec, BytesCodec

    a = zarr.create_array(str(tmp_path / "l.zarr"), shape=(64, 96), dtype="float32", chunks=(32, 48),
                          shards=(64, 96), fill_value=float("nan"),
                          serializer=BytesCodec(endian="little"), compressors=[BloscCodec(cname="lz4")])
    a[:] = np.arange(64 * 96, dtype=np.float32).reshape(64, 96)
    fast = ShardRows.for_level(a)
    assert fast is not None
    np.testing.assert_array_equal(fast.read(0), a[:])
    shard = tmp_path / "l.zarr" / "c" / "0" / "0"
    blob = bytearray(shard.read_bytes())
    n = 4  # 2 x 2 chunks of 32 x 48 in the shard: the index is 16 bytes per chunk, then its CRC32C
    if damage == "index":
        blob[-16 * n - 4] ^= 0xFF  # the first chunk's offset, checksum left as it was
    elif damage == "offset":  # a consistent index (new checksum) that points past the chunk bytes
        index = np.frombuffer(bytes(blob[-16 * n - 4:-4]), "<u8").copy()
        index[0] = len(blob)
        blob[-16 * n - 4:-4] = index.tobytes()
        blob[-4:] = google_crc32c.value(index.tobytes()).to_bytes(4, "little")
    else:
        blob = blob[:10]
    shard.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=str(shard)):
        fast.read(0)
    if damage == "index":  # zarr refuses the same file on its own path, for the same reason
        with pytest.raises(ValueError):
            a[:]
