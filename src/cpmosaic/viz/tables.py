"""Failures and outliers as sortable plain-HTML tables (inline CSS and JS, no CDN).

Every cell is HTML-escaped; clicking a header sorts by that column (numbers numerically).

>>> import pandas as pd
>>> html = table_html(pd.DataFrame({"amp": ["<C10>"], "value": [1.5]}))
>>> "&lt;C10&gt;" in html and "<C10>" not in html
True
"""

from __future__ import annotations

import html
import itertools
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["table_html", "failures_table_html", "outliers_table_html", "TABLE_CSS", "TABLE_JS"]

_ids = itertools.count(1)

TABLE_CSS = """<style>
table.cpm{border-collapse:collapse;font:12px/1.35 system-ui,sans-serif;margin:6px 0}
table.cpm th,table.cpm td{border:1px solid #ccc;padding:2px 6px;text-align:left}
table.cpm td.num{text-align:right;font-variant-numeric:tabular-nums}
table.cpm th{background:#f0f0f0;cursor:pointer;user-select:none;position:sticky;top:0}
table.cpm th[aria-sort=ascending]::after{content:" \\25B2"}
table.cpm th[aria-sort=descending]::after{content:" \\25BC"}
table.cpm tr.fail td{background:#fde0dc}
p.cpm-note{font:12px system-ui,sans-serif;color:#555}
</style>"""

# Sort on header click; numeric cells carry data-v. Installed once per page (guarded).
TABLE_JS = """<script>
if(!window.cpmSort){window.cpmSort=function(th){
const t=th.closest('table'),b=t.tBodies[0],i=th.cellIndex,num=th.dataset.type==='num';
const asc=th.getAttribute('aria-sort')!=='ascending';
for(const h of th.parentNode.children)h.removeAttribute('aria-sort');
th.setAttribute('aria-sort',asc?'ascending':'descending');
const key=r=>{const c=r.cells[i];if(!c)return'';if(num){const v=parseFloat(c.dataset.v);return isNaN(v)?Infinity:v}return c.textContent};
const rows=Array.from(b.rows).sort((x,y)=>{const a=key(x),c=key(y);return(a<c?-1:a>c?1:0)*(asc?1:-1)});
for(const r of rows)b.appendChild(r)};
document.addEventListener('click',e=>{const th=e.target.closest('table.cpm th');if(th)window.cpmSort(th)});}
</script>"""


def _fmt(v, float_format: str) -> tuple[str, str | None]:
    """(text, numeric sort key or None) for one cell."""
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "", None
    if isinstance(v, (bool, np.bool_)):
        return ("yes" if v else "no"), None
    if isinstance(v, (int, np.integer)):
        return str(int(v)), str(int(v))
    if isinstance(v, (float, np.floating)):
        return float_format.format(float(v)), repr(float(v))
    return str(v), None


def table_html(df: pd.DataFrame, *, columns: Sequence[str] | None = None, title: str | None = None,
               max_rows: int | None = 5000, float_format: str = "{:.4g}", fail_column: str | None = None,
               table_id: str | None = None, include_assets: bool = True) -> str:
    """A sortable HTML table of *df* (escaped), optionally titled; rows beyond *max_rows* noted.

    Parameters
    ----------
    columns
        Columns to show, in order (missing ones skipped); default all.
    fail_column
        Boolean column whose False rows get the ``fail`` class (highlighted).
    include_assets
        Include the small CSS and JS (needed once per page).
    """
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    shown = df if max_rows is None else df.head(max_rows)
    numeric = {c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in cols}
    tid = table_id or f"cpm-table-{next(_ids)}"
    out = [TABLE_CSS, TABLE_JS] if include_assets else []
    if title:
        out.append(f"<h3>{html.escape(title)}</h3>")
    out.append(f'<table class="cpm" id="{html.escape(tid)}"><thead><tr>')
    for c in cols:
        kind = "num" if numeric[c] else "str"
        out.append(f'<th data-type="{kind}" title="sort by {html.escape(str(c))}">{html.escape(str(c))}</th>')
    out.append("</tr></thead><tbody>")
    fails = None
    if fail_column and fail_column in shown.columns:
        fails = shown[fail_column].astype("boolean").fillna(True).to_numpy() == False  # noqa: E712
    for i, row in enumerate(shown[cols].itertuples(index=False, name=None)):
        cls = ' class="fail"' if fails is not None and fails[i] else ""
        cells = []
        for v in row:
            text, key = _fmt(v, float_format)
            if key is not None:
                cells.append(f'<td class="num" data-v="{html.escape(key)}">{html.escape(text)}</td>')
            else:
                cells.append(f"<td>{html.escape(text)}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if max_rows is not None and len(df) > max_rows:
        out.append(f'<p class="cpm-note">{len(df) - max_rows} more rows not shown (of {len(df)}).</p>')
    if not len(df):
        out.append('<p class="cpm-note">none</p>')
    return "\n".join(out)


FAILURE_COLUMNS = ("calib_type", "run", "exposure", "day_obs", "detector", "detector_name", "amp", "test",
                   "metric", "value", "threshold", "passed")
OUTLIER_COLUMNS = ("calib_type", "run", "exposure", "detector", "detector_name", "amp", "metric", "value", "z",
                   "reason")


def _ordered(df: pd.DataFrame, first: Sequence[str]) -> list[str]:
    return [c for c in first if c in df.columns] + [c for c in df.columns if c not in first]


def failures_table_html(df: pd.DataFrame, *, title: str | None = "Failures", max_rows: int | None = 5000,
                        only_failed: bool = True, **kwargs: Any) -> str:
    """The results of ``cpmosaic.metrics.evaluate`` as sortable HTML, failing rows highlighted.

    With ``only_failed`` (default) rows with ``passed`` True are left out, so the full
    evaluation table can be given as it is.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"test": ["NOISE"], "value": [9.0], "threshold": [8.0], "passed": [False]})
    >>> 'class="fail"' in failures_table_html(f)
    True
    """
    if only_failed and "passed" in df.columns:
        df = df[df["passed"].astype("boolean").fillna(True).to_numpy() == False]  # noqa: E712
    return table_html(df, columns=_ordered(df, FAILURE_COLUMNS), title=title, max_rows=max_rows,
                      fail_column="passed", **kwargs)


def outliers_table_html(df: pd.DataFrame, *, title: str | None = "Outliers", max_rows: int | None = 5000,
                        **kwargs: Any) -> str:
    """The outliers list (``detector, detector_name, amp, metric, value, z, reason``) as HTML,
    sorted by ``|z|`` (largest first)."""
    if "z" in df.columns and len(df):
        df = df.iloc[(-df["z"].astype(float).abs()).argsort(kind="stable")]
    return table_html(df, columns=_ordered(df, OUTLIER_COLUMNS), title=title, max_rows=max_rows, **kwargs)
