"""DuckLake catalog: connections, extension loading, table creation, retries.

The catalog is DuckLake on DuckDB 1.5.5. Extensions are loaded from the signed
official binaries shipped in the PyPI packages ``duckdb-extension-<name>==1.5.5``
(``LOAD '<path>'`` with signature checking on); if a package is missing we fall
back to DuckDB's normal ``INSTALL``. Unsigned extensions are never allowed.
"""
from __future__ import annotations

import importlib
import logging
import os
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import duckdb
import pyarrow as pa

from schemas.contracts import TABLES
from warehouse import compaction, faults
from warehouse.attach import LAKE, attach_sql, configure_pg_secret, configure_s3
from warehouse.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Parquet writer options for the lake (measured: zstd + Parquet v2 keeps quantised
#: EMG at ~1.8 bytes/sample with delta-encoded sample indices).
PARQUET_OPTIONS = {"parquet_compression": "zstd", "parquet_version": "2",
                   "parquet_compression_level": "3"}

#: DuckDB threads of each instance the night pools (:func:`pooled`). The night already runs 3-4 threads (ingest,
#: read-ahead, derivations) that keep both cores busy; a DuckDB instance's own worker thread beside each only
#: added scheduling (measured 7 Dec, 26 trials, 4 alternated pairs: night -8 %, the machine's CPU -12 % with
#: 1). Connections outside the night (the CLI, members' SQL) keep DuckDB's default: every core.
NIGHT_DUCKDB_THREADS = 1

_EXT_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "httpfs": "duckdb_extension_httpfs",
}
_RETRYABLE = ("database is locked", "conflict", "busy", "could not serialize",
              "Could not set lock", "unique constraint")


class CatalogError(RuntimeError):
    """The lake catalog could not be opened or written."""


def extension_path(name: str) -> str | None:
    """Path of the signed extension binary shipped in its PyPI package, if installed."""
    try:
        mod = importlib.import_module(_EXT_PACKAGES[name])
    except ImportError:
        return None
    root = Path(mod.__path__[0]) / "extensions" / f"v{duckdb.__version__}"
    path = root / f"{name}.duckdb_extension"
    return str(path) if path.exists() else None


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    path = extension_path(name)
    if path:
        con.execute(f"LOAD '{path}'")
    else:  # pragma: no cover - only without the PyPI extension packages
        con.execute(f"INSTALL {name}")
        con.execute(f"LOAD {name}")


#: Open writer instances while a :func:`pooled` block runs: ``{thread id: {lake key: instance}}``.
_POOLS: dict[int, dict[str, duckdb.DuckDBPyConnection]] = {}
_POOL_STATE = {"depth": 0, "pid": None}
#: Pooled instances (``id``) whose catalog has every contract table (tables are never dropped): their
#: cursors skip :func:`ensure_tables` (one information_schema scan per connection otherwise).
_ENSURED: set[int] = set()
_POOL_LOCK = threading.Lock()


@contextmanager
def pooled() -> Iterator[None]:
    """Reuse one DuckDB instance per lake and per thread for writer connections until the block ends.

    Opening a connection costs ~0.5 s (two signed extension ``LOAD``s, re-verified by every new
    instance; measured in /work/notes/duckdb.md E.1), a query on an open one ~5 ms. While the block
    runs (the night: :func:`flows.nightly.run_night`), :func:`connect` for writing (not
    ``read_only``, no ``as_of``) hands out a cursor of the calling thread's open instance
    (extensions loaded and the catalog attached once), and ``close()`` closes only that cursor;
    every thread that connected gets its own instance (Prefect or Dask threads too), all closed when
    the outermost block ends. An instance is never shared between threads: concurrent writes
    through cursors of one instance on a SQLite catalog fail (E.2). Read-only and time-travel
    connections are always fresh (they get hardened).
    """
    with _POOL_LOCK:
        if _POOL_STATE["pid"] != os.getpid():  # a forked child never uses its parent's instances
            _POOLS.clear()
            _ENSURED.clear()
            _POOL_STATE.update(depth=0, pid=os.getpid())
        _POOL_STATE["depth"] += 1
    try:
        yield
    finally:
        with _POOL_LOCK:
            _POOL_STATE["depth"] -= 1
            closing = [] if _POOL_STATE["depth"] else [i for p in _POOLS.values() for i in p.values()]
            if not _POOL_STATE["depth"]:
                _POOLS.clear()
                _ENSURED.clear()
        for inst in closing:
            _close_quietly(inst)


def _thread_pool() -> dict | None:
    """This thread's pool while a :func:`pooled` block runs in this process, else None."""
    with _POOL_LOCK:
        if not _POOL_STATE["depth"] or _POOL_STATE["pid"] != os.getpid():
            return None
        return _POOLS.setdefault(threading.get_ident(), {})


def _close_quietly(con) -> None:
    try:
        con.close()
    except duckdb.Error as exc:  # pragma: no cover - closing a broken instance
        log.debug("closing a pooled catalog instance: %s", exc)


def _pool_key(settings: Settings) -> str:
    return "\0".join([settings.catalog, settings.zone("tables"), repr(sorted((settings.s3 or {}).items()))])


def discard_pooled() -> None:
    """Close this thread's pooled instances (after a failure that may have left one in a bad state)."""
    active = _thread_pool()
    if active:
        for key in list(active):
            inst = active.pop(key)
            with _POOL_LOCK:
                _ENSURED.discard(id(inst))
            _close_quietly(inst)


def connect(settings: Settings, *, read_only: bool = False, as_of: str | None = None,
            create: bool = True) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB with the lake attached as ``lake`` (and ``USE lake``).

    Inside :func:`pooled`, a writer connection is a cursor of the thread's open instance, wrapped in
    :class:`RetryingReads` (every statement takes this process's turn at the catalog).

    Parameters
    ----------
    read_only : bool
        Attach the catalog read-only: any write raises.
    as_of : str, optional
        Snapshot id or timestamp for time travel (implies a read-only view).
    create : bool
        Create missing tables (writers only).

    Raises
    ------
    CatalogError
        When the catalog cannot be attached after the configured retries.
    """
    active = None if read_only or as_of else _thread_pool()
    if active is None:
        return _open(settings, read_only=read_only, as_of=as_of, create=create)
    key = _pool_key(settings)
    inst = active.get(key)
    if inst is None:
        with _catalog_turn(settings):
            inst = active[key] = _open(settings, read_only=False, as_of=None, create=create,
                                       threads=NIGHT_DUCKDB_THREADS)
        if create:  # _open made the tables: the instance's later cursors need not look again
            with _POOL_LOCK:
                _ENSURED.add(id(inst))
    elif not settings.is_s3:
        Path(settings.zone("tables")).mkdir(parents=True, exist_ok=True)
    cur = inst.cursor()
    if not (create and id(inst) not in _ENSURED):
        # `USE lake` reads the catalog (the SQLite file): it runs in the turn of the first statement, so a
        # thread that ends up reading only what it holds in memory (fresh_trials) never waits for a turn
        return RetryingReads(cur, settings, use_pending=True)
    try:
        with _catalog_turn(settings):
            with_retry(lambda: cur.execute(f"USE {LAKE}"), settings, what="use catalog")
            with_retry(lambda: ensure_tables(cur), settings, what="create tables")
            with _POOL_LOCK:
                _ENSURED.add(id(inst))
    except BaseException:
        cur.close()
        raise
    # the night's threads (ingest, read-ahead, derivations) share the catalog: each statement takes its turn
    return RetryingReads(cur, settings)


def _open(settings: Settings, *, read_only: bool, as_of: str | None, create: bool,
          threads: int | None = None) -> duckdb.DuckDBPyConnection:
    # no persistent secrets: a secret stored in ~/.duckdb by someone else never applies here
    config = {"allow_unsigned_extensions": False, "allow_persistent_secrets": False}
    con = duckdb.connect(config=config if threads is None else {**config, "threads": threads})
    load_extension(con, "ducklake")
    if settings.catalog_kind == "postgres":
        load_extension(con, "postgres_scanner")
        configure_pg_secret(con, settings)
    else:
        load_extension(con, "sqlite_scanner")
        if not read_only:
            Path(settings.catalog).parent.mkdir(parents=True, exist_ok=True)
        elif not Path(settings.catalog).exists():
            raise CatalogError(f"No lake catalog at {settings.catalog}: run `myomap ingest` first.")
    if settings.is_s3:
        load_extension(con, "httpfs")
        configure_s3(con, settings)
    elif not read_only:
        Path(settings.zone("tables")).mkdir(parents=True, exist_ok=True)
    sql = attach_sql(settings, read_only or bool(as_of), as_of)
    try:
        with_retry(lambda: con.execute(sql), settings, what="attach catalog")
        # USE reads the catalog too: under concurrent writers it can meet 'database is locked'
        with_retry(lambda: con.execute(f"USE {LAKE}"), settings, what="use catalog")
        if not read_only and not as_of and create:
            with_retry(lambda: ensure_tables(con), settings, what="create tables")
    except BaseException:
        # a failed connection kept alive by a traceback would keep its SQLite lock and stall
        # every other writer of this process (threads, Dask workers with processes=False)
        con.close()
        raise
    return con


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every contract table that does not exist yet, and set Parquet options."""
    cols = {}
    for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                     "WHERE table_catalog = ?", [LAKE]).fetchall():
        cols.setdefault(table, set()).add(column)
    missing = [t for name, t in TABLES.items() if name not in cols]
    # additive migrations: a column added to a contract is added to existing tables (nullable)
    added = [(t.name, c) for t in TABLES.values() if t.name in cols for c in t.columns if c.name not in cols[t.name]]
    if not missing and not added:
        return
    with transaction(con, step="tables_commit"):
        if missing:
            for k, v in PARQUET_OPTIONS.items():
                con.execute(f"CALL {LAKE}.set_option('{k}', '{v}')")
        for t in missing:
            con.execute(t.ddl(f"{LAKE}.main"))
        for table, c in added:
            con.execute(f'ALTER TABLE {LAKE}.main.{table} ADD COLUMN IF NOT EXISTS "{c.name}" {c.dtype}')


#: Errors retryable only when all their parts appear: two processes attaching a new PostgreSQL
#: catalog at once both create DuckLake's metadata tables; the loser's retry finds them made.
_RETRYABLE_TOGETHER = (("failed to initialize ducklake", "already exists"),)


def is_retryable(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s.lower() in text for s in _RETRYABLE) or any(all(p in text for p in parts)
                                                             for parts in _RETRYABLE_TOGETHER)


def with_retry(fn: Callable[[], T], settings: Settings, *, what: str = "write") -> T:
    """Run ``fn``; on a catalog lock/conflict, back off and retry (then raise CatalogError).

    The error judged is the one that failed the work (e.g. a DuckLake COMMIT conflict), never
    a later ROLLBACK's "no transaction is active" (:func:`transaction` keeps the first).
    """
    wait = settings.lock_wait_s
    for attempt in range(settings.lock_retries + 1):
        try:
            return fn()
        except (duckdb.Error, RuntimeError) as exc:
            if not is_retryable(exc) or attempt == settings.lock_retries:
                if is_retryable(exc):
                    raise CatalogError(f"{what}: catalog still busy after {attempt} retries: {exc}") from exc
                raise
            log.info("%s: catalog busy (%s); retry %d", what, exc, attempt + 1)
            time.sleep(wait * (0.5 + random.random()))
            wait = min(wait * 1.5, 2.0)
    raise AssertionError("unreachable")


class _Fetched:
    """A query's whole result, read: the fetch methods of a DuckDB result the analysis uses."""

    def __init__(self, table):
        self._t = table

    def fetchall(self) -> list[tuple]:
        cols = [c.to_pylist() for c in self._t.columns]
        return list(zip(*cols)) if cols else []

    def fetchone(self):
        return next(iter(self.fetchall()), None)

    def __iter__(self):
        return iter(self.fetchall())

    def to_arrow_table(self):
        return self._t

    def fetchnumpy(self) -> dict:
        import polars as pl

        df = pl.from_arrow(self._t)
        return {c: df[c].to_numpy() for c in df.columns}

    def pl(self):
        import polars as pl

        return pl.from_arrow(self._t)


class RetryingReads:
    """A catalog connection for reading beside this process's writers (the night's derivation threads):
    each ``execute`` takes this process's turn at the catalog, reads the whole result (returned as
    :class:`_Fetched`) and is retried (:func:`with_retry`) while the catalog is busy, as a SQLite catalog
    is while another process commits. Write through the connection itself (:func:`write_atomically`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, settings: Settings, *, use_pending: bool = False):
        # wrapping a RetryingReads shares its cursor and whether `USE lake` has run on it (``_cell``)
        self._cell = con._cell if isinstance(con, RetryingReads) else _Cursor(con, use_pending)
        self._settings = settings

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The cursor, on which ``USE lake`` has run (in a turn of its own if it was still pending)."""
        cell = self._cell
        if cell.use_pending:
            with _catalog_turn(self._settings):
                cell.use(self._settings)
        return cell.cur

    def execute(self, sql: str, params=None) -> _Fetched:
        if getattr(_IN_TRANSACTION, "depth", 0):  # inside this thread's transaction: its retry applies
            return self._con.execute(sql, params) if params is not None else self._con.execute(sql)
        cell = self._cell

        def attempt():
            try:
                with _catalog_turn(self._settings):  # fetched whole inside the turn: no read left open
                    cell.use(self._settings)
                    cur = cell.cur.execute(sql, params) if params is not None else cell.cur.execute(sql)
                    return _Fetched(cur.to_arrow_table())
            except duckdb.Error as exc:
                if is_retryable(exc):  # DuckLake leaves the failed read's transaction open: end it first
                    try:
                        cell.cur.execute("ROLLBACK")
                    except duckdb.Error as end:
                        log.debug("rollback after a busy read: %s", end)
                raise
        return with_retry(attempt, self._settings, what="read catalog")

    def close(self) -> None:
        self._cell.cur.close()  # nothing to read first

    def __getattr__(self, name):
        return getattr(self._con, name)


class _Cursor:
    """A pooled instance's cursor and whether ``USE lake`` is still to run on it (:func:`connect`)."""

    __slots__ = ("cur", "use_pending")

    def __init__(self, cur: duckdb.DuckDBPyConnection, use_pending: bool):
        self.cur, self.use_pending = cur, use_pending

    def use(self, settings: Settings) -> None:
        """Run ``USE lake`` if still pending; the caller holds this process's turn at the catalog."""
        if self.use_pending:
            with_retry(lambda: self.cur.execute(f"USE {LAKE}"), settings, what="use catalog")
            self.use_pending = False


def unwrap(con):
    """The DuckDB connection behind a :class:`RetryingReads` (or ``con`` itself), ``USE lake`` run on it."""
    return con._con if isinstance(con, RetryingReads) else con


#: Per thread: how many :func:`transaction` blocks are open (their statements are not retried one by one).
_IN_TRANSACTION = threading.local()


def in_transaction() -> bool:
    """Whether this thread is inside a :func:`transaction` block."""
    return bool(getattr(_IN_TRANSACTION, "depth", 0))


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK after a failure, if a transaction is still open.

    A failed DuckLake ``COMMIT`` has already ended the transaction: the ROLLBACK then raises
    "cannot rollback - no transaction is active". That error says nothing about the failure
    and must never replace it (it would hide a retryable conflict from :func:`with_retry`).
    """
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as exc:
        log.debug("rollback after a failed transaction: %s", exc)
        if "no transaction is active" not in str(exc).lower():
            discard_pooled()  # the instance may still hold a lock: never reuse it


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, *, step: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """One DuckLake transaction: everything inside commits together or not at all.

    ``step`` names a fault point reached just before COMMIT (tests: :mod:`warehouse.faults`).
    """
    con = unwrap(con)
    con.execute("BEGIN")
    _IN_TRANSACTION.depth = getattr(_IN_TRANSACTION, "depth", 0) + 1
    try:
        yield con
        if step:
            faults.point(step, None, engine="duckdb")
        con.execute("COMMIT")
    except BaseException:
        rollback_quietly(con)
        raise
    finally:
        _IN_TRANSACTION.depth -= 1


def insert_tables(c, name: str, tables: list) -> None:
    """Insert the rows of several Arrow tables into the lake's table ``name`` in one statement (inside the
    caller's transaction). Columns typed per trial (a column of nulls only is of type null) are promoted to one
    type, then cast by the insert to the lake's, as each trial's own insert was."""
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return
    c.register("_rows", tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive"))
    c.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _rows")
    c.unregister("_rows")


def write_atomically(settings: Settings, con: duckdb.DuckDBPyConnection,
                     body: Callable[[duckdb.DuckDBPyConnection], T], *, what: str) -> T:
    """Run ``body(con)`` inside one transaction, retrying the whole transaction when busy.

    Raises
    ------
    CatalogError
        The catalog stayed locked or conflicting after every retry.
    warehouse.faults.StorageFull, warehouse.faults.StorageUnavailable
        The data files could not be written (disk full; S3 failing after retries with
        back-off): the transaction was rolled back, nothing of it is visible.
    """
    def attempt() -> T:
        with _catalog_turn(settings), transaction(con) as c:
            return body(c)
    return faults.storage_retry(lambda: with_retry(attempt, settings, what=what), settings, what=what)


_TURNS: dict[str, threading.RLock] = {}


@contextmanager
def _catalog_turn(settings: Settings) -> Iterator[None]:
    """This process's threads use a file catalog one statement (or one writing transaction) at a time.

    A SQLite catalog takes one writer at a time, and a reader's statement fails ("database is locked")
    while another connection commits; within one process two threads would wait on each other's file
    locks. The night's derivation threads (``flows.nightly``) therefore take turns for every catalog
    statement (:class:`RetryingReads`) and transaction (:func:`write_atomically`), and compute in
    between. Other processes still meet the catalog's own locks (retried). PostgreSQL takes many
    writers and readers: no turn is taken."""
    if settings.catalog_kind == "postgres":
        yield
        return
    with _POOL_LOCK:
        turn = _TURNS.setdefault(settings.catalog, threading.RLock())
    with turn:
        yield


#: Files replaced by a compaction stay on disk at least this long: a reader that planned its query on the previous
#: snapshot can still open them. A later compaction (the next night's) deletes them once all are past it.
CLEANUP_GRACE = "1 hour"


@contextmanager
def every_core(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Inside the block, ``con``'s instance runs DuckDB on every core, then as before: for work that runs
    alone at the end of the night (the cohort rebuild, the compaction), whose instance was pooled with
    :data:`NIGHT_DUCKDB_THREADS` (measured 7 Dec: the demo night's compaction 2.1-3.1 s on one thread,
    1.8-2.0 s on two)."""
    before = con.execute("SELECT current_setting('threads')").fetchone()[0]
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    try:
        yield con
    finally:
        con.execute(f"SET threads = {int(before)}")


def compact(settings: Settings, con: duckdb.DuckDBPyConnection) -> dict:
    """Merge each table's small Parquet files, size-tiered (:mod:`warehouse.compaction`: a night rewrites what it
    wrote and a bounded amount more, not the whole lake), after deleting the files earlier compactions replaced
    once all are past :data:`CLEANUP_GRACE` (:func:`warehouse.compaction.replaced_all_past`).

    Run after a night that wrote something (each batch of trials writes one file per table). The merged files
    keep every snapshot's rows (DuckLake tracks row lifetimes): time travel and releases (pinned by snapshot
    *version*) read as before; no snapshot is expired here (:func:`expire_snapshots`). Returns ``{"merged_tables",
    "files_merged", "mb_merged": MB read and written again, "files_deleted", "seconds"}``.
    """
    t0 = time.perf_counter()
    deleted = []  # what earlier compactions replaced, once every such file is past the grace: before tonight's
    if with_retry(lambda: compaction.replaced_all_past(con, LAKE, CLEANUP_GRACE), settings, what="plan cleanup"):
        deleted = with_retry(lambda: con.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)")
                             .fetchall(), settings, what="delete compacted files")
    merged_tables: set[str] = set()
    files_merged = merged_bytes = 0
    for _ in range(len(compaction.bands())):  # a round's merges can complete a larger band: another round
        due = with_retry(lambda: compaction.merges_due(con, LAKE), settings, what="plan compaction")
        if not due:
            break

        def merge_all(c, due=due) -> list:  # one transaction, one snapshot per round
            return [c.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}', '{table}', min_file_size => {lo}, "
                              f"max_file_size => {hi})").fetchall() for table, lo, hi, _ in due]
        for (table, _, _, size), rows in zip(due, write_atomically(settings, con, merge_all, what="compact tables")):
            files_merged += int(sum(r[2] for r in rows))
            merged_tables.update(r[1] for r in rows)
            merged_bytes += size
    return {"merged_tables": len(merged_tables), "files_merged": files_merged,
            "mb_merged": round(merged_bytes / 1e6, 1), "files_deleted": len(deleted),
            "seconds": round(time.perf_counter() - t0, 2)}


def expire_snapshots(settings: Settings, con: duckdb.DuckDBPyConnection, *, older_than_days: float,
                     keep: set[int]) -> list[int]:
    """Expire snapshots older than ``older_than_days``, except the versions in ``keep``; return those expired.

    The snapshot-expiry policy (README, "Maintenance"): nothing expires unless an operator runs
    this; snapshots pinned by a published release (``keep``, from the release manifests) are never
    expired, so every release can be rebuilt byte for byte. Releases pin a snapshot by **version**:
    after an expiry ``AT (TIMESTAMP => t)`` would silently answer from an older snapshot.
    """
    cutoff = float(older_than_days)
    old = [r[0] for r in con.execute(
        f"SELECT snapshot_id FROM ducklake_snapshots('{LAKE}') WHERE snapshot_time < now() - to_seconds(?) "
        "ORDER BY snapshot_id", [cutoff * 86400]).fetchall()]
    victims = [v for v in old if v not in keep]
    if not victims:
        return []
    with_retry(lambda: con.execute(f"CALL ducklake_expire_snapshots('{LAKE}', versions => ?)",
                                   [victims]).fetchall(), settings, what="expire snapshots")
    return victims
