"""The rows of the trials this process has just committed, for the derivations that follow them in the same night.

The night derives each trial right after its ingest committed it (``flows.nightly``). Reading the trial back
through the catalog costs a DuckLake statement per table (~40-60 ms each while the night commits, and every
statement takes the process's turn at the catalog). The ingest already holds those rows: after its commit it
hands them here (:func:`remember`), and the trial's envelope and analysis steps run **the same SQL** over them
in an in-memory DuckDB (:func:`source`), where each table of the trial is the Arrow table that was inserted.

Only what was committed, or waits in the ingest's batch to be, is kept: the ingest hands the rows over after
its transaction committed, or once they wait in its batch (``warehouse.trial_batch``: pinned, never
evicted, until the batch commits; dropped if it fails, and the trial's derived rows are then not committed), and
drops them before the trial is committed again (a corrected re-upload); each derivation adds the rows it has
just committed (:func:`add`). Only the trial's own tables are here, and its site's sessions as this night's sync
left them (:func:`remember_site`: during the night's lease only that sync writes them; :func:`forget_sites`
when the night ends); a query touching another table goes to the catalog. Once analysed, a trial keeps only
the small tables its session's synergies are computed from (:func:`settle`), until the session is factorised
ahead of the cohort rebuild. At most :data:`KEPT_TRIALS` whole and :data:`KEPT_SETTLED` settled trials are
kept; a trial derived later (another night, a retry, an evicted one) is read from the catalog, with the same
result. Shared by ``warehouse.ingest`` (which fills it) and ``warehouse.analysis`` (which reads it).
"""
from __future__ import annotations

import collections
import threading

import duckdb
import pyarrow as pa

from schemas import contracts
from warehouse import catalog
from warehouse.settings import Settings

#: Trials kept whole at most (the oldest is dropped first): the night's ingest waits while this many trials it
#: submitted are not derived (``flows.nightly``); one trial's tables are ~8 MB of Arrow memory (a demo trial; the
#: trial id a one-entry dictionary: ``ingest.tables.repeated``). With 6 the ingest waited too often (demo night 23.4
#: and 19.2 s against 19.4 and 18.5 s before the wait; with 12, 17.4-20.0 s against 18.9-19.2 s, alternated).
KEPT_TRIALS = 12
#: Trials kept at most once settled (:func:`settle`: the small tables its session's synergies read, < 2 MB).
KEPT_SETTLED = 64

_KEPT: collections.OrderedDict[tuple[str, str], dict[str, pa.Table]] = collections.OrderedDict()
_SETTLED: set[tuple[str, str]] = set()
_PINNED: set[tuple[str, str]] = set()  # held rows not committed yet (the ingest's batch): never evicted
#: The tables of a whole site held (:func:`remember_site`); the others are a trial's own.
SITE_TABLES = ("sessions",)
#: A site's rows of :data:`SITE_TABLES` as the night's sync left them, by (catalog, site).
_SITES: dict[tuple[str, str], dict[str, pa.Table]] = {}
_LOCK = threading.Lock()


def remember(settings: Settings, trial_id: str, tables: dict[str, pa.Table | None], *, pinned: bool = False) -> None:
    """Keep the rows the ingest has just committed for ``trial_id`` (table name -> the Arrow table inserted;
    None: no rows). ``pinned``: rows waiting in the ingest's batch (``warehouse.trial_batch``), not in
    the catalog yet: never evicted until :func:`unpin` (the batch committed) or :func:`forget`."""
    key = (settings.catalog, trial_id)
    with _LOCK:
        _drop(key)
        _KEPT[key] = {name: _rows(t) for name, t in tables.items()}
        if pinned:
            _PINNED.add(key)
        _evict()


def unpin(settings: Settings, trial_ids: list[str]) -> None:
    """The trials' batch committed: their rows held are the catalog's, evicted as any others from now on."""
    with _LOCK:
        for tid in trial_ids:
            _PINNED.discard((settings.catalog, tid))
        _evict()


def remember_site(settings: Settings, site: str, tables: dict[str, pa.Table]) -> None:
    """Keep the site's rows of the tables in :data:`SITE_TABLES` (table name -> Arrow table) that its sync has
    just left in the catalog (written, or found equal), for the trials of the site derived in this night."""
    with _LOCK:
        _SITES[(settings.catalog, site)] = {name: _rows(t) for name, t in tables.items() if name in SITE_TABLES}


def forget_sites(settings: Settings) -> None:
    """The night is over (its lease released next): the sites' rows held are dropped; later reads ask the catalog."""
    with _LOCK:
        for key in [k for k in _SITES if k[0] == settings.catalog]:
            del _SITES[key]


def add(settings: Settings, trial_id: str, tables: dict[str, pa.Table | None]) -> None:
    """Add what a derivation of a held trial has just committed: each table's rows **of the trial, all of
    them** (a derivation replaces its rows of the trial). Nothing when the trial is not held."""
    with _LOCK:
        held = _KEPT.get((settings.catalog, trial_id))
        if held is not None:
            held.update({name: _rows(t) for name, t in tables.items()})


def settle(settings: Settings, trial_id: str, keep: tuple[str, ...]) -> None:
    """The trial's derivations are done: keep only its tables in ``keep`` (for its session's synergies)."""
    key = (settings.catalog, trial_id)
    with _LOCK:
        held = _KEPT.get(key)
        if held is not None:
            _KEPT[key] = {name: t for name, t in held.items() if name in keep}
            _SETTLED.add(key)
            _evict()


def forget(settings: Settings, trial_id: str) -> None:
    """Drop the trial's rows (they were read for the last time, or the trial's next commit is under way)."""
    with _LOCK:
        _drop((settings.catalog, trial_id))


def source(settings: Settings, trial_ids: str | list[str], needs: tuple[str, ...] = ()
           ) -> duckdb.DuckDBPyConnection | None:
    """An in-memory DuckDB connection where each table in ``needs`` (each table held, without ``needs``) is a
    view of the trial(s)' rows, typed as the lake stores them (other tables are absent, not empty), or None
    unless this process holds every trial with every table in ``needs`` (and, for several trials, each view is
    of the tables all of them hold). A table of :data:`SITE_TABLES` is there only when ``needs`` names it: the
    rows of the trials' sites held (:func:`remember_site`), each site once, or None when a site's are not held.
    A view costs a statement: a step names what it reads. The caller closes it."""
    ids = [trial_ids] if isinstance(trial_ids, str) else list(trial_ids)
    of_site = [name for name in needs if name in SITE_TABLES]  # named only: the sites' tables are not the trial's
    with _LOCK:
        held = [_KEPT.get((settings.catalog, tid)) for tid in ids]
        site_of = [tid.split(":", 1)[0] for tid in ids]  # trial ids are site:session:hex
        sites = [_SITES.get((settings.catalog, site), {}) for site in site_of]
        if not ids or any(h is None or not set(needs) - set(of_site) <= set(h) for h in held) or any(
                not set(of_site) <= set(s) for s in sites):
            return None
        for tid in ids:
            _KEPT.move_to_end((settings.catalog, tid))
    names = set.intersection(*(set(h) for h in held))
    if needs:
        names &= set(needs) - set(of_site)
    rows = {name: [h[name] for h in held] for name in names}
    for name in of_site:  # each site once
        rows[name] = [s[name] for s in dict(zip(site_of, sites)).values()]
    con = _cursor()
    try:
        for name in sorted(rows):
            parts = []
            for i, t in enumerate(rows[name]):
                if t.num_columns:
                    con.register(f"_in_{name}_{i}", t)
                    parts.append(_select_sql(name, _q(f"_in_{name}_{i}"), set(t.column_names)))
                else:  # no rows (a table with no columns cannot be registered)
                    parts.append(_select_sql(name, "(SELECT 1 WHERE false)", set()))
            con.execute(f"CREATE TEMP VIEW {_q(name)} AS " + " UNION ALL ".join(parts))
    except BaseException:
        con.close()
        raise
    return con


def _cursor() -> duckdb.DuckDBPyConnection:
    """A connection of its own (its registrations and temporary views are its own) to this process's one
    in-memory database: ~0.1 ms, where a new database costs ~13 ms."""
    global _MEMORY
    with _LOCK:
        if _MEMORY is None:
            # the night's threads read small trials here side by side, as from the catalog's night instances
            _MEMORY = duckdb.connect(config={"allow_unsigned_extensions": False, "enable_external_access": False,
                                             "threads": catalog.NIGHT_DUCKDB_THREADS})
        return _MEMORY.cursor()


_MEMORY: duckdb.DuckDBPyConnection | None = None


def _rows(t: pa.Table | None) -> pa.Table:
    return t if t is not None else pa.table({})


def _drop(key: tuple[str, str]) -> None:
    _KEPT.pop(key, None)
    _SETTLED.discard(key)
    _PINNED.discard(key)


def _evict() -> None:
    """Drop the oldest whole trials beyond :data:`KEPT_TRIALS`, and the oldest settled ones beyond
    :data:`KEPT_SETTLED` (under the lock); pinned trials are neither dropped nor counted."""
    for settled, limit in ((False, KEPT_TRIALS), (True, KEPT_SETTLED)):
        keys = [k for k in _KEPT if (k in _SETTLED) == settled and k not in _PINNED]
        for key in keys[:max(0, len(keys) - limit)]:
            _drop(key)


def _select_sql(name: str, relation_sql: str, present: set[str]) -> str:
    """The inserted rows as the lake stores them: every column of the table's contract, cast to its type
    (``INSERT ... BY NAME`` casts the same way; a column the rows lack is NULL)."""
    cols = ", ".join(f'CAST({_q(c.name) if c.name in present else "NULL"} AS {c.dtype}) AS {_q(c.name)}'
                     for c in contracts.TABLES[name].columns)
    return f"SELECT {cols} FROM {relation_sql}"


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
