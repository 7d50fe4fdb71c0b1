"""``--storage-options JSON`` on every command that takes a store URL, against a real S3 API.

moto's S3 server runs on loopback (``tests/s3_fixtures.py``) and nothing in the environment
points at it: each command reaches the bucket only through the endpoint and keys its
``--storage-options`` give.  ``cpmosaic mosaic`` writes the store there; ``info``, ``png``,
``export-tiles``, ``report``, ``explore`` and ``serve`` read it back, and each result is
compared with the same command on a local build of the same inputs.  Bad JSON is a usage
error (exit 2) that names the flag, on every command.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from cli_fixtures import served_url, start_cli, stop_cli
from s3_fixtures import s3_options

from cpmosaic.cli.main import main

BUCKET = "cpmosaic-storeopts"
URL = f"s3://{BUCKET}/bias.zarr"
SRC = str(Path(__file__).resolve().parents[1] / "src")
AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
           "AWS_DEFAULT_REGION", "AWS_PROFILE")


@pytest.fixture(scope="module")
def no_aws_env(tmp_path_factory):
    """No AWS settings in the environment (nor in files): only --storage-options can reach the bucket."""
    home = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as mp:
        for k in AWS_ENV:
            mp.delenv(k, raising=False)
        mp.setenv("AWS_CONFIG_FILE", str(home / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from cpmosaic.synth import synthesize

    root = tmp_path_factory.mktemp("storeopts-data")
    return synthesize(root, detectors=["R22_S10", "R22_S11", "R22_S12"], n_days=1, raw=False, calibs=False,
                      planes="image", calib_types=("bias",), butler=False, progress=False, workers=1)


@pytest.fixture(scope="module")
def s3(moto_server, no_aws_env, data, tmp_path_factory):
    """The bias mosaic built on S3 by ``cpmosaic mosaic -o s3://... --storage-options``, and a local twin."""
    import s3fs

    opts = s3_options(moto_server)
    s3fs.S3FileSystem(**opts).mkdir(BUCKET)
    inputs = [str(p) for p in data.paths("processed", calib_type="bias")]
    flags = ["--camera", str(data.camera_file), "--binning", "2", "--no-progress"]
    local = tmp_path_factory.mktemp("storeopts-local") / "bias.zarr"
    assert main(["mosaic", *inputs, "-o", str(local), *flags]) == 0
    assert main(["mosaic", *inputs, "-o", URL, *flags, "--storage-options", json.dumps(opts)]) == 0
    return opts, local


def test_mosaic_writes_the_store_to_s3(s3):
    """The S3 store, read with zarr and s3fs directly, holds the local build's arrays and metadata."""
    import zarr

    opts, local = s3
    remote, ref = zarr.open_group(URL, mode="r", storage_options=opts), zarr.open_group(local, mode="r")
    assert sorted(remote.array_keys()) == sorted(ref.array_keys()) and len(list(ref.array_keys())) > 1
    for k in ref.array_keys():
        np.testing.assert_array_equal(remote[k][...], ref[k][...])
    a, b = dict(remote.attrs["cpmosaic"]), dict(ref.attrs["cpmosaic"])
    assert a["complete"] is True and a["placements"] == b["placements"] and a["windows"] == b["windows"]


def test_info_reads_s3(s3, capsys):
    opts, local = s3
    assert main(["info", str(local), "--format", "json"]) == 0
    ref = json.loads(capsys.readouterr().out)
    assert main(["info", URL, "--format", "json", "--storage-options", json.dumps(opts)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc.pop("store") == URL and ref.pop("store") == str(local)
    assert doc == ref and doc["complete"] and len(doc["detectors"]["present"]) == 3


def test_png_reads_s3(s3, tmp_path, capsys):
    opts, local = s3
    assert main(["png", str(local), "-o", str(tmp_path / "local.png"), "--level", "0"]) == 0
    assert main(["png", URL, "-o", str(tmp_path / "s3.png"), "--level", "0",
                 "--storage-options", json.dumps(opts)]) == 0
    a, b = (np.asarray(Image.open(tmp_path / f)) for f in ("s3.png", "local.png"))
    assert a.shape == b.shape and (a[..., 3] > 0).any()  # the detectors are drawn, not all transparent
    np.testing.assert_array_equal(a, b)


def test_export_tiles_reads_s3(s3, tmp_path):
    opts, local = s3
    assert main(["export-tiles", str(local), "--format", "xyz", "-o", str(tmp_path / "local"), "--workers", "1"]) == 0
    assert main(["export-tiles", URL, "--format", "xyz", "-o", str(tmp_path / "s3"), "--workers", "1",
                 "--storage-options", json.dumps(opts)]) == 0
    tiles = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.png"))
    assert tiles and tiles == sorted(p.relative_to(tmp_path / "s3") for p in (tmp_path / "s3").rglob("*.png"))
    for t in tiles:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "s3" / t)),
                                      np.asarray(Image.open(tmp_path / "local" / t)))


def test_report_shows_an_s3_mosaic(s3, data, tmp_path):
    from cpmosaic import progress

    opts, _ = s3
    out = tmp_path / "report"
    try:
        rc = main(["report", str(data.verify_root), "-o", str(out), "--mosaic", URL, "--calib-type", "bias",
                   "--metric", "NOISE", "--no-interactive", "--no-progress", "--storage-options", json.dumps(opts)])
    finally:
        progress.enable(None)
    assert rc == 0
    image = out / "png" / "mosaic-bias-image.png"
    assert image.is_file() and "png/mosaic-bias-image.png" in (out / "index.html").read_text()
    assert (np.asarray(Image.open(image).convert("L")).std()) > 0  # a drawn image, not a blank one


def _get(url: str) -> tuple[int, bytes]:
    for _ in range(100):  # the server may bind a moment after it logs
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.status, r.read()
        except ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url}: no answer")


def test_explore_serves_an_s3_mosaic(s3, data, tmp_path):
    import socket

    opts, _ = s3
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, _, lines = start_cli(["explore", str(data.verify_root), "--mosaic", URL, "--port", str(port),
                             "--storage-options", json.dumps(opts)], "serving on")
    try:
        assert any("1 mosaic store(s)" in line for line in lines), lines
        status, body = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"cpmosaic explore" in body
    finally:
        stop_cli(proc)


def test_serve_serves_an_s3_mosaic(s3):
    opts, local = s3
    proc, line, _ = start_cli(["serve", f"bias={URL}", "--port", "0", "--storage-options", json.dumps(opts)],
                           "serving on ")
    try:
        base = served_url(line)
        status, body = _get(f"{base}/bias/zarr/zarr.json")
        assert status == 200
        assert json.loads(body)["attributes"]["cpmosaic"]["placements"] == \
            json.loads((local / "zarr.json").read_text())["attributes"]["cpmosaic"]["placements"]
    finally:
        stop_cli(proc)


STORE_COMMANDS = {
    "info": ["info", URL],
    "png": ["png", URL, "-o", "x.png"],
    "mosaic": ["mosaic", "in.fits", "-o", URL],
    "report": ["report", "cpv", "-o", "out", "--mosaic", URL],
    "explore": ["explore", "cpv", "--mosaic", URL],
    "serve": ["serve", URL],
    "export-tiles": ["export-tiles", URL, "-o", "tiles"],
}


@pytest.mark.parametrize("command", sorted(STORE_COMMANDS))
@pytest.mark.parametrize("value", ["{bad", "[1]", '"s3"'])
def test_bad_storage_options_exit_2_naming_the_flag(command, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*STORE_COMMANDS[command], "--storage-options", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"cpmosaic {command}: error: argument --storage-options: "), err
    assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("command", ["info", "png", "mosaic"])
@pytest.mark.parametrize("bad", [{"endpoint_url": "http://127.0.0.1:1"}, {"no_such_option": 1}])
def test_options_that_cannot_reach_the_store_fail_in_one_line(s3, data, tmp_path, command, bad, caplog, capsys):
    """A wrong endpoint or an option s3fs does not know: exit 1 or 2, one line naming the URL, nothing written."""
    import s3fs

    opts, _ = s3
    url = f"s3://{BUCKET}/never.zarr"
    args = {"info": ["info", url], "png": ["png", url, "-o", str(tmp_path / "x.png")],
            "mosaic": ["mosaic", *map(str, data.paths("processed", calib_type="bias")), "-o", url,
                       "--camera", str(data.camera_file), "--binning", "2", "--no-progress"]}[command]
    assert main([*args, "--storage-options", json.dumps({**opts, **bad})]) in (1, 2)
    err = capsys.readouterr().err  # png writes its one line itself; the others log it
    lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] + err.splitlines()
    assert sum(f"{url}: cannot " in line for line in lines) == 1 and "Traceback" not in err, lines
    assert not (tmp_path / "x.png").exists()
    assert not s3fs.S3FileSystem(**opts, skip_instance_cache=True).exists(f"{BUCKET}/never.zarr")
