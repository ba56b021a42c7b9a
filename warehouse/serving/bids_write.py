"""Writing EMG-BIDS + Motion-BIDS datasets (BIDS 1.11): the files of one run and of the dataset.

Layout (entities in the order the BIDS schema requires)::

    dataset_description.json, participants.tsv, participants.json, README
    sub-<s>/[ses-<x>/]emg/sub-<s>[_ses-<x>]_task-<t>[_run-<n>]_emg.bdf|.edf     EMG channels (BDF+/EDF+)
                                        ..._emg.json        SamplingFrequency, PowerLineFrequency, ...
                                        ..._channels.tsv    name, type, units, description,
                                                            sampling_frequency, status, n_samples [, extra]
                                        ..._channels.json   defines n_samples and the extra columns
                                        ..._events.tsv/json onset, duration, trial_type, side, source
    sub-<s>/[ses-<x>/]motion/sub-<s>[_ses-<x>]_task-<t>_tracksys-<sys>[_run-<n>]_motion.tsv
                                        (markers, no header row, n/a for gaps), ..._channels.tsv
                                        (name, component, type, tracked_point, units), ..._motion.json,
                                        ..._events.tsv

The EMG and motion files of one run both start at the run's time 0. ``n_samples`` restores each
channel's length (an EDF pads its last data record). Event onsets are written with Python's
shortest round-tripping ``repr``, so they read back as the same float.

:func:`write_bids` writes ingest-style recordings (fixtures, tests); the lake's cohort export
(``warehouse/serving/bids_export.py``) builds :class:`BidsRun` objects itself and uses the same
writers. The reader is ``warehouse/ingest/readers/bids.py``.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from schemas import vocab
from warehouse.serving.edf_write import WriteError, write_edf

#: The BIDS version written (the schema bundled with bids-validator-deno 3.0.2).
BIDS_VERSION = "1.11.1"
_NOT_EMG = re.compile(r"force|torque|moment|angle|load|trig|sync|switch|foot|acc|gyro|imu|mag|cop|position",
                      re.I)
#: Columns of every events file and their meaning (events.json).
EVENT_COLUMNS = {
    "trial_type": {"Description": "Gait event", "Levels": {"foot_strike": "initial foot contact",
                                                           "foot_off": "end of foot contact"}},
    "side": {"Description": "Foot", "Levels": {"L": "left", "R": "right"}},
    "source": {"Description": "How the event was found", "Levels": {
        "annotated": "marked in the recording by the site", "force_plate": "detected from the vertical ground "
        "reaction force", "kinematic": "detected from foot marker trajectories"}},
}
N_SAMPLES_DOC = {"Description": "Number of valid samples of the channel; the EDF/BDF pads its last data record."}
#: Motion sidecar counts of channel types myomap never writes (the validator recommends every count).
_ZERO_COUNTS = ("ACCELChannelCount", "ANGACCELChannelCount", "GYROChannelCount", "JNTANGChannelCount",
                "LATENCYChannelCount", "MAGNChannelCount", "MISCChannelCount", "ORNTChannelCount",
                "VELChannelCount")


def bids_label(text: str) -> str:
    """An alphanumeric BIDS label (other characters removed).

    Raises
    ------
    WriteError
        ``bids_label`` when nothing alphanumeric is left.
    """
    out = re.sub(r"[^A-Za-z0-9]", "", str(text))
    if not out:
        raise WriteError("bids_label", f"{text!r} has no letter or digit; BIDS labels must be alphanumeric.")
    return out


def channel_type(a) -> str:
    """``EMG`` for a voltage channel not named like a force/trigger/IMU signal, else ``MISC``."""
    if vocab.emg_unit_factor(a.unit) is None:
        return "MISC"
    if "EMG" in (a.label + " " + a.description).upper():
        return "EMG"
    return "MISC" if _NOT_EMG.search(a.label + " " + a.description) else "EMG"


def cell(v) -> str:
    """One TSV cell: ``n/a`` for missing values, floats in their shortest round-tripping form."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v).replace("\t", " ").replace("\n", " ")


def write_tsv(path: Path, header: list[str] | None, rows) -> None:
    """A UTF-8, tab-separated file with ``\\n`` line ends (no header row when ``header`` is None)."""
    lines = ([("\t".join(header))] if header else []) + ["\t".join(cell(v) for v in r) for r in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_json(path: Path, obj: dict) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- one run
@dataclass
class BidsChannel:
    """One analog channel (attribute names as an ingest ``AnalogChannel``: the EDF writer takes both)."""

    label: str
    unit: str
    rate_hz: float
    data: np.ndarray
    description: str = ""
    type: str = "EMG"
    extra: dict = field(default_factory=dict)  # further _channels.tsv columns (defined in _channels.json)


@dataclass
class BidsEvent:
    time_s: float
    event: str
    side: str
    source: str = "annotated"


@dataclass
class BidsRun:
    """What one run writes: its entities, EMG channels, events, markers and sidecar fields."""

    subject: str  # BIDS labels (alphanumeric)
    session: str | None
    task: str
    run: int | None = None
    channels: list[BidsChannel] = field(default_factory=list)
    events: list[BidsEvent] = field(default_factory=list)
    markers_mm: np.ndarray | None = None  # frames x markers x 3
    marker_names: list[str] = field(default_factory=list)
    point_rate_hz: float | None = None
    emg_sidecar: dict = field(default_factory=dict)  # merged over the required fields
    motion_sidecar: dict = field(default_factory=dict)
    channel_columns: dict = field(default_factory=dict)  # extra channels.tsv column -> its _channels.json entry

    @property
    def subject_id(self) -> str:  # the EDF+ patient code
        return self.subject

    @property
    def analogs(self) -> list[BidsChannel]:
        return self.channels

    @property
    def folder(self) -> str:
        return f"sub-{self.subject}" + (f"/ses-{self.session}" if self.session else "")

    def stem(self, tracksys: str | None = None) -> str:
        return (f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "") + f"_task-{self.task}"
                + (f"_tracksys-{tracksys}" if tracksys else "") + (f"_run-{self.run}" if self.run else ""))


def write_run(root: Path, run: BidsRun, *, bdf: bool = True, tracksys: str = "omc") -> tuple[list[str], list[str]]:
    """Write the EMG and motion files of one run under ``root``.

    Returns
    -------
    (list of str, list of str)
        Data files written (paths relative to the subject/session folder, as in ``scans.tsv``) and notes
        (EDF rounding, padding, shortened labels).

    Raises
    ------
    WriteError
        The codes of :func:`warehouse.serving.edf_write.write_edf`.
    """
    base = Path(root) / run.folder
    files, notes = [], []
    if run.channels:
        name, n = _write_emg(base / "emg", run, bdf)
        files.append(f"emg/{name}")
        notes += [f"{run.stem()}: {x}" for x in n]
    if run.markers_mm is not None and run.marker_names:
        files.append(f"motion/{_write_motion(base / 'motion', run, bids_label(tracksys))}")
    return files, notes


def _write_emg(folder: Path, run: BidsRun, bdf: bool) -> tuple[str, list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    stem = run.stem()
    name = f"{stem}_emg.{'bdf' if bdf else 'edf'}"
    notes = write_edf(folder / name, run, bdf=bdf)
    types = [c.type for c in run.channels]
    rates = [c.rate_hz for c in run.channels if c.type == "EMG"] or [c.rate_hz for c in run.channels]
    extra = list(dict.fromkeys(k for c in run.channels for k in c.extra))
    write_tsv(folder / f"{stem}_channels.tsv",
              ["name", "type", "units", "description", "sampling_frequency", "status", "n_samples"] + extra,
              [[c.label, c.type, c.unit, c.description, float(c.rate_hz), "good", len(c.data)]
               + [c.extra.get(k) for k in extra] for c in run.channels])
    write_json(folder / f"{stem}_channels.json",
               {"n_samples": N_SAMPLES_DOC, **{k: run.channel_columns.get(k, {"Description": k}) for k in extra}})
    duration = max(len(c.data) / c.rate_hz for c in run.channels)
    side = {"TaskName": run.task, "EMGPlacementScheme": "Other",
            "EMGPlacementSchemeDescription": "not recorded in the source file", "EMGReference": "n/a",
            "SamplingFrequency": float(Counter(rates).most_common(1)[0][0]), "PowerLineFrequency": "n/a",
            "SoftwareFilters": "n/a", "RecordingType": "continuous", "RecordingDuration": round(duration, 6),
            "EMGChannelCount": types.count("EMG"), "MISCChannelCount": types.count("MISC")}
    side.update({k: v for k, v in run.emg_sidecar.items() if v is not None})
    write_json(folder / f"{stem}_emg.json", side)
    _write_events(folder / f"{stem}_events", run.events)
    return name, notes


def _write_events(stem_path: Path, events: list) -> None:
    if not events:
        return
    rows = [[float(e.time_s), 0.0, e.event, e.side, getattr(e, "source", None) or "annotated"]
            for e in sorted(events, key=lambda e: (e.time_s, e.side, e.event))]
    write_tsv(Path(f"{stem_path}.tsv"), ["onset", "duration"] + list(EVENT_COLUMNS), rows)
    write_json(Path(f"{stem_path}.json"), EVENT_COLUMNS)


def _write_motion(folder: Path, run: BidsRun, tracksys: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    stem = run.stem(tracksys)
    xyz = np.asarray(run.markers_mm, dtype=float)
    names, rows, used = [], [], Counter()
    for label in run.marker_names:
        used[label] += 1
        base = label if used[label] == 1 else f"{label}{used[label]}"
        for comp in ("x", "y", "z"):
            names.append(f"{base}_{comp}")
            rows.append([f"{base}_{comp}", comp, "POS", label, "mm", "global"])
    write_tsv(folder / f"{stem}_channels.tsv",
              ["name", "component", "type", "tracked_point", "units", "reference_frame"], rows)
    write_json(folder / f"{stem}_channels.json", {"reference_frame": {
        "Description": "Coordinate frame of the positions", "Levels": {"global": {
            "Description": "The site's laboratory frame, as recorded (myomap does not transform positions)"}}}})
    flat = xyz.reshape(xyz.shape[0], -1)
    lines = ["\t".join("n/a" if np.isnan(v) else f"{v:.9g}" for v in row) for row in flat]
    (folder / f"{stem}_motion.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    side = {"TaskName": run.task, "SamplingFrequency": float(run.point_rate_hz or 0),
            "TrackingSystemName": tracksys, "MissingValues": "n/a", "RecordingDuration":
            round(xyz.shape[0] / run.point_rate_hz, 6) if run.point_rate_hz else "n/a",
            "MotionChannelCount": len(names), "POSChannelCount": len(names),
            "TrackedPointsCount": len(run.marker_names), **{k: 0 for k in _ZERO_COUNTS}}
    side.update({k: v for k, v in run.motion_sidecar.items() if v is not None})
    write_json(folder / f"{stem}_motion.json", side)
    if run.events:
        _write_events(folder / f"{stem}_events", run.events)
    return f"{stem}_motion.tsv"


# --------------------------------------------------------------------------- dataset level
def write_description(root: Path, *, name: str, generated_by: dict | None = None, extra: dict | None = None,
                      dataset_type: str = "raw") -> None:
    desc = {"Name": name, "BIDSVersion": BIDS_VERSION, "DatasetType": dataset_type,
            "GeneratedBy": [generated_by or {"Name": "myomap"}]}
    desc.update(extra or {})
    write_json(Path(root) / "dataset_description.json", desc)


def write_participants(root: Path, participants: dict[str, dict], docs: dict[str, dict] | None = None, *,
                       sort_columns: bool = False) -> None:
    """``participants.tsv`` (``participant_id`` then the union of the given columns) and ``participants.json``."""
    cols = list(dict.fromkeys(k for v in participants.values() for k in v))
    cols = sorted(cols) if sort_columns else cols
    write_tsv(Path(root) / "participants.tsv", ["participant_id"] + cols,
              [[pid] + [participants[pid].get(c) for c in cols] for pid in sorted(participants)])
    write_json(Path(root) / "participants.json",
               {c: (docs or {}).get(c, {"Description": f"{c} as provided to myomap"}) for c in cols})


def write_bids(root: Path, items, *, dataset_name: str = "myomap export", power_line_hz: float | None = None,
               tracksys: str = "omc", bdf: bool = False) -> list[str]:
    """Write ingest-style recordings as an EMG-BIDS + Motion-BIDS dataset.

    Parameters
    ----------
    root
        Dataset folder (created; existing files with the same names are overwritten).
    items
        Iterable of ``(subject_id, session_id or None, task, recording, extra participant fields or None)``;
        ``recording`` has ``analogs``, ``events``, ``markers_mm``, ``marker_labels``, ``point_rate_hz``,
        ``plates``, ``ultrasound``, ``measurements``, ``vendor`` and ``software`` (an ingest ``Recording``).
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
    WriteError
        ``bids_label`` for ids without letters or digits, and the codes of
        :func:`warehouse.serving.edf_write.write_edf`.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    items = list(items)
    notes: list[str] = []
    keys = [(bids_label(s), bids_label(x) if x else None, bids_label(t)) for s, x, t, _, _ in items]
    counts, seen = Counter(keys), Counter()
    participants: dict[str, dict] = {}
    for (sub_id, ses_id, task, rec, extra), key in zip(items, keys):
        for raw, lab, what in ((sub_id, key[0], "subject"), (ses_id, key[1], "session"), (task, key[2], "task")):
            if raw and str(raw) != lab:
                notes.append(f"{what} {raw!r} written as BIDS label {lab!r}")
        seen[key] += 1
        run = BidsRun(*key, run=seen[key] if counts[key] > 1 else None, events=list(rec.events),
                      markers_mm=rec.markers_mm, marker_names=list(rec.marker_labels or []),
                      point_rate_hz=rec.point_rate_hz,
                      emg_sidecar={"PowerLineFrequency": power_line_hz, "Manufacturer": rec.vendor,
                                   "SoftwareVersions": rec.software},
                      channel_columns={})
        run.channels = [BidsChannel(a.label, a.unit, a.rate_hz, a.data, a.description, channel_type(a))
                        for a in rec.analogs]
        participants.setdefault(f"sub-{key[0]}", {}).update(extra or {})
        if rec.plates:
            notes.append(f"{run.stem()}: {len(rec.plates)} force plates not written (no force-plate datatype in BIDS)")
        if rec.ultrasound or rec.measurements:
            notes.append(f"{run.stem()}: ultrasound series / measurements not written (no BIDS datatype)")
        notes += write_run(root, run, bdf=bdf, tracksys=tracksys)[1]
    write_description(root, name=dataset_name)
    write_participants(root, participants, sort_columns=True)
    readme = root / "README"
    if not readme.exists():
        readme.write_text(f"{dataset_name}\n\nExported by myomap (EMG-BIDS + Motion-BIDS).\n", encoding="utf-8")
    return notes
