"""Nightly benchmark: the real night on a generated inbox against its I/O floor, measured in the same run.

    python bench/nightly.py [--scale 1] [--duration-s 20] [--seed 3] [--profile out.prof]

1. A demo consortium is generated (``warehouse.demo.generate_consortium``: 3 sites, 13 subjects x 2
   conditions = 26 trials at ``--scale 1``; ``--scale 10`` = 260 trials).
2. **I/O floor**, in a separate fresh process (so that its memory does not count as the night's): every
   C3D file of the inbox read with ezc3d and its analog samples written as one zstd Parquet file; every
   vendor CSV read with pyarrow's CSV reader and written likewise; in one process, one file after the other.
   It is what any ingest of these files must do. Until 2026-12-06 the floor also had ezc3d extract the force
   plates (``extract_forceplat_data=True``), whose per-frame Python copy was ~75 % of that floor and which the
   product no longer pays (``warehouse/ingest/readers/c3d_plates.py``): that floor is still measured once and
   printed (``floor with ezc3d's plate extraction``) so that earlier rounds' ratios can be compared, but the
   ratio on the last line is against this one.
3. **The night**: ``flows.nightly.run_night`` (the product's logic, default runner) on that inbox, with
   each stage timed (scan, per-file ingest, envelopes, analysis, cohort tables, the rest = lease, run
   record, compaction). Then a second night with nothing new (the no-op night), then a later night with 2
   new trials (a second walk in two sessions: what a consortium's nights are after its first; its cost should
   not grow with the lake, see ``catalog.compact``), then the I/O floor again (one measurement moves by +-30 % on a shared machine: the ratio uses the mean of the two).
4. Printed: per-stage times, trials/s, EMG samples/s, active Parquet files per table (DuckLake catalog)
   and on disk, snapshots, the time of a per-channel RMS over all of ``emg_samples``, peak resident memory of the night's process (and of its reader children), and
   as the last line ``nightly_vs_floor=<night seconds / mean floor seconds>``.

Ratios are what count (the machine is shared): both times are measured in this run.
Everything is written under a temporary directory, removed at the end.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import warehouse.settings  # noqa: E402,F401  (Prefect's offline variables first)


# --------------------------------------------------------------------------- the I/O floor
def _csv_floor(path: Path):
    """A vendor CSV (Delsys: a text header, then one row per sample) read with pyarrow's CSV reader."""
    import pyarrow.csv as pcsv

    with open(path, "rb") as fh:
        head = 0
        for line in fh:
            if line[:1].isdigit() or line[:1] == b"-":
                break
            head += 1
    tbl = pcsv.read_csv(path, read_options=pcsv.ReadOptions(skip_rows=head, autogenerate_column_names=True))
    return tbl, tbl.num_rows * tbl.num_columns


def io_floor(inbox: Path, out: Path, *, extract_plates: bool = False) -> dict:
    """Read every data file under ``inbox`` (C3D with ezc3d, CSV with pyarrow) and write its samples as zstd
    Parquet, one file after the other in this process; seconds and samples. ``extract_plates``: ezc3d's
    force-plate extraction too (the floor of earlier rounds)."""
    import ezc3d
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in inbox.rglob("*") if p.suffix.lower() in (".c3d", ".csv"))
    t0 = time.perf_counter()
    samples = 0
    for i, path in enumerate(files):
        if path.suffix.lower() == ".csv":
            tbl, n = _csv_floor(path)
            pq.write_table(tbl, out / f"{i}.parquet", compression="zstd", compression_level=3)
            samples += n
            continue
        c = ezc3d.c3d(str(path), extract_forceplat_data=extract_plates)
        analogs = np.asarray(c["data"]["analogs"], dtype=np.float32)[0]  # (channels, samples)
        labels = c["parameters"]["ANALOG"]["LABELS"]["value"]
        n = analogs.shape[1]
        tbl = pa.table({"channel": pa.array(np.repeat(np.arange(len(labels), dtype=np.int16), n)),
                        "sample_index": pa.array(np.tile(np.arange(n, dtype=np.int32), len(labels))),
                        "value": pa.array(analogs.reshape(-1))})
        pq.write_table(tbl, out / f"{i}.parquet", compression="zstd", compression_level=3)
        samples += analogs.size
    return {"seconds": time.perf_counter() - t0, "files": len(files), "samples": int(samples),
            "bytes_in": sum(p.stat().st_size for p in files)}


def add_trials(inbox: Path, scratch: Path, *, seed: int, duration_s: float, n: int = 2) -> list[Path]:
    """What a lab uploads after the first night: a second walk in ``n`` sessions of the first site (C3D files of a
    consortium generated with another seed, named to match the sessions' manifest globs); returns them."""
    from warehouse.demo import generate_consortium

    generate_consortium(scratch, seed=seed, subjects_per_site={"lyon": n, "boston": 1, "oslo": 1},
                        duration_s=duration_s)
    added = []
    for src in sorted((scratch / "lyon").rglob("*walk01.c3d"))[:n]:
        dst = inbox / src.relative_to(scratch).parent / src.name.replace("walk01", "walk02")
        shutil.copy(src, dst)
        added.append(dst)
    return added


# --------------------------------------------------------------------------- the night, by stage
class Stages:
    """Wrap the night's task bodies with timers: wall seconds per stage (the union of its calls' intervals,
    so trials derived on several threads at once are not counted twice), calls; ``cpu`` sums the calls."""

    def __init__(self):
        self.spans, self.calls, self.cpu = defaultdict(list), defaultdict(int), defaultdict(float)
        self._lock = threading.Lock()

    def wrap(self, name, fn):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                with self._lock:
                    self.spans[name].append((t, time.perf_counter()))
                    self.cpu[name] += time.perf_counter() - t
                    self.calls[name] += 1
        return timed

    def wall(self, *names) -> float:
        """Seconds during which at least one call of ``names`` was running."""
        total, end = 0.0, -math.inf
        for a, b in sorted(x for n in names for x in self.spans[n]):
            total += max(0.0, b - max(a, end))
            end = max(end, b)
        return total

    def kwargs(self) -> dict:
        from flows import nightly
        return {"scan": self.wrap("scan", nightly.scan_site.fn), "process": self.wrap("ingest", nightly.process_file.fn),
                "refuse": self.wrap("ingest", nightly.record_refused.fn),
                "derive": self.wrap("envelopes", nightly.envelopes.fn),
                "analyse": self.wrap("analysis", nightly.analyse.fn),
                "cohort_step": self.wrap("cohort", nightly.cohort_tables.fn)}


def lake_figures(settings) -> dict:
    """Trials, EMG samples, active data files per table, snapshots, files on disk."""
    from warehouse import catalog

    con = catalog.connect(settings, read_only=True)
    try:
        meta = f"__ducklake_metadata_{catalog.LAKE}"
        files = dict(con.execute(
            f"SELECT t.table_name, count(f.data_file_id) FROM {meta}.ducklake_table t "
            f"LEFT JOIN {meta}.ducklake_data_file f ON f.table_id = t.table_id AND f.end_snapshot IS NULL "
            "WHERE t.end_snapshot IS NULL GROUP BY 1 ORDER BY 1").fetchall())
        t = time.perf_counter()
        con.execute("SELECT trial_id, channel, sqrt(avg(emg_mv * emg_mv)) FROM emg_samples GROUP BY ALL").fetchall()
        rms_s = time.perf_counter() - t
        return {"trials": con.execute("SELECT count(*) FROM trials").fetchone()[0], "rms_query_s": rms_s,
                "emg_samples": con.execute("SELECT count(*) FROM emg_samples").fetchone()[0],
                "files": files,
                "snapshots": con.execute(f"SELECT count(*) FROM {meta}.ducklake_snapshot").fetchone()[0],
                "files_on_disk": sum(1 for _ in Path(settings.zone("tables")).rglob("*.parquet"))}
    finally:
        con.close()


def _peak_mb(who) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process and its finished children."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _machine_cpu_s() -> float | None:
    """CPU seconds (user + nice + system) the whole machine has used so far (``/proc/stat``; None elsewhere):
    the night's worker processes too (the C3D readers and the trial checks are forked from a forkserver, so they
    are not this process's children), and anything else running."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]
    except OSError:
        return None
    return sum(int(f) for f in fields) / os.sysconf("SC_CLK_TCK")


def run(scale: int, duration_s: float, seed: int, profile: str | None) -> None:
    from flows.nightly import run_night
    from warehouse.demo import generate_consortium
    from warehouse.demo.consortium import DEFAULT_SUBJECTS_PER_SITE
    from warehouse.settings import get_settings

    load0 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="myomap-bench-"))
    try:
        lake = tmp / "lake"
        subjects = {k: v * scale for k, v in DEFAULT_SUBJECTS_PER_SITE.items()}
        t = time.perf_counter()
        generate_consortium(lake / "inbox", seed=seed, subjects_per_site=subjects, duration_s=duration_s)
        print(f"myomap nightly benchmark: {sum(subjects.values()) * 2} trials ({subjects}, {duration_s:g} s), "
              f"SQLite catalog; inbox generated in {time.perf_counter() - t:.1f} s")

        def measure_floor(out: str, how: str = "--floor-only") -> dict:
            return json.loads(subprocess.run(
                [sys.executable, __file__, how, str(lake / "inbox"), str(tmp / out)],
                check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        floor = measure_floor("floor")
        floor_plates = measure_floor("floor_plates", "--floor-with-plates-only")
        print(f"I/O floor (ezc3d / pyarrow CSV read + zstd Parquet write, one process): {floor['seconds']:.1f} s for "
              f"{floor['files']} C3D/CSV files, {floor['bytes_in'] / 1e6:.0f} MB, {floor['samples'] / 1e6:.1f} M samples")

        settings = get_settings(str(lake))
        stages = Stages()
        prof = None
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        t, cpu0, machine0 = time.perf_counter(), _cpu_s(), _machine_cpu_s()
        s = run_night(str(lake), quiet=True, **stages.kwargs())
        full, cpu = time.perf_counter() - t, _cpu_s() - cpu0
        machine = None if machine0 is None else _machine_cpu_s() - machine0
        if prof:
            prof.disable()
            prof.dump_stats(profile)
        peak_self, peak_children = _peak_mb(resource.RUSAGE_SELF), _peak_mb(resource.RUSAGE_CHILDREN)
        figs = lake_figures(settings)
        t = time.perf_counter()
        s2 = run_night(str(lake), quiet=True)
        noop = time.perf_counter() - t
        assert s2["files_new"] == 0 and s2["trials_derived"] == 0, s2
        added = add_trials(lake / "inbox", tmp / "later", seed=seed + 1, duration_s=duration_s)
        t = time.perf_counter()
        s3 = run_night(str(lake), quiet=True)
        later = time.perf_counter() - t
        assert s3["ingested"] == len(added) and not s3["errors"], s3
        # the floor again, after the night: on a shared machine one measurement moves by +-30 %
        floor_after = measure_floor("floor2")["seconds"]
        floor_s = (floor["seconds"] + floor_after) / 2
        assert not s.get("analysis_errors") and not s["errors"], s

        n = figs["trials"]
        print(f"\nfull night: {full:.1f} s, {s['ingested']} trials ingested, {s['trials_derived']} derived")
        print(f"{'stage':<10} {'seconds':>8} {'calls':>6} {'share':>6}")
        rest = full - stages.wall("scan", "ingest", "envelopes", "analysis", "cohort")
        for name in ("scan", "ingest", "envelopes", "analysis", "cohort"):
            w = stages.wall(name)
            print(f"{name:<10} {w:>8.1f} {stages.calls[name]:>6} {w / full:>6.0%}"
                  + (f"  (calls summed: {stages.cpu[name]:.1f} s)" if stages.cpu[name] > 1.05 * w else ""))
        print(f"{'other':<10} {rest:>8.1f} {'':>6} {rest / full:>6.0%}  (lease, run record, compaction)")
        print(f"envelopes + analysis (wall, {settings.derive_workers} trial(s) at a time): "
              f"{stages.wall('envelopes', 'analysis'):.1f} s")
        print(f"throughput: {n / full:.2f} trials/s, {full / n:.2f} s/trial, "
              f"{figs['emg_samples'] / full / 1e3:,.0f} k EMG samples/s ({figs['emg_samples'] / 1e6:.1f} M samples)")
        print(f"CPU: {cpu:.1f} s (this process and its reaped children) in {full:.1f} s of wall time: "
              f"{cpu / full:.2f} of {os.cpu_count()} cores busy on average")
        if machine is not None:
            print(f"machine CPU during the night (every process: the night's workers too): {machine:.1f} s, "
                  f"{machine / full:.2f} of {os.cpu_count()} cores")
        print(f"no-op night: {noop:.1f} s")
        comp = s3.get("compaction", {})
        print(f"a later night, {len(added)} new trials in this lake: {later:.1f} s ({later / len(added):.1f} s per "
              f"trial); its compaction {comp.get('seconds', 0):.1f} s, {comp.get('mb_merged', 0):.1f} MB rewritten "
              f"(the first night's: {s.get('compaction', {}).get('mb_merged', 0):.1f} MB)")
        nonempty = {k: v for k, v in figs["files"].items() if v}
        print(f"active Parquet files: {sum(nonempty.values())} in {len(nonempty)} tables, at most "
              f"{max(nonempty.values(), default=0)} per table ({max(nonempty.values(), default=0) / n * 1000:.0f} "
              f"per 1000 trials); {figs['files_on_disk']} .parquet on disk; {figs['snapshots']} snapshots")
        print("  " + ", ".join(f"{k} {v}" for k, v in sorted(nonempty.items(), key=lambda kv: -kv[1])))
        print(f"per-channel RMS over all of emg_samples (one query): {figs['rms_query_s']:.2f} s")
        print(f"peak memory: {peak_self:,.0f} MB (night process), {peak_children:,.0f} MB (largest child)")
        print(f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs)")
        print(f"floor: {floor['seconds']:.1f} s before the night, {floor_after:.1f} s after it (mean {floor_s:.1f} s; "
              f"night / each: {full / floor['seconds']:.2f}, {full / floor_after:.2f}); night: {full:.1f} s")
        print(f"floor with ezc3d's plate extraction (earlier rounds' floor, measured once): "
              f"{floor_plates['seconds']:.1f} s; night / it: {full / floor_plates['seconds']:.2f}")
        print(f"nightly_vs_floor={full / floor_s:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> None:
    if argv is None and len(sys.argv) == 4 and sys.argv[1] in ("--floor-only", "--floor-with-plates-only"):
        print(json.dumps(io_floor(Path(sys.argv[2]), Path(sys.argv[3]),
                                  extract_plates=sys.argv[1] == "--floor-with-plates-only")))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1, help="Subjects per site x this (1: 26 trials, 10: 260).")
    ap.add_argument("--duration-s", type=float, default=20.0, help="Seconds per trial (the demo's default).")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--profile", help="Write a cProfile of the night to this file.")
    args = ap.parse_args(argv)
    run(args.scale, args.duration_s, args.seed, args.profile)


if __name__ == "__main__":
    main()
