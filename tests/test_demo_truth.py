"""The demo consortium end to end: the analysis recovers the injected ground truth.

Generated data with known truth (warehouse/demo/), ingested by the nightly logic
(task bodies, no Prefect), analysed by the trusted core; assertions compare with the
injected values, never with numbers copied from our own output.
"""
from __future__ import annotations

import numpy as np
import pytest

from warehouse import catalog


@pytest.fixture(scope="module")
def demo(demo_lake):
    truth, summary, settings = demo_lake
    con = catalog.connect(settings, read_only=True)
    yield truth, summary, con
    con.close()


def q(con, sql, params=None):
    return con.execute(sql, params or []).fetchall()


def loading_burst(truth, subject, condition, muscle, side):
    for site in truth["sites"].values():
        if subject in site["subjects"]:
            em = site["subjects"][subject]["sessions"][condition]["emg"][muscle][side]
            return em["bursts"][0]
    raise KeyError(subject)


def test_every_file_lands(demo):
    truth, summary, con = demo
    assert summary["ingested"] == 24 and summary["quarantined"] == 0  # 12 subjects x fresh/fatigued
    assert q(con, "SELECT count(*) FROM files WHERE status <> 'ingested'")[0][0] == 0
    # every trial has cycles on both sides, from the best source it has (annotated > force_plate > kinematic):
    # lyon annotates its events, boston has plates only, oslo's events come in a BIDS sidecar
    rows = q(con, "SELECT t.site_id, g.event_source, count(DISTINCT g.trial_id) FROM gait_cycles g "
                  "JOIN trials t USING (trial_id) GROUP BY ALL ORDER BY 1")
    assert rows == [("boston", "force_plate", 8), ("lyon", "annotated", 10), ("oslo", "annotated", 6)]


def test_plate_strikes_match_true_strikes(demo):
    truth, _, con = demo
    errs = []
    for site in ("lyon", "boston"):
        for subj, sd in truth["sites"][site]["subjects"].items():
            se = sd["sessions"]["fresh"]
            tid = q(con, "SELECT trial_id FROM trials WHERE session_id = ?", [se["session_id"]])[0][0]
            for side in "LR":
                true = np.array(se["events"][side]["foot_strike_s"])
                got = np.array([r[0] for r in q(con, "SELECT time_s FROM gait_events WHERE trial_id = ? AND side = ? "
                                                "AND event = 'foot_strike' AND source = 'force_plate' ORDER BY 1",
                                                [tid, side])])
                assert len(got) >= len(true) - 2
                errs += [np.min(np.abs(true - g)) for g in got]
    assert np.max(errs) < 0.010  # within 10 ms


def test_tibialis_onsets_recover_the_injected_timing(demo):
    truth, _, con = demo
    rows = q(con, "SELECT a.subject_id, s.condition, a.side, median(a.onset_ms) FROM activation_onsets a "
                  "JOIN sessions s USING (session_id) WHERE a.muscle = 'tibialis_anterior' AND a.is_default "
                  "AND a.burst = 0 GROUP BY ALL")
    got = {(s, c, side): v for s, c, side, v in rows}
    err, shift_err = [], []
    for (subj, cond, side), v in got.items():
        err.append(v - loading_burst(truth, subj, cond, "tibialis_anterior", side)["onset_ms_mean"])
    assert len(err) == 48
    assert np.mean(np.abs(err)) < 5.0, np.round(err, 1)
    for subj in {k[0] for k in got}:
        for side in "LR":
            t_shift = (loading_burst(truth, subj, "fatigued", "tibialis_anterior", side)["onset_ms_mean"]
                       - loading_burst(truth, subj, "fresh", "tibialis_anterior", side)["onset_ms_mean"])
            shift_err.append(got[(subj, "fatigued", side)] - got[(subj, "fresh", side)] - t_shift)
    assert abs(np.mean(shift_err)) < 3.0
    fresh = np.mean([v for (s, c, _), v in got.items() if c == "fresh"])
    fatigued = np.mean([v for (s, c, _), v in got.items() if c == "fatigued"])
    assert fatigued - fresh == pytest.approx(truth["summary"]["fatigue_shift_ms"], abs=3.0)


def test_asymmetry_recovers_injected_left_right_difference(demo):
    truth, _, con = demo
    asym = set(truth["summary"]["asymmetric_output"]["subjects"])
    ratio = truth["summary"]["asymmetric_output"]["ratio_r_over_l"]
    expected_si = (ratio - 1) / (0.5 * (ratio + 1)) * 100  # 46.2 % for 1.6
    rows = q(con, "SELECT subject_id, avg(si_pct) FROM asymmetry WHERE muscle = 'gastrocnemius_medialis' "
                  "AND metric = 'peak' GROUP BY 1")
    for subj, si in rows:
        if subj in asym:
            assert si == pytest.approx(expected_si, abs=10), subj
        else:
            assert abs(si) < 12, subj
    # stance time is symmetric for everyone (non-EMG metric, muscle null)
    st = q(con, "SELECT max(abs(si_pct)) FROM asymmetry WHERE metric = 'stance_time_s' AND muscle IS NULL")[0][0]
    assert st < 5


def test_fatigue_lowers_median_frequency_and_delays_ta(demo):
    truth, _, con = demo
    scale = truth["summary"]["mdf_scale_fatigued"]
    shift, onset = q(con, "SELECT avg(mdf_shift_pct), avg(onset_shift_ms) FROM fatigue_contrasts "
                          "WHERE muscle = 'tibialis_anterior'")[0]
    assert shift == pytest.approx((scale - 1) * 100, abs=5)  # ~ -15 %
    assert onset == pytest.approx(truth["summary"]["fatigue_shift_ms"], abs=3)
    all_shifts = [r[0] for r in q(con, "SELECT mdf_shift_pct FROM fatigue_contrasts")]
    assert np.mean(np.array(all_shifts) < 0) > 0.95


def test_profiles_flag_exactly_the_injected_subjects(demo):
    truth, _, con = demo
    delayed = set(truth["summary"]["delayed_onset"]["subjects"])
    asym = set(truth["summary"]["asymmetric_output"]["subjects"])
    muscle = truth["summary"]["delayed_onset"]["muscle"]
    flagged = q(con, "SELECT DISTINCT subject_id, flag, muscle FROM subject_profiles WHERE flag <> 'none'")
    assert {s for s, f, m in flagged if f == "delayed_onset" and m == muscle} == delayed
    assert {s for s, f, m in flagged if f == "asymmetric_output"} == asym
    controls = set(truth["summary"]["control"]["subjects"])
    assert not controls & {s for s, _, _ in flagged}, [r for r in flagged if r[0] in controls]


def test_cohort_tables_and_maps(demo):
    _, _, con = demo
    # lyon has 5 subjects (shown), boston 4 and oslo 3 (below the small-cell threshold: suppressed)
    cells = dict(q(con, "SELECT site_id, bool_and(suppressed) FROM cohort_asymmetry GROUP BY 1"))
    assert cells == {"lyon": False, "boston": True, "oslo": True}
    assert q(con, "SELECT count(*) FROM cohort_asymmetry WHERE suppressed AND mean IS NOT NULL") == [(0,)]
    # each shown cell says how many cycles are behind it: the sum over its subjects' sessions and sides
    cell = q(con, "SELECT n_cycles, n_channels_excluded FROM cohort_variability WHERE site_id = 'lyon' AND "
                  "condition = 'fresh' AND muscle = 'soleus' AND metric = 'envelope.cv_pct'")[0]
    behind = q(con, "SELECT sum(v.n_cycles) FROM variability v JOIN sessions s USING (session_id) WHERE s.site_id = "
                    "'lyon' AND v.condition = 'fresh' AND v.muscle = 'soleus' AND v.metric = 'envelope'")[0][0]
    assert cell == (behind, 0) and behind >= 5 * 2 * 5
    n, peak_pct = q(con, "SELECT count(*), arg_max(pct, envelope_mean) FROM activation_map WHERE scope = 'cohort' "
                         "AND muscle = 'soleus' AND side = 'R'")[0]
    assert n == 101 and 10 <= peak_pct <= 50  # soleus peaks in stance
    k = q(con, "SELECT min(n_synergies), max(n_synergies), min(vaf) FROM synergies")[0]
    assert 2 <= k[0] <= k[1] <= 6 and k[2] >= 0.9


def test_activation_map_of_the_demo_cohort_renders(demo):
    """The cohort map as an SVG heatmap: one row per muscle, 101 columns per side, soleus hot in stance."""
    import re

    from warehouse.serving.figures import heatmap_svg

    _, _, con = demo
    rows = q(con, "SELECT muscle, side, pct, envelope_mean FROM activation_map WHERE scope = 'cohort' "
                  "ORDER BY muscle, side, pct")
    muscles = sorted({r[0] for r in rows})
    mats = []
    for side in "LR":
        m = np.full((len(muscles), 101), np.nan)
        for mu, sd, pct, v in rows:
            if sd == side:
                m[muscles.index(mu), int(round(pct))] = v
        mats.append(m)
    assert len(muscles) == 8 and not np.isnan(mats[0]).any()
    svg = heatmap_svg(mats, muscles, svg_id="cohort-map", title="Demo cohort", panel_titles=["Left", "Right"])
    assert svg.startswith("<svg") and 'id="cohort-map"' in svg
    # one row of cells per muscle in each of the two panels, 101 columns of cell_w = 3 px each
    for mu in muscles:
        assert svg.count(f">{mu}<") >= 1
    for panel in ("cell_0_marks", "cell_1_marks"):
        layer = re.search(rf'<g class="mark-rect role-mark {panel}"[^>]*>(.*?)</g>', svg, re.S).group(1)
        cells = re.findall(r'd="M([0-9.]+),([0-9.]+)h([0-9.]+)v([0-9.]+)h', layer)
        assert len({y for _, y, _, _ in cells}) == 8  # eight muscle rows
        assert {h for _, _, _, h in cells} == {"16"}
        assert sum(float(w) for _, _, w, _ in cells) == pytest.approx(8 * 101 * 3.0, rel=0.01)
    sol = mats[1][muscles.index("soleus")]
    assert 10 <= int(np.argmax(sol)) <= 50 and sol[10:50].mean() > 2 * sol[65:95].mean()
    ta = mats[1][muscles.index("tibialis_anterior")]
    assert ta[:8].mean() > ta[30:50].mean()  # TA active around foot strike, quiet in mid stance


def test_channel_qc_rms_is_the_rms_of_the_stored_samples(demo):
    """Every channel of the demo: channel_qc.rms_mv equals the RMS about the mean of emg_samples.emg_mv,
    computed independently in SQL (the unit factor is applied once). The generator writes potentials at the
    electrode (0.15-0.4 mV bursts; lyon in V, boston and oslo in mV), so every channel is electrode_mv."""
    truth, _, con = demo
    rows = q(con, "SELECT q.trial_id, q.channel, q.rms_mv, stddev_pop(s.emg_mv), q.amplitude_basis, t.site_id "
                  "FROM channel_qc q JOIN emg_samples s USING (trial_id, channel) JOIN trials t USING (trial_id) "
                  "GROUP BY ALL")
    assert len(rows) == q(con, "SELECT count(*) FROM emg_channels")[0][0] > 100
    for trial, ch, rms, ref, _, _ in rows:
        assert rms == pytest.approx(ref, rel=1e-5), (trial, ch)
    assert {(site, basis) for *_, basis, site in rows} == {(s, "electrode_mv") for s in ("lyon", "boston", "oslo")}


def test_asymmetry_statistic_fits_the_metric(demo):
    """SI/SA only on positive ratio-scale magnitudes (never beyond 200 %); timing gets a signed R - L
    difference: for the symmetric control subjects every muscle's onset differs by at most 10 ms between
    sides (and by at most 1 % of the cycle), where SI on onsets near the strike ran from -75 to +760 %."""
    truth, _, con = demo
    assert q(con, "SELECT count(*) FROM asymmetry WHERE abs(si_pct) > 200") == [(0,)]
    assert q(con, "SELECT count(*) FROM asymmetry WHERE metric IN ('onset_ms', 'offset_ms', 'onset_pct', "
                  "'offset_pct', 'time_of_peak_pct') AND (si_pct IS NOT NULL OR sa_pct IS NOT NULL)") == [(0,)]
    controls = truth["summary"]["control"]["subjects"]
    rows = q(con, "SELECT subject_id, muscle, metric, diff, unit FROM asymmetry WHERE metric IN ('onset_ms', "
                  "'onset_pct') AND subject_id IN (SELECT unnest(?)) AND diff IS NOT NULL", [controls])
    ms = [d for _, _, m, d, u in rows if m == "onset_ms"]
    pct = [d for _, _, m, d, u in rows if m == "onset_pct"]
    assert len(ms) >= 8 * len(controls) and {u for _, _, m, _, u in rows if m == "onset_ms"} == {"ms"}
    assert max(abs(d) for d in ms) <= 10.0, sorted((round(d, 1), s, mu) for s, mu, m, d, _ in rows if m == "onset_ms")
    assert max(abs(d) for d in pct) <= 1.0
    # units come from the registry; stance time keeps its SI (a positive duration)
    units = dict(q(con, "SELECT metric, min(unit) FROM asymmetry GROUP BY 1"))
    assert units["peak"] == "mV" and units["onset_ms"] == "ms" and units["stance_time_s"] == "s"
    assert q(con, "SELECT count(si_pct) > 0 FROM asymmetry WHERE metric = 'stance_time_s'") == [(True,)]


def test_session_and_scope_onset_summaries_equal_their_rows_recomputed_in_sql(demo):
    """Each ``variability`` envelope row's onset SD is the SD of exactly its session x muscle x side's first-burst
    onsets, and each ``activation_map`` scope's mean onset the mean over exactly that scope's onsets: recomputed
    here in SQL from ``activation_onsets`` (the rebuild looks each key's rows up once, not by a filter per key)."""
    from warehouse.analysis.cohort import TIMING_FILTER

    _, _, con = demo
    timing = "a." + TIMING_FILTER.replace(" AND ", " AND a.")
    got = q(con, f"""
        SELECT v.onset_sd_ms, (SELECT stddev_samp(a.onset_ms) FROM activation_onsets a WHERE a.session_id = v.session_id
               AND a.muscle = v.muscle AND a.side = v.side AND {timing}) AS sql_sd,
               (SELECT count(a.onset_ms) FROM activation_onsets a WHERE a.session_id = v.session_id
               AND a.muscle = v.muscle AND a.side = v.side AND {timing}) AS n
        FROM variability v WHERE v.metric = 'envelope'""")
    assert len(got) > 100 and sum(1 for _, _, n in got if n >= 2) > 100
    for sd, sql_sd, n in got:
        assert (sd is None) if n < 2 else sd == pytest.approx(sql_sd, rel=1e-9)
    col = {"session": "s.session_id", "subject": "s.subject_id", "condition": "s.condition", "cohort": "'all'"}
    for scope, expr in col.items():
        rows = q(con, f"""
            SELECT m.scope_id, m.muscle, m.side, any_value(m.onset_mean_pct), any_value(m.offset_mean_pct),
                   (SELECT avg(a.onset_pct) FROM activation_onsets a JOIN sessions s USING (session_id)
                    WHERE {expr} = m.scope_id AND a.muscle = m.muscle AND a.side = m.side AND {timing}),
                   (SELECT avg(a.offset_pct) FROM activation_onsets a JOIN sessions s USING (session_id)
                    WHERE {expr} = m.scope_id AND a.muscle = m.muscle AND a.side = m.side AND {timing})
            FROM activation_map m WHERE m.scope = ? GROUP BY ALL""", [scope])
        assert rows and all(r[3] is not None for r in rows), scope
        for _, _, _, on, off, sql_on, sql_off in rows:
            assert on == pytest.approx(sql_on, rel=1e-9) and (off is None) == (sql_off is None)
            assert off is None or off == pytest.approx(sql_off, rel=1e-9)
