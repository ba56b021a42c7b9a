"""Oracles for transforms.spectral (MNF, MDF, bursts, sliding windows, slope)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from transforms.spectral import (
    WELCH_SEGMENT_S,
    band_psd,
    burst_frequencies,
    frequency_slope,
    mean_frequency,
    median_frequency,
    sliding_window_frequencies,
    spectral_frequencies,
)

FS = 1000.0


def _t(duration_s, fs=FS):
    return np.arange(int(duration_s * fs)) / fs


def test_tone_on_bin_centre_gives_exact_mdf_and_mnf():
    # 100 Hz is a multiple of the 4 Hz bin (0.25 s at 1000 Hz); Hann leakage is symmetric.
    x = np.sin(2 * np.pi * 100.0 * _t(5))
    mnf, mdf = spectral_frequencies(x, rate_hz=FS)
    assert mdf == pytest.approx(100.0, abs=1e-9)
    assert mnf == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("f0", [37.3, 97.3, 201.7, 333.3])
@pytest.mark.parametrize("segment_s", [WELCH_SEGMENT_S, 1.0])
def test_off_bin_tone_mdf_within_one_bin(f0, segment_s):
    x = np.sin(2 * np.pi * f0 * _t(8) + 0.3)
    bin_hz = 1.0 / segment_s
    assert abs(median_frequency(x, rate_hz=FS, welch_segment_s=segment_s) - f0) <= bin_hz
    assert abs(mean_frequency(x, rate_hz=FS, welch_segment_s=segment_s) - f0) <= bin_hz


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_band_limited_flat_noise_mdf_is_band_centre(seed):
    # Flat spectrum on 20-450 Hz: half the power lies below (20 + 450) / 2 = 235 Hz, and the
    # power-weighted mean is also 235 Hz.
    rng = np.random.default_rng(seed)
    w = rng.normal(size=int(30 * FS))
    spec = np.fft.rfft(w)
    f = np.fft.rfftfreq(w.size, 1 / FS)
    spec[(f < 20.0) | (f > 450.0)] = 0.0
    x = np.fft.irfft(spec, n=w.size)
    mnf, mdf = spectral_frequencies(x, rate_hz=FS)
    assert mdf == pytest.approx(235.0, abs=10.0)
    assert mnf == pytest.approx(235.0, abs=10.0)


def _gaussian_spectrum_noise(rate_hz, centre_hz, width_hz, duration_s, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=int(duration_s * rate_hz))
    spec = np.fft.rfft(w)
    f = np.fft.rfftfreq(w.size, 1 / rate_hz)
    spec *= np.exp(-0.5 * ((f - centre_hz) / width_hz) ** 2)
    return np.fft.irfft(spec, n=w.size)


@pytest.mark.parametrize(("up", "down"), [(2, 1), (2, 3)])
def test_time_stretch_scales_frequencies(up, down):
    # Resampling by up/down at the same nominal rate stretches time by k = up/down, which
    # compresses the spectrum by k: every frequency (hence MNF and MDF) is divided by k.
    fs = 2000.0
    x = _gaussian_spectrum_noise(fs, 120.0, 25.0, 40.0, seed=4)
    y = signal.resample_poly(x, up, down)
    k = up / down
    mnf_x, mdf_x = spectral_frequencies(x, rate_hz=fs)
    mnf_y, mdf_y = spectral_frequencies(y, rate_hz=fs)
    assert mdf_y == pytest.approx(mdf_x / k, rel=0.01)
    assert mnf_y == pytest.approx(mnf_x / k, rel=0.01)


def test_sliding_window_slope_of_linear_chirp():
    # Linear chirp 150 -> 100 Hz over 20 s: instantaneous frequency falls at -2.5 Hz/s and the
    # window-average frequency is the frequency at the window centre.
    t = _t(20)
    x = signal.chirp(t, f0=150.0, t1=20.0, f1=100.0, method="linear")
    win = sliding_window_frequencies(x, rate_hz=FS, window_s=1.0, step_s=0.5)
    assert win.height == 39
    for col in ("mdf_hz", "mnf_hz"):
        fit = frequency_slope(win["centre_s"].to_numpy(), win[col].to_numpy())
        assert fit["slope_hz_per_s"] == pytest.approx(-2.5, rel=0.02)
        assert fit["intercept_hz"] == pytest.approx(150.0, abs=1.0)
        assert fit["r_squared"] > 0.99


def test_frequency_slope_exact_on_a_line_and_drops_nan():
    t = np.array([0.5, 1.0, 1.5, 2.0, 2.5])
    f = 120.0 - 4.0 * t
    fit = frequency_slope(t, np.r_[f[:4], np.nan])
    assert fit["slope_hz_per_s"] == pytest.approx(-4.0)
    assert fit["intercept_hz"] == pytest.approx(120.0)
    assert fit["r_squared"] == pytest.approx(1.0)
    assert fit["n_points"] == 4
    # normalised slope: -4 / (120 - 4 * 0.5) * 100 %/s
    assert fit["slope_pct_per_s"] == pytest.approx(-4.0 / 118.0 * 100.0)
    assert math.isnan(frequency_slope([1.0, 2.0], [3.0, 4.0])["slope_hz_per_s"])
    with pytest.raises(ValueError):
        frequency_slope([1.0, 2.0, 3.0], [1.0, 2.0])


def test_burst_frequencies_per_burst_tone():
    t = _t(6)
    x = np.zeros_like(t)
    x[(t >= 1.0) & (t < 2.0)] = np.sin(2 * np.pi * 80.0 * t[(t >= 1.0) & (t < 2.0)])
    x[(t >= 4.0) & (t < 5.0)] = np.sin(2 * np.pi * 200.0 * t[(t >= 4.0) & (t < 5.0)])
    out = burst_frequencies(x, rate_hz=FS, bursts_s=[[1.0, 1.999], [4.0, 4.999], [5.5, 5.51]])
    assert out["mdf_hz"][0] == pytest.approx(80.0, abs=4.0)
    assert out["mdf_hz"][1] == pytest.approx(200.0, abs=4.0)
    # 11 samples < MIN_SEGMENT_SAMPLES -> null
    assert out["mdf_hz"][2] is None and out["n_samples"][2] == 11
    with pytest.raises(ValueError, match="offset before"):
        burst_frequencies(x, rate_hz=FS, bursts_s=[[2.0, 1.0]])


@pytest.mark.parametrize("fs", [1000.0, 2000.0, 1111.0])
def test_burst_frequencies_equal_one_scipy_welch_per_burst(fs):
    """The bursts' periodograms are computed together; each burst's MNF/MDF must equal scipy.signal.welch
    on that burst's samples alone (segment lengths above, at and below one Welch segment, odd and even,
    under MIN_SEGMENT_SAMPLES, empty, overlapping bursts)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=int(20 * fs)) * (1.0 + np.sin(np.arange(int(20 * fs)) / fs))
    x += np.sin(2 * np.pi * 60.0 * np.arange(x.size) / fs)
    t = np.arange(x.size) / fs
    on = rng.uniform(0.0, 18.0, 60)
    bursts = np.column_stack([on, on + rng.choice([0.0, 0.01, 0.05, 0.2, 0.25, 0.2505, 0.37, 0.9, 1.7], 60)])
    out = burst_frequencies(x, rate_hz=fs, bursts_s=bursts)
    for i, (a, b) in enumerate(bursts):
        seg = x[(t >= a) & (t <= b)]
        assert out["n_samples"][i] == seg.size
        n = min(seg.size, max(32, int(round(WELCH_SEGMENT_S * fs))))
        if seg.size < 32:
            assert out["mnf_hz"][i] is None and out["mdf_hz"][i] is None
            continue
        f, p = signal.welch(seg, fs=fs, window="hann", nperseg=n, noverlap=n // 2, detrend="constant")
        keep = (f >= 20.0) & (f <= 450.0)
        f, p = f[keep], p[keep]
        mnf = np.sum(f * p) / p.sum()
        cum = np.cumsum(p)
        j = int(np.searchsorted(cum, p.sum() / 2))
        mdf = f[j] - (f[1] - f[0]) / 2 + (p.sum() / 2 - (cum[j - 1] if j else 0.0)) / p[j] * (f[1] - f[0])
        assert out["mnf_hz"][i] == pytest.approx(mnf, rel=1e-12)
        assert out["mdf_hz"][i] == pytest.approx(mdf, rel=1e-12)


def test_band_validation_and_psd_restriction():
    x = np.random.default_rng(0).normal(size=4000)
    f, p = band_psd(x, rate_hz=FS, band_hz=(50.0, 100.0))
    assert f.min() >= 50.0 and f.max() <= 100.0 and p.shape == f.shape
    with pytest.raises(ValueError, match="Nyquist"):
        median_frequency(x, rate_hz=800.0)  # 450 Hz > 400 Hz Nyquist
    with pytest.raises(ValueError):
        median_frequency(x, rate_hz=FS, band_hz=(100.0, 50.0))
    with pytest.raises(ValueError, match="NaN"):
        median_frequency(np.r_[x, np.nan], rate_hz=FS)
    assert math.isnan(median_frequency(x[:10], rate_hz=FS))


def test_the_analysis_burst_spectra_row_from_tones_of_known_frequency():
    """The night's ``emg_spectra`` row of a channel (``warehouse.analysis.trial._burst_spectra``): bursts of
    pure tones whose frequency falls by 5 Hz from burst to burst, 1.5 s apart: mean MDF and MNF are the tones'
    mean frequency, the MDF slope -5 / 1.5 Hz/s; a burst under 0.1 s is not analysed, a silent one has no
    spectrum (neither counts)."""
    from warehouse.analysis.trial import _burst_spectra

    fs = 2000.0
    x = np.zeros(int(12 * fs))
    freqs = [120.0 - 5.0 * k for k in range(6)]
    on = np.array([1.0 + 1.5 * k for k in range(6)] + [10.0, 11.0])
    off = on + np.r_[[0.5] * 6, 0.05, 0.5]  # a 50 ms burst; then 0.5 s of silence at 11 s
    for k, f in enumerate(freqs):
        i0, i1 = int(on[k] * fs), int(off[k] * fs)
        x[i0:i1] = np.sin(2 * np.pi * f * np.arange(i1 - i0) / fs)
    (row,) = _burst_spectra(x, fs, on, off, trial_id="t", ch=3, muscle="soleus", side="L")
    assert row["n_bursts"] == 6 and (row["channel"], row["muscle"], row["side"]) == (3, "soleus", "L")
    assert row["mdf_hz"] == pytest.approx(np.mean(freqs), abs=4.0)  # Welch bins of 4 Hz (0.25 s segments)
    assert row["mnf_hz"] == pytest.approx(np.mean(freqs), abs=4.0)
    assert row["mdf_slope_hz_per_s"] == pytest.approx(-5.0 / 1.5, rel=0.15)
    assert _burst_spectra(x, fs, on[6:7], off[6:7], trial_id="t", ch=3, muscle="soleus", side="L") == []


@pytest.mark.parametrize("n, nperseg, noverlap, rate", [(24000, 300, 150, 1200.0), (40000, 500, 250, 2000.0),
                                                        (1001, 101, 50, 1000.0), (600, 600, 300, 2000.0),
                                                        (12345, 257, 128, 1500.0), (5000, 64, 0, 500.0)])
def test_welch_psd_is_scipys_welch_bit_for_bit(n, nperseg, noverlap, rate):
    """``spectral.welch_psd`` (every segment in one array operation; used by channel QC and ``band_psd``) returns
    exactly what ``scipy.signal.welch`` returns with the same Hann window, detrending and scaling: even and odd
    segments, no overlap, a single segment."""
    from scipy import signal

    from transforms.spectral import welch_psd

    rng = np.random.default_rng(n)
    x = rng.standard_normal(n) * 0.3 + np.sin(2 * np.pi * 87.0 * np.arange(n) / rate) + 5.0
    f_ref, p_ref = signal.welch(x, fs=rate, window="hann", nperseg=nperseg, noverlap=noverlap, detrend="constant",
                                scaling="density")
    f, p = welch_psd(x, rate_hz=rate, nperseg=nperseg, noverlap=noverlap)
    assert np.array_equal(f, f_ref) and np.array_equal(p, p_ref)
    with pytest.raises(ValueError):
        welch_psd(x[: nperseg - 1], rate_hz=rate, nperseg=nperseg, noverlap=noverlap)
    with pytest.raises(ValueError):
        welch_psd(x, rate_hz=rate, nperseg=nperseg, noverlap=nperseg)
