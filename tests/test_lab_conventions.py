"""Lab conventions through the nightly flow: Y-up labs, side-in-label events, running strides, amplifier gain,
a file cut mid-burst. Every variant is built from a real file (tests/variants.py) and compared with the
original or with the truth injected by the generator; no number comes from our own output."""
from __future__ import annotations

import numpy as np
import pytest
import variants as V
from conftest import drop, fixture

from flows.nightly import run_night
from warehouse import catalog

MANIFEST = """
site: conv
mains_hz: 50
subjects: [{id: C01, mass_kg: 70}, {id: C02, mass_kg: 62}, {id: C03, mass_kg: 75}, {id: C04, mass_kg: 70},
           {id: C05, mass_kg: 70}]
sessions:
  - {id: C01-VICON, subject: C01, task: walk, terrain: overground, files: ["vicon/*.c3d"]}
  - {id: C02-MA, subject: C02, task: walk, terrain: overground, files: ["ma/*.c3d"]}
  - {id: C03-CODA, subject: C03, task: walk, terrain: overground, files: ["coda/*.c3d"]}
  - {id: C01-LABELS, subject: C01, task: walk, terrain: overground, files: ["labels/*.c3d"]}
  - {id: C04-RUN, subject: C04, task: run, terrain: treadmill, gain: 1000, files: ["run/*.c3d"]}
  - {id: C04-RUNV, subject: C04, task: run, terrain: treadmill, files: ["runv/*.c3d"]}
  - {id: C05-TREAD, subject: C05, task: walk, terrain: treadmill, files: ["tread/*.c3d"]}
channels:
  "Voltage.1": {muscle: tibialis_anterior, side: L}
  "Voltage.2": {muscle: tibialis_anterior, side: R}
"""
#: (folder, real fixture) of the three vendors rotated to Y-up.
VENDORS = {"vicon": "gaitalytics/test_small.c3d", "ma": "btk/Gait.c3d", "coda": "btk/ADemo1_rewrite_c3d_pc_float.c3d"}


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    from warehouse.settings import get_settings

    tmp = tmp_path_factory.mktemp("conv")
    files = {}
    for folder, rel in VENDORS.items():
        files[f"{folder}/orig.c3d"] = V.rewrite(fixture(rel), tmp / f"{folder}_orig.c3d")
        files[f"{folder}/yup.c3d"] = V.rotate_to_y_up(fixture(rel), tmp / f"{folder}_yup.c3d")
    files["vicon/cut.c3d"] = V.cut_start(fixture("gaitalytics/test_small.c3d"), tmp / "cut.c3d", seconds=0.38)
    labels = {"pig": ("btk/PiG_Motion3_FF.c3d", "underscore"), "fw": ("btk/FunctionalWalk.c3d", "words"),
              "ts": ("gaitalytics/test_small.c3d", "qualisys")}
    for name, (rel, style) in labels.items():  # side in the label, Y-up as well
        p = V.side_in_label_events(fixture(rel), tmp / f"{name}_sil.c3d", style=style)
        files[f"labels/{name}.c3d"] = V.rotate_to_y_up(p, p)
    truth = V.running_trial(fixture("gaitalytics/treadmill_events.c3d"), tmp / "run.c3d")
    files["run/run.c3d"] = tmp / "run.c3d"
    V.running_trial(fixture("gaitalytics/treadmill_events.c3d"), tmp / "runv.c3d", seed=4)
    files["runv/run.c3d"] = tmp / "runv.c3d"
    tread = tmp / "tread_noev.c3d"  # the real treadmill walk with its events removed: plates + kinematics only
    import ezc3d

    c = ezc3d.c3d(str(fixture("gaitalytics/treadmill_events.c3d")))
    V.set_events(c, [])
    c.write(str(tread))
    files["tread/noev.c3d"] = tread
    s = get_settings(str(tmp / "lake"))
    drop(s, "conv", files, MANIFEST)
    summary = run_night(s.lake, quiet=True)
    con = catalog.connect(s, read_only=True)
    _TRIALS.update(con.execute("SELECT path, trial_id FROM files WHERE trial_id IS NOT NULL").fetchall())
    yield con, summary, truth
    con.close()


def q(con, sql, params=None):
    return con.execute(sql, params or []).fetchall()


_TRIALS: dict[str, str] = {}  # inbox path -> trial id (opaque: the path is only in `files`)
SESSIONS = {"vicon": "C01-VICON", "ma": "C02-MA", "coda": "C03-CODA", "labels": "C01-LABELS", "run": "C04-RUN",
            "runv": "C04-RUNV", "tread": "C05-TREAD"}


def tid(path):
    t = _TRIALS[path]
    assert t.startswith(f"conv:{SESSIONS[path.split('/')[0]]}:") and path.split("/")[-1] not in t
    return t


def test_every_variant_ingests(conv):
    con, summary, _ = conv
    assert summary["quarantined"] == 0 and summary["ingested"] == 13
    assert q(con, "SELECT count(*) FROM files WHERE status <> 'ingested'") == [(0,)]


@pytest.mark.parametrize("folder", sorted(VENDORS))
def test_y_up_file_gives_the_same_events_and_peak_force(conv, folder):
    """A real C3D rotated to Y-up: detected as +Y from the plate corners, rotated back, same events
    (within one sample) and the same peak vertical force (within 0.5 %) as the original."""
    con, _, _ = conv
    orig, yup = tid(f"{folder}/orig.c3d"), tid(f"{folder}/yup.c3d")
    frames = dict(q(con, "SELECT trial_id, vertical_axis_file FROM trials WHERE trial_id IN (?, ?)", [orig, yup]))
    assert frames == {orig: "+Z", yup: "+Y"}
    rot = {t: np.array(__import__("json").loads(r)) for t, r in
           q(con, "SELECT trial_id, frame_rotation FROM trials WHERE trial_id IN (?, ?)", [orig, yup])}
    np.testing.assert_allclose(rot[yup] @ V.Y_UP, rot[orig], atol=1e-12)  # audit: R(yup) undoes the rotation
    rates = dict(q(con, "SELECT trial_id, analog_rate_hz FROM trials WHERE trial_id = ?", [orig]))
    for source, tol in (("force_plate", 1.0 / rates[orig]), ("kinematic", 0.0101), ("annotated", 1e-9)):
        a = q(con, "SELECT side, event, time_s FROM gait_events WHERE trial_id = ? AND source = ? ORDER BY 1, 2, 3",
              [orig, source])
        b = q(con, "SELECT side, event, time_s FROM gait_events WHERE trial_id = ? AND source = ? ORDER BY 1, 2, 3",
              [yup, source])
        assert [r[:2] for r in a] == [r[:2] for r in b], source
        assert all(abs(x[2] - y[2]) <= tol for x, y in zip(a, b)), source
    assert q(con, "SELECT count(*) FROM gait_events WHERE trial_id = ? AND source = 'force_plate'", [orig])[0][0] >= 2
    pa_, pb = (q(con, "SELECT plate, peak_force_z_n FROM force_plates WHERE trial_id = ? ORDER BY plate", [t])
               for t in (orig, yup))
    loaded = [(x, y) for x, y in zip(pa_, pb) if x[1] > 100]
    assert loaded and all(y[1] == pytest.approx(x[1], rel=0.005) for x, y in loaded)
    # and the lake's vertical force is the file's vertical force: the original's peak equals ezc3d's |Fz| peak
    import ezc3d

    c = ezc3d.c3d(str(fixture(VENDORS[folder])), extract_forceplat_data=True)
    raw = [float(np.nanmax(np.abs(p["force"][2]))) for p in c["data"]["platform"]]
    offsets = [r[0] for r in q(con, "SELECT offset_force_z_n FROM force_plates WHERE trial_id = ? ORDER BY plate",
                               [orig])]
    for (plate, peak), r, off in zip(pa_, raw, offsets):
        if peak > 100:  # the stored force has the plate's unloaded offset removed
            assert peak + off == pytest.approx(r, abs=0.005 * r + 1.0), plate


def test_side_in_label_events_give_sides_and_plate_strikes_match(conv):
    """Qualisys-style RHS/LTO, L_FS and 'Left Foot Strike' labels with a General context (on Y-up files):
    annotated events keep their side, every plate contact takes the side of the annotation, and plate
    strikes match annotated strikes within 15 ms (>= 11 of 12 contacts)."""
    con, _, truth = conv
    errs = []
    for path in ("labels/pig.c3d", "labels/fw.c3d", "labels/ts.c3d", "run/run.c3d"):
        t = tid(path)
        sides = dict(q(con, "SELECT side, count(*) FROM gait_events WHERE trial_id = ? AND source = 'annotated' "
                            "GROUP BY 1", [t]))
        assert set(sides) == {"L", "R"}, (path, sides)
        plate = q(con, "SELECT side, time_s, reason FROM gait_events WHERE trial_id = ? AND source = 'force_plate' "
                       "AND event = 'foot_strike' ORDER BY time_s", [t])
        assert plate and all(s in ("L", "R") and "annotat" in why for s, _, why in plate), (path, plate)
        ann = q(con, "SELECT side, time_s FROM gait_events WHERE trial_id = ? AND source = 'annotated' "
                     "AND event = 'foot_strike'", [t])
        for side, ts, _ in plate[:3]:
            errs.append(min(abs(ts - a) for s, a in ann if s == side))
    assert len(errs) == 12
    assert sum(e <= 0.015 for e in errs) >= 11, np.round(errs, 3)
    # the running trial's plate strikes against the generator's truth, all of them
    got = q(con, "SELECT side, time_s FROM gait_events WHERE trial_id = ? AND source = 'force_plate' "
                 "AND event = 'foot_strike'", [tid("run/run.c3d")])
    for side, ts in got:
        assert np.min(np.abs(truth["strike"][side] - ts)) <= 0.002


def test_running_strides_cycles_and_kinematic_events(conv):
    con, _, truth = conv
    t = tid("run/run.c3d")
    rows = q(con, "SELECT side, duration_s, stance_pct, event_source FROM gait_cycles WHERE trial_id = ? AND valid",
             [t])
    assert len(rows) >= 25
    assert all(r[3] == "annotated" for r in rows)
    assert np.median([r[1] for r in rows]) == pytest.approx(truth["stride_s"], abs=0.002)
    assert np.median([r[2] for r in rows]) == pytest.approx(35.0, abs=0.5)
    kin = q(con, "SELECT side, time_s FROM gait_events WHERE trial_id = ? AND source = 'kinematic' "
                 "AND event = 'foot_strike'", [t])
    assert len(kin) >= 25  # heel-minus-pelvis maxima: the strikes of the generated heel trajectory
    for side, ts in kin:
        assert np.min(np.abs(truth["strike"][side] - ts)) <= 0.015


def test_running_ta_onsets_with_the_stride_adapted_baseline(conv):
    """Generated 20 ms recruitment ramps 40 ms before each strike at 20 dB, 0.7 s strides: the default
    method finds the loading-response burst in nearly every cycle, within the bias the bench measures."""
    con, _, truth = conv
    t = tid("run/run.c3d")
    n_cycles = q(con, "SELECT count(*) FROM gait_cycles WHERE trial_id = ? AND valid", [t])[0][0]
    rows = q(con, "SELECT side, cycle, onset_ms FROM activation_onsets WHERE trial_id = ? AND is_default "
                  "AND muscle = 'tibialis_anterior' AND burst = 0 AND NOT censored", [t])
    errs = np.array([r[2] for r in rows]) - (-40.0)
    assert len(rows) >= 0.9 * n_cycles
    assert -5.0 <= np.median(errs) <= 15.0, np.median(errs)


def test_declared_gain_gives_electrode_millivolts(conv):
    """The same generator with a manifest gain of 1000 (session) and without: emg_mv at the electrode vs
    the amplifier output, each channel saying which; samples equal the file's volts / gain x 1000."""
    con, _, _ = conv
    got = dict(q(con, "SELECT trial_id, list(DISTINCT amplitude_basis) FROM emg_channels WHERE trial_id IN (?, ?) "
                      "GROUP BY 1", [tid("run/run.c3d"), tid("runv/run.c3d")]))
    assert got == {tid("run/run.c3d"): ["electrode_mv"], tid("runv/run.c3d"): ["amplifier_output"]}
    assert q(con, "SELECT DISTINCT gain FROM emg_channels WHERE trial_id = ?", [tid("run/run.c3d")]) == [(1000.0,)]
    from warehouse.analysis.derived import read_channel

    for path, gain in (("run/run.c3d", 1000.0), ("runv/run.c3d", 1.0)):
        ch = q(con, "SELECT channel FROM emg_channels WHERE trial_id = ? AND label = 'Voltage.1'", [tid(path)])[0][0]
        x = read_channel(con, tid(path), ch).astype(float)
        rms = q(con, "SELECT rms_mv, amplitude_basis FROM channel_qc WHERE trial_id = ? AND channel = ?",
                [tid(path), ch])[0]
        assert rms[0] == pytest.approx(float(np.std(x)), rel=1e-6)
        # the generator's carrier: 0.2 mV RMS at the electrode, on ~45 % of the stride
        assert rms[0] == pytest.approx(0.2 * np.sqrt(0.45) * (1000.0 / gain), rel=0.15)


def test_qc_rms_is_the_rms_of_the_stored_samples(conv):
    from warehouse.analysis.derived import read_channel

    con, _, _ = conv
    t = tid("vicon/orig.c3d")
    rows = q(con, "SELECT channel, rms_mv, amplitude_basis FROM channel_qc WHERE trial_id = ? ORDER BY channel", [t])
    assert len(rows) == 14
    for ch, rms, basis in rows:
        x = read_channel(con, t, ch).astype(float)
        assert rms == pytest.approx(float(np.std(x)), rel=1e-6), ch
        assert basis == "amplifier_output"  # Vicon Nexus volts at the ADC: hundreds of mV


def test_cut_file_keeps_the_censored_first_burst(conv):
    """test_small cut 30 ms before a right foot strike, inside the tibialis anterior loading-response burst:
    the censored burst is kept as burst 0 (censored, no onset) and the toe-off burst stays burst 1 with
    the onset it has in the uncut file."""
    con, _, _ = conv
    cut, full = tid("vicon/cut.c3d"), tid("vicon/orig.c3d")
    rows = q(con, "SELECT burst, onset_ms, offset_ms, censored FROM activation_onsets WHERE trial_id = ? AND "
                  "muscle = 'tibialis_anterior' AND side = 'R' AND cycle = 0 AND is_default ORDER BY burst", [cut])
    assert rows[0][0] == 0 and rows[0][3] is True and rows[0][1] is None and rows[0][2] is not None
    ref = q(con, "SELECT burst, onset_ms FROM activation_onsets WHERE trial_id = ? AND muscle = 'tibialis_anterior' "
                 "AND side = 'R' AND cycle = 0 AND is_default ORDER BY burst", [full])
    assert ref[0][1] < -30  # in the full file the loading-response burst starts before the strike
    toe_off = [r for r in rows if r[1] is not None and r[1] > 400]
    assert toe_off and toe_off[0][0] == 1
    assert toe_off[0][1] == pytest.approx([r[1] for r in ref if r[1] > 400][0], abs=10)
    # no complete burst is ever numbered 0 unless it is the first burst of its cycle
    bad = q(con, """SELECT count(*) FROM activation_onsets a WHERE a.burst = 0 AND NOT a.censored AND EXISTS (
                      SELECT 1 FROM activation_onsets b WHERE b.trial_id = a.trial_id AND b.muscle = a.muscle
                      AND b.side = a.side AND b.cycle = a.cycle AND b.method = a.method
                      AND b.onset_ms < a.onset_ms)""")
    assert bad == [(0,)]


def test_treadmill_without_events_uses_kinematic_foot_off_where_the_belt_stays_loaded(conv):
    """The real treadmill walk without its events: cycles from the plates, a late plate foot off (belt
    still loaded) replaced by the kinematic one and flagged; every stance 58-70 %; the mains-only
    'EMG' channels mapped by the manifest are QC-bad and give no false 'bad' plausibility."""
    con, _, _ = conv
    t = tid("tread/noev.c3d")
    cyc = q(con, "SELECT side, stance_pct, event_source, foot_off_source FROM gait_cycles WHERE trial_id = ? "
                 "AND stance_pct IS NOT NULL", [t])
    assert len(cyc) >= 18 and {r[2] for r in cyc} == {"force_plate"}
    assert all(58.0 <= r[1] <= 70.0 for r in cyc), sorted(r[1] for r in cyc)
    assert "kinematic" in {r[3] for r in cyc}
    flags = dict(q(con, "SELECT code, severity FROM plausibility WHERE trial_id = ?", [t]))
    assert flags.get("treadmill_foot_off_disagrees") == "warn"
    assert "bad" not in flags.values(), flags
    assert q(con, "SELECT DISTINCT verdict FROM channel_qc WHERE trial_id = ?", [t]) == [("bad",)]
