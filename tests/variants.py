"""Variants of real C3D files for the lab-convention tests, written with ezc3d (in a test's tmp folder).

* :func:`rotate_to_y_up` -- the same recording as a +Y-up lab would store it (BTS, many Vicon/Elite
  set-ups): every point and the plate corners rotated by ``Y_UP`` (x' = x, y' = z, z' = -y). Plate
  channels are loads in each plate's own frame (C3D convention), so they do not change; ezc3d then
  computes the same forces rotated (checked in the tests).
* :func:`side_in_label_events` -- the events renamed the Qualisys way (``RHS``, ``LTO``, ``L_FS``...)
  with no side in ``EVENT:CONTEXTS``.
* :func:`cut_start` -- the file cut to start later (e.g. in the middle of a burst), first_frame moved.
* :func:`running_trial` -- running-speed strides generated on a real treadmill file's structure
  (plates, labels, rates): half-sine vertical GRF with flight phases on the two belts, heel / toe /
  pelvis markers, tibialis anterior bursts with linear recruitment ramps, side-in-label events, the
  EMG stored as amplifier output (volts after a known gain). Returns the injected truth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import signal

#: Z-up lab -> Y-up file (a proper rotation): x' = x, y' = z (up), z' = -y.
Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _open(src):
    import ezc3d

    return ezc3d.c3d(str(src))


def rotate_to_y_up(src, dst, *, rotation=Y_UP) -> Path:
    """Write ``src`` rotated by ``rotation`` (points and plate corners) to ``dst``."""
    c = _open(src)
    pts = c["data"]["points"]
    pts[:3] = np.einsum("ij,jmf->imf", rotation, pts[:3])
    c["data"]["points"] = pts
    fp = c["parameters"].get("FORCE_PLATFORM", {})
    if "CORNERS" in fp:
        c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"] = np.einsum(
            "ij,jkn->ikn", rotation, np.asarray(fp["CORNERS"]["value"], dtype=float))
    c.write(str(dst))
    return Path(dst)


def rewrite(src, dst) -> Path:
    """``src`` read and written by ezc3d unchanged (the reference for a variant written the same way)."""
    c = _open(src)
    c.write(str(dst))
    return Path(dst)


def set_events(c, rows, *, context: str = "General") -> None:
    """Replace the EVENT group with ``rows`` of (label, context or None, absolute time s)."""
    ev = c["parameters"]["EVENT"]
    n = len(rows)
    ev["USED"]["value"] = np.array([n])
    ev["LABELS"]["value"] = [r[0] for r in rows]
    ev["CONTEXTS"]["value"] = [r[1] if r[1] is not None else context for r in rows]
    ev["DESCRIPTIONS"]["value"] = [""] * n
    ev["SUBJECTS"]["value"] = ["S"] * n
    ev["ICON_IDS"]["value"] = np.zeros(n, dtype=int)
    ev["GENERIC_FLAGS"]["value"] = np.zeros(n, dtype=int)
    ev["TIMES"]["value"] = np.vstack([np.zeros(n), np.array([r[2] for r in rows], dtype=float)])


#: Side-in-label conventions: (label for a left strike, right strike, left off, right off).
LABEL_STYLES = {"qualisys": ("LHS", "RHS", "LTO", "RTO"), "underscore": ("L_FS", "R_FS", "L_FO", "R_FO"),
                "words": ("Left Foot Strike", "Right Foot Strike", "Left Foot Off", "Right Foot Off")}


def side_in_label_events(src, dst, *, style: str = "qualisys", context: str = "General") -> Path:
    """``src`` with every foot strike / off renamed to carry its side, and the side removed from the context."""
    c = _open(src)
    ev = c["parameters"]["EVENT"]
    t = np.asarray(ev["TIMES"]["value"], dtype=float)
    t = t if t.ndim == 2 else t.reshape(-1, 2).T  # EVENT:TIMES stored flat (FunctionalWalk.c3d)
    secs = t[0] * 60.0 + t[1]
    names = LABEL_STYLES[style]
    rows = []
    for lab, ctx, s in zip(ev["LABELS"]["value"], ev["CONTEXTS"]["value"], secs):
        k = ("strike" in lab.lower(), ctx.strip().lower().startswith("r"))
        rows.append((names[{(True, False): 0, (True, True): 1, (False, False): 2, (False, True): 3}[k]], context, s))
    set_events(c, rows, context=context)
    c.write(str(dst))
    return Path(dst)


def cut_start(src, dst, *, seconds: float) -> Path:
    """``src`` without its first ``seconds`` (whole point frames); first_frame moves, events stay absolute."""
    c = _open(src)
    rate = float(c["header"]["points"]["frame_rate"])
    k = int(round(seconds * rate))
    per = int(round(float(c["header"]["analogs"]["frame_rate"]) / rate))
    c["data"]["points"] = c["data"]["points"][:, :, k:]
    for key in ("residuals", "camera_masks"):
        if key in c["data"]["meta_points"]:
            c["data"]["meta_points"][key] = c["data"]["meta_points"][key][:, :, k:]
    c["data"]["analogs"] = c["data"]["analogs"][:, :, k * per:]
    c["header"]["points"]["first_frame"] += k
    c["header"]["analogs"]["first_frame"] += k * per
    c.write(str(dst))
    return Path(dst)


# --------------------------------------------------------------------------- running
def _plate_frame(corners: np.ndarray) -> np.ndarray:
    """The plate-to-lab rotation of a C3D plate from its corners (columns = local x, y, z in the lab)."""
    ax, ay = corners[:, 0] - corners[:, 1], corners[:, 0] - corners[:, 3]
    az = np.cross(ax, ay)
    ay = np.cross(az, ax)
    return np.column_stack([v / np.linalg.norm(v) for v in (ax, ay, az)])


def running_trial(template, dst, *, stride_s: float = 0.7, stance_frac: float = 0.35, mass_kg: float = 70.0,
                  ta_ramp_ms: float = 20.0, snr_db: float = 20.0, gain: float = 1000.0, seed: int = 3,
                  y_up: bool = True, label_style: str = "qualisys") -> dict:
    """Running strides written into a real 2-belt treadmill C3D (``template``, e.g. treadmill_events.c3d:
    FP1 = left belt, walking towards -Y). Returns the truth: strikes, offs (s, file-relative), TA onsets.

    EMG: ``Voltage.1`` = left TA, ``Voltage.2`` = right TA (map them in the manifest), in volts after an
    amplifier ``gain``: a 30-250 Hz band-limited carrier of 0.2 mV RMS at the electrode gated by a loading-response burst
    from 40 ms before each strike to 12 % of the stride and a swing burst at 58-85 %, each starting with a
    linear ``ta_ramp_ms`` ramp, plus white noise ``snr_db`` below.
    """
    rng = np.random.default_rng(seed)
    c = _open(template)
    p_rate = float(c["header"]["points"]["frame_rate"])
    a_rate = float(c["header"]["analogs"]["frame_rate"])
    first = int(c["header"]["points"]["first_frame"])
    analogs = c["data"]["analogs"]
    n_a = analogs.shape[2]
    n_p = c["data"]["points"].shape[2]
    ta = np.arange(n_a) / a_rate
    tp = np.arange(n_p) / p_rate
    stance = stance_frac * stride_s
    truth = {"strike": {}, "off": {}, "ta_onset": {}, "stride_s": stride_s}
    labels = list(c["parameters"]["ANALOG"]["LABELS"]["value"])
    corners = np.asarray(c["parameters"]["FORCE_PLATFORM"]["CORNERS"]["value"], dtype=float)
    origin = np.asarray(c["parameters"]["FORCE_PLATFORM"]["ORIGIN"]["value"], dtype=float)
    chan = np.asarray(c["parameters"]["FORCE_PLATFORM"]["CHANNEL"]["value"], dtype=int)
    forward = np.array([0.0, -1.0, 0.0])
    emg_band = signal.butter(2, [30.0, 250.0], btype="bandpass", fs=a_rate, output="sos")
    pts = np.full_like(c["data"]["points"], np.nan)
    pts[3] = 1.0
    plab = list(c["parameters"]["POINT"]["LABELS"]["value"])
    pelvis_z = 950.0
    for b, (side, phase, emg) in enumerate((("L", 0.2, "Voltage.1"), ("R", 0.2 + stride_s / 2, "Voltage.2"))):
        strikes = np.arange(phase, ta[-1], stride_s)
        truth["strike"][side], truth["off"][side] = strikes, (strikes + stance)[strikes + stance < ta[-1]]
        tau = np.zeros(n_a)
        for s in strikes:
            m = (ta >= s) & (ta < s + stance)
            tau[m] = (ta[m] - s) / stance
        fz = np.where(tau > 0, 2.5 * mass_kg * 9.80665 * np.sin(np.pi * tau), 0.0)
        f_lab = np.vstack([np.zeros(n_a), -0.15 * fz * np.cos(np.pi * tau) * (tau > 0), fz])
        cp = corners[:, :, b]
        centre = cp.mean(axis=1)
        cop_lab = centre[:, None] + np.outer(forward, (0.5 - tau) * 120.0)
        rot = _plate_frame(cp)
        f_loc = -(rot.T @ f_lab)  # the plate measures the action of the foot
        r_loc = rot.T @ (cop_lab - centre[:, None])
        m_loc = np.cross(origin[:, b][:, None] + r_loc, f_loc, axis=0)
        for j, series in enumerate(np.vstack([f_loc, m_loc])):
            analogs[0, chan[j, b] - 1] = series
        # markers: heel and toe move back with the belt in stance and swing forward; pelvis fixed
        ph = np.mod(tp - strikes[0], stride_s) / stride_s
        ap = np.where(ph < stance_frac, 350.0 - 700.0 * ph / stance_frac,
                      -350.0 + 700.0 * (ph - stance_frac) / (1 - stance_frac))  # along the progression
        ap = ap - 40.0 * np.sin(2 * np.pi * ph)
        lat = -120.0 if side == "R" else 120.0  # +X is left when walking towards -Y
        for names, dz, dap in ((("HEE",), 60.0, 0.0), (("MT2", "TOE"), 30.0, 180.0)):
            for i in [plab.index(f"{side}{n}") for n in names if f"{side}{n}" in plab]:
                pts[0, i] = lat
                pts[1, i] = -(ap + dap)
                pts[2, i] = dz + 80.0 * np.clip(np.sin(np.pi * (ph - stance_frac) / (1 - stance_frac)), 0, None)
        for names, x, y in ((("PSI", "PSIS"), 50.0, 100.0), (("ASI", "ASIS"), 120.0, -100.0)):
            for i in [plab.index(f"{side}{n}") for n in names if f"{side}{n}" in plab]:
                pts[0, i], pts[1, i], pts[2, i] = (x if side == "L" else -x), y, pelvis_z
        # TA at the electrode (mV), stored in V after the gain
        gate = np.zeros(n_a)
        onsets = []
        for s in strikes:
            for on, off in ((s - 0.040, s + 0.12 * stride_s), (s + 0.58 * stride_s, s + 0.85 * stride_s)):
                g = np.clip((ta - on) / (ta_ramp_ms / 1000.0), 0, 1) * (ta < off)
                gate = np.maximum(gate, g)
            onsets.append(s - 0.040)
        truth["ta_onset"][side] = np.array(onsets)
        carrier = signal.sosfiltfilt(emg_band, rng.standard_normal(n_a))  # surface-EMG-like spectrum
        carrier /= carrier.std()
        x_mv = 0.2 * (carrier * gate + rng.standard_normal(n_a) * 10 ** (-snr_db / 20))
        analogs[0, labels.index(emg)] = x_mv / 1000.0 * gain
    c["data"]["analogs"] = analogs
    c["data"]["points"] = pts
    if "residuals" in c["data"]["meta_points"]:  # every marker the generator did not set is a gap
        c["data"]["meta_points"]["residuals"] = np.where(np.isnan(pts[0:1]), -1.0, 0.0)
    names = LABEL_STYLES[label_style]
    rows = []
    for side, (s_lab, o_lab) in (("L", (names[0], names[2])), ("R", (names[1], names[3]))):
        rows += [(s_lab, "General", float(t) + first / p_rate) for t in truth["strike"][side]]
        rows += [(o_lab, "General", float(t) + first / p_rate) for t in truth["off"][side]]
    set_events(c, sorted(rows, key=lambda r: r[2]))
    c.write(str(dst))
    if y_up:
        rotate_to_y_up(dst, dst)
    return truth
