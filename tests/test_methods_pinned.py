"""Every parameter of the conditioning, envelope, onset, event and spectral methods is pinned by a test.

Each test calls the method with its defaults (as the product does) and compares with an analytic truth
or an independent scipy/numpy computation written out here, never with the function's own output:
changing a band edge, the envelope low-pass, TKEO's pre-filter, Zeni's heel marker, the Welch window or
the median-frequency interpolation makes one of these fail.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from transforms import emg, gait, onsets, spectral
from warehouse.analysis import derived

RATE = 2000.0


def _tone(f_hz, *, seconds=4.0, rate=RATE, amp=1.0):
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * f_hz * t)


def _mid(x, rate=RATE):
    """The middle second (filter edge transients excluded)."""
    n = len(x)
    return x[n // 2 - int(rate / 2): n // 2 + int(rate / 2)]


@pytest.mark.parametrize("edge_hz", [20.0, 450.0])
def test_bandpass_gain_is_one_half_at_each_band_edge(edge_hz):
    """A zero-phase (filtfilt) Butterworth passes |H|^2 of one pass: 1/2 at the -3 dB edges 20 and 450 Hz,
    for the reference path, the product's fast envelope path and the stored envelopes' parameters."""
    x = _tone(edge_hz)
    amp = np.max(np.abs(_mid(emg.bandpass(x, rate_hz=RATE))))
    assert amp == pytest.approx(0.5, abs=0.02)
    # envelope of a tone = 2/pi x amplitude x band-pass gain (the 2f ripple is far above the 6 Hz low-pass)
    for env in (emg.linear_envelope(x, rate_hz=RATE), emg.envelope_fast(x[None, :], rate_hz=RATE)[0],
                emg.linear_envelope(x, rate_hz=RATE, **derived.ENVELOPE_PARAMS)):
        assert np.mean(_mid(env)) == pytest.approx(2 / np.pi * 0.5, rel=0.03)
    # an octave inside the band passes whole, an octave outside is gone (4th-order edges: 1/(1+2^8))
    inside = edge_hz * 2 if edge_hz < 100 else edge_hz / 2
    outside = edge_hz / 2 if edge_hz < 100 else min(edge_hz * 2, 0.45 * RATE)
    assert np.max(np.abs(_mid(emg.bandpass(_tone(inside), rate_hz=RATE)))) == pytest.approx(1.0, abs=0.02)
    assert np.max(np.abs(_mid(emg.bandpass(_tone(outside), rate_hz=RATE)))) < 0.02


def test_envelope_lowpass_halves_a_6_hz_amplitude_modulation():
    """(1 + m sin 2pi 6t) x carrier: rectified, its 6 Hz modulation passes the zero-phase 6 Hz low-pass
    with gain 1/2; a 3 Hz modulation with 1/(1 + 2^-8)^... ~ 1 (analytic Butterworth |H|^2)."""
    t = np.arange(int(6 * RATE)) / RATE
    m = 0.5
    for f_mod, gain in ((6.0, 0.5), (3.0, 1 / (1 + (3 / 6) ** 8))):
        x = (1 + m * np.sin(2 * np.pi * f_mod * t)) * np.sin(2 * np.pi * 150.0 * t)
        for env in (emg.linear_envelope(x, rate_hz=RATE), emg.envelope_fast(x[None, :], rate_hz=RATE)[0]):
            seg = _mid(env)
            # least-squares amplitude of the modulation frequency in the middle second
            tt = _mid(t)
            basis = np.column_stack([np.ones_like(tt), np.sin(2 * np.pi * f_mod * tt), np.cos(2 * np.pi * f_mod * tt)])
            coef = np.linalg.lstsq(basis, seg, rcond=None)[0]
            assert coef[0] == pytest.approx(2 / np.pi, rel=0.02)
            assert np.hypot(coef[1], coef[2]) == pytest.approx(2 / np.pi * m * gain, rel=0.04)


def test_tkeo_prefilter_rejects_a_slow_artefact_and_keeps_a_burst():
    """Solnik's TKEO detector high-passes at 30 Hz first: a large 12 Hz movement artefact (gain
    1/(1+(30/12)^8) ~ 6e-4) is no burst, a 150 Hz burst of a tenth of its amplitude is, at its true onset."""
    rate = 1000.0
    rng = np.random.default_rng(3)
    n = int(4 * rate)
    t = np.arange(n) / rate
    noise = rng.normal(0, 0.01, n)
    artefact = np.where((t >= 1.5) & (t < 2.5), 2.0 * np.sin(2 * np.pi * 12.0 * t), 0.0)
    on, _ = onsets.onsets_tkeo(noise + artefact, rate_hz=rate, baseline=(0, int(rate)))
    assert len(on) == 0, on / rate
    burst = np.where((t >= 1.5) & (t < 2.5), 0.2 * np.sin(2 * np.pi * 150.0 * t), 0.0)
    on, _ = onsets.onsets_tkeo(noise + burst, rate_hz=rate, baseline=(0, int(rate)))
    assert len(on) == 1 and abs(on[0] / rate - 1.5) < 0.030  # an abrupt gate: the 50 Hz smoothing spreads it


def test_zeni_strike_is_the_heel_maximum_and_off_the_toe_minimum():
    """Synthetic walk at 1 Hz strides: heel - pelvis peaks at 0.25 s + k, toe - pelvis is lowest at
    0.85 s + k (the toe lags the heel by 0.1 stride): strikes from the heel, offs from the toe."""
    rate = 100.0
    t = np.arange(int(6 * rate)) / rate
    pelvis = 1000.0 * t  # 1 m/s towards +AP
    heel = pelvis + 300 * np.sin(2 * np.pi * t)  # maxima at 0.25 + k
    toe = pelvis + 300 * np.sin(2 * np.pi * (t - 0.1)) + 150  # minima at 0.85 + k, maxima at 0.35 + k
    fs, fo = gait.zeni_events(heel, toe, pelvis, rate_hz=rate)
    np.testing.assert_allclose(fs, 0.25 + np.arange(len(fs)) + (fs[0] - 0.25), atol=1e-9)
    assert fs[0] == pytest.approx(0.25, abs=0.011) and len(fs) >= 5
    assert fo[0] == pytest.approx(0.85, abs=0.011) and np.allclose(np.diff(fo), 1.0, atol=0.011)


def test_welch_psd_is_scipys_hann_welch_with_the_documented_segment():
    """The burst PSD is scipy's Welch with a Hann window, 0.25 s segments and 50 % overlap, restricted to
    20-450 Hz (independent call written out here)."""
    rng = np.random.default_rng(11)
    rate = 1000.0
    x = signal.lfilter(*signal.butter(2, [60, 200], "bandpass", fs=rate), rng.normal(0, 1, 3000))
    f, p = spectral.band_psd(x, rate_hz=rate)
    nper = 250
    f_ref, p_ref = signal.welch(x, fs=rate, window="hann", nperseg=nper, noverlap=nper // 2, detrend="constant")
    keep = (f_ref >= 20) & (f_ref <= 450)
    np.testing.assert_allclose(f, f_ref[keep])
    np.testing.assert_allclose(p, p_ref[keep], rtol=1e-10)


@pytest.mark.parametrize("f0", [102.0, 151.0, 203.0])
def test_mdf_of_a_tone_between_bins_is_the_tone(f0):
    """Bins are 4 Hz apart (0.25 s at 1 kHz); a tone between two bins leaks symmetrically, so the median
    frequency interpolated inside the bin is the tone itself, not the nearest bin centre."""
    rate = 1000.0
    x = _tone(f0, seconds=2.0, rate=rate)
    mdf = spectral.median_frequency(x, rate_hz=rate)
    assert mdf == pytest.approx(f0, abs=0.25)


def test_mdf_of_two_tones_between_bins_splits_the_power():
    """Two tones between bins, the lower with 3x the power: half the power lies inside the lower tone's
    lobe, at 1/3 of its symmetric mass from the top: interpolated within the 4 Hz bins (numpy written out)."""
    rate = 1000.0
    x = _tone(102.0, seconds=2.0, rate=rate, amp=np.sqrt(3)) + _tone(202.0, seconds=2.0, rate=rate)
    f_ref, p_ref = signal.welch(x, fs=rate, window="hann", nperseg=250, noverlap=125, detrend="constant")
    keep = (f_ref >= 20) & (f_ref <= 450)
    f_ref, p_ref = f_ref[keep], p_ref[keep]
    cum = np.concatenate([[0.0], np.cumsum(p_ref)])
    edges = np.concatenate([f_ref - 2.0, [f_ref[-1] + 2.0]])  # bin k spans its centre +- df/2
    expected = float(np.interp(cum[-1] / 2, cum, edges))  # uniform density within each bin
    assert spectral.median_frequency(x, rate_hz=rate) == pytest.approx(expected, abs=1e-6)
    assert 100.0 < expected < 104.0
