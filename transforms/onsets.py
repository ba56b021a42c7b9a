"""Muscle activation onset / offset detection.

Detectors returning ``(onsets, offsets)`` as int64 sample indices of the bursts of a 1-D signal:

* ``hodges_bui`` (Hodges & Bui 1996) on a linear envelope: threshold = baseline mean + ``k_sd``
  SD; onset/offset = first sample of a run above/below it lasting ``min_duration_ms``.
* ``tkeo`` (Solnik et al. 2010) on raw EMG: band-pass ``TKEO_BAND_HZ``, Teager-Kaiser
  operator, rectification, ``TKEO_LOWPASS_HZ`` low-pass, then a threshold; the onset
  needs ``TKEO_MIN_ABOVE_MS`` of the next ``TKEO_WINDOW_MS`` above it.
* ``double_threshold`` (Bonato et al. 1998 style) on ``|x|``: amplitude threshold plus
  ``min_above_ms`` of supra-threshold samples within the next ``window_ms``; the burst
  ends where less than half that remains.
* ``tkeo_refined``: ``tkeo`` bursts, each onset moved to the start of its recruitment ramp
  by a local maximum-likelihood fit (:mod:`transforms.onsets_refine`).

Conventions: offsets are *exclusive* (``x[on:off]`` is the burst); a burst active at the end
gets ``offset == len(x)`` and one active at sample 0 ``onset == 0`` (censored). Baseline:
``baseline=slice(a, b)`` (or an ``(a, b)`` pair) in samples, by default the *quietest window*:
the ``baseline_window_ms`` window with the lowest mean of the detection signal (first on ties),
which assumes one rest period that long (true in gait).

Bias (``bench/onset_bias.py``): ``hodges_bui`` is early on steps by :func:`lowpass_step_crossing_ms`;
the threshold detectors are late on ramps by a share of the ramp (TKEO +44 ms on 100 ms ramps at 10 dB),
which ``tkeo_refined`` removes; hence ``DEFAULT_ONSET_METHOD`` = ``tkeo_refined``.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from transforms import emg as _emg, onsets_refine as _refine
from transforms.onsets_kernels import _bursts, _envelope_hodges_2d, _hodges_2d, _hodges_core, _mean_sd, _quietest_window

__all__ = [
    "DEFAULT_ONSET_METHOD", "ONSET_METHODS", "DEFAULT_K_SD", "DEFAULT_MIN_DURATION_MS",
    "DEFAULT_BASELINE_WINDOW_MS", "TKEO_BAND_HZ", "TKEO_LOWPASS_HZ", "TKEO_K_SD", "TKEO_WINDOW_MS",
    "TKEO_MIN_ABOVE_MS", "DOUBLE_THRESHOLD_K_SD", "DOUBLE_THRESHOLD_WINDOW_MS",
    "DOUBLE_THRESHOLD_MIN_ABOVE_MS", "tkeo", "baseline_stats", "onsets_hodges_bui", "onsets_tkeo",
    "onsets_double_threshold", "onsets_tkeo_refined", "detect_onsets", "onsets_hodges_bui_2d",
    "envelope_onsets_fast", "lowpass_step_crossing_ms", "lowpass_step_crossings_ms", "onsets_tkeo_2d"]

#: Default detector of the pipeline and :func:`detect_onsets`: the only one within 5 ms median bias
#: for step and 20-100 ms ramp onsets at >= 10 dB (bench/onset_bias.py; docs/methods_timing.md).
DEFAULT_ONSET_METHOD = "tkeo_refined"
#: Names accepted by :func:`detect_onsets`.
ONSET_METHODS = ("hodges_bui", "tkeo", "double_threshold", "tkeo_refined")
#: Threshold = baseline mean + DEFAULT_K_SD x baseline SD.  Hodges & Bui's classic
#: h = 3 (25 ms, short baseline) assumes a long rest baseline: with the automatic
#: quietest window on a 6 Hz envelope the SD is underestimated (short, autocorrelated,
#: selected-for-low window) and h = 3 gave ~1 false burst per true burst below 10 dB SNR
#: (bench/onset_bias.py) and fragmented bursts on the real treadmill fixture (16-21
#: bursts in 7 cycles for RF, PL, gluteus medius).  h = 5 with the 500 ms window and
#: 50 ms duration below gives ~1 burst per cycle there, at ~5 ms later onsets.
DEFAULT_K_SD = 5.0
#: Time the signal must stay above (onset) or below (offset) the threshold, in ms
#: (Hodges & Bui evaluated 10-50 ms).
DEFAULT_MIN_DURATION_MS = 50.0
#: Length of the quietest-window baseline, in ms, when no ``baseline`` slice is given.
DEFAULT_BASELINE_WINDOW_MS = 500.0
#: Band-pass applied before the TKEO, Hz (Solnik et al. 2010: 30-300 Hz).
TKEO_BAND_HZ = (30.0, 300.0)
#: Low-pass of the rectified TKEO output, Hz (Solnik et al. 2010: 50 Hz).
TKEO_LOWPASS_HZ = 50.0
#: SD multiplier of the TKEO detector (chosen with bench/onset_bias.py: fewest false
#: bursts at 6-10 dB SNR with |median bias| < 5 ms).
TKEO_K_SD = 5.0
#: TKEO onset rule: at least TKEO_MIN_ABOVE_MS of the next TKEO_WINDOW_MS above threshold
#: (the TKEO of a burst dips briefly below threshold, so "all samples above" starts late).
TKEO_WINDOW_MS = 50.0
#: See TKEO_WINDOW_MS, ms.
TKEO_MIN_ABOVE_MS = 30.0
#: SD multiplier of the double-threshold detector's amplitude threshold on |raw EMG|
#: (about 1 % of Gaussian noise samples exceed mean + 3 SD of |x|; the second, count
#: threshold removes them).
DOUBLE_THRESHOLD_K_SD = 3.0
#: Look-ahead window of the double-threshold detector, in ms.
DOUBLE_THRESHOLD_WINDOW_MS = 30.0
#: Supra-threshold time needed inside that window, in ms (second threshold). On Gaussian noise |x|
#: exceeds mean + 3 SD ~1 % of the time, so 10 ms of 30 ms is practically never reached without a burst.
DOUBLE_THRESHOLD_MIN_ABOVE_MS = 10.0


# --------------------------------------------------------------------------- helpers
def _as_1d(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be a real numeric array")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _ms_to_samples(ms: float, rate_hz: float, name: str) -> int:
    if not (math.isfinite(ms) and ms >= 0):
        raise ValueError(f"{name} must be a non-negative number of ms, got {ms!r}")
    return max(1, int(round(ms * 1e-3 * rate_hz)))


def _rate(rate_hz: float) -> float:
    r = float(rate_hz)
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
    return r


def _baseline_bounds(baseline, n: int) -> tuple[int, int]:
    """(start, stop) of an explicit baseline, or (-1, -1) for the quietest window."""
    if baseline is None:
        return -1, -1
    if isinstance(baseline, slice):
        if baseline.step not in (None, 1):
            raise ValueError("baseline slice must have step 1")
        start, stop, _ = baseline.indices(n)
    else:
        try:
            start, stop = (int(v) for v in baseline)
        except (TypeError, ValueError):
            raise ValueError(f"baseline must be a slice or (start, stop) pair, got {baseline!r}") from None
        start, stop, _ = slice(start, stop).indices(n)
    if stop - start < 2:
        raise ValueError(f"baseline must cover at least 2 samples, got [{start}, {stop}) of {n}")
    return start, stop


# --------------------------------------------------------------------------- public API
def tkeo(x, /) -> np.ndarray:
    """Discrete Teager-Kaiser energy operator ``x[n]^2 - x[n-1] x[n+1]``.

    The two end samples (no neighbour) are set to the value of their neighbour so the
    output has the input's length.  For ``A sin(W n + phi)`` the interior is exactly
    ``A^2 sin^2(W)``.

    Raises
    ------
    ValueError
        On empty, non-1-D or non-finite input, or fewer than 3 samples.
    """
    arr = _as_1d(x, "x")
    if arr.size < 3:
        raise ValueError("tkeo needs at least 3 samples")
    out = np.empty_like(arr)
    out[1:-1] = arr[1:-1] ** 2 - arr[:-2] * arr[2:]
    out[0] = out[1]
    out[-1] = out[-2]
    return out


def baseline_stats(x, /, *, rate_hz: float, baseline=None, baseline_window_ms: float = DEFAULT_BASELINE_WINDOW_MS):
    """Mean, SD and (start, stop) sample bounds of the baseline used by the detectors.

    Raises
    ------
    ValueError
        On bad input, or a baseline window longer than the signal.
    """
    d = _as_1d(x, "x")
    b0, b1 = _baseline_bounds(baseline, d.size)
    if b0 < 0:
        win = _ms_to_samples(baseline_window_ms, _rate(rate_hz), "baseline_window_ms")
        if win < 2 or win > d.size:
            raise ValueError(f"baseline window of {win} samples does not fit a {d.size}-sample signal")
        b0 = int(_quietest_window(d, win))
        b1 = b0 + win
    m, sd = _mean_sd(d, b0, b1)
    return float(m), float(sd), (b0, b1)


def _window_and_bounds(d, rate, baseline, baseline_window_ms):
    b0, b1 = _baseline_bounds(baseline, d.size)
    win = _ms_to_samples(baseline_window_ms, rate, "baseline_window_ms")
    if b0 < 0 and (win < 2 or win > d.size):
        raise ValueError(f"baseline window of {win} samples does not fit a {d.size}-sample signal")
    return win, b0, b1


def _check_k(k_sd: float) -> float:
    if not (math.isfinite(k_sd) and k_sd >= 0):
        raise ValueError(f"k_sd must be a non-negative number, got {k_sd!r}")
    return float(k_sd)


def onsets_hodges_bui(
    envelope, /, *, rate_hz: float, k_sd: float = DEFAULT_K_SD,
    min_duration_ms: float = DEFAULT_MIN_DURATION_MS, min_off_duration_ms: float | None = None,
    baseline=None, baseline_window_ms: float = DEFAULT_BASELINE_WINDOW_MS
) -> tuple[np.ndarray, np.ndarray]:
    """Hodges & Bui onsets/offsets on a 1-D envelope (any amplitude unit).

    Threshold = baseline mean + ``k_sd`` x baseline SD; the signal must stay above it for
    ``min_duration_ms`` for an onset and below it for ``min_off_duration_ms`` (default:
    ``min_duration_ms``) for an offset.  ``baseline``: slice or (start, stop) samples;
    ``None`` = the quietest ``baseline_window_ms`` window.

    Returns
    -------
    tuple of numpy.ndarray
        int64 onsets and (exclusive) offsets in samples.

    Raises
    ------
    ValueError
        On bad input or parameters.
    """
    d = _as_1d(envelope, "envelope")
    rate = _rate(rate_hz)
    n_min = _ms_to_samples(min_duration_ms, rate, "min_duration_ms")
    off_ms = min_duration_ms if min_off_duration_ms is None else min_off_duration_ms
    n_off = _ms_to_samples(off_ms, rate, "min_off_duration_ms")
    win, b0, b1 = _window_and_bounds(d, rate, baseline, baseline_window_ms)
    on, off, _ = _hodges_core(d, _check_k(k_sd), n_min, n_off, win, b0, b1)
    return on, off


def onsets_hodges_bui_2d(
    envelopes, /, *, rate_hz: float, k_sd: float = DEFAULT_K_SD,
    min_duration_ms: float = DEFAULT_MIN_DURATION_MS, min_off_duration_ms: float | None = None,
    baseline=None, baseline_window_ms: float = DEFAULT_BASELINE_WINDOW_MS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`onsets_hodges_bui` on every row of a channels x samples array, channels in
    parallel (numba ``prange``); identical results to the 1-D function per channel.

    Returns
    -------
    list of tuple
        One ``(onsets, offsets)`` pair per channel.

    Raises
    ------
    ValueError
        As :func:`onsets_hodges_bui`; also for non-2-D input.
    """
    env = np.asarray(envelopes)
    if env.ndim != 2 or env.shape[0] == 0:
        raise ValueError(f"envelopes must be 2-D channels x samples, got shape {env.shape}")
    env = np.ascontiguousarray(env, dtype=np.float64)
    if env.shape[1] == 0 or not np.all(np.isfinite(env)):
        raise ValueError("envelopes must be non-empty and finite")
    rate = _rate(rate_hz)
    n_min = _ms_to_samples(min_duration_ms, rate, "min_duration_ms")
    off_ms = min_duration_ms if min_off_duration_ms is None else min_off_duration_ms
    n_off = _ms_to_samples(off_ms, rate, "min_off_duration_ms")
    win, b0, b1 = _window_and_bounds(env[0], rate, baseline, baseline_window_ms)
    return _collect(_hodges_2d, env, (_check_k(k_sd), n_min, n_off, win, b0, b1))


def _collect(kernel, env, params, *pre):
    """Run a 2-D burst kernel with output arrays sized by the largest possible burst
    count (each burst needs ``n_min`` samples above and ``n_off`` below)."""
    n_ch, n = env.shape
    cap = n // (params[1] + params[2]) + 2
    on_all = np.empty((n_ch, cap), dtype=np.int64)
    off_all = np.empty((n_ch, cap), dtype=np.int64)
    counts = np.zeros(n_ch, dtype=np.int64)
    kernel(*pre, env, *params, on_all, off_all, counts)
    return [(on_all[c, : counts[c]].copy(), off_all[c, : counts[c]].copy()) for c in range(n_ch)]


def envelope_onsets_fast(
    emg_2d, /, *, rate_hz: float, band_hz=_emg.DEFAULT_BAND_HZ,
    lowpass_hz: float = _emg.DEFAULT_LOWPASS_HZ, order: int = _emg.DEFAULT_ORDER,
    k_sd: float = DEFAULT_K_SD, min_duration_ms: float = DEFAULT_MIN_DURATION_MS,
    min_off_duration_ms: float | None = None, baseline=None,
    baseline_window_ms: float = DEFAULT_BASELINE_WINDOW_MS
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Fast path for raw EMG -> (envelope, Hodges-Bui onsets) in one parallel region.

    Same results as ``emg.envelope_fast`` followed by :func:`onsets_hodges_bui_2d`
    (tested), but each thread detects the onsets of its channel block right after
    computing their envelopes, so a trial costs one parallel region instead of two
    (fewer barriers: faster on a loaded machine).

    Returns
    -------
    tuple
        (float64 channels x samples envelope, list of ``(onsets, offsets)`` per channel).

    Raises
    ------
    ValueError
        As ``emg.envelope_fast`` and :func:`onsets_hodges_bui`.
    """
    x = _emg._as_signal(emg_2d, "emg_2d")
    if x.ndim != 2:
        raise ValueError(f"emg_2d must be 2-D channels x samples, got shape {x.shape}")
    x = np.ascontiguousarray(x)
    rate = _rate(rate_hz)
    design = _emg._fast_design(rate, tuple(float(v) for v in band_hz), float(lowpass_hz), _emg._check_order(order))
    _emg._check_length(x, max(design[2], design[5]), "envelope")
    n_min = _ms_to_samples(min_duration_ms, rate, "min_duration_ms")
    off_ms = min_duration_ms if min_off_duration_ms is None else min_off_duration_ms
    n_off = _ms_to_samples(off_ms, rate, "min_off_duration_ms")
    win, b0, b1 = _window_and_bounds(x[0], rate, baseline, baseline_window_ms)
    threads = max(1, numba.get_num_threads())
    block = int(min(_emg.FAST_BLOCK_CHANNELS, max(1, -(-x.shape[0] // threads))))
    env = np.empty_like(x)
    bursts = _collect(_envelope_hodges_2d, env, (_check_k(k_sd), n_min, n_off, win, b0, b1), x, *design, block)
    return env, bursts


def onsets_tkeo(
    emg_mv, /, *, rate_hz: float, band_hz=TKEO_BAND_HZ, lowpass_hz: float = TKEO_LOWPASS_HZ,
    k_sd: float = TKEO_K_SD, window_ms: float = TKEO_WINDOW_MS,
    min_above_ms: float = TKEO_MIN_ABOVE_MS, min_off_duration_ms: float = DEFAULT_MIN_DURATION_MS,
    baseline=None, baseline_window_ms: float = DEFAULT_BASELINE_WINDOW_MS
) -> tuple[np.ndarray, np.ndarray]:
    """TKEO-conditioned threshold detector (Solnik et al. 2010) on *raw* EMG.

    Band-pass ``band_hz`` (zero-phase Butterworth, ``emg.DEFAULT_ORDER``), TKEO,
    full-wave rectification, zero-phase low-pass at ``lowpass_hz``; threshold = baseline
    mean + ``k_sd`` SD.  Onset: a supra-threshold sample with at least ``min_above_ms``
    of supra-threshold samples in the next ``window_ms``; offset: a sub-threshold sample
    followed by ``min_off_duration_ms`` of sub-threshold samples.

    Returns
    -------
    tuple of numpy.ndarray
        int64 onsets and (exclusive) offsets in samples.

    Raises
    ------
    ValueError
        On bad input, filter edges at/above Nyquist or ``min_above_ms > window_ms``.
    """
    return onsets_tkeo_2d(_as_1d(emg_mv, "emg_mv")[None], rate_hz=rate_hz, band_hz=band_hz, lowpass_hz=lowpass_hz,
                          k_sd=k_sd, window_ms=window_ms, min_above_ms=min_above_ms,
                          min_off_duration_ms=min_off_duration_ms, baseline=baseline,
                          baseline_window_ms=baseline_window_ms)[0]


def onsets_tkeo_2d(emg_mv, /, *, rate_hz: float, band_hz=TKEO_BAND_HZ, lowpass_hz: float = TKEO_LOWPASS_HZ,
                   k_sd: float = TKEO_K_SD, window_ms: float = TKEO_WINDOW_MS, min_above_ms: float = TKEO_MIN_ABOVE_MS,
                   min_off_duration_ms: float = DEFAULT_MIN_DURATION_MS, baseline=None,
                   baseline_window_ms: float = DEFAULT_BASELINE_WINDOW_MS) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`onsets_tkeo` of every row of a finite channels x samples array (the rows filtered side by side by
    ``emg.zero_phase``): one ``(onsets, offsets)`` pair per row, each as the 1-D function's, bit for bit.

    Raises
    ------
    ValueError
        As :func:`onsets_tkeo`.
    """
    x = np.asarray(emg_mv, dtype=np.float64)
    if x.ndim != 2 or not x.size or not np.all(np.isfinite(x)):
        raise ValueError(f"emg_mv must be a finite, non-empty channels x samples array, got shape {x.shape}")
    rate = _rate(rate_hz)
    m = _ms_to_samples(window_ms, rate, "window_ms")
    r0 = _ms_to_samples(min_above_ms, rate, "min_above_ms")
    if r0 > m:
        raise ValueError(f"min_above_ms ({min_above_ms}) must not exceed window_ms ({window_ms})")
    n_off = _ms_to_samples(min_off_duration_ms, rate, "min_off_duration_ms")
    bp = _emg.bandpass(x - x.mean(axis=-1, keepdims=True), rate_hz=rate, band_hz=band_hz)
    te = np.empty_like(bp)  # the Teager-Kaiser operator of each row (as tkeo)
    te[:, 1:-1] = bp[:, 1:-1] ** 2 - bp[:, :-2] * bp[:, 2:]
    te[:, 0], te[:, -1] = te[:, 1], te[:, -2]
    d = _emg.lowpass(np.abs(te), rate_hz=rate, lowpass_hz=lowpass_hz)
    return [_bursts(row, _threshold(row, rate, k_sd, baseline, baseline_window_ms), m, r0, n_off, n_off) for row in d]


def _threshold(d, rate, k_sd, baseline, baseline_window_ms) -> float:
    win, b0, b1 = _window_and_bounds(d, rate, baseline, baseline_window_ms)
    if b0 < 0:
        b0 = int(_quietest_window(d, win))
        b1 = b0 + win
    mean, sd = _mean_sd(d, b0, b1)
    return mean + _check_k(k_sd) * sd


def onsets_double_threshold(
    x, /, *, rate_hz: float, k_sd: float = DOUBLE_THRESHOLD_K_SD,
    window_ms: float = DOUBLE_THRESHOLD_WINDOW_MS,
    min_above_ms: float = DOUBLE_THRESHOLD_MIN_ABOVE_MS, baseline=None,
    baseline_window_ms: float = DEFAULT_BASELINE_WINDOW_MS
) -> tuple[np.ndarray, np.ndarray]:
    """Double-threshold detector (Bonato et al. 1998 style) on ``|x|``.

    First threshold: ``|x| > mean + k_sd * SD`` of the baseline of ``|x|``.  Second
    threshold: at least ``min_above_ms`` of supra-threshold samples in the
    ``window_ms`` starting at the candidate sample (onset); the burst ends at a
    sub-threshold sample whose window holds less than half that supra-threshold time.
    Works on a band-passed EMG or on an envelope.

    Returns
    -------
    tuple of numpy.ndarray
        int64 onsets and (exclusive) offsets in samples.

    Raises
    ------
    ValueError
        On bad input, or ``min_above_ms > window_ms``.
    """
    d = np.abs(_as_1d(x, "x"))
    rate = _rate(rate_hz)
    m = _ms_to_samples(window_ms, rate, "window_ms")
    r0 = _ms_to_samples(min_above_ms, rate, "min_above_ms")
    if r0 > m:
        raise ValueError(f"min_above_ms ({min_above_ms}) must not exceed window_ms ({window_ms})")
    thr = _threshold(d, rate, k_sd, baseline, baseline_window_ms)
    # offset: fewer than r0 // 2 supra-threshold samples ahead (count hysteresis, so an
    # offset cannot be followed by an onset one sample later)
    return _bursts(d, thr, m, r0, m, m - max(1, r0 // 2) + 1)


def onsets_tkeo_refined(emg_mv, /, *, rate_hz: float, baseline_window_ms: float = DEFAULT_BASELINE_WINDOW_MS,
                        **tkeo_params) -> tuple[np.ndarray, np.ndarray]:
    """:func:`onsets_tkeo` bursts, onsets refined by :func:`transforms.onsets_refine.refine_bursts`.

    Raises
    ------
    ValueError
        As :func:`onsets_tkeo`.
    """
    bursts = onsets_tkeo(emg_mv, rate_hz=rate_hz, baseline_window_ms=baseline_window_ms, **tkeo_params)
    return _refine.refine_bursts(emg_mv, *bursts, rate_hz=rate_hz, baseline_window_ms=baseline_window_ms)


_METHODS = {"hodges_bui": onsets_hodges_bui, "tkeo": onsets_tkeo, "double_threshold": onsets_double_threshold,
            "tkeo_refined": onsets_tkeo_refined}


def detect_onsets(x, /, *, rate_hz: float, method: str = DEFAULT_ONSET_METHOD, **params):
    """Dispatch to a detector by name (see :data:`ONSET_METHODS`).

    ``"hodges_bui"`` expects an envelope, ``"tkeo"`` and ``"tkeo_refined"`` raw EMG,
    ``"double_threshold"`` either.  Extra keyword parameters go to the detector.

    Raises
    ------
    ValueError
        On an unknown method name or bad input.
    """
    try:
        fn = _METHODS[method]
    except KeyError:
        raise ValueError(f"unknown onset method {method!r}; choose from {ONSET_METHODS}") from None
    return fn(x, rate_hz=rate_hz, **params)


def lowpass_step_crossing_ms(
    fraction: float, /, *, rate_hz: float, lowpass_hz: float = _emg.DEFAULT_LOWPASS_HZ,
    order: int = _emg.DEFAULT_ORDER
) -> float:
    """Time (ms, negative = before the step) at which the zero-phase low-passed unit step
    crosses ``fraction`` of its final value on its main rising edge.

    This is the expected bias of a threshold onset on an envelope whose underlying
    activation is a step: with threshold ``thr`` between the baseline level ``b`` and
    the burst plateau ``p``, use ``fraction = (thr - b) / (p - b)``; subtract the
    returned value from detected onset times to correct them.

    Raises
    ------
    ValueError
        If ``fraction`` is not in (0, 1) or the filter is invalid.
    """
    if not (0.0 < fraction < 1.0):
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    rate = _rate(rate_hz)
    y, half = _emg.lowpass_step_response(rate_hz=rate, lowpass_hz=float(lowpass_hz), order=int(order))
    # the crossing on the main edge: last sample below `fraction` before the edge reaches
    # max(fraction, 50 %)
    # (earlier pre-ringing lobes of the symmetric filter are ignored)
    k_ref = int(np.argmax(y >= max(fraction, 0.5)))
    j = int(np.flatnonzero(y[:k_ref] < fraction)[-1])
    frac = (fraction - y[j]) / (y[j + 1] - y[j])
    return float((j + frac - half) / rate * 1e3)


def lowpass_step_crossings_ms(fractions, /, *, rate_hz: float, lowpass_hz: float = _emg.DEFAULT_LOWPASS_HZ,
                              order: int = _emg.DEFAULT_ORDER) -> np.ndarray:
    """:func:`lowpass_step_crossing_ms` of each fraction (ms), the same numbers, the step response searched
    once for all of them: its first sample at or above a level is where its running maximum reaches it, and the
    last sample below ``f`` before the 50 % crossing where the minimum of the samples after it up to there does.

    Raises
    ------
    ValueError
        If a fraction is not in (0, 1) or the filter is invalid.
    """
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if not np.all((f > 0.0) & (f < 1.0)):
        raise ValueError("fractions must be in (0, 1)")
    rate = _rate(rate_hz)
    y, half = _emg.lowpass_step_response(rate_hz=rate, lowpass_hz=float(lowpass_hz), order=int(order))
    running_max, suffix_min = _step_search_tables(y.tobytes())
    k_ref = np.searchsorted(running_max, np.maximum(f, 0.5), side="left")  # first y >= max(f, 50 %)
    # below 50 %: the last sample under f before the 50 % crossing; above: every sample before k_ref is under f
    j = np.where(f < 0.5, np.searchsorted(suffix_min, f, side="left") - 1, k_ref - 1)
    frac = (f - y[j]) / (y[j + 1] - y[j])
    return (j + frac - half) / rate * 1e3


@functools.lru_cache(maxsize=8)
def _step_search_tables(y_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(running maximum of the step response, suffix minima of its samples before the first >= 0.5):
    the non-decreasing arrays :func:`lowpass_step_crossings_ms` searches."""
    y = np.frombuffer(y_bytes, dtype=np.float64)
    running_max = np.maximum.accumulate(y)
    k50 = int(np.searchsorted(running_max, 0.5, side="left"))
    suffix_min = np.minimum.accumulate(y[:k50][::-1])[::-1].copy()
    return running_max, suffix_min
