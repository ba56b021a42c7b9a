"""Cohort extracts for consortium members, under the consortium's sharing rules.

:func:`extract` writes one file per requested table (Parquet or CSV), filtered by a
``--cohort`` filter (:mod:`warehouse.serving.cohort_filter`), plus ``manifest.json``.

How tables reach the cohort
    The filter's session keys (site, subject, session, condition, task, date)
    select a set of sessions (temp table ``_cohort_sessions``). A table is then
    linked by its first key column among ``session_id``, ``trial_id`` (through
    ``trials``), ``subject_id`` and ``site_id``. ``muscle``/``side`` clauses apply
    to tables with those columns; ``emg_samples`` (channel only) is filtered
    through ``emg_channels``; ``co_contraction`` keeps pairs where either muscle
    matches. ``activation_map`` keeps subject- and session-scope maps of the
    cohort (pooled condition/cohort maps may contain other sites' data: they are
    published in releases, not extracted). Site-level aggregates (cohort tables)
    honour site/condition/task/muscle clauses only; the manifest says so.

Who asks, and the consortium rules
    An extract reads the member-scoped views of :mod:`warehouse.serving.access`
    for the configured identity: a member of site A reads A's own data and
    another site B's only if B's ``sites.embargo_until`` is not in the future
    and B's ``sites.consent`` lists ``pooled_analysis`` **and** the required
    scope (default ``pooled_analysis``; a stricter scope narrows, never widens).
    A site with no ``sites`` row has unknown consent and is excluded. An operator
    may extract as a site (``requester_site``/``member``); an operator extract
    for nobody in particular applies the rules to every site. Naming a site that
    is not yours is refused. Exclusions and reasons are in the manifest.

Only pseudonyms leave the lake
    ``files``, ``quarantine`` and ``runs`` are never extracted (they hold
    site-relative inbox paths and raw-zone paths, where file names chosen at the
    site could contain names or dates of birth), nor the operational
    ``derivations`` and ``validations``, and no column called ``path`` or
    ``raw_path`` is ever written. Subjects appear only under their pseudonymous
    ids from the site manifests.

Outside the lake
    The output folder may not be inside the lake (after normalising the path, so
    ``<lake>/tables/../releases/x`` counts): the release area is written only by
    ``myomap publish``, and an inbox only by its site.

Consistency
    Every table is read at one pinned DuckLake snapshot (time travel to the
    snapshot current when the extract starts, or ``as_of``), recorded in the
    manifest, so ``myomap sql --as-of <id>`` reproduces it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from schemas.contracts import TABLES
from warehouse import catalog, zones
from warehouse.serving import access as acc
from warehouse.serving import bids_export
from warehouse.serving import cohort_filter as cf
from warehouse.serving.access import SiteDecision, pinned_connection, sharing_decisions  # noqa: F401 (re-exported)
from warehouse.settings import Identity, LocationError, Settings, is_within

L = catalog.LAKE
REQUIRED_SCOPE = "pooled_analysis"
#: Tables an extract holds when none are named (``myomap extract``, ``Lake.extract``).
DEFAULT_TABLES = ("sites", "subjects", "sessions", "trials", "emg_channels", "activation_onsets",
                  "emg_cycle_metrics", "asymmetry", "variability", "fatigue", "subject_profiles")
#: Tables that never leave the lake, and why.
NOT_EXTRACTABLE = {
    "files": "holds site-relative inbox paths (file names may contain identifying text)",
    "quarantine": "holds site-relative inbox paths and raw-zone paths",
    "runs": "operational log of the nightly flow, no research data",
    "derivations": "operational bookkeeping of derived steps, no research data",
    "validations": "operational validation details (they quote raw values of every site)",
}
#: Columns never written to an extract or a release.
EXCLUDED_COLUMNS = frozenset({"path", "raw_path"})
#: Parquet writer options shared by extracts and releases (fixed: same input, same bytes).
PARQUET_WRITE_OPTIONS = {"compression": "zstd", "compression_level": 9, "use_dictionary": True,
                         "write_statistics": True, "version": "2.6", "data_page_version": "1.0"}
ROW_GROUP_ROWS = 256 * 1024
FORMATS = ("parquet", "csv", "bids")


class ExtractError(ValueError):
    """The extract request cannot be served (unknown table, bad site, existing output...)."""


# --------------------------------------------------------------------------- provenance
def code_version() -> str:
    """``<package version>[+g<commit>]``; the commit is read from ``.git`` (no git process)."""
    try:
        version = importlib.metadata.version("myomap")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        version = "unknown"
    commit = _git_commit(Path(__file__).resolve().parents[1])
    return f"{version}+g{commit[:12]}" if commit else version


def _git_commit(repo: Path) -> str | None:
    git = repo / ".git"
    try:
        if git.is_file():  # worktree: "gitdir: <path>"
            git = (repo / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        for base in (git, git.parent.parent if git.parent.name == "worktrees" else git):
            if (base / ref).is_file():
                return (base / ref).read_text().strip() or None
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
    except OSError:
        return None
    return None


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------- the cohort
@dataclass
class Cohort:
    """A pinned read-only connection with the cohort's sessions in ``_cohort_sessions``."""

    con: duckdb.DuckDBPyConnection
    snapshot_id: int
    snapshot_time: str | None
    filter: cf.CohortFilter
    decisions: list[SiteDecision]
    requester_site: str | None
    required_scope: str
    today: dt.date
    access: acc.Access | None = None
    notes: dict = field(default_factory=dict)

    @property
    def included_sites(self) -> list[str]:
        return [d.site_id for d in self.decisions if d.included]

    @property
    def excluded(self) -> list[SiteDecision]:
        return [d for d in self.decisions if not d.included]

    def sharing_dict(self) -> dict:
        return {"requester_site": self.requester_site, "required_consent": self.required_scope,
                "rules_applied_on": self.today.isoformat(), "included_sites": self.included_sites,
                "excluded_sites": [d.to_dict() for d in self.excluded],
                **({"requested_by": self.access.identity.to_dict(), "read_as": self.access.role}
                   if self.access else {})}

    def close(self) -> None:
        self.con.close()


def open_cohort(settings: Settings, *, cohort: str | cf.CohortFilter | None = None,
                requester_site: str | None = None, required_scope: str = REQUIRED_SCOPE,
                as_of: str | None = None, today: dt.date | None = None,
                member: Identity | str | None = None) -> Cohort:
    """Pin a snapshot, scope it to the reader, apply the sharing rules and the filter; the caller closes it.

    ``member`` (or its older spelling ``requester_site``): read as this member
    instead of the configured identity; only an operator may (see
    :func:`warehouse.serving.access.requested_identity`).

    Raises
    ------
    cohort_filter.CohortFilterError
        Invalid filter.
    ExtractError
        Unknown requester site or consent scope not a token.
    warehouse.settings.IdentityError
        No identity, the public role, or naming a site that is not yours.
    """
    if not cf.TOKEN.fullmatch(required_scope or ""):
        raise ExtractError(f"consent scope {required_scope!r} is not a valid scope name.")
    if not isinstance(cohort, cf.CohortFilter):
        cf.parse(cohort, check_values=False)  # syntax and tokens first: a bad filter never reaches the lake
    try:
        con, access = acc.scoped_connection(settings, member if member is not None else requester_site, as_of,
                                            today=today)
    except acc.UnknownSiteError as exc:
        raise ExtractError(str(exc)) from None
    try:
        known = {"site": {d.site_id for d in access.decisions},
                 "condition": _distinct(con, "sessions", "condition"), "task": _distinct(con, "sessions", "task")}
        flt = cohort if isinstance(cohort, cf.CohortFilter) else cf.parse(cohort, known=known)
        decisions = _decisions(con, access, required_scope)
        sessions_sql, params = cohort_sessions_sql(flt, [d.site_id for d in decisions if d.included])
        con.execute(f"CREATE TEMP TABLE _cohort_sessions AS {sessions_sql}", params)
        con.execute(f"CREATE TEMP TABLE _cohort_trials AS {COHORT_TRIALS_SQL}")
        return Cohort(con, access.snapshot_id, access.snapshot_time, flt, decisions, access.site, required_scope,
                      access.today, access)
    except BaseException:
        con.close()
        raise


#: The cohort's trials, from its sessions (``_cohort_sessions``).
COHORT_TRIALS_SQL = ("SELECT t.trial_id, t.session_id FROM trials t "
                     "WHERE t.session_id IN (SELECT session_id FROM _cohort_sessions)")


def cohort_sessions_sql(flt: cf.CohortFilter, sites: list[str] | None = None) -> tuple[str, list]:
    """``SELECT session_id, subject_id, site_id`` of the sessions a filter selects, and its parameters.

    ``sites``: restrict to these sites (None: every site the reader's views show). Extracts keep
    the result in the temp table ``_cohort_sessions``; the member sessions of the Python API,
    which cannot create tables, name it as a CTE (:func:`cohort_ctes`).
    """
    where, params = flt.predicate({k: f"s.{cf.KEYS[k][0]}" for k in cf.SESSION_KEYS})
    if sites is None:
        site_in = "TRUE"
    else:
        site_in = f"s.site_id IN ({', '.join(['?'] * len(sites))})" if sites else "FALSE"
        params = params + list(sites)
    return (f"SELECT s.session_id, s.subject_id, s.site_id FROM sessions s WHERE ({where}) AND {site_in}",
            params)


def cohort_ctes(flt: cf.CohortFilter) -> tuple[str, list]:
    """``WITH _cohort_sessions AS (...), _cohort_trials AS (...)`` for a read-only session; and its parameters."""
    sql, params = cohort_sessions_sql(flt)
    return f"WITH _cohort_sessions AS ({sql}), _cohort_trials AS ({COHORT_TRIALS_SQL}) ", params


def _decisions(con, access: acc.Access, required_scope: str) -> list[SiteDecision]:
    """The extract's sharing rules for ``required_scope``, never wider than what the reader may see."""
    visible = dict((d.site_id, d) for d in access.decisions)
    out = []
    for d in sharing_decisions(con, requester_site=access.site, required_scope=required_scope, today=access.today):
        if access.is_operator or d.site_id == access.site or visible[d.site_id].included:
            out.append(d)
        else:
            reasons = tuple(dict.fromkeys(visible[d.site_id].reasons + d.reasons))
            out.append(SiteDecision(d.site_id, False, reasons))
    return out


def _distinct(con, table: str, column: str) -> set[str]:
    return {r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM {table} "
                                      f"WHERE {column} IS NOT NULL").fetchall()}


def view_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Columns of the reader's view of ``table`` (contract order), without :data:`EXCLUDED_COLUMNS`."""
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_catalog = 'temp' "
                       "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    return [r[0] for r in rows if r[0] not in EXCLUDED_COLUMNS]


def lake_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Columns of a lake table as stored (contract order), without :data:`EXCLUDED_COLUMNS`."""
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_catalog = ? "
                       "AND table_name = ? ORDER BY ordinal_position", [L, table]).fetchall()
    return [r[0] for r in rows if r[0] not in EXCLUDED_COLUMNS]


def order_by(table: str, columns: list[str]) -> str:
    """Deterministic order: primary key, then every other column (nulls last)."""
    pk = [c for c in TABLES[table].primary_key if c in columns] if table in TABLES else []
    rest = [c for c in columns if c not in pk]
    return ", ".join(f'"{c}" NULLS LAST' for c in pk + rest)


def table_query(cohort: Cohort, table: str) -> tuple[str, list, list[str]]:
    """SELECT of one table restricted to the cohort: ``(sql, params, notes)``."""
    cols = view_columns(cohort.con, table)
    if not cols:
        if lake_columns(cohort.con, table):
            raise ExtractError(f"table {table!r} is not available to {cohort.access.role if cohort.access else 'you'}"
                               "s (operators only).")
        raise ExtractError(f"table {table!r} is not in the lake.")
    return cohort_table_query(cohort.filter, table, cols)


def cohort_table_query(flt: cf.CohortFilter, table: str, cols: list[str]) -> tuple[str, list, list[str]]:
    """SELECT of ``cols`` of one table or view restricted to a cohort: ``(sql, params, notes)``.

    The SQL names the relations ``_cohort_sessions`` and ``_cohort_trials`` (temp tables of an
    extract, or the CTEs of :func:`cohort_ctes`) and the reader's views.

    Raises
    ------
    ExtractError
        A table with no site, subject, session or trial column to select the cohort by.
    """
    conds, params, notes = [], [], []
    session_level = flt.keys() & {"subject", "session", "date"}
    if table == "activation_map":
        scoped = "(x.scope = 'session' AND x.scope_id IN (SELECT session_id FROM _cohort_sessions))"
        if not (flt.keys() & {"session", "condition", "task", "date"}):
            scoped += " OR (x.scope = 'subject' AND x.scope_id IN (SELECT subject_id FROM _cohort_sessions))"
        else:
            notes.append("subject-scope maps pool every session of a subject: left out because the filter "
                         "selects sessions")
        conds.append(f"({scoped})")
        notes.append("pooled condition/cohort-scope maps are not extracted (they may include other sites)")
    elif "session_id" in cols:
        conds.append("x.session_id IN (SELECT session_id FROM _cohort_sessions)")
    elif "trial_id" in cols:
        conds.append("x.trial_id IN (SELECT trial_id FROM _cohort_trials)")
    elif "subject_id" in cols:
        conds.append("x.subject_id IN (SELECT subject_id FROM _cohort_sessions)")
    elif "site_id" in cols:
        conds.append("x.site_id IN (SELECT DISTINCT site_id FROM _cohort_sessions)")
        own = {k: f"x.{k}" for k in ("condition", "task") if k in cols}
        sql, p = flt.predicate(own)
        conds.append(sql)
        params += p
        if table != "sites":
            ignored = session_level | ({"condition", "task"} & flt.keys()) - set(own)
            if ignored:
                notes.append(f"site-level table: clauses on {', '.join(sorted(ignored))} do not apply")
    else:
        raise ExtractError(f"table {table!r} has no site, subject, session or trial column to filter on.")
    # row-level clauses: muscle / side
    row = {k: f"x.{k}" for k in cf.ROW_KEYS if k in cols}
    sql, p = flt.predicate(row)
    conds.append(sql)
    params += p
    missing = (flt.keys() & set(cf.ROW_KEYS)) - set(cols)
    if "muscle" in missing and {"muscle_a", "muscle_b"} <= set(cols):
        a, p_a = flt.predicate({"muscle": "x.muscle_a"}, keys=["muscle"])
        b, p_b = flt.predicate({"muscle": "x.muscle_b"}, keys=["muscle"])
        conds.append(f"(({a}) OR ({b}))")
        params += p_a + p_b
        notes.append("muscle clauses keep pairs where either muscle matches")
        missing.discard("muscle")
    if missing and {"trial_id", "channel"} <= set(cols):
        sql, p = flt.predicate({k: f"c.{k}" for k in missing})
        conds.append(f"EXISTS (SELECT 1 FROM emg_channels c WHERE c.trial_id = x.trial_id "
                     f"AND c.channel = x.channel AND {sql})")
        params += p
        missing = set()
    if missing:
        notes.append(f"clauses on {', '.join(sorted(missing))} do not apply (no such column)")
    select = ", ".join(f'x."{c}"' for c in cols)
    where = " AND ".join(c for c in conds if c != "TRUE") or "TRUE"
    sql = f'SELECT {select} FROM "{table}" x WHERE {where} ORDER BY {order_by(table, cols)}'
    return sql, params, notes


# --------------------------------------------------------------------------- files
def check_outside_lake(settings: Settings, out: str, *, what: str) -> None:
    """Refuse an output location inside the lake (compared after normalising both).

    Raises
    ------
    ExtractError
        With a message starting ``Refused``.
    """
    try:
        inside = is_within(str(out), settings.lake)
    except LocationError as exc:
        raise ExtractError(f"Refused: output location {out!r}: {exc}.") from None
    if inside:
        raise ExtractError(f"Refused: {out} is inside the lake ({settings.lake}); {what} are written outside it. "
                           "The release area is written only by `myomap publish`, an inbox only by its site.")


def output_fs(settings: Settings, out_dir: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """File system and normalised path for an output folder (local, or s3:// with the lake's credentials)."""
    if str(out_dir).startswith("s3://"):
        return zones.filesystem(settings), str(out_dir).rstrip("/")
    return fsspec.filesystem("file"), str(Path(out_dir).expanduser().resolve())


def sha256_file(fs: fsspec.AbstractFileSystem, path: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with fs.open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def write_data_file(fs: fsspec.AbstractFileSystem, path: str, data: pa.Table | pa.RecordBatchReader,
                    fmt: str = "parquet", collect: tuple[str, ...] = ()) -> dict:
    """Write a table or a stream of batches; returns rows, sha256, bytes and distinct ``collect`` values.

    Parquet is written by pyarrow with :data:`PARQUET_WRITE_OPTIONS` and fixed row
    groups, so the same rows give the same bytes (no timestamps in the file).
    """
    seen: dict[str, set] = {c: set() for c in collect}
    rows = 0

    def note(batch) -> None:
        for c in collect:
            if c in batch.schema.names:
                seen[c] |= {v for v in batch.column(c).unique().to_pylist() if v is not None}

    with fs.open(path, "wb") as fh:
        if isinstance(data, pa.Table):
            table = data.combine_chunks()
            rows = table.num_rows
            for b in table.to_batches():
                note(b)
            if fmt == "parquet":
                pq.write_table(table, fh, row_group_size=ROW_GROUP_ROWS, **PARQUET_WRITE_OPTIONS)
            else:
                pacsv.write_csv(table, fh)
        else:
            writer = (pq.ParquetWriter(fh, data.schema, **PARQUET_WRITE_OPTIONS) if fmt == "parquet"
                      else pacsv.CSVWriter(fh, data.schema))
            try:
                for batch in data:
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    note(batch)
            finally:
                writer.close()
    digest, size = sha256_file(fs, path)
    out = {"rows": rows, "sha256": digest, "bytes": size}
    if collect:
        out["collected"] = {c: sorted(v) for c, v in seen.items()}
    return out


# --------------------------------------------------------------------------- extract
def extractable_tables() -> list[str]:
    return [t for t in TABLES if t not in NOT_EXTRACTABLE]


def _checked_tables(tables, fmt: str) -> list[str]:
    tables = list(dict.fromkeys(tables or ()))
    if fmt == "bids":
        if tables:
            raise ExtractError("tables do not apply to a BIDS extract: it holds raw EMG, motion and gait events, and "
                               "onsets and cycles under derivatives/myomap (extract other tables as Parquet).")
        return []
    if not tables:
        raise ExtractError("name at least one table to extract.")
    for t in tables:
        if t in NOT_EXTRACTABLE:
            raise ExtractError(f"table {t!r} is never extracted: it {NOT_EXTRACTABLE[t]}.")
        if t not in TABLES:
            raise ExtractError(f"unknown table {t!r}; extractable: {', '.join(extractable_tables())}.")
    return tables


def _write_tables(c: Cohort, tables: list[str], fs, root: str, fmt: str) -> tuple[list[dict], set, dict]:
    """One Parquet or CSV file per table: (file entries, params_hash values, notes per table)."""
    files, params_hashes, notes = [], set(), {}
    for t in tables:
        sql, params, tnotes = table_query(c, t)
        reader = c.con.execute(sql, params).to_arrow_reader(100_000)
        name = f"{t}.{fmt}"
        info = write_data_file(fs, f"{root}/{name}", reader, fmt, collect=("params_hash",))
        params_hashes |= set(info.pop("collected", {}).get("params_hash", []))
        files.append({"table": t, "file": name, **info})
        if tnotes:
            notes[t] = tnotes
    return files, params_hashes, notes


def extract(settings: Settings, *, cohort: str | None, tables: list[str] | tuple[str, ...],
            fmt: str = "parquet", out_dir: str, requester_site: str | None = None,
            required_scope: str = REQUIRED_SCOPE, as_of: str | None = None,
            today: dt.date | None = None, member: Identity | str | None = None, progress=None) -> dict:
    """Write a cohort extract: one file per table (or a BIDS dataset) and ``manifest.json``.

    Parameters
    ----------
    settings : Settings
        The lake.
    cohort : str or None
        Cohort filter text (``None``: everyone the sharing rules allow).
    tables : list of str
        Lake tables to extract (not ``files``, ``quarantine``, ``runs``); none for ``bids``.
    fmt : {'parquet', 'csv', 'bids'}
        File format: Parquet, CSV (UTF-8, ``.`` decimals and ISO dates whatever the locale) or an
        EMG-BIDS + Motion-BIDS dataset (:mod:`warehouse.serving.bids_export`).
    out_dir : str
        Output folder (local path or ``s3://``); must be new or empty.
    requester_site : str, optional
        Extract as a member of this site (its own data is always included; other
        sites' follow the embargo and consent rules). Default: the configured
        identity (a member: their own site; an operator: the rules apply to all).
        Only an operator may name a site that is not theirs.
    required_scope : str
        Consent scope other sites must have granted (default ``pooled_analysis``).
    as_of : str, optional
        Snapshot id or timestamp (default: the current snapshot, pinned).
    today : datetime.date, optional
        Date the embargo rule is evaluated on (default: today, UTC).
    member : Identity or str, optional
        As ``requester_site`` (``"operator"``, ``"public"``, a site id or an Identity).
    progress : callable, optional
        Called with a short message per BIDS run written.

    Returns
    -------
    dict
        The manifest (also written to ``<out_dir>/manifest.json``).

    Raises
    ------
    ExtractError, cohort_filter.CohortFilterError, catalog.CatalogError, warehouse.settings.IdentityError
    """
    if fmt not in FORMATS:
        raise ExtractError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    tables = _checked_tables(tables, fmt)
    check_outside_lake(settings, out_dir, what="extracts")
    fs, root = output_fs(settings, out_dir)
    if fs.exists(root) and (not fs.isdir(root) or fs.ls(root, detail=False)):
        raise ExtractError(f"{root} is not an empty folder; extracts go to a new or empty folder "
                           "(an earlier extract is never overwritten or mixed with another).")
    fs.makedirs(root, exist_ok=True)
    c = open_cohort(settings, cohort=cohort, requester_site=requester_site, required_scope=required_scope,
                    as_of=as_of, today=today, member=member)
    try:
        if fmt == "bids":
            files, params_hashes, notes = bids_export.write_extract(
                c, fs, root, table_sql=lambda t: table_query(c, t)[:2], code_version=code_version(),
                checksum=sha256_file, progress=progress)
        else:
            files, params_hashes, notes = _write_tables(c, tables, fs, root, fmt)
        n_subjects, n_sessions = c.con.execute(
            "SELECT count(DISTINCT subject_id), count(*) FROM _cohort_sessions").fetchone()
        manifest = {
            "kind": "myomap-extract",
            "created_at": utc_now(),
            "code_version": code_version(),
            "lake": settings.lake,
            "snapshot_id": c.snapshot_id,
            "snapshot_time": c.snapshot_time,
            "filter": {"text": c.filter.text, "canonical": c.filter.canonical(),
                       "parsed": [cl.to_dict() for cl in c.filter.clauses]},
            "sharing": c.sharing_dict(),
            "cohort": {"subjects": n_subjects, "sessions": n_sessions},
            "format": fmt,
            "files": files,
            "parameters": {"params_hash": sorted(params_hashes)},
            "notes": notes,
            "privacy": ("Only pseudonymous subject ids leave the lake: files, quarantine and runs are never "
                        "extracted and no path or raw_path column is written."
                        + (" BIDS names come from subject, session, task and run only." if fmt == "bids" else "")),
        }
    finally:
        c.close()
    with fs.open(f"{root}/manifest.json", "w") as fh:
        fh.write(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest

