"""Tests for transforms.onsets: TKEO oracle, burst recovery with documented bias."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import emg, onsets

FS = 2000.0


def synthetic_bursts(rng, snr_db, n_bursts=6, seconds=10.0, rate_hz=FS):
    """White Gaussian carrier (unit SD) gated by rectangular bursts + white noise.

    Returns (signal, true onset samples, true offset samples (exclusive)).  SNR is the
    burst-to-noise SD ratio in dB.
    """
    n = int(seconds * rate_hz)
    mask = np.zeros(n)
    on, off = [], []
    t = 1.0
    for _ in range(n_bursts):
        t += rng.uniform(0.6, 0.9)
        s = int(t * rate_hz)
        d = int(rng.uniform(0.3, 0.5) * rate_hz)
        mask[s : s + d] = 1.0
        on.append(s)
        off.append(s + d)
        t += d / rate_hz
    x = rng.standard_normal(n) * mask + rng.standard_normal(n) * 10 ** (-snr_db / 20)
    return x, np.array(on), np.array(off)


def match(detected, truth):
    """Signed difference (samples) from each true event to the nearest detection."""
    return np.array([detected[np.argmin(np.abs(detected - t))] - t for t in truth])


# ----------------------------------------------------------------------------- TKEO
@pytest.mark.parametrize("amp, w, phase", [(1.0, 0.1, 0.0), (3.5, 0.7, 1.2), (0.01, 2.9, -0.4)])
def test_tkeo_of_sinusoid_is_A2_sin2_W(amp, w, phase):
    n = np.arange(500)
    out = onsets.tkeo(amp * np.sin(w * n + phase))
    np.testing.assert_allclose(out[1:-1], amp**2 * np.sin(w) ** 2, rtol=1e-9, atol=1e-12 * amp**2)
    assert out.shape == n.shape


@settings(max_examples=30, deadline=None)
@given(st.floats(0.01, 100.0), st.floats(0.01, 3.1), st.floats(-3.0, 3.0))
def test_tkeo_oracle_property(amp, w, phase):
    out = onsets.tkeo(amp * np.sin(w * np.arange(64) + phase))
    np.testing.assert_allclose(out[1:-1], amp**2 * np.sin(w) ** 2, rtol=1e-7, atol=1e-9 * amp**2)


def test_tkeo_rejects_bad_input():
    for bad in (np.array([]), np.array([1.0, 2.0]), np.array([1.0, np.nan, 2.0, 3.0]), np.ones((3, 3))):
        with pytest.raises(ValueError):
            onsets.tkeo(bad)


# ----------------------------------------------------------------------------- burst recovery
def test_hodges_bui_bias_matches_the_lowpass_step_prediction():
    """On a 6 Hz zero-phase envelope the threshold crossing precedes the true onset by the
    time the filtered step needs to reach the threshold's share of the plateau."""
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(3):
        x, on_true, off_true = synthetic_bursts(rng, snr_db=20.0)
        env = emg.linear_envelope(x, rate_hz=FS)
        on, off = onsets.onsets_hodges_bui(env, rate_hz=FS)
        assert on.size == on_true.size
        mean, sd, _ = onsets.baseline_stats(env, rate_hz=FS)
        plateau = np.median(np.concatenate([env[a + 200 : b - 200] for a, b in zip(on_true, off_true)]))
        fraction = (mean + onsets.DEFAULT_K_SD * sd - mean) / (plateau - mean)
        predicted_ms = onsets.lowpass_step_crossing_ms(fraction, rate_hz=FS)
        assert predicted_ms < -20.0  # the bias is real and negative
        errors.append(match(on, on_true) / FS * 1e3 - predicted_ms)
        # offsets are symmetric: the envelope falls below threshold after the true offset
        assert np.all(match(off, off_true) / FS * 1e3 > 0)
    errors = np.concatenate(errors)
    assert np.abs(errors).max() < 15.0, errors  # envelope of a random carrier fluctuates
    assert abs(errors.mean()) < 4.0, errors


def test_tkeo_detector_recovers_onsets_at_high_snr():
    rng = np.random.default_rng(2)
    for _ in range(3):
        x, on_true, _ = synthetic_bursts(rng, snr_db=20.0)
        on, off = onsets.onsets_tkeo(x, rate_hz=FS)
        assert on.size == on_true.size
        d_ms = match(on, on_true) / FS * 1e3
        # documented bias: within +-15 ms (50 Hz zero-phase low-pass of the TKEO output)
        # documented bias (module docstring): -30 to +15 ms
        assert np.all((d_ms >= -30.0) & (d_ms <= 15.0)), d_ms


def test_double_threshold_recovers_onsets_at_high_snr():
    rng = np.random.default_rng(3)
    for _ in range(3):
        x, on_true, off_true = synthetic_bursts(rng, snr_db=20.0)
        on, off = onsets.onsets_double_threshold(x, rate_hz=FS)
        assert on.size == on_true.size
        d_ms = match(on, on_true) / FS * 1e3
        # documented bias on the unfiltered signal: -(window - min_above) to +5 ms
        early = onsets.DOUBLE_THRESHOLD_WINDOW_MS - onsets.DOUBLE_THRESHOLD_MIN_ABOVE_MS
        assert np.all((d_ms >= -early - 0.5) & (d_ms <= 5.0)), d_ms
        d_off = match(off, off_true) / FS * 1e3
        assert np.all(np.abs(d_off) <= 10.0), d_off


def test_all_methods_via_dispatch_and_default():
    assert onsets.DEFAULT_ONSET_METHOD in onsets.ONSET_METHODS
    x, on_true, _ = synthetic_bursts(np.random.default_rng(4), snr_db=30.0, n_bursts=3)
    env = emg.linear_envelope(x, rate_hz=FS)
    for method, data in (("hodges_bui", env), ("tkeo", x), ("double_threshold", x)):
        on, off = onsets.detect_onsets(data, rate_hz=FS, method=method)
        assert on.dtype == np.int64 and on.size == off.size == 3
        assert np.all(off > on)
    with pytest.raises(ValueError, match="unknown onset method"):
        onsets.detect_onsets(env, rate_hz=FS, method="visual")


# ----------------------------------------------------------------------------- mechanics
def test_sustained_threshold_rules_on_a_hand_made_signal():
    rate = 1000.0
    d = np.zeros(1000)
    d[100:110] = 5.0  # 10 ms spike: too short for a 25 ms onset
    d[300:600] = 5.0  # a real burst ...
    d[450:460] = 0.0  # ... with a 10 ms dip that must not end it
    base = slice(0, 90)
    d[base] = np.tile([0.0, 0.2], 45)
    on, off = onsets.onsets_hodges_bui(d, rate_hz=rate, baseline=base)
    np.testing.assert_array_equal(on, [300])
    np.testing.assert_array_equal(off, [600])
    # a burst running to the end has offset == len; one active at sample 0 has onset 0
    e = np.concatenate([np.full(100, 5.0), np.tile([0.0, 0.2], 200), np.full(100, 5.0)])
    on, off = onsets.onsets_hodges_bui(e, rate_hz=rate, baseline=(100, 500))
    np.testing.assert_array_equal(on, [0, 500])
    np.testing.assert_array_equal(off, [100, 600])


def test_quietest_window_baseline_is_used_when_none_given():
    d = np.concatenate([np.full(500, 3.0), np.tile([1.0, 1.2], 250), np.full(500, 3.0)])
    mean, sd, (b0, b1) = onsets.baseline_stats(d, rate_hz=1000.0, baseline_window_ms=250.0)
    assert 500 <= b0 and b1 <= 1000 and b1 - b0 == 250
    assert mean == pytest.approx(1.1, abs=1e-3)


def test_2d_parallel_detector_equals_1d():
    rng = np.random.default_rng(5)
    envs = np.stack([emg.linear_envelope(synthetic_bursts(rng, 15.0)[0], rate_hz=FS) for _ in range(4)])
    many = onsets.onsets_hodges_bui_2d(envs, rate_hz=FS)
    for c in range(4):
        on, off = onsets.onsets_hodges_bui(envs[c], rate_hz=FS)
        np.testing.assert_array_equal(many[c][0], on)
        np.testing.assert_array_equal(many[c][1], off)


def test_tkeo_on_a_channel_block_equals_each_channel_alone_and_an_independent_detector_signal():
    """``onsets_tkeo_2d`` (a trial's channels filtered side by side) gives each row exactly the bursts of
    ``onsets_tkeo`` on that row alone, and of the detector signal rebuilt here with scipy (zero-phase band-pass,
    Teager-Kaiser energy, rectification, zero-phase low-pass) through the same threshold rule."""
    from scipy import signal

    rng = np.random.default_rng(11)
    block = np.stack([synthetic_bursts(rng, snr)[0] * 0.05 + 0.3 for snr in (6.0, 10.0, 15.0, 20.0, 25.0, 8.0,
                                                                                 12.0, 18.0, 30.0, 9.0)])
    many = onsets.onsets_tkeo_2d(block, rate_hz=FS)
    assert len(many) == len(block) and all(len(on) >= 4 for on, _ in many)
    band = signal.butter(emg.DEFAULT_ORDER, onsets.TKEO_BAND_HZ, btype="bandpass", fs=FS, output="sos")
    low = signal.butter(emg.DEFAULT_ORDER, onsets.TKEO_LOWPASS_HZ, btype="lowpass", fs=FS, output="sos")
    m = int(round(onsets.TKEO_WINDOW_MS * 1e-3 * FS))
    r0 = int(round(onsets.TKEO_MIN_ABOVE_MS * 1e-3 * FS))
    n_off = int(round(onsets.DEFAULT_MIN_DURATION_MS * 1e-3 * FS))
    for row, (on, off) in zip(block, many):
        alone = onsets.onsets_tkeo(row, rate_hz=FS)
        np.testing.assert_array_equal(on, alone[0])
        np.testing.assert_array_equal(off, alone[1])
        bp = signal.sosfiltfilt(band, row - row.mean())
        te = np.r_[0.0, bp[1:-1] ** 2 - bp[:-2] * bp[2:], 0.0]
        te[0], te[-1] = te[1], te[-2]
        d = signal.sosfiltfilt(low, np.abs(te))
        ref = onsets._bursts(d, onsets._threshold(d, FS, onsets.TKEO_K_SD, None, onsets.DEFAULT_BASELINE_WINDOW_MS),
                             m, r0, n_off, n_off)
        np.testing.assert_array_equal(on, ref[0])
        np.testing.assert_array_equal(off, ref[1])
    with pytest.raises(ValueError):
        onsets.onsets_tkeo_2d(block[0], rate_hz=FS)  # 1-D: not a block
    bad = block.copy()
    bad[3, 100] = np.nan
    with pytest.raises(ValueError):
        onsets.onsets_tkeo_2d(bad, rate_hz=FS)


def test_lowpass_step_crossing_is_symmetric_and_monotonic():
    half = onsets.lowpass_step_crossing_ms(0.5, rate_hz=FS)
    assert abs(half) <= 0.5 / FS * 1e3 + 1e-9  # zero-phase: 50 % at the step (+- half a sample)
    values = [onsets.lowpass_step_crossing_ms(f, rate_hz=FS) for f in (0.02, 0.05, 0.1, 0.2, 0.4)]
    assert all(a < b < 0 for a, b in zip(values, values[1:]))
    # the zero-phase step response is point-symmetric about the step edge (half a sample
    # before the first step sample), so crossings of f and 1 - f mirror each other
    for f in (0.05, 0.2, 0.4):
        mirrored = onsets.lowpass_step_crossing_ms(f, rate_hz=FS) + onsets.lowpass_step_crossing_ms(1 - f, rate_hz=FS)
        assert mirrored == pytest.approx(-1e3 / FS, abs=1e-6)
    with pytest.raises(ValueError):
        onsets.lowpass_step_crossing_ms(1.0, rate_hz=FS)


@pytest.mark.parametrize(
    "call",
    [
        lambda: onsets.onsets_hodges_bui(np.array([]), rate_hz=FS),
        lambda: onsets.onsets_hodges_bui(np.array([1.0, np.nan, 1.0]), rate_hz=FS),
        lambda: onsets.onsets_hodges_bui(np.ones(100), rate_hz=FS),  # shorter than the window
        lambda: onsets.onsets_hodges_bui(np.ones(1000), rate_hz=FS, baseline=slice(5, 6)),
        lambda: onsets.onsets_hodges_bui(np.ones(1000), rate_hz=FS, k_sd=-1.0),
        lambda: onsets.onsets_hodges_bui(np.ones(1000), rate_hz=-FS),
        lambda: onsets.onsets_double_threshold(np.ones(1000), rate_hz=FS, window_ms=5, min_above_ms=10),
        lambda: onsets.onsets_hodges_bui_2d(np.ones(1000), rate_hz=FS),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
