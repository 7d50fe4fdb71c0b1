"""The standard notebooks (examples/*.ipynb) run from top to bottom on small demo data, and
their exported HTML shows every plot with no network.

Each is executed with nbclient in a kernel of this interpreter (registered in a temporary
Jupyter path, so the test never picks another environment's ``python3``), with
``CPMOSAIC_DEMO_SMALL=1`` (a 14-detector subset) and no repository configured, so the
first cell makes its demo data.  A cell that raises fails the test.  Each notebook runs once
per session; the browser test opens its HTML (``cpmosaic.viz.notebook_html.export_html``)
in headless chromium with the network switched off.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from explore_fixtures import CHROMIUM, DevTools

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = ("verify_calibration", "mosaic", "daily_monitoring")
CONFIG_VARS = ("CPMOSAIC_REPO", "CPMOSAIC_COLLECTION", "CPMOSAIC_AGAINST", "CPMOSAIC_COLLECTION_B",
               "CPMOSAIC_MOSAIC", "CPMOSAIC_IMAGES", "CPMOSAIC_HISTORY", "CPMOSAIC_BINNING")


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """JUPYTER_PATH with a ``python3`` kernel of this interpreter."""
    pytest.importorskip("nbclient")
    kernelspec = pytest.importorskip("ipykernel.kernelspec")
    prefix = tmp_path_factory.mktemp("jupyter")
    kernelspec.install(prefix=str(prefix), kernel_name="python3")
    return str(prefix / "share" / "jupyter")


@pytest.fixture(scope="session")
def executed(kernel_env, tmp_path_factory):
    """``run(name)``: the notebook executed (once per session) and the directory it ran in."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    done: dict[str, tuple] = {}

    def run(name: str):
        if name in done:
            return done[name]
        work = tmp_path_factory.mktemp(f"nb-{name}")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("JUPYTER_PATH", kernel_env)
            mp.setenv("CPMOSAIC_DEMO_SMALL", "1")
            mp.setenv("TMPDIR", str(work))  # the notebooks' demo data land in the test's directory
            for var in CONFIG_VARS:
                mp.delenv(var, raising=False)
            nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
            assert nb.cells[0].cell_type == "code" and "CPMOSAIC_" in nb.cells[0].source
            assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
                "commit notebooks without outputs"
            client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                    resources={"metadata": {"path": str(work)}})
            try:
                client.execute()
            except CellExecutionError as exc:  # the cell's traceback, not nbclient's
                pytest.fail(f"{name}.ipynb: a cell failed:\n{exc}")
        done[name] = (nb, work)
        return done[name]

    return run


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, executed):
    nb, _ = executed(name)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert errors == []
    # the plots were drawn: bokeh/holoviews outputs in the executed notebook
    mimes = {k for c in nb.cells if c.cell_type == "code" for o in c.outputs for k in o.get("data", {})}
    assert any("bokeh" in m or "holoviews" in m or m == "application/vnd.holoviews_exec.v0+json" for m in mimes), mimes
    # every notebook ends with the explorer, drawn (a Panel layout, not a message)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert "explore(" in last.source
    assert any("application/vnd.holoviews_exec.v0+json" in o.get("data", {}) for o in last.outputs), last.outputs


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless chromium not installed (/usr/bin/chromium)")
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_html_renders_offline(name, executed, browser):
    """The exported HTML, opened from a file with the network off: no failed loads, no request
    leaves the page, no script error, and every bokeh document renders its plots."""
    pytest.importorskip("nbconvert")
    from cpmosaic.viz.notebook_html import export_html

    nb, work = executed(name)
    page = work / f"{name}.html"
    html = export_html(nb, page)
    n_outputs = html.count("application/vnd.bokehjs_exec.v0+json") + html.count("holoviews_exec")

    async def go():
        dt = await DevTools.open(browser)
        await dt.send("Runtime.enable")
        await dt.send("Network.enable")
        await dt.send("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1,
                      uploadThroughput=-1)
        await dt.goto(page.as_uri())
        await dt.wait_for("window.Bokeh && Bokeh.documents.length > 0", 60)
        await asyncio.sleep(2)  # let every output's script run
        docs = await dt.eval("Bokeh.documents.length")
        plots = await dt.eval("[...Bokeh.index.query(v => v.frame !== undefined)].length")
        drawn = await dt.eval("[...Bokeh.index.query(v => v.frame !== undefined)]"
                              ".filter(v => v.canvas_view && v.canvas_view.el.getBoundingClientRect().width > 50)"
                              ".length")
        dt.ws.close()
        return docs, plots, drawn, dt.events, dt.exceptions

    docs, plots, drawn, events, exceptions = asyncio.run(go())
    failed = [e["params"] for e in events if e["method"] == "Network.loadingFailed"]
    remote = [e["params"]["request"]["url"][:120] for e in events if e["method"] == "Network.requestWillBeSent"
              and e["params"]["request"]["url"].startswith(("http:", "https:"))]
    assert failed == [] and remote == [], (failed[:3], remote[:5])
    assert exceptions == [], [x["exceptionDetails"].get("exception", {}).get("description", "")[:300]
                              for x in exceptions[:3]]
    assert n_outputs > 0 and docs >= 1
    assert plots >= 2 and drawn == plots, (docs, plots, drawn)
