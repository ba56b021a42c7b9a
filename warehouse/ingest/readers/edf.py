"""EDF, EDF+ and BDF (24-bit) through ``edfio``, with myomap's quirk and conflict rules on top.

``edfio`` decodes the header, the digital -> physical scaling, the per-signal rates (samples per
record / record duration) and the EDF+ annotations.  This module adds what ``edfio`` leaves to its
caller (writing EDF+C / BDF+C is an export concern: ``warehouse/serving/edf_write.py``):

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
import re
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


# ------------------------------------------------------------------------------ labels as an EDF writer stores them
def _ascii(text: str, width: int) -> tuple[str, bool]:
    """Printable ASCII padded to ``width``; True when something was lost.

    The rule by which ``warehouse/serving/edf_write.py`` stores a long or non-ASCII label, so that a
    ``_channels.tsv`` name whose EDF label is its truncation is recognised (round trips in
    tests/test_readers_bids.py pin the two together).
    """
    t = text.replace("µ", "u").replace("μ", "u").replace("°", "deg")
    a = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in t)
    return a[:width].ljust(width), a != text or len(a) > width
