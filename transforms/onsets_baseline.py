"""The onset detectors' baseline window, adapted to the stride; and bursts cut by the record's edges.

The detectors of :mod:`transforms.onsets` take their threshold from the *quietest window* of the
detection signal (lowest mean over ``baseline_window_ms``).  That window must fit inside the
muscle's silent phase: tibialis anterior is silent for ~45 % of the stride (between loading
response and pre-swing), i.e. ~320 ms on a 0.7 s running stride, so a 500 ms window straddles a
burst, the threshold is inflated and onsets come late (``bench/onset_bias.py``).  The window used
in the lake is therefore ``BASELINE_STRIDE_FRACTION`` of the median stride, at least
``BASELINE_MIN_WINDOW_MS`` (enough samples for a stable SD) and at most
``transforms.onsets.DEFAULT_BASELINE_WINDOW_MS``.

A burst already active when the record starts has no observable onset; the detectors need
``EDGE_CENSOR_MS`` of signal (their look-ahead and minimum-duration windows, and the zero-phase
filters' edge transient) before they can tell an onset from a burst in progress, so a burst whose
onset lies that close to the first sample is *censored* (:func:`censored_bursts`), and likewise a
burst whose offset lies that close to the last sample.  Pure; no I/O.
"""

from __future__ import annotations

import math

import numpy as np

from transforms.onsets import DEFAULT_BASELINE_WINDOW_MS, DEFAULT_MIN_DURATION_MS

__all__ = ["BASELINE_STRIDE_FRACTION", "BASELINE_MIN_WINDOW_MS", "EDGE_CENSOR_MS", "stride_baseline_window_ms",
           "censored_bursts"]

#: Quietest-window length as a fraction of the median stride (below TA's ~45 % silent phase).
BASELINE_STRIDE_FRACTION = 0.35
#: Shortest quietest window, ms (bench/onset_bias.py: shorter windows underestimate the SD and add
#: false bursts at 10 dB SNR).
BASELINE_MIN_WINDOW_MS = 150.0
#: A burst starting (ending) this close to the first (last) sample is censored, ms: the detectors'
#: minimum-duration / look-ahead window (``DEFAULT_MIN_DURATION_MS``, ``TKEO_WINDOW_MS``).
EDGE_CENSOR_MS = DEFAULT_MIN_DURATION_MS


def stride_baseline_window_ms(stride_s, /, *, fraction: float = BASELINE_STRIDE_FRACTION,
                              min_window_ms: float = BASELINE_MIN_WINDOW_MS,
                              max_window_ms: float = DEFAULT_BASELINE_WINDOW_MS) -> float:
    """Quietest-window length (ms) for a median stride of ``stride_s`` seconds.

    ``fraction * stride`` clipped to ``[min_window_ms, max_window_ms]``; ``max_window_ms`` when the
    stride is unknown (None or NaN).

    Parameters
    ----------
    stride_s : float or None
        Median stride (gait cycle) duration, s.
    fraction : float
        Share of the stride, in (0, 1).
    min_window_ms, max_window_ms : float
        Bounds, ms, ``0 < min_window_ms <= max_window_ms``.

    Returns
    -------
    float
        Window length in ms.

    Raises
    ------
    ValueError
        On a non-positive stride, a fraction outside (0, 1) or inconsistent bounds.
    """
    if not (0.0 < fraction < 1.0):
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    if not (0.0 < min_window_ms <= max_window_ms):
        raise ValueError(f"need 0 < min_window_ms <= max_window_ms, got {min_window_ms}, {max_window_ms}")
    if stride_s is None or not math.isfinite(float(stride_s)):
        return float(max_window_ms)
    if float(stride_s) <= 0.0:
        raise ValueError(f"stride_s must be positive, got {stride_s!r}")
    return float(min(max_window_ms, max(min_window_ms, fraction * float(stride_s) * 1e3)))


def censored_bursts(onsets, offsets, /, *, n_samples: int, rate_hz: float,
                    margin_ms: float = EDGE_CENSOR_MS) -> tuple[np.ndarray, np.ndarray]:
    """Which bursts start or end too close to the record's edges to have an observed onset / offset.

    Parameters
    ----------
    onsets, offsets : array_like of int
        Burst onsets and (exclusive) offsets in samples, as the detectors return them.
    n_samples : int
        Length of the record.
    rate_hz : float
        Sampling rate, Hz.
    margin_ms : float
        Edge margin, ms.

    Returns
    -------
    tuple of numpy.ndarray
        Boolean masks ``(start_censored, end_censored)``.

    Raises
    ------
    ValueError
        On mismatched arrays, a non-positive rate or a negative margin.
    """
    on = np.asarray(onsets, dtype=np.int64)
    off = np.asarray(offsets, dtype=np.int64)
    if on.shape != off.shape:
        raise ValueError("onsets and offsets must have the same shape")
    if not (math.isfinite(float(rate_hz)) and float(rate_hz) > 0) or not margin_ms >= 0:
        raise ValueError(f"need a positive rate and a non-negative margin, got {rate_hz!r}, {margin_ms!r}")
    k = int(round(margin_ms * 1e-3 * float(rate_hz)))
    return on <= k, off >= int(n_samples) - k
