"""EDF/BDF through edfio: the pitfalls of the library are caught by our layer (format sniffing, the
header-size field, record counts, anonymised start dates) and damaged files end read or refused."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse.ingest.readers import ReaderError, read_any
from warehouse.ingest.readers.base import AnalogChannel, Event, Recording
from warehouse.ingest.readers.edf import read_edf
from warehouse.serving.edf_write import write_edf


def _recording() -> Recording:
    rng = np.random.default_rng(3)
    rec = Recording(format="generated", subject_id="S9")
    rec.analogs = [AnalogChannel("EMG R VL", "mV", 1000.0, rng.normal(0, 0.3, 3000), "EMG"),
                   AnalogChannel("Torque", "Nm", 100.0, 20 + 5 * np.sin(np.arange(300) / 9), "torque")]
    rec.events = [Event("R", "foot_strike", 0.25), Event("R", "foot_off", 1.5)]
    return rec


def test_bdf_bytes_named_edf_are_read_as_bdf(tmp_path):
    """edfio.read_edf on BDF bytes returns wrong numbers without an error: the first bytes decide."""
    src = _recording()
    write_edf(tmp_path / "x.bdf", src)
    renamed = tmp_path / "x.edf"
    renamed.write_bytes((tmp_path / "x.bdf").read_bytes())
    rec = read_edf(renamed)
    assert rec.format == "bdf+"
    for a, b in zip(src.analogs, rec.analogs):
        assert np.max(np.abs(a.data - b.data)) <= (a.data.max() - a.data.min()) / 16777215


def test_a_wrong_header_size_field_is_refused_not_read_shifted(tmp_path):
    """edfio reads the samples from the header-size field: a wrong value would shift every sample."""
    path = tmp_path / "x.edf"
    write_edf(path, _recording())
    raw = bytearray(path.read_bytes())
    ns = int(raw[252:256])
    assert int(raw[184:192]) == 256 * (ns + 1)
    raw[184:192] = str(256 * ns).ljust(8).encode()
    path.write_bytes(bytes(raw))
    with pytest.raises(ReaderError) as err:
        read_edf(path)
    assert err.value.reason_code == "edf_header" and "header-size field" in err.value.message


@pytest.mark.parametrize("declared,note", [(b"-1      ", "not set in the header (-1); 3 complete records"),
                                           (b"9       ", "header declares 9 data records, file holds 3")])
def test_record_count_is_checked_against_the_file_size(tmp_path, declared, note):
    path = tmp_path / "x.edf"
    write_edf(path, _recording())
    raw = path.read_bytes()
    assert int(raw[236:244]) == 3 and float(raw[244:252]) == 1.0  # three 1-s records
    path.write_bytes(raw[:236] + declared + raw[244:])
    rec = read_edf(path)
    assert any(note in n for n in rec.notes)
    assert not any(n.startswith("edfio:") for n in rec.notes)  # edfio was handed a consistent file
    assert [len(a.data) for a in rec.analogs] == [3000, 300]


def test_anonymised_start_date_reads(tmp_path):
    """The writer has no date to give (EDF+ 'Startdate X'); reading never needs one."""
    path = tmp_path / "x.edf"
    write_edf(path, _recording())
    raw = path.read_bytes()
    assert raw[88:168].decode().split()[:2] == ["Startdate", "X"]
    rec = read_any(path)
    assert rec.subject_id == "S9" and rec.software == "myomap"
    assert [(e.side, e.event, e.time_s) for e in rec.events] == [("R", "foot_strike", 0.25), ("R", "foot_off", 1.5)]


TRIGNO = fixture("delsys/trigno_emg.edf").read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, len(TRIGNO) - 1), st.sampled_from(b"0123456789 .-+eE,\x00\xff\x14")),
                      max_size=12),
       cut=st.one_of(st.none(), st.integers(0, len(TRIGNO))), header=st.booleans())
def test_mutated_edf_is_read_or_refused(tmp_path, flips, cut, header):
    raw = bytearray(TRIGNO)
    for pos, val in flips:
        raw[pos % (4096 + 64) if header else pos] = val
    path = tmp_path / "m.edf"
    path.write_bytes(bytes(raw[:cut] if cut is not None else raw))
    try:
        read_edf(path, strict=False)
    except ReaderError as exc:
        assert exc.reason_code and exc.message
