"""Nightly ingest steps (storage side): register files, read + harmonise, commit trials.

Each public function takes small keys (site, relative path, sha256, trial id) and a
:class:`Settings`, opens its own catalog connection, and commits atomically: a trial
and all its rows (channels, samples, plates, GRF, events, file status) land in one
DuckLake transaction, so a killed run never leaves a partial trial.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pyarrow as pa

from schemas import vocab
from warehouse import catalog, zones
from warehouse.manifest import Manifest, ManifestError, parse_manifest
from warehouse.readers import companions_for, is_companion, read_any
from warehouse.readers.base import ReaderError, Recording, emg_unit_factor
from warehouse.settings import Settings

log = logging.getLogger(__name__)

#: Outcome labels returned by :func:`process_file`.
SKIPPED, INGESTED, QUARANTINED, HELD, DUPLICATE = "skipped", "ingested", "quarantined", "held", "duplicate"
COMPANION = "companion"
#: Rows of a batch handed to Great Expectations (the rest is checked with pyarrow, see validation.py).
VALIDATION_GX_ROWS = 20_000


class ContractViolation(Exception):
    """A batch broke its table contract; the file was quarantined."""  # registered; becomes 'ingested' with the file it accompanies
#: Analog labels that are never EMG, whatever their description says.
NOT_EMG = re.compile(r"foot ?switch|fsw|trigger|sync|force|moment|acc[\. ]|gyro|mag[\. ]|torque|angle", re.I)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class SiteScan:
    site: str
    files: list[str]
    manifest_error: str | None = None


# --------------------------------------------------------------------------- manifests
def load_manifest(settings: Settings, site: str) -> Manifest:
    path = f"{zones.inbox(settings, site)}/manifest.yaml"
    if not zones.exists(settings, path):
        raise ManifestError("manifest_missing", f"Site '{site}' has no manifest.yaml: files are held until one "
                            "claims them (`myomap manifest init {site}` scaffolds it).")
    with zones.filesystem(settings).open(path, "r") as fh:
        return parse_manifest(fh.read(), site=site)


def sync_site(settings: Settings, site: str, run_id: str) -> SiteScan:
    """List a site's inbox and upsert its manifest's subjects and sessions."""
    files = [f for f in zones.list_site_files(settings, site)
             if PurePosixPath(f).name not in ("manifest.yaml", "manifest.yml")]
    try:
        man = load_manifest(settings, site)
    except ManifestError as exc:
        return SiteScan(site, files, f"{exc.reason_code}: {exc.message}")
    subjects = pa.table({
        "subject_id": [str(s["id"]) for s in man.subjects],
        "site_id": [site] * len(man.subjects),
        "sex": [s.get("sex") for s in man.subjects],
        "mass_kg": pa.array([s.get("mass_kg") for s in man.subjects], pa.float64()),
        "height_m": pa.array([s.get("height_m") for s in man.subjects], pa.float64()),
    })
    sessions = pa.table({
        "session_id": [s.id for s in man.sessions],
        "site_id": [site] * len(man.sessions),
        "subject_id": [s.subject for s in man.sessions],
        "session_date": pa.array([dt.date.fromisoformat(s.date) if s.date else None for s in man.sessions],
                                 pa.date32()),
        "condition": [s.condition for s in man.sessions],
        "task": [s.task for s in man.sessions],
        "terrain": [s.terrain for s in man.sessions],
        "mains_hz": pa.array([man.mains_hz] * len(man.sessions), pa.float64()),
    })

    site_row = pa.table({
        "site_id": [site], "mains_hz": pa.array([man.mains_hz], pa.float64()), "timezone": [man.timezone],
        "embargo_until": pa.array([dt.date.fromisoformat(man.embargo_until) if man.embargo_until else None],
                                  pa.date32()),
        "consent": [",".join(map(str, man.consent)) if man.consent else None],
    })

    def body(con):
        con.execute("DELETE FROM sites WHERE site_id = ?", [site])
        con.execute("INSERT INTO sites BY NAME SELECT * FROM site_arrow")
        con.execute("DELETE FROM subjects WHERE site_id = ?", [site])
        con.execute("INSERT INTO subjects BY NAME SELECT * FROM subjects_arrow")
        con.execute("DELETE FROM sessions WHERE site_id = ?", [site])
        con.execute("INSERT INTO sessions BY NAME SELECT * FROM sessions_arrow")

    con = catalog.connect(settings)
    try:
        con.register("subjects_arrow", subjects)
        con.register("sessions_arrow", sessions)
        con.register("site_arrow", site_row)
        clash = con.execute(
            "SELECT 'subject ' || subject_id || ' (site ' || site_id || ')' FROM subjects WHERE site_id <> ? AND "
            "subject_id IN (SELECT subject_id FROM subjects_arrow) UNION ALL SELECT 'session ' || session_id || "
            "' (site ' || site_id || ')' FROM sessions WHERE site_id <> ? AND session_id IN "
            "(SELECT session_id FROM sessions_arrow)", [site, site]).fetchall()
        if clash:
            return SiteScan(site, files, "manifest_id_conflict: subject and session ids must be unique across the "
                            f"consortium; already used by another site: {', '.join(r[0] for r in clash[:5])}. "
                            "Prefix them with the site code.")
        current = con.execute("SELECT count(*) FROM subjects WHERE site_id = ?", [site]).fetchone()[0]
        cur_s = con.execute("SELECT count(*) FROM sessions WHERE site_id = ?", [site]).fetchone()[0]
        unchanged = current == len(man.subjects) and cur_s == len(man.sessions) and _same(con, site)
        if not unchanged:
            catalog.write_atomically(settings, con, body, what=f"sync manifest {site}")
    finally:
        con.close()
    return SiteScan(site, files)


def _same(con, site: str) -> bool:
    """True when the stored subjects/sessions equal the manifest's (avoid empty snapshots)."""
    a = con.execute("SELECT count(*) FROM (SELECT * FROM subjects WHERE site_id = ? EXCEPT "
                    "SELECT * FROM subjects_arrow)", [site]).fetchone()[0]
    b = con.execute("SELECT count(*) FROM (SELECT * FROM sessions WHERE site_id = ? EXCEPT "
                    "SELECT * FROM sessions_arrow)", [site]).fetchone()[0]
    c = con.execute("SELECT count(*) FROM (SELECT * FROM site_arrow EXCEPT "
                    "SELECT * FROM sites WHERE site_id = ?)", [site]).fetchone()[0]
    return a == 0 and b == 0 and c == 0


# --------------------------------------------------------------------------- files
def process_file(settings: Settings, site: str, rel_path: str, run_id: str, *, hold: str | None = None) -> dict:
    """Register one inbox file and ingest it if a session claims it.

    Returns a small dict: ``{"outcome", "sha256", "trial_id", "reason", "new"}`` where
    ``new`` says whether the lake changed. Re-processing bytes already ingested,
    quarantined or marked duplicate is a no-op; held files are re-checked each night.
    ``hold`` (a reason, e.g. the site's manifest problem) registers the file and holds it.
    """
    seen = {"hold": hold}
    result = _process_file(settings, site, rel_path, run_id, seen)
    result["new"] = result["outcome"] in (INGESTED, QUARANTINED, DUPLICATE) or not seen.get("registered")
    if result["outcome"] == COMPANION:
        result["new"] = not seen.get("registered")
    if result["outcome"] == SKIPPED:
        result["new"] = False
    return result


def _process_file(settings: Settings, site: str, rel_path: str, run_id: str, seen: dict) -> dict:
    name = PurePosixPath(rel_path).name
    src = f"{zones.inbox(settings, site)}/{rel_path}"
    con = catalog.connect(settings)
    if not zones.exists(settings, src):  # a retry after the inbox was cleaned: read the kept original
        kept = con.execute("SELECT raw_path FROM files WHERE site_id = ? AND path = ? ORDER BY received_at DESC "
                           "LIMIT 1", [site, rel_path]).fetchone()
        if kept is None:
            con.close()
            raise FileNotFoundError(f"{src} is gone and was never registered")
        src = kept[0]
    sha, size = zones.sha256_of(settings, src)
    try:
        rows = con.execute("SELECT path, status FROM files WHERE sha256 = ? AND site_id = ?",
                           [sha, site]).fetchall()
        mine = [s for p, s in rows if p == rel_path]
        seen["registered"] = bool(mine)
        if mine and mine[0] in ("ingested", "quarantined", "duplicate", "superseded"):
            return {"outcome": SKIPPED, "sha256": sha, "trial_id": None, "reason": mine[0]}
        raw = zones.store_raw(settings, src, sha, name)
        if not mine:
            other_ingested = [p for p, s in rows if s == "ingested" and p != rel_path]
            status = "duplicate" if other_ingested else "held"
            catalog.write_atomically(settings, con, lambda c: c.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
                [sha, site, rel_path, size, now(), status, raw, run_id]), what="register file")
            if status == "duplicate":
                return {"outcome": DUPLICATE, "sha256": sha, "trial_id": None,
                        "reason": f"same bytes as {other_ingested[0]}"}
        parent = PurePosixPath(rel_path).parent
        siblings = [PurePosixPath(f).name for f in zones.list_site_files(settings, site)
                    if PurePosixPath(f).parent == parent]
        if is_companion(name, siblings):
            return {"outcome": COMPANION, "sha256": sha, "trial_id": None, "reason": "companion file"}
        if seen.get("hold"):
            return {"outcome": HELD, "sha256": sha, "trial_id": None, "reason": seen["hold"].split(":")[0]}
        try:
            man = load_manifest(settings, site)
        except ManifestError as exc:
            return {"outcome": HELD, "sha256": sha, "trial_id": None, "reason": exc.reason_code}
        session = man.session_for(rel_path)
        if session is None:
            return {"outcome": HELD, "sha256": sha, "trial_id": None, "reason": "no session claims this file"}
        trial_id = f"{site}:{session.id}:{rel_path}"  # the path keeps Gait.c3d and Gait.trc apart
        companions = {role: f"{zones.inbox(settings, site)}/{str(parent / cname).lstrip('./')}"
                      for role, cname in companions_for(name, siblings).items()}
        try:
            with zones.local_files(settings, {"data": raw, **companions}) as local:
                rec = read_any(local["data"], companions={k: v for k, v in local.items() if k != "data"})
            if rec.duration_s <= 0:
                raise ReaderError("no_frames", "The file holds no samples.")
        except ReaderError as exc:
            _quarantine(settings, con, sha, site, rel_path, "read", exc.reason_code, exc.message, raw, run_id)
            return {"outcome": QUARANTINED, "sha256": sha, "trial_id": None, "reason": exc.reason_code}
        except Exception as exc:  # a reader bug must not stop the night: quarantine with the error
            log.exception("reader crashed on %s", rel_path)
            _quarantine(settings, con, sha, site, rel_path, "read", "reader_error",
                        f"The reader failed unexpectedly ({type(exc).__name__}: {str(exc)[:200]}); "
                        "report it with the file's sha256.", raw, run_id)
            return {"outcome": QUARANTINED, "sha256": sha, "trial_id": None, "reason": "reader_error"}
        chans, chan_issues = harmonise(rec, man.channels)
        companion_shas = [zones.sha256_of(settings, p)[0] for p in companions.values()]
        try:
            _commit_trial(settings, con, site=site, rel_path=rel_path, sha=sha, trial_id=trial_id,
                          session=session, rec=rec, chans=chans, chan_issues=chan_issues, raw=raw,
                          run_id=run_id, companion_shas=companion_shas, session_mains_hz=man.mains_hz,
                          mass_kg=next((s.get("mass_kg") for s in man.subjects
                                        if str(s.get("id")) == session.subject), None))
        except ContractViolation:
            return {"outcome": QUARANTINED, "sha256": sha, "trial_id": None, "reason": "contract_violation"}
        return {"outcome": INGESTED, "sha256": sha, "trial_id": trial_id, "reason": None,
                "n_emg": len(chans), "n_plates": len(rec.plates), "n_events": len(rec.events)}
    finally:
        con.close()


def harmonise(rec: Recording, overrides: dict) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Pick the EMG channels, map labels to (muscle, side), convert to mV.

    Returns the EMG channels and per-channel issues ``(label, reason_code, message)`` for
    EMG-looking channels that could not be mapped or converted (flagged, never guessed).
    """
    chans, issues = [], []
    for i, a in enumerate(rec.analogs):
        if i in rec.plate_channel_indices:
            continue
        res = vocab.resolve_label(a.label, overrides)
        via = "manifest" if overrides and a.label in overrides else "alias"
        side_seen = res.side
        if not res.resolved and a.description.strip():  # e.g. label "RTRE", description "Rt rectus"
            by_desc = vocab.resolve_label(a.description)
            side_seen = side_seen or by_desc.side
            if by_desc.resolved:
                res, via = by_desc, "description"
        # EMG-looking: says EMG, or a side-prefixed voltage channel beside the EMG (e.g. 'LGRF' in Gait.c3d)
        looks_emg = (("emg" in (a.label + " " + a.description).lower()
                      or (side_seen is not None and emg_unit_factor(a.unit) is not None))
                     and not NOT_EMG.search(a.label))
        if not res.resolved:
            if looks_emg or res.muscle:
                hint = (f" Closest: {', '.join(res.suggestions)}." if res.suggestions else "")
                issues.append((a.label, "unmapped_channel",
                               f"Channel '{a.label}' is not mapped to a muscle and side.{hint} Add it under "
                               "'channels:' in the site manifest to ingest it."))
            continue
        factor = emg_unit_factor(a.unit)
        if factor is None:
            issues.append((a.label, "unknown_unit", f"Channel '{a.label}' has unit '{a.unit}', which is not V, mV "
                           "or uV; state the unit in the manifest or re-export."))
            continue
        chans.append({"label": a.label, "muscle": res.muscle, "side": res.side, "source_unit": a.unit,
                      "rate_hz": a.rate_hz, "data_mv": a.data * factor,
                      "mapping": via})
    return chans, issues


def _quarantine(settings, con, sha, site, rel_path, stage, code, message, raw, run_id, *, file_status=True):
    record = {"sha256": sha, "site_id": site, "path": rel_path, "stage": stage, "reason_code": code,
              "message": message, "quarantined_at": now(), "raw_path": raw, "run_id": run_id}
    zones.write_quarantine_record(settings, record)

    def body(c):
        c.execute("DELETE FROM quarantine WHERE sha256 = ? AND site_id = ? AND path = ? AND stage = ?",
                  [sha, site, rel_path, stage])
        c.execute("INSERT INTO quarantine BY NAME SELECT ? AS sha256, ? AS site_id, ? AS path, ? AS stage, "
                  "? AS reason_code, ? AS message, ? AS quarantined_at, ? AS raw_path, ? AS run_id",
                  list(record.values()))
        if file_status:
            c.execute("UPDATE files SET status = 'quarantined', run_id = ? WHERE sha256 = ? AND site_id = ? "
                      "AND path = ?", [run_id, sha, site, rel_path])
    catalog.write_atomically(settings, con, body, what="quarantine")


def _commit_trial(settings, con, *, site, rel_path, sha, trial_id, session, rec, chans, chan_issues, raw,
                  run_id, companion_shas, session_mains_hz=None, mass_kg=None):
    n_markers = len(rec.marker_labels)
    trial = pa.table({
        "trial_id": [trial_id], "site_id": [site], "subject_id": [session.subject], "session_id": [session.id],
        "sha256": [sha], "format": [rec.format], "vendor": [rec.vendor], "software": [rec.software],
        "processor": [rec.processor], "duration_s": [float(rec.duration_s)],
        "point_rate_hz": pa.array([rec.point_rate_hz], pa.float64()),
        "analog_rate_hz": pa.array([rec.analog_rate_hz], pa.float64()),
        "first_frame": pa.array([rec.first_frame], pa.int32()),
        "n_emg_channels": pa.array([len(chans)], pa.int32()),
        "n_force_plates": pa.array([len(rec.plates)], pa.int32()),
        "n_markers": pa.array([n_markers], pa.int32()), "ingested_at": [now()],
    })
    channels = pa.table({
        "trial_id": [trial_id] * len(chans),
        "channel": pa.array(range(len(chans)), pa.int16()),
        "label": [c["label"] for c in chans], "muscle": [c["muscle"] for c in chans],
        "side": [c["side"] for c in chans], "unit": ["mV"] * len(chans),
        "source_unit": [c["source_unit"] for c in chans],
        "rate_hz": pa.array([c["rate_hz"] for c in chans], pa.float64()),
        "n_samples": pa.array([len(c["data_mv"]) for c in chans], pa.int32()),
        "mapping": [c["mapping"] for c in chans],
    })
    samples = emg_samples_table(trial_id, [c["data_mv"] for c in chans])
    offsets = []
    for p in rec.plates:  # remove each plate's unloaded offset once, before anything uses the forces
        off = plate_offsets(p.force_n) if p.force_n.size else np.zeros(3)
        p.force_n = p.force_n - off[:, None] if p.force_n.size else p.force_n
        offsets.append(float(off[2]))
    plates = pa.table({
        "trial_id": [trial_id] * len(rec.plates),
        "plate": pa.array([p.plate for p in rec.plates], pa.int16()),
        "plate_type": pa.array([p.plate_type for p in rec.plates], pa.int16()),
        "rate_hz": pa.array([p.rate_hz for p in rec.plates], pa.float64()),
        "peak_force_z_n": pa.array([float(np.nanmax(np.abs(p.force_n[2]))) if p.force_n.size else None
                                    for p in rec.plates], pa.float64()),
        "offset_force_z_n": pa.array(offsets, pa.float64()),
    })
    grf = grf_table(trial_id, rec)
    markers = markers_table(trial_id, rec)
    us_series, us_meas, us_metrics = ultrasound_tables(trial_id, rec)
    qc_tbl = qc_table(trial_id, chans, session_mains_hz)
    plaus = plausibility_table(trial_id, rec, chans, mass_kg)
    events = pa.table({
        "trial_id": [trial_id] * len(rec.events), "side": [e.side for e in rec.events],
        "event": [e.event for e in rec.events], "time_s": pa.array([e.time_s for e in rec.events], pa.float64()),
        "source": [e.source for e in rec.events],
    })

    batches = {"trials": trial, "emg_channels": channels, "emg_samples": samples, "force_plates": plates,
               "grf": grf, "markers": markers, "gait_events": events, "channel_qc": qc_tbl, "plausibility": plaus,
               "ultrasound_series": us_series, "ultrasound_measurements": us_meas, "ultrasound_metrics": us_metrics}
    from warehouse import validation

    reports = {n: validation.validate_batch(n, t, max_rows_to_pandas=VALIDATION_GX_ROWS)
               for n, t in batches.items() if t.num_rows}
    val = validation.validations_table([row for r in reports.values() for row in r.to_rows(run_id, trial_id)])
    failed = [r for r in reports.values() if not r.success]
    if failed:  # the batch is not committed; the file is quarantined with the failed expectations
        message = ("The file's data breaks the table contracts (nothing was committed):\n"
                   + "\n\n".join(r.render_text() for r in failed))

        def record(c):
            c.execute("DELETE FROM validations WHERE run_id = ? AND trial_id = ?", [run_id, trial_id])
            c.register("_val", val)
            c.execute("INSERT INTO validations BY NAME SELECT * FROM _val")
            c.unregister("_val")
        catalog.write_atomically(settings, con, record, what="record validations")
        _quarantine(settings, con, sha, site, rel_path, "validate", "contract_violation", message, raw, run_id)
        raise ContractViolation(message)

    def body(c):
        c.execute("DELETE FROM validations WHERE run_id = ? AND trial_id = ?", [run_id, trial_id])
        c.register("_val", val)
        c.execute("INSERT INTO validations BY NAME SELECT * FROM _val")
        c.unregister("_val")
        for t in ("emg_samples", "emg_channels", "force_plates", "grf", "markers", "gait_events", "emg_envelopes",
                  "channel_qc", "plausibility", "ultrasound_series", "ultrasound_measurements", "ultrasound_metrics",
                  "trials"):
            c.execute(f"DELETE FROM {t} WHERE trial_id = ?", [trial_id])
        for name, tbl in (("trials", trial), ("emg_channels", channels), ("emg_samples", samples),
                          ("force_plates", plates), ("grf", grf), ("markers", markers), ("gait_events", events),
                          ("channel_qc", qc_tbl), ("plausibility", plaus), ("ultrasound_series", us_series),
                          ("ultrasound_measurements", us_meas), ("ultrasound_metrics", us_metrics)):
            if tbl.num_rows:
                c.register("_arrow_in", tbl)
                c.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _arrow_in")
                c.unregister("_arrow_in")
        c.execute("UPDATE files SET status = 'ingested', session_id = ?, trial_id = ?, run_id = ? "
                  "WHERE sha256 = ? AND site_id = ? AND path = ?", [session.id, trial_id, run_id, sha, site, rel_path])
        c.execute("UPDATE quarantine SET resolved_at = now() WHERE sha256 = ? AND site_id = ? AND path = ? "
                  "AND stage <> 'harmonise' AND resolved_at IS NULL", [sha, site, rel_path])
        # a corrected re-upload (new bytes, same trial) supersedes the old file; both stay in raw/ and files
        c.execute("UPDATE files SET status = 'superseded', run_id = ? WHERE site_id = ? AND trial_id = ? "
                  "AND sha256 <> ? AND status = 'ingested' AND path = ?", [run_id, site, trial_id, sha, rel_path])
        c.execute("DELETE FROM derivations WHERE trial_id = ?", [trial_id])
        for csha in companion_shas:
            c.execute("UPDATE files SET status = 'ingested', session_id = ?, trial_id = ?, run_id = ? "
                      "WHERE sha256 = ? AND site_id = ? AND status = 'held'", [session.id, trial_id, run_id, csha, site])
        c.execute("UPDATE quarantine SET resolved_at = now() WHERE sha256 = ? AND site_id = ? AND path LIKE ? "
                  "AND resolved_at IS NULL", [sha, site, rel_path + "#%"])
        for label, code, message in chan_issues:
            p = f"{rel_path}#{label}"
            c.execute("DELETE FROM quarantine WHERE sha256 = ? AND site_id = ? AND path = ?", [sha, site, p])
            c.execute("INSERT INTO quarantine BY NAME SELECT ? AS sha256, ? AS site_id, ? AS path, 'harmonise' AS "
                      "stage, ? AS reason_code, ? AS message, ? AS quarantined_at, ? AS raw_path, ? AS run_id",
                      [sha, site, p, code, message, now(), raw, run_id])

    catalog.write_atomically(settings, con, body, what=f"commit trial {trial_id}")


def emg_samples_table(trial_id: str, channels_mv: list[np.ndarray]) -> pa.Table:
    """Long layout: (trial_id, channel, sample_index, emg_mv float32), sorted."""
    n = [len(x) for x in channels_mv]
    total = int(sum(n))
    return pa.table({
        "trial_id": pa.DictionaryArray.from_arrays(np.zeros(total, np.int32), pa.array([trial_id]))
        .cast(pa.string()) if total else pa.array([], pa.string()),
        "channel": pa.array(np.repeat(np.arange(len(n), dtype=np.int16), n), pa.int16()),
        "sample_index": pa.array(np.concatenate([np.arange(k, dtype=np.int32) for k in n])
                                 if n else np.array([], np.int32), pa.int32()),
        "emg_mv": pa.array(np.concatenate(channels_mv).astype(np.float32) if n else np.array([], np.float32)),
    })


def qc_table(trial_id: str, chans: list[dict], mains_hz: float | None) -> pa.Table:
    """Signal QC of every EMG channel, judged in the file's own unit (gain context)."""
    from transforms import qc

    rows = []
    for k, c in enumerate(chans):
        factor = emg_unit_factor(c["source_unit"]) or 1.0
        t = qc.channel_qc_table(np.asarray(c["data_mv"] / factor)[None, :], labels=[c["label"]],
                                rate_hz=c["rate_hz"], mains_hz=mains_hz or 50.0, units=c["source_unit"])
        r = t.row(0, named=True)
        rows.append({"trial_id": trial_id, "channel": k, "label": c["label"], "muscle": c["muscle"],
                     "side": c["side"], "verdict": r["verdict"], "flags": r["flags"],
                     "clipping_frac": r["clipping_frac"], "mains_ratio": r["mains_ratio"],
                     "median_freq_hz": r["median_freq_hz"], "spectral_flatness": r["spectral_flatness"],
                     "rms_mv": r["rms_mv"] * factor if r["rms_mv"] is not None else None,
                     "dc_offset_mv": r["dc_offset_mv"] * factor if r["dc_offset_mv"] is not None else None,
                     "nan_frac": r["nan_frac"], "amplitude_basis": r["amplitude_basis"],
                     "qc_version": r["qc_version"]})
    return pa.Table.from_pylist(rows) if rows else pa.table({"trial_id": pa.array([], pa.string())})


def plausibility_table(trial_id: str, rec: Recording, chans: list[dict], mass_kg) -> pa.Table:
    """Cross-stream plausibility: stride period from plates/EMG, force peaks, events, durations."""
    from transforms import plausibility as pl_tx

    findings = []
    fz = [np.abs(p.force_n[2]) for p in rec.plates if p.force_n.size and np.nanmax(np.abs(p.force_n[2])) > 40]
    try:
        findings += pl_tx.check_sampling_rates(
            plate_force_z_n=fz[0] if fz else None, analog_rate_hz=rec.plates[0].rate_hz if fz else None,
            emg=chans[0]["data_mv"] if chans else None, emg_rate_hz=chans[0]["rate_hz"] if chans else None)
        foot = pl_tx.foot_marker_indices(rec.marker_labels) if rec.marker_labels else []
        loaded = [p for p in rec.plates if p.force_n.size and np.nanmax(np.abs(p.force_n[2])) > 40]
        if loaded and foot and rec.markers_mm is not None and rec.point_rate_hz and all(
                p.corners_mm is not None and np.shape(p.corners_mm) == (3, 4) for p in loaded):
            n = min(p.force_n.shape[1] for p in loaded)
            corners = [p.corners_mm for p in loaded]
            feet = np.transpose(rec.markers_mm[:, foot, :], (2, 1, 0))  # 3 x markers x frames
            findings += pl_tx.check_marker_plate_agreement(  # signed lab-frame Fz: positive when loaded
                feet, np.vstack([p.force_n[2][:n] for p in loaded]), point_rate_hz=rec.point_rate_hz,
                analog_rate_hz=rec.plates[0].rate_hz, plate_corners_mm=np.stack(corners))
        if mass_kg and fz:
            findings += pl_tx.check_force_peaks(np.vstack([f[:min(map(len, fz))] for f in fz]),
                                                mass_kg=float(mass_kg))
        if rec.events:
            findings += pl_tx.check_events([(e.side, {'foot_strike': 'Foot Strike', 'foot_off': 'Foot Off'}[e.event], e.time_s)
                                            for e in rec.events])
        durations = {}
        if chans:
            durations["emg"] = len(chans[0]["data_mv"]) / chans[0]["rate_hz"]
        if rec.markers_mm is not None and rec.point_rate_hz:
            durations["markers"] = rec.markers_mm.shape[0] / rec.point_rate_hz
        if rec.plates:
            durations["plates"] = rec.plates[0].force_n.shape[1] / rec.plates[0].rate_hz
        if len(durations) > 1:
            findings += pl_tx.check_durations(durations)
    except (ValueError, TypeError) as exc:
        log.info("%s plausibility: %s", trial_id, exc)
    findings += [pl_tx.Finding(code, sev, msg, {}) for code, sev, msg in rec.findings]
    df = pl_tx.findings_table(findings)
    if df.is_empty():
        return pa.table({"trial_id": pa.array([], pa.string())})
    df = df.unique(subset=["code"], keep="first", maintain_order=True)
    return df.with_columns(__import__("polars").lit(trial_id).alias("trial_id")).to_arrow()


def ultrasound_tables(trial_id: str, rec: Recording) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Fascicle series, scalar measurements, and their summaries (whole recording; shear modulus)."""
    from transforms import ultrasound as us

    empty = pa.table({"trial_id": pa.array([], pa.string())})
    series, metrics = [], []
    for u in rec.ultrasound:
        n = len(u.time_s)
        series.append(pa.table({
            "trial_id": [trial_id] * n, "region": [u.region] * n, "muscle": [u.muscle] * n, "side": [u.side] * n,
            "frame": pa.array(np.arange(n, dtype=np.int32)), "time_s": pa.array(u.time_s, pa.float64()),
            "fascicle_length_mm": pa.array(u.fascicle_length_mm, pa.float64(), from_pandas=True),
            "pennation_deg": pa.array(u.pennation_deg, pa.float64(), from_pandas=True),
            "thickness_mm": pa.array(u.thickness_mm if u.thickness_mm is not None else np.full(n, np.nan),
                                     pa.float64(), from_pandas=True)}))
        ok = np.isfinite(u.time_s)
        if ok.sum() >= 2:
            t = np.asarray(u.time_s)[ok]
            df = us.ultrasound_interval_metrics(t, boundaries_s=np.array([[t[0], t[-1]]]),
                                                fascicle_length_mm=np.asarray(u.fascicle_length_mm)[ok],
                                                pennation_angle_deg=np.asarray(u.pennation_deg)[ok])
            for r in df.iter_rows(named=True):
                metrics.append({"trial_id": trial_id, "region": u.region, "muscle": u.muscle, "side": u.side,
                                "interval": 0, "variable": r["variable"], "start_s": r["start_s"],
                                "end_s": r["end_s"], "min": r["min"], "max": r["max"], "mean": r["mean"],
                                "excursion": r["excursion"]})
    meas = [{"trial_id": trial_id, "muscle": m.muscle, "side": m.side, "metric": m.metric, "value": m.value,
             "unit": m.unit, "condition": m.condition} for m in rec.measurements]
    for m in rec.measurements:  # shear modulus mu = rho c^2 from a shear-wave speed
        if m.metric == "shear_wave_speed_m_per_s" and np.isfinite(m.value):
            mu = float(us.shear_modulus_kpa(m.value))
            metrics.append({"trial_id": trial_id, "region": m.muscle or "unknown", "muscle": m.muscle,
                            "side": m.side, "interval": 0, "variable": "shear_modulus_kpa", "start_s": None,
                            "end_s": None, "min": mu, "max": mu, "mean": mu, "excursion": 0.0})
    return (pa.concat_tables(series) if series else empty, pa.Table.from_pylist(meas) if meas else empty,
            pa.Table.from_pylist(metrics) if metrics else empty)


def marker_names(labels: list[str], n: int) -> list[str]:
    """Distinct marker names: blanks become point_N, duplicates get #2, #3..."""
    out, seen = [], {}
    for i in range(n):
        name = (labels[i].strip() if i < len(labels) else "") or f"point_{i + 1}"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def markers_table(trial_id: str, rec: Recording) -> pa.Table:
    xyz = rec.markers_mm
    if xyz is None or not rec.point_rate_hz or xyz.size == 0:
        return pa.table({"trial_id": pa.array([], pa.string())})
    n_frames, n_markers, _ = xyz.shape
    names = marker_names(rec.marker_labels, n_markers)
    frames = np.arange(n_frames, dtype=np.int32)
    flat = np.transpose(xyz, (1, 0, 2)).reshape(-1, 3).astype(np.float32)  # marker-major
    return pa.table({
        "trial_id": pa.array([trial_id] * (n_frames * n_markers), pa.string()),
        "marker": pa.array(np.repeat(np.array(names, dtype=object), n_frames), pa.string()),
        "frame": pa.array(np.tile(frames, n_markers)),
        "time_s": pa.array(np.tile(frames / rec.point_rate_hz, n_markers)),
        "x_mm": pa.array(flat[:, 0], from_pandas=True), "y_mm": pa.array(flat[:, 1], from_pandas=True),
        "z_mm": pa.array(flat[:, 2], from_pandas=True),
    })


#: A plate whose |Fz| never exceeds this was never stepped on: its whole signal is offset.
UNLOADED_PLATE_MAX_N = 50.0
#: Samples below this fraction of the plate's peak |Fz| count as unloaded (offset estimate).
UNLOADED_FRACTION = 0.02


def plate_offsets(force_n: np.ndarray) -> np.ndarray:
    """Per-axis offset of a plate from its unloaded samples (3-vector, N)."""
    fz = np.abs(force_n[2])
    if not np.isfinite(fz).any():
        return np.zeros(3)
    peak = np.nanmax(fz)
    idle = fz <= (peak if peak < UNLOADED_PLATE_MAX_N else UNLOADED_FRACTION * peak + 1.0)
    if peak >= UNLOADED_PLATE_MAX_N and idle.sum() < 10:
        return np.zeros(3)  # a treadmill belt that never unloads: no offset estimate
    return np.nanmedian(force_n[:, idle], axis=1)


def grf_table(trial_id: str, rec: Recording) -> pa.Table:
    """GRF in the lab frame (offsets already removed by the caller, recorded in force_plates)."""
    parts = []
    for p in rec.plates:
        n = p.force_n.shape[1]
        idx = np.arange(n, dtype=np.int32)
        parts.append(pa.table({
            "trial_id": pa.array([trial_id] * n, pa.string()),
            "plate": pa.array(np.full(n, p.plate, np.int16)), "sample_index": pa.array(idx),
            "time_s": pa.array(idx / p.rate_hz if p.rate_hz else np.zeros(n)),
            "force_x_n": pa.array(p.force_n[0].astype(np.float32)),
            "force_y_n": pa.array(p.force_n[1].astype(np.float32)),
            "force_z_n": pa.array(p.force_n[2].astype(np.float32)),
            "cop_x_mm": pa.array(p.cop_mm[0].astype(np.float32)),
            "cop_y_mm": pa.array(p.cop_mm[1].astype(np.float32)),
            "free_moment_nmm": pa.array(np.asarray(p.free_moment_nmm, np.float32)),
        }))
    if not parts:
        return pa.table({"trial_id": pa.array([], pa.string())})
    return pa.concat_tables(parts)
