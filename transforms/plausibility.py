"""Cross-stream plausibility checks for a gait trial (pure; no I/O).

Each check returns a list of :class:`Finding` -- a stable snake_case ``code``, a
``severity`` (``info`` / ``warn`` / ``bad``), one human sentence and a ``details`` dict.
An empty list means "nothing implausible found"; ``info`` findings say a check could not
be assessed.  Nothing is ever corrected or deleted.  Codes and severities are listed in
:data:`FINDING_SEVERITY`; every threshold is an UPPER_CASE constant below, documented in
``docs/qc_thresholds.md``.

Checks
------
* :func:`check_sampling_rates` -- the stride period estimated at the *declared* rate from
  the vertical force (intervals between successive contacts on the same plate / belt)
  and from the EMG envelopes (autocorrelation) must lie in ``STRIDE_PERIOD_RANGE_S``
  (0.4-4 s); a wrong rate scales the apparent period by ``declared / true``.
* :func:`~transforms.plausibility_markers.check_marker_plate_agreement` -- while a plate carries load, a foot marker must be
  on it.  The plate's contact times (analog time base) are mapped to marker frames (point
  time base); if no contact at all finds a heel/toe/ankle marker inside the plate
  footprint and near its surface, the two time bases disagree: a wrong ``POINT:RATE`` or
  ``ANALOG:RATE`` (or a synchronisation offset).
* :func:`check_force_peaks` -- the peak vertical force of a loaded plate in body weights:
  walking gives ~1-1.5 BW; above ``FORCE_PEAK_MAX_BW`` is impossible, below
  ``FORCE_PEAK_MIN_BW`` suspicious; a plate cannot pull (``force_negative``).
* :func:`~transforms.plausibility_events.check_events` -- per side, foot strikes and foot offs alternate; strikes
  alternate between sides; the stride time between same-side strikes is plausible.
* :func:`check_durations` -- EMG, markers, plates (or declared vs. stored) agree in
  duration within a relative tolerance.

This module holds the vocabulary (thresholds, :class:`Finding`, severities) and the rate,
force and duration checks; the marker/plate and event checks live beside it in
:mod:`transforms.plausibility_markers` and :mod:`transforms.plausibility_events`.

Conventions: forces in N (vertical component positive when loaded, as ezc3d's
``platform[i]['force'][2]``), positions in mm with the vertical axis last (index 2),
times in s, rates in Hz.  Analog sample ``k`` and point frame ``j`` are simultaneous when
``k / analog_rate_hz == j / point_rate_hz`` (C3D convention: both start at the first frame).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import fft as sp_fft
from scipy import signal

from transforms import emg as _emg

__all__ = [
    "STRIDE_PERIOD_RANGE_S", "CONTACT_THRESHOLD_N", "MIN_CONTACT_S", "ENVELOPE_LOWPASS_HZ",
    "ENVELOPE_MIN_LAG_S", "ENVELOPE_MIN_AUTOCORR", "ENVELOPE_PEAK_PROMINENCE", "ENVELOPE_SUBHARMONIC_FRACTION",
    "PERIOD_AGREEMENT_REL_TOL", "FOOT_PLATE_MARGIN_MM", "FOOT_MAX_HEIGHT_MM", "GRAVITY_M_S2", "LOADED_MIN_BW",
    "FORCE_PEAK_MIN_BW", "FORCE_PEAK_MAX_BW", "NEGATIVE_FORCE_TOL_N", "EVENT_TIME_TOL_S", "DURATION_REL_TOL",
    "DURATION_ABS_TOL_S", "FINDING_SEVERITY", "Finding", "make_finding", "findings_table", "worst_severity",
    "as_rate_hz", "plates_2d", "contact_intervals", "stride_period_from_force", "stride_period_from_emg",
    "check_stride_period", "check_sampling_rates", "check_force_peaks", "check_durations",
]

# --------------------------------------------------------------------------- thresholds
#: Plausible stride (gait cycle) period in s at the declared rate.
STRIDE_PERIOD_RANGE_S: tuple[float, float] = (0.4, 4.0)
#: A plate is in contact while its vertical force exceeds this (N).
CONTACT_THRESHOLD_N = 20.0
#: Contacts shorter than this (s) are ignored (impacts, noise, cable knocks).
MIN_CONTACT_S = 0.1
#: Low-pass cut-off (Hz, at the declared rate) of the EMG envelope used for the period.
ENVELOPE_LOWPASS_HZ = 6.0
#: Shortest autocorrelation lag (s) searched for the stride period.
ENVELOPE_MIN_LAG_S = 0.1
#: A channel's period counts only if its autocorrelation peak reaches this.
ENVELOPE_MIN_AUTOCORR = 0.5
#: Minimum prominence of an autocorrelation peak.
ENVELOPE_PEAK_PROMINENCE = 0.1
#: An earlier peak at least this fraction of the highest one is the fundamental.
ENVELOPE_SUBHARMONIC_FRACTION = 0.8
#: Channel / source period estimates agree when within this relative distance of the median.
PERIOD_AGREEMENT_REL_TOL = 0.15
#: Margin (mm) around a plate's corners within which a foot marker counts as "on" it.
FOOT_PLATE_MARGIN_MM = 100.0
#: A foot marker on a loaded plate is at most this high (mm) above its surface.
FOOT_MAX_HEIGHT_MM = 250.0
#: Standard gravity (m/s^2) to convert mass to body weight.
GRAVITY_M_S2 = 9.80665
#: A plate whose peak exceeds this fraction of body weight was loaded (stepped on).
LOADED_MIN_BW = 0.1
#: A loaded plate peaking below this (BW) -> ``force_peak_low`` (partial contact or scaling).
FORCE_PEAK_MIN_BW = 0.3
#: A plate peaking above this (BW) -> ``force_peak_high`` (impossible in gait).
FORCE_PEAK_MAX_BW = 5.0
#: Vertical force below minus this (N) -> ``force_negative`` (a plate cannot pull).
NEGATIVE_FORCE_TOL_N = 50.0
#: Events of the same side and type closer than this (s) are duplicates.
EVENT_TIME_TOL_S = 1e-3
#: Streams agree in duration within max(DURATION_REL_TOL x longest, DURATION_ABS_TOL_S).
DURATION_REL_TOL = 0.02
#: Absolute floor (s) of the duration tolerance (a frame or two of the slowest stream).
DURATION_ABS_TOL_S = 0.02

#: Finding code -> severity.  Codes are stable: add new ones, never rename.
FINDING_SEVERITY: dict[str, str] = {
    "stride_period_implausible": "bad",
    "stride_period_disagreement": "warn",
    "stride_period_unavailable": "info",
    "marker_plate_mismatch": "bad",
    "marker_plate_not_assessable": "info",
    "force_peak_high": "bad",
    "force_peak_low": "warn",
    "force_negative": "warn",
    "event_order": "bad",
    "event_sides_not_alternating": "warn",
    "event_duplicate": "warn",
    "events_not_assessable": "info",
    "duration_mismatch": "bad",
    "frame_evidence_disagrees": "warn",
    "frame_override_disagrees": "warn",
    "treadmill_foot_off_disagrees": "warn",
}

_RANK = {"ok": 0, "info": 0, "warn": 1, "bad": 2}


@dataclass(frozen=True)
class Finding:
    """One plausibility finding.

    Attributes
    ----------
    code : str
        Stable snake_case code (a key of :data:`FINDING_SEVERITY`).
    severity : str
        ``'info'``, ``'warn'`` or ``'bad'``.
    message : str
        One human-readable sentence.
    details : dict
        Numbers behind the sentence (JSON-serialisable).
    """

    code: str
    severity: str
    message: str
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The finding as a plain dict (``details`` kept as a dict)."""
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "details": dict(self.details)}


def make_finding(code: str, message: str, /, **details) -> Finding:
    """A :class:`Finding` of ``code`` with its severity from :data:`FINDING_SEVERITY`."""
    return Finding(code, FINDING_SEVERITY[code], message, details)


def findings_table(findings: Iterable[Finding], /) -> pl.DataFrame:
    """Findings as a polars DataFrame (``code``, ``severity``, ``message``, ``details`` JSON)."""
    rows = [{"code": f.code, "severity": f.severity, "message": f.message,
             "details": json.dumps(f.details, sort_keys=True, default=float)} for f in findings]
    schema = {"code": pl.Utf8, "severity": pl.Utf8, "message": pl.Utf8, "details": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def worst_severity(findings: Iterable[Finding], /) -> str:
    """``'ok'`` (no finding or only ``info``), ``'warn'`` or ``'bad'``."""
    worst = "ok"
    for f in findings:
        if f.severity != "info" and _RANK[f.severity] > _RANK[worst]:
            worst = f.severity
    return worst


# --------------------------------------------------------------------------- helpers
def as_rate_hz(rate_hz, /, name: str = "rate_hz") -> float:
    """``rate_hz`` as a float; ValueError unless positive and finite."""
    r = float(rate_hz)
    if not math.isfinite(r) or r <= 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {rate_hz!r}")
    return r


def plates_2d(force_z_n, /, name: str = "plate_force_z_n") -> np.ndarray:
    """Vertical force(s) as a float array of shape (n_plates, n); ValueError if malformed."""
    arr = np.asarray(force_z_n, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be 1-D (samples) or 2-D (plates x samples), got shape {arr.shape}")
    return arr


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def contact_intervals(force_z_n, /, *, rate_hz: float, threshold_n: float = CONTACT_THRESHOLD_N,
                      min_contact_s: float = MIN_CONTACT_S) -> list[tuple[int, int]]:
    """Contact intervals of one plate: runs where the vertical force exceeds a threshold.

    Parameters
    ----------
    force_z_n : array_like, shape (n,)
        Vertical force in N, positive when loaded; NaN counts as no contact.
    rate_hz : float, keyword-only
        Sampling rate in Hz.
    threshold_n : float, keyword-only
        Contact threshold in N.
    min_contact_s : float, keyword-only
        Shorter runs are ignored.

    Returns
    -------
    list of (start, stop)
        Sample indices, ``stop`` exclusive, in time order.

    Raises
    ------
    ValueError
        If the input is not 1-D or the rate is not positive.
    """
    fz = np.asarray(force_z_n, dtype=np.float64)
    if fz.ndim != 1:
        raise ValueError(f"force_z_n must be 1-D, got shape {fz.shape}")
    rate = as_rate_hz(rate_hz)
    with np.errstate(invalid="ignore"):
        on = np.nan_to_num(fz, nan=-np.inf) > float(threshold_n)
    s, e = _runs(on)
    keep = (e - s) >= max(1, int(math.ceil(min_contact_s * rate)))
    return [(int(a), int(b)) for a, b in zip(s[keep], e[keep])]


# --------------------------------------------------------------------------- rates
def stride_period_from_force(plate_force_z_n, /, *, rate_hz: float,
                             threshold_n: float = CONTACT_THRESHOLD_N) -> float:
    """Stride period (s, at the declared rate) from repeated contacts on the same plate.

    Assumes one foot per plate or belt (split-belt treadmill, or the same plate struck
    repeatedly by one foot): the stride is the median interval between successive contact
    onsets of a plate, pooled over plates.

    Parameters
    ----------
    plate_force_z_n : array_like, shape (n_plates, n) or (n,)
        Vertical force per plate in N at the analog rate.
    rate_hz : float, keyword-only
        Declared analog rate in Hz.
    threshold_n : float, keyword-only
        Contact threshold in N.

    Returns
    -------
    float
        Median onset-to-onset interval in s; NaN when no plate has two contacts.

    Raises
    ------
    ValueError
        On a malformed array or a non-positive rate.
    """
    rate = as_rate_hz(rate_hz)
    intervals: list[float] = []
    for fz in plates_2d(plate_force_z_n):
        onsets = [a for a, _ in contact_intervals(fz, rate_hz=rate, threshold_n=threshold_n)]
        intervals.extend(np.diff(onsets) / rate)
    return float(np.median(intervals)) if intervals else math.nan


def _envelope_periods(arr: np.ndarray, rate: float) -> list[tuple[float, float]]:
    """(period_s, autocorrelation at that lag) of each row's envelope (NaNs if none): the rows are filtered
    and autocorrelated as one block (one filter design, one batch of FFTs: the power spectrum's inverse), each
    row as if alone."""
    nan = (math.nan, math.nan)
    x = np.where(np.isfinite(arr), arr, np.nan)
    finite = np.isfinite(x).any(axis=1)
    peak = np.zeros(len(x))
    peak[finite] = np.nanmax(np.abs(x[finite]), axis=1)
    rows = np.flatnonzero(finite & (peak > 0.0))
    out = [nan] * len(x)
    n = x.shape[1]
    sos = _envelope_sos(min(ENVELOPE_LOWPASS_HZ, 0.45 * rate) / (rate / 2.0))
    if not rows.size or n <= 3 * (2 * sos.shape[0] + 1):
        return out
    x = x[rows] / peak[rows, None]  # scale-free: avoids overflow in the correlation
    env = np.abs(np.nan_to_num(x - np.nanmean(x, axis=1, keepdims=True)))
    env = _emg.zero_phase(sos, env)  # scipy's sosfiltfilt, the rows side by side: the same bits, faster
    env = env - env.mean(axis=1, keepdims=True)
    nfft = sp_fft.next_fast_len(2 * n - 1, real=True)  # no circular wrap: the full linear autocorrelation
    spec = sp_fft.rfft(env, nfft, axis=-1)
    ac_all = sp_fft.irfft(spec.real ** 2 + spec.imag ** 2, nfft, axis=-1)[:, :n]  # lags 0 .. n-1
    lo, hi = max(1, int(ENVELOPE_MIN_LAG_S * rate)), n // 2
    overlap = n / (n - np.arange(n))  # unbiased: normalise by the overlap length
    for row, ac in zip(rows, ac_all):
        if not ac[0] > 0.0 or hi <= lo + 2:
            continue
        ac = ac / ac[0] * overlap
        peaks, _ = signal.find_peaks(ac[lo:hi], prominence=ENVELOPE_PEAK_PROMINENCE)
        if peaks.size == 0:
            continue
        peaks = peaks + lo
        best = peaks[np.argmax(ac[peaks])]
        if not ac[best] > 0.0:
            continue
        first = min(p for p in peaks if ac[p] >= ENVELOPE_SUBHARMONIC_FRACTION * ac[best])
        out[row] = (first / rate, float(ac[first]))
    return out


def _envelope_sos(cut_fraction: float) -> np.ndarray:
    """4th-order Butterworth low-pass at ``cut_fraction`` of Nyquist, designed once per rate."""
    sos = _SOS.get(cut_fraction)
    if sos is None:
        sos = _SOS[cut_fraction] = signal.butter(4, cut_fraction, btype="low", output="sos")
    return sos


_SOS: dict[float, np.ndarray] = {}


def stride_period_from_emg(emg, /, *, rate_hz: float) -> float:
    """Stride period (s, at the declared rate) from the autocorrelation of EMG envelopes.

    Per channel: mean removal, full-wave rectification, zero-phase 4th-order Butterworth
    low-pass at ``ENVELOPE_LOWPASS_HZ`` (in declared-rate Hz), unbiased autocorrelation;
    the period is the first peak (prominence >= ``ENVELOPE_PEAK_PROMINENCE``) reaching
    ``ENVELOPE_SUBHARMONIC_FRACTION`` of the highest peak between ``ENVELOPE_MIN_LAG_S``
    and half the record (so at least two cycles are needed).  Channels whose peak is below
    ``ENVELOPE_MIN_AUTOCORR`` are ignored.  The trial estimate is the median of the
    retained channels, provided at least half of all channels were retained and at least
    half of those lie within ``PERIOD_AGREEMENT_REL_TOL`` of the median.  Feed channels
    that passed signal QC: mains hum or noise can be modulated too.

    Parameters
    ----------
    emg : array_like, shape (n_channels, n) or (n,)
        Raw EMG (any unit); NaN samples are set to the mean.
    rate_hz : float, keyword-only
        Declared EMG rate in Hz.

    Returns
    -------
    float
        Period in s, or NaN when no consistent periodicity is found.

    Raises
    ------
    ValueError
        On a malformed array or a non-positive rate.
    """
    rate = as_rate_hz(rate_hz)
    arr = plates_2d(emg, "emg")
    est = [p for p, r in _envelope_periods(arr, rate) if math.isfinite(p) and r >= ENVELOPE_MIN_AUTOCORR]
    if not est or len(est) < math.ceil(arr.shape[0] / 2):
        return math.nan
    med = float(np.median(est))
    agree = np.mean(np.abs(np.asarray(est) - med) <= PERIOD_AGREEMENT_REL_TOL * med)
    return med if agree >= 0.5 else math.nan


def check_stride_period(period_s: float, /, *, source: str) -> list[Finding]:
    """Check one stride-period estimate against ``STRIDE_PERIOD_RANGE_S``.

    Parameters
    ----------
    period_s : float
        Estimated stride period in s at the declared rate (NaN = not estimable).
    source : str, keyword-only
        What it was estimated from (``'force'``, ``'emg'``, ``'events'`` ...), used in the
        sentence and details.

    Returns
    -------
    list of Finding
        ``stride_period_implausible`` (bad), ``stride_period_unavailable`` (info) or empty.
    """
    lo, hi = STRIDE_PERIOD_RANGE_S
    p = float(period_s)
    if not math.isfinite(p):
        return [make_finding("stride_period_unavailable",
                         f"No stride period could be estimated from {source}.", source=source)]
    if p < lo or p > hi:
        return [make_finding(
            "stride_period_implausible",
            f"At the declared sampling rate the stride period from {source} is {p:.3g} s, outside the "
            f"plausible {lo:g}-{hi:g} s: the declared rate is probably wrong.",
            source=source, period_s=p, range_s=[lo, hi])]
    return []


def check_sampling_rates(*, plate_force_z_n=None, analog_rate_hz: float | None = None,
                         emg=None, emg_rate_hz: float | None = None) -> list[Finding]:
    """Sampling rates against content: stride period from force and/or EMG at the declared rate.

    Parameters
    ----------
    plate_force_z_n : array_like, optional, keyword-only
        Vertical force per plate (N), shape (n_plates, n) or (n,).
    analog_rate_hz : float, optional, keyword-only
        Declared rate of ``plate_force_z_n`` in Hz (required with it).
    emg : array_like, optional, keyword-only
        EMG channels, shape (n_channels, n) or (n,) -- preferably those that passed QC.
    emg_rate_hz : float, optional, keyword-only
        Declared rate of ``emg`` in Hz (required with it).

    Returns
    -------
    list of Finding
        Per source: ``stride_period_implausible`` or ``stride_period_unavailable``; plus
        ``stride_period_disagreement`` (warn) when both are available and differ by more
        than ``PERIOD_AGREEMENT_REL_TOL``.  Each finding's details carry the estimate.

    Raises
    ------
    ValueError
        If a stream is given without its rate, or on malformed input.
    """
    out: list[Finding] = []
    periods = {}
    if plate_force_z_n is not None:
        if analog_rate_hz is None:
            raise ValueError("analog_rate_hz is required with plate_force_z_n")
        periods["force"] = stride_period_from_force(plate_force_z_n, rate_hz=analog_rate_hz)
    if emg is not None:
        if emg_rate_hz is None:
            raise ValueError("emg_rate_hz is required with emg")
        periods["emg"] = stride_period_from_emg(emg, rate_hz=emg_rate_hz)
    for src, p in periods.items():
        out.extend(check_stride_period(p, source=src))
    vals = [p for p in periods.values() if math.isfinite(p)]
    if len(vals) == 2 and abs(vals[0] - vals[1]) > PERIOD_AGREEMENT_REL_TOL * max(vals):
        out.append(make_finding(
            "stride_period_disagreement",
            f"The stride period is {periods['force']:.3g} s from the force plates but "
            f"{periods['emg']:.3g} s from the EMG: one of the two declared rates is probably wrong.",
            force_period_s=periods["force"], emg_period_s=periods["emg"]))
    return out


# --------------------------------------------------------------------------- forces
def check_force_peaks(plate_force_z_n, /, *, mass_kg: float) -> list[Finding]:
    """Peak vertical force of each plate in body weights.

    A plate is *loaded* when its peak exceeds ``LOADED_MIN_BW``; a loaded plate peaking
    above ``FORCE_PEAK_MAX_BW`` is impossible in gait (``force_peak_high``, bad), below
    ``FORCE_PEAK_MIN_BW`` suspicious (``force_peak_low``, warn: partial foot contact or a
    scaling error).  A minimum below ``-NEGATIVE_FORCE_TOL_N`` means the plate "pulls"
    (``force_negative``, warn: unzeroed offset, saturation or sign error).

    Parameters
    ----------
    plate_force_z_n : array_like, shape (n_plates, n) or (n,)
        Vertical force per plate in N, positive when loaded; NaN ignored.
    mass_kg : float, keyword-only
        Body mass in kg.

    Returns
    -------
    list of Finding
        Details carry ``plate``, ``peak_n``, ``peak_bw`` (and ``min_n``).

    Raises
    ------
    ValueError
        If ``mass_kg`` is not positive and finite, or on malformed input.
    """
    m = float(mass_kg)
    if not math.isfinite(m) or m <= 0.0:
        raise ValueError(f"mass_kg must be positive, got {mass_kg!r}")
    bw = m * GRAVITY_M_S2
    out: list[Finding] = []
    for p, fz in enumerate(plates_2d(plate_force_z_n)):
        fin = fz[np.isfinite(fz)]
        if fin.size == 0:
            continue
        peak, low = float(fin.max()), float(fin.min())
        peak_bw = peak / bw
        if peak_bw > FORCE_PEAK_MAX_BW:
            out.append(make_finding("force_peak_high",
                                f"Plate {p + 1} peaks at {peak:.0f} N = {peak_bw:.2f} body weights "
                                f"(mass {m:g} kg), above the {FORCE_PEAK_MAX_BW:g} BW possible in gait.",
                                plate=p, peak_n=peak, peak_bw=peak_bw))
        elif LOADED_MIN_BW <= peak_bw < FORCE_PEAK_MIN_BW:
            out.append(make_finding("force_peak_low",
                                f"Plate {p + 1} is loaded but peaks at only {peak:.0f} N = {peak_bw:.2f} "
                                f"body weights (mass {m:g} kg): partial foot contact or wrong scaling.",
                                plate=p, peak_n=peak, peak_bw=peak_bw))
        if low < -NEGATIVE_FORCE_TOL_N:
            out.append(make_finding("force_negative",
                                f"Plate {p + 1} reads {low:.0f} N: a force plate cannot pull "
                                f"(unzeroed offset, saturation or sign error).",
                                plate=p, min_n=low, peak_n=peak))
    return out


# --------------------------------------------------------------------------- durations
def check_durations(durations_s: Mapping[str, float], /, *, rel_tol: float = DURATION_REL_TOL,
                    abs_tol_s: float = DURATION_ABS_TOL_S) -> list[Finding]:
    """Durations of the streams of one trial must agree.

    Each stream is compared with the longest: a difference above
    ``max(rel_tol * longest, abs_tol_s)`` gives ``duration_mismatch`` (bad).

    Parameters
    ----------
    durations_s : mapping str -> float
        Stream name (``'emg'``, ``'markers'``, ``'plates'``, ``'emg_declared'`` ...) ->
        duration in s (samples / rate).  At least two finite, non-negative values are
        needed for a comparison.
    rel_tol : float, keyword-only
        Relative tolerance (fraction of the longest duration).
    abs_tol_s : float, keyword-only
        Absolute tolerance floor in s.

    Returns
    -------
    list of Finding
        One ``duration_mismatch`` per disagreeing stream; details carry both durations.

    Raises
    ------
    ValueError
        On a negative or non-finite duration or a negative tolerance.
    """
    if rel_tol < 0 or abs_tol_s < 0:
        raise ValueError("tolerances must be >= 0")
    d = {}
    for k, v in durations_s.items():
        v = float(v)
        if not math.isfinite(v) or v < 0.0:
            raise ValueError(f"duration of {k!r} must be finite and >= 0, got {v!r}")
        d[str(k)] = v
    if len(d) < 2:
        return []
    ref = max(d, key=d.get)
    tol = max(rel_tol * d[ref], abs_tol_s)
    out = []
    for k, v in d.items():
        if k != ref and d[ref] - v > tol:
            out.append(make_finding(
                "duration_mismatch",
                f"{k} lasts {v:.3f} s but {ref} lasts {d[ref]:.3f} s (tolerance {tol:.3f} s): "
                f"a stream is truncated or its rate is wrong.",
                stream=k, duration_s=v, reference=ref, reference_duration_s=d[ref], tolerance_s=tol))
    return out
