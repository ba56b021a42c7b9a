"""Lake zones on a local folder or ``s3://``: inbox (drop zone), raw (content-addressed
originals, never deleted), quarantine (JSON records beside the table), tables, releases.

Inbox files are opened without following links and only when they are regular files
(:func:`open_inbox_file`); every write and every S3 call goes through
:func:`warehouse.faults.storage_retry`, so that a full disk or a failing object store is a
:class:`~warehouse.faults.StorageError` and never a half-written file.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

import fsspec

from warehouse import faults
from warehouse.settings import Settings

CHUNK = 1 << 20


class NotARegularFile(OSError):
    """An inbox path that is a link, a folder or a special file: never opened, never followed."""


def filesystem(settings: Settings) -> fsspec.AbstractFileSystem:
    if settings.is_s3:
        s3 = settings.s3
        kw = {"key": s3.get("key"), "secret": s3.get("secret")}
        client = {k: v for k, v in {"endpoint_url": s3.get("endpoint_url"),
                                    "region_name": s3.get("region")}.items() if v}
        # one retry policy, ours (faults.storage_retry): botocore and s3fs make a single attempt each
        config = {"connect_timeout": settings.s3_timeout_s, "read_timeout": settings.s3_timeout_s,
                  "retries": {"max_attempts": 1, "mode": "standard"}}
        fs = fsspec.filesystem("s3", client_kwargs=client, config_kwargs=config,
                               **{k: v for k, v in kw.items() if v})
        fs.retries = 1  # s3fs's own retry loop: a single attempt
        return fs
    return fsspec.filesystem("file")


def _s3(settings: Settings, fn, what: str):
    """Run an fsspec call, retried on transient S3 errors (local calls run once)."""
    return faults.storage_retry(fn, settings, what=what) if settings.is_s3 else fn()


def inbox(settings: Settings, site: str | None = None) -> str:
    base = settings.zone("inbox")
    return f"{base}/{site}" if site else base


def list_sites(settings: Settings) -> list[str]:
    """Site folders of the inbox (real folders only: a link named like a site is not a site)."""
    root = inbox(settings)
    if not settings.is_s3:
        if not Path(root).is_dir():
            return []
        out = []
        for e in os.scandir(root):
            try:
                e.name.encode("utf-8")
            except UnicodeEncodeError:
                continue  # not addressable as a site id; `myomap status` cannot show it either
            if e.is_dir(follow_symlinks=False):
                out.append(e.name)
        return sorted(out)
    fs = filesystem(settings)
    if not _s3(settings, lambda: fs.exists(root), "list the inbox"):
        return []
    entries = _s3(settings, lambda: fs.ls(root, detail=True), "list the inbox")
    return sorted(PurePosixPath(e["name"]).name for e in entries if e.get("type") == "directory")


def list_site_files(settings: Settings, site: str) -> list[str]:
    """Every regular file under ``inbox/<site>/`` as a POSIX path relative to that folder, sorted.

    Links are never followed and never listed, nor are special files and names that are not
    UTF-8 (:mod:`warehouse.ingest.inbox` records those).
    """
    root = inbox(settings, site).rstrip("/")
    if not settings.is_s3:
        out = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            rel_dir = os.path.relpath(dirpath, root)
            for name in filenames:
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if _listed(os.path.join(dirpath, name), rel):
                    out.append(rel.replace(os.sep, "/"))
        return sorted(out)
    fs = filesystem(settings)
    prefix = root.replace("s3://", "") + "/"
    found = _s3(settings, lambda: fs.find(root, detail=True), f"list inbox/{site}")
    return sorted(p[len(prefix):] for p, info in found.items()
                  if info.get("type") == "file" and p.startswith(prefix) and not p.endswith("/"))


def list_folder_files(settings: Settings, site: str, folder: str) -> list[str]:
    """The names of the regular files directly in ``inbox/<site>/<folder>`` (``"."``: the site's folder), sorted:
    what :func:`list_site_files` lists in that folder, without walking the whole site (a new file's siblings:
    a walk per file grew with the square of a site's files). A folder reached through a link lists nothing."""
    if settings.is_s3:
        return [PurePosixPath(f).name for f in list_site_files(settings, site) if str(PurePosixPath(f).parent) == folder]
    path = inbox(settings, site).rstrip("/")
    for part in PurePosixPath(folder).parts:  # every folder on the way is a real folder: nothing followed
        path = os.path.join(path, part)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return []
        except OSError:
            return []
    try:
        entries = list(os.scandir(path))
    except OSError:
        return []
    return sorted(e.name for e in entries if _listed(e.path, e.name))


def _listed(full: str, rel: str) -> bool:
    """Whether an inbox listing names the entry at ``full`` (``rel``: its name in the listing): a regular file
    (a link is never followed), named in UTF-8."""
    try:
        rel.encode("utf-8")
        return stat.S_ISREG(os.lstat(full).st_mode)
    except (UnicodeEncodeError, OSError):
        return False


def open_inbox_file(settings: Settings, path: str) -> BinaryIO:
    """Open an inbox (or raw) file for reading: never through a link, never a FIFO or device.

    Raises
    ------
    NotARegularFile
        ``path`` is a symbolic link, a folder or a special file (local lakes).
    """
    if settings.is_s3:
        return filesystem(settings).open(path, "rb")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symbolic link
            raise NotARegularFile(exc.errno, "a symbolic link", path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFile(0, "not a regular file", path)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


#: An inbox entry whose metadata changed less than this long before it was looked at is read each night: a file
#: system's timestamps have a granularity (a jiffy on Linux, 2 s on FAT), so a write in the same tick as the look
#: would leave the same metadata on other bytes (git's "racily clean" entries).
STAT_SETTLED_S = 10.0


def entry_stat(settings: Settings, path: str) -> str | None:
    """What an inbox entry's metadata says about its bytes, or None when it cannot vouch for them: local, its
    type, size, modification and status-change times (ns) and inode (no write keeps all of them: the
    status-change time is set by the kernel and cannot be set back); S3, its size, ETag and last modification.
    None for an entry changed in the last :data:`STAT_SETTLED_S` seconds (a write in the same clock tick could
    follow) or an S3 object without an ETag. A later night that finds the same at the same path does not read
    the file again (``files.inbox_stat``)."""
    if settings.is_s3:
        fs = filesystem(settings)
        info = _s3(settings, lambda: fs.info(path), f"look up {path}")
        etag, modified = info.get("ETag"), info.get("LastModified")
        if not etag or not hasattr(modified, "timestamp") or time.time() - modified.timestamp() < STAT_SETTLED_S:
            return None  # no ETag, or no last-modified time we can read: not vouched for
        return f"s3:{int(info.get('size') or 0)}:{etag}:{modified.isoformat()}"
    st = os.lstat(path)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < STAT_SETTLED_S * 1e9:
        return None
    return f"{st.st_mode:o}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def sha256_of(settings: Settings, path: str) -> tuple[str, int]:
    def run() -> tuple[str, int]:
        h, size = hashlib.sha256(), 0
        with open_inbox_file(settings, path) as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
        return h.hexdigest(), size
    return _s3(settings, run, f"read {path}")


def parent(path: str) -> str:
    """Parent folder of a lake path (``PurePosixPath`` would fold ``s3://`` into ``s3:/``)."""
    return path.rstrip("/").rsplit("/", 1)[0]


def raw_path(settings: Settings, sha256: str, name: str) -> str:
    suffix = "".join(PurePosixPath(name).suffixes[-1:]).lower()
    return f"{settings.zone('raw')}/{sha256[:2]}/{sha256}{suffix}"


def store_raw(settings: Settings, src: str, sha256: str, name: str) -> str:
    """Copy ``src`` byte-for-byte into the raw zone (once; raw files are never overwritten).

    Raises
    ------
    warehouse.faults.StorageError
        The disk is full or the object store keeps failing: nothing is left behind
        (no ``.part`` file, no partial object) and the raw copy is simply not there yet.
    NotARegularFile
        ``src`` turned into a link or special file since it was inspected.
    """
    dst = raw_path(settings, sha256, name)
    if settings.is_s3:
        fs = filesystem(settings)

        def copy() -> None:
            if not fs.exists(dst):
                faults.point("raw_write", settings, path=dst)
                fs.copy(src, dst)
        faults.storage_retry(copy, settings, what=f"copy {name} to raw/")
        return dst
    if Path(dst).exists():
        return dst
    for stale in Path(dst).parent.glob(f"{Path(dst).name}.part-*"):  # left by a run killed mid-copy
        stale.unlink(missing_ok=True)
    tmp = f"{dst}.part-{os.getpid()}"
    try:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        with open_inbox_file(settings, src) as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(CHUNK):
                fout.write(chunk)
                faults.point("raw_write", settings, path=tmp)
        os.replace(tmp, dst)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        err = faults.as_storage_error(exc, f"copy {name} to raw/") if isinstance(exc, OSError) else None
        if err is not None and not isinstance(exc, NotARegularFile):
            raise err from exc
        raise
    return dst


def write_quarantine_record(settings: Settings, record: dict) -> str:
    """A human-readable JSON copy of a quarantine record under ``quarantine/<site>/``.

    Raises
    ------
    warehouse.faults.StorageError
        The disk is full or the object store keeps failing (no partial record is left).
    """
    fs = filesystem(settings)
    key = hashlib.sha256(f"{record['path']}|{record['stage']}".encode()).hexdigest()[:12]
    dst = f"{settings.zone('quarantine')}/{record['site_id']}/{record['sha256'][:16]}-{key}.json"
    text = json.dumps(record, indent=2, default=str)

    def write() -> None:
        faults.point("quarantine_write", settings, path=dst)
        fs.makedirs(parent(dst), exist_ok=True)
        if settings.is_s3:
            fs.pipe_file(dst, text.encode())
            return
        tmp = f"{dst}.part-{os.getpid()}"
        try:
            Path(tmp).write_text(text)
            os.replace(tmp, dst)
        finally:
            Path(tmp).unlink(missing_ok=True)
    faults.storage_retry(write, settings, what=f"write quarantine record for {record['path']}")
    return dst


@contextmanager
def local_files(settings: Settings, paths: dict[str, str]) -> Iterator[dict[str, Path]]:
    """Local paths for the given lake paths (downloaded to a temp dir when on S3)."""
    if not settings.is_s3:
        yield {k: Path(v) for k, v in paths.items()}
        return
    fs = filesystem(settings)
    with tempfile.TemporaryDirectory(prefix="myomap-") as tmp:
        out = {}
        for k, v in paths.items():
            dst = Path(tmp) / f"{k}-{PurePosixPath(v).name}"
            faults.storage_retry(lambda v=v, dst=dst: fs.get(v, str(dst)), settings, what=f"download {v}")
            out[k] = dst
        yield out


def exists(settings: Settings, path: str) -> bool:
    """True when ``path`` exists (a local symbolic link counts, even a dangling one: never followed)."""
    if not settings.is_s3:
        return os.path.lexists(path)
    fs = filesystem(settings)
    return _s3(settings, lambda: fs.exists(path), f"look up {path}")
