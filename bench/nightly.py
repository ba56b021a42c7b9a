"""Nightly flow benchmark: the full night, the no-op night, and per-trial throughput on 1 and 2 Dask workers.

    python bench/nightly.py [--subjects-per-site 2] [--duration-s 10] [--workers 1,2]

1. A demo consortium (3 sites x N subjects x 2 conditions) is generated and ingested by the
   nightly logic with the default runner: the full night's time.
2. The same night again, with nothing new: the no-op night's time (what every night costs
   when no site sent anything; it should be seconds).
3. Per-trial throughput of the fanned-out transforms (envelopes + analysis): the derived
   tables are emptied, then every trial is derived again
   - in-process, one trial after the other (the default runner), and
   - on a local Dask cluster of 1, then 2 single-threaded worker processes (prefect-dask),
   each measured in this run; ratios are against the 1-worker Dask baseline. Cluster start-up
   and worker imports are excluded (workers are warmed up before the clock starts).

Needs the flows/nightly.py ``fan_out``/``run_derivations`` change. Uses a temporary Prefect
server (prefect_test_harness) and a temporary lake; nothing outside them is written.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import warehouse.settings  # noqa: E402,F401  (Prefect's offline variables first)

#: Tables written by the per-trial tasks (warehouse.analysis.derived.compute_envelopes, warehouse.analysis.trial.analyse_trial).
PER_TRIAL_TABLES = ("emg_envelopes", "gait_cycles", "activation_onsets", "emg_cycle_metrics", "co_contraction",
                    "emg_spectra", "analysis_exclusions")


def reset_derivations(settings) -> int:
    """Empty what the per-trial tasks write, so the next derivation is a first-time one; returns trials."""
    from warehouse import catalog

    con = catalog.connect(settings)
    try:
        def body(c):
            for t in PER_TRIAL_TABLES:
                c.execute(f"DELETE FROM {t}")
            c.execute("DELETE FROM gait_events WHERE source <> 'annotated'")
            c.execute("DELETE FROM derivations WHERE step IN ('envelopes', 'analysis')")
        catalog.write_atomically(settings, con, body, what="bench reset")
        return con.execute("SELECT count(*) FROM trials").fetchone()[0]
    finally:
        con.close()


def _cpu() -> float:
    return time.process_time()


def _warm() -> str:
    import importlib
    for m in ("flows.nightly", "warehouse.analysis.trial", "warehouse.analysis.derived", "transforms.emg"):
        importlib.import_module(m)
    return "ok"


def derive_sequential(lake: str) -> dict:
    from flows.nightly import run_derivations
    return run_derivations(lake, True, cohort_step=lambda _lake: {})


def derive_on_dask(lake: str, address: str) -> dict:
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    from flows.nightly import analyse, envelopes, run_derivations

    @flow(name="bench-derive", task_runner=DaskTaskRunner(address=address))
    def derive(lake: str) -> dict:
        return run_derivations(lake, True, derive=envelopes, analyse=analyse, cohort_step=lambda _lake: {},
                               fan_out=True)
    return derive(lake)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects-per-site", type=int, default=2)
    ap.add_argument("--duration-s", type=float, default=10.0)
    ap.add_argument("--workers", default="1,2", help="Dask worker counts to measure (the first is the baseline).")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]

    from distributed import Client, LocalCluster
    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import run_night
    from warehouse.demo import generate_consortium
    from warehouse.settings import get_settings

    load0 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="myomap-bench-"))
    try:
        lake = tmp / "lake"
        generate_consortium(lake / "inbox", seed=args.seed, subjects_per_site=args.subjects_per_site,
                            duration_s=args.duration_s)
        settings = get_settings(str(lake))
        print(f"myomap nightly benchmark: 3 sites x {args.subjects_per_site} subjects x 2 conditions, "
              f"{args.duration_s:g} s trials, SQLite catalog, lake {lake}")

        t = time.perf_counter()
        s = run_night(str(lake), quiet=True)
        full = time.perf_counter() - t
        print(f"full night:  {full:7.1f} s  ({s['ingested']} trials ingested, {s['trials_derived']} derived, "
              f"cohort tables rebuilt)")
        t = time.perf_counter()
        s2 = run_night(str(lake), quiet=True)
        noop = time.perf_counter() - t
        assert s2["files_new"] == 0 and s2["trials_derived"] == 0, s2
        print(f"no-op night: {noop:7.1f} s  ({s2['files_seen']} files seen, nothing new; "
              f"{noop / full:.0%} of the full night)")

        results = []
        n = reset_derivations(settings)
        t, c = time.perf_counter(), time.process_time()
        r = derive_sequential(str(lake))
        results.append(("in-process, sequential", n, time.perf_counter() - t, time.process_time() - c))
        assert r["trials_derived"] == n and not r.get("analysis_errors"), r

        with prefect_test_harness(server_startup_timeout=180):
            for k in counts:
                with LocalCluster(n_workers=k, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0", silence_logs=40) as cluster, \
                        Client(cluster) as client:
                    client.run(_warm)
                    n = reset_derivations(settings)
                    before = client.run(_cpu)
                    t, c = time.perf_counter(), time.process_time()
                    r = derive_on_dask(str(lake), cluster.scheduler_address)
                    wall, flow_cpu = time.perf_counter() - t, time.process_time() - c
                    after = client.run(_cpu)
                    cpu = flow_cpu + sum(after[w] - before[w] for w in after)
                    results.append((f"dask, {k} worker{'s' if k > 1 else ''}", n, wall, cpu))
                    assert r["trials_derived"] == n and not r.get("analysis_errors"), r

        base = next((x for x in results if x[0].startswith("dask")), results[0])
        base_rate = base[1] / base[2]
        print(f"\nper-trial transforms (envelopes + analysis), ratios vs '{base[0]}' measured in this run:")
        print(f"{'runner':<24} {'trials':>6} {'seconds':>8} {'trials/s':>9} {'ratio':>6} {'CPU s':>7} {'cores':>6}")
        for name, n, secs, cpu in results:
            print(f"{name:<24} {n:>6} {secs:>8.1f} {n / secs:>9.2f} {n / secs / base_rate:>6.2f} {cpu:>7.1f} "
                  f"{cpu / secs:>6.2f}")
        print(f"('cores' = CPU seconds of the flow process and workers / wall seconds; {os.cpu_count()} CPUs; "
              f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end: other processes "
              "on the machine take their share)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
