"""HTML of the report: the index page, the table pages and the interactive pages.

Everything is self-contained: CSS inline, BokehJS inline (``cpmosaic.viz.html_document``),
links relative, so a report directory opens offline, from a file system or any web server.
"""

from __future__ import annotations

import html
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["FINDING_TABLE", "TOP_FINDINGS", "write_interactive", "write_tables", "write_index", "TAB_SCRIPT"]

#: Columns of the outlier findings as the report shows them (the CSV has every column).
FINDING_TABLE = ("rank", "finding", "detector_name", "amp", "n_amps", "sensor_type", "calib_type", "metric", "value",
                 "z", "severity", "kind", "metrics", "reason")
#: Findings shown on the index page; the rest are counted and linked.
TOP_FINDINGS = 10
#: Why the flat EXP SCATTER verdicts differ (shown wherever that test appears).
EXP_SCATTER_NOTE = ("Flat EXP SCATTER: cp_verify tests the absolute standard deviation of the detector means "
                    "(in their units: thousands of electrons for a flat) against 0.05, so real flats always fail "
                    "it. The re-evaluation tests the relative scatter (standard deviation / mean of the same "
                    "detector means) against 0.05, and keeps cp_verify's flag beside it.")

#: Selects the tab named in the URL fragment (``bias.html#NOISE``) once BokehJS has
#: built the document; tab titles are the labels the index links to.
TAB_SCRIPT = """<script>
(function(){
  function pick(){
    var want=decodeURIComponent(location.hash.slice(1));
    if(!want||!window.Bokeh||!Bokeh.documents||!Bokeh.documents.length)return false;
    Bokeh.documents.forEach(function(doc){
      var t=doc.get_model_by_name('cpm-tabs');
      if(!t)return;
      for(var i=0;i<t.tabs.length;i++){if(t.tabs[i].title===want){t.active=i;break;}}
    });
    return true;
  }
  var tries=0;
  function wait(){if(!pick()&&++tries<100)setTimeout(wait,100);}
  window.addEventListener('load',wait);
  window.addEventListener('hashchange',pick);
})();
</script>
"""

CSS = """<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0 24px 40px;color:#222}
h1{margin:18px 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:3px;margin-top:32px}
nav{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #eee;z-index:2}
nav a{margin-right:14px}
.meta{color:#555;font-size:13px}
.verdict{display:inline-block;font-weight:600;padding:8px 14px;border-radius:6px;margin:8px 8px 8px 0}
.pass{background:#d9f2d9;color:#135e13}.fail{background:#fbd5d0;color:#8a1a0c}.none{background:#eee}
.cards{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.item{border:1px solid #e3e3e3;border-radius:6px;padding:6px;margin:6px 0}
.item h3{margin:2px 4px 6px;font-size:15px}
figure{margin:0;max-width:430px}figure img{max-width:430px;width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#444}
ul.recs li{margin:3px 0}
</style>"""


def write_interactive(path: Path, tabs: Sequence[tuple[str, object]], title: str) -> Path:
    """One standalone page: a bokeh ``Tabs`` with a tab per ``(label, HoloViews object)``."""
    from bokeh.models import TabPanel, Tabs

    from ..viz import html_document
    from ..viz.style import holoviews

    from bokeh.core.validation import silenced
    from bokeh.core.validation.warnings import FIXED_SIZING_MODE

    import param

    hv = holoviews()
    # HoloViews warns for each log-count histogram that it picked the axis' lower bound
    # itself (bins with no counts); that is what the report wants, and not news.
    with param.parameterized.logging_level("ERROR"):
        panels = [TabPanel(child=hv.render(obj, backend="bokeh"), title=label) for label, obj in tabs]
    # HoloViews sizes plots with data_aspect and frame_width, which bokeh's validator
    # reports as "fixed sizing mode without height" though BokehJS lays them out fine.
    with silenced(FIXED_SIZING_MODE):
        page = html_document(Tabs(tabs=panels, name="cpm-tabs"), title=title)
    page = page.replace("</body>", TAB_SCRIPT + "</body>", 1) if "</body>" in page else page + TAB_SCRIPT
    path.write_text(page, encoding="utf-8")
    return path


def write_tables(out: Path, *, failures: pd.DataFrame, outliers: pd.DataFrame, alerts: pd.DataFrame | None,
                 validity: pd.DataFrame | None) -> dict[str, dict]:
    """Failures, outliers, alerts (and validity ranges) as sortable HTML pages and CSV files."""
    from ..viz import failures_table_html, html_document, table_html

    made: dict[str, dict] = {}

    def one(name: str, frame: pd.DataFrame, fragment: str, title: str) -> None:
        (out / f"{name}.html").write_text(html_document(
            f"<p><a href='index.html'>back to the report</a></p>{fragment}", title=title), encoding="utf-8")
        frame.to_csv(out / f"{name}.csv", index=False)
        made[name] = {"html": f"{name}.html", "csv": f"{name}.csv", "n": int(len(frame)), "title": title}

    one("failures", failures, failures_table_html(failures, title=f"Failures ({len(failures)})"), "Failures")
    one("outliers", outliers, _findings_intro() + table_html(
        outliers, columns=FINDING_TABLE, title=f"Outlier findings ({len(outliers)}), by severity"), "Outliers")
    if alerts is not None:
        frag = table_html(alerts, title=f"Drift and jump alerts ({len(alerts)})")
        if validity is not None:
            frag += table_html(validity, title="Validity ranges", include_assets=False)
        one("alerts", alerts, frag, "History alerts")
    return made


def _e(v) -> str:
    return html.escape(str(v))


def _findings_intro() -> str:
    return ("<p>One finding per cause: each value is compared with its population (same calibration, "
            "exposure, metric and sensor type: E2V, ITL, ITL guider, ITL wavefront) and with its amp's "
            "own history; a detector with half its amps off is one entry, an amp one entry listing its "
            "metrics; drift and jump alerts of the history join them. Severity is the largest |z| of a "
            "finding's values; amps the camera already lists as noisy come last.</p>")


def _verdict_notes(summ: dict) -> list[str]:
    """Where the re-evaluation's verdicts come from, and why they differ from cp_verify's."""
    ptc = summ.get("ptc")
    out = ["<ul class='recs'>",
           "<li>Read noise and gain for NOISE and READ_NOISE_CONSISTENT: " + (_e(ptc) if ptc else
           "<b>no PTC in the source</b>: the camera's nominal values (cp_verify used the PTC's, which its "
           "outputs do not carry, so some verdicts may differ).") + "</li>"]
    for reason, n in (summ.get("disagreements") or {}).items():
        out.append(f"<li>{n} verdict(s) differ from cp_verify's: {_e(reason)}</li>")
    if summ.get("flat_exp_scatter"):
        out.append(f"<li>{_e(EXP_SCATTER_NOTE)}</li>")
    out.append("</ul>")
    return out


def _verdict(label: str, ok) -> str:
    cls, word = ("none", "no verdict") if ok is None else (("pass", "PASS") if ok else ("fail", "FAIL"))
    return f"<span class='verdict {cls}'>{_e(label)}: {word}</span>"


def _figure(f) -> str:
    link = f" · <a href='{_e(f.html)}'>interactive</a>" if f.html else ""
    return (f"<figure id='fig-{_e(f.key)}'><a href='{_e(f.png)}'><img src='{_e(f.png)}' loading='lazy' "
            f"alt='{_e(f.title)}' width='{f.size[0]}' height='{f.size[1]}'></a>"
            f"<figcaption>{_e(f.title)}{link}</figcaption></figure>")


def _cards(figs) -> str:
    return "<div class='cards'>" + "".join(_figure(f) for f in figs) + "</div>"


def _summary_html(summ: dict, n_outliers: int, tables: dict) -> list[str]:
    from ..viz import table_html

    out = [_verdict("cp_verify", summ.get("cp_verify_success")), _verdict("re-evaluated", summ.get("success"))]
    agree = summ.get("agreement")
    unmeasured = summ.get("n_not_measured")
    out.append(f"<p>{summ.get('n_tests', 0)} tests, {summ.get('n_failures', 0)} failing "
               f"(cp_verify: {summ.get('n_cp_verify_failures', 0)})"
               + (f", {unmeasured} not measured (no value: never counted as passing)" if unmeasured else "")
               + (f", verdicts agree on {100 * agree:.1f}%" if agree is not None else "")
               + f"; <a href='{tables['failures']['html']}'>failures</a> ({tables['failures']['n']}), "
               f"<a href='{tables['outliers']['html']}'>outlier findings</a> ({n_outliers}).</p>")
    out += _verdict_notes(summ)
    per = pd.DataFrame(summ.get("exposures", []))
    if len(per):
        per["failures"] = per["failures"].map(lambda f: ", ".join(f[:5]) + (f" (+{len(f) - 5})" if len(f) > 5 else ""))
        out.append(table_html(per, title="By exposure", max_rows=200))
    return out


def write_index(result, *, title: str, source, collections, against, labels: tuple[str, str], tables: dict,
                failures: pd.DataFrame, outliers: pd.DataFrame, validity: pd.DataFrame | None, items,
                camera: str, note: str | None = None) -> Path:
    """The report's front page: summary, alerts and recommendations, every figure, tables."""
    from ..viz import failures_table_html, table_html

    figs = result.figures
    calib_types = list(dict.fromkeys(i.calib_type for i in items))
    sections = [(f"calib-{ct}", ct) for ct in calib_types]
    for key, name in (("scatter", "Scatter"), ("comparison", "Comparison"), ("history", "History"),
                      ("mosaic", "Mosaics")):
        if any(f.section == key for f in figs) or (key == "comparison" and result.comparison) or \
                (key == "history" and result.alerts is not None):
            sections.append((key, name))
    sections.append(("tables", "Tables"))
    def where(s) -> str:
        return os.fspath(s) if isinstance(s, (str, os.PathLike)) else "a metrics table"

    meta = [f"source {where(source)}"]
    if collections:
        meta.append("collections " + ", ".join([collections] if isinstance(collections, str) else collections))
    if against is not None:
        meta.append(f"{labels[0]} against {labels[1]}: {where(against)}")
    meta += [f"camera {camera}", f"{len(figs)} figures",
             "generated " + datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")]
    p = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{_e(title)}</title>", CSS,
         "</head><body>", f"<h1>{_e(title)}</h1>", f"<p class='meta'>{_e(' · '.join(meta))}</p>",
         (f"<p class='meta'>{_e(note)}</p>" if note else ""),
         "<nav><a href='#summary'>Summary</a>" + "".join(f"<a href='#{k}'>{_e(n)}</a>" for k, n in sections) + "</nav>",
         "<h2 id='summary'>Summary</h2>"]
    p += _summary_html(result.summary, result.n_outliers, tables)
    p.append("<h3 id='findings'>Outlier findings</h3>")
    if len(outliers):
        rest = len(outliers) - min(len(outliers), TOP_FINDINGS)
        p.append(_findings_intro())
        p.append(table_html(outliers.head(TOP_FINDINGS), columns=FINDING_TABLE,
                            title=f"Top {min(len(outliers), TOP_FINDINGS)} of {len(outliers)} findings",
                            include_assets=False))
        if rest:
            p.append(f"<p>and {rest} more: <a href='{tables['outliers']['html']}'>all findings</a> "
                     f"(<a href='{tables['outliers']['csv']}'>csv</a>).</p>")
    else:
        p.append("<p>No outliers.</p>")
    if result.problems:
        p.append(f"<p class='fail verdict'>{len(result.problems)} input(s) could not be read</p>")
        p.append(table_html(pd.DataFrame(result.problems), max_rows=50, include_assets=False))
    if result.recommendations:
        p.append("<h3>Recommendations</h3><ul class='recs'>")
        for r in result.recommendations:
            flag = "<b>new calibration recommended</b>" if r["recommend_new"] else "valid"
            p.append(f"<li>{_e(r['calib_type'])}: {flag}: {_e(r['reason'])}</li>")
        p.append("</ul>")
    by_item: dict[tuple, list] = {}
    for f in figs:
        if f.section.startswith("calib:"):
            by_item.setdefault((f.calib_type, f.tier, f.metric), []).append(f)
    for ct in calib_types:
        p.append(f"<h2 id='calib-{_e(ct)}'>{_e(ct)}</h2>")
        for i in (i for i in items if i.calib_type == ct):
            group = by_item.get((i.calib_type, i.tier, i.metric), [])
            p.append(f"<div class='item' id='{_e(i.slug)}'><h3>{_e(ct)} {_e(i.label)}</h3>{_cards(group)}</div>")
    for key, name in sections:
        if key.startswith("calib-") or key == "tables":
            continue
        p.append(f"<h2 id='{key}'>{_e(name)}</h2>")
        if key == "comparison" and result.comparison:
            c = result.comparison
            frac = c.get("fraction_identical")
            p.append(f"<p>{_e(labels[1])} against {_e(labels[0])}: {c['n_compared']} values compared, "
                     f"{c['n_identical']} identical" + (f" ({100 * frac:.1f}%)" if frac is not None else "")
                     + f", largest |difference| {c['max_abs_diff']}; only in {_e(labels[0])}: {c['only_in_a']}, "
                     f"only in {_e(labels[1])}: {c['only_in_b']}.</p>")
            if c.get("largest"):
                p.append(table_html(pd.DataFrame(c["largest"]), title="Largest differences", include_assets=False))
        if key == "history" and result.alerts is not None:
            a = result.alerts
            p.append(f"<p>{len(a)} drift/jump alert(s); <a href='{tables['alerts']['html']}'>all alerts and "
                     "validity ranges</a>.</p>")
            if len(a):
                p.append(table_html(a.head(50), title="Alerts", include_assets=False))
            if validity is not None:
                p.append(table_html(validity, title="Validity ranges", include_assets=False))
        p.append(_cards([f for f in figs if f.section == key]))
    p.append("<h2 id='tables'>Tables</h2><ul>")
    for t in tables.values():
        p.append(f"<li><a href='{t['html']}'>{_e(t['title'])}</a> ({t['n']} rows, <a href='{t['csv']}'>csv</a>)</li>")
    p.append("<li><a href='summary.json'>summary.json</a> · <a href='figures.json'>figures.json</a></li></ul>")
    p.append(failures_table_html(failures, title=f"Failures (first 50 of {len(failures)})", max_rows=50))
    p.append(table_html(outliers, columns=FINDING_TABLE, title=f"Outlier findings (first 50 of {len(outliers)})",
                        max_rows=50, include_assets=False))
    p.append("</body></html>\n")
    result.index.write_text("\n".join(p), encoding="utf-8")
    return result.index
