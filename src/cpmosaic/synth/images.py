"""Signal models for synthetic bias, dark and flat data.

Everything here is arrays in, arrays out (no files).  Images are float32
``[y, x]`` in assembled detector pixels, in electrons, with row index growing
with focal-plane y (the package convention).

Model of one detector (:class:`DetectorModel`, fixed by ``(seed, detector id)``):

* per-amp raw bias level (ADU, amp-to-amp offsets), read noise (the camera's
  ``amp.read_noise`` in e-, times 3 for an injected *noisy amp*) and gain;
* a bias structure in e- that survives overscan subtraction: a small glow at
  each amp's readout corner, plus +50 e- over an injected *hot amp*;
* flat response: a raft-level factor and a per-amp step (gain mismatch), times
  the focal-plane vignetting (a function of focal-plane radius in mm);
* defects: bad columns (low in flats, warm in darks) and hot pixels.

An exposure (:func:`exposure_image`) adds dark current, illumination, shot and
read noise and cosmic rays; a combined calibration (:func:`calib_image`) is the
noise-reduced expectation.  Randomness always comes from a generator seeded by
``(seed, what, detector id, exposure)`` so detectors can be made in any order,
in parallel, with identical results.
"""

from __future__ import annotations

import datetime as _dt
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..camera import Detector

__all__ = [
    "CALIB_TYPES",
    "MASK_PLANES",
    "ExposureMeta",
    "SignalParams",
    "DetectorModel",
    "ExposureImage",
    "make_detector_model",
    "vignetting",
    "bias_structure",
    "exposure_image",
    "calib_image",
    "derive_rng",
    "flat_level",
    "pick_anomalies",
    "pick_calib_differences",
    "pick_free_amps",
    "mjd_of",
]

CALIB_TYPES: tuple[str, ...] = ("bias", "dark", "flat")
#: Codes mixed into seeds so that bias, dark and flat draws never collide.
TYPE_CODE = {"bias": 1, "dark": 2, "flat": 3}
#: afw's default mask planes (name -> bit).
MASK_PLANES: dict[str, int] = {
    "BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4,
    "DETECTED": 5, "DETECTED_NEGATIVE": 6, "SUSPECT": 7, "NO_DATA": 8,
}
_INSTRUMENT_CODE = {"LSSTCam": "MC", "LSSTComCam": "CC", "LATISS": "AT"}
_DEFAULT_READ_NOISE = 6.0  # e-, for cameras whose description lacks one


def derive_rng(seed: int, *parts: int) -> np.random.Generator:
    """A generator seeded by ``(seed, *parts)``: independent streams per task."""
    return np.random.default_rng([int(seed), *(int(p) for p in parts)])


def flat_level(seed: int, exposure: int, params: "SignalParams") -> float:
    """The lamp level (e-) of one flat exposure: the same for every detector."""
    return float(params.flat_level * (1.0 + 0.01 * derive_rng(seed, 200, exposure).standard_normal()))


def mjd_of(day_obs: int, fraction: float) -> float:
    """MJD (UTC) of ``fraction`` of a day after 00:00 UTC on ``day_obs``."""
    d = _dt.date(day_obs // 10000, day_obs // 100 % 100, day_obs % 100)
    return float((d - _dt.date(1858, 11, 17)).days) + fraction


@dataclass(frozen=True)
class ExposureMeta:
    """Metadata of one synthetic exposure (what raw headers and Butler records say)."""

    instrument: str
    calib_type: str
    day_obs: int
    seq_num: int
    mjd: float
    exptime: float
    darktime: float
    physical_filter: str = "r_57"

    @property
    def exposure(self) -> int:
        """obs_lsst's exposure id: ``int(f"{dayobs}{seqnum:05d}")`` (CONTRLLR "O" adds no offset)."""
        return int(f"{self.day_obs}{self.seq_num:05d}")

    @property
    def obs_id(self) -> str:
        code = _INSTRUMENT_CODE.get(self.instrument, "MC")
        return f"{code}_O_{self.day_obs}_{self.seq_num:06d}"

    @property
    def imgtype(self) -> str:
        return self.calib_type.upper()

    @property
    def date_obs(self) -> str:
        """ISO-8601 UTC of ``mjd`` (millisecond precision, as the camera writes)."""
        t = _dt.datetime(1858, 11, 17) + _dt.timedelta(days=self.mjd)
        return t.isoformat(timespec="milliseconds")

    def to_dict(self) -> dict:
        return {
            "instrument": self.instrument, "calib_type": self.calib_type, "day_obs": self.day_obs,
            "seq_num": self.seq_num, "exposure": self.exposure, "obs_id": self.obs_id, "mjd": self.mjd,
            "exptime": self.exptime, "darktime": self.darktime, "physical_filter": self.physical_filter,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "ExposureMeta":
        return cls(d["instrument"], d["calib_type"], int(d["day_obs"]), int(d["seq_num"]), float(d["mjd"]),
                   float(d["exptime"]), float(d["darktime"]), d.get("physical_filter", "r_57"))


@dataclass(frozen=True)
class SignalParams:
    """Knobs of the signal model (defaults are LSSTCam-like)."""

    bias_level_adu: float = 20000.0  #: mean raw bias level; amps spread by +-bias_spread_adu
    bias_spread_adu: float = 3000.0
    corner_glow_e: float = 1.5  #: amplitude of the readout-corner glow in bias frames
    hot_amp_offset_e: float = 50.0  #: bias offset of the injected hot amp
    noisy_amp_factor: float = 3.0  #: read-noise multiplier of the injected noisy amp
    dark_current: float = 0.02  #: e-/s/pixel
    exptime: Mapping[str, float] = field(default_factory=lambda: {"bias": 0.0, "dark": 30.0, "flat": 15.0})
    dark_overhead: float = 0.4  #: s added to exptime for the dark time
    flat_level: float = 20000.0  #: e- at the focal-plane centre in a flat exposure
    vignetting_start_mm: float = 240.0  #: radius where the falloff starts
    vignetting_scale_mm: float = 160.0
    vignetting_depth: float = 0.3  #: fractional loss at start + scale; floored at 1 - depth
    raft_sigma: float = 0.01  #: raft-to-raft response scatter
    amp_sigma: float = 0.004  #: amp-to-amp response (gain) steps
    bad_columns: int = 2
    bad_column_response: float = 0.4  #: flat response of a bad column
    bad_column_dark: float = 0.5  #: extra dark current of a bad column, e-/s
    hot_pixel_density: float = 2e-5
    hot_pixel_rate: tuple[float, float] = (2.0, 20.0)  #: e-/s range
    cr_rate: float = 0.03  #: cosmic rays per cm^2 per second of dark time
    combine_n: int = 20  #: exposures in a combined calibration


@dataclass(frozen=True, eq=False)
class DetectorModel:
    """The fixed properties of one detector (see the module docstring)."""

    detector: Detector
    bias_adu: np.ndarray
    read_noise: np.ndarray
    gain: np.ndarray
    offset_e: np.ndarray
    response: np.ndarray
    bad_columns: np.ndarray
    hot_y: np.ndarray
    hot_x: np.ndarray
    hot_rate: np.ndarray
    dead: bool = False

    def amp_index(self, name: str) -> int:
        return self.detector.amp_names.index(name)


@dataclass(frozen=True, eq=False)
class ExposureImage:
    """One exposure in electrons.

    ``image`` holds signal + noise + cosmic rays, ``bias`` the noise-free bias
    structure: the raw data area is ``bias + image`` (before gain and bias level),
    a processed bias is ``bias + image``, a processed dark or flat is ``image``
    (bias subtraction removes the structure).
    """

    image: np.ndarray
    bias: np.ndarray | None
    variance: np.ndarray | None
    mask: np.ndarray | None


def _raft_factor(seed: int, raft: str, sigma: float) -> float:
    # crc32: a stable integer for any raft name, unlike hash()
    return float(1.0 + sigma * derive_rng(seed, 7, zlib.crc32(raft.encode())).standard_normal())


def make_detector_model(det: Detector, seed: int, anomalies: Iterable[Mapping] = (),
                        params: SignalParams = SignalParams()) -> DetectorModel:
    """Draw the fixed properties of *det* and apply the anomalies that concern it.

    Anomalies are manifest entries: ``{"kind": "hot_amp"|"noisy_amp"|"dead_detector",
    "detector": id, "amp": name}``.
    """
    rng = derive_rng(seed, 0, det.id)
    n = len(det.amplifiers)
    bias = params.bias_level_adu + rng.uniform(-params.bias_spread_adu, params.bias_spread_adu, n)
    rn = np.array([a.read_noise for a in det.amplifiers], float)
    rn = np.where(np.isfinite(rn) & (rn > 0), rn, _DEFAULT_READ_NOISE)
    gain = np.array([a.gain if a.gain > 0 else 1.0 for a in det.amplifiers], float)
    response = _raft_factor(seed, det.raft, params.raft_sigma) * (1.0 + params.amp_sigma * rng.standard_normal(n))
    offset = np.zeros(n)
    bad_cols = np.sort(rng.choice(det.width, size=min(params.bad_columns, det.width), replace=False))
    n_hot = max(3, int(round(params.hot_pixel_density * det.width * det.height)))
    hot_y = rng.integers(0, det.height, n_hot)
    hot_x = rng.integers(0, det.width, n_hot)
    hot_rate = rng.uniform(*params.hot_pixel_rate, n_hot)
    dead = False
    for a in anomalies:
        if int(a.get("detector", -1)) != det.id:
            continue
        if a["kind"] == "hot_amp":
            offset[det.amp_names.index(a["amp"])] += float(a.get("size", params.hot_amp_offset_e))
        elif a["kind"] == "noisy_amp":
            rn[det.amp_names.index(a["amp"])] *= float(a.get("size", params.noisy_amp_factor))
        elif a["kind"] == "dead_detector":
            dead = True
    return DetectorModel(det, bias, rn, gain, offset, response, bad_cols, hot_y, hot_x, hot_rate, dead)


def focal_plane_radius(det: Detector) -> np.ndarray:
    """Focal-plane radius (mm) of every pixel centre, float32 ``[y, x]``.

    Pixel -> focal plane is affine and separable in x and y, so the two
    coordinates are built by broadcasting a row and a column (no 2-D meshgrid).
    """
    r = det.rotation
    dx = ((np.arange(det.width) - det.refpos[0]) * det.pixel_size_mm).astype(np.float32)
    dy = ((np.arange(det.height) - det.refpos[1]) * det.pixel_size_mm).astype(np.float32)
    fx = (np.float32(det.offset_mm[0]) + np.float32(r[0, 0]) * dx)[None, :] + (np.float32(r[0, 1]) * dy)[:, None]
    fy = (np.float32(det.offset_mm[1]) + np.float32(r[1, 0]) * dx)[None, :] + (np.float32(r[1, 1]) * dy)[:, None]
    return np.hypot(fx, fy)


def vignetting_of_radius(r_mm, params: SignalParams = SignalParams()):
    """Relative illumination at focal-plane radius ``r_mm`` (1 at the centre)."""
    t = np.clip((np.asarray(r_mm, np.float32) - params.vignetting_start_mm) / params.vignetting_scale_mm, 0.0, 1.0)
    return (1.0 - params.vignetting_depth * t * t).astype(np.float32)


def vignetting(det: Detector, params: SignalParams = SignalParams()) -> np.ndarray:
    """Relative illumination of every pixel of *det*, float32 ``[y, x]``."""
    return vignetting_of_radius(focal_plane_radius(det), params)


def _per_amp(det: Detector, values: np.ndarray) -> np.ndarray:
    out = np.empty(det.shape, np.float32)
    for a, v in zip(det.amplifiers, values):
        out[a.bbox.slices] = v
    return out


def _per_amp_inplace(img: np.ndarray, det: Detector, values: np.ndarray, op: str) -> np.ndarray:
    """``img[amp] (op)= value`` amp by amp (no full-size temporary)."""
    for a, v in zip(det.amplifiers, values):
        region = img[a.bbox.slices]
        if op == "mul":
            region *= np.float32(v)
        else:
            region += np.float32(v)
    return img


def bias_structure(model: DetectorModel, params: SignalParams = SignalParams()) -> np.ndarray:
    """The noise-free bias structure (e-) left after overscan subtraction."""
    det = model.detector
    out = np.zeros(det.shape, np.float32)
    _per_amp_inplace(out, det, model.offset_e, "add")
    for a in det.amplifiers:
        h, w = a.bbox.shape
        # glow decays away from the amp's readout corner, which is the corner
        # that comes first in readout order (flips put it at x1-1 / y1-1)
        scale = max(2.0, 0.01 * max(h, w))
        gx = np.exp(-np.arange(w, dtype=np.float32) / scale)
        gy = np.exp(-np.arange(h, dtype=np.float32) / scale)
        if a.flip_x:
            gx = gx[::-1]
        if a.flip_y:
            gy = gy[::-1]
        out[a.bbox.slices] += params.corner_glow_e * gy[:, None] * gx[None, :]
    return out


def _cosmic_rays(det: Detector, rng: np.random.Generator, seconds: float, params: SignalParams):
    """Pixel coordinates and charges of cosmic-ray tracks (vectorised)."""
    area_cm2 = det.width * det.height * (det.pixel_size_mm / 10.0) ** 2
    n = int(rng.poisson(params.cr_rate * area_cm2 * max(seconds, 1.0)))
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32)
    # track lengths ~ 2-30 full-size pixels, shorter on shrunk detectors
    max_len = max(2, int(round(30 * 0.01 / det.pixel_size_mm)))
    lengths = rng.integers(1, max_len + 1, n)
    y0 = rng.uniform(0, det.height, n)
    x0 = rng.uniform(0, det.width, n)
    ang = rng.uniform(0, np.pi, n)
    charge = rng.uniform(300.0, 3000.0, n)
    which = np.repeat(np.arange(n), lengths)
    step = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ys = np.clip(np.rint(y0[which] + step * np.sin(ang[which])), 0, det.height - 1).astype(int)
    xs = np.clip(np.rint(x0[which] + step * np.cos(ang[which])), 0, det.width - 1).astype(int)
    return ys, xs, (charge[which] / lengths[which]).astype(np.float32)


def _expected(model: DetectorModel, calib_type: str, darktime: float, level: float,
              params: SignalParams) -> np.ndarray:
    """Noise-free signal (e-) of an exposure, bias structure excluded."""
    det = model.detector
    if calib_type == "bias":
        img = np.zeros(det.shape, np.float32)
    elif calib_type == "dark":
        img = np.full(det.shape, params.dark_current * darktime, np.float32)
        img[:, model.bad_columns] += params.bad_column_dark * darktime
        np.add.at(img, (model.hot_y, model.hot_x), (model.hot_rate * darktime).astype(np.float32))
    elif calib_type == "flat":
        img = _per_amp_inplace(vignetting(det, params), det, model.response * level, "mul")
        img[:, model.bad_columns] *= params.bad_column_response
        img += np.float32(params.dark_current * darktime)
    else:
        raise ValueError(f"unknown calibration type {calib_type!r}; expected one of {CALIB_TYPES}")
    return img


def _defect_mask(model: DetectorModel) -> np.ndarray:
    mask = np.zeros(model.detector.shape, np.int32)
    mask[:, model.bad_columns] |= 1 << MASK_PLANES["BAD"]
    mask[model.hot_y, model.hot_x] |= 1 << MASK_PLANES["BAD"]
    return mask


def exposure_image(model: DetectorModel, calib_type: str, rng: np.random.Generator, *,
                   darktime: float, level: float | None = None, params: SignalParams = SignalParams(),
                   planes: bool = True, bias: bool = True) -> ExposureImage:
    """One exposure of *model*: signal + shot and read noise + cosmic rays (e-).

    ``planes=False`` skips the variance and mask, ``bias=False`` the bias
    structure (both then None): full-size processed flats need neither.  The
    image does not depend on either flag.
    """
    det = model.detector
    if model.dead:
        z = np.zeros(det.shape, np.float32)
        no_data = np.full(det.shape, 1 << MASK_PLANES["NO_DATA"], np.int32)
        return ExposureImage(z, z.copy() if bias else None, z.copy() if planes else None, no_data if planes else None)
    level = params.flat_level if level is None else level
    expected = _expected(model, calib_type, darktime, level, params)
    variance = np.maximum(expected, np.float32(0.0))
    _per_amp_inplace(variance, det, model.read_noise**2, "add")
    img = rng.standard_normal(det.shape, dtype=np.float32)
    if planes:
        img *= np.sqrt(variance)
    else:  # reuse the variance buffer: one full-size temporary fewer
        img *= np.sqrt(variance, out=variance)
        variance = None
    img += expected
    del expected
    ys, xs, q = _cosmic_rays(det, rng, darktime, params)
    np.add.at(img, (ys, xs), q)
    mask = None
    if planes:
        mask = _defect_mask(model)
        mask[ys, xs] |= 1 << MASK_PLANES["CR"]
    return ExposureImage(img, bias_structure(model, params) if bias else None, variance, mask)


def calib_image(model: DetectorModel, calib_type: str, rng: np.random.Generator,
                params: SignalParams = SignalParams()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A combined calibration frame ``(image, variance, mask)``.

    bias: the bias structure (e-); dark: the dark-current rate (e-/s); flat: the
    relative response (vignetting x raft x amp x defects), 1 at the focal-plane
    centre.  Noise is that of ``params.combine_n`` combined exposures.
    """
    det = model.detector
    if model.dead:
        z = np.zeros(det.shape, np.float32)
        return z, z.copy(), np.full(det.shape, 1 << MASK_PLANES["NO_DATA"], np.int32)
    n = params.combine_n
    rn2 = _per_amp(det, model.read_noise**2)  # calibration frames are few: clarity over memory
    if calib_type == "bias":
        expected = bias_structure(model, params)
        variance = rn2 / n
    elif calib_type == "dark":
        t = params.exptime["dark"] + params.dark_overhead
        expected = _expected(model, "dark", 1.0, 0.0, params)  # darktime 1 s: a rate
        variance = (np.maximum(expected * t, 0.0) + rn2) / (n * t * t)
    elif calib_type == "flat":
        level = params.flat_level
        expected = _expected(model, "flat", 0.0, 1.0, params)
        variance = (np.maximum(expected * level, 0.0) + rn2) / (n * level * level)
    else:
        raise ValueError(f"unknown calibration type {calib_type!r}; expected one of {CALIB_TYPES}")
    variance = variance.astype(np.float32)
    img = rng.standard_normal(det.shape, dtype=np.float32)
    img *= np.sqrt(variance)
    img += expected
    return img, variance, _defect_mask(model)


# -- where the injected anomalies go ------------------------------------------------
def _science_pool(camera) -> list[Detector]:
    dets = [d for d in camera if d.type == "science"] or list(camera)
    return sorted(dets, key=lambda d: d.id)


def _place(det: Detector, amp: str | None, box=None) -> dict:
    if box is None:
        box = det.amp(amp).bbox if amp else det.bbox
    x, y = det.box_center_mm(box)
    return {"detector": det.id, "detector_name": det.name, "amp": amp,
            "box": [box.x0, box.y0, box.width, box.height], "x_mm": round(x, 4), "y_mm": round(y, 4)}


def pick_anomalies(camera, seed: int, params: SignalParams = SignalParams()) -> list[dict]:
    """Choose (from the seed, among the camera's science detectors) the hot amp,
    the noisy amp and the dead detector.  Each entry says where it is (detector,
    amp, pixel box, focal-plane mm of its centre) and which cp_verify tests it fails.

    The dead detector needs at least three detectors; hot and noisy amps share a
    detector only when the camera has one.
    """
    rng = derive_rng(seed, 900)
    pool = _science_pool(camera)
    perm = [pool[i] for i in rng.permutation(len(pool))]
    out = []
    dead = perm[0] if len(perm) >= 3 else None
    others = [d for d in perm if d is not dead]
    hot, noisy = others[0], others[1 % len(others)]
    hot_amp = str(rng.choice(hot.amp_names))
    noisy_amp = str(rng.choice([a for a in noisy.amp_names if (noisy.id, a) != (hot.id, hot_amp)]))
    out.append({"kind": "hot_amp", **_place(hot, hot_amp), "size": params.hot_amp_offset_e, "unit": "electron",
                "description": f"bias +{params.hot_amp_offset_e:g} e- over the amp (raw, processed and calib bias)",
                "fails": ["bias MEAN"]})
    out.append({"kind": "noisy_amp", **_place(noisy, noisy_amp), "size": params.noisy_amp_factor, "unit": "factor",
                "description": f"read noise x{params.noisy_amp_factor:g} (image area and overscan)",
                "fails": ["bias NOISE", "bias READ_NOISE_CONSISTENT", "dark NOISE", "dark READ_NOISE_CONSISTENT"]})
    if dead is not None:
        out.append({"kind": "dead_detector", **_place(dead, None), "size": 0.0, "unit": "electron",
                    "description": "no signal: raw segments 0, processed and calib images 0 (or NaN / missing)",
                    "fails": ["bias MEAN", "bias CR_NOISE", "dark MEAN", "dark CR_NOISE", "flat SCATTER",
                              "flat EXP SCATTER"]})
    return out


def used_places(anomalies: Iterable[Mapping]) -> tuple[set[int], set[tuple[int, str]]]:
    """(dead detector ids, (detector, amp) pairs) already taken by anomalies."""
    dead = {a["detector"] for a in anomalies if a["kind"] == "dead_detector"}
    amps = {(a["detector"], a["amp"]) for a in anomalies if a.get("amp")}
    return dead, amps


def pick_free_amps(camera, rng: np.random.Generator, n: int, anomalies: Iterable[Mapping]) -> list[tuple[Detector, str]]:
    """``n`` distinct (detector, amp) places, avoiding the dead detector and anomalous amps."""
    dead, taken = used_places(anomalies)
    pool = [d for d in _science_pool(camera) if d.id not in dead] or _science_pool(camera)
    perm = [pool[i] for i in rng.permutation(len(pool))]
    out: list[tuple[Detector, str]] = []
    i = 0
    while len(out) < n and i < 64 * n:
        det = perm[i % len(perm)]
        free = [a for a in det.amp_names if (det.id, a) not in taken]
        if free:
            amp = str(rng.choice(free))
            taken.add((det.id, amp))
            out.append((det, amp))
        i += 1
    return out


def pick_calib_differences(camera, seed: int, calib_types: Sequence[str], anomalies: Iterable[Mapping]) -> list[dict]:
    """Where calibration run B differs from run A (one place per calibration type).

    bias: +5 e- over one amp; dark: +0.5 e-/s in a box a quarter of an amp wide;
    flat: a 2 % gain step over one amp.  Everywhere else B equals A bit for bit.
    """
    rng = derive_rng(seed, 902)
    places = pick_free_amps(camera, rng, len(calib_types), anomalies)
    out = []
    for ct, (det, amp) in zip(calib_types, places):
        bb = det.amp(amp).bbox
        if ct == "dark":
            w, h = max(1, bb.width // 4), max(1, bb.height // 4)
            box = type(bb)(bb.x0 + (bb.width - w) // 2, bb.y0 + (bb.height - h) // 2, w, h)
            out.append({"calib_type": ct, "kind": "offset", "size": 0.5, "unit": "electron/s", **_place(det, amp, box)})
        elif ct == "bias":
            out.append({"calib_type": ct, "kind": "offset", "size": 5.0, "unit": "electron", **_place(det, amp)})
        else:
            out.append({"calib_type": ct, "kind": "gain_step", "size": 1.02, "unit": "factor", **_place(det, amp)})
    return out
