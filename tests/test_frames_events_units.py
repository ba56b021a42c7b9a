"""Lab frame, event and marker vocabularies, amplitude basis, ADC rails, edge censoring and the
stride-adapted baseline: pure functions against analytic truths, readers against real files."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import variants as V
from conftest import fixture

from schemas import vocab
from transforms import frames, gait_geometry, onsets, onsets_baseline
from transforms.plausibility import check_sampling_rates
from transforms.qc_trial import ROBUST_PEAK_PERCENTILE, amplitude_basis


# --------------------------------------------------------------------------- frames
@pytest.mark.parametrize("vertical,forward", [((a, s), (b, t)) for a, s, b, t in itertools.product(
    range(3), (1, -1), range(3), (1, -1)) if a != b])
def test_rotation_to_lab_is_proper_and_puts_the_vertical_on_z(vertical, forward):
    r = frames.rotation_to_lab(vertical, forward=forward)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    up = np.zeros(3)
    up[vertical[0]] = vertical[1]
    fwd = np.zeros(3)
    fwd[forward[0]] = forward[1]
    np.testing.assert_allclose(r @ up, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(r @ fwd, [1, 0, 0], atol=1e-12)


def test_rotation_undoes_the_y_up_variant():
    np.testing.assert_allclose(frames.rotation_to_lab(frames.parse_axis("+Y")) @ V.Y_UP, np.eye(3), atol=1e-12)
    assert frames.parse_axis("-z") == (2, -1) and frames.axis_name(1, 1) == "+Y"
    with pytest.raises(ValueError):
        frames.parse_axis("up")


def test_vertical_from_plate_corners():
    floor_xz = np.array([[0, 500, 500, 0], [0, 0, 0, 0], [0, 0, 600, 600]], float)  # a Y-up lab's plate
    assert frames.vertical_from_plates([floor_xz], loaded_force_n=[np.array([10.0, 700.0, -5.0])]) == (1, 1)
    assert frames.vertical_from_plates([floor_xz]) == (1, 0)  # axis known, sign not
    tilted = floor_xz + np.array([[0], [0], [0]]) + np.array([[0, 0, 0, 0], [0, 0, 80, 80], [0, 0, 0, 0]])
    assert frames.vertical_from_plates([tilted]) is None  # not a floor plane
    floor_xy = np.array([[0, 500, 500, 0], [0, 0, 600, 600], [0, 0, 0, 0]], float)
    assert frames.vertical_from_plates([floor_xz, floor_xy]) is None  # plates disagree


def test_vertical_from_markers_named_and_unnamed():
    rng = np.random.default_rng(0)
    n = 200
    t = np.linspace(0, 2, n)
    body = np.zeros((n, 6, 3))  # heels, toes (feet), sacrum, psis: Y-up, walking along +Z
    body[:, :, 2] = (1000 * t)[:, None] + rng.normal(0, 5, (n, 6))
    body[:, :4, 1] = 50 + 30 * np.abs(np.sin(3 * t))[:, None]
    body[:, 4:, 1] = 950
    body[:, :, 0] = [[-100, 100, -100, 100, 0, 0]]
    assert frames.vertical_from_markers(body, foot_idx=[0, 1, 2, 3], pelvis_idx=[4, 5]) == (1, 1)
    assert frames.vertical_from_markers(-body, foot_idx=[0, 1, 2, 3], pelvis_idx=[4, 5]) == (1, -1)
    tall = np.concatenate([body, body + np.array([0, 400, 0]), body + np.array([0, 800, 0])], axis=1)
    assert frames.vertical_from_markers(tall) == (1, 1)  # unnamed: the body's height is its largest spread


def test_progression_from_travel():
    t = np.linspace(0, 1, 50)
    assert frames.progression_from_travel(np.vstack([-2000 * t, 30 * t, 0 * t])) == (0, -1)
    assert frames.progression_from_travel(np.vstack([5 * t, 2000 * t])) == (1, 1)
    assert frames.progression_from_travel(np.vstack([1000 * t, 1000 * t])) is None  # a diagonal walkway
    assert frames.progression_from_travel(np.vstack([100 * t, 0 * t])) is None  # a treadmill


def test_y_up_reader_output_equals_the_original(tmp_path):
    """read_any rotates a Y-up variant back: markers, forces and CoP equal the original's."""
    from warehouse.ingest.readers import read_any

    a = read_any(V.rewrite(fixture("gaitalytics/test_small.c3d"), tmp_path / "a.c3d"))
    b = read_any(V.rotate_to_y_up(fixture("gaitalytics/test_small.c3d"), tmp_path / "b.c3d"))
    assert (a.frame["vertical_axis_file"], b.frame["vertical_axis_file"]) == ("+Z", "+Y")
    np.testing.assert_allclose(b.markers_mm, a.markers_mm, atol=1e-6)
    for pa, pb in zip(a.plates, b.plates):
        np.testing.assert_allclose(pb.force_n, pa.force_n, atol=1e-6)
        np.testing.assert_allclose(pb.free_moment_nmm, pa.free_moment_nmm, atol=1e-4)
        np.testing.assert_allclose(pb.corners_mm, pa.corners_mm, atol=1e-6)
    # the manifest override wins and says so when the data disagree
    c = read_any(tmp_path / "b.c3d", vertical_axis="+Z")
    assert c.frame["source"] == "manifest" and "frame_override_disagrees" in [f[0] for f in c.findings]
    d = read_any(tmp_path / "b.c3d", vertical_axis="+Y")
    assert d.frame["source"] == "manifest" and not [f for f in d.findings if f[0].startswith("frame")]


def test_force_on_the_plate_becomes_the_ground_reaction():
    """MotionMonitor sample24 is a real +Y-up file whose plate stores the force on the plate: it lands Z-up
    with a positive vertical force while loaded."""
    from warehouse.ingest.readers import read_any

    r = read_any(fixture("c3dorg/sample24_MotionMonitorC3D.c3d"))
    assert r.frame["vertical_axis_file"] == "+Y" and r.frame["reaction_flipped_plates"] == [1]
    fz = r.plates[0].force_n[2]
    assert fz.max() > 1000 and fz.min() > -100
    assert np.nanmedian(r.markers_mm[:, :, 2]) > 0  # markers above the floor after the rotation


# --------------------------------------------------------------------------- events and markers
@pytest.mark.parametrize("label,context,expected", [
    ("Foot Strike", "Left", ("L", "foot_strike")), ("Foot Off", "Right", ("R", "foot_off")),
    ("Foot Strike", "General", ("U", "foot_strike")), ("RHS", "General", ("R", "foot_strike")),
    ("LTO", "", ("L", "foot_off")), ("L_FS", None, ("L", "foot_strike")), ("R_FO", "General", ("R", "foot_off")),
    ("LFC", None, ("L", "foot_strike")), ("RIC", None, ("R", "foot_strike")), ("HSL", "", ("L", "foot_strike")),
    ("Left Foot Strike", "General", ("L", "foot_strike")), ("toe off right", None, ("R", "foot_off")),
    ("foot_strike L", None, ("L", "foot_strike")), ("Heel Strike (auto)", "Right", ("R", "foot_strike")),
    ("Event", "General", None), ("start walking", None, None), ("RTA", None, None)])
def test_gait_event_labels(label, context, expected):
    assert vocab.parse_gait_event(label, context) == expected


#: (marker set, labels, expected heel / toe / pelvis picks).
MARKER_SETS = [
    ("Plug-in Gait", ["LASI", "RASI", "LPSI", "RPSI", "LHEE", "LTOE", "RHEE", "RTOE", "LANK", "LAnkleAngles"],
     {"L_heel": "LHEE", "R_toe": "RTOE", "pelvis": ("LPSI", "RPSI")}),
    ("Helen Hayes / Motion Analysis", ["V.Sacral", "L.Heel", "L.Toe", "R.Heel", "R.Toe", "L.Ankle", "R.Met"],
     {"L_heel": "L.Heel", "R_toe": "R.Toe", "pelvis": ("V.Sacral",)}),
    ("CAST / IOR", ["L_IPS", "R_IPS", "L_IAS", "R_IAS", "L_FCC", "L_FM1", "L_FM2", "L_FM5", "R_FCC", "R_FM2"],
     {"L_heel": "L_FCC", "L_toe": "L_FM2", "R_toe": "R_FM2", "pelvis": ("L_IPS", "R_IPS")}),
    ("Qualisys", ["SACR", "L_HEEL", "L_TOE", "R_HEEL", "R_TOE"], {"R_heel": "R_HEEL", "pelvis": ("SACR",)}),
    ("BTS Davis", ["sacrum", "r heel", "r met", "l heel", "l 5meta", "r asis", "l asis"],
     {"R_heel": "r heel", "R_toe": "r met", "L_toe": "l 5meta", "pelvis": ("sacrum",)}),
    ("free-form", ["S03:RHeel", "S03:LeftHeel", "Right_TalonSup", "Right_Meta", "ASISl", "ASISr"],
     {"L_heel": "S03:LeftHeel", "R_toe": "Right_Meta"}),
]


@pytest.mark.parametrize("name,labels,expected", MARKER_SETS, ids=[m[0] for m in MARKER_SETS])
def test_marker_vocabulary_covers_the_common_marker_sets(name, labels, expected):
    found = vocab.find_markers(labels)
    for key, label in expected.items():
        if key == "pelvis":
            roles = [r for r in ("sacrum", "psis", "asis") if any(k[1] == r for k in found)]
            picked = [labels[i] for k, i in found.items() if k[1] == roles[0]]
            assert tuple(sorted(picked)) == tuple(sorted(label)), (name, picked)
        else:
            side, role = key.split("_")
            assert labels[found[(side, role)]] == label, (name, key)
    assert not any(labels[i] == "LAnkleAngles" for i in found.values())


# --------------------------------------------------------------------------- geometry and kinematics
def test_progression_from_feet_walking_and_running():
    n = 300
    ph = np.linspace(0, 6, n) % 1
    for stance, axis, sign in ((0.6, 0, 1), (0.35, 1, -1)):
        ap = np.where(ph < stance, 300 - 600 * ph / stance, -300 + 600 * (ph - stance) / (1 - stance))
        heel = np.zeros((3, n))
        heel[axis] = sign * ap
        toe = heel.copy()
        toe[axis] += sign * 200
        pelvis = np.zeros((3, n))
        pelvis[2] = 950
        assert gait_geometry.progression_from_feet(heel, toe, pelvis) == (axis, sign)


def test_contact_sides_from_geometry():
    # overground along +X: left foot at y = +60, right at y = -60 (left of +X is +Y)
    cop = np.array([[0, 60], [700, -60], [1400, 60], [2100, -60]], float)
    sides = gait_geometry.contact_sides_from_geometry(cop, np.array([1, 2, 3, 4]))
    assert list(sides) == ["L", "R", "L", "R"]
    # walking towards -X mirrors them
    assert list(gait_geometry.contact_sides_from_geometry(cop * [-1, 1], np.array([1, 2, 3, 4]))) == \
        ["R", "L", "R", "L"]
    # treadmill belts at x = +250 (plate 1) and -250 (plate 2), CoP carried towards +Y: walking towards -Y,
    # whose left is +X
    cop_t = np.array([[250, 0], [-250, 0]] * 3, float)
    travel = np.array([[0, 300]] * 6, float)
    got = gait_geometry.contact_sides_from_geometry(cop_t, np.array([1, 2] * 3), stance_travel_xy_mm=travel,
                                                    treadmill=True)
    assert list(got) == ["L", "R"] * 3
    assert list(gait_geometry.contact_sides_from_geometry(cop[:1], np.array([1]))) == [""]  # one contact: unknown


# --------------------------------------------------------------------------- baseline and edges
def test_stride_adapted_baseline_window():
    f, lo = onsets_baseline.BASELINE_STRIDE_FRACTION, onsets_baseline.BASELINE_MIN_WINDOW_MS
    assert onsets_baseline.stride_baseline_window_ms(0.7) == pytest.approx(f * 700)
    assert onsets_baseline.stride_baseline_window_ms(0.2) == lo
    assert onsets_baseline.stride_baseline_window_ms(3.0) == onsets.DEFAULT_BASELINE_WINDOW_MS
    assert onsets_baseline.stride_baseline_window_ms(None) == onsets.DEFAULT_BASELINE_WINDOW_MS
    with pytest.raises(ValueError):
        onsets_baseline.stride_baseline_window_ms(-1.0)


def test_adapted_baseline_finds_bursts_a_fixed_window_loses_on_short_strides():
    """0.7 s strides, TA silent 46 % of the stride, 20 dB: the 500 ms quietest window straddles a burst and
    the inflated threshold loses loading-response bursts; the stride-adapted window keeps them."""
    rng = np.random.default_rng(11)
    fs, stride, n = 2000.0, 0.7, 28000
    t = np.arange(n) / fs
    gate = np.zeros(n)
    truth = []
    for s in np.arange(0.5, 13.5, stride):
        for a, b in ((s - 0.04, s + 0.12 * stride), (s + 0.58 * stride, s + 0.85 * stride)):
            gate[(t >= a) & (t < b)] = 1.0
        truth.append(s - 0.04)
    x = rng.standard_normal(n) * gate + rng.standard_normal(n) * 0.1
    found = {}
    for name, win in (("fixed", onsets.DEFAULT_BASELINE_WINDOW_MS),
                      ("adapted", onsets_baseline.stride_baseline_window_ms(stride))):
        on, _ = onsets.onsets_tkeo(x, rate_hz=fs, baseline_window_ms=win)
        found[name] = sum(np.min(np.abs(on / fs - tr)) < 0.02 for tr in truth) / len(truth)
    assert found["adapted"] >= 0.95 and found["fixed"] <= 0.8, found


def test_censored_bursts_at_the_edges():
    start, end = onsets_baseline.censored_bursts([0, 30, 200, 900], [100, 150, 300, 1000], n_samples=1000,
                                                 rate_hz=1000.0)
    assert list(start) == [True, True, False, False] and list(end) == [False, False, False, True]


# --------------------------------------------------------------------------- units and ADC range
def test_amplitude_basis_rules():
    rng = np.random.default_rng(0)
    at_electrode_v = rng.normal(0, 0.3e-3, 20000)  # Noraxon-like: 0.3 mV RMS stored in volts
    amp_output_v = at_electrode_v * 1000.0
    assert amplitude_basis(at_electrode_v, unit="V") == "electrode_mv"
    assert amplitude_basis(amp_output_v, unit="V") == "amplifier_output"
    assert amplitude_basis(amp_output_v, unit="V", gain=1000.0) == "electrode_mv"
    assert amplitude_basis(amp_output_v * 1000, unit="mV") == "electrode_mv"  # mV/uV exports are electrode level
    assert amplitude_basis(at_electrode_v, unit="V", declared="amplifier_output") == "amplifier_output"
    assert amplitude_basis(at_electrode_v, unit="counts") == "unknown"
    # a few artefact samples do not decide it: the robust peak ignores the top (100 - percentile) %
    spiky = at_electrode_v.copy()
    spiky[: int(len(spiky) * (100 - ROBUST_PEAK_PERCENTILE) / 100 / 2)] = 0.5
    assert amplitude_basis(spiky, unit="V") == "electrode_mv"


def test_c3d_adc_rails_and_gait_clipping_reported():
    """Gait.c3d: 12-bit signed ADC (ANALOG:BITS), per-channel SCALE: the rectus channels sit on the rails."""
    import ezc3d

    from warehouse.ingest import tables
    from warehouse.ingest.harmonise import harmonise
    from warehouse.ingest.readers import read_any

    c = ezc3d.c3d(str(fixture("btk/Gait.c3d")))
    a = c["parameters"]["ANALOG"]
    scale = dict(zip(a["LABELS"]["value"], np.ravel(a["SCALE"]["value"])))
    rec = read_any(fixture("btk/Gait.c3d"))
    rails = {ch.label: ch.adc_range for ch in rec.analogs}
    assert rails["LREC"] == pytest.approx((-2048 * scale["LREC"], 2047 * scale["LREC"]))
    chans, _ = harmonise(rec, {})
    qc = {r["label"]: r for r in tables.qc_table("t", chans, 50.0).to_pylist()}
    analog = c["data"]["analogs"][0]
    at_rail = {}  # independent: the stored counts at -2048 / +2047
    for i, lab in enumerate(a["LABELS"]["value"]):
        counts = np.rint(analog[i] / scale[lab])
        at_rail[lab] = float(np.mean((counts <= -2048) | (counts >= 2047)))
    for lab in ("LREC", "RREC"):
        assert "clipping" in qc[lab]["flags"] and at_rail[lab] > 0
    for lab, r in qc.items():
        assert r["clipping_frac"] == pytest.approx(at_rail[lab], abs=1e-9), lab
        assert ("clipping" in r["flags"].split(",") or "clipping_severe" in r["flags"]) == (at_rail[lab] > 0), lab


def test_anc_adc_rails():
    from warehouse.ingest.readers.motion_analysis import read_anc

    rec = read_anc(fixture("btk/motion_analysis_raw/Gait.anc"))
    for ch in rec.analogs:
        rng_mv = float(ch.description.split()[0].lstrip("+-"))
        lo, hi = ch.adc_range
        assert hi == pytest.approx(2047 * 2 * rng_mv / 1000 / 4095) and lo == pytest.approx(-2048 * 2 * rng_mv / 1000 / 4095)


def test_qc_rms_uses_the_stored_millivolts_once():
    """A channel in volts: channel_qc.rms_mv is the RMS of emg_mv (not 1000x it), in both bases."""
    from warehouse.ingest import tables

    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.1, 5000)  # 100 mV RMS amplifier output
    chans = [{"label": "x", "muscle": "soleus", "side": "L", "source_unit": "V", "rate_hz": 1000.0,
              "data_mv": x * 1000.0, "amplitude_basis": "amplifier_output", "adc_range_mv": None},
             {"label": "y", "muscle": "soleus", "side": "R", "source_unit": "V", "rate_hz": 1000.0,
              "data_mv": x, "amplitude_basis": "electrode_mv", "adc_range_mv": None}]
    rows = tables.qc_table("t", chans, 50.0).to_pylist()
    assert rows[0]["rms_mv"] == pytest.approx(np.std((x * 1000).astype(np.float32)), rel=1e-6)
    assert rows[1]["rms_mv"] == pytest.approx(np.std(x.astype(np.float32)), rel=1e-6)
    assert [r["amplitude_basis"] for r in rows] == ["amplifier_output", "electrode_mv"]


def test_stride_period_ignores_channels_that_failed_qc():
    """A mains-only first channel gives a false 'rate probably wrong'; plausibility uses QC-passed channels."""
    from warehouse.ingest import tables
    from warehouse.ingest.readers.base import Recording

    fs, n = 1000.0, 12000
    t = np.arange(n) / fs
    rng = np.random.default_rng(2)
    hum = np.sin(2 * np.pi * 50 * t) * (1 + 0.8 * np.sin(2 * np.pi * t / 0.25)) + 0.01 * rng.standard_normal(n)
    gait = rng.standard_normal(n) * (np.sin(2 * np.pi * t / 1.1) > 0.3) + 0.05 * rng.standard_normal(n)
    assert any(f.code == "stride_period_implausible" for f in check_sampling_rates(emg=hum, emg_rate_hz=fs))
    chans = [{"label": lab, "rate_hz": fs, "data_mv": x} for lab, x in (("hum", hum), ("ta", gait), ("ta2", gait))]
    codes = lambda v: set(tables.plausibility_table("t", Recording(format="c3d"), chans, None, v).to_pydict()  # noqa: E731
                          .get("code", []))
    assert "stride_period_implausible" not in codes(["bad", "ok", "ok"])


# --------------------------------------------------------------------------- manifest keys
def test_manifest_gain_basis_and_vertical_axis():
    from warehouse.ingest.manifest import ManifestError, parse_manifest

    text = """
site: s
vertical_axis: +Y
gain: 500
subjects: [{id: A}]
sessions:
  - {id: A1, subject: A, files: ["a/*.c3d"], gain: 1000, vertical_axis: "+Z"}
  - {id: A2, subject: A, files: ["b/*.c3d"], amplitude_basis: electrode_mv}
channels:
  "EMG1": {muscle: soleus, side: L, gain: 2000}
  "Voltage.RTA": {gain: 750}
"""
    m = parse_manifest(text, site="s")
    a1, a2 = m.sessions
    assert m.vertical_axis_for(a1) == "+Z" and m.vertical_axis_for(a2) == "+Y"
    ctx = m.emg_context(a1)
    assert ctx["gain"] == 1000 and ctx["channels"]["EMG1"]["gain"] == 2000 and ctx["channels"]["Voltage.RTA"]["gain"] == 750
    assert m.emg_context(a2)["gain"] == 500 and m.emg_context(a2)["amplitude_basis"] == "electrode_mv"
    for bad in ("gain: -3", "gain: yes", "amplitude_basis: volts", "vertical_axis: up"):
        with pytest.raises(ManifestError, match="manifest_schema|must"):
            parse_manifest(text.replace("gain: 500", bad), site="s")


def test_harmonise_divides_by_the_gain_and_keeps_alias_mapping():
    from warehouse.ingest.harmonise import harmonise
    from warehouse.ingest.readers.base import AnalogChannel, Recording

    x = np.random.default_rng(3).normal(0, 0.2, 3000)
    rec = Recording(format="c3d", analogs=[AnalogChannel("Voltage.RTA", "V", 1000.0, x, adc_range=(-1.25, 1.25)),
                                           AnalogChannel("Voltage.LTA", "V", 1000.0, x)])
    ctx = {"gain": None, "amplitude_basis": None, "channels": {"Voltage.RTA": {"gain": 1000.0}}}
    chans, issues = harmonise(rec, {"Voltage.RTA": {"gain": 1000.0}}, emg_context=ctx)
    assert not issues and [c["muscle"] for c in chans] == ["tibialis_anterior", "tibialis_anterior"]
    rta, lta = chans
    np.testing.assert_allclose(rta["data_mv"], x * 1000.0 / 1000.0)
    assert rta["adc_range_mv"] == pytest.approx((-1.25, 1.25)) and rta["amplitude_basis"] == "electrode_mv"
    np.testing.assert_allclose(lta["data_mv"], x * 1000.0)
    assert lta["gain"] is None and lta["amplitude_basis"] == "amplifier_output"
