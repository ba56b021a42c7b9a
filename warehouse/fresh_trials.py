"""The rows of the trials this process has just committed, for the derivations that follow them in the same night.

The night derives each trial right after its ingest committed it (``flows.nightly``). Reading the trial back
through the catalog costs a DuckLake statement per table (~40-60 ms each while the night commits, and every
statement takes the process's turn at the catalog). The ingest already holds those rows: after its commit it
hands them here (:func:`remember`), and the trial's envelope and analysis steps run **the same SQL** over them
in an in-memory DuckDB (:func:`source`), where each table of the trial is the Arrow table that was inserted.

Only what was committed is kept: the ingest hands the rows over after its transaction committed, and replaces
them when the trial is committed again (a corrected re-upload). Only the trial's own tables are here (a query
touching another table, such as ``sessions``, goes to the catalog). At most :data:`KEPT_TRIALS` trials are
kept; a trial derived later (another night, a retry, an evicted one) is read from the catalog, with the same
result. Shared by ``warehouse.ingest`` (which fills it) and ``warehouse.analysis`` (which reads it).
"""
from __future__ import annotations

import collections
import threading

import duckdb
import pyarrow as pa

from schemas import contracts
from warehouse.settings import Settings

#: Trials kept at most (the oldest is dropped first): the night's derivation threads take a trial within a
#: few trials of its ingest; one trial's tables are ~20-40 MB of Arrow memory.
KEPT_TRIALS = 6

_KEPT: collections.OrderedDict[tuple[str, str], dict[str, pa.Table]] = collections.OrderedDict()
_LOCK = threading.Lock()


def remember(settings: Settings, trial_id: str, tables: dict[str, pa.Table]) -> None:
    """Keep the rows the ingest has just committed for ``trial_id`` (table name -> the Arrow table inserted)."""
    key = (settings.catalog, trial_id)
    with _LOCK:
        _KEPT.pop(key, None)
        _KEPT[key] = {name: t for name, t in tables.items() if t is not None}
        while len(_KEPT) > KEPT_TRIALS:
            _KEPT.popitem(last=False)


def forget(settings: Settings, trial_id: str) -> None:
    """Drop the trial's rows (its last derivation has read them, or its ingest did not commit)."""
    with _LOCK:
        _KEPT.pop((settings.catalog, trial_id), None)


def source(settings: Settings, trial_id: str) -> duckdb.DuckDBPyConnection | None:
    """An in-memory DuckDB connection where each table the trial was committed with is a view of the rows
    inserted, typed as the lake stores them (other tables are absent, not empty), or None when this process
    does not hold the trial. The caller closes it."""
    with _LOCK:
        tables = _KEPT.get((settings.catalog, trial_id))
        if tables is not None:
            _KEPT.move_to_end((settings.catalog, trial_id))
    if tables is None:
        return None
    con = duckdb.connect(config={"allow_unsigned_extensions": False, "enable_external_access": False})
    try:
        for name, t in tables.items():
            con.register(f"_in_{name}", t)
            con.execute(_view_sql(name, set(t.column_names)))
    except BaseException:
        con.close()
        raise
    return con


def _view_sql(name: str, present: set[str]) -> str:
    """A view of the inserted rows as the lake stores them: every column of the table's contract, cast to its
    type (``INSERT ... BY NAME`` casts the same way; a column the rows lack is NULL)."""
    cols = ", ".join(f'CAST({_q(c.name) if c.name in present else "NULL"} AS {c.dtype}) AS {_q(c.name)}'
                     for c in contracts.TABLES[name].columns)
    return f"CREATE VIEW {_q(name)} AS SELECT {cols} FROM {_q('_in_' + name)}"


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
