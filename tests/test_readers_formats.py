"""EDF/BDF, OpenSim TRC/MOT, Motion Analysis TRC/ANC/CAL, Nexus CSV and the py-c3d fallback on real files."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import fixture
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.ingest.readers.base import AnalogChannel, Event, ReaderError, Recording
from warehouse.ingest.readers.c3d import read_c3d
from warehouse.ingest.readers.delsys import read_delsys_csv
from warehouse.ingest.readers.edf import (
    channels_tsv_for,
    parse_event_label,
    read_edf,
    sniff_edf,
)
from warehouse.ingest.readers.motion_analysis import (
    read_anc,
    read_cal,
    read_motion_analysis,
    sniff_motion_analysis,
)
from warehouse.ingest.readers.nexus_csv import read_nexus_csv, sniff_nexus_csv
from warehouse.ingest.readers.opensim import (
    length_factor_mm,
    read_mot,
    read_trc,
    sniff_opensim,
)
from warehouse.ingest.readers.pyc3d import read_c3d_pyc3d
from warehouse.serving.edf_write import write_edf

TRIGNO_EDF, TRIGNO_TSV = "delsys/trigno_emg.edf", "delsys/trigno_emg_channels.tsv"
EMG_LABELS = ["Mini sensor 10: EMG 10", "Mini sensor 11: EMG 11"]


# ------------------------------------------------------------------------------------------- EDF
def test_trigno_edf_conflicts_raise_with_every_problem_named():
    with pytest.raises(ReaderError) as err:
        read_edf(fixture(TRIGNO_EDF), companions={"channels": fixture(TRIGNO_TSV)})
    e = err.value
    assert e.reason_code == "edf_metadata_conflict"
    for label in EMG_LABELS:  # both EMG ranges are 1000x too large
        assert f"{label}: EMG physical range" in e.message
    assert "truncated to 16 characters into duplicates" in e.message
    assert "1259 Hz" in e.message and "1259.259 Hz" in e.message
    assert "physical minimum equals their physical maximum" in e.message
    assert "ACC.X 10" in e.message and "GYRO.Z 11" in e.message


def test_trigno_edf_lenient_read_restores_names_rate_and_shows_the_1000x_unit_error():
    rec = read_edf(fixture(TRIGNO_EDF), companions={"channels": fixture(TRIGNO_TSV)}, strict=False)
    assert rec.format == "edf+"
    # 14 signals: the 12 IMU signals have physical min = max = 0 and are dropped
    assert [a.label for a in rec.analogs] == EMG_LABELS
    assert all(a.rate_hz == pytest.approx(1259.259) and a.unit == "mV" for a in rec.analogs)
    assert sum(n.startswith("CONFLICT:") for n in rec.notes) == 2
    assert any("12 signals dropped" in n for n in rec.notes)
    # same recording as the EMGworks CSV (in V): the EDF "mV" values are V x 1e6, i.e. 1000x too large
    csv = {a.label: a for a in read_delsys_csv(fixture("delsys/truncated_trigno_sample.csv")).analogs}
    for a in rec.analogs:
        ref = csv[a.label]
        assert ref.unit == "V"
        n = len(ref.data)
        lsb = (a.data.max() - a.data.min()) / 65535 * 1.01
        np.testing.assert_allclose(a.data[:n], ref.data * 1e6, atol=lsb)
        assert np.all(ref.data[:130] == 0)  # first ~136 EMG samples are 0


def test_trigno_edf_without_companion_makes_labels_unique_and_keeps_the_stored_rate():
    rec = read_edf(fixture(TRIGNO_EDF), strict=False)
    labels = [a.label for a in rec.analogs]
    assert len(labels) == len(set(labels)) == 2
    assert all(a.rate_hz == 1259.0 for a in rec.analogs)
    assert any("duplicate EDF labels" in n for n in rec.notes)


def _generated() -> Recording:
    rng = np.random.default_rng(7)
    rec = Recording(format="generated", subject_id="P07")
    rec.analogs = [AnalogChannel("R tibialis anterior", "mV", 2000.0, rng.normal(0, 0.4, 8000), "EMG"),
                   AnalogChannel("L gastrocnemius med", "µV", 2000.0, rng.normal(0, 150, 8000), "EMG"),
                   AnalogChannel("Torque", "Nm", 100.0, 40 + 10 * np.sin(np.arange(400) / 20), "torque")]
    rec.events = [Event("R", "foot_strike", 0.5), Event("L", "foot_off", 1.234), Event("L", "foot_strike", 3.9)]
    return rec


@pytest.mark.parametrize("suffix,levels", [(".edf", 65535), (".bdf", 16777215)])
def test_edf_bdf_round_trip_within_digital_resolution(tmp_path, suffix, levels):
    src = _generated()
    path = tmp_path / f"trial{suffix}"
    notes = write_edf(path, src)
    rec = read_edf(path)
    assert rec.format == ("edf+" if suffix == ".edf" else "bdf+") and rec.subject_id == "P07"
    assert [a.label for a in rec.analogs] == ["R tibialis anter", "L gastrocnemius", "Torque"]
    assert any("written as 'R tibialis anter'" in n for n in notes)
    assert [a.unit for a in rec.analogs] == ["mV", "uV", "Nm"]
    assert [a.rate_hz for a in rec.analogs] == [2000.0, 2000.0, 100.0]
    for a, b in zip(src.analogs, rec.analogs):
        assert len(b.data) == len(a.data)  # 4 s fit whole 1-s records: no padding
        lsb = (a.data.max() - a.data.min()) / levels
        assert np.max(np.abs(a.data - b.data)) <= lsb
    assert [(e.side, e.event, e.time_s) for e in rec.events] == [(e.side, e.event, e.time_s) for e in src.events]


@settings(max_examples=25, deadline=None)
@given(rates=st.lists(st.sampled_from([100.0, 148.148, 1000.0, 1259.259, 2000.0]), min_size=1, max_size=3),
       seconds=st.integers(1, 4), scale=st.sampled_from([1e-4, 1.0, 350.0, 2e4]), bdf=st.booleans(),
       seed=st.integers(0, 1000))
def test_edf_round_trip_property(tmp_path_factory, rates, seconds, scale, bdf, seed):
    rng = np.random.default_rng(seed)
    src = Recording(format="generated")
    src.analogs = [AnalogChannel(f"ch{i}", "mV", r, rng.normal(0, scale, int(round(r * seconds))) + scale)
                   for i, r in enumerate(rates)]
    path = tmp_path_factory.mktemp("edf") / ("x.bdf" if bdf else "x.edf")
    write_edf(path, src)
    rec = read_edf(path)
    levels = 16777215 if bdf else 65535
    for a, b in zip(src.analogs, rec.analogs):
        assert b.rate_hz == pytest.approx(a.rate_hz, rel=1e-5)  # awkward rates within 10 ppm
        n = len(a.data)
        assert len(b.data) >= n  # the last record may be padded (noted)
        assert np.max(np.abs(a.data - b.data[:n])) <= (a.data.max() - a.data.min()) / levels * 1.0001


def test_edf_truncated_and_not_edf_files(tmp_path):
    path = tmp_path / "t.edf"
    write_edf(path, _generated())
    cut = tmp_path / "cut.edf"
    cut.write_bytes(path.read_bytes()[:-1000])
    rec = read_edf(cut)
    assert any(n.startswith("file truncated: header declares 4 data records, file holds 3") for n in rec.notes)
    assert len(rec.analogs[0].data) == 6000
    bad = tmp_path / "bad.edf"
    bad.write_bytes(b"hello world" * 40)
    with pytest.raises(ReaderError) as err:
        read_edf(bad)
    assert err.value.reason_code == "edf_header"
    empty = tmp_path / "empty.edf"
    empty.write_bytes(b"")
    with pytest.raises(ReaderError) as err:
        read_edf(empty)
    assert err.value.reason_code == "empty_file"


@pytest.mark.parametrize("text,expected", [
    ("foot_strike L", ("L", "foot_strike")), ("Right Heel Strike", ("R", "foot_strike")),
    ("toe off left", ("L", "foot_off")), ("RHS", ("R", "foot_strike")), ("LTO", ("L", "foot_off")),
    ("Foot Strike", None), ("start walking", None)])
def test_annotation_names(text, expected):
    assert parse_event_label(text) == expected


def test_length_units_resolved_only_when_unambiguous():
    assert length_factor_mm("mm") == (1.0, None)
    factor, note = length_factor_mm("mete")  # c3d.org sample15 POINT:UNITS
    assert factor == 1000.0 and "truncated" in note
    for bad in ("me", "furlong", ""):
        with pytest.raises(ReaderError) as err:
            length_factor_mm(bad)
        assert err.value.reason_code == "unit_unknown"


# --------------------------------------------------------------------------------------- OpenSim
def test_opensim_trc_commas_truncated():
    rec = read_trc(fixture("pyomeca/markers_commas.trc"))
    assert rec.point_rate_hz == 100.0
    assert rec.markers_mm.shape[1] == 51 and rec.marker_labels[:2] == ["ASISl", "ASISr"]
    assert rec.markers_mm.shape[0] < 652
    assert any(n.startswith("truncated: header says 652 frames") for n in rec.notes)


def test_opensim_mot_ik_commas_truncated():
    rec = read_mot(fixture("pyomeca/inverse_kin_commas.mot"))
    assert len(rec.analogs) == 25 and rec.analog_rate_hz == 100.0
    units = {a.label: a.unit for a in rec.analogs}
    assert units["thorax_tilt"] == "deg" and units["thorax_tx"] == "m" and units["box_transX"] == "m"
    assert any(n.startswith("truncated: header says 250 rows") for n in rec.notes)
    assert not rec.plates


def test_opensim_grf_matches_the_c3d_of_the_same_trial():
    mot = read_mot(fixture("gaitalytics/test_small.mot"))
    c3d = read_c3d(fixture("gaitalytics/test_small.c3d"))
    assert [p.plate for p in mot.plates] == [1, 2, 3, 4]
    assert any("ordered as plates 4,1,2,3" in n for n in mot.notes)
    assert all(p.rate_hz == 1000.0 for p in mot.plates)
    for pm, pc in zip(mot.plates, c3d.plates):
        assert pm.force_n.shape == pc.force_n.shape
        peak = np.max(np.abs(pc.force_n[2]))
        assert np.max(np.abs(pm.force_n[2])) == pytest.approx(peak, rel=0.01)
        np.testing.assert_allclose(pm.force_n, pc.force_n, atol=0.01 * peak)
        loaded = pc.force_n[2] > 50
        if loaded.any():  # COP and free moment in the same lab frame and sign
            np.testing.assert_allclose(pm.cop_mm[:, loaded], pc.cop_mm[:, loaded], atol=1.0)
            fm = np.max(np.abs(pc.free_moment_nmm[loaded]))
            np.testing.assert_allclose(pm.free_moment_nmm[loaded], pc.free_moment_nmm[loaded], atol=0.01 * fm)
    peaks = sorted(round(np.max(p.force_n[2])) for p in mot.plates if np.max(p.force_n[2]) > 100)
    assert peaks == [638, 658, 669]
    assert np.mean(mot.plates[2].force_n[2]) == pytest.approx(-33, abs=5)  # FP3 unloaded offset


# ------------------------------------------------------------------------------- Motion Analysis
@pytest.fixture(scope="module")
def gait():
    raw = "btk/motion_analysis_raw/"
    rec = read_motion_analysis(fixture(raw + "Gait.trc"), companions={
        "anc": fixture(raw + "Gait.anc"), "cal": fixture(raw + "Forcepla.cal")})
    return rec, read_c3d(fixture("btk/Gait.c3d"))


def test_motion_analysis_markers_agree_with_the_vendor_c3d(gait):
    rec, c3d = gait
    assert rec.vendor == "Motion Analysis" and rec.point_rate_hz == 100.0
    assert rec.markers_mm.shape == c3d.markers_mm.shape == (487, 33, 3)
    assert any("header says 66 markers, 33 are labelled" in n for n in rec.notes)
    assert any(n.startswith("ragged rows") for n in rec.notes)
    both = ~np.isnan(rec.markers_mm[..., 0]) & ~np.isnan(c3d.markers_mm[..., 0])
    assert both.sum() > 1000
    for m in range(33):  # the C3D holds the smoothed, gap-filled version of the same trajectories
        d = np.abs(rec.markers_mm[both[:, m], m] - c3d.markers_mm[both[:, m], m])
        assert np.median(d) < 1.0


def test_motion_analysis_anc_counts_scale_to_the_c3d_values(gait):
    rec, c3d = gait
    assert len(rec.analogs) == 28 and rec.analog_rate_hz == 1000.0
    assert all(len(a.data) == 5346 for a in rec.analogs)  # Duration 5.345 s at 1000 Hz
    head = fixture("btk/motion_analysis_raw/Gait.anc").read_text().splitlines()
    ranges_mv = [float(x) for x in next(ln for ln in head if ln.startswith("Range")).split("\t")[1:] if x.strip()]
    assert len(ranges_mv) == 28
    emg = [(a, b, r) for a, b, r in zip(rec.analogs, c3d.analogs, ranges_mv) if b.unit == "V"]
    assert [b.label for _, b, _ in emg][:2] == ["LREC", "RREC"] and len(emg) == 16
    for a, b, r in emg:  # same values within half a 12-bit step of the +-range
        np.testing.assert_allclose(a.data[:len(b.data)], b.data, atol=2 * r / 1000 / 4096 / 2)
    clipped = next(n for n in rec.notes if "ADC limits -2048/2047" in n)
    assert "L Rectus" in clipped and "R Rectus" in clipped
    # raw plate channels: the C3D stores -V / (gain 4000 x 10 V) x 1e6
    for a, b in zip(rec.analogs[:12], c3d.analogs[:12]):
        np.testing.assert_allclose(-a.data[:len(b.data)] / 4000 / 10 * 1e6, b.data, atol=1e-3)


def test_motion_analysis_plates_agree_with_the_vendor_c3d(gait):
    rec, c3d = gait
    assert [(p.plate, p.plate_type) for p in rec.plates] == [(1, 4), (2, 4)]
    assert rec.plate_channel_indices == set(range(12))
    for p, q in zip(rec.plates, c3d.plates):
        n = q.force_n.shape[1]
        peak = np.max(q.force_n[2])
        assert np.max(p.force_n[2]) == pytest.approx(peak, rel=0.01)
        np.testing.assert_allclose(p.force_n[:, :n], q.force_n, atol=0.01 * peak)
        loaded = q.force_n[2] > 50
        np.testing.assert_allclose(p.cop_mm[:, :n][:, loaded], q.cop_mm[:, loaded], atol=1.0)


def test_cal_file_and_anc_errors(tmp_path):
    cals = read_cal(fixture("btk/motion_analysis_raw/Forcepla.cal"))
    assert [c["matrix"].shape for c in cals] == [(6, 6), (6, 6)]
    bad = tmp_path / "bad.cal"
    bad.write_text("1\n25 60 90\n1 2 3 4 5 6\n")
    with pytest.raises(ReaderError) as err:
        read_cal(bad)
    assert err.value.reason_code == "cal_format"
    anc = tmp_path / "x.anc"
    anc.write_text("File_Type:\tAnalog R/C ASCII\tGeneration#:\t1\n")
    with pytest.raises(ReaderError) as err:
        read_anc(anc)
    assert err.value.reason_code == "anc_header"


# ------------------------------------------------------------------------------------ Nexus CSV
def test_nexus_devices_csv():
    path = fixture("pyomeca/nexus_analogs_delsys.csv")
    rec = read_nexus_csv(path)
    assert rec.vendor == "Vicon" and rec.analog_rate_hz == 2000.0
    assert len(rec.analogs) == 38 and all(a.unit == "V" and len(a.data) == 11600 for a in rec.analogs)
    assert "EMG1" in [a.label for a in rec.analogs] and rec.analogs[0].label == "Voltage.1"
    zero_note = next(n for n in rec.notes if "exactly zero" in n)
    listed = zero_note.split(": ", 1)[1].split(", ")
    data = {a.label: a.data for a in rec.analogs}
    assert len(listed) >= 10 and all(np.all(data[lb] == 0) for lb in listed)
    assert sum(np.all(d == 0) for d in data.values()) == len(listed)


def test_nexus_csv_rejects_other_files(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ReaderError) as err:
        read_nexus_csv(p)
    assert err.value.reason_code == "nexus_csv_header"


# ---------------------------------------------------------------------------------- py-c3d fallback
def test_pyc3d_reads_sgi_and_dec_like_ezc3d_reads_intel():
    with pytest.raises(ReaderError) as err:
        read_c3d(fixture("c3dorg/sample01_Eb015si.c3d"))
    assert err.value.reason_code == "c3d_unsupported_processor"
    ref = read_c3d(fixture("c3dorg/sample01_Eb015pi.c3d"))
    for name, proc in (("sample01_Eb015si.c3d", "sgi"), ("sample01_Eb015vr.c3d", "dec")):
        rec = read_c3d_pyc3d(fixture("c3dorg/" + name))
        assert rec.processor == proc and rec.first_frame == ref.first_frame
        assert [a.label for a in rec.analogs] == [a.label for a in ref.analogs] and len(rec.analogs) == 16
        np.testing.assert_allclose(np.array([a.data for a in rec.analogs]), np.array([a.data for a in ref.analogs]),
                                   atol=1e-6)
        np.testing.assert_allclose(rec.markers_mm, ref.markers_mm, atol=1e-3)
        assert [p.plate_type for p in rec.plates] == [2, 2]
        for p, q in zip(rec.plates, ref.plates):
            assert np.max(p.force_n[2]) == pytest.approx(np.max(q.force_n[2]), rel=0.01)
        assert any("'nt' -> 'N'" in n and "'ntmm' -> 'Nmm'" in n for n in rec.notes)
        assert any("TIBIALIS ANTERIOR EMG" in n for n in rec.notes)  # descriptions on unrecorded entries 17-20


@pytest.mark.parametrize("name,code", [("sample06_MACsample.c3d", "c3d_header_parameter_conflict"),
                                       ("sample18_bad_parameter_section.c3d", "c3d_bad_parameter_section"),
                                       ("Empty.c3d", "empty_file")])
def test_pyc3d_rejects_files_both_readers_fail(name, code):
    if name != "sample18_bad_parameter_section.c3d":  # ezc3d needs 30-50 s to give up on that one
        with pytest.raises(ReaderError):
            read_c3d(fixture("bad/" + name))
    with pytest.raises(ReaderError) as err:
        read_c3d_pyc3d(fixture("bad/" + name))
    assert err.value.reason_code == code
    assert code == "empty_file" or name in err.value.message


def test_pyc3d_reads_dance_that_ezc3d_rejects():
    with pytest.raises(ReaderError):
        read_c3d(fixture("bad/sample13_Dance.c3d"))
    rec = read_c3d_pyc3d(fixture("bad/sample13_Dance.c3d"))
    assert rec.point_rate_hz == pytest.approx(65.053, abs=1e-3) and rec.analog_rate_hz == rec.point_rate_hz
    assert rec.markers_mm.shape[1] == 40 and len(rec.analogs) == 8
    assert any("POINT:DATA_START" in n for n in rec.notes)


# ------------------------------------------------------------------------------------- sniffing
def test_sniffers_recognise_each_fixture_and_nothing_else():
    files = {"delsys/trigno_emg.edf": "edf", "pyomeca/markers_commas.trc": "trc", "gaitalytics/test_small.mot": "mot",
             "pyomeca/inverse_kin_commas.mot": "mot", "btk/motion_analysis_raw/Gait.anc": "anc",
             "pyomeca/nexus_analogs_delsys.csv": "nexus", "delsys/truncated_trigno_sample.csv": None,
             "gaitalytics/test_small.c3d": None}
    for rel, kind in files.items():
        head = fixture(rel).read_bytes()[:4096]
        found = {sniff_edf(head), sniff_opensim(head), sniff_motion_analysis(head)} - {None}
        if sniff_nexus_csv(head):
            found.add("nexus")
        assert found == ({kind} if kind else set()), rel
    assert channels_tsv_for(fixture("delsys/trigno_emg.edf")) == fixture("delsys/trigno_emg_channels.tsv")


def _delsys_variants(src: bytes) -> dict[str, bytes]:
    lf = src.replace(b"\r\n", b"\n")
    i = lf.index(b"\n", lf.index(b"X[s]")) + 1  # the first data row
    rows = lf[i:].split(b"\n")
    return {
        "as_exported": src, "lf": lf, "crlf": lf.replace(b"\n", b"\r\n"), "no_final_newline": lf.rstrip(b"\n"),
        "not_ascii": lf[:i] + lf[i:i + 200].replace(b"0", "µ".encode(), 1) + lf[i + 200:],
        "lone_cr": lf[:i + 300] + b"\r" + lf[i + 300:], "vertical_tab": lf[:i + 500] + b"\x0b" + lf[i + 500:],
        "ragged": lf[:i] + b"\n".join(r if k % 7 != 3 else r + b",9,9" for k, r in enumerate(rows)),
        "short_first_row": lf[:i] + b"\n".join([rows[0].rsplit(b",", 3)[0]] + rows[1:]),
        "quoted_first_row": lf[:i] + b'"1,2",' + lf[i:], "spaces": lf[:i] + lf[i:].replace(b",", b" , "),
        "nan_text": lf[:i] + lf[i:].replace(b"0.000", b"nan", 5), "junk_row": lf + b"\nthe end,\n",
        "no_rows": lf[:i], "blank_lines": lf[:i] + b"\n".join(r if k % 50 else b"\n" + r for k, r in enumerate(rows)),
    }


def test_delsys_rows_read_from_bytes_equal_the_text_path(tmp_path, monkeypatch):
    """A plain ASCII EMGworks export's rows are parsed from its bytes, value columns only
    (``delsys._value_columns_bytes``); anything else (other line breaks, non-ASCII bytes, a first row without
    the header's columns) through the text path. Both give the same channels, samples (NaN where written), notes
    and refusals, on the real export and on damaged variants of it."""
    from warehouse.ingest.readers import delsys

    used = []
    real_bytes = delsys._value_columns_bytes
    monkeypatch.setattr(delsys, "_value_columns_bytes", lambda *a: used.append(1) or real_bytes(*a))

    def read(path):
        try:
            rec = read_delsys_csv(path)
        except ReaderError as exc:
            return exc.reason_code
        return [(a.label, a.unit, a.rate_hz, a.data.dtype, a.data.tobytes()) for a in rec.analogs], rec.notes

    variants = _delsys_variants(fixture("delsys/truncated_trigno_sample.csv").read_bytes())
    plain = {"as_exported", "lf", "crlf", "no_final_newline", "ragged", "spaces", "nan_text", "junk_row"}
    for name, data in variants.items():
        path = tmp_path / f"{name}.csv"
        path.write_bytes(data)
        used.clear()
        fast = read(path)
        assert bool(used) == (name in plain), name
        with monkeypatch.context() as m:
            m.setattr(delsys, "_plain_rows", lambda raw: None)
            assert read(path) == fast, name
        if name in plain:
            assert len(fast[0]) == 14 and any("truncated" in n for n in fast[1])
    assert read(tmp_path / "no_rows.csv") == read(tmp_path / "blank_lines.csv") == "delsys_rows"
