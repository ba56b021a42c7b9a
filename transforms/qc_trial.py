"""Signal QC of a whole trial: one row per EMG channel, and the trial-level inputs of the checks.

:func:`channel_qc_table` applies :func:`transforms.qc.channel_qc` to every channel of a trial;
:func:`adc_rails` turns a C3D channel's ADC parameters into the rails the clipping check uses;
:func:`looks_time_normalised` recognises a cycle-normalised curve stored as a recording.
Thresholds live in :mod:`transforms.qc` (pure; no I/O).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from transforms.qc import (
    AMPLITUDE_BASES,
    CYCLE_NORMALISED_FRAME_COUNTS,
    MAX_NORMALISED_SPAN_S,
    MAX_SKIN_EMG_MV,
    as_rate_hz,
    channel_qc,
    unit_to_mv_factor,
)

__all__ = ["adc_rails", "amplitude_basis", "looks_time_normalised", "channel_qc_table"]

#: Percentile of |x - median| taken as a channel's robust peak when deciding whether its values can be
#: potentials at the electrode (a few artefact samples must not decide it).
ROBUST_PEAK_PERCENTILE = 99.9


def amplitude_basis(x, /, *, unit: str | None, gain: float | None = None, declared: str | None = None) -> str:
    """What a channel's values are: ``'electrode_mv'`` or ``'amplifier_output'`` (``'unknown'`` unit).

    ``electrode_mv`` when the amplifier ``gain`` is known (divide by it), when the site declares it
    (``declared``), when the unit is mV or uV (EMG systems exporting in mV/uV divide by their gain), or
    when values in V are plausibly potentials at the electrode: their robust peak (the
    ``ROBUST_PEAK_PERCENTILE`` percentile of ``|x - median|``) is at most ``MAX_SKIN_EMG_MV``.  Else
    ``amplifier_output`` (e.g. Vicon Nexus / Motion Analysis ADC volts after a x500-x1000 gain).

    Parameters
    ----------
    x : array_like
        The channel as stored, in ``unit`` (NaN allowed).
    unit : str or None, keyword-only
        V, mV, uV ...
    gain : float or None, keyword-only
        Amplifier gain from the electrode to the stored value, when known.
    declared : {'electrode_mv', 'amplifier_output'} or None, keyword-only
        The site's statement (manifest ``amplitude_basis``); wins over the values.

    Returns
    -------
    str
        ``'electrode_mv'``, ``'amplifier_output'`` or ``'unknown'``.

    Raises
    ------
    ValueError
        On a non-positive gain or an unknown ``declared`` value.
    """
    if declared is not None and declared not in AMPLITUDE_BASES:
        raise ValueError(f"declared must be one of {AMPLITUDE_BASES}, got {declared!r}")
    if gain is not None and not (math.isfinite(float(gain)) and float(gain) > 0):
        raise ValueError(f"gain must be positive, got {gain!r}")
    factor = unit_to_mv_factor(unit)
    if not math.isfinite(factor):
        return "unknown"
    if gain is not None:
        return "electrode_mv"
    if declared is not None:
        return declared
    if factor < 1e3:
        return "electrode_mv"
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return "amplifier_output"
    robust_peak_mv = float(np.percentile(np.abs(v - np.median(v)), ROBUST_PEAK_PERCENTILE)) * factor
    return "electrode_mv" if robust_peak_mv <= MAX_SKIN_EMG_MV else "amplifier_output"


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
    rate = as_rate_hz(rate_hz)
    if n not in CYCLE_NORMALISED_FRAME_COUNTS:
        return False
    span = (n - 1) / rate if duration_s is None else float(duration_s)
    if not math.isfinite(span):
        return False
    round_span = any(abs(span - s) <= 1e-6 * s for s in (1.0, 10.0, 100.0))
    return span <= MAX_NORMALISED_SPAN_S or round_span


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
    amplitude_basis: str | Sequence[str | None] | None = None,
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
    amplitude_basis : str, sequence or None, keyword-only
        ``'electrode_mv'`` / ``'amplifier_output'`` for all channels or per channel (see
        :func:`channel_qc`); None = from the unit and gain.
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
    basis_l = _per_channel(amplitude_basis, n_ch, "amplitude_basis")
    if isinstance(adc_range, Mapping):
        rng_l = [adc_range.get(lab) for lab in labels]
    else:
        rng_l = _per_channel(adc_range, n_ch, "adc_range")
    frames = arr.shape[1] if n_frames is None else int(n_frames)
    normalised = looks_time_normalised(frames, rate_hz=rate_hz)
    rows = []
    for i in range(n_ch):
        r = channel_qc(arr[i], rate_hz=rate_hz, mains_hz=mains_hz, unit=unit_l[i],
                       adc_range=rng_l[i], gain=gain_l[i], time_normalised=normalised,
                       amplitude_basis=basis_l[i])
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
