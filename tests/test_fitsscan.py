"""cpmosaic.io.fitsscan against astropy: every card value and data offset of real and synthetic files."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from cpmosaic.io import identify, open_exposure, write_processed_fits
from cpmosaic.io import formats as formats_module
from cpmosaic.io.fitsscan import ScanError, ScannedFile, scan_fits


def _same(ours, theirs) -> bool:
    if isinstance(theirs, float) and isinstance(ours, float) and math.isnan(theirs):
        return math.isnan(ours)
    if isinstance(theirs, fits.card.Undefined):
        return ours is None
    return type(ours) is type(theirs) and ours == theirs


def assert_matches_astropy(path: Path) -> None:
    scanned = scan_fits(path)
    with fits.open(path, disable_image_compression=True) as hdul:
        assert len(scanned) == len(hdul)
        for ours, theirs in zip(scanned, hdul):
            info = theirs.fileinfo()
            assert (ours.header_offset, ours.data_offset, ours.fileinfo()["datSpan"]) == \
                (info["hdrLoc"], info["datLoc"], info["datSpan"])
            assert ours.name == theirs.name
            seen = set()
            for card in theirs.header.cards:
                key = card.keyword
                if key in ("", "COMMENT", "HISTORY") or key in seen:
                    continue
                seen.add(key)
                assert key in ours.header, f"{path.name} HDU {ours.index}: {key} missing"
                assert _same(ours.header[key], card.value), (path.name, ours.index, key, ours.header[key], card.value)
            assert len(ours.header) == len(seen)


def test_real_raw_headers_match_astropy(reference_dir: Path, tmp_path: Path) -> None:
    # real LSSTCam/ComCam raws: HIERARCH keys, long strings, RICE tables (.fz);
    # three of them are gzip streams, which the scanner leaves alone: scan their content
    files = sorted((reference_dir / "raw").glob("*.fits*"))
    assert files
    for path in files:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            assert formats_module._scan(path) is None
            path = tmp_path / path.name
            path.write_bytes(gzip.decompress(data))
        assert_matches_astropy(path)


def test_processed_file_with_mask_planes_and_long_keys(tmp_path: Path) -> None:
    path = tmp_path / "calexp.fits"
    image = np.arange(35, dtype=np.float32).reshape(7, 5)
    header = {"INSTRUME": "LSSTCam", "DETNAME": "R22_S11", "DETECTOR": 94, "EXPTIME": 30.5, "FILTER": "r_57",
              "LONG KEY NAME": "it's quoted", "NOTE": "x" * 100, "FLAG": False, "MJD-OBS": 60000.25}
    write_processed_fits(path, image, mask=np.zeros((7, 5), np.int32), variance=np.ones((7, 5)), header=header,
                         mask_planes={"BAD": 0, "MY_LONG_PLANE": 12})
    assert_matches_astropy(path)
    scanned = scan_fits(path)
    assert [h.name for h in scanned] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE"]
    assert scanned[0].header["NOTE"] == "x" * 100  # CONTINUE'd string
    assert scanned[1].shape == (7, 5)
    raw = np.fromfile(path, ">f4", count=35, offset=scanned[1].data_offset).reshape(7, 5)
    np.testing.assert_array_equal(raw, image)


def test_scanned_and_astropy_open_agree(tmp_path: Path) -> None:
    path = tmp_path / "bias.fits"
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1, (40, 30)).astype(np.float32)
    write_processed_fits(path, image, mask=rng.integers(0, 8, (40, 30)).astype(np.int32),
                         header={"INSTRUME": "LSSTCam", "DETNAME": "R01_S00", "DAYOBS": "20261125", "SEQNUM": 7},
                         xy0=(3, 4))  # fmt: skip
    with open_exposure(path) as fast:
        assert isinstance(fast._hdul, ScannedFile)  # the fast path was taken
        got = (fast.info, fast.read(slice(5, 9)), fast.read_mask(), fast.xy0, fast.mask_planes)
        assert fast.header["DETNAME"] == "R01_S00"  # the astropy header, opened on demand
    original = formats_module._scan
    formats_module._scan = lambda p: None
    try:
        with open_exposure(path) as slow:
            assert not isinstance(slow._hdul, ScannedFile)
            want = (slow.info, slow.read(slice(5, 9)), slow.read_mask(), slow.xy0, slow.mask_planes)
    finally:
        formats_module._scan = original
    assert got[0] == want[0] and got[3:] == want[3:]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


def test_files_the_scanner_leaves_to_astropy(tmp_path: Path) -> None:
    good = tmp_path / "good.fits"
    write_processed_fits(good, np.ones((4, 4)), header={"INSTRUME": "LSSTCam", "DETNAME": "R22_S11"})
    data = good.read_bytes()
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(data[:-2880])
    with pytest.raises(ScanError, match="truncated"):
        scan_fits(truncated)
    notfits = tmp_path / "notes.fits"
    notfits.write_bytes(b"hello" * 1000)
    with pytest.raises(ScanError, match="SIMPLE|END"):
        scan_fits(notfits)
    # gzip'd and scaled (BZERO) images go to astropy, and still read the same
    gz = tmp_path / "good.fits.gz"
    gz.write_bytes(gzip.compress(data))
    assert formats_module._scan(gz) is None
    assert identify(gz) == identify(good).__class__(**{**identify(good).__dict__, "path": str(gz)})
    scaled = tmp_path / "scaled.fits"
    values = np.arange(65520, 65536, dtype=np.uint16).reshape(4, 4)  # stored as int16 with BZERO = 32768
    blanked = fits.ImageHDU(np.arange(-3, 13, dtype=np.int16).reshape(4, 4), name="VARIANCE")
    blanked.header["BLANK"], blanked.header["BSCALE"] = 12, 0.5
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(values, name="IMAGE"), blanked]).writeto(scaled)
    assert formats_module._scan(scaled) is None
    with open_exposure(scaled) as exp:
        np.testing.assert_array_equal(exp.read(slice(1, 3)), values[1:3].astype(np.float32))
        with fits.open(scaled, memmap=False) as hdul:
            want = hdul["VARIANCE"].data  # astropy's own scaling, BLANK as NaN
        np.testing.assert_array_equal(exp.read_variance(), want.astype(np.float32))
        assert np.isnan(exp.read_variance()[3, 3])


def test_real_rice_raw_reads_the_same_scanned_or_through_astropy(reference_dir: Path) -> None:
    path = next((reference_dir / "raw").glob("*.fits.fz"))
    with open_exposure(path) as fast:
        assert isinstance(fast._hdul, ScannedFile) and fast.info.kind == "raw"
        got = (fast.info, fast.read(), fast.read(slice(1990, 2010)))
        assert fast.header["INSTRUME"]  # the astropy header, opened on demand
    original = formats_module._scan
    formats_module._scan = lambda p: None
    try:
        with open_exposure(path) as slow:
            assert not isinstance(slow._hdul, ScannedFile)
            want = (slow.info, slow.read(), slow.read(slice(1990, 2010)))
    finally:
        formats_module._scan = original
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
