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
    text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines()
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
    names = [f"c{i}" for i in range(2 * len(meta))]
    body = "\n".join(lines[header_row + 1:])
    try:
        df = pl.read_csv(io.StringIO(body), has_header=False, new_columns=names, infer_schema=False,
                         truncate_ragged_lines=True, extra_columns="ignore")
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise ReaderError("delsys_rows", f"The data rows cannot be parsed ({str(exc)[:160]}); "
                          "re-export the file from EMGworks.") from exc
    if df.width < len(names):
        raise ReaderError("delsys_columns", f"The data rows have {df.width} columns, the header {len(names)}.")
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
    for k, m in enumerate(meta):
        col = df.get_column(names[2 * k + 1]).str.strip_chars().cast(pl.Float64, strict=False)
        values = col.drop_nulls().to_numpy()
        declared = int(m["n"])
        if len(values) < declared:
            rec.notes.append(f"{m['label']}: header says {declared} points, file has {len(values)} (truncated)")
        rec.analogs.append(AnalogChannel(label=m["label"], unit=m["unit"], rate_hz=float(m["rate"]),
                                         data=values.astype(np.float64)))
    emg_rates = {a.rate_hz for a in rec.analogs if ": EMG" in a.label}
    rec.analog_rate_hz = max(emg_rates) if emg_rates else None
    rec.events = read_events_tsv(companions.get("events")) if companions and companions.get("events") else []
    return rec


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
