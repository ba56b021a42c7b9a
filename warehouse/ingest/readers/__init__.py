"""Readers: vendor files -> :class:`~warehouse.ingest.readers.base.Recording`.

``read_any`` picks the reader from the file name and its first bytes. Companion files
(a ``<stem>_events.tsv`` next to a CSV, an ``.anc``/``.cal`` next to a Motion Analysis
``.trc``, a ``_channels.tsv`` next to an EDF, a Spike2 export next to an UltraTrack
file) are found among the file's siblings by :func:`companions_for`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from warehouse.ingest.readers.base import ReaderError, Recording
from warehouse.ingest.readers.c3d import read_c3d
from warehouse.ingest.readers.delsys import read_delsys_csv, sniff_delsys

log = logging.getLogger(__name__)

#: Files that accompany another file and are never trials themselves.
COMPANION_SUFFIXES = ("_events.tsv", "_channels.tsv", ".cal", "_channels.json", "_emg.json", "_motion.json")
#: Files that are never data.
IGNORED_NAMES = ("manifest.yaml", "manifest.yml", ".DS_Store", "Thumbs.db", "participants.tsv",
                 "participants.json", "dataset_description.json", "README", "CHANGES")


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def is_companion(name: str, siblings: list[str] | None = None) -> bool:
    """True for files read only as part of another file (events, channels, calibration, ANC)."""
    low = name.lower()
    if low.endswith(COMPANION_SUFFIXES) or name in IGNORED_NAMES:
        return True
    if low.endswith(".anc") and siblings is not None:  # an ANC is the analog half of a TRC
        return any(s.lower() == _stem(low) + ".trc" for s in siblings)
    return False


def companions_for(name: str, siblings: list[str]) -> dict[str, str]:
    """Companion files of ``name`` among ``siblings`` (names in the same folder), by role."""
    stem, low = _stem(name), name.lower()
    sib = {s.lower(): s for s in siblings}
    out: dict[str, str] = {}
    if f"{stem}_events.tsv".lower() in sib:
        out["events"] = sib[f"{stem}_events.tsv".lower()]
    if low.endswith((".edf", ".bdf")):
        for cand in (f"{stem}_channels.tsv", f"{stem.removesuffix('_emg')}_channels.tsv"):
            if cand.lower() in sib:
                out["channels"] = sib[cand.lower()]
                break
    if low.endswith(".trc"):
        if f"{stem}.anc".lower() in sib:
            out["anc"] = sib[f"{stem}.anc".lower()]
        cals = sorted(s for s in siblings if s.lower().endswith(".cal"))
        if cals:
            out["cal"] = cals[0]
    if low.endswith(".mat") and "spike2" not in low:
        mats = [s for s in siblings if s.lower().endswith(".mat") and "spike2" in s.lower() and s != name]
        best = max(mats, key=lambda s: len(os.path.commonprefix([s, name])), default=None)
        if best and len(os.path.commonprefix([best, name])) >= 5:
            out["spike2"] = best
    return out


def detect_format(path: Path) -> str | None:
    from warehouse.ingest.readers.edf import sniff_edf
    from warehouse.ingest.readers.motion_analysis import sniff_motion_analysis
    from warehouse.ingest.readers.nexus_csv import sniff_nexus_csv
    from warehouse.ingest.readers.opensim import sniff_opensim
    from warehouse.ingest.readers.ultrasound import sniff_ultrasound_csv

    suffix = Path(path).suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if suffix == ".c3d" or (len(head) >= 2 and head[1] == 0x50 and suffix not in (".csv", ".txt", ".tsv")):
        return "c3d"
    if sniff_edf(head):
        return "edf"
    if suffix == ".mat":
        return "mat"
    ma = sniff_motion_analysis(head)
    if ma:
        return f"motion_analysis_{ma}"
    os_kind = sniff_opensim(head)
    if os_kind:
        return os_kind
    if sniff_delsys(head):
        return "delsys_csv"
    if sniff_nexus_csv(head):
        return "nexus_csv"
    if sniff_ultrasound_csv(head):
        return "ultrasound_csv"
    return None


def _read_c3d_with_fallback(path: Path, companions=None, memory_bytes: int | None = None) -> Recording:
    """ezc3d first; files it cannot read (SGI/MIPS, float offsets) go through py-c3d."""
    from warehouse.ingest.readers.pyc3d import check_parameter_section, read_c3d_pyc3d

    fault = check_parameter_section(path) if Path(path).stat().st_size else None
    overflow = bool(fault and "runs past the end" in fault)
    if fault and not overflow:  # ezc3d can take a minute to give up on a corrupt parameter section
        raise ReaderError("c3d_bad_parameter_section", f"The C3D parameter section is corrupt: {fault}. "
                          "Re-export the file from the acquisition software.")
    try:
        rec = read_c3d(path, companions=companions, memory_bytes=memory_bytes)
        if overflow:  # old writers often overrun the declared section; readable, but say so
            rec.findings.append(("c3d_parameter_overflow", "warn", f"The C3D {fault}; the file was read, but "
                                 "check parameters near the end of the section (e.g. labels, units)."))
        return rec
    except ReaderError as exc:
        if exc.reason_code not in ("c3d_unsupported_processor", "c3d_unreadable", "c3d_reader_crashed"):
            raise
        try:
            rec = read_c3d_pyc3d(path, companions=companions)
        except ReaderError:
            raise exc from None
        except Exception as fallback:  # noqa: BLE001 - the fallback failing on a malformed file (e.g. a text
            # ANALOG:OFFSET where numbers belong, found by fuzzing): the file is refused with ezc3d's reason
            log.info("py-c3d could not read %s either (%s: %s)", Path(path).name, type(fallback).__name__,
                     str(fallback)[:200])
            raise exc from None
        rec.notes.append(f"read with py-c3d because ezc3d failed: {exc.message}")
        return rec


def read_any(path: Path, *, companions: dict | None = None, memory_bytes: int | None = None,
             vertical_axis: str | None = None) -> Recording:
    """Read any supported file, in the one lab frame (Z up, X along the progression where inferable).

    ``vertical_axis`` is the site manifest's override of the file's vertical axis (``'+Y'``...);
    by default it is detected (:func:`warehouse.ingest.lab_frame.align_to_lab`).

    ``memory_bytes`` caps the address space of the isolated C3D reader process
    (``Settings.limits.reader_memory_bytes``): a file that needs more is refused
    (``c3d_reader_memory``) instead of swapping the machine.

    Raises
    ------
    ReaderError
        With a stable ``reason_code``; ``unknown_format`` for unsupported files.
    """
    from warehouse.ingest.lab_frame import align_to_lab

    return align_to_lab(_read_any(Path(path), companions, memory_bytes), vertical_axis=vertical_axis)


def _read_any(path: Path, companions: dict | None, memory_bytes: int | None = None) -> Recording:
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReaderError("empty_file", "The file is empty (0 bytes): re-export or re-upload it.")
    fmt = detect_format(path)
    if fmt == "c3d":
        return _read_c3d_with_fallback(path, companions, memory_bytes)
    if fmt == "delsys_csv":
        return read_delsys_csv(path, companions=companions)
    if fmt == "edf":
        from warehouse.ingest.readers.edf import read_edf
        return read_edf(path, companions=companions)
    if fmt == "mat":
        from warehouse.ingest.readers.ultrasound import (
            mat_kind,
            read_spike2_mat,
            read_ultratrack,
        )
        kind = mat_kind(path)
        if kind == "ultratrack":
            return read_ultratrack(path, companions=companions)
        if kind == "spike2":
            return read_spike2_mat(path, companions=companions)
        raise ReaderError("mat_unknown", f"'{path.name}' is a MATLAB file but neither an UltraTrack result "
                          "(Fdat.Region) nor a Spike2 export.")
    if fmt in ("motion_analysis_trc", "motion_analysis_anc"):
        from warehouse.ingest.readers.motion_analysis import read_motion_analysis
        return read_motion_analysis(path, companions=companions)
    if fmt == "trc":
        from warehouse.ingest.readers.opensim import read_trc
        return read_trc(path, companions=companions)
    if fmt == "mot":
        from warehouse.ingest.readers.opensim import read_mot
        return read_mot(path, companions=companions)
    if fmt == "nexus_csv":
        from warehouse.ingest.readers.nexus_csv import read_nexus_csv
        return read_nexus_csv(path, companions=companions)
    if fmt == "ultrasound_csv":
        from warehouse.ingest.readers.ultrasound import read_ultrasound_csv
        return read_ultrasound_csv(path, companions=companions)
    raise ReaderError("unknown_format", f"'{path.name}' is not a format myomap reads (C3D, EDF/BDF, Delsys or "
                      "Nexus CSV, OpenSim TRC/MOT, Motion Analysis TRC/ANC, UltraTrack/Spike2 .mat, ultrasound "
                      "CSV); remove it from the inbox or ask for a reader.")


__all__ = ["ReaderError", "Recording", "read_any", "detect_format", "is_companion", "companions_for"]
