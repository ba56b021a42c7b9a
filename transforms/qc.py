"""Per-channel surface-EMG signal quality control (pure; no I/O).

Every check *flags*; nothing here deletes, edits or repairs a signal.  A channel gets a
dict of metrics, a list of stable snake_case flag codes and a verdict:

* ``bad``  -- at least one flag of severity ``bad`` (the channel is not usable raw EMG),
* ``warn`` -- only ``warn`` flags (usable, but look at it),
* ``ok``   -- no flag.

Every flag is one entry of :data:`CHECKS` (code, severity, rule); the channel is measured
once (amplitude, clipping, dropouts, spectrum, processing) and each rule reads those
measurements, so :data:`FLAG_SEVERITY` and the verdict come from that one table.  Every
threshold is an UPPER_CASE constant below and is documented, with its rationale, in
``docs/qc_thresholds.md``.  Whole trials (one row per channel), ADC rails from file
parameters and cycle-normalised streams: :mod:`transforms.qc_trial`.

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
checked against the electrode-level ceiling ``MAX_SKIN_EMG_MV`` depends on the amplitude
basis (``amplitude_basis``; the ingest decides it per channel from the manifest's gain and the
values, see :func:`transforms.qc_trial.amplitude_basis`):

* ``amplitude_basis='electrode_mv'`` -- the value is the potential at the electrode and is
  compared with ``MAX_SKIN_EMG_MV``;
* ``amplitude_basis='amplifier_output'`` -- the value is the amplifier output seen by the ADC
  (Vicon Nexus, Motion Analysis, ... store EMG as ADC-input volts, typically hundreds of mV for
  gait EMG after a x500-x1000 gain); only the physical ADC ceiling ``MAX_AMPLIFIER_OUTPUT_V``
  applies.

Without an explicit basis it follows from the unit and ``gain``: ``gain`` given -- the value
divided by the gain is compared with ``MAX_SKIN_EMG_MV`` (basis ``electrode_mv``); ``gain=None``
and unit V -- ``amplifier_output``; ``gain=None`` and unit mV or uV (EMG systems that export in
mV/uV divide by their gain) -- ``electrode_mv``; unknown unit -- not checked (``unknown``).

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
from collections import namedtuple
from collections.abc import Sequence

import numpy as np

from transforms.spectral import welch_psd

__all__ = [
    "QC_VERSION", "EMG_BAND_HZ", "NYQUIST_FRACTION", "WELCH_SEGMENT_S", "MIN_SPECTRAL_DURATION_S",
    "MAINS_HALF_WIDTH_HZ", "MAINS_WARN_RATIO", "MAINS_BAD_RATIO", "MEDIAN_FREQ_RANGE_HZ",
    "WHITE_NOISE_MEDIAN_FREQ_RATIO_RANGE", "WHITE_NOISE_MIN_FLOOR_FLATNESS", "FLOOR_FLATNESS_BANDS",
    "ADC_RAIL_TOLERANCE_FRACTION", "CLIPPING_MIN_RUN_SAMPLES", "CLIPPING_INFER_MIN_LEVELS",
    "CLIPPING_BAD_FRACTION", "MAX_SKIN_EMG_MV", "MAX_AMPLIFIER_OUTPUT_V", "DC_OFFSET_WARN_RATIO",
    "PROCESSED_MAX_MINORITY_FRACTION", "PROCESSED_MIN_SKEWNESS", "PROCESSED_MAX_MEDIAN_FREQ_HZ",
    "DROPOUT_MIN_RUN_S", "NAN_BAD_FRACTION", "MIN_RAW_EMG_RATE_HZ", "CYCLE_NORMALISED_FRAME_COUNTS",
    "MAX_NORMALISED_SPAN_S", "AMPLITUDE_BASES", "QcCheck", "CHECKS", "FLAG_SEVERITY", "UNIT_TO_MV", "unit_to_mv_factor",
    "as_rate_hz", "channel_qc", "verdict_from_flags",
]

#: Version of the QC rules; bump it whenever a threshold or a metric definition changes.
QC_VERSION = "qc-1.1.0"

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

#: Amplitude bases: the stored value is the potential at the electrode, or the amplifier's output.
AMPLITUDE_BASES: tuple[str, ...] = ("electrode_mv", "amplifier_output")

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


def as_rate_hz(rate_hz: float, /) -> float:
    """``rate_hz`` as a float.

    Raises
    ------
    ValueError
        If it is not a positive finite number.
    """
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


def _longest_run_s(mask: np.ndarray, rate: float) -> float:
    s, e = _runs(mask)
    return float((e - s).max()) / rate if s.size else 0.0


# --------------------------------------------------------------------------- the channel under inspection
#: Metrics of :func:`channel_qc` after ``clipping_basis``, NaN until measured (in report order).
_NAN_METRICS = (
    "dropout_frac", "longest_dropout_s", "mains_ratio", "median_freq_hz",
    "median_freq_ratio", "spectral_flatness", "floor_flatness", "rms_mv", "dc_offset_mv", "peak_abs_mv",
    "dc_to_rms", "negative_frac", "positive_frac", "skewness",
)


class _Channel:
    """One channel as the checks see it: the samples, their context and what was measured.

    ``state`` is ``'empty'`` (no finite sample), ``'flat'`` (exactly constant: nothing else is
    meaningful) or ``'varying'``; ``metrics`` holds the reported metrics, the other attributes
    the intermediate values the rules need (``peak`` and ``scale`` in the stored unit).
    """

    def __init__(self, x: np.ndarray, *, rate: float, mains: float, unit, adc_range, gain,
                 time_normalised: bool, basis: str | None = None):
        self.x, self.rate, self.mains, self.adc_range, self.gain = x, rate, mains, adc_range, gain
        self.basis = basis
        self.time_normalised = bool(time_normalised)
        self.to_mv = unit_to_mv_factor(unit)
        self.finite = np.isfinite(x)
        self.n_finite = int(self.finite.sum())
        self.xf = x[self.finite]
        self.state = "empty"
        self.peak = self.scale = math.nan
        self.mdf_full = math.nan  # whole-spectrum median frequency (Hz)
        self.processed = False
        self.metrics: dict = {
            "n_samples": x.size, "duration_s": x.size / rate, "rate_hz": rate, "unit": unit,
            "nan_frac": 1.0 - self.n_finite / x.size, "longest_nan_run_s": _longest_run_s(~self.finite, rate),
            "clipping_frac": math.nan, "clipping_basis": "adc_range" if adc_range is not None else "inferred",
            **dict.fromkeys(_NAN_METRICS, math.nan), "amplitude_basis": "unknown", "qc_version": QC_VERSION,
        }


def _check_inputs(mains_hz, gain, adc_range) -> tuple[float, tuple[float, float] | None]:
    """Validate the context of :func:`channel_qc`; returns (mains in Hz, rails or None)."""
    mains = float(mains_hz)
    if not math.isfinite(mains) or mains <= 0.0:
        raise ValueError(f"mains_hz must be positive, got {mains_hz!r}")
    if gain is not None and not (math.isfinite(float(gain)) and float(gain) > 0.0):
        raise ValueError(f"gain must be positive or None, got {gain!r}")
    if adc_range is None:
        return mains, None
    try:
        lo_r, hi_r = (float(v) for v in adc_range)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"adc_range must be a (low, high) pair, got {adc_range!r}") from exc
    if not (math.isfinite(lo_r) and math.isfinite(hi_r) and lo_r < hi_r):
        raise ValueError(f"adc_range must be finite with low < high, got {adc_range!r}")
    return mains, (lo_r, hi_r)


# --------------------------------------------------------------------------- measurements
def _measure_amplitude(ch: _Channel) -> None:
    """Peak, AC RMS, DC offset and sign fractions (mV); decides ``flat`` vs ``varying``."""
    m, xf = ch.metrics, ch.xf
    ch.peak = float(np.abs(xf).max())
    # moments on the signal divided by its peak (no overflow/underflow), then rescaled
    ch.scale = ch.peak if ch.peak > 0.0 else 1.0
    xn = xf / ch.scale
    mean_n = float(xn.mean())
    ac_n = xn - mean_n
    rms_n = float(np.sqrt(np.mean(ac_n * ac_n)))
    m["rms_mv"] = rms_n * ch.scale * ch.to_mv
    m["dc_offset_mv"] = mean_n * ch.scale * ch.to_mv
    m["peak_abs_mv"] = ch.peak * ch.to_mv
    m["negative_frac"] = float(np.count_nonzero(xf < 0.0) / ch.n_finite)
    m["positive_frac"] = float(np.count_nonzero(xf > 0.0) / ch.n_finite)
    if float(xf.min()) == float(xf.max()):
        ch.state = "flat"
        m["clipping_frac"] = m["dropout_frac"] = m["longest_dropout_s"] = 0.0
        return
    ch.state = "varying"
    if rms_n > 1e-100:
        m["dc_to_rms"] = abs(mean_n) / rms_n
        m["skewness"] = float(np.mean(ac_n * ac_n * ac_n) / rms_n**3)  # x*x*x: pow() per sample costs ~60x
    else:  # non-constant but below floating-point resolution
        m["dc_to_rms"] = math.inf if mean_n != 0.0 else math.nan
    if math.isfinite(ch.to_mv):
        m["amplitude_basis"] = ch.basis or (
            "amplifier_output" if ch.gain is None and ch.to_mv == 1e3 else "electrode_mv")


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
    if lo == hi or not _has_levels(fin, CLIPPING_INFER_MIN_LEVELS):
        return 0.0, "inferred"
    count = 0
    for rail, n_next in ((lo, np.count_nonzero(fin == fin[fin > lo].min())),
                         (hi, np.count_nonzero(fin == fin[fin < hi].max()))):
        # a rail is a pile-up: held for a run of samples and more populated than the next level
        n_rail = np.count_nonzero(fin == rail)
        starts, stops = _runs(x == rail)
        if int((stops - starts).max()) >= CLIPPING_MIN_RUN_SAMPLES and n_rail > n_next:
            count += int(n_rail)
    return count / n, "inferred"


def _has_levels(fin: np.ndarray, k: int) -> bool:
    """Whether ``fin`` has >= ``k`` distinct values: its start usually shows it (no part has more than the
    whole), else the whole is counted (sorting every channel was the channel QC's largest cost)."""
    return np.unique(fin[:4096]).size >= k or np.unique(fin).size >= k


def _measure_clipping(ch: _Channel) -> None:
    ch.metrics["clipping_frac"] = _rail_fraction(ch.x, ch.adc_range)[0]


def _measure_dropouts(ch: _Channel) -> None:
    """Runs of identical consecutive finite values, excluding runs at the rails."""
    x, n = ch.x, ch.x.size
    same = np.zeros(n, dtype=bool)
    eq = (x[1:] == x[:-1]) & np.isfinite(x[1:])
    same[1:] |= eq
    same[:-1] |= eq
    if ch.adc_range is not None:
        lo, hi = ch.adc_range
        tol = ADC_RAIL_TOLERANCE_FRACTION * (hi - lo)
        at_rail = (x <= lo + tol) | (x >= hi - tol)
    else:
        at_rail = (x == ch.xf.min()) | (x == ch.xf.max())
    s, e = _runs(same & ~at_rail)
    long_runs = (e - s) >= max(2, int(math.ceil(DROPOUT_MIN_RUN_S * ch.rate)))
    ch.metrics["dropout_frac"] = float((e - s)[long_runs].sum() / n)
    ch.metrics["longest_dropout_s"] = float((e - s).max() / ch.rate) if s.size else 0.0


def _measure_spectrum(ch: _Channel) -> None:
    """Welch PSD metrics (see the module docstring); skipped when too short or mostly NaN."""
    m, rate, n = ch.metrics, ch.rate, ch.x.size
    if ch.n_finite / rate < MIN_SPECTRAL_DURATION_S or m["nan_frac"] > NAN_BAD_FRACTION:
        return
    xi = _fill_nan(ch.x) / ch.scale  # spectral ratios are scale-free
    nper = min(n, max(8, int(round(WELCH_SEGMENT_S * rate))))
    f, p = welch_psd(xi, rate_hz=rate, nperseg=nper, noverlap=nper // 2)  # scipy.signal.welch's, bit for bit
    lo_b, hi_b = EMG_BAND_HZ[0], min(EMG_BAND_HZ[1], NYQUIST_FRACTION * rate / 2.0)
    full = f > 0.0
    ch.mdf_full = _median_freq(f[full], p[full])
    m["median_freq_ratio"] = ch.mdf_full / (rate / 4.0)
    if hi_b <= lo_b:
        return
    band = (f >= lo_b) & (f <= hi_b)
    pb = p[band]
    if pb.size >= 2 and pb.sum() > 0.0:
        m["median_freq_hz"] = _median_freq(f[band], pb)
        m["spectral_flatness"] = _wiener(pb)
        hum = np.zeros_like(band)
        k = 1
        while k * ch.mains - MAINS_HALF_WIDTH_HZ <= hi_b:
            hum |= np.abs(f - k * ch.mains) <= MAINS_HALF_WIDTH_HZ
            k += 1
        m["mains_ratio"] = float(p[hum & band].sum() / pb.sum())
    edges = np.linspace(lo_b, NYQUIST_FRACTION * rate / 2.0, FLOOR_FLATNESS_BANDS + 1)
    meds = []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (f >= a) & (f < b)
        if sel.any():
            meds.append(float(np.median(p[sel])))
    if len(meds) == FLOOR_FLATNESS_BANDS:
        m["floor_flatness"] = _wiener(np.asarray(meds))


def _measure_processing(ch: _Channel) -> None:
    """One-sided and (right-skewed or low-frequency): rectified or enveloped, not raw EMG."""
    m = ch.metrics
    minority = min(m["negative_frac"], m["positive_frac"])
    sign = 1.0 if m["positive_frac"] >= m["negative_frac"] else -1.0
    skew_signed = sign * m["skewness"]
    ch.processed = minority <= PROCESSED_MAX_MINORITY_FRACTION and (
        (math.isfinite(skew_signed) and skew_signed >= PROCESSED_MIN_SKEWNESS)
        or (math.isfinite(ch.mdf_full) and ch.mdf_full <= PROCESSED_MAX_MEDIAN_FREQ_HZ))


#: Measurements of a varying channel, in order (processing needs the spectrum's median frequency).
_MEASUREMENTS = (_measure_clipping, _measure_dropouts, _measure_spectrum, _measure_processing)


# --------------------------------------------------------------------------- rules: one per flag
def _implausible_amplitude(ch: _Channel) -> bool:
    """Peak above the skin ceiling (skin basis) or above the ADC ceiling (volts at the ADC)."""
    if ch.state != "varying" or not math.isfinite(ch.to_mv):
        return False
    peak_mv, volts = ch.peak * ch.to_mv, ch.to_mv == 1e3
    if ch.basis == "electrode_mv":
        return peak_mv / float(ch.gain or 1.0) > MAX_SKIN_EMG_MV
    if ch.basis == "amplifier_output":
        return peak_mv / 1e3 > MAX_AMPLIFIER_OUTPUT_V
    if ch.gain is not None:
        return peak_mv / float(ch.gain) > MAX_SKIN_EMG_MV or (volts and ch.peak > MAX_AMPLIFIER_OUTPUT_V)
    return ch.peak > MAX_AMPLIFIER_OUTPUT_V if volts else peak_mv > MAX_SKIN_EMG_MV


def _white_noise(ch: _Channel) -> bool:
    """Whole-spectrum median frequency near rate/4 and a flat broadband floor."""
    ratio, ff = ch.metrics["median_freq_ratio"], ch.metrics["floor_flatness"]
    lo, hi = WHITE_NOISE_MEDIAN_FREQ_RATIO_RANGE
    return math.isfinite(ratio) and math.isfinite(ff) and lo <= ratio <= hi and ff >= WHITE_NOISE_MIN_FLOOR_FLATNESS


def _median_freq_out_of_band(ch: _Channel) -> bool:
    mdf = ch.metrics["median_freq_hz"]
    return (not ch.processed and math.isfinite(mdf)
            and not MEDIAN_FREQ_RANGE_HZ[0] <= mdf <= MEDIAN_FREQ_RANGE_HZ[1])


#: One check: a flag ``code``, its ``severity`` (``'warn'`` or ``'bad'``) and its ``rule``, a
#: function of the inspected channel saying whether the flag is raised.
QcCheck = namedtuple("QcCheck", "code severity rule")

#: The checks, in report order.  Comparisons with a NaN metric are False, so a rule whose
#: metric could not be measured stays silent.  :data:`FLAG_SEVERITY` and the verdict are built
#: from this table.  Codes are stable: add new ones, never rename.
CHECKS: tuple[QcCheck, ...] = (
    QcCheck("all_nan", "bad", lambda ch: ch.state == "empty"),
    QcCheck("mostly_nan", "bad", lambda ch: ch.state != "empty" and ch.metrics["nan_frac"] > NAN_BAD_FRACTION),
    QcCheck("nan_samples", "warn", lambda ch: 0.0 < ch.metrics["nan_frac"] <= NAN_BAD_FRACTION),
    QcCheck("flat", "bad", lambda ch: ch.state == "flat"),
    QcCheck("all_zero", "bad", lambda ch: ch.state == "flat" and float(ch.xf[0]) == 0.0),
    QcCheck("time_normalised", "bad", lambda ch: ch.time_normalised),
    QcCheck("already_processed", "bad", lambda ch: ch.processed),
    QcCheck("implausible_amplitude", "bad", _implausible_amplitude),
    QcCheck("white_noise", "bad", _white_noise),
    QcCheck("mains_dominated", "bad", lambda ch: ch.metrics["mains_ratio"] > MAINS_BAD_RATIO),
    QcCheck("mains_noise", "warn", lambda ch: MAINS_WARN_RATIO < ch.metrics["mains_ratio"] <= MAINS_BAD_RATIO),
    QcCheck("clipping_severe", "bad", lambda ch: ch.metrics["clipping_frac"] > CLIPPING_BAD_FRACTION),
    QcCheck("clipping", "warn", lambda ch: 0.0 < ch.metrics["clipping_frac"] <= CLIPPING_BAD_FRACTION),
    QcCheck("dropouts", "warn", lambda ch: ch.metrics["dropout_frac"] > 0.0),
    QcCheck("baseline_offset", "warn",
            lambda ch: not ch.processed and ch.metrics["dc_to_rms"] > DC_OFFSET_WARN_RATIO),
    QcCheck("median_freq_out_of_band", "warn", _median_freq_out_of_band),
    QcCheck("low_sampling_rate", "warn", lambda ch: ch.rate < MIN_RAW_EMG_RATE_HZ),
    QcCheck("too_short", "warn",
            lambda ch: ch.state == "varying" and ch.n_finite / ch.rate < MIN_SPECTRAL_DURATION_S),
)

#: Flag code -> severity (from :data:`CHECKS`).
FLAG_SEVERITY: dict[str, str] = {c.code: c.severity for c in CHECKS}


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
    amplitude_basis: str | None = None,
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
    amplitude_basis : {'electrode_mv', 'amplifier_output'} or None, keyword-only
        What the stored value is (see the module docstring); None = from ``unit`` and ``gain``.

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
        ``amplitude_basis`` (``'electrode_mv' | 'amplifier_output' | 'unknown'``), ``qc_version``.
        Metrics that cannot be computed are NaN.

    Raises
    ------
    ValueError
        On a non-numeric, non-1-D, empty or infinite-valued input, a non-positive rate,
        a mains frequency that is not positive, a non-positive gain, an invalid
        ``adc_range`` or an unknown ``amplitude_basis``.
    """
    x = _as_1d(emg, "emg")
    rate = as_rate_hz(rate_hz)
    mains, rails = _check_inputs(mains_hz, gain, adc_range)
    if amplitude_basis not in (None, *AMPLITUDE_BASES):
        raise ValueError(f"amplitude_basis must be one of {AMPLITUDE_BASES} or None, got {amplitude_basis!r}")
    ch = _Channel(x, rate=rate, mains=mains, unit=unit, adc_range=rails, gain=gain, basis=amplitude_basis,
                  time_normalised=time_normalised)
    if ch.n_finite:
        _measure_amplitude(ch)
        if ch.state == "varying":
            for measure in _MEASUREMENTS:
                measure(ch)
    flags = [c.code for c in CHECKS if c.rule(ch)]
    return {**ch.metrics, "flags": flags, "verdict": verdict_from_flags(flags)}
