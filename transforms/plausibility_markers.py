"""Marker/plate plausibility: while a plate is loaded, a foot marker must be on it (pure; no I/O).

Tests the two time bases of a trial (``POINT:RATE`` vs ``ANALOG:RATE``).  Findings, codes and
thresholds come from :mod:`transforms.plausibility`, documented in ``docs/qc_thresholds.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from transforms.plausibility import (
    CONTACT_THRESHOLD_N,
    FOOT_MAX_HEIGHT_MM,
    FOOT_PLATE_MARGIN_MM,
    Finding,
    as_rate_hz,
    contact_intervals,
    make_finding,
    plates_2d,
)

__all__ = ["foot_marker_indices", "check_marker_plate_agreement"]

_FOOT_RE = re.compile(
    r"^(?:L|R|LEFT|RIGHT)?[ ._\-]?(?:HEE|HEEL|TOE|ANK|ANKLE|MT\d|MET\d?|MTH\d?|MMAL|LMAL|CAL|FM\d)",
    re.IGNORECASE)
_NOT_MARKER_RE = re.compile(r"angle|moment|power|force|com|progress", re.IGNORECASE)


def foot_marker_indices(labels: Sequence[str], /) -> list[int]:
    """Indices of foot markers (heel, toe, ankle, metatarsal, calcaneus) among point labels.

    Matches e.g. ``RHEE``, ``LTOE``, ``LANK``, ``RMT5``, ``L.Heel``, ``R.Toe``, ``RCAL``;
    skips model outputs such as ``LAnkleAngles`` or ``RFootProgressAngles``.
    """
    return [i for i, lab in enumerate(labels)
            if _FOOT_RE.match(str(lab).strip()) and not _NOT_MARKER_RE.search(str(lab))]


def check_marker_plate_agreement(
    foot_markers_mm,
    plate_force_z_n,
    /,
    *,
    point_rate_hz: float,
    analog_rate_hz: float,
    plate_corners_mm,
    threshold_n: float = CONTACT_THRESHOLD_N,
) -> list[Finding]:
    """While a plate is loaded, a foot marker must be on it (tests the two time bases).

    For every contact (``contact_intervals``) the covered marker frames are
    ``floor(start / analog_rate * point_rate)`` to ``ceil(stop / analog_rate * point_rate)``.
    A contact is *matched* when, in any of those frames, a foot marker lies inside the
    plate's corner bounding box enlarged by ``FOOT_PLATE_MARGIN_MM`` and at most
    ``FOOT_MAX_HEIGHT_MM`` above the plate surface (mean corner height); it is
    *assessable* when those frames exist and hold finite foot-marker data.  Feet without
    markers make single contacts unmatched, so only "no assessable contact matched" is
    reported.

    Parameters
    ----------
    foot_markers_mm : array_like, shape (3, n_markers, n_frames)
        Foot marker trajectories in mm (ezc3d ``points[:3]`` layout, vertical = z).
    plate_force_z_n : array_like, shape (n_plates, n_samples) or (n_samples,)
        Vertical force per plate in N, positive when loaded.
    point_rate_hz : float, keyword-only
        Declared marker rate in Hz.
    analog_rate_hz : float, keyword-only
        Declared analog (plate) rate in Hz.
    plate_corners_mm : array_like, shape (n_plates, 3, 4)
        Plate corners in mm in the marker frame (ezc3d ``platform[i]['corners']``).
    threshold_n : float, keyword-only
        Contact threshold in N.

    Returns
    -------
    list of Finding
        ``marker_plate_mismatch`` (bad), ``marker_plate_not_assessable`` (info) or empty.
        Details: contacts, assessable, matched, per-contact list.

    Raises
    ------
    ValueError
        On malformed shapes, mismatched plate counts or non-positive rates.
    """
    pr, ar = as_rate_hz(point_rate_hz, "point_rate_hz"), as_rate_hz(analog_rate_hz, "analog_rate_hz")
    mk = np.asarray(foot_markers_mm, dtype=np.float64)
    if mk.ndim != 3 or mk.shape[0] != 3:
        raise ValueError(f"foot_markers_mm must have shape (3, n_markers, n_frames), got {mk.shape}")
    fz = plates_2d(plate_force_z_n)
    corners = np.asarray(plate_corners_mm, dtype=np.float64)
    if corners.ndim == 2:
        corners = corners[None]
    if corners.shape != (fz.shape[0], 3, 4):
        raise ValueError(f"plate_corners_mm must have shape ({fz.shape[0]}, 3, 4), got {corners.shape}")
    n_frames = mk.shape[2]
    per_contact = []
    for p in range(fz.shape[0]):
        lo = corners[p, :2].min(axis=1) - FOOT_PLATE_MARGIN_MM
        hi = corners[p, :2].max(axis=1) + FOOT_PLATE_MARGIN_MM
        surface = float(corners[p, 2].mean())
        for a, b in contact_intervals(fz[p], rate_hz=ar, threshold_n=threshold_n):
            f0 = int(math.floor(a / ar * pr))
            f1 = min(n_frames, int(math.ceil(b / ar * pr)))
            rec = {"plate": p, "start_s": a / ar, "stop_s": b / ar, "assessable": False, "matched": False}
            if f0 < f1 and mk.shape[1] > 0:
                seg = mk[:, :, f0:f1]
                fin = np.all(np.isfinite(seg), axis=0)
                if fin.any():
                    rec["assessable"] = True
                    with np.errstate(invalid="ignore"):
                        on = (fin & (seg[0] >= lo[0]) & (seg[0] <= hi[0]) & (seg[1] >= lo[1])
                              & (seg[1] <= hi[1]) & (seg[2] - surface <= FOOT_MAX_HEIGHT_MM))
                    rec["matched"] = bool(on.any())
            per_contact.append(rec)
    n_ass = sum(r["assessable"] for r in per_contact)
    n_match = sum(r["matched"] for r in per_contact)
    details = {"contacts": len(per_contact), "assessable": n_ass, "matched": n_match,
               "point_rate_hz": pr, "analog_rate_hz": ar, "per_contact": per_contact}
    if n_ass == 0:
        return [make_finding("marker_plate_not_assessable",
                         "No plate contact overlaps finite foot-marker data, so marker/plate timing "
                         "could not be checked.", **details)]
    if n_match == 0:
        return [make_finding(
            "marker_plate_mismatch",
            f"None of the {n_ass} plate contacts has a foot marker on the plate at the same time "
            f"(declared rates: points {pr:g} Hz, analogs {ar:g} Hz): the marker and plate time bases "
            f"disagree, so a declared rate is probably wrong.", **details)]
    return []
