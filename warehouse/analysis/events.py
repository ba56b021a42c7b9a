"""Gait events of one trial for the analysis: plate contacts and their sides, kinematic (Zeni)
events, and the event-source rule that picks the events bounding each gait cycle.

Storage-side wiring; the computations are in :mod:`transforms.gait` and
:mod:`transforms.gait_geometry`. Everything works in the lab frame the ingest put the trial in
(Z up, X along the progression where it could be inferred).

Plate-contact sides, in order of evidence (``gait_events.reason`` says which decided):

1. an annotated foot strike of that side within ``ANNOTATION_MATCH_S`` (a treadmill belt takes
   the majority side of its contacts);
2. the heel markers: the nearer heel to the centre of pressure (``transforms.gait.assign_sides``);
3. the plate-to-foot geometry (``transforms.gait_geometry.contact_sides_from_geometry``);
4. else ``U`` (unknown), stored with the reason, never dropped.

Event-source rule (per side and per event type): **annotated > force_plate > kinematic**. Foot
strikes come from the first source with at least two strikes on that side, foot offs from the
first with at least one. On a treadmill, every plate foot off is checked against the nearest
kinematic foot off: one more than ``FOOT_OFF_AGREEMENT_FRAMES`` marker frames away (a belt still
loaded by the other foot) is replaced by the kinematic one and the trial gets the plausibility
finding ``treadmill_foot_off_disagrees``.
"""
from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import polars as pl

from schemas import vocab
from transforms import gait, gait_geometry

log = logging.getLogger(__name__)

#: An overground plate is unloaded most of the trial: this percentile of |Fz| is its offset.
UNLOADED_PERCENTILE = 5.0
#: A plate loaded this many times in one trial is a treadmill belt (one foot, every stride).
TREADMILL_MIN_CONTACTS = 4
#: A detected plate contact takes the side of an annotated strike within this distance, s.
ANNOTATION_MATCH_S = 0.06
#: A treadmill plate foot off further than this many marker frames from the kinematic foot off is replaced.
FOOT_OFF_AGREEMENT_FRAMES = gait_geometry.FOOT_OFF_AGREEMENT_FRAMES
#: Marker rate assumed for the agreement window when the trial has none, Hz.
DEFAULT_POINT_RATE_HZ = 100.0
#: Tasks whose marker trajectories give Zeni events (None: the session does not say).
KINEMATIC_TASKS = (None, "walk", "run")
#: Source priority of the event-source rule.
SOURCE_PRIORITY = ("annotated", "force_plate", "kinematic")


# --------------------------------------------------------------------------- markers
def marker_tracks(con, trial_id: str) -> dict:
    """Heel, toe and pelvis trajectories (3 x frames, mm, lab frame) chosen by the marker vocabulary."""
    names = [r[0] for r in con.execute("SELECT DISTINCT marker FROM markers WHERE trial_id = ? ORDER BY 1",
                                       [trial_id]).fetchall()]
    rate = con.execute("SELECT point_rate_hz FROM trials WHERE trial_id = ?", [trial_id]).fetchone()
    out = {"rate": rate[0] if rate else None, "heel": {}, "toe": {}, "pelvis": None, "names": {}}
    if not names:
        return out
    found = vocab.find_markers(names)
    feet = {(side, role): names[i] for (side, role), i in found.items() if role in ("heel", "toe") and side in vocab.SIDES}
    pelvis = [names[found[(None, "sacrum")]]] if (None, "sacrum") in found else []
    if not pelvis:
        for role in ("psis", "asis"):
            if ("L", role) in found and ("R", role) in found:
                pelvis = [names[found[("L", role)]], names[found[("R", role)]]]
                break
    tracks = _tracks(con, trial_id, sorted(set(feet.values()) | set(pelvis)))
    for (side, role), name in feet.items():
        out[role][side] = tracks[name]
        out["names"][f"{side}_{role}"] = name
    if pelvis:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # frames where every pelvis marker is a gap
            out["pelvis"] = np.nanmean(np.stack([tracks[n] for n in pelvis]), axis=0)
        out["names"]["pelvis"] = "+".join(pelvis)
    return out


def _tracks(con, trial_id: str, names: list[str]) -> dict[str, np.ndarray]:
    """``{marker: 3 x frames}`` (mm, in frame order) of the named markers of a trial: one scan of ``markers``."""
    if not names:
        return {}
    d = con.execute(f"SELECT marker, x_mm, y_mm, z_mm FROM markers WHERE trial_id = ? AND marker IN "
                    f"({', '.join('?' * len(names))}) ORDER BY marker, frame", [trial_id, *names]).fetchnumpy()
    marker = np.asarray(d["marker"], dtype=object)
    xyz = np.vstack([np.asarray(d[c], dtype=np.float64) for c in ("x_mm", "y_mm", "z_mm")])
    return {n: xyz[:, marker == n] for n in names}


def kinematic_events(tracks: dict) -> list[dict]:
    """Zeni foot strikes / offs per side (``source = 'kinematic'``), or [] without heel, toe and pelvis."""
    rate, pelvis = tracks.get("rate"), tracks.get("pelvis")
    sides = [s for s in vocab.SIDES if s in tracks["heel"] and s in tracks["toe"]]
    if not rate or pelvis is None or not sides:
        return []
    try:
        axis, sign = gait_geometry.progression_from_feet(np.stack([tracks["heel"][s] for s in sides]),
                                                         np.stack([tracks["toe"][s] for s in sides]), pelvis)
    except ValueError as exc:
        log.info("kinematic events: %s", exc)
        return []
    out = []
    for side in sides:
        try:
            fs, fo = gait.zeni_events(tracks["heel"][side][axis], tracks["toe"][side][axis], pelvis[axis],
                                      rate_hz=rate, progression_sign=sign)
        except ValueError as exc:
            log.info("kinematic events %s: %s", side, exc)
            continue
        why = (f"zeni: heel {tracks['names'][f'{side}_heel']}, toe {tracks['names'][f'{side}_toe']}, pelvis "
               f"{tracks['names']['pelvis']}, progression {'+' if sign > 0 else '-'}{'XY'[axis]}")
        out += [{"side": side, "event": "foot_strike", "time_s": round(float(t), 6), "plate": None, "reason": why}
                for t in fs]
        out += [{"side": side, "event": "foot_off", "time_s": round(float(t), 6), "plate": None, "reason": why}
                for t in fo]
    return out


# --------------------------------------------------------------------------- plates
GRF_COLUMNS = ("time_s", "force_z_n", "cop_x_mm", "cop_y_mm")


def trial_grf(con, trial_id: str) -> dict[int, dict[str, np.ndarray]]:
    """``{plate: {column: samples}}`` of one trial's ``grf`` (:data:`GRF_COLUMNS`, in sample order): one
    scan for the trial's plate contacts and its cycles' forces. A plate's column is a masked array only
    where that plate has NULLs in it (as when each plate is read alone)."""
    d = con.execute(f"SELECT plate, {', '.join(GRF_COLUMNS)} FROM grf WHERE trial_id = ? ORDER BY plate, "
                    "sample_index", [trial_id]).fetchnumpy()
    plates = np.asarray(d["plate"])
    out = {}
    for p in np.unique(plates):
        rows = plates == p
        out[int(p)] = {c: _as_read_alone(d[c][rows]) for c in GRF_COLUMNS}
    return out


def _as_read_alone(x):
    return x if np.ma.isMaskedArray(x) and np.ma.getmaskarray(x).any() else np.ma.getdata(x)


def _contacts(con, trial_id: str, terrain: str | None, grf: dict | None = None) -> tuple[list[dict], bool]:
    """Every plate contact (strike, off, plate, mean CoP in early stance, CoP travel); and whether the
    plates are treadmill belts. ``grf``: the trial's :func:`trial_grf` (else read here)."""
    plates = con.execute("SELECT plate, rate_hz FROM force_plates WHERE trial_id = ? ORDER BY plate",
                         [trial_id]).fetchall()
    contacts, treadmill = [], terrain == "treadmill"
    grf = trial_grf(con, trial_id) if grf is None and plates else (grf or {})
    for plate, rate in plates:
        d = grf.get(int(plate), {c: np.empty(0, np.float32) for c in GRF_COLUMNS})
        fz = np.nan_to_num(np.abs(d["force_z_n"].astype(np.float64)))
        if len(fz) < 10 or np.nanmax(fz) < 2 * gait.FORCE_THRESHOLD_N:
            continue
        try:
            offset = float(np.percentile(fz, UNLOADED_PERCENTILE))  # unloaded-plate offset
            strikes, offs = gait.plate_contacts(fz, rate_hz=rate, offset_n=offset)
            belt = terrain == "treadmill" or len(strikes) >= TREADMILL_MIN_CONTACTS
            if belt:  # a belt, not a plate
                strikes, offs = gait.treadmill_contacts(fz, rate_hz=rate)
                treadmill = True
        except ValueError as exc:
            log.info("%s plate %s: %s", trial_id, plate, exc)
            continue
        cop = np.vstack([d["cop_x_mm"], d["cop_y_mm"]]).astype(np.float64)
        n = cop.shape[1]
        for s, o in zip(strikes, offs):
            a = 0.0 if not np.isfinite(s) else s
            b = n / rate if not np.isfinite(o) else o
            i0, i1, i2, i3 = (int(f * rate) for f in (a + 0.1 * (b - a), a + 0.3 * (b - a),
                                                      a + 0.1 * (b - a), a + 0.9 * (b - a)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # CoP is NaN while a plate is unloaded
                early = np.nanmean(cop[:, i0:max(i1, i0 + 1)], axis=1)
                travel = (np.nanmean(cop[:, max(i3 - 5, i2):i3 + 1], axis=1)
                          - np.nanmean(cop[:, i2:i2 + 6], axis=1))
            contacts.append({"plate": plate, "rate": rate, "strike": s, "off": o, "cop": early, "travel": travel,
                             "grf": d})
    return contacts, treadmill


def _annotation_sides(contacts: list[dict], annotated: pl.DataFrame, treadmill: bool) -> None:
    ann = annotated.filter((pl.col("event") == "foot_strike") & pl.col("side").is_in(vocab.SIDES)) \
        if annotated.height else annotated
    if not ann.height:
        return
    times, sides = ann["time_s"].to_numpy(), ann["side"].to_list()
    for c in contacts:
        if np.isfinite(c["strike"]):
            dt = np.abs(times - c["strike"])
            k = int(np.argmin(dt))
            if dt[k] <= ANNOTATION_MATCH_S:
                c["side"], c["reason"] = sides[k], f"annotated strike within {ANNOTATION_MATCH_S * 1e3:g} ms"
    if treadmill:  # a belt carries one foot: the majority vote of its contacts
        _belt_majority(contacts, "annotation (belt majority)")


def _belt_majority(contacts: list[dict], why: str) -> None:
    for plate in {c["plate"] for c in contacts}:
        mine = [c for c in contacts if c["plate"] == plate]
        known = [c["side"] for c in mine if c.get("side")]
        if known:
            side = max(set(known), key=known.count)
            for c in mine:
                c["side"], c["reason"] = side, why


def _marker_sides(contacts: list[dict], tracks: dict, treadmill: bool) -> None:
    heels = tracks.get("heel", {})
    todo = [c for c in contacts if not c.get("side")]
    if not todo or "L" not in heels or "R" not in heels or not tracks.get("rate"):
        return
    for plate in {c["plate"] for c in todo}:
        mine = [c for c in todo if c["plate"] == plate]
        grf = mine[0]["grf"]
        cop = np.vstack([grf["cop_x_mm"], grf["cop_y_mm"]]).astype(np.float64)
        try:
            sides = gait.assign_sides(np.array([c["strike"] for c in mine]), np.array([c["off"] for c in mine]), cop,
                                      force_rate_hz=mine[0]["rate"], heel_left_mm=heels["L"][:2],
                                      heel_right_mm=heels["R"][:2], marker_rate_hz=tracks["rate"])
        except ValueError as exc:
            log.info("side assignment failed on plate %s: %s", plate, exc)
            continue
        for c, side in zip(mine, sides):
            if side:
                c["side"], c["reason"] = str(side), "nearest heel marker to the centre of pressure"
    if treadmill:
        _belt_majority(todo, "heel markers (belt majority)")


def _geometry_sides(contacts: list[dict], treadmill: bool) -> None:
    todo = [c for c in contacts if not c.get("side")]
    if not todo:
        return
    order = sorted(todo, key=lambda c: c["strike"] if np.isfinite(c["strike"]) else -1.0)
    try:
        sides = gait_geometry.contact_sides_from_geometry(
            np.array([c["cop"] for c in order]), np.array([c["plate"] for c in order]),
            stance_travel_xy_mm=np.array([c["travel"] for c in order]), treadmill=treadmill)
    except ValueError as exc:
        log.info("geometry sides: %s", exc)
        return
    for c, side in zip(order, sides):
        if side:
            c["side"], c["reason"] = str(side), ("belt position left/right of the walking direction" if treadmill
                                                 else "centre of pressure left/right of the walking line")


def plate_events(con, trial_id: str, terrain: str | None, annotated: pl.DataFrame,
                 tracks: dict, grf: dict | None = None) -> tuple[list[dict], bool]:
    """Force-plate foot strikes / offs with their side (L, R or U) and the reason; and whether the
    plates are treadmill belts. ``grf``: the trial's :func:`trial_grf` (else read here)."""
    contacts, treadmill = _contacts(con, trial_id, terrain, grf)
    for c in contacts:
        c["side"], c["reason"] = "", ""
    _annotation_sides(contacts, annotated, treadmill)
    _marker_sides(contacts, tracks, treadmill)
    _geometry_sides(contacts, treadmill)
    out = []
    for c in contacts:
        side = c["side"] or "U"
        why = c["reason"] or ("no annotated strike, heel markers or plate geometry decided the side")
        for event, t in (("foot_strike", c["strike"]), ("foot_off", c["off"])):
            if np.isfinite(t):
                out.append({"side": side, "event": event, "time_s": round(float(t), 6), "plate": c["plate"],
                            "reason": why})
    return out, treadmill


# --------------------------------------------------------------------------- the rule
def _times(rows, side: str, event: str) -> np.ndarray:
    return np.array(sorted(r["time_s"] for r in rows if r["side"] == side and r["event"] == event))


def choose_events(annotated: pl.DataFrame, plate: list[dict], kinematic: list[dict], *, treadmill: bool,
                  point_rate_hz: float | None) -> tuple[dict, list[dict]]:
    """Per side ``(strikes, offs, strike_source, off_sources)`` by the event-source rule, and the
    treadmill foot-off disagreements (plausibility rows without ``trial_id``)."""
    ann = annotated.to_dicts() if annotated.height else []
    by_source = {"annotated": ann, "force_plate": plate, "kinematic": kinematic}
    tol = FOOT_OFF_AGREEMENT_FRAMES / float(point_rate_hz or DEFAULT_POINT_RATE_HZ)
    chosen, disagreements = {}, []
    for side in vocab.SIDES:
        strikes = next(((_times(by_source[s], side, "foot_strike"), s) for s in SOURCE_PRIORITY
                        if len(_times(by_source[s], side, "foot_strike")) >= 2), None)
        if strikes is None:
            continue
        offs, off_src = next(((_times(by_source[s], side, "foot_off"), s) for s in SOURCE_PRIORITY
                              if len(_times(by_source[s], side, "foot_off"))), (np.array([]), None))
        sources = np.array([off_src] * len(offs), dtype=object)
        kin_offs = _times(kinematic, side, "foot_off")
        if treadmill and off_src == "force_plate" and kin_offs.size:
            offs = offs.copy()
            for k, t in enumerate(offs):
                j = int(np.argmin(np.abs(kin_offs - t)))
                if abs(kin_offs[j] - t) > tol and abs(kin_offs[j] - t) < 0.5 * np.median(np.diff(strikes[0])):
                    disagreements.append({"side": side, "plate_s": float(t), "kinematic_s": float(kin_offs[j])})
                    offs[k], sources[k] = kin_offs[j], "kinematic"
        chosen[side] = (strikes[0], offs, strikes[1], sources)
    findings = []
    if disagreements:
        worst = max(disagreements, key=lambda d: abs(d["plate_s"] - d["kinematic_s"]))
        findings.append({"code": "treadmill_foot_off_disagrees", "severity": "warn", "message": (
            f"{len(disagreements)} treadmill plate foot off(s) differ from the kinematic (Zeni) foot off by more "
            f"than {FOOT_OFF_AGREEMENT_FRAMES} marker frames (worst: {worst['side']} at {worst['plate_s']:.3f} s "
            f"vs {worst['kinematic_s']:.3f} s): the belt stayed loaded; the kinematic foot offs were used."),
            "details": json.dumps({"foot_offs": disagreements, "tolerance_s": tol})})
    return chosen, findings
