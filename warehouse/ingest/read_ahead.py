"""Read-ahead of the night's next inbox file (issue 17): its decode (the C3D reader's child process,
CSV parsing, the lab frame) runs on a background thread while the night commits the file before it.

Only a read: nothing is registered, copied, quarantined or written, and no fault point is passed. The
ingest takes the result only for the same bytes and the same reading options: the key is the sha256 of
the private copy it reads (made as the ingest opens inbox files: no link followed; equal to the sha256
the ingest registers), its companions, the manifest's vertical axis and the reader memory cap. Anything else, and
any failure of the read-ahead itself, is read again in line by the ingest as before; a reader error
found ahead is raised by the ingest exactly as if it had read the file itself. Local inboxes only (an
S3 inbox would be downloaded twice).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath

from warehouse import zones
from warehouse.ingest import limits
from warehouse.ingest.readers import read_any
from warehouse.settings import Settings

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_STATE: dict = {"pool": None, "ahead": {}}  # inbox path -> (sha256 future, Recording future, read options)


#: The read-ahead's private copies live in ``<temp>/myomap-ahead-<pid>-*`` while the file is read (removed after).
PREFIX = "myomap-ahead-"


def sweep_orphans(root: str | None = None) -> list[str]:
    """Remove the read-ahead folders of processes that are gone (a night killed with ``kill -9`` cannot remove
    its own: each holds a copy of an inbox file); returns them. A folder whose process is alive, or whose name
    does not say its process, is left alone."""
    root = root or tempfile.gettempdir()
    gone = []
    try:
        names = os.listdir(root)
    except OSError:
        return gone
    for name in names:
        pid = name[len(PREFIX):].split("-", 1)[0] if name.startswith(PREFIX) else ""
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)  # alive (or not ours to ask): left alone
            continue
        except ProcessLookupError:
            pass
        except OSError:
            continue
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone


def key(sha256: str, companions: dict[str, str], vertical_axis: str | None, memory_bytes: int | None) -> tuple:
    """What a read depends on besides the bytes' hash."""
    return sha256, tuple(sorted(companions.items())), vertical_axis, memory_bytes


def start(settings: Settings, src: str, companions: dict[str, str], vertical_axis: str | None) -> None:
    """Begin reading the inbox file ``src`` in the background (one file ahead at most; local lakes only)."""
    if settings.is_s3:
        return
    with _LOCK:
        if _STATE["pool"] is None:
            sweep_orphans()
            _STATE["pool"] = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
        pool = _STATE["pool"]
    sha_future: concurrent.futures.Future = concurrent.futures.Future()

    def run():
        with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-") as tmp:
            try:  # a private copy, hashed as it is copied (opened as the ingest opens inbox files: no links)
                h, part = hashlib.sha256(), Path(tmp) / "incoming"
                with zones.open_inbox_file(settings, src) as fh, open(part, "wb") as out:
                    while chunk := fh.read(zones.CHUNK):
                        h.update(chunk)
                        out.write(chunk)
            except BaseException:
                sha_future.set_result(None)
                raise
            sha = h.hexdigest()
            sha_future.set_result(sha)
            data = part.rename(Path(tmp) / PurePosixPath(zones.raw_path(settings, sha, src)).name)  # as the raw copy
            limits.check_declared(data, settings.limits)
            return read_any(data, companions={k: Path(v) for k, v in companions.items()},
                            memory_bytes=settings.limits.reader_memory_bytes, vertical_axis=vertical_axis)

    fut = pool.submit(run)
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: never "exception never retrieved"
    with _LOCK:
        _STATE["ahead"][src] = (sha_future, fut, companions, vertical_axis,
                                             settings.limits.reader_memory_bytes)


def take(src: str, k: tuple) -> concurrent.futures.Future | None:
    """The read-ahead of ``src`` if it read the bytes and options of ``k`` (see :func:`key`), else None."""
    with _LOCK:
        entry = _STATE["ahead"].pop(src, None)
    if entry is None:
        return None
    sha_future, fut, companions, vertical_axis, memory_bytes = entry
    if key(sha_future.result(), companions, vertical_axis, memory_bytes) != k:
        fut.cancel()
        return None
    return fut


def clear() -> None:
    """Forget every read-ahead (end of a site): nothing stays in memory between sites."""
    with _LOCK:
        entries, _STATE["ahead"] = list(_STATE["ahead"].values()), {}
    for _, fut, *_ in entries:
        fut.cancel()
