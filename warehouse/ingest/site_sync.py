"""A site's manifest, read and synced: its subjects, sessions and site row upserted before its files are ingested
(:func:`sync_site`, the night's scan step), and :func:`load_manifest` for the ingest of each file."""
from __future__ import annotations

import copy
import datetime as dt
import threading
from dataclasses import dataclass

import pyarrow as pa

from warehouse import catalog, fresh_trials, zones
from warehouse.ingest import inbox
from warehouse.ingest.manifest import Manifest, ManifestError, parse_manifest
from warehouse.settings import Settings


@dataclass
class SiteScan:
    site: str
    files: list[str]
    manifest_error: str | None = None
    refused: list[dict] | None = None  # inbox entries refused at scan (names that are not UTF-8)


def load_manifest(settings: Settings, site: str) -> Manifest:
    """Read and parse ``inbox/<site>/manifest.yaml`` (never through a link, never past the size limit).

    Raises
    ------
    ManifestError
        ``manifest_missing``, ``manifest_not_a_file``, ``manifest_too_large``, ``manifest_encoding``
        and the codes of :func:`~warehouse.ingest.manifest.parse_manifest`.
    """
    path = f"{zones.inbox(settings, site)}/manifest.yaml"
    if not zones.exists(settings, path):
        raise ManifestError("manifest_missing", f"Site '{site}' has no manifest.yaml: files are held until one "
                            "claims them (`myomap manifest init {site}` scaffolds it).")
    cap = settings.limits.manifest_bytes
    try:
        with zones.open_inbox_file(settings, path) as fh:
            data = fh.read(cap + 1)
    except zones.NotARegularFile as exc:
        raise ManifestError("manifest_not_a_file", f"inbox/{site}/manifest.yaml is {exc.strerror}: it was not "
                            "followed or read. Put the manifest file itself in the inbox.") from None
    if len(data) > cap:
        raise ManifestError("manifest_too_large", f"inbox/{site}/manifest.yaml is larger than {cap:,} bytes "
                            "(MYOMAP_MAX_MANIFEST_BYTES): refused unread.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError("manifest_encoding", f"inbox/{site}/manifest.yaml is not UTF-8 text (byte "
                            f"{exc.start}): save it as UTF-8.") from None
    lim = settings.limits
    key = (text, site, lim.manifest_bytes, lim.yaml_aliases, lim.yaml_depth)  # what parsing depends on
    with _MANIFESTS_LOCK:
        parsed = _MANIFESTS.get(key)
    if parsed is None:
        parsed = parse_manifest(text, site=site, limits=lim)
        with _MANIFESTS_LOCK:
            if len(_MANIFESTS) >= 16:
                _MANIFESTS.clear()
            _MANIFESTS[key] = parsed
    return copy.deepcopy(parsed)  # callers may change their copy


#: Manifests parsed in this process, by text (YAML parsing is pure Python: once per night, not per file).
_MANIFESTS: dict[tuple, Manifest] = {}
_MANIFESTS_LOCK = threading.Lock()


def sync_site(settings: Settings, site: str, run_id: str) -> SiteScan:
    """List a site's inbox (as data: nothing followed) and upsert its manifest's subjects and sessions."""
    scan = inbox.scan(settings, site)
    files, refused = scan.entries, [r.to_dict() for r in scan.refused]
    try:
        man = load_manifest(settings, site)
    except ManifestError as exc:
        return SiteScan(site, files, f"{exc.reason_code}: {exc.message}", refused)
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
                            "Prefix them with the site code.", refused)
        current = con.execute("SELECT count(*) FROM subjects WHERE site_id = ?", [site]).fetchone()[0]
        cur_s = con.execute("SELECT count(*) FROM sessions WHERE site_id = ?", [site]).fetchone()[0]
        unchanged = current == len(man.subjects) and cur_s == len(man.sessions) and _same(con, site)
        if not unchanged:
            catalog.write_atomically(settings, con, body, what=f"sync manifest {site}")
        fresh_trials.remember_site(settings, site, {"sessions": sessions})  # the site's sessions now, as stored
    finally:
        con.close()
    return SiteScan(site, files, None, refused)


def _same(con, site: str) -> bool:
    """True when the stored subjects/sessions equal the manifest's (avoid empty snapshots)."""
    a = con.execute("SELECT count(*) FROM (SELECT * FROM subjects WHERE site_id = ? EXCEPT "
                    "SELECT * FROM subjects_arrow)", [site]).fetchone()[0]
    b = con.execute("SELECT count(*) FROM (SELECT * FROM sessions WHERE site_id = ? EXCEPT "
                    "SELECT * FROM sessions_arrow)", [site]).fetchone()[0]
    c = con.execute("SELECT count(*) FROM (SELECT * FROM site_arrow EXCEPT "
                    "SELECT * FROM sites WHERE site_id = ?)", [site]).fetchone()[0]
    return a == 0 and b == 0 and c == 0
