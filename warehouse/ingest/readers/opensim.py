"""OpenSim-style text files: TRC marker trajectories and MOT/STO motion or ground-reaction files.

TRC (``PathFileType 4 (X/Y/Z)``) is shared by OpenSim and Motion Analysis (Cortex/EVaRT); tab or comma
separated. MOT is a ``key=value`` header ended by ``endheader``, a column-name row and numeric rows.

Coordinate frames: OpenSim is Y-up (X forward, Z to the right). Ground-reaction forces are returned in
the lab frame used by the C3D files (Z up) with the proper rotation ``lab = (x, -z, y)``; COP in mm.
Signs follow the C3D force plates read by ezc3d (:mod:`warehouse.ingest.readers.c3d`): force = ground reaction
on the body (vertical positive when loaded, as in OpenSim), free moment = the vertical torque the foot
applies to the plate, i.e. minus OpenSim's vertical ``ground_torque`` (N.m -> N.mm).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from warehouse.ingest.readers.base import (
    AnalogChannel,
    ForcePlate,
    ReaderError,
    Recording,
)

#: Length units -> factor to mm.
_LENGTH_TO_MM = {"mm": 1.0, "millimeter": 1.0, "millimeters": 1.0, "millimetre": 1.0, "millimetres": 1.0,
                 "cm": 10.0, "centimeter": 10.0, "centimeters": 10.0, "centimetre": 10.0, "centimetres": 10.0,
                 "m": 1000.0, "meter": 1000.0, "meters": 1000.0, "metre": 1000.0, "metres": 1000.0}


def length_factor_mm(unit: str) -> tuple[float, str | None]:
    """(factor to mm, note) for a length unit; a truncated name is resolved only when unambiguous.

    Raises
    ------
    ReaderError
        ``unit_unknown`` when the unit is missing, unknown, or a prefix of units with different factors.
    """
    u = unit.strip().lower().rstrip(".")
    if u in _LENGTH_TO_MM:
        return _LENGTH_TO_MM[u], None
    if len(u) >= 3:
        factors = {f for name, f in _LENGTH_TO_MM.items() if name.startswith(u)}
        if len(factors) == 1:
            f = factors.pop()
            full = next(n for n, v in _LENGTH_TO_MM.items() if v == f and n.startswith(u))
            return f, f"length unit {unit!r} is truncated; resolved to {full!r} (the only unit it can start)"
    raise ReaderError("unit_unknown", f"length unit {unit!r} is not one myomap knows (mm, cm, m) or is ambiguous; "
                      "re-export with the unit stated.")


def sniff_opensim(head: bytes) -> str | None:
    """``"trc"`` or ``"mot"`` from a file's first bytes, else None."""
    if head.startswith(b"PathFileType"):
        return "trc"
    lines = [ln.strip().strip(b",").strip().lower() for ln in head[:4000].splitlines()[:60]]
    return "mot" if b"endheader" in lines else None


def _split(line: str, sep: str | None) -> list[str]:
    return [c.strip() for c in (line.split(sep) if sep else line.split())]


def _floats(cells: list[str]) -> np.ndarray:
    out = np.full(len(cells), np.nan)
    for i, c in enumerate(cells):
        if c and c.lower() not in ("nan", "n/a", "-nan(ind)"):
            try:
                out[i] = float(c)
            except ValueError:
                out[i] = np.nan
    return out


def _text(path: Path) -> list[str]:
    raw = Path(path).read_bytes()
    if not raw.strip():
        raise ReaderError("empty_file", f"{Path(path).name} is empty: re-export it.")
    return raw.decode("utf-8", errors="replace").splitlines()


# -------------------------------------------------------------------------------------------- TRC
def read_trc(path: Path, *, companions: dict | None = None) -> Recording:
    """Read a TRC marker file (OpenSim or Motion Analysis; tab or comma separated).

    Markers are returned in mm (``Units`` m/cm converted), NaN where a cell is empty or a row is short
    (ragged rows are padded). Data columns beyond the labelled markers (unlabelled trajectories, e.g.
    a header saying 66 markers with 33 names) are dropped and noted. Fewer rows than ``NumFrames``
    is noted as a truncation.

    Raises
    ------
    ReaderError
        ``empty_file``, ``trc_header`` (not a TRC or header unreadable), ``no_frames``, ``unit_unknown``.
    """
    path = Path(path)
    lines = _text(path)
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise ReaderError("trc_header", f"{path.name} does not start with 'PathFileType': not a TRC file.")
    sep = "\t" if "\t" in lines[0] else ("," if "," in lines[0] else None)
    keys, vals = _split(lines[1], sep), _split(lines[2], sep)
    head = {k: v for k, v in zip(keys, vals) if k}
    try:
        rate = float(head["DataRate"])
        n_frames_hdr = int(float(head.get("NumFrames", "0") or 0))
        n_markers_hdr = int(float(head.get("NumMarkers", "0") or 0))
    except (KeyError, ValueError):
        raise ReaderError("trc_header", f"{path.name}: the TRC header lacks a numeric DataRate/NumFrames/NumMarkers "
                          f"(found {head}).") from None
    rec = Recording(format="trc", point_rate_hz=rate)
    factor, note = length_factor_mm(head.get("Units", ""))
    if note:
        rec.notes.append(note)
    names_row = _split(lines[3], sep)
    labels = [names_row[i] for i in range(2, len(names_row), 3) if names_row[i]]
    n = len(labels)
    if n == 0:
        raise ReaderError("trc_header", f"{path.name}: no marker names on the 4th line.")
    if n_markers_hdr and n_markers_hdr != n:
        rec.notes.append(f"header says {n_markers_hdr} markers, {n} are labelled; only labelled markers are read")
    dup = sorted({lb for lb in labels if labels.count(lb) > 1})
    if dup:
        rec.notes.append(f"duplicate marker labels: {', '.join(dup)}")
    rows, frames, times = [], [], []
    ragged, extra_slots, widths = 0, 0, set()
    width = 2 + 3 * n
    for line in lines[5:]:
        cells = _split(line, sep)
        if not any(cells):
            continue
        try:
            frame = float(cells[0])
        except ValueError:
            continue
        widths.add(len(cells))
        if len(cells) < width:
            ragged += 1
            cells = cells + [""] * (width - len(cells))
        elif any(cells[width:]):
            extra_slots = max(extra_slots, len([c for c in cells[width:] if c]) // 3)
        frames.append(frame)
        times.append(_floats(cells[1:2])[0])
        rows.append(_floats(cells[2:width]))
    if not rows:
        raise ReaderError("no_frames", f"{path.name}: the TRC has a header but no data rows.")
    xyz = np.vstack(rows).reshape(len(rows), n, 3) * factor
    rec.markers_mm = xyz
    rec.marker_labels = labels
    rec.first_frame = int(frames[0]) - 1 if frames[0] >= 1 else int(frames[0])
    if len(widths) > 1:
        rec.notes.append(f"ragged rows: {min(widths)} to {max(widths)} cells per row")
    if ragged:
        rec.notes.append(f"{ragged} rows with fewer cells than {n} markers x 3 padded with NaN")
    if extra_slots:
        rec.notes.append(f"rows carry up to {extra_slots} unlabelled trajectories beyond the {n} labelled markers;"
                         " dropped")
    if n_frames_hdr and len(rows) < n_frames_hdr:
        rec.notes.append(f"truncated: header says {n_frames_hdr} frames, file has {len(rows)}")
    t = np.asarray(times)
    if len(t) > 2 and np.all(np.isfinite(t)):
        dt = float(np.median(np.diff(t)))
        if dt > 0 and abs(1.0 / dt - rate) > 0.01 * rate:
            rec.notes.append(f"Time column steps {dt:g} s ({1 / dt:.6g} Hz) but DataRate is {rate:g} Hz; "
                             "DataRate used")
        if abs(t[0]) > 1e-9:
            rec.notes.append(f"first frame at t = {t[0]:g} s in the file; times are relative to it")
    return rec


# -------------------------------------------------------------------------------------------- MOT
_FORCE = re.compile(r"^(?P<key>.+?)_?v(?P<ax>[xyz])$", re.I)
_POINT = re.compile(r"^(?P<key>.+?)_?p(?P<ax>[xyz])$", re.I)
_TORQUE = re.compile(r"^(?P<key>.*torque.*?)_?(?P<ax>[xyz])$", re.I)


def _grf_groups(columns: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    groups: dict[str, dict[str, dict[str, int]]] = {}
    for j, c in enumerate(columns):
        m = _TORQUE.match(c)
        if m and "force" not in c.lower():
            key = m["key"].lower().replace("torque", "force")
            groups.setdefault(key, {}).setdefault("t", {})[m["ax"].lower()] = j
            continue
        for kind, pat in (("v", _FORCE), ("p", _POINT)):
            m = pat.match(c)
            if m and "force" in m["key"].lower():
                groups.setdefault(m["key"].lower(), {}).setdefault(kind, {})[m["ax"].lower()] = j
    return {k: g for k, g in groups.items() if len(g.get("v", {})) == 3 and len(g.get("p", {})) == 3}


def _osim_to_lab(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """OpenSim (Y up) -> lab (Z up): a rotation of +90 deg about X."""
    return np.vstack([x, -z, y])


def read_mot(path: Path, *, companions: dict | None = None) -> Recording:
    """Read an OpenSim MOT/STO file: ground-reaction forces become force plates, other columns analogs.

    GRF columns are grouped by name (``ground_force4_vx/…_px/ground_torque4_x``, ``1_ground_force_vx``,
    ``r_ground_force_vx`` …); the plate number is the integer in the name (so a file ordered 4,1,2,3 gives
    plates 1-4), else the order of appearance. COP is taken as metres unless values exceed 20 (then mm,
    noted). Other columns are analog channels: with ``inDegrees=yes`` rotational coordinates are in
    ``deg`` and translations (``*_tx/_ty/_tz``, ``*trans*``) in ``m`` (assignment noted).

    Raises
    ------
    ReaderError
        ``empty_file``, ``mot_header`` (no ``endheader`` / no time column), ``no_frames``.
    """
    path = Path(path)
    meta, columns, data, ragged = _mot_table(path, _text(path))
    nc = len(columns)
    t = data[:, 0]
    rec = Recording(format="opensim_mot", software="OpenSim")
    if ragged:
        rec.notes.append(f"{ragged} rows with a cell count different from the {nc} columns (padded with NaN)")
    n_rows_hdr = int(float(meta.get("nrows", meta.get("datarows", "0")) or 0))
    if n_rows_hdr and len(t) < n_rows_hdr:
        rec.notes.append(f"truncated: header says {n_rows_hdr} rows, file has {len(t)}")
    n_cols_hdr = int(float(meta.get("ncolumns", meta.get("datacolumns", "0")) or 0))
    if n_cols_hdr and n_cols_hdr != nc:
        rec.notes.append(f"header says {n_cols_hdr} columns, the column row has {nc}")
    if len(t) < 2:
        raise ReaderError("no_frames", f"{path.name}: fewer than 2 time samples; no rate can be derived.")
    dt = np.diff(t)
    step = float(np.median(dt))
    if step <= 0:
        raise ReaderError("mot_header", f"{path.name}: the time column does not increase.")
    if np.max(np.abs(dt - step)) > 0.1 * step:
        rec.notes.append(f"time column is irregular (steps {dt.min():g}-{dt.max():g} s); rate from the median step")
    rate = round(1.0 / step, 6)
    if abs(t[0]) > 1e-9:
        rec.notes.append(f"time starts at {t[0]:g} s; samples are relative to it")
    used = _mot_plates(rec, columns, data, rate)
    _mot_coordinates(rec, columns, data, rate, used, meta.get("indegrees", "").lower())
    return rec


def _mot_table(path: Path, lines: list[str]) -> tuple[dict, list[str], np.ndarray, int]:
    """Header ``key=value`` pairs (lower-case keys), column names, data rows with a finite time, ragged-row count."""
    end = next((i for i, ln in enumerate(lines[:200]) if ln.strip().strip(",").lower() == "endheader"), None)
    if end is None:
        raise ReaderError("mot_header", f"{path.name}: no 'endheader' line in the first 200 lines: not an OpenSim "
                          "MOT/STO file.")
    meta = {}
    for ln in lines[:end]:
        ln = ln.strip().strip(",").strip()
        if "=" in ln:
            k, v = ln.split("=", 1)
            meta[k.strip().lower()] = v.strip()
    hdr_i = next((i for i in range(end + 1, len(lines)) if lines[i].strip().strip(",")), None)
    if hdr_i is None:
        raise ReaderError("no_frames", f"{path.name}: header but no column names or data.")
    hline = lines[hdr_i]
    sep = "\t" if "\t" in hline else ("," if "," in hline else None)
    columns = [c for c in _split(hline, sep)]
    while columns and not columns[-1]:
        columns.pop()
    if not columns or columns[0].lower() != "time":
        raise ReaderError("mot_header", f"{path.name}: the first column is {columns[:1]}, expected 'time'.")
    nc = len(columns)
    rows, ragged = [], 0
    for ln in lines[hdr_i + 1:]:
        cells = _split(ln, sep)
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        if len(cells) != nc:
            ragged += 1
            cells = (cells + [""] * nc)[:nc]
        rows.append(_floats(cells))
    if not rows:
        raise ReaderError("no_frames", f"{path.name}: no data rows after the column names.")
    data = np.vstack(rows)
    return meta, columns, data[np.isfinite(data[:, 0])], ragged


def _mot_plates(rec: Recording, columns: list[str], data: np.ndarray, rate: float) -> set[int]:
    """Ground-reaction columns -> ``rec.plates`` (lab frame, COP in mm); returns the columns used."""
    used: set[int] = set()
    plates = []
    for order, (key, g) in enumerate(_grf_groups(columns).items()):
        digits = re.findall(r"\d+", key)
        plate = int(digits[-1]) if digits else order + 1
        v, p = g["v"], g["p"]
        used.update(v.values())
        used.update(p.values())
        force = _osim_to_lab(data[:, v["x"]], data[:, v["y"]], data[:, v["z"]])
        cop = _osim_to_lab(data[:, p["x"]], data[:, p["y"]], data[:, p["z"]])
        cop_scale = 1000.0
        if np.nanmax(np.abs(cop)) > 20.0:
            cop_scale = 1.0
            rec.notes.append(f"{key}: COP values exceed 20, taken as mm instead of OpenSim metres")
        free = np.zeros(len(data))
        tq = g.get("t", {})
        if len(tq) == 3:
            used.update(tq.values())
            free = -_osim_to_lab(data[:, tq["x"]], data[:, tq["y"]], data[:, tq["z"]])[2] * 1000.0
        else:
            rec.notes.append(f"{key}: no torque columns; free moment set to 0")
        plates.append(ForcePlate(plate=plate, plate_type=None, rate_hz=rate, force_n=force,
                                 cop_mm=cop * cop_scale, free_moment_nmm=free))
    if plates:
        order = [pl.plate for pl in plates]
        if len(set(order)) != len(order):
            for i, pl in enumerate(plates):
                pl.plate = i + 1
            rec.notes.append("plate numbers in column names repeat; plates numbered by column order")
        elif order != sorted(order):
            rec.notes.append(f"GRF columns ordered as plates {','.join(map(str, order))}; sorted by plate number")
        rec.plates = sorted(plates, key=lambda pl: pl.plate)
        rec.frame_known = "+Z"  # rotated here: the lab-frame step must not rotate it again
        rec.notes.append("GRF converted from OpenSim Y-up to lab Z-up (lab = x, -z, y); COP in mm; free moment = "
                         "minus the vertical torque on the body, in N.mm (the C3D/ezc3d sign)")
    return used


def _mot_coordinates(rec: Recording, columns: list[str], data: np.ndarray, rate: float, used: set[int],
                     in_deg: str) -> None:
    """Every other column -> an analog "coordinate" channel (deg/rad by ``inDegrees``, translations in m)."""
    trans = re.compile(r"(_t[xyz]$|trans)", re.I)
    others = [j for j in range(1, len(columns)) if j not in used]
    if not others:
        return
    rot_unit = {"yes": "deg", "no": "rad"}.get(in_deg, "")
    n_m = 0
    for j in others:
        unit = "m" if trans.search(columns[j]) else rot_unit
        n_m += unit == "m"
        rec.analogs.append(AnalogChannel(label=columns[j], unit=unit, rate_hz=rate,
                                         data=data[:, j].astype(np.float64), description="coordinate"))
    if rot_unit:
        rec.notes.append(f"units from OpenSim naming: {n_m} translation columns (_tx/_ty/_tz, *trans*) in m, "
                         f"{len(others) - n_m} in {rot_unit} (inDegrees={in_deg})")
    else:
        rec.notes.append("inDegrees not stated: rotational coordinate units left empty")
    rec.analog_rate_hz = rate
