"""Reading through one member session for the Python API (``import myomap``): frames, lazy tables, cohorts.

Everything here runs on a :class:`~warehouse.serving.access.MemberSession` (the session
``myomap sql`` opens): every statement, including the ones this module builds, goes through the
statement gate and names the member-scoped views only, so the API shows exactly what ``myomap sql``
shows the same member at the same snapshot.

Lazy tables (:func:`scan`)
    A polars ``LazyFrame`` backed by an IO source (``polars.io.plugins.register_io_source``):
    nothing is read until ``collect()``; then one gated ``SELECT`` of the columns the query uses
    (projection pushdown), restricted to a cohort when one is given, with ``LIMIT`` when polars asks
    for the first rows only, runs on the session's pinned snapshot. Row filters written in polars
    are applied by polars to the rows DuckDB returns (they are not translated to SQL): narrow big
    tables such as ``emg_samples`` with ``cohort=`` or with :meth:`Lake.sql`. A DuckDB connection
    runs one query at a time, so each collect materialises its (projected) result before handing
    it to polars in batches; the member's row filters always apply, because the only relations a
    query can name are the session's views. The session must still be open when the frame is
    collected.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from warehouse import catalog
from warehouse.serving import cohort_filter as cf
from warehouse.serving import extracts
from warehouse.serving.access import MemberSession
from warehouse.settings import Settings

#: Rows per polars batch handed out by a lazy table.
BATCH_ROWS = 256 * 1024


class LakeError(ValueError):
    """A request the API cannot serve (unknown table, trial or kind; a closed lake)."""


class UnknownTrialError(LakeError):
    """A trial id the reader's view of the lake does not hold."""


@dataclass
class Reader:
    """A member session, its settings and a lock (one DuckDB query at a time, whatever thread asks)."""

    settings: Settings
    session: MemberSession
    lock: threading.RLock

    def arrow(self, sql: str, params: list | None = None) -> pa.Table:
        """Run a gated query (retried while the catalog is busy) and return all its rows as Arrow."""
        with self.lock:
            if self.session is None:
                raise LakeError("the lake is closed; open it again with myomap.open().")
            res = catalog.with_retry(lambda: self.session.execute(sql, params), self.settings, what="query")
            out = res.arrow()
        return out.read_all() if isinstance(out, pa.RecordBatchReader) else out

    def frame(self, sql: str, params: list | None = None) -> pl.DataFrame:
        return pl.from_arrow(self.arrow(sql, params), rechunk=False)

    def relations(self) -> list[str]:
        """Tables and views the session may name (``SHOW TABLES``)."""
        return sorted(self.arrow("SHOW TABLES").column(0).to_pylist())

    def columns(self, name: str) -> list[str]:
        rows = self.arrow("SELECT column_name FROM information_schema.columns WHERE table_catalog = 'temp' "
                          "AND table_name = ? ORDER BY ordinal_position", [name]).column(0).to_pylist()
        return [c for c in rows if c not in extracts.EXCLUDED_COLUMNS]


# --------------------------------------------------------------------------- cohorts
@dataclass(frozen=True)
class Cohort:
    """The sessions a cohort filter selects in the reader's view of the lake.

    ``filter`` (parsed, :mod:`warehouse.serving.cohort_filter`), ``sessions`` (session_id,
    subject_id, site_id, session_date, condition, task, terrain), and the SQL that restricts a table
    to it (:meth:`restrict`).
    """

    filter: cf.CohortFilter
    sessions: pl.DataFrame

    @property
    def text(self) -> str:
        return self.filter.canonical()

    @property
    def subjects(self) -> list[str]:
        return sorted(set(self.sessions["subject_id"].to_list()))

    @property
    def session_ids(self) -> list[str]:
        return sorted(self.sessions["session_id"].to_list())

    def __len__(self) -> int:
        return self.sessions.height

    def __repr__(self) -> str:
        return (f"Cohort({self.text or 'everyone'!r}: {len(self.subjects)} subjects, {len(self)} sessions, "
                f"sites {sorted(set(self.sessions['site_id'].to_list()))})")

    def restrict(self, name: str, columns: list[str]) -> tuple[str, list, list[str]]:
        """``(sql, params, notes)``: SELECT of ``columns`` of ``name`` within the cohort (same rules as extracts)."""
        ctes, p1 = extracts.cohort_ctes(self.filter)
        sql, p2, notes = extracts.cohort_table_query(self.filter, name, columns)
        return ctes + sql, p1 + p2, notes


def cohort(reader: Reader, text: str | cf.CohortFilter | None) -> Cohort:
    """Parse ``text`` against the values the reader can see and select its sessions.

    Raises
    ------
    cohort_filter.CohortFilterError
        Bad syntax, unknown key or value (the message names the clause).
    """
    if isinstance(text, Cohort):
        return text
    if isinstance(text, cf.CohortFilter):
        flt = text
    else:
        cf.parse(text, check_values=False)  # syntax first: a bad filter never reaches the lake
        # as in extracts: every site the lake knows may be named; a hidden one selects nothing
        known = {"site": [d.site_id for d in reader.session.access.decisions],
                 "condition": _distinct(reader, "condition"), "task": _distinct(reader, "task")}
        flt = cf.parse(text, known=known)
    sql, params = extracts.cohort_sessions_sql(flt)
    sessions = reader.frame(
        f"WITH c AS ({sql}) SELECT s.session_id, s.subject_id, s.site_id, s.session_date, s.condition, s.task, "
        "s.terrain FROM sessions s JOIN c USING (session_id) ORDER BY s.session_id", params)
    return Cohort(flt, sessions)


def _distinct(reader: Reader, column: str) -> list[str]:
    return [v for v in reader.arrow(f"SELECT DISTINCT {column} FROM sessions WHERE {column} IS NOT NULL")
            .column(0).to_pylist()]


# --------------------------------------------------------------------------- tables
def table_sql(reader: Reader, name: str, cohort_: Cohort | None) -> tuple[str, list, list[str]]:
    """The gated SELECT behind :func:`scan`: ``(sql, params, notes)``.

    Raises
    ------
    LakeError
        A name the reader cannot see (with the names they can), or a cohort on a table without a
        site, subject, session or trial column.
    """
    visible = reader.relations()
    if name not in visible:
        raise LakeError(f"no table or view {name!r} in your view of the lake; you can read: {', '.join(visible)}.")
    cols = reader.columns(name)
    if cohort_ is None:
        return f'SELECT {", ".join(_q(c) for c in cols)} FROM "{name}"', [], []
    try:
        return cohort_.restrict(name, cols)
    except extracts.ExtractError as exc:
        raise LakeError(str(exc)) from None


def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def scan(reader: Reader, name: str, cohort_: Cohort | None = None) -> pl.LazyFrame:
    """``name`` (a table or ``v_*`` view) as a polars LazyFrame over the session's pinned snapshot.

    See the module docstring for what is pushed down (columns, a row limit, the cohort) and what
    polars does itself (row filters).
    """
    from polars.io.plugins import register_io_source

    base, params, _ = table_sql(reader, name, cohort_)
    schema = reader.frame(f"SELECT * FROM ({base}) q LIMIT 0", params).schema

    def source(with_columns, predicate, n_rows, batch_size):
        cols = ", ".join(_q(c) for c in (with_columns or list(schema)))
        sql = f"SELECT {cols} FROM ({base}) q" + (f" LIMIT {int(n_rows)}" if n_rows is not None else "")
        data = reader.frame(sql, params)
        step = batch_size or BATCH_ROWS
        for start in range(0, max(data.height, 1), step):
            batch = data.slice(start, step)
            yield batch.filter(predicate) if predicate is not None else batch

    return register_io_source(source, schema=schema, explain_name=f"myomap table {name}",
                              explain_detail=f"snapshot {reader.session.snapshot_id}")


def check_trial(reader: Reader, trial_id: str) -> dict:
    """The trial's site, subject and session, if the reader can see it.

    Raises
    ------
    UnknownTrialError
        Message starting ``Refused`` when the id names a site whose data the reader may not see
        (embargo, consent), else ``unknown trial ...``; neither says whether such a trial exists.
    """
    rows = reader.arrow("SELECT trial_id, site_id, subject_id, session_id FROM trials WHERE trial_id = ?",
                        [str(trial_id)]).to_pylist()
    if rows:
        return rows[0]
    access = reader.session.access
    hidden = [d for d in access.decisions if not access.is_operator and not d.included]
    for d in hidden:
        if str(trial_id).startswith(f"{d.site_id}:"):
            raise UnknownTrialError(f"Refused: trials of site {d.site_id} are not shared with you "
                                    f"({'; '.join(d.reasons)}).")
    raise UnknownTrialError(
        f"unknown trial {trial_id!r} at snapshot {reader.session.snapshot_id}"
        + (f" (sites hidden from you: {', '.join(d.site_id for d in hidden)})" if hidden else "")
        + "; list the trials you can read with lake.table('trials').")
