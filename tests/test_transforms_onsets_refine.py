"""The onset refinement (transforms/onsets_refine.py) finds the start of a known recruitment ramp."""
from __future__ import annotations

import numpy as np
import pytest

from transforms import onsets, onsets_refine

RATE = 2000.0


def _ramp_bursts(ramp_ms: float, *, snr_db: float = 20.0, seed: int = 5):
    """White carrier gated by bursts whose amplitude rises linearly over ``ramp_ms`` from known onsets."""
    rng = np.random.default_rng(seed)
    n = int(12 * RATE)
    t = np.arange(n) / RATE
    starts = np.arange(1.0, 11.0, 1.25)
    gate = np.zeros(n)
    for s in starts:
        g = np.clip((t - s) / (ramp_ms / 1e3), 0, 1) if ramp_ms else (t >= s).astype(float)
        gate = np.maximum(gate, g * (t < s + 0.5))
    x = rng.standard_normal(n) * gate + rng.standard_normal(n) * 10 ** (-snr_db / 20)
    return x, np.round(starts * RATE).astype(int)


@pytest.mark.parametrize("ramp_ms", [0.0, 50.0, 100.0])
def test_refined_onset_is_the_start_of_the_ramp(ramp_ms):
    """The refined onset is within 5 ms of the ramp's start (median) for steps and 50/100 ms ramps at
    20 dB, and no worse than TKEO's (which fires part-way up a ramp)."""
    x, truth = _ramp_bursts(ramp_ms)
    coarse, _ = onsets.onsets_tkeo(x, rate_hz=RATE)
    refined, _ = onsets.onsets_tkeo_refined(x, rate_hz=RATE)
    assert len(refined) == len(coarse) == len(truth)
    err_coarse = (coarse - truth) / RATE * 1e3
    err = (refined - truth) / RATE * 1e3
    assert abs(np.median(err)) <= 5.0, err
    assert abs(np.median(err)) <= abs(np.median(err_coarse)) + 1.0  # never worse than the coarse detector
    assert onsets.detect_onsets(x, rate_hz=RATE).__len__() == 2  # the dispatcher's default is the refined one
    np.testing.assert_array_equal(onsets.detect_onsets(x, rate_hz=RATE)[0], refined)


def test_causal_highpass_puts_no_energy_before_an_onset():
    """A forward-only filter is causal: zeros before a burst stay exactly zero (a zero-phase one rings)."""
    x = np.zeros(4000)
    burst = np.random.default_rng(1).standard_normal(2000)
    x[2000:] = burst - burst.mean()  # zero-mean record: the filter's mean removal changes nothing
    h = onsets_refine.causal_highpass(x, rate_hz=RATE)
    assert np.max(np.abs(h[:2000])) < 1e-12 and np.std(h[2000:]) > 0.5


def test_refine_rejects_bad_input():
    with pytest.raises(ValueError):
        onsets_refine.refine_onsets(np.ones((2, 3)), [1], rate_hz=RATE, noise_var=1.0)
    with pytest.raises(ValueError):
        onsets_refine.refine_onsets(np.ones(100), [1], rate_hz=RATE, noise_var=0.0)
    with pytest.raises(ValueError):
        onsets_refine.causal_highpass(np.ones(100), rate_hz=RATE, highpass_hz=RATE)
