"""Cross-stream plausibility checks (transforms.plausibility): real files and synthetic truths.

Truths come from ../shared/fixtures/README.md (e.g. sample21's true rates), from independent
streams of the same trial (C3D EVENT times, the synergies cycles file, the Delsys header) or
from construction, never from the module's own output.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import ezc3d
import numpy as np
import polars as pl
import pytest
from conftest import fixture

from transforms import plausibility
from transforms.plausibility import (
    FINDING_SEVERITY,
    STRIDE_PERIOD_RANGE_S,
    Finding,
    check_durations,
    check_force_peaks,
    check_sampling_rates,
    check_stride_period,
    contact_intervals,
    findings_table,
    stride_period_from_emg,
    stride_period_from_force,
    worst_severity,
)
from transforms.plausibility_events import check_events
from transforms.plausibility_markers import check_marker_plate_agreement, foot_marker_indices


def codes(findings) -> list[str]:
    return [f.code for f in findings]


# --------------------------------------------------------------------------- real-file loading
@functools.lru_cache(maxsize=None)
def trial(rel: str):
    c = ezc3d.c3d(str(fixture(rel)), extract_forceplat_data=True)
    p = c["parameters"]
    point_rate = float(p["POINT"]["RATE"]["value"][0])
    analog_rate = float(p["ANALOG"]["RATE"]["value"][0])
    labels = list(p["POINT"]["LABELS"]["value"])
    plates = c["data"]["platform"]
    fz = np.array([pl_["force"][2] for pl_ in plates])
    corners = np.array([pl_["corners"] for pl_ in plates])
    feet = foot_marker_indices(labels)
    events = []
    if "EVENT" in p and "TIMES" in p["EVENT"]:
        times = np.asarray(p["EVENT"]["TIMES"]["value"], dtype=float)
        if times.ndim == 2:  # (minutes, seconds) rows
            times = 60.0 * times[0] + times[1]
            events = list(zip(p["EVENT"]["CONTEXTS"]["value"], p["EVENT"]["LABELS"]["value"], times))
    mass = None
    if "PROCESSING" in p and "Bodymass" in p["PROCESSING"]:
        mass = float(p["PROCESSING"]["Bodymass"]["value"][0])
    return {
        "point_rate": point_rate, "analog_rate": analog_rate, "labels": labels,
        "feet": c["data"]["points"][:3][:, feet, :], "foot_labels": [labels[i] for i in feet],
        "fz": fz, "corners": corners, "events": events, "mass": mass,
        "n_frames": c["data"]["points"].shape[2], "n_analog": c["data"]["analogs"].shape[2],
        "analogs": c["data"]["analogs"][0], "analog_labels": list(p["ANALOG"]["LABELS"]["value"]),
    }


def agreement(rel: str, *, point_rate=None, analog_rate=None):
    t = trial(rel)
    return check_marker_plate_agreement(
        t["feet"], t["fz"], point_rate_hz=point_rate or t["point_rate"],
        analog_rate_hz=analog_rate or t["analog_rate"], plate_corners_mm=t["corners"])


# --------------------------------------------------------------------------- sampling rates
def test_sample21_declared_rates_are_caught():
    t = trial("bad/sample21_sample21.c3d")
    assert (t["point_rate"], t["analog_rate"]) == (60.0, 1020.0)  # what the file claims
    found = agreement("bad/sample21_sample21.c3d")
    assert codes(found) == ["marker_plate_mismatch"]
    assert found[0].severity == "bad"
    assert found[0].details["assessable"] >= 2 and found[0].details["matched"] == 0
    assert "rate" in found[0].message


def test_sample21_true_rates_agree():
    # README: the true rates were 200/1000 Hz; with them the right foot is on a loaded plate
    assert agreement("bad/sample21_sample21.c3d", point_rate=200.0, analog_rate=1000.0) == []


def test_sample21_force_period_cannot_see_a_2pct_analog_error():
    # documented limitation: the force "period" at the declared 1020 Hz is a plausible ~1 s;
    # the 3.3x point-rate error is what the marker/plate check catches
    t = trial("bad/sample21_sample21.c3d")
    period = stride_period_from_force(t["fz"], rate_hz=t["analog_rate"])
    assert STRIDE_PERIOD_RANGE_S[0] < period < STRIDE_PERIOD_RANGE_S[1]


@pytest.mark.parametrize("rel", [
    "gaitalytics/test_small.c3d", "gaitalytics/treadmill_events.c3d", "btk/Gait.c3d",
    "btk/PiG_Motion3_FF.c3d", "btk/FunctionalWalk.c3d", "c3dorg/sample10_type-4a.c3d",
    "btk/ADemo1_rewrite_c3d_pc_float.c3d",
])
def test_good_files_have_feet_on_loaded_plates(rel):
    t = trial(rel)
    assert len(t["foot_labels"]) >= 4, t["foot_labels"]
    assert agreement(rel) == []


def test_marker_plate_not_assessable_without_foot_markers():
    t = trial("gaitalytics/test_small.c3d")
    found = check_marker_plate_agreement(
        np.full((3, 2, t["n_frames"]), np.nan), t["fz"], point_rate_hz=t["point_rate"],
        analog_rate_hz=t["analog_rate"], plate_corners_mm=t["corners"])
    assert codes(found) == ["marker_plate_not_assessable"]
    assert worst_severity(found) == "ok"


def test_treadmill_force_stride_matches_annotated_events():
    t = trial("gaitalytics/treadmill_events.c3d")
    period = stride_period_from_force(t["fz"], rate_hz=t["analog_rate"])
    strides = []
    for side in ("Left", "Right"):
        ts = sorted(tt for ctx, lab, tt in t["events"] if ctx == side and lab == "Foot Strike")
        assert len(ts) == 11  # README: 11 strikes per side
        strides.extend(np.diff(ts))
    assert period == pytest.approx(float(np.median(strides)), rel=0.02)
    assert check_sampling_rates(plate_force_z_n=t["fz"], analog_rate_hz=t["analog_rate"]) == []


@pytest.mark.parametrize("declared_hz", [100.0, 4000.0])
def test_treadmill_force_at_a_wrong_rate_is_flagged(declared_hz):
    t = trial("gaitalytics/treadmill_events.c3d")
    found = check_sampling_rates(plate_force_z_n=t["fz"], analog_rate_hz=declared_hz)
    assert codes(found) == ["stride_period_implausible"]
    # the apparent period scales by true / declared (a short first contact may drop out at
    # the higher declared rate, shifting the median slightly)
    true_period = stride_period_from_force(t["fz"], rate_hz=t["analog_rate"])
    assert found[0].details["period_s"] == pytest.approx(true_period * t["analog_rate"] / declared_hz, rel=0.02)


@functools.lru_cache(maxsize=None)
def synergies():
    df = pl.read_csv(fixture("synergies/derived/ID0012_TW_01_raw_emg.csv"))
    cycles = pl.read_csv(fixture("synergies/derived/ID0012_TW_01_cycles.csv"))
    return df.drop("time").to_numpy().T, float(np.median(np.diff(cycles["touchdown_s"].to_numpy())))


def test_emg_envelope_stride_matches_the_cycles_file():
    emg, stride = synergies()
    assert stride == pytest.approx(1.036, abs=0.01)
    assert stride_period_from_emg(emg, rate_hz=1000.0) == pytest.approx(stride, rel=0.03)
    assert check_sampling_rates(emg=emg, emg_rate_hz=1000.0) == []


@pytest.mark.parametrize("declared_hz", [100.0, 4000.0])
def test_emg_declared_at_a_wrong_rate_is_flagged(declared_hz):
    emg, stride = synergies()
    found = check_sampling_rates(emg=emg, emg_rate_hz=declared_hz)
    assert codes(found) == ["stride_period_implausible"]
    assert found[0].details["period_s"] == pytest.approx(stride * 1000.0 / declared_hz, rel=0.05)


def test_test_small_emg_stride_matches_events():
    t = trial("gaitalytics/test_small.c3d")
    names = ["Voltage.RTA", "Voltage.LTA", "Voltage.RGAS", "Voltage.LGAS", "Voltage.RVL", "Voltage.LVL"]
    emg = t["analogs"][[t["analog_labels"].index(n) for n in names]]
    strides = []
    for side in ("Left", "Right"):
        ts = sorted(tt for ctx, lab, tt in t["events"] if ctx == side and lab == "Foot Strike")
        strides.extend(np.diff(ts))
    assert stride_period_from_emg(emg, rate_hz=t["analog_rate"]) == pytest.approx(np.median(strides), rel=0.05)


def _reference_period(x: np.ndarray, rate: float) -> tuple[float, float]:
    """One channel alone, the documented way (scipy's direct calls, one channel at a time): the reference for
    the block computation in ``plausibility._envelope_periods``."""
    from scipy import signal

    x = np.where(np.isfinite(x), x, np.nan)
    if not np.isfinite(x).any() or not np.nanmax(np.abs(x)) > 0.0:
        return np.nan, np.nan
    x = x / np.nanmax(np.abs(x))
    env = np.abs(np.nan_to_num(x - np.nanmean(x)))
    sos = signal.butter(4, min(plausibility.ENVELOPE_LOWPASS_HZ, 0.45 * rate) / (rate / 2.0), btype="low",
                        output="sos")
    if env.size <= 3 * (2 * sos.shape[0] + 1):
        return np.nan, np.nan
    env = signal.sosfiltfilt(sos, env)
    env = env - env.mean()
    n = env.size
    ac = signal.correlate(env, env, mode="full", method="fft")[n - 1:]
    if not ac[0] > 0.0:
        return np.nan, np.nan
    ac = ac / ac[0] * n / (n - np.arange(n))
    lo, hi = max(1, int(plausibility.ENVELOPE_MIN_LAG_S * rate)), n // 2
    if hi <= lo + 2:
        return np.nan, np.nan
    peaks = signal.find_peaks(ac[lo:hi], prominence=plausibility.ENVELOPE_PEAK_PROMINENCE)[0] + lo
    if peaks.size == 0 or not ac[peaks].max() > 0.0:
        return np.nan, np.nan
    first = min(p for p in peaks if ac[p] >= plausibility.ENVELOPE_SUBHARMONIC_FRACTION * ac[peaks].max())
    return first / rate, float(ac[first])


def test_envelope_periods_of_a_block_equal_each_channel_alone():
    """The channels are filtered and autocorrelated as one block: each channel's period and peak equal the
    channel computed alone with scipy's direct calls (real EMG of two files, NaN gaps, an all-NaN, a zero and
    a noise channel, and a record too short for the filter)."""
    emg, _ = synergies()
    t = trial("gaitalytics/test_small.c3d")
    rng = np.random.default_rng(5)
    gappy = emg[:3].copy()
    gappy[0, 1000:1400] = np.nan
    gappy[1, ::97] = np.inf
    blocks = [(emg, 1000.0), (np.vstack([gappy, np.full(emg.shape[1], np.nan), np.zeros(emg.shape[1]),
                                         rng.standard_normal(emg.shape[1])]), 1000.0),
              (t["analogs"][[i for i, lab in enumerate(t["analog_labels"]) if lab.startswith("Voltage")]],
               t["analog_rate"]), (emg[:, :20], 1000.0)]
    found = 0
    for block, rate in blocks:
        got = plausibility._envelope_periods(np.asarray(block, dtype=np.float64), rate)
        want = [_reference_period(np.asarray(row, dtype=np.float64), rate) for row in block]
        np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-12, atol=0)
        found += sum(np.isfinite(p) for p, _ in want)
    assert found >= 10  # periods were found, not only NaNs compared


def test_noise_channels_give_no_period():
    rng = np.random.default_rng(3)
    assert np.isnan(stride_period_from_emg(rng.standard_normal((6, 8000)), rate_hz=1000.0))
    assert codes(check_stride_period(float("nan"), source="emg")) == ["stride_period_unavailable"]


def test_force_and_emg_disagreement():
    emg, _ = synergies()
    t = trial("gaitalytics/treadmill_events.c3d")  # 1.13 s strides vs 1.04 s: within 15 %
    assert codes(check_sampling_rates(plate_force_z_n=t["fz"], analog_rate_hz=t["analog_rate"],
                                      emg=emg, emg_rate_hz=1000.0)) == []
    found = check_sampling_rates(plate_force_z_n=t["fz"], analog_rate_hz=t["analog_rate"],
                                 emg=emg, emg_rate_hz=600.0)
    assert "stride_period_disagreement" in codes(found)


def test_stride_period_bounds():
    lo, hi = STRIDE_PERIOD_RANGE_S
    assert check_stride_period(1.1, source="force") == []
    assert codes(check_stride_period(lo * 0.9, source="force")) == ["stride_period_implausible"]
    assert codes(check_stride_period(hi * 1.1, source="force")) == ["stride_period_implausible"]


def test_contact_intervals_synthetic():
    rate = 1000.0
    fz = np.zeros(5000)
    fz[1000:1600] = 700.0  # 0.6 s stance
    fz[3000:3050] = 700.0  # 50 ms knock: ignored
    fz[4000:4400] = 25.0
    assert contact_intervals(fz, rate_hz=rate) == [(1000, 1600), (4000, 4400)]
    assert contact_intervals(fz, rate_hz=rate, threshold_n=30.0) == [(1000, 1600)]


# --------------------------------------------------------------------------- forces
@pytest.mark.parametrize("rel", ["gaitalytics/test_small.c3d", "gaitalytics/treadmill_events.c3d",
                                 "btk/PiG_Motion3_FF.c3d", "btk/FunctionalWalk.c3d"])
def test_walking_peaks_are_about_one_body_weight(rel):
    t = trial(rel)
    assert t["mass"] is not None
    assert check_force_peaks(t["fz"], mass_kg=t["mass"]) == []


def test_force_peaks_against_wrong_mass():
    t = trial("gaitalytics/test_small.c3d")
    peak = float(np.nanmax(t["fz"]))  # README: 669 N
    assert peak == pytest.approx(669.0, abs=1.0)
    high = check_force_peaks(t["fz"], mass_kg=10.0)  # 669 N / 98 N = 6.8 BW
    assert "force_peak_high" in codes(high)
    assert max(f.details["peak_bw"] for f in high) == pytest.approx(peak / (10.0 * 9.80665))
    low = check_force_peaks(t["fz"], mass_kg=300.0)  # 0.23 BW
    assert set(codes(low)) == {"force_peak_low"}
    # FP3 is unloaded (~-33 N offset): below the loaded threshold and the negative tolerance
    assert all(f.details["plate"] != 2 for f in low)


def test_sample21_plate_reads_pulling_force():
    t = trial("bad/sample21_sample21.c3d")
    found = check_force_peaks(t["fz"], mass_kg=80.0)
    assert codes(found).count("force_negative") == 2
    with pytest.raises(ValueError):
        check_force_peaks(t["fz"], mass_kg=0.0)


# --------------------------------------------------------------------------- events
@pytest.mark.parametrize("rel", ["gaitalytics/test_small.c3d", "gaitalytics/treadmill_events.c3d",
                                 "btk/PiG_Motion3_FF.c3d"])
def test_real_event_sequences_are_valid(rel):
    t = trial(rel)
    assert len(t["events"]) >= 12
    assert check_events(t["events"]) == []


def _walk(n=4, stride=1.1, start=0.5):
    ev = []
    for k in range(n):
        r = start + k * stride
        ev += [("Right", "Foot Strike", r), ("Left", "Foot Off", r + 0.12),
               ("Left", "Foot Strike", r + stride / 2), ("Right", "Foot Off", r + stride / 2 + 0.12)]
    return ev


def test_synthetic_events():
    ev = _walk()
    assert check_events(ev) == []
    assert check_events(pl.DataFrame(ev, schema=["context", "label", "time_s"], orient="row")) == []
    # a left foot strike moved after the next left foot off -> order error
    bad = [e for e in ev if not (e[0] == "Left" and e[1] == "Foot Off" and abs(e[2] - 1.72) < 1e-9)]
    assert "event_order" in codes(check_events(bad))
    # a right strike missing -> two left strikes in a row across sides (and two right offs in a row)
    missing = [e for e in ev if not (e[0] == "Right" and e[1] == "Foot Strike" and abs(e[2] - 1.6) < 1e-9)]
    found = codes(check_events(missing))
    assert "event_sides_not_alternating" in found and "event_order" in found
    # exact duplicates
    assert "event_duplicate" in codes(check_events(ev + [ev[0]]))
    # strides of 6 s at the declared rate
    slow = _walk(stride=6.0)
    assert "stride_period_implausible" in codes(check_events(slow))
    # unrelated events only
    assert codes(check_events([("General", "Start", 0.1)])) == ["events_not_assessable"]


# --------------------------------------------------------------------------- durations
def test_test_small_streams_agree_in_duration():
    t = trial("gaitalytics/test_small.c3d")
    mot = Path(fixture("gaitalytics/test_small.mot")).read_text().splitlines()
    start = next(i for i, line in enumerate(mot) if line.strip().lower() == "endheader")
    times = np.array([float(line.split()[0]) for line in mot[start + 2:] if line.strip()])
    durations = {"markers": t["n_frames"] / t["point_rate"], "analogs": t["n_analog"] / t["analog_rate"],
                 "mot": times[-1] - times[0] + 1.0 / 1000.0}
    assert check_durations(durations) == []


def test_delsys_truncated_export_disagrees_with_its_header():
    text = Path(fixture("delsys/truncated_trigno_sample.csv")).read_text(encoding="latin-1")
    head = re.search(r"EMG 10 Sampling frequency: ([0-9.e+]+) Number of points: (\d+)", text)
    rate, declared = float(head.group(1)), int(head.group(2))
    assert declared == 81141  # README
    rows = [line for line in text.splitlines() if re.match(r"^-?[0-9.]+,", line)]
    stored = sum(1 for line in rows if line.split(",")[1].strip() != "")
    found = check_durations({"emg_declared": declared / rate, "emg_stored": stored / rate})
    assert codes(found) == ["duration_mismatch"]
    assert found[0].details["stream"] == "emg_stored"


def test_durations_tolerance():
    assert check_durations({"emg": 10.0, "markers": 9.85}) == []  # 1.5 % < 2 %
    assert codes(check_durations({"emg": 10.0, "markers": 9.7, "plates": 10.0})) == ["duration_mismatch"]
    assert check_durations({"emg": 0.5, "markers": 0.49}) == []  # absolute floor 20 ms
    with pytest.raises(ValueError):
        check_durations({"emg": -1.0, "markers": 1.0})


# --------------------------------------------------------------------------- plumbing
def test_findings_registry_table_and_purity():
    assert set(FINDING_SEVERITY.values()) <= {"info", "warn", "bad"}
    f = check_durations({"emg": 10.0, "markers": 5.0})
    tab = findings_table(f)
    assert tab.columns == ["code", "severity", "message", "details"]
    assert tab["code"].to_list() == ["duration_mismatch"] and tab["severity"].to_list() == ["bad"]
    assert isinstance(f[0], Finding) and f[0].as_dict()["details"]["duration_s"] == 5.0
    assert worst_severity(f) == "bad" and worst_severity([]) == "ok"
    assert findings_table([]).height == 0
    src = Path(plausibility.__file__).read_text()
    imports = {m for pair in re.findall(r"^(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", src, flags=re.M)
               for m in pair if m}
    assert {m.split(".")[0] for m in imports} <= {"__future__", "json", "math", "re", "collections",
                                                  "dataclasses", "numpy", "polars", "scipy",
                                                  "transforms"}  # its pure siblings (transforms.emg's filters)
    assert "open(" not in src


def test_foot_marker_selection():
    labels = ["LASI", "LHEE", "LTOE", "LANK", "RMT5", "L.Heel", "R.Toe", "RCAL", "LAnkleAngles",
              "RFootProgressAngles", "LKNE", "LANKin"]
    sel = [labels[i] for i in foot_marker_indices(labels)]
    assert sel == ["LHEE", "LTOE", "LANK", "RMT5", "L.Heel", "R.Toe", "RCAL", "LANKin"]


def test_synthetic_marker_plate_time_base():
    # one plate at x,y in [0,500]; a heel marker sits on it exactly during the loaded 1-2 s
    pr, ar = 100.0, 1000.0
    corners = np.array([[[0, 500, 500, 0], [0, 0, 500, 500], [0, 0, 0, 0]]], dtype=float)
    fz = np.zeros((1, 4000))
    fz[0, 1000:2000] = 700.0
    heel = np.zeros((3, 1, 400))
    heel[0, 0, :] = -1000.0  # far away ...
    heel[2, 0, :] = 400.0
    heel[:, 0, 100:200] = [[250.0], [250.0], [60.0]]  # ... except on the plate from 1 to 2 s
    assert check_marker_plate_agreement(heel, fz, point_rate_hz=pr, analog_rate_hz=ar,
                                        plate_corners_mm=corners) == []
    # declaring the points at 3x too low a rate maps the contact to frames 30-60: off the plate
    assert codes(check_marker_plate_agreement(heel, fz, point_rate_hz=pr / 3.0, analog_rate_hz=ar,
                                              plate_corners_mm=corners)) == ["marker_plate_mismatch"]
    with pytest.raises(ValueError):
        check_marker_plate_agreement(heel[0], fz, point_rate_hz=pr, analog_rate_hz=ar, plate_corners_mm=corners)
