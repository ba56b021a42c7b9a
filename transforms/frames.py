"""Laboratory frames: which axis of a file is vertical, and the rotation into the one lab frame.

The lab frame of myomap is right-handed with **Z up** and, where it can be inferred, **X in the
direction of progression** (Y then points to the subject's left). Files come from labs whose
vertical is +Y (BTS SMART, many Vicon/Elite set-ups, OpenSim) or +Z, and whose walkway runs along
any horizontal axis. Pure functions on numpy arrays (mm, N); no I/O.

Evidence for the vertical axis
------------------------------
* **Plate corners** (:func:`vertical_from_plates`): the four corners of a force plate lie in the
  floor plane, so the axis along which they do not spread (at most
  ``CORNER_PLANARITY_MAX_FRACTION`` of the plate's extent) is vertical.  Its sign is the
  direction of the ground-reaction force while the plate is loaded (the floor pushes up).
* **Marker trajectories** (:func:`vertical_from_markers`): the pelvis markers sit at least
  ``MARKER_MIN_HEIGHT_MM`` above the heel/toe markers along the vertical, and that offset
  dominates the horizontal ones (feet alternate around the pelvis, so their mean horizontal
  offset is small).  Without named markers, the axis along which the markers' median positions
  spread most (a standing body is taller than it is wide or deep) and the sign of their median
  position (labs put the origin on the floor) are used, when unambiguous.

Progression (:func:`progression_from_travel`): the horizontal lab axis along which the pelvis
travels at least ``PROGRESSION_MIN_TRAVEL_MM``, within ``PROGRESSION_MAX_ANGLE_DEG`` of that
axis (a treadmill gives no travel: X is then left as the file's).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = [
    "CORNER_PLANARITY_MAX_FRACTION", "MARKER_MIN_HEIGHT_MM", "MARKER_DOMINANCE_RATIO",
    "PROGRESSION_MIN_TRAVEL_MM", "PROGRESSION_MAX_ANGLE_DEG", "parse_axis", "axis_name",
    "vertical_from_plates", "vertical_from_markers", "rotation_to_lab", "yaw_to_progression",
    "progression_from_travel",
]

#: Plate corners lie in the floor: their spread along the vertical is at most this fraction of the
#: plate's largest extent.
CORNER_PLANARITY_MAX_FRACTION = 0.05
#: Named markers: the pelvis is at least this far above the feet along the vertical, mm.
MARKER_MIN_HEIGHT_MM = 300.0
#: The vertical offset (or spread) must exceed every horizontal one by this factor to count.
MARKER_DOMINANCE_RATIO = 2.0
#: Progression is inferred when the pelvis travels at least this far horizontally, mm.
PROGRESSION_MIN_TRAVEL_MM = 500.0
#: ... and the travel lies within this angle of one horizontal lab axis, degrees.
PROGRESSION_MAX_ANGLE_DEG = 25.0

_AXES = "XYZ"


def parse_axis(text: str, /) -> tuple[int, int]:
    """``(axis index, sign)`` of an axis name such as ``'+Y'``, ``'y'``, ``'-Z'``.

    Raises
    ------
    ValueError
        If the text is not an optionally signed X, Y or Z.
    """
    t = str(text).strip().upper()
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("+-").strip()
    if t not in ("X", "Y", "Z"):
        raise ValueError(f"axis must be one of +X, -X, +Y, -Y, +Z, -Z; got {text!r}")
    return _AXES.index(t), sign


def axis_name(axis: int, sign: int, /) -> str:
    """``'+Y'`` for ``(1, +1)``."""
    return ("+" if sign >= 0 else "-") + _AXES[int(axis)]


def vertical_from_plates(corners_mm, /, *, loaded_force_n=None) -> tuple[int, int] | None:
    """Vertical axis ``(axis, sign)`` from plate corners; sign 0 when no loaded plate gives it.

    Parameters
    ----------
    corners_mm : sequence of array_like, each 3 x 4
        Corners of each plate in the file's frame, mm.
    loaded_force_n : sequence of array_like (3,), optional
        Mean ground-reaction force of each loaded plate while loaded, N (any that is not
        loaded may be omitted).

    Returns
    -------
    tuple or None
        ``(axis index, +1/-1/0)``; None when there are no usable corners or the plates
        disagree (corners not planar, or planar along different axes).
    """
    axes = set()
    for c in corners_mm:
        c = np.asarray(c, dtype=np.float64)
        if c.shape != (3, 4) or not np.isfinite(c).all():
            continue
        spread = c.max(axis=1) - c.min(axis=1)
        if spread.max() <= 0:
            continue
        k = int(np.argmin(spread))
        if spread[k] > CORNER_PLANARITY_MAX_FRACTION * spread.max():
            return None
        axes.add(k)
    if len(axes) != 1:
        return None
    axis = axes.pop()
    total = np.zeros(3)
    for f in loaded_force_n or ():
        f = np.asarray(f, dtype=np.float64)
        if f.shape == (3,) and np.isfinite(f).all():
            total += f
    comp = total[axis]
    sign = 0 if not abs(comp) > 0.5 * np.linalg.norm(total) else int(np.sign(comp))
    return axis, sign


def vertical_from_markers(markers_mm, /, *, foot_idx=(), pelvis_idx=()) -> tuple[int, int] | None:
    """Vertical axis ``(axis, sign)`` from marker trajectories, or None when they are not conclusive.

    Parameters
    ----------
    markers_mm : array_like, frames x markers x 3
        Marker positions in the file's frame, mm (NaN = gap).
    foot_idx, pelvis_idx : sequence of int
        Heel/toe and pelvis (sacrum, iliac spines) marker indices; when both are given the
        pelvis-minus-feet offset decides, else the spread of the markers' median positions.

    Returns
    -------
    tuple or None
        ``(axis index, +1/-1)``.
    """
    xyz = np.asarray(markers_mm, dtype=np.float64)
    if xyz.ndim != 3 or xyz.shape[2] != 3 or xyz.shape[0] == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN markers
        if len(foot_idx) and len(pelvis_idx):
            feet = np.nanmean(xyz[:, list(foot_idx), :], axis=1)
            pelvis = np.nanmean(xyz[:, list(pelvis_idx), :], axis=1)
            d = np.nanmedian(pelvis - feet, axis=0)
            if np.isfinite(d).all():
                k = int(np.argmax(np.abs(d)))
                others = np.delete(np.abs(d), k)
                if abs(d[k]) >= MARKER_MIN_HEIGHT_MM and abs(d[k]) >= MARKER_DOMINANCE_RATIO * others.max():
                    return k, int(np.sign(d[k]))
            return None
        med = np.nanmedian(xyz, axis=0)  # markers x 3
        med = med[np.isfinite(med).all(axis=1)]
    if med.shape[0] < 5:
        return None
    spread = np.percentile(med, 95, axis=0) - np.percentile(med, 5, axis=0)
    k = int(np.argmax(spread))
    if spread[k] < MARKER_MIN_HEIGHT_MM or spread[k] < MARKER_DOMINANCE_RATIO * np.delete(spread, k).max():
        return None
    centre = float(np.median(med[:, k]))
    if abs(centre) < 0.25 * spread[k]:
        return None
    return k, int(np.sign(centre))


def rotation_to_lab(vertical: tuple[int, int], /, *, forward: tuple[int, int] | None = None) -> np.ndarray:
    """Proper rotation ``R`` (3 x 3) taking file coordinates to the lab frame: ``lab = R @ file``.

    Lab Z is the file's ``vertical`` axis; lab X is the file's ``forward`` axis when given (it must
    be another axis), else the first other file axis in X, Y, Z order, positive; lab Y = Z x X.

    Raises
    ------
    ValueError
        If ``forward`` is the vertical axis or a sign is not +-1.
    """
    ax, sz = vertical
    if sz not in (1, -1):
        raise ValueError(f"vertical sign must be +1 or -1, got {sz!r}")
    ez = np.zeros(3)
    ez[ax] = sz
    if forward is None:
        fwd_axis, fwd_sign = next(a for a in range(3) if a != ax), 1
    else:
        fwd_axis, fwd_sign = forward
        if fwd_axis == ax or fwd_sign not in (1, -1):
            raise ValueError(f"forward axis {forward!r} must be another axis than the vertical {vertical!r}")
    ex = np.zeros(3)
    ex[fwd_axis] = fwd_sign
    ey = np.cross(ez, ex)
    return np.vstack([ex, ey, ez])


def yaw_to_progression(progression: tuple[int, int], /) -> np.ndarray:
    """Rotation about lab Z (3 x 3) that turns the horizontal lab axis ``progression`` into +X.

    Raises
    ------
    ValueError
        If the axis is not horizontal (0 or 1) or the sign is not +-1.
    """
    axis, sign = progression
    if axis not in (0, 1) or sign not in (1, -1):
        raise ValueError(f"progression must be a horizontal lab axis (X or Y) with sign +-1, got {progression!r}")
    return rotation_to_lab((2, 1), forward=(axis, sign))


def progression_from_travel(track_mm, /) -> tuple[int, int] | None:
    """Horizontal lab axis ``(0 or 1, sign)`` of the walking direction, or None.

    Parameters
    ----------
    track_mm : array_like, 3 x frames or 2 x frames
        A pelvis (or whole-body centroid) trajectory in the lab frame (Z up), mm, NaN = gap.

    Returns
    -------
    tuple or None
        None when the horizontal travel between the first and last valid frames is shorter
        than ``PROGRESSION_MIN_TRAVEL_MM`` or more than ``PROGRESSION_MAX_ANGLE_DEG`` off
        both horizontal axes.
    """
    t = np.asarray(track_mm, dtype=np.float64)[:2]
    ok = np.isfinite(t).all(axis=0)
    if t.ndim != 2 or ok.sum() < 2:
        return None
    idx = np.flatnonzero(ok)
    d = t[:, idx[-1]] - t[:, idx[0]]
    dist = float(np.hypot(*d))
    if dist < PROGRESSION_MIN_TRAVEL_MM:
        return None
    k = int(np.argmax(np.abs(d)))
    if abs(d[k]) < math.cos(math.radians(PROGRESSION_MAX_ANGLE_DEG)) * dist:
        return None
    return k, int(np.sign(d[k]))
