"""EMG-BIDS + Motion-BIDS: write generated recordings, read them back; real EDF inside a BIDS folder."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import fixture

from warehouse.ingest.readers.base import (
    AnalogChannel,
    Event,
    ForcePlate,
    ReaderError,
    Recording,
)
from warehouse.ingest.readers.bids import read_bids, read_participants
from warehouse.serving.bids_write import write_bids
from warehouse.serving.edf_write import WriteError


def _recording(seed: int) -> Recording:
    rng = np.random.default_rng(seed)
    rec = Recording(format="generated", vendor="Delsys", software="EMGworks 4.7")
    rec.analogs = [
        AnalogChannel("R vastus lateralis (VL)", "mV", 2000.0, rng.normal(0, 0.3, 6000), "EMG"),
        AnalogChannel("R tibialis anterior (TA)", "mV", 2000.0, rng.normal(0, 0.5, 6000), "EMG"),
        AnalogChannel("L soleus", "µV", 1259.259, rng.normal(0, 80, 3777), ""),
        AnalogChannel("Torque", "Nm", 100.0, 20 + 5 * np.sin(np.arange(300) / 10), "ankle torque"),
    ]
    markers = rng.normal(500, 200, (300, 3, 3))
    markers[40:55, 1] = np.nan  # a gap
    rec.markers_mm, rec.marker_labels, rec.point_rate_hz = markers, ["RASI", "RHEE", "RHEE"], 100.0
    rec.events = [Event("R", "foot_strike", 0.21), Event("R", "foot_off", 0.83), Event("L", "foot_strike", 1.7)]
    rec.plates = [ForcePlate(1, 2, 1000.0, np.zeros((3, 5)), np.zeros((3, 5)), np.zeros(5))]
    return rec


@pytest.fixture
def dataset(tmp_path):
    items = [("P-01", "pre", "walk", _recording(1), {"sex": "F", "mass_kg": 61.5}),
             ("P-01", "pre", "walk", _recording(2), None),
             ("P02", None, "run", _recording(3), {"sex": "M"})]
    root = tmp_path / "bids"
    notes = write_bids(root, items, power_line_hz=50)
    return root, items, notes


def test_written_dataset_is_valid_bids(dataset):
    root, _, notes = dataset
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] >= "1.11" and desc["DatasetType"] == "raw" and desc["Name"]
    assert (root / "participants.tsv").read_text().splitlines()[0].split("\t") == ["participant_id", "mass_kg", "sex"]
    emg_dir = root / "sub-P01" / "ses-pre" / "emg"
    stem = "sub-P01_ses-pre_task-walk_run-1"
    assert (emg_dir / f"{stem}_emg.edf").exists()
    side = json.loads((emg_dir / f"{stem}_emg.json").read_text())
    for key in ("EMGPlacementScheme", "EMGReference", "SamplingFrequency", "PowerLineFrequency",
                "SoftwareFilters", "TaskName"):  # REQUIRED by EMG-BIDS
        assert key in side
    assert side["SamplingFrequency"] == 2000.0 and side["PowerLineFrequency"] == 50 and side["TaskName"] == "walk"
    chans = (emg_dir / f"{stem}_channels.tsv").read_text().splitlines()
    assert chans[0].split("\t")[:3] == ["name", "type", "units"]
    assert [r.split("\t")[1] for r in chans[1:]] == ["EMG", "EMG", "EMG", "MISC"]
    assert json.loads((emg_dir / f"{stem}_channels.json").read_text())["n_samples"]["Description"]
    assert (emg_dir / f"{stem}_events.tsv").read_text().splitlines()[0] == "onset\tduration\ttrial_type\tside\tsource"
    mot_stem = "sub-P01_ses-pre_task-walk_tracksys-omc_run-1"  # entities in the order BIDS requires
    mot = root / "sub-P01" / "ses-pre" / "motion" / f"{mot_stem}_motion.json"
    meta = json.loads(mot.read_text())
    assert meta["SamplingFrequency"] == 100.0 and meta["TrackingSystemName"] == "omc" and meta["TaskName"] == "walk"
    head = (mot.parent / f"{mot_stem}_channels.tsv").read_text().splitlines()[0].split("\t")
    assert head[:5] == ["name", "component", "type", "tracked_point", "units"]
    assert (root / "sub-P02" / "emg" / "sub-P02_task-run_emg.edf").exists()  # no session level
    assert any("'P-01' written as BIDS label 'P01'" in n for n in notes)
    assert any("force plates not written" in n for n in notes)


def test_bids_round_trip_is_identical_within_edf_resolution(dataset):
    root, items, _ = dataset
    out = read_bids(root)
    assert [(s, x) for s, x, _ in out] == [("P01", "pre"), ("P01", "pre"), ("P02", None)]
    for (_, _, _, src, _), (sub, _, rec) in zip(items, out):
        assert rec.subject_id == sub and rec.vendor == "Delsys" and rec.software == "EMGworks 4.7"
        assert [a.label for a in rec.analogs] == [a.label for a in src.analogs]
        assert [a.unit for a in rec.analogs] == [a.unit for a in src.analogs]
        assert [a.rate_hz for a in rec.analogs] == [a.rate_hz for a in src.analogs]
        assert [a.description for a in rec.analogs] == [a.description for a in src.analogs]
        for a, b in zip(src.analogs, rec.analogs):
            assert len(b.data) == len(a.data)
            lsb = (a.data.max() - a.data.min()) / 65535
            assert np.max(np.abs(a.data - b.data)) <= lsb
        assert [(e.side, e.event, e.time_s) for e in rec.events] == [(e.side, e.event, e.time_s) for e in src.events]
        assert rec.marker_labels == src.marker_labels and rec.point_rate_hz == 100.0
        assert np.array_equal(np.isnan(rec.markers_mm), np.isnan(src.markers_mm))
        np.testing.assert_allclose(rec.markers_mm, src.markers_mm, atol=1e-6, equal_nan=True)
    assert read_participants(root) == {"sub-P01": {"mass_kg": "61.5", "sex": "F"}, "sub-P02": {"sex": "M"}}


def test_bids_bdf_round_trip(tmp_path):
    src = _recording(4)
    write_bids(tmp_path, [("S1", None, "hop", src, None)], bdf=True)
    (_, _, rec), = read_bids(tmp_path)
    for a, b in zip(src.analogs, rec.analogs):
        assert np.max(np.abs(a.data - b.data)) <= (a.data.max() - a.data.min()) / 16777215


def test_real_trigno_edf_in_a_bids_folder_is_quarantined_with_its_path(tmp_path):
    emg = tmp_path / "sub-01" / "emg"
    emg.mkdir(parents=True)
    (tmp_path / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.11.0"}')
    shutil.copyfile(fixture("delsys/trigno_emg.edf"), emg / "sub-01_task-walk_emg.edf")
    shutil.copyfile(fixture("delsys/trigno_emg_channels.tsv"), emg / "sub-01_task-walk_channels.tsv")
    with pytest.raises(ReaderError) as err:
        read_bids(tmp_path)
    assert err.value.reason_code == "edf_metadata_conflict"
    assert err.value.message.startswith("sub-01/emg/sub-01_task-walk_emg.edf: ")


def test_bids_errors(tmp_path):
    with pytest.raises(ReaderError) as err:
        read_bids(tmp_path)
    assert err.value.reason_code == "bids_not_dataset"
    (tmp_path / "dataset_description.json").write_text("{}")
    with pytest.raises(ReaderError) as err:
        read_bids(tmp_path)
    assert err.value.reason_code == "bids_empty"
    with pytest.raises(WriteError) as err:
        write_bids(tmp_path / "out", [("__", None, "walk", _recording(5), None)])
    assert err.value.reason_code == "bids_label"
