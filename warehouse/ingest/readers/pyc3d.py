"""Fallback C3D reader through py-c3d, for files ezc3d rejects (SGI/MIPS processor, float ANALOG:OFFSET...).

Gives the same common form as :func:`warehouse.ingest.readers.c3d.read_c3d`: analog channels with
``(raw - OFFSET) x SCALE x GEN_SCALE`` applied, markers (NaN where the residual is negative, converted to
mm from ``POINT:UNITS``), force plates of type 2 and 4 computed with ezc3d's conventions (plate axes from
``CORNERS``, moments moved by ``ORIGIN``, forces in the lab frame), and gait events. Parameter values
are decoded with the type actually stored in the file (a float ``ANALOG:OFFSET`` is read as float, not
as int16 pairs). When py-c3d cannot open a file, the parameter section is walked to name the fault.
"""
from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

from warehouse.ingest.readers.base import (
    AnalogChannel,
    ForcePlate,
    ReaderError,
    Recording,
)
from warehouse.ingest.readers.c3d import add_events, adc_ranges
from warehouse.ingest.readers.opensim import length_factor_mm

_PROC = {84: "intel", 85: "dec", 86: "sgi"}
#: Truncated force units written by old systems -> unit, resolved only when unambiguous.
_UNIT_FIX = {"nt": "N", "ntmm": "Nmm", "nmm": "Nmm", "newton": "N", "newtons": "N"}


#: The parameter section starts at block <= 255 and spans <= 255 blocks of 512 bytes.
_PARAMETER_SPAN = (255 + 255) * 512


def check_parameter_section(path: Path) -> str | None:
    """Walk the parameter records; a sentence naming the first structural fault, or None."""
    try:
        with open(path, "rb") as fh:  # the header and the parameter section, never the samples
            head = fh.read(_PARAMETER_SPAN)
        return _walk_parameters(head)
    except (struct.error, IndexError, UnicodeDecodeError):
        return "the parameter section is truncated"


def _walk_parameters(b: bytes) -> str | None:
    if len(b) < 512 or b[1] != 0x50:
        return "byte 2 of the header is not the C3D key 0x50"
    start = (b[0] - 1) * 512
    if b[0] < 2 or start + 4 > len(b):
        return f"the header points the parameter section at block {b[0]}, outside the file"
    nblocks, proc = b[start + 2], b[start + 3]
    if proc not in _PROC:
        return f"processor type {proc} is not 84 (Intel), 85 (DEC) or 86 (SGI/MIPS)"
    end = min(start + max(nblocks, 1) * 512, len(b))
    order = ">" if proc == 86 else "<"
    p, k = start + 4, 0
    while p + 2 <= end:
        nl = struct.unpack("b", b[p:p + 1])[0]
        if nl == 0:
            return None
        name = b[p + 2:p + 2 + abs(nl)]
        # vendors write names with spaces ("Marker Diameter"): any printable ASCII is accepted
        if not name or not all(32 <= c <= 126 for c in name) or name[:1] == b" ":
            return (f"parameter record {k + 1} has a name of {abs(nl)} bytes that are not printable text "
                    f"({name[:12]!r}): the parameter section is corrupt")
        off = struct.unpack(order + "h", b[p + 2 + abs(nl):p + 4 + abs(nl)])[0]
        if off == 0:
            return None
        if off < 0:
            return f"parameter record {k + 1} ({name.decode()}) has a negative next-record offset {off}"
        if p + 2 + abs(nl) + off > end and end == start + max(nblocks, 1) * 512:
            return (f"parameter record {k + 1} ({name.decode(errors='replace')}) runs past the end of the "
                    f"{nblocks}-block parameter section declared in its header")
        p += 2 + abs(nl) + off
        k += 1
    return None


def _pvalue(reader, key: str):
    """Parameter value decoded with the stored element type; None when absent."""
    p = reader.get(key)
    if p is None or 0 in list(p.dimensions):
        return None
    if p.bytes_per_element == -1:
        arr = p.string_array if p.dimensions else np.array([p.string_value])
        return np.asarray([s.strip() for s in np.ravel(arr)])
    if p.bytes_per_element == 4:
        return p.float_array if p.dimensions else np.array([p.float_value])
    if p.bytes_per_element == 2:
        return p.int16_array if p.dimensions else np.array([p.int16_value])
    if p.bytes_per_element == 1:
        return p.int8_array if p.dimensions else np.array([p.int8_value])
    return None


def _open(path: Path, handle):
    import c3d

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            reader = c3d.Reader(handle)
        except AssertionError as exc:
            fault = check_parameter_section(path)
            if fault:
                raise ReaderError("c3d_bad_parameter_section", f"{path.name}: {fault}; no reader can trust it. "
                                  "Re-export the trial.") from exc
            raise ReaderError("c3d_header_parameter_conflict", f"{path.name}: header and parameter section "
                              f"disagree ({exc}); the file was written incorrectly - re-export it.") from exc
        except Exception as exc:
            fault = check_parameter_section(path)
            code = "c3d_bad_parameter_section" if fault else "c3d_unreadable"
            detail = fault or f"py-c3d: {str(exc)[:160]}"
            raise ReaderError(code, f"{path.name}: {detail}; re-export the trial.") from exc
    return reader, [str(w.message).split("\n")[0].strip() for w in caught]


def read_c3d_pyc3d(path: Path, *, companions: dict | None = None) -> Recording:
    """Read a C3D file with py-c3d (fallback for SGI/MIPS and other files ezc3d rejects).

    Raises
    ------
    ReaderError
        ``empty_file``, ``c3d_bad_parameter_section`` (structural fault found in the parameter
        records), ``c3d_header_parameter_conflict`` (header and parameters disagree, e.g. the point
        scale), ``c3d_unreadable``, ``no_frames``, ``unit_unknown``.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReaderError("empty_file", "The file is empty (0 bytes): re-export it from the acquisition software.")
    reader, frames, msgs = _read_frames(path)
    if not frames:
        raise ReaderError("no_frames", f"{path.name}: the C3D file holds no frames.")
    proc = _PROC.get(reader.proc_type if isinstance(reader.proc_type, int) else 0)
    proc = proc or {"INTEL": "intel", "DEC": "dec", "MIPS": "sgi"}.get(str(reader.proc_type).upper())
    point_rate = float(reader.point_rate)
    n_per = int(reader.analog_per_frame)
    rec = Recording(format="c3d", processor=proc, point_rate_hz=point_rate,
                    analog_rate_hz=point_rate * n_per if reader.analog_used else None,
                    first_frame=int(reader.first_frame) - 1)
    rec.notes.append("read with py-c3d (fallback reader)")
    expected = int(reader.last_frame) - int(reader.first_frame) + 1
    if len(frames) < expected:
        rec.notes.append(f"truncated: header declares {expected} frames, the file holds {len(frames)}")
    for m in dict.fromkeys(msgs):
        if m and "reached end of file" not in m:
            rec.notes.append(f"py-c3d: {m}")
    man = {}
    for key in ("COMPANY", "SOFTWARE", "VERSION_LABEL"):
        v = _pvalue(reader, f"MANUFACTURER:{key}")
        man[key] = str(v[0]) if v is not None and len(v) and v[0] else None
    rec.vendor = man["COMPANY"]
    rec.software = " ".join(x for x in (man["SOFTWARE"], man["VERSION_LABEL"]) if x) or None
    if reader.analog_used and reader.get("ANALOG") is None:
        rec.notes.append("py-c3d found no ANALOG group (the parameter section overruns its declared block count): "
                         "analog labels, SCALE and OFFSET unavailable, values are raw")
    if reader.analog_used:
        _analogs(rec, reader, frames)
    if reader.point_used:
        _markers(rec, reader, frames)
    _plates(rec, reader)
    _events(rec, reader)
    return rec


def _read_frames(path: Path) -> tuple:
    """(reader, frames, messages): every frame, analogs left unscaled (see :func:`_analogs`)."""
    with open(path, "rb") as handle:
        reader, msgs = _open(path, handle)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # py-c3d always applies SCALE/OFFSET (reading OFFSET as int16 even when stored as float):
            # give it an identity transform and apply the parameters decoded with their stored type.
            identity = (np.ones((reader.analog_used, reader.analog_per_frame)),
                        np.zeros((reader.analog_used, reader.analog_per_frame)))
            reader.get_analog_transform = lambda: identity
            try:
                frames = list(reader.read_frames(copy=True))
            except Exception as exc:
                raise ReaderError("c3d_unreadable", f"{path.name}: data section unreadable ({str(exc)[:160]}); "
                                  "re-export the trial.") from exc
        msgs += [" ".join(str(w.message).split()) for w in caught]
    return reader, frames, msgs


def _analogs(rec: Recording, reader, frames: list) -> None:
    """Analog channels scaled with ANALOG:SCALE, GEN_SCALE and OFFSET decoded with their stored type."""
    raw = np.concatenate([np.asarray(a, dtype=np.float64) for _, _, a in frames], axis=1)
    n = raw.shape[0]
    scale = np.ones(n)
    s = _pvalue(reader, "ANALOG:SCALE")
    if s is not None:
        s = np.ravel(s).astype(float)[:n]
        scale[:len(s)] = s
    gen = _pvalue(reader, "ANALOG:GEN_SCALE")
    gen = float(np.ravel(gen)[0]) if gen is not None else 1.0
    offset = np.zeros(n)
    op = reader.get("ANALOG:OFFSET")
    o = _pvalue(reader, "ANALOG:OFFSET")
    if o is not None:
        o = np.ravel(o).astype(float)[:n]
        if reader.analog_format_unsigned and op.bytes_per_element == 2:
            o = np.ravel(op.uint16_array).astype(float)[:n]
        offset[:len(o)] = o
        if op.bytes_per_element == 4:
            rec.notes.append("ANALOG:OFFSET is stored as float (non-standard); read as float")
    values = (raw - offset[:, None]) * (scale * gen)[:, None]
    rails = adc_ranges(n, bits=_pvalue(reader, "ANALOG:BITS"), scale=scale, offset=offset, gen_scale=[gen],
                       fmt=["UNSIGNED" if reader.analog_format_unsigned else "SIGNED"])
    labels = _pvalue(reader, "ANALOG:LABELS")
    units = _pvalue(reader, "ANALOG:UNITS")
    descs = _pvalue(reader, "ANALOG:DESCRIPTIONS")
    if labels is None:
        rec.notes.append("ANALOG:LABELS missing; channels named analog_1..")
    fixed = set()
    for i in range(n):
        unit = str(units[i]) if units is not None and i < len(units) else ""
        if unit.lower() in _UNIT_FIX:
            fixed.add(f"{unit!r} -> {_UNIT_FIX[unit.lower()]!r}")
            unit = _UNIT_FIX[unit.lower()]
        rec.analogs.append(AnalogChannel(
            label=str(labels[i]) if labels is not None and i < len(labels) and labels[i] else f"analog_{i + 1}",
            unit=unit, rate_hz=rec.analog_rate_hz or 0.0, data=values[i],
            description=str(descs[i]) if descs is not None and i < len(descs) else "", adc_range=rails[i]))
    if fixed:
        rec.notes.append("truncated analog units resolved: " + ", ".join(sorted(fixed)))
    if descs is not None and len(descs) > n:
        extra = [d for d in descs[n:] if d]
        if extra:
            rec.notes.append(f"ANALOG:DESCRIPTIONS has {len(descs)} entries for {n} recorded channels; unused: "
                             + ", ".join(extra))


def _markers(rec: Recording, reader, frames: list) -> None:
    """Markers in mm (POINT:UNITS), NaN where the residual is negative."""
    pts = np.stack([np.asarray(p, dtype=np.float64) for _, p, _ in frames])
    xyz = pts[:, :, :3].copy()
    xyz[pts[:, :, 3] < 0] = np.nan
    unit = _pvalue(reader, "POINT:UNITS")
    unit = str(unit[0]) if unit is not None and len(unit) else ""
    if unit:
        factor, note = length_factor_mm(unit)
        if note:
            rec.notes.append(f"POINT:UNITS: {note}")
    else:
        factor = 1.0
        rec.notes.append("POINT:UNITS missing; markers taken as mm")
    rec.markers_mm = xyz * factor
    labels = _pvalue(reader, "POINT:LABELS")
    rec.marker_labels = [str(x) for x in (labels if labels is not None else [])][:xyz.shape[1]]


def _plates(rec: Recording, reader) -> None:
    used = _pvalue(reader, "FORCE_PLATFORM:USED")
    types = _pvalue(reader, "FORCE_PLATFORM:TYPE")
    chans = _pvalue(reader, "FORCE_PLATFORM:CHANNEL")
    if used is None or types is None or chans is None or not rec.analogs:
        return
    n_used = int(np.ravel(used)[0])
    chans = np.asarray(chans).reshape(-1, np.asarray(chans).shape[-1])
    corners = _pvalue(reader, "FORCE_PLATFORM:CORNERS")
    origin = _pvalue(reader, "FORCE_PLATFORM:ORIGIN")
    cal = _pvalue(reader, "FORCE_PLATFORM:CAL_MATRIX")
    rec.plate_channel_indices = {int(v) - 1 for v in chans[:n_used].ravel() if int(v) > 0}
    for k in range(n_used):
        ptype = int(np.ravel(types)[k])
        idx = [int(v) - 1 for v in chans[k][:6]]
        if ptype not in (2, 4) or min(idx) < 0 or max(idx) >= len(rec.analogs):
            rec.notes.append(f"force plate {k + 1}: type {ptype} not computed by the fallback reader")
            continue
        loads = np.vstack([rec.analogs[i].data for i in idx])
        if ptype == 4:
            if cal is None:
                rec.notes.append(f"force plate {k + 1}: type 4 without CAL_MATRIX; skipped")
                continue
            loads = np.asarray(cal, dtype=float).reshape(-1, 6, 6)[k].T @ loads
        c = np.asarray(corners, dtype=float).reshape(-1, 4, 3)[k]
        ax = c[0] - c[1]
        ay = c[0] - c[3]
        az = np.cross(ax, ay)
        ay = np.cross(az, ax)
        rot = np.column_stack([v / np.linalg.norm(v) for v in (ax, ay, az)])
        o = np.asarray(origin, dtype=float).reshape(-1, 3)[k]
        f, m = loads[:3], loads[3:]
        ms = m - np.cross(o, f.T).T
        with np.errstate(divide="ignore", invalid="ignore"):
            x, y = -ms[1] / f[2], ms[0] / f[2]
        tz = ms[2] - x * f[1] + y * f[0]
        cop = rot @ np.vstack([x, y, np.zeros_like(x)]) + c.mean(axis=0)[:, None]
        rec.plates.append(ForcePlate(plate=k + 1, plate_type=ptype, rate_hz=rec.analog_rate_hz or 0.0,
                                     force_n=rot @ f, cop_mm=cop, free_moment_nmm=rot[2, 2] * tz,
                                     torque_nmm=rot[:, 2:3] * tz[None, :], corners_mm=c.T.copy()))


def _events(rec: Recording, reader) -> None:
    times = _pvalue(reader, "EVENT:TIMES")
    labels = _pvalue(reader, "EVENT:LABELS")
    contexts = _pvalue(reader, "EVENT:CONTEXTS")
    if times is None or labels is None:
        return
    n = len(labels)
    t = np.asarray(times, dtype=float)
    if t.ndim == 2 and t.shape[1] == 2:
        secs = t[:, 0] * 60.0 + t[:, 1]
    elif t.size == 2 * n:
        secs = t.reshape(n, 2)[:, 0] * 60.0 + t.reshape(n, 2)[:, 1]
    else:
        secs = t.ravel()
    t0 = (rec.first_frame or 0) / rec.point_rate_hz if rec.point_rate_hz else 0.0
    add_events(rec, labels, contexts, secs, t0)
