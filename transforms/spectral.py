"""EMG spectral fatigue indices: mean / median frequency and their trend (pure; no I/O).

Power spectral density
    Welch's method (``scipy.signal.welch``): Hann window, segments of
    ``welch_segment_s`` seconds (default ``WELCH_SEGMENT_S = 0.25`` s, i.e.
    250 samples and a 4 Hz bin at 1000 Hz), 50 % overlap, per-segment mean
    removal (``detrend="constant"``), one-sided density.  A signal shorter
    than one segment is analysed as a single segment of its own length
    (coarser bins).  Segments shorter than ``MIN_SEGMENT_SAMPLES`` give NaN.

Band
    Only bins whose centre frequency ``f_k`` lies in ``band_hz`` (default
    ``SPECTRAL_BAND_HZ = (20, 450)`` Hz) are used.  The upper edge must not
    exceed the Nyquist frequency.

Mean frequency (MNF)
    ``MNF = sum_k f_k P_k / sum_k P_k`` over the band.

Median frequency (MDF)
    The frequency splitting band power into two equal halves.  Each bin's
    power is spread uniformly over ``[f_k - df/2, f_k + df/2]`` and the
    cumulative power is linearly interpolated, so MDF is continuous rather
    than snapped to a bin centre (for a tone on a bin centre with the
    symmetric Hann leakage, MDF equals the tone frequency exactly).

Trend
    The slope of MNF or MDF against window-centre time by ordinary least
    squares (Hz/s); ``slope_pct_per_s`` is the slope divided by the fitted
    value at the first window time, times 100 (a normalised fatigue index,
    cf. Merletti et al. 1990).

References
----------
Welch PD (1967). The use of fast Fourier transform for the estimation of
power spectra. IEEE Trans Audio Electroacoust 15(2):70-73.
Merletti R, Knaflitz M, De Luca CJ (1990). Myoelectric manifestations of
fatigue in voluntary and electrically elicited contractions. J Appl Physiol
69(5):1810-1820.
Phinyomark A, Thongpanja S, Hu H, Phukpattaranont P, Limsakul C (2012). The
usefulness of mean and median frequencies in electromyography analysis. In:
Computational Intelligence in Electromyography Analysis, InTech.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import fft as sp_fft
from scipy import signal

#: Default spectral analysis band (Hz).  Deliberately separate from the conditioning
#: band-pass of transforms.emg: the band over which MNF/MDF are integrated is a property of
#: the fatigue index (it can be narrowed, e.g. to exclude motion artefact), not of the filter.
SPECTRAL_BAND_HZ: tuple[float, float] = (20.0, 450.0)
#: Default Welch segment length in seconds (Hann window, 50 % overlap).
WELCH_SEGMENT_S = 0.25
#: Welch overlap as a fraction of the segment length.
WELCH_OVERLAP_FRACTION = 0.5
#: Minimum number of samples in an analysed segment; shorter gives NaN.
MIN_SEGMENT_SAMPLES = 32
#: Default sliding-window length (s) and step (s) for fatigue trends.
SLIDING_WINDOW_S = 0.5
SLIDING_STEP_S = 0.25
#: Minimum number of finite (time, frequency) points for a slope.
MIN_SLOPE_POINTS = 3


def _check_rate(rate_hz: float) -> float:
    rate = float(rate_hz)
    if not np.isfinite(rate) or rate <= 0:
        raise ValueError(f"rate_hz must be a positive finite number, got {rate_hz!r}")
    return rate


def _check_band(band_hz: Sequence[float], rate_hz: float) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in band_hz)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"band_hz must be a (low, high) pair, got {band_hz!r}") from exc
    if not (0.0 <= lo < hi):
        raise ValueError(f"band_hz must satisfy 0 <= low < high, got {band_hz!r}")
    if hi > rate_hz / 2.0:
        raise ValueError(f"band_hz upper edge {hi} Hz exceeds the Nyquist frequency {rate_hz / 2.0} Hz")
    return lo, hi


def _check_segment(welch_segment_s: float) -> None:
    if not np.isfinite(welch_segment_s) or welch_segment_s <= 0:
        raise ValueError(f"welch_segment_s must be positive, got {welch_segment_s!r}")


def _signal_1d(emg, name: str = "emg") -> np.ndarray:
    x = np.asarray(emg, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def welch_psd(x, /, *, rate_hz: float, nperseg: int, noverlap: int) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.welch(x, fs=rate_hz, window="hann", nperseg=nperseg, noverlap=noverlap,
    detrend="constant", scaling="density")`` of a 1-D float64 signal, bit for bit, with every segment
    detrended, windowed and transformed in one array operation: scipy (1.17, ``ShortTimeFFT``) does
    each segment in a Python loop (~40 FFT calls per 10 s channel), most of channel QC's time.

    Parameters
    ----------
    x : numpy.ndarray, shape (n,)
        Finite float64 signal, ``n >= nperseg``.
    rate_hz : float, keyword-only
        Sampling rate, Hz.
    nperseg, noverlap : int, keyword-only
        Segment length and overlap, samples (``0 <= noverlap < nperseg``).

    Returns
    -------
    (freqs_hz, psd) : tuple of numpy.ndarray
        One-sided frequencies (Hz) and density (unit^2/Hz), as scipy's.

    Raises
    ------
    ValueError
        On a signal shorter than a segment or a bad overlap.
    """
    x = np.asarray(x, dtype=np.float64)
    nperseg, noverlap = int(nperseg), int(noverlap)
    if x.ndim != 1 or not (0 <= noverlap < nperseg <= x.size):
        raise ValueError(f"need a 1-D signal of at least nperseg={nperseg} samples and 0 <= noverlap < nperseg")
    sft = _short_time_fft(float(rate_hz), nperseg, noverlap)
    hop = nperseg - noverlap
    seg = x[(np.arange((x.size - noverlap) // hop) * hop)[:, None] + np.arange(nperseg)]
    seg = seg - np.mean(seg, axis=-1, keepdims=True)  # scipy.signal.detrend(type="constant"), per segment
    spec = sp_fft.rfft(seg * sft.win.conj(), n=nperseg, axis=-1).T  # frequencies x segments, as scipy's
    power = np.ascontiguousarray(spec.real ** 2 + spec.imag ** 2)  # row sums pairwise, as scipy's mean
    power[1:-1 if nperseg % 2 == 0 else None] *= 2
    return sft.f, power.mean(axis=-1) if power.shape[-1] > 1 else power[:, 0]


@functools.lru_cache(maxsize=32)
def _short_time_fft(rate_hz: float, nperseg: int, noverlap: int) -> signal.ShortTimeFFT:
    """The ``ShortTimeFFT`` ``scipy.signal.welch`` builds (its scaled window and frequencies), once per design."""
    win = signal.get_window("hann", nperseg)
    return signal.ShortTimeFFT(win, nperseg - noverlap, rate_hz, fft_mode="onesided", mfft=nperseg,
                               scale_to="psd", phase_shift=None)


def band_psd(
    emg,
    /,
    *,
    rate_hz: float,
    band_hz: Sequence[float] = SPECTRAL_BAND_HZ,
    welch_segment_s: float = WELCH_SEGMENT_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD of a segment restricted to a band.

    Parameters
    ----------
    emg : array_like, shape (n,)
        Signal segment (any amplitude unit, e.g. mV); finite.
    rate_hz : float, keyword-only
        Sampling rate in Hz.
    band_hz : (float, float), keyword-only
        Inclusive band of bin centre frequencies, Hz.
    welch_segment_s : float, keyword-only
        Welch segment length in seconds.

    Returns
    -------
    (freqs_hz, psd) : tuple of numpy.ndarray
        Bin centre frequencies (Hz) inside the band and the density
        (unit^2/Hz).  Both empty when the segment is shorter than
        ``MIN_SEGMENT_SAMPLES``.

    Raises
    ------
    ValueError
        On non-1-D or non-finite input, non-positive rate or segment, or an
        invalid band.
    """
    x = _signal_1d(emg)
    rate = _check_rate(rate_hz)
    lo, hi = _check_band(band_hz, rate)
    _check_segment(welch_segment_s)
    if x.size < MIN_SEGMENT_SAMPLES:
        return np.empty(0), np.empty(0)
    nperseg = min(x.size, max(MIN_SEGMENT_SAMPLES, int(round(welch_segment_s * rate))))
    noverlap = int(nperseg * WELCH_OVERLAP_FRACTION)
    f, p = welch_psd(x, rate_hz=rate, nperseg=nperseg, noverlap=noverlap)
    keep = (f >= lo) & (f <= hi)
    return f[keep], p[keep]


def _mnf_mdf(f: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    if f.size == 0:
        return float("nan"), float("nan")
    total = p.sum()
    if not total > 0:
        return float("nan"), float("nan")
    mnf = float(np.sum(f * p) / total)
    df = f[1] - f[0] if f.size > 1 else 1.0
    cum = np.cumsum(p)
    half = total / 2.0
    j = int(np.searchsorted(cum, half, side="left"))
    j = min(j, f.size - 1)
    prev = cum[j - 1] if j > 0 else 0.0
    frac = (half - prev) / p[j] if p[j] > 0 else 0.5
    mdf = float(f[j] - df / 2.0 + frac * df)
    return mnf, mdf


def spectral_frequencies(
    emg,
    /,
    *,
    rate_hz: float,
    band_hz: Sequence[float] = SPECTRAL_BAND_HZ,
    welch_segment_s: float = WELCH_SEGMENT_S,
) -> tuple[float, float]:
    """Mean and median frequency of one segment.

    Parameters
    ----------
    emg : array_like, shape (n,)
        Signal segment (e.g. mV); finite.
    rate_hz : float, keyword-only
        Sampling rate, Hz.
    band_hz : (float, float), keyword-only
        Analysis band, Hz (default 20-450).
    welch_segment_s : float, keyword-only
        Welch segment length, s (default 0.25).

    Returns
    -------
    (mnf_hz, mdf_hz) : tuple of float
        NaN for a segment shorter than ``MIN_SEGMENT_SAMPLES`` or with no
        power in the band.

    Raises
    ------
    ValueError
        As :func:`band_psd`.
    """
    f, p = band_psd(emg, rate_hz=rate_hz, band_hz=band_hz, welch_segment_s=welch_segment_s)
    return _mnf_mdf(f, p)


def mean_frequency(
    emg_mv,
    /,
    *,
    rate_hz: float,
    band_hz: Sequence[float] = SPECTRAL_BAND_HZ,
    welch_segment_s: float = WELCH_SEGMENT_S,
) -> float:
    """Mean frequency (Hz) of a segment; see :func:`spectral_frequencies`.

    Raises
    ------
    ValueError
        As :func:`band_psd`.
    """
    return spectral_frequencies(emg_mv, rate_hz=rate_hz, band_hz=band_hz, welch_segment_s=welch_segment_s)[0]


def median_frequency(
    emg_mv,
    /,
    *,
    rate_hz: float,
    band_hz: Sequence[float] = SPECTRAL_BAND_HZ,
    welch_segment_s: float = WELCH_SEGMENT_S,
) -> float:
    """Median frequency (Hz) of a segment; see :func:`spectral_frequencies`.

    Raises
    ------
    ValueError
        As :func:`band_psd`.
    """
    return spectral_frequencies(emg_mv, rate_hz=rate_hz, band_hz=band_hz, welch_segment_s=welch_segment_s)[1]


_WINDOW_SCHEMA = {
    "window": pl.Int64,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "centre_s": pl.Float64,
    "n_samples": pl.Int64,
    "mnf_hz": pl.Float64,
    "mdf_hz": pl.Float64,
}


def burst_frequencies(
    emg_mv,
    /,
    *,
    rate_hz: float,
    bursts_s,
    start_time_s: float = 0.0,
    band_hz: Sequence[float] = SPECTRAL_BAND_HZ,
    welch_segment_s: float = WELCH_SEGMENT_S,
) -> pl.DataFrame:
    """MNF and MDF of each activation burst.

    Parameters
    ----------
    emg_mv : array_like, shape (n,)
        Raw (band-passed, not rectified) EMG of the whole trial.
    rate_hz : float, keyword-only
        Sampling rate, Hz.
    bursts_s : array_like, shape (m, 2), keyword-only
        ``[onset_s, offset_s]`` per burst on the trial clock; samples with
        ``onset_s <= t <= offset_s`` are analysed.
    start_time_s : float, keyword-only
        Time of sample 0, s (sample ``i`` is at ``start_time_s + i / rate_hz``).
    band_hz, welch_segment_s : keyword-only
        As :func:`band_psd`.

    Returns
    -------
    polars.DataFrame
        Columns ``window`` (burst index), ``start_s``, ``end_s``,
        ``centre_s``, ``n_samples``, ``mnf_hz``, ``mdf_hz`` (null for bursts
        with too few samples).

    Raises
    ------
    ValueError
        On malformed bursts (not ``(m, 2)``, non-finite, offset before onset)
        or as :func:`band_psd`.
    """
    x = _signal_1d(emg_mv)
    rate = _check_rate(rate_hz)
    lo, hi = _check_band(band_hz, rate)
    b = np.asarray(bursts_s, dtype=float)
    if b.size == 0:
        b = np.empty((0, 2))
    elif b.ndim != 2 or b.shape[1] != 2:
        raise ValueError(f"bursts_s must have shape (m, 2), got {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("bursts_s contains non-finite times")
    if np.any(b[:, 1] < b[:, 0]):
        raise ValueError("bursts_s has an offset before its onset")
    _check_segment(welch_segment_s)
    t = start_time_s + np.arange(x.size) / rate
    # samples with on <= t <= off (t rises): the same selection as a mask, without one per burst
    starts = np.searchsorted(t, b[:, 0], side="left")
    stops = np.maximum(np.searchsorted(t, b[:, 1], side="right"), starts)
    freqs = _welch_segments(x, starts, stops, rate=rate, band=(lo, hi), welch_segment_s=welch_segment_s)
    return _windows_frame(b[:, 0], b[:, 1], stops - starts, freqs)


def _windows_frame(start_s: np.ndarray, end_s: np.ndarray, n_samples: np.ndarray,
                   freqs: list[tuple[float, float]]) -> pl.DataFrame:
    """The windows' frame (``_WINDOW_SCHEMA``) from columns: NaN frequencies are null. Built column-wise
    (a few rows per call, thousands of calls a night: row-wise construction and a second pass to null
    the NaNs cost more than the spectra)."""
    f = np.asarray(freqs, dtype=np.float64).reshape(-1, 2)
    cols = {"window": np.arange(len(start_s)), "start_s": start_s, "end_s": end_s,
            "centre_s": (start_s + end_s) / 2, "n_samples": n_samples}
    return pl.DataFrame({**{k: pl.Series(k, v, dtype=_WINDOW_SCHEMA[k]) for k, v in cols.items()},
                         "mnf_hz": pl.Series("mnf_hz", f[:, 0], nan_to_null=True),
                         "mdf_hz": pl.Series("mdf_hz", f[:, 1], nan_to_null=True)})


@functools.lru_cache(maxsize=256)
def _hann(n: int) -> tuple[np.ndarray, float]:
    """``scipy.signal.get_window("hann", n)`` (read-only: shared) and the sum of its squares: a night asks for the
    same few lengths thousands of times."""
    win = signal.get_window("hann", n)
    win.flags.writeable = False
    return win, float((win * win).sum())


def _welch_segments(x: np.ndarray, starts: np.ndarray, stops: np.ndarray, *, rate: float,
                    band: tuple[float, float], welch_segment_s: float) -> list[tuple[float, float]]:
    """(MNF, MDF) of each ``x[start:stop]``: :func:`spectral_frequencies` of every segment, with the Welch
    periodograms of all segments of one length computed together (one gather, one FFT) instead of one
    ``scipy.signal.welch`` call per segment. The same estimator: Hann window, ``WELCH_OVERLAP_FRACTION``
    overlap, full segments only, per-segment mean removed, one-sided density, mean over segments."""
    lo, hi = band  # checked by the caller
    out = [(float("nan"), float("nan"))] * len(starts)
    lengths = stops - starts
    nper = np.minimum(lengths, max(MIN_SEGMENT_SAMPLES, int(round(welch_segment_s * rate))))
    for n in np.unique(nper[lengths >= MIN_SEGMENT_SAMPLES]):
        which = np.flatnonzero((nper == n) & (lengths >= MIN_SEGMENT_SAMPLES))
        n = int(n)
        step = n - int(n * WELCH_OVERLAP_FRACTION)
        counts = (lengths[which] - (n - step)) // step  # full segments per burst, as scipy.signal.welch
        first = np.repeat(starts[which], counts) + step * (np.arange(counts.sum()) - np.repeat(
            np.cumsum(counts) - counts, counts))
        seg = x[first[:, None] + np.arange(n)]
        seg = seg - seg.mean(axis=1, keepdims=True)
        win, win_power = _hann(n)
        spec = np.fft.rfft(seg * win, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2) / (rate * win_power)
        power[:, 1:-1 if n % 2 == 0 else None] *= 2.0
        mean = np.add.reduceat(power, np.cumsum(counts) - counts, axis=0) / counts[:, None]
        f = np.fft.rfftfreq(n, 1.0 / rate)
        keep = (f >= lo) & (f <= hi)
        for j, i in enumerate(which):
            out[i] = _mnf_mdf(f[keep], mean[j, keep])
    return out


def sliding_window_frequencies(
    emg_mv,
    /,
    *,
    rate_hz: float,
    window_s: float = SLIDING_WINDOW_S,
    step_s: float = SLIDING_STEP_S,
    start_time_s: float = 0.0,
    band_hz: Sequence[float] = SPECTRAL_BAND_HZ,
    welch_segment_s: float = WELCH_SEGMENT_S,
) -> pl.DataFrame:
    """MNF and MDF in sliding windows over a trial.

    Parameters
    ----------
    emg_mv : array_like, shape (n,)
        Raw (band-passed, not rectified) EMG.
    rate_hz : float, keyword-only
        Sampling rate, Hz.
    window_s, step_s : float, keyword-only
        Window length and step, s (defaults 0.5 and 0.25).  Only complete
        windows are analysed.
    start_time_s : float, keyword-only
        Time of sample 0, s.
    band_hz, welch_segment_s : keyword-only
        As :func:`band_psd`.

    Returns
    -------
    polars.DataFrame
        Same columns as :func:`burst_frequencies`, one row per window
        (``end_s`` is the time of the window's last sample plus one sample
        period).

    Raises
    ------
    ValueError
        On non-positive window/step, or as :func:`band_psd`.
    """
    x = _signal_1d(emg_mv)
    rate = _check_rate(rate_hz)
    _check_band(band_hz, rate)
    if not (np.isfinite(window_s) and window_s > 0 and np.isfinite(step_s) and step_s > 0):
        raise ValueError(f"window_s and step_s must be positive, got {window_s!r}, {step_s!r}")
    n_win = int(round(window_s * rate))
    n_step = max(1, int(round(step_s * rate)))
    if n_win < 1:
        raise ValueError("window_s is shorter than one sample")
    s0 = np.arange(0, x.size - n_win + 1, n_step)
    freqs = [spectral_frequencies(x[i : i + n_win], rate_hz=rate, band_hz=band_hz, welch_segment_s=welch_segment_s)
             for i in s0]
    t0 = start_time_s + s0 / rate
    return _windows_frame(t0, t0 + n_win / rate, np.full(s0.size, n_win), freqs)


def frequency_slope(times_s, freqs_hz, /) -> dict[str, float | int]:
    """Least-squares trend of a spectral index over a trial.

    Parameters
    ----------
    times_s : array_like, shape (n,)
        Window or burst centre times, s.
    freqs_hz : array_like, shape (n,)
        MNF or MDF per window, Hz; NaN (or None) entries are dropped.

    Returns
    -------
    dict
        ``slope_hz_per_s``, ``intercept_hz`` (fitted value at t = 0),
        ``slope_pct_per_s`` (slope / fitted value at the first time x 100),
        ``r_squared`` and ``n_points``.  Values are NaN when fewer than
        ``MIN_SLOPE_POINTS`` finite points or all times are equal.

    Raises
    ------
    ValueError
        If the inputs are not 1-D arrays of equal length.
    """
    t = np.asarray(times_s, dtype=float)
    f = np.asarray(
        [np.nan if v is None else v for v in freqs_hz] if isinstance(freqs_hz, list) else freqs_hz, dtype=float
    )
    if t.ndim != 1 or f.ndim != 1 or t.shape != f.shape:
        raise ValueError(f"times_s and freqs_hz must be 1-D and equal length, got {t.shape} and {f.shape}")
    ok = np.isfinite(t) & np.isfinite(f)
    t, f = t[ok], f[ok]
    nan = float("nan")
    out: dict[str, float | int] = {
        "slope_hz_per_s": nan,
        "intercept_hz": nan,
        "slope_pct_per_s": nan,
        "r_squared": nan,
        "n_points": int(t.size),
    }
    if t.size < MIN_SLOPE_POINTS or np.ptp(t) == 0:
        return out
    tm, fm = t.mean(), f.mean()
    sxx = np.sum((t - tm) ** 2)
    slope = np.sum((t - tm) * (f - fm)) / sxx
    intercept = fm - slope * tm
    ss_tot = np.sum((f - fm) ** 2)
    resid = f - (intercept + slope * t)
    first = intercept + slope * t.min()
    out.update(
        slope_hz_per_s=float(slope),
        intercept_hz=float(intercept),
        slope_pct_per_s=float(slope / first * 100.0) if first != 0 else nan,
        r_squared=float(1.0 - np.sum(resid**2) / ss_tot) if ss_tot > 0 else nan,
    )
    return out
