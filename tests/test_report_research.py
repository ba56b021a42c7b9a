"""The report for researchers on real files: channel QC beside the maps, units, timing in ms and % cycle,
gait summary per side, cycles behind each cell, non-negative variability whiskers, why no profile.

The lake: test_small.c3d (good EMG, subject R01) beside treadmill_events.c3d (mains-only 'EMG', subject R02,
every channel QC bad), ingested as in tests/test_real_analysis.py. Reference values are queried from the lake
tables here, never taken from the report code.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from test_report import marks, row_labels, svg_by_id

from warehouse import catalog
from warehouse.serving.report import render_report

TREADMILL = "(SELECT trial_id FROM files WHERE path LIKE '%treadmill_events.c3d')"


@pytest.fixture(scope="module")
def real(real_lake, tmp_path_factory):
    """(settings, report html) of the two real files' lake (conftest's ``real_lake``, ingested as in
    tests/test_real_analysis.py), rendered for the site's own member."""
    out = tmp_path_factory.mktemp("real-html") / "report.html"
    render_report(real_lake, str(out), requester_site="real")
    return real_lake, out.read_text()


def query(settings, sql: str, params=()) -> list[tuple]:
    con = catalog.connect(settings, read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def html_table(html: str, table_id: str) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of cell texts) of ``<table id=table_id>``."""
    m = re.search(rf'<table[^>]*id="{re.escape(table_id)}"[^>]*>.*?</table>', html, re.S)
    assert m, f"no table#{table_id}"
    root = ET.fromstring(m.group(0))
    heads = [th.text or "" for th in root.iter("th")]
    rows = [[td.text or "" for td in tr.findall("td")] for tr in root.iter("tr") if tr.findall("td")]
    return heads, rows


# --------------------------------------------------------------------------- 1. channel QC beside the maps
def test_excluded_channels_and_reasons_beside_the_map_and_no_cell_for_them(real):
    settings, html = real
    excluded = query(settings, f"SELECT muscle, side, reason FROM analysis_exclusions WHERE trial_id = {TREADMILL}")
    assert len(excluded) == 4  # the treadmill file's four mapped channels, all mains only
    good = {(m, s) for m, s in query(settings, """
        SELECT c.muscle, c.side FROM emg_channels c JOIN channel_qc q USING (trial_id, channel)
        WHERE q.verdict <> 'bad' AND NOT EXISTS (SELECT 1 FROM analysis_exclusions x
              WHERE x.trial_id = c.trial_id AND x.channel = c.channel)""")}
    # the QC table sits in the same block as the map it belongs to
    block = re.search(r'<div class="map-block" id="map-block-walk-fresh">.*?(?=<div class="map-block"|</section>)',
                      html, re.S).group(0)
    assert '<svg id="map-walk-fresh"' in block and 'id="map-qc-walk-fresh"' in block
    heads, rows = html_table(block, "map-qc-walk-fresh")
    assert heads == ["muscle", "side", "reason", "n_channels", "n_subjects"]
    shown = {(r[0], r[1], r[2]): (int(r[3]), int(r[4])) for r in rows}
    for m, s, reason in excluded:
        assert reason.startswith("qc verdict bad") and shown[(m, s, reason)] == (1, 1), (m, s, reason)
    assert f"{len(excluded)} EMG channel(s) excluded from this map" in block
    # the map: a row for every muscle with a good channel, none for soleus (only the mains-only channels)
    amap = svg_by_id(html, "map-walk-fresh")
    labels = row_labels(amap)
    assert "soleus" not in labels and set(labels) == {m for m, _ in good}
    cells = [c.get("aria-label") for p in (0, 1) for c in marks(amap, f"cell_{p}")]
    assert cells and not any(c.startswith("soleus ") for c in cells)
    # tibialis anterior: a good channel of R01 beside the excluded ones of R02: its row rests on R01 alone
    _, rows = html_table(block, "map-cells-walk-fresh")
    ta = {r[1]: (int(r[2]), int(r[3])) for r in rows if r[0] == "tibialis_anterior"}
    assert all(r[4] == "1" for r in rows if r[0] == "tibialis_anterior")  # R02's channel of that side
    assert all(r[4] == "0" for r in rows if r[0] != "tibialis_anterior")
    n_r01 = dict(query(settings, "SELECT side, max(n_cycles) FROM activation_map WHERE scope = 'session' AND "
                                 "scope_id = 'R01-S1' AND muscle = 'tibialis_anterior' GROUP BY 1"))
    assert ta == {"L": (1, n_r01["L"]), "R": (1, n_r01["R"])}


# --------------------------------------------------------------------------- 5. subjects and cycles behind each cell
def cells_of(html: str, table_id: str) -> list[dict]:
    heads, rows = html_table(html, table_id)
    return [dict(zip(heads, r)) for r in rows]


def test_every_cohort_cell_shows_its_subjects_and_cycles(real):
    settings, html = real
    ids = re.findall(r'<table class="cells" id="([^"]+)"', html) + re.findall(r'<table class="map-cells" id="([^"]+)"',
                                                                              html)
    assert {"timing-cells", "variability-cells", "gait-cells", "asymmetry-cells-peak",
            "asymmetry-cells-stance-time-s", "map-cells-walk-fresh"} <= set(ids)
    for tid in ids:
        for cell in cells_of(html, tid):
            assert cell["n_subjects"].isdigit() and cell["n_cycles"].isdigit(), (tid, cell)
    # asymmetry of stance time: both subjects (the treadmill walk keeps its plates), cycles of the smaller side
    want = query(settings, "SELECT count(DISTINCT subject_id), sum(n_cycles) FROM asymmetry "
                           "WHERE metric = 'stance_time_s' AND muscle IS NULL")[0]
    cell, = cells_of(html, "asymmetry-cells-stance-time-s")
    assert (int(cell["n_subjects"]), int(cell["n_cycles"])) == want == (2, want[1]) and want[1] >= 10
    # onset timing of gastrocnemius L: R01's first bursts with an onset (default detector)
    want = query(settings, "SELECT count(DISTINCT subject_id), count(onset_ms) FROM activation_onsets WHERE is_default "
                           "AND burst = 0 AND muscle = 'gastrocnemius_medialis' AND side = 'L'")[0]
    cell = next(c for c in cells_of(html, "timing-cells") if c["muscle"] == "gastrocnemius_medialis"
                and c["side"] == "L")
    assert (int(cell["n_subjects"]), int(cell["n_cycles"])) == want and want[0] == 1
    # variability of tibialis anterior R: R01 only (R02's channels are excluded)
    want = query(settings, "SELECT count(DISTINCT subject_id), sum(n_cycles) FROM variability "
                           "WHERE muscle = 'tibialis_anterior' AND side = 'R' AND metric = 'envelope'")[0]
    cell = next(c for c in cells_of(html, "variability-cells") if c["muscle"] == "tibialis_anterior"
                and c["side"] == "R")
    assert (int(cell["n_subjects"]), int(cell["n_cycles"])) == want and want[0] == 1


# --------------------------------------------------------------------------- 3. onsets in ms and in % cycle
def test_onset_timing_in_ms_and_percent_of_the_cycle_relative_to_foot_strike(real):
    settings, html = real
    from test_report import dots

    want = dict(((m, s), (ms, pct)) for m, s, ms, pct in query(settings, """
        SELECT muscle, side, avg(onset_ms), avg(onset_pct) FROM activation_onsets
        WHERE is_default AND burst = 0 AND subject_id = 'R01' GROUP BY ALL"""))
    in_ms = {lab: v for lab, _, v in dots(svg_by_id(html, "onset-timing-ms"))}
    in_pct = {lab: v for lab, _, v in dots(svg_by_id(html, "onset-timing"))}
    assert set(in_ms) == set(in_pct) == {f"{m} {s}" for m, s in want}
    for (m, s), (ms, pct) in want.items():
        assert in_ms[f"{m} {s}"] == pytest.approx(ms, rel=1e-3, abs=0.05)
        assert in_pct[f"{m} {s}"] == pytest.approx(pct, rel=1e-3, abs=0.005)
    assert any(v < 0 for v in in_ms.values())  # before the foot strike: signed, not wrapped
    for cell in cells_of(html, "timing-cells"):
        ms, pct = want[(cell["muscle"], cell["side"])]
        assert float(cell["onset mean (ms)"]) == pytest.approx(ms, rel=5e-3, abs=0.5)
        assert float(cell["onset mean (% cycle)"]) == pytest.approx(pct, rel=5e-3, abs=0.01)
    assert "relative to the ipsilateral foot strike" in html


# --------------------------------------------------------------------------- 4. gait summary per side
def test_gait_summary_per_side_from_the_event_table(real):
    settings, html = real
    import numpy as np

    strikes = query(settings, f"SELECT side, time_s FROM gait_events WHERE trial_id = {TREADMILL} "
                              "AND event = 'foot_strike' AND source = 'annotated' ORDER BY side, time_s")
    subjects = {(c["subject"], c["side"]): c for c in cells_of(html, "gait-subjects")}
    for side in "LR":
        t = np.array([ts for sd, ts in strikes if sd == side])
        stride = float(np.mean(np.diff(t)))  # independent: mean interval between the side's foot strikes
        cell = subjects[("R02", side)]
        assert int(cell["n_cycles"]) == len(t) - 1
        assert float(cell["stride time (s)"]) == pytest.approx(stride, rel=5e-3)
        assert float(cell["cadence (steps/min)"]) == pytest.approx(120.0 / stride, rel=5e-3)
        stance = query(settings, f"SELECT avg(stance_pct) FROM gait_cycles WHERE trial_id = {TREADMILL} "
                                 "AND side = ? AND valid", [side])[0][0]
        assert 58 < float(cell["stance (% cycle)"]) < 70
        assert float(cell["stance (% cycle)"]) == pytest.approx(stance, rel=5e-3)
    cohort = {c["side"]: c for c in cells_of(html, "gait-cells")}
    assert set(cohort) == {"L", "R"} and all(c["n_subjects"] == "2" for c in cohort.values())


# --------------------------------------------------------------------------- 7. why no profile
def test_subject_pages_say_why_no_profile_was_computed(real):
    settings, html = real
    from transforms.profiles import MIN_REFERENCE_SUBJECTS

    page = {m.group(1): m.group(2) for m in re.finditer(
        r'<section class="subject" id="subject-([a-z0-9-]+)">(.*?)</section>', html, re.S)}
    # R02: every EMG channel mains only -> excluded; the page names how many and why
    n, = query(settings, f"SELECT count(*) FROM emg_channels WHERE trial_id = {TREADMILL}")[0]
    reasons = {r for r, in query(settings, f"SELECT DISTINCT reason FROM analysis_exclusions WHERE trial_id = {TREADMILL}")}
    assert query(settings, "SELECT count(*) FROM subject_profiles WHERE subject_id = 'R02'")[0][0] == 0
    assert f"No profile: all {n} EMG channels excluded" in page["r02"]
    assert all(r in page["r02"] for r in reasons)
    # R01: a profile, but nobody to compare with: no z-scores, and the page says the reference is too small
    n_ref = query(settings, "SELECT max(n_reference), count(z) FROM subject_profiles WHERE subject_id = 'R01'")[0]
    assert n_ref == (0, 0)
    assert (f"reference cohort too small: {n_ref[0]} other subjects, need &gt;= {MIN_REFERENCE_SUBJECTS}"
            in page["r01"])
    assert 'class="figure dot-plot profile"' not in page["r01"]  # no empty z-score figure


# --------------------------------------------------------------------------- 2. units everywhere
IDENTIFIERS = {"subject", "site", "session", "task", "condition", "task / condition", "muscle", "side", "metric",
               "flag", "stage", "reason", "reason code",
               "column", "type", "unit", "description"}  # the data dictionary's own (text) columns


def allowed_units() -> set[str]:
    from schemas.metrics import METRICS

    return {m.unit for m in METRICS.values()} | {"%", "ms", "s", "mV", "Hz", "N", "steps/min", "SD", "count",
                                                  "dimensionless", "fraction of peak"}


def check_units(html: str) -> int:
    units, checked = allowed_units(), 0
    heads = re.findall(r"<th>([^<]*)</th>", html)
    titles = [t for svg in re.findall(r"<svg .*?</svg>", html, re.S)
              for t in re.findall(r'role-axis-title"[^>]*><text[^>]*>([^<]*)</text>', svg)]
    assert heads and titles
    for label in heads + titles:
        label = label.replace("&amp;", "&")
        if label in IDENTIFIERS or label.startswith("n_"):
            continue
        m = re.fullmatch(r".+ \(([^()]+)\)", label)
        assert m and m.group(1) in units, f"no unit in {label!r}"
        checked += 1
    return checked


def test_every_table_header_and_axis_title_carries_a_unit(real):
    _, html = real
    assert check_units(html) > 30
    assert 'role-axis-title' in html


# --------------------------------------------------------------------------- 6. whiskers never below zero
#: Envelope CV (%) of soleus R per subject: skewed, so mean - SD < 0 in the fresh cell of lyon + tokyo.
SKEWED_CV = {"LYO01": 0.5, "LYO02": 1.0, "LYO03": 1.5, "LYO04": 2.0, "LYO05": 40.0, "TOK01": 0.8, "TOK02": 1.2,
             "TOK03": 30.0}


@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    """The synthetic consortium of test_views_extracts with skewed soleus R variability; lyon's report."""
    from test_views_extracts import TODAY, build_lake

    s = build_lake(tmp_path_factory.mktemp("skewed") / "lake")
    con = catalog.connect(s)

    def body(c):
        # a session map the analysis should not have kept: LYO01's soleus L channel excluded after the fact
        c.execute("INSERT INTO lake.main.analysis_exclusions VALUES ('lyon:LYO01-fresh:walk01', 2, 'soleus', 'L', "
                  "'qc verdict bad (mains_dominated)')")
        for subj, cv in SKEWED_CV.items():
            c.execute("UPDATE lake.main.variability SET cv_pct = ?, variance_ratio = ? WHERE subject_id = ? "
                      "AND muscle = 'soleus' AND side = 'R'", [cv, cv / 40, subj])
    try:
        catalog.write_atomically(s, con, body, what="skewed variability")
    finally:
        con.close()
    out = tmp_path_factory.mktemp("skewed-html") / "report.html"
    render_report(s, str(out), requester_site="lyon", today=TODAY)
    return s, out.read_text()


def whiskers(svg: ET.Element) -> dict[tuple[str, str], tuple[float, float]]:
    out = {}
    for el in marks(svg, "error"):
        label, rest = el.get("aria-label").split(" / ", 1)
        series, span = rest.rsplit(": ", 1)
        lo, hi = re.match(r"(-?[\d.e+-]+) to (-?[\d.e+-]+)", span).groups()
        out[(label, series)] = (float(lo), float(hi))
    return out


def test_variability_whiskers_never_go_below_zero(skewed):
    import numpy as np

    settings, html = skewed
    cv = [v for v, in query(settings, "SELECT v.cv_pct FROM variability v JOIN sessions s USING (session_id) "
                                      "WHERE s.condition = 'fresh' AND s.site_id IN ('lyon', 'tokyo') "
                                      "AND v.muscle = 'soleus' AND v.side = 'R'")]
    assert len(cv) == 8 and np.mean(cv) - np.std(cv, ddof=1) < 0  # a mean ± SD whisker would cross zero
    for sid, values in (("variability-cv", cv), ("variability-vr", [v / 40 for v in cv])):
        svg = svg_by_id(html, sid)
        w = whiskers(svg)
        assert w and all(lo >= 0 and hi >= lo for lo, hi in w.values()), w
        lo, hi = w[("soleus R", "walk / fresh")]
        p25, p75 = np.percentile(values, [25, 75])
        assert lo == pytest.approx(p25, rel=1e-3) and hi == pytest.approx(p75, rel=1e-3)
        bar = next(float(b.get("aria-label").rsplit(": ", 1)[1]) for b in marks(svg, "bar")
                   if b.get("aria-label").startswith("soleus R / walk / fresh:"))
        assert bar == pytest.approx(np.median(values), rel=1e-3)
    assert "interquartile range" in html
    check_units(html)  # the synthetic lake's flagged profile and QC tables carry units too


def test_bar_whiskers_are_clipped_at_the_floor():
    from warehouse.serving import figures

    svg = ET.fromstring(figures.bar_svg(["a", "b"], {"s": [1.0, 3.0]}, errors={"s": [2.5, 1.0]}, floor=0.0,
                                        svg_id="b", title="t", x_label="CV (%)"))
    w = whiskers(svg)
    assert w == {("a", "s"): (0.0, 3.5), ("b", "s"): (2.0, 4.0)}
    assert any("clipped at 0" in el.get("aria-label") for el in marks(svg, "error"))
    with pytest.raises(ValueError):
        figures.bar_svg(["a"], {"s": [1.0]}, intervals={"s": [(2.0, 1.0)]}, svg_id="b", title="t", x_label="x (%)")


def test_a_session_map_of_an_excluded_channel_is_never_drawn(skewed):
    """Even where the lake still holds a session map of an excluded channel, the report leaves it out of the
    map and lists the channel beside it."""
    import numpy as np

    settings, html = skewed
    from test_views_extracts import SITES

    kept = [s for s in SITES["lyon"][0] + SITES["tokyo"][0] if s != "LYO01"]
    want = query(settings, "SELECT pct, avg(envelope_mean) FROM activation_map WHERE scope = 'session' AND "
                           "muscle = 'soleus' AND side = 'L' AND scope_id IN ({}) GROUP BY 1".format(
                               ", ".join(f"'{s}-fresh'" for s in kept)))
    assert len(want) == 101
    amap = svg_by_id(html, "map-walk-fresh")
    got = {float(c.get("aria-label").split(" at ")[1].split(":")[0]): float(c.get("aria-label").rsplit(": ", 1)[1])
           for c in marks(amap, "cell_0") if c.get("aria-label").startswith("soleus at ")}
    assert len(got) == 101
    for pct, v in want:
        assert got[pct] == pytest.approx(v, rel=5e-3, abs=1e-3)
    with_lyo01 = query(settings, "SELECT avg(envelope_mean) FROM activation_map WHERE scope = 'session' AND "
                                 "muscle = 'soleus' AND side = 'L' AND pct = 0 AND scope_id LIKE '%-fresh' AND "
                                 "(scope_id LIKE 'LYO%' OR scope_id LIKE 'TOK%')")[0][0]
    assert not np.isclose(with_lyo01, dict(want)[0.0], rtol=1e-2)  # the guard changes the map
    cells = {(c["muscle"], c["side"]): c for c in cells_of(html, "map-cells-walk-fresh")}
    assert cells[("soleus", "L")]["n_subjects"] == str(len(kept))
    assert cells[("soleus", "R")]["n_subjects"] == str(len(kept) + 1)
    _, rows = html_table(html, "map-qc-walk-fresh")
    assert rows == [["soleus", "L", "qc verdict bad (mains_dominated)", "1", "1"]]


def test_the_reason_for_no_profile_follows_the_lake_facts():
    from warehouse.serving.report_subjects import why_no_profile

    base = {"channels": 8, "excluded": 0, "reasons": [], "cycles": 20, "onsets": 40}
    assert "no EMG channels" in why_no_profile({**base, "channels": 0})
    assert why_no_profile({**base, "excluded": 8, "reasons": ["qc verdict bad (flat)"]}) == \
        "No profile: all 8 EMG channels excluded (qc verdict bad (flat))."
    assert "no valid gait cycles" in why_no_profile({**base, "excluded": 3, "cycles": 0})
    assert "no activation onsets" in why_no_profile({**base, "onsets": 0})
