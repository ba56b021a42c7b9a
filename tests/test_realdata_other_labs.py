"""Real files from labs whose files are not in ../shared/fixtures (fetched from PyPI by tests/realdata.py):
Kistler BioWare C3D exports checked against BioWare's own force export of the same trials, a Vicon +
Noraxon jump whose EMG is stored in volts at the electrode, and a Motek treadmill walk re-processed
without events."""
from __future__ import annotations

import numpy as np
import pytest
import variants as V
from conftest import drop, fixture
from realdata import realdata

from flows.nightly import run_night
from warehouse import catalog

MANIFEST = """
site: other
mains_hz: 50
subjects: [{id: K01, mass_kg: 75}, {id: S03, mass_kg: 77}, {id: SI02, mass_kg: 55.3}]
sessions:
  - {id: K01-JUMP, subject: K01, task: jump, terrain: overground, files: ["kistler/*.c3d"]}
  - {id: S03-CMJ, subject: S03, task: jump, terrain: overground, files: ["vicon/*.c3d"]}
  - {id: SI02-TREAD, subject: SI02, task: walk, terrain: treadmill, files: ["tread/*.c3d"]}
channels:
  "EMG1.v": {muscle: vastus_lateralis, side: R}
  "EMG2.v": {muscle: rectus_femoris, side: R}
  "EMG7.v": {muscle: vastus_lateralis, side: L}
  "EMG8.v": {muscle: rectus_femoris, side: L}
"""
KISTLER = ("kistler_CMJ_1plate", "kistler_DJ_2plates", "kistler_COP")
INBOX: list = []  # the site's inbox folder, once the fixture dropped the files


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    from warehouse.settings import get_settings

    tmp = tmp_path_factory.mktemp("other")
    files = {f"kistler/{k}.c3d": realdata(f"biomdp/{k}.c3d") for k in KISTLER}
    files["kistler/dj_yup.c3d"] = V.rotate_to_y_up(realdata("biomdp/kistler_DJ_2plates.c3d"), tmp / "dj_yup.c3d")
    files["kistler/dj_ref.c3d"] = V.rewrite(realdata("biomdp/kistler_DJ_2plates.c3d"), tmp / "dj_ref.c3d")
    files["vicon/cmj.c3d"] = realdata("biomdp/vicon_CMJ_kinem_kinet_emg.c3d")
    files["tread/no_events.c3d"] = realdata("gaitalytics/treadmill_no_events.c3d")
    s = get_settings(str(tmp / "lake"))
    INBOX[:] = [drop(s, "other", files, MANIFEST)]
    summary = run_night(s.lake, quiet=True)
    con = catalog.connect(s, read_only=True)
    yield con, summary
    con.close()


def q(con, sql, params=None):
    return con.execute(sql, params or []).fetchall()


def bioware(name: str) -> tuple[dict, np.ndarray, list[str]]:
    """BioWare's ASCII export: header fields (per column), data, column names (plates repeat them)."""
    lines = realdata(f"biomdp/{name}.txt").read_text(encoding="latin-1").splitlines()
    head = {ln.split(":\t")[0]: ln.split(":\t")[1].split("\t") for ln in lines[:12] if ":\t" in ln}
    k = next(i for i, ln in enumerate(lines) if ln.startswith("abs time"))
    cols = lines[k].split("\t")
    data = np.array([[float(v) for v in ln.split("\t")] for ln in lines[k + 2:] if ln.strip()])
    return head, data, cols


def _tid(con, path: str) -> str:
    """The trial a file produced (trial ids are opaque: the path is only in ``files``)."""
    return q(con, "SELECT trial_id FROM files WHERE path = ?", [path])[0][0]


def test_every_file_of_the_other_labs_ingests(other):
    con, summary = other
    assert summary["quarantined"] == 0 and summary["ingested"] == 7
    frames = dict(q(con, "SELECT f.path, t.frame_source FROM trials t JOIN files f USING (trial_id)"))
    assert frames["kistler/dj_yup.c3d"] == "force_plates" and frames["vicon/cmj.c3d"] == "force_plates+markers"


def test_every_emg_looking_channel_of_the_other_labs_is_stored_or_recorded(other, tmp_path):
    """Labels in, rows out on files from labs the code was not written against (issue #14)."""
    from test_fixture_coverage import account_channels

    con, _ = other
    n = 0
    for (path,) in q(con, "SELECT path FROM files WHERE status = 'ingested' ORDER BY path"):
        n += account_channels(con, path, INBOX[0] / path, _tid(con, path))
    assert n > 0


def test_kistler_vertical_force_equals_bioware_export(other):
    """grf.force_z_n of the BioWare C3D = BioWare's own Fz of the same trial (after adding back the unloaded
    offset the lake removed), for every plate; the Y-up variant lands identical."""
    con, _ = other
    for name in ("kistler_CMJ_1plate", "kistler_DJ_2plates"):
        _, data, cols = bioware(name)
        fz_cols = [i for i, c in enumerate(cols) if c == "Fz"]
        for plate, col in enumerate(fz_cols, start=1):
            t = _tid(con, f"kistler/{name}.c3d")
            off = q(con, "SELECT offset_force_z_n FROM force_plates WHERE trial_id = ? AND plate = ?", [t, plate])[0][0]
            got = con.execute("SELECT force_z_n FROM grf WHERE trial_id = ? AND plate = ? ORDER BY sample_index",
                              [t, plate]).fetchnumpy()["force_z_n"].astype(float) + off
            assert len(got) == len(data)
            assert np.max(np.abs(got - data[:, col])) < 2.0, (name, plate)
    ref, yup = _tid(con, "kistler/dj_ref.c3d"), _tid(con, "kistler/dj_yup.c3d")
    assert dict(q(con, "SELECT trial_id, vertical_axis_file FROM trials WHERE trial_id IN (?, ?)", [ref, yup])) == \
        {ref: "+Z", yup: "+Y"}
    pa_, pb = (q(con, "SELECT peak_force_z_n FROM force_plates WHERE trial_id = ? ORDER BY plate", [t]) for t in (ref, yup))
    assert all(b[0] == pytest.approx(a[0], rel=0.005) for a, b in zip(pa_, pb))
    ea, eb = (q(con, "SELECT plate, event, time_s FROM gait_events WHERE trial_id = ? ORDER BY 1, 2, 3", [t])
              for t in (ref, yup))
    assert [r[:2] for r in ea] == [r[:2] for r in eb] and all(abs(a[2] - b[2]) <= 0.001 for a, b in zip(ea, eb))


def test_kistler_plate_contacts_match_bioware_contact_periods(other):
    """The drop jump: BioWare marks the landing on plate 1 at 3.451 s; the lake's plate-1 contact starts there
    (within 15 ms), and plate 2's contact ends where BioWare's own Fz of plate 2 falls below 20 N. With no
    events, markers or walking line, the contacts' side is U with a reason (kept, not dropped)."""
    con, _ = other
    head, data, cols = bioware("kistler_DJ_2plates")
    starts = [float(v) for v in head["Contact period start time (s)"]]
    start1 = starts[1]  # plate 1's columns come first (BioWare's plate-2 window ends at the landing, not at 0 N)
    fz2 = data[:, [i for i, c in enumerate(cols) if c == "Fz"][1]]
    end2 = data[int(np.flatnonzero(fz2 < 20.0)[0]), 0]
    t = _tid(con, "kistler/kistler_DJ_2plates.c3d")
    ev = q(con, "SELECT plate, event, time_s, side, reason FROM gait_events WHERE trial_id = ? AND "
                "source = 'force_plate' ORDER BY time_s", [t])
    strike1 = [r[2] for r in ev if r[0] == 1 and r[1] == "foot_strike"]
    off2 = [r[2] for r in ev if r[0] == 2 and r[1] == "foot_off"]
    assert strike1 and abs(strike1[0] - start1) <= 0.015, (strike1, start1)
    assert off2 and abs(off2[0] - end2) <= 0.015, (off2, end2)
    assert {r[3] for r in ev} == {"U"} and all(r[4] for r in ev)


def test_noraxon_volts_at_the_electrode(other):
    """Noraxon Ultium EMG stored in volts at the electrode (RMS 0.15-0.32 mV on the connected channels):
    electrode_mv without any gain, rms_mv in mV equal to the stored samples' RMS; unconnected channels
    (EMG7/8) are tens of microvolts."""
    import ezc3d

    from warehouse.analysis.derived import read_channel

    con, _ = other
    t = _tid(con, "vicon/cmj.c3d")
    rows = q(con, "SELECT c.channel, c.label, c.amplitude_basis, c.gain, q.rms_mv FROM emg_channels c JOIN "
                  "channel_qc q USING (trial_id, channel) WHERE c.trial_id = ? ORDER BY c.label", [t])
    assert [r[1] for r in rows] == ["EMG1.v", "EMG2.v", "EMG7.v", "EMG8.v"]
    c = ezc3d.c3d(str(realdata("biomdp/vicon_CMJ_kinem_kinet_emg.c3d")))
    labels = c["parameters"]["ANALOG"]["LABELS"]["value"]
    for ch, label, basis, gain, rms in rows:
        volts = c["data"]["analogs"][0, labels.index(label)]
        assert basis == "electrode_mv" and gain is None
        assert rms == pytest.approx(float(np.std(volts)) * 1000.0, rel=1e-5)
        assert rms == pytest.approx(float(np.std(read_channel(con, t, ch).astype(float))), rel=1e-6)
    rms = {r[1]: r[4] for r in rows}
    assert 0.1 < rms["EMG1.v"] < 0.5 and 0.1 < rms["EMG2.v"] < 0.5
    assert rms["EMG7.v"] < 0.05 and rms["EMG8.v"] < 0.05


def test_treadmill_walk_without_events_from_plates_and_kinematics(other):
    """The Motek walk re-processed without events: sides from the heel markers (left belt = FP1, as the
    fixture's annotations say), every stance 58-70 %, kinematic foot offs where the belt stayed loaded, and
    plate strikes within 50 ms of the strikes annotated in the fixture's processing of the same walk."""
    con, _ = other
    t = _tid(con, "tread/no_events.c3d")
    sides = dict(q(con, "SELECT plate, list(DISTINCT side) FROM gait_events WHERE trial_id = ? AND "
                        "source = 'force_plate' GROUP BY 1", [t]))
    assert sides == {1: ["L"], 2: ["R"]}
    cyc = q(con, "SELECT stance_pct, event_source FROM gait_cycles WHERE trial_id = ? AND stance_pct IS NOT NULL", [t])
    assert len(cyc) >= 18 and all(58.0 <= s <= 70.0 for s, _ in cyc) and {e for _, e in cyc} == {"force_plate"}
    from warehouse.ingest.readers import read_any

    ann = read_any(fixture("gaitalytics/treadmill_events.c3d")).events
    for side in ("L", "R"):
        truth = np.array([e.time_s for e in ann if e.side == side and e.event == "foot_strike"])
        got = [r[0] for r in q(con, "SELECT time_s FROM gait_events WHERE trial_id = ? AND source = 'force_plate' "
                                    "AND event = 'foot_strike' AND side = ?", [t, side])]
        assert len(got) >= 10 and all(np.min(np.abs(truth - g)) < 0.05 for g in got), side
