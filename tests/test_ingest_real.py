"""Foundation: real files through the ingest steps (no Prefect: task bodies directly)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import drop, fixture

from flows.nightly import run_night
from warehouse import catalog
from warehouse.settings import get_settings

MANIFEST = """
site: gaita
mains_hz: 50
timezone: Europe/Zurich
subjects: [{id: G01, sex: F, mass_kg: 70}]
sessions:
  - {id: G01-S1, subject: G01, date: 2021-06-01, condition: fresh, task: walk, files: ["*.c3d"]}
"""


def q(settings, sql, params=None):
    con = catalog.connect(settings, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _night(root):
    from warehouse.settings import get_settings

    lake = get_settings(str(root / "lake"))
    drop(lake, "gaita", {"test_small.c3d": fixture("gaitalytics/test_small.c3d"),
                         "Empty.c3d": fixture("bad/Empty.c3d")}, MANIFEST)
    summary = run_night(lake.lake, quiet=True)
    return lake, summary


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """test_small.c3d and Empty.c3d after one night: (settings, summary). Built once for the module's
    read-only tests (a test that runs another night over it takes ``fresh_night``)."""
    return _night(tmp_path_factory.mktemp("night"))


@pytest.fixture
def fresh_night(tmp_path):
    """The same night in a lake of the test's own."""
    return _night(tmp_path)


def test_test_small_lands_with_channels_plates_and_events(night):
    lake, summary = night
    assert summary["ingested"] == 1 and summary["quarantined"] == 1
    (tid, n_emg, n_fp, fmt, vendor, dur), = q(lake, "SELECT trial_id, n_emg_channels, n_force_plates, format, "
                                               "vendor, duration_s FROM trials")
    assert (n_emg, n_fp, fmt, vendor) == (14, 4, "c3d", "Vicon")
    assert dur == pytest.approx(3.37, abs=0.01)
    muscles = q(lake, "SELECT muscle, side FROM emg_channels ORDER BY muscle, side")
    assert len(muscles) == 14
    assert ("tibialis_anterior", "R") in muscles and ("erector_spinae", "L") in muscles
    assert q(lake, "SELECT DISTINCT unit, rate_hz FROM emg_channels") == [("mV", 1000.0)]
    strikes = q(lake, "SELECT side, time_s FROM gait_events WHERE event = 'foot_strike' AND source = 'annotated' "
                "ORDER BY side, time_s")
    expect = {"R": [2.89, 3.98, 5.01], "L": [3.42, 4.48, 5.53]}
    for side, times in expect.items():
        got = [t for s, t in strikes if s == side]
        np.testing.assert_allclose(got, np.array(times) - 2.48, atol=1e-4)
    assert q(lake, "SELECT count(*) FROM emg_samples")[0][0] == 14 * 3370
    plates = q(lake, "SELECT peak_force_z_n, offset_force_z_n FROM force_plates ORDER BY plate")
    # README (raw ezc3d): peaks 669/658/638 N on FP1/2/4, FP3 unloaded with a ~-33 N offset. Offsets are
    # removed: FP3 reads ~0, and FP4's -12.7 N unloaded offset raises its peak to 638 + 12.7.
    assert plates[2][1] == pytest.approx(-33, abs=3) and plates[2][0] < 10
    raw_peaks = [peak + off for peak, off in plates]
    assert [round(raw_peaks[i]) for i in (0, 1, 3)] == [669, 658, 638]


def _tid(con, path: str) -> str:
    """The trial a file produced (trial ids are opaque: the path is only in ``files``)."""
    return con.execute("SELECT trial_id FROM files WHERE path = ?", [path]).fetchone()[0]


def test_samples_are_the_file_values_in_millivolts(night):
    import ezc3d

    lake, _ = night
    c = ezc3d.c3d(str(fixture("gaitalytics/test_small.c3d")))
    labels = c["parameters"]["ANALOG"]["LABELS"]["value"]
    volts = c["data"]["analogs"][0, labels.index("Voltage.RTA")]
    con = catalog.connect(lake, read_only=True)
    ch = con.execute("SELECT channel FROM emg_channels WHERE label = 'Voltage.RTA'").fetchone()[0]
    from warehouse.analysis.derived import read_channel
    np.testing.assert_allclose(read_channel(con, _tid(con, "test_small.c3d"), ch), volts * 1000, rtol=1e-6, atol=1e-6)


def test_empty_file_quarantined_with_reason_and_raw_kept(night):
    lake, _ = night
    (stage, code, msg, raw), = q(lake, "SELECT stage, reason_code, message, raw_path FROM quarantine "
                                 "WHERE path = 'Empty.c3d'")
    assert (stage, code) == ("read", "empty_file") and "empty" in msg.lower()
    assert Path(raw).exists() and Path(raw).stat().st_size == 0
    assert q(lake, "SELECT status FROM files WHERE path = 'Empty.c3d'") == [("quarantined",)]


def test_raw_zone_is_byte_for_byte(night):
    lake, _ = night
    (sha, raw), = q(lake, "SELECT sha256, raw_path FROM files WHERE path = 'test_small.c3d'")
    data = Path(raw).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    assert data == fixture("gaitalytics/test_small.c3d").read_bytes()


def test_rerun_adds_nothing(fresh_night):
    lake, _ = fresh_night
    tables = [r[0] for r in q(lake, "SHOW TABLES")]

    def counts():  # every table's row count and the snapshot count, through one read-only connection
        con = catalog.connect(lake, read_only=True)
        try:
            return ({t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables},
                    con.execute("SELECT count(*) FROM ducklake_snapshots('lake')").fetchone()[0])
        finally:
            con.close()

    before, snaps = counts()
    summary = run_night(lake.lake, quiet=True)
    assert summary["files_new"] == 0 and summary["ingested"] == 0
    after, snaps_after = counts()
    assert after == before
    assert snaps_after == snaps


def test_envelope_of_real_emg_keeps_the_rectified_mean(night):
    """A unit-DC-gain low-pass keeps the mean of the rectified band-passed signal."""
    from scipy import signal

    from warehouse.analysis.derived import read_channel

    lake, _ = night
    con = catalog.connect(lake, read_only=True)
    tid = _tid(con, "test_small.c3d")
    ch, rate = con.execute("SELECT channel, rate_hz FROM emg_channels WHERE muscle = 'tibialis_anterior' "
                           "AND side = 'R'").fetchone()
    env = con.execute("SELECT envelope_mv FROM emg_envelopes WHERE trial_id = ? AND channel = ? "
                      "ORDER BY sample_index", [tid, ch]).fetchnumpy()["envelope_mv"]
    assert len(env) == 337  # 3370 samples at 1 kHz stored at 100 Hz
    x = read_channel(con, tid, ch).astype(float)
    sos = signal.butter(4, [20, 450], btype="bandpass", fs=rate, output="sos")
    rectified = np.abs(signal.sosfiltfilt(sos, x - x.mean()))
    assert env.mean() == pytest.approx(rectified.mean(), rel=0.03)
    assert env.max() < rectified.max()


def test_same_bytes_under_another_name_is_a_duplicate(lake):
    drop(lake, "gaita", {"a/test_small.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST.replace(
        '"*.c3d"', '"a/*.c3d", "b/*.c3d"'))
    run_night(lake.lake, quiet=True)
    drop(lake, "gaita", {"b/copy.c3d": fixture("gaitalytics/test_small.c3d")}, None)
    s = run_night(lake.lake, quiet=True)
    assert s["duplicate"] == 1
    assert q(lake, "SELECT path, status FROM files ORDER BY path") == [("a/test_small.c3d", "ingested"),
                                                                       ("b/copy.c3d", "duplicate")]
    assert q(lake, "SELECT count(*) FROM trials")[0][0] == 1


def test_unclaimed_file_is_held_until_a_manifest_claims_it(lake):
    d = drop(lake, "gaita", {"x/test_small.c3d": fixture("gaitalytics/test_small.c3d")},
             MANIFEST.replace('"*.c3d"', '"elsewhere/*.c3d"'))
    s = run_night(lake.lake, quiet=True)
    assert s["held"] == 1 and s["ingested"] == 0
    assert q(lake, "SELECT status FROM files") == [("held",)]
    (d / "manifest.yaml").write_text(MANIFEST.replace('"*.c3d"', '"x/*.c3d"'))
    s = run_night(lake.lake, quiet=True)
    assert s["ingested"] == 1
    ((status, trial),) = q(lake, "SELECT status, trial_id FROM files")
    assert status == "ingested" and trial.startswith("gaita:G01-S1:") and "test_small" not in trial


def test_site_without_manifest_holds_files_and_others_proceed(lake):
    drop(lake, "nomanifest", {"t.c3d": fixture("gaitalytics/test_small.c3d")}, None)
    drop(lake, "gaita", {"test_small.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST)
    s = run_night(lake.lake, quiet=True)
    assert "nomanifest" in s["manifest_errors"] and s["ingested"] == 1 and s["held"] == 1


def test_corrected_reupload_supersedes_and_keeps_history(lake, tmp_path):
    """New bytes at the same path replace the trial; the old file stays in raw/ as superseded."""
    d = drop(lake, "gaita", {"trial.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST)
    run_night(lake.lake, quiet=True)
    old_rate = q(lake, "SELECT count(*) FROM emg_samples")[0][0]
    (d / "trial.c3d").write_bytes(fixture("gaitalytics/treadmill_events.c3d").read_bytes())  # the corrected file
    s = run_night(lake.lake, quiet=True)
    assert s["ingested"] == 1
    rows = q(lake, "SELECT status, raw_path FROM files ORDER BY received_at")
    assert [r[0] for r in rows] == ["superseded", "ingested"]
    assert all(Path(r[1]).exists() for r in rows)
    assert q(lake, "SELECT count(*) FROM trials") == [(1,)]
    n_new = q(lake, "SELECT count(*) FROM emg_samples")[0][0]
    assert n_new != old_rate and q(lake, "SELECT duration_s FROM trials")[0][0] == pytest.approx(12.06, abs=0.01)
    # derived rows follow the new file (none left from the old one): the treadmill's 11 strides per side
    assert q(lake, "SELECT count(*) FROM emg_envelopes") == [(0,)]  # its 'EMG' channels carry no muscle labels
    strikes = dict(q(lake, "SELECT side, count(*) FROM gait_events WHERE source = 'force_plate' "
                           "AND event = 'foot_strike' GROUP BY 1"))
    assert strikes["L"] >= 11 and strikes["R"] >= 11


def test_subject_ids_must_be_unique_across_sites(lake):
    drop(lake, "gaita", {"t.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST)
    drop(lake, "other", {"t.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST.replace("site: gaita", ""))
    s = run_night(lake.lake, quiet=True)
    assert s["ingested"] == 1 and "manifest_id_conflict" in s["manifest_errors"]["other"]


def test_batch_breaking_a_contract_is_not_committed(lake, tmp_path):
    """An EMG rate outside the contract's range (100-20000 Hz) quarantines the file at the validate stage."""
    text = fixture("delsys/truncated_trigno_sample.csv").read_text(encoding="utf-8")
    bad = tmp_path / "slow.csv"
    bad.write_text(text.replace("EMG 10 Sampling frequency: 1.259259e+003", "EMG 10 Sampling frequency: 5.0e+001"),
                   encoding="utf-8")
    manifest = MANIFEST.replace('"*.c3d"', '"*.csv"') + (
        'channels:\n  "Mini sensor 10: EMG 10": {muscle: tibialis_anterior, side: R}\n')
    drop(lake, "gaita", {"slow.csv": bad}, manifest)
    s = run_night(lake.lake, quiet=True)
    assert s["quarantined"] == 1 and s["ingested"] == 0
    (stage, code, msg), = q(lake, "SELECT stage, reason_code, message FROM quarantine")
    assert (stage, code) == ("validate", "contract_violation") and "rate_hz" in msg
    assert q(lake, "SELECT count(*) FROM trials") == [(0,)] and q(lake, "SELECT count(*) FROM emg_samples") == [(0,)]
    assert q(lake, "SELECT count(*) FROM validations WHERE NOT success AND column_name = 'rate_hz'")[0][0] >= 1


def test_checks_are_collected_after_the_trials_rows_and_their_contracts_still_hold(lake, monkeypatch, tmp_path):
    """The trial's QC and plausibility (computed in the check worker) are collected inside its transaction,
    once its other rows are inserted (the worker computes while the ingest inserts); in a night, before the
    trial waits in its site's batch (``warehouse.trial_batch``: nothing of it is inserted before). A QC table
    that breaks its contract rolls the whole trial back (or never lets it wait) and quarantines the file at
    the validate stage."""
    import pyarrow as pa

    from warehouse import trial_batch
    from warehouse.ingest import steps, tables

    order = []
    real_insert, real_checks = steps._insert_batches, tables.check_batches
    monkeypatch.setattr(steps, "_insert_batches", lambda c, b: (order.append(sorted(b)), real_insert(c, b))[1])
    real_add = trial_batch.add
    monkeypatch.setattr(trial_batch, "add", lambda settings, item: (order.append("waits"), real_add(settings, item)))

    def bad_qc(checked):  # a verdict outside the contract's vocabulary
        order.append("checks collected")
        got = real_checks(checked)
        qc = got["channel_qc"]
        got["channel_qc"] = qc.set_column(qc.column_names.index("verdict"), "verdict",
                                          pa.array(["maybe"] * qc.num_rows))
        return got
    monkeypatch.setattr(tables, "check_batches", bad_qc)
    alone = get_settings(str(tmp_path / "alone" / "lake"))  # the trial's own transaction (outside a night)
    for settings in (lake, alone):
        drop(settings, "gaita", {"test_small.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST)
    s = run_night(lake.lake, quiet=True)
    assert s["quarantined"] == 1 and s["ingested"] == 0
    assert order == ["checks collected"]  # before waiting, and it never waits
    steps.sync_site(alone, "gaita", "run-1")
    order.clear()
    assert steps.process_file(alone, "gaita", "test_small.c3d", "run-1")["outcome"] == steps.QUARANTINED
    first, collected, *_ = order
    assert "emg_samples" in first and "channel_qc" not in first and collected == "checks collected"
    for settings in (lake, alone):
        (stage, code, msg), = q(settings, "SELECT stage, reason_code, message FROM quarantine")
        assert (stage, code) == ("validate", "contract_violation") and "channel_qc" in msg
        for table in ("trials", "emg_samples", "emg_channels", "channel_qc", "grf"):
            assert q(settings, f"SELECT count(*) FROM {table}") == [(0,)], table
        assert q(settings, "SELECT count(*) FROM validations WHERE NOT success AND table_name = 'channel_qc'")[0][0]
        assert q(settings, "SELECT count(*) FROM validations WHERE success AND table_name = 'emg_samples'")[0][0]


def test_qc_rms_equals_the_rms_of_the_stored_millivolts(night):
    """channel_qc.rms_mv is the RMS (about the mean) of emg_samples.emg_mv for every channel of test_small,
    and equals the file's volts x 1000 (Vicon Nexus stores the amplifier output: amplitude_basis says so)."""
    import ezc3d

    lake, _ = night
    rows = q(lake, "SELECT q.label, q.rms_mv, stddev_pop(s.emg_mv), c.amplitude_basis FROM channel_qc q JOIN "
                   "emg_samples s USING (trial_id, channel) JOIN emg_channels c USING (trial_id, channel) GROUP BY ALL")
    assert len(rows) == 14
    c = ezc3d.c3d(str(fixture("gaitalytics/test_small.c3d")))
    labels = c["parameters"]["ANALOG"]["LABELS"]["value"]
    for label, rms, ref, basis in rows:
        volts = c["data"]["analogs"][0, labels.index(label)]
        assert rms == pytest.approx(ref, rel=1e-5), label
        assert rms == pytest.approx(float(np.std(volts)) * 1000.0, rel=1e-5), label
        assert basis == "amplifier_output"


def test_a_companion_set_aside_with_its_quarantined_file_is_ingested_with_the_fixed_file(tmp_path):
    """A Motion Analysis TRC whose bytes are broken is quarantined, and its ANC (read only with it) is set
    aside as ``companion_of_quarantined``. The next night the site's fixed TRC is ingested with that ANC: the
    ANC's file row is ingested with the trial and its quarantine record resolved."""
    from warehouse.settings import get_settings

    lake = get_settings(str(tmp_path / "lake"))
    raw = "btk/motion_analysis_raw/"
    manifest = MANIFEST.replace("site: gaita", "site: ma").replace('"*.c3d"', '"*.trc"')
    inbox = drop(lake, "ma", {"Gait.anc": fixture(raw + "Gait.anc"), "Forcepla.cal": fixture(raw + "Forcepla.cal")},
                 manifest)
    (inbox / "Gait.trc").write_text("PathFileType\t4\tnot a marker file\n")
    run_night(lake.lake, quiet=True)
    quarantined = dict(q(lake, "SELECT path, reason_code FROM quarantine WHERE resolved_at IS NULL"))
    assert quarantined.get("Gait.anc") == "companion_of_quarantined" and "Gait.trc" in quarantined

    drop(lake, "ma", {"Gait.trc": fixture(raw + "Gait.trc")}, None)  # the site fixes its file
    summary = run_night(lake.lake, quiet=True)
    assert summary["ingested"] == 1, summary
    (tid,), = q(lake, "SELECT trial_id FROM trials")
    assert q(lake, "SELECT status, trial_id FROM files WHERE path = 'Gait.anc'") == [("ingested", tid)]
    assert q(lake, "SELECT resolved_at IS NOT NULL FROM quarantine WHERE path = 'Gait.anc'") == [(True,)]
