"""A mosaic store under concurrent writers, bad options and object stores.

Two real processes race for one output; failed starts leave nothing behind;
the same build on local disk and on a real S3 API (moto's server on loopback)
gives the same store, display windows included.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from cpmosaic.camera import get_camera, shrink_camera, write_camera_json
from cpmosaic.cli.main import main
from cpmosaic.mosaic import build_mosaic, open_mosaic

SRC = str(Path(__file__).resolve().parents[1] / "src")
SHRINK = 32
NAMES = ["R22_S11", "R22_S12", "R21_S10", "R12_S01", "R32_S21", "R00_SG0", "R44_SW1"]


def write_inputs(d: Path, camera, offset: float) -> Path:
    """One image per detector: value = detector id + ``offset`` + a gradient (two sets differ everywhere)."""
    d.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        det = camera[name]
        y, x = np.mgrid[0:det.height, 0:det.width]
        image = (det.id + offset + 0.01 * x + 0.1 * y).astype(np.float32)
        hdr = fits.Header({"DETNAME": det.name, "INSTRUME": "LSSTCam"})
        fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(image, name="IMAGE")]).writeto(d / f"{name}.fits")
    return d


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("integrity")
    camera = shrink_camera(get_camera("LSSTCam"), SHRINK)
    write_camera_json(camera, d / "cam.json")
    a = write_inputs(d / "a", camera, 0.0)
    b = write_inputs(d / "b", camera, 5000.0)
    refs = {}
    for key, inp in (("a", a), ("b", b)):
        build_mosaic([inp], d / f"ref_{key}.zarr", camera=camera, binning=2, chunk=32, shard=(64, 128),
                     progress=False)
        refs[key] = open_mosaic(d / f"ref_{key}.zarr")
    return d, camera, refs


def same_data(m, ref) -> bool:
    return all(np.array_equal(m.read(k), ref.read(k), equal_nan=True) for k in range(ref.n_levels))


# A build slowed down (each shard marker waits), started at an agreed moment, so two overlap.
RACE = textwrap.dedent("""
    import sys, time
    from cpmosaic.cli.main import main
    from cpmosaic.mosaic import tasks
    real = tasks.write_marker
    def slow(*a, **k):
        real(*a, **k)
        time.sleep({delay})
    tasks.write_marker = slow
    start = float(sys.argv[1])
    while time.time() < start:
        time.sleep(0.001)
    raise SystemExit(main(sys.argv[2:]))
""")


def race(args_list, delay=0.05, env=None, at=None):
    """Start one process per argument list at the same moment; their (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    at = at if at is not None else [0.0] * len(args_list)
    t0 = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", RACE.format(delay=delay), str(t0 + dt), *args],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args, dt in zip(args_list, at)]
    return [(p.wait(timeout=300), p.communicate()[1]) for p in procs]


def cli_args(setup, inp: str, out: str, *extra):
    d, _, _ = setup
    return ["mosaic", str(d / inp), "-o", out, "--camera", str(d / "cam.json"), "--binning", "2",
            "--chunk", "32", "--no-progress", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("--overwrite",)])
def test_second_local_writer_is_refused(setup, tmp_path, extra):
    out = str(tmp_path / "m.zarr")
    (ra, ea), (rb, eb) = race([cli_args(setup, "a", out, *extra), cli_args(setup, "b", out, *extra)])
    codes = sorted([ra, rb])
    assert codes == [0, 1], (ra, ea[-2000:], rb, eb[-2000:])
    loser = ea if ra else eb
    assert "another cpmosaic build is writing this store" in loser and "Traceback" not in loser
    assert len(loser.strip().splitlines()) <= 3  # an INFO line or two, then the one-line error
    m = open_mosaic(out)
    assert m.complete
    winner = "a" if ra == 0 else "b"
    _, _, refs = setup
    assert same_data(m, refs[winner])
    assert not Path(out).with_name(".m.zarr.cpmosaic-lock").exists()  # the lock goes with its build


def test_takeover_stops_the_first_writer(setup, tmp_path):
    """Object stores have no locks: a second writer's claim stops the first before its next shard,
    and a build never marks complete a store holding another build's shards."""
    from cpmosaic.mosaic import owner, tasks
    from cpmosaic.mosaic.store import open_group

    d, camera, refs = setup
    out = f"memory://takeover-{tmp_path.name}/m.zarr"  # no OS lock: each shard checks the claim
    real = tasks.write_marker
    calls = []

    def steal_after_two(array, i, j, content):
        real(array, i, j, content)
        calls.append((i, j))
        if len(calls) == 2:  # another process claims the store meanwhile
            owner.write_claim(open_group(out, "r+"), "other-build", "other-writer")

    tasks.write_marker = steal_after_two
    try:
        with pytest.raises(owner.StoreInUseError, match="another build is writing this store"):
            build_mosaic([d / "a"], out, camera=camera, binning=2, chunk=32, shard=(64, 128), progress=False,
                         num_workers=1)
    finally:
        tasks.write_marker = real
    assert len(calls) == 2  # nothing written after the claim changed
    assert open_mosaic(out).complete is False


def test_foreign_shards_are_never_marked_complete(setup, tmp_path):
    from cpmosaic.mosaic import tasks

    d, camera, _ = setup
    out = str(tmp_path / "m.zarr")
    real = tasks.write_marker

    def other_build(array, i, j, content):  # a shard that another build wrote in flight
        real(array, i, j, {**content, "build_id": "0" * 32} if (i, j) == (0, 0) else content)

    tasks.write_marker = other_build
    try:
        with pytest.raises(Exception, match="written by another build"):
            build_mosaic([d / "a"], out, camera=camera, binning=2, chunk=32, shard=(64, 128), progress=False)
    finally:
        tasks.write_marker = real
    assert open_mosaic(out).complete is False


def test_shards_of_a_stopped_writer_are_made_again(setup, tmp_path):
    """A shard another writer wrote in flight (once) is made again: complete, and this build's data."""
    from cpmosaic.mosaic import tasks

    d, camera, refs = setup
    out = str(tmp_path / "m.zarr")
    real = tasks.write_marker
    seen = []

    def once(array, i, j, content):
        foreign = (i, j) == (0, 0) and not seen
        if foreign:
            seen.append(1)
            array[0:8, 0:8] = np.float32(-1.0)  # its data too
        real(array, i, j, {**content, "build_id": "0" * 32} if foreign else content)

    tasks.write_marker = once
    try:
        build_mosaic([d / "a"], out, camera=camera, binning=2, chunk=32, shard=(64, 128), progress=False)
    finally:
        tasks.write_marker = real
    m = open_mosaic(out)
    assert seen and m.complete and same_data(m, refs["a"])


# -- failed starts leave nothing ---------------------------------------------------------


@pytest.mark.parametrize("extra, code, words", [
    (["--compressor", "zstd-99"], 2, "--compressor: compressor 'zstd-99': zstd levels are 1..22"),
    (["--compressor", "brotli"], 2, "--compressor"),
    (["--scheduler", "Thredas"], 2, "--scheduler: scheduler 'Thredas' is not one of"),
    (["--binning", "5000"], 2, "--binning: binning 5000 is larger than the smallest detector"),
    (["--binning", "0"], 2, "--binning must be >= 1"),
    (["--chunk", "33"], 2, "--chunk must be even"),
])
def test_bad_options_exit_2_and_write_nothing(setup, tmp_path, caplog, extra, code, words):
    out = tmp_path / "m.zarr"
    assert main(cli_args(setup, "a", str(out), *extra)) == code
    assert words in caplog.text
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unreachable_scheduler_leaves_no_stub(setup, tmp_path, caplog, monkeypatch):
    pytest.importorskip("distributed")
    from cpmosaic.mosaic import schedule

    monkeypatch.setattr(schedule, "CONNECT_TIMEOUT", "1s")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "m.zarr"
    assert main(cli_args(setup, "a", str(out), "--scheduler", f"tcp://127.0.0.1:{port}")) == 1
    assert f"cannot reach the dask scheduler at tcp://127.0.0.1:{port}" in caplog.text
    assert list(tmp_path.iterdir()) == []
    # and the next plain run is not refused
    assert main(cli_args(setup, "a", str(out))) == 0


def test_disk_full_names_the_store_and_cleans_up(setup, tmp_path, caplog):
    """On a 64 kB tmpfs the metadata does not fit: the error names the store, nothing is left."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount tmpfs here")
    try:
        out = mnt / "m.zarr"
        assert main(cli_args(setup, "a", str(out))) == 1
        assert str(out) in caplog.text and "no space left" in caplog.text
        assert "Traceback" not in caplog.text
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_existing_store_advice_comes_from_the_cli(setup, tmp_path, caplog):
    from cpmosaic.mosaic.store import StoreExistsError

    d, camera, _ = setup
    out = tmp_path / "m.zarr"
    assert main(cli_args(setup, "a", str(out))) == 0
    with pytest.raises(StoreExistsError) as info:  # the library says what is wrong, not which flag to use
        build_mosaic([d / "a"], out, camera=camera, binning=2, chunk=32, progress=False)
    assert "--" not in str(info.value)
    assert main(cli_args(setup, "a", str(out))) == 1
    assert "use --resume to finish it or --overwrite to replace it" in caplog.text


# -- reading damaged stores ------------------------------------------------------------------


@pytest.mark.parametrize("command", [["info"], ["png", "-o", "out.png"]])
def test_reading_a_store_missing_a_level_exits_2(setup, tmp_path, command):
    d, _, refs = setup
    broken = tmp_path / "broken.zarr"
    shutil.copytree(d / "ref_a.zarr", broken)
    (broken / "1" / "zarr.json").unlink()
    r = subprocess.run([sys.executable, "-m", "cpmosaic", command[0], str(broken), *command[1:]], cwd=tmp_path,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC})
    assert r.returncode == 2, r.stderr
    assert "level 1 has no readable metadata" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()


def test_window_of_a_store_without_one_is_none(setup, tmp_path):
    d, camera, _ = setup
    out = tmp_path / "m.zarr"
    build_mosaic([d / "a"], out, camera=camera, binning=2, chunk=32, progress=False)
    m = open_mosaic(out)
    lo, hi = m.window(0)
    assert lo < hi
    doc = json.loads((out / "zarr.json").read_text())
    doc["attributes"]["cpmosaic"]["windows"] = None
    (out / "zarr.json").write_text(json.dumps(doc))
    assert open_mosaic(out).window(0) is None


def test_windows_do_not_depend_on_marker_order(rng):
    from cpmosaic.mosaic.store import merge_windows, shard_stats

    stats = [shard_stats(rng.normal(i, 1 + i, (64, 64)).astype(np.float32)) for i in range(12)]
    stats.append(dict(stats[3]))  # equal quantiles in two shards: ties
    ref = merge_windows(stats)
    for _ in range(5):
        order = rng.permutation(len(stats))
        assert merge_windows([stats[i] for i in order]) == ref


# -- progress bars ------------------------------------------------------------------------------


def test_no_progress_bar_on_redirected_stderr(setup, tmp_path):
    d, _, _ = setup
    args = ["mosaic", str(d / "a"), "-o", str(tmp_path / "m.zarr"), "--camera", str(d / "cam.json"),
            "--binning", "2", "--chunk", "32"]
    r = subprocess.run([sys.executable, "-m", "cpmosaic", *args], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": SRC})
    assert r.returncode == 0, r.stderr
    assert "shards:" not in r.stderr and "\r" not in r.stderr


# -- allocator ----------------------------------------------------------------------------------


def _block_is_own_mapping(nbytes: int) -> bool:
    """Whether glibc gives fresh ``nbytes`` blocks their own mappings (mmap threshold below it).

    An mmapped chunk's data starts 16 bytes into a page (its header fills the
    rest); three blocks carved one after the other from a heap cannot all be.
    """
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(nbytes) for _ in range(3)]
    try:
        return all((p - 16) % 4096 == 0 for p in blocks)
    finally:
        for p in blocks:
            libc.free(p)


def test_build_restores_the_allocator(setup, tmp_path):
    from cpmosaic.mosaic import _memory

    if not sys.platform.startswith("linux") or not _memory._glibc():
        pytest.skip("needs glibc")
    d, camera, _ = setup
    size = 2 * 2**20  # above glibc's default threshold (128 kB), below the build's (4 MB)
    assert _block_is_own_mapping(size)
    with _memory.big_blocks_mapped():
        assert not _block_is_own_mapping(size)
    assert _block_is_own_mapping(size)
    build_mosaic([d / "a"], tmp_path / "m.zarr", camera=camera, binning=2, chunk=32, progress=False)
    assert _block_is_own_mapping(size)


# -- zarr internals pinned --------------------------------------------------------------------


def test_zarr_helpers_agree_with_zarr_public_api(tmp_path):
    import zarr

    from cpmosaic.mosaic import _zarrio
    from cpmosaic.mosaic.store import (
        open_group,
        read_markers,
        write_group_attributes,
        write_marker,
    )

    _zarrio.check_zarr()  # the installed zarr is one the helpers were tested with
    lo, hi = _zarrio.TESTED
    assert f"zarr>={lo[0]}.{lo[1]},<{hi[0]}.{hi[1]}" in (Path(SRC).parent / "pyproject.toml").read_text()
    g = zarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=3)
    a = g.create_array("0", shape=(4, 4), dtype="float32", chunks=(2, 2))
    attrs = {"cpmosaic": {"x": [1, 2.5, "three"], "nested": {"n": None}}, "ome": {"version": "0.5"}}
    write_group_attributes(g, attrs)
    assert zarr.open_group(tmp_path / "g.zarr", mode="r").attrs.asdict() == attrs
    write_marker(a, 1, 0, {"n": 3})
    assert json.loads((tmp_path / "g.zarr" / "0" / "done" / "1_0").read_text()) == {"n": 3}
    _zarrio.set_bytes(g.store_path, "0/owner.json", b"{}")
    assert _zarrio.get_bytes(g.store_path, "0/owner.json") == b"{}"
    assert _zarrio.get_bytes(g.store_path, "0/nothing") is None
    assert _zarrio.list_keys(g.store, "0/done/") == ["0/done/1_0"]
    from cpmosaic.mosaic.plan import LevelSpec, MosaicPlan

    plan = MosaicPlan("x", 1, 0.01, (0, 0), (), (LevelSpec(0, (4, 4), (2, 2), (2, 2)),))
    assert read_markers(open_group(tmp_path / "g.zarr", "r"), plan) == {(0, 1, 0): {"n": 3}}


# -- S3 (moto's server on loopback) ----------------------------------------------------------


@pytest.fixture(scope="module")
def s3(moto_server):
    """A real S3 API on 127.0.0.1 (moto_server, tests/s3_fixtures.py), a bucket, and the environment s3fs needs."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": moto_server}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import s3fs

        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]})
        fs.mkdir("cpmosaic-test")
        yield env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.slow
def test_s3_build_equals_local_build(setup, s3):
    import s3fs

    d, camera, refs = setup
    s3fs.S3FileSystem.clear_instance_cache()
    url = "s3://cpmosaic-test/a.zarr"
    build_mosaic([d / "a"], url, camera=camera, binning=2, chunk=32, shard=(64, 128), progress=False)
    m, ref = open_mosaic(url), refs["a"]
    assert m.complete and same_data(m, ref)
    a, b = dict(m.attrs), dict(ref.attrs)
    a.pop("build_id"), b.pop("build_id")
    assert [w for w in a["windows"]] == [w for w in b["windows"]]  # not dependent on listing order
    for k in ("inputs", "placements", "levels", "missing", "complete"):
        assert a[k] == b[k], k


@pytest.mark.slow
def test_s3_second_writer_never_leaves_a_mixed_complete_store(setup, s3):
    """Two processes on one S3 output: the later claim wins; a complete store is one build's alone."""
    import s3fs

    d, _, refs = setup
    url = "s3://cpmosaic-test/race.zarr"
    results = race([cli_args(setup, "a", url, "--overwrite"), cli_args(setup, "b", url, "--overwrite")],
                   delay=0.1, env=s3, at=[0.0, 1.5])
    codes = [r for r, _ in results]
    told = "\n".join(f"exit {c}: {e[-1500:]}" for c, e in results)
    assert all(c in (0, 1) for c in codes), told
    for code, err in results:
        if code == 1:
            assert "another build" in err and "Traceback" not in err
    assert 0 in codes, results
    s3fs.S3FileSystem.clear_instance_cache()
    m = open_mosaic(url)
    if m.complete:
        assert same_data(m, refs["a"]) or same_data(m, refs["b"])
        winners = [k for k, (code, _) in zip("ab", results) if code == 0]
        assert any(same_data(m, refs[w]) for w in winners)


def test_resume_keeps_the_store_compressor(setup, tmp_path, caplog, capsys):
    out = str(tmp_path / "m.zarr")
    assert main(cli_args(setup, "a", out, "--compressor", "blosc-lz4")) == 0
    assert main(cli_args(setup, "a", out, "--resume")) == 0  # no --compressor: the store's own
    assert "already done" in capsys.readouterr().out
    assert main(cli_args(setup, "a", out, "--resume", "--compressor", "zstd")) == 1
    assert "cannot resume: the store was started with a different build (use --overwrite" in caplog.text
    doc = json.loads((Path(out) / "0" / "zarr.json").read_text())
    assert doc["codecs"][0]["configuration"]["codecs"][1]["configuration"]["shuffle"] == "shuffle"
    fresh = str(tmp_path / "n.zarr")
    assert main(cli_args(setup, "a", fresh)) == 0
    doc = json.loads((Path(fresh) / "0" / "zarr.json").read_text())
    assert doc["codecs"][0]["configuration"]["codecs"][1]["configuration"]["shuffle"] == "bitshuffle"
