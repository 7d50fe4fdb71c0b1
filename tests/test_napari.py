"""The README's napari recipes, in a real napari (Qt, OpenGL) under Xvfb: a store opened the
right way up (focal-plane +y up on screen, world = focal-plane micrometres, every pyramid level a
scale level), and the same store over HTTP from ``cpmosaic serve`` as ``http://HOST/NAME.zarr``.

Skipped where napari, napari-ome-zarr or Xvfb is missing, except on CI (``CI`` set), where
``.ci/setup`` installs them and a missing one fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.mosaic import build_mosaic, open_mosaic

#: Raft pitch of LSSTCam (obs_lsst): raft Rij is centred at x = (j - 2) * 127 mm,
#: y = (i - 2) * 127 mm, and sensor S11 at its raft's centre.
RAFT_MM = 127.0
#: Two detectors far apart in both axes, with the values they are written with.
BRIGHT = {"R43_S11": 1.0, "R01_S11": 0.5}


def expected_center_mm(name: str) -> tuple[float, float]:
    """Focal-plane (x, y) mm of detector ``Rij_S11`` by hand, from the raft grid."""
    i, j = int(name[1]), int(name[2])
    return ((j - 2) * RAFT_MM, (i - 2) * RAFT_MM)


def need(module: str):
    """Import *module*, skipping the test where it is missing (failing on CI)."""
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module)


@pytest.fixture(scope="module")
def display():
    """A private Xvfb display for this module's Qt application (napari draws with OpenGL)."""
    need("napari")
    need("napari_ome_zarr")
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        if os.environ.get("CI"):
            pytest.fail("Xvfb not installed (.ci/setup installs xvfb)")
        pytest.skip("Xvfb not installed")
    read, write = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    assert number, "Xvfb did not report a display"
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    yield os.environ["DISPLAY"]
    if old is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = old
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def readme_napari(display):
    """Run the README's napari recipe (its ``### napari`` code block, as printed) on a path, with
    a hidden viewer and no event loop; yields ``run(path) -> (viewer, layer)``."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("### napari", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    assert 'viewer = napari.Viewer()' in lines and "napari.run()" in lines
    assert sum(line.startswith("path = ") for line in lines) == 1
    viewers = []

    def run(path: str):
        code = "\n".join("viewer = napari.Viewer(show=False)" if line == "viewer = napari.Viewer()"
                         else f"path = {path!r}" if line.startswith("path = ")
                         else "" if line == "napari.run()" else line for line in lines)
        ns: dict = {}
        try:
            exec(compile(code, "README.md (napari)", "exec"), ns)
        finally:
            if "viewer" in ns:
                viewers.append(ns["viewer"])
        return ns["viewer"], ns["layer"]

    yield run
    for v in viewers:
        v.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A shrunk LSSTCam with only BRIGHT's detectors written (constant values), binning 2."""
    cam = shrink_camera(get_camera("LSSTCam"), 32)
    d = tmp_path_factory.mktemp("napari_in")
    for name, value in BRIGHT.items():
        hdr = fits.Header({"DETNAME": name, "INSTRUME": "LSSTCam"})
        image = np.full(cam[name].shape, value, np.float32)
        fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(image, name="IMAGE")]).writeto(d / f"{name}.fits")
    out = tmp_path_factory.mktemp("napari_store") / "visit.zarr"
    build_mosaic([d], out, camera=cam, binning=2, chunk=64, shard=(128, 128), progress=False)
    return out


def ome_levels(store: Path) -> list[dict]:
    """Each level's path, shape, scale and translation, read from the zarr metadata files."""
    ms = json.loads((store / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    out = []
    for ds in ms["datasets"]:
        t = {c["type"]: c for c in ds["coordinateTransformations"]}
        shape = json.loads((store / ds["path"] / "zarr.json").read_text())["shape"]
        out.append({"path": ds["path"], "shape": tuple(shape), "scale": t["scale"]["scale"],
                    "translation": t["translation"]["translation"]})
    return out


def canvas(viewer) -> np.ndarray:
    """The canvas as RGBA rows from the top.  A hidden viewer renders its canvas only once its
    window has been laid out and grabbed, so grab the window first, then fit the view."""
    viewer.screenshot(canvas_only=False, flash=False)
    viewer.reset_view()
    return viewer.screenshot(canvas_only=True, flash=False)


def test_readme_recipe_draws_focal_plane_y_up(readme_napari, store):
    viewer, layer = readme_napari(str(store))
    levels = ome_levels(store)
    # every level of the store is a scale level of the one layer, at the store's own pixel size
    assert layer.multiscale
    assert [tuple(d.shape) for d in layer.data] == [lv["shape"] for lv in levels]
    assert list(layer.scale) == levels[0]["scale"]
    # world coordinates are focal-plane micrometres: each detector's centre where the raft grid puts it
    m = open_mosaic(store)
    half_pixel_um = levels[0]["scale"][0] / 2
    for name in BRIGHT:
        box = m.placements[name].box  # (y0, y1, x0, x1) of level 0
        wy, wx = layer.data_to_world([(box[0] + box[1] - 1) / 2, (box[2] + box[3] - 1) / 2])
        ex, ey = expected_center_mm(name)
        assert abs(wx - ex * 1000) <= half_pixel_um + 1 and abs(wy - ey * 1000) <= half_pixel_um + 1, name

    # on screen: each detector drawn where the camera maps its focal-plane position, +y up
    layer.contrast_limits = (0.0, 1.0)  # R01_S11 (0.5) mid-grey, R43_S11 (1.0) white, NaN black
    layer.colormap = "gray"
    shot = canvas(viewer)[..., :3].astype(int)
    h, w = shot.shape[:2]
    cy, cx = viewer.scene.camera.center[-2:]  # world (y, x) at the canvas centre
    zoom = viewer.scene.camera.zoom
    seen = {}
    for name, value in BRIGHT.items():
        level = round(255 * value)
        mask = (np.abs(shot - level) <= 12).all(axis=-1)
        assert mask.sum() > 20, f"{name} not drawn"
        row, col = np.argwhere(mask).mean(axis=0)
        x_um, y_um = (v * 1000 for v in expected_center_mm(name))
        # +x right, +y up: a larger focal-plane y is a smaller canvas row
        assert abs(col - (w / 2 + zoom * (x_um - cx))) <= 3, (name, col)
        assert abs(row - (h / 2 - zoom * (y_um - cy))) <= 3, (name, row)
        seen[name] = row, col
    assert seen["R43_S11"][0] < seen["R01_S11"][0] and seen["R43_S11"][1] > seen["R01_S11"][1]


def test_readme_http_recipe_opens_the_served_store(readme_napari, store):
    """``cpmosaic serve`` (uvicorn) on loopback; napari-ome-zarr opens ``http://HOST/visit.zarr``."""
    need("aiohttp")  # fsspec's HTTP file system, which zarr reads the URL with
    from test_serve_http import _start_cli

    proc, url = _start_cli([str(store)])
    try:
        viewer, layer = readme_napari(f"{url}/visit.zarr")
        assert viewer.scene.camera.orientation2d == ("up", "right")
        levels = ome_levels(store)
        assert [tuple(d.shape) for d in layer.data] == [lv["shape"] for lv in levels]
        # the README's translate line read the served metadata: world = focal-plane micrometres
        assert list(layer.translate) == levels[0]["translation"] and list(layer.scale) == levels[0]["scale"]
        m = open_mosaic(store)
        for k in range(m.n_levels):
            # the bright detectors' pixels, read through HTTP, equal the store's
            for name in BRIGHT:
                y0, y1, x0, x1 = (v // 2**k for v in m.placements[name].box)
                got = np.asarray(layer.data[k][y0:y1, x0:x1])
                assert np.array_equal(got, m.read(k, y0, y1, x0, x1), equal_nan=True), (k, name)
        assert np.isclose(np.asarray(layer.data[0])[m.placements["R43_S11"].box[0] + 3,
                                                    m.placements["R43_S11"].box[2] + 3], 1.0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
