"""A trial's channel QC and plausibility checks, computed in a warm worker process (issue 17).

They are the ingest's heaviest Python (a per-channel loop of small numpy steps): on the night's ingest thread
they ran beside the derivation threads and waited for the interpreter lock, ~0.5 s of wall time per trial for
~0.17 s of CPU, on the night's critical path. In a process of their own they run on the other core while the
ingest builds the trial's other tables. The worker is forked from the ingest's forkserver (everything it runs
already imported: :mod:`warehouse.ingest.warm_process`) and stays warm, one per thread, as the C3D reader.

The same functions on the same values (pickled exactly): the same tables. If the worker cannot be used (it
died, the arguments do not pickle), the checks run here, as before; nothing is lost.
"""
from __future__ import annotations

import dataclasses
import logging
import pickle
import threading

import pyarrow as pa

from warehouse.ingest import tables, warm_process
from warehouse.ingest.readers.base import Recording

log = logging.getLogger(__name__)

#: Longest wait for one trial's checks in the worker, s (they take ~0.2 s; past this the worker is replaced and
#: the checks run here).
CHECK_TIMEOUT_S = 300.0
_WARM = threading.local()  # this thread's worker: .proc, .conn, .pid, .sent (jobs sent so far)


#: The checks themselves (the worker runs them; so does this process when the worker cannot).
checks = tables.trial_checks


def _serve(conn) -> None:
    """The worker: pickled arguments in, ``("ok", tables)`` or ``("error", text)`` out, until the parent closes
    the pipe or dies (the pipe's end: the worker then exits, as the C3D reader does)."""
    while True:
        try:
            job, payload = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = (job, "ok", checks(*pickle.loads(payload)))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which checks here
            reply = (job, "error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


class Pending:
    """The checks of one trial, under way in the worker; :meth:`result` waits for them (or runs them here)."""

    def __init__(self, args: tuple, conn=None, job: int = -1):
        self._args, self._conn, self._job = args, conn, job

    def result(self) -> tuple[pa.Table, pa.Table]:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                while conn.poll(CHECK_TIMEOUT_S):
                    job, kind, value = conn.recv()
                    if job != self._job:  # the reply to a job whose caller never asked for it (it failed)
                        continue
                    if kind == "ok":
                        return value
                    log.warning("checks of %s failed in the worker (%s): checking here", self._args[0], value)
                    break
                else:
                    log.warning("checks of %s took over %s s in the worker: checking here", self._args[0],
                                CHECK_TIMEOUT_S)
                    _retire(kill=True)
            except (EOFError, OSError) as exc:  # the worker died
                log.warning("the checks' worker died (%s): checking %s here", exc, self._args[0])
                _retire(kill=True)
        return checks(*self._args)


def start(trial_id: str, rec: Recording, chans: list[dict], mains_hz: float | None, mass_kg) -> Pending:
    """Begin the trial's checks in this thread's worker (collect them with :meth:`Pending.result` before
    starting another). ``rec`` is sent without what the checks do not read (its analog channels: the EMG is in
    ``chans``; ultrasound; measurements)."""
    light = dataclasses.replace(rec, analogs=[], ultrasound=[], measurements=[])
    args = (trial_id, light, chans, mains_hz, mass_kg)
    try:  # pickled now: what the worker checks is what the caller had, whatever it changes next
        payload = pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - a value pickle refuses: the checks run here when asked for
        log.warning("checks of %s not sent to the worker (%s: %s): checking here", trial_id, type(exc).__name__, exc)
        return Pending(args)
    try:
        conn = _worker()
        _WARM.sent += 1
        conn.send((_WARM.sent, payload))
        return Pending(args, conn, _WARM.sent)
    except Exception as exc:  # noqa: BLE001 - no worker: the checks run here when asked for
        log.warning("the checks' worker could not be used (%s): checking here", exc)
        _retire(kill=True)
        return Pending(args)


def _worker():
    """This thread's warm worker's pipe (started on first use, or after it died or was retired)."""
    w = _WARM
    if getattr(w, "proc", None) is not None and not warm_process.usable(w):
        _retire()
    if getattr(w, "proc", None) is None:
        warm_process.start(w, _serve, name="myomap-checks")
        w.sent = 0
    return w.conn


def _retire(kill: bool = False) -> None:
    """Stop this thread's worker (killed when it may be stuck)."""
    warm_process.retire(_WARM, kill)
