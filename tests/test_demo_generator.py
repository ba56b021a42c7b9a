"""Synthetic consortium generator (warehouse.demo): formats, determinism and ground truth."""
from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import re
from pathlib import Path

import ezc3d
import numpy as np
import pytest
import yaml

from warehouse.demo import consortium as demo
from warehouse.demo import signals as sig

SEED = 7
N_SUBJ = 3
DUR = 8.0


@pytest.fixture(scope="module")
def inbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("inbox_a")
    lines = []
    gt = demo.generate_consortium(root, seed=SEED, subjects_per_site=N_SUBJ, duration_s=DUR, progress=lines.append)
    return root, gt, lines


def _sessions(gt, site):
    for sid, sub in gt["sites"][site]["subjects"].items():
        for cond, sess in sub["sessions"].items():
            yield sid, sub, cond, sess


def _digest(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_return_value(inbox):
    root, gt, lines = inbox
    assert json.loads((root / "ground_truth.json").read_text()) == gt
    assert lines and all(isinstance(x, str) for x in lines)
    assert gt["seed"] == SEED
    assert set(gt["sites"]) == {"lyon", "boston", "oslo"}
    for site, prefix, ext in (("lyon", "LYO", "c3d"), ("boston", "BOS", "c3d"), ("oslo", "OSL", "csv")):
        subs = gt["sites"][site]["subjects"]
        assert list(subs) == [f"{prefix}{i + 1:02d}" for i in range(N_SUBJ)]
        for sid, sub, cond, sess in _sessions(gt, site):
            assert sess["file"] == f"{site}/{sid}/{cond}/{sid}_{cond}_walk01.{ext}"
            assert (root / sess["file"]).is_file()
            assert 55.0 <= sub["mass_kg"] <= 95.0
        # one asymmetric, one delayed and (here) one control subject per site
        assert sorted(s["group"] for s in subs.values()) == ["asymmetric_output", "control", "delayed_onset"]
    summ = gt["summary"]
    assert summ["ta_onset_ms"] == {"fresh": -50.0, "fatigued": -30.0}
    assert summ["fatigue_shift_ms"] == 20.0 and summ["mdf_scale_fatigued"] == 0.85
    assert summ["asymmetric_output"]["ratio_r_over_l"] == 1.6 and len(summ["asymmetric_output"]["subjects"]) == 3
    assert summ["delayed_onset"]["delay_ms"] == 80.0 and len(summ["delayed_onset"]["subjects"]) == 3


def test_deterministic_byte_identical(inbox, tmp_path):
    root, _, _ = inbox
    demo.generate_consortium(tmp_path / "b", seed=SEED, subjects_per_site=N_SUBJ, duration_s=DUR)
    a, b = _digest(root), _digest(tmp_path / "b")
    assert a == b
    assert len(a) == 3 * (N_SUBJ * 2 + 1) + N_SUBJ * 2 + 1  # trials + manifests, oslo events, ground truth


def test_different_seed_differs(tmp_path):
    demo.generate_consortium(tmp_path / "x", seed=1, subjects_per_site=1, duration_s=5.0)
    demo.generate_consortium(tmp_path / "y", seed=2, subjects_per_site=1, duration_s=5.0)
    assert _digest(tmp_path / "x") != _digest(tmp_path / "y")


def test_manifests(inbox):
    root, gt, _ = inbox
    for site, tz, mains in (("lyon", "Europe/Paris", 50), ("boston", "America/New_York", 60),
                            ("oslo", "Europe/Oslo", 50)):
        doc = yaml.safe_load((root / site / "manifest.yaml").read_text())
        assert doc["site"] == site and doc["timezone"] == tz and doc["mains_hz"] == mains
        assert "pooled_analysis" in doc["consent"]
        assert (doc.get("embargo_until") is not None) == (site == "boston")
        assert {s["id"] for s in doc["subjects"]} == set(gt["sites"][site]["subjects"])
        for s in doc["subjects"]:
            assert set(s) == {"id", "sex", "mass_kg", "height_m"}
            assert s["mass_kg"] == gt["sites"][site]["subjects"][s["id"]]["mass_kg"]
        files = [p.relative_to(root / site).as_posix() for p in (root / site).rglob("*") if p.is_file()]
        assert len(doc["sessions"]) == 2 * N_SUBJ
        for sess in doc["sessions"]:
            assert set(sess) == {"id", "subject", "date", "condition", "task", "terrain", "files"}
            assert sess["task"] == "walk" and sess["terrain"] == "treadmill"
            assert sess["condition"] in ("fresh", "fatigued")
            matches = [f for f in files for g in sess["files"] if fnmatch.fnmatchcase(f, g)]
            assert len(matches) == 1, (sess["id"], matches)
            assert f"{site}/{matches[0]}" == gt["sites"][site]["subjects"][sess["subject"]]["sessions"][
                sess["condition"]]["file"]
        if site == "oslo":
            assert len(doc["channels"]) == 16
            assert doc["channels"]["Mini sensor 1: EMG 1"] == {"muscle": "tibialis_anterior", "side": "R"}
            assert {(v["muscle"], v["side"]) for v in doc["channels"].values()} == set(sig.CHANNELS)
        else:
            assert doc["channels"] == {}


def _check_plates(c, sess, bw):
    rate = c["header"]["analogs"]["frame_rate"]
    plates = c["data"]["platform"]
    assert len(plates) == 2
    for pf, side in zip(plates, ("L", "R")):        # FP1 = left belt, FP2 = right belt
        fz = pf["force"][2]
        assert 1.0 * bw < fz.max() < 1.3 * bw
        up = np.flatnonzero((fz[1:] >= 20.0) & (fz[:-1] < 20.0)) + 1
        t_up = up / rate
        strikes = [t for t in sess["events"][side]["foot_strike_s"] if 0.01 < t < DUR - 0.05]
        assert len(strikes) >= 5
        for t in strikes:
            assert np.min(np.abs(t_up - t)) <= 0.005, (side, t)
            assert np.min(t_up[t_up >= t - 1e-9] - t) <= 0.005
        inner = [t for t in sess["events"][side]["foot_strike_s"] if 0.02 < t < DUR - 0.02]
        assert np.sum((t_up > 0.025) & (t_up < DUR - 0.015)) == len(inner)  # no spurious contacts
        # ~0 in swing: 60 ms after each foot off
        for t in sess["events"][side]["foot_off_s"]:
            i = int((t + 0.06) * rate)
            if i < fz.size:
                assert abs(fz[i]) < 10.0
        # centre of pressure on the proper belt
        st = fz > 100
        cop = pf["center_of_pressure"][:, st]
        assert np.all((cop[0] < 0) if side == "L" else (cop[0] > 0))
        assert np.all(np.abs(cop[1]) < 850)


def test_lyon_vicon_c3d(inbox):
    root, gt, _ = inbox
    emg_labels = ["Voltage.RTA", "Voltage.LTA", "Voltage.RGAS", "Voltage.LGAS", "Voltage.RSOL", "Voltage.LSOL",
                  "Voltage.RVL", "Voltage.LVL", "Voltage.RBF", "Voltage.LBF", "Voltage.RRF", "Voltage.LRF",
                  "Voltage.RGMED", "Voltage.LGMED", "Voltage.RST", "Voltage.LST"]
    for sid, sub, cond, sess in _sessions(gt, "lyon"):
        path = root / sess["file"]
        raw = path.read_bytes()
        assert raw[1] == 0x50 and raw[512 * (raw[0] - 1) + 3] == 84        # Intel
        c = ezc3d.c3d(str(path), extract_forceplat_data=True)
        P = c["parameters"]
        assert P["POINT"]["SCALE"]["value"][0] < 0                           # REAL storage
        assert c["header"]["points"]["frame_rate"] == 100 and c["header"]["analogs"]["frame_rate"] == 2000
        ff = c["header"]["points"]["first_frame"]
        assert ff > 0 and ff == sess["first_frame_ezc3d"] and sess["first_frame"] == ff + 1
        labels = P["ANALOG"]["LABELS"]["value"]
        assert labels[12:] == emg_labels
        assert labels[:12] == [f"{a}{p}" for p in (1, 2) for a in
                               ("Force.Fx", "Force.Fy", "Force.Fz", "Moment.Mx", "Moment.My", "Moment.Mz")]
        assert P["ANALOG"]["UNITS"]["value"][12:] == ["V"] * 16
        assert P["ANALOG"]["DESCRIPTIONS"]["value"][12] == "Analog EMG::Voltage [3,1]"
        assert P["MANUFACTURER"]["COMPANY"]["value"] == ["Vicon"]
        assert P["MANUFACTURER"]["SOFTWARE"]["value"] == ["Vicon Nexus"]
        assert P["POINT"]["LABELS"]["value"] == list(sig.MARKERS) and P["POINT"]["UNITS"]["value"] == ["mm"]
        assert list(P["FORCE_PLATFORM"]["TYPE"]["value"]) == [2, 2]
        # EVENT: absolute times (row 1), first_frame offset
        ev = P["EVENT"]
        times = np.asarray(ev["TIMES"]["value"])
        assert times.shape == (2, ev["USED"]["value"][0]) and np.all(times[0] == 0)
        assert set(ev["LABELS"]["value"]) == {"Foot Strike", "Foot Off"}
        for side, ctx in (("L", "Left"), ("R", "Right")):
            for lab, key in (("Foot Strike", "foot_strike_s"), ("Foot Off", "foot_off_s")):
                sel = [i for i, (l, cx) in enumerate(zip(ev["LABELS"]["value"], ev["CONTEXTS"]["value"]))
                       if l == lab and cx == ctx]
                rel = np.sort(times[1, sel] - ff / 100.0)
                truth = np.array(sess["events"][side][key])
                assert rel.size == truth.size
                assert np.all(np.abs(rel - truth) <= 0.01 + 1e-6)
        _check_plates(c, sess, sub["mass_kg"] * sig.G)
        # EMG: on the ADC grid and equal to what was synthesised
        emg = c["data"]["analogs"][0, 12:]
        lsb = sess["emg_lsb"]
        k = emg / lsb
        assert np.max(np.abs(k - np.rint(k))) < 0.01
        tr = demo.trial_signals(seed=SEED, site="lyon", subject=sid, condition=cond, subjects_per_site=N_SUBJ,
                                duration_s=DUR)
        assert emg.shape == tr["emg_codes"].shape == (16, int(DUR * 2000))
        assert np.array_equal(np.rint(k).astype(int), tr["emg_codes"])


def test_boston_cortex_int_c3d(inbox):
    root, gt, _ = inbox
    emg_labels = ["R Tib Ant", "L Tib Ant", "R Gastroc", "L Gastroc", "R Soleus", "L Soleus", "R Vast Lat",
                  "L Vast Lat", "R Bic Fem", "L Bic Fem", "R Rect Fem", "L Rect Fem", "R Glut Med", "L Glut Med",
                  "R Semitend", "L Semitend"]
    for sid, sub, cond, sess in _sessions(gt, "boston"):
        path = root / sess["file"]
        raw = path.read_bytes()
        assert raw[512 * (raw[0] - 1) + 3] == 84
        c = ezc3d.c3d(str(path), extract_forceplat_data=True)
        P = c["parameters"]
        assert P["POINT"]["SCALE"]["value"][0] > 0                           # INTEGER storage
        assert c["header"]["points"]["frame_rate"] == 120 and c["header"]["analogs"]["frame_rate"] == 1200
        assert c["header"]["points"]["first_frame"] == 0
        assert "EVENT" not in P
        assert P["ANALOG"]["LABELS"]["value"][12:] == emg_labels
        assert P["ANALOG"]["UNITS"]["value"][12:] == ["mV"] * 16
        assert P["MANUFACTURER"]["COMPANY"]["value"] == ["Motion Analysis Corporation"]
        assert P["MANUFACTURER"]["SOFTWARE"]["value"] == ["Cortex"]
        _check_plates(c, sess, sub["mass_kg"] * sig.G)
        # value = (count - offset) * scale * gen_scale
        scale = np.asarray(P["ANALOG"]["SCALE"]["value"])
        gen = P["ANALOG"]["GEN_SCALE"]["value"][0]
        emg = c["data"]["analogs"][0, 12:]
        counts = emg / (scale[12:, None] * gen) + np.asarray(P["ANALOG"]["OFFSET"]["value"])[12:, None]
        assert np.max(np.abs(counts - np.rint(counts))) < 1e-6
        tr = demo.trial_signals(seed=SEED, site="boston", subject=sid, condition=cond, subjects_per_site=N_SUBJ,
                                duration_s=DUR)
        assert np.array_equal(np.rint(counts).astype(int), tr["emg_codes"])
        np.testing.assert_allclose(emg, tr["emg_codes"] * tr["emg_lsb_v"] * 1000.0, rtol=1e-6, atol=1e-9)
        # markers within quantisation (0.05 mm) of the synthesised trajectories
        pts = c["data"]["points"][:3]
        assert np.max(np.abs(pts - tr["markers"])) <= 0.05


def test_oslo_delsys_csv(inbox):
    root, gt, _ = inbox
    header_re = re.compile(r"^Label: Mini sensor (\d+): (EMG|ACC\.[XYZ]) \1 Sampling frequency: (\S+) "
                           r"Number of points: (\d+) start: 0\.000000e\+000 Unit: (V|g) Domain Unit: s$")
    for sid, sub, cond, sess in _sessions(gt, "oslo"):
        path = root / sess["file"]
        lines = path.read_text(encoding="utf-8").split("\n")
        n_lab = 16 * 4
        heads = [header_re.match(x) for x in lines[:n_lab]]
        assert all(heads)
        assert lines[0] == ("Label: Mini sensor 1: EMG 1 Sampling frequency: 1.259259e+003 Number of points: "
                            f"{int(round(DUR * 34000 / 27))} start: 0.000000e+000 Unit: V Domain Unit: s")
        assert heads[1].group(3) == "1.481481e+002"
        assert lines[n_lab:n_lab + 3] == ["Start Trigger Method: None", "Stop Trigger Method: None", ""]
        cols = next(csv.reader([lines[n_lab + 3]]))
        assert cols[:4] == ["X[s]", "Mini sensor 1: EMG 1", "X[s]", "Mini sensor 1: ACC.X 1"]
        assert len(cols) == 16 * 8 and cols[::2] == ["X[s]"] * 64
        rows = list(csv.reader(lines[n_lab + 4:-1]))
        n_emg = int(round(DUR * 34000 / 27))
        assert len(rows) == n_emg == sess["n_samples"]["emg"]
        n_acc = sum(1 for r in rows if r[3] != "")
        assert n_acc == sess["n_samples"]["acc"] == int(heads[1].group(4))
        assert all(r[2] == "" for r in rows[n_acc:])
        emg = np.array([[float(r[8 * i + 1]) for i in range(16)] for r in rows]).T
        t = np.array([float(r[0]) for r in rows])
        np.testing.assert_allclose(t, np.arange(n_emg) * 27 / 34000, atol=1e-6)
        k = emg / sess["emg_lsb"]
        assert np.max(np.abs(k - np.rint(k))) < 0.01                        # 16-bit Trigno grid
        # events sidecar
        ev = (root / sess["events_file"]).read_text().splitlines()
        assert ev[0] == "onset\tduration\ttrial_type\tside"
        recs = [x.split("\t") for x in ev[1:]]
        assert {r[2] for r in recs} == {"foot_strike", "foot_off"} and {r[3] for r in recs} == {"L", "R"}
        for side in ("L", "R"):
            on = [float(r[0]) for r in recs if r[2] == "foot_strike" and r[3] == side]
            np.testing.assert_allclose(on, sess["events"][side]["foot_strike_s"], atol=1e-4)
        onsets = [float(r[0]) for r in recs]
        assert onsets == sorted(onsets)


def test_burst_truth_matches_noise_free_envelope(inbox):
    _, gt, _ = inbox
    for site, sid in (("lyon", "LYO01"), ("oslo", "OSL02")):
        for cond in ("fresh", "fatigued"):
            tr = demo.trial_signals(seed=SEED, site=site, subject=sid, condition=cond, subjects_per_site=N_SUBJ,
                                    duration_s=DUR)
            env, fs = tr["envelopes"], tr["emg_hz"]
            truth = gt["sites"][site]["subjects"][sid]["sessions"][cond]["emg"]
            n_checked = 0
            for ch, (mid, side) in enumerate(sig.CHANNELS):
                for burst in truth[mid][side]["bursts"]:
                    for fstrike, on_ms, off_ms in zip(burst["foot_strike_s"], burst["onset_ms"], burst["offset_ms"]):
                        on = fstrike + on_ms / 1000.0
                        off = fstrike + off_ms / 1000.0
                        # truth is rounded to 1 us: allow 2 us around the onset
                        i_pre = int(np.floor((on - 2e-6) * fs))   # last sample before the onset
                        i_post = int(np.ceil((on + 2e-6) * fs))   # first sample after it
                        pre = env[ch, max(i_pre - int(0.03 * fs), 0): i_pre + 1]
                        assert np.all(pre == 0.0), (site, mid, side, burst["burst"], on)
                        # strictly positive right after the onset, full body after the 10 ms ramp
                        body = env[ch, i_post: int(np.floor((off - 2e-6) * fs))]
                        assert body.size and np.all(body > 0.0)
                        assert env[ch, int(np.ceil((on + 0.0101) * fs))] > 0.5 * body.max()
                        n_checked += 1
            assert n_checked > 100
    # the definition itself
    t = np.arange(100001) / 100000.0
    e = sig.burst_envelope(t, 0.3, 0.6)
    inside = (t > 0.3 + 1e-9) & (t < 0.6 - 1e-9)
    assert np.all(e[t <= 0.3] == 0) and np.all(e[inside] > 0) and np.all(e[t >= 0.6] == 0)
    assert e[np.searchsorted(t, 0.31)] == pytest.approx(0.55 + 0.45 * np.sin(np.pi / 30), rel=1e-3)


def test_injected_effects_in_truth_and_data(inbox):
    root, gt, _ = inbox
    summ = gt["summary"]
    for site in ("lyon", "boston", "oslo"):
        for sid, sub in gt["sites"][site]["subjects"].items():
            fr, fa = sub["sessions"]["fresh"]["emg"], sub["sessions"]["fatigued"]["emg"]
            for side in ("L", "R"):
                on_fr = fr["tibialis_anterior"][side]["bursts"][0]["onset_ms_injected"]
                on_fa = fa["tibialis_anterior"][side]["bursts"][0]["onset_ms_injected"]
                assert -55.0 <= on_fr <= -45.0 and on_fa - on_fr == pytest.approx(20.0, abs=1e-6)
                assert fr["tibialis_anterior"][side]["spectral_compression"] == 1.0
                assert fa["tibialis_anterior"][side]["spectral_compression"] == 0.85
                assert fa["soleus"][side]["burst_mdf_hz"] < 0.9 * fr["soleus"][side]["burst_mdf_hz"]
                gmed = fr["gluteus_medius"][side]["bursts"][0]["onset_ms_injected"]
                if sub["group"] == "delayed_onset":
                    assert sid in summ["delayed_onset"]["subjects"] and 70.0 <= gmed <= 90.0
                else:
                    assert -10.0 <= gmed <= 10.0
            ratio = fr["gastrocnemius_medialis"]["R"]["amplitude_factor"] / fr["gastrocnemius_medialis"]["L"][
                "amplitude_factor"]
            if sub["group"] == "asymmetric_output":
                assert sid in summ["asymmetric_output"]["subjects"] and ratio == pytest.approx(1.6)
            else:
                assert abs(ratio - 1.0) <= 0.05
    # data check on Boston: right/left gastrocnemius burst RMS follows the injected ratio
    for sid, sub in gt["sites"]["boston"]["subjects"].items():
        sess = sub["sessions"]["fresh"]
        c = ezc3d.c3d(str(root / sess["file"]))
        a = c["data"]["analogs"][0]
        labels = c["parameters"]["ANALOG"]["LABELS"]["value"]
        rms = {}
        for side in ("L", "R"):
            x = a[labels.index(f"{side} Gastroc")]
            b = sess["emg"]["gastrocnemius_medialis"][side]["bursts"][0]
            seg = [x[int((f + on / 1e3) * 1200): int((f + off / 1e3) * 1200)]
                   for f, on, off in zip(b["foot_strike_s"], b["onset_ms"], b["offset_ms"])]
            rms[side] = np.sqrt(np.mean(np.concatenate(seg) ** 2))
        expected = 1.6 if sub["group"] == "asymmetric_output" else 1.0
        assert rms["R"] / rms["L"] == pytest.approx(expected, rel=0.2)
