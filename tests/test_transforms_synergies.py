"""Oracles for transforms.synergies (HALS NMF, VAF, synergy count) plus a real walking trial."""

from __future__ import annotations


import numpy as np
import pytest
from scipy import signal

from conftest import FIXTURES

from transforms import synergies as syn
from transforms.synergies import (
    VAF_THRESHOLD,
    extract_synergies,
    match_synergies,
    nmf,
    vaf,
)

DERIVED = FIXTURES / "synergies" / "derived"
N_POINTS = 101


def _synthetic(seed, n_muscles=12, n_syn=4, n_cycles=5, noise_frac=0.02):
    """Data built from known non-negative synergies: W (muscles x 4) with 3 dominant muscles
    per synergy plus sparse small cross-weights; H = Gaussian bursts at 10/35/60/85 % of the
    cycle with a per-cycle gain; additive Gaussian noise of 2 % of max, clipped at 0."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 0.2, (n_muscles, n_syn)) * (rng.uniform(size=(n_muscles, n_syn)) < 0.4)
    for j in range(n_syn):
        w[3 * j : 3 * j + 3, j] = rng.uniform(0.6, 1.0, 3)
    pct = np.linspace(0.0, 1.0, N_POINTS)
    h1 = np.stack([np.exp(-0.5 * ((pct - c) / 0.07) ** 2) for c in (0.10, 0.35, 0.60, 0.85)])
    gain = np.repeat(rng.uniform(0.7, 1.3, (n_syn, n_cycles)), N_POINTS, axis=1)
    h = np.tile(h1, (1, n_cycles)) * gain
    d = w @ h
    d = np.clip(d + rng.normal(0.0, noise_frac * d.max(), d.shape), 0.0, None)
    return w, h, d


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_four_known_synergies(seed):
    w_true, _, d = _synthetic(seed)
    res = extract_synergies(d, seed=seed)
    assert res.n_synergies == 4
    assert res.reached_threshold and res.vaf >= VAF_THRESHOLD
    assert res.vaf_by_k[3] < VAF_THRESHOLD  # 4 is the smallest k reaching 90 %
    pairs, cos = match_synergies(w_true, res.weights)
    assert pairs.shape == (4, 2) and len(set(pairs[:, 1])) == 4
    assert np.all(cos > 0.95), cos


def test_vaf_is_uncentred_and_matches_formula():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 1, (5, 50))
    w = rng.uniform(0, 1, (5, 2))
    h = rng.uniform(0, 1, (2, 50))
    expected = 1.0 - np.sum((d - w @ h) ** 2) / np.sum(d**2)
    assert vaf(d, w, h) == pytest.approx(expected, rel=1e-12)
    assert vaf(d, np.zeros((5, 1)), np.zeros((1, 50))) == 0.0  # uncentred: zero model -> 0, not < 0
    with pytest.raises(ValueError):
        vaf(d, w, h[:, :10])


def test_exact_low_rank_data_is_reconstructed():
    rng = np.random.default_rng(1)
    w = rng.uniform(0, 1, (8, 2))
    h = rng.uniform(0, 1, (2, 300))
    d = w @ h
    w_hat, h_hat, v = nmf(d, n_synergies=2)
    assert v > 0.9999
    np.testing.assert_allclose(w_hat.max(axis=0), 1.0)  # unit-max weight normalisation
    assert vaf(d, w_hat, h_hat) == pytest.approx(v, rel=1e-12)  # normalisation keeps W H
    assert extract_synergies(d).n_synergies <= 2  # rank-2 data never needs more than 2


def test_seeded_runs_are_reproducible():
    _, _, d = _synthetic(5)
    a = extract_synergies(d, seed=3, n_restarts=3)
    b = extract_synergies(d, seed=3, n_restarts=3)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.vaf_by_k == b.vaf_by_k


def test_input_validation():
    with pytest.raises(ValueError, match="non-negative"):
        extract_synergies(-np.ones((3, 10)))
    with pytest.raises(ValueError, match="2-D"):
        extract_synergies(np.ones(10))
    with pytest.raises(ValueError, match="NaN"):
        extract_synergies(np.full((3, 10), np.nan))
    with pytest.raises(ValueError, match="n_synergies"):
        nmf(np.ones((3, 10)), n_synergies=4)
    with pytest.raises(ValueError, match="vaf_threshold"):
        extract_synergies(np.ones((3, 10)), vaf_threshold=1.5)


def _walking_envelopes():
    """Envelope of the real treadmill trial: 20-450 Hz 4th-order Butterworth band-pass
    (sosfiltfilt), full-wave rectification, 6 Hz 4th-order low-pass (sosfiltfilt), negative
    filter undershoot clipped to 0, cycles cut touchdown to touchdown and resampled to 101
    points, concatenated, each muscle divided by its maximum."""
    raw = np.loadtxt(DERIVED / "ID0012_TW_01_raw_emg.csv", delimiter=",", skiprows=1)
    with open(DERIVED / "ID0012_TW_01_raw_emg.csv") as fh:
        muscles = fh.readline().strip().split(",")[1:]
    cycles = np.loadtxt(DERIVED / "ID0012_TW_01_cycles.csv", delimiter=",", skiprows=1)
    time_s, emg = raw[:, 0], raw[:, 1:]
    rate_hz = 1.0 / np.median(np.diff(time_s))
    bp = signal.butter(4, [20.0, 450.0], btype="bandpass", fs=rate_hz, output="sos")
    lp = signal.butter(4, 6.0, btype="lowpass", fs=rate_hz, output="sos")
    env = signal.sosfiltfilt(lp, np.abs(signal.sosfiltfilt(bp, emg, axis=0)), axis=0)
    env = np.clip(env, 0.0, None)
    touchdowns = cycles[:, 0]
    segments = []
    for start, end in zip(touchdowns[:-1], touchdowns[1:]):
        grid = np.linspace(start, end, N_POINTS)
        segments.append(np.stack([np.interp(grid, time_s, env[:, j]) for j in range(env.shape[1])]))
    d = np.concatenate(segments, axis=1)
    return muscles, d / d.max(axis=1, keepdims=True), len(segments)


def test_real_walking_trial_synergy_count(capsys):
    muscles, d, n_cycles = _walking_envelopes()
    assert len(muscles) == 13 and n_cycles == 5 and d.shape == (13, 5 * N_POINTS)
    res = extract_synergies(d)
    with capsys.disabled():
        print(
            f"\n[synergies] ID0012_TW_01: {res.n_synergies} synergies at VAF >= {VAF_THRESHOLD:.0%} "
            f"(VAF by k: {', '.join(f'{k}:{v:.3f}' for k, v in res.vaf_by_k.items())})"
        )
    assert 2 <= res.n_synergies <= 6
    assert res.vaf >= VAF_THRESHOLD
    # VAF never decreases with more synergies (best-of-restarts, nested models).
    vals = list(res.vaf_by_k.values())
    assert all(b >= a - 1e-3 for a, b in zip(vals, vals[1:]))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_nmf_is_scikit_learns_coordinate_descent_best_of_restarts(k):
    """The numba HALS gives scikit-learn's factors: the same inits (one run after the other, drawn as
    documented), scikit-learn's ``non_negative_factorization(solver="cd")`` on each, the best VAF kept."""
    from sklearn.decomposition import non_negative_factorization

    rng = np.random.default_rng(3)
    t = np.linspace(0, 1, 101)
    h_true = np.tile(np.abs(np.sin(np.outer([1.0, 2.0, 3.0, 1.5], t * np.pi))), (1, 6))
    d = rng.uniform(0, 1, (7, 4)) @ h_true + rng.uniform(0, 0.05, (7, h_true.shape[1]))
    m, n = d.shape
    draw = np.random.default_rng(syn.DEFAULT_SEED)
    scale = np.sqrt(d.mean() / k)
    best = None
    for _ in range(syn.N_RESTARTS):
        w0 = draw.uniform(0.0, 1.0, size=(m, k)) * scale + 1e-12
        h0 = draw.uniform(0.0, 1.0, size=(k, n)) * scale + 1e-12
        w, h, _ = non_negative_factorization(d, W=w0, H=h0, n_components=k, init="custom", solver="cd",
                                             beta_loss="frobenius", tol=syn.TOL, max_iter=syn.MAX_ITER)
        w, h = np.maximum(w, 1e-12), np.maximum(h, 1e-12)
        v = 1 - np.sum((d - w @ h) ** 2) / np.sum(d**2)
        if best is None or v > best[2]:
            best = (w, h, v)
    w_ref, h_ref, v_ref = best
    w, h, v = syn.nmf(d, n_synergies=k)
    assert v == pytest.approx(v_ref, abs=1e-10)
    np.testing.assert_allclose(w @ h, w_ref @ h_ref, atol=1e-8)  # unit-max scaling and order aside
    peak = w_ref.max(axis=0)
    order = np.argsort(np.argmax(h_ref * peak[:, None], axis=1), kind="stable")
    np.testing.assert_allclose(w, (w_ref / peak)[:, order], atol=1e-8)


def test_violation_is_the_projected_gradient_sum():
    """The stopping test's violation, summed in vector lanes, is the definition's sum (exactly rounded here
    with math.fsum) to rounding: |g| where the factor is positive, |min(0, g)| where it is 0."""
    import math

    rng = np.random.default_rng(8)
    for p in (1, 7, 8, 1717):
        g = rng.standard_normal(p + 3) * 10 ** rng.uniform(-3, 3, p + 3)
        ft = np.where(rng.uniform(size=p + 3) < 0.3, 0.0, rng.uniform(size=p + 3))
        ref = math.fsum(abs(min(0.0, x)) if f == 0 else abs(x) for x, f in zip(g[:p], ft[:p]))
        assert syn._violation(g, ft, p) == pytest.approx(ref, rel=1e-13)


def test_sweep_products_are_numpys_matrix_products():
    """The products a HALS sweep needs, written out in numba (``_grams``: ``f f^T`` and ``f x^T``, summed in
    vector lanes; ``_weighted_rows``: ``wt x``), are numpy's ``@`` to rounding, for any number of rows and
    samples (1 row, 1 muscle, lengths that are not a multiple of a vector's width), and ``f f^T`` is exactly
    symmetric."""
    rng = np.random.default_rng(21)
    for k, m, n in [(1, 1, 1), (1, 8, 1717), (3, 5, 7), (4, 8, 1818), (8, 13, 505), (2, 16, 33)]:
        f, x, wt = rng.uniform(0, 2, (k, n)), rng.uniform(0, 2, (m, n)), rng.uniform(0, 2, (k, m))
        ff, fx, out = np.full((k, k), np.nan), np.full((k, m), np.nan), np.full((k, n), np.nan)
        syn._grams(f, x, ff, fx)
        np.testing.assert_allclose(ff, f @ f.T, rtol=1e-13)
        np.testing.assert_allclose(fx, f @ x.T, rtol=1e-13)
        assert np.array_equal(ff, ff.T)
        syn._weighted_rows(wt, x, out)
        np.testing.assert_allclose(out, wt @ x, rtol=1e-13)
        # no x rows: f f^T alone (the H half-sweep's use of it)
        ww = np.full((k, k), np.nan)
        syn._grams(wt, np.empty((0, m)), ww, np.empty((k, 0)))
        np.testing.assert_allclose(ww, wt @ wt.T, rtol=1e-13)


@pytest.mark.parametrize("k", [1, 3])
def test_restarts_one_after_the_other_give_the_parallel_result_bit_for_bit(k):
    """``parallel=False`` (the night's factorisations ahead) runs the same restarts on the calling thread: the
    same factors and VAF, bit for bit, and so the same synergies."""
    rng = np.random.default_rng(5)
    t = np.linspace(0, 1, 101)
    h_true = np.tile(np.abs(np.sin(np.outer([1.0, 2.0, 3.0], t * np.pi))), (1, 8))
    d = rng.uniform(0, 1, (8, 3)) @ h_true + rng.uniform(0, 0.05, (8, h_true.shape[1]))
    w1, h1, v1 = syn.nmf(d, n_synergies=k)
    w2, h2, v2 = syn.nmf(d, n_synergies=k, parallel=False)
    assert np.array_equal(w1, w2) and np.array_equal(h1, h2) and v1 == v2
    a, b = syn.extract_synergies(d), syn.extract_synergies(d, parallel=False)
    assert a.n_synergies == b.n_synergies and np.array_equal(a.weights, b.weights) and a.vaf_by_k == b.vaf_by_k
