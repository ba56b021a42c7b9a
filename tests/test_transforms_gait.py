"""Tests for transforms.gait and transforms.cycles on real fixtures and analytic cases."""

from __future__ import annotations


import ezc3d
import numpy as np
import polars as pl
import pytest

from conftest import FIXTURES

from transforms import cycles, emg, gait, onsets

SMALL = FIXTURES / "gaitalytics" / "test_small.c3d"
TREADMILL = FIXTURES / "gaitalytics" / "treadmill_events.c3d"
SYN_EMG = FIXTURES / "synergies" / "derived" / "ID0012_TW_01_raw_emg.csv"
SYN_CYCLES = FIXTURES / "synergies" / "derived" / "ID0012_TW_01_cycles.csv"


def read_c3d(path):
    """(c3d, t0 in s, annotated events {(context, label): file-relative times})."""
    c = ezc3d.c3d(str(path), extract_forceplat_data=True)
    rate = c["parameters"]["POINT"]["RATE"]["value"][0]
    t0 = c["header"]["points"]["first_frame"] / rate
    ev = c["parameters"]["EVENT"]
    times = np.asarray(ev["TIMES"]["value"])[1]
    events: dict = {}
    for t, label, ctx in zip(times, ev["LABELS"]["value"], ev["CONTEXTS"]["value"]):
        events.setdefault((ctx, label), []).append(t - t0)
    return c, t0, {k: np.sort(v) for k, v in events.items()}


def marker(c, name):
    labels = c["parameters"]["POINT"]["LABELS"]["value"]
    return c["data"]["points"][:3, labels.index(name), :]


@pytest.fixture(scope="module")
def small():
    return read_c3d(SMALL)


@pytest.fixture(scope="module")
def treadmill():
    return read_c3d(TREADMILL)


# ----------------------------------------------------------------------------- force plates
def test_plate_contacts_match_annotated_strikes_on_real_file(small):
    c, t0, events = small
    assert t0 == pytest.approx(2.48)
    annotated = np.concatenate([events[("Left", "Foot Strike")], events[("Right", "Foot Strike")]])
    found = []
    for plate in c["data"]["platform"]:
        strike, off = gait.plate_contacts(plate["force"][2], rate_hz=1000.0)
        assert strike.size == off.size
        found.extend(strike[np.isfinite(strike)])
    found = np.sort(found)
    assert found.size == 3  # three loaded plates, one clean contact each; plate 3 is empty
    for t in found:
        assert np.min(np.abs(annotated - t)) <= 0.010, (t, annotated)
    # annotated strikes 2.89, 3.42 and 3.98 s (absolute) are the ones on plates
    np.testing.assert_allclose(found + t0, [2.89, 3.42, 3.98], atol=0.010)


def test_unloaded_plate_with_negative_offset_has_no_contact_even_after_offset_removal(small):
    c, _, _ = small
    fz = c["data"]["platform"][2]["force"][2]
    assert np.median(fz) < -25.0  # the documented ~-33 N unloaded reading
    for offset in (0.0, float(np.median(fz))):
        strike, off = gait.plate_contacts(fz, rate_hz=1000.0, offset_n=offset)
        assert strike.size == 0 and off.size == 0


def test_plate_sides_from_cop_and_heel_markers(small):
    c, _, events = small
    sides = []
    for plate in c["data"]["platform"]:
        strike, off = gait.plate_contacts(plate["force"][2], rate_hz=1000.0)
        s = gait.assign_sides(
            strike, off, plate["center_of_pressure"], force_rate_hz=1000.0,
            heel_left_mm=marker(c, "LHEE"), heel_right_mm=marker(c, "RHEE"), marker_rate_hz=100.0,
        )  # fmt: skip
        for t, side in zip(strike, s):
            truth = "L" if np.min(np.abs(events[("Left", "Foot Strike")] - t)) < 0.02 else "R"
            assert side == truth
            sides.append(side)
    assert sorted(sides) == ["L", "R", "R"]


def test_treadmill_belts_give_all_strikes_per_side(treadmill):
    c, t0, events = treadmill
    mapping = {0: "L", 1: "R"}  # FP1 = left belt, FP2 = right belt
    assert list(gait.sides_from_mapping([0, 1], mapping=mapping)) == ["L", "R"]
    for idx, side in mapping.items():
        fz = c["data"]["platform"][idx]["force"][2]
        strike, off = gait.treadmill_contacts(fz, rate_hz=1000.0)
        strike = strike[np.isfinite(strike)]
        truth = events[({"L": "Left", "R": "Right"}[side], "Foot Strike")]
        assert truth.size == 11 and strike.size == 11
        # annotations are on the 100 Hz marker grid: agree within 3 frames
        np.testing.assert_allclose(strike, truth, atol=0.030)
        if side == "L":
            # the plain threshold misses left strikes where the belt never unloads
            plain, _ = gait.plate_contacts(fz, rate_hz=1000.0)
            assert np.isfinite(plain).sum() < 11


def test_zeni_events_on_real_overground_trial(small):
    c, _, events = small
    for side, name in (("L", "Left"), ("R", "Right")):
        fs, fo = gait.zeni_events(
            marker(c, side + "HEE")[0], marker(c, side + "TOE")[0], marker(c, "SACR")[0], rate_hz=100.0
        )
        duration = marker(c, "SACR").shape[1] / 100.0
        inner = lambda t: t[(t > 0.05) & (t < duration - 0.05)]  # extrema need both neighbours
        ann_fs = inner(events[(name, "Foot Strike")])
        ann_fo = inner(events[(name, "Foot Off")])
        assert fs.size == ann_fs.size and fo.size == ann_fo.size
        # Zeni strikes precede plate strikes (heel-marker peak before loading): 0-70 ms
        assert np.all((ann_fs - fs >= 0.0) & (ann_fs - fs <= 0.070)), ann_fs - fs
        np.testing.assert_allclose(fo, ann_fo, atol=0.030)


def test_zeni_needs_direction_on_treadmill(treadmill):
    c, _, events = treadmill
    pelvis = (marker(c, "LPSIS") + marker(c, "RPSIS")) / 2
    heel, toe = marker(c, "LHEE")[1], marker(c, "LMT2")[1]
    with pytest.raises(ValueError, match="progression_sign"):
        gait.zeni_events(heel, toe, pelvis[1], rate_hz=100.0)
    fs, fo = gait.zeni_events(heel, toe, pelvis[1], rate_hz=100.0, progression_sign=-1)
    assert fs.size == 11
    np.testing.assert_allclose(fo, events[("Left", "Foot Off")], atol=0.030)


def test_force_thresholding_on_synthetic_profiles():
    rate = 1000.0
    f = np.zeros(3000)
    f[500:1100] = 600.0
    f[1100:1102] = 18.0  # below threshold but above threshold - hysteresis: still loaded
    f[1102:1103] = 12.0  # below 15 N: contact ends here
    f[1500:1505] = 100.0  # 5 ms spike: not a contact
    f[2000:] = 500.0  # loaded until the end: censored foot off
    strike, off = gait.plate_contacts(f, rate_hz=rate)
    np.testing.assert_allclose(strike, [0.5, 2.0])
    np.testing.assert_allclose(off[:1], [1.102])
    assert np.isnan(off[1])
    ic, to = gait.takeoff_landing(f, rate_hz=rate)
    np.testing.assert_allclose(ic, [0.5, 1.5, 2.0])
    np.testing.assert_allclose(to, [1.102, 1.505])
    with pytest.raises(ValueError):
        gait.plate_contacts(np.array([1.0, np.nan]), rate_hz=rate)
    with pytest.raises(ValueError):
        gait.plate_contacts(f, rate_hz=rate, hysteresis_n=30.0)


# ----------------------------------------------------------------------------- cycles
def test_segmentation_and_exclusion_reasons():
    strikes = [0.0, 1.0, 2.0, 5.0, 6.0, 6.1]
    offs = [0.6, 1.6, 1.7, 5.6]
    table = cycles.segment_cycles(strikes, foot_offs_s=offs, bad_intervals_s=[(5.2, 5.3, "electrode lift-off")])
    assert table["cycle"].to_list() == [0, 1, 2, 3, 4]
    assert table["valid"].to_list() == [True, False, False, False, False]
    reasons = table["reason"].to_list()
    assert "2 foot offs" in reasons[1]
    assert "too long" in reasons[2] and "missing foot off" in reasons[2]
    assert "bad QC: electrode lift-off" in reasons[3]
    assert "too short" in reasons[4]
    assert table["stance_pct"][0] == pytest.approx(60.0)


def test_time_normalisation_oracles():
    rate = 100.0
    t = np.arange(0, 10, 1 / rate)
    ramp = 3.0 * t + 1.0
    out = cycles.time_normalise(ramp, rate_hz=rate, start_s=2.0, end_s=3.0)
    assert out.shape == (101,)
    np.testing.assert_allclose(out, 3.0 * np.linspace(2.0, 3.0, 101) + 1.0, atol=1e-12)
    two = np.vstack([ramp, -ramp])
    assert cycles.time_normalise(two, rate_hz=rate, start_s=2.0, end_s=3.0).shape == (2, 101)
    # stance 0-0.7 s is mapped to 0-60 %, swing 0.7-1.0 s to 60-100 %
    warped = cycles.normalise_stance_swing(t, rate_hz=rate, start_s=1.0, foot_off_s=1.7, end_s=2.0)
    assert warped[0] == pytest.approx(1.0) and warped[60] == pytest.approx(1.7) and warped[100] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="outside"):
        cycles.time_normalise(ramp, rate_hz=rate, start_s=9.0, end_s=11.0)


def test_cycle_metrics_on_a_known_envelope():
    rate = 1000.0
    t = np.arange(0, 3, 1 / rate)
    env = np.where((t % 1.0) < 0.6, 2.0, 0.5)  # 2 in stance (0-60 %), 0.5 in swing
    table = cycles.segment_cycles([0.0, 1.0, 2.0], foot_offs_s=[0.6, 1.6])
    m = cycles.cycle_metrics(env, rate_hz=rate, cycles=table, channel_names=["SO"])
    assert m.height == 2
    row = m.row(0, named=True)
    assert row["peak"] == 2.0 and row["peak_pct"] == 0.0
    assert row["iemg"] == pytest.approx(0.6 * 2.0 + 0.4 * 0.5, abs=2e-3)
    assert row["mean_stance"] == pytest.approx(2.0, abs=0.01) and row["mean_swing"] == pytest.approx(0.5, abs=0.01)
    assert row["mean_loading_response"] == pytest.approx(2.0)


def test_onset_latency_rule_and_activation_sequence():
    strikes = np.array([1.0, 2.0, 3.0, 4.0])
    # 0.85 s is 15 % of a cycle before the strike at 1.0: it belongs to cycle 0
    # 1.65 s is 35 % before the strike at 2.0: beyond the pre-strike window (30 %), late in cycle 0
    assert cycles.PRE_STRIKE_WINDOW_PCT < 35.0
    onsets_s = [0.85, 1.3, 1.65, 1.85, 2.9, 3.95]
    offsets_s = [1.1, 1.5, 1.9, 2.2, 3.1, 4.05]
    rel = cycles.onsets_relative_to_cycles(onsets_s, offsets_s, strikes_s=strikes)
    assert rel["cycle"].to_list() == [0, 0, 0, 1, 2, -1]
    np.testing.assert_allclose(rel["onset_ms"].to_list()[:5], [-150.0, 300.0, 650.0, -150.0, -100.0], atol=1e-9)
    np.testing.assert_allclose(rel["onset_pct"].to_list()[:5], [-15.0, 30.0, 65.0, -15.0, -10.0], atol=1e-9)
    assert rel["offset_pct"][3] == pytest.approx(20.0)
    assert rel["onset_ms"][5] is None
    seqs = cycles.activation_sequences(
        {"TA": [0.95, 1.95, 2.95], "SO": [1.2, 2.2, 3.1], "GM": [1.25, 2.1, 3.2]}, strikes_s=strikes
    )
    assert seqs["sequence"].to_list() == [["TA", "SO", "GM"], ["TA", "GM", "SO"], ["TA", "SO", "GM"]]
    cons = cycles.sequence_consistency(seqs["sequence"])
    assert cons["modal_sequence"] == ("TA", "SO", "GM") and cons["modal_fraction"] == pytest.approx(2 / 3)
    # 3 cycle pairs x 3 muscle pairs; cycle 1 flips SO/GM against both others: 7/9 agree
    assert cons["pairwise_agreement"] == pytest.approx(7 / 9)


def test_onsets_relative_arrays_are_the_frames_columns():
    """The numpy form the night's analysis uses: the same rule (the analytic latencies above), the frame's columns
    value for value, NaN where the frame has null (an onset outside every cycle)."""
    strikes = np.array([1.0, 2.0, 3.0, 4.0])
    onsets_s, offsets_s = [0.85, 1.3, 1.65, 1.85, 2.9, 3.95], [1.1, 1.5, 1.9, 2.2, 3.1, 4.05]
    arr = cycles.onsets_relative_arrays(onsets_s, offsets_s, strikes_s=strikes)
    assert arr["cycle"].dtype == np.int64 and arr["cycle"].tolist() == [0, 0, 0, 1, 2, -1]
    np.testing.assert_allclose(arr["onset_ms"][:5], [-150.0, 300.0, 650.0, -150.0, -100.0], atol=1e-9)
    np.testing.assert_allclose(arr["offset_pct"][:5], [10.0, 50.0, 90.0, 20.0, 10.0], atol=1e-9)
    assert np.isnan(arr["onset_ms"][5]) and np.isnan(arr["offset_pct"][5])
    frame = cycles.onsets_relative_to_cycles(onsets_s, offsets_s, strikes_s=strikes)
    assert list(arr) == frame.columns
    for name in frame.columns:
        np.testing.assert_array_equal(frame[name].to_numpy(), arr[name])
    assert set(cycles.onsets_relative_arrays([1.5], strikes_s=strikes)) == {"cycle", "onset_s", "onset_ms",
                                                                           "onset_pct"}
    with pytest.raises(ValueError, match="two strikes"):
        cycles.onsets_relative_arrays([0.5], strikes_s=[1.0])


# ----------------------------------------------------------------------------- real EMG
def test_real_treadmill_emg_follows_normative_patterns():
    data = pl.read_csv(SYN_EMG)
    cyc = pl.read_csv(SYN_CYCLES)
    t = data["time"].to_numpy()
    rate = 1.0 / np.median(np.diff(t))
    assert rate == pytest.approx(1000.0, rel=1e-6)
    names = data.columns[1:]
    env = emg.envelope_fast(data.select(names).to_numpy().T, rate_hz=rate)
    table = cycles.segment_cycles(
        cyc["touchdown_s"].to_numpy() - t[0], foot_offs_s=cyc["liftoff_s"].to_numpy() - t[0]
    )
    assert table["valid"].all() and table.height == 5
    mean = cycles.normalise_cycles(env, rate_hz=rate, cycles=table).mean(axis=0)
    peak_pct = dict(zip(names, np.argmax(mean, axis=1)))
    for plantarflexor in ("SO", "GM", "GL"):
        assert 10 <= peak_pct[plantarflexor] <= 50, peak_pct
    so = mean[names.index("SO")]
    assert so[7:52].mean() > 3 * so[65:95].mean()  # soleus active ~7-51 %, quiet in swing
    ta = mean[names.index("TA")]
    assert peak_pct["TA"] <= 10 or peak_pct["TA"] >= 90
    assert min(ta[0], ta[100]) > 2 * ta[20:50].mean()  # TA active around foot strike
    metrics = cycles.cycle_metrics(env, rate_hz=rate, cycles=table, channel_names=names)
    so_rows = metrics.filter(pl.col("channel") == "SO")
    assert (so_rows["mean_stance"] > so_rows["mean_swing"]).all()


def test_default_onsets_on_real_treadmill_emg_are_one_soleus_burst_per_cycle():
    data = pl.read_csv(SYN_EMG)
    t = data["time"].to_numpy()
    names = data.columns[1:]
    env = emg.envelope_fast(data.select(names).to_numpy().T, rate_hz=1000.0)
    strikes = pl.read_csv(SYN_CYCLES)["touchdown_s"].to_numpy() - t[0]
    bursts = dict(zip(names, onsets.onsets_hodges_bui_2d(env, rate_hz=1000.0)))
    on, off = bursts["SO"]
    rel = cycles.onsets_relative_to_cycles(on / 1000.0, off / 1000.0, strikes_s=strikes).filter(pl.col("cycle") >= 0)
    # normative soleus activity ~7-51 % of the cycle: one burst per cycle, starting early in
    # stance and ending around push-off (offsets are late by the envelope's smoothing)
    assert rel["cycle"].to_list() == list(range(strikes.size - 1))
    assert rel["onset_pct"].is_between(0.0, 20.0).all() and rel["offset_pct"].is_between(45.0, 70.0).all()
    # tibialis anterior: a burst starting in swing in every cycle (foot clearance)
    ta_on, ta_off = bursts["TA"]
    ta = cycles.onsets_relative_to_cycles(ta_on / 1000.0, ta_off / 1000.0, strikes_s=strikes)
    swing = ta.filter(pl.col("onset_pct").is_between(55.0, 80.0))
    assert sorted(set(swing["cycle"].to_list())) == list(range(strikes.size - 1))
