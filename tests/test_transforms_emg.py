"""Tests for transforms.emg (conditioning, envelopes, fast path) and transforms.cocontraction."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from transforms import cocontraction, emg, onsets

FS = 2000.0


def realistic_emg(rng, n_channels, seconds, rate_hz=FS):
    """Band-limited noise carriers modulated by random smooth bursts, plus sensor noise,
    DC offsets and a little mains: a stand-in for raw multi-channel surface EMG (mV)."""
    n = int(seconds * rate_hz)
    t = np.arange(n) / rate_hz
    sos = signal.butter(2, [30, min(300.0, 0.4 * rate_hz)], "bandpass", fs=rate_hz, output="sos")
    carrier = signal.sosfiltfilt(sos, rng.standard_normal((n_channels, n)), axis=-1)
    amp = np.full((n_channels, n), 0.02)
    for c in range(n_channels):
        start = rng.uniform(0.1, 0.4)
        period = rng.uniform(0.9, 1.2)
        while start < seconds - 0.2:
            width = rng.uniform(0.15, 0.4)
            amp[c] += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((t - start - width / 2) / (width / 4)) ** 2)
            start += period
    x = carrier / carrier.std(axis=-1, keepdims=True) * amp
    x += 0.01 * rng.standard_normal((n_channels, n))
    x += 0.005 * np.sin(2 * np.pi * 50.0 * t) + rng.uniform(-0.5, 0.5, (n_channels, 1))
    return x


# ----------------------------------------------------------------------------- oracles
def test_signature_of_linear_envelope_is_the_documented_one():
    sig = inspect.signature(emg.linear_envelope)
    params = list(sig.parameters.values())
    assert params[0].name == "emg_mv" and params[0].kind is inspect.Parameter.POSITIONAL_ONLY
    kw = {p.name: p.default for p in params[1:]}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    assert kw == {"rate_hz": inspect.Parameter.empty, "band_hz": (20.0, 450.0), "lowpass_hz": 6.0, "order": 4}


@pytest.mark.parametrize("amplitude", [0.5, 2.0])
def test_envelope_of_pure_tone_is_2A_over_pi(amplitude):
    t = np.arange(int(4 * FS)) / FS
    x = amplitude * np.sin(2 * np.pi * 100.0 * t) + 0.3  # DC offset is removed
    env = emg.linear_envelope(x, rate_hz=FS)
    middle = env[int(1 * FS) : int(3 * FS)]
    np.testing.assert_allclose(middle, 2 * amplitude / np.pi, rtol=0.01)
    assert env.dtype == np.float64 and env.shape == x.shape


def test_envelope_2d_equals_rowwise_1d_and_keeps_shape():
    x = realistic_emg(np.random.default_rng(3), 3, 2.0)
    env2 = emg.linear_envelope(x, rate_hz=FS)
    assert env2.shape == x.shape and env2.dtype == np.float64
    for c in range(3):
        np.testing.assert_allclose(env2[c], emg.linear_envelope(x[c], rate_hz=FS), rtol=0, atol=1e-12)


def test_bandpass_keeps_inband_tone_and_removes_out_of_band():
    t = np.arange(int(4 * FS)) / FS
    inband = np.sin(2 * np.pi * 100 * t)
    low = np.sin(2 * np.pi * 2 * t)
    y = emg.bandpass(inband + low, rate_hz=FS)
    mid = slice(int(FS), int(3 * FS))
    np.testing.assert_allclose(y[mid], inband[mid], atol=0.01)


def test_notch_removes_mains_and_harmonics_but_keeps_other_tones():
    t = np.arange(int(6 * FS)) / FS
    mains = np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t)
    keep = np.sin(2 * np.pi * 80 * t)
    y = emg.notch(mains + keep, rate_hz=FS, mains_hz=50.0)
    mid = slice(int(2 * FS), int(4 * FS))
    np.testing.assert_allclose(y[mid], keep[mid], atol=0.01)


def test_high_band_edge_is_clipped_below_nyquist_for_low_rates():
    assert emg.band_edges_hz(rate_hz=400.0, band_hz=(20.0, 450.0)) == (20.0, pytest.approx(0.95 * 200.0))
    assert emg.band_edges_hz(rate_hz=2000.0, band_hz=(20.0, 450.0)) == (20.0, 450.0)
    x = realistic_emg(np.random.default_rng(0), 2, 3.0, rate_hz=400.0)
    env = emg.linear_envelope(x, rate_hz=400.0)
    assert np.all(np.isfinite(env))
    with pytest.raises(ValueError, match="not below"):
        emg.band_edges_hz(rate_hz=400.0, band_hz=(200.0, 450.0))


def test_moving_rms_of_sine_is_amplitude_over_sqrt2():
    t = np.arange(int(2 * FS)) / FS
    # a 100 ms window is 201 samples (odd, centred) = 3 periods of a 67-sample tone
    x = 3.0 * np.sin(2 * np.pi * (FS / 67.0) * t)
    rms = emg.moving_rms(x, rate_hz=FS, window_ms=100.0)
    np.testing.assert_allclose(rms[200:-200], 3.0 / np.sqrt(2), rtol=1e-9)


def test_rectify_and_remove_dc():
    x = np.array([[1.0, -2.0, 4.0], [0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(emg.rectify(x), np.abs(x))
    np.testing.assert_allclose(emg.remove_dc(x).mean(axis=-1), 0.0, atol=1e-15)


def test_normalise_amplitude_methods():
    env = np.array([[1.0, 2.0, 4.0], [2.0, 2.0, 2.0]])
    out, name = emg.normalise_amplitude(env, method="peak")
    assert name == "peak_dynamic"
    np.testing.assert_allclose(out.max(axis=-1), 1.0)
    out, name = emg.normalise_amplitude(env, method="mean", dynamic=[env, 2 * env])
    assert name == "mean_dynamic"
    np.testing.assert_allclose(out[1], 2.0 / 3.0)
    out, name = emg.normalise_amplitude(env, method="reference", reference=[4.0, 0.5])
    assert name == "reference"
    np.testing.assert_allclose(out, env / np.array([[4.0], [0.5]]))
    with pytest.raises(ValueError):
        emg.normalise_amplitude(env, method="reference")
    with pytest.raises(ValueError):
        emg.normalise_amplitude(env, method="mvc")


@pytest.mark.parametrize(
    "bad, kwargs, match",
    [
        (np.array([]), {}, "empty"),
        (np.array([1.0, np.nan] * 200), {}, "NaN"),
        (np.zeros((2, 2, 100)), {}, "1-D"),
        (np.ones(1000), {"lowpass_hz": 1000.0}, "Nyquist"),
        (np.ones(1000), {"band_hz": (500.0, 450.0)}, "band"),
        (np.ones(20), {}, "padlen"),
        (np.ones(1000), {"order": 0}, "order"),
    ],
)
def test_envelope_rejects_bad_input(bad, kwargs, match):
    with pytest.raises(ValueError, match=match):
        emg.linear_envelope(bad, rate_hz=FS, **kwargs)
    with pytest.raises(ValueError, match=match):
        emg.envelope_fast(bad, rate_hz=FS, **kwargs)


def test_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate_hz"):
        emg.linear_envelope(np.ones(1000), rate_hz=0.0)


# ----------------------------------------------------------------------------- fast path
@pytest.mark.parametrize("shape_rate", [((16, 5.0), 2000.0), ((13, 7.6), 1000.0), ((3, 4.0), 400.0)])
def test_fast_envelope_matches_reference(shape_rate):
    (n_ch, seconds), rate = shape_rate
    x = realistic_emg(np.random.default_rng(n_ch), n_ch, seconds, rate_hz=rate)
    ref = emg.linear_envelope(x, rate_hz=rate)
    fast = emg.envelope_fast(x, rate_hz=rate)
    assert fast.shape == ref.shape and fast.dtype == np.float64
    peak = np.abs(ref).max(axis=-1, keepdims=True)
    assert np.all(np.abs(fast - ref) <= 1e-3 * peak)


def test_fast_envelope_other_parameters_and_1d():
    x = realistic_emg(np.random.default_rng(7), 2, 3.0)
    kw = dict(band_hz=(10.0, 350.0), lowpass_hz=10.0, order=3)
    ref = emg.linear_envelope(x, rate_hz=FS, **kw)
    np.testing.assert_allclose(emg.envelope_fast(x, rate_hz=FS, **kw), ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    np.testing.assert_allclose(emg.envelope_fast(x[0], rate_hz=FS), emg.linear_envelope(x[0], rate_hz=FS), atol=1e-12)
    assert emg.envelope_fast(x.astype(np.float32), rate_hz=FS).dtype == np.float64


def test_onsets_from_fast_envelope_agree_with_reference():
    x = realistic_emg(np.random.default_rng(11), 16, 10.0)
    ref = emg.linear_envelope(x, rate_hz=FS)
    fast = emg.envelope_fast(x, rate_hz=FS)
    fast_on = onsets.onsets_hodges_bui_2d(fast, rate_hz=FS)
    n_total = n_close = 0
    worst_ms = 0.0
    for c in range(x.shape[0]):
        ref_on, ref_off = onsets.detect_onsets(ref[c], rate_hz=FS, method="hodges_bui")
        on, off = fast_on[c]
        assert ref_on.size == on.size > 0
        d = np.abs(np.concatenate([on - ref_on, off - ref_off]))
        n_total += d.size
        n_close += int((d <= 1).sum())
        worst_ms = max(worst_ms, d.max() / FS * 1e3)
    assert n_close / n_total >= 0.999
    assert worst_ms <= 2.0
    # the fused envelope + onsets fast path gives the same envelope and bursts
    env_fused, fused_on = onsets.envelope_onsets_fast(x, rate_hz=FS)
    np.testing.assert_array_equal(env_fused, fast)
    for (a_on, a_off), (b_on, b_off) in zip(fused_on, fast_on):
        np.testing.assert_array_equal(a_on, b_on)
        np.testing.assert_array_equal(a_off, b_off)


# ----------------------------------------------------------------------------- provenance
def test_params_hash_is_stable_and_order_independent():
    h1 = emg.params_hash(rate_hz=2000.0, band_hz=(20.0, 450.0), lowpass_hz=6.0, order=4)
    h2 = emg.params_hash(order=4, lowpass_hz=6, band_hz=[20, 450], rate_hz=2000)
    assert h1 == h2 and len(h1) == emg.PARAMS_HASH_LENGTH and int(h1, 16) >= 0
    assert emg.params_hash(rate_hz=2000.0, band_hz=(20.0, 450.0), lowpass_hz=5.0, order=4) != h1
    with pytest.raises(ValueError):
        emg.params_hash(x=float("nan"))
    with pytest.raises(ValueError):
        emg.params_hash(x=object())


@settings(max_examples=30, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5)),
        max_size=5,
    )
)
def test_params_hash_ignores_insertion_order(params):
    assert emg.params_hash(**params) == emg.params_hash(**dict(reversed(list(params.items()))))


# ----------------------------------------------------------------------------- co-contraction
def test_cci_identical_is_one_and_disjoint_is_zero():
    t = np.linspace(0, 1, 1001)
    a = np.exp(-0.5 * ((t - 0.3) / 0.05) ** 2)
    assert cocontraction.cci_falconer_winter(a, a) == pytest.approx(1.0)
    assert cocontraction.cci_falconer_winter(a, a, as_percent=True) == pytest.approx(100.0)
    b = np.where(t < 0.5, 1.0, 0.0)
    c = np.where(t >= 0.5, 2.0, 0.0)
    assert cocontraction.cci_falconer_winter(b, c) == 0.0
    # half overlap of equal rectangles: 2 * 1/4 / (1/2 + 1/2) = 0.5
    d = np.where((t >= 0.25) & (t < 0.75), 1.0, 0.0)
    assert cocontraction.cci_falconer_winter(b, d) == pytest.approx(0.5, abs=2e-3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10)), min_size=1, max_size=50))
def test_cci_is_symmetric_and_bounded(pairs):
    a, b = np.array(pairs).T
    c1 = cocontraction.cci_falconer_winter(a, b)
    c2 = cocontraction.cci_falconer_winter(b, a)
    if np.isnan(c1):
        assert np.isnan(c2) and not (a + b).any()
    else:
        assert c1 == pytest.approx(c2) and -1e-12 <= c1 <= 1 + 1e-12


def test_cci_per_cycle_rows_and_pairs_table():
    a = np.abs(np.random.default_rng(0).standard_normal((4, 101)))
    per_cycle = cocontraction.cci_falconer_winter(a, a)
    np.testing.assert_allclose(per_cycle, 1.0)
    table = cocontraction.cci_pairs({"TA": a, "SO": a, "VL": a[0]})
    assert table.height == 4 and set(table["muscle_b"]) == {"SO"}
    with pytest.raises(ValueError, match="raw"):
        cocontraction.cci_falconer_winter(np.array([1.0, -1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        cocontraction.cci_falconer_winter(np.ones(3), np.ones(4))


def test_butterworth_designs_are_scipys_designed_once_and_returned_as_copies():
    """bandpass_sos / lowpass_sos / butter_sos give scipy.signal.butter's sections; a design is computed once per
    parameter set (cached), and a caller changing its copy does not change the next caller's."""
    from scipy import signal

    from transforms import emg

    np.testing.assert_array_equal(emg.bandpass_sos(rate_hz=2000.0, band_hz=(20.0, 450.0), order=4),
                                  signal.butter(4, [20.0, 450.0], btype="bandpass", fs=2000.0, output="sos"))
    np.testing.assert_array_equal(emg.lowpass_sos(rate_hz=1500.0, lowpass_hz=6.0, order=2),
                                  signal.butter(2, 6.0, btype="lowpass", fs=1500.0, output="sos"))
    np.testing.assert_array_equal(emg.butter_sos(order=4, cutoff_hz=30.0, btype="highpass", rate_hz=1000.0),
                                  signal.butter(4, 30.0, btype="highpass", fs=1000.0, output="sos"))
    before = emg._butter_design.cache_info()
    first = emg.bandpass_sos(rate_hz=2000.0, band_hz=(20.0, 450.0), order=4)
    first[:] = 0.0
    again = emg.bandpass_sos(rate_hz=2000.0, band_hz=(20.0, 450.0), order=4)
    after = emg._butter_design.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (2, 0)  # designed once, above
    np.testing.assert_array_equal(again, signal.butter(4, [20.0, 450.0], btype="bandpass", fs=2000.0, output="sos"))


def test_zero_phase_is_scipys_sosfiltfilt_with_initial_conditions_computed_once(monkeypatch):
    """zero_phase (what bandpass / lowpass / notch filter with) equals scipy.signal.sosfiltfilt's default
    call bit for bit (real EMG and generated 1-D / 2-D records, down to one sample longer than the padding;
    2-D records through the side-by-side kernel ``emg_kernels.zero_phase_block``), and
    scipy.signal.sosfilt_zi runs once per design, not once per call."""
    from scipy import signal

    from transforms import emg

    rng = np.random.default_rng(7)
    import polars as pl

    from conftest import fixture

    real = pl.read_csv(fixture("synergies/derived/ID0012_TW_01_raw_emg.csv")).drop("time").to_numpy().T[:4, :6000]
    designs = [emg.bandpass_sos(rate_hz=2000.0, band_hz=(20.0, 450.0), order=4),
               emg.lowpass_sos(rate_hz=1500.0, lowpass_hz=6.0, order=2),
               emg.butter_sos(order=4, cutoff_hz=30.0, btype="highpass", rate_hz=1000.0),
               emg._notch_sos(2000.0, 50.0, 18, 30.0).copy()]
    calls, blocks = [], []
    real_zi, real_block = signal.sosfilt_zi, emg.zero_phase_block
    monkeypatch.setattr(emg.signal, "sosfilt_zi", lambda sos: calls.append(1) or real_zi(sos))
    monkeypatch.setattr(emg, "zero_phase_block", lambda x, *a: blocks.append(x.shape[0]) or real_block(x, *a))
    emg._sos_zi.cache_clear()
    for sos in designs:
        edge = emg.sosfiltfilt_padlen(sos)
        # 2-D: channels filtered side by side, FAST_BLOCK_CHANNELS at a time (11 = a full block and 3 more)
        for x in (real, rng.standard_normal((3, 4000)), rng.standard_normal((11, 2500)) * 1e3 + 40.0,
                  rng.standard_normal((2, edge + 1)), rng.standard_normal(edge + 1), np.cumsum(rng.standard_normal(900))):
            np.testing.assert_array_equal(emg.zero_phase(sos, x), signal.sosfiltfilt(sos, x, axis=-1))
    assert len(calls) == len(designs)
    assert blocks == [4, 3, emg.FAST_BLOCK_CHANNELS, 11 - emg.FAST_BLOCK_CHANNELS, 2] * len(designs)
    x = rng.standard_normal(3000)
    np.testing.assert_array_equal(emg.notch(x, rate_hz=2000.0, mains_hz=50.0),
                                  signal.sosfiltfilt(emg._notch_sos(2000.0, 50.0, 19, emg.DEFAULT_NOTCH_QUALITY), x))
    np.testing.assert_array_equal(emg.bandpass(x, rate_hz=2000.0), signal.sosfiltfilt(emg.bandpass_sos(rate_hz=2000.0), x))
    np.testing.assert_array_equal(emg.lowpass(x, rate_hz=2000.0), signal.sosfiltfilt(emg.lowpass_sos(rate_hz=2000.0), x))
