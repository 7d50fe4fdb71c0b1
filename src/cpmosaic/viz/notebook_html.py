"""Executed notebooks as HTML that shows every plot with no network.

``hv.extension("bokeh", inline=True)`` and ``pn.extension(inline=True)`` put BokehJS, the
HoloViews and the Panel JavaScript into the notebook's outputs, but Panel's layouts still
name a few style sheets by their CDN address (``cdn.holoviz.org/panel/<version>/dist/...``)
and nbconvert's page template loads require.js and MathJax from CDNs.  :func:`export_html`
exports with nbconvert's ``lab`` template, replaces each Panel CDN address with the same
file from the installed Panel as a ``data:`` URL, and leaves require.js and MathJax out
(nothing here needs them: bokeh outputs load without require.js, and the notebooks hold no
LaTeX).

>>> html = export_html("examples/mosaic.ipynb", "mosaic.html")   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
from pathlib import Path

__all__ = ["export_html", "inline_panel_assets"]

_PANEL_CDN = re.compile(r"https://cdn\.holoviz\.org/panel/[^/\"'\s\\]+/dist/([^\"'\s?\\#]+)(\?v=[^\"'\s\\]*)?")
#: An empty script: what nbconvert's template gets instead of the require.js and MathJax CDNs.
_EMPTY_SCRIPT = "data:text/javascript,"


def _data_url(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".js":
        mime = "text/javascript"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def inline_panel_assets(html: str) -> str:
    """*html* with every Panel CDN file address replaced by the installed file as a ``data:`` URL.

    Addresses whose file the installed Panel does not have are left as they are.

    >>> inline_panel_assets("x https://cdn.holoviz.org/panel/1.0/dist/no/such.css y")
    'x https://cdn.holoviz.org/panel/1.0/dist/no/such.css y'
    """
    import panel

    dist = Path(panel.__file__).parent / "dist"
    cache: dict[str, str] = {}

    def swap(m: re.Match) -> str:
        rel = m.group(1)
        if rel not in cache:
            f = (dist / rel).resolve()
            ok = f.is_file() and dist.resolve() in f.parents
            cache[rel] = _data_url(f) if ok else m.group(0)
        return cache[rel]

    return _PANEL_CDN.sub(swap, html)


def export_html(notebook, out: str | os.PathLike | None = None) -> str:
    """An executed notebook (path or ``nbformat`` node) as HTML that needs no network.

    Parameters
    ----------
    notebook
        Path of an ``.ipynb`` file, or a notebook node (``nbformat.read``).
    out
        Where to write the HTML (optional).

    Returns
    -------
    str
        The HTML page.
    """
    import nbformat
    from nbconvert import HTMLExporter

    if isinstance(notebook, (str, os.PathLike)):
        notebook = nbformat.read(os.fspath(notebook), as_version=4)
    exporter = HTMLExporter(template_name="lab", require_js_url=_EMPTY_SCRIPT, mathjax_url=_EMPTY_SCRIPT)
    body, _ = exporter.from_notebook_node(notebook)
    html = inline_panel_assets(body)
    if out is not None:
        Path(out).write_text(html, encoding="utf-8")
    return html
