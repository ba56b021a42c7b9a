"""numba kernels of the onset detectors (:mod:`transforms.onsets`): the quietest baseline window, its mean and
SD, threshold bursts, and the Hodges-Bui detector on channel blocks (fused with the envelope of
:mod:`transforms.emg_kernels`). Pure numeric code: arrays in, arrays out; the checks of the arguments stay in
:mod:`transforms.onsets`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from transforms import emg_kernels as _kernels


@numba.njit(cache=True)
def _quietest_window(d, win):
    """Start index of the ``win``-sample window with the lowest sum (first on ties)."""
    n = d.shape[0]
    s = 0.0
    for i in range(win):
        s += d[i]
    best = s
    best_i = 0
    for i in range(win, n):
        s += d[i] - d[i - win]
        if s < best:
            best = s
            best_i = i - win + 1
    return best_i


@numba.njit(cache=True)
def _mean_sd(d, start, stop):
    m = 0.0
    for i in range(start, stop):
        m += d[i]
    m /= stop - start
    v = 0.0
    for i in range(start, stop):
        v += (d[i] - m) * (d[i] - m)
    return m, math.sqrt(v / (stop - start - 1))


@numba.njit(cache=True)
def _bursts(d, thr, win_on, need_on, win_off, need_off):
    """Threshold state machine with look-ahead counts; returns (onsets, offsets).

    Onset at n: d[n] > thr and at least ``need_on`` of d[n:n+win_on] > thr.
    Offset at n (while active): d[n] <= thr and at least ``need_off`` of
    d[n:n+win_off] <= thr.  Samples past the end count as neither.
    """
    n = d.shape[0]
    csum = np.zeros(n + 1, dtype=np.int64)  # csum[i] = #(d[:i] > thr)
    for i in range(n):
        csum[i + 1] = csum[i] + (1 if d[i] > thr else 0)
    on = np.empty(n // 2 + 1, dtype=np.int64)
    off = np.empty(n // 2 + 1, dtype=np.int64)
    k = 0
    active = False
    for i in range(n):
        if not active:
            if d[i] > thr:
                j = min(n, i + win_on)
                if csum[j] - csum[i] >= need_on:
                    on[k] = i
                    active = True
        else:
            if d[i] <= thr:
                j = min(n, i + win_off)
                if (j - i) - (csum[j] - csum[i]) >= need_off:
                    off[k] = i
                    k += 1
                    active = False
    if active:
        off[k] = n
        k += 1
    return on[:k].copy(), off[:k].copy()


@numba.njit(cache=True)
def _sustained_bursts(d, thr, n_on, n_off):
    """Single-pass equivalent of ``_bursts(d, thr, n_on, n_on, n_off, n_off)``.

    An onset is the first sample of a supra-threshold run of ``n_on`` samples, an offset
    the first sample of a sub-threshold run of ``n_off`` samples (runs cut by the end of
    the record do not count: a burst still active there gets ``offset == len``).
    """
    n = d.shape[0]
    on = np.empty(n // 2 + 1, dtype=np.int64)
    off = np.empty(n // 2 + 1, dtype=np.int64)
    k = 0
    active = False
    run_start = 0
    run_len = 0
    for i in range(n):
        # a run of samples on the "other side" of the threshold from the current state
        other = (d[i] > thr) != active
        if other:
            if run_len == 0:
                run_start = i
            run_len += 1
            if run_len >= (n_off if active else n_on):
                if active:
                    off[k] = run_start
                    k += 1
                else:
                    on[k] = run_start
                active = not active
                run_len = 0
        else:
            run_len = 0
    # a run cut by the end of the record is too short to switch state
    if active:
        off[k] = n
        k += 1
    return on[:k].copy(), off[:k].copy()


@numba.njit(cache=True)
def _hodges_core(d, k_sd, n_min, n_off, win, b0, b1):
    if b0 < 0:
        b0 = _quietest_window(d, win)
        b1 = b0 + win
    m, sd = _mean_sd(d, b0, b1)
    thr = m + k_sd * sd
    on, off = _sustained_bursts(d, thr, n_min, n_off)
    return on, off, thr


@numba.njit(cache=True)
def _hodges_rows(env, c0, c1, k_sd, n_min, n_off, win, b0, b1, on_all, off_all, counts):
    for c in range(c0, c1):
        on, off, _ = _hodges_core(env[c], k_sd, n_min, n_off, win, b0, b1)
        on_all[c, : on.shape[0]] = on
        off_all[c, : on.shape[0]] = off
        counts[c] = on.shape[0]


@numba.njit(cache=True, parallel=True)
def _hodges_2d(env, k_sd, n_min, n_off, win, b0, b1, on_all, off_all, counts):
    for c in numba.prange(env.shape[0]):
        _hodges_rows(env, c, c + 1, k_sd, n_min, n_off, win, b0, b1, on_all, off_all, counts)


@numba.njit(cache=True, parallel=True)
def _envelope_hodges_2d(
    x, bp, zi_bp, pad_bp, lp, zi_lp, pad_lp, block, env, k_sd, n_min, n_off, win, b0, b1, on_all,
    off_all, counts
):
    n_ch = x.shape[0]
    for blk in numba.prange((n_ch + block - 1) // block):
        c0 = blk * block
        c1 = min(n_ch, c0 + block)
        _kernels.envelope_block(x, c0, c1 - c0, bp, zi_bp, pad_bp, lp, zi_lp, pad_lp, env)
        _hodges_rows(env, c0, c1, k_sd, n_min, n_off, win, b0, b1, on_all, off_all, counts)
