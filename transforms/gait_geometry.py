"""Walking direction and plate-contact sides from geometry, for trials without usable annotations.

Pure functions on numpy arrays in the lab frame (Z up, mm, s); no I/O.

* :func:`progression_from_heels` -- the anterior-posterior axis and walking direction from heel
  (or toe) trajectories relative to the pelvis, on a treadmill as overground: during stance, the
  larger part of a stride, the foot moves backwards relative to the pelvis, so the median velocity
  of heel-minus-pelvis along the progression is negative.  Used to give
  :func:`transforms.gait.zeni_events` its direction where the pelvis does not travel.
* :func:`contact_sides_from_geometry` -- the side of each plate contact from where its centre of
  pressure lies relative to the walking line, when neither annotations nor heel markers decide it:
  overground, the walking line runs from the first to the last contact, midway between the
  outermost centres of pressure, and a contact on its left (of the direction of travel) is a left
  foot; on a treadmill, each belt carries one foot and the
  belt on the left of the direction of walking carries the left foot (the direction is opposite to
  the centre of pressure's travel during stance, since the belt carries the foot backwards).
"""

from __future__ import annotations

import numpy as np

__all__ = ["GEOMETRY_MIN_OFFSET_MM", "PROGRESSION_MIN_TRAVEL_MM", "progression_from_heels",
           "contact_sides_from_geometry"]

#: A contact's centre of pressure must lie at least this far (mm) to one side of the walking line.
GEOMETRY_MIN_OFFSET_MM = 30.0
#: Overground: the contacts' centres of pressure must span at least this distance (mm) along the
#: walkway to define the walking line; treadmill: the stance must move the CoP this far (mm) on average.
PROGRESSION_MIN_TRAVEL_MM = 100.0


def progression_from_heels(heel_minus_pelvis_mm, /) -> tuple[int, int]:
    """``(axis, sign)`` of the walking direction from heel-minus-pelvis trajectories.

    Parameters
    ----------
    heel_minus_pelvis_mm : array_like, shape (k, 2 or 3, n)
        Horizontal positions (lab X, Y first) of ``k`` heel (or toe) markers minus the pelvis,
        mm, over ``n`` frames (NaN = gap).

    Returns
    -------
    tuple
        ``(0 or 1, +1 or -1)``: the horizontal axis along which the feet move most relative to
        the pelvis, and +1 when walking towards its positive end.

    Raises
    ------
    ValueError
        If the array is malformed or has no two consecutive valid frames.
    """
    d = np.asarray(heel_minus_pelvis_mm, dtype=np.float64)
    if d.ndim == 2:
        d = d[None]
    if d.ndim != 3 or d.shape[1] < 2 or d.shape[2] < 3:
        raise ValueError(f"heel_minus_pelvis_mm must be (k, 2 or 3, n) with n >= 3, got shape {d.shape}")
    d = d[:, :2]
    span = np.nanmax(d, axis=2) - np.nanmin(d, axis=2)  # k x 2
    if not np.isfinite(span).any():
        raise ValueError("no valid heel frames")
    axis = int(np.nanargmax(np.nansum(span, axis=0)))
    v = np.diff(d[:, axis], axis=1).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no two consecutive valid heel frames")
    return axis, (-1 if np.median(v) > 0 else 1)


def contact_sides_from_geometry(cop_xy_mm, plate_ids, /, *, stance_travel_xy_mm=None,
                                treadmill: bool = False,
                                min_offset_mm: float = GEOMETRY_MIN_OFFSET_MM) -> np.ndarray:
    """Side ('L', 'R' or '' when undecided) of plate contacts from their centres of pressure.

    Parameters
    ----------
    cop_xy_mm : array_like, shape (k, 2)
        Mean centre of pressure of each contact in the lab's horizontal plane (X, Y), mm,
        in time order.
    plate_ids : array_like, shape (k,)
        Plate (belt) of each contact.
    stance_travel_xy_mm : array_like, shape (k, 2), optional
        CoP displacement from early to late stance of each contact, mm (required on a
        treadmill, where it gives the walking direction).
    treadmill : bool
        The plates are treadmill belts (one foot per belt).
    min_offset_mm : float
        Smallest lateral distance from the walking line (overground) or between belt centres
        (treadmill, half of it per belt) that decides a side.

    Returns
    -------
    numpy.ndarray
        One of ``'L'``, ``'R'``, ``''`` per contact.

    Raises
    ------
    ValueError
        On mismatched shapes, or a treadmill without ``stance_travel_xy_mm``.
    """
    cop = np.asarray(cop_xy_mm, dtype=np.float64).reshape(-1, 2)
    plates = np.asarray(plate_ids)
    if plates.shape != (cop.shape[0],):
        raise ValueError("plate_ids must have one entry per contact")
    out = np.full(cop.shape[0], "", dtype="<U1")
    ok = np.isfinite(cop).all(axis=1)
    if ok.sum() < (1 if treadmill else 2):
        return out
    if treadmill:
        if stance_travel_xy_mm is None:
            raise ValueError("stance_travel_xy_mm is required on a treadmill")
        travel = np.asarray(stance_travel_xy_mm, dtype=np.float64).reshape(-1, 2)
        mean_travel = np.nanmean(travel[ok], axis=0)
        if not np.hypot(*mean_travel) >= PROGRESSION_MIN_TRAVEL_MM:
            return out
        forward = -mean_travel / np.hypot(*mean_travel)
    else:
        idx = np.flatnonzero(ok)
        span = cop[idx[-1]] - cop[idx[0]]
        if not np.hypot(*span) >= PROGRESSION_MIN_TRAVEL_MM:
            return out
        forward = span / np.hypot(*span)
    left = np.array([-forward[1], forward[0]])  # Z x forward
    if treadmill:
        belts = sorted({p for p, good in zip(plates, ok) if good})
        centres = {b: np.nanmean(cop[(plates == b) & ok], axis=0) for b in belts}
        middle = np.mean(list(centres.values()), axis=0)
        for b, c in centres.items():
            lateral = float((c - middle) @ left)
            if abs(lateral) >= min_offset_mm / 2 and len(belts) > 1:
                out[plates == b] = "L" if lateral > 0 else "R"
        return out
    lateral = cop @ left
    lateral = lateral - (np.nanmax(lateral[ok]) + np.nanmin(lateral[ok])) / 2  # the line between the two feet
    out[ok & (lateral >= min_offset_mm)] = "L"
    out[ok & (lateral <= -min_offset_mm)] = "R"
    return out
