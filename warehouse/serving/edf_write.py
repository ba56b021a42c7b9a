"""EDF+C and BDF+C writing through ``edfio`` (an export concern: BIDS exports and test fixtures).

The reader lives in ``warehouse/ingest/readers/edf.py``; its ``_ascii`` tolerates the labels this
writer shortens (:func:`edf_ascii`, same rule), and the round trips of
``tests/test_readers_edfio.py``, ``tests/test_readers_formats.py`` and ``tests/test_readers_bids.py``
pin the two together.

The file carries no date or name: the EDF+ patient field holds the pseudonym only and the
recording start date is the anonymised ``Startdate X`` (edfio's default).
"""
from __future__ import annotations

import math
from pathlib import Path

import edfio
import numpy as np


class WriteError(ValueError):
    """Data that cannot be written in the export format. ``reason_code`` is stable; ``message`` says why."""

    def __init__(self, reason_code: str, message: str):
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


def edf_ascii(text: str, width: int) -> tuple[str, bool]:
    """Printable ASCII padded to ``width`` (an EDF header field); True when something was lost."""
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
        raise WriteError("edf_write_rate", f"no EDF record duration gives an integer number of samples for the "
                          f"rates {sorted(set(rates))} Hz; resample the channels.")
    return best[1]


def write_edf(path: Path, recording, *, bdf: bool | None = None) -> list[str]:
    """Write ``recording.analogs`` (and its events as EDF+ annotations) to an EDF+C or BDF+C file with ``edfio``.

    ``recording`` is any object with ``analogs`` (each with ``label``, ``unit``, ``rate_hz``,
    ``data``, ``description``), ``events`` (each with ``time_s``, ``event``, ``side``) and
    ``subject_id``: an ingest ``Recording`` or a lake trial being exported.

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
    WriteError
        ``edf_write_empty`` (no analog channel, or one without samples), ``edf_write_rate`` (rates
        with no common record duration) or ``edf_write_range`` (a value edfio cannot store).
    """
    path = Path(path)
    if bdf is None:
        bdf = path.suffix.lower() == ".bdf"
    chans = list(recording.analogs)
    if not chans:
        raise WriteError("edf_write_empty", "The recording has no analog channel to write to EDF/BDF.")
    empty = [a.label for a in chans if len(a.data) == 0 or not a.rate_hz or a.rate_hz <= 0]
    if empty:
        raise WriteError("edf_write_empty", f"channels without samples or rate cannot be written: {empty}.")
    notes: list[str] = []
    rates = [float(a.rate_hz) for a in chans]
    lengths = [len(a.data) for a in chans]
    duration, spr, n_rec = _choose_record(rates, lengths)
    signal_class, edf_class = (edfio.BdfSignal, edfio.Bdf) if bdf else (edfio.EdfSignal, edfio.Edf)
    subject = edf_ascii((recording.subject_id or "X").replace(" ", "_"), 74)[0].strip()
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
        raise WriteError("edf_write_range", f"{path.name}: edfio cannot store the recording ({exc}).") from None
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
    lab, lost = edf_ascii(a.label, 16)
    if lost:
        notes.append(f"label {a.label!r} written as {lab.strip()!r}")
    unit, unit_lost = edf_ascii(a.unit, 8)
    if unit_lost:
        notes.append(f"{a.label}: unit {a.unit!r} written as {unit.strip()!r}")
    return signal_class(x, sampling_frequency=k / duration, label=lab.rstrip(), physical_dimension=unit.rstrip(),
                        transducer_type=edf_ascii(a.description, 80)[0].rstrip(), physical_range=(lo, hi))
