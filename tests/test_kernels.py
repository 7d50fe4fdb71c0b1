"""cpmosaic.kernels: every numba kernel against its plain-numpy twin, plus hand-made cases.

The comparisons are driven by the same table the benchmark uses
(``cpmosaic.kernels._registry.KERNELS``).  All randomness is seeded.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpmosaic.kernels import (
    amp_difference_statistics,
    amp_statistics,
    assemble_amp,
    bin_rotate_into,
    block_reduce,
    pyramid_reduce,
    reference,
    rotate_quarter,
)
from cpmosaic.kernels._registry import KERNELS, make_image

HYPO = settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])

SHAPES = [(1, 1), (2, 3), (7, 9), (16, 16), (33, 20), (64, 65)]
DTYPES = ["float32", ">f4", "float64", ">f8", "int16", ">i2", "uint16", ">i4", "int32"]


def assert_same(got, want, rtol: float, atol: float, label: str = "") -> None:
    """Arrays (or dicts of arrays) agree, NaN where the other is NaN."""
    if isinstance(want, dict):
        assert set(got) == set(want), label
        for key in want:
            assert_same(got[key], want[key], rtol, atol, f"{label}[{key}]")
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{label}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{label}: dtype {got.dtype} != {want.dtype}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=label)


def run_both(name: str, seed: int, shape: tuple[int, int], dtype: str, **options):
    entry = KERNELS[name]
    # Two identical, independent argument sets: in-place kernels never share `out`.
    args1, kw1 = entry["make_args"](np.random.default_rng(seed), shape, dtype, **options)
    args2, kw2 = entry["make_args"](np.random.default_rng(seed), shape, dtype, **options)
    return entry["numba"](*args1, **kw1), entry["numpy"](*args2, **kw2)


# --------------------------------------------------------------------------- table-driven
@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_matches_reference(name: str, dtype: str) -> None:
    entry = KERNELS[name]
    for seed, shape in enumerate(SHAPES):
        got, want = run_both(name, seed, shape, dtype)
        assert_same(got, want, entry["rtol"], entry["atol"], f"{name} {shape} {dtype} seed={seed}")


@pytest.mark.parametrize("name", [n for n in sorted(KERNELS) if "reduce" in n or n == "bin_rotate_into"])
def test_reductions_with_masks_and_factors(name: str) -> None:
    entry = KERNELS[name]
    opts = {} if name == "pyramid_reduce" else {"masked": True}
    for seed in range(6):
        for shape in [(5, 7), (31, 17), (40, 64)]:
            for nan_frac in (0.0, 0.2, 0.9):
                got, want = run_both(name, seed, shape, ">f4", nan_frac=nan_frac, **opts)
                assert_same(got, want, entry["rtol"], entry["atol"], f"{name} {shape} seed={seed}")


@pytest.mark.parametrize("name", ["amp_statistics", "amp_difference_statistics"])
@pytest.mark.parametrize("masked", [False, True])
def test_statistics_match_reference(name: str, masked: bool) -> None:
    entry = KERNELS[name]
    for seed, (shape, dtype) in enumerate([((100, 80), "float32"), ((64, 96), ">f8"), ((50, 41), "int16")]):
        got, want = run_both(name, seed, shape, dtype, masked=masked, nan_frac=0.05)
        assert_same(got, want, entry["rtol"], entry["atol"], f"{name} {shape} {dtype}")


@pytest.mark.parametrize("mode", ["median", "mean", "single", "none"])
@pytest.mark.parametrize("flip_x", [False, True])
@pytest.mark.parametrize("flip_y", [False, True])
def test_assemble_flips_and_row_ranges(mode: str, flip_x: bool, flip_y: bool) -> None:
    name = f"assemble_amp_{mode}"
    entry = KERNELS[name]
    for seed, rows in enumerate([None, (0, 1), (3, 17), (20, 20), (5, 49)]):
        for dtype in (">i4", ">f4", "uint16"):
            got, want = run_both(name, seed, (50, 40), dtype, flip_x=flip_x, flip_y=flip_y, rows=rows)
            assert_same(got, want, entry["rtol"], entry["atol"], f"{name} rows={rows} {dtype}")


# --------------------------------------------------------------------------- property-based
@HYPO
@given(
    ny=st.integers(1, 40),
    nx=st.integers(1, 40),
    factor=st.integers(1, 9),
    how=st.sampled_from(["mean", "sum", "max", "min"]),
    dtype=st.sampled_from(["float32", ">f4", ">i2", "uint16", ">f8"]),
    seed=st.integers(0, 2**16),
)
def test_block_reduce_property(ny: int, nx: int, factor: int, how: str, dtype: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = make_image(rng, (ny, nx), dtype, nan_frac=0.3)
    mask = rng.integers(0, 4, (ny, nx)).astype(np.uint8)
    got = block_reduce(img, factor, how, mask=mask, mask_bits=2)
    want = reference.block_reduce(img, factor, how, mask=mask, mask_bits=2)
    assert got.shape == (-(-ny // factor), -(-nx // factor))
    assert_same(got, want, 1e-6, 1e-6)


@HYPO
@given(
    ny=st.integers(1, 30),
    nx=st.integers(1, 30),
    factor=st.integers(1, 5),
    n_quarter=st.integers(-6, 6),
    oy=st.integers(-20, 25),
    ox=st.integers(-20, 25),
    seed=st.integers(0, 2**16),
)
def test_bin_rotate_into_property(ny: int, nx: int, factor: int, n_quarter: int, oy: int, ox: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = make_image(rng, (ny, nx), ">f4", nan_frac=0.2)
    got = np.full((17, 23), -1.0, np.float32)
    want = got.copy()
    bin_rotate_into(img, factor, n_quarter, got, oy, ox, "mean")
    reference.bin_rotate_into(img, factor, n_quarter, want, oy, ox, "mean")
    assert_same(got, want, 1e-6, 1e-6)


@HYPO
@given(
    ny=st.integers(1, 30),
    dw=st.integers(1, 30),
    ow=st.integers(1, 12),
    mode=st.sampled_from(["median", "mean", "single", "none"]),
    dtype=st.sampled_from([">i4", ">i2", "uint16", ">f4", "float64"]),
    flips=st.tuples(st.booleans(), st.booleans()),
    seed=st.integers(0, 2**16),
)
def test_assemble_property(ny: int, dw: int, ow: int, mode: str, dtype: str, flips, seed: int) -> None:
    rng = np.random.default_rng(seed)
    seg = make_image(rng, (ny, dw + ow + 1), dtype, level=3000.0, noise=4.0, nan_frac=0.1)
    r0 = int(rng.integers(0, ny + 1))
    r1 = int(rng.integers(r0, ny + 1))
    got = np.full((ny + 2, dw + 3), -5.0, np.float32)
    want = got.copy()
    args = (seg, (1, 0, dw, ny), (dw + 1, 0, ow, ny))
    kw = dict(overscan=mode, gain=1.3, row_start=r0, row_stop=r1)
    assemble_amp(*args, got, 1, 2, *flips, **kw)
    reference.assemble_amp(*args, want, 1, 2, *flips, **kw)
    assert_same(got, want, 1e-6, 1e-3)


# --------------------------------------------------------------------------- hand-computed
def test_block_reduce_3x3_by_2_exact() -> None:
    a = np.arange(9, dtype=np.float32).reshape(3, 3)  # [[0,1,2],[3,4,5],[6,7,8]]
    np.testing.assert_array_equal(block_reduce(a, 2), [[2.0, 3.5], [6.5, 8.0]])
    np.testing.assert_array_equal(block_reduce(a, 2, "sum"), [[8, 7], [13, 8]])
    np.testing.assert_array_equal(block_reduce(a, 2, "max"), [[4, 5], [7, 8]])
    np.testing.assert_array_equal(block_reduce(a.astype(">i4"), 2, "min"), [[0, 2], [6, 8]])


def test_block_reduce_nan_mask_and_empty_blocks() -> None:
    a = np.array([[1, np.nan, 5, 6], [3, 4, np.nan, np.nan]], np.float32)
    mask = np.array([[0, 0, 4, 1], [0, 0, 0, 0]], np.uint16)
    got = block_reduce(a, 2, "mean", mask=mask, mask_bits=4 | 1)
    np.testing.assert_allclose(got, [[8 / 3, np.nan]], rtol=1e-6)
    assert np.isnan(block_reduce(a, 2, "sum", mask=mask, mask_bits=5)[0, 1])  # empty block: NaN, not 0
    f1 = block_reduce(a, 1, mask=mask, mask_bits=4)
    assert f1.dtype == np.float32 and np.isnan(f1[0, 2]) and f1[0, 3] == 6
    np.testing.assert_array_equal(pyramid_reduce(np.ones((3, 5), ">f8")), np.ones((2, 3), np.float32))


@pytest.mark.parametrize("dtype", [">u4", "<u4", ">i8", "uint64"])
def test_wide_and_unsigned_integer_inputs(dtype: str) -> None:
    rng = np.random.default_rng(9)
    seg = rng.integers(20000, 20050, (12, 10)).astype(dtype)
    mask = rng.integers(0, 3, (12, 10)).astype(">i4")  # big-endian masks work too
    assert_same(block_reduce(seg, 3, "sum", mask=mask, mask_bits=1),
                reference.block_reduce(seg, 3, "sum", mask=mask, mask_bits=1), 1e-6, 1e-6)  # fmt: skip
    got = np.zeros((12, 7), np.float32)
    want = got.copy()
    assemble_amp(seg, (0, 0, 7, 12), (7, 0, 3, 12), got, 0, 0, True, False)
    reference.assemble_amp(seg, (0, 0, 7, 12), (7, 0, 3, 12), want, 0, 0, True, False)
    np.testing.assert_array_equal(got, want)


def test_block_reduce_preallocated_out_and_bool_mask() -> None:
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = np.empty((2, 2), np.float32)
    assert block_reduce(a, 2, out=out, mask=np.eye(4, dtype=bool)) is out
    np.testing.assert_allclose(out, [[(1 + 4) / 2, (2 + 3 + 6 + 7) / 4], [(8 + 9 + 12 + 13) / 4, (11 + 14) / 2]])


@pytest.mark.parametrize("n", [0, 1, 2, 3, -1, 5])
def test_rotate_quarter_point_through_rotation_matrix(n: int) -> None:
    """A pixel at (x, y) from the centre lands at R(90 deg * n) (x, y); rows grow with y."""
    ny, nx = 5, 8
    theta = np.pi / 2 * n
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    for (row, col) in [(0, 0), (1, 6), (4, 2), (3, 7)]:
        img = np.zeros((ny, nx), np.int32)
        img[row, col] = 1
        out = rotate_quarter(img, n)
        assert out.flags.c_contiguous
        oy, ox = out.shape
        xy = np.array([col - (nx - 1) / 2, row - (ny - 1) / 2])
        x2, y2 = rot @ xy
        r2, c2 = int(round(y2 + (oy - 1) / 2)), int(round(x2 + (ox - 1) / 2))
        assert out[r2, c2] == 1, (n, row, col)
        np.testing.assert_array_equal(out, np.rot90(img, -n))


def test_rotate_quarter_one_turn_is_counter_clockwise() -> None:
    # Row 0 is the bottom: a pixel right of centre (+x) must end up above it (+y).
    img = np.zeros((3, 3))
    img[1, 2] = 1
    assert rotate_quarter(img, 1)[2, 1] == 1
    assert rotate_quarter(img, 3)[0, 1] == 1
    assert rotate_quarter(img.astype(">f4"), 2)[1, 0] == 1


def test_assemble_hand_computed() -> None:
    # 3 rows; data columns 0-2; overscan columns 3-5.  Row overscan medians: 10, 20, 30.
    seg = np.array([[11, 12, 13, 9, 10, 11], [25, 26, 27, 20, 20, 99], [30, 31, 32, 30, 29, 31]], ">i4")
    out = np.zeros((3, 3), np.float32)
    assemble_amp(seg, (0, 0, 3, 3), (3, 0, 3, 3), out, 0, 0, True, True, gain=2.0)
    np.testing.assert_array_equal(out, [[4, 2, 0], [14, 12, 10], [6, 4, 2]])
    out[:] = -1
    assemble_amp(seg, (0, 0, 3, 3), (3, 0, 3, 3), out, 0, 0, False, False, overscan="single", row_start=1, row_stop=2)
    np.testing.assert_array_equal(out[1], [5, 6, 7])  # single level = median of all 9 overscan pixels = 20
    assert (out[[0, 2]] == -1).all()  # rows outside row_start:row_stop untouched
    assemble_amp(seg, (0, 0, 3, 3), (3, 0, 3, 3), out, 0, 0, False, False, overscan="mean")
    np.testing.assert_allclose(out[1], np.array([25, 26, 27]) - (20 + 20 + 99) / 3, rtol=1e-6)


def test_assemble_integer_overscan_with_cosmic_ray_and_even_count() -> None:
    rng = np.random.default_rng(5)
    seg = rng.integers(20000, 20010, (40, 30)).astype(">i4")
    seg[::3, 25] = 2_000_000  # a cosmic ray: a wide span for the bisection
    for ow in (4, 5):  # even and odd overscan widths
        got = np.zeros((40, 20), np.float32)
        want = got.copy()
        assemble_amp(seg, (2, 0, 20, 40), (24, 0, ow, 40), got, 0, 0, False, False)
        reference.assemble_amp(seg, (2, 0, 20, 40), (24, 0, ow, 40), want, 0, 0, False, False)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype,lo,hi", [(">i2", -32768, 32767), ("<i2", -40, 40), ("uint16", 0, 65535),
                                          (">u4", 4_294_967_000, 4_294_967_295), (">i4", -(2**31), 2**31 - 1)])
@pytest.mark.parametrize("mode", ["median", "single"])
def test_assemble_integer_median_at_the_type_limits(dtype: str, lo: int, hi: int, mode: str) -> None:
    # Overscan values at both ends of the type: signed decoding, unsigned values
    # above the signed range, and the widest spans the bisection can meet.
    rng = np.random.default_rng(11)
    seg = rng.integers(lo, hi, (33, 17), endpoint=True).astype(dtype)
    seg[::4, 12:] = hi
    seg[1::5, 12:] = lo
    for ow in (4, 5):
        got = np.zeros((33, 10), np.float32)
        want = got.copy()
        assemble_amp(seg, (1, 0, 10, 33), (12, 0, ow, 33), got, 0, 0, True, False, overscan=mode)
        reference.assemble_amp(seg, (1, 0, 10, 33), (12, 0, ow, 33), want, 0, 0, True, False, overscan=mode)
        levels = np.median(seg[:, 12:12 + ow].astype(np.float64), axis=1 if mode == "median" else None)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got[:, -1], (seg[:, 1].astype(np.float64) - levels).astype(np.float32))


def test_amp_statistics_hand_computed_and_numpy() -> None:
    rng = np.random.default_rng(11)
    img = rng.normal(50, 3, (60, 80)).astype(np.float32)
    img[5, 5] = np.nan
    img[6, 6] = np.inf
    boxes = np.array([[0, 0, 40, 60], [40, 0, 40, 60], [10, 10, 1, 1]])
    st_ = amp_statistics(img, boxes)
    for i, (x0, y0, w, h) in enumerate(boxes):
        v = img[y0 : y0 + h, x0 : x0 + w].astype(np.float64)
        v = v[np.isfinite(v)]
        assert st_["n_pixels"][i] == v.size
        np.testing.assert_allclose(st_["mean"][i], v.mean(), rtol=1e-12)
        np.testing.assert_allclose(st_["median"][i], np.median(v), rtol=1e-12)
        np.testing.assert_allclose(st_["min"][i], v.min(), rtol=0)
        np.testing.assert_allclose(st_["max"][i], v.max(), rtol=0)
        if v.size > 1:
            np.testing.assert_allclose(st_["stdev"][i], v.std(ddof=1), rtol=1e-10)
            q = np.quantile(v, [0.25, 0.5, 0.75])
            assert reference.quantile(v, 0.25) == q[0] and reference.quantile(v, 0.75) == q[2]
    assert np.isnan(st_["stdev"][2]) and st_["clipped_mean"][2] == img[10, 10]
    small = amp_statistics(np.array([[1, 2, 3, 100]], np.float32), [(0, 0, 4, 1)], nsigma=3, niter=3)
    # median 2.5, IQR 1.75*... -> 100 rejected on the first (IQR) pass
    assert small["n_clipped"][0] == 3 and small["clipped_mean"][0] == 2.0


def test_amp_statistics_agrees_with_astropy() -> None:
    """The clipped statistics against astropy, tight.

    afw's clip (our kernel) and astropy's ``sigma_clipped_stats`` are different algorithms:
    afw clips *every* pixel on each pass, first about the median at 3 x 0.7413 IQR, then about
    the previous pass's mean at 3 stdev (ddof=1), stopping when the kept set repeats; astropy
    clips only the survivors of the previous pass, about their median, at 3 std (ddof=0).
    So (1) afw's algorithm is rebuilt from astropy's ``sigma_clip`` (one pass at a time, with the
    centre and width fixed to afw's) and must agree to rounding; (2) against
    ``sigma_clipped_stats`` itself, the two kept sets differ only in a few pixels at the 3-sigma
    edge: the means by far less than their standard error sigma/sqrt(N), the widths by the edge
    pixels' share of the variance (measured 2e-4), the medians (ours of every pixel, astropy's of
    the kept ones) by the cosmic rays' pull on the full-set median (measured 2e-5).
    """
    from astropy.stats import sigma_clip, sigma_clipped_stats

    rng = np.random.default_rng(3)
    img = rng.normal(1000, 7, (400, 300)).astype(np.float32)
    img[rng.random(img.shape) < 0.002] += 5000  # cosmic rays
    st_ = amp_statistics(img, [(0, 0, 300, 400)], nsigma=3.0, niter=3)
    x = img.astype(np.float64).ravel()

    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    centre, width, previous = med, 0.741301109252802 * (q3 - q1), None  # afw's IQR-to-sigma
    for _ in range(3):
        kept = ~sigma_clip(x, sigma=3.0, maxiters=1, cenfunc=lambda a, axis=None, c=centre: c,
                           stdfunc=lambda a, axis=None, w=width: w).mask
        if previous is not None and np.array_equal(kept, previous):
            break
        previous, centre, width = kept, x[kept].mean(), x[kept].std(ddof=1)
    assert st_["n_clipped"][0] == kept.sum() < x.size - 200  # the cosmic rays are gone
    np.testing.assert_allclose(st_["clipped_mean"][0], centre, rtol=1e-12)
    np.testing.assert_allclose(st_["clipped_stdev"][0], width, rtol=1e-12)
    assert st_["median"][0] == np.median(x)

    mean, median, std = sigma_clipped_stats(img, sigma=3.0, maxiters=3)
    assert abs(st_["clipped_mean"][0] - mean) < 0.1 * std / np.sqrt(kept.sum())
    np.testing.assert_allclose(st_["clipped_stdev"][0], std, rtol=1e-3)
    np.testing.assert_allclose(st_["median"][0], median, rtol=1e-4)


def test_amp_statistics_ties_float64_and_empty_boxes() -> None:
    rng = np.random.default_rng(8)
    img = rng.integers(-3, 4, (50, 50)).astype(np.float64)  # heavy ties, negative and -0.0
    img[img == 0] = -0.0
    img[:, 45:] = np.nan  # a box with no valid pixel
    boxes = np.array([[0, 0, 25, 50], [25, 0, 20, 50], [45, 0, 5, 50]])
    got = amp_statistics(img, boxes)
    want = reference.amp_statistics(img, boxes)
    assert_same(got, want, 1e-9, 1e-9)
    assert got["n_pixels"][2] == 0 and np.isnan(got["mean"][2]) and np.isnan(got["clipped_mean"][2])


def test_amp_statistics_threads_agree() -> None:
    img = make_image(np.random.default_rng(4), (64, 64), "float32", nan_frac=0.01)
    boxes = np.array([[x, y, 16, 32] for y in (0, 32) for x in (0, 16, 32, 48)])
    assert_same(amp_statistics(img, boxes, n_threads=3), amp_statistics(img, boxes), 0, 0)


def test_amp_difference_statistics_identical_inputs_are_zero() -> None:
    img = make_image(np.random.default_rng(1), (40, 30), "float32", nan_frac=0.05)
    boxes = np.array([[0, 0, 30, 20], [0, 20, 30, 20]])
    res = amp_difference_statistics(img, img.copy(), boxes, tolerance=0.0)
    for key in ("mean", "median", "robust_sigma", "max_abs", "frac_differing", "clipped_mean", "clipped_stdev"):
        assert np.all(res[key] == 0.0), key
    assert np.all(res["n_pixels"] == np.isfinite(img).reshape(2, 20, 30).sum(axis=(1, 2)))


def test_amp_difference_statistics_simple() -> None:
    a = np.zeros((2, 5), np.float32)
    b = np.array([[0, 0, 0, 1, -4], [0, 0, 0, 0, 0]], np.float32)
    res = amp_difference_statistics(a, b, [(0, 0, 5, 1)], tolerance=0.5)
    assert res["max_abs"][0] == 4 and res["frac_differing"][0] == 0.4 and res["median"][0] == 0
    np.testing.assert_allclose(res["mean"][0], 0.6)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: block_reduce(np.ones((4, 4)), 0), "factor=0"),
        (lambda: block_reduce(np.ones((4, 4)), 2.5), "factor=2.5"),
        (lambda: block_reduce(np.ones((4, 4)), 2, "median"), "how='median'"),
        (lambda: block_reduce(np.ones(4), 2), "ndim=1"),
        (lambda: block_reduce(np.ones((4, 4), np.complex64), 2), "c8"),
        (lambda: block_reduce(np.ones((4, 4)), 2, mask=np.ones((3, 4))), r"mask shape \(3, 4\)"),
        (lambda: block_reduce(np.ones((4, 4)), 2, out=np.empty((2, 2))), "float32"),
        (lambda: pyramid_reduce(np.ones((2, 2, 2))), "ndim=3"),
        (lambda: rotate_quarter(np.ones((2, 2)), 1.5), "n_quarter=1.5"),
        (lambda: bin_rotate_into(np.ones((4, 4)), 0, 1, np.zeros((4, 4), np.float32), 0, 0), "factor=0"),
        (lambda: bin_rotate_into(np.ones((4, 4)), 2, 1, np.zeros((4, 4), np.float32), 0, 0, how="x"), "how='x'"),
        (lambda: assemble_amp(np.ones((4, 6), ">i4"), (0, 0, 4, 4), (4, 0, 3, 4), np.zeros((4, 4), np.float32),
                              0, 0, False, False), r"overscan_box=\(4, 0, 3, 4\)"),
        (lambda: assemble_amp(np.ones((4, 6), ">i4"), (0, 0, 4, 5), (4, 0, 2, 4), np.zeros((4, 4), np.float32),
                              0, 0, False, False), r"data_box=\(0, 0, 4, 5\)"),
        (lambda: assemble_amp(np.ones((4, 6), ">i4"), (0, 0, 4, 4), (4, 0, 2, 4), np.zeros((4, 4), np.float32),
                              0, 1, False, False), "out_x0=1"),
        (lambda: assemble_amp(np.ones((4, 6), ">i4"), (0, 0, 4, 4), (4, 0, 2, 4), np.zeros((4, 4), np.float32),
                              0, 0, False, False, overscan="clip"), "overscan='clip'"),
        (lambda: assemble_amp(np.ones((4, 6), ">i4"), (0, 0, 4, 4), (4, 0, 2, 4), np.zeros((4, 4), np.float32),
                              0, 0, False, False, row_stop=5), "row_stop=5"),
        (lambda: assemble_amp(np.ones(6, ">i4"), (0, 0, 4, 4), (4, 0, 2, 4), np.zeros((4, 4), np.float32),
                              0, 0, False, False), "ndim=1"),
        (lambda: amp_statistics(np.ones((4, 4)), [(0, 0, 5, 4)]), r"\(0, 0, 5, 4\)"),
        (lambda: amp_statistics(np.ones((4, 4)), [(0, 0, 0, 4)]), r"\(0, 0, 0, 4\)"),
        (lambda: amp_statistics(np.ones((4, 4)), [(0, 0, 4)]), r"shape \(1, 3\)"),
        (lambda: amp_statistics(np.ones((4, 4)), [(0, 0, 4, 4)], nsigma=-1), "nsigma=-1"),
        (lambda: amp_statistics(np.ones((4, 4)), [(0, 0, 4, 4)], niter=-2), "niter=-2"),
        (lambda: amp_statistics(np.ones(4), [(0, 0, 4, 4)]), "ndim=1"),
        (lambda: amp_difference_statistics(np.ones((4, 4)), np.ones((4, 5)), [(0, 0, 4, 4)]), r"\(4, 5\)"),
        (lambda: amp_difference_statistics(np.ones((4, 4)), np.ones((4, 4)), [(0, 0, 4, 4)], tolerance=-1),
         "tolerance=-1"),
    ],
)  # fmt: skip
def test_bad_input_raises_value_error_naming_the_value(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_inputs_are_not_modified_and_read_only_views_work() -> None:
    rng = np.random.default_rng(2)
    img = make_image(rng, (30, 40), ">f4", nan_frac=0.1)[::-1, 1:]  # strided, big-endian view
    img.flags.writeable = False
    before = img.copy()
    block_reduce(img, 3)
    amp_statistics(img, [(0, 0, 39, 30)])
    out = np.zeros((20, 20), np.float32)
    bin_rotate_into(img, 2, 3, out, -2, 1)
    np.testing.assert_array_equal(img, before)
    assert_same(block_reduce(img, 3), reference.block_reduce(img, 3), 1e-6, 1e-6)
