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

Every ``v_*`` view names the lake's tables by their plain name: on a member's session
those names are the member-scoped views of :mod:`warehouse.serving.access`, so a ``v_*``
view never shows a row its reader could not see in the table itself.

Hardening
---------
DuckLake's ``READ_ONLY`` attach refuses INSERT / UPDATE / DELETE / DROP / CREATE /
ALTER on ``lake`` but not writes *elsewhere* (``COPY ... TO``, ``EXPORT DATABASE``,
a second writable ``ATTACH`` of the catalog, extensions), nor the scanner
functions that read any SQLite/PostgreSQL database, nor ``postgres_execute`` on
the catalog's own PostgreSQL connection (measured: ``COMMIT; UPDATE ...`` ends the
read-only transaction and writes). :func:`harden` applies two layers:

1. Configuration, then locked: ``allowed_directories`` = the lake's data path
   (measured: a lake attached at a pinned ``SNAPSHOT_VERSION`` cannot read its
   own Parquet files without it), ``enable_external_access = false`` (no other
   file, no extension install/load), a private temporary directory (DuckDB
   allows its temp directory implicitly), autoloading/community
   extensions/Python replacement scans off, then ``lock_configuration = true`` so
   no ``SET``/``RESET`` can undo any of it. This layer alone is not enough: the
   directory check is read *and* write, compares ``s3://`` paths as strings
   (``s3://b/lake/tables/../../x`` passes), and the SQLite/PostgreSQL scanners
   ignore it. A lake that holds macros or views is refused (a lake macro named
   like a built-in would shadow it).
2. The statement gate of :mod:`warehouse.serving.gate`: DuckDB's parser, only
   queries, and an **allow-list** of every function, table function and relation
   in the parse tree (the session's views only). Everything else is refused with
   :class:`ReadOnlyViolation` ("Refused ...") before DuckDB sees it.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass

import duckdb

from warehouse import catalog
from warehouse.serving.gate import QUERY_TYPES, Gate, ReadOnlyViolation  # noqa: F401 (re-exported)

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
FROM trials t
LEFT JOIN sessions s USING (session_id)
LEFT JOIN (SELECT trial_id, count(*) AS n_cycles, count(*) FILTER (WHERE valid) AS n_valid_cycles
           FROM gait_cycles GROUP BY trial_id) c USING (trial_id)
"""),
    View("v_onsets",
         "Default-method activation onsets/offsets (activation_onsets WHERE is_default) with the session "
         "context: one row per trial x muscle x side x cycle x burst.",
         f"""
SELECT o.trial_id, s.site_id, o.subject_id, o.session_id, s.session_date, s.condition, s.task,
       o.muscle, o.side, o.cycle, o.burst, o.method, o.onset_ms, o.offset_ms, o.onset_pct, o.offset_pct,
       o.offset_ms - o.onset_ms AS duration_ms, o.bias_corrected, o.params_hash
FROM activation_onsets o JOIN sessions s USING (session_id)
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
FROM activation_map
"""),
    View("v_asymmetry_by_cohort",
         "Asymmetry by cohort (site x task x condition x muscle x metric): subject means of the Robinson "
         "symmetry index and Zifchock symmetry angle, then mean/SD/median across subjects. Unsuppressed: "
         "for consortium members; published cohort tables apply the small-cell rule.",
         f"""
WITH per_subject AS (
  SELECT s.site_id, s.task, a.condition, a.muscle, a.metric, a.subject_id,
         avg(a.si_pct) AS si_pct, avg(a.sa_pct) AS sa_pct
  FROM asymmetry a JOIN sessions s USING (session_id)
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
  FROM variability v JOIN sessions s USING (session_id),
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
FROM subject_profiles p JOIN sessions s USING (session_id)
WHERE p.flag IS NOT NULL AND p.flag <> 'none'
"""),
    View("v_qc_files",
         "File accounting per site and status, with the quarantine reasons (no paths).",
         f"""
SELECT f.site_id, f.status, q.stage, q.reason_code, count(DISTINCT f.sha256) AS n_files
FROM files f
LEFT JOIN quarantine q ON f.status = 'quarantined' AND q.sha256 = f.sha256 AND q.site_id = f.site_id
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


_LOCKDOWN = (
    ("autoinstall_known_extensions", "false"),
    ("autoload_known_extensions", "false"),
    ("allow_community_extensions", "false"),
    ("python_enable_replacements", "false"),
)


def check_statements(con: duckdb.DuckDBPyConnection, sql: str, gate: Gate | None = None) -> None:
    """Refuse ``sql`` unless every statement is a query naming only allowed things (see the gate)."""
    from warehouse.serving import gate as g

    g.check_statements(con, sql, gate or Gate())


class ReadOnlySession:
    """A hardened connection: runs gated queries only (see the module docstring).

    Exposes ``execute`` (same signature and result as DuckDB's), ``views`` (what a
    query may name) and ``close``; the underlying connection is deliberately not exposed.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, views: list[str], gate: Gate):
        self._con = con
        self.views = list(views)
        self.gate = gate

    def execute(self, sql: str, parameters=None) -> duckdb.DuckDBPyConnection:
        self.gate.check(self._con, sql)
        if parameters is None:
            return self._con.execute(sql)
        return self._con.execute(sql, parameters)

    def close(self) -> None:
        self._con.close()
        if getattr(self, "_tmp", None):
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "ReadOnlySession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def harden(con: duckdb.DuckDBPyConnection, *, operator: bool = False) -> ReadOnlySession:
    """Lock a read-only lake connection down and wrap it so that it can only run gated queries.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection from ``catalog.connect(settings, read_only=True)`` (or
        ``as_of=...``). Create the temp views (scoped tables, :func:`create_views`)
        *before*: they are what queries may name.
    operator : bool
        Whether the operator-only table functions (raw DuckLake rows and file
        lists) are allowed.

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
    stored = con.execute("SELECT (SELECT count(*) FROM duckdb_functions() WHERE database_name = ANY(?)) + "
                         "(SELECT count(*) FROM duckdb_views() WHERE database_name = ANY(?))",
                         [[n for n, _ in lakes]] * 2).fetchone()[0]
    if stored:
        raise HardeningError("the lake catalog holds macros or views; myomap never creates them and a stored macro "
                             "could shadow a built-in function: an operator must drop them first.")
    data_paths = []
    for name, _ in lakes:
        rows = con.execute("SELECT data_path FROM ducklake_settings(?)", [name]).fetchall()
        data_paths += [r[0] for r in rows if r[0]]
    names = [r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal UNION "
        "SELECT table_name FROM duckdb_tables() WHERE temporary ORDER BY 1").fetchall()]
    tmp = tempfile.mkdtemp(prefix="myomap-sql-")
    for key, value in _LOCKDOWN:
        con.execute(f"SET {key} = {value}")
    con.execute("SET temp_directory = ?", [tmp])
    con.execute("SET allowed_directories = ?", [sorted({p if p.endswith("/") else p + "/" for p in data_paths})])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    session = ReadOnlySession(con, names, Gate(frozenset(n.lower() for n in names if not n.startswith("_")),
                                               operator=operator))
    session._tmp = tmp
    return session
