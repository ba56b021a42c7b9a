"""Analysis on real recordings through the whole pipeline (ingest -> per-trial -> cohort tables)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import fixture

from warehouse import catalog

MANIFEST = """
site: real
subjects: [{id: R01, mass_kg: 70}, {id: R02, mass_kg: 60}]
sessions:
  - {id: R01-S1, subject: R01, condition: fresh, task: walk, terrain: overground, files: ["small/*.c3d"]}
  - {id: R02-S1, subject: R02, condition: fresh, task: walk, terrain: treadmill, files: ["tread/*.c3d"]}
channels:  # the treadmill file's 'Analog EMG' channels (electrodes not connected: mains only)
  "Voltage.1": {muscle: tibialis_anterior, side: L}
  "Voltage.2": {muscle: tibialis_anterior, side: R}
  "Voltage.3": {muscle: soleus, side: L}
  "Voltage.4": {muscle: soleus, side: R}
"""


@pytest.fixture(scope="module")
def lake(real_lake):
    """The two real files' lake (conftest's ``real_lake``: built once, shared with test_report_research)."""
    con = catalog.connect(real_lake, read_only=True)
    yield con
    con.close()


def test_plate_strikes_match_annotated_strikes_within_10_ms(lake):
    rows = lake.execute("""
        SELECT p.side, p.time_s, min(abs(p.time_s - a.time_s)) AS err
        FROM gait_events p JOIN gait_events a ON a.trial_id = p.trial_id AND a.side = p.side
             AND a.event = 'foot_strike' AND a.source = 'annotated'
        WHERE p.trial_id = (SELECT trial_id FROM files WHERE path LIKE '%test_small.c3d') AND p.source = 'force_plate' AND p.event = 'foot_strike'
        GROUP BY ALL""").fetchall()
    assert len(rows) == 3  # three loaded plates (FP3 is never stepped on)
    assert max(r[2] for r in rows) < 0.010


def test_treadmill_gives_all_eleven_strides_per_side(lake):
    n = dict(lake.execute("SELECT side, count(*) FROM gait_events WHERE trial_id = (SELECT trial_id FROM files WHERE path LIKE '%treadmill_events.c3d') "
                          "AND source = 'force_plate' AND event = 'foot_strike' GROUP BY 1").fetchall())
    assert n == {"L": 11, "R": 11}
    ann = lake.execute("""
        SELECT max(err) FROM (SELECT min(abs(p.time_s - a.time_s)) AS err FROM gait_events p JOIN gait_events a
          ON a.trial_id = p.trial_id AND a.side = p.side AND a.event = p.event AND a.source = 'annotated'
          WHERE p.trial_id = (SELECT trial_id FROM files WHERE path LIKE '%treadmill_events.c3d') AND p.source = 'force_plate' AND p.event = 'foot_strike'
          GROUP BY p.side, p.time_s)""").fetchone()[0]
    assert ann < 0.05  # annotations follow their own (kinematic) definition; every stride is paired


def test_treadmill_stance_and_grf_asymmetry_and_variability(lake):
    asym = dict(lake.execute("SELECT metric, si_pct FROM asymmetry WHERE session_id = 'R02-S1' AND muscle IS NULL")
                .fetchall())
    ncyc = dict(lake.execute("SELECT metric, n_cycles FROM asymmetry WHERE session_id = 'R02-S1' AND muscle IS NULL")
                .fetchall())
    assert {"stance_time_s", "grf_peak_n"} <= set(asym)
    assert ncyc["stance_time_s"] >= 10 and ncyc["grf_peak_n"] >= 10
    # independent check of the SI from the raw plates: peak |Fz| per stance, averaged per belt (FP1 = left)
    import ezc3d

    c = ezc3d.c3d(str(fixture("gaitalytics/treadmill_events.c3d")), extract_forceplat_data=True)
    peaks = []
    for p in c["data"]["platform"][:2]:
        fz = np.abs(p["force"][2])
        loaded = fz > 20
        edges = np.flatnonzero(np.diff(loaded.astype(int)))
        starts, ends = edges[::2] + 1, edges[1::2] + 1
        if loaded[0]:
            starts, ends = edges[1::2] + 1, edges[2::2] + 1
        peaks.append(np.mean([fz[a:b].max() for a, b in zip(starts, ends) if b - a > 100]))
    left, right = peaks
    assert asym["grf_peak_n"] == pytest.approx((right - left) / (0.5 * (right + left)) * 100, abs=1.5)
    var = dict(lake.execute("SELECT side || ':' || metric, cv_pct FROM variability WHERE session_id = 'R02-S1' "
                            "AND muscle IS NULL").fetchall())
    assert {"L:stance_time_s", "R:stance_time_s", "L:grf_peak_n", "R:grf_peak_n"} <= set(var)
    assert all(0 < v < 15 for v in var.values()), var  # steady treadmill walking: a few % CV


def test_real_emg_channels_pass_qc_and_get_onsets(lake):
    verdicts = dict(lake.execute("SELECT label, verdict FROM channel_qc WHERE trial_id = (SELECT trial_id FROM files WHERE path LIKE '%test_small.c3d')").fetchall())
    for lab in ("Voltage.RTA", "Voltage.LTA", "Voltage.RGAS", "Voltage.LGAS", "Voltage.RVL", "Voltage.LVL"):
        assert verdicts[lab] != "bad", lab
    n = lake.execute("SELECT count(DISTINCT muscle || side) FROM activation_onsets WHERE trial_id = (SELECT trial_id FROM files WHERE path LIKE '%test_small.c3d') "
                     "AND is_default").fetchone()[0]
    assert n >= 8


def _independent_zeni(path, heel, toe, pelvis, axis, sign):
    """Zeni et al. (2008) written out: strike = local maximum of sign*(heel - pelvis), foot off = local minimum
    of sign*(toe - pelvis) along the walking axis, each the extreme of its +-200 ms neighbourhood (cut by the
    ends of the record) standing 50 mm above the lowest value on each side of it in that neighbourhood (the
    markers read straight from the file with ezc3d)."""
    import ezc3d

    c = ezc3d.c3d(str(fixture(path)))
    labels = c["parameters"]["POINT"]["LABELS"]["value"]
    rate = float(c["parameters"]["POINT"]["RATE"]["value"][0])
    pts = c["data"]["points"][:3]

    def m(names):
        return np.mean([pts[axis, labels.index(n)] for n in names], axis=0)

    out = {}
    for side in "LR":
        h = sign * (m([side + heel]) - m(pelvis))
        t = sign * (m([side + toe]) - m(pelvis))
        w = int(0.2 * rate)
        ev = {}
        for name, x in (("foot_strike", h), ("foot_off", -t)):
            idx = []
            for i in range(1, len(x) - 1):  # the neighbourhood is cut by the ends of the record
                left, right = x[max(0, i - w):i + 1], x[i:i + w + 1]
                nb = np.concatenate([left, right])
                if (np.isfinite(nb).all() and x[i] == nb.max() and x[i] - left.min() >= 50
                        and x[i] - right.min() >= 50):
                    idx.append(i)
            ev[name] = np.array(idx) / rate
        out[side] = ev
    return out


@pytest.mark.parametrize("path,heel,toe,pelvis,axis,sign", [
    ("gaitalytics/test_small.c3d", "HEE", "TOE", ["SACR"], 0, 1),  # walking towards +X
    ("gaitalytics/treadmill_events.c3d", "HEE", "TOE", ["LPSI", "RPSI"], 1, -1),  # FP1 (left belt) at +X: towards -Y
])
def test_kinematic_events_match_an_independent_zeni(lake, path, heel, toe, pelvis, axis, sign):
    ref = _independent_zeni(path, heel, toe, pelvis, axis, sign)
    trial = next(t for p, t in lake.execute("SELECT path, trial_id FROM files").fetchall() if p.endswith(path.split("/")[1]))
    n = 0
    for side in "LR":
        for event in ("foot_strike", "foot_off"):
            got = [r[0] for r in lake.execute("SELECT time_s FROM gait_events WHERE trial_id = ? AND source = "
                                              "'kinematic' AND side = ? AND event = ?", [trial, side, event]).fetchall()]
            truth = ref[side][event]
            assert len(got) == len(truth) and len(got) >= 2, (side, event, got, truth)
            assert np.max(np.abs(np.sort(got) - truth)) <= 0.010, (side, event)
            n += len(got)
    assert n >= 12


def test_treadmill_stances_and_no_false_rate_alarm(lake):
    """Every cycle of the treadmill walk has a stance of 58-70 %; its mains-only 'EMG' channels fail QC and
    do not raise a false 'declared rate is probably wrong'."""
    st = [r[0] for r in lake.execute("SELECT stance_pct FROM gait_cycles WHERE trial_id = (SELECT trial_id FROM files WHERE path LIKE '%treadmill_events.c3d')")
          .fetchall()]
    assert len(st) >= 20 and all(s is not None and 58.0 <= s <= 70.0 for s in st), st
    verdicts = {r[0] for r in lake.execute("SELECT verdict FROM channel_qc WHERE trial_id = (SELECT trial_id FROM files WHERE path LIKE '%treadmill_events.c3d')")
                .fetchall()}
    assert verdicts == {"bad"}
    sev = [r[0] for r in lake.execute("SELECT severity FROM plausibility WHERE trial_id = (SELECT trial_id FROM files WHERE path LIKE '%treadmill_events.c3d')")
           .fetchall()]
    assert "bad" not in sev


def test_mains_only_channels_reach_no_derived_table(lake):
    """The treadmill file's 'EMG' is mains only (QC verdict bad, in analysis_exclusions): its subject has no
    activation map, no envelope variability, no synergies and no EMG asymmetry, and pools into no cohort
    map; the good subject (test_small) has them. Gait metrics of the treadmill walk (plates) stay."""
    excluded = lake.execute("SELECT count(*) FROM analysis_exclusions WHERE trial_id = (SELECT trial_id FROM files WHERE path "
                            "LIKE '%treadmill_events.c3d') "
                            "AND reason LIKE 'qc verdict bad%'").fetchone()[0]
    assert excluded == 4  # the four channels the manifest names
    for sql in ("SELECT count(*) FROM activation_map WHERE scope_id IN ('R02', 'R02-S1')",
                "SELECT count(*) FROM variability WHERE subject_id = 'R02' AND muscle IS NOT NULL",
                "SELECT count(*) FROM synergies WHERE session_id = 'R02-S1'",
                "SELECT count(*) FROM synergy_activations WHERE session_id = 'R02-S1'",
                "SELECT count(*) FROM asymmetry WHERE subject_id = 'R02' AND muscle IS NOT NULL",
                "SELECT count(*) FROM emg_cycle_metrics WHERE subject_id = 'R02'",
                "SELECT count(*) FROM activation_onsets WHERE subject_id = 'R02'",
                "SELECT count(*) FROM co_contraction WHERE subject_id = 'R02'",
                "SELECT count(*) FROM subject_profiles WHERE subject_id = 'R02'"):
        assert lake.execute(sql).fetchone()[0] == 0, sql
    for sql in ("SELECT count(*) FROM activation_map WHERE scope_id IN ('R01', 'R01-S1')",
                "SELECT count(*) FROM variability WHERE subject_id = 'R01' AND muscle IS NOT NULL",
                "SELECT count(*) FROM asymmetry WHERE subject_id = 'R01' AND muscle IS NOT NULL"):
        assert lake.execute(sql).fetchone()[0] > 0, sql
    assert lake.execute("SELECT count(*) FROM asymmetry WHERE subject_id = 'R02' AND metric = 'stance_time_s'"
                        ).fetchone()[0] == 1
    # the cohort map of tibialis anterior is R01's alone: same cycles as R01's subject map
    n = dict(lake.execute("SELECT scope, max(n_cycles) FROM activation_map WHERE muscle = 'tibialis_anterior' "
                          "AND side = 'L' AND scope IN ('cohort', 'subject') GROUP BY 1").fetchall())
    assert n["cohort"] == n["subject"] > 0
    # cohort cells say how many cycles are behind them and how many channels were kept out
    cells = lake.execute("SELECT muscle, metric, n_subjects, n_cycles, n_channels_excluded FROM cohort_variability "
                         "WHERE muscle IN ('tibialis_anterior', 'soleus') AND metric = 'envelope.cv_pct'").fetchall()
    by = {m: (ns, nc, nx) for m, _, ns, nc, nx in cells}
    assert by["tibialis_anterior"][0] == 1 and by["tibialis_anterior"][2] == 2  # L and R of the treadmill file
    assert by["tibialis_anterior"][1] is None  # one subject: suppressed, cycles withheld with the values
    # (n_cycles is withheld with the values in suppressed cells: the real site has 2 subjects)
    assert lake.execute("SELECT count(*) FROM cohort_variability WHERE n_channels_excluded IS NULL").fetchone()[0] == 0
    assert lake.execute("SELECT count(*) FROM cohort_variability WHERE suppressed AND n_cycles IS NOT NULL"
                        ).fetchone()[0] == 0


def test_asymmetry_uses_the_metric_registry_on_real_files(lake):
    """SI only where it means something (positive ratio-scale magnitudes): never beyond 200 %; timing
    metrics get a signed difference in their unit and no SI."""
    assert lake.execute("SELECT count(*) FROM asymmetry WHERE abs(si_pct) > 200").fetchone()[0] == 0
    timing = lake.execute("SELECT count(*), count(si_pct), count(sa_pct), min(unit), max(unit) FROM asymmetry "
                          "WHERE metric IN ('onset_ms', 'offset_ms')").fetchone()
    assert timing[0] > 0 and timing[1:3] == (0, 0) and timing[3] == timing[4] == "ms"
    d = lake.execute("SELECT max(abs(diff - (\"right\" - \"left\"))) FROM asymmetry WHERE metric = 'onset_ms'"
                     ).fetchone()[0]
    assert d < 1e-9
    assert lake.execute("SELECT count(*) FROM asymmetry WHERE unit IS NULL").fetchone()[0] == 0
