"""A self-contained HTML report of a cohort: QC, activation maps, timing, asymmetry, variability, subjects.

One HTML file, inline CSS and inline SVG (:mod:`warehouse.serving.figures`), no scripts and
no external URL, so it opens offline and can be mailed or archived as is.

Selection
    The same machinery as extracts (:func:`warehouse.serving.extracts.open_cohort`):
    one pinned snapshot, the reader's member-scoped views, the ``--cohort`` filter,
    and the consortium rules for the reader's site (an operator reading for
    nobody in particular: every site must be shareable). The QC
    section counts files of the released sites only and shows stages and reason
    codes, never file paths or messages (which quote inbox paths).

Sections (element ids, for tests and links)
    ``#qc`` (``svg#qc-files``, quarantine table); from :mod:`warehouse.serving.report_sections`:
    ``#maps`` (one ``svg.activation-map`` per task x condition, left and right panels, mean
    onset/offset marks; beside each, ``table#map-cells-<map>`` and the channel QC
    ``table#map-qc-<map>``), ``#timing`` (``svg#onset-timing`` in % cycle,
    ``svg#onset-timing-ms``, ``table#timing-cells``), ``#gait`` (``table#gait-cells``,
    ``table#gait-subjects``), ``#asymmetry`` (``svg#asymmetry-<metric>``,
    ``table#asymmetry-cells-<metric>``), ``#variability`` (``svg#variability-cv``,
    ``svg#variability-vr``, ``table#variability-cells``); from
    :mod:`warehouse.serving.report_subjects`: ``#subjects`` (one ``section.subject`` per subject
    with ``svg.profile`` z-scores against the cohort reference and one table per metric, or the
    reason none was computed); ``#data-dictionary``.
"""
from __future__ import annotations

import datetime as dt
from html import escape
from pathlib import Path

import fsspec

from schemas import vocab
from schemas.contracts import TABLES
from warehouse import catalog, zones
from warehouse.serving import figures, views
from warehouse.serving import report_sections as rs
from warehouse.serving import report_subjects
from warehouse.serving.extracts import (
    REQUIRED_SCOPE,
    Cohort,
    code_version,
    check_outside_lake,
    open_cohort,
    utc_now,
)
from warehouse.settings import Settings

L = catalog.LAKE
CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#17324d;color:#fff;padding:18px 28px}header h1{margin:0 0 6px;font-size:22px}
header p{margin:2px 0;font-size:13px;opacity:.9}nav{padding:8px 28px;background:#e8eef4;font-size:13px}
nav a{margin-right:14px;color:#17324d}main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{font-size:18px;margin:4px 0 10px;color:#17324d}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f0f3f6}tr.flagged td{background:#fff1e0}.figure{display:block;margin:8px 0;max-width:100%;height:auto}
.figs{display:flex;flex-wrap:wrap;gap:12px}.note{font-size:12px;color:#555}.empty{color:#888;font-style:italic}
details summary{cursor:pointer;font-weight:bold;margin:6px 0}h4{font-size:13px;margin:10px 0 4px}
.map-block{margin:10px 0 18px}
"""


_Ctx, _table = rs.Ctx, rs.table


# --------------------------------------------------------------------------- sections
def _qc(ctx: _Ctx) -> tuple[str, int]:
    allowed = ctx.c.included_sites or [""]
    site_pred, p = ctx.c.filter.predicate({"site": "f.site_id"}, keys=["site"])
    q_pred, _ = ctx.c.filter.predicate({"site": "q.site_id"}, keys=["site"])
    by = ctx.con.execute(f"SELECT f.site_id, f.status, count(*) FROM files f "
                         f"WHERE list_contains(?, f.site_id) AND {site_pred} GROUP BY ALL ORDER BY 1, 2",
                         [allowed] + p).fetchall()
    q = ctx.con.execute(f"SELECT q.site_id, q.stage, q.reason_code, count(*) FROM quarantine q "
                        f"WHERE list_contains(?, q.site_id) AND {q_pred} GROUP BY ALL "
                        "ORDER BY 4 DESC, 1, 2, 3", [allowed] + p).fetchall()
    statuses = [s for s in vocab.FILE_STATUSES if any(r[1] == s for r in by)]
    sites = sorted({r[0] for r in by})
    counts = {(r[0], r[1]): r[2] for r in by}
    html = ["<section id=\"qc\"><h2>Quality control</h2>"]
    n = 0
    if statuses:
        html.append(figures.bar_svg(statuses, {s: [counts.get((s, st), 0) for st in statuses] for s in sites},
                                    svg_id="qc-files", title="Files by status and site", x_label="files (count)"))
        n += 1
    else:
        html.append('<p class="empty">No files for the selected sites.</p>')
    total = sum(counts.values())
    html.append(f"<p>{total} files: " + ", ".join(
        f"{sum(v for (s, st), v in counts.items() if st == status)} {status}" for status in statuses) + ".</p>")
    html.append("<h3>Quarantined files by reason</h3>" + _table(["site", "stage", "reason code", "n_files"], q))
    html.append('<p class="note">Paths and messages are not shown (they quote inbox file names); '
                "site operators see them with <code>myomap status</code>.</p></section>")
    return "".join(html), n


def _dictionary() -> str:
    out = ['<section id="data-dictionary"><h2>Data dictionary</h2>']
    for t in TABLES.values():
        rows = [(c.name, c.dtype, c.unit or "", c.description) for c in t.columns]
        out.append(f'<details id="dict-{t.name}"><summary>{escape(t.name)}</summary><p>{escape(t.description)} '
                   f"Grain: {escape(t.grain)}. Key: {escape(', '.join(t.primary_key))}.</p>"
                   + _table(["column", "type", "unit", "description"], rows) + "</details>")
    out.append("</section>")
    return "".join(out)


# --------------------------------------------------------------------------- report
def render_report(settings: Settings, out_path: str, *, cohort: str | None = None,
                  requester_site: str | None = None, required_scope: str = REQUIRED_SCOPE,
                  as_of: str | None = None, today: dt.date | None = None, max_subjects: int = 200,
                  member=None) -> dict:
    """Write the HTML report of a cohort to ``out_path`` (local path or ``s3://``).

    Parameters
    ----------
    settings : Settings
        The lake.
    out_path : str
        Output ``.html`` file.
    cohort : str, optional
        Cohort filter (:mod:`warehouse.serving.cohort_filter`).
    requester_site, required_scope, as_of, today, member
        As for :func:`warehouse.serving.extracts.extract`: the report shows what the
        configured identity (or whom an operator acts as) may see, nothing more.
    max_subjects : int
        Subject sections shown at most.

    Returns
    -------
    dict
        ``path``, ``snapshot_id``, ``figures`` (SVG count), ``subjects`` (sections).
    """
    if not str(out_path).startswith("s3://"):
        out_path = str(Path(out_path).expanduser().resolve())
    check_outside_lake(settings, str(out_path), what="reports")
    c = open_cohort(settings, cohort=cohort, requester_site=requester_site, required_scope=required_scope,
                    as_of=as_of, today=today, member=member)
    try:
        views.create_views(c.con)
        ctx = _Ctx(c)
        parts, n_fig = [], 0
        for fn in (_qc, rs.maps, rs.timing, rs.gait, rs.asymmetry, rs.variability):
            html, n = fn(ctx)
            parts.append(html)
            n_fig += n
        html, n_subjects, n = report_subjects.subjects(ctx, max_subjects)
        parts.append(html)
        n_fig += n
        n_sess = c.con.execute("SELECT count(*) FROM _cohort_sessions").fetchone()[0]
        excluded = "; ".join(f"{d.site_id} ({', '.join(d.reasons)})" for d in c.excluded) or "none"
        head = (f"<header><h1>myomap cohort report</h1>"
                f"<p>Cohort: <code>{escape(c.filter.canonical() or 'everyone')}</code> - {n_subjects} subjects, "
                f"{n_sess} sessions. Sites included: {escape(', '.join(c.included_sites) or 'none')}; "
                f"excluded: {escape(excluded)}.</p>"
                f"<p>DuckLake snapshot {c.snapshot_id} ({escape(str(c.snapshot_time))}); code "
                f"{escape(code_version())}; generated {escape(utc_now())}"
                + (f"; for site {escape(c.requester_site)}" if c.requester_site else "") + ".</p></header>")
        links = (("qc", "QC"), ("maps", "Activation maps"), ("timing", "Onset timing"), ("gait", "Gait"),
                 ("asymmetry", "Asymmetry"),
                 ("variability", "Variability"), ("subjects", "Subjects"), ("data-dictionary", "Data dictionary"))
        nav = "<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in links) + "</nav>"
        page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>myomap report - snapshot {c.snapshot_id}</title><style>{CSS}</style></head><body>"
                + head + nav + "<main>" + "".join(parts) + _dictionary() + "</main></body></html>\n")
        snapshot = c.snapshot_id
    finally:
        c.close()
    if str(out_path).startswith("s3://"):
        fs, path = zones.filesystem(settings), str(out_path)
    else:
        fs, path = fsspec.filesystem("file"), str(Path(out_path).expanduser().resolve())
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with fs.open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return {"path": path, "snapshot_id": snapshot, "figures": n_fig, "subjects": n_subjects}
