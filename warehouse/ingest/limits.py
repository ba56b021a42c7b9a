"""What a file declares, checked against ``Settings.limits`` before any sample is decoded.

Readers decode whole recordings into float64 arrays, so the memory a file costs is set by
what its header declares, not by its size on disk: a 20 kB C3D can declare 65 535 frames
of 4 000 analog values, and a 1 MB MATLAB file can inflate to gigabytes (a zlib bomb).
:func:`check_declared` reads headers only (C3D: 512 bytes; EDF/BDF: 256 bytes per signal;
MATLAB v5: the first bytes of each variable, inflating at most 256 bytes of a compressed
one; MATLAB v7.3: HDF5 metadata) and refuses a file that declares more channels than
``limits.channels`` or more values (channels x samples) than ``limits.samples``. Text
formats (CSV, TSV, TXT, TRC, MOT, ANC) have no such header: their values are estimated from
the first 64 kB (columns of the widest line x lines the file holds at that line length).

Together with the per-format size limit (:mod:`warehouse.ingest.inbox`) and the address-
space cap of the isolated C3D reader (``limits.reader_memory_bytes``), this bounds the
memory one file can cost: see README "Limits".
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

from warehouse.ingest.readers.base import ReaderError
from warehouse.settings import Limits

_MAT_HEADER = 128
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".trc", ".mot", ".anc")
_TEXT_SAMPLE = 1 << 16


def check_declared(path: Path, limits: Limits) -> dict | None:
    """Refuse a file whose header declares too much; return what was declared (or None).

    Returns
    -------
    dict or None
        ``{"format", "channels", "values"}`` as declared, when the format has such a
        header; None for other files (or headers too damaged to say: the reader decides).

    Raises
    ------
    ReaderError
        ``too_many_channels`` or ``too_many_samples``.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(_MAT_HEADER)
    try:
        if head[1:2] == b"\x50" and path.suffix.lower() not in (".csv", ".txt", ".tsv"):
            found = _c3d(path)
        elif head[:8] in (b"0       ", b"\xffBIOSEMI"):
            found = _edf(path)
        elif path.suffix.lower() == ".mat":
            found = _mat(path, limits)
        elif path.suffix.lower() in _TEXT_SUFFIXES:
            found = _text(path)
        else:
            found = None
    except (struct.error, ValueError, IndexError, OSError, zlib.error):
        return None  # not enough of a header to judge: the reader will say what is wrong
    if found is None:
        return None
    if found["channels"] > limits.channels:
        raise ReaderError("too_many_channels", f"The {found['format']} header declares {found['channels']:,} "
                          f"channels, over the limit of {limits.channels:,} (MYOMAP_MAX_CHANNELS): not decoded.")
    if found["values"] > limits.samples:
        raise ReaderError("too_many_samples", f"The {found['format']} header declares {found['values']:,} values "
                          f"(channels x samples), over the limit of {limits.samples:,} (MYOMAP_MAX_SAMPLES, "
                          f"{limits.samples * 8 / 2**20:,.0f} MB as float64): not decoded. Split the recording.")
    return found


def _text(path: Path) -> dict | None:
    """Columns of the widest of the first lines, times the lines the file holds at their mean length."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(_TEXT_SAMPLE)
    lines = head.split(b"\n")
    if len(head) == size:
        complete = [ln for ln in lines if ln.strip()]
    else:
        complete = [ln for ln in lines[:-1] if ln.strip()]  # the last one may be cut
    if not complete:  # one line longer than the sample: count its separators as far as we read
        widest = max(head.count(b","), head.count(b"\t"), head.count(b";")) + 1
        return {"format": "text", "channels": widest, "values": widest}
    widest = max(max(ln.count(b","), ln.count(b"\t"), ln.count(b";")) + 1 for ln in complete)
    per_line = max(len(head) / max(len(lines) - 1, 1), 1.0)
    return {"format": "text", "channels": widest, "values": int(widest * size / per_line)}


def _c3d(path: Path) -> dict | None:
    with open(path, "rb") as fh:
        h = fh.read(512)
    if len(h) < 512:
        return None
    proc = 0
    with open(path, "rb") as fh:  # processor type (byte 4 of the parameter section) sets the byte order
        fh.seek(max(h[0] - 1, 0) * 512 + 3)
        p = fh.read(1)
        proc = p[0] if p else 0
    order = ">" if proc == 86 else "<"
    points, analog_per_frame, first, last = struct.unpack(order + "4H", h[2:10])
    spf = struct.unpack(order + "H", h[18:20])[0] or 1
    frames = max(last - first + 1, 0)
    channels = points + analog_per_frame // spf
    return {"format": "C3D", "channels": channels, "values": frames * (4 * points + analog_per_frame)}


def _edf(path: Path) -> dict | None:
    with open(path, "rb") as fh:
        h = fh.read(256)
        ns = int(h[252:256].strip() or 0)
        if ns <= 0:
            return None
        rec = int(h[236:244].strip() or -1)
        fh.seek(256 + ns * 216)
        spr = [int(fh.read(8).strip() or 0) for _ in range(min(ns, 100_000))]
    per_record = sum(spr)
    if rec < 0:  # unknown record count (-1): what fits in the file
        width = 3 if h[:1] == b"\xff" else 2
        rec = max(path.stat().st_size - 256 * (ns + 1), 0) // max(per_record * width, 1)
    return {"format": "EDF/BDF", "channels": ns, "values": rec * per_record}


def _mat(path: Path, limits: Limits) -> dict | None:
    with open(path, "rb") as fh:
        head = fh.read(_MAT_HEADER)
    if _is_hdf5(path):  # MATLAB v7.3: HDF5 after a 512-byte text header
        return _hdf5(path)
    if len(head) < _MAT_HEADER or not head.startswith(b"MATLAB"):
        return None
    order = "<" if head[126:128] == b"IM" else ">"
    channels = values = 0
    with open(path, "rb") as fh:
        fh.seek(_MAT_HEADER)
        while (tag := fh.read(8)) and len(tag) == 8:
            dtype, nbytes = struct.unpack(order + "II", tag)
            if dtype & 0xFFFF0000:  # small data element: no variable header to read
                continue
            body_start = fh.tell()
            if dtype == _MI_COMPRESSED:
                inflater = zlib.decompressobj()
                first = inflater.decompress(fh.read(min(nbytes, 4096)), 256)
                n = _matrix_elements(first[8:], order) if first[:4] and \
                    struct.unpack(order + "I", first[:4])[0] == _MI_MATRIX else 0
            elif dtype == _MI_MATRIX:
                n = _matrix_elements(fh.read(min(nbytes, 256)), order)
            else:
                n = 0
            channels += 1
            values += n
            if values > limits.samples:
                break
            fh.seek(body_start + nbytes + (-nbytes % 8 if dtype != _MI_COMPRESSED else 0))
    return {"format": "MATLAB", "channels": 0, "values": values}


def _matrix_elements(body: bytes, order: str) -> int:
    """Elements declared by a miMATRIX body (array flags, then the dimensions sub-element)."""
    flags_type, flags_len = struct.unpack(order + "II", body[:8])
    p = 8 + flags_len
    dtype, nbytes = struct.unpack(order + "II", body[p:p + 8])
    if dtype & 0xFFFF0000:  # small element: dims packed in the tag
        nbytes, dims_raw = dtype >> 16, body[p + 4:p + 8]
    else:
        dims_raw = body[p + 8:p + 8 + nbytes]
    dims = struct.unpack(order + f"{nbytes // 4}i", dims_raw[:nbytes - nbytes % 4])
    n = 1
    for d in dims:
        n *= max(d, 0)
    return n


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        for off in (0, 512, 1024, 2048):
            fh.seek(off)
            if fh.read(8) == b"\x89HDF\r\n\x1a\n":
                return True
    return False


def _hdf5(path: Path) -> dict:
    import h5py

    total = {"n": 0, "sets": 0}

    def visit(_name, obj):
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            n = 1
            for d in obj.shape:
                n *= d
            total["n"] += n
            total["sets"] += 1
    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return {"format": "MATLAB v7.3", "channels": 0, "values": total["n"]}
