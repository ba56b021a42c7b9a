"""Analysis on real recordings through the whole pipeline (ingest -> per-trial -> cohort tables)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import drop, fixture

from flows.nightly import run_night
from warehouse import catalog

MANIFEST = """
site: real
subjects: [{id: R01, mass_kg: 70}, {id: R02, mass_kg: 60}]
sessions:
  - {id: R01-S1, subject: R01, condition: fresh, task: walk, terrain: overground, files: ["small/*.c3d"]}
  - {id: R02-S1, subject: R02, condition: fresh, task: walk, terrain: treadmill, files: ["tread/*.c3d"]}
"""


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    from warehouse.settings import get_settings

    s = get_settings(str(tmp_path_factory.mktemp("real") / "lake"))
    drop(s, "real", {"small/test_small.c3d": fixture("gaitalytics/test_small.c3d"),
                     "tread/treadmill_events.c3d": fixture("gaitalytics/treadmill_events.c3d")}, MANIFEST)
    run_night(s.lake, quiet=True)
    con = catalog.connect(s, read_only=True)
    yield con
    con.close()


def test_plate_strikes_match_annotated_strikes_within_10_ms(lake):
    rows = lake.execute("""
        SELECT p.side, p.time_s, min(abs(p.time_s - a.time_s)) AS err
        FROM gait_events p JOIN gait_events a ON a.trial_id = p.trial_id AND a.side = p.side
             AND a.event = 'foot_strike' AND a.source = 'annotated'
        WHERE p.trial_id LIKE '%test_small.c3d' AND p.source = 'force_plate' AND p.event = 'foot_strike'
        GROUP BY ALL""").fetchall()
    assert len(rows) == 3  # three loaded plates (FP3 is never stepped on)
    assert max(r[2] for r in rows) < 0.010


def test_treadmill_gives_all_eleven_strides_per_side(lake):
    n = dict(lake.execute("SELECT side, count(*) FROM gait_events WHERE trial_id LIKE '%treadmill_events.c3d' "
                          "AND source = 'force_plate' AND event = 'foot_strike' GROUP BY 1").fetchall())
    assert n == {"L": 11, "R": 11}
    ann = lake.execute("""
        SELECT max(err) FROM (SELECT min(abs(p.time_s - a.time_s)) AS err FROM gait_events p JOIN gait_events a
          ON a.trial_id = p.trial_id AND a.side = p.side AND a.event = p.event AND a.source = 'annotated'
          WHERE p.trial_id LIKE '%treadmill_events.c3d' AND p.source = 'force_plate' AND p.event = 'foot_strike'
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
    verdicts = dict(lake.execute("SELECT label, verdict FROM channel_qc WHERE trial_id LIKE '%test_small.c3d'").fetchall())
    for lab in ("Voltage.RTA", "Voltage.LTA", "Voltage.RGAS", "Voltage.LGAS", "Voltage.RVL", "Voltage.LVL"):
        assert verdicts[lab] != "bad", lab
    n = lake.execute("SELECT count(DISTINCT muscle || side) FROM activation_onsets WHERE trial_id LIKE '%test_small.c3d' "
                     "AND is_default").fetchone()[0]
    assert n >= 8
