"""Readers: vendor files -> :class:`~warehouse.readers.base.Recording`.

``read_any`` picks the reader from the file name and its first bytes. Companion files
(e.g. a ``<stem>_events.tsv`` next to a CSV) are found by :func:`companions_of`.
"""
from __future__ import annotations

from pathlib import Path

from warehouse.readers.base import ReaderError, Recording
from warehouse.readers.c3d import read_c3d
from warehouse.readers.delsys import read_delsys_csv, sniff_delsys

#: Files that accompany another file and are never trials themselves.
COMPANION_SUFFIXES = ("_events.tsv",)
#: Files that are never data.
IGNORED_NAMES = ("manifest.yaml", "manifest.yml", ".DS_Store", "Thumbs.db")


def is_companion(name: str) -> bool:
    return name.endswith(COMPANION_SUFFIXES)


def companion_names(name: str) -> dict[str, str]:
    """Names of the companions a data file may have, keyed by role."""
    stem = name.rsplit(".", 1)[0]
    return {"events": f"{stem}_events.tsv"}


def detect_format(path: Path) -> str | None:
    suffix = Path(path).suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if suffix == ".c3d":
        return "c3d"
    if suffix in (".csv", ".txt") and sniff_delsys(head):
        return "delsys_csv"
    if len(head) >= 2 and head[1] == 0x50:  # C3D magic byte regardless of extension
        return "c3d"
    return None


def read_any(path: Path, *, companions: dict | None = None) -> Recording:
    """Read any supported file.

    Raises
    ------
    ReaderError
        With a stable ``reason_code``; ``unknown_format`` for unsupported files.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReaderError("empty_file", "The file is empty (0 bytes): re-export or re-upload it.")
    fmt = detect_format(path)
    if fmt == "c3d":
        return read_c3d(path, companions=companions)
    if fmt == "delsys_csv":
        return read_delsys_csv(path, companions=companions)
    raise ReaderError("unknown_format", f"'{path.name}' is not a format myomap reads (C3D, Delsys EMGworks CSV); "
                      "remove it from the inbox or ask for a reader.")


__all__ = ["ReaderError", "Recording", "read_any", "detect_format", "is_companion", "companion_names"]
