"""A night's trials committed a few at a time: one transaction for up to :data:`INGEST_BATCH_TRIALS` trials
(issue 17, "batched commits").

A DuckLake commit costs ~3.5 ms of CPU per table it touches (its metadata statements: measured 46 ms for the
~12 tables of a trial), and each insert ~2.6 ms whatever its size: committing each trial alone was ~0.05 s of
the ingest thread's CPU per trial. During a site's turn in a night (:func:`deferring`) a trial that passed its
contracts and checks waits here instead (:func:`add`), its rows held for its derivations
(:mod:`warehouse.fresh_trials`, pinned until committed), and the trials waiting are committed together: each
table's rows in one insert, then each trial's own statements (its ``files`` row, its quarantine updates), in one
transaction. They are committed when :data:`INGEST_BATCH_TRIALS` wait, when the site's turn ends, before the
ingest thread asks the catalog anything (:class:`FlushFirst`: a later file's lookups see every earlier file's
outcome) and before an analysis of one of them commits (:func:`flush_if_holds`: no derived row ever precedes its
trial). A killed night leaves the batch's trials all committed or none, as a trial alone before: the next
night ingests what was not committed. If the batch's transaction fails, none of its trials is committed; their
rows held are dropped and their analyses are not committed (:func:`not_committed`).

Outside a night's site turn (a retry, a test calling the ingest step) each trial commits alone, as before.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import pyarrow as pa

from warehouse import catalog, faults, fresh_trials
from warehouse.settings import Settings

log = logging.getLogger(__name__)

#: Trials committed together at most (their rows are held in memory until then, ~8 MB each for a demo trial).
INGEST_BATCH_TRIALS = 8


@dataclasses.dataclass
class Waiting:
    """One trial's commit, waiting: its tables by name (every row of the trial, ``validations`` included),
    what runs before its rows are inserted (``before(c)``: a corrected re-upload's deletes) and after
    (``after(c)``: its ``files`` row and quarantine updates)."""
    trial_id: str
    session_id: str
    tables: dict[str, pa.Table]
    before: Callable | None
    after: Callable


class _Batch:
    def __init__(self):
        self.lock = threading.Lock()  # held while the batch commits: a reader of its trials waits for the commit
        self.waiting: list[Waiting] = []
        self.failed: set[str] = set()  # trials whose batch did not commit (their analyses are not committed)


_BATCHES: dict[str, _Batch] = {}
_BATCHES_LOCK = threading.Lock()
_DEFERRING = threading.local()  # .catalogs: the catalogs whose trials this thread's ingest defers


def _batch(settings: Settings) -> _Batch:
    with _BATCHES_LOCK:
        return _BATCHES.setdefault(settings.catalog, _Batch())


@contextmanager
def deferring(settings: Settings) -> Iterator[None]:
    """Inside this block this thread's trial commits of the lake wait in the batch; what waits at its end is
    committed then (also when the block ends on an exception: those trials passed every check)."""
    held = getattr(_DEFERRING, "catalogs", None)
    if held is None:
        held = _DEFERRING.catalogs = set()
    outer = settings.catalog in held
    held.add(settings.catalog)
    try:
        yield
    finally:
        if not outer:
            held.discard(settings.catalog)
            flush(settings)


def defers(settings: Settings) -> bool:
    """Whether this thread's trial commits of the lake wait in the batch (:func:`deferring`)."""
    return settings.catalog in (getattr(_DEFERRING, "catalogs", None) or ())


def add(settings: Settings, item: Waiting) -> None:
    """Put a trial's commit in the batch (its rows are already held, pinned); commit the batch when full."""
    b = _batch(settings)
    with b.lock:
        b.failed.discard(item.trial_id)
        b.waiting.append(item)
        full = len(b.waiting) >= INGEST_BATCH_TRIALS
    if full:
        flush(settings)


def flush(settings: Settings) -> None:
    """Commit the trials waiting, in one transaction (nothing when none waits).

    Raises
    ------
    Whatever the transaction raised (:func:`warehouse.catalog.write_atomically`): none of the trials is
    committed; their rows held are dropped and they are listed by :func:`not_committed`.
    """
    b = _batch(settings)
    with b.lock:
        items, b.waiting = b.waiting, []
        if not items:
            return
        con = catalog.connect(settings)
        try:
            catalog.write_atomically(settings, con, lambda c: _write(c, items, settings),
                                     what=f"commit {len(items)} trial(s)")
        except BaseException as exc:
            log.error("the commit of %d trial(s) failed (%s: %s); not ingested, read again next night: %s",
                      len(items), type(exc).__name__, str(exc)[:200], ", ".join(i.trial_id for i in items))
            b.failed.update(i.trial_id for i in items)
            for i in items:
                fresh_trials.forget(settings, i.trial_id)
            raise
        finally:
            con.close()
    fresh_trials.unpin(settings, [i.trial_id for i in items])


def flush_if_holds(settings: Settings, trial_ids: Iterable[str]) -> None:
    """Commit the batch now if one of ``trial_ids`` waits in it (waiting for a commit under way): before rows
    derived from those trials are committed or read from the catalog."""
    ids = set(trial_ids)
    b = _BATCHES.get(settings.catalog)
    if b is None:
        return
    with b.lock:
        hit = any(i.trial_id in ids for i in b.waiting)
    if hit:
        flush(settings)


def waiting(settings: Settings, session_id: str) -> list[str]:
    """The trials of ``session_id`` waiting in the batch (their rows are held: :mod:`warehouse.fresh_trials`)."""
    b = _BATCHES.get(settings.catalog)
    if b is None:
        return []
    with b.lock:
        return [i.trial_id for i in b.waiting if i.session_id == session_id]


class NotCommitted(Exception):
    """A trial's batch failed to commit: nothing derived from the trial may be committed."""


def committed_first(settings: Settings, trial_ids: Iterable[str]) -> None:
    """Before rows derived from ``trial_ids`` are committed: their trials, if waiting in the batch.

    Raises
    ------
    NotCommitted
        One of the trials' batch failed to commit.
    """
    ids = set(trial_ids)
    flush_if_holds(settings, ids)
    lost = not_committed(settings, ids)
    if lost:
        raise NotCommitted(f"the commit of {', '.join(sorted(lost))} failed: nothing derived from it is committed")


def not_committed(settings: Settings, trial_ids: Iterable[str]) -> set[str]:
    """Those of ``trial_ids`` whose batch failed to commit (their analyses must not be committed)."""
    b = _BATCHES.get(settings.catalog)
    if b is None:
        return set()
    with b.lock:
        return set(trial_ids) & b.failed


def _write(c, items: list[Waiting], settings: Settings) -> None:
    """The batch's transaction: each trial's deletes, every table's rows in one insert, each trial's statements."""
    for i in items:
        if i.before is not None:
            i.before(c)
    for name in dict.fromkeys(n for i in items for n in i.tables):
        catalog.insert_tables(c, name, [i.tables.get(name) for i in items])
    for i in items:
        i.after(c)
        faults.point("trial_commit", settings, engine="duckdb", path=f"{settings.zone('tables')}/...parquet")


class FlushFirst(catalog.RetryingReads):
    """The ingest's catalog connection during a night's site turn: a statement outside a transaction first
    commits the trials waiting (so it sees them), then reads as :class:`warehouse.catalog.RetryingReads`."""

    def execute(self, sql: str, params=None):
        if not catalog.in_transaction():
            flush(self._settings)
        return super().execute(sql, params)
