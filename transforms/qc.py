"""Per-channel surface-EMG signal quality control (pure; no I/O).

Every check *flags*; nothing here deletes, edits or repairs a signal.  A channel gets a
dict of metrics, a list of stable snake_case flag codes and a verdict:

* ``bad``  -- at least one flag of severity ``bad`` (the channel is not usable raw EMG),
* ``warn`` -- only ``warn`` flags (usable, but look at it),
* ``ok``   -- no flag.

The flag codes and their severities are listed in :data:`FLAG_SEVERITY`; every threshold is
an UPPER_CASE constant below and is documented, with its rationale, in
``docs/qc_thresholds.md``.

Spectral estimate
-----------------
One Welch PSD per channel: Hann window, segments of ``WELCH_SEGMENT_S`` (1 s, i.e. 1 Hz
bins), 50 % overlap, per-segment mean removal.  NaN samples are linearly interpolated for
the spectrum only (they are counted separately).  The *EMG band* is ``EMG_BAND_HZ``
(20-450 Hz) with the upper edge clipped to ``NYQUIST_FRACTION`` x Nyquist.

* ``mains_ratio`` -- power in ``+-MAINS_HALF_WIDTH_HZ`` around the mains frequency and each
  of its harmonics inside the band, divided by the power of the whole band.  A flat
  spectrum gives about 0.1 at 1 kHz (9 windows of 5 bins out of 431 bins).
* ``median_freq_hz`` -- the frequency splitting the band power in half (bin power spread
  uniformly over the bin, cumulative power linearly interpolated).
* ``spectral_flatness`` -- Wiener entropy (geometric / arithmetic mean of the PSD) over
  the band: 1 for white noise, ~0 for a tone.
* ``floor_flatness`` -- the same ratio computed on the *median* PSD of
  ``FLOOR_FLATNESS_BANDS`` equal-width sub-bands from the band's lower edge up to
  ``NYQUIST_FRACTION`` x Nyquist.  Medians ignore narrow spectral lines (mains, cross-talk
  from other devices), so this measures whether the broadband *floor* is flat.
* ``median_freq_ratio`` -- median frequency of the whole one-sided spectrum (DC bin
  excluded) divided by ``rate_hz / 4``; white noise gives 1.

Amplitude and units
-------------------
Amplitudes are reported in mV (``*_mv`` columns) after converting from ``unit`` (V, mV,
uV/µV; anything else is "unknown" and amplitude metrics are NaN).  Whether a value can be
checked against the skin-level ceiling ``MAX_SKIN_EMG_MV`` depends on the gain context:

* ``gain`` given -- the value divided by the gain is the skin-level voltage and is
  compared with ``MAX_SKIN_EMG_MV`` (basis ``skin``);
* ``gain=None`` and unit V -- the value is taken to be the amplifier output seen by the
  ADC (Vicon Nexus, Motion Analysis, ... store EMG as ADC-input volts, typically hundreds
  of mV for gait EMG after a x500-x1000 gain).  Only the physical ADC ceiling
  ``MAX_AMPLIFIER_OUTPUT_V`` applies (basis ``adc_input``);
* ``gain=None`` and unit mV or uV -- EMG systems that export in mV/uV divide by their gain,
  so the value is taken as skin-level (basis ``skin``);
* unknown unit -- not checked (basis ``unknown``).

Already-processed signals
-------------------------
A raw EMG is zero-mean-ish and symmetric.  A rectified or enveloped signal is one-sided
(fewer than ``PROCESSED_MAX_MINORITY_FRACTION`` of samples on the other sign) *and* either
right-skewed (sign-adjusted skewness >= ``PROCESSED_MIN_SKEWNESS``: bursts on a floor) or
low-frequency dominated (whole-spectrum median frequency <= ``PROCESSED_MAX_MEDIAN_FREQ_HZ``).
A raw EMG sitting on a DC offset larger than its amplitude is one-sided too, but symmetric
and broadband, so it is flagged ``baseline_offset`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from scipy import signal

__all__ = [
    "QC_VERSION",
    "EMG_BAND_HZ",
    "NYQUIST_FRACTION",
    "WELCH_SEGMENT_S",
    "MIN_SPECTRAL_DURATION_S",
    "MAINS_HALF_WIDTH_HZ",
    "MAINS_WARN_RATIO",
    "MAINS_BAD_RATIO",
    "MEDIAN_FREQ_RANGE_HZ",
    "WHITE_NOISE_MEDIAN_FREQ_RATIO_RANGE",
    "WHITE_NOISE_MIN_FLOOR_FLATNESS",
    "FLOOR_FLATNESS_BANDS",
    "ADC_RAIL_TOLERANCE_FRACTION",
    "CLIPPING_MIN_RUN_SAMPLES",
    "CLIPPING_INFER_MIN_LEVELS",
    "CLIPPING_BAD_FRACTION",
    "MAX_SKIN_EMG_MV",
    "MAX_AMPLIFIER_OUTPUT_V",
    "DC_OFFSET_WARN_RATIO",
    "PROCESSED_MAX_MINORITY_FRACTION",
    "PROCESSED_MIN_SKEWNESS",
    "PROCESSED_MAX_MEDIAN_FREQ_HZ",
    "DROPOUT_MIN_RUN_S",
    "NAN_BAD_FRACTION",
    "MIN_RAW_EMG_RATE_HZ",
    "CYCLE_NORMALISED_FRAME_COUNTS",
    "MAX_NORMALISED_SPAN_S",
    "FLAG_SEVERITY",
    "UNIT_TO_MV",
    "unit_to_mv_factor",
    "adc_rails",
    "looks_time_normalised",
    "channel_qc",
    "channel_qc_table",
    "verdict_from_flags",
]

#: Version of the QC rules; bump it whenever a threshold or a metric definition changes.
QC_VERSION = "qc-1.0.0"

# --------------------------------------------------------------------------- thresholds
#: Surface-EMG analysis band in Hz (SENIAM; the same as transforms.emg.DEFAULT_BAND_HZ).
EMG_BAND_HZ: tuple[float, float] = (20.0, 450.0)
#: The band's upper edge is clipped to this fraction of Nyquist for low-rate channels.
NYQUIST_FRACTION = 0.95
#: Welch segment length in s (1 Hz bins; resolves +-2 Hz mains windows).
WELCH_SEGMENT_S = 1.0
#: Below this duration (s) spectral metrics are not computed (flag ``too_short``).
MIN_SPECTRAL_DURATION_S = 0.25
#: Half-width (Hz) of the window around the mains frequency and each harmonic.
MAINS_HALF_WIDTH_HZ = 2.0
#: mains_ratio above this -> ``mains_noise`` (warn).  Clean EMG: 0.06-0.16 at 1 kHz.
MAINS_WARN_RATIO = 0.30
#: mains_ratio above this -> ``mains_dominated`` (bad): most band power is hum.
MAINS_BAD_RATIO = 0.50
#: Plausible band median frequency of raw surface EMG (Hz); outside -> warn.
MEDIAN_FREQ_RANGE_HZ: tuple[float, float] = (30.0, 200.0)
#: White noise: whole-spectrum median frequency / (rate/4) inside this range ...
WHITE_NOISE_MEDIAN_FREQ_RATIO_RANGE: tuple[float, float] = (0.8, 1.25)
#: ... and a flat broadband floor (floor_flatness at least this).
WHITE_NOISE_MIN_FLOOR_FLATNESS = 0.8
#: Number of equal-width sub-bands whose median PSD defines floor_flatness.
FLOOR_FLATNESS_BANDS = 8
#: A sample is "at a rail" within this fraction of the ADC span of the rail.
ADC_RAIL_TOLERANCE_FRACTION = 5e-5
#: Without a known ADC range, an extreme value is a rail only if held this many samples in a row.
CLIPPING_MIN_RUN_SAMPLES = 2
#: Without a known ADC range, rails are inferred only if the channel has at least this many
#: distinct values (coarser quantisation repeats its extremes by chance).
CLIPPING_INFER_MIN_LEVELS = 64
#: clipping_frac above this -> ``clipping_severe`` (bad); any rail sample -> ``clipping`` (warn).
CLIPPING_BAD_FRACTION = 0.01
#: Ceiling of surface EMG at the skin (mV); above -> ``implausible_amplitude``.
MAX_SKIN_EMG_MV = 20.0
#: Ceiling of a voltage presented to an ADC (V): +-10 V is the widest common DAQ range.
MAX_AMPLIFIER_OUTPUT_V = 10.0
#: |DC| / AC RMS above this -> ``baseline_offset`` (warn).
DC_OFFSET_WARN_RATIO = 1.0
#: One-sided signal: at most this fraction of samples on the minority sign.
PROCESSED_MAX_MINORITY_FRACTION = 0.005
#: Sign-adjusted skewness at least this -> rectified-like distribution.
PROCESSED_MIN_SKEWNESS = 0.5
#: Whole-spectrum median frequency (Hz) at most this -> envelope-like (low-frequency) content.
PROCESSED_MAX_MEDIAN_FREQ_HZ = 20.0
#: A run of identical consecutive values at least this long (s) is a dropout.
DROPOUT_MIN_RUN_S = 0.1
#: More than this fraction of NaN samples -> ``mostly_nan`` (bad); any NaN -> ``nan_samples``.
NAN_BAD_FRACTION = 0.5
#: Raw surface EMG needs a Nyquist frequency covering most of the band: rate below -> warn.
MIN_RAW_EMG_RATE_HZ = 900.0
#: Frame counts of cycle-normalised curves (0-100 % in steps of 2, 1, 0.5, 0.2, 0.1 %).
CYCLE_NORMALISED_FRAME_COUNTS: tuple[int, ...] = (51, 101, 201, 501, 1001)
#: A cycle-normalised curve stored as time spans at most this (s); the longest plausible cycle.
MAX_NORMALISED_SPAN_S = 4.0

#: Flag code -> severity.  Codes are stable: add new ones, never rename.
FLAG_SEVERITY: dict[str, str] = {
    "all_nan": "bad",
    "mostly_nan": "bad",
    "nan_samples": "warn",
    "flat": "bad",
    "all_zero": "bad",
    "time_normalised": "bad",
    "already_processed": "bad",
    "implausible_amplitude": "bad",
    "white_noise": "bad",
    "mains_dominated": "bad",
    "mains_noise": "warn",
    "clipping_severe": "bad",
    "clipping": "warn",
    "dropouts": "warn",
    "baseline_offset": "warn",
    "median_freq_out_of_band": "warn",
    "low_sampling_rate": "warn",
    "too_short": "warn",
}

#: Recognised amplitude units -> factor to mV (keys are lower-case).
UNIT_TO_MV: dict[str, float] = {
    "v": 1e3,
    "volt": 1e3,
    "volts": 1e3,
    "mv": 1.0,
    "millivolt": 1.0,
    "millivolts": 1.0,
    "uv": 1e-3,
    "µv": 1e-3,
    "μv": 1e-3,
    "microvolt": 1e-3,
    "microvolts": 1e-3,
}

_SEVERITY_RANK = {"ok": 0, "warn": 1, "bad": 2}


# --------------------------------------------------------------------------- helpers
def unit_to_mv_factor(unit: str | None, /) -> float:
    """Factor converting a value in ``unit`` to mV, or NaN for an unknown unit.

    Parameters
    ----------
    unit : str or None
        Amplitude unit as stored in the file (``'V'``, ``'mV'``, ``'uV'``, ``'µV'`` ...,
        case-insensitive, surrounding blanks ignored).

    Returns
    -------
    float
        Multiply by it to get mV; ``nan`` when the unit is not a voltage unit.
    """
    if unit is None:
        return math.nan
    return UNIT_TO_MV.get(str(unit).strip().lower(), math.nan)


def adc_rails(*, bits: int, scale: float, offset: float = 0.0, gen_scale: float = 1.0,
              signed: bool = True) -> tuple[float, float]:
    """ADC rails of a C3D analog channel in the stored (scaled) unit.

    C3D stores ``value = (count - offset) * scale * gen_scale``; an ``n``-bit converter
    gives counts in ``[-2**(n-1), 2**(n-1) - 1]`` (``ANALOG:FORMAT = SIGNED``) or
    ``[0, 2**n - 1]`` (``UNSIGNED``).

    Parameters
    ----------
    bits : int, keyword-only
        ADC resolution (``ANALOG:BITS``), 1-32.
    scale : float, keyword-only
        Channel ``ANALOG:SCALE`` (may be negative).
    offset : float, keyword-only
        Channel ``ANALOG:OFFSET`` in counts.
    gen_scale : float, keyword-only
        ``ANALOG:GEN_SCALE``.
    signed : bool, keyword-only
        ``ANALOG:FORMAT`` is ``SIGNED``.

    Returns
    -------
    (low, high) : tuple of float
        Lowest and highest representable value, ``low < high``.

    Raises
    ------
    ValueError
        If ``bits`` is outside 1-32 or the total scale is zero or not finite.
    """
    bits = int(bits)
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be within 1-32, got {bits}")
    k = float(scale) * float(gen_scale)
    if not math.isfinite(k) or k == 0.0:
        raise ValueError(f"scale * gen_scale must be finite and non-zero, got {k}")
    lo_c, hi_c = ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1))
    a, b = (lo_c - float(offset)) * k, (hi_c - float(offset)) * k
    return (min(a, b), max(a, b))


def looks_time_normalised(n_frames: int, /, *, rate_hz: float, duration_s: float | None = None) -> bool:
    """Whether a stream looks like a cycle-normalised curve rather than a recording.

    Gait software exports one cycle resampled to 0-100 % (101 points, or 51, 201, 501,
    1001); written to a time-series file, those points get a nominal rate, so the file
    "lasts" one cycle or less.  A real recording has an arbitrary frame count and usually
    spans several cycles.

    Parameters
    ----------
    n_frames : int
        Number of frames (samples) of the stream.
    rate_hz : float, keyword-only
        Declared frame rate in Hz.
    duration_s : float, optional, keyword-only
        Span from first to last frame in s when known from elsewhere (e.g. a time column);
        default ``(n_frames - 1) / rate_hz``.

    Returns
    -------
    bool
        True when ``n_frames`` is one of ``CYCLE_NORMALISED_FRAME_COUNTS`` and the span is
        at most ``MAX_NORMALISED_SPAN_S`` or is exactly 1, 10 or 100 s (100 % mapped to a
        round time span).

    Raises
    ------
    ValueError
        If ``n_frames`` is negative or ``rate_hz`` is not positive and finite.
    """
    n = int(n_frames)
    if n < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    rate = _check_rate(rate_hz)
    if n not in CYCLE_NORMALISED_FRAME_COUNTS:
        return False
    span = (n - 1) / rate if duration_s is None else float(duration_s)
    if not math.isfinite(span):
        return False
    round_span = any(abs(span - s) <= 1e-6 * s for s in (1.0, 10.0, 100.0))
    return span <= MAX_NORMALISED_SPAN_S or round_span


def verdict_from_flags(flags: Sequence[str], /) -> str:
    """Verdict ``'ok'``, ``'warn'`` or ``'bad'`` from flag codes (worst severity wins).

    Raises
    ------
    KeyError
        For a code missing from :data:`FLAG_SEVERITY`.
    """
    worst = "ok"
    for f in flags:
        sev = FLAG_SEVERITY[f]
        if _SEVERITY_RANK[sev] > _SEVERITY_RANK[worst]:
            worst = sev
    return worst


def _check_rate(rate_hz: float) -> float:
    rate = float(rate_hz)
    if not math.isfinite(rate) or rate <= 0.0:
        raise ValueError(f"rate_hz must be a positive finite number, got {rate_hz!r}")
    return rate


def _as_1d(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    arr = arr.astype(np.float64)
    if np.any(np.isinf(arr)):
        raise ValueError(f"{name} contains infinite values")
    return arr


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (exclusive) indices of the True runs of a boolean mask."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _fill_nan(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    if ok.all():
        return x
    idx = np.arange(x.size)
    return np.interp(idx, idx[ok], x[ok])


def _median_freq(f: np.ndarray, p: np.ndarray) -> float:
    """Frequency halving the power of bins ``p`` at centres ``f`` (uniform spread per bin)."""
    total = float(p.sum())
    if f.size == 0 or not total > 0.0:
        return math.nan
    df = float(f[1] - f[0]) if f.size > 1 else 1.0
    edges = np.concatenate(([f[0] - df / 2.0], f + df / 2.0))
    cum = np.concatenate(([0.0], np.cumsum(p)))
    return float(np.interp(total / 2.0, cum, edges))


def _wiener(p: np.ndarray) -> float:
    p = p[np.isfinite(p)]
    if p.size == 0 or not np.all(p > 0.0):
        return 0.0 if p.size else math.nan
    return float(np.exp(np.mean(np.log(p))) / np.mean(p))


def _rail_fraction(x: np.ndarray, adc_range) -> tuple[float, str]:
    """Fraction of finite samples at the rails, and how the rails were found."""
    fin = x[np.isfinite(x)]
    n = fin.size
    if n == 0:
        return math.nan, "none"
    if adc_range is not None:
        lo, hi = adc_range
        tol = ADC_RAIL_TOLERANCE_FRACTION * (hi - lo)
        return float(np.count_nonzero((fin <= lo + tol) | (fin >= hi - tol)) / n), "adc_range"
    lo, hi = float(fin.min()), float(fin.max())
    if lo == hi:
        return 0.0, "inferred"
    levels, counts = np.unique(fin, return_counts=True)
    if levels.size < CLIPPING_INFER_MIN_LEVELS:
        return 0.0, "inferred"
    count = 0
    for rail, n_rail, n_next in ((lo, counts[0], counts[1]), (hi, counts[-1], counts[-2])):
        # a rail is a pile-up: held for a run of samples and more populated than the next level
        starts, stops = _runs(x == rail)
        if int((stops - starts).max()) >= CLIPPING_MIN_RUN_SAMPLES and n_rail > n_next:
            count += int(n_rail)
    return count / n, "inferred"


def _longest_run_s(mask: np.ndarray, rate: float) -> float:
    s, e = _runs(mask)
    return float((e - s).max()) / rate if s.size else 0.0


# --------------------------------------------------------------------------- main API
def channel_qc(
    emg,
    /,
    *,
    rate_hz: float,
    mains_hz: float = 50.0,
    unit: str | None = "mV",
    adc_range: tuple[float, float] | None = None,
    gain: float | None = None,
    time_normalised: bool = False,
) -> dict:
    """Quality-control metrics, flags and verdict of one raw surface-EMG channel.

    Parameters
    ----------
    emg : array_like, shape (n,)
        The channel as stored, in ``unit``; NaN marks missing samples (counted, not
        fatal).  Never modified.
    rate_hz : float, keyword-only
        Sampling rate in Hz.
    mains_hz : float, keyword-only
        The site's mains frequency, 50 or 60 Hz.
    unit : str or None, keyword-only
        Amplitude unit (V, mV, uV ...); see the module docstring for how it decides the
        amplitude check.
    adc_range : (float, float) or None, keyword-only
        ADC rails in ``unit`` (e.g. from :func:`adc_rails`).  None: a rail is inferred at
        the channel's min (max) when that value is held at least
        ``CLIPPING_MIN_RUN_SAMPLES`` in a row and holds more samples than the next level
        inward (a pile-up), on channels with at least ``CLIPPING_INFER_MIN_LEVELS``
        distinct values.
    gain : float or None, keyword-only
        Amplifier gain between skin and stored value (1.0 = stored value is skin-level).
        None = unknown.
    time_normalised : bool, keyword-only
        The stream is a cycle-normalised curve (see :func:`looks_time_normalised`);
        adds the ``time_normalised`` flag.

    Returns
    -------
    dict
        ``verdict`` (``'ok' | 'warn' | 'bad'``), ``flags`` (list of codes, in
        :data:`FLAG_SEVERITY` order) and the metrics: ``n_samples``, ``duration_s``,
        ``rate_hz``, ``unit``, ``nan_frac``, ``longest_nan_run_s``, ``clipping_frac``,
        ``clipping_basis`` (``'adc_range' | 'inferred'``), ``dropout_frac``,
        ``longest_dropout_s``, ``mains_ratio``, ``median_freq_hz``,
        ``median_freq_ratio``, ``spectral_flatness``, ``floor_flatness``,
        ``rms_mv`` (AC RMS), ``dc_offset_mv`` (mean), ``peak_abs_mv`` (max ``|x|``),
        ``dc_to_rms``, ``negative_frac``, ``positive_frac``, ``skewness``,
        ``amplitude_basis`` (``'skin' | 'adc_input' | 'unknown'``), ``qc_version``.
        Metrics that cannot be computed are NaN.

    Raises
    ------
    ValueError
        On a non-numeric, non-1-D, empty or infinite-valued input, a non-positive rate,
        a mains frequency that is not positive, a non-positive gain or an invalid
        ``adc_range``.
    """
    x = _as_1d(emg, "emg")
    rate = _check_rate(rate_hz)
    mains = float(mains_hz)
    if not math.isfinite(mains) or mains <= 0.0:
        raise ValueError(f"mains_hz must be positive, got {mains_hz!r}")
    if gain is not None and not (math.isfinite(float(gain)) and float(gain) > 0.0):
        raise ValueError(f"gain must be positive or None, got {gain!r}")
    if adc_range is not None:
        try:
            lo_r, hi_r = (float(v) for v in adc_range)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"adc_range must be a (low, high) pair, got {adc_range!r}") from exc
        if not (math.isfinite(lo_r) and math.isfinite(hi_r) and lo_r < hi_r):
            raise ValueError(f"adc_range must be finite with low < high, got {adc_range!r}")
        adc_range = (lo_r, hi_r)
    n = x.size
    flags: set[str] = set()
    to_mv = unit_to_mv_factor(unit)
    finite = np.isfinite(x)
    n_fin = int(finite.sum())
    nan_frac = 1.0 - n_fin / n

    out: dict = {
        "n_samples": n,
        "duration_s": n / rate,
        "rate_hz": rate,
        "unit": unit,
        "nan_frac": nan_frac,
        "longest_nan_run_s": _longest_run_s(~finite, rate),
        "clipping_frac": math.nan,
        "clipping_basis": "adc_range" if adc_range is not None else "inferred",
        "dropout_frac": math.nan,
        "longest_dropout_s": math.nan,
        "mains_ratio": math.nan,
        "median_freq_hz": math.nan,
        "median_freq_ratio": math.nan,
        "spectral_flatness": math.nan,
        "floor_flatness": math.nan,
        "rms_mv": math.nan,
        "dc_offset_mv": math.nan,
        "peak_abs_mv": math.nan,
        "dc_to_rms": math.nan,
        "negative_frac": math.nan,
        "positive_frac": math.nan,
        "skewness": math.nan,
        "amplitude_basis": "unknown",
        "qc_version": QC_VERSION,
    }
    if time_normalised:
        flags.add("time_normalised")
    if rate < MIN_RAW_EMG_RATE_HZ:
        flags.add("low_sampling_rate")

    if n_fin == 0:
        flags.add("all_nan")
        return _finish(out, flags)
    if nan_frac > NAN_BAD_FRACTION:
        flags.add("mostly_nan")
    elif nan_frac > 0.0:
        flags.add("nan_samples")

    xf = x[finite]
    peak = float(np.abs(xf).max())
    # moments on the signal divided by its peak (no overflow/underflow), then rescaled
    scale = peak if peak > 0.0 else 1.0
    xn = xf / scale
    mean_n = float(xn.mean())
    ac_n = xn - mean_n
    rms_n = float(np.sqrt(np.mean(ac_n * ac_n)))
    mean, rms = mean_n * scale, rms_n * scale
    out["rms_mv"] = rms * to_mv
    out["dc_offset_mv"] = mean * to_mv
    out["peak_abs_mv"] = peak * to_mv
    out["negative_frac"] = float(np.count_nonzero(xf < 0.0) / n_fin)
    out["positive_frac"] = float(np.count_nonzero(xf > 0.0) / n_fin)

    # -- flat / zero: exactly constant, nothing else is meaningful
    if float(xf.min()) == float(xf.max()):
        flags.add("flat")
        if float(xf[0]) == 0.0:
            flags.add("all_zero")
        out["clipping_frac"] = 0.0
        out["dropout_frac"] = 0.0
        out["longest_dropout_s"] = 0.0
        return _finish(out, flags)

    if rms_n > 1e-100:
        out["dc_to_rms"] = abs(mean_n) / rms_n
        out["skewness"] = float(np.mean(ac_n**3) / rms_n**3)
    else:  # non-constant but below floating-point resolution
        out["dc_to_rms"] = math.inf if mean_n != 0.0 else math.nan

    # -- clipping
    clip_frac, _ = _rail_fraction(x, adc_range)
    out["clipping_frac"] = clip_frac
    if clip_frac > CLIPPING_BAD_FRACTION:
        flags.add("clipping_severe")
    elif clip_frac > 0.0:
        flags.add("clipping")

    # -- dropouts: runs of identical consecutive finite values (excluding rail runs)
    xs = x.copy()
    same = np.zeros(n, dtype=bool)
    eq = (xs[1:] == xs[:-1]) & np.isfinite(xs[1:])
    same[1:] |= eq
    same[:-1] |= eq
    if adc_range is not None:
        lo, hi = adc_range
        tol = ADC_RAIL_TOLERANCE_FRACTION * (hi - lo)
        at_rail = (xs <= lo + tol) | (xs >= hi - tol)
    else:
        at_rail = (xs == xf.min()) | (xs == xf.max())
    same &= ~at_rail
    s, e = _runs(same)
    min_run = max(2, int(math.ceil(DROPOUT_MIN_RUN_S * rate)))
    long_runs = (e - s) >= min_run
    out["dropout_frac"] = float((e - s)[long_runs].sum() / n)
    out["longest_dropout_s"] = float((e - s).max() / rate) if s.size else 0.0
    if long_runs.any():
        flags.add("dropouts")

    # -- amplitude plausibility
    if math.isfinite(to_mv):
        peak_mv = peak * to_mv
        if gain is not None:
            out["amplitude_basis"] = "skin"
            if peak_mv / float(gain) > MAX_SKIN_EMG_MV:
                flags.add("implausible_amplitude")
            if to_mv == 1e3 and peak > MAX_AMPLIFIER_OUTPUT_V:
                flags.add("implausible_amplitude")
        elif to_mv == 1e3:
            out["amplitude_basis"] = "adc_input"
            if peak > MAX_AMPLIFIER_OUTPUT_V:
                flags.add("implausible_amplitude")
        else:
            out["amplitude_basis"] = "skin"
            if peak_mv > MAX_SKIN_EMG_MV:
                flags.add("implausible_amplitude")

    # -- spectrum
    spectral_ok = n_fin / rate >= MIN_SPECTRAL_DURATION_S and nan_frac <= NAN_BAD_FRACTION
    mdf_full = math.nan
    if n_fin / rate < MIN_SPECTRAL_DURATION_S:
        flags.add("too_short")
    if spectral_ok:
        xi = _fill_nan(x) / scale  # spectral ratios are scale-free
        nper = min(n, max(8, int(round(WELCH_SEGMENT_S * rate))))
        f, p = signal.welch(xi, fs=rate, window="hann", nperseg=nper, noverlap=nper // 2,
                            detrend="constant", scaling="density")
        lo_b = EMG_BAND_HZ[0]
        hi_b = min(EMG_BAND_HZ[1], NYQUIST_FRACTION * rate / 2.0)
        full = f > 0.0
        mdf_full = _median_freq(f[full], p[full])
        out["median_freq_ratio"] = mdf_full / (rate / 4.0)
        if hi_b > lo_b:
            band = (f >= lo_b) & (f <= hi_b)
            pb = p[band]
            if pb.size >= 2 and pb.sum() > 0.0:
                out["median_freq_hz"] = _median_freq(f[band], pb)
                out["spectral_flatness"] = _wiener(pb)
                hum = np.zeros_like(band)
                k = 1
                while k * mains - MAINS_HALF_WIDTH_HZ <= hi_b:
                    hum |= np.abs(f - k * mains) <= MAINS_HALF_WIDTH_HZ
                    k += 1
                out["mains_ratio"] = float(p[hum & band].sum() / pb.sum())
            edges = np.linspace(lo_b, NYQUIST_FRACTION * rate / 2.0, FLOOR_FLATNESS_BANDS + 1)
            meds = []
            for a, b in zip(edges[:-1], edges[1:]):
                sel = (f >= a) & (f < b)
                if sel.any():
                    meds.append(float(np.median(p[sel])))
            if len(meds) == FLOOR_FLATNESS_BANDS:
                out["floor_flatness"] = _wiener(np.asarray(meds))

    # -- processed (rectified / enveloped) signal
    minority = min(out["negative_frac"], out["positive_frac"])
    sign = 1.0 if out["positive_frac"] >= out["negative_frac"] else -1.0
    one_sided = minority <= PROCESSED_MAX_MINORITY_FRACTION
    skew_signed = sign * out["skewness"]
    processed = one_sided and (
        (math.isfinite(skew_signed) and skew_signed >= PROCESSED_MIN_SKEWNESS)
        or (math.isfinite(mdf_full) and mdf_full <= PROCESSED_MAX_MEDIAN_FREQ_HZ)
    )
    if processed:
        flags.add("already_processed")
    elif out["dc_to_rms"] > DC_OFFSET_WARN_RATIO:  # NaN compares False
        flags.add("baseline_offset")

    # -- spectral verdicts (only meaningful for a raw signal)
    mr = out["mains_ratio"]
    if math.isfinite(mr):
        if mr > MAINS_BAD_RATIO:
            flags.add("mains_dominated")
        elif mr > MAINS_WARN_RATIO:
            flags.add("mains_noise")
    ratio, ff = out["median_freq_ratio"], out["floor_flatness"]
    if (math.isfinite(ratio) and math.isfinite(ff)
            and WHITE_NOISE_MEDIAN_FREQ_RATIO_RANGE[0] <= ratio <= WHITE_NOISE_MEDIAN_FREQ_RATIO_RANGE[1]
            and ff >= WHITE_NOISE_MIN_FLOOR_FLATNESS):
        flags.add("white_noise")
    mdf = out["median_freq_hz"]
    if not processed and math.isfinite(mdf) and not (MEDIAN_FREQ_RANGE_HZ[0] <= mdf <= MEDIAN_FREQ_RANGE_HZ[1]):
        flags.add("median_freq_out_of_band")
    return _finish(out, flags)


def _finish(out: dict, flags: set[str]) -> dict:
    ordered = [c for c in FLAG_SEVERITY if c in flags]
    out["flags"] = ordered
    out["verdict"] = verdict_from_flags(ordered)
    return out


def _per_channel(value, n: int, name: str) -> list:
    """Broadcast a scalar / pair / None to n channels, or check a per-channel sequence."""
    if value is None or isinstance(value, (str, float, int, np.number)):
        return [value] * n
    seq = list(value)
    if name == "adc_range" and len(seq) == 2 and all(isinstance(v, (int, float, np.floating, np.integer)) for v in seq):
        return [tuple(seq)] * n
    if len(seq) != n:
        raise ValueError(f"{name} has {len(seq)} entries for {n} channels")
    return seq


_TABLE_COLUMNS = [
    "channel", "label", "unit", "verdict", "flags", "n_flags", "clipping_frac", "clipping_basis",
    "mains_ratio", "median_freq_hz", "median_freq_ratio", "spectral_flatness", "floor_flatness",
    "rms_mv", "dc_offset_mv", "peak_abs_mv", "dc_to_rms", "negative_frac", "skewness",
    "nan_frac", "longest_nan_run_s", "dropout_frac", "longest_dropout_s", "amplitude_basis",
    "rate_hz", "n_samples", "duration_s", "mains_hz", "qc_version",
]


def channel_qc_table(
    emg,
    /,
    *,
    labels: Sequence[str],
    rate_hz: float,
    mains_hz: float = 50.0,
    units: str | Sequence[str | None] | None = "mV",
    adc_range=None,
    gain: float | Sequence[float | None] | None = None,
    n_frames: int | None = None,
) -> pl.DataFrame:
    """Apply :func:`channel_qc` to every EMG channel of a trial; one row per channel.

    Parameters
    ----------
    emg : array_like, shape (n_channels, n_samples)
        The trial's EMG channels as stored (NaN allowed).
    labels : sequence of str, keyword-only
        One label per channel (duplicates allowed; ``channel`` is the row index).
    rate_hz : float, keyword-only
        Sampling rate of the channels in Hz.
    mains_hz : float, keyword-only
        The site's mains frequency (50 or 60 Hz).
    units : str or sequence, keyword-only
        One unit for all channels or one per channel.
    adc_range : (low, high), sequence of (low, high) or None, or mapping label -> pair, keyword-only
        ADC rails in the channel unit.
    gain : float, sequence or None, keyword-only
        Amplifier gain(s); None = unknown.
    n_frames : int, optional, keyword-only
        Frame count of the trial's primary stream for :func:`looks_time_normalised`
        (together with ``rate_hz`` of that stream, pass it when the EMG is oversampled);
        default: the number of EMG samples at ``rate_hz``.

    Returns
    -------
    polars.DataFrame
        Columns ``channel`` (0-based index), ``label``, ``unit``, ``verdict``, ``flags``
        (comma-separated codes, empty string when none), ``n_flags`` and every metric of
        :func:`channel_qc` (amplitudes in mV), plus ``mains_hz`` and ``qc_version``.

    Raises
    ------
    ValueError
        If ``emg`` is not 2-D, the number of labels or per-channel parameters does not
        match, or :func:`channel_qc` rejects a channel's input.
    """
    arr = np.asarray(emg, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"emg must be 2-D (channels x samples), got shape {arr.shape}")
    n_ch = arr.shape[0]
    labels = [str(v) for v in labels]
    if len(labels) != n_ch:
        raise ValueError(f"{len(labels)} labels for {n_ch} channels")
    unit_l = _per_channel(units, n_ch, "units")
    gain_l = _per_channel(gain, n_ch, "gain")
    if isinstance(adc_range, Mapping):
        rng_l = [adc_range.get(lab) for lab in labels]
    else:
        rng_l = _per_channel(adc_range, n_ch, "adc_range")
    frames = arr.shape[1] if n_frames is None else int(n_frames)
    normalised = looks_time_normalised(frames, rate_hz=rate_hz)
    rows = []
    for i in range(n_ch):
        r = channel_qc(arr[i], rate_hz=rate_hz, mains_hz=mains_hz, unit=unit_l[i],
                       adc_range=rng_l[i], gain=gain_l[i], time_normalised=normalised)
        r["channel"] = i
        r["label"] = labels[i]
        r["unit"] = None if unit_l[i] is None else str(unit_l[i])
        r["n_flags"] = len(r["flags"])
        r["flags"] = ",".join(r["flags"])
        r["mains_hz"] = float(mains_hz)
        rows.append({k: r[k] for k in _TABLE_COLUMNS})
    special = {
        "channel": pl.Int32, "label": pl.Utf8, "unit": pl.Utf8, "verdict": pl.Utf8, "flags": pl.Utf8,
        "n_flags": pl.Int32, "clipping_basis": pl.Utf8, "amplitude_basis": pl.Utf8,
        "n_samples": pl.Int64, "qc_version": pl.Utf8,
    }
    schema = {c: special.get(c, pl.Float64) for c in _TABLE_COLUMNS}
    return pl.DataFrame(rows, schema=schema)
