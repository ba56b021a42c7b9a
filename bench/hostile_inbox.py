"""Hostile inbox: 40 inputs a careless or malicious site could drop, through one real night.

    python bench/hostile_inbox.py [--keep DIR] [--no-baseline] [--json FILE]

The 40 inputs: the fixtures' ``bad/`` folder (9 real files), zero-byte and random-byte files
per extension, headers that declare absurd sizes (C3D, EDF channels and records, TRC, an
8 MB CSV header line), a MATLAB zlib bomb and an HDF5 dataset declaring a billion values,
links (to /etc/passwd, /etc/shadow, a folder, nowhere, themselves), a FIFO, a folder named
like data, odd names (not UTF-8, a newline, SQL, 244 characters) and a 1 GB sparse C3D.

The night runs in a child process of its own (``run_night``: the product path), beside a
good site. Printed per input: its status and reason. Then the figures, last line::

    hostile_inputs=40 accounted=40 aborted_runs=0 night_s=... peak_rss_night_mb=...
    peak_rss_reader_mb=... raw_max_file_mb=... peak_vs_clean_night=...

``accounted`` counts inputs with a ``files`` row that is ingested or quarantined with a
reason; ``aborted_runs`` counts nights that raised or recorded ``failed``; peak RSS is the
night process's (ru_maxrss) and the largest isolated C3D reader's (each reader reports its
own ru_maxrss; RUSAGE_CHILDREN would count the night's own pages in any process it forks);
``peak_vs_clean_night`` is the night's peak over that of the same night with the good site
only, measured in this run.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
sys.path.insert(0, str(REPO))

MANIFEST = "subjects: [{id: H01, mass_kg: 70}]\nsessions:\n  - {id: H01-S1, subject: H01, files: ['*']}\n"
GOOD_MANIFEST = "subjects: [{id: G01, mass_kg: 70}]\nsessions:\n  - {id: G01-S1, subject: G01, files: ['*.c3d']}\n"
NON_UTF8 = os.fsdecode(b"caf\xe9.c3d")


def _c3d_header_bomb() -> bytes:
    """A C3D whose header declares 65 535 frames of 255 markers and 4 000 analog values (2 kB on disk)."""
    h = bytearray(512)
    h[0], h[1] = 2, 0x50
    struct.pack_into("<4H", h, 2, 255, 4000, 1, 65535)
    struct.pack_into("<Hf", h, 12, 0, -1.0)
    struct.pack_into("<HH", h, 16, 3, 10)
    struct.pack_into("<f", h, 20, 100.0)
    params = bytearray(512)
    params[2], params[3] = 1, 84
    return bytes(h + params + bytes(1024))


def _edf(ns: int, records: int, spr: int) -> bytes:
    head = (b"0".ljust(8) + b"X".ljust(80) + b"X".ljust(80) + b"01.01.26" + b"00.00.00"
            + str(256 * (ns + 1)).encode().ljust(8) + b"".ljust(44) + str(records).encode().ljust(8)
            + b"1".ljust(8) + str(ns).encode().ljust(4))
    fields = [(16, b"EMG"), (80, b""), (8, b"uV"), (8, b"-3200"), (8, b"3200"), (8, b"-32768"), (8, b"32767"),
              (80, b""), (8, str(spr).encode()), (32, b"")]
    body = b"".join(v.ljust(w) * ns for w, v in fields)
    return head + body + bytes(4096)


def _mat_zlib_bomb(path: Path, n: int = 8000) -> None:
    """MATLAB v5 file with one compressed n x n double matrix of zeros (512 MB inflated, ~0.5 MB on disk)."""
    data_bytes = n * n * 8
    sub = struct.pack("<II", 6, 8) + struct.pack("<II", 6, 0)  # array flags: mxDOUBLE_CLASS
    sub += struct.pack("<II", 5, 8) + struct.pack("<ii", n, n)  # dimensions
    sub += struct.pack("<HH", 1, 1) + b"x\0\0\0"  # name "x" (small element)
    sub += struct.pack("<II", 9, data_bytes)  # real part: miDOUBLE
    comp = zlib.compressobj(9)
    out = [comp.compress(struct.pack("<II", 14, len(sub) + data_bytes) + sub)]
    zero = bytes(1 << 20)
    for _ in range(data_bytes >> 20):
        out.append(comp.compress(zero))
    out.append(comp.flush())
    blob = b"".join(out)
    header = b"MATLAB 5.0 MAT-file, hostile".ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    path.write_bytes(header + struct.pack("<II", 15, len(blob)) + blob)


def _hdf5_bomb(path: Path) -> None:
    """A MATLAB v7.3 (HDF5) file declaring a 100 000 x 10 000 dataset it never wrote (a few kB)."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("x", shape=(100_000, 10_000), dtype="f8", chunks=(1000, 1000), compression="gzip",
                         fillvalue=0.0)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, hostile".ljust(116) + bytes(8) + struct.pack("<H", 0x0200) + b"IM")


def build_hostile_inbox(site: Path) -> list[str]:
    """Write the 40 hostile inputs into ``site``; return their names as the lake records them."""
    site.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(16)
    names = []

    def put(name: str, data: bytes) -> None:
        (site / name).write_bytes(data)
        names.append(name)

    for p in sorted((FIXTURES / "bad").iterdir()):  # 9 real files
        put(p.name, p.read_bytes())
    for ext in ("csv", "edf", "mat", "trc"):  # 4 empty files (bad/Empty.c3d is the C3D one)
        put(f"zero.{ext}", b"")
    for ext in ("c3d", "edf", "bdf", "csv", "mat", "trc", "mot", "anc"):  # 8 random-byte files
        put(f"random.{ext}", rnd.randbytes(65536))
    put("header_bomb.c3d", _c3d_header_bomb())
    put("channels_bomb.edf", _edf(9999, 1, 1))
    put("records_bomb.edf", _edf(2, 99_999_999, 100_000))
    put("wide_header.csv", b"Time," + b",".join(b"EMG%d" % i for i in range(1_000_000)) + b"\n0,1\n")
    put("frames_bomb.trc", b"PathFileType\t4\t(X/Y/Z)\tbomb.trc\nDataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\t"
        b"OrigDataRate\tOrigDataStartFrame\tOrigNumFrames\n100\t100\t1000000000\t1000000\tmm\t100\t1\t1000000000\n"
        b"Frame#\tTime\tM1\n\t\tX1\tY1\tZ1\n1\t0\t1\t2\t3\n")
    _mat_zlib_bomb(site / "zlib_bomb.mat")
    names.append("zlib_bomb.mat")
    _hdf5_bomb(site / "hdf5_bomb.mat")
    names.append("hdf5_bomb.mat")
    for name, target in (("passwd.c3d", "/etc/passwd"), ("shadow.csv", "/etc/shadow"), ("dangling.edf", "/nonexistent"),
                         ("etcdir.c3d", "/etc"), ("loop.c3d", "loop.c3d")):  # 5 links
        os.symlink(target, site / name)
        names.append(name)
    os.mkfifo(site / "fifo.c3d")
    (site / "folder.c3d").mkdir()
    names += ["fifo.c3d", "folder.c3d"]
    for name in (NON_UTF8, "new\nline.csv", "x'; DROP TABLE files; --.csv", "l" * 240 + ".c3d"):  # 4 odd names
        (site / name).write_bytes(rnd.randbytes(4096))
        names.append(name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    with open(site / "sparse.c3d", "wb") as fh:  # 1 GiB, almost nothing on disk
        fh.truncate(1 << 30)
    names.append("sparse.c3d")
    (site / "manifest.yaml").write_text(MANIFEST)
    return names


def night_in_child(lake: str) -> dict:
    """Run the night in a fresh interpreter; its summary, peak RSS and the largest reader's."""
    code = ("import json, resource, sys\n"
            "from flows.nightly import run_night\n"
            "out = {'error': None}\n"
            "try:\n"
            f"    s = run_night({lake!r}, quiet=True)\n"
            "    out['summary'] = {k: s[k] for k in ('status', 'files_seen', 'ingested', 'quarantined', 'held', "
            "'errors', 'seconds')}\n"
            "except BaseException as exc:\n"
            "    out['error'] = f'{type(exc).__name__}: {exc}'\n"
            "from warehouse.ingest.readers import c3d\n"
            "out['rss_self_kb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "out['rss_reader_kb'] = c3d.reader_peak_rss_kb\n"
            "print('RESULT ' + json.dumps(out))\n")
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
    out = json.loads(line[7:]) if line else {"error": f"exit {r.returncode}: {r.stderr[-2000:]}"}
    out["wall_s"] = round(time.time() - t0, 1)
    out["exit_code"] = r.returncode
    return out


def account(lake: str, names: list[str]) -> dict:
    from warehouse import catalog
    from warehouse.settings import get_settings

    con = catalog.connect(get_settings(lake), read_only=True)
    try:
        rows = con.execute("SELECT f.path, f.status, string_agg(DISTINCT q.reason_code, ',') FROM files f LEFT JOIN "
                           "quarantine q ON q.sha256 = f.sha256 AND q.site_id = f.site_id AND q.path = f.path AND "
                           "q.stage <> 'harmonise' WHERE f.site_id = 'hostile' GROUP BY ALL").fetchall()
        failed = con.execute("SELECT count(*) FROM runs WHERE status = 'failed'").fetchone()[0]
        good = con.execute("SELECT count(*) FROM trials WHERE site_id = 'good'").fetchone()[0]
    finally:
        con.close()
    seen = {p: (s, r) for p, s, r in rows}
    per_input = {n: seen.get(n, ("missing", None)) for n in names}
    ok = [n for n, (s, r) in per_input.items() if s == "ingested" or (s == "quarantined" and r)]
    return {"per_input": per_input, "accounted": len(ok), "failed_runs": failed, "good_trials": good}


def run(root: Path, baseline: bool) -> dict:
    good = FIXTURES / "btk" / "1123x01EMG.c3d"
    lake = root / "hostile" / "lake"
    names = build_hostile_inbox(lake / "inbox" / "hostile")
    (lake / "inbox" / "good").mkdir(parents=True)
    (lake / "inbox" / "good" / "emg.c3d").write_bytes(good.read_bytes())
    (lake / "inbox" / "good" / "manifest.yaml").write_text(GOOD_MANIFEST)
    night = night_in_child(str(lake))
    acc = account(str(lake), names)
    raw = [p.stat().st_size for p in (lake / "raw").rglob("*") if p.is_file()]
    passwd = Path("/etc/passwd").read_bytes()
    leaked = [str(p) for p in (lake / "raw").rglob("*") if p.is_file() and p.stat().st_size == len(passwd)
              and p.read_bytes() == passwd]
    out = {"inputs": len(names), "accounted": acc["accounted"], "good_trials": acc["good_trials"],
           "aborted_runs": acc["failed_runs"] + (1 if night.get("error") or night["exit_code"] else 0),
           "night": night, "per_input": acc["per_input"], "raw_files": len(raw),
           "raw_max_file_mb": round(max(raw, default=0) / 2**20, 2), "raw_total_mb": round(sum(raw) / 2**20, 2),
           "leaked": leaked}
    if baseline:
        clean = root / "clean" / "lake"
        (clean / "inbox" / "good").mkdir(parents=True)
        (clean / "inbox" / "good" / "emg.c3d").write_bytes(good.read_bytes())
        (clean / "inbox" / "good" / "manifest.yaml").write_text(GOOD_MANIFEST)
        out["clean_night"] = night_in_child(str(clean))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", default=None, help="Build the lakes in this folder and keep them.")
    ap.add_argument("--no-baseline", action="store_true", help="Skip the clean night (no peak_vs_clean_night).")
    ap.add_argument("--json", default=None, help="Also write the results to this JSON file.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="myomap-hostile-") as tmp:
        root = Path(args.keep or tmp)
        res = run(root, baseline=not args.no_baseline)
    for name, (status, reason) in res["per_input"].items():
        print(f"  {name[:60]!r:64} {status:12} {reason or ''}")
    n = res["night"]
    mb = 1024
    figures = {"hostile_inputs": res["inputs"], "accounted": res["accounted"], "aborted_runs": res["aborted_runs"],
               "good_trials": res["good_trials"], "leaked_from_outside": len(res["leaked"]),
               "night_s": n.get("summary", {}).get("seconds"), "peak_rss_night_mb": round(n.get("rss_self_kb", 0) / mb),
               "peak_rss_reader_mb": round(n.get("rss_reader_kb", 0) / mb), "raw_max_file_mb": res["raw_max_file_mb"]}
    if "clean_night" in res:
        figures["peak_vs_clean_night"] = round(n.get("rss_self_kb", 0) / max(res["clean_night"].get("rss_self_kb", 1),
                                                                             1), 2)
    if n.get("error"):
        print(f"night error: {n['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps({**res, "figures": figures}, indent=1, default=str))
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
