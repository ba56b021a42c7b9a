"""Delsys Trigno / EMGworks CSV export: ``Label: ...`` header lines, one time column per channel."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import polars as pl

from schemas import vocab
from warehouse.ingest.readers.base import AnalogChannel, Event, ReaderError, Recording

_LABEL = re.compile(
    r"^Label:\s*(?P<label>.+?)\s+Sampling frequency:\s*(?P<rate>[-+0-9.eE]+)\s+Number of points:\s*"
    r"(?P<n>\d+)\s+start:\s*(?P<start>[-+0-9.eE]+)\s+Unit:\s*(?P<unit>.*?)\s+Domain Unit:\s*(?P<dunit>\S+)")


def sniff_delsys(head: bytes) -> bool:
    return head.lstrip().startswith(b"Label:") and b"Sampling frequency:" in head[:2000]


def read_delsys_csv(path: Path, *, companions: dict | None = None) -> Recording:
    """Read an EMGworks CSV. A BIDS-style ``<stem>_events.tsv`` companion supplies gait events.

    Raises
    ------
    ReaderError
        ``empty_file`` or ``delsys_header`` when the header block cannot be parsed.
    """
    raw = Path(path).read_bytes()
    if not raw:
        raise ReaderError("empty_file", "The file is empty (0 bytes): re-export it from EMGworks.")
    fast = _plain_rows(raw)  # (header lines, data rows' bytes) of an export with plain rows, else None
    lines = fast[0] if fast is not None else raw.decode("utf-8", errors="replace").splitlines()
    meta, header_row = [], None
    for i, line in enumerate(lines[:2000]):
        m = _LABEL.match(line)
        if m:
            meta.append(m.groupdict())
        elif line.startswith("X[s]"):
            header_row = i
            break
    if not meta or header_row is None:
        raise ReaderError("delsys_header", "No 'Label: ... Sampling frequency: ...' header block followed by an "
                          "'X[s],...' column row: is this an EMGworks CSV export?")
    header = next(csv.reader([lines[header_row]]))
    if len(header) != 2 * len(meta):
        raise ReaderError("delsys_columns", f"The column row has {len(header)} columns but the header block "
                          f"describes {len(meta)} channels ({2 * len(meta)} columns with their time columns): "
                          "the export is damaged; re-export it from EMGworks.")
    nl = fast[1].find(b"\n") if fast is not None else -1
    first_row = fast[1][:nl] if nl >= 0 else b'"'
    if first_row.count(b",") + 1 == len(header) and b'"' not in first_row:  # plain rows, the header's columns
        columns = _value_columns_bytes(fast[1], len(header))
    else:
        rows = fast[1].decode("ascii").splitlines() if fast is not None else lines[header_row + 1:]
        columns = _value_columns_text("\n".join(rows), len(header))
    for m in meta:
        try:
            m["rate"], m["n"] = float(m["rate"]), int(m["n"])
        except ValueError:
            raise ReaderError("delsys_header", f"Channel '{m['label']}' has an unreadable sampling frequency "
                              f"'{m['rate']}' or point count '{m['n']}'; re-export from EMGworks.") from None
        if not (0 < m["rate"] < 1e6):
            raise ReaderError("delsys_header", f"Channel '{m['label']}' declares an impossible sampling "
                              f"frequency of {m['rate']} Hz.")
    rec = Recording(format="delsys_csv", vendor="Delsys", software="EMGworks")
    for m, values in zip(meta, columns):
        declared = int(m["n"])
        if len(values) < declared:
            rec.notes.append(f"{m['label']}: header says {declared} points, file has {len(values)} (truncated)")
        rec.analogs.append(AnalogChannel(label=m["label"], unit=m["unit"], rate_hz=float(m["rate"]),
                                         data=values.astype(np.float64)))
    emg_rates = {a.rate_hz for a in rec.analogs if ": EMG" in a.label}
    rec.analog_rate_hz = max(emg_rates) if emg_rates else None
    rec.events = read_events_tsv(companions.get("events")) if companions and companions.get("events") else []
    return rec


#: What ``str.splitlines`` splits lines on besides ``\n`` and ``\r\n`` (a lone ``\r`` aside): rows holding any, or a
#: byte that is not ASCII, are read as text, line by line (the rows' bytes are parsed directly otherwise).
_OTHER_LINE_BREAKS = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")


def _plain_rows(raw: bytes) -> tuple[list[str], bytes] | None:
    """(the lines up to the first ``X[s]`` column row, the bytes after it) when those lines are the ones the
    whole file's ``splitlines`` starts with (the row within the first 2 000 lines) and the rows after it are
    plain ASCII with ``\n`` or ``\r\n`` line ends: the header is read as before, the samples are not decoded
    and split line by line. None otherwise (the text path then reads the file)."""
    at = 0 if raw.startswith(b"X[s]") else raw.find(b"\nX[s]") + 1
    if at == 0 and not raw.startswith(b"X[s]"):
        return None
    end = raw.find(b"\n", at)
    cut = len(raw) if end < 0 else end + 1
    body = raw[cut:]
    if not body.isascii() or body.count(b"\r") != body.count(b"\r\n") or any(b in body for b in _OTHER_LINE_BREAKS):
        return None
    lines = raw[:cut].decode("utf-8", errors="replace").splitlines()
    if len(lines) > 2000 or not lines[-1].startswith("X[s]") or any(x.startswith("X[s]") for x in lines[:-1]):
        return None
    return lines, body


def _value_columns(df: pl.DataFrame) -> list[np.ndarray]:
    """Each value column (strings) of the rows, stripped, read as float64, cells that are not a number left out
    (one query for every column)."""
    one = df.select(pl.col(c).str.strip_chars().cast(pl.Float64, strict=False).drop_nulls().implode()
                    for c in df.columns)
    return [col[0].to_numpy() for col in one.get_columns()]


def _value_columns_text(body: str, width: int) -> list[np.ndarray]:
    """The value columns (every second column) of the data rows as text (the general path)."""
    names = [f"c{i}" for i in range(width)]
    try:
        df = pl.read_csv(io.StringIO(body), has_header=False, new_columns=names, infer_schema=False,
                         truncate_ragged_lines=True, extra_columns="ignore")
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise ReaderError("delsys_rows", f"The data rows cannot be parsed ({str(exc)[:160]}); "
                          "re-export the file from EMGworks.") from exc
    if df.width < width:
        raise ReaderError("delsys_columns", f"The data rows have {df.width} columns, the header {width}.")
    return _value_columns(df.select(names[1::2]))


def _value_columns_bytes(body: bytes, width: int) -> list[np.ndarray]:
    """:func:`_value_columns_text` of a plain export whose first row has the header's ``width`` columns: only the
    value columns parsed, from the bytes (the same strings, so the same numbers and nulls)."""
    try:
        df = pl.read_csv(body, has_header=False, columns=list(range(1, width, 2)), infer_schema=False,
                         truncate_ragged_lines=True)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise ReaderError("delsys_rows", f"The data rows cannot be parsed ({str(exc)[:160]}); "
                          "re-export the file from EMGworks.") from exc
    return _value_columns(df)


def read_events_tsv(path: Path | None) -> list[Event]:
    """BIDS-style events: columns onset (s), trial_type (foot_strike/foot_off), side (L/R)."""
    if path is None:
        return []
    df = pl.read_csv(path, separator="\t", infer_schema=False)
    need = {"onset", "trial_type", "side"}
    if not need <= set(df.columns):
        raise ReaderError("events_columns", f"{Path(path).name} needs columns {sorted(need)}; has {df.columns}.")
    out = []
    for onset, ttype, side in df.select("onset", "trial_type", "side").iter_rows():
        parsed = vocab.parse_gait_event(ttype or "", side)  # side column, else a side in the label (RHS...)
        if parsed and parsed[0] in vocab.SIDES:
            out.append(Event(parsed[0], parsed[1], float(onset), "annotated"))
    return sorted(out, key=lambda e: e.time_s)
