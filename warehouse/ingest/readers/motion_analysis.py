"""Motion Analysis (EVaRT / Cortex) native files: TRC markers, ANC analog counts, CAL force-plate calibration.

* ANC (``File_Type: Analog R/C ASCII``, generation 2, bipolar): integer ADC counts per channel with a
  per-channel ``Range`` in mV (+-range). Volts = counts x 2 x range / 1000 / (2^BitDepth - 1), the
  scale Motion Analysis itself writes in its C3D exports (``Gait.c3d``: 0.0004884 V/count for +-1000 mV
  at 12 bits). All channels are returned in V.
* CAL: per plate an index line, dimensions (cm), a 6x6 calibration matrix (N and N.m per uV/V), the
  transducer origin (cm, from the plate centre), the plate centre in the lab (cm) and a 3x3 orientation.
* Forces (type-4 plates): bridge signal in uV/V = -V / (gain 4000 x excitation 10 V) x 1e6 (the
  Motion Analysis convention, as in its C3D ``ANALOG:SCALE``; the ANC does not state gain or excitation),
  loads = CAL x signal (moments to N.mm), rotated to the lab by the CAL orientation. COP and free moment
  follow the C3D force-plate convention of ezc3d, so results agree with the vendor's C3D.
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
from warehouse.ingest.readers.opensim import read_trc

#: Motion Analysis assumptions for raw plate channels (see the module docstring).
PLATE_GAIN = 4000.0
PLATE_EXCITATION_V = 10.0


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.rstrip("\r\n").split("\t")]


def _keyvals(lines: list[str]) -> dict[str, str]:
    out = {}
    for ln in lines:
        cells = _cells(ln)
        for k, v in zip(cells[::2], cells[1::2]):
            if k.endswith(":"):
                out[k[:-1].strip()] = v
    return out


def read_anc(path: Path, *, companions: dict | None = None) -> Recording:
    """Read a Motion Analysis ANC file; with ``{"cal": Path}`` also compute the force plates.

    Raises
    ------
    ReaderError
        ``empty_file``, ``anc_header`` (not an ANC or missing Name/Rate/Range rows), ``anc_unsupported``
        (generation 1 or unipolar boards), ``no_frames``, and the CAL codes of :func:`read_cal`.
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise ReaderError("empty_file", f"{path.name} is empty: re-export it.")
    lines = raw.decode("latin-1").splitlines()
    if not lines[0].startswith("File_Type:") or "Analog R/C ASCII" not in lines[0]:
        raise ReaderError("anc_header", f"{path.name} does not start with 'File_Type: Analog R/C ASCII': not an ANC.")
    name_i = next((i for i, ln in enumerate(lines[:50]) if _cells(ln)[0] == "Name"), None)
    if name_i is None or name_i + 2 >= len(lines) or _cells(lines[name_i + 2])[0] != "Range":
        raise ReaderError("anc_header", f"{path.name}: no 'Name' / 'Rate' / 'Range' rows in the header.")
    meta = _keyvals(lines[:name_i])
    gen = meta.get("Generation#", "2").strip()
    if gen != "2":
        raise ReaderError("anc_unsupported", f"{path.name}: ANC generation {gen} stores pre-scaled values myomap "
                          "does not read; re-export as generation 2 (counts with ranges).")
    if meta.get("Polarity", "Bipolar").strip().lower() != "bipolar":
        raise ReaderError("anc_unsupported", f"{path.name}: polarity {meta.get('Polarity')!r}; only bipolar boards "
                          "(+-range) are supported.")
    try:
        bits = int(float(meta.get("BitDepth", "")))
        rate = float(meta.get("PreciseRate", "nan"))
    except ValueError:
        raise ReaderError("anc_header", f"{path.name}: BitDepth/PreciseRate not numeric ({meta}).") from None
    labels = [c for c in _cells(lines[name_i])[1:] if c]
    n = len(labels)
    try:
        rates = [float(c) for c in _cells(lines[name_i + 1])[1:n + 1]]
        ranges = np.array([float(c) for c in _cells(lines[name_i + 2])[1:n + 1]])
    except ValueError:
        raise ReaderError("anc_header", f"{path.name}: Rate/Range rows are not numeric.") from None
    if len(ranges) != n or len(rates) != n:
        raise ReaderError("anc_header", f"{path.name}: {n} channel names but {len(rates)} rates and "
                          f"{len(ranges)} ranges.")
    rec = Recording(format="anc", vendor="Motion Analysis", analog_rate_hz=rate)
    declared = int(meta.get("#Channels", n) or n)
    if declared != n:
        rec.notes.append(f"header says {declared} channels, {n} are named")
    if any(abs(r - rate) > 0.1 for r in rates):
        rec.notes.append(f"per-channel rates {sorted(set(rates))} differ from PreciseRate {rate:g} Hz; "
                         "each channel keeps its own rate")
    rows = []
    ragged = bad_cells = 0
    for ln in lines[name_i + 3:]:
        cells = [c for c in _cells(ln)]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        if len(cells) != n + 1:
            ragged += 1
            cells = (cells + [""] * (n + 1))[:n + 1]
        row = []
        for c in cells:
            try:
                row.append(float(c) if c else np.nan)
            except ValueError:
                row.append(np.nan)
                bad_cells += 1
        rows.append(row)
    if bad_cells:
        rec.notes.append(f"{bad_cells} non-numeric cells read as NaN (truncated or damaged file?)")
    if not rows:
        raise ReaderError("no_frames", f"{path.name}: header but no samples.")
    data = np.asarray(rows, dtype=np.float64)
    if ragged:
        rec.notes.append(f"{ragged} rows with a wrong number of cells (padded with NaN)")
    duration = float(meta.get("Duration(Sec.)", "nan") or "nan")
    expect = int(round(duration * rate)) + 1 if np.isfinite(duration) else len(rows)
    if len(rows) < expect:
        rec.notes.append(f"truncated: Duration {duration:g} s at {rate:g} Hz means {expect} samples, file has "
                         f"{len(rows)}")
    volts_per_count = 2.0 * ranges / 1000.0 / (2 ** bits - 1)
    counts = data[:, 1:]
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    clipped = [labels[j] for j in range(n) if np.nanmin(counts[:, j]) <= lo or np.nanmax(counts[:, j]) >= hi]
    if clipped:
        rec.notes.append(f"{len(clipped)} channels reach the {bits}-bit ADC limits {lo}/{hi} (clipped): "
                         + ", ".join(clipped))
    for j, lab in enumerate(labels):
        rec.analogs.append(AnalogChannel(label=lab, unit="V", rate_hz=rates[j], data=counts[:, j] * volts_per_count[j],
                                         description=f"+-{ranges[j]:g} mV range, {bits}-bit",
                                         adc_range=(lo * volts_per_count[j], hi * volts_per_count[j])))
    rec.notes.append(f"{bits}-bit ADC counts scaled to V with +-range/(2^{bits}-1) per channel (Motion Analysis "
                     "convention)")
    if meta.get("Board_Type"):
        rec.notes.append(f"A/D board: {meta['Board_Type']}")
    if companions and companions.get("cal"):
        _add_plates(rec, read_cal(companions["cal"]), rate)
    return rec


def read_cal(path: Path) -> list[dict]:
    """Parse a Motion Analysis ``.cal`` force-plate calibration file.

    Returns
    -------
    list of dict
        Per plate: ``index``, ``dimensions_cm`` (3), ``matrix`` (rows x cols), ``origin_cm`` (transducer
        origin from the plate centre, plate frame), ``position_cm`` (plate centre in the lab),
        ``orientation`` (3x3, plate -> lab).

    Raises
    ------
    ReaderError
        ``empty_file`` or ``cal_format`` when a block is incomplete or not numeric.
    """
    path = Path(path)
    text = path.read_text(encoding="latin-1")
    if not text.strip():
        raise ReaderError("empty_file", f"{path.name} is empty.")
    try:
        rows = [[float(x) for x in ln.split()] for ln in text.splitlines() if ln.split()]
    except ValueError:
        raise ReaderError("cal_format", f"{path.name}: a line holds non-numeric values; not a Motion Analysis "
                          ".cal file.") from None
    plates, i = [], 0
    try:
        while i < len(rows):
            if len(rows[i]) != 1 or int(rows[i][0]) != len(plates) + 1:
                raise ValueError(f"expected plate index {len(plates) + 1} on a line of its own")
            dims = rows[i + 1]
            if len(dims) != 3:
                raise ValueError("dimensions line must hold 3 values")
            j = i + 2
            ncol = len(rows[j])
            matrix = []
            while j < len(rows) and len(rows[j]) == ncol and ncol > 3:
                matrix.append(rows[j])
                j += 1
            origin, position = rows[j], rows[j + 1]
            orient = rows[j + 2:j + 5]
            if len(origin) != 3 or len(position) != 3 or any(len(r) != 3 for r in orient) or len(orient) != 3:
                raise ValueError("origin / position / orientation blocks must be 3 values per line")
            plates.append({"index": len(plates) + 1, "dimensions_cm": dims, "matrix": np.asarray(matrix),
                           "origin_cm": np.asarray(origin), "position_cm": np.asarray(position),
                           "orientation": np.asarray(orient)})
            i = j + 5
    except (ValueError, IndexError) as exc:
        raise ReaderError("cal_format", f"{path.name}: plate block {len(plates) + 1} is incomplete ({exc}); "
                          "check the calibration file.") from None
    if not plates:
        raise ReaderError("cal_format", f"{path.name}: no plate block found.")
    return plates


def _plate_channels(labels: list[str], k: int) -> list[int] | None:
    """Indices of plate ``k``'s Fx..Mz channels named F1X / FX1 / FP1FX (case, spaces, '_' ignored)."""
    low = [lb.lower().replace(" ", "").replace("_", "") for lb in labels]
    for style in (lambda c: f"{c[0]}{k}{c[1]}", lambda c: f"{c}{k}", lambda c: f"fp{k}{c}"):
        names = [style(c) for c in ("fx", "fy", "fz", "mx", "my", "mz")]
        if all(nm in low for nm in names):
            return [low.index(nm) for nm in names]
    return None


def _add_plates(rec: Recording, cals: list[dict], rate: float) -> None:
    labels = [a.label for a in rec.analogs]
    for cal in cals:
        k = cal["index"]
        m = cal["matrix"]
        if m.shape != (6, 6):
            rec.notes.append(f"plate {k}: {m.shape[0]}x{m.shape[1]} calibration matrix (not type 4); plate "
                             "forces not computed")
            continue
        idx = _plate_channels(labels, k)
        if idx is None:
            rec.notes.append(f"plate {k}: no F{k}X..M{k}Z channels in the ANC; plate skipped")
            continue
        volts = np.vstack([rec.analogs[j].data for j in idx])
        signal = -volts / (PLATE_GAIN * PLATE_EXCITATION_V) * 1e6  # uV/V, reaction sign
        cal_nmm = m.copy()
        cal_nmm[3:] *= 1000.0
        loads = cal_nmm @ signal
        f, mom = loads[:3], loads[3:]
        rot = cal["orientation"]
        o = -10.0 * cal["origin_cm"]
        ms = mom - np.cross(o, f.T).T
        with np.errstate(divide="ignore", invalid="ignore"):
            x = -ms[1] / f[2]
            y = ms[0] / f[2]
        tz = ms[2] - x * f[1] + y * f[0]
        centre = 10.0 * cal["position_cm"]
        cop = rot @ np.vstack([x, y, np.zeros_like(x)]) + centre[:, None]
        rec.plates.append(ForcePlate(plate=k, plate_type=4, rate_hz=rate, force_n=rot @ f, cop_mm=cop,
                                     free_moment_nmm=rot[2, 2] * tz, torque_nmm=rot[:, 2:3] * tz[None, :]))
        rec.plate_channel_indices.update(idx)
    if rec.plates:
        rec.notes.append(f"plate channels converted with gain {PLATE_GAIN:g} and excitation {PLATE_EXCITATION_V:g} V "
                         "(Motion Analysis convention; not stated in the ANC)")


def read_motion_analysis(path: Path, *, companions: dict | None = None) -> Recording:
    """Read a Motion Analysis trial: a TRC with optional ``{"anc": Path, "cal": Path}`` companions.

    Markers come from the TRC (see :func:`warehouse.ingest.readers.opensim.read_trc`), analog channels and force
    plates from the ANC (+CAL). The TRC frame 1 and the first ANC sample are taken as simultaneous, as in
    the vendor's own C3D export of the same trial.

    Raises
    ------
    ReaderError
        The codes of :func:`read_trc`, :func:`read_anc` and :func:`read_cal`.
    """
    path = Path(path)
    companions = companions or {}
    if path.suffix.lower() == ".anc":
        return read_anc(path, companions=companions)
    rec = read_trc(path)
    rec.format, rec.vendor = "motion_analysis_trc", "Motion Analysis"
    if companions.get("anc"):
        anc = read_anc(companions["anc"], companions={"cal": companions.get("cal")} if companions.get("cal") else None)
        rec.analogs, rec.plates, rec.analog_rate_hz = anc.analogs, anc.plates, anc.analog_rate_hz
        rec.plate_channel_indices = anc.plate_channel_indices
        rec.notes.extend(f"ANC: {n}" for n in anc.notes)
        trc_s = rec.markers_mm.shape[0] / rec.point_rate_hz if rec.point_rate_hz else 0.0
        anc_s = max((len(a.data) / a.rate_hz for a in anc.analogs), default=0.0)
        if abs(trc_s - anc_s) > 1.0 / (anc.analog_rate_hz or 1.0):
            rec.notes.append(f"ANC lasts {anc_s:.3f} s and TRC {trc_s:.3f} s; both start at their first sample")
    elif companions.get("cal"):
        rec.notes.append("CAL companion given without an ANC: no plate channels to calibrate")
    return rec


def sniff_motion_analysis(head: bytes) -> str | None:
    """``"anc"``, ``"trc"`` or None from a file's first bytes."""
    if head.startswith(b"File_Type:") and b"Analog R/C ASCII" in head[:100]:
        return "anc"
    if re.match(rb"PathFileType\s*[\t,]\s*4", head):
        return "trc"
    return None
