"""The report's subject pages: each subject's profile against the cohort reference, or why there is none.

A subject gets one ``section.subject`` with, per session, a z-score figure (``svg.profile``) and one
table per metric (value, reference median and robust SD in the metric's unit). Where no profile or no
z-score could be computed the page says why, from the lake's own tables: no EMG channels, every
channel excluded by QC (with the reasons), no valid gait cycles, no onsets, or a reference cohort
smaller than :data:`transforms.profiles.MIN_REFERENCE_SUBJECTS`.
"""
from __future__ import annotations

from collections import defaultdict
from html import escape

from transforms.profiles import MIN_REFERENCE_SUBJECTS
from warehouse.serving import figures
from warehouse.serving.report_sections import EXCLUDED_CHANNELS_SQL, Ctx, mkey, series_label, slug, table, unit_of

#: |z| band shaded in the subject profiles.
Z_BAND = 2.0
#: Profile metrics whose unit is not in the metric registry: the Robinson SI of the peak.
PROFILE_UNITS = {"si_pct": "%", "duration_ms": "ms"}


def _subject_facts(ctx: Ctx) -> dict[str, dict]:
    """Per subject of the cohort: EMG channels, excluded channels and their reasons, valid cycles, onsets."""
    facts: dict = defaultdict(lambda: {"channels": 0, "excluded": 0, "reasons": [], "cycles": 0, "onsets": 0})
    in_cohort = "t.session_id IN (SELECT session_id FROM _cohort_sessions)"
    for subj, n in ctx.con.execute(f"SELECT t.subject_id, count(*) FROM emg_channels c JOIN trials t USING (trial_id) "
                                   f"WHERE {in_cohort} GROUP BY 1").fetchall():
        facts[subj]["channels"] = n
    for subj, n, reasons in ctx.con.execute(
            f"SELECT t.subject_id, count(*), list(DISTINCT b.reason ORDER BY b.reason) FROM ({EXCLUDED_CHANNELS_SQL}) b "
            f"JOIN trials t USING (trial_id) WHERE {in_cohort} GROUP BY 1").fetchall():
        facts[subj]["excluded"], facts[subj]["reasons"] = n, list(reasons)
    for subj, n in ctx.con.execute(f"SELECT t.subject_id, count(*) FILTER (WHERE g.valid) FROM gait_cycles g "
                                   f"JOIN trials t USING (trial_id) WHERE {in_cohort} GROUP BY 1").fetchall():
        facts[subj]["cycles"] = n
    for subj, n in ctx.con.execute("SELECT subject_id, count(*) FROM v_onsets WHERE session_id IN "
                                   "(SELECT session_id FROM _cohort_sessions) GROUP BY 1").fetchall():
        facts[subj]["onsets"] = n
    return facts


def why_no_profile(f: dict) -> str:
    """The reason a subject has no profile row, from its facts (first that applies)."""
    if not f["channels"]:
        return "No profile: no EMG channels in this subject's sessions."
    if f["excluded"] >= f["channels"]:
        return (f"No profile: all {f['channels']} EMG channels excluded ({'; '.join(f['reasons'])}).")
    if not f["cycles"]:
        return "No profile: no valid gait cycles (no foot strikes found, or every cycle excluded)."
    if not f["onsets"]:
        return "No profile: no activation onsets were detected on the channels kept."
    return "No profile: no metric of this subject has a cohort reference (same task and condition)."


def _metric_tables(srs: list) -> str:
    by_metric: dict = defaultdict(list)
    for r in srs:
        by_metric[r[6]].append(r)
    out = []
    for metric, rs in sorted(by_metric.items()):
        unit = PROFILE_UNITS.get(metric) or unit_of(metric) or "unit unknown"
        rows = [(r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13])
                for r in sorted(rs, key=lambda r: (mkey(r[4]), str(r[5])))]
        out.append(table(["muscle", "side", "metric", f"value ({unit})", f"reference median ({unit})",
                          f"reference robust SD ({unit})", "z (SD)", "percentile (%)", "flag", "n_reference"],
                         rows, row_class=lambda r: "flagged" if r[8] not in (None, "none") else "",
                         attrs=' class="profile-values"'))
    return "".join(out)


def _session(subj: str, sid: str, key: tuple, srs: list) -> str:
    sess, task, cond = key
    html = []
    keys = sorted({(r[4], r[5]) for r in srs}, key=lambda k: (mkey(k[0]), str(k[1])))
    metrics = sorted({r[6] for r in srs})
    z = {(r[4], r[5], r[6]): r[10] for r in srs}
    n_ref = max((r[13] or 0) for r in srs)
    what = f"No z-scores for {escape(series_label(task, cond))} ({escape(sess)}): "
    if n_ref < MIN_REFERENCE_SUBJECTS:
        html.append(f'<p class="reason">{what}reference cohort too small: {n_ref} other subjects, '
                    f"need &gt;= {MIN_REFERENCE_SUBJECTS}.</p>")
    elif all(r[10] is None for r in srs):
        html.append(f'<p class="reason">{what}the reference values have no spread.</p>')
    else:
        series = {m: [z.get((*k, m)) for k in keys] for m in metrics}
        svg = figures.dot_plot_svg([f"{m} {s or ''}".strip() for m, s in keys], series,
                                   svg_id=f"profile-{sid}-{slug(sess)}",
                                   title=f"{subj}, {series_label(task, cond)} ({sess}): z vs cohort",
                                   x_label="z-score (SD)", band=(-Z_BAND, Z_BAND), band_label=f"|z| < {Z_BAND:g}")
        html.append(svg.replace('class="figure dot-plot"', 'class="figure dot-plot profile"', 1))
    flagged = [r for r in srs if r[12] not in (None, "none")]
    html.append(f"<p>{len(flagged)} flag(s) in {len(srs)} values.</p>")
    html.append(f"<details{' open' if flagged else ''}><summary>Values by metric</summary>{_metric_tables(srs)}"
                "</details>")
    return "".join(html)


def subjects(ctx: Ctx, max_subjects: int) -> tuple[str, int, int]:
    """The subject pages: (html, subjects shown, figures)."""
    subject_ids = [r[0] for r in ctx.con.execute(
        "SELECT DISTINCT subject_id FROM _cohort_sessions ORDER BY 1").fetchall()]
    prof = ctx.rows("""
        SELECT x.subject_id, x.session_id, x.task, x.condition, x.muscle, x.side, x.metric, x.value,
               x.reference_mean, x.reference_sd, x.z, x.percentile, x.flag, x.n_reference
        FROM subject_profiles x WHERE x.session_id IN (SELECT session_id FROM _cohort_sessions)
        AND {rows} ORDER BY ALL""")
    by: dict = defaultdict(list)
    for r in prof:
        by[r[0]].append(r)
    facts = _subject_facts(ctx)
    html = ['<section id="subjects"><h2>Subjects: profile against the cohort reference</h2>',
            '<p class="note">z-scores against the leave-one-subject-out reference of the same task and condition '
            f"(median and robust SD; z needs at least {MIN_REFERENCE_SUBJECTS} reference subjects); "
            f"shaded: |z| &lt; {Z_BAND:g}. Flagged rows are highlighted.</p>"]
    if len(subject_ids) > max_subjects:
        html.append(f'<p class="note">Showing the first {max_subjects} of {len(subject_ids)} subjects; '
                    "narrow the cohort to see others.</p>")
    n_fig = 0
    for subj in subject_ids[:max_subjects]:
        sid = slug(subj)
        html.append(f'<section class="subject" id="subject-{sid}"><h3>Subject {escape(subj)}</h3>')
        rs = by.get(subj, [])
        if not rs:
            html.append(f'<p class="empty reason">{escape(why_no_profile(facts[subj]))}</p></section>')
            continue
        sessions: dict = defaultdict(list)
        for r in rs:
            sessions[(r[1], r[2], r[3])].append(r)
        for key, srs in sorted(sessions.items(), key=lambda kv: str(kv[0])):
            part = _session(subj, sid, key, srs)
            n_fig += part.count('class="figure dot-plot profile"')
            html.append(part)
        html.append("</section>")
    html.append("</section>")
    return "".join(html), min(len(subject_ids), max_subjects), n_fig
