"""One night per lake: a lease held for exactly as long as the run that took it.

Two nights on one lake would both register, read and commit the same new files (DuckLake
lets both inserts commit: duplicate rows), so every run takes a lease first:

* a whole-lake night (``myomap ingest``) holds the **lake** lease exclusively;
* a one-site run (``myomap ingest --site S``) holds the lake lease *shared* and the lease
  of **site S** exclusively.

So two nights never overlap, a night and a site run never overlap, two runs of the same
site never overlap, and runs of different sites may run side by side (on a PostgreSQL
catalog, which takes several writers). A run that cannot take its lease waits up to
``wait_s`` seconds, then raises :class:`NightAlreadyRunning` ("a night is already running
since ...", naming the holder's run id, host and pid).

Where the lease lives, and why a killed run never leaves a stale one
--------------------------------------------------------------------
SQLite catalog (a local file, also for an ``s3://`` lake)
    ``flock`` locks on files beside the catalog (``<catalog>.leases/``). The kernel drops
    a process's locks when it dies, ``kill -9`` included: the lease expires with its holder,
    at once. The holder's run id, host, pid and start time are written in the lock folder
    for the message.
PostgreSQL catalog (several hosts)
    Session-level advisory locks (``pg_try_advisory_lock[_shared]``) on a connection the run
    keeps open. PostgreSQL drops them when the session ends: at once when the process dies
    (its socket closes); when a host vanishes without closing it, after TCP keepalive gives
    up (``LEASE_KEEPALIVE_IDLE_S`` idle + ``LEASE_KEEPALIVE_PROBES`` probes
    ``LEASE_KEEPALIVE_INTERVAL_S`` apart: 60 s + 3 x 10 s). The holder is named from
    ``pg_stat_activity`` (application name = run id, backend start = since).

There is no heartbeat table and no clock to trust: a lease exists while its holder does.

Steps that runs of different sites share (the cohort tables, rebuilt from every site's trials)
take a **step** lease of their own (:func:`step_lease`): one rebuild at a time, the next one
waits for it (two concurrent rebuilds of an empty table would both insert: duplicate rows).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from warehouse.settings import Settings

LEASE_POLL_S = 1.0
STEP_LEASE_WAIT_S = 1800.0  # a step lease waits this long for the run ahead of it
LEASE_KEEPALIVE_IDLE_S = 60
LEASE_KEEPALIVE_INTERVAL_S = 10
LEASE_KEEPALIVE_PROBES = 3
_PG_NAMESPACE = 0x6D796F  # "myo": first key of myomap's advisory locks
_LAKE_KEY = 0


class NightAlreadyRunning(RuntimeError):
    """Another run holds the lease this run needs."""


def _holder_info(run_id: str, scope: str) -> dict:
    return {"run_id": run_id, "scope": scope, "host": socket.gethostname(), "pid": os.getpid(),
            "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def _describe(info: dict | None, what: str) -> str:
    if not info:
        return f"{what} is already running"
    return (f"{what} is already running since {info.get('since', '?')} (run {info.get('run_id', '?')}, "
            f"host {info.get('host', '?')}, pid {info.get('pid', '?')})")


@contextmanager
def night_lease(settings: Settings, *, run_id: str, site: str | None = None,
                wait_s: float = 0.0) -> Iterator[dict]:
    """Hold the lease of a whole-lake night (``site=None``) or of one site's run.

    Raises
    ------
    NightAlreadyRunning
        The lease is still held by another run after ``wait_s`` seconds.
    """
    impl = _PgLease(settings) if settings.catalog_kind == "postgres" else _FileLease(settings)
    info = _holder_info(run_id, f"site {site}" if site else "lake")
    deadline = time.monotonic() + max(wait_s, 0.0)
    while True:
        refusal = impl.try_acquire(site, info)
        if refusal is None:
            break
        if time.monotonic() >= deadline:
            impl.release()
            hint = "" if wait_s else "; `myomap ingest --wait SECONDS` waits for it"
            raise NightAlreadyRunning(f"{refusal}{hint}.")
        time.sleep(LEASE_POLL_S)
    try:
        yield info
    finally:
        impl.release()


@contextmanager
def step_lease(settings: Settings, step: str, *, run_id: str, wait_s: float = STEP_LEASE_WAIT_S) -> Iterator[bool]:
    """Hold the exclusive lease of a shared ``step`` (e.g. ``cohort``); yields True if it had to wait.

    Raises
    ------
    NightAlreadyRunning
        Still held by another run after ``wait_s`` seconds.
    """
    impl = _PgLease(settings) if settings.catalog_kind == "postgres" else _FileLease(settings)
    info = _holder_info(run_id, f"step {step}")
    deadline, waited = time.monotonic() + max(wait_s, 0.0), False
    while (refusal := impl.try_step(step, info)) is not None:
        if time.monotonic() >= deadline:
            impl.release()
            raise NightAlreadyRunning(f"{refusal}.")
        waited = True
        time.sleep(LEASE_POLL_S)
    try:
        yield waited
    finally:
        impl.release()


class _FileLease:
    """flock-based leases beside a SQLite catalog (released by the kernel when the holder dies)."""

    def __init__(self, settings: Settings):
        self.dir = Path(f"{settings.catalog}.leases")
        self.fds: list[int] = []

    def _open(self, name: str) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        return os.open(self.dir / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)

    @staticmethod
    def _lock(fd: int, mode: int) -> bool:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    @staticmethod
    def _write(fd: int, info: dict) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)

    def _read(self, name: str) -> dict | None:
        try:
            return json.loads((self.dir / name).read_text() or "null")
        except (OSError, ValueError):
            return None

    def try_acquire(self, site: str | None, info: dict) -> str | None:
        refusal = self._try_acquire(site, info)
        if refusal is not None:
            self.release()
        return refusal

    def _try_acquire(self, site: str | None, info: dict) -> str | None:
        lake = self._open("lake.lock")
        self.fds.append(lake)
        if site is None:
            if self._lock(lake, fcntl.LOCK_EX):
                self._write(lake, info)
                return None
            return self._who_holds_lake()
        if not self._lock(lake, fcntl.LOCK_SH):
            return _describe(self._read("lake.lock"), "a night")
        fd = self._open(f"site-{zlib.crc32(site.encode()):08x}.lock")
        self.fds.append(fd)
        if self._lock(fd, fcntl.LOCK_EX):
            self._write(fd, info)
            return None
        return _describe(self._read(f"site-{zlib.crc32(site.encode()):08x}.lock"), f"a run of site {site}")

    def try_step(self, step: str, info: dict) -> str | None:
        name = f"step-{zlib.crc32(step.encode()):08x}.lock"
        fd = self._open(name)
        self.fds.append(fd)
        if self._lock(fd, fcntl.LOCK_EX):
            self._write(fd, info)
            return None
        self.release()
        return _describe(self._read(name), f"the {step} step of another run")

    def _who_holds_lake(self) -> str:
        probe = self._open("lake.lock")
        try:
            if not self._lock(probe, fcntl.LOCK_SH):  # an exclusive holder: a whole night
                return _describe(self._read("lake.lock"), "a night")
        finally:
            os.close(probe)
        for p in sorted(self.dir.glob("site-*.lock")):  # shared holders: runs of single sites
            fd = self._open(p.name)
            try:
                if not self._lock(fd, fcntl.LOCK_EX):
                    return _describe(self._read(p.name), "a night (one site's run)")
            finally:
                os.close(fd)
        return "a night is already running"

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)  # closing the descriptor drops its lock
        self.fds.clear()


class _PgLease:
    """Session advisory locks on a PostgreSQL catalog (released when the session ends)."""

    def __init__(self, settings: Settings):
        self.dsn = settings.catalog
        self.conn = None

    def _connect(self, info: dict):
        import psycopg

        name = f"myomap {info['run_id']} {info['host']} {info['pid']}"[:63]
        return psycopg.connect(self.dsn, autocommit=True, application_name=name, keepalives=1,
                               keepalives_idle=LEASE_KEEPALIVE_IDLE_S,
                               keepalives_interval=LEASE_KEEPALIVE_INTERVAL_S,
                               keepalives_count=LEASE_KEEPALIVE_PROBES)

    def _try(self, fn: str, key: int) -> bool:
        return bool(self.conn.execute(f"SELECT {fn}(%s, %s)", [_PG_NAMESPACE, key]).fetchone()[0])

    def _holder(self, key: int, what: str) -> str:
        row = self.conn.execute(
            "SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 2 AND l.granted "
            "AND l.pid <> pg_backend_pid() ORDER BY (l.mode = 'ExclusiveLock') DESC, a.backend_start LIMIT 1",
            [_PG_NAMESPACE, key]).fetchone()
        if not row:
            return f"{what} is already running"
        parts = (row[0] or "").split()
        info = {"run_id": parts[1] if len(parts) > 1 else "?", "host": parts[2] if len(parts) > 2 else "?",
                "pid": parts[3] if len(parts) > 3 else "?",
                "since": row[1].astimezone(dt.timezone.utc).isoformat(timespec="seconds") if row[1] else "?"}
        return _describe(info, what)

    def try_acquire(self, site: str | None, info: dict) -> str | None:
        if self.conn is None:
            self.conn = self._connect(info)
        if site is None:
            if self._try("pg_try_advisory_lock", _LAKE_KEY):
                return None
            return self._holder(_LAKE_KEY, "a night")
        if not self._try("pg_try_advisory_lock_shared", _LAKE_KEY):
            return self._holder(_LAKE_KEY, "a night")
        key = zlib.crc32(site.encode()) & 0x7FFFFFFF or 1
        if self._try("pg_try_advisory_lock", key):
            return None
        self.conn.execute("SELECT pg_advisory_unlock_shared(%s, %s)", [_PG_NAMESPACE, _LAKE_KEY])
        return self._holder(key, f"a run of site {site}")

    def try_step(self, step: str, info: dict) -> str | None:
        if self.conn is None:
            self.conn = self._connect(info)
        key = zlib.crc32(step.encode()) & 0x7FFFFFFF or 1
        if bool(self.conn.execute("SELECT pg_try_advisory_lock(%s, %s)", [_PG_NAMESPACE + 1, key]).fetchone()[0]):
            return None
        return f"the {step} step of another run is running"

    def release(self) -> None:
        if self.conn is not None:
            import psycopg

            try:  # unlock before closing: the server drops a closed session's locks a moment later, and a
                self.conn.execute("SELECT pg_advisory_unlock_all()")  # lease taken just after would be refused
            except psycopg.Error:  # a dead session holds nothing; closing it is all that is left
                pass
            finally:
                self.conn.close()  # ending the session drops every advisory lock it holds
                self.conn = None
