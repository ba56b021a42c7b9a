"""Vicon Nexus CSV export ("Devices" and "Trajectories" sections).

Layout of each section: a title line (``Devices`` / ``Trajectories`` / ``Joints`` / ``Model Outputs`` /
``Segments``), the section rate, a row of device (or ``Subject:Marker``) names written once above their
first column, a row of column labels (``Frame,Sub Frame,...``), a row of units, the data rows, and a
blank line. Device columns become analog channels (label = the channel name, or ``<output>.<channel>``
when the channel name is a bare number or repeats, e.g. ``Voltage.1`` for device ``Imported Analog EMG -
Voltage``; description = the full device name). Trajectory columns become markers in mm. Other
sections (model outputs, joints, segments) are derived data and are skipped with a note. Force-plate
device columns stay analog channels: the CSV does not state their reference frame.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl

from warehouse.ingest.readers.base import AnalogChannel, ReaderError, Recording
from warehouse.ingest.readers.opensim import length_factor_mm

SECTIONS = ("Devices", "Trajectories", "Joints", "Model Outputs", "Segments", "Segment Centre of Mass")


def sniff_nexus_csv(head: bytes) -> bool:
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].strip().rstrip(b",").strip()
    return first.decode("latin-1", errors="replace") in SECTIONS


def _sections(lines: list[str]) -> list[tuple[str, int, int]]:
    """(name, first line, end line exclusive) of each section."""
    out = []
    i = 0
    while i < len(lines):
        title = lines[i].split(",")[0].strip()
        if title in SECTIONS and lines[i].replace(",", "").strip() == title:
            j = i + 1
            while j < len(lines) and lines[j].replace(",", "").strip():
                j += 1
            out.append((title, i, j))
            i = j
        else:
            i += 1
    return out


def _block(lines: list[str], start: int, end: int, ncol: int) -> np.ndarray:
    body = "\n".join(lines[start:end])
    names = [f"c{i}" for i in range(ncol)]
    df = pl.read_csv(io.StringIO(body), has_header=False, new_columns=names, infer_schema=False,
                     truncate_ragged_lines=True)
    cols = [df.get_column(c).str.strip_chars().cast(pl.Float64, strict=False).to_numpy() for c in names]
    return np.column_stack(cols).astype(np.float64)


def _spread(names: list[str]) -> list[str]:
    """Carry each name written above its first column over the following blank cells."""
    out, cur = [], ""
    for n in names:
        cur = n.strip() or cur
        out.append(cur)
    return out


def read_nexus_csv(path: Path, *, companions: dict | None = None) -> Recording:
    """Read a Vicon Nexus CSV export.

    Raises
    ------
    ReaderError
        ``empty_file``, ``nexus_csv_header`` (no Devices/Trajectories section, or a section without its
        rate / label / unit rows), ``no_frames``, ``unit_unknown`` (trajectory unit).
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise ReaderError("empty_file", f"{path.name} is empty: re-export it from Nexus.")
    lines = raw.decode("utf-8-sig", errors="replace").splitlines()
    secs = _sections(lines)
    if not any(s[0] in ("Devices", "Trajectories") for s in secs):
        raise ReaderError("nexus_csv_header", f"{path.name}: no 'Devices' or 'Trajectories' section title line; "
                          "is this a Vicon Nexus CSV export?")
    rec = Recording(format="nexus_csv", vendor="Vicon", software="Nexus")
    for name, i0, i1 in secs:
        if name not in ("Devices", "Trajectories"):
            rec.notes.append(f"section {name!r} (derived model data) skipped")
            continue
        if i1 - i0 < 6:
            raise ReaderError("nexus_csv_header", f"{path.name}: section {name!r} lacks its rate, name, label or "
                              "unit rows, or has no data.")
        try:
            rate = float(lines[i0 + 1].split(",")[0])
        except ValueError:
            raise ReaderError("nexus_csv_header", f"{path.name}: section {name!r} rate row is "
                              f"{lines[i0 + 1][:40]!r}, not a number.") from None
        labels = [c.strip() for c in lines[i0 + 3].split(",")]
        while labels and not labels[-1]:
            labels.pop()
        ncol = len(labels)
        owners = _spread((lines[i0 + 2].split(",") + [""] * ncol)[:ncol])
        units = [c.strip() for c in (lines[i0 + 4].split(",") + [""] * ncol)[:ncol]]
        if labels[:2] != ["Frame", "Sub Frame"]:
            raise ReaderError("nexus_csv_header", f"{path.name}: section {name!r} columns start with {labels[:2]}, "
                              "expected 'Frame', 'Sub Frame'.")
        data = _block(lines, i0 + 5, i1, ncol)
        if data.shape[0] == 0:
            raise ReaderError("no_frames", f"{path.name}: section {name!r} has no data rows.")
        frames = data[:, 0]
        if np.isfinite(frames[0]):
            rec.first_frame = int(frames[0]) - 1
        if name == "Devices":
            _devices(rec, data, labels, owners, units, rate)
        else:
            _trajectories(rec, data, labels, owners, units, rate)
    if not rec.analogs and rec.markers_mm is None:
        raise ReaderError("no_frames", f"{path.name}: no device or trajectory columns.")
    return rec


def _devices(rec: Recording, data: np.ndarray, labels: list[str], owners: list[str], units: list[str],
             rate: float) -> None:
    chans = labels[2:]
    used = []
    for j in range(2, len(labels)):
        ch, dev = labels[j], owners[j]
        output = dev.rsplit(" - ", 1)[-1].strip()
        label = ch if (ch and not ch.isdigit() and chans.count(ch) == 1) else f"{output}.{ch}"
        used.append(label)
        unit = units[j]
        if not unit:
            rec.notes.append(f"{label}: no unit in the CSV")
        rec.analogs.append(AnalogChannel(label=label, unit=unit, rate_hz=rate, data=data[:, j], description=dev))
    renamed = [lb for lb in used if "." in lb and lb.split(".", 1)[1] in chans]
    if renamed:
        rec.notes.append(f"{len(renamed)} channel names are bare numbers or repeat; labelled <output>.<channel> "
                         f"({', '.join(renamed[:6])}{'...' if len(renamed) > 6 else ''})")
    zero = [a.label for a in rec.analogs[-len(used):] if a.data.size and np.all(a.data == 0)]
    if zero:
        rec.notes.append(f"{len(zero)} channels are exactly zero throughout (sensor absent or not connected): "
                         + ", ".join(zero))
    gaps = [a.label for a in rec.analogs[-len(used):] if np.isnan(a.data).any()]
    if gaps:
        rec.notes.append(f"{len(gaps)} channels have empty cells (NaN): " + ", ".join(gaps[:8]))
    if any(k in " ".join(set(owners)).lower() for k in ("force plate", "forceplate")):
        rec.notes.append("force-plate device columns kept as analog channels (reference frame not stated in the "
                         "CSV)")
    sub = data[:, 1]
    if np.all(np.isfinite(sub)) and sub.size:
        per_frame = int(np.nanmax(sub)) + 1
        if per_frame > 0 and rec.point_rate_hz is None:
            rec.point_rate_hz = rate / per_frame
    rec.analog_rate_hz = rate


def _trajectories(rec: Recording, data: np.ndarray, labels: list[str], owners: list[str], units: list[str],
                  rate: float) -> None:
    markers = []
    for j in range(2, len(labels) - 2):
        if labels[j].upper().startswith("X") and labels[j + 1].upper().startswith("Y") and \
                labels[j + 2].upper().startswith("Z") and (j == 2 or owners[j] != owners[j - 1]):
            markers.append((owners[j].split(":", 1)[-1] if ":" in owners[j] else owners[j], j))
    if not markers:
        rec.notes.append("Trajectories section without X/Y/Z columns skipped")
        return
    factor, note = length_factor_mm(units[markers[0][1]] or "mm")
    if note:
        rec.notes.append(note)
    xyz = np.stack([data[:, j:j + 3] for _, j in markers], axis=1) * factor
    rec.markers_mm = xyz
    rec.marker_labels = [m for m, _ in markers]
    rec.point_rate_hz = rate
    subjects = sorted({owners[j].split(":", 1)[0] for _, j in markers if ":" in owners[j]})
    if subjects:
        rec.notes.append(f"trajectories of subject(s) {', '.join(subjects)}")
