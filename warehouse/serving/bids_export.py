"""A cohort of the lake as an EMG-BIDS + Motion-BIDS dataset (``myomap extract --format bids``).

Called by :func:`warehouse.serving.extracts.extract` with the extract's cohort (one pinned
snapshot, the reader's member-scoped views, the consortium rules, the ``--cohort`` filter), so a
BIDS extract holds exactly the trials, channels and events a Parquet extract of the same cohort
holds. Layout (see ``docs/api.md``)::

    dataset_description.json  GeneratedBy: myomap and its code version; the DuckLake snapshot
    participants.tsv/.json    participant_id (pseudonym), site, sex, mass_kg, height_m
    README.md, .bidsignore (manifest.json), manifest.json (the extract manifest)
    scans.json, sessions.json (column definitions, inherited by every scans/sessions file)
    sub-<s>/sub-<s>_sessions.tsv                     session_id, condition, terrain, session_date
    sub-<s>/ses-<x>/sub-<s>_ses-<x>_scans.tsv        filename, source_sha256 (the file's SHA-256 in the lake)
    sub-<s>/ses-<x>/emg/..._task-<t>_run-<n>_emg.bdf raw EMG in mV (BDF+, 24 bit; EDF+ on request)
                      + _emg.json, _channels.tsv (target_muscle, side, myomap_channel, source_label),
                        _events.tsv (gait events: onset, duration, trial_type, side, source)
    sub-<s>/ses-<x>/motion/..._tracksys-omc_run-<n>_motion.tsv  marker trajectories (mm) + sidecars, events
    derivatives/myomap/dataset_description.json, README.md
    derivatives/myomap/sub-<s>/ses-<x>/emg/..._run-<n>_desc-onsets_events.tsv   activation onsets
    derivatives/myomap/sub-<s>/ses-<x>/emg/..._run-<n>_desc-cycles_events.tsv   gait cycles

Only pseudonyms leave the lake: BIDS entities come from the subject, session, task and run (runs
numbered in trial order), never from a trial id or a file name (which quote the site's inbox
path); the EDF header holds the pseudonym and no date. Force plates (no BIDS datatype), ultrasound
and envelopes are not written (the manifest's notes say so); extract them as Parquet.
"""
from __future__ import annotations

import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import fsspec

import numpy as np
import pyarrow as pa

from warehouse.serving.bids_write import (
    BIDS_VERSION,
    EVENT_COLUMNS,
    BidsChannel,
    BidsEvent,
    BidsRun,
    bids_label,
    write_description,
    write_json,
    write_participants,
    write_run,
    write_tsv,
)

#: Motion tracking system label (optical motion capture).
TRACKSYS = "omc"
#: What every extract leaves out of a BIDS export, and why.
NOT_IN_BIDS = ("force plates and GRF (BIDS 1.11 has no force-plate datatype): extract grf/force_plates as Parquet",
               "ultrasound series and measurements (no BIDS datatype)",
               "EMG envelopes (a myomap derivative): extract emg_envelopes as Parquet, or Lake.cycles()")
CHANNEL_COLUMNS = {
    "target_muscle": {"Description": "Muscle recorded (myomap muscle vocabulary, schemas/vocab.py)"},
    "side": {"Description": "Body side of the muscle", "Levels": {"L": "left", "R": "right"}},
    "myomap_channel": {"Description": "Channel number of the trial in the lake (emg_channels.channel)"},
    "source_label": {"Description": "Channel label in the site's original file"},
}
PARTICIPANT_COLUMNS = {
    "site": {"Description": "Consortium site that recorded the participant"},
    "sex": {"Description": "Sex as stated by the site", "Levels": {"F": "female", "M": "male", "X": "other"}},
    "mass_kg": {"Description": "Body mass", "Units": "kg"},
    "height_m": {"Description": "Body height", "Units": "m"},
}
SESSION_COLUMNS = {
    "condition": {"Description": "Session condition (e.g. fresh, fatigued)"},
    "terrain": {"Description": "Terrain (e.g. treadmill, overground)"},
    "session_date": {"Description": "Recording date (YYYY-MM-DD) as given by the site"},
}
SCAN_COLUMNS = {"source_sha256": {"Description": "SHA-256 of the site's original file (trials.sha256 in the lake)"}}
ONSET_COLUMNS = {
    "trial_type": {"Description": "Muscle activation burst", "Levels": {"activation": "an EMG burst"}},
    "muscle": {"Description": "Muscle (myomap vocabulary)"}, "side": EVENT_COLUMNS["side"],
    "cycle": {"Description": "Gait cycle of the side (0-based, see desc-cycles)"},
    "burst": {"Description": "Burst number within the cycle (0 = first)"},
    "method": {"Description": "Onset detector (hodges_bui, tkeo, double_threshold)"},
    "is_default": {"Description": "Row of the default detector"},
    "onset_ms": {"Description": "Onset relative to the foot strike starting the cycle", "Units": "ms"},
    "offset_ms": {"Description": "Offset relative to the same foot strike", "Units": "ms"},
    "onset_pct": {"Description": "Onset in % of the cycle", "Units": "%"},
    "offset_pct": {"Description": "Offset in % of the cycle", "Units": "%"},
    "bias_corrected": {"Description": "The documented method bias was subtracted"},
    "params_hash": {"Description": "Pipeline version and parameters hash"},
}
CYCLE_COLUMNS = {
    "trial_type": {"Description": "Gait cycle", "Levels": {"gait_cycle": "foot strike to next ipsilateral strike"}},
    "side": EVENT_COLUMNS["side"], "cycle": {"Description": "Cycle number of the side (0-based)"},
    "foot_off_s": {"Description": "Foot off within the cycle, from the start of the recording", "Units": "s"},
    "stance_pct": {"Description": "Stance duration in % of the cycle", "Units": "%"},
    "valid": {"Description": "Usable for analysis"}, "reason": {"Description": "Why the cycle is excluded"},
    "event_source": {"Description": "Source of the events used (annotated, force_plate, kinematic)"},
    "peak_force_z_n": {"Description": "Peak vertical ground reaction force of the stance", "Units": "N"},
    "impulse_z_ns": {"Description": "Vertical impulse of the stance", "Units": "N s"},
}

TableSql = Callable[[str], tuple[str, list]]


def _query(con, table_sql: TableSql, table: str, trial_id: str | None = None, order: str | None = None) -> pa.Table:
    sql, params = table_sql(table)
    if trial_id is None:
        return _arrow(con.execute(sql, params))
    return _arrow(con.execute(f"SELECT * FROM ({sql}) q WHERE q.trial_id = ?"
                              + (f" ORDER BY {order}" if order else ""), params + [trial_id]))


def _arrow(result) -> pa.Table:
    out = result.arrow()
    return out.read_all() if isinstance(out, pa.RecordBatchReader) else out


# --------------------------------------------------------------------------- labels
def bids_entities(trials: list[dict]) -> dict[str, tuple[str, str, str, int]]:
    """trial_id -> (subject, session, task, run) BIDS labels, from pseudonyms only.

    The session label drops the subject prefix a session id usually repeats (``LYO01-S1`` -> ``S1``)
    when that keeps the subject's sessions apart; runs count the trials of one subject, session and
    task in trial order (1, 2, ...).

    Raises
    ------
    warehouse.serving.edf_write.WriteError
        ``bids_label`` for an id with no letter or digit, ``bids_label_clash`` when two subjects (or
        two sessions of a subject) become the same label.
    """
    from warehouse.serving.edf_write import WriteError

    subs: dict[str, str] = {}
    for t in trials:
        subs.setdefault(t["subject_id"], bids_label(t["subject_id"]))
    _no_clash(subs, "subjects", WriteError)
    sessions: dict[str, dict[str, str]] = defaultdict(dict)
    for t in trials:
        full = bids_label(t["session_id"])
        short = full[len(subs[t["subject_id"]]):] if full.startswith(subs[t["subject_id"]]) else full
        sessions[t["subject_id"]][t["session_id"]] = short or full
    for subj, ses in sessions.items():
        if len(set(ses.values())) < len(ses):  # shortened labels clash: keep the full ones
            sessions[subj] = {s: bids_label(s) for s in ses}
        _no_clash(sessions[subj], f"sessions of subject {subj}", WriteError)
    out, runs = {}, Counter()
    for t in sorted(trials, key=lambda t: (t["subject_id"], t["session_id"], t["trial_id"])):
        key = (subs[t["subject_id"]], sessions[t["subject_id"]][t["session_id"]], bids_label(t["task"] or "unknown"))
        runs[key] += 1
        out[t["trial_id"]] = (*key, runs[key])
    return out


def _no_clash(labels: dict[str, str], what: str, error) -> None:
    seen: dict[str, str] = {}
    for raw, lab in labels.items():
        if lab in seen:
            raise error("bids_label_clash", f"{what} {seen[lab]!r} and {raw!r} both become the BIDS label {lab!r}; "
                        "narrow the cohort or rename one in the site manifest.")
        seen[lab] = raw


# --------------------------------------------------------------------------- one trial
def _channels(con, table_sql: TableSql, trial_id: str) -> list[BidsChannel]:
    chans = _query(con, table_sql, "emg_channels", trial_id, "channel").to_pylist()
    if not chans:
        return []
    samples = _query(con, table_sql, "emg_samples", trial_id, "channel, sample_index")
    ch = samples.column("channel").to_numpy()
    idx = samples.column("sample_index").to_numpy()
    val = samples.column("emg_mv").to_numpy(zero_copy_only=False).astype(np.float64)
    names = Counter()
    out = []
    for c in chans:
        sel = ch == c["channel"]
        if not sel.any():
            continue
        data = np.full(int(idx[sel].max()) + 1, np.nan)
        data[idx[sel]] = val[sel]
        name = f"{c['side']}_{c['muscle']}"
        names[name] += 1
        out.append(BidsChannel(name if names[name] == 1 else f"{name}_{names[name]}", "mV", float(c["rate_hz"]),
                               data, f"{c['side']} {c['muscle'].replace('_', ' ')}", "EMG",
                               {"target_muscle": c["muscle"], "side": c["side"], "myomap_channel": c["channel"],
                                "source_label": c["label"]}))
    return out


def _markers(con, table_sql: TableSql, trial_id: str) -> tuple[np.ndarray | None, list[str]]:
    m = _query(con, table_sql, "markers", trial_id, "marker, frame")
    if not m.num_rows:
        return None, []
    names = list(dict.fromkeys(m.column("marker").to_pylist()))
    frames = m.column("frame").to_numpy()
    xyz = np.full((int(frames.max()) + 1, len(names), 3), np.nan)
    pos = {n: i for i, n in enumerate(names)}
    k = np.array([pos[n] for n in m.column("marker").to_pylist()])
    for j, col in enumerate(("x_mm", "y_mm", "z_mm")):
        xyz[frames, k, j] = m.column(col).to_numpy(zero_copy_only=False).astype(np.float64)
    return xyz, names


def build_run(con, table_sql: TableSql, trial: dict, entities: tuple[str, str, str, int]) -> BidsRun:
    """The BIDS run of one lake trial: EMG channels, gait events, markers, sidecar fields."""
    sub, ses, task, run_n = entities
    events = [BidsEvent(e["time_s"], e["event"], e["side"], e["source"])
              for e in _query(con, table_sql, "gait_events", trial["trial_id"], "time_s, side, event").to_pylist()]
    xyz, names = _markers(con, table_sql, trial["trial_id"])
    unknown = {k: "n/a" for k in ("HardwareFilters", "ManufacturersModelName", "DeviceSerialNumber",
                                  "ElectrodeManufacturer", "ElectrodeManufacturersModelName", "InstitutionName",
                                  "InstitutionAddress", "InstitutionalDepartmentName")}
    common = {"Manufacturer": trial["vendor"] or "n/a", "SoftwareVersions": trial["software"] or "n/a",
              "TaskDescription": f"{trial['task'] or 'unknown'} ({trial['condition'] or 'condition not given'})",
              "Instructions": "n/a"}
    return BidsRun(sub, ses, task, run_n, channels=_channels(con, table_sql, trial["trial_id"]), events=events,
                   markers_mm=xyz, marker_names=names, point_rate_hz=trial["point_rate_hz"],
                   emg_sidecar={**unknown, **common, "PowerLineFrequency": trial["mains_hz"] or "n/a"},
                   motion_sidecar={**{k: unknown[k] for k in ("ManufacturersModelName", "DeviceSerialNumber",
                                                             "InstitutionName", "InstitutionAddress",
                                                             "InstitutionalDepartmentName")}, **common,
                                   "SubjectArtefactDescription": "n/a"},
                   channel_columns=CHANNEL_COLUMNS)


def _derivatives(con, table_sql: TableSql, trial: dict, run: BidsRun, root: Path) -> list[str]:
    """Activation onsets and gait cycles of one run as events files under ``derivatives/myomap``."""
    folder = root / "derivatives" / "myomap" / run.folder / "emg"
    cycles = _query(con, table_sql, "gait_cycles", trial["trial_id"], "side, cycle").to_pylist()
    onsets = _query(con, table_sql, "activation_onsets", trial["trial_id"],
                    "muscle, side, cycle, method, burst").to_pylist()
    start = {(c["side"], c["cycle"]): c["start_s"] for c in cycles}
    written = []
    rows = []
    for o in onsets:
        t0 = start.get((o["side"], o["cycle"]))
        if t0 is None or o["onset_ms"] is None:
            continue
        dur = (o["offset_ms"] - o["onset_ms"]) / 1000 if o["offset_ms"] is not None else None
        rows.append([t0 + o["onset_ms"] / 1000, dur, "activation"] + [o[k] for k in list(ONSET_COLUMNS)[1:]])
    if rows:
        folder.mkdir(parents=True, exist_ok=True)
        write_tsv(folder / f"{run.stem()}_desc-onsets_events.tsv", ["onset", "duration"] + list(ONSET_COLUMNS),
                  sorted(rows, key=lambda r: (r[0], str(r[3]), str(r[4]))))
        write_json(folder / f"{run.stem()}_desc-onsets_events.json", ONSET_COLUMNS)
        written.append(f"{run.stem()}_desc-onsets_events.tsv")
    crow = [[c["start_s"], c["duration_s"], "gait_cycle"] + [c[k] for k in list(CYCLE_COLUMNS)[1:]]
            for c in cycles if c["start_s"] is not None]
    if crow:
        folder.mkdir(parents=True, exist_ok=True)
        write_tsv(folder / f"{run.stem()}_desc-cycles_events.tsv", ["onset", "duration"] + list(CYCLE_COLUMNS),
                  sorted(crow, key=lambda r: (r[0], r[3])))
        write_json(folder / f"{run.stem()}_desc-cycles_events.json", CYCLE_COLUMNS)
        written.append(f"{run.stem()}_desc-cycles_events.tsv")
    return written


# --------------------------------------------------------------------------- the dataset
TRIALS_SQL = """
SELECT t.trial_id, t.subject_id, t.session_id, t.site_id, t.sha256, t.vendor, t.software, t.point_rate_hz,
       s.task, s.condition, s.terrain, s.session_date, coalesce(s.mains_hz, st.mains_hz) AS mains_hz
FROM trials t JOIN _cohort_trials c ON c.trial_id = t.trial_id JOIN sessions s ON s.session_id = t.session_id
LEFT JOIN sites st ON st.site_id = t.site_id
ORDER BY t.subject_id, t.session_id, t.trial_id"""


def write_cohort_bids(con, root: Path, *, table_sql: TableSql, generated_by: dict, readme: str,
                      bdf: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    """Write the cohort selected in ``con`` (temp tables ``_cohort_sessions``, ``_cohort_trials``) to ``root``.

    Parameters
    ----------
    con
        The extract's scoped connection (``extracts.open_cohort``).
    root : Path
        Empty local folder.
    table_sql
        ``table -> (sql, params)``: the extract's SELECT of a table restricted to the cohort.
    generated_by : dict
        ``GeneratedBy`` entry (name, version = code version, description with the snapshot).
    readme : str
        Text of ``README.md`` (what, cohort, sharing, snapshot).
    bdf : bool
        BDF+ (24 bit, default) rather than EDF+ (16 bit).

    Returns
    -------
    dict
        ``runs``, ``subjects``, ``sessions``, ``data_files`` (relative paths) and ``notes``.

    Raises
    ------
    warehouse.serving.edf_write.WriteError
        ``bids_empty`` (no trial), labels that clash, or signals EDF/BDF cannot store.
    """
    from warehouse.serving.edf_write import WriteError

    root = Path(root)
    trials = _arrow(con.execute(TRIALS_SQL)).to_pylist()
    if not trials:
        raise WriteError("bids_empty", "the cohort selects no trial you may see, and an empty BIDS dataset is not "
                         "valid; widen the cohort (the sites excluded by the sharing rules are listed by "
                         "`myomap extract --format parquet --tables sites`).")
    ents = bids_entities(trials)
    participants, sessions, scans = {}, defaultdict(dict), defaultdict(list)
    subjects = {r["subject_id"]: r for r in _query(con, table_sql, "subjects").to_pylist()}
    data_files, notes, n_runs = [], [], 0
    for i, t in enumerate(trials):
        if progress:
            progress(f"run {i + 1}/{len(trials)}")
        run = build_run(con, table_sql, t, ents[t["trial_id"]])
        files, n = write_run(root, run, bdf=bdf, tracksys=TRACKSYS)
        notes += n
        if not files:
            notes.append(f"{run.stem()}: no EMG channel or marker in the cohort's selection; not written")
            continue
        n_runs += 1
        data_files += [f"{run.folder}/{f}" for f in files]
        data_files += [f"derivatives/myomap/{run.folder}/emg/{f}" for f in _derivatives(con, table_sql, t, run, root)]
        scans[run.folder] += [[f, t["sha256"]] for f in files]
        subj = subjects.get(t["subject_id"], {})
        participants[f"sub-{run.subject}"] = {"site": t["site_id"], "sex": subj.get("sex"),
                                              "mass_kg": subj.get("mass_kg"), "height_m": subj.get("height_m")}
        sessions[run.subject][f"ses-{run.session}"] = [t["condition"], t["terrain"], t["session_date"]]
    for folder, rows in scans.items():
        sub, ses = folder.split("/")
        write_tsv(root / folder / f"{sub}_{ses}_scans.tsv", ["filename"] + list(SCAN_COLUMNS), rows)
    for sub, rows in sessions.items():
        write_tsv(root / f"sub-{sub}" / f"sub-{sub}_sessions.tsv", ["session_id"] + list(SESSION_COLUMNS),
                  [[k] + v for k, v in sorted(rows.items())])
    write_json(root / "scans.json", SCAN_COLUMNS)
    write_json(root / "sessions.json", SESSION_COLUMNS)
    write_participants(root, participants, PARTICIPANT_COLUMNS)
    write_description(root, name="myomap cohort export", generated_by=generated_by,
                      extra={"SourceDatasets": [{"Version": generated_by.get("Description", "")}]})
    (root / "README.md").write_text(readme, encoding="utf-8")
    (root / ".bidsignore").write_text("manifest.json\n", encoding="utf-8")
    deriv = root / "derivatives" / "myomap"
    deriv.mkdir(parents=True, exist_ok=True)
    write_description(deriv, name="myomap analysis derivatives", generated_by=generated_by,
                      dataset_type="derivative", extra={"SourceDatasets": [{"URL": "../../"}]})
    (deriv / "README.md").write_text(
        "myomap analysis derivatives\n\nPer run: desc-onsets_events.tsv (muscle activation onsets/offsets per gait "
        "cycle, every detector, onset in s from the start of the recording and relative to the cycle's foot "
        "strike) and desc-cycles_events.tsv (gait cycles, foot strike to foot strike, with validity). Column "
        "meanings and units are in the JSON sidecars; methods in myomap's docs/methods_timing.md.\n",
        encoding="utf-8")
    return {"runs": n_runs, "subjects": len(participants),
            "sessions": sum(len(v) for v in sessions.values()), "data_files": data_files,
            "notes": notes + [f"not in BIDS: {n}" for n in NOT_IN_BIDS], "bids_version": BIDS_VERSION}


def write_extract(cohort, fs, root: str, *, table_sql: TableSql, code_version: str, checksum,
                  progress: Callable[[str], None] | None = None) -> tuple[list[dict], set, dict]:
    """The BIDS form of an extract (:func:`warehouse.serving.extracts.extract` with ``fmt="bids"``).

    ``cohort`` is the extract's ``Cohort``; ``root`` a new or empty folder (local, or ``s3://``:
    written locally, then copied). Returns the manifest's file entries (every file, SHA-256 and
    bytes), the ``params_hash`` values of the derivatives, and notes.
    """
    remote = str(root).startswith("s3://")
    local = tempfile.mkdtemp(prefix="myomap-bids-") if remote else root
    generated = {"Name": "myomap", "Version": code_version,
                 "Description": f"DuckLake snapshot {cohort.snapshot_id} ({cohort.snapshot_time}), cohort "
                                f"'{cohort.filter.canonical() or 'everyone'}'"}
    try:
        info = write_cohort_bids(cohort.con, Path(local), table_sql=table_sql, generated_by=generated,
                                 readme=_readme(cohort, code_version), progress=progress)
        files = []
        for f in sorted(p for p in Path(local).rglob("*") if p.is_file()):
            digest, size = checksum(fsspec.filesystem("file"), str(f))
            files.append({"file": f.relative_to(local).as_posix(), "sha256": digest, "bytes": size})
        if remote:
            fs.put(f"{local}/", f"{root}/", recursive=True)
    finally:
        if remote:
            shutil.rmtree(local, ignore_errors=True)
    sql, params = table_sql("activation_onsets")
    hashes = {r[0] for r in cohort.con.execute(f"SELECT DISTINCT params_hash FROM ({sql}) q "
                                               "WHERE params_hash IS NOT NULL", params).fetchall()}
    notes = {"bids": info["notes"], "bids_runs": info["runs"], "bids_data_files": len(info["data_files"])}
    return files, hashes, notes


def _readme(c, code_version: str) -> str:
    excluded = "; ".join(f"{d.site_id} ({', '.join(d.reasons)})" for d in c.excluded) or "none"
    return (f"# myomap cohort export\n\nEMG-BIDS + Motion-BIDS dataset exported by myomap {code_version} from "
            f"DuckLake snapshot {c.snapshot_id} ({c.snapshot_time}).\n\n"
            f"- Cohort filter: `{c.filter.canonical() or 'everyone'}`\n"
            f"- Sites included: {', '.join(c.included_sites) or 'none'}; excluded: {excluded}\n"
            "- Raw EMG in mV (BDF+, one file per run, channels named <side>_<muscle>), marker trajectories in mm "
            f"(Motion-BIDS, tracking system '{TRACKSYS}'), gait events (onset in s from the first sample).\n"
            "- derivatives/myomap: activation onsets and gait cycles per run.\n"
            "- Participants are identified by the sites' pseudonyms only; manifest.json lists every file with its "
            "SHA-256, the sharing rules applied and the snapshot (myomap sql --as-of reproduces it).\n\n"
            "Shared under the consortium's data-sharing agreement: do not redistribute outside it.\n")
