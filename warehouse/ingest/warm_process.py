"""The ingest's warm worker processes: the C3D reader (``readers.c3d``) and a trial's checks (``check_worker``).

One worker per thread of the night, kept for file after file, talking over a pipe. Each is forked from one
forkserver that has imported everything the workers run, so a worker imports nothing (a C3D reader child used
to import scipy for the ADC rails, ~1 s, and that import is what failed under a small memory cap, not the
decoding). A worker serves until its pipe closes: when the night ends, or dies (even by kill -9), it exits, and
nothing is left holding the night's files or output.
"""
from __future__ import annotations

import os
import threading

#: What the forkserver imports before forking a worker: everything the workers run.
PRELOAD = ["numpy", "ezc3d", "warehouse.ingest.readers.c3d", "transforms.qc_trial", "warehouse.ingest.tables",
           "transforms.plausibility", "transforms.plausibility_events", "transforms.plausibility_markers"]

_CTX = None
_CTX_LOCK = threading.Lock()


def context():
    """The workers' multiprocessing context (forkserver, preloading :data:`PRELOAD`)."""
    import multiprocessing as mp

    global _CTX
    with _CTX_LOCK:
        if _CTX is None:
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _CTX = ctx
    return _CTX


def start_server() -> None:
    """Start the forkserver now, without waiting for it: it imports :data:`PRELOAD` (~1 s of one core) while the
    night takes its lease and scans the inboxes, instead of while the first file waits for its reader."""
    from multiprocessing import forkserver

    context()
    forkserver.ensure_running()


def start(w: threading.local, serve, *args, name: str | None = None) -> None:
    """Start a worker running ``serve(conn, *args)``, kept in ``w`` (this thread's): ``w.proc``, ``w.conn`` (the
    parent's end of the pipe) and ``w.pid`` (the process that started it: a forked child never uses it)."""
    ctx = context()
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(child, *args), daemon=True, name=name)
    try:
        proc.start()
    except BaseException:
        conn.close()
        raise
    finally:
        child.close()
    w.conn, w.proc, w.pid = conn, proc, os.getpid()  # only a started worker is kept


def usable(w: threading.local) -> bool:
    """Whether ``w`` holds a live worker this process started."""
    return getattr(w, "proc", None) is not None and w.proc.is_alive() and w.pid == os.getpid()


def retire(w: threading.local, kill: bool = False) -> None:
    """Stop the worker kept in ``w`` (killed when it may be stuck); ``w.proc`` is then None."""
    proc, conn, w.proc = getattr(w, "proc", None), getattr(w, "conn", None), None
    if proc is None or getattr(w, "pid", None) != os.getpid():
        return
    if kill:
        proc.kill()
    conn.close()  # a live worker sees EOF and exits
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join(5)
