"""C3D reader (ezc3d): analogs with scale/offset applied, force plates, events, markers."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from schemas import vocab
from warehouse.ingest import warm_process
from warehouse.ingest.readers.base import (
    AnalogChannel,
    Event,
    ForcePlate,
    ReaderError,
    Recording,
)

log = logging.getLogger(__name__)

_PROCESSORS = {84: "intel", 85: "dec", 86: "sgi"}
#: Marker length units -> factor to mm (anything else is flagged, never assumed silently).
POINT_UNIT_TO_MM = {"mm": 1.0, "millimeters": 1.0, "millimetres": 1.0, "m": 1000.0, "meters": 1000.0,
                    "metres": 1000.0, "cm": 10.0, "": 1.0}


def processor_type(path: Path) -> str | None:
    """Processor (intel/dec/sgi) from the parameter-section header, or None."""
    with open(path, "rb") as fh:
        head = fh.read(512)
        if len(head) < 2:
            return None
        block = head[0]
        fh.seek((block - 1) * 512)
        p = fh.read(4)
    return _PROCESSORS.get(p[3]) if len(p) == 4 else None


def _param(params: dict, group: str, name: str, default=None):
    try:
        return params[group][name]["value"]
    except KeyError:
        return default


#: ezc3d is C++: a malformed file can crash (SIGSEGV) or stall it. Files are read in a child
#: process (forkserver) so a bad file costs a quarantine record, never the night. The child stays
#: warm (one per thread of the night, reading file after file: no process start per file); it is
#: replaced after a crash, a stall, any refusal, or ``READER_FILES_PER_PROCESS`` files.
C3D_READ_TIMEOUT_S = 120.0
READER_FILES_PER_PROCESS = 200
_WARM = threading.local()  # this thread's reader: .proc, .conn, .memory_bytes, .files
#: Largest peak resident memory (kB) a reader child reported in this process (bench/hostile_inbox.py).
reader_peak_rss_kb = 0


def _read_reply(path: str, memory_bytes: int | None) -> tuple:
    """Read in the isolated process: ``(kind, payload, peak RSS in kB)``."""
    import resource

    too_big = ("c3d_reader_memory", f"Reading the file needs more than {(memory_bytes or 0) / 2**20:,.0f} MB "
               "(MYOMAP_READER_MEMORY_BYTES): its parameters declare more data than a recording of this size "
               "holds, or it is very long. Re-export or split it.")
    try:
        msg = ("ok", _read_c3d_here(Path(path)))
    except ReaderError as exc:
        msg = ("reader_error", too_big if memory_bytes and "bad_alloc" in exc.message else
               (exc.reason_code, exc.message))
    except MemoryError:
        msg = ("reader_error", too_big)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as text
        text = f"{type(exc).__name__}: {exc}"
        msg = ("reader_error", too_big) if memory_bytes and "bad_alloc" in text else ("error", text)
    return (*msg, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _serve(conn, memory_bytes: int | None = None) -> None:
    """The warm reader process: one path in, one reply out, until the parent closes the pipe."""
    import resource

    if memory_bytes:  # ezc3d allocates what the parameters declare: cap it, fail instead of swapping
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_read_reply(path, memory_bytes))


def _reader(memory_bytes: int | None):
    """This thread's warm reader process (started on first use or after it was retired)."""
    w = _WARM
    if getattr(w, "proc", None) is not None and (w.memory_bytes != memory_bytes or not warm_process.usable(w)
                                                 or w.files >= READER_FILES_PER_PROCESS):
        _retire()
    if getattr(w, "proc", None) is None:
        warm_process.start(w, _serve, memory_bytes)
        w.memory_bytes, w.files = memory_bytes, 0
    w.files += 1
    return w


def _retire(kill: bool = False) -> None:
    """Stop this thread's reader process (killed when it may be stuck)."""
    warm_process.retire(_WARM, kill)


def read_c3d(path: Path, *, companions: dict | None = None, isolate: bool = True,
             memory_bytes: int | None = None) -> Recording:
    """Read a C3D file with ezc3d (in the isolated warm reader process unless ``isolate=False``).

    ``memory_bytes`` caps the reader process's address space (``RLIMIT_AS``).

    Raises
    ------
    ReaderError
        ``empty_file``, ``c3d_unsupported_processor``, ``c3d_unreadable``, ``no_frames``,
        ``c3d_reader_crashed`` (ezc3d died on the file), ``c3d_reader_memory`` or ``c3d_reader_timeout``.
    """
    if not isolate:
        return _read_c3d_here(Path(path))
    w = _reader(memory_bytes)
    try:
        w.conn.send(str(path))
        if not w.conn.poll(C3D_READ_TIMEOUT_S):
            _retire(kill=True)
            raise ReaderError("c3d_reader_timeout", f"ezc3d did not finish reading the file in "
                              f"{C3D_READ_TIMEOUT_S:.0f} s: it is probably malformed; re-export it.")
        kind, payload, rss_kb = w.conn.recv()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        proc = w.proc
        _retire()
        raise ReaderError("c3d_reader_crashed", f"ezc3d crashed reading the file (exit code {proc.exitcode}): "
                          "its structure is malformed; re-export it from the acquisition software.") from None
    global reader_peak_rss_kb
    reader_peak_rss_kb = max(reader_peak_rss_kb, rss_kb)
    if kind != "ok":
        _retire()  # a refused or failed read may leave ezc3d's state (or the address space) damaged
    if kind == "ok":
        return payload
    if kind == "reader_error":
        raise ReaderError(*payload)
    raise ReaderError("c3d_unreadable", f"The C3D reader failed ({payload[:200]}).")


def _read_c3d_here(path: Path) -> Recording:
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReaderError("empty_file", "The file is empty (0 bytes): re-export it from the acquisition software.")
    proc = processor_type(path)
    c = _open_ezc3d(path, proc)
    params, header, data = c["parameters"], c["header"], c["data"]
    analogs = np.asarray(data["analogs"])
    n_analog = analogs.shape[2] if analogs.ndim == 3 else 0
    points = np.asarray(data["points"])
    if (points.size == 0 or points.shape[-1] == 0) and n_analog == 0:
        raise ReaderError("no_frames", "The C3D file holds no frames (no marker or analog data); "
                          "the export is incomplete or the parameter section is missing.")
    if "POINT" not in params or _param(params, "POINT", "RATE") is None:
        raise ReaderError("c3d_no_parameters", "The C3D parameter section lacks POINT:RATE; cannot time the data.")
    point_rate = float(np.ravel(_param(params, "POINT", "RATE", [0]))[0] or 0) or None
    analog_rate = float(np.ravel(_param(params, "ANALOG", "RATE", [0]))[0] or 0) or None
    first_frame = int(header["points"]["first_frame"])
    rec = Recording(format="c3d", processor=proc, point_rate_hz=point_rate,
                    analog_rate_hz=analog_rate, first_frame=first_frame)
    man = params.get("MANUFACTURER", {})
    rec.vendor = (man.get("COMPANY", {}).get("value") or [None])[0]
    sw = (man.get("SOFTWARE", {}).get("value") or [None])[0]
    ver = (man.get("VERSION_LABEL", {}).get("value") or [None])[0]
    rec.software = " ".join(x for x in (sw, ver) if x) or None
    if n_analog and analog_rate:
        _c3d_analogs(rec, params, analogs, analog_rate)
    _c3d_plates(rec, params, _platforms(c), analog_rate)
    _c3d_events(rec, params, first_frame, point_rate)
    if points.ndim == 3 and points.shape[1]:
        _c3d_markers(rec, params, data, points)
    return rec


def _open_ezc3d(path: Path, proc: str | None):
    """The file parsed by ezc3d (force plates: :func:`_platforms`)."""
    import ezc3d  # lazy: heavy import

    try:
        return ezc3d.c3d(str(path))
    except Exception as exc:  # ezc3d raises plain RuntimeError/ValueError
        if proc == "sgi":
            raise ReaderError("c3d_unsupported_processor",
                              "SGI/MIPS C3D files are not readable by ezc3d; re-export as Intel C3D.") from exc
        raise ReaderError("c3d_unreadable", f"ezc3d could not parse the file ({str(exc)[:200]}); "
                          "check that it is a complete C3D export.") from exc


def adc_ranges(n: int, *, bits, scale, offset, gen_scale, fmt) -> list[tuple[float, float] | None]:
    """Per-channel ADC rails in the stored (scaled) unit from ANALOG:BITS, SCALE, OFFSET, GEN_SCALE
    and FORMAT; all None when BITS is not declared (the range is then unknown, never guessed)."""
    from transforms.qc_trial import adc_rails

    bits_v = np.ravel(bits if bits is not None else [])
    if not bits_v.size or not 1 <= int(bits_v[0]) <= 32:
        return [None] * n
    scale_v, offset_v = np.ravel(scale if scale is not None else []), np.ravel(offset if offset is not None else [])
    gen = float(np.ravel(gen_scale)[0]) if gen_scale is not None and np.size(gen_scale) else 1.0
    signed = str((list(fmt) or ["SIGNED"])[0] if fmt is not None and len(fmt) else "SIGNED").strip().upper() != "UNSIGNED"
    out = []
    for i in range(n):
        try:
            out.append(adc_rails(bits=int(bits_v[0]), scale=float(scale_v[i]) if i < scale_v.size else 1.0,
                                 offset=float(offset_v[i]) if i < offset_v.size else 0.0, gen_scale=gen,
                                 signed=signed))
        except ValueError:  # a zero scale: no usable rails for that channel
            out.append(None)
    return out


def _c3d_analogs(rec: Recording, params: dict, analogs: np.ndarray, analog_rate: float) -> None:
    labels = list(_param(params, "ANALOG", "LABELS", []) or [])
    units = list(_param(params, "ANALOG", "UNITS", []) or [])
    descs = list(_param(params, "ANALOG", "DESCRIPTIONS", []) or [])
    rails = adc_ranges(analogs.shape[1], bits=_param(params, "ANALOG", "BITS"),
                       scale=_param(params, "ANALOG", "SCALE"), offset=_param(params, "ANALOG", "OFFSET"),
                       gen_scale=_param(params, "ANALOG", "GEN_SCALE"), fmt=_param(params, "ANALOG", "FORMAT"))
    for i in range(analogs.shape[1]):
        rec.analogs.append(AnalogChannel(
            label=labels[i] if i < len(labels) else f"analog_{i + 1}",
            unit=units[i] if i < len(units) else "",
            rate_hz=analog_rate, data=analogs[0, i].astype(np.float64),
            description=descs[i] if i < len(descs) else "", adc_range=rails[i]))


def _platforms(c) -> list[dict]:
    """ezc3d's force plates of the file (:mod:`c3d_plates`), or none when ezc3d cannot extract them (its
    force-plate module is stricter than plain reading: unsupported types, a malformed FORCE_PLATFORM group)."""
    from warehouse.ingest.readers import c3d_plates

    try:
        return c3d_plates.platforms(c)
    except Exception as exc:  # noqa: BLE001 - the file is read without plates, as ezc3d's extraction would
        log.info("force plates not extracted: %s", str(exc)[:200])
        return []


def _c3d_plates(rec: Recording, params: dict, platforms: list[dict], analog_rate: float | None) -> None:
    fp = params.get("FORCE_PLATFORM", {})
    ch = np.asarray(fp.get("CHANNEL", {}).get("value", []))
    if ch.size:
        rec.plate_channel_indices = {int(v) - 1 for v in ch.ravel() if int(v) > 0}
    types = np.ravel(fp.get("TYPE", {}).get("value", []))
    for k, plat in enumerate(platforms):
        force = np.asarray(plat["force"], dtype=np.float64)
        if force.size == 0:
            continue
        cop = np.asarray(plat["center_of_pressure"], dtype=np.float64)
        tz = np.asarray(plat["Tz"], dtype=np.float64)
        rec.plates.append(ForcePlate(
            plate=k + 1, plate_type=int(types[k]) if k < len(types) else None,
            rate_hz=analog_rate or 0.0, force_n=force, cop_mm=cop,
            free_moment_nmm=tz[2] if tz.ndim == 2 else tz, torque_nmm=tz if tz.ndim == 2 else None,
            corners_mm=np.asarray(plat.get("corners"), dtype=np.float64) if plat.get("corners") is not None else None))


def _c3d_events(rec: Recording, params: dict, first_frame: int, point_rate: float | None) -> None:
    """Foot strikes/offs; EVENT:TIMES is 2 x N (minutes, seconds) or stored flat; times are absolute."""
    ev = params.get("EVENT", {})
    if not ev:
        return
    times = np.asarray(ev.get("TIMES", {}).get("value", []), dtype=np.float64)
    ev_labels = list(ev.get("LABELS", {}).get("value", []) or [])
    contexts = list(ev.get("CONTEXTS", {}).get("value", []) or [])
    n = len(ev_labels)
    if times.ndim == 2 and times.shape[0] == 2:
        secs = times[0] * 60.0 + times[1]
    elif times.size == 2 * n and n:
        secs = times.reshape(n, 2)[:, 0] * 60.0 + times.reshape(n, 2)[:, 1]
        rec.notes.append("EVENT:TIMES stored flat; read as (minutes, seconds) pairs")
    else:
        secs = times.ravel()
    t0 = (first_frame / point_rate) if point_rate else 0.0
    add_events(rec, ev_labels, contexts, secs, t0)


def add_events(rec: Recording, labels, contexts, secs, t0: float) -> None:
    """Annotated foot strikes / offs from EVENT labels and contexts (side from the context, else from the
    label: ``RHS``, ``L_FS``, ``Left Foot Strike``...; ``U`` when neither names it), times made
    file-relative by subtracting ``t0``."""
    contexts = list(contexts) if contexts is not None else []
    for i in range(min(len(labels), len(secs))):
        parsed = vocab.parse_gait_event(str(labels[i]), str(contexts[i]) if i < len(contexts) else None)
        if parsed and np.isfinite(secs[i]):
            rec.events.append(Event(parsed[0], parsed[1], round(float(secs[i]) - t0, 6), "annotated"))
    unsided = sum(e.side == "U" for e in rec.events)
    if unsided:
        rec.notes.append(f"{unsided} gait events name no side (context and label): kept with side U")
    rec.events.sort(key=lambda e: e.time_s)


def _c3d_markers(rec: Recording, params: dict, data: dict, points: np.ndarray) -> None:
    """Markers as frames x markers x 3 in mm, NaN for gaps (residual < 0)."""
    xyz = np.transpose(points[:3], (2, 1, 0)).astype(np.float64)
    res = data.get("meta_points", {}).get("residuals")
    if res is not None:
        res = np.asarray(res)
        if res.ndim == 3:
            xyz[np.transpose(res[0], (1, 0)) < 0] = np.nan
    unit = str((_param(params, "POINT", "UNITS", ["mm"]) or ["mm"])[0]).strip().lower()
    factor = POINT_UNIT_TO_MM.get(unit)
    if factor is None and unit and "meters".startswith(unit) and len(unit) >= 3:
        factor = 1000.0  # truncated "meters" (e.g. Peak Performance writes "mete")
        rec.notes.append(f"POINT:UNITS '{unit}' is a truncated 'meters': markers converted to mm")
    if factor is None:
        rec.notes.append(f"POINT:UNITS '{unit}' is not a length unit myomap knows: markers assumed in mm")
        rec.findings.append(("point_unit_unknown", "warn", f"POINT:UNITS '{unit}' is unknown; marker "
                             "coordinates were assumed to be in mm. Check and re-export."))
        factor = 1.0
    rec.markers_mm = xyz * factor
    rec.marker_labels = list(_param(params, "POINT", "LABELS", []) or [])[: points.shape[1]]
