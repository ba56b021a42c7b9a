"""Signal synthesis for the synthetic demo consortium (see :mod:`warehouse.demo`).

Pure numpy/scipy, no I/O. Everything is vectorised over channels and samples; the only Python loops
run over gait cycles (about 20 per trial) to place bursts and stance phases.

Lab frame used by every generated trial (documented in ``ground_truth.json`` too):
``+Y`` = walking direction (the belts move the feet towards ``-Y``), ``+X`` = subject's right,
``+Z`` = up; positions in mm. The treadmill centre is the lab origin; the left belt covers
``X in [-500, 0]``, the right belt ``X in [0, 500]``, both ``Y in [-850, 850]``.

Burst envelope definition (the injected onset/offset ground truth refers to it)
-------------------------------------------------------------------------------
A burst with onset ``a`` and offset ``b`` (s) has the envelope

    env(t) = body(u) * ramp(t - a) * ramp(b - t),   u = (t - a) / (b - a),
    body(u) = 0.55 + 0.45 * sin(pi * u),
    ramp(x) = 0 for x <= 0, 0.5 * (1 - cos(pi * x / 10 ms)) for 0 < x < 10 ms, 1 beyond,

so ``env`` is exactly 0 up to ``a`` and after ``b``, reaches half of its body value 5 ms after ``a`` and
all of it at ``a + 10 ms``. ``onset`` = ``a`` (the last instant the envelope is 0 before the burst),
``offset`` = ``b``. The EMG of a burst is ``amplitude * env(t) * carrier(t)``, with ``carrier`` a
unit-RMS band-limited Gaussian noise, so ``amplitude`` is the RMS of the raw EMG at the envelope peak.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

G = 9.80665
RAMP_S = 0.010          # onset/offset ramp of every burst envelope
BAND_HZ = (20.0, 450.0)  # electrode/amplifier band (4th-order Butterworth-like magnitude)
PSD_FL_HZ, PSD_FH_HZ = 60.0, 120.0   # Shwedyk EMG spectrum model, scaled per muscle/subject/fatigue
BASELINE_RMS_V = 5e-6

#: (muscle id, Lyon code, Boston name, nominal amplitude V RMS at envelope peak, spectral scale, bursts)
#: bursts: (name, onset, offset) with values in percent of the stride starting at the ipsilateral foot
#: strike, except a value given as ("ms", x) which is in ms relative to that foot strike.
MUSCLES = (
    ("tibialis_anterior", "TA", "Tib Ant", 350e-6, 1.10,
     (("loading", ("ms", -50.0), 12.0), ("swing", 58.0, 85.0))),
    ("gastrocnemius_medialis", "GAS", "Gastroc", 400e-6, 1.00, (("stance", 10.0, 50.0),)),
    ("soleus", "SOL", "Soleus", 300e-6, 0.90, (("stance", 7.0, 51.0),)),
    ("vastus_lateralis", "VL", "Vast Lat", 250e-6, 0.95, (("loading", -5.0, 15.0),)),
    ("biceps_femoris", "BF", "Bic Fem", 200e-6, 0.85, (("terminal_swing", -20.0, 10.0),)),
    ("rectus_femoris", "RF", "Rect Fem", 150e-6, 1.00, (("loading", -5.0, 15.0), ("pre_swing", 55.0, 65.0))),
    ("gluteus_medius", "GMED", "Glut Med", 200e-6, 1.00, (("loading", 0.0, 30.0),)),
    ("semitendinosus", "ST", "Semitend", 200e-6, 0.90, (("terminal_swing", -20.0, 10.0),)),
)
MUSCLE_IDS = tuple(m[0] for m in MUSCLES)
#: channel order used by every site: for each muscle, right then left.
CHANNELS = tuple((m[0], side) for m in MUSCLES for side in ("R", "L"))
MARKERS = ("LHEE", "RHEE", "LTOE", "RTOE", "SACR", "LASI", "RASI")

# belts: centre X (mm) in the lab, Y half length
BELT_CENTRE_X = {"L": -250.0, "R": 250.0}
BELT_HALF = (250.0, 850.0)


# ----------------------------------------------------------------------------------------------
# gait timeline
# ----------------------------------------------------------------------------------------------
@dataclass
class Gait:
    """Foot strikes / offs per side (s, file-relative; may extend beyond the recording)."""

    fs: dict          # side -> array of foot strikes
    fo: dict          # side -> array of foot offs, fo[side][k] belongs to fs[side][k]
    speed_mm_s: float
    heel_fs_y: dict   # side -> heel Y (mm) at each strike


def make_gait(rng: np.random.Generator, duration_s: float, stride_s: float, stance_frac: float,
              speed_m_s: float) -> Gait:
    n = int(np.ceil((duration_s + 4 * stride_s) / stride_s)) + 4
    strides = stride_s * (1.0 + 0.02 * np.clip(rng.standard_normal(n), -2.5, 2.5))
    start = -stride_s - rng.uniform(0.15, 0.95) * stride_s
    r_fs = start + np.concatenate(([0.0], np.cumsum(strides[:-1])))
    # left strikes half a cycle later (+ a little step-time asymmetry noise)
    l_fs = r_fs[:-1] + strides[:-1] * (0.5 + 0.006 * np.clip(rng.standard_normal(n - 1), -2.5, 2.5))
    fs = {"R": r_fs, "L": l_fs}
    fo, heel = {}, {}
    v = speed_m_s * 1000.0
    for side in ("R", "L"):
        s = fs[side]
        st = np.diff(s)
        st = np.append(st, st[-1])
        frac = stance_frac + 0.008 * np.clip(rng.standard_normal(s.size), -2.5, 2.5)
        fo[side] = s + frac * st
        # heel lands ahead of the pelvis by about half of the stance excursion
        heel[side] = 0.52 * v * frac * st + 30.0 + 6.0 * rng.standard_normal(s.size)
    return Gait(fs=fs, fo=fo, speed_mm_s=v, heel_fs_y=heel)


def _cycle_index(times: np.ndarray, fs: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(fs, times, side="right") - 1, 0, fs.size - 2)


# ----------------------------------------------------------------------------------------------
# ground reaction forces
# ----------------------------------------------------------------------------------------------
def _grf_shape(tau: np.ndarray) -> np.ndarray:
    """Double-hump vertical GRF shape on stance fraction tau in [0, 1]; max = 1 (at tau ~ 0.25)."""
    g = np.sin(np.pi * tau) + 0.35 * np.sin(3 * np.pi * tau) + 0.05 * np.sin(2 * np.pi * tau)
    return np.clip(g, 0.0, None) ** 0.8 / 1.0036


def foot_kinematics(gait: Gait, side: str, t: np.ndarray, rng: np.random.Generator | None = None) -> dict:
    """Heel / toe (Y, Z) trajectories (mm) of one foot at times ``t`` from per-cycle keyframes.

    Monotone (PCHIP) interpolation between keyframes guarantees that, relative to a fixed pelvis,
    the heel is most anterior exactly at foot strike and the toe most posterior exactly at foot off
    (Zeni et al. 2008).
    """
    fs, fo, v = gait.fs[side], gait.fo[side], gait.speed_mm_s
    kt_y, hy, ty, kt_z, hz, kz_t, tz = [], [], [], [], [], [], []
    foot = 175.0
    h0, z0 = 55.0, 30.0
    for k in range(fs.size - 1):
        a, b, nxt = fs[k], fo[k], fs[k + 1]
        T, sw = nxt - a, nxt - b
        y0 = gait.heel_fs_y[side][k]
        y1 = y0 - v * (b - a)
        kt_y += [a, 0.5 * (a + b), b]
        hy += [y0, 0.5 * (y0 + y1), y1]
        ty += [y0 + foot, 0.5 * (y0 + y1) + foot, y1 + foot]
        kt_z += [a, a + 0.10 * T, a + 0.55 * (b - a), b, b + 0.3 * sw, nxt - 0.08 * T]
        hz += [h0, h0, h0 + 2.0, h0 + 70.0, h0 + 185.0, h0 + 22.0]
        kz_t += [a, a + 0.08 * T, b - 0.02 * T, b + 0.25 * sw, b + 0.6 * sw, nxt - 0.03 * T]
        tz += [z0 + 45.0, z0, z0, z0 + 62.0, z0 + 18.0, z0 + 40.0]
    out = {
        "heel_y": PchipInterpolator(kt_y, hy)(t),
        "toe_y": PchipInterpolator(kt_y, ty)(t),
        "heel_z": PchipInterpolator(kt_z, hz)(t),
        "toe_z": PchipInterpolator(kz_t, tz)(t),
    }
    return out


def plate_signals(gait: Gait, side: str, t: np.ndarray, mass_kg: float, peak_bw: float,
                  rng: np.random.Generator) -> dict:
    """Lab-frame GRF (N), free moment (Nmm) and CoP (mm) of the belt under ``side`` at times ``t``."""
    fs, fo = gait.fs[side], gait.fo[side]
    bw = mass_kg * G
    k = _cycle_index(t, fs)
    a, b = fs[k], fo[k]
    tau = (t - a) / (b - a)
    stance = (tau > 0.0) & (tau < 1.0)
    tau_c = np.where(stance, tau, 0.0)
    amp = peak_bw * (1.0 + 0.02 * np.clip(rng.standard_normal(fs.size), -2.0, 2.0))[k]
    fz = np.where(stance, bw * amp * _grf_shape(tau_c), 0.0)
    load = fz / bw
    fy = np.where(stance, -0.2 * bw * np.sin(2 * np.pi * tau_c) * np.sin(np.pi * tau_c) ** 0.5, 0.0)
    medial = 1.0 if side == "L" else -1.0
    fx = np.where(stance, medial * 0.05 * bw * np.sin(np.pi * tau_c) * (0.4 + 0.6 * load), 0.0)
    tz = np.where(stance, -medial * 4.0e-3 * bw * 1000.0 * np.sin(2 * np.pi * tau_c) * load, 0.0)  # Nmm
    heel_y = foot_kinematics(gait, side, t)["heel_y"]
    cop_y = heel_y + 25.0 + 185.0 * tau_c ** 0.9
    cop_x = (-95.0 if side == "L" else 95.0) + medial * 12.0 * tau_c
    n = t.size
    noise = rng.standard_normal((4, n))
    return {
        "F": np.stack([fx + 0.6 * noise[0], fy + 0.6 * noise[1], fz + 1.2 * noise[2]]),
        "Tz": tz + 60.0 * noise[3],
        "cop": np.stack([cop_x, cop_y]),
        "stance": stance,
    }


def plate_raw_channels(lab: dict, side: str, origin_used: np.ndarray) -> np.ndarray:
    """6 x n raw type-2 channels (Fx, Fy, Fz in N; Mx, My, Mz in Nmm) in plate coordinates.

    Plate axes (from CORNERS, as ezc3d/Vicon derive them): x = -X lab, y = +Y lab, z = -Z lab (down),
    so raw Fz is negative under load, like Motek/Vicon files. ``origin_used`` is the vector ezc3d
    uses after its sign convention (plate centre minus transducer origin, plate coordinates).
    """
    R = np.diag([-1.0, 1.0, -1.0])           # columns = plate axes in lab
    F = R.T @ lab["F"]
    cx = -(lab["cop"][0] - BELT_CENTRE_X[side])
    cy = lab["cop"][1]
    c = np.stack([cx, cy, np.zeros_like(cx)])
    Mc = np.cross(c.T, F.T).T
    Mc[2] += -lab["Tz"]
    o = np.asarray(origin_used, float)[:, None]
    M = Mc - np.cross(F.T, o.T).T
    return np.concatenate([F, M])


def plate_corners(side: str) -> np.ndarray:
    """4 corners (3 x 4, mm, lab) ordered so that c1-c2 = plate x (-X lab), c1-c4 = plate y (+Y lab)."""
    xc = BELT_CENTRE_X[side]
    hx, hy = BELT_HALF
    xs = [xc - hx, xc + hx, xc + hx, xc - hx]
    ys = [hy, hy, -hy, -hy]
    return np.array([xs, ys, [0.0] * 4])


# ----------------------------------------------------------------------------------------------
# markers
# ----------------------------------------------------------------------------------------------
def markers(gait: Gait, t: np.ndarray, rng: np.random.Generator, height_m: float = 1.75,
            pelvis_y: float = 0.0) -> np.ndarray:
    """3 x 7 x n marker positions (mm) in MARKERS order (pelvis height scaled to the subject)."""
    out = np.empty((3, len(MARKERS), t.size))
    for side, sx in (("L", -1.0), ("R", 1.0)):
        kin = foot_kinematics(gait, side, t)
        ih, it = MARKERS.index(side + "HEE"), MARKERS.index(side + "TOE")
        out[:, ih] = np.stack([np.full(t.size, sx * 95.0), kin["heel_y"] + pelvis_y, kin["heel_z"]])
        out[:, it] = np.stack([np.full(t.size, sx * 118.0), kin["toe_y"] + pelvis_y, kin["toe_z"]])
    fs = gait.fs["R"]
    k = _cycle_index(t, fs)
    ph = (t - fs[k]) / (fs[k + 1] - fs[k])
    bob = 12.0 * np.cos(4 * np.pi * ph)
    sway = 18.0 * np.sin(2 * np.pi * ph)
    yo = 2.0 * np.sin(4 * np.pi * ph) + pelvis_y
    z = 535.0 * height_m + bob                  # sacrum ~ 0.535 x body height
    roll = 4.0 * np.sin(2 * np.pi * ph)
    out[:, MARKERS.index("SACR")] = np.stack([sway, yo - 115.0, z])
    out[:, MARKERS.index("LASI")] = np.stack([sway - 122.0, yo + 62.0, z + 50.0 - roll])
    out[:, MARKERS.index("RASI")] = np.stack([sway + 122.0, yo + 62.0, z + 50.0 + roll])
    out += 0.3 * rng.standard_normal(out.shape)
    return out


# ----------------------------------------------------------------------------------------------
# EMG
# ----------------------------------------------------------------------------------------------
def burst_envelope(t: np.ndarray, onset_s: float, offset_s: float, ramp_s: float = RAMP_S) -> np.ndarray:
    """Noise-free burst envelope (see module docstring); exactly 0 for t <= onset_s and t >= offset_s."""
    t = np.asarray(t, float)
    x_on = t - onset_s
    x_off = offset_s - t
    u = np.clip(x_on / (offset_s - onset_s), 0.0, 1.0)
    body = 0.55 + 0.45 * np.sin(np.pi * u)

    def ramp(x):
        return np.where(x <= 0, 0.0, np.where(x >= ramp_s, 1.0, 0.5 * (1 - np.cos(np.pi * np.clip(x, 0, ramp_s) / ramp_s))))

    return body * ramp(x_on) * ramp(x_off)


def band_magnitude(f: np.ndarray) -> np.ndarray:
    lo, hi = BAND_HZ
    with np.errstate(divide="ignore"):
        hp = 1.0 / np.sqrt(1.0 + (lo / np.maximum(f, 1e-9)) ** 8)
    return hp / np.sqrt(1.0 + (f / hi) ** 8)


def emg_psd(f: np.ndarray, scale: float) -> np.ndarray:
    """Burst-carrier PSD (arbitrary units): Shwedyk model with frequency axis scaled by ``scale``
    (fatigue compresses it: scale 0.85 -> median frequency ~15 % lower), times the amplifier band."""
    x = f / scale
    fl, fh = PSD_FL_HZ, PSD_FH_HZ
    p = fh ** 4 * x ** 2 / ((x ** 2 + fl ** 2) * (x ** 2 + fh ** 2) ** 2)
    return p * band_magnitude(f) ** 2


def median_frequency(scale: float, rate_hz: float) -> float:
    """Theoretical median frequency (Hz) of the burst carrier for a given spectral scale and sampling rate."""
    f = np.arange(0.05, rate_hz / 2.0, 0.05)
    c = np.cumsum(emg_psd(f, scale))
    return float(f[np.searchsorted(c, c[-1] / 2.0)])


def shaped_noise(rng: np.random.Generator, n: int, rate_hz: float, scales: np.ndarray) -> np.ndarray:
    """len(scales) x n unit-RMS Gaussian carriers with PSD ``emg_psd(f, scale)``."""
    w = rng.standard_normal((scales.size, n))
    f = np.fft.rfftfreq(n, 1.0 / rate_hz)
    H = np.sqrt(emg_psd(f[None, :], scales[:, None]))
    x = np.fft.irfft(np.fft.rfft(w, axis=1) * H, n=n, axis=1)
    return x / x.std(axis=1, keepdims=True)


def band_noise(rng: np.random.Generator, shape: tuple, rate_hz: float, rms: np.ndarray) -> np.ndarray:
    n = shape[1]
    w = rng.standard_normal(shape)
    f = np.fft.rfftfreq(n, 1.0 / rate_hz)
    x = np.fft.irfft(np.fft.rfft(w, axis=1) * band_magnitude(f)[None, :], n=n, axis=1)
    return x / x.std(axis=1, keepdims=True) * rms[:, None]


def add_envelopes(env: np.ndarray, t0: float, rate_hz: float, onset_s: float, offset_s: float,
                  amp: float) -> None:
    """Add ``amp * burst_envelope`` in place on a uniformly sampled row (t = t0 + i / rate)."""
    n = env.size
    i0 = max(int(np.floor((onset_s - t0) * rate_hz)), 0)
    i1 = min(int(np.ceil((offset_s - t0) * rate_hz)) + 1, n)
    if i1 <= i0:
        return
    t = t0 + np.arange(i0, i1) / rate_hz
    env[i0:i1] += amp * burst_envelope(t, onset_s, offset_s)


def quantise(x: np.ndarray, lsb: float, bits: int = 16) -> np.ndarray:
    """Integer ADC codes of ``x`` (rounded to the LSB, clipped to the signed range)."""
    lim = 2 ** (bits - 1)
    return np.clip(np.rint(x / lsb), -lim, lim - 1).astype(np.int32)


# ----------------------------------------------------------------------------------------------
# consortium plan and trial synthesis
# ----------------------------------------------------------------------------------------------
TA_ONSET_MS = {"fresh": -50.0, "fatigued": -30.0}
MDF_SCALE_FATIGUED = 0.85
ASYM_RATIO = 1.6
GMED_DELAY_MS = 80.0
ONSET_JITTER_SD_MS = 5.0
AMP_CV = 0.10
CONDITIONS = ("fresh", "fatigued")
BASE_DATE = _dt.date(2026, 9, 14)

SITES = (
    {"site": "lyon", "prefix": "LYO", "mains_hz": 50, "timezone": "Europe/Paris", "format": "vicon_nexus_c3d",
     "consent": ["pooled_analysis", "public_release"],
     "ext": "c3d", "point_hz": 100.0, "analog_hz": 2000.0},
    {"site": "boston", "prefix": "BOS", "mains_hz": 60, "timezone": "America/New_York",
     "consent": ["pooled_analysis"], "embargo_until": "2027-06-30",
     "format": "motion_analysis_cortex_c3d", "ext": "c3d", "point_hz": 120.0, "analog_hz": 1200.0},
    {"site": "oslo", "prefix": "OSL", "mains_hz": 50, "timezone": "Europe/Oslo", "format": "delsys_emgworks_csv",
     "consent": ["pooled_analysis", "public_release"],
     "ext": "csv", "emg_hz": 34000.0 / 27.0, "acc_hz": 4000.0 / 27.0},
)

# ADC grids (16 bit). EMG is stored electrode-referred: +-5 V ADC behind a x1000 amplifier (Lyon, Boston),
# Trigno 11 mV input range (Oslo).
LSB_EMG_V = {"lyon": 10.0 / 65536 / 1000.0, "boston": 10.0 / 65536 / 1000.0, "oslo": 0.011 / 65536}
LSB_FORCE_N = 20.0 / 65536 * 500.0        # +-10 V, 500 N/V
LSB_MOMENT_NMM = 20.0 / 65536 * 1.0e5     # +-10 V, 100 Nm/V
LSB_ACC_G = 1.0 / 2048.0
BOSTON_POINT_SCALE = 0.05                 # mm per count


# plan (all random choices, cheap) ---------------------------------------------------------------
def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *[int(k) for k in key]]))


def plan_consortium(seed: int, subjects_per_site, duration_s: float) -> list[dict]:
    """``subjects_per_site``: one count for every site, or a mapping site -> count."""
    counts = subjects_per_site
    sites = []
    for si, site in enumerate(SITES):
        subjects_per_site = int(counts[site["site"]] if isinstance(counts, dict) else counts)
        groups_rng = seeded_rng(seed, si, 999)
        order = groups_rng.permutation(subjects_per_site)
        group_of = {int(order[0]): "asymmetric_output"} if subjects_per_site >= 1 else {}
        if subjects_per_site >= 2:
            group_of[int(order[1])] = "delayed_onset"
        subjects = []
        for j in range(subjects_per_site):
            r = seeded_rng(seed, si, j, 0)
            sex = "F" if r.random() < 0.5 else "M"
            height = float(np.round(r.uniform(1.58, 1.78) if sex == "F" else r.uniform(1.68, 1.92), 2))
            mass = float(np.round(np.clip(r.uniform(20.5, 27.0) * height ** 2, 55.0, 95.0), 1))
            stride = float(r.uniform(1.06, 1.15))
            group = group_of.get(j, "control")
            musc = {}
            for m in MUSCLES:
                mid = m[0]
                ratio = float(r.uniform(0.97, 1.03))
                if group == "asymmetric_output" and mid == "gastrocnemius_medialis":
                    ratio = ASYM_RATIO
                musc[mid] = {
                    "amp_v": m[3] * float(r.uniform(0.75, 1.3)),
                    "ratio_r_over_l": ratio,
                    "onset_offset_ms": float(r.uniform(-5.0, 5.0)),
                    "spectral_scale": m[4] * float(r.uniform(0.95, 1.05)),
                }
            subjects.append({
                "id": f"{site['prefix']}{j + 1:02d}", "index": j, "sex": sex, "height_m": height, "mass_kg": mass,
                "group": group, "stride_s": stride, "stance_frac": float(r.uniform(0.59, 0.62)),
                "speed_m_s": float(np.round(0.74 * height / stride * r.uniform(0.97, 1.03), 1)),
                "peak_bw": float(r.uniform(1.08, 1.16)), "muscles": musc,
                "date": (BASE_DATE + _dt.timedelta(days=int(7 * j + si + r.integers(0, 5)))).isoformat(),
            })
        sites.append({**site, "index": si, "subjects": subjects})
    return sites


def rel_path(site: dict, subject: dict, condition: str) -> str:
    sid = subject["id"]
    return f"{site['site']}/{sid}/{condition}/{sid}_{condition}_walk01.{site['ext']}"


# trial synthesis ----------------------------------------------------------------------------------
def burst_value_ms(v, stride_s: float) -> float:
    if isinstance(v, tuple):
        return float(v[1])
    return float(v) / 100.0 * stride_s * 1000.0


def synthesize_trial(seed: int, site: dict, subject: dict, condition: str, duration_s: float) -> dict:
    """All signals + the ground truth of one trial (deterministic in its arguments)."""
    si, sj, ci = site["index"], subject["index"], CONDITIONS.index(condition)
    key = (seed, si, sj, 10 + ci)
    fatigued = condition == "fatigued"
    r_gait = seeded_rng(*key, 1)
    stride = subject["stride_s"] * (0.99 if fatigued else 1.0)
    gait = make_gait(r_gait, duration_s, stride, subject["stance_frac"], subject["speed_m_s"])

    # ---- EMG sampling grid
    if site["site"] == "oslo":
        emg_hz = site["emg_hz"]
    else:
        emg_hz = site["analog_hz"]
    n_emg = int(round(duration_s * emg_hz))
    t_emg = np.arange(n_emg) / emg_hz

    env, spec_scales, truth_ch = _burst_plan(seeded_rng(*key, 2), gait, subject, condition,
                                             emg_hz=emg_hz, n_emg=n_emg, duration_s=duration_s)
    emg_codes, lsb = _compose_emg(seeded_rng(*key, 3), env, spec_scales, site, t_emg, emg_hz=emg_hz)
    out = {"gait": gait, "emg_hz": emg_hz, "n_emg": n_emg, "envelopes": env, "emg_codes": emg_codes,
           "emg_lsb_v": lsb, "truth_channels": truth_ch}
    out.update(_motion_streams(key, gait, site, subject, duration_s=duration_s, n_emg=n_emg, t_emg=t_emg))
    return out


def _burst_plan(r_b: np.random.Generator, gait: Gait, subject: dict, condition: str, *, emg_hz: float,
                n_emg: int, duration_s: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Envelopes (channels x samples, V), spectral scales and ground truth of every burst of every cycle."""
    fatigued = condition == "fatigued"
    env = np.zeros((len(CHANNELS), n_emg))
    spec_scales = np.empty(len(CHANNELS))
    truth_ch = {}
    mdf_cache = {}
    for ch, (mid, side) in enumerate(CHANNELS):
        m = next(x for x in MUSCLES if x[0] == mid)
        ms = subject["muscles"][mid]
        side_factor = ms["ratio_r_over_l"] if side == "R" else 1.0
        spec = ms["spectral_scale"] * (MDF_SCALE_FATIGUED if fatigued else 1.0)
        spec_scales[ch] = spec
        fs = gait.fs[side]
        bursts_truth = []
        for bi, (bname, on_v, off_v) in enumerate(m[5]):
            rel_amp = 1.0 if bi == 0 else 0.55
            nominal_on, nominal_off, per_on, per_off, per_fs, per_amp = [], [], [], [], [], []
            for k in range(fs.size - 1):
                T = fs[k + 1] - fs[k]
                on = burst_value_ms(on_v, T)
                off = burst_value_ms(off_v, T)
                if mid == "tibialis_anterior" and bi == 0:
                    on = TA_ONSET_MS[condition]
                on += ms["onset_offset_ms"] if bi == 0 else 0.0
                if mid == "gluteus_medius" and subject["group"] == "delayed_onset":
                    on += GMED_DELAY_MS
                nom_on, nom_off = on, off
                on += float(np.clip(r_b.normal(0.0, ONSET_JITTER_SD_MS), -12.0, 12.0))
                off += float(np.clip(r_b.normal(0.0, ONSET_JITTER_SD_MS), -12.0, 12.0))
                amp_f = float(np.exp(r_b.normal(0.0, AMP_CV) - AMP_CV ** 2 / 2))
                amp = ms["amp_v"] * side_factor * rel_amp * amp_f
                a, b = fs[k] + on / 1000.0, fs[k] + off / 1000.0
                if b > 0.0 and a < duration_s:
                    add_envelopes(env[ch], 0.0, emg_hz, a, b, amp)
                if 0.0 <= a and b <= duration_s and 0.0 <= fs[k] < duration_s:
                    nominal_on.append(nom_on)
                    nominal_off.append(nom_off)
                    per_on.append(round(on, 3))
                    per_off.append(round(off, 3))
                    per_fs.append(round(float(fs[k]), 6))
                    per_amp.append(round(side_factor * amp_f, 4))
            bursts_truth.append({
                "burst": bname,
                "onset_ms_injected": round(float(np.mean(nominal_on)), 3) if nominal_on else None,
                "offset_ms_injected": round(float(np.mean(nominal_off)), 3) if nominal_off else None,
                "onset_ms_mean": round(float(np.mean(per_on)), 3) if per_on else None,
                "offset_ms_mean": round(float(np.mean(per_off)), 3) if per_off else None,
                "amplitude_rms_v": float(f"{ms['amp_v'] * side_factor * rel_amp:.6g}"),
                "foot_strike_s": per_fs, "onset_ms": per_on, "offset_ms": per_off, "amplitude_factor": per_amp,
            })
        rate_key = (round(spec, 9), emg_hz)
        if rate_key not in mdf_cache:
            mdf_cache[rate_key] = median_frequency(spec, emg_hz)
        truth_ch[(mid, side)] = {
            "amplitude_factor": round(side_factor, 4),
            "spectral_compression": MDF_SCALE_FATIGUED if fatigued else 1.0,
            "spectral_scale": round(spec, 6),
            "burst_mdf_hz": round(mdf_cache[rate_key], 2),
            "bursts": bursts_truth,
        }
    return env, spec_scales, truth_ch


def _compose_emg(r_n: np.random.Generator, env: np.ndarray, spec_scales: np.ndarray, site: dict,
                 t_emg: np.ndarray, *, emg_hz: float) -> tuple[np.ndarray, float]:
    """EMG codes: shaped carrier under the envelopes + baseline noise + mains hum + DC, quantised; and the LSB (V)."""
    n_emg = t_emg.size
    carrier = shaped_noise(r_n, n_emg, emg_hz, spec_scales)
    nch = len(CHANNELS)
    base_rms = r_n.uniform(4.0e-6, 6.0e-6, nch)
    baseline = band_noise(r_n, (nch, n_emg), emg_hz, base_rms)
    hum_amp = r_n.uniform(10e-6, 30e-6, nch)
    ph1, ph3 = r_n.uniform(0, 2 * np.pi, nch), r_n.uniform(0, 2 * np.pi, nch)
    w = 2 * np.pi * site["mains_hz"] * t_emg
    hum = hum_amp[:, None] * (np.sin(w[None, :] + ph1[:, None]) + 0.2 * np.sin(3 * w[None, :] + ph3[:, None]))
    dc = r_n.uniform(-8e-6, 8e-6, nch)
    emg_v = env * carrier + baseline + hum + dc[:, None]
    lsb = LSB_EMG_V[site["site"]]
    return quantise(emg_v, lsb), lsb


def _motion_streams(key: tuple, gait: Gait, site: dict, subject: dict, *, duration_s: float, n_emg: int,
                    t_emg: np.ndarray) -> dict:
    """Oslo: accelerometer codes (Delsys); other sites: markers and force plates on the analog grid."""
    if site["site"] == "oslo":
        acc_hz = site["acc_hz"]
        n_acc = int(np.floor(n_emg * 2 / 17))
        t_acc = np.arange(n_acc) / acc_hz
        return dict(acc_hz=acc_hz, n_acc=n_acc, acc_codes=acc_codes(seeded_rng(*key, 4), gait, t_acc))
    point_hz, analog_hz = site["point_hz"], site["analog_hz"]
    n_pt = int(round(duration_s * point_hz))
    n_an = n_pt * int(round(analog_hz / point_hz))
    if n_an != n_emg:
        raise AssertionError("analog and EMG grids differ")
    t_pt = np.arange(n_pt) / point_hz
    r_p = seeded_rng(*key, 5)
    out = {"markers": markers(gait, t_pt, r_p, height_m=subject["height_m"])}
    plates = {}
    for side in ("L", "R"):
        plates[side] = plate_signals(gait, side, t_emg, subject["mass_kg"], subject["peak_bw"], r_p)
    out.update(point_hz=point_hz, analog_hz=analog_hz, n_pt=n_pt, plates=plates)
    return out


def acc_codes(rng: np.random.Generator, gait: Gait, t: np.ndarray) -> np.ndarray:
    """16 sensors x 3 axes x n accelerometer codes (1/2048 g): gravity + cycle-locked motion + impacts."""
    out = np.empty((len(CHANNELS), 3, t.size))
    for ch, (mid, side) in enumerate(CHANNELS):
        fs = gait.fs[side]
        k = _cycle_index(t, fs)
        ph = (t - fs[k]) / (fs[k + 1] - fs[k])
        gain = 0.6 if mid in ("tibialis_anterior", "gastrocnemius_medialis", "soleus") else 0.35
        impact = np.exp(-0.5 * ((ph - 0.01) / 0.012) ** 2)
        out[ch, 0] = gain * 0.5 * np.sin(2 * np.pi * ph + 0.3 * ch) + 0.05
        out[ch, 1] = gain * 0.3 * np.sin(4 * np.pi * ph) - 0.08 + 0.3 * gain * impact
        out[ch, 2] = -1.0 + gain * 0.25 * np.cos(2 * np.pi * ph) + gain * 1.2 * impact
    out += 0.01 * rng.standard_normal(out.shape)
    return quantise(out, LSB_ACC_G)


def event_list(gait: Gait, duration_s: float) -> list[tuple[float, str, str]]:
    """(time s, 'foot_strike'|'foot_off', side) inside [0, duration), sorted by time then side."""
    ev = []
    for side in ("L", "R"):
        for name, arr in (("foot_strike", gait.fs[side]), ("foot_off", gait.fo[side])):
            for x in arr:
                if 0.0 <= x < duration_s:
                    ev.append((float(x), name, side))
    ev.sort()
    return ev
