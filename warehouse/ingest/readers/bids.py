"""BIDS datasets with EMG (EMG-BIDS, BIDS 1.11) and motion capture (Motion-BIDS): the reader.

Layout read by :func:`read_bids` (and written by ``warehouse/serving/bids_write.py``: writing is an
export concern, so the writer lives with the exports)::

    dataset_description.json, participants.tsv, participants.json, README
    sub-<s>/[ses-<x>/]emg/sub-<s>[_ses-<x>]_task-<t>[_run-<n>]_emg.edf|.bdf   analog channels (EDF+/BDF+)
                                          ..._emg.json         SamplingFrequency, PowerLineFrequency, ...
                                          ..._channels.tsv     name, type, units, description,
                                                               sampling_frequency, status, n_samples
                                          ..._channels.json    defines the n_samples column
                                          ..._events.tsv/json  onset, duration, trial_type, side[, source]
    sub-<s>/[ses-<x>/]motion/..._tracksys-<sys>[_run-<n>]_motion.tsv  markers (no header, n/a for gaps)
                                          ..._tracksys-<sys>_channels.tsv  name, component, type,
                                                                            tracked_point, units
                                          ..._tracksys-<sys>_motion.json   SamplingFrequency, ...

The EMG and motion files of one task/run form one :class:`Recording`; both start at its time 0.
``n_samples`` restores each channel's length (an EDF pads its last data record). An events
``source`` column (annotated, force_plate, kinematic: how a myomap export found the event) is
kept; without it events are ``annotated``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl

from schemas import vocab
from warehouse.ingest.readers.base import AnalogChannel, Event, ReaderError, Recording
from warehouse.ingest.readers.edf import parse_event_label, read_edf
from warehouse.ingest.readers.opensim import length_factor_mm


# ------------------------------------------------------------------------------------------ read
_ENT = re.compile(r"([a-z]+)-([A-Za-z0-9]+)")


def _entities(name: str) -> dict[str, str]:
    return dict(_ENT.findall(name.rsplit("_", 1)[0]))


def _load_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReaderError("bids_json", f"{path.name} is not valid JSON ({exc}).") from None
    if not isinstance(obj, dict):
        raise ReaderError("bids_json", f"{path.name} must hold a JSON object.")
    return obj


def _read_table(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    if not lines:
        return []
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]


def read_participants(root: Path) -> dict[str, dict[str, str]]:
    """``participants.tsv`` as {participant_id: {column: value}} ("n/a" cells left out)."""
    p = Path(root) / "participants.tsv"
    if not p.exists():
        return {}
    return {r["participant_id"]: {k: v for k, v in r.items() if k != "participant_id" and v != "n/a"}
            for r in _read_table(p)}


def _events_tsv(path: Path) -> list[Event]:
    out = []
    for r in _read_table(path):
        try:
            onset = float(r.get("onset", "nan"))
        except ValueError:
            continue
        ttype = r.get("trial_type", "")
        side = r.get("side", "")
        parsed = parse_event_label(f"{ttype} {side}") if side in ("L", "R") else parse_event_label(ttype)
        if ttype in ("foot_strike", "foot_off") and side in ("L", "R"):
            parsed = (side, ttype)
        source = r.get("source", "annotated")
        if parsed and np.isfinite(onset):
            out.append(Event(parsed[0], parsed[1], onset, source if source in vocab.EVENT_SOURCES else "annotated"))
    return sorted(out, key=lambda e: e.time_s)


def _read_emg(data: Path, rec: Recording) -> None:
    stem = data.name.rsplit("_emg.", 1)[0]
    tsv = data.with_name(f"{stem}_channels.tsv")
    emg = read_edf(data, companions={"channels": tsv} if tsv.exists() else None)
    rows = _read_table(tsv) if tsv.exists() else []
    side = data.with_name(f"{stem}_emg.json")
    meta = _load_json(side) if side.exists() else {}
    by_name = {r.get("name"): r for r in rows}
    for a in emg.analogs:
        r = by_name.get(a.label, {})
        n = r.get("n_samples", "n/a")
        if n not in ("", "n/a") and len(a.data) > int(n):
            a.data = a.data[:int(n)]
        elif meta.get("RecordingDuration") not in (None, "n/a"):
            keep = int(round(float(meta["RecordingDuration"]) * a.rate_hz))
            if 0 < keep < len(a.data):
                a.data = a.data[:keep]
        if a.description == "n/a":
            a.description = ""
    rec.analogs, rec.analog_rate_hz = emg.analogs, emg.analog_rate_hz
    rec.vendor = meta.get("Manufacturer") or rec.vendor
    rec.software = meta.get("SoftwareVersions") or rec.software
    rec.notes.extend(f"{data.name}: {n}" for n in emg.notes)
    ev = data.with_name(f"{stem}_events.tsv")
    if ev.exists():
        rec.events = _events_tsv(ev)
        if emg.events and len(emg.events) != len(rec.events):
            rec.notes.append(f"{data.name}: {len(emg.events)} EDF annotations differ from {ev.name}; events.tsv used")
    else:
        rec.events = emg.events


def _read_motion(data: Path, rec: Recording) -> None:
    stem = data.name[: -len("_motion.tsv")]
    chan = data.with_name(f"{stem}_channels.tsv")
    side = data.with_name(f"{stem}_motion.json")
    if not chan.exists() or not side.exists():
        raise ReaderError("bids_motion_sidecar", f"{data.name} lacks its {chan.name} or {side.name}; Motion-BIDS "
                          "requires both.")
    rows = _read_table(chan)
    meta = _load_json(side)
    try:
        rate = float(meta.get("SamplingFrequency", 0) or 0)
        df = pl.read_csv(data, separator="\t", has_header=False, null_values=["n/a", "NaN", "nan"],
                         infer_schema=False)
    except (ValueError, TypeError, pl.exceptions.PolarsError) as exc:
        raise ReaderError("bids_motion_channels", f"{data.name} or its sidecar is unreadable ({exc}).") from None
    if df.width != len(rows):
        raise ReaderError("bids_motion_channels", f"{data.name} has {df.width} columns but {chan.name} lists "
                          f"{len(rows)} channels.")
    values = np.column_stack([df.get_column(c).cast(pl.Float64, strict=False).to_numpy() for c in df.columns])
    points: dict[int, dict] = {}
    order: list[int] = []
    for j, r in enumerate(rows):
        if r.get("type", "").upper() == "POS" and r.get("component", "").lower() in ("x", "y", "z"):
            factor, note = length_factor_mm(r.get("units", "mm"))
            if note:
                rec.notes.append(f"{chan.name}: {note}")
            key = r.get("name", "").rsplit("_", 1)[0]
            ident = next((k for k in order if points[k]["key"] == key), None)
            if ident is None:
                ident = len(order)
                order.append(ident)
                points[ident] = {"key": key, "label": r.get("tracked_point", key)}
            points[ident][r["component"].lower()] = values[:, j] * factor
        else:
            ch_rate = r.get("sampling_frequency", "n/a")
            rec.analogs.append(AnalogChannel(label=r.get("name", f"motion_{j}"), unit=r.get("units", ""),
                                             rate_hz=float(ch_rate) if ch_rate not in ("", "n/a") else rate,
                                             data=values[:, j], description=r.get("type", "")))
    full = [points[i] for i in order if all(c in points[i] for c in "xyz")]
    if len(full) != len(order):
        rec.notes.append(f"{chan.name}: {len(order) - len(full)} tracked points lack an x, y or z channel; skipped")
    if full:
        rec.markers_mm = np.stack([np.column_stack([p["x"], p["y"], p["z"]]) for p in full], axis=1)
        rec.marker_labels = [p["label"] for p in full]
        rec.point_rate_hz = rate
    untracked = stem.rsplit("_tracksys-", 1)[0]  # events of every tracking system (no tracksys entity)
    for ev in (data.with_name(f"{stem}_events.tsv"), data.with_name(f"{untracked}_events.tsv")):
        if ev.exists() and not rec.events:
            rec.events = _events_tsv(ev)


def read_bids(root: Path) -> list[tuple[str, str | None, Recording]]:
    """Read every EMG and motion recording of a BIDS dataset.

    Returns
    -------
    list of (subject, session, Recording)
        Subject and session labels without their ``sub-``/``ses-`` prefixes (session None when the
        dataset has no session level); EMG and motion files of the same task/acq/run are merged.

    Raises
    ------
    ReaderError
        ``bids_not_dataset`` (no ``dataset_description.json``), ``bids_empty`` (no EMG or motion file),
        ``bids_json``, ``bids_motion_sidecar``, ``bids_motion_channels``, and the codes of :func:`read_edf`, each
        prefixed with the offending file.
    """
    root = Path(root)
    if not (root / "dataset_description.json").exists():
        raise ReaderError("bids_not_dataset", f"{root} has no dataset_description.json: not a BIDS dataset root.")
    groups: dict[tuple, dict] = {}
    for f in sorted(root.glob("sub-*/**/*")):
        if f.parent.name not in ("emg", "motion"):
            continue
        if f.parent.name == "emg" and re.search(r"_emg\.(edf|bdf)$", f.name, re.I):
            kind = "emg"
        elif f.parent.name == "motion" and f.name.endswith("_motion.tsv"):
            kind = "motion"
        else:
            continue
        ent = _entities(f.name)
        key = tuple((k, v) for k, v in ent.items() if k != "tracksys")
        groups.setdefault(key, {}).setdefault(kind, []).append(f)
    if not groups:
        raise ReaderError("bids_empty", f"{root}: no sub-*/[ses-*/]emg/*_emg.edf|bdf or motion/*_motion.tsv file.")
    out = []
    for key, files in sorted(groups.items()):
        ent = dict(key)
        rec = Recording(format="bids", subject_id=ent.get("sub"))
        try:
            for f in files.get("emg", []):
                _read_emg(f, rec)
            for f in files.get("motion", []):
                _read_motion(f, rec)
        except ReaderError as exc:
            raise ReaderError(exc.reason_code, f"{f.relative_to(root)}: {exc.message}") from exc
        rec.notes.insert(0, "BIDS entities " + ", ".join(f"{k}-{v}" for k, v in key))
        out.append((ent.get("sub"), ent.get("ses"), rec))
    return out
