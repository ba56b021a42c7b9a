"""One lab frame for every reader: Z up, X in the direction of progression where it can be inferred.

:func:`align_to_lab` runs on every :class:`Recording` that :func:`~warehouse.ingest.readers.read_any`
returns. It finds the file's vertical axis from the force-plate corners (sign: the loaded
markers when they agree), else from the marker trajectories (pelvis above heels and toes), or takes
the site manifest's ``vertical_axis`` override (per site or session); rotates markers, plate
corners, centres of pressure, forces and free moments into the lab frame; then turns the lab about
Z so that X points along the walking direction when the pelvis travels far enough along one axis,
and makes every loaded plate's vertical force positive (the ground reaction on the body: some
vendors store the force on the plate).
The rotation and the evidence are kept in ``rec.frame`` (stored per trial: ``trials.frame_rotation``,
``vertical_axis_file``, ``frame_source``); evidence that disagrees (plates vs markers, or the
manifest vs the data) becomes a plausibility finding. The geometry is in :mod:`transforms.frames`.
"""
from __future__ import annotations

import json
import warnings

import numpy as np

from schemas import vocab
from transforms import frames
from warehouse.ingest.readers.base import Recording

#: A plate counts as loaded (its force direction gives the vertical sign) above this force, N.
LOADED_PLATE_MIN_N = 100.0


def _plate_evidence(rec: Recording) -> tuple[int, int] | None:
    corners = [p.corners_mm for p in rec.plates if p.corners_mm is not None and np.shape(p.corners_mm) == (3, 4)]
    if not corners:
        return None
    loaded = []
    for p in rec.plates:
        if not p.force_n.size:
            continue
        norm = np.linalg.norm(np.nan_to_num(p.force_n), axis=0) * _varying(np.nan_to_num(p.force_n[2]))
        peak = float(norm.max()) if norm.size else 0.0
        if peak >= LOADED_PLATE_MIN_N:
            loaded.append(np.nanmean(p.force_n[:, norm >= 0.5 * peak], axis=1))
    return frames.vertical_from_plates(corners, loaded_force_n=loaded)


def _marker_indices(rec: Recording) -> tuple[list[int], list[int]]:
    found = vocab.find_markers(rec.marker_labels)
    feet = [i for (side, role), i in found.items() if role in ("heel", "toe")]
    pelvis = [i for (side, role), i in found.items() if role in ("sacrum", "psis", "asis")]
    return feet, pelvis


def _marker_evidence(rec: Recording) -> tuple[int, int] | None:
    if rec.markers_mm is None or rec.markers_mm.size == 0:
        return None
    feet, pelvis = _marker_indices(rec)
    return frames.vertical_from_markers(rec.markers_mm, foot_idx=feet, pelvis_idx=pelvis)


def _decide(rec: Recording, override: str | None) -> tuple[tuple[int, int], str, dict]:
    """(file vertical axis, source, evidence); findings for disagreeing evidence are appended to ``rec``.

    The plate corners give the vertical *axis* (the floor plane); its sign comes from the markers
    (pelvis above the feet) when they agree on the axis, else it is taken as positive (labs use
    right-handed frames with the vertical pointing up; a plate's force sign is a vendor convention).
    """
    plates = _plate_evidence(rec)
    plate_axis = plates[0] if plates else None
    markers = _marker_evidence(rec)
    evidence = {"force_plates": "XYZ"[plate_axis] if plate_axis is not None else None,
                "markers": frames.axis_name(*markers) if markers else None}
    if plate_axis is not None and markers and markers[0] != plate_axis:
        rec.findings.append(("frame_evidence_disagrees", "warn", (
            f"The plate corners lie in the plane normal to {evidence['force_plates']} but the markers say the "
            f"vertical axis is {evidence['markers']}; the plates were used. Check the file, or set vertical_axis "
            "in the site manifest.")))
    if rec.frame_known:
        return frames.parse_axis(rec.frame_known), "reader", evidence
    if override:
        chosen = frames.parse_axis(override)
        if (plate_axis not in (None, chosen[0])) or (markers and markers != chosen):
            rec.findings.append(("frame_override_disagrees", "warn", (
                f"The manifest sets vertical_axis {frames.axis_name(*chosen)}, but the data suggest "
                f"{', '.join(f'{k}: {v}' for k, v in evidence.items() if v)}; the manifest was followed.")))
        return chosen, "manifest", evidence
    if plate_axis is not None:
        if markers and markers[0] == plate_axis:
            return markers, "force_plates+markers", evidence
        return (plate_axis, 1), "force_plates", evidence
    if markers:
        return markers, "markers", evidence
    return (2, 1), "assumed", evidence


def _pelvis_track(rec: Recording, rot: np.ndarray) -> np.ndarray | None:
    if rec.markers_mm is None or rec.markers_mm.size == 0:
        return None
    _, pelvis = _marker_indices(rec)
    idx = pelvis or list(range(rec.markers_mm.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames where every pelvis marker is a gap
        track = np.nanmean(rec.markers_mm[:, idx, :], axis=1)  # frames x 3
    return rot @ track.T


def _rotate(rec: Recording, rot: np.ndarray) -> None:
    if np.allclose(rot, np.eye(3)):
        return
    if rec.markers_mm is not None and rec.markers_mm.size:
        rec.markers_mm = rec.markers_mm @ rot.T
    for p in rec.plates:
        if p.force_n.size:
            p.force_n = rot @ p.force_n
            p.cop_mm = rot @ p.cop_mm
        if p.corners_mm is not None and np.shape(p.corners_mm) == (3, 4):
            p.corners_mm = rot @ p.corners_mm
        if p.torque_nmm is not None and np.shape(p.torque_nmm)[0] == 3:
            p.torque_nmm = rot @ p.torque_nmm
            p.free_moment_nmm = p.torque_nmm[2]


#: Runs of at least this many identical samples are held values (saturation, padding), not loading.
HELD_RUN_SAMPLES = 10


def _varying(x: np.ndarray) -> np.ndarray:
    """Mask of the samples that are not inside a run of ``HELD_RUN_SAMPLES`` identical values."""
    same = np.concatenate([[False], x[1:] == x[:-1]])
    starts = np.flatnonzero(~same)
    lengths = np.diff(np.append(starts, x.size))
    return np.repeat(lengths < HELD_RUN_SAMPLES, lengths)


def _reaction_sign(rec: Recording) -> list[int]:
    """Make every loaded plate's vertical force positive (the reaction on the body); returns the
    plates whose file convention (force on the plate) was flipped."""
    flipped = []
    for p in rec.plates:
        if not p.force_n.size:
            continue
        fz = np.nan_to_num(p.force_n[2])
        fz = fz[_varying(fz)]  # a rail or a held value (saturated or padded data) says nothing of the sign
        peak = float(np.abs(fz).max()) if fz.size else 0.0
        if peak >= LOADED_PLATE_MIN_N and float(np.mean(fz[np.abs(fz) >= 0.5 * peak])) < 0:
            p.force_n = -p.force_n
            p.free_moment_nmm = -np.asarray(p.free_moment_nmm)
            if p.torque_nmm is not None:
                p.torque_nmm = -p.torque_nmm
            flipped.append(p.plate)
    return flipped


def align_to_lab(rec: Recording, *, vertical_axis: str | None = None) -> Recording:
    """Rotate ``rec`` in place into the lab frame (Z up, X along the progression when inferable).

    Parameters
    ----------
    rec : Recording
        As a reader returned it (file frame).
    vertical_axis : str, optional
        Manifest override of the file's vertical axis (``'+Y'``, ``'Z'``, ``'-Y'``...).

    Returns
    -------
    Recording
        The same object, with ``rec.frame`` = ``{"rotation": 3x3 list (lab = R @ file),
        "vertical_axis_file", "source", "progression_file", "evidence"}``.

    Raises
    ------
    ValueError
        On an override that is not an axis name.
    """
    vertical, source, evidence = _decide(rec, vertical_axis)
    rot = frames.rotation_to_lab(vertical)
    progression = None
    track = _pelvis_track(rec, rot)
    if track is not None:
        prog = frames.progression_from_travel(track)
        if prog is not None:
            rot = frames.yaw_to_progression(prog) @ rot
            progression = frames.axis_name(*[(i, int(np.sign(v))) for i, v in enumerate(rot[0]) if v][0])
    _rotate(rec, rot)
    flipped = _reaction_sign(rec)
    if flipped:
        rec.notes.append(f"plates {flipped}: the file stores the force on the plate (vertical negative when "
                         "loaded); forces and free moments negated to the ground reaction on the body")
    rec.frame = {"rotation": np.round(rot, 12).tolist(), "vertical_axis_file": frames.axis_name(*vertical),
                 "source": source, "progression_file": progression, "evidence": evidence,
                 "reaction_flipped_plates": flipped}
    if source != "reader" and not np.allclose(rot, np.eye(3)):
        rec.notes.append(f"lab frame: file vertical {frames.axis_name(*vertical)} ({source}), progression "
                         f"{progression or 'not inferred'}; rotation {json.dumps(rec.frame['rotation'])}")
    return rec
