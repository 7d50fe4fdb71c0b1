"""Real tile viewers in headless chromium against a real uvicorn server: OpenSeadragon on the Deep
Zoom image, Leaflet (``L.CRS.Simple``) on the XYZ template from TileJSON.

Both libraries are npm test dependencies (tests/web/package.json, installed by .ci/setup); the
pages are driven by playwright-core with the system chromium.  At 1:1 zoom each screenshot must
equal the store's pixels, averaged in plain numpy, around chosen focal-plane positions, at
several Deep Zoom levels and zooms; the rescale is tight (a detector's centre spans the whole
grey ramp), so a fraction of a pixel's level offset fails.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
import urllib.parse
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_serve_http import dzi_reference, gray, store  # noqa: F401  (the same store fixture)

from cpmosaic.mosaic import open_mosaic
from cpmosaic.serve.server import make_server

WEB = Path(__file__).parent / "web"
PAGE = 256  # page size, CSS px = screen px
HALF = 8  # compared window: +- HALF pixels around the position

pytestmark = pytest.mark.browser


def _needs() -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    if shutil.which("node") is None:
        pytest.skip("no node")
    for lib in ("openseadragon", "leaflet", "playwright-core"):
        if not (WEB / "node_modules" / lib).is_dir():
            pytest.skip(f"tests/web/node_modules/{lib} missing: run `npm ci` in tests/web (.ci/setup does)")


@pytest.fixture(scope="module")
def servers(store):  # noqa: F811
    _needs()
    from browser import serve

    srv = make_server([str(store)], port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with serve(WEB) as (pages, _):
        yield srv, pages
    srv.shutdown()
    srv.server_close()


def shoot(jobs: list[dict], tmp_path: Path) -> list[np.ndarray]:
    for n, job in enumerate(jobs):
        job.update(out=str(tmp_path / f"shot{n}.png"), width=PAGE, height=PAGE)
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    r = subprocess.run(["node", str(WEB / "shoot.mjs"), str(tmp_path / "jobs.json")], cwd=WEB,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return [np.asarray(Image.open(job["out"]).convert("RGB")).astype(np.int16) for job in jobs]


def positions(m) -> list[tuple[str, int, int]]:
    """Level-0 ``(detector, row from the top, column)`` at the centres of two detectors."""
    h = m.shape(0)[0]
    out = []
    for name in ("R22_S11", "R43_S02"):
        y0, y1, x0, x1 = m.placements[name].box
        out.append((name, h - 1 - (y0 + y1) // 2, (x0 + x1) // 2))
    return out


def compare(shot: np.ndarray, ref: np.ndarray, full: np.ndarray, r: int, c: int, spread: int) -> None:
    """The screenshot around the page centre against ``ref`` around ``(r, c)``, in a rescale
    spanning the values within ``spread`` pixels of it."""
    win = (slice(r - HALF, r + HALF), slice(c - HALF, c + HALF))
    ok = full[win]
    core = ok.copy()
    core[: HALF - spread] = core[HALF + spread:] = False
    core[:, : HALF - spread] = core[:, HALF + spread:] = False
    assert core.sum() >= 4
    lo, hi = float(ref[win][core].min()), float(ref[win][core].max())
    want = gray(ref[win], lo, hi)
    got = shot[PAGE // 2 - HALF:PAGE // 2 + HALF, PAGE // 2 - HALF:PAGE // 2 + HALF]
    assert (got[..., 0] == got[..., 1])[ok].all() and (got[..., 0] == got[..., 2])[ok].all(), "not grey: misplaced"
    diff = np.abs(got[..., 0] - want)[ok]
    assert diff.max() <= 1, f"max grey difference {diff.max()} (rescale {lo}..{hi})"
    return lo, hi


def rescale_query(ref: np.ndarray, full: np.ndarray, r: int, c: int, spread: int) -> str:
    """``rescale=lo,hi`` spanning the reference values within *spread* pixels of ``(r, c)``,
    so the screenshot's grey levels there resolve the values :func:`compare` checks."""
    win = (slice(r - HALF, r + HALF), slice(c - HALF, c + HALF))
    core = full[win].copy()
    core[: HALF - spread] = core[HALF + spread:] = False
    core[:, : HALF - spread] = core[:, HALF + spread:] = False
    lo, hi = float(ref[win][core].min()), float(ref[win][core].max())
    return urllib.parse.urlencode({"rescale": f"{lo!r},{hi!r}"})


def test_openseadragon_deep_zoom_at_one_to_one(servers, store, tmp_path):  # noqa: F811
    srv, pages = servers
    m = open_mosaic(store)
    h, w = m.shape(0)
    top = math.ceil(math.log2(max(h, w)))
    cases = []
    for level in (top, top - 1, top - 3, top - 4):
        d = 2 ** (top - level)
        ref, full = dzi_reference(m, level)
        for name, r0, c0 in positions(m):
            r, c = r0 // d, c0 // d
            spread = max(1, min(HALF, 24 // d))
            q = rescale_query(ref, full, r, c, spread)
            url = f"{pages}/osd.html?" + urllib.parse.urlencode(
                {"server": srv.url, "store": "visit", "level": level, "cx": c, "cy": r, "q": q})
            cases.append(({"url": url}, ref, full, r, c, spread))
    shots = shoot([c[0] for c in cases], tmp_path)
    for shot, (_, ref, full, r, c, spread) in zip(shots, cases):
        compare(shot, ref, full, r, c, spread)
    assert any(r[1].startswith("/visit/dzi_files/") and r[2] == 200 for r in srv.requests)


def xyz_reference(srv, m, z: int) -> tuple[np.ndarray, np.ndarray]:
    """The tile world at zoom ``z`` (rows from the top) from level 0 in numpy, and its
    fully-covered pixels; the world's placement comes from TileJSON's ``world_bounds_mm``."""
    from test_serve import offsets

    zmax, ox, oy = offsets(srv, m)
    a = m.read(0).astype(np.float64)
    world = np.full((256 * 2**zmax,) * 2, np.nan)
    world[oy:oy + a.shape[0], ox:ox + a.shape[1]] = a
    world = world[::-1]
    f = 2 ** (zmax - z)
    blocks = world.reshape(world.shape[0] // f, f, world.shape[1] // f, f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(blocks, axis=(1, 3)), np.isfinite(blocks).all(axis=(1, 3))


def test_leaflet_crs_simple_on_the_xyz_template(servers, store, tmp_path):  # noqa: F811
    from test_serve import offsets

    srv, pages = servers
    m = open_mosaic(store)
    zmax, ox, oy = offsets(srv, m)
    world_h = 256 * 2**zmax
    h = m.shape(0)[0]
    cases = []
    for z in (zmax, zmax - 1, zmax - 2):
        f = 2 ** (zmax - z)
        ref, full = xyz_reference(srv, m, z)
        for name, r0, c0 in positions(m):
            # level-0 row from the top -> tile-world row from the top at zmax -> zoom z
            wr = world_h - 1 - (oy + (h - 1 - r0))
            r, c = wr // f, (ox + c0) // f
            spread = max(1, min(HALF, 24 // f))
            q = rescale_query(ref, full, r, c, spread)
            url = f"{pages}/leaflet.html?" + urllib.parse.urlencode(
                {"server": srv.url, "store": "visit", "z": z, "px": c, "py": r, "q": q})
            cases.append(({"url": url}, ref, full, r, c, spread))
    shots = shoot([c[0] for c in cases], tmp_path)
    for shot, (_, ref, full, r, c, spread) in zip(shots, cases):
        compare(shot, ref, full, r, c, spread)
    assert any(r[1].startswith("/visit/tiles/") and r[2] == 200 for r in srv.requests)
