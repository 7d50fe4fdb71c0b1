"""Raw LSST FITS files: a primary header and one int32 HDU per amplifier.

Layout (as the camera writes, and as obs_lsst reads):

* HDU 0: header only (RAFTBAY, CCDSLOT, LSST_NUM, CCD_MANU, IMGTYPE, EXPTIME,
  DARKTIME, OBSID, DAYOBS, SEQNUM, MJD-OBS, FILTER, DETSIZE, INSTRUME, ...);
* HDUs 1..N: ``SegmentNN`` for amp ``CNN`` in readout order (``Segment10..17``,
  ``Segment07..00``), int32 of the amp's ``raw_bbox`` size (576 x 2048 at full
  size), optionally RICE_1 tile-compressed.

Pixel convention (readers depend on it): a segment holds
``bias_level + signal / gain`` rounded to int32, where ``signal`` (e-) of the
data box is the *flipped* view of the detector image:
``raw[amp.raw_data_bbox.slices] = bias + img[amp.bbox.slices][::fy, ::fx] / gain``
with ``fy = -1`` when ``amp.flip_y`` and ``fx = -1`` when ``amp.flip_x`` (readout
order).  Prescan, serial and parallel overscan hold the same bias level plus
read noise, so subtracting the overscan mean and multiplying by the gain gives
back the processed image (up to rounding).  DETSEC is written the correct way
round (not with the DM-36115 swap of older files).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from ..camera import Amplifier, Detector
from .images import DetectorModel, ExposureImage, ExposureMeta

__all__ = ["raw_filename", "primary_header", "segment_header", "raw_segments", "write_raw"]

_TELESCOPE = {"LSSTCam": "Simonyi Survey Telescope", "LSSTComCam": "Simonyi Survey Telescope",
              "LATISS": "Rubin Auxiliary Telescope"}


def raw_filename(exposure: int, det: Detector) -> str:
    """obs_lsst's raw file name, e.g. ``2025061800123-R22-S11-det094.fits``."""
    return f"{exposure}-{det.raft}-{det.sensor}-det{det.id:03d}.fits"


def _vendor(det: Detector) -> str:
    pt = det.physical_type.upper()
    return "E2V" if pt.startswith("E2V") else ("ITL" if pt.startswith("ITL") else pt or "UNKNOWN")


def primary_header(det: Detector, meta: ExposureMeta):
    """The primary header of a raw file (keys and comments as in real LSSTCam raws)."""
    from astropy.io import fits

    vendor = _vendor(det)
    h = fits.Header()
    cards = [
        ("DATE", meta.date_obs, "Creation Date and Time of File"),
        ("MJD", meta.mjd, "Modified Julian Date the file was written"),
        ("RUNNUM", str(meta.seq_num), "The Run Number"),
        ("CCD_MANU", vendor, "CCD Manufacturer"),
        ("CCD_TYPE", "CCD250" if vendor == "E2V" else "3800C", "CCD Model Number"),
        ("TESTTYPE", meta.imgtype, "BIAS, DARK, FE55, FLAT, LAMBDA, SPOT"),
        ("IMGTYPE", meta.imgtype, "BIAS, DARK, FE55, FLAT, FLAT_<lam>, SPOT, PPUMP"),
        ("OBSTYPE", meta.imgtype, "BIAS, DARK, FLAT, ..."),
        ("REASON", meta.calib_type, "Reason for the exposure"),
        ("DETSIZE", f"[1:{det.width},1:{det.height}]", None),
        ("EXPTIME", meta.exptime, "Exposure Time in Seconds"),
        ("DARKTIME", meta.darktime, "Dark Time in Seconds (see TSEIA-91)"),
        ("BINX", 1, "[pixels] binning along X axis"),
        ("BINY", 1, "[pixels] binning along Y axis"),
        ("CCDGAIN", 1.0, "Rough guess at overall system gain (e-/DNB)"),
        ("CCDNOISE", 10.0, "Rough guess at system noise (e- rms)"),
        ("DATE-OBS", meta.date_obs, "Date of the image trigger (readout), UTC"),
        ("MJD-OBS", meta.mjd, "Modified Julian Date of image trigger"),
        ("DATE-TRG", meta.date_obs, "Date of the image trigger (readout), UTC"),
        ("MJD-TRG", meta.mjd, "Modified Julian Date of image trigger"),
        ("TIMESYS", "TAI", None),
        ("CCDSLOT", det.sensor, "The CCD Slot"),
        ("RAFTBAY", det.raft, "The RAFT Bay"),
        ("OBSID", meta.obs_id, "The image name or obs-id"),
        ("TELCODE", meta.obs_id[:2], "The code for AuxTel | ComCam | Main Camera"),
        ("CONTRLLR", "O", "The controller (e.g. O for OCS, C for CCS)"),
        ("DAYOBS", str(meta.day_obs), "The observation day"),
        ("SEQNUM", meta.seq_num, "The sequence number from the image name"),
        ("HEADVER", 2, "Version number of header"),
        ("INSTRUME", meta.instrument, "Instrument"),
        ("TELESCOP", _TELESCOPE.get(meta.instrument, "LSST"), "Telescope"),
        ("LSST_NUM", det.serial or f"{vendor}-{det.id:03d}", "LSST Assigned CCD Number"),
        ("FILTER", meta.physical_filter, "Name of the filter"),
        ("CHIPID", det.name, None),
    ]
    for key, value, comment in cards:
        h[key] = (value, comment) if comment else value
    return h


def _sec(lo: int, hi: int, flip: bool) -> str:
    """1-based inclusive FITS range, reversed when the axis is flipped."""
    return f"{hi}:{lo + 1}" if flip else f"{lo + 1}:{hi}"


def segment_header(det: Detector, amp: Amplifier, channel: int):
    """The header of one amp segment: EXTNAME, CHANNEL, DATASEC, DETSEC, DETSIZE, DTV/DTM."""
    from astropy.io import fits

    d, b = amp.raw_data_bbox, amp.bbox
    h = fits.Header()
    h["HEADVER"] = (1, "Version number of header")
    h["CHANNEL"] = channel
    h["EXTNAME"] = amp.segment_name
    h["CCDSUM"] = "1 1"
    h["DATASEC"] = f"[{d.x0 + 1}:{d.x1},{d.y0 + 1}:{d.y1}]"
    h["DETSEC"] = f"[{_sec(b.x0, b.x1, amp.flip_x)},{_sec(b.y0, b.y1, amp.flip_y)}]"
    h["DETSIZE"] = f"[1:{det.width},1:{det.height}]"
    # detector (1-based) = DTM * raw (1-based) + DTV
    h["DTV1"] = ((b.x1 + d.x0 + 1) if amp.flip_x else (b.x0 - d.x0), "detector transformation vector")
    h["DTV2"] = ((b.y1 + d.y0 + 1) if amp.flip_y else (b.y0 - d.y0), "detector transformation vector")
    h["DTM1_1"] = (-1.0 if amp.flip_x else 1.0, "detector transformation matrix")
    h["DTM2_2"] = (-1.0 if amp.flip_y else 1.0, "detector transformation matrix")
    h["DTM1_2"] = (0.0, "detector transformation matrix")
    h["DTM2_1"] = (0.0, "detector transformation matrix")
    return h


def _readout_order(det: Detector) -> list[tuple[int, Amplifier]]:
    # stable sort: obs_lsst gives two wavefront amps the same HDU number
    return sorted(enumerate(det.amplifiers), key=lambda ia: ia[1].hdu)


def raw_segments(model: DetectorModel, exp: ExposureImage, rng: np.random.Generator) -> list[np.ndarray]:
    """int32 segments in readout (HDU) order, see the module docstring."""
    det = model.detector
    total = exp.image + exp.bias
    out = []
    for i, amp in _readout_order(det):
        if model.dead:
            out.append(np.zeros(amp.raw_bbox.shape, np.int32))
            continue
        gain = model.gain[i]
        seg = rng.standard_normal(amp.raw_bbox.shape, dtype=np.float32)
        seg *= np.float32(model.read_noise[i] / gain)
        seg += np.float32(model.bias_adu[i])
        region = total[amp.bbox.slices]
        region = region[:: -1 if amp.flip_y else 1, :: -1 if amp.flip_x else 1]
        seg[amp.raw_data_bbox.slices] = np.float32(model.bias_adu[i]) + region / np.float32(gain)
        out.append(np.rint(seg).astype(np.int32))
    return out


_BLOCK = 2880
# checksum characters must avoid the punctuation between digits and letters
_EXCLUDE = frozenset((0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60))


def _ones_sum(buf: bytes, start: int = 0) -> int:
    """32-bit ones'-complement sum of big-endian words (FITS checksum convention)."""
    a = np.frombuffer(buf, dtype=">u4")
    s = int(start) + int(a.sum(dtype=np.uint64))
    while s >> 32:
        s = (s & 0xFFFFFFFF) + (s >> 32)
    return s


def _encode_checksum(value: int) -> str:
    """The 16-character ASCII encoding of a checksum (FITS checksum proposal, A.7.2)."""
    asc = [0] * 16
    for i in range(4):
        byte = (value >> (8 * (3 - i))) & 0xFF
        q, r = byte // 4 + ord("0"), byte % 4
        ch = [q + r, q, q, q]
        changed = True
        while changed:
            changed = False
            for j in (0, 2):
                while ch[j] in _EXCLUDE or ch[j + 1] in _EXCLUDE:
                    ch[j] += 1
                    ch[j + 1] -= 1
                    changed = True
        for j in range(4):
            asc[4 * j + i] = ch[j]
    return bytes(asc[(i + 15) % 16] for i in range(16)).decode("ascii")


def _card(key: str, value, comment: str | None = None) -> str:
    from astropy.io import fits

    return fits.Card(key, value, comment).image


def _hdu_bytes(cards: list[str], data: bytes) -> bytes:
    """One HDU (header + data, both padded to 2880 bytes) with CHECKSUM and DATASUM."""
    data = data + b"\0" * (-len(data) % _BLOCK)
    datasum = _ones_sum(data)
    tail = [_card("CHECKSUM", "0" * 16, "HDU checksum"), _card("DATASUM", str(datasum), "data unit checksum")]

    def block(c: list[str]) -> bytes:
        text = "".join(c) + "END".ljust(80)
        return (text + " " * (-len(text) % _BLOCK)).encode("ascii")

    total = _ones_sum(block(cards + tail), datasum)
    tail[0] = _card("CHECKSUM", _encode_checksum(~total & 0xFFFFFFFF), "HDU checksum")
    return block(cards + tail) + data


@functools.lru_cache(maxsize=512)
def _segment_cards(det: Detector) -> tuple[tuple[str, ...], ...]:
    """Card images of every segment header (they do not change between exposures)."""
    out = []
    for channel, (_, amp) in enumerate(_readout_order(det), start=1):
        h, w = amp.raw_bbox.shape
        head = [_card("XTENSION", "IMAGE", "Image extension"), _card("BITPIX", 32, "array data type"),
                _card("NAXIS", 2, "number of array dimensions"), _card("NAXIS1", w), _card("NAXIS2", h),
                _card("PCOUNT", 0, "number of parameters"), _card("GCOUNT", 1, "number of groups")]
        out.append(tuple(head + [c.image for c in segment_header(det, amp, channel).cards]))
    return tuple(out)


def write_raw(path: str | os.PathLike, model: DetectorModel, meta: ExposureMeta, exp: ExposureImage,
              rng: np.random.Generator, *, compress: bool = False) -> Path:
    """Write one raw file; ``compress`` uses RICE_1 tile compression (lossless for int32).

    Uncompressed files are assembled byte by byte (header cards formatted by
    astropy, checksums computed here): an order of magnitude faster than building
    astropy HDUs, and byte-identical for a given seed (no timestamps).
    """
    det = model.detector
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    segments = raw_segments(model, exp, rng)
    primary = primary_header(det, meta)
    if compress:
        from astropy.io import fits

        hdus = [fits.PrimaryHDU(header=primary)]
        for (_, amp), data, cards in zip(_readout_order(det), segments, _segment_cards(det)):
            hdr = fits.Header([fits.Card.fromstring(c) for c in cards[7:]])
            hdus.append(fits.CompImageHDU(data=data, header=hdr, compression_type="RICE_1", name=amp.segment_name))
        fits.HDUList(hdus).writeto(path, overwrite=True, checksum=True)
        return path
    head = [_card("SIMPLE", True, "conforms to FITS standard"), _card("BITPIX", 8, "array data type"),
            _card("NAXIS", 0, "number of array dimensions"), _card("EXTEND", True)]
    parts = [_hdu_bytes(head + [c.image for c in primary.cards], b"")]
    for data, cards in zip(segments, _segment_cards(det)):
        parts.append(_hdu_bytes(list(cards), data.astype(">i4").tobytes()))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(b"".join(parts))
    os.replace(tmp, path)  # readers never see half a file
    return path
