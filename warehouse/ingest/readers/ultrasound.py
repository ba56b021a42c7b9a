"""Ultrasound: UltraTrack fascicle tracking (.mat), Spike2 MATLAB exports (.mat v5 or v7.3) and
plain measurement CSV files.

UltraTrack (MATLAB 5) holds ``Fdat.Region[k].{FL, PEN, Time}`` (fascicle length in mm, pennation in
radians, time on the ultrasound clock) and ``TrackingData.{start_frame, NumFrames, res}``. With a Spike2
companion (role ``"spike2"``) recorded alongside, frame ``start_frame + k`` is placed at the time of the
matching ultrasound frame trigger (the event channel titled ``US``/``Ultrasound``/``trigger``), relative
to the first sample of the EMG channel, and the Spike2 waveforms are returned as analog channels.

Spike2 "Export As MATLAB" channels are structs: waveforms ``{title, units, interval, scale, offset,
start, length, values}`` (``values`` already physical), events ``{title, times, length}``, markers
``{title, times, codes}``. Each channel has its own ``start``; channels are aligned on the EMG channel
(whole-sample shifts padded with NaN / trimmed; offsets below one sample are kept and noted).

Measurement CSV layout (comma, semicolon or tab separated, one row per measurement site / repeat):

======================================  ===========  ==============================================
column                                  required     meaning
======================================  ===========  ==============================================
``subject``                             optional     subject id (one subject per file)
``muscle``                              yes          muscle name as written by the site
``side``                                optional     L / R / left / right
``condition``                           optional     e.g. rest, fatigued, 30deg_flexion
``muscle_thickness_mm`` (or ``_cm``)    one metric   muscle thickness (cm converted to mm)
``shear_wave_speed_m_per_s``            one metric   shear-wave speed
``shear_modulus_kpa``                   one metric   shear modulus (checked against rho c^2)
``fascicle_length_mm``                  one metric   fascicle length
``pennation_deg``                       one metric   pennation angle in degrees
``cross_sectional_area_cm2``            one metric   anatomical cross-sectional area
``echo_intensity_au``                   one metric   echo intensity (arbitrary units)
======================================  ===========  ==============================================

At least one metric column is required; empty cells are skipped; other columns are ignored (noted).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from warehouse.ingest.readers.base import (
    AnalogChannel,
    Measurement,
    ReaderError,
    Recording,
    UltrasoundSeries,
)

#: CSV metric columns -> (metric, unit, factor to that unit).
METRIC_COLUMNS = {
    "muscle_thickness_mm": ("muscle_thickness_mm", "mm", 1.0),
    "muscle_thickness_cm": ("muscle_thickness_mm", "mm", 10.0),
    "shear_wave_speed_m_per_s": ("shear_wave_speed_m_per_s", "m/s", 1.0),
    "shear_modulus_kpa": ("shear_modulus_kpa", "kPa", 1.0),
    "fascicle_length_mm": ("fascicle_length_mm", "mm", 1.0),
    "pennation_deg": ("pennation_deg", "deg", 1.0),
    "cross_sectional_area_cm2": ("cross_sectional_area_cm2", "cm2", 1.0),
    "echo_intensity_au": ("echo_intensity_au", "a.u.", 1.0),
}
_SIDES = {"l": "L", "left": "L", "r": "R", "right": "R"}
_TRIGGER_TITLES = ("us", "ultrasound", "us_trigger", "trigger", "frames", "frame")
MUSCLE_DENSITY_KG_M3 = 1000.0


# ------------------------------------------------------------------------------------ MAT loading
def _h5_value(f, obj):
    import h5py

    if isinstance(obj, h5py.Group):
        return {k: _h5_value(f, obj[k]) for k in obj.keys() if not k.startswith("#")}
    cls = obj.attrs.get("MATLAB_class", b"")
    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
    if obj.attrs.get("MATLAB_empty", 0):
        return "" if cls == "char" else np.zeros(0)
    val = obj[()]
    if cls == "char":
        return "".join(chr(c) for c in np.asarray(val).T.ravel())
    if cls == "cell":
        return [_h5_value(f, f[ref]) for ref in np.asarray(val).T.ravel()]
    arr = np.asarray(val)
    return arr.T if arr.ndim >= 2 else arr


def load_mat(path: Path) -> dict:
    """MATLAB file -> nested dicts / arrays / strings (v4-v7 via scipy, v7.3 HDF5 via h5py).

    Raises
    ------
    ReaderError
        ``empty_file``, ``mat_unreadable`` (neither reader can open it) or ``mat_h5py_missing``.
    """
    import scipy.io

    path = Path(path)
    if path.stat().st_size == 0:
        raise ReaderError("empty_file", f"{path.name} is empty: re-export it.")
    try:
        m = scipy.io.loadmat(str(path), squeeze_me=True, simplify_cells=True)
        return {k: v for k, v in m.items() if not k.startswith("__")}
    except NotImplementedError:
        pass  # MATLAB v7.3 = HDF5
    except Exception as exc:  # scipy raises ValueError/TypeError on corrupt files
        raise ReaderError("mat_unreadable", f"{path.name} is not a readable MATLAB file ({str(exc)[:120]}).") from exc
    try:
        import h5py
    except ImportError as exc:
        raise ReaderError("mat_h5py_missing", f"{path.name} is a MATLAB v7.3 (HDF5) file and h5py is not "
                          "installed; install myomap's dependencies.") from exc
    try:
        with h5py.File(path, "r") as f:
            return {k: _h5_value(f, f[k]) for k in f.keys() if not k.startswith("#")}
    except OSError as exc:
        raise ReaderError("mat_unreadable", f"{path.name}: HDF5 MATLAB file cannot be opened ({exc}).") from exc


def _scalar(x, default=None):
    a = np.asarray(x, dtype=float).ravel() if not isinstance(x, str) else np.zeros(0)
    return float(a[0]) if a.size else default


def mat_kind(path: Path) -> str | None:
    """``"ultratrack"`` (has ``Fdat.Region``), ``"spike2"`` (has waveform structs) or None.

    Raises
    ------
    ReaderError
        The codes of :func:`load_mat`.
    """
    m = load_mat(path)
    if isinstance(m.get("Fdat"), dict) and "Region" in m["Fdat"]:
        return "ultratrack"
    return "spike2" if _spike2_channels(m)[0] else None


def sniff_ultrasound_csv(head: bytes) -> bool:
    """True when the first line is a measurement CSV header (a ``muscle`` column and a metric column)."""
    first = head.decode("utf-8-sig", errors="replace").splitlines()[0].lower() if head else ""
    cols = {c.strip() for c in first.replace(";", ",").replace("\t", ",").split(",")}
    return "muscle" in cols and bool(cols & set(METRIC_COLUMNS))


# --------------------------------------------------------------------------------------- Spike2
def _spike2_channels(m: dict) -> tuple[dict, dict]:
    waves, events = {}, {}
    for key, ch in m.items():
        if not isinstance(ch, dict):
            continue
        title = str(ch.get("title") or key)
        if "values" in ch and "interval" in ch:
            waves[title] = ch
        elif "times" in ch:
            events[title] = ch
    return waves, events


def _emg_reference(waves: dict) -> tuple[str, float]:
    emg = [t for t in waves if "emg" in t.lower()]
    if emg:
        return emg[0], _scalar(waves[emg[0]].get("start"), 0.0)
    first = min(waves, key=lambda t: _scalar(waves[t].get("start"), 0.0))
    return first, _scalar(waves[first].get("start"), 0.0)


def read_spike2_mat(path: Path, *, companions: dict | None = None) -> Recording:
    """Read a Spike2 MATLAB export (v5 or v7.3): waveform channels become analog channels.

    Times are relative to the first sample of the EMG channel (the first channel whose title contains
    ``EMG``, else the earliest channel).

    Raises
    ------
    ReaderError
        The codes of :func:`load_mat`, and ``spike2_no_channels`` when no waveform channel is found.
    """
    path = Path(path)
    m = load_mat(path)
    waves, events = _spike2_channels(m)
    if not waves:
        raise ReaderError("spike2_no_channels", f"{path.name} holds no Spike2 waveform channel (struct with "
                          "'values' and 'interval'); is it a Spike2 MATLAB export?")
    rec = Recording(format="spike2_mat", vendor="CED", software="Spike2")
    ref_title, ref_start = _emg_reference(waves)
    rec.notes.append(f"time 0 = first sample of {ref_title} (Spike2 start {ref_start:g} s)")
    sub = []
    for title, ch in waves.items():
        interval = _scalar(ch.get("interval"))
        if not interval or interval <= 0:
            rec.notes.append(f"{title}: no sampling interval; channel skipped")
            continue
        values = np.asarray(ch["values"], dtype=np.float64).ravel()
        start = _scalar(ch.get("start"), 0.0)
        shift = (start - ref_start) / interval
        k = int(np.trunc(shift + (1e-6 if shift >= 0 else -1e-6)))  # whole samples only
        if k > 0:
            values = np.concatenate([np.full(k, np.nan), values])
        elif k < 0:
            values = values[-k:]
        if k:
            rec.notes.append(f"{title}: starts {start - ref_start:+.6f} s from {ref_title}; shifted by {k} samples")
        if abs(shift - k) > 1e-9:
            sub.append(f"{title} {(shift - k) * interval * 1e3:+.3f} ms")
        unit = str(ch.get("units") or "")
        if not unit:
            rec.notes.append(f"{title}: no unit in the export")
        length = _scalar(ch.get("length"))
        if length is not None and int(length) != len(np.asarray(ch["values"]).ravel()):
            rec.notes.append(f"{title}: header length {int(length)} but {len(np.asarray(ch['values']).ravel())} values")
        rec.analogs.append(AnalogChannel(label=title, unit=unit, rate_hz=round(1.0 / interval, 9), data=values,
                                         description="Spike2 waveform"))
    if sub:
        rec.notes.append("sub-sample channel start offsets relative to " + ref_title + " kept as is: " + ", ".join(sub))
    rec.analog_rate_hz = next((a.rate_hz for a in rec.analogs if a.label == ref_title), None)
    for title, ch in events.items():
        times = np.asarray(ch.get("times", []), dtype=float).ravel()
        if times.size == 0:
            continue
        codes = np.asarray(ch.get("codes", np.zeros(0)))
        if codes.size and codes.size % times.size == 0:
            first_codes = codes.reshape(times.size, -1)[:, 0]
            txt = [chr(int(v)) if 32 <= int(v) < 127 else str(int(v)) for v in first_codes]
            rec.notes.append(f"marker channel {title}: {times.size} markers ({', '.join(txt[:5])}) at "
                             f"{', '.join(f'{t - ref_start:.3f}' for t in times[:5])} s (not gait events)")
        else:
            rec.notes.append(f"event channel {title}: {times.size} events from {times[0] - ref_start:.4f} s")
    return rec


# ------------------------------------------------------------------------------------ UltraTrack
def _regions(m: dict) -> list[dict]:
    fdat = m.get("Fdat")
    if not isinstance(fdat, dict) or "Region" not in fdat:
        raise ReaderError("ultratrack_format", "no Fdat.Region struct: not an UltraTrack output file.")
    reg = fdat["Region"]
    if isinstance(reg, dict):
        return [reg]
    return [r for r in np.asarray(reg, dtype=object).ravel() if isinstance(r, dict)]


def read_ultratrack(path: Path, *, companions: dict | None = None, muscle: str | None = None,
                    side: str | None = None) -> Recording:
    """Read an UltraTrack ``.mat``; with ``{"spike2": Path}`` put the series on the EMG clock.

    Parameters
    ----------
    muscle, side
        The imaged muscle and side, when known from the session (UltraTrack files do not store them).

    Raises
    ------
    ReaderError
        The codes of :func:`load_mat` and :func:`read_spike2_mat`, ``ultratrack_format`` (no
        ``Fdat.Region``), ``ultrasound_pennation_unit`` / ``ultrasound_length_unit`` (implausible values),
        ``ultrasound_no_triggers`` or ``ultrasound_trigger_mismatch`` (fewer triggers than frames).
    """
    path = Path(path)
    m = load_mat(path)
    regions = _regions(m)
    td = m.get("TrackingData") if isinstance(m.get("TrackingData"), dict) else {}
    start_frame = int(_scalar(td.get("start_frame"), 1) or 1)
    rec = Recording(format="ultratrack_mat", software="UltraTrack")
    if muscle is None:
        rec.notes.append("imaged muscle not stated in the UltraTrack file; set it from the session manifest")
    series = []
    for k, r in enumerate(regions):
        fl = np.asarray(r.get("FL", []), dtype=float).ravel()
        pen = np.asarray(r.get("PEN", []), dtype=float).ravel()
        t = np.asarray(r.get("Time", []), dtype=float).ravel()
        if fl.size == 0 or pen.size != fl.size:
            rec.notes.append(f"region {k + 1}: FL/PEN empty or of different lengths; skipped")
            continue
        peak = float(np.nanmax(np.abs(pen)))
        if peak <= math.pi / 2:
            pen_deg = np.degrees(pen)
            unit_note = "radians"
        elif peak <= 90:
            pen_deg = pen
            unit_note = "degrees"
        else:
            raise ReaderError("ultrasound_pennation_unit", f"{path.name} region {k + 1}: pennation up to {peak:g} "
                              "is neither radians nor degrees; check the export.")
        if float(np.nanmedian(fl)) < 5.0:
            raise ReaderError("ultrasound_length_unit", f"{path.name} region {k + 1}: median fascicle length "
                              f"{np.nanmedian(fl):g} is implausible in mm (cm or m?); check the export.")
        series.append((k, fl, pen_deg, t, unit_note))
    if not series:
        raise ReaderError("ultratrack_format", f"{path.name}: no region holds fascicle data.")
    rec.notes.append(f"pennation read as {series[0][4]} (max |PEN| "
                     f"{'<= pi/2' if series[0][4] == 'radians' else '> pi/2'}) and converted to degrees")
    n_frames = max(len(s[1]) for s in series)
    clock = None
    if companions and companions.get("spike2"):
        sp_path = Path(companions["spike2"])
        sp = read_spike2_mat(sp_path)
        waves, events = _spike2_channels(load_mat(sp_path))
        trig = next((events[t] for t in events if t.strip().lower() in _TRIGGER_TITLES), None)
        if trig is None:
            raise ReaderError("ultrasound_no_triggers", f"{sp_path.name} has no ultrasound frame-trigger event "
                              f"channel (titles {sorted(events)}); cannot synchronise.")
        times = np.asarray(trig.get("times", []), dtype=float).ravel()
        first = start_frame - 1
        if times.size < first + n_frames:
            raise ReaderError("ultrasound_trigger_mismatch", f"{sp_path.name} has {times.size} frame triggers but "
                              f"{path.name} tracks {n_frames} frames from frame {start_frame}; the files do not "
                              "belong together or the trigger recording stopped early.")
        if times.size > first + n_frames:
            rec.notes.append(f"{times.size} frame triggers for {n_frames} tracked frames; triggers {start_frame}-"
                             f"{first + n_frames} used")
        ref_title, ref_start = _emg_reference(waves)
        clock = times[first:first + n_frames] - ref_start
        rate_tr = 1.0 / float(np.median(np.diff(clock))) if n_frames > 1 else float("nan")
        own = series[0][3]
        rate_own = 1.0 / float(np.median(np.diff(own))) if own.size > 1 else float("nan")
        rec.notes.append(f"frames placed at the Spike2 frame-trigger times ({rate_tr:.4g} Hz) relative to the first "
                         f"{ref_title} sample; UltraTrack's own time base says {rate_own:.4g} Hz")
        rec.analogs, rec.analog_rate_hz = sp.analogs, sp.analog_rate_hz
        rec.notes.extend(f"Spike2: {n}" for n in sp.notes)
        rec.vendor = "CED"
        rec.software = "UltraTrack + Spike2"
    else:
        rec.notes.append("no Spike2 companion: times are on the ultrasound clock from the first frame, not "
                         "synchronised with EMG")
    for k, fl, pen_deg, t, _ in series:
        if clock is not None:
            tt = clock[:len(fl)]
        else:
            tt = (t - t[0]) if t.size == fl.size else np.arange(fl.size, dtype=float) / 30.0
            if t.size != fl.size:
                rec.notes.append(f"region {k + 1}: no Time vector; 30 Hz assumed")
        rec.ultrasound.append(UltrasoundSeries(muscle=muscle, side=side, region=f"region_{k + 1}", time_s=tt,
                                               fascicle_length_mm=fl, pennation_deg=pen_deg))
    return rec


# ------------------------------------------------------------------------------------------- CSV
def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    raw = Path(path).read_bytes()
    if not raw.strip():
        raise ReaderError("empty_file", f"{Path(path).name} is empty.")
    if b"\x00" in raw[:4096]:
        raise ReaderError("not_text", f"{Path(path).name} is a binary file, not a CSV table.")
    text = raw.decode("utf-8-sig", errors="replace")
    first = text.splitlines()[0]
    delim = "\t" if "\t" in first else (";" if first.count(";") > first.count(",") else ",")
    try:
        rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise ReaderError("not_text", f"{Path(path).name} is not a readable CSV table ({exc}).") from None
    return [c.strip().lower() for c in rows[0]], [[c.strip() for c in r] for r in rows[1:]]


def read_ultrasound_csv_by_subject(path: Path) -> dict[str | None, Recording]:
    """Read a measurement CSV (layout in the module docstring) into one Recording per subject.

    Raises
    ------
    ReaderError
        ``empty_file``, ``not_text`` (binary or broken CSV), ``ultrasound_csv_columns`` (no ``muscle`` or
        no metric column),
        ``ultrasound_csv_value`` (a non-numeric or non-positive value, an unknown side).
    """
    path = Path(path)
    head, rows = _rows(path)
    if "muscle" not in head:
        raise ReaderError("ultrasound_csv_columns", f"{path.name} has no 'muscle' column (columns: {head}).")
    metrics = [c for c in head if c in METRIC_COLUMNS]
    if not metrics:
        raise ReaderError("ultrasound_csv_columns", f"{path.name} has no metric column; expected one of "
                          f"{sorted(METRIC_COLUMNS)}.")
    ignored = [c for c in head if c not in METRIC_COLUMNS and c not in ("subject", "muscle", "side", "condition")]
    out: dict[str | None, Recording] = {}
    col = {c: i for i, c in enumerate(head)}
    for n, row in enumerate(rows, start=2):
        row = row + [""] * (len(head) - len(row))

        def cell(name: str) -> str:
            return row[col[name]] if name in col else ""

        subject = cell("subject") or None
        rec = out.get(subject)
        if rec is None:
            rec = out[subject] = Recording(format="ultrasound_csv", subject_id=subject)
            if ignored:
                rec.notes.append(f"columns ignored: {', '.join(ignored)}")
        side_txt = cell("side")
        side = _SIDES.get(side_txt.lower()) if side_txt else None
        if side_txt and side is None:
            raise ReaderError("ultrasound_csv_value", f"{path.name} line {n}: side {side_txt!r} is not L/R/left/right.")
        values = {}
        for c in metrics:
            txt = cell(c)
            if not txt or txt.lower() in ("na", "n/a", "nan"):
                continue
            try:
                v = float(txt) if "," not in txt else float(txt.replace(",", "."))
            except ValueError:
                raise ReaderError("ultrasound_csv_value", f"{path.name} line {n}: {c} = {txt!r} is not a number."
                                  ) from None
            metric, unit, factor = METRIC_COLUMNS[c]
            if metric != "pennation_deg" and v <= 0:
                raise ReaderError("ultrasound_csv_value", f"{path.name} line {n}: {c} = {v:g} must be positive.")
            if factor != 1.0:
                rec.notes.append(f"line {n}: {c} converted to {metric} (x{factor:g})")
            values[metric] = v * factor
            rec.measurements.append(Measurement(muscle=cell("muscle") or None, side=side, metric=metric,
                                                value=v * factor, unit=unit, condition=cell("condition") or None))
        c_speed, mu = values.get("shear_wave_speed_m_per_s"), values.get("shear_modulus_kpa")
        if c_speed and mu:
            expect = MUSCLE_DENSITY_KG_M3 * c_speed ** 2 / 1000.0
            ratio = mu / expect
            if abs(ratio - 3.0) < 0.3:
                rec.notes.append(f"line {n}: modulus {mu:g} kPa = 3 rho c^2: looks like Young's modulus, not shear "
                                 "modulus")
            elif abs(ratio - 1.0) > 0.1:
                rec.notes.append(f"line {n}: shear modulus {mu:g} kPa disagrees with rho c^2 = {expect:.4g} kPa "
                                 f"(speed {c_speed:g} m/s)")
    if not out:
        raise ReaderError("ultrasound_csv_columns", f"{path.name} has a header but no rows.")
    return out


def read_ultrasound_csv(path: Path, *, companions: dict | None = None) -> Recording:
    """Read a single-subject ultrasound measurement CSV into ``Recording.measurements``.

    Raises
    ------
    ReaderError
        The codes of :func:`read_ultrasound_csv_by_subject`, and ``ultrasound_csv_subjects`` when the file
        holds several subjects (use :func:`read_ultrasound_csv_by_subject` or split the file).
    """
    by = read_ultrasound_csv_by_subject(path)
    if len(by) > 1:
        raise ReaderError("ultrasound_csv_subjects", f"{Path(path).name} holds {len(by)} subjects "
                          f"({', '.join(str(s) for s in by)}); split it into one file per subject.")
    return next(iter(by.values()))
