"""The same build on a dask.distributed cluster (2 worker processes) gives an identical store."""

from __future__ import annotations

import numpy as np
import pytest

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.mosaic import build_mosaic, open_mosaic

pytest.importorskip("distributed")


def _write_inputs(d, camera) -> None:
    from astropy.io import fits

    for det in camera:
        h, w = det.shape
        y, x = np.mgrid[0:h, 0:w]
        image = (det.id * 1000 + x + 10 * y).astype(np.float32)
        hdr = fits.Header({"DETNAME": det.name, "INSTRUME": "LSSTCam"})
        fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(image, name="IMAGE")]).writeto(d / f"{det.name}.fits")


@pytest.mark.slow
def test_local_cluster_build_is_identical(tmp_path):
    from distributed import Client, LocalCluster

    camera = shrink_camera(get_camera("LSSTCam"), 32)
    (tmp_path / "in").mkdir()
    _write_inputs(tmp_path / "in", camera)
    kw = dict(camera=camera, binning=2, chunk=32, shard=(64, 1024), progress=False)
    local = build_mosaic([tmp_path / "in"], tmp_path / "local.zarr", **kw)
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dist = build_mosaic([tmp_path / "in"], tmp_path / "dist.zarr", scheduler=client, **kw)
        # the scheduler address works too (the builder makes and closes its own client)
        by_address = build_mosaic([tmp_path / "in"], tmp_path / "addr.zarr", scheduler=cluster.scheduler_address,
                                  **kw)
        workers = client.run(lambda: 1)
    assert len(workers) == 2
    assert dist.shards_written == local.shards_written == by_address.shards_written
    a, b, c = (open_mosaic(tmp_path / n) for n in ("local.zarr", "dist.zarr", "addr.zarr"))
    for k in range(a.n_levels):
        ref = a.read(k)
        assert np.array_equal(b.read(k), ref, equal_nan=True), k
        assert np.array_equal(c.read(k), ref, equal_nan=True), k
    ids = {m.attrs.pop("build_id") for m in (a, b, c)}
    assert len(ids) == 3  # one build id per store
    assert a.attrs == b.attrs == c.attrs and a.ome == b.ome
