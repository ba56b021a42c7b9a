"""B-mode ultrasound and shear-wave elastography metrics (pure; no I/O).

Per-cycle / per-contraction summaries
    For each interval the samples of a time series falling inside it give
    ``min``, ``max``, ``mean`` and ``excursion = max - min`` (same unit as the
    series), plus ``n_samples``.  Non-finite samples (tracking dropouts) are
    ignored; an interval without finite samples gives nulls.
    Interval membership: with ``boundaries_s`` a 1-D increasing vector of
    events (e.g. consecutive foot strikes), cycle ``i`` holds samples with
    ``b[i] <= t < b[i+1]``; with an ``(m, 2)`` array of ``[start, end]``
    pairs (contractions), samples with ``start <= t <= end``.

Pennation angle
    Trackers such as UltraTrack store pennation in radians; it is reported
    in degrees (``deg = rad * 180 / pi``).

Shear-wave elastography
    Shear modulus ``mu = rho * c^2`` (Pa) for shear-wave speed ``c`` (m/s)
    and tissue density ``rho = 1000 kg/m^3`` (``TISSUE_DENSITY_KG_PER_M3``),
    returned in kPa; e.g. ``c = 3 m/s -> 9 kPa``.  This assumes a locally
    homogeneous, elastic medium with the wave propagating along the fibres.

Clock alignment
    Fascicle samples are placed on the EMG clock by linear interpolation
    between the ultrasound frame-trigger times (one trigger per frame).
    EMG samples before the first or after the last trigger get NaN (no
    extrapolation), as do samples whose bracketing frames include a NaN.

References
----------
Farris DJ, Lichtwark GA (2016). UltraTrack: software for semi-automated
tracking of muscle fascicles in sequences of B-mode ultrasound images.
Comput Methods Programs Biomed 128:111-118.
Bercoff J, Tanter M, Fink M (2004). Supersonic shear imaging: a new technique
for soft tissue elasticity mapping. IEEE Trans Ultrason Ferroelectr Freq
Control 51(4):396-409.
Eby SF et al. (2013). Validation of shear wave elastography in skeletal
muscle. J Biomech 46(14):2381-2387.
"""

from __future__ import annotations

import numpy as np
import polars as pl

#: Soft-tissue density (kg/m^3) used for the shear modulus.
TISSUE_DENSITY_KG_PER_M3 = 1000.0
#: Pa -> kPa.
_PA_PER_KPA = 1000.0

#: Output columns of :func:`interval_summary`.
SUMMARY_COLUMNS: tuple[str, ...] = ("interval", "start_s", "end_s", "n_samples", "min", "max", "mean", "excursion")


def pennation_rad_to_deg(pennation_rad, /) -> np.ndarray:
    """Convert pennation angles from radians to degrees.

    Parameters
    ----------
    pennation_rad : array_like
        Angles in radians (NaN passes through).

    Returns
    -------
    numpy.ndarray
        Angles in degrees.

    Raises
    ------
    ValueError
        If the input is not numeric.
    """
    try:
        a = np.asarray(pennation_rad, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError("pennation_rad must be numeric") from exc
    return np.degrees(a)


def shear_modulus_kpa(shear_wave_speed_m_per_s, /, *, density_kg_per_m3: float = TISSUE_DENSITY_KG_PER_M3) -> np.ndarray:
    """Shear modulus from shear-wave speed, ``mu = rho c^2``.

    Parameters
    ----------
    shear_wave_speed_m_per_s : array_like
        Shear-wave speed(s), m/s, non-negative (NaN passes through).
    density_kg_per_m3 : float, keyword-only
        Tissue density, kg/m^3 (default 1000).

    Returns
    -------
    numpy.ndarray
        Shear modulus in kPa (a 0-d array for scalar input).

    Raises
    ------
    ValueError
        On a negative or infinite speed, or a non-positive density.
    """
    c = np.asarray(shear_wave_speed_m_per_s, dtype=float)
    if not (np.isfinite(density_kg_per_m3) and density_kg_per_m3 > 0):
        raise ValueError(f"density_kg_per_m3 must be positive, got {density_kg_per_m3!r}")
    if np.any(np.isinf(c)) or np.any(c[~np.isnan(c)] < 0):
        raise ValueError("shear_wave_speed_m_per_s must be finite and non-negative")
    return density_kg_per_m3 * c**2 / _PA_PER_KPA


def _intervals(boundaries_s) -> tuple[np.ndarray, bool]:
    b = np.asarray(boundaries_s, dtype=float)
    if not np.all(np.isfinite(b)):
        raise ValueError("boundaries_s contains non-finite times")
    if b.ndim == 1:
        if b.size < 2:
            raise ValueError("a 1-D boundaries_s needs at least 2 events (one cycle)")
        if np.any(np.diff(b) <= 0):
            raise ValueError("a 1-D boundaries_s must be strictly increasing")
        return np.column_stack([b[:-1], b[1:]]), False
    if b.ndim == 2 and b.shape[1] == 2:
        if np.any(b[:, 1] < b[:, 0]):
            raise ValueError("boundaries_s has an interval ending before it starts")
        return b, True
    raise ValueError(f"boundaries_s must be 1-D (events) or (m, 2) (start, end), got shape {b.shape}")


def interval_summary(values, time_s, /, *, boundaries_s) -> pl.DataFrame:
    """Min, max, mean and excursion of a time series per cycle or contraction.

    Parameters
    ----------
    values : array_like, shape (n,)
        Samples (e.g. fascicle length in mm); NaN marks a dropout.
    time_s : array_like, shape (n,)
        Sample times, s, strictly increasing.
    boundaries_s : array_like, keyword-only
        1-D increasing events (cycles ``[b_i, b_{i+1})``) or ``(m, 2)``
        ``[start, end]`` pairs (contractions, closed intervals), s.

    Returns
    -------
    polars.DataFrame
        Columns ``interval, start_s, end_s, n_samples, min, max, mean,
        excursion``; statistics null where an interval has no finite sample.
        ``n_samples`` counts finite samples.

    Raises
    ------
    ValueError
        On shape mismatch, non-increasing or non-finite times, or malformed
        boundaries.
    """
    v = np.asarray(values, dtype=float)
    t = np.asarray(time_s, dtype=float)
    if v.ndim != 1 or t.ndim != 1 or v.shape != t.shape:
        raise ValueError(f"values and time_s must be 1-D and equal length, got {v.shape} and {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError("time_s must be finite and strictly increasing")
    if np.any(np.isinf(v)):
        raise ValueError("values contains infinite samples")
    iv, closed = _intervals(boundaries_s)
    rows = []
    for i, (a, b) in enumerate(iv):
        mask = (t >= a) & ((t <= b) if closed else (t < b))
        seg = v[mask]
        seg = seg[np.isfinite(seg)]
        if seg.size:
            lo, hi, mean = float(seg.min()), float(seg.max()), float(seg.mean())
            rows.append((i, float(a), float(b), int(seg.size), lo, hi, mean, hi - lo))
        else:
            rows.append((i, float(a), float(b), 0, None, None, None, None))
    schema = {
        "interval": pl.Int64,
        "start_s": pl.Float64,
        "end_s": pl.Float64,
        "n_samples": pl.Int64,
        "min": pl.Float64,
        "max": pl.Float64,
        "mean": pl.Float64,
        "excursion": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def ultrasound_interval_metrics(
    time_s,
    /,
    *,
    boundaries_s,
    fascicle_length_mm=None,
    pennation_angle_rad=None,
    pennation_angle_deg=None,
    muscle_thickness_mm=None,
) -> pl.DataFrame:
    """Per-cycle/contraction fascicle length, pennation angle and thickness metrics.

    Parameters
    ----------
    time_s : array_like, shape (n,)
        Ultrasound frame times, s, strictly increasing.
    boundaries_s : array_like, keyword-only
        As :func:`interval_summary`.
    fascicle_length_mm : array_like, shape (n,), optional, keyword-only
        Fascicle length, mm.
    pennation_angle_rad, pennation_angle_deg : array_like, optional, keyword-only
        Pennation angle in radians or degrees (give at most one); reported in
        degrees.
    muscle_thickness_mm : array_like, shape (n,), optional, keyword-only
        Muscle thickness, mm.

    Returns
    -------
    polars.DataFrame
        Long frame: ``variable`` (``fascicle_length_mm``,
        ``pennation_angle_deg``, ``muscle_thickness_mm``) followed by the
        columns of :func:`interval_summary` (statistics in the variable's
        unit).

    Raises
    ------
    ValueError
        If no series is given, both pennation units are given, or as
        :func:`interval_summary`.
    """
    if pennation_angle_rad is not None and pennation_angle_deg is not None:
        raise ValueError("give pennation_angle_rad or pennation_angle_deg, not both")
    series = {}
    if fascicle_length_mm is not None:
        series["fascicle_length_mm"] = fascicle_length_mm
    if pennation_angle_rad is not None:
        series["pennation_angle_deg"] = pennation_rad_to_deg(pennation_angle_rad)
    if pennation_angle_deg is not None:
        series["pennation_angle_deg"] = pennation_angle_deg
    if muscle_thickness_mm is not None:
        series["muscle_thickness_mm"] = muscle_thickness_mm
    if not series:
        raise ValueError("give at least one of fascicle_length_mm, pennation_angle_*, muscle_thickness_mm")
    frames = [
        interval_summary(vals, time_s, boundaries_s=boundaries_s).select(
            pl.lit(name).alias("variable"), pl.all()
        )
        for name, vals in series.items()
    ]
    return pl.concat(frames)


def align_to_emg_clock(values, /, *, frame_times_s, emg_times_s) -> np.ndarray:
    """Interpolate per-frame ultrasound values at EMG sample times.

    Parameters
    ----------
    values : array_like, shape (n_frames,)
        One value per ultrasound frame (e.g. fascicle length, mm); NaN for a
        frame without tracking.
    frame_times_s : array_like, shape (n_frames,), keyword-only
        Frame-trigger times on the EMG clock, s, strictly increasing.
    emg_times_s : array_like, shape (n_emg,), keyword-only
        EMG sample times, s (any order).

    Returns
    -------
    numpy.ndarray, shape (n_emg,)
        Linearly interpolated values; NaN outside
        ``[frame_times_s[0], frame_times_s[-1]]`` and where a bracketing
        frame is NaN.  A time equal to a trigger time gets that frame's
        value exactly.

    Raises
    ------
    ValueError
        On length mismatch, fewer than 2 frames, non-finite or
        non-increasing trigger times, or non-finite EMG times.
    """
    v = np.asarray(values, dtype=float)
    ft = np.asarray(frame_times_s, dtype=float)
    et = np.asarray(emg_times_s, dtype=float)
    if v.ndim != 1 or ft.ndim != 1 or v.shape != ft.shape:
        raise ValueError(f"values and frame_times_s must be 1-D and equal length, got {v.shape} and {ft.shape}")
    if ft.size < 2:
        raise ValueError("need at least 2 ultrasound frames")
    if not np.all(np.isfinite(ft)) or np.any(np.diff(ft) <= 0):
        raise ValueError("frame_times_s must be finite and strictly increasing")
    if et.ndim != 1 or not np.all(np.isfinite(et)):
        raise ValueError("emg_times_s must be 1-D and finite")
    out = np.full(et.shape, np.nan)
    inside = (et >= ft[0]) & (et <= ft[-1])
    x = et[inside]
    j = np.clip(np.searchsorted(ft, x, side="right") - 1, 0, ft.size - 2)
    w = (x - ft[j]) / (ft[j + 1] - ft[j])
    left, right = v[j], v[j + 1]
    res = np.where(w == 0.0, left, np.where(w == 1.0, right, (1.0 - w) * left + w * right))
    out[inside] = res
    return out
