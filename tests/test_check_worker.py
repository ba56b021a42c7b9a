"""A trial's channel QC and plausibility run in a warm worker process (warehouse.ingest.check_worker, issue 17):
the tables are the ones the same checks give in the ingest's own process, and when the worker cannot be used
(it died, or the arguments do not pickle) the checks run in the process, with the same tables."""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import fixture

from warehouse.ingest import check_worker
from warehouse.ingest.harmonise import harmonise
from warehouse.ingest.readers import read_any


@pytest.fixture(scope="module")
def trial():
    """A real Vicon C3D (EMG, 4 plates, markers) as the ingest has it when it checks the trial."""
    rec = read_any(fixture("gaitalytics/test_small.c3d"))
    chans, _ = harmonise(rec, {})
    assert len(chans) >= 8 and rec.plates and rec.markers_mm is not None
    return rec, chans


def _same(got, want):
    for g, w in zip(got, want):
        assert g.column_names == w.column_names and g.to_pylist() == w.to_pylist()


def test_the_worker_gives_the_tables_of_the_checks_run_here(trial):
    rec, chans = trial
    here = check_worker.checks("t1", rec, chans, 50.0, 70.0)
    assert here[0].num_rows == len(chans) and set(here[0].column("verdict").to_pylist()) <= {"ok", "warn", "bad"}
    pending = check_worker.start("t1", rec, chans, 50.0, 70.0)
    assert pending._conn is not None  # sent to the worker
    _same(pending.result(), here)
    assert check_worker._WARM.proc.pid != os.getpid() and check_worker._WARM.proc.is_alive()  # another process
    check_worker.start("t0", rec, chans, 50.0, 70.0)  # a job whose result is never asked for ...
    _same(check_worker.start("t1", rec, chans, 50.0, 70.0).result(), here)  # ... is not taken for the next one's
    # what the worker checks is what was passed: changing the arrays afterwards does not reach it
    data = [c["data_mv"] for c in chans]
    pending = check_worker.start("t1", rec, chans, 50.0, 70.0)
    for c in chans:
        c["data_mv"] = np.zeros_like(c["data_mv"])
    try:
        _same(pending.result(), here)
    finally:
        for c, d in zip(chans, data):
            c["data_mv"] = d


def test_a_dead_worker_or_unpicklable_arguments_are_checked_here(trial):
    rec, chans = trial
    here = check_worker.checks("t2", rec, chans, 60.0, None)
    _same(check_worker.start("t2", rec, chans, 60.0, None).result(), here)  # the worker is up
    dead = check_worker._WARM.proc
    pending = check_worker.start("t2", rec, chans, 60.0, None)
    dead.kill()
    dead.join()
    _same(pending.result(), here)  # it died with the job: checked here
    _same(check_worker.start("t2", rec, chans, 60.0, None).result(), here)
    assert check_worker._WARM.proc is not dead and check_worker._WARM.proc.is_alive()  # a new worker

    odd = [{**c, "note": (lambda: None)} for c in chans]  # a value pickle refuses
    pending = check_worker.start("t2", rec, odd, 60.0, None)
    assert pending._conn is None
    _same(pending.result(), here)


def test_a_worker_that_could_not_start_is_not_kept(trial, monkeypatch):
    """A worker process that fails to start leaves nothing behind (the next use starts one afresh) and the checks
    run here meanwhile."""
    from warehouse.ingest import warm_process

    rec, chans = trial
    here = check_worker.checks("t3", rec, chans, 50.0, None)
    check_worker._retire()
    ctx = warm_process.context()
    real = ctx.Process

    class CannotStart(real):
        def start(self):
            raise OSError("no more processes")

    monkeypatch.setattr(ctx, "Process", CannotStart)
    pending = check_worker.start("t3", rec, chans, 50.0, None)
    assert pending._conn is None and getattr(check_worker._WARM, "proc", None) is None
    _same(pending.result(), here)
    monkeypatch.setattr(ctx, "Process", real)
    _same(check_worker.start("t3", rec, chans, 50.0, None).result(), here)
    assert check_worker._WARM.proc.is_alive()
