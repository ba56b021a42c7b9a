"""Per-channel EMG signal QC (transforms.qc): synthetic truths and real vendor files.

Expectations on real files come from ../shared/fixtures/README.md (and from facts recomputed
here independently, e.g. raw ADC counts), never from the module's own output.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import ezc3d
import numpy as np
import polars as pl
import pytest
from conftest import fixture
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import signal

from transforms import qc
from transforms.qc import (
    CLIPPING_BAD_FRACTION,
    FLAG_SEVERITY,
    MAINS_BAD_RATIO,
    MAINS_WARN_RATIO,
    channel_qc,
    unit_to_mv_factor,
    verdict_from_flags,
)
from transforms.qc_trial import adc_rails, channel_qc_table, looks_time_normalised

FS = 1000.0


# --------------------------------------------------------------------------- synthetic EMG
def emg_like(seed: int = 0, duration_s: float = 10.0, rate_hz: float = FS, stride_s: float = 1.1,
             amp_mv: float = 0.3) -> np.ndarray:
    """Band-limited (30-150 Hz) Gaussian carrier modulated by one burst per stride on a 5 % floor."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * rate_hz)
    t = np.arange(n) / rate_hz
    sos = signal.butter(2, [30.0, 150.0], btype="bandpass", fs=rate_hz, output="sos")
    carrier = signal.sosfiltfilt(sos, rng.standard_normal(n))
    carrier /= carrier.std()
    phase = (t % stride_s) / stride_s
    env = 0.05 + np.where(phase < 0.4, np.sin(np.pi * phase / 0.4) ** 2, 0.0)
    return amp_mv * env * carrier


def quantise(x: np.ndarray, *, lsb: float, bits: int = 12) -> np.ndarray:
    """ADC model: round to counts, saturate at the signed rails, return counts * lsb."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.round(x / lsb), lo, hi) * lsb


@pytest.fixture(scope="module")
def clean():
    return emg_like()


def test_clean_burst_emg_passes(clean):
    r = channel_qc(clean, rate_hz=FS, mains_hz=50.0, unit="mV")
    assert r["verdict"] == "ok", r["flags"]
    assert r["flags"] == []
    # carrier is 30-150 Hz: the band median must sit inside it
    assert 30.0 < r["median_freq_hz"] < 150.0
    assert r["nan_frac"] == 0.0 and r["clipping_frac"] == 0.0
    assert r["rms_mv"] == pytest.approx(np.std(clean))
    assert r["peak_abs_mv"] == pytest.approx(np.abs(clean).max())
    assert r["amplitude_basis"] == "electrode_mv"


def test_clean_emg_passes_after_12bit_quantisation(clean):
    # a realistic ADC (12 bits over +-2.5 mV, LSB 1.2 uV) must not create clipping or dropouts
    xq = quantise(clean, lsb=5.0 / 4096)
    r = channel_qc(xq, rate_hz=FS, adc_range=(-2048 * 5.0 / 4096, 2047 * 5.0 / 4096))
    assert r["verdict"] == "ok", r["flags"]


@pytest.mark.parametrize("hum_to_emg_power", [1.5, 10.0, 100.0])
def test_strong_50hz_hum_is_flagged_by_50_not_by_60(clean, hum_to_emg_power):
    t = np.arange(clean.size) / FS
    amp = math.sqrt(2.0 * hum_to_emg_power * clean.var())  # sine power = amp^2 / 2
    x = clean + amp * np.sin(2 * np.pi * 50.0 * t + 0.3)
    r50 = channel_qc(x, rate_hz=FS, mains_hz=50.0)
    r60 = channel_qc(x, rate_hz=FS, mains_hz=60.0)
    # analytic lower bound: windows hold all the hum; the band holds at most hum + all EMG power
    assert r50["mains_ratio"] >= 0.97 * hum_to_emg_power / (hum_to_emg_power + 1.0)
    assert "mains_dominated" in r50["flags"] and r50["verdict"] == "bad"
    assert r60["mains_ratio"] < MAINS_WARN_RATIO
    assert not {"mains_dominated", "mains_noise"} & set(r60["flags"])


def test_weak_hum_is_not_flagged(clean):
    t = np.arange(clean.size) / FS
    amp = math.sqrt(2.0 * 0.02 * clean.var())  # hum at 2 % of the EMG power
    r = channel_qc(clean + amp * np.sin(2 * np.pi * 50.0 * t), rate_hz=FS, mains_hz=50.0)
    assert r["mains_ratio"] < MAINS_WARN_RATIO and r["verdict"] == "ok"


def test_60hz_hum_flagged_at_a_60hz_site(clean):
    t = np.arange(clean.size) / FS
    x = clean + 3.0 * clean.std() * np.sin(2 * np.pi * 60.0 * t)
    assert "mains_dominated" in channel_qc(x, rate_hz=FS, mains_hz=60.0)["flags"]
    assert "mains_dominated" not in channel_qc(x, rate_hz=FS, mains_hz=50.0)["flags"]


@pytest.mark.parametrize("quantile", [0.998, 0.995, 0.97, 0.9])
def test_clipping_fraction_is_the_fraction_beyond_the_rails(clean, quantile):
    lsb = 1e-3
    c = np.quantile(np.abs(clean), quantile)
    rail = np.floor(c / lsb) * lsb
    xq = np.clip(np.round(clean / lsb) * lsb, -rail, rail)
    expected = np.count_nonzero(np.abs(np.round(clean / lsb) * lsb) >= rail - 1e-12) / clean.size
    known = channel_qc(xq, rate_hz=FS, adc_range=(-rail, rail))
    inferred = channel_qc(xq, rate_hz=FS)
    assert known["clipping_frac"] == pytest.approx(expected, abs=1e-12)
    assert inferred["clipping_frac"] == pytest.approx(expected, abs=1e-12)
    code = "clipping_severe" if expected > CLIPPING_BAD_FRACTION else "clipping"
    assert code in known["flags"] and code in inferred["flags"]
    assert known["verdict"] == ("bad" if expected > CLIPPING_BAD_FRACTION else "warn")


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=0.05, max_value=0.95), st.integers(min_value=0, max_value=3))
def test_clipping_fraction_property(frac_of_peak, seed):
    x = quantise(emg_like(seed, duration_s=2.0), lsb=1e-3, bits=16)
    rail = np.floor(frac_of_peak * np.abs(x).max() / 1e-3) * 1e-3
    xc = np.clip(x, -rail, rail)
    expected = np.count_nonzero(np.abs(x) >= rail) / x.size
    r = channel_qc(xc, rate_hz=FS, adc_range=(-rail, rail))
    assert r["clipping_frac"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("lsb_of_sd", [0.002, 0.02, 0.4])
@pytest.mark.parametrize("quiet_first", [False, True])
def test_inferred_rails_need_64_levels_counted_over_the_whole_channel(clean, lsb_of_sd, quiet_first):
    """Rails are inferred from the channel's distinct levels (at least ``CLIPPING_INFER_MIN_LEVELS``): counted
    over the whole channel, also when its first seconds are a flat, coarsely quantised rest. The expected
    fraction comes from the samples at the clip levels, counted here."""
    lsb = lsb_of_sd * clean.std()
    x = np.round(clean / lsb) * lsb
    if quiet_first:  # 5 s of rest at the ADC's last bits: a handful of levels before the bursts
        x = np.concatenate([np.round(np.random.default_rng(1).normal(0, 1.2, int(5 * FS))) * lsb, x])
    rail = np.floor(np.quantile(np.abs(x), 0.97) / lsb) * lsb
    xc = np.clip(x, -rail, rail)
    levels = np.unique(xc).size
    expected = np.count_nonzero(np.abs(xc) >= rail) / xc.size if levels >= qc.CLIPPING_INFER_MIN_LEVELS else 0.0
    assert (levels >= qc.CLIPPING_INFER_MIN_LEVELS) == (lsb_of_sd < 0.4)  # steps of 0.4 SD: too coarse
    assert channel_qc(xc, rate_hz=FS)["clipping_frac"] == pytest.approx(expected, abs=1e-12)
    if quiet_first:
        assert np.unique(xc[:4096]).size < qc.CLIPPING_INFER_MIN_LEVELS  # the rest alone would not show it


def test_isolated_extremes_are_not_inferred_rails(clean):
    # no adc_range: a continuous signal has unique extremes -> no clipping
    assert channel_qc(clean, rate_hz=FS)["clipping_frac"] == 0.0


def test_rectified_and_enveloped_signals_are_flagged_processed(clean):
    sos = signal.butter(4, 6.0, fs=FS, output="sos")
    envelope = signal.sosfiltfilt(sos, np.abs(clean))
    for x in (np.abs(clean), envelope, -envelope):
        r = channel_qc(x, rate_hz=FS)
        assert "already_processed" in r["flags"] and r["verdict"] == "bad"
        assert "baseline_offset" not in r["flags"]


def test_dc_offset_raw_emg_is_offset_not_processed(clean):
    r = channel_qc(clean + 5.0 * clean.std(), rate_hz=FS)
    assert "baseline_offset" in r["flags"] and "already_processed" not in r["flags"]
    assert r["dc_to_rms"] == pytest.approx((clean.mean() + 5.0 * clean.std()) / clean.std())
    assert r["verdict"] == "warn"


@pytest.mark.parametrize("rate", [1000.0, 2000.0])
def test_white_noise_is_flagged(rate):
    x = np.random.default_rng(7).standard_normal(int(10 * rate)) * 0.05
    r = channel_qc(x, rate_hz=rate)
    assert "white_noise" in r["flags"] and r["verdict"] == "bad"
    assert r["median_freq_ratio"] == pytest.approx(1.0, abs=0.1)  # white: median at rate / 4


def test_flat_and_zero_channels():
    z = channel_qc(np.zeros(3000), rate_hz=FS)
    assert z["flags"][:2] == ["flat", "all_zero"] and z["verdict"] == "bad"
    c = channel_qc(np.full(3000, 1.25), rate_hz=FS, unit="V")
    assert "flat" in c["flags"] and "all_zero" not in c["flags"]


def test_nan_runs(clean):
    x = clean.copy()
    x[1000:1250] = np.nan  # 250 ms
    x[5000:5010] = np.nan
    r = channel_qc(x, rate_hz=FS)
    assert r["nan_frac"] == pytest.approx(260 / x.size)
    assert r["longest_nan_run_s"] == pytest.approx(0.25)
    assert "nan_samples" in r["flags"] and r["verdict"] == "warn"
    x[: int(0.6 * x.size)] = np.nan
    assert "mostly_nan" in channel_qc(x, rate_hz=FS)["flags"]
    r_all = channel_qc(np.full(100, np.nan), rate_hz=FS)
    assert r_all["flags"] == ["all_nan"] and r_all["verdict"] == "bad"
    assert math.isnan(r_all["rms_mv"])


def test_dropout_run_is_measured(clean):
    x = clean.copy()
    x[2000:2300] = 0.0123  # a 0.3 s stuck value (wireless dropout / sample-and-hold)
    r = channel_qc(x, rate_hz=FS)
    assert "dropouts" in r["flags"]
    assert r["longest_dropout_s"] == pytest.approx(0.3)
    assert r["dropout_frac"] == pytest.approx(300 / x.size)


def test_amplitude_context(clean):
    # skin-level mV: 0.3 mV bursts are fine, x100 (tens of mV) is impossible at the skin
    assert "implausible_amplitude" not in channel_qc(clean, rate_hz=FS, unit="mV")["flags"]
    assert "implausible_amplitude" in channel_qc(clean * 100, rate_hz=FS, unit="mV")["flags"]
    # the same numbers in uV are tiny
    assert "implausible_amplitude" not in channel_qc(clean * 100, rate_hz=FS, unit="uV")["flags"]
    # amplifier output in V (x1000 gain -> ~0.3 V): plausible as ADC input, implausible as skin level
    out_v = clean  # 0.3 "V" bursts
    r = channel_qc(out_v, rate_hz=FS, unit="V")
    assert r["amplitude_basis"] == "amplifier_output" and "implausible_amplitude" not in r["flags"]
    assert "implausible_amplitude" in channel_qc(out_v, rate_hz=FS, unit="V", gain=1.0)["flags"]
    assert "implausible_amplitude" not in channel_qc(out_v, rate_hz=FS, unit="V", gain=1000.0)["flags"]
    # hundreds of volts cannot reach an ADC
    assert "implausible_amplitude" in channel_qc(out_v * 1000, rate_hz=FS, unit="V")["flags"]
    # unknown unit: not judged
    r = channel_qc(clean * 1e6, rate_hz=FS, unit="counts")
    assert r["amplitude_basis"] == "unknown" and math.isnan(r["rms_mv"])


def test_unit_factors():
    assert unit_to_mv_factor("V") == 1000.0
    assert unit_to_mv_factor(" mv ") == 1.0
    assert unit_to_mv_factor("µV") == unit_to_mv_factor("uV") == 1e-3
    assert math.isnan(unit_to_mv_factor("N")) and math.isnan(unit_to_mv_factor(None))


def test_low_rate_and_short_channels(clean):
    assert "low_sampling_rate" in channel_qc(clean[::4], rate_hz=250.0)["flags"]
    short = channel_qc(clean[:100], rate_hz=FS)
    assert "too_short" in short["flags"] and math.isnan(short["median_freq_hz"])


def test_input_is_not_modified_and_validation(clean):
    x = clean.copy()
    channel_qc(x, rate_hz=FS)
    assert np.array_equal(x, clean)
    with pytest.raises(ValueError):
        channel_qc(np.zeros((2, 10)), rate_hz=FS)
    with pytest.raises(ValueError):
        channel_qc(clean, rate_hz=0.0)
    with pytest.raises(ValueError):
        channel_qc(clean, rate_hz=FS, gain=-1.0)
    with pytest.raises(ValueError):
        channel_qc(clean, rate_hz=FS, adc_range=(1.0, -1.0))
    with pytest.raises(ValueError):
        channel_qc(np.array([1.0, np.inf]), rate_hz=FS)


def test_flag_registry_and_verdicts():
    assert set(FLAG_SEVERITY.values()) <= {"warn", "bad"}
    assert all(c == c.lower() and " " not in c for c in FLAG_SEVERITY)
    assert verdict_from_flags([]) == "ok"
    assert verdict_from_flags(["baseline_offset", "clipping"]) == "warn"
    assert verdict_from_flags(["clipping", "white_noise"]) == "bad"


def test_adc_rails():
    assert adc_rails(bits=12, scale=1.0) == (-2048.0, 2047.0)
    assert adc_rails(bits=12, scale=1.0, offset=2048, signed=False) == (-2048.0, 2047.0)
    lo, hi = adc_rails(bits=16, scale=-0.5, gen_scale=2.0)
    assert (lo, hi) == (-32767.0, 32768.0)
    with pytest.raises(ValueError):
        adc_rails(bits=0, scale=1.0)


def test_looks_time_normalised():
    assert looks_time_normalised(101, rate_hz=100.0)  # 0-100 % over 1 s
    assert looks_time_normalised(51, rate_hz=50.0)
    assert looks_time_normalised(101, rate_hz=1.0)  # 100 % mapped to 100 s
    assert looks_time_normalised(1001, rate_hz=100.0)  # 10 s
    assert not looks_time_normalised(1001, rate_hz=120.0)  # 8.33 s: a recording
    assert not looks_time_normalised(337, rate_hz=100.0)
    assert not looks_time_normalised(100, rate_hz=100.0)
    assert looks_time_normalised(101, rate_hz=1000.0, duration_s=1.0)


def test_table_columns_and_broadcasting(clean):
    emg = np.stack([clean, np.zeros_like(clean), np.abs(clean)])
    t = channel_qc_table(emg, labels=["a", "b", "c"], rate_hz=FS, units="mV")
    for col in ("channel", "label", "verdict", "flags", "clipping_frac", "mains_ratio", "median_freq_hz",
                "spectral_flatness", "rms_mv", "dc_offset_mv", "nan_frac", "qc_version"):
        assert col in t.columns
    assert t["channel"].to_list() == [0, 1, 2]
    assert t["verdict"].to_list() == ["ok", "bad", "bad"]
    assert t["flags"].to_list()[0] == ""
    assert t["flags"].to_list()[1] == "flat,all_zero"
    assert "already_processed" in t["flags"].to_list()[2].split(",")
    with pytest.raises(ValueError):
        channel_qc_table(emg, labels=["a"], rate_hz=FS)
    with pytest.raises(ValueError):
        channel_qc_table(emg, labels=["a", "b", "c"], rate_hz=FS, units=["mV", "mV"])


def test_module_is_pure():
    """No I/O: the standard library's math, numpy, scipy, polars and other pure ``transforms`` modules only."""
    src = Path(qc.__file__).read_text()
    imports = {m.split(".")[0] for m in re.findall(r"^(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", src, flags=re.M)
               for m in m if m}
    assert imports <= {"__future__", "math", "collections", "numpy", "polars", "scipy", "transforms"}, imports
    assert "open(" not in src and "Path(" not in src


# --------------------------------------------------------------------------- real files
@functools.lru_cache(maxsize=None)
def c3d(rel: str):
    c = ezc3d.c3d(str(fixture(rel)))
    a = c["parameters"]["ANALOG"]
    return {
        "x": c["data"]["analogs"][0],
        "labels": [s.strip() for s in a["LABELS"]["value"]],
        "desc": list(a["DESCRIPTIONS"]["value"]) if "DESCRIPTIONS" in a else [],
        "units": list(a["UNITS"]["value"]),
        "rate": float(a["RATE"]["value"][0]),
        "a": a,
        "frames": c["data"]["points"].shape[2],
    }


def table(rel: str, idx, **kw) -> pl.DataFrame:
    d = c3d(rel)
    return channel_qc_table(d["x"][idx], labels=[d["labels"][i] for i in idx], rate_hz=d["rate"],
                            units=[d["units"][i] for i in idx], **kw)


def flags_of(t: pl.DataFrame) -> dict[str, set[str]]:
    return {lab: set(f.split(",")) - {""} for lab, f in zip(t["label"], t["flags"])}


def test_treadmill_unconnected_emg_is_mains_only():
    d = c3d("gaitalytics/treadmill_events.c3d")
    idx = [i for i, s in enumerate(d["desc"]) if s.startswith("Analog EMG::Voltage")]
    assert len(idx) == 12
    t = table("gaitalytics/treadmill_events.c3d", idx, mains_hz=50.0)
    assert t["verdict"].to_list() == ["bad"] * 12
    assert all("mains_dominated" in f for f in flags_of(t).values())
    # README: 72-84 % of the power at 48-52 Hz; harmonics only add to the band ratio
    assert t["mains_ratio"].min() >= 0.70
    assert t["median_freq_hz"].to_numpy() == pytest.approx(50.0, abs=1.0)


def test_pig_motion3_emg_is_white_noise():
    d = c3d("btk/PiG_Motion3_FF.c3d")
    idx = [i for i, lab in enumerate(d["labels"]) if lab.startswith("EMG")]
    assert len(idx) == 16
    t = table("btk/PiG_Motion3_FF.c3d", idx)
    assert all("white_noise" in f for f in flags_of(t).values())
    assert set(t["verdict"]) == {"bad"}


def test_gait_c3d_12bit_rails_flag_clipping():
    d = c3d("btk/Gait.c3d")
    a = d["a"]
    bits = int(a["BITS"]["value"][0])
    signed = a["FORMAT"]["value"][0] == "SIGNED"
    assert (bits, signed) == (12, True)
    gen = float(a["GEN_SCALE"]["value"][0])
    idx = list(range(12, 28))  # the 16 EMG channels (French labels)
    labels = [d["labels"][i] for i in idx]
    assert {"LREC", "RREC", "LVAS", "RTIB", "LSOL", "RJUM"} <= set(labels)
    rails = []
    expected = {}
    for i in idx:
        scale, offset = float(a["SCALE"]["value"][i]), float(a["OFFSET"]["value"][i])
        rails.append(adc_rails(bits=bits, scale=scale, offset=offset, gen_scale=gen, signed=signed))
        counts = d["x"][i] / (scale * gen) + offset  # back to raw ADC counts
        assert np.allclose(counts, np.round(counts), atol=1e-6)
        counts = np.round(counts)
        expected[d["labels"][i]] = np.count_nonzero((counts == -2048) | (counts == 2047)) / counts.size
    lrec = labels.index("LREC")
    assert rails[lrec] == pytest.approx((-2048 * float(a["SCALE"]["value"][12]), 2047 * float(a["SCALE"]["value"][12])))
    assert d["x"][12].min() == pytest.approx(rails[lrec][0]) and d["x"][12].max() == pytest.approx(rails[lrec][1])
    assert expected["LREC"] > 0 and expected["RREC"] > 0  # README: LREC/RREC clip at -2048/+2047
    t = table("btk/Gait.c3d", idx, adc_range=rails)
    fl = flags_of(t)
    for lab, frac in zip(t["label"], t["clipping_frac"]):
        assert frac == pytest.approx(expected[lab], abs=1e-12)
        assert ("clipping" in fl[lab] or "clipping_severe" in fl[lab]) == (expected[lab] > 0)
    assert "clipping" in fl["LREC"] and "clipping" in fl["RREC"]
    # raw EMG, plausible ADC voltages: no channel is rejected outright
    assert "bad" not in set(t["verdict"])


def test_functional_walk_impossible_volts():
    d = c3d("btk/FunctionalWalk.c3d")
    idx = [i for i, lab in enumerate(d["labels"]) if lab.startswith("EMG") or "FootSwitch" in lab]
    assert len(idx) == 18
    t = table("btk/FunctionalWalk.c3d", idx)
    fl = flags_of(t)
    assert all("implausible_amplitude" in f for f in fl.values())
    assert all("white_noise" in f for f in fl.values())
    assert (t["peak_abs_mv"] > 250e3).all()  # hundreds of "V"
    assert set(t["verdict"]) == {"bad"}


@pytest.mark.parametrize("rel", ["btk/ADemo1_rewrite_c3d_pc_float.c3d", "btk/ADemo1_rewrite_c3d_pc_integer.c3d"])
def test_ademo1_emg_is_already_processed(rel):
    d = c3d(rel)
    idx = [i for i, u in enumerate(d["units"]) if u.strip() == "mV"]
    assert len(idx) == 8 and d["rate"] == 400.0
    t = table(rel, idx)
    assert all("already_processed" in f for f in flags_of(t).values())
    assert set(t["verdict"]) == {"bad"}


def test_analysis_c3d_is_flat_and_not_raw():
    d = c3d("btk/Analysis.c3d")
    assert d["frames"] == 101
    assert looks_time_normalised(d["frames"], rate_hz=d["rate"])
    idx = list(range(len(d["labels"])))
    t = table("btk/Analysis.c3d", idx, n_frames=d["frames"])
    fl = flags_of(t)
    assert all({"flat", "all_zero", "time_normalised"} <= f for f in fl.values())
    assert set(t["verdict"]) == {"bad"}


def test_test_small_real_emg_passes_and_saturated_channels_clip():
    rel = "gaitalytics/test_small.c3d"
    d = c3d(rel)
    names = ["Voltage.RTA", "Voltage.LTA", "Voltage.RGAS", "Voltage.LGAS", "Voltage.RVL", "Voltage.LVL"]
    idx = [d["labels"].index(n) for n in names]
    assert {d["units"][i] for i in idx} == {"V"} and d["rate"] == 1000.0
    t = table(rel, idx)
    assert "bad" not in set(t["verdict"]), t.select("label", "flags")
    # amplifier-output volts: hundreds of mV, only plausible because the basis is the ADC input
    assert set(t["amplitude_basis"]) == {"amplifier_output"}
    assert (t["peak_abs_mv"] > 100.0).all()
    t_skin = table(rel, idx, gain=1.0)  # claiming skin-level volts must be rejected
    assert all("implausible_amplitude" in f for f in flags_of(t_skin).values())
    # README: the amplifier saturates at +-1.25 V; RTA touches it but stays usable
    t_rng = table(rel, idx, adc_range=(-1.25, 1.25))
    assert "bad" not in set(t_rng["verdict"])
    sat = [d["labels"].index("Voltage.15"), d["labels"].index("Voltage.16")]
    ts = table(rel, sat)
    assert all("clipping_severe" in f for f in flags_of(ts).values())
    for i in sat:
        assert d["x"][i].min() == pytest.approx(-1.25, abs=1e-3) and d["x"][i].max() == pytest.approx(1.25, abs=1e-3)
    at_rail = [np.count_nonzero((d["x"][i] == d["x"][i].min()) | (d["x"][i] == d["x"][i].max())) / d["x"].shape[1]
               for i in sat]
    assert ts["clipping_frac"].to_list() == pytest.approx(at_rail, abs=1e-12)


def test_synergies_treadmill_emg_all_pass():
    df = pl.read_csv(fixture("synergies/derived/ID0012_TW_01_raw_emg.csv"))
    time = df["time"].to_numpy()
    rate = 1.0 / np.median(np.diff(time))
    assert rate == pytest.approx(1000.0)
    emg = df.drop("time").to_numpy().T
    assert emg.shape[0] == 13
    t = channel_qc_table(emg, labels=df.columns[1:], rate_hz=rate, units="uV", mains_hz=50.0)
    assert set(t["verdict"]) == {"ok"}, t.filter(pl.col("verdict") != "ok").select("label", "flags")
    assert t["mains_ratio"].max() < MAINS_WARN_RATIO < MAINS_BAD_RATIO


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(min_value=1, max_value=1500),
               elements=st.one_of(st.floats(-1e3, 1e3, allow_nan=False), st.just(np.nan))),
    st.sampled_from([100.0, 400.0, 1000.0, 2048.0]),
    st.sampled_from(["V", "mV", "uV", "N", None]),
)
def test_any_input_gives_a_consistent_verdict(x, rate, unit):
    r = channel_qc(x, rate_hz=rate, unit=unit)
    assert set(r["flags"]) <= set(FLAG_SEVERITY)
    assert r["verdict"] == verdict_from_flags(r["flags"])
    assert 0.0 <= r["nan_frac"] <= 1.0
    if math.isfinite(r["clipping_frac"]):
        assert 0.0 <= r["clipping_frac"] <= 1.0


def test_table_per_label_ranges_and_gains(clean):
    emg = np.stack([clean, np.clip(clean, -0.2, 0.2)])
    t = channel_qc_table(emg, labels=["free", "clipped"], rate_hz=FS, units=["V", "V"],
                         adc_range={"clipped": (-0.2, 0.2)}, gain=[1000.0, None])
    assert t["amplitude_basis"].to_list() == ["electrode_mv", "amplifier_output"]
    assert t["clipping_basis"].to_list() == ["inferred", "adc_range"]
    assert t["clipping_frac"][1] == pytest.approx(np.mean(np.abs(clean) >= 0.2 - 0.4 * 5e-5))


def test_coarse_quantisation_is_not_inferred_clipping(clean):
    # 20 levels: the extremes repeat by chance, but nothing is clipped
    lsb = np.abs(clean).max() / 10.0
    xq = np.round(clean / lsb) * lsb
    assert len(np.unique(xq)) < qc.CLIPPING_INFER_MIN_LEVELS
    assert channel_qc(xq, rate_hz=FS)["clipping_frac"] == 0.0


def test_delsys_leading_zero_samples_are_a_dropout():
    # README: the first ~136 EMG samples of the Trigno export are 0
    lines = Path(fixture("delsys/truncated_trigno_sample.csv")).read_text(encoding="latin-1").splitlines()
    rate = float(re.search(r"EMG 10 Sampling frequency: ([0-9.e+]+)", "\n".join(lines[:20])).group(1))
    head = next(i for i, line in enumerate(lines) if line.startswith("X[s]"))
    col = lines[head].split(",").index('"Mini sensor 10: EMG 10"')
    emg = np.array([float(r.split(",")[col]) for r in lines[head + 1:]
                    if r.strip() and r.split(",")[col].strip() != ""])
    lead = int(np.flatnonzero(emg != 0.0)[0])
    assert 130 <= lead <= 140 and lead / rate >= qc.DROPOUT_MIN_RUN_S
    r = channel_qc(emg, rate_hz=rate, unit="V")
    assert "dropouts" in r["flags"]
    assert r["longest_dropout_s"] == pytest.approx(lead / rate)


@pytest.mark.parametrize("seed", [0, 1])
def test_amplitude_moments_equal_their_definitions(seed):
    """rms_mv, dc_offset_mv and skewness against their definitions computed here (scipy.stats' biased skewness),
    on real EMG and on a one-sided (exponential, skewness 2) channel; V stored, reported in mV."""
    from scipy import stats

    raw = emg_like(seed=seed) * 1e-3  # mV -> V
    rng = np.random.default_rng(seed)
    for x in (raw, rng.exponential(0.05, 200_000) - 0.01):
        m = channel_qc(x, rate_hz=FS, unit="V")
        assert m["dc_offset_mv"] == pytest.approx(1e3 * x.mean(), rel=1e-12)
        assert m["rms_mv"] == pytest.approx(1e3 * x.std(), rel=1e-12)
        assert m["skewness"] == pytest.approx(stats.skew(x), rel=1e-10)
    assert m["skewness"] == pytest.approx(2.0, abs=0.05)  # the exponential's
