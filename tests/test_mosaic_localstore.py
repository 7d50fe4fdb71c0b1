"""Local stores written without zarr: zarr's own documents, readable by zarr, ome-zarr-py and
napari-ome-zarr, the same pixels as a build through zarr (memory://), and no zarr imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cpmosaic.mosaic import build_mosaic, open_mosaic
from cpmosaic.mosaic.localstore import LocalGroup, LocalLevel, level_document
from cpmosaic.mosaic.store import COMPRESSORS, compressor_codecs, parse_compressor
from test_mosaic_build import assert_same_store, camera, inputs  # noqa: F401 - fixtures

SRC = str(Path(__file__).resolve().parents[1] / "src")
NAMES = [c.replace("LEVEL", "7") for c in COMPRESSORS]


@pytest.mark.parametrize("name", NAMES)
def test_level_documents_are_the_ones_zarr_writes(tmp_path, name):
    zarr = pytest.importorskip("zarr")
    a = zarr.create_array(str(tmp_path / "z"), shape=(1000, 700), dtype="float32", chunks=(64, 32),
                          shards=(128, 256), compressors=parse_compressor(name), fill_value=np.nan,
                          dimension_names=("y", "x"), zarr_format=3)
    del a
    theirs = json.loads((tmp_path / "z" / "zarr.json").read_text())
    assert level_document((1000, 700), (128, 256), (64, 32), compressor_codecs(name)) == theirs


def test_local_level_and_group_read_zarrs_metadata(tmp_path):
    zarr = pytest.importorskip("zarr")
    g = zarr.open_group(str(tmp_path / "g"), mode="w", zarr_format=3, attributes={"cpmosaic": {"k": 1}})
    g.create_array("0", shape=(300, 200), dtype="float32", chunks=(32, 16), shards=(64, 64), fill_value=np.nan)
    assert LocalGroup.exists(str(tmp_path / "g")) and not LocalGroup.exists(str(tmp_path / "g" / "0"))
    assert LocalGroup(str(tmp_path / "g")).attrs.asdict() == {"cpmosaic": {"k": 1}}
    lv = LocalLevel(str(tmp_path / "g"), 0)
    assert (lv.shape, lv.shards, lv.chunks) == ((300, 200), (64, 64), (32, 16))
    lv[10:20, 5:7] = np.float32(3)  # through a zarr array opened on first use
    assert np.asarray(zarr.open_array(str(tmp_path / "g"), path="0")[10:20, 5:7]).tolist() == [[3.0, 3.0]] * 10
    with pytest.raises(FileNotFoundError, match="not a level array"):
        LocalLevel(str(tmp_path / "g"), 1)


@pytest.mark.parametrize("compressor", ["blosc-lz4-bitshuffle", "zstd-3", "none"])
def test_local_build_equals_a_build_through_zarr(inputs, camera, tmp_path, compressor):  # noqa: F811
    kw = dict(camera=camera, binning=4, chunk=32, shard=(64, 128), compressor=compressor, progress=False)
    local = tmp_path / "local.zarr"
    build_mosaic([inputs], local, **kw)
    url = f"memory://cpmosaic-localstore/{compressor}.zarr"
    build_mosaic([inputs], url, **kw)
    a, b = open_mosaic(local), open_mosaic(url)
    assert a.n_levels == b.n_levels > 1
    for k in range(a.n_levels):
        assert np.array_equal(a.read(k), b.read(k), equal_nan=True)
    assert a.attrs["windows"] == b.attrs["windows"] and a.attrs["complete"] is True
    zarr = pytest.importorskip("zarr")
    for k in range(a.n_levels):  # the same array metadata, as zarr reads it
        za, zb = zarr.open_array(str(local), path=str(k), mode="r"), zarr.open_array(url, path=str(k), mode="r")
        assert (za.shape, za.chunks, za.shards, za.compressors, za.metadata.dimension_names) == \
            (zb.shape, zb.chunks, zb.shards, zb.compressors, zb.metadata.dimension_names)
        assert np.isnan(za.fill_value) and za.dtype == np.float32


def test_readers_open_a_local_build(inputs, camera, tmp_path):  # noqa: F811
    zarr = pytest.importorskip("zarr")
    store = tmp_path / "m.zarr"
    build_mosaic([inputs], store, camera=camera, binning=4, chunk=32, shard=(64, 128), progress=False)
    m = open_mosaic(store)
    g = zarr.open_group(str(store), mode="r")
    assert g.attrs["cpmosaic"]["complete"] is True
    for k in range(m.n_levels):
        np.testing.assert_array_equal(np.asarray(g[str(k)][:]), m.read(k))
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    nodes = list(Reader(parse_url(str(store)))())
    assert [tuple(d.shape) for d in nodes[0].data] == [m.shape(k) for k in range(m.n_levels)]
    np.testing.assert_array_equal(np.asarray(nodes[0].data[1]), m.read(1))
    napari_ome_zarr = pytest.importorskip("napari_ome_zarr")
    reader = napari_ome_zarr.napari_get_reader(str(store))
    assert reader is not None
    layers = reader(str(store))
    data = layers[0][0]
    assert [tuple(d.shape) for d in data] == [m.shape(k) for k in range(m.n_levels)]
    np.testing.assert_array_equal(np.asarray(data[-1]), m.read(m.n_levels - 1))


def test_resume_and_overwrite_of_a_local_store(inputs, camera, tmp_path):  # noqa: F811
    kw = dict(camera=camera, binning=4, chunk=32, shard=(64, 128), progress=False)
    store = tmp_path / "m.zarr"
    build_mosaic([inputs], store, **kw)
    # a kill after some shards: drop the markers (and shards) of level 0's second half and level 1+
    for k in range(1, open_mosaic(store).n_levels):
        for f in (store / str(k) / "done").iterdir():
            f.unlink()
    again = build_mosaic([inputs], store, resume=True, **kw)
    assert again.shards_skipped > 0 and again.shards_written > 0
    other = tmp_path / "ref.zarr"
    build_mosaic([inputs], other, **kw)
    assert_same_store(store, other)
    (store / "stray-file").write_text("x")
    build_mosaic([inputs], store, overwrite=True, **kw)
    assert not (store / "stray-file").exists()
    assert_same_store(store, other)


def test_a_local_build_imports_neither_zarr_nor_dask(inputs, camera, tmp_path):  # noqa: F811
    from cpmosaic.camera import write_camera_json

    write_camera_json(camera, tmp_path / "cam.json")
    code = ("from cpmosaic.cli.main import main\n"
            f"assert main(['-q', 'mosaic', {str(inputs)!r}, '-o', {str(tmp_path / 'm.zarr')!r}, '--camera', "
            f"{str(tmp_path / 'cam.json')!r}, '--binning', '4', '--no-progress']) == 0\n"
            "import sys; print(' '.join(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": SRC})
    assert r.returncode == 0, r.stderr
    mods = set(r.stdout.split())
    assert "cpmosaic.mosaic.tasks" in mods and "numba" in mods  # it did build
    assert not {m for m in mods if m.split(".")[0] in ("zarr", "dask", "distributed", "astropy", "fsspec")}
    assert open_mosaic(tmp_path / "m.zarr").attrs["complete"] is True


def test_empty_folder_keeps_the_folder_and_deletes_in_the_background(tmp_path):
    from cpmosaic.mosaic.localstore import empty_folder, wait_for_deletions

    real = tmp_path / "real.zarr"
    (real / "0" / "c" / "1").mkdir(parents=True)
    (real / "0" / "c" / "1" / "2").write_bytes(b"x" * 100000)
    (real / "zarr.json").write_text("{}")
    link = tmp_path / "link.zarr"
    link.symlink_to(real, target_is_directory=True)
    stale = tmp_path / ".link.zarr.cpmosaic-trash-killedbuild"  # left by a killed build
    (stale / "0").mkdir(parents=True)
    empty_folder(str(link))
    assert link.is_symlink() and real.is_dir() and list(real.iterdir()) == []
    wait_for_deletions()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.zarr", "real.zarr"]
