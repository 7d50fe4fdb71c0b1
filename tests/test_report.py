"""The calibration report: files, links, offline HTML, PNG content, geometry, sources, CLI.

One small synthetic data set (10 detectors, 5 nights, bias and dark) is made per module;
the report draws three metrics of the bias (the tests and tables cover everything).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest

from cpmosaic.demo import SMALL_DETECTORS

DETECTORS = SMALL_DETECTORS[:10]
METRICS = ["MEAN", "NOISE", "CR_NOISE"]
HAVE_BUTLER = importlib.util.find_spec("lsst") is not None and importlib.util.find_spec("lsst.daf.butler") is not None


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from cpmosaic.synth import synthesize

    root = tmp_path_factory.mktemp("report-data")
    return synthesize(root, detectors=DETECTORS, n_days=5, raw=False, calibs=False, planes="image",
                      calib_types=("bias", "dark"), butler=HAVE_BUTLER, progress=False, workers=2)


def _night(m, day) -> list[str]:
    return [m.runs[ct][day] for ct in m.calib_types]


@pytest.fixture(scope="module")
def report(data, tmp_path_factory):
    from cpmosaic.metrics import HistoryStore, load_metrics
    from cpmosaic.mosaic import build_mosaic
    from cpmosaic.report import build_report

    work = tmp_path_factory.mktemp("report")
    HistoryStore(work / "history").add(load_metrics(data.verify_root))
    build_mosaic(data.paths("processed", calib_type="bias"), work / "bias.zarr", camera=data.load_camera(),
                 binning=2, progress=False)
    return build_report(data.verify_root, work / "out", collections=_night(data, data.days[-1]),
                        against=data.verify_root, collections_b=_night(data, data.days[0]),
                        history=work / "history", mosaics=[work / "bias.zarr"], calib_types=["bias"],
                        metrics=METRICS, labels=("last", "first"), history_window=5, progress=False)


def _links(html: str) -> list[str]:
    """src/href attributes of the page's tags (script bodies are not markup: BokehJS's inline
    code names a MathJax CDN it would use only for TeX labels, which the report has none of)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(v for k, v in attrs if k in ("src", "href") and v)

    Links().feed(html)
    return found


def test_files_and_links_resolve(report):
    out = report.out_dir
    index = report.index.read_text()
    links = _links(index)
    assert any(link.startswith("png/") for link in links) and any(link.startswith("interactive/") for link in links)
    for link in links:
        if link.startswith("#"):
            continue
        assert "://" not in link, link
        assert (out / link.split("#")[0]).is_file(), link
    for page in ("failures.html", "outliers.html", "alerts.html", "summary.json", "figures.json"):
        assert (out / page).is_file()
    assert {p.name for p in report.pages} == {"bias.html", "scatter.html", "history.html", "mosaic-bias.html"}


def test_html_is_offline(report):
    pages = list(report.out_dir.rglob("*.html"))
    assert len(pages) >= 7
    for page in pages:
        text = page.read_text()
        for link in _links(text):
            assert not re.search(r"cdn\.|unpkg|jsdelivr|^https?:|^//", link), (page.name, link)
        assert not re.search(r"<(?:script|link)\b[^>]*\b(?:src|href)=", text, re.I), page.name


def test_interactive_pages_hold_the_plots(report):
    bias = (report.out_dir / "interactive" / "bias.html").read_text()
    assert "cpm-tabs" in bias and "Bokeh" in bias
    for metric in METRICS:  # tab titles and plot titles are in the document JSON
        assert f'"title":"{metric}"' in bias.replace(" ", "")
    for f in report.figures:
        assert f.html is not None
        page = (report.out_dir / f.html.split("#")[0]).read_text()
        assert unquote(f.html.split("#")[1]) in page  # the tab the link selects
    history = (report.out_dir / "interactive" / "history.html").read_text()
    assert "bias MEAN by night" in history


def test_pngs_have_content(report):
    from PIL import Image

    figs = json.loads((report.out_dir / "figures.json").read_text())
    kinds = {f["kind"] for f in figs}
    assert {"heatmap", "histogram", "test_histogram", "difference_heatmap", "difference_histogram", "ab_scatter",
            "scatter", "candlestick", "mosaic"} <= kinds
    for f in figs:
        img = np.asarray(Image.open(report.out_dir / f["png"]).convert("RGB"))
        assert (img.shape[1], img.shape[0]) == tuple(f["size"])
        assert img.shape[0] > 250 and img.shape[1] > 400, f["key"]
        packed = (img[..., 0].astype(np.int32) << 16) | (img[..., 1].astype(np.int32) << 8) | img[..., 2]
        assert len(np.unique(packed[::3, ::3])) > 8, f"{f['key']} looks blank"
        for p in f["panels"]:  # ink inside every plot frame (not only axes and titles)
            t, left = int(p["top"]) + 3, int(p["left"]) + 3
            frame = img[t:t + int(p["height"]) - 6, left:left + int(p["width"]) - 6]
            assert (frame < 235).any(axis=2).sum() > 40, f"{f['key']}: empty frame"


def test_hot_amp_stands_out_in_bias_mean_png(report, data):
    from PIL import Image

    from cpmosaic.camera import get_camera

    hot = data.anomaly("hot_amp")
    fig = report.figure("heatmap", "bias", "MEAN")
    img = np.asarray(Image.open(report.out_dir / fig.png).convert("RGB")).astype(int)
    tr = fig.transform()

    def colour(x_mm, y_mm):
        px, py = tr.to_pixel(x_mm, y_mm)
        return img[int(round(float(py))), int(round(float(px)))]

    det = get_camera("LSSTCam")[hot["detector_name"]]
    hot_rgb = colour(hot["x_mm"], hot["y_mm"])
    # the other amps of its detector, but not one carrying an injected drift or jump
    injected = {t["amp"] for t in data.trends if t["detector_name"] == det.name} | {hot["amp"]}
    others = [colour(*det.box_center_mm(a.bbox)) for a in det.amplifiers if a.name not in injected]
    assert len(others) >= 14
    for rgb in others:
        assert np.abs(hot_rgb - rgb).sum() > 60, (hot_rgb, rgb)
    # +50 e- is far above the colour range: the amp has the top colour of the map
    from cpmosaic.viz.style import DEFAULT_CMAP, map_colors

    assert tuple(hot_rgb) == tuple(map_colors([1.0], (0.0, 1.0), DEFAULT_CMAP)[0])


def test_heatmap_polygons_match_camera_geometry(data):
    from cpmosaic.camera import get_camera
    from cpmosaic.metrics import load_metrics
    from cpmosaic.report.plots import metric_heatmap, plot_items, select

    df = load_metrics(data.verify_root)
    item = next(i for i in plot_items(df) if (i.calib_type, i.tier, i.metric) == ("bias", "amp", "NOISE"))
    heat = metric_heatmap(select(df, item), item)
    amps = next(el for el in heat if el.group == "Amps")
    cam = get_camera("LSSTCam")
    got = pd.DataFrame({k: amps.dimension_values(k) for k in ("x0", "y0", "x1", "y1", "detector_name", "amp")})
    assert len(got) == 16 * len(DETECTORS)
    for r in got.itertuples():
        det = cam[r.detector_name]
        c = det.box_corners_mm(det.amp(r.amp).bbox)
        np.testing.assert_allclose([r.x0, r.y0, r.x1, r.y1],
                                   [c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()], atol=1e-9)


def test_summary_tables_and_alerts(report, data):
    s = json.loads((report.out_dir / "summary.json").read_text())
    assert s["summary"]["cp_verify_success"] is False  # the hot amp fails bias MEAN
    hot = data.anomaly("hot_amp")
    fails = pd.read_csv(report.out_dir / "failures.csv")
    assert ((fails["detector_name"] == hot["detector_name"]) & (fails["amp"] == hot["amp"])
            & (fails["test"] == "MEAN")).any()
    assert report.n_outliers > 0 and s["n_outliers"] == report.n_outliers
    kinds = set(report.alerts["kind"])
    assert kinds == {"drift", "jump"} and s["n_alerts"] == len(report.alerts)
    assert any(r["recommend_new"] for r in s["recommendations"])
    assert s["comparison"]["n_compared"] > 0
    index = report.index.read_text()
    assert "cp_verify: FAIL" in index and "Recommendations" in index


def test_findings_and_verdict_notes_on_the_index(report, data):
    """The index lists the top findings (injected anomalies among them) with the count of the
    rest, and says which read noise the NOISE tests used."""
    from cpmosaic.report.page import TOP_FINDINGS

    found = pd.read_csv(report.out_dir / "outliers.csv")
    assert len(found) == report.n_outliers and found["rank"].tolist() == list(range(1, len(found) + 1))
    assert {"finding", "severity", "n_amps", "metrics"} <= set(found.columns)
    top = found.head(TOP_FINDINGS)
    for kind in ("hot_amp", "noisy_amp"):
        a = data.anomaly(kind)
        assert ((top["detector_name"] == a["detector_name"]) & (top["amp"] == a["amp"])).any(), kind
    index = report.index.read_text()
    assert f"Top {min(len(found), TOP_FINDINGS)} of {len(found)} findings" in index
    if len(found) > TOP_FINDINGS:
        assert f"and {len(found) - TOP_FINDINGS} more" in index
    # no PTC in this source: said, with the reason of any disagreement
    assert "no PTC in the source" in index
    s = json.loads((report.out_dir / "summary.json").read_text())
    assert s["summary"]["ptc"] == ""


def test_histogram_draws_test_limits(data):
    from cpmosaic.metrics import evaluate, load_metrics
    from cpmosaic.report.plots import metric_histogram_plot, plot_items, select, test_histogram, test_info

    df = load_metrics(data.verify_root)
    res = evaluate(df)
    items = {(i.calib_type, i.metric): i for i in plot_items(df) if i.tier == "amp"}
    mean = items[("bias", "MEAN")]
    info = test_info(select(df, mean), res, mean)
    assert info.kind == "abs"  # |MEAN| < NOISE: the limit is drawn at +- the median NOISE
    lines = [el.data for el in metric_histogram_plot(select(df, mean), mean, info) if type(el).__name__ == "VLine"]
    assert sorted(lines) == pytest.approx([-info.limit, info.limit])
    noise = items[("bias", "NOISE")]
    ninfo = test_info(select(df, noise), res, noise)
    assert ninfo.kind == "derived" and ninfo.limit == pytest.approx(0.05)
    th = test_histogram(noise, ninfo)
    assert [el.data for el in th if type(el).__name__ == "VLine"] == [pytest.approx(0.05)]
    # on a log count axis the bars' bottom must be on the axis: a bottom of 0 draws nothing
    import holoviews as hv

    fig = hv.render(th, backend="bokeh")
    quads = [r.glyph for r in fig.renderers if type(getattr(r, "glyph", None)).__name__ == "Quad"]
    assert quads and all(q.bottom != 0 for q in quads)


@pytest.mark.skipif(not HAVE_BUTLER, reason="lsst.daf.butler not installed")
def test_report_from_butler_matches_files(data, tmp_path):
    from cpmosaic.report import build_report

    run = [data.runs["bias"][data.days[-1]]]
    kw = dict(calib_types=["bias"], metrics=["MEAN"], interactive=False, progress=False)
    a = build_report(data.butler_root, tmp_path / "butler", collections=run, **kw)
    b = build_report(data.verify_root, tmp_path / "files", collections=run, **kw)
    assert a.index.is_file()
    for k in ("cp_verify_success", "n_tests", "n_failures"):
        assert a.summary[k] == b.summary[k]
    assert [f.key for f in a.figures] == [f.key for f in b.figures]


def test_collection_that_matches_nothing(data, tmp_path):
    from cpmosaic.errors import InputError
    from cpmosaic.report import build_report

    with pytest.raises(InputError, match="no run matches"):
        build_report(data.verify_root, tmp_path, collections=["u/nobody/*"], progress=False)


def test_cli_report(data, tmp_path, capsys):
    from cpmosaic import progress
    from cpmosaic.cli.main import main

    out = tmp_path / "cli"
    try:
        rc = main(["report", str(data.verify_root), "-o", str(out), "--collection", "*verifyBias*",
                   "--calib-type", "bias", "--metric", "NOISE", "--no-interactive", "--no-progress"])
    finally:
        progress.enable(None)
    assert rc == 0
    stdout = capsys.readouterr().out.strip().splitlines()
    assert Path(stdout[-1]) == out / "index.html" and (out / "index.html").is_file()
    assert "cp_verify: FAIL" in stdout[0]
    assert not (out / "interactive").exists()
    assert main(["report", str(data.verify_root), "-o", str(out), "--collection-b", "x"]) == 2


def test_per_sensor_type_colour_range():
    """A vendor step: with one focal-plane range most ITL amps sit at the top of it; per sensor
    type, each amp's shade is its robust z within its type (checked with plain numpy)."""
    from cpmosaic.camera import get_camera
    from cpmosaic.viz import focal_plane_heatmap

    cam = get_camera("LSSTCam")
    rng = np.random.default_rng(2)
    rows = []
    for det in cam:
        if det.type != "science":
            continue
        level = 10.0 if det.physical_type == "ITL" else 5.0
        for a in det.amp_names:
            rows.append({"detector": det.id, "amp": a, "metric": "NOISE", "value": level + rng.normal(0, 0.1)})
    df = pd.DataFrame(rows)
    one = focal_plane_heatmap(df, "NOISE", labels="none")
    amps = next(el for el in one if el.group == "Amps")
    _, hi = amps.opts.get().kwargs["clim"]
    vals = amps.dimension_values("value")
    itl = amps.dimension_values("physical_type") == "ITL"
    assert (vals[itl] >= hi).mean() > 0.9  # the E2V majority sets the range: ITL saturates
    per = focal_plane_heatmap(df, "NOISE", labels="none", color_range="sensor_type")
    amps = next(el for el in per if el.group == "Amps")
    assert amps.opts.get().kwargs["clim"] == (-4.0, 4.0)
    shade, vals = amps.dimension_values("shade"), amps.dimension_values("value")
    types = amps.dimension_values("physical_type")
    for t in ("E2V", "ITL"):
        x = vals[types == t]
        med = np.median(x)
        ref = (x - med) / (1.482602218505602 * np.median(np.abs(x - med)))
        np.testing.assert_allclose(shade[types == t], ref, rtol=1e-12)
    assert (np.abs(shade) < 4).mean() > 0.99
    with pytest.raises(ValueError, match="color_range"):
        focal_plane_heatmap(df, "NOISE", color_range="vendor")
