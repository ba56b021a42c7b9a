"""EDF, EDF+ and BDF (24-bit) reader and writer, written from the format specification.

Reading applies the per-signal digital -> physical scaling, gives each signal its own rate
(samples per record / record duration), turns ``EDF Annotations`` naming foot strikes / foot offs
into :class:`~warehouse.readers.base.Event` and cross-checks the header against an optional BIDS
``_channels.tsv`` companion (role ``"channels"``).

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
from pathlib import Path

import numpy as np

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

_FIELDS = (("label", 16), ("transducer", 80), ("unit", 8), ("pmin", 8), ("pmax", 8), ("dmin", 8),
           ("dmax", 8), ("prefilter", 80), ("spr", 8), ("reserved", 32))
_STRIKE = ("foot strike", "heel strike", "initial contact", "foot contact", "touchdown", "touch down",
           "heel contact")
_OFF = ("foot off", "toe off", "terminal contact", "lift off", "liftoff", "toe-off")
_ABBREV = {"hs": "foot_strike", "fs": "foot_strike", "ic": "foot_strike", "to": "foot_off", "fo": "foot_off"}


def parse_event_label(text: str) -> tuple[str, str] | None:
    """``(side, event)`` when an annotation names a left/right foot strike or foot off, else None.

    Accepts e.g. ``"foot_strike L"``, ``"Left Foot Strike"``, ``"heel strike right"``, ``"RHS"``, ``"LTO"``.
    """
    t = re.sub(r"[^a-z]+", " ", text.lower()).strip()
    if not t:
        return None
    words = t.split()
    side = None
    for w in words:
        if w in ("l", "left", "lt"):
            side = "L"
        elif w in ("r", "right", "rt"):
            side = "R"
    event = None
    if any(p in t for p in _STRIKE):
        event = "foot_strike"
    elif any(p in t for p in _OFF):
        event = "foot_off"
    if event is None and len(words) == 1 and len(words[0]) == 3 and words[0][0] in "lr":
        event = _ABBREV.get(words[0][1:])
        side = words[0][0].upper() if event else None
    return (side, event) if side and event else None


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


def _read_header(raw: bytes, path: Path) -> dict:
    if len(raw) < 256:
        raise ReaderError("edf_header", f"{path.name} is {len(raw)} bytes, shorter than an EDF header (256 bytes).")
    bdf = raw[:8] == b"\xffBIOSEMI"
    if not bdf and raw[:8].strip() != b"0":
        raise ReaderError("edf_header", f"{path.name} does not start with an EDF ('0') or BDF (0xFF 'BIOSEMI') "
                          "version field; it is not an EDF/BDF file.")
    h = {"bdf": bdf, "patient": raw[8:88].decode("latin-1").strip(),
         "recording": raw[88:168].decode("latin-1").strip(), "reserved": raw[192:236].decode("latin-1").strip()}
    h["header_bytes"] = int(_num(raw[184:192].decode("latin-1"), "header bytes", path))
    h["n_records"] = int(_num(raw[236:244].decode("latin-1"), "number of data records", path))
    h["duration"] = _num(raw[244:252].decode("latin-1"), "data record duration", path)
    ns = int(_num(raw[252:256].decode("latin-1"), "number of signals", path))
    if ns <= 0 or len(raw) < 256 * (ns + 1):
        raise ReaderError("edf_header", f"{path.name}: the header declares {ns} signals but is truncated or "
                          "empty; re-export the file.")
    off = 256
    sig = {}
    for name, width in _FIELDS:
        sig[name] = [raw[off + i * width: off + (i + 1) * width].decode("latin-1").strip() for i in range(ns)]
        off += ns * width
    for key in ("pmin", "pmax", "dmin", "dmax", "spr"):
        sig[key] = [_num(v, f"{key} of signal {i + 1}", path) for i, v in enumerate(sig[key])]
    h["ns"], h["sig"] = ns, sig
    return h


def _tals(block: bytes) -> list[tuple[float, str]]:
    """(onset, text) pairs of one annotation block; the time-keeping TAL gives text ''."""
    out = []
    for tal in block.split(b"\x00"):
        if not tal or tal[:1] not in (b"+", b"-"):
            continue
        parts = tal.split(b"\x14")
        onset = parts[0].split(b"\x15")[0]
        try:
            t = float(onset.decode("latin-1"))
        except ValueError:
            continue
        texts = [p.decode("utf-8", errors="replace") for p in parts[1:] if p]
        out.extend([(t, x) for x in texts] if texts else [(t, "")])
    return out


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
        ``empty_file``, ``edf_header`` (not an EDF/BDF or unreadable header), ``edf_truncated`` (not
        even one data record), ``edf_discontinuous`` (EDF+D with gaps), ``edf_no_signals``,
        ``edf_channels_tsv`` (unreadable companion) or ``edf_metadata_conflict``.
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw:
        raise ReaderError("empty_file", f"{path.name} is empty (0 bytes): re-export it.")
    h = _read_header(raw, path)
    sig, ns, bdf = h["sig"], h["ns"], h["bdf"]
    bps = 3 if bdf else 2
    spr = [int(round(s)) for s in sig["spr"]]
    rec_bytes = sum(spr) * bps
    fmt = ("bdf" if bdf else "edf") + ("+" if h["reserved"].upper().startswith(("EDF+", "BDF+")) else "")
    rec = Recording(format=fmt)
    notes, conflicts = rec.notes, []
    if rec_bytes <= 0 or h["duration"] < 0:
        raise ReaderError("edf_header", f"{path.name}: records of {rec_bytes} bytes lasting {h['duration']} s; "
                          "the header is corrupt.")
    avail = (len(raw) - h["header_bytes"]) // rec_bytes
    n_rec = h["n_records"]
    if n_rec < 0:
        n_rec = avail
        notes.append(f"number of data records not set in the header (-1); {avail} complete records read")
    elif avail < n_rec:
        if avail == 0:
            raise ReaderError("edf_truncated", f"{path.name}: header declares {n_rec} data records but the file "
                              "does not hold a single complete one; the transfer was truncated.")
        notes.append(f"file truncated: header declares {n_rec} data records, file holds {avail} complete records")
        n_rec = avail
    elif len(raw) > h["header_bytes"] + n_rec * rec_bytes:
        notes.append(f"{len(raw) - h['header_bytes'] - n_rec * rec_bytes} bytes after the last data record ignored")
    block = np.frombuffer(raw, dtype=np.uint8, count=n_rec * rec_bytes, offset=h["header_bytes"])
    block = block.reshape(n_rec, rec_bytes)

    annot_label = "BDF Annotations" if bdf else "EDF Annotations"
    offsets = np.concatenate([[0], np.cumsum(spr) * bps])
    annot_idx = [i for i in range(ns) if sig["label"][i] == annot_label]
    data_idx = [i for i in range(ns) if i not in annot_idx]

    # annotations: time keeping + events
    rec_starts = None
    if annot_idx:
        ann = []
        starts = []
        for r in range(n_rec):
            first = None
            for i in annot_idx:
                tals = _tals(block[r, offsets[i]:offsets[i + 1]].tobytes())
                if first is None and tals:
                    first = tals[0][0]
                ann.extend(t for t in tals if t[1])
            starts.append(first if first is not None else np.nan)
        rec_starts = np.asarray(starts, dtype=float)
        expected = rec_starts[0] + h["duration"] * np.arange(n_rec)
        if fmt.endswith("+") and "D" in h["reserved"].upper()[4:5] and np.nanmax(np.abs(rec_starts - expected)) > 1e-6:
            raise ReaderError("edf_discontinuous", f"{path.name} is EDF+D with gaps between data records; "
                              "export it as a continuous (EDF+C) recording.")
        t0 = 0.0 if np.isnan(rec_starts[0]) else float(rec_starts[0])
        unparsed = []
        for onset, text in ann:
            ev = parse_event_label(text)
            if ev:
                rec.events.append(Event(ev[0], ev[1], round(onset - t0, 6), "annotated"))
            else:
                unparsed.append(text)
        rec.events.sort(key=lambda e: e.time_s)
        if unparsed:
            shown = ", ".join(sorted(set(unparsed))[:5])
            notes.append(f"{len(unparsed)} annotations are not gait events and were not imported ({shown})")
    if not data_idx:
        raise ReaderError("edf_no_signals", f"{path.name} holds only annotations, no signals.")

    # companion _channels.tsv
    tsv = None
    if companions and companions.get("channels"):
        tsv = _read_channels_tsv(companions["channels"])
        if len(tsv) != len(data_idx):
            conflicts.append(f"{Path(companions['channels']).name} lists {len(tsv)} channels, the EDF holds "
                             f"{len(data_idx)} signals")
            tsv = None

    labels = [sig["label"][i] for i in data_idx]
    dup = sorted({lb for lb in labels if labels.count(lb) > 1})
    if tsv is not None:
        for k, i in enumerate(data_idx):
            name = tsv[k].get("name", "")
            if name != labels[k] and _ascii(name, 16)[0].strip() != labels[k]:
                conflicts.append(f"signal {i + 1} is labelled {labels[k]!r} in the EDF but "
                                 f"{name!r} in the _channels.tsv")
        if dup:
            notes.append(f"EDF labels truncated to 16 characters into duplicates ({', '.join(dup)}); "
                         "full names taken from the _channels.tsv")
        labels = [row.get("name") or lb for row, lb in zip(tsv, labels)]
    elif dup:
        for lb in dup:
            n = 0
            for k in range(len(labels)):
                if labels[k] == lb:
                    n += 1
                    labels[k] = f"{lb} #{n}"
        notes.append(f"duplicate EDF labels ({', '.join(dup)}) made unique with '#n' suffixes; give a "
                     "_channels.tsv companion to restore the full names")

    dmin_all = -8388608 if bdf else -32768
    flat_phys: list[str] = []
    for k, i in enumerate(data_idx):
        row = tsv[k] if tsv is not None else {}
        label = labels[k]
        n_spr = spr[i]
        rate = n_spr / h["duration"] if h["duration"] > 0 else 0.0
        pmin, pmax, dmin, dmax = sig["pmin"][i], sig["pmax"][i], sig["dmin"][i], sig["dmax"][i]
        unit = sig["unit"][i]
        ctype = (row.get("type") or "").upper()
        is_emg = ctype == "EMG" or (not ctype and "EMG" in (sig["transducer"][i] + " " + label).upper())
        if n_spr <= 0:
            notes.append(f"{label}: 0 samples per record; signal skipped")
            continue
        if dmax <= dmin:
            notes.append(f"{label}: digital maximum {dmax:g} <= minimum {dmin:g}; signal dropped (cannot be scaled)")
            continue
        if pmax == pmin:
            flat_phys.append(label)
            continue
        # rate against the companion
        tsv_rate = row.get("sampling_frequency", "")
        if tsv_rate not in ("", "n/a"):
            try:
                r_tsv = float(tsv_rate)
            except ValueError:
                r_tsv = None
            if r_tsv and abs(r_tsv - rate) > 1e-9 * r_tsv:
                if abs(r_tsv - rate) * h["duration"] < 1.0:
                    notes.append(f"{label}: EDF rate {rate:.10g} Hz ({n_spr} samples per {h['duration']:g}-s record) "
                                 f"is the rounding of the _channels.tsv rate {r_tsv:.10g} Hz, which is used")
                    rate = r_tsv
                else:
                    conflicts.append(f"{label}: EDF rate {rate:.10g} Hz but _channels.tsv says {r_tsv:.10g} Hz")
        # unit against the companion
        tsv_unit = row.get("units", "")
        if tsv_unit not in ("", "n/a") and tsv_unit != unit:
            f_edf, f_tsv = emg_unit_factor(unit), emg_unit_factor(tsv_unit)
            if f_edf is not None and f_tsv is not None:
                if f_edf != f_tsv:
                    conflicts.append(f"{label}: unit {unit!r} in the EDF but {tsv_unit!r} in the _channels.tsv")
                else:
                    unit = tsv_unit  # same unit, spelled as in the _channels.tsv (e.g. µV for uV)
            else:
                notes.append(f"{label}: EDF unit {unit!r} replaced by the _channels.tsv unit {tsv_unit!r}")
                unit = tsv_unit
        # samples
        cols = block[:, offsets[i]:offsets[i + 1]]
        if bdf:
            b = cols.reshape(n_rec, n_spr, 3).astype(np.int32)
            dig = (b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)).ravel()
            dig = np.where(dig >= 1 << 23, dig - (1 << 24), dig)
        else:
            dig = np.ascontiguousarray(cols).view("<i2").ravel()
        gain = (pmax - pmin) / (dmax - dmin)
        values = (dig.astype(np.float64) - dmin) * gain + pmin
        if dmin < dmin_all:
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
        desc = row.get("description") or (ctype if ctype else sig["transducer"][i])
        status = row.get("status", "")
        if status and status not in ("good", "n/a"):
            notes.append(f"{label}: _channels.tsv status is {status!r}")
        rec.analogs.append(AnalogChannel(label=label, unit=unit, rate_hz=float(rate), data=values,
                                         description=desc))
    if flat_phys:
        notes.append(f"{len(flat_phys)} signals dropped because their physical minimum equals their physical "
                     f"maximum (no digital -> physical scaling possible): {', '.join(flat_phys)}")
    if not rec.analogs:
        conflicts.append("no signal could be scaled to physical units")
    emg_rates = [a.rate_hz for a in rec.analogs if "EMG" in (a.description + a.label).upper()]
    rates = emg_rates or [a.rate_hz for a in rec.analogs]
    rec.analog_rate_hz = max(rates) if rates else None
    equipment = h["recording"].split()
    if len(equipment) >= 5 and equipment[0] == "Startdate" and equipment[4] != "X":
        rec.software = " ".join(equipment[4:])
    patient = h["patient"].split()
    if patient and patient[0] not in ("X", ""):
        rec.subject_id = patient[0]
    if conflicts:
        if strict:
            resolved = ("; also handled: " + "; ".join(notes)) if notes else ""
            raise ReaderError("edf_metadata_conflict",
                              f"{path.name}: {len(conflicts)} metadata conflict(s): " + "; ".join(conflicts)
                              + resolved + ". Re-export the EDF with correct physical ranges/units, or "
                              "correct the _channels.tsv.")
        notes.extend("CONFLICT: " + c for c in conflicts)
    return rec


# ----------------------------------------------------------------------------------------- writing
def _ascii(text: str, width: int) -> tuple[str, bool]:
    """Printable ASCII padded to ``width``; True when something was lost."""
    t = text.replace("µ", "u").replace("μ", "u").replace("°", "deg")
    a = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in t)
    return a[:width].ljust(width), a != text or len(a) > width


def _bound(x: float, up: bool) -> str:
    """The shortest <= 8-character decimal >= x (``up``) or <= x."""
    for dec in range(7, -1, -1):
        s = 10.0 ** dec
        v = (math.ceil(x * s) if up else math.floor(x * s)) / s
        txt = f"{v:.{dec}f}"
        if "." in txt:
            txt = txt.rstrip("0").rstrip(".")
        if txt in ("-0", ""):
            txt = "0"
        if len(txt) <= 8:
            return txt
    raise ReaderError("edf_write_range", f"value {x:g} cannot be written in an 8-character EDF field.")


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


def _tal_onset(t: float) -> str:
    txt = f"{abs(t):.6f}".rstrip("0").rstrip(".") or "0"
    return ("-" if t < 0 else "+") + txt


def write_edf(path: Path, recording: Recording, *, bdf: bool | None = None) -> list[str]:
    """Write ``recording.analogs`` (and its events as EDF+ annotations) to an EDF+C or BDF+C file.

    Each channel gets its own physical range (its min/max, rounded outwards to the 8-character header
    field) mapped onto the full digital range, so values round-trip within (max - min) / 65535 (EDF)
    or / 16777215 (BDF). Per-channel rates are kept (samples per record, within 10 ppm); the record
    duration is chosen to pad the last record least (padding repeats the last sample and is noted).
    Labels longer than 16 characters and units longer than 8 are truncated (noted; a BIDS
    ``_channels.tsv`` keeps the full names). NaN samples are written as 0 (noted).

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
        with no common record duration) or ``edf_write_range``.
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
    bps = 3 if bdf else 2
    dmin, dmax = (-8388608, 8388607) if bdf else (-32768, 32767)
    rates = [float(a.rate_hz) for a in chans]
    lengths = [len(a.data) for a in chans]
    duration, spr, n_rec = _choose_record(rates, lengths)

    # annotations, placed in the record holding their onset
    per_rec: list[list[str]] = [[] for _ in range(n_rec)]
    for ev in recording.events:
        r = min(max(int(ev.time_s // duration), 0), n_rec - 1)
        per_rec[r].append(f"{_tal_onset(ev.time_s)}\x14{ev.event} {ev.side}\x14\x00")
    blocks = []
    for r in range(n_rec):
        blocks.append((f"{_tal_onset(r * duration)}\x14\x14\x00" + "".join(per_rec[r])).encode("latin-1"))
    annot_spr = max(1, math.ceil(max(len(b) for b in blocks) / bps))

    labels, units, descs, pmins, pmaxs, digs = [], [], [], [], [], []
    for a, k, n in zip(chans, spr, lengths):
        x = np.asarray(a.data, dtype=np.float64)
        if np.isnan(x).any():
            notes.append(f"{a.label}: {int(np.isnan(x).sum())} NaN samples written as 0 (EDF has no missing value)")
            x = np.nan_to_num(x, nan=0.0)
        total = n_rec * k
        if total > n:
            notes.append(f"{a.label}: last record padded with {total - n} copies of the last sample")
            x = np.concatenate([x, np.full(total - n, x[-1] if n else 0.0)])
        lo, hi = (float(x.min()), float(x.max())) if n else (0.0, 0.0)
        if hi - lo < 1e-12 * max(1.0, abs(hi)):
            lo, hi = lo - 1.0, hi + 1.0
        lo_t, hi_t = _bound(lo, up=False), _bound(hi, up=True)
        plo, phi = float(lo_t), float(hi_t)
        dig = np.rint((x - plo) / (phi - plo) * (dmax - dmin) + dmin)
        digs.append(np.clip(dig, dmin, dmax).astype(np.int32).reshape(n_rec, k))
        lab, lost = _ascii(a.label, 16)
        if lost:
            notes.append(f"label {a.label!r} written as {lab.strip()!r}")
        uni, ulost = _ascii(a.unit, 8)
        if ulost:
            notes.append(f"{a.label}: unit {a.unit!r} written as {uni.strip()!r}")
        labels.append(lab)
        units.append(uni)
        descs.append(_ascii(a.description, 80)[0])
        pmins.append(lo_t.ljust(8))
        pmaxs.append(hi_t.ljust(8))
    for a, k in zip(chans, spr):
        if abs(k / duration - a.rate_hz) > 1e-9 * a.rate_hz:
            notes.append(f"{a.label}: rate {a.rate_hz:g} Hz stored as {k} samples per {duration:g} s "
                         f"({k / duration:.9g} Hz)")

    ann_label = "BDF Annotations" if bdf else "EDF Annotations"
    ns = len(chans) + 1
    fields = {
        "label": labels + [ann_label.ljust(16)],
        "transducer": descs + [" " * 80],
        "unit": units + [" " * 8],
        "pmin": pmins + ["-1".ljust(8)],
        "pmax": pmaxs + ["1".ljust(8)],
        "dmin": [str(dmin).ljust(8)] * ns,
        "dmax": [str(dmax).ljust(8)] * ns,
        "prefilter": [" " * 80] * ns,
        "spr": [str(k).ljust(8) for k in spr] + [str(annot_spr).ljust(8)],
        "reserved": [" " * 32] * ns,
    }
    subject = _ascii((recording.subject_id or "X").replace(" ", "_"), 80)[0].strip()
    head = (("\xffBIOSEMI" if bdf else "0".ljust(8))
            + f"{subject} X X X".ljust(80)[:80]
            + "Startdate X X X myomap".ljust(80)
            + "01.01.85" + "00.00.00"
            + str(256 * (ns + 1)).ljust(8)
            + ("BDF+C" if bdf else "EDF+C").ljust(44)
            + str(n_rec).ljust(8) + _duration_text(duration).ljust(8) + str(ns).ljust(4))
    for name, width in _FIELDS:
        head += "".join(v[:width].ljust(width) for v in fields[name])
    out = bytearray(head.encode("latin-1"))
    for r in range(n_rec):
        for d in digs:
            row = d[r]
            if bdf:
                u = (row & 0xFFFFFF).astype(np.uint32)
                out += np.stack([u & 0xFF, (u >> 8) & 0xFF, (u >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
            else:
                out += row.astype("<i2").tobytes()
        out += blocks[r].ljust(annot_spr * bps, b"\x00")
    path.write_bytes(bytes(out))
    return notes
