"""Onset refinement: move a coarse detector's onset to the start of the burst's recruitment ramp.

Threshold detectors fire part-way up a burst's rise: on a linear recruitment ramp of R ms they are late
by a fraction of R that grows with the threshold (TKEO +20 ms on a 50 ms ramp, +44 ms on a 100 ms ramp at
10 dB; ``docs/methods_timing.md``). The refinement fits, around each coarse onset, a maximum-likelihood
model of the conditioned EMG's variance::

    v(t) = noise_var + A^2 * clip((t - t0) / R, 0, 1)^2      (R = 0: a step at t0)

to 1 ms bins of the squared, causally high-passed EMG (a forward-only Butterworth puts no energy before
an onset, where a zero-phase band-pass rings ~3 ms early) (each bin's sum of ``m`` squares of zero-mean Gaussian samples is
``v * chi2(m)``; negative log-likelihood ``m log v + e / v``), on a grid of onsets ``t0``, ramp durations
``R`` (``RAMP_GRID_MS``) and plateaus ``A^2`` (``AMPLITUDE_GRID`` x the mean excess energy after the
coarse onset). The window runs from ``REFINE_BACK_MS`` before the coarse onset (not before
``AFTER_OFFSET_GUARD_MS`` after the previous burst's offset) to ``REFINE_AHEAD_MS`` after it (not past
the burst's own offset). ``noise_var`` is the conditioned signal's variance in the detector's baseline;
the rest level before a candidate onset is the window's mean energy before it shrunk toward
``noise_var`` (``REST_PRIOR_BINS``). numpy and one numba kernel; no I/O.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from scipy import signal

from transforms import emg as _emg

#: How far before the coarse onset the true onset may lie, ms (the coarse detector's largest lag).
REFINE_BACK_MS = 150.0
#: How much of the burst after the coarse onset the fit sees, ms.
REFINE_AHEAD_MS = 60.0
#: Ramp durations tried, ms (0 = step).
RAMP_GRID_MS = (0.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 130.0)
#: Plateau energies tried, as multiples of the mean excess energy after the coarse onset.
AMPLITUDE_GRID = (0.7, 1.0, 1.4, 2.0, 2.8)
#: Causal high-pass (forward 4th-order Butterworth) applied to the raw EMG before the fit, Hz.
REFINE_HIGHPASS_HZ = 20.0
#: Bin width of the squared signal, ms.
BIN_MS = 1.0
#: How much later than the coarse onset the refined one may be, bins (ms): threshold detectors on
#: zero-phase filtered signals can fire a few ms before an abrupt onset.
LATE_BINS = 20
#: Bins (ms) of rest the fit needs before a candidate onset to estimate the rest level.
MIN_REST_BINS = 10
#: Weight (bins) of the record's rest variance in the rest level before a candidate onset: the mean energy
#: of the window's bins before it, shrunk toward ``noise_var`` as if that many bins of it came first. The
#: local mean alone absorbs the start of a slow ramp (onsets late: +6 ms on 100 ms ramps at 10 dB, 0.7 s
#: strides); the record's quietest-window variance alone is biased low (onsets early); 100 bins balance
#: them (``docs/methods_timing.md``).
REST_PRIOR_BINS = 100
#: The window starts this long after the previous burst's offset, ms: a coarse offset can fall on the
#: burst's last samples, which would read as the start of the next one.
AFTER_OFFSET_GUARD_MS = 15.0
#: Ramp bins whose log-likelihood terms share one ``log`` (of their product): as many as keep the product
#: under ``e**LOG_PRODUCT_MAX`` (each factor is at most ``1 + c / (noise_var / 2)``): arithmetic only, the
#: same likelihood to ~1e-15; one log per bin was half of the refinement's time.
LOG_PRODUCT_MAX = 600.0
#: Pieces of the ramp in the lower bound that skips candidates which cannot win (:func:`_fit_kernel`): more
#: pieces bound tighter but cost more; the onsets are the same with any number.
BOUND_PIECES = 8
#: Relative amount the bound is lowered by before it skips a candidate: far above its rounding error.
BOUND_MARGIN = 1e-9


def refine_onsets(emg_conditioned, onsets, offsets=None, /, *, rate_hz: float, noise_var: float,
                  back_ms: float = REFINE_BACK_MS, ahead_ms: float = REFINE_AHEAD_MS) -> np.ndarray:
    """Refined onsets (samples) of the bursts a coarse detector found.

    Parameters
    ----------
    emg_conditioned : array_like, shape (n,)
        Zero-mean, band-passed EMG (e.g. :func:`transforms.emg.condition`), any amplitude unit.
    onsets, offsets : array_like of int
        Coarse onsets and (exclusive) offsets in samples, sorted; offsets optional.
    rate_hz : float, keyword-only
        Sampling rate, Hz.
    noise_var : float, keyword-only
        Variance of the conditioned signal at rest (unit^2), > 0.
    back_ms, ahead_ms : float, keyword-only
        Fit window before / after each coarse onset, ms.

    Returns
    -------
    numpy.ndarray
        int64 refined onsets, each within ``back_ms`` before and ``LATE_BINS`` ms after the coarse one.

    Raises
    ------
    ValueError
        On non-1-D or non-finite input, a non-positive rate, noise variance or window.
    """
    x = np.asarray(emg_conditioned, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError("emg_conditioned must be a finite 1-D array")
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
    if not (np.isfinite(noise_var) and noise_var > 0):
        raise ValueError(f"noise_var must be positive, got {noise_var!r}")
    if not (back_ms > 0 and ahead_ms > 0):
        raise ValueError("back_ms and ahead_ms must be positive")
    on = np.asarray(onsets, dtype=np.int64).reshape(-1)
    off = None if offsets is None else np.asarray(offsets, dtype=np.int64).reshape(-1)
    m = max(1, int(round(BIN_MS * 1e-3 * rate_hz)))
    nb = x.size // m
    energy = (x[: nb * m] ** 2).reshape(nb, m).sum(axis=1)
    back, ahead = int(back_ms / BIN_MS), int(ahead_ms / BIN_MS)
    ib = on // m  # each fit's window of bins: [lo, hi), the coarse onset at ib
    lo = np.maximum(ib - back, 0)
    hi = np.minimum(ib + ahead, nb)
    if off is not None:
        if on.size > 1:
            lo[1:] = np.maximum(lo[1:], off[:-1] // m + 1 + int(AFTER_OFFSET_GUARD_MS / BIN_MS))
        hi = np.minimum(hi, np.maximum(ib + 5, off // m))
    fit = (hi - ib >= 5) & (ib - lo >= 2)
    out = on.copy()
    if fit.any():
        t0 = _fit_windows(energy, lo[fit], hi[fit], ib[fit], m, float(noise_var), rate_hz / m, *_method())
        out[fit] = (lo[fit] + t0) * m
    return out


@numba.njit(cache=True, nogil=True)
def _fit_windows(energy, lo, hi, ib, m, noise_var, bin_rate_hz, ramps_ms, amps, min_rest, late, prior_bins,
                 log_product_max, bound_pieces, bound_margin):  # pragma: no cover
    """:func:`_fit_kernel` on each window ``energy[lo:hi]`` (coarse onset ``ib``): onsets in bins from ``lo``."""
    out = np.empty(lo.size, dtype=np.int64)
    for k in range(lo.size):
        out[k] = _fit_kernel(energy[lo[k]:hi[k]], ib[k] - lo[k], m, noise_var, bin_rate_hz, ramps_ms, amps,
                             min_rest, late, prior_bins, log_product_max, bound_pieces, bound_margin)
    return out


def _fit(e: np.ndarray, coarse: int, m: int, noise_var: float, bin_rate_hz: float) -> int:
    """Bin index of the ML onset in the window ``e`` (energies per bin); the coarse onset is ``coarse``.

    The rest level before each candidate onset is the mean energy of the bins before it (at least
    ``MIN_REST_BINS`` of them) shrunk toward ``noise_var`` with the weight of ``REST_PRIOR_BINS`` bins,
    floored at half ``noise_var``. Every (ramp, plateau, onset) of the grid is scored; the first lowest
    negative log-likelihood in (ramp, plateau, onset) order wins."""
    e = np.ascontiguousarray(e, dtype=np.float64)
    one = np.zeros(1, dtype=np.int64)
    return int(_fit_windows(e, one, one + e.size, one + int(coarse), int(m), float(noise_var), float(bin_rate_hz),
                            *_method())[0])


def _method() -> tuple:
    """The grid and constants every fit takes (:func:`_fit_kernel`'s arguments after the window's), as set now."""
    return (_RAMPS_MS, _AMPLITUDES, MIN_REST_BINS, LATE_BINS, float(REST_PRIOR_BINS), LOG_PRODUCT_MAX,
            BOUND_PIECES, BOUND_MARGIN)


_RAMPS_MS = np.asarray(RAMP_GRID_MS, dtype=np.float64)
_AMPLITUDES = np.asarray(AMPLITUDE_GRID, dtype=np.float64)


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _fit_kernel(e, coarse, m, noise_var, bin_rate_hz, ramps_ms, amps, min_rest, late, prior_bins,
                log_product_max, bound_pieces, bound_margin):  # pragma: no cover
    """The grid of :func:`_fit`, scored in closed form where the model is flat: before the onset
    (``rest``) and after the ramp (``rest + A^2``) by cumulative sums, so only the ramp's own bins are
    summed one by one (the same likelihood as summing every bin). For each (ramp, plateau) the ramp's
    bins are the outer loop and the candidate onsets the inner one: independent lanes the compiler
    vectorises (``error_model="numpy"``: no per-division zero check; every divisor here is > 0).

    Candidates that cannot win are not summed: before a (ramp, plateau)'s ramp bins, a lower bound of
    each candidate's score is taken, in which the ramp's bins cost (a) in their energy terms
    ``e / ((rest + c g^2) m)``, ``g`` at the end of each of ``bound_pieces`` pieces of the ramp (``g``
    only grows along it), and (b) in their logs ``log(1 + c g^2 / rest)``, at least
    ``log(rmin + c g^2) - log(rest)`` (``rmin``: the window's smallest rest level) and in all at least 0.
    A candidate whose bound, lowered by ``bound_margin`` of itself (rounding), is not below the best
    score so far would not have been taken (only a lower score replaces the best), so the scores of the
    others, computed as before, pick the same onset."""
    n = e.size
    first = min(min_rest, coarse)
    nrmax = 0
    for ramp_ms in ramps_ms:
        nrmax = max(nrmax, int(math.ceil(ramp_ms * 1e-3 * bin_rate_hz)))
    cum = np.empty(n + 1 + nrmax)  # cumulative energies, then cum[n] again: a ramp may run past the window
    cum[0] = 0.0
    for i in range(n):
        cum[i + 1] = cum[i] + e[i]
    cum[n + 1:] = cum[n]
    excess = max((cum[n] - cum[coarse]) / (n - coarse) / m - noise_var, noise_var * 0.1)
    last = min(n - 5, coarse + late)
    best, best_t0, have_best = 0.0, coarse, False
    ns = last + 1 - first  # candidate onsets s = first + j
    if ns <= 0:
        return coarse
    rest = np.empty(ns)  # the rest level before each candidate, and its log
    lrest = np.empty(ns)
    for j in range(ns):
        s = first + j
        rest[j] = max((cum[s] + noise_var * m * prior_bins) / ((s + prior_bins) * m), 0.5 * noise_var)
        lrest[j] = math.log(rest[j])
    rmin = rest.min()
    lrmin = math.log(rmin)
    lvf = np.empty((amps.size, ns))  # log(rest + A^2) of each plateau and candidate
    for ai in range(amps.size):
        for j in range(ns):
            lvf[ai, j] = math.log(rest[j] + amps[ai] * excess)
    bound = np.empty(ns)
    tlog = np.empty(nrmax + 1)
    q = np.empty(ns)
    ramp_e = np.empty(ns)  # sum over the ramp's bins of e / (1 + q g^2)
    ramp_log = np.empty(ns)  # sum over the ramp's bins of log(1 + q g^2), as logs of products
    prod = np.empty(ns)
    es = e[first:]
    for ramp_ms in ramps_ms:
        r = ramp_ms * 1e-3 * bin_rate_hz
        nr = 0 if r <= 0 else int(math.ceil(r))  # bins inside the ramp (g < 1)
        for ai in range(amps.size):
            c = amps[ai] * excess
            lv = lvf[ai]
            # log(rest + c g^2) = log(rest) + log(1 + (c / rest) g^2); rest >= noise_var / 2 bounds each factor
            group = max(1, int(log_product_max / math.log1p(c / (0.5 * noise_var))))
            jlo, jhi = 0, ns
            if nr > 0 and have_best:
                _bounds(bound, tlog, cum, rest, lrest, lv, n, first, m, r, nr, c, rmin, lrmin, group,
                        bound_pieces, bound_margin)
                while jlo < ns and bound[jlo] >= best:
                    jlo += 1
                while jhi > jlo and bound[jhi - 1] >= best:
                    jhi -= 1
                if jhi == jlo:
                    continue
            w = jhi - jlo  # the candidates summed: views from jlo (indices from 0 keep the loops vectorised)
            qv, rev, rlv, pv, rv = q[jlo:jhi], ramp_e[jlo:jhi], ramp_log[jlo:jhi], prod[jlo:jhi], rest[jlo:jhi]
            for j in range(w):
                qv[j] = c / rv[j]
                rev[j] = 0.0
                rlv[j] = 0.0
                pv[j] = 1.0
            for d in range(nr):
                g2 = (d / r) ** 2
                ed = es[d + jlo:]
                for j in range(min(w, n - d - first - jlo)):  # candidates whose ramp still has bin d
                    u = 1.0 + qv[j] * g2
                    rev[j] += ed[j] / u
                    pv[j] *= u
                if (d + 1) % group == 0:
                    for j in range(w):
                        rlv[j] += math.log(pv[j])
                        pv[j] = 1.0
            for j in range(jlo, jhi):
                s = first + j
                k = min(nr, n - s)
                rm = rest[j] * m
                nll = (s + k) * lrest[j] + cum[s] / rm + ramp_e[j] / rm + ramp_log[j] + math.log(prod[j])
                if n - s - k > 0:
                    vf = rest[j] + c
                    nll += (n - s - k) * lv[j] + (cum[n] - cum[s + k]) / (vf * m)
                if not have_best or nll < best:
                    best, best_t0, have_best = nll, s, True
    return best_t0


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _bounds(bound, tlog, cum, rest, lrest, lv, n, first, m, r, nr, c, rmin, lrmin, group, bound_pieces,
            bound_margin):  # pragma: no cover
    """:func:`_fit_kernel`'s lower bound of each candidate's score for one (ramp, plateau), into ``bound``."""
    # tlog[k] <= sum of log(1 + (c / rmin) g^2) over the ramp's first k bins: a log of each product of up to
    # `group` factors (the terms are >= 0: between logs, the last one's sum)
    qmin = c / rmin
    tlog[0] = 0.0
    acc, pr = 0.0, 1.0
    blk = min(group, 8)
    for d in range(nr):
        g = d / r
        pr *= 1.0 + qmin * g * g
        if (d + 1) % blk == 0 or d + 1 == nr:
            acc += math.log(pr)
            pr = 1.0
        tlog[d + 1] = acc
    ns = bound.size
    for j in range(ns):
        s = first + j
        k = min(nr, n - s)
        bound[j] = ((s + k) * lrest[j] + cum[s] / (rest[j] * m) + (n - s - k) * lv[j]
                    + (cum[n] - cum[s + k]) / ((rest[j] + c) * m)
                    + max(tlog[k] + k * (lrmin - lrest[j]), 0.0))
    d0 = 0
    for p in range(bound_pieces):
        d1 = (nr * (p + 1)) // bound_pieces
        if d1 > d0:
            g = (d1 - 1) / r
            cg = c * g * g
            c1, c0 = cum[first + d1:], cum[first + d0:]
            for j in range(ns):
                bound[j] += (c1[j] - c0[j]) / ((rest[j] + cg) * m)
        d0 = d1
    for j in range(ns):
        bound[j] -= bound_margin * abs(bound[j])


def rest_variance(emg_conditioned, /, *, rate_hz: float, window_ms: float) -> float:
    """Variance (mean square) of the conditioned EMG in its quietest window of ``window_ms``.

    Raises
    ------
    ValueError
        On bad input or a window longer than the signal.
    """
    x = np.asarray(emg_conditioned, dtype=np.float64)
    w = int(round(window_ms * 1e-3 * rate_hz))
    if x.ndim != 1 or w < 1 or w > x.size:
        raise ValueError(f"need a 1-D signal of at least {w} samples")
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    return float(np.min(c[w:] - c[:-w]) / w)


def causal_highpass(emg_mv, /, *, rate_hz: float, highpass_hz: float = REFINE_HIGHPASS_HZ) -> np.ndarray:
    """Mean-removed EMG through a forward-only 4th-order Butterworth high-pass (no pre-ringing).

    Raises
    ------
    ValueError
        On bad input or a cut-off at or above Nyquist.
    """
    x = np.asarray(emg_mv, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError("emg_mv must be a finite 1-D array of at least 2 samples")
    if not (0 < highpass_hz < rate_hz / 2):
        raise ValueError(f"highpass_hz must be in (0, {rate_hz / 2}), got {highpass_hz!r}")
    sos = _emg.butter_sos(order=4, cutoff_hz=highpass_hz, btype="highpass", rate_hz=rate_hz)
    return signal.sosfilt(sos, x - x.mean())


def refine_bursts(emg_mv, onsets, offsets, /, *, rate_hz: float,
                  baseline_window_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """A coarse detector's bursts with each onset refined by :func:`refine_onsets` on the causally
    high-passed raw EMG (:func:`causal_highpass`; rest variance from its quietest
    ``baseline_window_ms``); offsets unchanged. Used by ``transforms.onsets.onsets_tkeo_refined``.

    Returns
    -------
    tuple of numpy.ndarray
        int64 onsets and (exclusive) offsets in samples.

    Raises
    ------
    ValueError
        As :func:`causal_highpass` and :func:`refine_onsets`.
    """
    on = np.asarray(onsets, dtype=np.int64)
    off = np.asarray(offsets, dtype=np.int64)
    if not on.size:
        return on, off
    h = causal_highpass(emg_mv, rate_hz=rate_hz)
    nv = rest_variance(h, rate_hz=rate_hz, window_ms=min(baseline_window_ms, 1000.0 * h.size / rate_hz))
    if not nv > 0:
        return on, off
    return refine_onsets(h, on, off, rate_hz=rate_hz, noise_var=nv), off
