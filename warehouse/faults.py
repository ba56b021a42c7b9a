"""Storage failures: what they mean, retries with back-off, and named fault points for tests.

A storage error is one of two kinds (:func:`classify`):

``full``
    ``ENOSPC``/``EDQUOT`` (or DuckDB's "No space left on device" / "Disk quota exceeded"):
    nothing more can be written. Never retried: :class:`StorageFull` stops the night.
``transient``
    S3 throttling (``SlowDown``, 429), 5xx answers, timeouts and dropped connections:
    retried by :func:`storage_retry` with exponential back-off and jitter
    (``Settings.storage_retries``/``storage_wait_s``); still failing after that:
    :class:`StorageUnavailable`, which also stops the night.

Anything else is not a storage error and is left to the caller.

Fault points
------------
Tests make failures happen deterministically at named steps instead of racing a timing
window. ``MYOMAP_FAULTS`` (read in :mod:`warehouse.settings`) holds ``;``-separated rules
``step[@n][+]=action``: at the ``n``-th time this process reaches ``step`` (every time
without ``@n``; from the ``n``-th on with ``+``) do ``action``:

``kill``            SIGKILL this process (a power cut, ``kill -9``);
``enospc``/``edquot`` raise the disk-full error the real write would raise;
``error``           raise ``RuntimeError`` (a bug at that step);
``pause:PATH``      create ``PATH.reached`` and wait until ``PATH`` exists.

In-process tests can also run a callable at a point (:func:`inject`), e.g. to let another
connection commit between a transaction's writes and its COMMIT.

Steps: ``night_started`` (lease taken), ``site_start``, ``file_done`` (after each inbox
entry), ``raw_write`` (copying to raw/, after the first chunk), ``quarantine_write``,
``trial_commit`` (inside a trial's transaction, its rows written, before COMMIT),
``tables_commit`` (creating or migrating the lake's tables, before COMMIT), ``run_recorded``. Unset, :func:`point` costs one string test.
"""
from __future__ import annotations

import errno
import logging
import os
import random
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

FULL, TRANSIENT = "full", "transient"
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_FULL_TEXT = ("no space left on device", "disk quota exceeded")
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
                    "TooManyRequestsException", "RequestThrottled", "InternalError", "ServiceUnavailable",
                    "RequestTimeout", "RequestTimeoutException", "BandwidthLimitExceeded", "503", "500", "502",
                    "504", "429"}
_TRANSIENT_TYPES = {"ReadTimeoutError", "ConnectTimeoutError", "EndpointConnectionError", "ConnectionClosedError",
                    "ServerTimeoutError", "ClientConnectorError", "ServerDisconnectedError", "FSTimeoutError",
                    "ClientOSError", "IncompleteRead", "ResponseParserError", "HTTPClientError"}
_TRANSIENT_TEXT = ("http 500", "http 502", "http 503", "http 504", "http 429", "slowdown", "slow down",
                   "service unavailable", "internal server error", "too many requests", "timed out", "timeout was",
                   "connection reset", "could not establish connection", "connection refused")


class StorageError(RuntimeError):
    """The lake's storage refused a write: the current file failed cleanly and the night stops."""


class StorageFull(StorageError):
    """No space (or quota) left: nothing more can be written until space is freed."""


class StorageUnavailable(StorageError):
    """The object store kept failing (throttling, 5xx, timeouts) after every retry."""


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def classify(exc: BaseException) -> str | None:
    """``'full'``, ``'transient'`` or ``None`` (not a storage error) for ``exc`` and its causes."""
    if isinstance(exc, StorageFull):
        return FULL
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return FULL
        if any(t in str(e).lower() for t in _FULL_TEXT):
            return FULL
    for e in _chain(exc):
        if isinstance(e, (TimeoutError, ConnectionError)) or type(e).__name__ in _TRANSIENT_TYPES:
            return TRANSIENT
        resp = getattr(e, "response", None)
        if isinstance(resp, dict):
            code = str(resp.get("Error", {}).get("Code", ""))
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in _TRANSIENT_CODES or status == 429 or status >= 500:
                return TRANSIENT
        if "duckdb" in type(e).__module__ and any(t in str(e).lower() for t in _TRANSIENT_TEXT):
            return TRANSIENT
    return None


def describe(exc: BaseException) -> str:
    """One line naming the error (its deepest cause says most, e.g. ``[Errno 28] No space left``)."""
    last = list(_chain(exc))
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    root = last[-1]
    if root is not exc and str(root) and str(root) not in first:
        return f"{first} ({type(root).__name__}: {str(root).splitlines()[0]})"
    return first


def as_storage_error(exc: BaseException, what: str) -> StorageError | None:
    """The :class:`StorageError` ``exc`` amounts to when retrying is over (None if not a storage error)."""
    kind = classify(exc)
    if kind == FULL:
        return StorageFull(f"{what}: storage full ({describe(exc)}). Free space (or raise the quota) and run "
                           "again: the next run picks up where this one stopped.")
    if kind == TRANSIENT:
        return StorageUnavailable(f"{what}: the object store kept failing after retries ({describe(exc)}). "
                                  "Run again when it answers: the next run picks up where this one stopped.")
    return None


def storage_retry(fn: Callable[[], T], settings, *, what: str) -> T:
    """Run ``fn``; retry transient storage errors with back-off; raise :class:`StorageError` when over.

    Raises
    ------
    StorageFull
        At once on ENOSPC/EDQUOT (retrying cannot help).
    StorageUnavailable
        When a transient error survives ``settings.storage_retries`` retries.
    """
    wait = settings.storage_wait_s
    for attempt in range(settings.storage_retries + 1):
        try:
            return fn()
        except StorageError:
            raise
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            if kind == FULL or attempt == settings.storage_retries:
                raise as_storage_error(exc, what) from exc
            log.warning("%s: %s; retry %d/%d", what, describe(exc), attempt + 1, settings.storage_retries)
            time.sleep(wait * (0.5 + random.random()))
            wait *= 2
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- fault points (tests)
_hits: dict[str, int] = {}
_callbacks: dict[str, list[list]] = {}  # name -> [[fn, times left], ...]


def _rules(spec: str) -> list[tuple[str, int | None, bool, str]]:
    out = []
    for rule in filter(None, (r.strip() for r in spec.split(";"))):
        where, _, action = rule.partition("=")
        name, _, nth = where.partition("@")
        out.append((name.strip(), int(nth.rstrip("+")) if nth else None, nth.endswith("+"), action.strip()))
    return out


def point(name: str, settings, *, engine: str = "os", path: str = "") -> None:
    """Reach the fault point ``name`` (no-op unless ``MYOMAP_FAULTS`` names it).

    ``engine='duckdb'`` raises disk-full as DuckDB reports it (``duckdb.IOException``),
    so that the code classifying DuckDB's errors is the code under test.
    """
    for entry in _callbacks.get(name, ()):
        if entry[1] > 0:
            entry[1] -= 1
            entry[0]()
    spec = getattr(settings, "faults", "") if settings is not None else ""
    if not spec or name not in spec:
        return
    _hits[name] = n = _hits.get(name, 0) + 1
    for rule, nth, onwards, action in _rules(spec):
        if rule == name and (nth is None or n == nth or (onwards and n >= nth)):
            _act(name, action, engine, path)


def _act(name: str, action: str, engine: str, path: str) -> None:
    log.warning("fault point %s: %s", name, action)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action in ("enospc", "edquot"):
        code = errno.ENOSPC if action == "enospc" else errno.EDQUOT
        if engine == "duckdb":
            import duckdb
            raise duckdb.IOException(f'Could not write file "{path}": {os.strerror(code)}')
        raise OSError(code, os.strerror(code), path or None)
    elif action == "error":
        raise RuntimeError(f"injected fault at {name}")
    elif action.startswith("pause:"):
        gate = Path(action.split(":", 1)[1])
        Path(f"{gate}.reached").write_text(str(os.getpid()))
        deadline = time.monotonic() + 900
        while not gate.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"fault point {name}: {gate} never appeared")
            time.sleep(0.02)
    else:
        raise ValueError(f"unknown fault action {action!r} at {name}")


@contextmanager
def inject(name: str, fn: Callable[[], None], *, times: int = 1) -> Iterator[None]:
    """Tests in one process: call ``fn()`` the next ``times`` times the point ``name`` is reached."""
    entry = [fn, times]
    _callbacks.setdefault(name, []).append(entry)
    try:
        yield
    finally:
        _callbacks[name].remove(entry)


def reset() -> None:
    """Forget how often each point was reached (tests that run several nights in one process)."""
    _hits.clear()
