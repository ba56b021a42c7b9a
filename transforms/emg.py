"""Surface-EMG conditioning and linear envelopes.

Pure functions: numpy/scipy/numba arrays in, arrays out; no file I/O.

Signal layout
-------------
Every function accepts a 1-D array (samples) or a 2-D array (channels x samples) and
works along the last axis.  Amplitudes keep the unit of the input (mV by convention, the
``_mv`` suffix); times are in seconds, rates in Hz, windows in ms.

Two envelope paths exist:

* :func:`linear_envelope` -- the float64 scipy reference: DC removal, zero-phase
  Butterworth band-pass (``scipy.signal.sosfiltfilt``), full-wave rectification,
  zero-phase Butterworth low-pass.
* :func:`envelope_fast` -- the same computation in one fused numba kernel that runs
  blocks of channels interleaved (SIMD across channels) and blocks in parallel.  It
  reproduces ``sosfiltfilt`` exactly (odd extension of ``padlen`` samples, steady-state
  initial conditions scaled by the first sample of each pass), so it agrees with the
  reference to rounding error (~1e-12 of the channel peak).

Filter order convention: ``order`` is the Butterworth prototype order ``N`` passed to
``scipy.signal.butter``.  A band-pass of order N therefore has 2N poles (N second-order
sections); forward-backward filtering squares the magnitude response and doubles the
attenuation slope, with zero phase.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math

import numba
import numpy as np
from scipy import signal

from transforms.emg_kernels import envelope_kernel, zero_phase_block

__all__ = [
    "PIPELINE_VERSION", "DEFAULT_BAND_HZ", "DEFAULT_LOWPASS_HZ", "DEFAULT_ORDER",
    "NYQUIST_FRACTION", "DEFAULT_NOTCH_QUALITY", "DEFAULT_MOVING_RMS_WINDOW_MS",
    "NORMALISATION_METHODS", "band_edges_hz", "bandpass_sos", "butter_sos", "lowpass_sos", "sosfiltfilt_padlen",
    "remove_dc", "bandpass", "notch", "rectify", "lowpass", "condition", "linear_envelope",
    "envelope_fast", "moving_rms", "normalise_amplitude", "params_hash",
]

#: Version of the EMG processing chain; bump it whenever a numerical result changes.
#: It is part of every :func:`params_hash`.
PIPELINE_VERSION = "emg-1.0.0"
#: Default band-pass edges in Hz (SENIAM/ISEK practice for surface EMG).
DEFAULT_BAND_HZ = (20.0, 450.0)
#: Default linear-envelope low-pass cut-off in Hz (gait envelopes, Winter).
DEFAULT_LOWPASS_HZ = 6.0
#: Default Butterworth prototype order (see module docstring for the convention).
DEFAULT_ORDER = 4
#: The upper band edge is clipped to this fraction of Nyquist for low-rate files
#: (e.g. 450 Hz requested at 400 Hz sampling -> 0.95 * 200 = 190 Hz).
NYQUIST_FRACTION = 0.95
#: Quality factor of each mains notch (bandwidth = f0 / Q, i.e. 1.7 Hz at 50 Hz).
DEFAULT_NOTCH_QUALITY = 30.0
#: Default moving-RMS window length in ms (centred window).
DEFAULT_MOVING_RMS_WINDOW_MS = 100.0
#: Amplitude-normalisation methods understood by :func:`normalise_amplitude`.
NORMALISATION_METHODS = ("reference", "peak", "mean")
#: Length of the hexadecimal digest returned by :func:`params_hash` (64 bits).
PARAMS_HASH_LENGTH = 16
#: Channels per interleaved block in :func:`envelope_fast` and :func:`zero_phase` (8 float64 = one AVX-512 vector).
FAST_BLOCK_CHANNELS = 8


# --------------------------------------------------------------------------- validation
def _check_rate(rate_hz: float) -> float:
    rate = float(rate_hz)
    if not math.isfinite(rate) or rate <= 0.0:
        raise ValueError(f"rate_hz must be a positive finite number, got {rate_hz!r}")
    return rate


def _as_signal(x, name: str = "emg_mv") -> np.ndarray:
    """Validate a 1-D or 2-D finite, non-empty numeric array; return a float64 array."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (samples) or 2-D (channels x samples), got {arr.ndim}-D")
    if arr.size == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; interpolate or drop them first")
    return arr


def _check_length(arr: np.ndarray, padlen: int, what: str) -> None:
    if arr.shape[-1] <= padlen:
        raise ValueError(
            f"signal has {arr.shape[-1]} samples; the zero-phase {what} filter needs more than "
            f"padlen={padlen} samples"
        )


# --------------------------------------------------------------------------- filter design
def band_edges_hz(*, rate_hz: float, band_hz=DEFAULT_BAND_HZ) -> tuple[float, float]:
    """Return the band-pass edges actually used at ``rate_hz``.

    The upper edge is clipped to ``NYQUIST_FRACTION`` (0.95) x Nyquist so that files
    sampled at low rates (e.g. 400 Hz or 1 kHz) can use the default 20-450 Hz band.

    Parameters
    ----------
    band_hz : tuple of float
        Requested (low, high) edges in Hz.
    rate_hz : float
        Sampling rate in Hz.

    Returns
    -------
    tuple of float
        (low, high) in Hz, ``0 < low < high < Nyquist``.

    Raises
    ------
    ValueError
        If the band is malformed or the low edge is not below the clipped high edge.
    """
    rate = _check_rate(rate_hz)
    try:
        low, high = (float(v) for v in band_hz)
    except (TypeError, ValueError):
        raise ValueError(f"band_hz must be a (low, high) pair in Hz, got {band_hz!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0.0 or high <= low:
        raise ValueError(f"band_hz must satisfy 0 < low < high, got {band_hz!r}")
    nyquist = rate / 2.0
    high = min(high, NYQUIST_FRACTION * nyquist)
    if low >= high:
        raise ValueError(
            f"band low edge {low} Hz is not below the usable high edge {high:.3f} Hz "
            f"({NYQUIST_FRACTION} x Nyquist at rate {rate} Hz)"
        )
    return low, high


def _check_order(order: int) -> int:
    if isinstance(order, bool) or int(order) != order or order < 1 or order > 12:
        raise ValueError(f"order must be an integer in 1..12, got {order!r}")
    return int(order)


def bandpass_sos(*, rate_hz: float, band_hz=DEFAULT_BAND_HZ, order: int = DEFAULT_ORDER) -> np.ndarray:
    """Butterworth band-pass as second-order sections (edges from :func:`band_edges_hz`).

    Raises
    ------
    ValueError
        On a bad rate, band or order.
    """
    low, high = band_edges_hz(rate_hz=rate_hz, band_hz=band_hz)
    return butter_sos(order=_check_order(order), cutoff_hz=(low, high), btype="bandpass", rate_hz=float(rate_hz))


def lowpass_sos(*, rate_hz: float, lowpass_hz: float = DEFAULT_LOWPASS_HZ, order: int = DEFAULT_ORDER) -> np.ndarray:
    """Butterworth low-pass as second-order sections.

    Raises
    ------
    ValueError
        If ``lowpass_hz`` is not in (0, Nyquist) or the order is invalid.
    """
    rate = _check_rate(rate_hz)
    cut = float(lowpass_hz)
    if not math.isfinite(cut) or cut <= 0.0 or cut >= rate / 2.0:
        raise ValueError(f"lowpass_hz must be in (0, Nyquist={rate / 2.0} Hz), got {lowpass_hz!r}")
    return butter_sos(order=_check_order(order), cutoff_hz=cut, btype="lowpass", rate_hz=rate)


def butter_sos(*, order: int, cutoff_hz, btype: str, rate_hz: float) -> np.ndarray:
    """``scipy.signal.butter(order, cutoff_hz, btype, fs=rate_hz, output="sos")``, designed once per set of
    parameters (an order-4 band-pass costs ~3 ms to design, more than filtering a channel) and returned as a
    copy (scipy's filters want a writable array; the kept design stays as designed). ``cutoff_hz``: a cut-off
    or a (low, high) band in Hz. Arguments are checked by the callers (and by scipy)."""
    wn = tuple(float(v) for v in cutoff_hz) if np.ndim(cutoff_hz) else float(cutoff_hz)
    return _butter_design(int(order), wn, str(btype), float(rate_hz)).copy()


@functools.lru_cache(maxsize=64)
def _butter_design(order: int, wn, btype: str, rate_hz: float) -> np.ndarray:
    return signal.butter(order, wn, btype=btype, fs=rate_hz, output="sos")


def sosfiltfilt_padlen(sos: np.ndarray, /) -> int:
    """Default ``padlen`` of ``scipy.signal.sosfiltfilt`` for these sections.

    ``3 * (2 * n_sections + 1 - min(#(b2 == 0), #(a2 == 0)))``, copied from scipy so the
    fast kernel pads exactly like the reference.
    """
    sos = np.asarray(sos, dtype=np.float64)
    ntaps = 2 * sos.shape[0] + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * ntaps


def zero_phase(sos: np.ndarray, x: np.ndarray, /) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, axis=-1)`` with its defaults (odd extension of
    :func:`sosfiltfilt_padlen` samples), the same operations in the same order, except that the
    sections' steady-state initial conditions (``sosfilt_zi``) are computed once per design: scipy
    computes them again on every call, which cost ~40 % of a channel's band-pass. ``x`` is float64,
    1-D or channels x samples, longer than the padding (callers check). Several channels are filtered
    ``FAST_BLOCK_CHANNELS`` at a time side by side (``emg_kernels.zero_phase_block``: scipy's operations in
    scipy's order, the same result bit for bit).
    """
    edge = sosfiltfilt_padlen(sos)
    if x.ndim == 2 and x.shape[0] > 1:  # channels side by side in the vector lanes: 3-4x faster, the same bits
        out = np.empty(x.shape)
        zi = np.ascontiguousarray(_sos_zi(sos.tobytes()))
        for c0 in range(0, x.shape[0], FAST_BLOCK_CHANNELS):
            rows = slice(c0, c0 + FAST_BLOCK_CHANNELS)
            zero_phase_block(np.ascontiguousarray(x[rows], dtype=np.float64), sos, zi, edge, out[rows])
        return out
    left, right = x[..., :1], x[..., -1:]
    ext = np.concatenate((2 * left - x[..., edge:0:-1], x, 2 * right - x[..., -2:-(edge + 2):-1]), axis=-1)
    zi = _sos_zi(sos.tobytes()).reshape((sos.shape[0],) + (1,) * (x.ndim - 1) + (2,))
    y, _ = signal.sosfilt(sos, ext, axis=-1, zi=zi * ext[..., :1])
    y, _ = signal.sosfilt(sos, y[..., ::-1], axis=-1, zi=zi * y[..., -1:])
    return y[..., ::-1][..., edge:-edge]


@functools.lru_cache(maxsize=64)
def _sos_zi(sos_bytes: bytes) -> np.ndarray:
    """``scipy.signal.sosfilt_zi`` of the sections whose float64 bytes these are (read-only: shared)."""
    zi = signal.sosfilt_zi(np.frombuffer(sos_bytes, dtype=np.float64).reshape(-1, 6))
    zi.flags.writeable = False
    return zi


# --------------------------------------------------------------------------- conditioning
def remove_dc(emg_mv, /) -> np.ndarray:
    """Subtract the mean of each channel (float64 copy).

    Raises
    ------
    ValueError
        On empty, non-numeric or non-finite input.
    """
    x = _as_signal(emg_mv)
    return x - x.mean(axis=-1, keepdims=True)


def bandpass(emg_mv, /, *, rate_hz: float, band_hz=DEFAULT_BAND_HZ, order: int = DEFAULT_ORDER) -> np.ndarray:
    """Zero-phase Butterworth band-pass (``sosfiltfilt``) along the last axis.

    ``emg_mv`` is 1-D or channels x samples; ``band_hz`` (low, high) in Hz with high
    clipped to 0.95 x Nyquist; ``order`` is the Butterworth prototype order.  Returns
    float64 of the same shape.

    Raises
    ------
    ValueError
        On bad input, a band above Nyquist or a signal shorter than the filter padding.
    """
    x = _as_signal(emg_mv)
    sos = bandpass_sos(rate_hz=rate_hz, band_hz=band_hz, order=order)
    _check_length(x, sosfiltfilt_padlen(sos), "band-pass")
    return zero_phase(sos, x)


def notch(
    emg_mv, /, *, rate_hz: float, mains_hz: float, n_harmonics: int | None = None,
    quality: float = DEFAULT_NOTCH_QUALITY
) -> np.ndarray:
    """Zero-phase mains notch / comb: an IIR notch at ``mains_hz`` (50 or 60 Hz) and at
    each harmonic, ``n_harmonics`` frequencies in all (``None``: every harmonic below
    ``NYQUIST_FRACTION`` x Nyquist), each of bandwidth ``f / quality``.  Returns float64
    of the input's shape (1-D or channels x samples).

    Raises
    ------
    ValueError
        If the fundamental is not below Nyquist, or on bad input.
    """
    x = _as_signal(emg_mv)
    rate = _check_rate(rate_hz)
    f0 = float(mains_hz)
    limit = NYQUIST_FRACTION * rate / 2.0
    if not math.isfinite(f0) or f0 <= 0.0 or f0 >= limit:
        raise ValueError(f"mains_hz must be in (0, {limit:.3f}) Hz at rate {rate} Hz, got {mains_hz!r}")
    if not (math.isfinite(quality) and quality > 0):
        raise ValueError(f"quality must be positive, got {quality!r}")
    k_max = int(limit // f0)
    if n_harmonics is not None:
        if int(n_harmonics) != n_harmonics or n_harmonics < 1:
            raise ValueError(f"n_harmonics must be a positive integer or None, got {n_harmonics!r}")
        k_max = min(k_max, int(n_harmonics))
    sos = _notch_sos(rate, f0, k_max, float(quality)).copy()  # scipy wants a writable array
    _check_length(x, sosfiltfilt_padlen(sos), "notch")
    return zero_phase(sos, x)


@functools.lru_cache(maxsize=16)
def _notch_sos(rate_hz: float, mains_hz: float, k_max: int, quality: float) -> np.ndarray:
    """Second-order sections of the mains comb (designed once per rate, mains and quality; callers copy)."""
    sos = np.vstack([signal.tf2sos(*signal.iirnotch(k * mains_hz, quality, fs=rate_hz)) for k in range(1, k_max + 1)])
    return sos


def rectify(emg_mv, /) -> np.ndarray:
    """Full-wave rectification (absolute value), float64 copy.

    Raises
    ------
    ValueError
        On empty, non-numeric or non-finite input.
    """
    return np.abs(_as_signal(emg_mv))


def lowpass(x, /, *, rate_hz: float, lowpass_hz: float = DEFAULT_LOWPASS_HZ, order: int = DEFAULT_ORDER) -> np.ndarray:
    """Zero-phase Butterworth low-pass (``sosfiltfilt``) along the last axis.

    Raises
    ------
    ValueError
        On bad input, a cut-off at or above Nyquist or a too-short signal.
    """
    arr = _as_signal(x, "x")
    sos = lowpass_sos(rate_hz=rate_hz, lowpass_hz=lowpass_hz, order=order)
    _check_length(arr, sosfiltfilt_padlen(sos), "low-pass")
    return zero_phase(sos, arr)


def condition(
    emg_mv, /, *, rate_hz: float, band_hz=DEFAULT_BAND_HZ, order: int = DEFAULT_ORDER,
    mains_hz: float | None = None
) -> np.ndarray:
    """DC removal, optional mains comb (:func:`notch`), then zero-phase band-pass.

    Raises
    ------
    ValueError
        As :func:`bandpass` and :func:`notch`.
    """
    x = remove_dc(emg_mv)
    if mains_hz is not None:
        x = notch(x, rate_hz=rate_hz, mains_hz=mains_hz)
    return bandpass(x, rate_hz=rate_hz, band_hz=band_hz, order=order)


def linear_envelope(emg_mv, /, *, rate_hz, band_hz=DEFAULT_BAND_HZ, lowpass_hz=DEFAULT_LOWPASS_HZ, order=DEFAULT_ORDER):
    """Linear envelope, float64 scipy reference path.

    DC removal, zero-phase Butterworth band-pass, full-wave rectification, zero-phase
    Butterworth low-pass (both with ``scipy.signal.sosfiltfilt`` defaults).  For a pure
    tone of amplitude A inside the pass band the result is 2A/pi.

    Parameters
    ----------
    emg_mv : array_like
        1-D (samples) or 2-D (channels x samples) float array, any amplitude unit.
    rate_hz : float
        Sampling rate in Hz.
    band_hz : tuple of float
        Band-pass (low, high) in Hz; high clipped to 0.95 x Nyquist.
    lowpass_hz : float
        Envelope low-pass cut-off in Hz.
    order : int
        Butterworth prototype order of both filters.

    Returns
    -------
    numpy.ndarray
        float64 envelope, same shape and unit as ``emg_mv``.

    Raises
    ------
    ValueError
        On empty/non-finite/non-numeric input, >2-D input, cut-offs at or above Nyquist,
        or a signal not longer than the filter padding.
    """
    x = remove_dc(emg_mv)
    bp = bandpass_sos(rate_hz=rate_hz, band_hz=band_hz, order=order)
    lp = lowpass_sos(rate_hz=rate_hz, lowpass_hz=lowpass_hz, order=order)
    _check_length(x, max(sosfiltfilt_padlen(bp), sosfiltfilt_padlen(lp)), "envelope")
    y = np.abs(signal.sosfiltfilt(bp, x, axis=-1))
    return signal.sosfiltfilt(lp, y, axis=-1)


# --------------------------------------------------------------------------- fast path
def envelope_fast(emg_2d, /, *, rate_hz, band_hz=DEFAULT_BAND_HZ, lowpass_hz=DEFAULT_LOWPASS_HZ, order=DEFAULT_ORDER):
    """Linear envelope, fused numba fast path (same result as :func:`linear_envelope`).

    One kernel does DC removal, the band-pass ``sosfiltfilt`` (odd extension by scipy's
    default ``padlen``, ``sosfilt_zi`` initial conditions scaled by the first sample of
    each pass), rectification and the low-pass ``sosfiltfilt``.  Channels are processed
    in interleaved blocks of ``FAST_BLOCK_CHANNELS`` with SIMD across channels; blocks
    run in parallel on numba's thread pool.  State is float64, so the result matches the
    reference to rounding error.  The first call compiles (or loads from numba's cache).

    Parameters
    ----------
    emg_2d : array_like
        2-D channels x samples (1-D is accepted and returned 1-D).
    rate_hz, band_hz, lowpass_hz, order
        As :func:`linear_envelope`.

    Returns
    -------
    numpy.ndarray
        float64 envelope, same shape as the input.

    Raises
    ------
    ValueError
        As :func:`linear_envelope`.
    """
    x = _as_signal(emg_2d, "emg_2d")
    squeeze = x.ndim == 1
    x2 = np.ascontiguousarray(x.reshape(1, -1) if squeeze else x)
    try:
        key = (float(rate_hz), tuple(float(v) for v in band_hz), float(lowpass_hz), _check_order(order))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid filter parameters ({exc})") from None
    bp, zi_bp, pad_bp, lp, zi_lp, pad_lp = _fast_design(*key)
    _check_length(x2, max(pad_bp, pad_lp), "envelope")
    n_ch = x2.shape[0]
    threads = max(1, numba.get_num_threads())
    block = int(min(FAST_BLOCK_CHANNELS, max(1, -(-n_ch // threads))))
    out = np.empty_like(x2)
    envelope_kernel(x2, bp, zi_bp, pad_bp, lp, zi_lp, pad_lp, block, out)
    return out[0] if squeeze else out


@functools.lru_cache(maxsize=64)
def _fast_design(rate_hz, band_hz, lowpass_hz, order):
    """Filter sections, ``sosfilt_zi`` states and pad lengths for :func:`envelope_fast`
    (cached: the design costs more than filtering a short trial)."""
    bp = bandpass_sos(rate_hz=rate_hz, band_hz=band_hz, order=order)
    lp = lowpass_sos(rate_hz=rate_hz, lowpass_hz=lowpass_hz, order=order)
    zi_bp = np.ascontiguousarray(signal.sosfilt_zi(bp))
    zi_lp = np.ascontiguousarray(signal.sosfilt_zi(lp))
    return bp, zi_bp, sosfiltfilt_padlen(bp), lp, zi_lp, sosfiltfilt_padlen(lp)


# --------------------------------------------------------------------------- amplitude
@functools.lru_cache(maxsize=64)
def lowpass_step_response(*, rate_hz: float, lowpass_hz: float, order: int) -> tuple[np.ndarray, int]:
    """Zero-phase low-passed unit step (``2 * half`` samples, step at ``half``; read-only), computed
    once per filter: the onset bias correction uses it for every detected onset.

    Raises
    ------
    ValueError
        If the filter is invalid.
    """
    half = int(math.ceil(8.0 * rate_hz / lowpass_hz))
    step = np.zeros(2 * half)
    step[half:] = 1.0
    y = signal.sosfiltfilt(lowpass_sos(rate_hz=rate_hz, lowpass_hz=lowpass_hz, order=order), step)
    y.flags.writeable = False
    return y, half


def moving_rms(emg_mv, /, *, rate_hz: float, window_ms: float = DEFAULT_MOVING_RMS_WINDOW_MS) -> np.ndarray:
    """Centred moving RMS over ``window_ms`` (odd number of samples, >= 1).

    Near the ends the window is truncated to the available samples (mean of the
    squares over the samples actually inside it), so the output has the input's shape.

    Raises
    ------
    ValueError
        On bad input or a non-positive window.
    """
    x = _as_signal(emg_mv)
    rate = _check_rate(rate_hz)
    if not (math.isfinite(window_ms) and window_ms > 0):
        raise ValueError(f"window_ms must be positive, got {window_ms!r}")
    half = int(round(window_ms * 1e-3 * rate / 2.0))
    n = x.shape[-1]
    sq = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x * x, axis=-1)], axis=-1)
    idx = np.arange(n)
    lo = np.clip(idx - half, 0, n)
    hi = np.clip(idx + half + 1, 0, n)
    ms = (sq[..., hi] - sq[..., lo]) / (hi - lo)
    return np.sqrt(np.maximum(ms, 0.0))


def normalise_amplitude(envelope, /, *, method: str = "peak", reference=None, dynamic=None) -> tuple[np.ndarray, str]:
    """Amplitude normalisation of an envelope; returns ``(normalised, method_name)``.

    ``envelope`` is 1-D or channels x samples.  ``method="reference"`` divides by
    ``reference`` (e.g. an MVC envelope peak; scalar or one value per channel, same unit);
    ``"peak"`` / ``"mean"`` divide by the per-channel peak / mean of the dynamic trials
    ``dynamic`` (an array or a list of arrays with the envelope's layout; default: the
    envelope itself).  The returned name is ``"reference"``, ``"peak_dynamic"`` or
    ``"mean_dynamic"``; the values are float64 in units of the reference.

    Raises
    ------
    ValueError
        On an unknown method, a missing/non-positive reference or mismatched channels.
    """
    env = _as_signal(envelope, "envelope")
    if method not in NORMALISATION_METHODS:
        raise ValueError(f"method must be one of {NORMALISATION_METHODS}, got {method!r}")
    n_ch = env.shape[0] if env.ndim == 2 else 1
    if method == "reference":
        if reference is None:
            raise ValueError("method='reference' needs reference=<amplitude per channel>")
        ref = np.asarray(reference, dtype=np.float64).reshape(-1)
        name = "reference"
    else:
        trials = [env] if dynamic is None else (list(dynamic) if isinstance(dynamic, (list, tuple)) else [dynamic])
        if not trials:
            raise ValueError("dynamic must hold at least one trial")
        mats = [_as_signal(t, "dynamic") for t in trials]
        if any(m.ndim != env.ndim or (m.ndim == 2 and m.shape[0] != n_ch) for m in mats):
            raise ValueError(f"every dynamic trial must have the envelope's layout ({n_ch} channel(s))")
        stacked = np.concatenate([m.reshape(n_ch, -1) for m in mats], axis=-1)
        ref = stacked.max(axis=-1) if method == "peak" else stacked.mean(axis=-1)
        name = f"{method}_dynamic"
    if ref.size == 1 and n_ch > 1:
        ref = np.repeat(ref, n_ch)
    if ref.size != n_ch:
        raise ValueError(f"reference has {ref.size} value(s) for {n_ch} channel(s)")
    if not np.all(np.isfinite(ref)) or np.any(ref <= 0):
        raise ValueError(f"normalisation reference must be finite and > 0, got {ref}")
    out = env / (ref[:, None] if env.ndim == 2 else ref[0])
    return out, name


# --------------------------------------------------------------------------- provenance
def _canonical(value):
    if isinstance(value, np.ndarray):
        return [_canonical(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"params_hash: non-finite parameter value {value!r}")
        return int(f) if f.is_integer() else repr(f)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"params_hash: unsupported parameter type {type(value).__name__}")


def params_hash(**params) -> str:
    """Stable short sha256 of the processing parameters and ``PIPELINE_VERSION``.

    Keys are sorted, tuples and arrays become lists, integral floats equal ints
    (``6`` and ``6.0`` hash alike), so the digest does not depend on argument order or
    container type.  Bumping ``PIPELINE_VERSION`` changes every digest.

    Returns
    -------
    str
        ``PARAMS_HASH_LENGTH`` lowercase hex characters.

    Raises
    ------
    ValueError
        On unsupported or non-finite parameter values.
    """
    payload = {"pipeline_version": PIPELINE_VERSION, "params": _canonical(params)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:PARAMS_HASH_LENGTH]
