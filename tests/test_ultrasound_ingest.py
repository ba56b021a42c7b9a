"""Ultrasound lands on the EMG clock: fascicle length in mm, pennation in degrees (8.4-12.9)."""
from __future__ import annotations

import pytest
from conftest import drop, fixture

from flows.nightly import run_night
from warehouse import catalog

MANIFEST = """
subjects: [{id: US1}]
sessions:
  - {id: US1-S1, subject: US1, condition: fresh, task: mvc, files: ["*.mat"]}
"""


def test_ultratrack_with_spike2_lands_on_the_emg_clock(lake):
    drop(lake, "us", {"PL_50_01_fascicle_ultratrack.mat": fixture("ultrasound/PL_50_01_fascicle_ultratrack.mat"),
                      "PL_50_01_spike2_emg_torque.mat": fixture("ultrasound/PL_50_01_spike2_emg_torque.mat")},
         MANIFEST)
    s = run_night(lake.lake, quiet=True)
    assert s["ingested"] == 2
    con = catalog.connect(lake, read_only=True)
    regions, frames, lo, hi, plo, phi, t0, t1 = con.execute(
        "SELECT count(DISTINCT region), count(*), min(fascicle_length_mm), max(fascicle_length_mm), "
        "min(pennation_deg), max(pennation_deg), min(time_s), max(time_s) FROM ultrasound_series").fetchone()
    assert regions == 2 and frames == 1000
    assert 57 <= lo and hi <= 82  # README: FL 58-81 mm
    assert plo == pytest.approx(8.4, abs=0.3) and phi == pytest.approx(12.9, abs=0.3)  # radians -> degrees
    assert 0 <= t0 and t1 <= 17.0  # frame-trigger times on the 17 s EMG clock
    ex = con.execute("SELECT min(excursion) FROM ultrasound_metrics WHERE variable = 'fascicle_length_mm'").fetchone()
    assert ex[0] > 5
