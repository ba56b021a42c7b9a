"""Gait events from force plates and from marker kinematics.

Pure functions on numpy arrays.  Times are returned in seconds relative to the first
sample of the array given (``index / rate_hz``); callers add the trial's start time.
Vertical force must be positive when loaded (N); positions are in mm.

* :func:`plate_contacts` -- overground plates: absolute threshold with hysteresis, gap
  merging and a minimum contact duration.
* :func:`treadmill_contacts` -- instrumented (split-belt) treadmills, where the swing
  leg's belt rarely returns to zero (belt cross-talk, a trailing toe): the threshold is
  applied ``threshold_n`` above each swing valley's minimum.
* :func:`assign_sides` / :func:`sides_from_mapping` -- which foot made each contact.
* :func:`zeni_events` -- Zeni et al. (2008) kinematic events.
* :func:`takeoff_landing` -- initial contact / take-off for non-gait tasks (jumps, hops).

A contact is a pair ``(strike_s[k], off_s[k])``; a contact already under way at the first
sample has ``strike_s = nan`` and one still under way at the last sample ``off_s = nan``
(censored events).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

__all__ = [
    "FORCE_THRESHOLD_N",
    "FORCE_HYSTERESIS_N",
    "MIN_CONTACT_MS",
    "MIN_GAP_MS",
    "SWING_LEVEL_FRACTION",
    "SIDE_MAX_DISTANCE_MM",
    "ZENI_MIN_INTERVAL_MS",
    "ZENI_MIN_PROMINENCE_MM",
    "ZENI_MIN_TRAVEL_MM",
    "plate_contacts",
    "treadmill_contacts",
    "takeoff_landing",
    "assign_sides",
    "sides_from_mapping",
    "zeni_events",
]

#: Vertical-force contact threshold, N.
FORCE_THRESHOLD_N = 20.0
#: A contact ends when the force falls below ``threshold - hysteresis``, N.
FORCE_HYSTERESIS_N = 5.0
#: Loaded stretches shorter than this are spikes, not contacts, ms.
MIN_CONTACT_MS = 100.0
#: Unloaded gaps shorter than this inside a contact are merged, ms.
MIN_GAP_MS = 20.0
#: Treadmill: samples below this fraction of the 95th force percentile are swing
#: candidates (the valley between two stances of one belt).
SWING_LEVEL_FRACTION = 0.2
#: Side assignment: the heel must be within this horizontal distance of the CoP, mm.
SIDE_MAX_DISTANCE_MM = 300.0
#: Zeni: minimum time between two events of the same kind, ms.
ZENI_MIN_INTERVAL_MS = 400.0
#: Zeni: minimum prominence of a heel/toe-minus-pelvis extremum, mm.
ZENI_MIN_PROMINENCE_MM = 50.0
#: Zeni: the pelvis must travel this far to infer the walking direction, mm.
ZENI_MIN_TRAVEL_MM = 200.0


# --------------------------------------------------------------------------- helpers
def _rate(rate_hz: float, name: str = "rate_hz") -> float:
    r = float(rate_hz)
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"{name} must be positive, got {rate_hz!r}")
    return r


def _force(fz_n) -> np.ndarray:
    f = np.asarray(fz_n, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"fz_n must be a non-empty 1-D array, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("fz_n contains NaN or infinite values")
    return f


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and (exclusive) stop indices of the True runs of a boolean array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _hysteresis_mask(f: np.ndarray, on: float, off: float) -> np.ndarray:
    """True from a sample >= on until the next sample < off (False before any)."""
    state = np.full(f.size, -1, dtype=np.int8)
    state[f >= on] = 1
    state[f < off] = 0
    idx = np.where(state >= 0, np.arange(f.size), -1)
    idx = np.maximum.accumulate(idx)
    filled = np.where(idx >= 0, state[np.maximum(idx, 0)], 0)
    return filled == 1


def _to_times(starts, stops, n, rate):
    strike = starts / rate
    off = stops / rate
    strike = np.where(starts == 0, np.nan, strike)
    off = np.where(stops >= n, np.nan, off)
    return strike.astype(np.float64), off.astype(np.float64)


# --------------------------------------------------------------------------- force plates
def plate_contacts(
    fz_n,
    /,
    *,
    rate_hz: float,
    threshold_n: float = FORCE_THRESHOLD_N,
    hysteresis_n: float = FORCE_HYSTERESIS_N,
    min_contact_ms: float = MIN_CONTACT_MS,
    min_gap_ms: float = MIN_GAP_MS,
    offset_n: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Foot strike / foot off times from an overground plate's vertical force.

    A contact starts at the first sample with ``fz - offset_n >= threshold_n`` and ends
    at the first sample below ``threshold_n - hysteresis_n``; gaps shorter than
    ``min_gap_ms`` are merged and contacts shorter than ``min_contact_ms`` dropped.

    Parameters
    ----------
    fz_n : array_like
        1-D vertical force, N, positive when loaded.
    rate_hz : float
        Force sampling rate, Hz.
    threshold_n, hysteresis_n : float
        Contact threshold and hysteresis, N.
    min_contact_ms, min_gap_ms : float
        Minimum contact duration and minimum unloaded gap, ms.
    offset_n : float
        Unloaded reading subtracted first (e.g. a plate that reads -33 N empty).

    Returns
    -------
    tuple of numpy.ndarray
        ``(strike_s, off_s)``, float64 seconds from the first sample; NaN = censored.

    Raises
    ------
    ValueError
        On bad input or ``hysteresis_n`` outside [0, threshold_n).
    """
    f = _force(fz_n) - float(offset_n)
    rate = _rate(rate_hz)
    if not (0.0 <= hysteresis_n < threshold_n):
        raise ValueError(f"need 0 <= hysteresis_n < threshold_n, got {hysteresis_n}, {threshold_n}")
    starts, stops = _runs(_hysteresis_mask(f, threshold_n, threshold_n - hysteresis_n))
    starts, stops = _merge_and_filter(starts, stops, f.size, rate, min_gap_ms, min_contact_ms)
    return _to_times(starts, stops, f.size, rate)


def _merge_and_filter(starts, stops, n, rate, min_gap_ms, min_contact_ms):
    if min_gap_ms < 0 or min_contact_ms < 0:
        raise ValueError("min_gap_ms and min_contact_ms must be >= 0")
    if starts.size:
        gap = starts[1:] - stops[:-1]
        keep = np.concatenate([[True], gap >= min_gap_ms * 1e-3 * rate])
        starts = starts[keep]
        stops = stops[np.concatenate([keep[1:], [True]])]
    long_enough = (stops - starts) >= min_contact_ms * 1e-3 * rate
    # a contact cut by the record edges is kept even if short (its duration is unknown)
    edge = (starts == 0) | (stops >= n)
    keep = long_enough | edge
    return starts[keep], stops[keep]


def treadmill_contacts(
    fz_n,
    /,
    *,
    rate_hz: float,
    threshold_n: float = FORCE_THRESHOLD_N,
    min_contact_ms: float = MIN_CONTACT_MS,
    swing_level_fraction: float = SWING_LEVEL_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Foot strike / foot off from one treadmill belt's vertical force.

    Swing candidates are stretches below ``swing_level_fraction`` x the 95th force
    percentile.  In each, the valley minimum ``v`` is found; the foot off is where the
    force last fell below ``v + threshold_n`` before the valley and the strike where it
    first rises to ``v + threshold_n`` after it.  This tolerates belts that never
    unload completely (cross-talk from the other belt keeps some swings at 30-40 N).

    Parameters
    ----------
    fz_n : array_like
        1-D vertical force of one belt, N, positive when loaded.
    rate_hz : float
        Sampling rate, Hz.
    threshold_n : float
        Height above the valley minimum that defines contact, N.
    min_contact_ms : float
        Stance phases shorter than this are merged into the neighbouring swing, ms.
    swing_level_fraction : float
        Swing-candidate level as a fraction of the 95th force percentile.

    Returns
    -------
    tuple of numpy.ndarray
        ``(strike_s, off_s)``, float64 seconds from the first sample; NaN = censored.

    Raises
    ------
    ValueError
        On bad input, a belt that never loads, or a fraction outside (0, 1).
    """
    f = _force(fz_n)
    rate = _rate(rate_hz)
    if not (0.0 < swing_level_fraction < 1.0):
        raise ValueError(f"swing_level_fraction must be in (0, 1), got {swing_level_fraction!r}")
    peak = float(np.percentile(f, 95))
    if peak <= threshold_n:
        raise ValueError(f"belt never loads above {threshold_n} N (95th percentile {peak:.1f} N)")
    v_starts, v_stops = _runs(f < swing_level_fraction * peak)
    n = f.size
    offs, strikes = [], []
    for a, b in zip(v_starts, v_stops):
        k = a + int(np.argmin(f[a:b]))
        level = f[k] + threshold_n
        i = k
        while i > 0 and f[i - 1] < level:
            i -= 1
        j = k
        while j < n and f[j] < level:
            j += 1
        offs.append(i)  # first unloaded sample (0 = censored at the start)
        strikes.append(j)  # first loaded sample (n = censored at the end)
    # contacts run from a valley's strike to the next valley's foot off
    starts = [0] if (not offs or offs[0] > 0) else []
    stops = []
    for i, j in zip(offs, strikes):
        if i > 0:
            stops.append(i)
        if j < n:
            starts.append(j)
    if len(stops) < len(starts):
        stops.append(n)
    st = np.asarray(starts[: len(stops)], dtype=np.int64)
    sp = np.asarray(stops[: len(st)], dtype=np.int64)
    long_enough = (sp - st) >= min_contact_ms * 1e-3 * rate
    keep = long_enough | (st == 0) | (sp >= n)
    st, sp = st[keep], sp[keep]
    valid = sp > st
    return _to_times(st[valid], sp[valid], n, rate)


def takeoff_landing(
    fz_n,
    /,
    *,
    rate_hz: float,
    threshold_n: float = FORCE_THRESHOLD_N,
    hysteresis_n: float = FORCE_HYSTERESIS_N,
    min_flight_ms: float = MIN_GAP_MS,
    offset_n: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Initial-contact and take-off times for non-gait tasks (jumps, hops, landings).

    Same thresholding as :func:`plate_contacts` (``min_flight_ms`` is the shortest
    flight kept), but every loaded stretch counts, however short.

    Returns
    -------
    tuple of numpy.ndarray
        ``(initial_contact_s, take_off_s)``: all load onsets and all unloadings, s from
        the first sample (a record starting loaded has no initial contact for that
        stance; one ending loaded has no final take-off).

    Raises
    ------
    ValueError
        As :func:`plate_contacts`.
    """
    strike, off = plate_contacts(
        fz_n,
        rate_hz=rate_hz,
        threshold_n=threshold_n,
        hysteresis_n=hysteresis_n,
        min_contact_ms=0.0,
        min_gap_ms=min_flight_ms,
        offset_n=offset_n,
    )
    return strike[np.isfinite(strike)], off[np.isfinite(off)]


# --------------------------------------------------------------------------- sides
def _xy(arr, name: str) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] not in (2, 3) or a.shape[1] == 0:
        raise ValueError(f"{name} must be (2 or 3) x samples, got shape {a.shape}")
    return a[:2]


def assign_sides(
    strike_s,
    off_s,
    cop_mm,
    /,
    *,
    force_rate_hz: float,
    heel_left_mm,
    heel_right_mm,
    marker_rate_hz: float,
    max_distance_mm: float = SIDE_MAX_DISTANCE_MM,
) -> np.ndarray:
    """Side ('L', 'R' or '' if undecided) of each plate contact from CoP and heel markers.

    For each contact the centre of pressure is averaged over 10-30 % of the contact (heel
    loaded, before heel rise) and compared, in the horizontal plane (first two
    coordinates, i.e. z-up lab frames), with both heel markers averaged over the same
    interval.  The nearer heel wins if it is within ``max_distance_mm``.

    Parameters
    ----------
    strike_s, off_s : array_like
        Contact times, s from the first force sample (NaN strike/off are allowed).
    cop_mm : array_like
        Centre of pressure, (2 or 3) x force samples, mm (NaN while unloaded is fine).
    force_rate_hz, marker_rate_hz : float
        Sampling rates, Hz; both series start at the same instant.
    heel_left_mm, heel_right_mm : array_like
        Heel marker trajectories, (2 or 3) x marker samples, mm (NaN = gap).
    max_distance_mm : float
        Largest accepted CoP-heel distance, mm.

    Returns
    -------
    numpy.ndarray
        Array of str ('L', 'R', ''), one per contact.

    Raises
    ------
    ValueError
        On mismatched or malformed inputs.
    """
    strike = np.atleast_1d(np.asarray(strike_s, dtype=np.float64))
    off = np.atleast_1d(np.asarray(off_s, dtype=np.float64))
    if strike.shape != off.shape or strike.ndim != 1:
        raise ValueError("strike_s and off_s must be 1-D arrays of equal length")
    cop = _xy(cop_mm, "cop_mm")
    heels = {"L": _xy(heel_left_mm, "heel_left_mm"), "R": _xy(heel_right_mm, "heel_right_mm")}
    fr = _rate(force_rate_hz, "force_rate_hz")
    mr = _rate(marker_rate_hz, "marker_rate_hz")
    t_end_force = cop.shape[1] / fr
    sides = np.full(strike.size, "", dtype="<U1")
    for k, (a, b) in enumerate(zip(strike, off)):
        a = 0.0 if not np.isfinite(a) else a
        b = t_end_force if not np.isfinite(b) else b
        if b <= a:
            continue
        t0, t1 = a + 0.1 * (b - a), a + 0.3 * (b - a)
        seg = cop[:, int(t0 * fr) : max(int(t1 * fr), int(t0 * fr) + 1)]
        if seg.size == 0 or not np.isfinite(seg).any():
            continue
        c = np.nanmean(seg, axis=1)
        best, best_d = "", np.inf
        for side, h in heels.items():
            hs = h[:, int(t0 * mr) : max(int(t1 * mr), int(t0 * mr) + 1)]
            if hs.size == 0 or not np.isfinite(hs).all(axis=0).any():
                continue
            d = float(np.hypot(*(np.nanmean(hs, axis=1) - c)))
            if d < best_d:
                best, best_d = side, d
        if best_d <= max_distance_mm:
            sides[k] = best
    return sides


def sides_from_mapping(plate_ids, /, *, mapping: dict) -> np.ndarray:
    """Sides from an explicit plate-to-side mapping (e.g. treadmill ``{1: 'L', 2: 'R'}``).

    Raises
    ------
    ValueError
        If a plate is missing from the mapping or a side is not 'L'/'R'.
    """
    bad = {v for v in mapping.values() if v not in ("L", "R")}
    if bad:
        raise ValueError(f"mapping sides must be 'L' or 'R', got {sorted(bad)}")
    ids = np.atleast_1d(np.asarray(plate_ids))
    missing = sorted({i.item() if hasattr(i, "item") else i for i in ids} - set(mapping))
    if missing:
        raise ValueError(f"plates {missing} are not in the mapping {mapping}")
    return np.asarray([mapping[i.item() if hasattr(i, "item") else i] for i in ids], dtype="<U1")


# --------------------------------------------------------------------------- kinematics
def _interp_gaps(x: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 3:
        raise ValueError(f"{name} must be 1-D with at least 3 samples, got shape {x.shape}")
    ok = np.isfinite(x)
    if ok.sum() < 3:
        raise ValueError(f"{name} has fewer than 3 valid samples")
    if ok.all():
        return x, ok
    idx = np.arange(x.size)
    return np.interp(idx, idx[ok], x[ok]), ok


def zeni_events(
    heel_ap_mm,
    toe_ap_mm,
    pelvis_ap_mm,
    /,
    *,
    rate_hz: float,
    progression_sign: int | None = None,
    min_interval_ms: float = ZENI_MIN_INTERVAL_MS,
    min_prominence_mm: float = ZENI_MIN_PROMINENCE_MM,
) -> tuple[np.ndarray, np.ndarray]:
    """Kinematic foot strike / foot off after Zeni et al. (2008), one side.

    Foot strike = maxima of ``sign * (heel - pelvis)``, foot off = minima of
    ``sign * (toe - pelvis)``, where positions are along the anterior-posterior axis and
    ``sign`` is +1 if walking towards +AP.  The pelvis may be the sacrum marker or the
    mean of the posterior (or all) pelvis markers.

    Parameters
    ----------
    heel_ap_mm, toe_ap_mm, pelvis_ap_mm : array_like
        1-D AP positions, mm, same length (NaN gaps are linearly interpolated; events
        inside a gap are dropped).
    rate_hz : float
        Marker sampling rate, Hz.
    progression_sign : {+1, -1} or None
        Walking direction along AP; None infers it from the pelvis travel (overground
        only: on a treadmill pass it explicitly).
    min_interval_ms, min_prominence_mm : float
        Peak-picking constraints (distance between same-kind events, prominence).

    Returns
    -------
    tuple of numpy.ndarray
        ``(strike_s, off_s)`` float64 seconds from the first sample.

    Raises
    ------
    ValueError
        On bad input, or if the direction cannot be inferred.
    """
    rate = _rate(rate_hz)
    heel, ok_h = _interp_gaps(heel_ap_mm, "heel_ap_mm")
    toe, ok_t = _interp_gaps(toe_ap_mm, "toe_ap_mm")
    pelvis, ok_p = _interp_gaps(pelvis_ap_mm, "pelvis_ap_mm")
    if not (heel.size == toe.size == pelvis.size):
        raise ValueError("heel, toe and pelvis arrays must have the same length")
    if progression_sign is None:
        travel = pelvis[-1] - pelvis[0]
        if abs(travel) < ZENI_MIN_TRAVEL_MM:
            raise ValueError(
                f"pelvis travels only {travel:.0f} mm; pass progression_sign=+1 or -1 (treadmill?)"
            )
        sign = 1.0 if travel > 0 else -1.0
    elif progression_sign in (1, -1):
        sign = float(progression_sign)
    else:
        raise ValueError(f"progression_sign must be +1, -1 or None, got {progression_sign!r}")
    dist = max(1, int(round(min_interval_ms * 1e-3 * rate)))
    fs_idx, _ = signal.find_peaks(sign * (heel - pelvis), distance=dist, prominence=min_prominence_mm)
    fo_idx, _ = signal.find_peaks(-sign * (toe - pelvis), distance=dist, prominence=min_prominence_mm)
    fs_idx = fs_idx[ok_h[fs_idx] & ok_p[fs_idx]]
    fo_idx = fo_idx[ok_t[fo_idx] & ok_p[fo_idx]]
    return fs_idx / rate, fo_idx / rate
