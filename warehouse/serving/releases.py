"""Versioned, immutable public releases of the cohort tables: ``<lake>/releases/<name>/<version>/``.

Contents of a release
    ``<table>.parquet`` for :data:`RELEASE_TABLES` (cohort summaries, activation
    maps and the per-subject tables they come from, at pseudonym level);
    ``manifest.json`` (version, snapshot, created_at, sha256 + rows per file, code
    version, analysis parameters, validation summary, licence, sites excluded);
    ``data_dictionary.md`` (the contracts of the released tables); ``README.md``
    (a datasheet: what, who, how, limitations, citation); ``datacite.json``
    (DataCite metadata, ready to mint a DOI).

Reproducible
    Data files depend only on the snapshot and the code: rows sorted by primary
    key (then every other column), Parquet written by pyarrow with fixed options
    and row groups, timestamps only in ``manifest.json`` / ``datacite.json``.
    Publishing the same snapshot twice gives byte-identical data files.

Immutable
    A version that exists is never written again (:class:`ReleaseExistsError`).
    Files are written to a hidden temp folder beside it and renamed into place
    in one step (``rename(2)`` refuses a non-empty target, so two concurrent
    publishers cannot both win); then files are made read-only (0444) and the
    folder 0555. On S3 the folder is copied and ``manifest.json`` goes last.

Disclosure control (:mod:`warehouse.serving.disclosure`)
    Only sites that granted ``required_consent`` (default ``public_release``) and
    are not under embargo are released; the manifest and README list the others
    and why. The release policy of that scope decides whose per-subject rows go
    in; cells with fewer than ``min_cell_subjects`` subjects are suppressed, with
    the per-subject rows and pooled maps that would rebuild them; reference
    statistics are recomputed over the released rows.

Who writes the release area
    Only :func:`publish`. Extracts and reports refuse an output inside the lake;
    :func:`scan_releases` lists well-formed releases and reports anything else
    found in the release area (a forged folder is never listed as a release).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from pathlib import PurePosixPath

import duckdb

from schemas.contracts import TABLES, data_dictionary_markdown
from warehouse import catalog, zones
from warehouse.analysis.derived import ENVELOPE_PARAMS
from warehouse.serving import disclosure as dc
from warehouse.serving.disclosure import ReleaseError  # noqa: F401 (part of this module's API)
from warehouse.serving.extracts import (
    EXCLUDED_COLUMNS,
    PARQUET_WRITE_OPTIONS,
    code_version,
    lake_columns,
    order_by,
    pinned_connection,
    sha256_file,
    sharing_decisions,
    utc_now,
    write_data_file,
)
from warehouse.settings import Settings

L = catalog.LAKE
COHORT_TABLES = ("cohort_asymmetry", "cohort_variability")
SUBJECT_TABLES = ("asymmetry", "variability", "fatigue", "subject_profiles")
RELEASE_TABLES = (*COHORT_TABLES, "activation_map", *SUBJECT_TABLES)
STAT_COLUMNS = ("mean", "sd", "p5", "p25", "p50", "p75", "p95")
POOLED_SCOPES = ("condition", "cohort")
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
VERSION = re.compile(r"v?[0-9][A-Za-z0-9_.+-]{0,31}")
LICENCES = {  # SPDX id -> (name, URI)
    "CC-BY-4.0": ("Creative Commons Attribution 4.0 International",
                  "https://creativecommons.org/licenses/by/4.0/legalcode"),
    "CC0-1.0": ("Creative Commons Zero v1.0 Universal", "https://creativecommons.org/publicdomain/zero/1.0/legalcode"),
    "CC-BY-SA-4.0": ("Creative Commons Attribution Share Alike 4.0 International",
                     "https://creativecommons.org/licenses/by-sa/4.0/legalcode"),
    "CC-BY-NC-4.0": ("Creative Commons Attribution Non Commercial 4.0 International",
                     "https://creativecommons.org/licenses/by-nc/4.0/legalcode"),
    "ODbL-1.0": ("Open Data Commons Open Database License v1.0", "https://opendatacommons.org/licenses/odbl/1-0/"),
}
PUBLISHER = "myomap consortium"


class ReleaseExistsError(ReleaseError):
    """That name and version is already published; published versions are never overwritten."""


def _sites_param(sites: list[str]) -> list[str]:
    """A VARCHAR[] parameter even when empty (an empty list has no type)."""
    return list(sites) or [""]


def release_path(settings: Settings, name: str, version: str) -> str:
    return f"{settings.zone('releases')}/{name}/{version}"


# --------------------------------------------------------------------------- data
def _release_sql(table: str, cols: list[str], allowed_sites: list[str], pooled: dict,
                 min_cell_subjects: int) -> tuple[str, list]:
    """SELECT of one released table. Per-subject rows come from ``_rel_sessions``/``_rel_subjects``
    (:func:`warehouse.serving.disclosure.mark_released_sessions`)."""
    sites = ", ".join(["?"] * len(allowed_sites)) or "NULL"
    select = [f'x."{c}"' for c in cols]
    params: list = []
    if table in COHORT_TABLES:
        small = f"(coalesce(x.suppressed, false) OR coalesce(x.n_subjects, 0) < {int(min_cell_subjects)})"
        select = [f'CASE WHEN {small} THEN NULL ELSE x."{c}" END AS "{c}"' if c in STAT_COLUMNS
                  else (f'{small} AS "suppressed"' if c == "suppressed" else f'x."{c}"') for c in cols]
        where, params = f"x.site_id IN ({sites})", list(allowed_sites)
    elif table == "activation_map":
        where = ("((x.scope = 'session' AND x.scope_id IN (SELECT session_id FROM _rel_sessions)) "
                 "OR (x.scope = 'subject' AND x.scope_id IN (SELECT subject_id FROM _rel_subjects))")
        for scope in POOLED_SCOPES:
            if pooled[scope]:
                where += f" OR (x.scope = '{scope}' AND x.scope_id IN ({', '.join(['?'] * len(pooled[scope]))}))"
                params += list(pooled[scope])
        where += ")"
    else:
        where = "x.session_id IN (SELECT session_id FROM _rel_sessions)"
    return (f"SELECT {', '.join(select)} FROM {L}.main.{table} x WHERE {where} "
            f"ORDER BY {order_by(table, cols)}"), params


def _release_data(con, allowed: list[str], all_sites_in: bool, policy: dc.ReleasePolicy,
                  min_cell_subjects: int) -> tuple[dict, dict]:
    """The released tables, and what disclosure control withheld (for the manifest)."""
    data = {}
    for t in COHORT_TABLES:
        sql, params = _release_sql(t, lake_columns(con, t), allowed, {}, min_cell_subjects)
        data[t] = con.execute(sql, params).to_arrow_table()
    subject_sites = dc.subject_level_sites(con, allowed, policy)
    suppressed = dc.suppressed_groups(data)
    n_sessions = dc.mark_released_sessions(con, subject_sites, suppressed)
    pooled = dc.pooled_maps(con, all_sites_in, min_cell_subjects)
    for t in RELEASE_TABLES:
        if t in data:
            continue
        cols = lake_columns(con, t)
        sql, params = _release_sql(t, cols, allowed, pooled, min_cell_subjects)
        table = con.execute(sql, params).to_arrow_table()
        data[t] = dc.recomputed_profiles(con, table, cols) if t == "subject_profiles" else table
    withheld = con.execute(f"SELECT count(*) FROM {L}.main.sessions WHERE site_id IN "
                           f"({', '.join(['?'] * len(allowed)) or 'NULL'}) AND session_id NOT IN "
                           "(SELECT session_id FROM _rel_sessions)", allowed).fetchone()[0]
    info = {"policy": policy.to_dict(), "subject_level_sites": subject_sites,
            "released_subject_sessions": n_sessions, "withheld_subject_sessions": withheld,
            "suppressed_site_conditions": [{"site_id": s, "condition": c} for s, c in suppressed],
            "pooled_maps": {"released": [f"{k}:{v}" for k in POOLED_SCOPES for v in pooled[k]],
                            "withheld": pooled["withheld"]},
            "reference_statistics": "subject_profiles references recomputed over the released rows only"}
    return data, info


def _validate(con: duckdb.DuckDBPyConnection, tables: dict, allowed_sites: list[str],
              min_cell_subjects: int) -> dict:
    """Checks on the tables about to be released; every check must pass."""
    checks = []

    def check(name, ok, detail=""):
        checks.append({"check": name, "passed": bool(ok), "detail": detail})

    for name, table in tables.items():
        contract = TABLES[name]
        con.register("_rel", table)
        try:
            for c in contract.columns:
                if c.name not in table.column_names:
                    continue
                if not c.nullable:
                    n = con.execute(f'SELECT count(*) FROM _rel WHERE "{c.name}" IS NULL').fetchone()[0]
                    check(f"{name}.{c.name} not null", n == 0, f"{n} nulls")
                if c.allowed:
                    allowed = [a for a in c.allowed if a is not None]
                    n = con.execute(f'SELECT count(*) FROM _rel WHERE "{c.name}" IS NOT NULL AND '
                                    f'NOT list_contains(?, "{c.name}")', [allowed]).fetchone()[0]
                    check(f"{name}.{c.name} in vocabulary", n == 0, f"{n} values outside")
            key = ", ".join(f'"{k}"' for k in contract.primary_key)
            dup = con.execute(f"SELECT count(*) FROM (SELECT {key} FROM _rel GROUP BY ALL HAVING count(*) > 1)"
                              ).fetchone()[0]
            check(f"{name} primary key unique", dup == 0, f"{dup} duplicated keys")
            if name in COHORT_TABLES:
                bad = con.execute(f"SELECT count(*) FROM _rel WHERE n_subjects < {int(min_cell_subjects)} AND "
                                  f"(NOT suppressed OR {' OR '.join(f'{s} IS NOT NULL' for s in STAT_COLUMNS)})"
                                  ).fetchone()[0]
                check(f"{name} small cells suppressed", bad == 0, f"{bad} cells below {min_cell_subjects} shown")
            if "site_id" in table.column_names:
                bad = con.execute("SELECT count(*) FROM _rel WHERE NOT list_contains(?, site_id)",
                                  [_sites_param(allowed_sites)]).fetchone()[0]
                check(f"{name} only released sites", bad == 0, f"{bad} rows of other sites")
            if name in SUBJECT_TABLES:
                bad = con.execute("SELECT count(*) FROM _rel WHERE session_id NOT IN "
                                  "(SELECT session_id FROM _rel_sessions)").fetchone()[0]
                check(f"{name} only released sessions", bad == 0, f"{bad} rows of withheld sessions")
            leaked = EXCLUDED_COLUMNS & set(table.column_names)
            check(f"{name} has no path columns", not leaked, ", ".join(sorted(leaked)))
        finally:
            con.unregister("_rel")
    return {"passed": all(c["passed"] for c in checks), "n_checks": len(checks),
            "failed": [c for c in checks if not c["passed"]]}


def _parameters(con, allowed_sites: list[str]) -> dict:
    sites = ", ".join(["?"] * len(allowed_sites)) or "NULL"
    sess = f"(SELECT session_id FROM {L}.main.sessions WHERE site_id IN ({sites}))"
    out = {"envelope": {k: list(v) if isinstance(v, tuple) else v for k, v in ENVELOPE_PARAMS.items()}}
    for table in ("activation_onsets", "emg_cycle_metrics"):
        out[f"{table}_params_hash"] = [r[0] for r in con.execute(
            f"SELECT DISTINCT params_hash FROM {L}.main.{table} WHERE session_id IN {sess} "
            "AND params_hash IS NOT NULL ORDER BY 1", allowed_sites).fetchall()]
    out["default_onset_methods"] = [r[0] for r in con.execute(
        f"SELECT DISTINCT method FROM {L}.main.activation_onsets WHERE is_default AND session_id IN {sess} "
        "ORDER BY 1", allowed_sites).fetchall()]
    out["parquet"] = dict(PARQUET_WRITE_OPTIONS)
    return out


# --------------------------------------------------------------------------- documents
def dictionary_markdown(tables) -> str:
    """The data dictionary restricted to ``tables``."""
    text = data_dictionary_markdown()
    head, *sections = text.split("\n## `")
    kept = [s for s in sections if s.split("`", 1)[0] in tables]
    return "\n## `".join([head.rstrip("\n") + "\n", *kept]).rstrip("\n") + "\n"


def _licence(licence: str) -> dict:
    name, uri = LICENCES.get(licence, (licence, None))
    out = {"rights": name, "rightsIdentifier": licence.lower(), "rightsIdentifierScheme": "SPDX",
           "schemeUri": "https://spdx.org/licenses/"}
    if uri:
        out["rightsUri"] = uri
    return out


def datacite(m: dict) -> dict:
    """DataCite (kernel-4) metadata in the JSON:API form of the DataCite REST API, DOI to be assigned."""
    year = int(m["created_at"][:4])
    total = sum(f["bytes"] for f in m["files"] if f["kind"] == "data")
    return {"data": {"type": "dois", "attributes": {
        "prefix": None,
        "creators": [{"name": PUBLISHER, "nameType": "Organizational"}],
        "titles": [{"title": f"myomap release {m['name']} {m['version']}: lower-limb muscle activation, "
                             "asymmetry and variability", "lang": "en"}],
        "publisher": {"name": PUBLISHER},
        "publicationYear": year,
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Cohort tables (Parquet)"},
        "subjects": [{"subject": s} for s in ("electromyography", "gait analysis", "muscle activation",
                                              "asymmetry", "motor variability", "biomechanics")],
        "dates": [{"date": m["created_at"][:10], "dateType": "Created"},
                  {"date": (m["snapshot_time"] or m["created_at"])[:10], "dateType": "Collected"}],
        "language": "en",
        "version": m["version"],
        "sizes": [f"{sum(1 for f in m['files'] if f['kind'] == 'data')} files", f"{total} bytes"],
        "formats": ["application/vnd.apache.parquet", "text/markdown", "application/json"],
        "rightsList": [_licence(m["licence"])],
        "descriptions": [
            {"description": "Cohort summaries (small cells suppressed), activation maps and pseudonymous "
                            "per-subject asymmetry, variability, fatigue and patient-profile tables from the "
                            "myomap consortium data lake.", "descriptionType": "Abstract"},
            {"description": f"DuckLake snapshot {m['snapshot_id']}; code {m['code_version']}; "
                            f"cells with fewer than {m['min_cell_subjects']} subjects suppressed.",
             "descriptionType": "Methods"}],
        "schemaVersion": "http://datacite.org/schema/kernel-4",
    }}}


def readme(m: dict) -> str:
    """The datasheet (after Gebru et al., Datasheets for Datasets)."""
    data = [f for f in m["files"] if f["kind"] == "data"]
    excluded = m["sharing"]["excluded_sites"]
    lines = [
        f"# myomap release `{m['name']}` {m['version']}", "",
        "## What", "",
        "Lower-limb surface-EMG results of the myomap consortium: cohort summaries of asymmetry and "
        "variability per site x condition x muscle, mean activation maps over the gait cycle, and the "
        "per-subject tables they are computed from (pseudonymous ids only).", "",
        "| file | rows | sha256 |", "|---|---|---|",
        *[f"| `{f['file']}` | {f['rows']} | `{f['sha256'][:16]}...` |" for f in data], "",
        "Column definitions and units: `data_dictionary.md`. Checksums and provenance: `manifest.json`.", "",
        "## Who", "",
        f"Sites included: {', '.join(m['sharing']['included_sites']) or 'none'}. "
        f"Subjects: {m['counts']['subjects']}; sessions: {m['counts']['sessions']}.", "",
        "## How", "",
        "Site inboxes (C3D and vendor exports) were ingested by the myomap nightly flow into a DuckLake lake; "
        "EMG was band-pass filtered, rectified and low-pass filtered into linear envelopes; gait cycles "
        "come from annotated or force-plate events; onsets, asymmetry (Robinson SI, Zifchock SA), "
        "variability (CV, variance ratio) and fatigue indicators come from one shared analysis core. "
        f"Release built from DuckLake snapshot {m['snapshot_id']} ({m['snapshot_time']}) with code "
        f"{m['code_version']}; analysis parameters are in `manifest.json`.", "",
        "## Limitations", "",
        f"- Cohort cells with fewer than {m['min_cell_subjects']} subjects are suppressed: statistics are "
        "empty and `suppressed` is true.",
        f"- Only sites that consented to `{m['sharing']['required_consent']}` and are not under embargo are "
        "included." + ("" if not excluded else " Excluded: " + "; ".join(
            f"{d['site_id']} ({', '.join(d['reasons'])})" for d in excluded) + "."),
        "- Pooled (condition / cohort scope) activation maps are "
        + ("included." if m["pooled_maps_released"] else "withheld where they pool excluded sites, small groups "
           "or withheld sessions: " + "; ".join(f"{k} ({v})" for k, v in
                                                 m["disclosure"]["pooled_maps"]["withheld"].items()) + "."),
        f"- Release policy `{m['disclosure']['policy']['scope']}` (for {m['disclosure']['policy']['audience']}): "
        "per-subject rows only for sites whose consent allows them ("
        + (", ".join(m["disclosure"]["subject_level_sites"]) or "none") + "), and never for a site x condition "
        f"with a suppressed cell ({m['disclosure']['withheld_subject_sessions']} sessions withheld).",
        "- `subject_profiles` reference statistics were recomputed over the released rows only.",
        "- Site protocols (electrode placement, tasks, equipment) differ; compare sites with care. Not for "
        "clinical diagnosis.", "",
        "## Licence", "", f"{_licence(m['licence'])['rights']} (`{m['licence']}`).", "",
        "## Citation", "",
        f"{PUBLISHER} ({m['created_at'][:4]}). *myomap release {m['name']} {m['version']}* [Data set]. "
        "DOI: to be assigned (see `datacite.json`).", "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- publish
def _check_release_id(name: str, version: str, min_cell_subjects: int) -> None:
    if not NAME.fullmatch(name or ""):
        raise ReleaseError(f"release name {name!r} must be lower-case letters, digits, '_', '.', '-'.")
    if not VERSION.fullmatch(version or "") or ".." in version:
        raise ReleaseError(f"release version {version!r} must look like 1.0.0 or v2 (no '/').")
    if int(min_cell_subjects) < 1:
        raise ReleaseError("min_cell_subjects must be at least 1.")


def _write_documents(fs, folder: str, manifest: dict) -> list[dict]:
    """Data dictionary, README and DataCite metadata into ``folder``; their manifest file entries."""
    docs = {"data_dictionary.md": dictionary_markdown(RELEASE_TABLES), "README.md": readme(manifest),
            "datacite.json": json.dumps(datacite(manifest), indent=2) + "\n"}
    entries = []
    for fname, text in docs.items():
        with fs.open(f"{folder}/{fname}", "w") as fh:
            fh.write(text)
        digest, size = sha256_file(fs, f"{folder}/{fname}")
        entries.append({"file": fname, "kind": "document", "sha256": digest, "bytes": size})
    return entries


def publish(settings: Settings, name: str, version: str, *, min_cell_subjects: int = 5,
            licence: str = "CC-BY-4.0", required_consent: str = "public_release", as_of: str | None = None,
            today: dt.date | None = None) -> dict:
    """Publish release ``name`` ``version`` from one snapshot of the lake.

    Parameters
    ----------
    settings : Settings
        The lake; the release goes to ``<lake>/releases/<name>/<version>/``.
    name, version : str
        Lower-case name (``[a-z0-9][a-z0-9_.-]*``) and version (``1.0.0``, ``v2``...).
    min_cell_subjects : int
        Cohort cells with fewer subjects are suppressed (default 5).
    licence : str
        SPDX id (default ``CC-BY-4.0``).
    required_consent : str
        Consent scope a site must have granted to be released (default ``public_release``).
    as_of : str, optional
        Snapshot id or timestamp (default: the current snapshot).
    today : datetime.date, optional
        Date the embargo rule is evaluated on (default: today, UTC).

    Returns
    -------
    dict
        The manifest, with ``path``.

    Raises
    ------
    ReleaseExistsError
        When ``name``/``version`` is already published.
    ReleaseError
        Invalid name/version/threshold, no releasable site, or a validation check failed.
    """
    _check_release_id(name, version, min_cell_subjects)
    if not re.fullmatch(r"[A-Za-z0-9.+-]{1,64}", licence or ""):
        raise ReleaseError(f"licence {licence!r} must be an SPDX id such as CC-BY-4.0.")
    policy = dc.policy_for(required_consent)
    fs = zones.filesystem(settings)
    final = release_path(settings, name, version)
    if fs.exists(final):
        raise ReleaseExistsError(_exists_message(name, version, final))
    con, snap, snap_time = pinned_connection(settings, as_of)
    try:
        today = today or dt.datetime.now(dt.timezone.utc).date()
        decisions = sharing_decisions(con, requester_site=None, required_scope=required_consent, today=today)
        allowed = [d.site_id for d in decisions if d.included]
        if not allowed:  # an empty release would burn the version number forever
            why = "; ".join(f"{d.site_id}: {', '.join(d.reasons)}" for d in decisions) or "the lake has no sites"
            raise ReleaseError(f"no site can be released ({why}). A site needs the '{required_consent}' consent "
                               "scope in its manifest and no running embargo.")
        data, disclosure = _release_data(con, allowed, all(d.included for d in decisions), policy,
                                         min_cell_subjects)
        pooled_ok = not disclosure["pooled_maps"]["withheld"]
        validation = _validate(con, data, allowed, min_cell_subjects)
        if not validation["passed"]:
            raise ReleaseError("release validation failed: " + "; ".join(
                f"{c['check']} ({c['detail']})" for c in validation["failed"]))
        counts = con.execute(
            f"SELECT count(DISTINCT subject_id), count(*) FROM {L}.main.sessions WHERE list_contains(?, site_id) "
            f"AND session_id IN (SELECT session_id FROM {L}.main.asymmetry UNION SELECT session_id FROM "
            f"{L}.main.variability UNION SELECT session_id FROM {L}.main.subject_profiles)",
            [_sites_param(allowed)]).fetchone()
        parameters = _parameters(con, allowed)
    finally:
        con.close()
    parent = final.rsplit("/", 1)[0] if settings.is_s3 else os.path.dirname(final)  # PurePosixPath folds s3://
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.tmp-{version}-{uuid.uuid4().hex[:12]}"
    fs.makedirs(tmp, exist_ok=True)
    try:
        files = []
        for t, table in data.items():
            info = write_data_file(fs, f"{tmp}/{t}.parquet", table, "parquet")
            suppressed = (sum(1 for v in table.column("suppressed").to_pylist() if v)
                          if "suppressed" in table.column_names else None)
            files.append({"file": f"{t}.parquet", "kind": "data", "table": t, **info,
                          **({"suppressed_cells": suppressed} if suppressed is not None else {})})
        manifest = {
            "kind": "myomap-release", "name": name, "version": version, "created_at": utc_now(),
            "snapshot_id": snap, "snapshot_time": snap_time, "code_version": code_version(),
            "licence": licence, "min_cell_subjects": int(min_cell_subjects),
            "sharing": {"required_consent": required_consent, "rules_applied_on": today.isoformat(),
                        "included_sites": allowed,
                        "excluded_sites": [d.to_dict() for d in decisions if not d.included]},
            "pooled_maps_released": pooled_ok,
            "disclosure": disclosure,
            "counts": {"subjects": counts[0], "sessions": counts[1]},
            "parameters": parameters, "validation": validation, "files": files,
        }
        files += _write_documents(fs, tmp, manifest)
        with fs.open(f"{tmp}/manifest.json", "w") as fh:
            fh.write(json.dumps(manifest, indent=2, default=str) + "\n")
        _commit(settings, fs, tmp, final, name, version)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp, recursive=True)
        raise
    return {**manifest, "path": final}


def _exists_message(name: str, version: str, path: str) -> str:
    return (f"release {name} {version} already exists at {path}; published versions are never overwritten. "
            "Publish a new version instead.")


def _commit(settings: Settings, fs, tmp: str, final: str, name: str, version: str) -> None:
    """Move the finished temp folder into place atomically (local) and make it read-only."""
    if settings.is_s3:
        if fs.exists(final):
            raise ReleaseExistsError(_exists_message(name, version, final))
        for p in sorted(fs.find(tmp), key=lambda p: p.endswith("manifest.json")):  # manifest last
            fs.copy(p, f"{final}/{PurePosixPath(p).name}")
        fs.rm(tmp, recursive=True)
        return
    try:
        os.rename(tmp, final)  # fails if final exists and is not empty: nobody overwrites a release
    except OSError as exc:
        raise ReleaseExistsError(_exists_message(name, version, final)) from exc
    for entry in os.scandir(final):
        os.chmod(entry.path, 0o444)
    os.chmod(final, 0o555)


_MANIFEST_FIELDS = {"kind": str, "name": str, "version": str, "created_at": str, "snapshot_id": int,
                    "licence": str, "files": list}


def scan_releases(settings: Settings) -> tuple[list[dict], list[dict]]:
    """Walk the release area: ``(releases, problems)``.

    A release is listed only when it is well formed: ``<name>/<version>/manifest.json``
    is a JSON object of kind ``myomap-release`` whose name and version are the
    folder's, with the fields listed, and every file it lists is present. Anything
    else in the release area is reported in ``problems`` (path and what is wrong),
    never listed and never a crash.
    """
    fs = zones.filesystem(settings)
    root = settings.zone("releases")
    if not fs.exists(root):
        return [], []
    out, problems = [], []
    for name_dir in sorted(fs.ls(root, detail=False)):
        name = PurePosixPath(name_dir).name
        if name.startswith("."):
            continue
        if not fs.isdir(name_dir):
            problems.append({"path": str(name_dir), "problem": "a file where release folders belong"})
            continue
        for version_dir in sorted(fs.ls(name_dir, detail=False)):
            version = PurePosixPath(version_dir).name
            if version.startswith("."):
                continue
            rel, problem = _read_release(fs, str(version_dir), name, version)
            if problem:
                problems.append({"path": str(version_dir), "problem": problem})
            else:
                out.append(rel)
    return sorted(out, key=lambda r: (r["name"], r["created_at"], r["version"])), problems


def _read_release(fs, path: str, name: str, version: str) -> tuple[dict | None, str | None]:
    if not fs.isdir(path):
        return None, "a file where a version folder belongs"
    try:
        with fs.open(f"{path}/manifest.json", "r") as fh:
            m = json.load(fh)
    except FileNotFoundError:
        return None, "no manifest.json"
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, f"manifest.json is not readable JSON ({type(exc).__name__})"
    if not isinstance(m, dict):
        return None, "manifest.json is not an object"
    for key, kind in _MANIFEST_FIELDS.items():
        if not isinstance(m.get(key), kind) or isinstance(m.get(key), bool):
            return None, f"manifest.json lacks a valid {key!r}"
    if m["kind"] != "myomap-release":
        return None, f"manifest.json is of kind {m['kind'][:40]!r}, not a release"
    if (m["name"], m["version"]) != (name, version):
        return None, f"manifest.json names {m['name'][:40]} {m['version'][:40]}, not the folder's {name} {version}"
    present = set(PurePosixPath(p).name for p in fs.ls(path, detail=False))
    for f in m["files"]:
        if not isinstance(f, dict) or not isinstance(f.get("file"), str) or f.get("kind") not in ("data", "document"):
            return None, "manifest.json has a malformed file entry"
        if f["file"] not in present:
            return None, f"listed file {f['file'][:60]} is missing"
    rows = sum(f.get("rows", 0) for f in m["files"] if f["kind"] == "data" and isinstance(f.get("rows"), int))
    return {"name": m["name"], "version": m["version"], "created_at": m["created_at"],
            "snapshot_id": m["snapshot_id"], "licence": m["licence"], "rows": rows, "path": path}, None


def list_releases(settings: Settings) -> list[dict]:
    """Published, well-formed releases (from their manifests), sorted by name then creation time."""
    return scan_releases(settings)[0]
