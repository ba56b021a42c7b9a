"""The inbox is data, not a filesystem to follow.

:func:`scan` lists a site's inbox without following anything: every entry that is not a
plain folder is returned by its path (``entries``), to be judged by :func:`inspect` when
the file is processed; entries whose name cannot even be stored (not UTF-8) are refused at
once with an escaped name (``refused``). :func:`inspect` looks at one entry with
``lstat`` and refuses, with a stable reason code, what the night must never read:

``symlink``
    a symbolic link (to a file, a folder, nowhere, or itself): never followed, the target's
    bytes are never read or copied; the link's target is named in the message.
``special_file``
    a FIFO, socket or device.
``directory_named_like_data``
    a folder whose name looks like a data file (``walk.c3d/``); its contents are scanned
    like any other folder's.
``name_not_utf8``
    a name that is not valid UTF-8, recorded with its bytes escaped (``caf\\xe9.c3d``).
``file_too_large``
    over the size limit of its format (``Settings.limits``), refused before it is hashed or
    copied to raw/.

On ``s3://`` inboxes there are no links or special files: object keys are listed, folders
are key prefixes, and the size limit applies the same way.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

from warehouse import faults, zones
from warehouse.settings import Settings

MANIFEST_NAMES = ("manifest.yaml", "manifest.yml")
STAGE = "inbox"


@dataclass(frozen=True)
class Refusal:
    """An inbox entry the night will not read, and why (a small, picklable record)."""

    path: str  # relative to the site folder, escaped when not UTF-8
    reason_code: str
    message: str
    size_bytes: int = 0

    @property
    def key(self) -> str:
        """Stands in for the content hash (the bytes are never read): stable across nights."""
        text = f"myomap-refused\0{self.reason_code}\0{self.path}\0{self.size_bytes}"
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Scan:
    entries: list[str]  # everything but plain folders and manifests, by relative POSIX path
    refused: list[Refusal]


def escape_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _data_like(settings: Settings, name: str) -> bool:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ext in settings.limits.file_bytes and ext != "*"


def scan(settings: Settings, site: str) -> Scan:
    """List ``inbox/<site>/`` as data: nothing is followed or opened."""
    if settings.is_s3:
        return _scan_s3(settings, site)
    root = zones.inbox(settings, site)
    if os.path.islink(root):
        raise NotADirectoryError(f"inbox/{site} is a symbolic link, not a folder: it is not followed")
    entries, refused, stack = [], [], [""]
    while stack:  # iterative: a deep folder tree cannot exhaust the interpreter's stack
        rel_dir = stack.pop()
        try:
            listing = sorted(os.scandir(os.path.join(root, rel_dir) if rel_dir else root), key=lambda e: e.name)
        except OSError:
            continue  # unreadable folder: its path was recorded by inspect() when it was named like data
        for e in listing:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            if not is_utf8(rel):
                kind = "folder" if e.is_dir(follow_symlinks=False) else "file"
                refused.append(Refusal(escape_name(rel), "name_not_utf8",
                                       f"The {kind} name is not valid UTF-8 (shown with its bytes escaped): rename "
                                       "it using UTF-8 characters; its contents were not read."))
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append(rel)
                if not _data_like(settings, e.name):
                    continue
            if rel_dir or e.name not in MANIFEST_NAMES:
                entries.append(rel)
    return Scan(sorted(entries), refused)


def _scan_s3(settings: Settings, site: str) -> Scan:
    files = zones.list_site_files(settings, site)
    dirs = {str(p) for f in files for p in PurePosixPath(f).parents if str(p) != "."}
    entries = [f for f in files if f not in MANIFEST_NAMES]
    entries += [d for d in dirs if _data_like(settings, PurePosixPath(d).name)]
    return Scan(sorted(entries), [])


def inspect(settings: Settings, site: str, rel: str) -> Refusal | int:
    """The entry's size in bytes when it may be read, else why it is refused.

    Raises
    ------
    FileNotFoundError
        The entry is gone (nothing to judge).
    """
    name = PurePosixPath(rel).name
    path = f"{zones.inbox(settings, site)}/{rel}"
    if settings.is_s3:
        fs = zones.filesystem(settings)
        info = faults.storage_retry(lambda: fs.info(path), settings, what=f"look up inbox/{site}/{rel}")
        kind, size = info.get("type"), int(info.get("size") or 0)
        if kind == "directory":
            return _folder(rel)
    else:
        st = os.lstat(path)
        size = st.st_size
        if stat.S_ISLNK(st.st_mode):
            target = escape_name(os.readlink(path))
            return Refusal(rel, "symlink", f"A symbolic link (to '{target}'): links in an inbox are never followed "
                           "and their target is never read or copied. Put the file itself in the inbox.")
        if stat.S_ISDIR(st.st_mode):
            return _folder(rel)
        if not stat.S_ISREG(st.st_mode):
            what = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                    else "a device")
            return Refusal(rel, "special_file", f"Not a file but {what}: it was not opened. Remove it from the "
                           "inbox.")
    limit = settings.limits.max_file_bytes(name)
    if size > limit:
        return Refusal(rel, "file_too_large", f"{size:,} bytes, over the {limit:,}-byte limit for "
                       f"'{name.rsplit('.', 1)[-1] if '.' in name else name}' files (MYOMAP_MAX_FILE_BYTES): it was "
                       "neither hashed nor copied. Split the recording or ask the lake's operators to raise the "
                       "limit.", size)
    return size


def _folder(rel: str) -> Refusal:
    return Refusal(rel, "directory_named_like_data", "A folder named like a data file: it is not a recording. "
                   "The files inside it are scanned like any other; rename the folder.")
