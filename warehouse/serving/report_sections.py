"""Sections of the HTML report for researchers (:mod:`warehouse.serving.report` assembles them).

Every quantity carries its unit: table headers read ``<name> (<unit>)`` and figure axes
likewise, units taken from the metric registry (:mod:`schemas.metrics`) or the column's
suffix (``_ms``, ``_pct``...); identifier columns (subject, muscle, side, condition,
``n_*`` counts) carry none. Every cohort cell says how many subjects and gait cycles are
behind it (``n_subjects``, ``n_cycles``); every activation map lists, beside it, the EMG
channels kept out of it and why (``analysis_exclusions`` and ``channel_qc`` verdict
``bad``), and no map row is drawn for a session x muscle x side without a good channel.
"""
from __future__ import annotations

import re
from collections import defaultdict
from html import escape

import numpy as np

from schemas import metrics as registry
from schemas import vocab
from warehouse.analysis.cohort import GOOD_CHANNEL
from warehouse.serving import cohort_filter as cf
from warehouse.serving import figures

#: |SI| band shaded in the asymmetry figures (%).
SI_BAND_PCT = 10.0
#: Units of column-name suffixes (the house style: units in column names), longest first.
SUFFIX_UNITS = (("_pct", "%"), ("_ms", "ms"), ("_mv", "mV"), ("_hz", "Hz"), ("_ns", "N s"), ("_n", "N"),
                ("_s", "s"), ("_mm", "mm"), ("_deg", "deg"))
#: Every EMG channel kept out of the analysis, and why: ``analysis_exclusions`` plus any ``channel_qc``
#: verdict ``bad`` not listed there (the complement of ``warehouse.analysis.cohort.GOOD_CHANNEL``).
EXCLUDED_CHANNELS_SQL = """
    SELECT trial_id, channel, muscle, side, reason FROM analysis_exclusions
    UNION ALL
    SELECT q.trial_id, q.channel, q.muscle, q.side, 'qc verdict bad (' || coalesce(q.flags, '') || ')'
    FROM channel_qc q WHERE q.verdict = 'bad' AND NOT EXISTS (
        SELECT 1 FROM analysis_exclusions x WHERE x.trial_id = q.trial_id AND x.channel = q.channel)"""
#: Session x muscle x side with at least one channel the analysis kept.
GOOD_SESSION_CHANNELS = ("SELECT DISTINCT t.session_id, c.muscle, c.side FROM emg_channels c JOIN trials t "
                         f"USING (trial_id) WHERE {GOOD_CHANNEL.format(a='c')}")


def unit_of(name: str) -> str | None:
    """Unit of a metric or column: the metric registry first, then the name's suffix (None: no unit known)."""
    if name in registry.METRICS:
        return registry.METRICS[name].unit
    for suffix, unit in SUFFIX_UNITS:
        if name.endswith(suffix):
            return unit
    return None


def slug(text) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def mkey(muscle) -> tuple:
    """Sort key: vocabulary order (proximal-distal groups as listed), unknown muscles last."""
    return (vocab.MUSCLES.index(muscle) if muscle in vocab.MUSCLES else len(vocab.MUSCLES), str(muscle))


def muscle_order(muscles) -> list[str]:
    return sorted({m for m in muscles if m is not None}, key=mkey)


def series_label(task, cond) -> str:
    return " / ".join(str(v) for v in (task, cond) if v is not None) or "all"


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


def table(headers: list[str], rows: list, *, row_class=None, attrs: str = "") -> str:
    if not rows:
        return '<p class="empty">None.</p>'
    out = [f"<table{attrs}><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers)
           + "</tr></thead><tbody>"]
    for r in rows:
        cls = f' class="{row_class(r)}"' if row_class and row_class(r) else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{escape(fmt(v))}</td>" for v in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


class Ctx:
    """Queries of one report: the pinned connection, the cohort and the row-level clauses."""

    def __init__(self, cohort):
        self.c = cohort
        self.con = cohort.con

    def rows(self, sql: str, params=(), *, alias: str = "x", keys=cf.ROW_KEYS) -> list[tuple]:
        """Run ``sql`` with ``{rows}`` replaced by the clauses on ``keys`` (muscle, side) of ``alias``."""
        pred, p = self.c.filter.predicate({k: f"{alias}.{k}" for k in keys})
        return self.con.execute(sql.replace("{rows}", pred), list(params) + p).fetchall()


# --------------------------------------------------------------------------- activation maps
def _map_rows(ctx: Ctx) -> tuple[list, list, str]:
    """(envelope rows, cell rows, source) of the cohort's maps: session maps of good channels only."""
    rows = ctx.rows(f"""
        WITH good AS ({GOOD_SESSION_CHANNELS})
        SELECT s.task, s.condition, x.muscle, x.side, x.pct, avg(x.envelope_mean), avg(x.onset_mean_pct),
               avg(x.offset_mean_pct)
        FROM activation_map x JOIN _cohort_sessions cs ON x.scope = 'session' AND x.scope_id = cs.session_id
        JOIN sessions s ON s.session_id = cs.session_id
        JOIN good g ON g.session_id = cs.session_id AND g.muscle = x.muscle AND g.side = x.side
        WHERE {{rows}} GROUP BY ALL ORDER BY ALL""")
    cells = ctx.rows(f"""
        WITH good AS ({GOOD_SESSION_CHANNELS}),
        per_session AS (SELECT x.scope_id AS session_id, x.muscle, x.side, max(x.n_cycles) AS n
                        FROM activation_map x WHERE x.scope = 'session' AND {{rows}} GROUP BY ALL)
        SELECT s.task, s.condition, p.muscle, p.side, s.subject_id, p.session_id, p.n
        FROM per_session p JOIN _cohort_sessions cs ON cs.session_id = p.session_id
        JOIN sessions s ON s.session_id = p.session_id
        JOIN good g ON g.session_id = p.session_id AND g.muscle = p.muscle AND g.side = p.side ORDER BY ALL""")
    if rows or not ctx.c.filter.is_empty or ctx.c.excluded:
        return rows, cells, "mean of the session maps of the cohort"
    rows = ctx.rows("""SELECT NULL, x.scope_id, x.muscle, x.side, x.pct, x.envelope_mean, x.onset_mean_pct,
            x.offset_mean_pct FROM activation_map x WHERE x.scope = 'condition' AND {rows} ORDER BY ALL""")
    cells = ctx.rows("""SELECT NULL, x.scope_id, x.muscle, x.side, NULL, x.scope_id, max(x.n_cycles)
            FROM activation_map x WHERE x.scope = 'condition' AND {rows} GROUP BY ALL ORDER BY ALL""")
    return rows, cells, "pooled condition maps"


def _excluded_by_map(ctx: Ctx, pooled: bool) -> dict:
    """{(task, condition): [(muscle, side, reason, n_channels, n_subjects)]} of the cohort's sessions."""
    rows = ctx.rows(f"""
        SELECT s.task, s.condition, b.muscle, b.side, b.reason, count(*), count(DISTINCT s.subject_id)
        FROM ({EXCLUDED_CHANNELS_SQL}) b JOIN trials t USING (trial_id)
        JOIN _cohort_sessions cs ON cs.session_id = t.session_id JOIN sessions s ON s.session_id = t.session_id
        WHERE {{rows}} GROUP BY ALL""", alias="b")
    out: dict = defaultdict(list)
    for task, cond, m, side, reason, n, ns in rows:
        out[(None if pooled else task, cond)].append((m, side, reason, n, ns))
    for v in out.values():
        v.sort(key=lambda r: (mkey(r[0]), str(r[1]), str(r[2])))
    return out


def _one_map(label: str, rs: list, cells: list, excluded: list) -> str:
    sid = slug(label)
    html = [f'<div class="map-block" id="map-block-{sid}">']
    subjects = {c[4] for c in cells if c[4] is not None}
    per_side: dict = {}  # cycles behind the map: per session and side, the most of any muscle
    for c in cells:
        per_side[(c[5], c[3])] = max(per_side.get((c[5], c[3]), 0), c[6] or 0)
    n_subj, n_cyc = len(subjects), sum(per_side.values())
    by_row: dict = defaultdict(lambda: [set(), 0])
    for c in cells:
        by_row[(c[2], c[3])][0].add(c[4])
        by_row[(c[2], c[3])][1] += c[6] or 0
    n_excluded: dict = defaultdict(int)
    for m, sd, _, k, _ in excluded:
        n_excluded[(m, sd)] += k
    cell_rows = sorted(((m, sd, len(v[0] - {None}) or None, v[1], n_excluded[(m, sd)])
                        for (m, sd), v in by_row.items()), key=lambda r: (mkey(r[0]), str(r[1])))
    if rs:
        muscles = muscle_order(r[2] for r in rs)
        pcts = sorted({r[4] for r in rs})
        idx = {p: i for i, p in enumerate(pcts)}
        mats = {side: np.full((len(muscles), len(pcts)), np.nan) for side in vocab.SIDES}
        marks = {side: [None] * len(muscles) for side in vocab.SIDES}
        for _, _, m, side, pct, env, on, off in rs:
            if side in mats and m in muscles:
                mats[side][muscles.index(m), idx[pct]] = np.nan if env is None else env
                marks[side][muscles.index(m)] = (on, off)
        title = f"Activation map: {label}" + (f" ({n_subj} subjects, {n_cyc} cycles)" if n_subj else "")
        html.append(figures.heatmap_svg([mats["L"], mats["R"]], muscles, svg_id=f"map-{sid}", title=title,
                                        panel_titles=("Left", "Right"), x_values=pcts,
                                        marks=[marks["L"], marks["R"]]).replace(
            'class="figure heatmap"', 'class="figure heatmap activation-map"', 1))
    else:
        html.append(f'<p class="empty">No activation map for {escape(label)}: every EMG channel was excluded.</p>')
    who = f"{n_subj} subjects" if subjects else "subjects not recorded in pooled maps"
    html.append(f'<p class="note">Behind this map: {who}, {n_cyc} gait cycles (per session and side); '
                "per row below.</p>")
    n_ex = sum(r[3] for r in excluded)
    html.append('<div class="figs"><div><h4>Subjects and cycles per row</h4>'
                + table(["muscle", "side", "n_subjects", "n_cycles", "n_channels_excluded"], cell_rows,
                        attrs=f' class="map-cells" id="map-cells-{sid}"')
                + f"</div><div><h4>Channel QC: {n_ex} EMG channel(s) excluded from this map</h4>"
                + table(["muscle", "side", "reason", "n_channels", "n_subjects"], excluded,
                        attrs=f' class="channel-qc" id="map-qc-{sid}"') + "</div></div>")
    html.append("</div>")
    return "".join(html)


def maps(ctx: Ctx) -> tuple[str, int]:
    rows, cells, source = _map_rows(ctx)
    excluded = _excluded_by_map(ctx, pooled=source.startswith("pooled"))
    groups: dict = defaultdict(list)
    for r in rows:
        groups[(r[0], r[1])].append(r)
    cell_groups: dict = defaultdict(list)
    for c in cells:
        cell_groups[(c[0], c[1])].append(c)
    html = ['<section id="maps"><h2>Activation maps</h2>',
            f'<p class="note">Normalised envelope over the gait cycle, 0 % = ipsilateral foot strike '
            f"({escape(source)}); white tick: mean onset, dashed black tick: mean offset (default detector). "
            "Only channels that passed signal QC and the analysis are drawn; the channels kept out of each map "
            "and why are listed beside it.</p>"]
    n = 0
    for key in sorted(set(groups) | set(excluded), key=lambda k: (str(k[0]), str(k[1]))):
        html.append(_one_map(series_label(*key), groups.get(key, []), cell_groups.get(key, []),
                             excluded.get(key, [])))
        n += bool(groups.get(key))
    if not groups and not excluded:
        html.append('<p class="empty">No activation maps for this selection.</p>')
    html.append("</section>")
    return "".join(html), n


# --------------------------------------------------------------------------- onset timing
def timing(ctx: Ctx) -> tuple[str, int]:
    """First-burst onsets relative to the ipsilateral foot strike, in ms and in % of the gait cycle."""
    rows = ctx.rows("""
        WITH per_subject AS (SELECT x.task, x.condition, x.muscle, x.side, x.subject_id, avg(x.onset_pct) AS on_pct,
                                    avg(x.onset_ms) AS on_ms, count(x.onset_ms) AS n
                             FROM v_onsets x WHERE x.burst = 0
                             AND x.session_id IN (SELECT session_id FROM _cohort_sessions)
                             AND {rows} GROUP BY ALL)
        SELECT task, condition, muscle, side, avg(on_pct), stddev_samp(on_pct), avg(on_ms), stddev_samp(on_ms),
               count(*), sum(n)
        FROM per_subject GROUP BY ALL ORDER BY ALL""")
    html = ['<section id="timing"><h2>Onset timing by condition</h2>',
            '<p class="note">First burst of each cycle (default detector), relative to the ipsilateral foot strike '
            "that starts the cycle (0 ms = 0 % = foot strike; negative = before it): each subject's mean over "
            "cycles, then mean ± SD across subjects, in ms and in % of the gait cycle. n_cycles: cycles with a "
            "detected onset.</p>"]
    if not rows:
        return "".join(html) + '<p class="empty">No onsets for this selection.</p></section>', 0
    row_keys = sorted({(r[2], r[3]) for r in rows}, key=lambda k: (mkey(k[0]), str(k[1])))
    series_keys = sorted({(r[0], r[1]) for r in rows}, key=str)
    val = {(r[0], r[1], r[2], r[3]): r for r in rows}
    n = 0
    u_pct, u_ms = unit_of("onset_pct"), unit_of("onset_ms")  # the metric registry's units
    for col, sid, unit in ((4, "onset-timing", u_pct), (6, "onset-timing-ms", u_ms)):
        series, intervals = {}, {}
        for sk in series_keys:
            got = [val.get((*sk, *rk)) for rk in row_keys]
            series[series_label(*sk)] = [r[col] if r else None for r in got]
            intervals[series_label(*sk)] = [(r[col] - r[col + 1], r[col] + r[col + 1])
                                            if r and r[col + 1] is not None else None for r in got]
        html.append(figures.dot_plot_svg([f"{m} {s}" for m, s in row_keys], series, intervals=intervals,
                                         svg_id=sid, title=f"Mean onset (first burst) ± SD across subjects, {unit}",
                                         x_label=f"onset after foot strike ({unit})"))
        n += 1
    html.append(table(["task / condition", "muscle", "side", "n_subjects", "n_cycles", f"onset mean ({u_ms})",
                       f"onset SD ({u_ms})", f"onset mean ({u_pct})", f"onset SD ({u_pct})"],
                      [(series_label(r[0], r[1]), r[2], r[3], r[8], r[9], r[6], r[7], r[4], r[5])
                       for r in sorted(rows, key=lambda r: (str(r[0]), str(r[1]), mkey(r[2]), str(r[3])))],
                      attrs=' class="cells" id="timing-cells"'))
    html.append("</section>")
    return "".join(html), n


# --------------------------------------------------------------------------- asymmetry
def _asym_spec(metric: str) -> tuple[str, str, str, tuple | None]:
    """(column, axis label, title, band) of a metric's asymmetry, from the metric registry."""
    spec = registry.METRICS.get(metric)
    if spec is None or spec.asymmetry == "si":
        return "si_pct", "SI (%)", f"Robinson symmetry index of {metric}", (-SI_BAND_PCT, SI_BAND_PCT)
    unit = spec.unit
    return "diff", f"right - left ({unit})", f"Signed right - left difference of {metric} ({unit})", None


def asymmetry(ctx: Ctx) -> tuple[str, int]:
    rows = ctx.rows("""
        SELECT x.metric, x.muscle, s.task, x.condition, x.subject_id, avg(x.si_pct), avg(x.diff), sum(x.n_cycles)
        FROM asymmetry x JOIN sessions s USING (session_id)
        WHERE x.session_id IN (SELECT session_id FROM _cohort_sessions) AND {rows} GROUP BY ALL ORDER BY ALL""",
                    keys=("muscle",))
    html = ['<section id="asymmetry"><h2>Asymmetry</h2>',
            '<p class="note">One dot per subject. Positive ratio-scale magnitudes (peak, iEMG, impulse, stance time) '
            f"show Robinson's symmetry index (shaded: ±{SI_BAND_PCT:g} %); timing metrics (onsets, offsets, time of "
            "peak) the signed right - left difference in their unit (schemas/metrics.py). n_cycles: cycles of the "
            "side with fewer, summed over the subjects' sessions.</p>"]
    by_metric: dict = defaultdict(list)
    for r in rows:
        by_metric[r[0]].append(r)
    n = 0
    for metric, rs in sorted(by_metric.items()):
        col, x_label, title, band = _asym_spec(metric)
        k = 5 if col == "si_pct" else 6
        rs = [r for r in rs if r[k] is not None]
        if not rs:
            continue
        muscles = muscle_order(r[1] for r in rs) + (["(whole limb)"] if any(r[1] is None for r in rs) else [])
        series_keys = sorted({(r[2], r[3]) for r in rs}, key=str)
        series = {series_label(*sk): [[r[k] for r in rs if (r[2], r[3]) == sk and (r[1] or "(whole limb)") == m]
                                      for m in muscles] for sk in series_keys}
        html.append(figures.dot_plot_svg(muscles, series, svg_id=f"asymmetry-{slug(metric)}", title=title,
                                         x_label=x_label, band=band,
                                         band_label=f"±{SI_BAND_PCT:g} %" if band else None))
        cells = defaultdict(list)
        for r in rs:
            cells[(series_label(r[2], r[3]), r[1] or "(whole limb)")].append(r)
        unit = x_label[x_label.rindex("(") + 1:-1]
        what = "SI" if col == "si_pct" else "R - L"
        html.append(table(["task / condition", "muscle", "n_subjects", "n_cycles", f"{what} mean ({unit})",
                           f"{what} SD ({unit})"],
                          [(sk, m, len(v), sum(r[7] or 0 for r in v), float(np.mean([r[k] for r in v])),
                            float(np.std([r[k] for r in v], ddof=1)) if len(v) > 1 else None)
                           for (sk, m), v in sorted(cells.items(), key=lambda kv: (kv[0][0], mkey(kv[0][1])))],
                          attrs=f' class="cells" id="asymmetry-cells-{slug(metric)}"'))
        n += 1
    if not n:
        html.append('<p class="empty">No asymmetry values for this selection.</p>')
    html.append("</section>")
    return "".join(html), n


# --------------------------------------------------------------------------- variability
def variability(ctx: Ctx) -> tuple[str, int]:
    """Envelope variability across subjects: median and interquartile range (never below zero)."""
    rows = ctx.rows("""
        WITH per_subject AS (SELECT s.task, x.condition, x.muscle, x.side, x.subject_id, avg(x.cv_pct) AS cv,
                                    avg(x.variance_ratio) AS vr, avg(x.onset_sd_ms) AS osd, sum(x.n_cycles) AS n
                             FROM variability x JOIN sessions s USING (session_id)
                             WHERE x.session_id IN (SELECT session_id FROM _cohort_sessions)
                             AND coalesce(x.metric, 'envelope') = 'envelope' AND x.muscle IS NOT NULL AND {rows}
                             GROUP BY ALL)
        SELECT task, condition, muscle, side, count(*), sum(n),
               median(cv), quantile_cont(cv, 0.25), quantile_cont(cv, 0.75),
               median(vr), quantile_cont(vr, 0.25), quantile_cont(vr, 0.75),
               median(osd), quantile_cont(osd, 0.25), quantile_cont(osd, 0.75)
        FROM per_subject GROUP BY ALL ORDER BY ALL""")
    html = ['<section id="variability"><h2>Variability</h2>',
            '<p class="note">Cycle-to-cycle variability of each subject (mean over sessions), then across subjects: '
            "bar = median, whisker = interquartile range (25th-75th percentile). CV, variance ratio and SD are "
            "non-negative, and so are these whiskers (a mean ± SD whisker would cross zero on skewed values).</p>"]
    if not rows:
        return "".join(html) + '<p class="empty">No variability values for this selection.</p></section>', 0
    cats = sorted({(r[2], r[3]) for r in rows}, key=lambda k: (mkey(k[0]), str(k[1])))
    sks = sorted({(r[0], r[1]) for r in rows}, key=str)
    val = {(r[0], r[1], r[2], r[3]): r for r in rows}
    n = 0
    for col, sid, title, label in ((6, "variability-cv", "Coefficient of variation of the envelope",
                                    "CV, median and IQR (%)"),
                                   (9, "variability-vr", "Variance ratio of the envelope",
                                    "VR, median and IQR (dimensionless)")):
        series, intervals = {}, {}
        for sk in sks:
            got = [val.get((*sk, *c)) for c in cats]
            series[series_label(*sk)] = [r[col] if r else None for r in got]
            intervals[series_label(*sk)] = [(r[col + 1], r[col + 2]) if r and r[col + 1] is not None else None
                                            for r in got]
        html.append(figures.bar_svg([f"{m} {s}" for m, s in cats], series, intervals=intervals, floor=0.0,
                                    svg_id=sid, title=title, x_label=label))
        n += 1
    html.append(table(["task / condition", "muscle", "side", "n_subjects", "n_cycles", "CV median (%)",
                       "CV p25 (%)", "CV p75 (%)", "VR median (dimensionless)", "VR p25 (dimensionless)",
                       "VR p75 (dimensionless)", "onset SD median (ms)", "onset SD p25 (ms)", "onset SD p75 (ms)"],
                      [(series_label(r[0], r[1]), *r[2:]) for r in
                       sorted(rows, key=lambda r: (str(r[0]), str(r[1]), mkey(r[2]), str(r[3])))],
                      attrs=' class="cells" id="variability-cells"'))
    html.append("</section>")
    return "".join(html), n


# --------------------------------------------------------------------------- gait summary
def gait(ctx: Ctx) -> tuple[str, int]:
    """Cadence, stride time and stance per side, from the valid gait cycles (foot strike to foot strike)."""
    rows = ctx.rows("""
        SELECT s.task, s.condition, t.subject_id, g.side, count(*), avg(g.duration_s), stddev_samp(g.duration_s),
               avg(g.stance_pct)
        FROM gait_cycles g JOIN trials t USING (trial_id) JOIN _cohort_sessions cs ON cs.session_id = t.session_id
        JOIN sessions s ON s.session_id = t.session_id
        WHERE g.valid AND g.side IN ('L', 'R') AND g.duration_s > 0 AND {rows} GROUP BY ALL ORDER BY ALL""",
                    alias="g", keys=("side",))
    html = ['<section id="gait"><h2>Gait summary per side</h2>',
            '<p class="note">Valid gait cycles only (ipsilateral foot strike to foot strike). Stride time: mean cycle '
            "duration; cadence: 2 steps per stride, 120 / stride time; stance: foot strike to foot off in % of the "
            "cycle. Cohort cells: each subject's mean over its cycles, then the mean across subjects.</p>"]
    if not rows:
        return "".join(html) + '<p class="empty">No valid gait cycles for this selection.</p></section>', 0
    cells: dict = defaultdict(list)
    for r in rows:
        cells[(series_label(r[0], r[1]), r[3])].append(r)
    html.append("<h3>Cohort</h3>" + table(
        ["task / condition", "side", "n_subjects", "n_cycles", "cadence (steps/min)", "stride time (s)",
         "stride time SD across subjects (s)", "stance (% cycle)"],
        [(k[0], k[1], len(v), sum(r[4] for r in v), float(np.mean([120.0 / r[5] for r in v])),
          float(np.mean([r[5] for r in v])), float(np.std([r[5] for r in v], ddof=1)) if len(v) > 1 else None,
          float(np.mean([r[7] for r in v if r[7] is not None])) if any(r[7] is not None for r in v) else None)
         for k, v in sorted(cells.items())], attrs=' class="cells" id="gait-cells"'))
    html.append("<h3>Subjects</h3>" + table(
        ["task / condition", "subject", "side", "n_cycles", "cadence (steps/min)", "stride time (s)",
         "stride time SD (s)", "stance (% cycle)"],
        [(series_label(r[0], r[1]), r[2], r[3], r[4], 120.0 / r[5], r[5], r[6], r[7]) for r in rows],
        attrs=' id="gait-subjects"'))
    html.append("</section>")
    return "".join(html), 0
