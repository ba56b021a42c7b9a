"""EDF, EDF+ and BDF (24-bit) through ``edfio``, with myomap's quirk and conflict rules on top.

``edfio`` decodes the header, the digital -> physical scaling, the per-signal rates (samples per
record / record duration) and the EDF+ annotations, and writes EDF+C / BDF+C.  This module adds
what ``edfio`` leaves to its caller:

* the format is told by the first bytes (``edfio.read_edf`` on BDF bytes silently returns wrong
  data), and the record layout is checked against the file size before ``edfio`` sees the data (a
  wrong header-size field would otherwise shift every sample); ``edfio`` gets exactly the complete
  records, and its warnings become notes;
* ``EDF Annotations`` naming foot strikes / foot offs become :class:`~warehouse.ingest.readers.base.Event`;
* the header is cross-checked against an optional BIDS ``_channels.tsv`` companion (role ``"channels"``).

Metadata problems are sorted in two kinds:

* **resolved quirks** (a note is appended, the data are usable): labels truncated into duplicates and
  restored from the ``_channels.tsv``; a rate the EDF could not store exactly (fractional samples per
  record) replaced by the ``_channels.tsv`` value; a garbled unit replaced by the ``_channels.tsv`` unit;
  a signal whose physical minimum equals its maximum (no scaling possible) dropped; a truncated file.
* **conflicts** (the values would be wrong by an unknown factor if used): EMG amplitudes implausible for
  surface EMG in the stated unit (e.g. a range 1000x too large), two known EMG units disagreeing
  between the EDF and the ``_channels.tsv``, a rate disagreement larger than one sample per record, a
  ``_channels.tsv`` that does not describe the same signals. By default (``strict=True``) conflicts
  raise ``ReaderError("edf_metadata_conflict")`` listing every conflict and every resolved quirk, so the
  ingest quarantines the file; ``strict=False`` returns the recording with each conflict as a note
  starting with ``"CONFLICT:"`` (for inspection tools).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import edfio
import numpy as np

from schemas import vocab
from warehouse.ingest.readers.base import (
    AnalogChannel,
    Event,
    ReaderError,
    Recording,
    emg_unit_factor,
)

#: Largest EMG amplitude (mV at the electrodes) accepted before the unit is doubted: surface EMG stays
#: below ~10 mV (Delsys Trigno input range +-11 mV); 25 mV leaves room for artefacts.
EMG_PLAUSIBLE_MAX_MV = 25.0

#: Bytes of one signal's header: label, transducer, unit, physical/digital min/max, prefilter, samples per
#: record and reserved (16 + 80 + 8 x 6 + 80 + 32); the samples-per-record fields start after the first 216.
_SIGNAL_HEADER_BYTES, _SPR_FIELD_OFFSET = 256, 216


def parse_event_label(text: str) -> tuple[str, str] | None:
    """``(side, event)`` when an annotation names a left/right foot strike or foot off, else None.

    Accepts e.g. ``"foot_strike L"``, ``"Left Foot Strike"``, ``"heel strike right"``, ``"RHS"``, ``"LTO"``
    (the one parser of :func:`schemas.vocab.parse_gait_event`; annotations without a side are not imported).
    """
    parsed = vocab.parse_gait_event(text)
    return parsed if parsed and parsed[0] in vocab.SIDES else None


def sniff_edf(head: bytes) -> str | None:
    """``"edf"`` or ``"bdf"`` from a file's first bytes (version field), else None."""
    if head[:8] == b"\xffBIOSEMI":
        return "bdf"
    if head[:8] == b"0       " and len(head) >= 256 and head[252:256].strip().isdigit():
        return "edf"
    return None


def channels_tsv_for(path: Path) -> Path | None:
    """The BIDS ``_channels.tsv`` beside an EDF/BDF: ``<stem>_channels.tsv``, or with ``_emg`` dropped."""
    path = Path(path)
    stem = path.name.rsplit(".", 1)[0]
    for name in (f"{stem}_channels.tsv", f"{stem[:-4]}_channels.tsv" if stem.endswith("_emg") else None):
        if name and (path.parent / name).exists():
            return path.parent / name
    return None


# ----------------------------------------------------------------------------------------- reading
def _num(value: str, what: str, path: Path) -> float:
    try:
        return float(value.strip())
    except ValueError:
        raise ReaderError("edf_header", f"{path.name}: header field {what} is {value.strip()!r}, not a number; "
                          "the file is not a valid EDF/BDF (re-export it).") from None


def _layout(raw: bytes, path: Path, notes: list[str]) -> tuple[bool, int, int, int]:
    """Check the record layout against the file size: ``(bdf, header_bytes, n_records, record_bytes)``.

    Reads only the fixed numeric fields (header size, record count, signal count, samples per record);
    notes a record count of -1, a truncated file and bytes after the last record.
    """
    if len(raw) < 256:
        raise ReaderError("edf_header", f"{path.name} is {len(raw)} bytes, shorter than an EDF header (256 bytes).")
    bdf = raw[:8] == b"\xffBIOSEMI"
    if not bdf and raw[:8].strip() != b"0":
        raise ReaderError("edf_header", f"{path.name} does not start with an EDF ('0') or BDF (0xFF 'BIOSEMI') "
                          "version field; it is not an EDF/BDF file.")
    text = raw[:256].decode("latin-1")
    header_bytes = int(_num(text[184:192], "header bytes", path))
    n_rec = int(_num(text[236:244], "number of data records", path))
    duration = _num(text[244:252], "data record duration", path)
    ns = int(_num(text[252:256], "number of signals", path))
    if ns <= 0 or len(raw) < _SIGNAL_HEADER_BYTES * (ns + 1):
        raise ReaderError("edf_header", f"{path.name}: the header declares {ns} signals but is truncated or "
                          "empty; re-export the file.")
    if header_bytes != _SIGNAL_HEADER_BYTES * (ns + 1):
        raise ReaderError("edf_header", f"{path.name}: the header-size field says {header_bytes} bytes but "
                          f"{ns} signals need {_SIGNAL_HEADER_BYTES * (ns + 1)}; the samples cannot be located "
                          "(re-export the file).")
    spr_at = 256 + ns * _SPR_FIELD_OFFSET
    spr = [int(round(_num(raw[spr_at + 8 * i: spr_at + 8 * (i + 1)].decode("latin-1"),
                          f"spr of signal {i + 1}", path))) for i in range(ns)]
    rec_bytes = sum(spr) * (3 if bdf else 2)
    if rec_bytes <= 0 or duration <= 0:
        raise ReaderError("edf_header", f"{path.name}: records of {rec_bytes} bytes lasting {duration} s; "
                          "the header is corrupt.")
    avail = (len(raw) - header_bytes) // rec_bytes
    if n_rec < 0:
        n_rec = avail
        notes.append(f"number of data records not set in the header (-1); {avail} complete records read")
    elif avail < n_rec:
        if avail == 0:
            raise ReaderError("edf_truncated", f"{path.name}: header declares {n_rec} data records but the file "
                              "does not hold a single complete one; the transfer was truncated.")
        notes.append(f"file truncated: header declares {n_rec} data records, file holds {avail} complete records")
        n_rec = avail
    elif len(raw) > header_bytes + n_rec * rec_bytes:
        notes.append(f"{len(raw) - header_bytes - n_rec * rec_bytes} bytes after the last data record ignored")
    return bdf, header_bytes, n_rec, rec_bytes


def _open(raw: bytes, path: Path, notes: list[str]):
    """The file as an ``edfio.Edf`` / ``edfio.Bdf`` holding exactly its complete data records."""
    bdf, header_bytes, n_rec, rec_bytes = _layout(raw, path, notes)
    # a consistent file for edfio: the record count it can find, and nothing after the last record
    data = raw[:236] + str(n_rec).ljust(8).encode() + raw[244:header_bytes + n_rec * rec_bytes]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            edf = (edfio.read_bdf if bdf else edfio.read_edf)(data, header_encoding="latin-1")
        except (ValueError, ArithmeticError, LookupError, TypeError, UnboundLocalError) as exc:
            raise ReaderError("edf_header", f"{path.name}: the header cannot be decoded ({exc}); the file is not "
                              "a valid EDF/BDF (re-export it).") from None
    notes.extend(f"edfio: {w.message}" for w in caught)
    return edf


def _header_number(signal, field: str, i: int, path: Path) -> float:
    try:
        return float(getattr(signal, field))
    except ValueError as exc:
        raise ReaderError("edf_header", f"{path.name}: header field {field} of signal {i + 1} is not a number "
                          f"({exc}); the file is not a valid EDF/BDF (re-export it).") from None


def _read_events(edf, rec: Recording, path: Path) -> None:
    """Gait events from the EDF+ annotations; refuses EDF+D with gaps between records."""
    reserved = edf.reserved.upper()
    if reserved.startswith(("EDF+D", "BDF+D")) and not edf.is_continuous:
        raise ReaderError("edf_discontinuous", f"{path.name} is EDF+D with gaps between data records; "
                          "export it as a continuous (EDF+C) recording.")
    try:
        annotations = edf.annotations  # onsets relative to the first record's time-keeping stamp
    except (ValueError, IndexError) as exc:
        rec.notes.append(f"annotations could not be decoded ({exc}); no events imported")
        return
    unparsed = []
    for ann in annotations:
        ev = parse_event_label(ann.text)
        if ev:
            rec.events.append(Event(ev[0], ev[1], round(ann.onset, 6), "annotated"))
        elif ann.text:
            unparsed.append(ann.text)
    rec.events.sort(key=lambda e: e.time_s)
    if unparsed:
        shown = ", ".join(sorted(set(unparsed))[:5])
        rec.notes.append(f"{len(unparsed)} annotations are not gait events and were not imported ({shown})")


def _read_channels_tsv(path: Path) -> list[dict]:
    lines = [ln for ln in Path(path).read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    if not lines:
        raise ReaderError("edf_channels_tsv", f"{Path(path).name} is empty; a BIDS _channels.tsv needs a header row "
                          "(name, type, units) and one row per signal.")
    head = [c.strip() for c in lines[0].split("\t")]
    if "name" not in head:
        raise ReaderError("edf_channels_tsv", f"{Path(path).name} has no 'name' column (columns: {head}).")
    return [dict(zip(head, [c.strip() for c in ln.split("\t")])) for ln in lines[1:]]


def read_edf(path: Path, *, companions: dict | None = None, strict: bool = True) -> Recording:
    """Read an EDF, EDF+ or BDF file.

    Parameters
    ----------
    path
        The ``.edf`` / ``.bdf`` file.
    companions
        ``{"channels": Path}``: a BIDS ``_channels.tsv`` (name, type, units, sampling_frequency,
        description, status) describing the same signals in the same order.
    strict
        Raise on metadata conflicts (default). With False, conflicts become ``"CONFLICT: ..."`` notes.

    Raises
    ------
    ReaderError
        ``empty_file``, ``edf_header`` (not an EDF/BDF, unreadable header, or a header size that does
        not match its signal count), ``edf_truncated`` (not even one data record), ``edf_discontinuous``
        (EDF+D with gaps), ``edf_no_signals``, ``edf_channels_tsv`` (unreadable companion) or
        ``edf_metadata_conflict``.
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw:
        raise ReaderError("empty_file", f"{path.name} is empty (0 bytes): re-export it.")
    notes: list[str] = []
    edf = _open(raw, path, notes)
    bdf = isinstance(edf, edfio.Bdf)
    fmt = ("bdf" if bdf else "edf") + ("+" if edf.reserved.upper().startswith(("EDF+", "BDF+")) else "")
    rec = Recording(format=fmt)
    rec.notes.extend(notes)
    _read_events(edf, rec, path)
    signals = list(edf.signals)
    if not signals:
        raise ReaderError("edf_no_signals", f"{path.name} holds only annotations, no signals.")
    conflicts: list[str] = []
    tsv, labels = _companion_labels(path, signals, companions, rec.notes, conflicts)
    flat_phys: list[str] = []
    for k, s in enumerate(signals):
        channel = _read_signal(s, k, labels[k], tsv[k] if tsv is not None else {}, path, bdf,
                               edf.data_record_duration, rec.notes, conflicts, flat_phys)
        if channel is not None:
            rec.analogs.append(channel)
    if flat_phys:
        rec.notes.append(f"{len(flat_phys)} signals dropped because their physical minimum equals their physical "
                         f"maximum (no digital -> physical scaling possible): {', '.join(flat_phys)}")
    if not rec.analogs:
        conflicts.append("no signal could be scaled to physical units")
    emg_rates = [a.rate_hz for a in rec.analogs if "EMG" in (a.description + a.label).upper()]
    rates = emg_rates or [a.rate_hz for a in rec.analogs]
    rec.analog_rate_hz = max(rates) if rates else None
    equipment = edf.local_recording_identification.split()
    if len(equipment) >= 5 and equipment[0] == "Startdate" and equipment[4] != "X":
        rec.software = " ".join(equipment[4:])
    patient = edf.local_patient_identification.split()
    if patient and patient[0] not in ("X", ""):
        rec.subject_id = patient[0]
    if conflicts:
        if strict:
            resolved = ("; also handled: " + "; ".join(rec.notes)) if rec.notes else ""
            raise ReaderError("edf_metadata_conflict",
                              f"{path.name}: {len(conflicts)} metadata conflict(s): " + "; ".join(conflicts)
                              + resolved + ". Re-export the EDF with correct physical ranges/units, or "
                              "correct the _channels.tsv.")
        rec.notes.extend("CONFLICT: " + c for c in conflicts)
    return rec


def _companion_labels(path: Path, signals: list, companions: dict | None, notes: list[str],
                      conflicts: list[str]) -> tuple[list[dict] | None, list[str]]:
    """The ``_channels.tsv`` rows (None when absent or not matching) and the signals' labels: full names
    from the companion, or the EDF labels made unique."""
    tsv = None
    if companions and companions.get("channels"):
        tsv = _read_channels_tsv(companions["channels"])
        if len(tsv) != len(signals):
            conflicts.append(f"{Path(companions['channels']).name} lists {len(tsv)} channels, the EDF holds "
                             f"{len(signals)} signals")
            tsv = None
    labels = [s.label.strip() for s in signals]
    dup = sorted({lb for lb in labels if labels.count(lb) > 1})
    if tsv is not None:
        for k, s in enumerate(signals):
            name = tsv[k].get("name", "")
            if name != labels[k] and _ascii(name, 16)[0].strip() != labels[k]:
                conflicts.append(f"signal {k + 1} is labelled {labels[k]!r} in the EDF but "
                                 f"{name!r} in the _channels.tsv")
        if dup:
            notes.append(f"EDF labels truncated to 16 characters into duplicates ({', '.join(dup)}); "
                         "full names taken from the _channels.tsv")
        return tsv, [row.get("name") or lb for row, lb in zip(tsv, labels)]
    if dup:
        for lb in dup:
            n = 0
            for k in range(len(labels)):
                if labels[k] == lb:
                    n += 1
                    labels[k] = f"{lb} #{n}"
        notes.append(f"duplicate EDF labels ({', '.join(dup)}) made unique with '#n' suffixes; give a "
                     "_channels.tsv companion to restore the full names")
    return tsv, labels


def _read_signal(s, k: int, label: str, row: dict, path: Path, bdf: bool, duration: float, notes: list[str],
                 conflicts: list[str], flat_phys: list[str]) -> AnalogChannel | None:
    """One signal in physical units, its rate and unit checked against the ``_channels.tsv`` row; None
    when it cannot be scaled (noted, or listed in ``flat_phys``)."""
    n_spr = s.samples_per_data_record
    pmin, pmax = _header_number(s, "physical_min", k, path), _header_number(s, "physical_max", k, path)
    dmin, dmax = _header_number(s, "digital_min", k, path), _header_number(s, "digital_max", k, path)
    unit = s.physical_dimension.strip()
    ctype = (row.get("type") or "").upper()
    transducer = s.transducer_type.strip()
    is_emg = ctype == "EMG" or (not ctype and "EMG" in (transducer + " " + label).upper())
    if n_spr <= 0:
        notes.append(f"{label}: 0 samples per record; signal skipped")
        return None
    if dmax <= dmin:
        notes.append(f"{label}: digital maximum {dmax:g} <= minimum {dmin:g}; signal dropped (cannot be scaled)")
        return None
    if pmax == pmin:
        flat_phys.append(label)
        return None
    rate = _checked_rate(s, duration, label, row, notes, conflicts)
    unit = _checked_unit(unit, label, row, notes, conflicts)
    values = np.array(s.data, dtype=np.float64)  # edfio: (digital - dmin) scaled onto pmin..pmax
    if dmin < (-8388608 if bdf else -32768):
        notes.append(f"{label}: digital minimum {dmin:g} outside the {'BDF' if bdf else 'EDF'} range")
    if is_emg:
        factor = emg_unit_factor(unit)
        if factor is None:
            notes.append(f"{label}: EMG unit {unit!r} is not a voltage unit; amplitude cannot be checked")
        else:
            range_mv = max(abs(pmin), abs(pmax)) * factor
            peak_mv = float(np.max(np.abs(values))) * factor if values.size else 0.0
            if range_mv > EMG_PLAUSIBLE_MAX_MV and peak_mv > EMG_PLAUSIBLE_MAX_MV:
                conflicts.append(
                    f"{label}: EMG physical range {pmin:g} to {pmax:g} {unit} and peak {peak_mv:.4g} mV are "
                    f"implausible for surface EMG (< {EMG_PLAUSIBLE_MAX_MV:g} mV); the unit is probably wrong "
                    f"by a factor 1000 (uV written as mV, or V as mV)")
    desc = row.get("description") or (ctype if ctype else transducer)
    status = row.get("status", "")
    if status and status not in ("good", "n/a"):
        notes.append(f"{label}: _channels.tsv status is {status!r}")
    return AnalogChannel(label=label, unit=unit, rate_hz=float(rate), data=values, description=desc)


def _checked_rate(s, duration: float, label: str, row: dict, notes: list[str], conflicts: list[str]) -> float:
    """The EDF rate, or the ``_channels.tsv`` rate when the EDF one is its rounding (< 1 sample per record)."""
    rate = s.samples_per_data_record / duration
    tsv_rate = row.get("sampling_frequency", "")
    if tsv_rate in ("", "n/a"):
        return rate
    try:
        r_tsv = float(tsv_rate)
    except ValueError:
        return rate
    if r_tsv and abs(r_tsv - rate) > 1e-9 * r_tsv:
        if abs(r_tsv - rate) * duration < 1.0:
            notes.append(f"{label}: EDF rate {rate:.10g} Hz ({s.samples_per_data_record} samples per {duration:g}-s "
                         f"record) is the rounding of the _channels.tsv rate {r_tsv:.10g} Hz, which is used")
            return r_tsv
        conflicts.append(f"{label}: EDF rate {rate:.10g} Hz but _channels.tsv says {r_tsv:.10g} Hz")
    return rate


def _checked_unit(unit: str, label: str, row: dict, notes: list[str], conflicts: list[str]) -> str:
    """The EDF unit against the ``_channels.tsv`` one: same unit respelled, a garbled one replaced, or a conflict."""
    tsv_unit = row.get("units", "")
    if tsv_unit in ("", "n/a") or tsv_unit == unit:
        return unit
    f_edf, f_tsv = emg_unit_factor(unit), emg_unit_factor(tsv_unit)
    if f_edf is None or f_tsv is None:
        notes.append(f"{label}: EDF unit {unit!r} replaced by the _channels.tsv unit {tsv_unit!r}")
        return tsv_unit
    if f_edf != f_tsv:
        conflicts.append(f"{label}: unit {unit!r} in the EDF but {tsv_unit!r} in the _channels.tsv")
        return unit
    return tsv_unit  # same unit, spelled as in the _channels.tsv (e.g. µV for uV)


# ----------------------------------------------------------------------------------------- writing
def _ascii(text: str, width: int) -> tuple[str, bool]:
    """Printable ASCII padded to ``width``; True when something was lost."""
    t = text.replace("µ", "u").replace("μ", "u").replace("°", "deg")
    a = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in t)
    return a[:width].ljust(width), a != text or len(a) > width


def _duration_text(d: float) -> str:
    txt = f"{d:.6f}".rstrip("0").rstrip(".")
    return txt[:8]


def _choose_record(rates: list[float], lengths: list[int]) -> tuple[float, list[int], int]:
    """Record duration, samples per record and record count.

    Among durations giving an integer number of samples per record for every rate (within 10 ppm,
    below the tolerance of acquisition clocks),
    the one with the least padding wins, then the one with the smallest rate error, then the one
    closest to 1 s. When all channels last equally long, a single record holding everything is also
    a candidate (no padding).
    """
    cands = [0.01, 0.02, 0.04, 0.05, 0.1, 0.2, 0.25, 0.5] + list(range(1, 1001))
    durations = {round(n / r, 9) for n, r in zip(lengths, rates)}
    best = None
    for d in cands:
        spr, err = [], 0.0
        for r in rates:
            x = r * d
            k = int(round(x))
            if abs(x - k) > 1e-5 * max(1.0, x) or k < 1 or k >= 10 ** 8:
                break
            spr.append(k)
            err = max(err, abs(k / d - r) / r)
        else:
            n_rec = max(math.ceil(n / k) for n, k in zip(lengths, spr))
            pad = sum((n_rec * k - n) / r for n, k, r in zip(lengths, spr, rates))
            score = (round(pad, 9), err, abs(math.log(d)))
            if best is None or score < best[0]:
                best = (score, (float(d), spr, n_rec))
    if len(durations) == 1 and (best is None or best[0][0] > 0):
        d = float(_duration_text(lengths[0] / rates[0]))
        if d > 0 and all(n < 10 ** 8 for n in lengths):
            return d, list(lengths), 1
    if best is None:
        raise ReaderError("edf_write_rate", f"no EDF record duration gives an integer number of samples for the "
                          f"rates {sorted(set(rates))} Hz; resample the channels.")
    return best[1]


def write_edf(path: Path, recording: Recording, *, bdf: bool | None = None) -> list[str]:
    """Write ``recording.analogs`` (and its events as EDF+ annotations) to an EDF+C or BDF+C file with ``edfio``.

    Each channel gets its own physical range (its min/max, rounded outwards by ``edfio`` to the
    8-character header field) mapped onto the full digital range, so values round-trip within
    (max - min) / 65535 (EDF) or / 16777215 (BDF). Per-channel rates are kept (samples per record,
    within 10 ppm); the record duration is chosen to pad the last record least (padding repeats the
    last sample and is noted). Labels longer than 16 characters and units longer than 8 are truncated
    (noted; a BIDS ``_channels.tsv`` keeps the full names). NaN samples are written as 0 (noted).

    Parameters
    ----------
    bdf
        Write 24-bit BDF; default: True when ``path`` ends in ``.bdf``.

    Returns
    -------
    list of str
        Notes on everything that was not written exactly.

    Raises
    ------
    ReaderError
        ``edf_write_empty`` (no analog channel, or one without samples), ``edf_write_rate`` (rates
        with no common record duration) or ``edf_write_range`` (a value edfio cannot store).
    """
    path = Path(path)
    if bdf is None:
        bdf = path.suffix.lower() == ".bdf"
    chans = list(recording.analogs)
    if not chans:
        raise ReaderError("edf_write_empty", "The recording has no analog channel to write to EDF/BDF.")
    empty = [a.label for a in chans if len(a.data) == 0 or not a.rate_hz or a.rate_hz <= 0]
    if empty:
        raise ReaderError("edf_write_empty", f"channels without samples or rate cannot be written: {empty}.")
    notes: list[str] = []
    rates = [float(a.rate_hz) for a in chans]
    lengths = [len(a.data) for a in chans]
    duration, spr, n_rec = _choose_record(rates, lengths)
    signal_class, edf_class = (edfio.BdfSignal, edfio.Bdf) if bdf else (edfio.EdfSignal, edfio.Edf)
    subject = _ascii((recording.subject_id or "X").replace(" ", "_"), 74)[0].strip()
    try:
        signals = [_signal_to_write(a, k, n_rec, duration, signal_class, notes) for a, k in zip(chans, spr)]
        notes += [f"{a.label}: rate {a.rate_hz:g} Hz stored as {k} samples per {duration:g} s ({k / duration:.9g} Hz)"
                  for a, k in zip(chans, spr) if abs(k / duration - a.rate_hz) > 1e-9 * a.rate_hz]
        edf = edf_class(signals, patient=edfio.Patient(code=subject),
                        recording=edfio.Recording(equipment_code="myomap"), data_record_duration=duration,
                        annotations=[edfio.EdfAnnotation(ev.time_s, None, f"{ev.event} {ev.side}")
                                     for ev in recording.events])
        edf.write(path)
    except ValueError as exc:
        raise ReaderError("edf_write_range", f"{path.name}: edfio cannot store the recording ({exc}).") from None
    return notes


def _signal_to_write(a: AnalogChannel, k: int, n_rec: int, duration: float, signal_class, notes: list[str]):
    """One channel as an edfio signal: NaN as 0, the last record padded, label and unit in ASCII (noted)."""
    x = np.asarray(a.data, dtype=np.float64)
    n = len(x)
    if np.isnan(x).any():
        notes.append(f"{a.label}: {int(np.isnan(x).sum())} NaN samples written as 0 (EDF has no missing value)")
        x = np.nan_to_num(x, nan=0.0)
    if n_rec * k > n:
        notes.append(f"{a.label}: last record padded with {n_rec * k - n} copies of the last sample")
        x = np.concatenate([x, np.full(n_rec * k - n, x[-1])])
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        lo, hi = lo - 1.0, hi + 1.0
    lab, lost = _ascii(a.label, 16)
    if lost:
        notes.append(f"label {a.label!r} written as {lab.strip()!r}")
    unit, unit_lost = _ascii(a.unit, 8)
    if unit_lost:
        notes.append(f"{a.label}: unit {a.unit!r} written as {unit.strip()!r}")
    return signal_class(x, sampling_frequency=k / duration, label=lab.rstrip(), physical_dimension=unit.rstrip(),
                        transducer_type=_ascii(a.description, 80)[0].rstrip(), physical_range=(lo, hi))
