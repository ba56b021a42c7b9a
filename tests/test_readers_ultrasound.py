"""UltraTrack + Spike2 (MATLAB 5 and 7.3) and the ultrasound measurement CSV."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
from conftest import fixture

from warehouse.ingest.readers.base import ReaderError
from warehouse.ingest.readers.ultrasound import (
    read_spike2_mat,
    read_ultrasound_csv,
    read_ultrasound_csv_by_subject,
    read_ultratrack,
)

ULTRATRACK = "ultrasound/PL_50_01_fascicle_ultratrack.mat"
SPIKE2 = "ultrasound/PL_50_01_spike2_emg_torque.mat"


def test_ultratrack_alone_gives_two_regions_in_mm_and_degrees():
    rec = read_ultratrack(fixture(ULTRATRACK), muscle="tibialis_anterior")
    assert [s.region for s in rec.ultrasound] == ["region_1", "region_2"]
    for s in rec.ultrasound:
        assert s.muscle == "tibialis_anterior"
        assert len(s.fascicle_length_mm) == len(s.pennation_deg) == len(s.time_s) == 500
        assert 58 <= s.fascicle_length_mm.min() and s.fascicle_length_mm.max() <= 82
        assert 8.3 <= s.pennation_deg.min() and s.pennation_deg.max() <= 13.0  # 0.147-0.225 rad
        assert s.time_s[0] == 0.0 and np.median(np.diff(s.time_s)) == pytest.approx(1 / 30, rel=1e-3)
    assert any("not synchronised" in n for n in rec.notes)
    assert any("radians" in n for n in rec.notes)


def test_ultratrack_with_spike2_is_on_the_emg_clock():
    rec = read_ultratrack(fixture(ULTRATRACK), companions={"spike2": fixture(SPIKE2)})
    with h5py.File(fixture(SPIKE2), "r") as f:  # the frame triggers and the EMG start, read independently
        triggers = f["US/times"][()].ravel()
        emg_start = float(f["EMG_TA/start"][()].ravel()[0])
    assert triggers.size == 500
    for s in rec.ultrasound:
        np.testing.assert_allclose(s.time_s, triggers - emg_start, atol=1e-9)
        assert 8.3 <= s.pennation_deg.min() and s.pennation_deg.max() <= 13.0
    labels = {a.label: a for a in rec.analogs}
    assert {"EMG_TA", "Torque", "Angle", "LoadCell"} <= set(labels)
    emg = labels["EMG_TA"]
    assert emg.unit == "V" and emg.rate_hz == 2000.0 and len(emg.data) / emg.rate_hz == pytest.approx(17.0)
    assert labels["Torque"].unit == "Nm"
    assert rec.ultrasound[0].time_s[-1] < len(emg.data) / emg.rate_hz  # all frames inside the EMG record


def test_spike2_alone_gives_the_analog_channels():
    rec = read_spike2_mat(fixture(SPIKE2))
    assert rec.vendor == "CED" and rec.analog_rate_hz == 2000.0
    labels = [a.label for a in rec.analogs]
    assert {"EMG_TA", "Torque", "Angle", "LoadCell"} <= set(labels)
    assert all(len(a.data) == 34000 for a in rec.analogs)
    assert any("sub-sample channel start offsets" in n for n in rec.notes)
    assert any("event channel US: 500 events" in n for n in rec.notes)


def _spike2_v5(path, n_triggers=None):
    emg = {"title": "EMG_TA", "units": "V", "interval": 0.0005, "start": 0.0, "length": 4000.0,
           "values": np.zeros(4000)}
    torque = {"title": "Torque", "units": "Nm", "interval": 0.001, "start": 0.0025, "length": 2000.0,
              "values": np.ones(2000)}
    content = {"EMG_TA": emg, "Torque": torque}
    if n_triggers is not None:
        content["US"] = {"title": "US", "times": np.arange(n_triggers) * 0.03 + 0.1, "length": float(n_triggers)}
    scipy.io.savemat(path, content)


def test_spike2_v5_export_and_whole_sample_shift(tmp_path):
    p = tmp_path / "s.mat"
    _spike2_v5(p, n_triggers=10)
    rec = read_spike2_mat(p)
    torque = next(a for a in rec.analogs if a.label == "Torque")
    assert torque.rate_hz == 1000.0 and np.isnan(torque.data[:2]).all() and len(torque.data) == 2002
    assert any("shifted by 2 samples" in n for n in rec.notes)


@pytest.mark.parametrize("n_triggers,code", [(None, "ultrasound_no_triggers"), (100, "ultrasound_trigger_mismatch")])
def test_ultratrack_with_an_unsuitable_spike2(tmp_path, n_triggers, code):
    p = tmp_path / "s.mat"
    _spike2_v5(p, n_triggers=n_triggers)
    with pytest.raises(ReaderError) as err:
        read_ultratrack(fixture(ULTRATRACK), companions={"spike2": p})
    assert err.value.reason_code == code


def test_not_an_ultratrack_file(tmp_path):
    p = tmp_path / "x.mat"
    scipy.io.savemat(p, {"a": np.ones(3)})
    with pytest.raises(ReaderError) as err:
        read_ultratrack(p)
    assert err.value.reason_code == "ultratrack_format"
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ReaderError) as err:
        read_spike2_mat(junk)
    assert err.value.reason_code == "mat_unreadable"


CSV = """subject,muscle,side,condition,muscle_thickness_mm,shear_wave_speed_m_per_s,shear_modulus_kpa,probe
P01,vastus lateralis,R,rest,21.4,3.1,9.61,L12-5
P01,vastus lateralis,left,rest,20.9,,,L12-5
P01,tibialis anterior,R,fatigued,,2.5,18.75,L12-5
P01,gastrocnemius medialis,L,rest,17.2,2.0,5.0,L12-5
"""


def test_ultrasound_csv_measurements(tmp_path):
    p = tmp_path / "us.csv"
    p.write_text(CSV)
    rec = read_ultrasound_csv(p)
    assert rec.subject_id == "P01" and rec.format == "ultrasound_csv"
    got = [(m.muscle, m.side, m.metric, m.value, m.unit, m.condition) for m in rec.measurements]
    assert got[:4] == [("vastus lateralis", "R", "muscle_thickness_mm", 21.4, "mm", "rest"),
                       ("vastus lateralis", "R", "shear_wave_speed_m_per_s", 3.1, "m/s", "rest"),
                       ("vastus lateralis", "R", "shear_modulus_kpa", 9.61, "kPa", "rest"),
                       ("vastus lateralis", "L", "muscle_thickness_mm", 20.9, "mm", "rest")]
    assert len(rec.measurements) == 9
    assert any("columns ignored: probe" in n for n in rec.notes)
    assert any("line 4" in n and "Young's modulus" in n for n in rec.notes)  # 18.75 = 3 x 2.5^2
    assert any("line 5" in n and "disagrees" in n for n in rec.notes)  # 5.0 != 2.0^2
    assert not any("line 2" in n for n in rec.notes)  # 9.61 = 3.1^2


def test_ultrasound_csv_cm_semicolons_and_subjects(tmp_path):
    p = tmp_path / "us.csv"
    p.write_text("subject;muscle;side;muscle_thickness_cm\nA;soleus;R;1,5\nB;soleus;L;1.4\n")
    by = read_ultrasound_csv_by_subject(p)
    assert sorted(by) == ["A", "B"]
    assert by["A"].measurements[0].value == pytest.approx(15.0) and by["A"].measurements[0].unit == "mm"
    with pytest.raises(ReaderError) as err:
        read_ultrasound_csv(p)
    assert err.value.reason_code == "ultrasound_csv_subjects"


@pytest.mark.parametrize("text,code", [
    ("subject,side,muscle_thickness_mm\nA,R,2\n", "ultrasound_csv_columns"),
    ("muscle,side\nsoleus,R\n", "ultrasound_csv_columns"),
    ("muscle,side,muscle_thickness_mm\nsoleus,up,2\n", "ultrasound_csv_value"),
    ("muscle,muscle_thickness_mm\nsoleus,thick\n", "ultrasound_csv_value"),
    ("muscle,muscle_thickness_mm\nsoleus,-3\n", "ultrasound_csv_value"),
    ("", "empty_file")])
def test_ultrasound_csv_errors(tmp_path, text, code):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ReaderError) as err:
        read_ultrasound_csv(p)
    assert err.value.reason_code == code
