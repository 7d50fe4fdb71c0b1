"""Raw readers: identification, assembly by camera geometry, row ranges, bad input.

Synthetic raws are built here from a *truth* detector image: each amp's data box
holds its piece of the truth, un-flipped into readout order, plus a per-row bias
level that is also in the serial overscan.  Assembly must give the truth back
exactly, which checks placement and flips independently of the reader; a plain
numpy assembly checks the overscan modes and gains.
"""

from __future__ import annotations

import gzip
import mmap
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from pagecache import drop_page_cache, resident_pages

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.errors import InputError
from cpmosaic.io import identify, open_exposure
from cpmosaic.io.fits_raw import RawExposure
from cpmosaic.io.rice import decode_rows, rice_layout

SMALL = shrink_camera(get_camera("LSSTCam"), 16)
PRESCAN, PAR_OVERSCAN = 77777, 55555  # values that must never reach the image

REFERENCE_RAWS = {
    "3019031900001-R10-S02-det029.fits": ("LSSTCam", "R10_S02", 29, (4000, 4072), "BIAS"),
    "3019053000001-R22-S00-det000.fits": ("LSSTComCam", "R22_S00", 0, (4000, 4072), "BIAS"),
    "30211212000310-R22-S22-det098.fits": ("LSSTCam", "R22_S22", 98, (4004, 4096), "FLAT"),
    "7024032100720-R22-S11-det094.fits.fz": ("LSSTCam", "R22_S11", 94, (4004, 4096), "SKYEXP"),
}


def obs_lsst_id_from_name(name: str) -> int:
    """The exposure id obs_lsst gives a raw, read off its test-data file name.

    obs_lsst names raws ``{exposure}-{raft}-{sensor}-det{id}``: the first eight digits
    are day_obs with the controller's thousands of years added, the rest the sequence
    number.  One of its files (``30211212000310-...``) pads the sequence to six digits;
    its ingest test (``tests/test_ingest.py``) expects exposure 3021121200310.
    """
    digits = name.split("-")[0]
    return int(f"{digits[:8]}{int(digits[8:]):05d}")


# --------------------------------------------------------------------------- builders
def truth_image(det) -> np.ndarray:
    """Distinct constant per amp plus a gradient, exact in int32 and float32."""
    y, x = np.mgrid[0 : det.height, 0 : det.width]
    out = (x + 2 * y).astype(np.int64)
    for k, amp in enumerate(det.amplifiers):
        out[amp.bbox.slices] += 20000 * (k + 1)
    return out


def make_segments(det, rng, *, outliers: bool = True) -> dict[str, np.ndarray]:
    """Raw segments (int32) whose assembly is ``truth_image(det)``."""
    truth = truth_image(det)
    segs = {}
    for k, amp in enumerate(det.amplifiers):
        d, o = amp.raw_data_bbox, amp.raw_serial_overscan_bbox
        seg = np.full(amp.raw_bbox.shape, PAR_OVERSCAN, np.int64)
        seg[amp.raw_serial_prescan_bbox.slices] = PRESCAN
        piece = truth[amp.bbox.slices]
        piece = piece[:, ::-1] if amp.flip_x else piece  # back into readout order
        piece = piece[::-1] if amp.flip_y else piece
        level = 1000 + 37 * k + rng.integers(0, 50, size=d.height)  # per-row bias drift
        seg[d.slices] = piece + level[:, None]
        seg[o.slices] = level[:, None]
        if outliers:  # one hot pixel per overscan row: moves the mean, not the median
            cols = rng.integers(o.x0, o.x1, size=o.height)
            seg[np.arange(o.y0, o.y1), cols] += 400
        segs[amp.name] = seg.astype(np.int32)
    return segs


def write_raw(path, det, segs, *, compress=False, instrument="LSSTCam", drop=(), reshape=None,
              primary_extra=None) -> Path:  # fmt: skip
    """Multi-HDU raw as the camera writes it: HDU order C10..C17, C07..C00."""
    raft, slot = det.name.split("_")
    ph = fits.Header()
    cards = {"INSTRUME": instrument, "RAFTBAY": raft, "CCDSLOT": slot, "DAYOBS": "20250618", "SEQNUM": 123,
             "MJD-OBS": 60845.1, "IMGTYPE": "flat", "FILTER": "r_57", "EXPTIME": 15.0, "DARKTIME": 15.4}  # fmt: skip
    cards.update(primary_extra or {})
    for k, v in cards.items():
        if v is not None:
            ph[k] = v
    hdus = [fits.PrimaryHDU(header=ph)]
    for amp in sorted(det.amplifiers, key=lambda a: a.hdu):
        if amp.name in drop:
            continue
        data = segs[amp.name]
        if reshape and amp.name == reshape[0]:
            data = data[: reshape[1]]
        h = fits.Header()
        h["EXTNAME"] = amp.segment_name
        h["DETSEC"] = "[1:1,1:1]"  # deliberately wrong: geometry comes from the camera
        hdu = fits.CompImageHDU(data, header=h, compression_type="RICE_1") if compress else fits.ImageHDU(data, header=h)
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return Path(path)


def numpy_assembly(det, segs, overscan="median", gains=False) -> np.ndarray:
    """The plain-numpy assembly the reader must match."""
    out = np.full(det.shape, np.nan)
    for amp in det.amplifiers:
        seg = segs[amp.name].astype(np.float64)
        data = seg[amp.raw_data_bbox.slices]
        ov = seg[amp.raw_serial_overscan_bbox.slices]
        if overscan == "median":
            data = data - np.median(ov, axis=1)[:, None]
        elif overscan == "mean":
            data = data - np.mean(ov, axis=1)[:, None]
        elif overscan == "single":
            data = data - np.median(ov)
        if gains:
            data = data * amp.gain
        if amp.flip_x:
            data = data[:, ::-1]
        if amp.flip_y:
            data = data[::-1]
        out[amp.bbox.slices] = data
    return out


# --------------------------------------------------------------------------- reference files
@pytest.mark.parametrize("name", sorted(REFERENCE_RAWS))
def test_reference_raws(reference_dir, name):
    cam, det_name, det_id, shape, imgtype = REFERENCE_RAWS[name]
    path = reference_dir / "raw" / name
    info = identify(path)
    assert (info.kind, info.camera, info.detector_name, info.detector, info.shape) == ("raw", cam, det_name, det_id, shape)
    assert info.image_type == imgtype and info.day_obs is not None and info.seq_num is not None
    assert info.exposure == obs_lsst_id_from_name(name)
    with open_exposure(path) as exp:
        assert exp.detector.name == det_name
        image = exp.read()
        assert image.shape == shape and image.dtype == np.float32
        assert np.all(image == 0)  # pixels were zeroed, overscan too
        assert exp.read(slice(1990, 2015)).shape == (25, shape[1])  # crosses the C0x/C1x boundary


def test_reference_full_read_and_detsec(reference_dir):
    # The 2024 simulator file has correct DETSECs: they must agree with where
    # the camera geometry puts each amp (the reader itself never looks at DETSEC).
    path = reference_dir / "raw" / "7024032100720-R22-S11-det094.fits.fz"
    with open_exposure(path) as exp:
        assert exp.read().shape == (4004, 4096)
        hdul = exp._hdul
        for amp in exp.detector.amplifiers:
            hdu = next(h for h in hdul if h.name == amp.segment_name)
            (xa, xb), (ya, yb) = (tuple(int(v) for v in r.split(":")) for r in hdu.header["DETSEC"].strip("[]").split(","))
            assert (min(xa, xb) - 1, min(ya, yb) - 1) == (amp.bbox.x0, amp.bbox.y0)
            assert (xa > xb, ya > yb) == (amp.flip_x, amp.flip_y)


# --------------------------------------------------------------------------- synthetic raws
CASES = [("R22_S11", False), ("R10_S02", False), ("R00_SW0", False), ("R44_SW1", True), ("R22_S11", True),
         ("R00_SG0", True)]  # fmt: skip


@pytest.mark.parametrize("det_name,compress", CASES)
def test_synthetic_assembly_exact(tmp_path, rng, det_name, compress):
    det = SMALL[det_name]
    segs = make_segments(det, rng)
    path = write_raw(tmp_path / "raw.fits", det, segs, compress=compress)
    with open_exposure(path, SMALL) as exp:
        assert exp.shape == det.shape and exp.info.detector == det.id
        image = exp.read()
    np.testing.assert_array_equal(image, truth_image(det).astype(np.float32))
    for amp in det.amplifiers:  # the first pixel read out sits at the corner the flips say
        x = amp.bbox.x1 - 1 if amp.flip_x else amp.bbox.x0
        y = amp.bbox.y1 - 1 if amp.flip_y else amp.bbox.y0
        d = amp.raw_data_bbox
        first = segs[amp.name][d.y0, d.x0] - np.median(segs[amp.name][amp.raw_serial_overscan_bbox.slices][0])
        assert image[y, x] == first


@pytest.mark.parametrize("overscan", ["median", "mean", "single", "none"])
@pytest.mark.parametrize("gains", [False, True])
def test_overscan_modes_match_numpy(tmp_path, rng, overscan, gains):
    det = SMALL["R10_S02"]  # ITL: C0x flip in x only
    segs = make_segments(det, rng)
    path = write_raw(tmp_path / "raw.fits", det, segs)
    expected = numpy_assembly(det, segs, overscan, gains)
    with open_exposure(path, SMALL, overscan=overscan, apply_gains=gains) as exp:
        np.testing.assert_allclose(exp.read(), expected, rtol=1e-6, atol=1e-3)
        for rows in (slice(0, 5), slice(100, 160), slice(120, 130), slice(-3, None), slice(7, 7)):
            np.testing.assert_allclose(exp.read(rows), expected[rows], rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("compress", [False, True])
def test_row_ranges_touch_only_needed_amps_and_rows(tmp_path, rng, monkeypatch, compress):
    det = SMALL["R22_S11"]  # E2V: C1x flipped in y
    segs = make_segments(det, rng)
    path = write_raw(tmp_path / "raw.fits", det, segs, compress=compress)
    calls = []
    original = RawExposure._segment_rows

    def spy(self, index, y0, y1):
        calls.append((self._hdul[index].name.upper(), y0, y1))
        return original(self, index, y0, y1)

    monkeypatch.setattr(RawExposure, "_segment_rows", spy)
    h = det.amplifiers[0].bbox.height  # 125 rows per amp row
    truth = truth_image(det)
    with open_exposure(path, SMALL) as exp:
        np.testing.assert_array_equal(exp.read(slice(10, 20)), truth[10:20])
        assert {c[0] for c in calls} == {f"SEGMENT0{i}" for i in range(8)}
        assert {c[1:] for c in calls} == {(10, 20)}
        calls.clear()
        # top amps are flipped in y: detector rows h+10..h+20 are raw rows h-20..h-10
        np.testing.assert_array_equal(exp.read(slice(h + 10, h + 20)), truth[h + 10 : h + 20])
        assert {c[0] for c in calls} == {f"SEGMENT1{i}" for i in range(8)}
        assert {c[1:] for c in calls} == {(h - 20, h - 10)}


def test_full_size_uncompressed_reads_only_needed_pages(tmp_path, rng):
    det = get_camera("LSSTCam")["R22_S11"]
    segs = make_segments(det, rng, outliers=False)
    path = write_raw(tmp_path / "raw.fits", det, segs)
    truth = truth_image(det)
    with open_exposure(path) as exp:
        np.testing.assert_array_equal(exp.read(), truth.astype(np.float32))
    if not drop_page_cache(path):
        pytest.skip("cannot drop the page cache of the test file here")
    with open_exposure(path) as exp:
        np.testing.assert_array_equal(exp.read(slice(100, 110)), truth[100:110])
    resident = resident_pages(path)
    assert resident.sum() * mmap.PAGESIZE < 0.1 * os.path.getsize(path), "a 10-row read paged in most of the file"


# --------------------------------------------------------------------------- bad input
def _assert_input_error(path, *words, camera=SMALL):
    with pytest.raises(InputError) as err:
        with open_exposure(path, camera) as exp:
            exp.read()
    text = str(err.value)
    assert str(path) in text, text
    for w in words:
        assert w.lower() in text.lower(), text
    return text


def test_missing_segment(tmp_path, rng):
    det = SMALL["R22_S11"]
    path = write_raw(tmp_path / "raw.fits", det, make_segments(det, rng), drop=("C07",))
    _assert_input_error(path, "Segment07", "missing")
    with pytest.raises(InputError):
        identify(path, SMALL)


def test_wrong_segment_shape(tmp_path, rng):
    det = SMALL["R22_S11"]
    path = write_raw(tmp_path / "raw.fits", det, make_segments(det, rng), reshape=("C07", 100))
    ny, nx = det.amp("C07").raw_bbox.shape
    text = _assert_input_error(path, f"Segment07 has shape (100, {nx}), camera geometry says ({ny}, {nx})")
    assert "Traceback" not in text


def test_full_size_geometry_on_small_file(tmp_path, rng):
    det = SMALL["R22_S11"]
    path = write_raw(tmp_path / "raw.fits", det, make_segments(det, rng))
    _assert_input_error(path, "camera geometry says (2048, 576)", camera=None)  # built-in LSSTCam is full size


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated(tmp_path, rng, compress, cut):
    det = SMALL["R10_S02"]
    path = write_raw(tmp_path / "raw.fits", det, make_segments(det, rng), compress=compress)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    _assert_input_error(path)


def test_truncated_gzip(tmp_path, rng):
    det = SMALL["R10_S02"]
    src = write_raw(tmp_path / "raw.fits", det, make_segments(det, rng))
    path = tmp_path / "raw.fits.gz"
    path.write_bytes(gzip.compress(src.read_bytes())[:-5000])
    _assert_input_error(path)


def test_gzip_raw_reads(tmp_path, rng):
    det = SMALL["R22_S11"]
    src = write_raw(tmp_path / "raw.fits", det, make_segments(det, rng), compress=True)
    path = tmp_path / "raw.fits.gz"
    path.write_bytes(gzip.compress(src.read_bytes()))
    with open_exposure(path, SMALL) as exp:
        np.testing.assert_array_equal(exp.read(slice(5, 200)), truth_image(det)[5:200])


def test_unknown_detector(tmp_path, rng):
    det = SMALL["R22_S11"]
    path = write_raw(tmp_path / "raw.fits", det, make_segments(det, rng), primary_extra={"RAFTBAY": "R99"})
    _assert_input_error(path, "unknown detector R99_S11")


def test_unknown_instrument_needs_camera(tmp_path, rng):
    det = SMALL["R22_S11"]
    path = write_raw(tmp_path / "raw.fits", det, make_segments(det, rng), instrument="HSC")
    _assert_input_error(path, "HSC", camera=None)
    assert identify(path, SMALL).detector_name == "R22_S11"


@pytest.mark.parametrize("content", [b"", b"hello, not a FITS file\n" * 200])
def test_not_fits(tmp_path, content):
    path = tmp_path / "notes.fits"
    path.write_bytes(content)
    _assert_input_error(path)


def test_not_found(tmp_path):
    _assert_input_error(tmp_path / "nowhere.fits", "not found")


def test_detector_keys_and_camera_names(tmp_path, rng):
    det = SMALL["R22_S11"]
    segs = make_segments(det, rng)
    # DETNAME wins; no RAFTBAY/CCDSLOT; instrument spelled as the simulator does
    p = write_raw(tmp_path / "a.fits", det, segs, instrument="LSSTCamSim",
                  primary_extra={"RAFTBAY": None, "CCDSLOT": None, "DETNAME": "R22_S11"})  # fmt: skip
    assert identify(p, SMALL).detector == 94
    p = write_raw(tmp_path / "b.fits", det, segs, primary_extra={"RAFTBAY": None, "CCDSLOT": None, "DETECTOR": 94})
    info = identify(p, SMALL)
    assert (info.detector_name, info.exposure, info.day_obs, info.image_type) == ("R22_S11", 2025061800123, 20250618, "FLAT")


# Controller rules of obs_lsst's LsstBaseTranslator.compute_exposure_id (translators/lsst.py):
# +1000 years per place in "OCHPQS"; C unified with OCS after 2023-10-04, P/Q/S after 2025-04-17.
CONTROLLER_CASES = [
    ("20250618", 123, None, 2025061800123), ("20250618", 123, "O", 2025061800123),
    ("20190319", 1, "C", 3019031900001), ("20231004", 7, "C", 3023100400007), ("20231005", 7, "C", 2023100500007),
    ("20240101", 9, "H", 4024010100009), ("20260101", 9, "H", 4026010100009),
    ("20240321", 720, "S", 7024032100720), ("20250417", 3, "P", 5025041700003), ("20250418", 3, "Q", 2025041800003),
]  # fmt: skip


@pytest.mark.parametrize("dayobs,seq,controller,expected", CONTROLLER_CASES)
def test_exposure_id_follows_obs_lsst_controllers(tmp_path, rng, dayobs, seq, controller, expected):
    det = SMALL["R22_S11"]
    p = write_raw(tmp_path / "c.fits", det, make_segments(det, rng, outliers=False),
                  primary_extra={"DAYOBS": dayobs, "SEQNUM": seq, "CONTRLLR": controller})  # fmt: skip
    info = identify(p, SMALL)
    assert (info.exposure, info.day_obs, info.seq_num) == (expected, int(dayobs), seq)
    assert info.controller == controller


def test_unknown_controller_is_an_error_naming_the_file(tmp_path, rng):
    det = SMALL["R22_S11"]
    p = write_raw(tmp_path / "x.fits", det, make_segments(det, rng), primary_extra={"CONTRLLR": "X"})
    with pytest.raises(InputError, match="controller 'X'") as err:
        identify(p, SMALL)
    assert str(p) in str(err.value)


def test_latiss_raw_recognised_without_camera(tmp_path):
    # obs_lsst's LATISS translator accepts INSTRUME "LSST_ATISS" or "LATISS" (translators/latiss.py)
    det = get_camera("LATISS").detectors[0]
    zeros = {a.name: np.zeros(a.raw_bbox.shape, np.int32) for a in det.amplifiers}
    for instrume in ("LSST_ATISS", "LATISS"):
        p = write_raw(tmp_path / f"{instrume}.fits", det, zeros, compress=True, instrument=instrume,
                      primary_extra={"RAFTBAY": None, "CCDSLOT": None, "CONTRLLR": "O"})  # fmt: skip
        info = identify(p)
        assert (info.camera, info.detector_name, info.detector, info.shape) == ("LATISS", "RXX_S00", 0, (4000, 4072))
        assert info.exposure == 2025061800123


def test_cli_inspect_and_assemble_use_obs_lsst_ids(reference_dir, tmp_path, capsys):
    import json

    from cpmosaic.cli.main import main

    raws = [str(reference_dir / "raw" / n) for n in sorted(REFERENCE_RAWS)]
    assert main(["inspect", "--format", "json", *raws]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["exposure"] for d in docs] == [obs_lsst_id_from_name(n) for n in sorted(REFERENCE_RAWS)]
    assert main(["assemble", "-o", str(tmp_path), raws[0], raws[2]]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["3019031900001-R10_S02-det029.fits", "3021121200310-R22_S22-det098.fits"]
    assert identify(tmp_path / names[0]).exposure == 3019031900001


# --------------------------------------------------------------------------- page cache helpers


# --------------------------------------------------------------------------- RICE decoder
def _rice_file(path, data, tile_rows):
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1",
                                                       tile_shape=(tile_rows, data.shape[1]))]).writeto(path)  # fmt: skip
    with fits.open(path, disable_image_compression=True) as hdul:
        header, offset = hdul[1].header.copy(), hdul[1].fileinfo()["datLoc"]
    return rice_layout(header, offset), np.fromfile(path, np.uint8)


@pytest.mark.parametrize("dtype,kind", [(np.int32, "noise"), (np.int32, "wild"), (np.int32, "flat"),
                                        (np.int16, "noise"), (np.int16, "wild"), (np.uint8, "noise")])  # fmt: skip
@pytest.mark.parametrize("tile_rows", [1, 7])
def test_rice_decoder_matches_astropy(tmp_path, rng, dtype, kind, tile_rows):
    info = np.iinfo(dtype)
    shape = (45, 70)
    if kind == "noise":  # low entropy: the Rice-coded blocks
        data = np.clip(rng.normal(100, 9, shape) + (info.min < 0) * -60, info.min, info.max)
    elif kind == "wild":  # whole range: the verbatim (high-entropy) blocks, sign wrap-around
        data = rng.integers(info.min, info.max, shape, endpoint=True)
    else:  # zero-difference blocks, mixed with a few steps
        data = np.full(shape, -123456 if info.min < 0 else 7)
        data[10:12] = 5
    data = data.astype(dtype)
    layout, buf = _rice_file(tmp_path / "r.fits", data, tile_rows)
    assert layout is not None and layout.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(decode_rows(buf, layout, 0, shape[0]), data)
    for y0, y1 in ((3, 4), (6, 15), (40, 45), (0, 1)):
        np.testing.assert_array_equal(decode_rows(buf, layout, y0, y1), data[y0:y1])


def test_rice_decoder_refuses_corrupt_tiles(tmp_path, rng):
    data = rng.integers(-1000, 1000, (20, 64)).astype(np.int32)
    layout, buf = _rice_file(tmp_path / "r.fits", data, 1)
    bad = buf.copy()
    bad[layout.table_offset : layout.table_offset + 4] = 0x7F  # tile 0 claims ~2 GB of heap
    with pytest.raises(ValueError, match="tile 0"):
        decode_rows(bad, layout, 0, 5)
    garbage = buf.copy()  # random heap bytes: any answer, but no crash
    garbage[layout.heap_offset :] = rng.integers(0, 256, buf.size - layout.heap_offset, dtype=np.uint8)
    try:
        decode_rows(garbage, layout, 0, 20)
    except ValueError:
        pass
    with pytest.raises(ValueError, match="past the end"):
        decode_rows(buf[: layout.table_offset + 10], layout, 0, 20)


def test_rice_fast_path_equals_astropy_path(tmp_path, rng, monkeypatch):
    import cpmosaic.io.exposure as exposure_module

    det = SMALL["R22_S11"]
    path = write_raw(tmp_path / "raw.fits", det, make_segments(det, rng), compress=True)
    with open_exposure(path, SMALL) as exp:
        fast = exp.read()
        assert exp._layouts and all(v is not None for v in exp._layouts.values())  # the fast path ran
    monkeypatch.setattr(exposure_module, "FAST_RICE", False)
    with open_exposure(path, SMALL) as exp:
        np.testing.assert_array_equal(exp.read(), fast)
        assert all(v is None for v in exp._layouts.values())
