"""The standard notebooks (examples/*.ipynb) run from top to bottom on small demo data.

Each is executed with nbclient in a kernel of this interpreter (registered in a temporary
Jupyter path, so the test never picks another environment's ``python3``), with
``CPMOSAIC_DEMO_SMALL=1`` (a 14-detector subset) and no repository configured, so the
first cell makes its demo data.  A cell that raises fails the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = ("verify_calibration", "mosaic", "daily_monitoring")
CONFIG_VARS = ("CPMOSAIC_REPO", "CPMOSAIC_COLLECTION", "CPMOSAIC_AGAINST", "CPMOSAIC_COLLECTION_B",
               "CPMOSAIC_MOSAIC", "CPMOSAIC_IMAGES", "CPMOSAIC_HISTORY", "CPMOSAIC_BINNING")


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """JUPYTER_PATH with a ``python3`` kernel of this interpreter."""
    pytest.importorskip("nbclient")
    kernelspec = pytest.importorskip("ipykernel.kernelspec")
    prefix = tmp_path_factory.mktemp("jupyter")
    kernelspec.install(prefix=str(prefix), kernel_name="python3")
    return str(prefix / "share" / "jupyter")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, kernel_env, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("JUPYTER_PATH", kernel_env)
    monkeypatch.setenv("CPMOSAIC_DEMO_SMALL", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' demo data land in the test's directory
    for var in CONFIG_VARS:
        monkeypatch.delenv(var, raising=False)
    nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "code" and "CPMOSAIC_" in nb.cells[0].source
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as exc:  # the cell's traceback, not nbclient's
        pytest.fail(f"{name}.ipynb: a cell failed:\n{exc}")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert errors == []
    # the plots were drawn: bokeh/holoviews outputs in the executed notebook
    mimes = {k for c in nb.cells if c.cell_type == "code" for o in c.outputs for k in o.get("data", {})}
    assert any("bokeh" in m or "holoviews" in m or m == "application/vnd.holoviews_exec.v0+json" for m in mimes), mimes
