"""Walking direction and plate-contact sides from geometry, for trials without usable annotations.

Pure functions on numpy arrays in the lab frame (Z up, mm, s); no I/O.

* :func:`progression_from_feet` -- the anterior-posterior axis (along which the feet move most
  relative to the pelvis) and the walking direction (the toe lies ahead of the heel), on a
  treadmill as overground, walking or running.  Gives :func:`transforms.gait.zeni_events` its
  direction where the pelvis does not travel.
* :func:`contact_sides_from_geometry` -- the side of each plate contact from where its centre of
  pressure lies relative to the walking line, when neither annotations nor heel markers decide it:
  overground, the walking line runs through the midpoints of successive contacts (the feet
  alternate about it), and a contact on its left (of the direction of travel) is a left foot; on a treadmill, each belt carries one foot and the
  belt on the left of the direction of walking carries the left foot (the direction is opposite to
  the centre of pressure's travel during stance, since the belt carries the foot backwards).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["GEOMETRY_MIN_OFFSET_MM", "PROGRESSION_MIN_TRAVEL_MM", "FOOT_OFF_AGREEMENT_FRAMES", "progression_from_feet",
           "contact_sides_from_geometry"]

#: A contact's centre of pressure must lie at least this far (mm) to one side of the walking line.
GEOMETRY_MIN_OFFSET_MM = 30.0
#: Overground: the contacts' centres of pressure must span at least this distance (mm) along the
#: walkway to define the walking line; treadmill: the stance must move the CoP this far (mm) on average.
PROGRESSION_MIN_TRAVEL_MM = 100.0
#: A treadmill plate foot off further than this many marker frames from the kinematic (Zeni) foot off is
#: taken to be a belt still loaded by the other foot (they agree within 3 frames at 100 Hz on the real
#: treadmill walk; the late one is 10 frames off).
FOOT_OFF_AGREEMENT_FRAMES = 4


def progression_from_feet(heel_mm, toe_mm, pelvis_mm, /) -> tuple[int, int]:
    """``(axis, sign)`` of the walking direction from heel, toe and pelvis trajectories.

    The anterior-posterior axis is the horizontal lab axis along which the feet move most relative to
    the pelvis; the direction is the one in which the toe lies ahead of the heel (a foot is ~200 mm
    long), which holds in walking and running, overground and on a treadmill.

    Parameters
    ----------
    heel_mm, toe_mm : array_like, shape (k, 3, n) or (3, n)
        Heel and toe positions (lab X, Y, Z) of ``k`` feet over ``n`` frames, mm (NaN = gap).
    pelvis_mm : array_like, shape (3, n)
        Pelvis position, mm.

    Returns
    -------
    tuple
        ``(0 or 1, +1 or -1)``.

    Raises
    ------
    ValueError
        If the arrays are malformed or hold no valid frame.
    """
    heel, toe = (np.asarray(a, dtype=np.float64) for a in (heel_mm, toe_mm))
    heel, toe = (a[None] if a.ndim == 2 else a for a in (heel, toe))
    pelvis = np.asarray(pelvis_mm, dtype=np.float64)
    if heel.ndim != 3 or heel.shape != toe.shape or heel.shape[1] < 2 or pelvis.shape[-1] != heel.shape[2]:
        raise ValueError(f"heel and toe must be (k, 3, n) and pelvis (3, n); got {heel.shape}, {toe.shape}, "
                         f"{pelvis.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN feet
        rel = heel[:, :2] - pelvis[None, :2]
        span = np.nanmax(rel, axis=2) - np.nanmin(rel, axis=2)  # k x 2
        if not np.isfinite(span).any():
            raise ValueError("no valid heel frames")
        axis = int(np.nanargmax(np.nansum(span, axis=0)))
        ahead = np.nanmedian((toe[:, axis] - heel[:, axis]).ravel())
    if not np.isfinite(ahead) or ahead == 0:
        raise ValueError("no frame with both heel and toe markers")
    return axis, (1 if ahead > 0 else -1)


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
        # the walking line through the midpoints of successive contacts (the feet alternate about it)
        mid = (cop[idx][1:] + cop[idx][:-1]) / 2
        line = mid[-1] - mid[0] if len(mid) >= 2 else span
        if not np.hypot(*line) >= PROGRESSION_MIN_TRAVEL_MM:
            return out
        forward = line / np.hypot(*line)
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
    lateral = lateral - (float(np.mean(mid @ left)) if len(mid) >= 2 else  # the line between the two feet
                         (np.nanmax(lateral[ok]) + np.nanmin(lateral[ok])) / 2)
    out[ok & (lateral >= min_offset_mm)] = "L"
    out[ok & (lateral <= -min_offset_mm)] = "R"
    return out
