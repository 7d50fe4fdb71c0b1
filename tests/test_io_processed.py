"""Processed (afw layout) and plain image files: write -> read round trips, row ranges."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from astropy.io import fits

from pagecache import drop_page_cache, resident_pages

from cpmosaic.camera import get_camera, shrink_camera
from cpmosaic.errors import InputError
from cpmosaic.io import AFW_MASK_PLANES, ExposureInfo, assemble_to_fits, identify, open_exposure, write_processed_fits

META = {"INSTRUME": "LSSTCam", "DETNAME": "R22_S11", "DETECTOR": 94, "DAYOBS": "20250618", "SEQNUM": 42,
        "MJD-OBS": 60845.2, "IMGTYPE": "bias", "FILTER": "empty", "EXPTIME": 0.0, "DARKTIME": 0.2}  # fmt: skip


def _planes(rng, shape=(60, 40)):
    image = rng.normal(1000, 5, shape).astype(np.float32)
    image[3, 4] = np.nan
    mask = np.zeros(shape, np.int32)
    mask[3, 4] = 1 << AFW_MASK_PLANES["BAD"]
    mask[10:12, :] |= 1 << AFW_MASK_PLANES["SAT"]
    variance = np.abs(image) / 1.5
    return image, mask, variance


def test_round_trip(tmp_path, rng):
    image, mask, variance = _planes(rng)
    path = write_processed_fits(tmp_path / "calexp.fits", image, mask=mask, variance=variance, header=META,
                                xy0=(100, 2002))  # fmt: skip
    with fits.open(path) as hdul:  # the afw layout itself
        assert [h.name for h in hdul] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE"]
        assert hdul[0].data is None and hdul[0].header["DETNAME"] == "R22_S11" and hdul[0].header["DETECTOR"] == 94
        for h in hdul[1:]:
            assert h.header["EXTTYPE"] == h.name and (h.header["LTV1"], h.header["LTV2"]) == (-100, -2002)
        assert hdul[1].data.dtype.kind == "f" and hdul[2].data.dtype.name.endswith("int32")
        assert hdul[2].header["MP_SAT"] == 1 and hdul[2].header["MP_DETECTED_NEGATIVE"] == 6
    assert not [p for p in tmp_path.iterdir() if p.name != "calexp.fits"], "temporary file left behind"
    (tmp_path / "plain").touch()
    assert path.stat().st_mode == (tmp_path / "plain").stat().st_mode, "the rename kept a temp file's mode"
    (tmp_path / "plain").unlink()
    info = identify(path)
    assert (info.kind, info.camera, info.detector, info.detector_name, info.shape) == ("processed", "LSSTCam", 94, "R22_S11", (60, 40))
    assert (info.exposure, info.day_obs, info.seq_num, info.image_type, info.dark_time) == (2025061800042, 20250618, 42, "BIAS", 0.2)
    with open_exposure(path) as exp:
        assert exp.xy0 == (100, 2002) and exp.mask_planes == AFW_MASK_PLANES
        np.testing.assert_array_equal(exp.read(), image)  # NaN stays NaN
        np.testing.assert_array_equal(exp.read_mask(), mask)
        np.testing.assert_array_equal(exp.read_variance(), variance)
        for rows in (slice(0, 1), slice(9, 13), slice(55, None), slice(-5, -2), slice(20, 20)):
            np.testing.assert_array_equal(exp.read(rows), image[rows])
            np.testing.assert_array_equal(exp.read_mask(rows), mask[rows])
        assert exp.read().dtype == np.float32 and exp.read().dtype.isnative
        with pytest.raises(ValueError):
            exp.read(slice(0, 10, 2))


def test_writer_options(tmp_path, rng):
    image, mask, _ = _planes(rng)
    info = ExposureInfo(path="x", kind="raw", instrument="LSSTComCam", camera="LSSTComCam", detector=4,
                        detector_name="R22_S11", exposure=2025061800007, day_obs=20250618, seq_num=7, mjd=1.0,
                        image_type="FLAT", filter="r_03", exposure_time=5.0, dark_time=5.1, shape=(60, 40))  # fmt: skip
    path = write_processed_fits(tmp_path / "a.fits", image.astype(np.float64), mask=mask, header=info,
                                mask_planes={"BAD": 0, "SAT": 1, "MY_LONG_PLANE": 12})  # fmt: skip
    with open_exposure(path) as exp:
        assert exp.info.camera == "LSSTComCam" and exp.info.detector == 4 and exp.info.exposure == 2025061800007
        assert exp.mask_planes == {"BAD": 0, "SAT": 1, "MY_LONG_PLANE": 12} and exp.read_variance() is None
    # a dict with long keys (HIERARCH) and an overwrite of the same path
    write_processed_fits(path, image, header={"HIERARCH LSST BUTLER DATAID DETECTOR": 94, "LONG KEY NAME": "x",
                                              "INSTRUME": "LSSTCam"})  # fmt: skip
    info = identify(path)
    assert info.detector_name == "R22_S11" and info.detector == 94 and info.exposure is None
    with pytest.raises(ValueError, match="mask shape"):
        write_processed_fits(tmp_path / "bad.fits", image, mask=mask[:5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fits"], "a failed write must leave nothing"


def test_plain_images(tmp_path, rng):
    data = rng.normal(size=(30, 20)).astype(np.float32)
    fits.PrimaryHDU(data).writeto(tmp_path / "primary.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data.astype(np.int16) * 0 + 7)]).writeto(tmp_path / "ext.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="GZIP_2", quantize_level=0)]).writeto(
        tmp_path / "comp.fits")  # fmt: skip
    for name, expected in (("primary", data), ("ext", np.full_like(data, 7)), ("comp", data)):
        info = identify(tmp_path / f"{name}.fits")
        assert info.kind == "image" and info.shape == (30, 20) and info.detector is None
        with open_exposure(tmp_path / f"{name}.fits") as exp:
            np.testing.assert_allclose(exp.read(), expected, rtol=1e-6)
            np.testing.assert_allclose(exp.read(slice(5, 9)), expected[5:9], rtol=1e-6)
            assert exp.read_mask() is None and exp.detector is None


def test_compressed_processed_rows(tmp_path, rng):
    image, mask, variance = _planes(rng, (80, 50))
    hdul = fits.HDUList([fits.PrimaryHDU(header=fits.Header(META.items())),
                         fits.CompImageHDU(image, name="IMAGE", compression_type="GZIP_2", quantize_level=0),
                         fits.CompImageHDU(mask, name="MASK", compression_type="RICE_1")])  # fmt: skip
    hdul.writeto(tmp_path / "c.fits")
    with open_exposure(tmp_path / "c.fits") as exp:
        assert exp.info.kind == "processed" and exp.detector.name == "R22_S11"
        np.testing.assert_array_equal(exp.read(slice(30, 41)), image[30:41])
        np.testing.assert_array_equal(exp.read_mask(slice(30, 41)), mask[30:41])


def test_bad_processed(tmp_path, rng):
    image, _, _ = _planes(rng)
    path = write_processed_fits(tmp_path / "x.fits", image, header={**META, "DETNAME": "R77_S11", "DETECTOR": None})
    with pytest.raises(InputError, match="unknown detector R77_S11") as err:
        identify(path)
    assert str(path) in str(err.value)
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "J", array=[1])])]).writeto(
        tmp_path / "table.fits")  # fmt: skip
    with pytest.raises(InputError, match="no image data"):
        open_exposure(tmp_path / "table.fits")


def test_assemble_to_fits(tmp_path, rng):
    from test_io_raw import make_segments, numpy_assembly, write_raw

    small = shrink_camera(get_camera("LSSTCam"), 16)
    det = small["R10_S02"]
    segs = make_segments(det, rng)
    raw = write_raw(tmp_path / "raw.fits", det, segs, compress=True)
    out = assemble_to_fits(raw, tmp_path / "out", small, apply_gains=True)
    assert out.name == "2025061800123-R10_S02-det029.fits"
    with open_exposure(raw, small, apply_gains=True) as exp, open_exposure(out, small) as done:
        np.testing.assert_array_equal(done.read(), exp.read())
        assert done.info.kind == "processed" and done.info.detector == 29 and done.info.exposure == 2025061800123
        assert done.header["BUNIT"] == "electron" and done.header["FILTER"] == "r_57" and done.header["ORIGFILE"] == "raw.fits"
    out = assemble_to_fits(raw, tmp_path / "out2", small, overscan="single")
    with open_exposure(out) as done:  # no camera given: the built-in one names the detector
        assert done.info.detector_name == "R10_S02" and done.shape == det.shape
        np.testing.assert_allclose(done.read(), numpy_assembly(det, segs, "single"), atol=1e-3)
    with pytest.raises(InputError, match="not a raw"):
        assemble_to_fits(out, tmp_path / "out3")


def test_row_range_reads_only_those_pages(tmp_path, rng):
    """Prove it with the page cache: drop the file from it, read 8 rows, count resident pages."""
    image = rng.normal(size=(2048, 2048)).astype(np.float32)  # 16 MB per plane
    path = write_processed_fits(tmp_path / "big.fits", image, variance=image, header=META)
    if not drop_page_cache(path):
        pytest.skip("cannot drop the page cache here")
    with open_exposure(path) as exp:
        np.testing.assert_array_equal(exp.read(slice(1000, 1008)), image[1000:1008])
        np.testing.assert_array_equal(exp.read_variance(slice(5, 6)), image[5:6])
    resident = resident_pages(path)
    with fits.open(path) as hdul:
        data_start = hdul.fileinfo(1)["datLoc"]
    first = (data_start + 1000 * 2048 * 4) // mmap.PAGESIZE
    assert resident[first : first + 8].all(), "the rows asked for are not in the page cache"
    # 8 + 1 rows (72 KB) plus header blocks; the file is 32 MB
    assert resident.sum() * mmap.PAGESIZE < 256 * 1024, f"{resident.sum()} pages read for 9 rows"




def test_read_stored_into_a_buffer(tmp_path) -> None:
    # the builder's path: rows read (preadv) into a reused buffer, no file map
    rng = np.random.default_rng(4)
    image = rng.normal(0, 1, (50, 30)).astype(np.float32)
    path = tmp_path / "x.fits"
    write_processed_fits(path, image, header={"INSTRUME": "LSSTCam", "DETNAME": "R22_S11"})
    buf = np.empty(30 * 4 * 20, np.uint8)
    with open_exposure(path) as exp:
        rows = exp.read_stored(slice(7, 27), out=buf)
        assert np.shares_memory(rows, buf) and rows.dtype == np.dtype(">f4")
        np.testing.assert_array_equal(rows, image[7:27])
        assert exp._map is None  # nothing mapped
        again = exp.read_stored(slice(40, 50), out=buf)  # the same buffer, other rows
        np.testing.assert_array_equal(again, image[40:50])
        big = exp.read_stored(slice(0, 50), out=buf)  # too small a buffer: read as before
        assert not np.shares_memory(big, buf)
        np.testing.assert_array_equal(big, image)


# --------------------------------------------------------------------------- files that are not exposures
@pytest.mark.parametrize("compress", [False, True])
def test_processed_without_image_hdu_is_an_error(tmp_path, rng, compress):
    # afw layout with the IMAGE plane gone: the MASK must not be shown as the image
    image, mask, variance = _planes(rng)
    full = write_processed_fits(tmp_path / "full.fits", image, mask=mask, variance=variance, header=META)
    with fits.open(full) as hdul:
        kept = [hdul[0].copy()] + [
            fits.CompImageHDU(h.data, header=h.header) if compress else h.copy() for h in hdul[2:]]
        fits.HDUList(kept).writeto(tmp_path / "noimage.fits")
    with pytest.raises(InputError, match="without its IMAGE HDU.*MASK and VARIANCE") as err:
        identify(tmp_path / "noimage.fits")
    assert str(tmp_path / "noimage.fits") in str(err.value)
    with pytest.raises(InputError, match="IMAGE HDU"):
        open_exposure(tmp_path / "noimage.fits")


def write_guider_stamps(path, n_stamps=5, rows=100, cols=50):
    """A guider stamp file laid out as the camera writes them (checked against obs_lsst's
    test file MC_C_20240918_000013_R00_SG0_guider.fits): a primary header with N_STAMPS,
    ROISEG, ROIROWS, ROICOLS, then one RICE-compressed int32 ``IMAGE`` HDU per stamp."""
    ph = fits.Header({"INSTRUME": "lsstCam", "RAFTBAY": "R00", "CCDSLOT": "SG0", "DAYOBS": "20240918",
                      "SEQNUM": 13, "CONTRLLR": "C", "OBSID": "MC_C_20240918_000013", "IMGTYPE": "UNKNOWN",
                      "N_STAMPS": n_stamps, "ROICOL": 254, "ROIROW": 975, "ROICOLS": cols, "ROIROWS": rows,
                      "ROISEG": "Segment03", "STAMPCLS": "lsst.meas.algorithms.Stamps"})  # fmt: skip
    stamps = [fits.CompImageHDU(np.full((rows, cols), 1000 + i, np.int32), name="IMAGE", compression_type="RICE_1",
                                header=fits.Header({"STMPTIME": f"2024-09-18T13:51:{28 + i:02d}.5"}))
              for i in range(n_stamps)]  # fmt: skip
    fits.HDUList([fits.PrimaryHDU(header=ph), *stamps]).writeto(path)
    return path


def test_guider_stamp_file_is_refused(tmp_path):
    path = write_guider_stamps(tmp_path / "MC_C_20240918_000013_R00_SG0_guider.fits")
    for call in (identify, open_exposure):
        with pytest.raises(InputError, match=r"guider stamp file \(5 stamp\(s\) of 100 x 50 pixels from R00_SG0") as e:
            call(path)
        assert str(path) in str(e.value)


def test_cli_inspect_guider_and_noimage_partial(tmp_path, rng, capsys):
    from cpmosaic.cli.main import main

    good = write_processed_fits(tmp_path / "good.fits", _planes(rng)[0], header=META)
    guider = write_guider_stamps(tmp_path / "g_guider.fits")
    assert main(["inspect", str(good), str(guider), "--format", "json"]) == 3
    import json

    docs = json.loads(capsys.readouterr().out)
    assert docs[0]["exposure"] == 2025061800042 and "error" not in docs[0]
    assert "guider stamp file" in docs[1]["error"]
