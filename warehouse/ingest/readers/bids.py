"""BIDS datasets with EMG (EMG-BIDS, BIDS 1.11) and motion capture (Motion-BIDS): read and write.

Layout written by :func:`write_bids` (and read by :func:`read_bids`)::

    dataset_description.json, participants.tsv, participants.json, README
    sub-<s>/[ses-<x>/]emg/sub-<s>[_ses-<x>]_task-<t>[_run-<n>]_emg.edf|.bdf   analog channels (EDF+/BDF+)
                                          ..._emg.json         SamplingFrequency, PowerLineFrequency, ...
                                          ..._channels.tsv     name, type, units, description,
                                                               sampling_frequency, status, n_samples
                                          ..._channels.json    defines the n_samples column
                                          ..._events.tsv/json  onset, duration, trial_type, side
    sub-<s>/[ses-<x>/]motion/..._tracksys-<sys>_motion.tsv     markers (no header, n/a for gaps)
                                          ..._tracksys-<sys>_channels.tsv  name, component, type,
                                                                            tracked_point, units
                                          ..._tracksys-<sys>_motion.json   SamplingFrequency, ...

The EMG and motion files of one task/run form one :class:`Recording`; both start at its time 0.
``n_samples`` restores each channel's length (an EDF pads its last data record). Force plates,
ultrasound series and scalar measurements have no place in EMG-/Motion-BIDS and are not written
(noted in the returned notes).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

from warehouse.ingest.readers.base import (
    AnalogChannel,
    Event,
    ReaderError,
    Recording,
    emg_unit_factor,
)
from warehouse.ingest.readers.edf import parse_event_label, read_edf, write_edf
from warehouse.ingest.readers.opensim import length_factor_mm

BIDS_VERSION = "1.11.0"
_NOT_EMG = re.compile(r"force|torque|moment|angle|load|trig|sync|switch|foot|acc|gyro|imu|mag|cop|position",
                      re.I)


def bids_label(text: str) -> str:
    """An alphanumeric BIDS label (other characters removed).

    Raises
    ------
    ReaderError
        ``bids_label`` when nothing alphanumeric is left.
    """
    out = re.sub(r"[^A-Za-z0-9]", "", str(text))
    if not out:
        raise ReaderError("bids_label", f"{text!r} has no letter or digit; BIDS labels must be alphanumeric.")
    return out


def channel_type(a: AnalogChannel) -> str:
    """``EMG`` for a voltage channel not named like a force/trigger/IMU signal, else ``MISC``."""
    if emg_unit_factor(a.unit) is None:
        return "MISC"
    if "EMG" in (a.label + " " + a.description).upper():
        return "EMG"
    return "MISC" if _NOT_EMG.search(a.label + " " + a.description) else "EMG"


def _tsv(path: Path, header: list[str], rows: list[list]) -> None:
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
            return "n/a"
        return f"{v:.10g}" if isinstance(v, float) else str(v)

    lines = ["\t".join(header)] + ["\t".join(cell(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_bids(root: Path, items, *, dataset_name: str = "myomap export", power_line_hz: float | None = None,
               tracksys: str = "omc", bdf: bool = False) -> list[str]:
    """Write recordings as an EMG-BIDS + Motion-BIDS dataset.

    Parameters
    ----------
    root
        Dataset folder (created; existing files with the same names are overwritten).
    items
        Iterable of ``(subject_id, session_id or None, task, Recording, extra participant fields or None)``.
        Several recordings of one subject/session/task get ``run-1``, ``run-2``...
    power_line_hz
        Mains frequency for ``PowerLineFrequency`` (``"n/a"`` when None).
    tracksys
        Label of the motion tracking system entity.
    bdf
        Write 24-bit BDF instead of 16-bit EDF.

    Returns
    -------
    list of str
        Notes: relabelled ids, EDF rounding/truncation, data not representable in BIDS.

    Raises
    ------
    ReaderError
        ``bids_label`` for ids without letters or digits, and the write codes of :func:`write_edf`.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    items = list(items)
    notes: list[str] = []
    keys = [(bids_label(s), bids_label(x) if x else None, bids_label(t)) for s, x, t, _, _ in items]
    counts = Counter(keys)
    seen: Counter = Counter()
    participants: dict[str, dict] = {}
    tracksys = bids_label(tracksys)
    for (sub_id, ses_id, task, rec, extra), key in zip(items, keys):
        sub, ses, task_l = key
        for raw, lab, what in ((sub_id, sub, "subject"), (ses_id, ses, "session"), (task, task_l, "task")):
            if raw and str(raw) != lab:
                notes.append(f"{what} {raw!r} written as BIDS label {lab!r}")
        seen[key] += 1
        run = f"_run-{seen[key]}" if counts[key] > 1 else ""
        stem = f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + f"_task-{task_l}{run}"
        base = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "")
        participants.setdefault(f"sub-{sub}", {}).update(extra or {})
        if rec.plates:
            notes.append(f"{stem}: {len(rec.plates)} force plates not written (no force-plate datatype in BIDS)")
        if rec.ultrasound or rec.measurements:
            notes.append(f"{stem}: ultrasound series / measurements not written (no BIDS datatype)")
        if rec.analogs:
            _write_emg(base / "emg", stem, task_l, rec, power_line_hz, bdf, notes)
        if rec.markers_mm is not None and rec.marker_labels:
            _write_motion(base / "motion", f"{stem}_tracksys-{tracksys}", task_l, tracksys, rec,
                          events=not rec.analogs)
    _json(root / "dataset_description.json", {"Name": dataset_name, "BIDSVersion": BIDS_VERSION,
                                              "DatasetType": "raw", "GeneratedBy": [{"Name": "myomap"}]})
    cols = sorted({k for v in participants.values() for k in v})
    _tsv(root / "participants.tsv", ["participant_id"] + cols,
         [[pid] + [participants[pid].get(c) for c in cols] for pid in sorted(participants)])
    _json(root / "participants.json", {c: {"Description": f"{c} as provided to myomap"} for c in cols})
    readme = root / "README"
    if not readme.exists():
        readme.write_text(f"{dataset_name}\n\nExported by myomap (EMG-BIDS + Motion-BIDS).\n", encoding="utf-8")
    return notes


def _write_emg(folder: Path, stem: str, task: str, rec: Recording, power_line_hz, bdf: bool,
               notes: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{stem}_emg.{'bdf' if bdf else 'edf'}"
    notes.extend(f"{stem}: {n}" for n in write_edf(data, rec, bdf=bdf))
    types = [channel_type(a) for a in rec.analogs]
    emg_rates = [a.rate_hz for a, t in zip(rec.analogs, types) if t == "EMG"] or [a.rate_hz for a in rec.analogs]
    main = Counter(emg_rates).most_common(1)[0][0]
    _tsv(folder / f"{stem}_channels.tsv",
         ["name", "type", "units", "description", "sampling_frequency", "status", "n_samples"],
         [[a.label, t, a.unit, a.description, float(a.rate_hz), "good", len(a.data)]
          for a, t in zip(rec.analogs, types)])
    _json(folder / f"{stem}_channels.json", {"n_samples": {
        "Description": "Number of valid samples of the channel; the EDF/BDF pads its last data record."}})
    side = {"EMGPlacementScheme": "Other", "EMGPlacementSchemeDescription": "not recorded in the source file",
            "EMGReference": "n/a", "SamplingFrequency": float(main),
            "PowerLineFrequency": power_line_hz if power_line_hz else "n/a", "SoftwareFilters": "n/a",
            "TaskName": task, "RecordingType": "continuous",
            "RecordingDuration": round(rec.duration_s, 6), "EMGChannelCount": types.count("EMG"),
            "MISCChannelCount": types.count("MISC")}
    if rec.vendor:
        side["Manufacturer"] = rec.vendor
    if rec.software:
        side["SoftwareVersions"] = rec.software
    _json(folder / f"{stem}_emg.json", side)
    _write_events(folder, stem, rec.events)


def _write_events(folder: Path, stem: str, events: list[Event]) -> None:
    if not events:
        return
    _tsv(folder / f"{stem}_events.tsv", ["onset", "duration", "trial_type", "side"],
         [[float(e.time_s), 0.0, e.event, e.side] for e in sorted(events, key=lambda e: e.time_s)])
    _json(folder / f"{stem}_events.json", {
        "trial_type": {"Description": "Gait event", "Levels": {"foot_strike": "initial foot contact",
                                                                "foot_off": "end of foot contact"}},
        "side": {"Description": "Foot", "Levels": {"L": "left", "R": "right"}}})


def _write_motion(folder: Path, stem: str, task: str, tracksys: str, rec: Recording, events: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    xyz = np.asarray(rec.markers_mm, dtype=float)
    names, rows, used = [], [], Counter()
    for label in rec.marker_labels:
        used[label] += 1
        base = label if used[label] == 1 else f"{label}{used[label]}"
        for comp in ("x", "y", "z"):
            names.append(f"{base}_{comp}")
            rows.append([f"{base}_{comp}", comp, "POS", label, "mm"])
    _tsv(folder / f"{stem}_channels.tsv", ["name", "component", "type", "tracked_point", "units"], rows)
    flat = xyz.reshape(xyz.shape[0], -1)
    lines = ["\t".join("n/a" if np.isnan(v) else f"{v:.10g}" for v in row) for row in flat]
    (folder / f"{stem}_motion.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _json(folder / f"{stem}_motion.json", {
        "TaskName": task, "SamplingFrequency": float(rec.point_rate_hz or 0), "TrackingSystemName": tracksys,
        "MissingValues": "n/a", "POSChannelCount": len(names), "TrackedPointsCount": len(rec.marker_labels),
        "MotionChannelCount": len(names)})
    if events:
        _write_events(folder, stem.rsplit("_tracksys-", 1)[0], rec.events)


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
        if parsed and np.isfinite(onset):
            out.append(Event(parsed[0], parsed[1], onset, "annotated"))
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
    ev = data.with_name(f"{stem.rsplit('_tracksys-', 1)[0]}_events.tsv")
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
