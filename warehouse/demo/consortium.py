"""Seeded, deterministic synthetic consortium of lower-limb treadmill gait recordings.

``generate_consortium(inbox_root)`` writes, for three sites, the raw files their labs would produce,
a ``manifest.yaml`` per site and ``<inbox_root>/ground_truth.json`` with every injected effect:

* ``lyon``   Vicon Nexus 2.14 C3D (Intel REAL), points 100 Hz, analog 2000 Hz, non-zero first frame,
  Motek-like split-belt treadmill as two type-2 plates (FP1 = left belt, FP2 = right belt), EVENT group
  with absolute times, 16 ``Voltage.*`` EMG channels in V, mains 50 Hz.
* ``boston`` Motion Analysis Cortex C3D written as 16-bit INTEGER (ANALOG:SCALE/OFFSET/GEN_SCALE,
  POINT:SCALE > 0), points 120 Hz, analog 1200 Hz, EMG in mV, no EVENT group, mains 60 Hz.
* ``oslo``   Delsys Trigno / EMGworks CSV export (EMG 1259.259 Hz in V + ACC 148.148 Hz in g, one time
  column per channel) with a BIDS-style ``*_events.tsv`` sidecar, mains 50 Hz.

Lab frame (C3D sites): +Y walking direction, +X subject's right, +Z up, mm. Burst envelope, onset and
offset definitions: see :mod:`warehouse.demo_signals`. Same seed -> byte-identical files (same platform
and numpy version).

EMG is stored electrode-referred on a 16-bit ADC grid: Lyon V and Boston mV with LSB 0.1526 uV
(+-5 V ADC behind a x1000 amplifier, i.e. +-5 mV at the skin); Oslo V with LSB 0.1678 uV (Trigno 11 mV
range). Lyon plate channels are quantised too (0.153 N, 30.5 Nmm); Boston stores int16 counts with
ANALOG:SCALE (negative for plate channels, as Motion Analysis often does), OFFSET 0, GEN_SCALE 1.

Ground truth (``ground_truth.json``): ``sites.<site>.subjects.<id>`` -> group, sex, mass_kg, height_m,
stride_s, treadmill_speed_m_s, ``sessions.<condition>`` -> file (relative to inbox_root), rates, first_frame
(1-based, as stored) / first_frame_ezc3d / time_offset_s (C3D), events_file (Oslo), ``events.<L|R>`` ->
foot_strike_s / foot_off_s (file-relative s: first sample = 0), ``emg.<muscle>.<L|R>`` -> amplitude_factor
(R/L ratio on the right side, 1 on the left), spectral_compression (1 or 0.85), spectral_scale,
burst_mdf_hz (theoretical median frequency of the burst carrier at that sampling rate), ``bursts`` ->
per burst: onset_ms_injected / offset_ms_injected (expected values before cycle jitter),
onset_ms_mean / offset_ms_mean and per-cycle lists foot_strike_s, onset_ms, offset_ms, amplitude_factor
(ms relative to the ipsilateral foot strike; only cycles whose burst lies fully inside the recording).
``summary`` lists the injected effects.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from warehouse.demo import signals as sig
from warehouse.demo.signals import (  # noqa: F401  (re-exported constants)
    AMP_CV,
    ASYM_RATIO,
    BOSTON_POINT_SCALE,
    CONDITIONS,
    GMED_DELAY_MS,
    LSB_ACC_G,
    LSB_EMG_V,
    LSB_FORCE_N,
    LSB_MOMENT_NMM,
    MDF_SCALE_FATIGUED,
    ONSET_JITTER_SD_MS,
    SITES,
    TA_ONSET_MS,
    event_list,
    plan_consortium,
    rel_path,
    seeded_rng,
    synthesize_trial,
)

# ==============================================================================================
# writers
# ==============================================================================================
_PLATE_LABELS = ("Force.Fx{}", "Force.Fy{}", "Force.Fz{}", "Moment.Mx{}", "Moment.My{}", "Moment.Mz{}")


def _plate_block(tr: dict, origins_used: dict) -> np.ndarray:
    """12 x n lab-consistent raw plate channels: FP1 = left belt, FP2 = right belt."""
    return np.concatenate([sig.plate_raw_channels(tr["plates"][s], s, origins_used[s]) for s in ("L", "R")])


def _write_lyon(path: Path, tr: dict, subject: dict, first_frame0: int) -> None:
    import ezc3d

    c = ezc3d.c3d()
    emg_labels = [f"Voltage.{side}{m[1]}" for m in sig.MUSCLES for side in ("R", "L")]
    labels = [l.format(p) for p in (1, 2) for l in _PLATE_LABELS] + emg_labels
    nlab = len(labels)
    P = c["parameters"]
    P["POINT"]["RATE"]["value"] = np.array([tr["point_hz"]])
    P["POINT"]["LABELS"]["value"] = list(sig.MARKERS)
    P["POINT"]["DESCRIPTIONS"]["value"] = [""] * len(sig.MARKERS)
    P["POINT"]["UNITS"]["value"] = ["mm"]
    P["ANALOG"]["RATE"]["value"] = np.array([tr["analog_hz"]])
    P["ANALOG"]["LABELS"]["value"] = labels
    P["ANALOG"]["DESCRIPTIONS"]["value"] = (
        [f"Motekforce Link Force Plate [{p}]" for p in (1, 2) for _ in range(6)]
        + [f"Analog EMG::Voltage [3,{i + 1}]" for i in range(16)])
    P["ANALOG"]["UNITS"]["value"] = ["N", "N", "N", "Nmm", "Nmm", "Nmm"] * 2 + ["V"] * 16
    P["ANALOG"]["SCALE"]["value"] = np.ones(nlab)
    _ez_int(c, "ANALOG", "GAIN", np.ones(nlab))
    c.add_parameter("POINT", "X_SCREEN", ["+X"])
    c.add_parameter("POINT", "Y_SCREEN", ["+Z"])
    for k, u in (("ANGLE_UNITS", "deg"), ("FORCE_UNITS", "N"), ("MOMENT_UNITS", "Nmm"), ("POWER_UNITS", "W")):
        c.add_parameter("POINT", k, [u])
    # force plates (Motek-like: transducer origin at the treadmill centre, ORIGIN z = +0.001 mm)
    origin_param = {"L": np.array([-250.0, 0.0, 0.001]), "R": np.array([250.0, 0.0, 0.001])}
    origin_used = {s: -v for s, v in origin_param.items()}   # ezc3d negates ORIGIN when z > 0
    corners = np.stack([sig.plate_corners("L"), sig.plate_corners("R")], axis=2)
    P["FORCE_PLATFORM"]["USED"]["value"] = np.array([2])
    _ez_int(c, "FORCE_PLATFORM", "TYPE", np.array([2, 2]))
    _ez_int(c, "FORCE_PLATFORM", "ZERO", np.array([1, 0]))
    c.add_parameter("FORCE_PLATFORM", "CORNERS", corners)
    c.add_parameter("FORCE_PLATFORM", "ORIGIN", np.stack([origin_param["L"], origin_param["R"]], axis=1))
    _ez_int(c, "FORCE_PLATFORM", "CHANNEL", np.arange(1, 13).reshape(2, 6).T)
    # manufacturer / trial / subject
    c.add_parameter("MANUFACTURER", "COMPANY", ["Vicon"])
    c.add_parameter("MANUFACTURER", "SOFTWARE", ["Vicon Nexus"])
    c.add_parameter("MANUFACTURER", "VERSION_LABEL", ["2.14"])
    n_pt = tr["n_pt"]
    _ez_int(c, "TRIAL", "ACTUAL_START_FIELD", np.array([first_frame0 + 1, 0]))
    _ez_int(c, "TRIAL", "ACTUAL_END_FIELD", np.array([first_frame0 + n_pt, 0]))
    c.add_parameter("TRIAL", "CAMERA_RATE", np.array([tr["point_hz"]]))
    _ez_int(c, "SUBJECTS", "USED", np.array([1]))
    c.add_parameter("SUBJECTS", "NAMES", [subject["id"]])
    c.add_parameter("SUBJECTS", "MARKER_SETS", ["LowerLimb_Treadmill"])
    c.add_parameter("PROCESSING", "Bodymass", np.array([subject["mass_kg"]]))
    c.add_parameter("PROCESSING", "Height", np.array([subject["height_m"] * 1000.0]))
    # events: Nexus style, absolute times (frame-aligned), grouped by label then context
    evs = event_list(tr["gait"], tr["n_pt"] / tr["point_hz"])
    rows = []
    for lab, key in (("Foot Off", "foot_off"), ("Foot Strike", "foot_strike")):
        for ctx, side in (("Left", "L"), ("Right", "R")):
            for (t, name, s) in evs:
                if name == key and s == side:
                    frame = min(int(round(t * tr["point_hz"])), tr["n_pt"] - 1)
                    rows.append((lab, ctx, (first_frame0 + frame) / tr["point_hz"]))
    desc = {"Foot Strike": "The instant the heel strikes the ground",
            "Foot Off": "The instant the toe leaves the ground"}
    _ez_int(c, "EVENT_CONTEXT", "USED", np.array([4]))
    _ez_int(c, "EVENT_CONTEXT", "ICON_IDS", np.array([0, 1, 2, 3]))
    c.add_parameter("EVENT_CONTEXT", "LABELS", ["General", "Left", "Right", "Invalid"])
    c.add_parameter("EVENT_CONTEXT", "DESCRIPTIONS", ["For other events", "Left side", "Right side", "No context"])
    _ez_int(c, "EVENT", "USED", np.array([len(rows)]))
    c.add_parameter("EVENT", "CONTEXTS", [r[1] for r in rows])
    _ez_int(c, "EVENT", "ICON_IDS", np.array([2 if r[0] == "Foot Off" else 1 for r in rows]))
    c.add_parameter("EVENT", "LABELS", [r[0] for r in rows])
    c.add_parameter("EVENT", "DESCRIPTIONS", [desc[r[0]] for r in rows])
    c.add_parameter("EVENT", "SUBJECTS", [subject["id"]] * len(rows))
    c.add_parameter("EVENT", "TIMES", np.stack([np.zeros(len(rows)), np.array([r[2] for r in rows])]))
    _ez_int(c, "EVENT", "GENERIC_FLAGS", np.zeros(len(rows)))
    # data
    pts = np.ones((4, len(sig.MARKERS), n_pt))
    pts[:3] = tr["markers"]
    c["data"]["points"] = pts
    c["data"]["meta_points"] = {"residuals": np.full((1, len(sig.MARKERS), n_pt), 0.8),
                                "camera_masks": np.zeros((7, len(sig.MARKERS), n_pt), dtype=bool)}
    plates = _plate_block(tr, origin_used)
    plates[[0, 1, 2, 6, 7, 8]] = np.rint(plates[[0, 1, 2, 6, 7, 8]] / LSB_FORCE_N) * LSB_FORCE_N
    plates[[3, 4, 5, 9, 10, 11]] = np.rint(plates[[3, 4, 5, 9, 10, 11]] / LSB_MOMENT_NMM) * LSB_MOMENT_NMM
    emg = tr["emg_codes"] * tr["emg_lsb_v"]
    c["data"]["analogs"] = np.concatenate([plates, emg])[None].astype(np.float64)
    c["header"]["points"]["first_frame"] = first_frame0
    c.write(str(path))


def _ez_int(c, group: str, name: str, value) -> None:
    """Add an INT parameter (ezc3d's python helper would store integer arrays as FLOAT)."""
    from ezc3d import ezc3d as _sw

    arr = np.asarray(value)
    p = _sw.Parameter(name, "")
    p.set(_sw.VecInt([int(x) for x in arr.reshape(-1, order="F")]), list(arr.shape))
    c["parameters"].add_parameter(group, p)


class _CortexWriter:
    """Minimal INT C3D writer on top of py-c3d's ``Writer`` metadata, with exact vectorised data blocks."""

    @staticmethod
    def write(path: Path, tr: dict, subject: dict) -> dict:
        import c3d as pyc3d

        class W(pyc3d.Writer):
            block = b""

            def _write_frames(self, handle):
                handle.write(self.block)
                self._pad_block(handle)

        point_hz, analog_hz = tr["point_hz"], tr["analog_hz"]
        sub = int(round(analog_hz / point_hz))
        n_pt = tr["n_pt"]
        w = W(point_rate=point_hz, analog_rate=analog_hz, point_scale=BOSTON_POINT_SCALE, point_units="mm")
        emg_labels = [f"{side} {m[2]}" for m in sig.MUSCLES for side in ("R", "L")]
        labels = ["F1X", "F1Y", "F1Z", "M1X", "M1Y", "M1Z", "F2X", "F2Y", "F2Z", "M2X", "M2Y", "M2Z"] + emg_labels
        nlab = len(labels)
        w.set_point_labels(list(sig.MARKERS))
        w.set_analog_labels(labels)
        w.set_start_frame(1)
        scales = np.array([-LSB_FORCE_N] * 3 + [-LSB_MOMENT_NMM] * 3 + [-LSB_FORCE_N] * 3 + [-LSB_MOMENT_NMM] * 3
                          + [LSB_EMG_V["boston"] * 1000.0] * 16)
        offsets = np.zeros(nlab, dtype=np.int16)
        gen_scale = 1.0
        w.set_analog_general_scale(gen_scale)
        w.set_analog_scales(scales)
        w.set_analog_offsets(offsets)
        ag = w.analog_group
        _add_strs(ag, "UNITS", "Analog units", ["N", "N", "N", "Nmm", "Nmm", "Nmm"] * 2 + ["mV"] * 16)
        _add_strs(ag, "DESCRIPTIONS", "Analog descriptions",
                  [f"FP{p} {x}" for p in (1, 2) for x in ("Fx", "Fy", "Fz", "Mx", "My", "Mz")]
                  + [f"EMG {i + 1}" for i in range(16)])
        _add_strs(ag, "FORMAT", "Analog format", ["SIGNED"])
        ag.add("BITS", "Analog resolution", 2, "<h", 16)
        pg = w.point_group
        _add_strs(pg, "DESCRIPTIONS", "Point descriptions", [""] * len(sig.MARKERS))
        mg = w.get_create("MANUFACTURER")
        _add_strs(mg, "COMPANY", "Company", ["Motion Analysis Corporation"])
        _add_strs(mg, "SOFTWARE", "Software", ["Cortex"])
        _add_strs(mg, "VERSION_LABEL", "Version", ["9.5.2"])
        fg = w.get_create("FORCE_PLATFORM")
        origin_param = {"L": np.array([0.0, 0.0, 15.0]), "R": np.array([0.0, 0.0, 15.0])}
        origin_used = {s: -v for s, v in origin_param.items()}
        corners = np.stack([sig.plate_corners("L"), sig.plate_corners("R")], axis=2)
        fg.add("USED", "Number of plates", 2, "<h", 2)
        _add_arr(fg, "TYPE", "Plate type", np.array([2, 2]), "<i2")
        _add_arr(fg, "ZERO", "Zero frames", np.array([1, 10]), "<i2")
        _add_arr(fg, "CORNERS", "Corners", corners, "<f4")
        _add_arr(fg, "ORIGIN", "Origin", np.stack([origin_param["L"], origin_param["R"]], axis=1), "<f4")
        _add_arr(fg, "CHANNEL", "Channels", np.arange(1, 13).reshape(2, 6).T, "<i2")
        # data block: per frame [ppf x 4 int16 points][sub x nlab int16 analog]
        pts = np.rint(tr["markers"] / BOSTON_POINT_SCALE).astype(np.int16)          # 3 x m x n
        resid = np.full(pts.shape[1:], int(round(0.8 / BOSTON_POINT_SCALE)), dtype=np.uint16)
        cams = np.full(pts.shape[1:], 0b00111101, dtype=np.uint16)
        word4 = (resid | (cams << 8)).view(np.int16)
        pblock = np.concatenate([pts, word4[None]], axis=0).transpose(2, 1, 0)       # n x m x 4
        plates = _plate_block(tr, origin_used)
        counts = np.rint(plates / scales[:12, None]).astype(np.int64)
        an = np.concatenate([counts, tr["emg_codes"]]).astype(np.int64)
        an = np.clip(an, -32768, 32767).astype(np.int16)                              # nlab x n_an
        ablock = an.T.reshape(n_pt, sub * nlab)
        frame = np.concatenate([pblock.reshape(n_pt, -1), ablock], axis=1).astype("<i2")
        w.block = frame.tobytes()
        dummy_pts = np.zeros((len(sig.MARKERS), 5), np.float32)
        dummy_an = np.zeros((nlab, sub), np.float32)
        w._frames = [(dummy_pts, dummy_an)] * n_pt
        with open(path, "wb") as fh:
            w.write(fh)
        return {"analog_scale": scales.tolist(), "analog_offset": offsets.tolist(), "gen_scale": gen_scale}


def _add_strs(group, name: str, desc: str, values: list[str]) -> None:
    width = max(1, max(len(v) for v in values))
    group.add_str(name, desc, "".join(v.ljust(width) for v in values), width, len(values))


def _add_arr(group, name: str, desc: str, arr: np.ndarray, fmt: str) -> None:
    arr = np.asarray(arr)
    data = np.asarray(arr, dtype=np.dtype(fmt)).tobytes(order="F")
    group.add(name, desc, np.dtype(fmt).itemsize, fmt, data, *arr.shape)


def _fmt_g7(values: np.ndarray) -> np.ndarray:
    """EMGworks-like number text (7 significant digits, zero as '0.0') for every element."""
    u, inv = np.unique(values, return_inverse=True)
    s = np.array([_g7(v) for v in u.tolist()], dtype=object)
    return s[inv.reshape(values.shape)]


def _g7(v: float) -> str:
    if v == 0.0:
        return "0.0"
    return "%.7g" % v


def _exp3(v: float) -> str:
    m, e = ("%.6e" % v).split("e")
    return f"{m}e{e[0]}{int(e[1:]):03d}"


def _write_oslo(path: Path, tr: dict, duration_s: float) -> list[str]:
    n_emg, n_acc = tr["n_emg"], tr["n_acc"]
    emg_hz, acc_hz = tr["emg_hz"], tr["acc_hz"]
    lines, header = [], []
    cols = []
    t_emg = _fmt_g7(np.arange(n_emg) / emg_hz).tolist()
    t_acc = _fmt_g7(np.arange(n_acc) / acc_hz).tolist()
    pad = [""] * (n_emg - n_acc)
    emg_txt = _fmt_g7(tr["emg_codes"] * tr["emg_lsb_v"])
    acc_txt = _fmt_g7(tr["acc_codes"] * LSB_ACC_G)
    for i in range(len(sig.CHANNELS)):
        n = i + 1
        specs = [(f"Mini sensor {n}: EMG {n}", emg_hz, n_emg, "V")] + [
            (f"Mini sensor {n}: ACC.{ax} {n}", acc_hz, n_acc, "g") for ax in "XYZ"]
        for lab, rate, npts, unit in specs:
            lines.append(f"Label: {lab} Sampling frequency: {_exp3(rate)} Number of points: {npts} "
                         f"start: {_exp3(0.0)} Unit: {unit} Domain Unit: s")
            header += ["X[s]", f'"{lab}"']
        cols += [t_emg, emg_txt[i].tolist()]
        for ax in range(3):
            cols += [t_acc + pad, acc_txt[i, ax].tolist() + pad]
    lines += ["Start Trigger Method: None", "Stop Trigger Method: None", "", ",".join(header)]
    body = "\n".join(",".join(row) for row in zip(*cols))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("\n".join(lines) + "\n" + body + "\n")
    return lines


def _write_events_tsv(path: Path, events: list) -> None:
    rows = ["onset\tduration\ttrial_type\tside"]
    rows += [f"{t:.4f}\t0\t{name}\t{side}" for t, name, side in events]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _write_manifest(root: Path, site: dict) -> str:
    s = site["site"]
    out = [f"site: {s}", f"mains_hz: {site['mains_hz']}", f"timezone: {site['timezone']}",
           f"consent: [{', '.join(site.get('consent', ['pooled_analysis']))}]"]
    if site.get("embargo_until"):
        out.append(f"embargo_until: {site['embargo_until']}")
    out.append("subjects:")
    for sub in site["subjects"]:
        out.append(f"  - {{id: {sub['id']}, sex: {sub['sex']}, mass_kg: {sub['mass_kg']}, "
                   f"height_m: {sub['height_m']}}}")
    out.append("sessions:")
    for sub in site["subjects"]:
        for i, cond in enumerate(CONDITIONS):
            out += [f"  - id: {sub['id']}-S{i + 1}", f"    subject: {sub['id']}", f"    date: {sub['date']}",
                    f"    condition: {cond}", "    task: walk", "    terrain: treadmill",
                    f'    files: ["{sub["id"]}/{cond}/*.{site["ext"]}"]']
    if s == "oslo":
        out.append("channels:")
        for i, (mid, side) in enumerate(sig.CHANNELS):
            out.append(f'  "Mini sensor {i + 1}: EMG {i + 1}": {{muscle: {mid}, side: {side}}}')
    else:
        out.append("channels: {}")
    text = "\n".join(out) + "\n"
    (root / s / "manifest.yaml").write_text(text, encoding="utf-8")
    return text


# ==============================================================================================
# public API
# ==============================================================================================
def trial_signals(*, seed: int = 0, site: str, subject: str, condition: str, subjects_per_site: int = 4,
                  duration_s: float = 20.0) -> dict:
    """Re-synthesise one trial of ``generate_consortium`` (same arguments -> same numbers) without writing it.

    Returns the internal signal dict: ``envelopes`` (16 x n noise-free burst envelopes x amplitude, V,
    channel order ``demo_signals.CHANNELS``), ``emg_codes`` (ADC codes), ``emg_lsb_v``, ``emg_hz``, ``gait``
    and, for C3D sites, ``markers`` / ``plates``; for Oslo, ``acc_codes``.
    """
    plan = plan_consortium(int(seed), int(subjects_per_site), float(duration_s))
    st = next(x for x in plan if x["site"] == site)
    sub = next(x for x in st["subjects"] if x["id"] == subject)
    return synthesize_trial(int(seed), st, sub, condition, float(duration_s))


#: Default demo: two 5-subject sites and a small 3-subject site (its cohort cells are suppressed).
DEFAULT_SUBJECTS_PER_SITE = {"lyon": 5, "boston": 5, "oslo": 3}


def generate_consortium(inbox_root, /, *, seed=0, subjects_per_site=None, duration_s=20.0, progress=None) -> dict:
    """Write <inbox_root>/<site>/... files + <inbox_root>/<site>/manifest.yaml for 3 sites and
    <inbox_root>/ground_truth.json; return the ground-truth dict. progress: optional callable(str) for progress lines."""
    root = Path(inbox_root)
    root.mkdir(parents=True, exist_ok=True)
    seed = int(seed)
    if seed < 0:
        raise ValueError("seed must be >= 0")
    duration_s = float(duration_s)
    if subjects_per_site is None:
        subjects_per_site = dict(DEFAULT_SUBJECTS_PER_SITE)
    if not isinstance(subjects_per_site, dict):
        subjects_per_site = int(subjects_per_site)
    if min(subjects_per_site.values() if isinstance(subjects_per_site, dict) else [subjects_per_site]) < 1 \
            or duration_s < 4.0:
        raise ValueError("need subjects_per_site >= 1 and duration_s >= 4")
    say = progress or (lambda _msg: None)
    plan = plan_consortium(seed, subjects_per_site, duration_s)
    gt_sites = {}
    for site in plan:
        s = site["site"]
        (root / s).mkdir(exist_ok=True)
        gt_subjects = {}
        for sub in site["subjects"]:
            sessions = {}
            for ci, cond in enumerate(CONDITIONS):
                rel = rel_path(site, sub, cond)
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                say(f"{s}: {sub['id']} {cond} -> {rel}")
                tr = synthesize_trial(seed, site, sub, cond, duration_s)
                evs = event_list(tr["gait"], duration_s)
                sess = {"session_id": f"{sub['id']}-S{ci + 1}", "condition": cond, "task": "walk",
                        "terrain": "treadmill", "file": rel, "duration_s": duration_s, "format": site["format"]}
                if s == "oslo":
                    _write_oslo(path, tr, duration_s)
                    ev_rel = rel[: -len(".csv")] + "_events.tsv"
                    _write_events_tsv(root / ev_rel, evs)
                    sess.update(events_file=ev_rel, rates={"emg_hz": tr["emg_hz"], "acc_hz": tr["acc_hz"]},
                                n_samples={"emg": tr["n_emg"], "acc": tr["n_acc"]},
                                emg_unit="V", emg_lsb=LSB_EMG_V[s])
                elif s == "lyon":
                    ff0 = int(seeded_rng(seed, site["index"], sub["index"], 50 + ci).integers(100, 3000))
                    _write_lyon(path, tr, sub, ff0)
                    sess.update(rates={"point_hz": tr["point_hz"], "analog_hz": tr["analog_hz"]},
                                first_frame=ff0 + 1, first_frame_ezc3d=ff0,
                                time_offset_s=round(ff0 / tr["point_hz"], 6),
                                emg_unit="V", emg_lsb=LSB_EMG_V[s])
                else:
                    scal = _CortexWriter.write(path, tr, sub)
                    sess.update(rates={"point_hz": tr["point_hz"], "analog_hz": tr["analog_hz"]},
                                first_frame=1, first_frame_ezc3d=0, time_offset_s=0.0,
                                emg_unit="mV", emg_lsb=LSB_EMG_V[s] * 1000.0, storage="INT16",
                                analog_gen_scale=scal["gen_scale"])
                sess["events"] = {
                    side: {"foot_strike_s": [round(t, 6) for t, n, sd in evs if n == "foot_strike" and sd == side],
                           "foot_off_s": [round(t, 6) for t, n, sd in evs if n == "foot_off" and sd == side]}
                    for side in ("L", "R")}
                sess["emg"] = {
                    mid: {side: tr["truth_channels"][(mid, side)] for side in ("L", "R")} for mid in sig.MUSCLE_IDS}
                sessions[cond] = sess
            gt_subjects[sub["id"]] = {
                "group": sub["group"], "sex": sub["sex"], "mass_kg": sub["mass_kg"], "height_m": sub["height_m"],
                "stride_s": round(sub["stride_s"], 4), "treadmill_speed_m_s": sub["speed_m_s"],
                "sessions": sessions}
        say(f"{s}: manifest.yaml")
        _write_manifest(root, site)
        gt_sites[s] = {"format": site["format"], "mains_hz": site["mains_hz"], "timezone": site["timezone"],
                       "subjects": gt_subjects}
    groups = {g: [sid for site in plan for sub in site["subjects"] if sub["group"] == g for sid in [sub["id"]]]
              for g in ("control", "asymmetric_output", "delayed_onset")}
    gt = {
        "generator": "myomap.warehouse.demo",
        "seed": seed,
        "parameters": {"subjects_per_site": subjects_per_site, "duration_s": duration_s,
                       "conditions": list(CONDITIONS), "lab_frame": "+Y walking direction, +X right, +Z up, mm",
                       "burst_envelope": "onset = last instant the envelope is 0; raised-cosine ramp of "
                                         f"{sig.RAMP_S * 1000:g} ms to the body 0.55 + 0.45 sin(pi u); "
                                         "offset symmetric (see warehouse/demo/signals.py)",
                       "onset_jitter_sd_ms": ONSET_JITTER_SD_MS, "amplitude_cv": AMP_CV,
                       "emg_band_hz": list(sig.BAND_HZ), "baseline_rms_v": sig.BASELINE_RMS_V,
                       "event_definition": "foot strike/off = vertical GRF leaves/returns to 0 N"},
        "summary": {
            "ta_onset_ms": dict(TA_ONSET_MS),
            "fatigue_shift_ms": TA_ONSET_MS["fatigued"] - TA_ONSET_MS["fresh"],
            "mdf_scale_fatigued": MDF_SCALE_FATIGUED,
            "asymmetric_output": {"subjects": groups["asymmetric_output"], "muscle": "gastrocnemius_medialis",
                                  "ratio_r_over_l": ASYM_RATIO},
            "delayed_onset": {"subjects": groups["delayed_onset"], "muscle": "gluteus_medius", "sides": ["L", "R"],
                              "delay_ms": GMED_DELAY_MS},
            "control": {"subjects": groups["control"], "lr_amplitude_tolerance": 0.05},
        },
        "sites": gt_sites,
    }
    (root / "ground_truth.json").write_text(json.dumps(gt, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    say("ground_truth.json")
    return gt
