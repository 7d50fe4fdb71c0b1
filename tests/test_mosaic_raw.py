"""Raw FITS -> mosaic, end to end, against an assembly written here with numpy and astropy.

The reference below does what a script without cpmosaic would: open each raw with
astropy, take the per-row median of the serial overscan, subtract it from the data
box, multiply by the amp gain, flip into detector orientation, bin by block means,
turn by the detector's quarter turns and place the block at its focal-plane corner.
The mosaic built by :func:`cpmosaic.mosaic.build_mosaic` from the same files must
agree.  The synthetic raws come from :mod:`cpmosaic.synth` (both vendors, the corner
rafts' guiders and wavefront half-chips in every quarter turn), with a per-row bias
drift added so that overscan rows matter; the real reference raws (pixels zeroed)
check geometry, placement and what is NaN.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.mosaic import build_mosaic, open_mosaic

SHRINK = 16
#: E2V and ITL science sensors, then corner-raft guiders and wavefront half-chips
#: covering quarter turns 1, 2 and 3.
DETECTORS = ("R22_S11", "R10_S02", "R00_SG0", "R00_SW0", "R04_SG1", "R40_SW1", "R44_SW1")


# --------------------------------------------------------------------------- the independent assembly
def numpy_detector(path: Path, det) -> np.ndarray:
    """One raw assembled: per-row median overscan, gain, trim, flips (float64)."""
    out = np.full(det.shape, np.nan)
    with fits.open(path) as hdul:
        for amp in det.amplifiers:
            seg = np.asarray(hdul[amp.segment_name].data, dtype=np.float64)
            d, o = amp.raw_data_bbox, amp.raw_serial_overscan_bbox
            data = seg[d.y0:d.y1, d.x0:d.x1]
            level = np.median(seg[o.y0:o.y1, o.x0:o.x1], axis=1)
            data = (data - level[:, None]) * amp.gain
            if amp.flip_x:
                data = data[:, ::-1]
            if amp.flip_y:
                data = data[::-1, :]
            b = amp.bbox
            out[b.y0:b.y1, b.x0:b.x1] = data
    return out


def block_mean(image: np.ndarray, binning: int) -> np.ndarray:
    h, w = image.shape
    bh, bw = -(-h // binning), -(-w // binning)
    pad = np.full((bh * binning, bw * binning), np.nan)
    pad[:h, :w] = image
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmean(pad.reshape(bh, binning, bw, binning), axis=(1, 3))


def numpy_mosaic(cam, binning: int, images: dict[int, np.ndarray]) -> np.ndarray:
    """Binned detectors turned by their quarter turns and placed by their corners in mm."""
    s = cam.detectors[0].pixel_size_mm * binning
    corners = {d.id: d.box_corners_mm(d.bbox) for d in cam}
    gx = min(math.floor(c[:, 0].min() / s + 0.5) for c in corners.values())
    gy = min(math.floor(c[:, 1].min() / s + 0.5) for c in corners.values())
    placed, ny, nx = [], 0, 0
    for det in cam:
        h, w = det.shape
        bh, bw = -(-h // binning), -(-w // binning)
        if det.n_quarter % 2:
            bh, bw = bw, bh
        y0 = math.floor(corners[det.id][:, 1].min() / s + 0.5) - gy
        x0 = math.floor(corners[det.id][:, 0].min() / s + 0.5) - gx
        ny, nx = max(ny, y0 + bh), max(nx, x0 + bw)
        if det.id in images:
            placed.append((y0, x0, np.rot90(block_mean(images[det.id], binning), -det.n_quarter)))
    out = np.full((ny, nx), np.nan)
    for y0, x0, block in placed:
        out[y0:y0 + block.shape[0], x0:x0 + block.shape[1]] = block
    return out


def test_camera_flips_are_lsstcams():
    # The reference takes flips from the camera description; check it says what obs_lsst's
    # YAML does (FACTS.md): C1x (True, True); C0x (False, False) for E2V, (True, False) for ITL.
    cam = get_camera("LSSTCam")
    for name, c0x in (("R22_S11", (False, False)), ("R10_S02", (True, False))):
        for amp in cam[name].amplifiers:
            assert (amp.flip_x, amp.flip_y) == ((True, True) if amp.name.startswith("C1") else c0x), (name, amp.name)
    assert {cam[n].n_quarter for n in DETECTORS} == {0, 1, 2, 3}


# --------------------------------------------------------------------------- synthetic raws
def add_row_drift(path: Path, rng) -> None:
    """Add a per-row bias drift to every segment row (data and overscan alike)."""
    with fits.open(path) as hdul:
        hdus = [hdul[0].copy()]
        for hdu in hdul[1:]:
            drift = rng.integers(-300, 300, hdu.data.shape[0])[:, None]
            data = (hdu.data.astype(np.int64) + drift).astype(np.int32)
            header = hdu.header.copy()
            if isinstance(hdu, fits.CompImageHDU):
                hdus.append(fits.CompImageHDU(data, header=header, compression_type="RICE_1", name=hdu.name))
            else:
                hdus.append(fits.ImageHDU(data, header=header, name=hdu.name))
    fits.HDUList(hdus).writeto(path, overwrite=True)


@pytest.fixture(scope="module")
def synth_raws(tmp_path_factory):
    from cpmosaic.synth.images import ExposureMeta, exposure_image, make_detector_model, mjd_of
    from cpmosaic.synth.raw import raw_filename, write_raw

    cam = shrink_camera(get_camera("LSSTCam"), SHRINK)
    root = tmp_path_factory.mktemp("raws")
    meta = ExposureMeta("LSSTCam", "flat", 20251118, 42, mjd_of(20251118, 0.8), 15.0, 15.4)
    rng = np.random.default_rng(3)
    for k, name in enumerate(DETECTORS):
        det = cam[name]
        model = make_detector_model(det, seed=11)
        image = exposure_image(model, "flat", rng, darktime=meta.darktime, planes=False)
        path = write_raw(root / raw_filename(meta.exposure, det), model, meta, image, rng, compress=k % 2 == 1)
        add_row_drift(path, rng)
    return cam, root


@pytest.mark.parametrize("binning", [1, 3])
def test_synthetic_raws_to_mosaic_match_numpy(synth_raws, tmp_path, binning):
    cam, root = synth_raws
    report = build_mosaic([root], tmp_path / "m.zarr", camera=cam, binning=binning, overscan="median",
                          apply_gains=True, chunk=64, progress=False)
    assert report.detectors == len(DETECTORS) and not report.partial
    dets = {p: cam["_".join(p.name.split("-")[1:3])] for p in sorted(root.glob("*.fits"))}  # {exp}-R22-S11-det094
    images = {det.id: numpy_detector(p, det) for p, det in dets.items()}
    assert len(images) == len(DETECTORS)
    ref = numpy_mosaic(cam, binning, images)
    got = open_mosaic(tmp_path / "m.zarr").read(0)
    assert got.shape == ref.shape
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert ok.sum() > 0 and np.abs(ref[ok]).max() > 1000  # real signal, in electrons
    np.testing.assert_allclose(got[ok], ref[ok], rtol=2e-6, atol=1e-3)


def test_overscan_rows_and_gains_matter(synth_raws, tmp_path):
    # the same build without the per-row overscan or the gains differs from the reference
    cam, root = synth_raws
    path = sorted(root.glob("*R22-S11*"))[0]
    images = {cam["R22_S11"].id: numpy_detector(path, cam["R22_S11"])}
    ref = numpy_mosaic(cam, 2, images)
    for kw in ({"overscan": "single", "apply_gains": True}, {"overscan": "median", "apply_gains": False}):
        build_mosaic([path], tmp_path / "x.zarr", camera=cam, binning=2, chunk=64, progress=False,
                     overwrite=True, **kw)  # fmt: skip
        got = open_mosaic(tmp_path / "x.zarr").read(0)
        ok = ~np.isnan(ref)
        assert not np.allclose(got[ok], ref[ok], rtol=1e-4, atol=0.5), kw


# --------------------------------------------------------------------------- the real reference raws
REFERENCE = {  # file, camera, detector
    "3019031900001-R10-S02-det029.fits": ("LSSTCam", "R10_S02"),
    "30211212000310-R22-S22-det098.fits": ("LSSTCam", "R22_S22"),
    "7024032100720-R22-S11-det094.fits.fz": ("LSSTCam", "R22_S11"),
    "3019053000001-R22-S00-det000.fits": ("LSSTComCam", "R22_S00"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_raw_builds_in_place(reference_dir, tmp_path, name):
    cam_name, det_name = REFERENCE[name]
    cam = get_camera(cam_name)
    det = cam[det_name]
    binning = 32
    report = build_mosaic([reference_dir / "raw" / name], tmp_path / "m.zarr", binning=binning, chunk=128,
                          progress=False)  # fmt: skip
    assert report.detectors == 1 and not report.partial
    # pixels were zeroed: the detector is a block of zeros at its place, everything else NaN
    ref = numpy_mosaic(cam, binning, {det.id: np.zeros(det.shape)})
    got = open_mosaic(tmp_path / "m.zarr").read(0)
    assert got.shape == ref.shape
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    assert (~np.isnan(got)).sum() == -(-det.height // binning) * -(-det.width // binning)
    assert np.all(got[~np.isnan(got)] == 0)
