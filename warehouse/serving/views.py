"""Read-side views over the lake and the hardening of read-only (``myomap sql``) connections.

Views
-----
:data:`VIEWS` documents one view per common question (activation timing by muscle
and condition, activation maps, asymmetry and variability by cohort, a trials
overview...). :func:`create_views` creates them as **TEMP views in the reading
connection**, over the attached ``lake`` catalog:

* a read-only DuckLake attachment cannot hold new views (``CREATE VIEW lake.x``
  is a write), and storing them in the catalog would need a writer and a schema
  migration each time a view changes;
* temp views live in the connection's own in-memory ``temp`` catalog, cost
  nothing to create, always match the code that is running, and follow the
  snapshot the connection attached (``myomap sql --as-of 12`` sees the views as
  of snapshot 12).

Views are named ``v_*`` so they never shadow a lake table.

Hardening
---------
DuckLake's ``READ_ONLY`` attach already refuses INSERT / UPDATE / DELETE / DROP /
CREATE / ALTER on ``lake``. It does not stop a connection from writing *elsewhere*
(``COPY ... TO``, ``EXPORT DATABASE``, ``ATTACH`` of the catalog a second time
without ``READ_ONLY``, loading extensions). Measured on DuckDB 1.5.5, two layers
are needed, and :func:`harden` applies both:

1. Configuration, then locked: ``allowed_directories`` = the lake's data path
   (reads of the Parquet files keep working), ``enable_external_access = false``
   (no other file, no extension install/load, no COPY/EXPORT outside the data
   path), autoloading/community extensions/persistent secrets/Python replacement
   scans off, then ``lock_configuration = true`` so no ``SET``/``RESET`` can undo
   any of it.
2. A statement gate: ``allowed_directories`` is read *and* write, and the
   ``sqlite``/``postgres`` scanners open the catalog themselves (a second
   ``ATTACH 'ducklake:sqlite:...'`` without ``READ_ONLY`` still succeeds after
   step 1). So the returned :class:`ReadOnlySession` parses every statement with
   DuckDB's own parser and runs only queries: SELECT (which covers FROM-first,
   WITH, VALUES, SHOW, DESCRIBE, SUMMARIZE, table-valued PRAGMAs) and EXPLAIN of
   a query (``EXPLAIN ANALYZE`` executes its statement, so the inner statement is
   checked too). Everything else (COPY, ATTACH, DETACH, SET, RESET, USE, LOAD,
   INSTALL, CREATE, CALL, PRAGMA with side effects, transactions, EXPORT...) is
   refused with :class:`ReadOnlyViolation` before DuckDB sees it.
   A query is also refused when its parse tree (``json_serialize_sql``) calls a
   DuckLake maintenance function, ``checkpoint`` or a function that runs other
   SQL (``query``): measured, ``SELECT * FROM ducklake_cleanup_old_files('lake',
   cleanup_all => true)`` on a READ_ONLY attachment deletes the data files
   scheduled for deletion before failing on the catalog update.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

import duckdb

from warehouse import catalog

log = logging.getLogger(__name__)
L = catalog.LAKE  # the attached catalog's name


@dataclass(frozen=True)
class View:
    """One documented view: its name, the question it answers, its SQL body."""

    name: str
    description: str
    sql: str


VIEWS: tuple[View, ...] = (
    View("v_trials_overview",
         "One row per trial with its session context (site, subject, date, condition, task, terrain), "
         "recording facts and how many gait cycles are valid.",
         f"""
SELECT t.trial_id, t.site_id, t.subject_id, t.session_id, s.session_date, s.condition, s.task, s.terrain,
       t.format, t.vendor, t.duration_s, t.analog_rate_hz, t.n_emg_channels, t.n_force_plates, t.n_markers,
       coalesce(c.n_cycles, 0) AS n_cycles, coalesce(c.n_valid_cycles, 0) AS n_valid_cycles, t.ingested_at
FROM {L}.main.trials t
LEFT JOIN {L}.main.sessions s USING (session_id)
LEFT JOIN (SELECT trial_id, count(*) AS n_cycles, count(*) FILTER (WHERE valid) AS n_valid_cycles
           FROM {L}.main.gait_cycles GROUP BY trial_id) c USING (trial_id)
"""),
    View("v_onsets",
         "Default-method activation onsets/offsets (activation_onsets WHERE is_default) with the session "
         "context: one row per trial x muscle x side x cycle x burst.",
         f"""
SELECT o.trial_id, s.site_id, o.subject_id, o.session_id, s.session_date, s.condition, s.task,
       o.muscle, o.side, o.cycle, o.burst, o.method, o.onset_ms, o.offset_ms, o.onset_pct, o.offset_pct,
       o.offset_ms - o.onset_ms AS duration_ms, o.bias_corrected, o.params_hash
FROM {L}.main.activation_onsets o JOIN {L}.main.sessions s USING (session_id)
WHERE o.is_default
"""),
    View("v_activation_timing",
         "Activation timing by task, condition, muscle and side (first burst, default method): per-subject "
         "means first, then mean and SD across subjects (each subject counts once). Never mixes params_hash.",
         """
WITH per_subject AS (
  SELECT task, condition, muscle, side, params_hash, subject_id, count(*) AS n_cycles,
         avg(onset_ms) AS onset_ms, avg(offset_ms) AS offset_ms,
         avg(onset_pct) AS onset_pct, avg(offset_pct) AS offset_pct
  FROM v_onsets WHERE burst = 0 GROUP BY ALL)
SELECT task, condition, muscle, side, params_hash, count(*) AS n_subjects, sum(n_cycles) AS n_cycles,
       avg(onset_ms) AS onset_ms_mean, stddev_samp(onset_ms) AS onset_ms_sd,
       avg(offset_ms) AS offset_ms_mean, stddev_samp(offset_ms) AS offset_ms_sd,
       avg(onset_pct) AS onset_pct_mean, avg(offset_pct) AS offset_pct_mean
FROM per_subject GROUP BY ALL
"""),
    View("v_activation_maps",
         "Activation maps (activation_map) with the Perry gait phase of each % of the cycle "
         "(loading_response 0-10, mid_stance 10-30, terminal_stance 30-50, pre_swing 50-60, swing 60-100).",
         f"""
SELECT scope, scope_id, muscle, side, pct,
       CASE WHEN pct < 10 THEN 'loading_response' WHEN pct < 30 THEN 'mid_stance'
            WHEN pct < 50 THEN 'terminal_stance' WHEN pct < 60 THEN 'pre_swing' ELSE 'swing' END AS phase,
       envelope_mean, envelope_sd, n_cycles, onset_mean_pct, offset_mean_pct
FROM {L}.main.activation_map
"""),
    View("v_asymmetry_by_cohort",
         "Asymmetry by cohort (site x task x condition x muscle x metric): subject means of the Robinson "
         "symmetry index and Zifchock symmetry angle, then mean/SD/median across subjects. Unsuppressed: "
         "for consortium members; published cohort tables apply the small-cell rule.",
         f"""
WITH per_subject AS (
  SELECT s.site_id, s.task, a.condition, a.muscle, a.metric, a.subject_id,
         avg(a.si_pct) AS si_pct, avg(a.sa_pct) AS sa_pct
  FROM {L}.main.asymmetry a JOIN {L}.main.sessions s USING (session_id)
  GROUP BY ALL)
SELECT site_id, task, condition, muscle, metric, count(si_pct) AS n_subjects,
       avg(si_pct) AS si_pct_mean, stddev_samp(si_pct) AS si_pct_sd, median(si_pct) AS si_pct_median,
       avg(sa_pct) AS sa_pct_mean
FROM per_subject GROUP BY ALL
"""),
    View("v_variability_by_cohort",
         "Variability by cohort (site x task x condition x muscle x side x metric) in long form, metric named "
         "like cohort_variability: '<what varies>.<statistic>' (envelope.cv_pct, envelope.variance_ratio, "
         "envelope.onset_sd_ms, stance_time_s.cv_pct...): subject means, then mean/SD/median.",
         f"""
WITH long AS (
  SELECT s.site_id, s.task, v.condition, v.muscle, v.side, v.subject_id,
         coalesce(v.metric, 'envelope') || '.' || u.metric AS metric, u.value
  FROM {L}.main.variability v JOIN {L}.main.sessions s USING (session_id),
  LATERAL (VALUES ('cv_pct', v.cv_pct), ('variance_ratio', v.variance_ratio),
                  ('onset_sd_ms', v.onset_sd_ms)) u(metric, value)),
per_subject AS (SELECT site_id, task, condition, muscle, side, metric, subject_id, avg(value) AS value
                FROM long GROUP BY ALL)
SELECT site_id, task, condition, muscle, side, metric, count(value) AS n_subjects,
       avg(value) AS mean, stddev_samp(value) AS sd, median(value) AS median
FROM per_subject GROUP BY ALL
"""),
    View("v_subject_flags",
         "Patient-profile values flagged against the cohort reference (subject_profiles with flag <> 'none').",
         f"""
SELECT s.site_id, p.subject_id, p.session_id, p.task, p.condition, p.muscle, p.side, p.metric, p.value,
       p.reference_mean, p.reference_sd, p.z, p.percentile, p.flag, p.n_reference
FROM {L}.main.subject_profiles p JOIN {L}.main.sessions s USING (session_id)
WHERE p.flag IS NOT NULL AND p.flag <> 'none'
"""),
    View("v_qc_files",
         "File accounting per site and status, with the quarantine reasons (no paths).",
         f"""
SELECT f.site_id, f.status, q.stage, q.reason_code, count(DISTINCT f.sha256) AS n_files
FROM {L}.main.files f
LEFT JOIN {L}.main.quarantine q ON f.status = 'quarantined' AND q.sha256 = f.sha256 AND q.site_id = f.site_id
GROUP BY ALL
"""),
)


def create_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create (or replace) every view of :data:`VIEWS` as a TEMP view in ``con``.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection from :func:`warehouse.catalog.connect` (read-only or not, any
        snapshot). Must not be hardened yet (creating a view is a CREATE).

    Returns
    -------
    list of str
        The views created, in :data:`VIEWS` order. A view whose columns the lake
        does not have (a lake made by older contracts, or ``--as-of`` a snapshot
        before a column existed) is skipped with a warning rather than failing.
    """
    made = []
    for v in VIEWS:
        try:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {v.name} AS {v.sql.strip()}")
        except (duckdb.BinderException, duckdb.CatalogException) as exc:
            log.warning("view %s not created: %s", v.name, str(exc).splitlines()[0])
            continue
        made.append(v.name)
    return made


def views_markdown() -> str:
    """The views as a Markdown list (for docs and ``--help``)."""
    return "\n".join(f"- `{v.name}`: {v.description}" for v in VIEWS)


# --------------------------------------------------------------------------- hardening
class HardeningError(RuntimeError):
    """The connection cannot be made read-only (e.g. the lake is attached writable)."""


class ReadOnlyViolation(duckdb.PermissionException):
    """A statement other than a query was sent to a hardened session.

    Subclasses :class:`duckdb.Error` so callers that report DuckDB errors
    (``myomap sql``) report this one the same way.
    """


#: Statement types a hardened session runs.
QUERY_TYPES = frozenset({duckdb.StatementType.SELECT})
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:\([^()]*\)\s*)?(?:ANALY[SZ]E\s+)?(?P<inner>.+)$", re.I | re.S)
_LOCKDOWN = (
    ("autoinstall_known_extensions", "false"),
    ("autoload_known_extensions", "false"),
    ("allow_community_extensions", "false"),
    ("python_enable_replacements", "false"),
)


#: DuckLake functions that only read (any other ``ducklake_*`` function is refused).
DUCKLAKE_READERS = frozenset({
    "ducklake_snapshots", "ducklake_current_snapshot", "ducklake_last_committed_snapshot", "ducklake_list_files",
    "ducklake_table_info", "ducklake_table_changes", "ducklake_table_insertions", "ducklake_table_deletions",
    "ducklake_scan", "ducklake_settings", "ducklake_options"})
#: Maintenance functions (also callable as ``lake.<name>``) and functions that run other SQL.
REFUSED_FUNCTIONS = frozenset({
    "add_data_files", "cleanup_old_files", "delete_orphaned_files", "expire_snapshots", "flush_inlined_data",
    "merge_adjacent_files", "rewrite_data_files", "set_option", "set_commit_message", "commit",
    "checkpoint", "force_checkpoint", "query", "json_execute_serialized_sql"})


def _function_names(node) -> set[str]:
    names, stack = set(), [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            if isinstance(n.get("function_name"), str):
                names.add(n["function_name"].lower())
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)
    return names


def _check_query(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse a SELECT that calls a function with side effects (found in DuckDB's own parse tree)."""
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0])
    if tree.get("error"):
        raise ReadOnlyViolation(f"Refused a statement that could not be checked: {tree.get('error_message')}")
    bad = sorted(f for f in _function_names(tree) if f in REFUSED_FUNCTIONS
                 or (f.startswith("ducklake_") and f not in DUCKLAKE_READERS)
                 or f.removeprefix("ducklake_") in REFUSED_FUNCTIONS)
    if bad:
        raise ReadOnlyViolation(f"Refused a query calling {', '.join(bad)}: maintenance and SQL-running functions "
                                "write to the lake or run other statements; the read-only lake only answers queries.")


def check_statements(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse ``sql`` unless every statement in it is a query without side effects.

    Raises
    ------
    ReadOnlyViolation
        Naming the first refused statement type or function.
    duckdb.ParserException
        When ``sql`` does not parse (DuckDB's own message).
    """
    for st in con.extract_statements(sql):
        query = st.query if st.type in QUERY_TYPES else None
        if st.type == duckdb.StatementType.EXPLAIN:
            m = _EXPLAIN.match(st.query)
            inner = con.extract_statements(m.group("inner")) if m else []
            if len(inner) == 1 and inner[0].type in QUERY_TYPES:
                query = inner[0].query
        if query is None:
            kind = str(st.type).rsplit(".", 1)[-1]
            raise ReadOnlyViolation(
                f"Refused a statement of type {kind}: only queries (SELECT, FROM, WITH, VALUES, SHOW, DESCRIBE, "
                "SUMMARIZE, EXPLAIN <query>) run on the read-only lake.")
        _check_query(con, query)


class ReadOnlySession:
    """A hardened connection: runs queries only (see the module docstring).

    Exposes ``execute`` (same signature and result as DuckDB's), ``views`` and
    ``close``; the underlying connection is deliberately not exposed.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, views: list[str]):
        self._con = con
        self.views = list(views)

    def execute(self, sql: str, parameters=None) -> duckdb.DuckDBPyConnection:
        check_statements(self._con, sql)
        if parameters is None:
            return self._con.execute(sql)
        return self._con.execute(sql, parameters)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "ReadOnlySession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def harden(con: duckdb.DuckDBPyConnection) -> ReadOnlySession:
    """Lock a read-only lake connection down and wrap it so that it can only query.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection from ``catalog.connect(settings, read_only=True)`` (or
        ``as_of=...``). Create temp views (:func:`create_views`) *before*.

    Returns
    -------
    ReadOnlySession
        Use its ``execute`` for user SQL. ``con`` itself is left locked
        (configuration cannot change any more) and must not be handed out.

    Raises
    ------
    HardeningError
        When a DuckLake catalog is attached writable, or nothing is attached.
    """
    lakes = con.execute("SELECT database_name, readonly FROM duckdb_databases() WHERE type = 'ducklake' "
                        "ORDER BY database_name").fetchall()
    if not lakes:
        raise HardeningError("harden() needs a connection with the lake attached (catalog.connect).")
    writable = [name for name, ro in lakes if not ro]
    if writable:
        raise HardeningError(f"harden() needs a read-only connection; {', '.join(writable)} is attached writable. "
                             "Use catalog.connect(settings, read_only=True).")
    data_paths = []
    for name, _ in lakes:
        rows = con.execute("SELECT data_path FROM ducklake_settings(?)", [name]).fetchall()
        data_paths += [r[0] for r in rows if r[0]]
    views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal "
                                       "ORDER BY 1").fetchall()]
    for key, value in _LOCKDOWN:
        con.execute(f"SET {key} = {value}")
    con.execute("SET allowed_directories = ?", [sorted({p if p.endswith("/") else p + "/" for p in data_paths})])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return ReadOnlySession(con, views)


def open_read_only(settings, *, as_of: str | None = None) -> ReadOnlySession:
    """What ``myomap sql`` should open: read-only attach, :data:`VIEWS`, :func:`harden`.

    Raises
    ------
    warehouse.catalog.CatalogError
        When there is no catalog yet.
    """
    con = catalog.connect(settings, read_only=True, as_of=as_of)
    try:
        create_views(con)
        return harden(con)
    except BaseException:
        con.close()
        raise
