"""What makes the night parallel must not change what it computes (issue 17): trials derived on several
threads, and the next inbox file read ahead while the previous one commits, give the same lake as the
night done one step after the other; a file that changes after it was read ahead is ingested as it is
now; a reader error found ahead is the same quarantine as in line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

from conftest import drop, fixture, lake_fingerprint
from test_real_analysis import MANIFEST  # the two real files' sessions (and their channel map)

from flows.nightly import run_night
from warehouse import catalog
from warehouse.analysis import cohort
from warehouse.ingest import read_ahead, steps
from warehouse.ingest.readers import c3d
from warehouse.settings import get_settings

READ_AHEAD_FILE = steps.read_ahead_file



def _night(tmp_path, name, monkeypatch, *, workers: int, ahead: bool):
    from warehouse.demo import generate_consortium

    root = tmp_path / name / "lake"
    generate_consortium(root / "inbox", seed=5, subjects_per_site={"lyon": 2, "boston": 1, "oslo": 1}, duration_s=8.0)
    settings = get_settings(str(root))
    drop(settings, "real", {"small/test_small.c3d": fixture("gaitalytics/test_small.c3d"),
                            "tread/treadmill_events.c3d": fixture("gaitalytics/treadmill_events.c3d")}, MANIFEST)
    calls = []
    real = READ_AHEAD_FILE  # not the previous call's patch: a second night of one test reads ahead too
    monkeypatch.setattr(steps, "read_ahead_file", (lambda *a, **k: (calls.append(a[2]), real(*a, **k))) if ahead
                        else (lambda *a, **k: calls.append(a[2])))
    monkeypatch.setenv("MYOMAP_DERIVE_WORKERS", str(workers))
    summary = run_night(settings.lake, quiet=True)
    assert summary["errors"] == 0 and not summary.get("analysis_errors"), summary
    return settings, summary, calls


def test_threads_and_read_ahead_give_the_lake_of_the_sequential_night(tmp_path, monkeypatch):
    factorised = []  # (thread) of every leg's NMF
    real = cohort._factorise
    monkeypatch.setattr(cohort, "_factorise",
                        lambda m, **kw: factorised.append(threading.current_thread().name) or real(m, **kw))
    ref, ref_summary, _ = _night(tmp_path, "sequential", monkeypatch, workers=1, ahead=False)
    assert factorised and all(t == "MainThread" for t in factorised)  # in the rebuild
    factorised.clear()
    readers = []  # the thread of every C3D read in a reader process
    real_reader = c3d._reader
    monkeypatch.setattr(c3d, "_reader", lambda *a: readers.append(threading.current_thread().name) or real_reader(*a))
    par, par_summary, ahead = _night(tmp_path, "parallel", monkeypatch, workers=3, ahead=True)
    assert len(ahead) >= 8 and par_summary["trials_derived"] == ref_summary["trials_derived"] >= 10
    # every file read ahead, each site's first one too: the ingest thread starts no reader of its own
    assert len(set(ahead)) == len(ahead) == par_summary["files_new"], (ahead, par_summary)
    assert readers and all(t.startswith("read-ahead") for t in readers), readers
    assert lake_fingerprint(par) == lake_fingerprint(ref)
    # every session's synergies were factorised ahead on the derivation threads, none again in the rebuild
    assert factorised and all(t.startswith("derive") for t in factorised), factorised
    assert cohort._AHEAD == {}
    # a night with nothing new reads nothing ahead (every file is already in the lake)
    started = []
    monkeypatch.setattr(steps, "read_ahead_file", READ_AHEAD_FILE)
    monkeypatch.setattr(read_ahead, "start", lambda *a: started.append(a[1]))
    again = run_night(par.lake, quiet=True)
    assert again["files_new"] == 0 and again["trials_derived"] == 0 and started == []


def _ingest(settings, rel):
    return steps.process_file(settings, "real", rel, "run-test")


def _samples(settings, trial_id) -> int:
    con = catalog.connect(settings, read_only=True)
    try:
        return con.execute("SELECT count(*) FROM emg_samples WHERE trial_id = ?", [trial_id]).fetchone()[0]
    finally:
        con.close()


def test_a_file_changed_after_its_read_ahead_is_ingested_as_it_is_now(lake, tmp_path):
    refs = {}
    for name in ("test_small.c3d", "treadmill_events.c3d"):  # each file ingested in line, in a lake of its own
        s = get_settings(str(tmp_path / name / "lake"))
        drop(s, "real", {"small/trial.c3d": fixture(f"gaitalytics/{name}")}, MANIFEST)
        r = _ingest(s, "small/trial.c3d")
        refs[name] = (r["sha256"], _samples(s, r["trial_id"]))
    assert refs["test_small.c3d"][1] != refs["treadmill_events.c3d"][1]
    inbox = drop(lake, "real", {"small/trial.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST)
    with catalog.pooled():
        steps.read_ahead_file(lake, "real", "small/trial.c3d")
        (pending,) = read_ahead._STATE["ahead"].values()
        assert pending[1].result().analogs  # test_small.c3d, read ahead
        shutil.copyfile(fixture("gaitalytics/treadmill_events.c3d"), inbox / "small" / "trial.c3d")
        r = _ingest(lake, "small/trial.c3d")
    assert r["outcome"] == steps.INGESTED
    assert (r["sha256"], _samples(lake, r["trial_id"])) == refs["treadmill_events.c3d"]
    assert read_ahead._STATE["ahead"] == {}


def test_a_reader_error_found_ahead_is_the_quarantine_found_in_line(lake, tmp_path):
    bad = fixture("bad/sample18_bad_parameter_section.c3d")
    drop(lake, "real", {"small/a.c3d": bad}, MANIFEST)
    in_line = _ingest(lake, "small/a.c3d")
    other = get_settings(str(tmp_path / "other" / "lake"))
    drop(other, "real", {"small/a.c3d": bad}, MANIFEST)
    with catalog.pooled():
        steps.read_ahead_file(other, "real", "small/a.c3d")
        assert len(read_ahead._STATE["ahead"]) == 1
        ahead = _ingest(other, "small/a.c3d")
    assert in_line["outcome"] == ahead["outcome"] == steps.QUARANTINED
    assert ahead["reason"] == in_line["reason"] == "c3d_bad_parameter_section"
    assert read_ahead._STATE["ahead"] == {}


def test_a_site_turn_decides_files_done_before_it_from_one_read(lake):
    """Inside a night's turn at a site, bytes already done at their path are skipped from the turn's one read
    of ``files`` (no query per file); outside a turn (a retry, a later run) the catalog decides as it is now."""
    drop(lake, "real", {"small/a.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST)
    first = _ingest(lake, "small/a.c3d")
    assert first["outcome"] == steps.INGESTED

    def set_held():  # what `myomap quarantine retry` does before it processes the file again
        con = catalog.connect(lake)
        try:
            catalog.write_atomically(lake, con, lambda c: c.execute(
                "UPDATE files SET status = 'held' WHERE site_id = 'real' AND path = 'small/a.c3d'"), what="test")
        finally:
            con.close()

    with steps.site_turn(lake, "real", "run-2") as hint:
        assert {p for p, _ in hint} == {"small/a.c3d"}
        set_held()  # after the turn's read: this turn still sees the file as done when the turn began
        r = steps.process_file(lake, "real", "small/a.c3d", "run-2")
        assert (r["outcome"], r["reason"], r["new"]) == (steps.SKIPPED, "ingested", False)
    r = steps.process_file(lake, "real", "small/a.c3d", "run-2")  # the same run id, outside the turn
    assert r["outcome"] == steps.INGESTED and r["trial_id"] == first["trial_id"]
    with steps.site_turn(lake, "real", "run-3"):
        assert steps.process_file(lake, "real", "small/a.c3d", "run-3")["outcome"] == steps.SKIPPED


def test_a_turn_answers_a_new_files_lookups_and_asks_where_rows_may_exist(lake, monkeypatch):
    """Inside a night's turn at a site, a new file's lookups of ``files`` (rows with its bytes, its path's
    trial, rows with its trial id) that can only find nothing are answered from the turn's one read, without
    a query. Rows the turn may have written since, and rows the site had, are still asked for: the same bytes
    at a second path in one turn are a duplicate; a corrected re-upload keeps its trial; the replaced bytes
    dropped at a new path get another trial id than the trial they first had (a trial id the site has)."""
    asked = []
    real = catalog.RetryingReads.execute
    monkeypatch.setattr(catalog.RetryingReads, "execute",
                        lambda self, sql, params=None: (asked.append(sql), real(self, sql, params))[1])
    lookups = ("FROM files WHERE sha256 = ?", "starts_with(trial_id", "FROM files WHERE trial_id = ?")

    def looked_up():
        out = [k for k in lookups for sql in asked if k in sql]
        asked.clear()
        return out

    small, tread = fixture("gaitalytics/test_small.c3d"), fixture("gaitalytics/treadmill_events.c3d")
    inbox = drop(lake, "real", {"small/a.c3d": small}, MANIFEST)
    with catalog.pooled():
        with steps.site_turn(lake, "real", "run-1"):
            asked.clear()
            first = steps.process_file(lake, "real", "small/a.c3d", "run-1")
            assert first["outcome"] == steps.INGESTED and looked_up() == []
            shutil.copyfile(small, inbox / "small" / "b.c3d")  # the same bytes again, in the same turn
            second = steps.process_file(lake, "real", "small/b.c3d", "run-1")
            assert (second["outcome"], second["reason"]) == (steps.DUPLICATE, "same bytes as small/a.c3d")
        shutil.copyfile(tread, inbox / "small" / "a.c3d")  # a corrected re-upload
        shutil.copyfile(small, inbox / "small" / "c.c3d")  # the replaced bytes, at a new path
        with steps.site_turn(lake, "real", "run-2"):
            asked.clear()
            again = steps.process_file(lake, "real", "small/a.c3d", "run-2")
            assert again["outcome"] == steps.INGESTED and again["trial_id"] == first["trial_id"]
            assert "starts_with(trial_id" in looked_up()  # the path had rows: asked
            moved = steps.process_file(lake, "real", "small/c.c3d", "run-2")
            assert moved["outcome"] == steps.INGESTED and "FROM files WHERE trial_id = ?" in looked_up()
    assert moved["trial_id"] != first["trial_id"] and moved["trial_id"].startswith("real:R01-S1:")
    con = catalog.connect(lake, read_only=True)
    try:
        assert con.execute("SELECT path, status FROM files ORDER BY path, status").fetchall() == [
            ("small/a.c3d", "ingested"), ("small/a.c3d", "superseded"), ("small/b.c3d", "duplicate"),
            ("small/c.c3d", "ingested")]
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 2
    finally:
        con.close()


def test_a_trials_grf_read_once_equals_each_plate_read_alone(lake):
    """The analysis reads a trial's ``grf`` in one scan (``events.trial_grf``): each plate's columns equal that
    plate read alone, values, order and NULLs (a masked array only where the plate has NULLs)."""
    import numpy as np

    from warehouse.analysis import events

    drop(lake, "real", {"tread/t.c3d": fixture("gaitalytics/treadmill_events.c3d"),
                        "small/s.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST)
    tids = [_ingest(lake, rel)["trial_id"] for rel in ("tread/t.c3d", "small/s.c3d")]
    con = catalog.connect(lake)
    try:
        # a NULL on one plate only (what a reader leaves where the plate is unloaded)
        catalog.write_atomically(lake, con, lambda c: c.execute(
            "UPDATE grf SET cop_x_mm = NULL WHERE trial_id = ? AND plate = 1 AND sample_index < 5", [tids[0]]),
            what="test")
        n_plates = 0
        for tid in tids:
            once = events.trial_grf(con, tid)
            plates = [r[0] for r in con.execute("SELECT DISTINCT plate FROM grf WHERE trial_id = ? ORDER BY 1",
                                                [tid]).fetchall()]
            assert sorted(once) == plates and plates
            for p in plates:
                alone = con.execute(f"SELECT {', '.join(events.GRF_COLUMNS)} FROM grf WHERE trial_id = ? AND "
                                    "plate = ? ORDER BY sample_index", [tid, p]).fetchnumpy()
                for col in events.GRF_COLUMNS:
                    a, b = once[p][col], alone[col]
                    assert np.ma.isMaskedArray(a) == np.ma.isMaskedArray(b), (tid, p, col)
                    np.testing.assert_array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
                    np.testing.assert_array_equal(np.ma.filled(a, 0), np.ma.filled(b, 0))
                n_plates += 1
        assert n_plates >= 6 and np.ma.isMaskedArray(events.trial_grf(con, tids[0])[1]["cop_x_mm"])
    finally:
        con.close()


def test_a_session_with_a_trial_of_an_earlier_night_is_factorised_ahead_from_its_analysed_trials(
        tmp_path, monkeypatch):
    """A new trial of a session that has one from an earlier night: its factorisation ahead reads the session
    from the catalog (the earlier trial is not held), after the new trial's analysis, still waiting in the
    night's batch, is committed; the rebuild takes it and factorises nothing itself. Here the night's own flush
    of the batch waits until the factorisation ahead is over (without the commit the factorisation would read the
    session without its new trial's analysis: another input, factorised again in the rebuild)."""
    import glob

    from warehouse.analysis import commits
    from warehouse.demo import generate_consortium

    monkeypatch.setenv("MYOMAP_DERIVE_WORKERS", "3")
    sites = {"lyon": 1, "boston": 1, "oslo": 1}
    generate_consortium(tmp_path / "lake" / "inbox", seed=5, subjects_per_site=sites, duration_s=8.0)
    generate_consortium(tmp_path / "other", seed=6, subjects_per_site=sites, duration_s=8.0)
    settings = get_settings(str(tmp_path / "lake"))
    assert run_night(settings.lake, quiet=True)["trials_derived"] == 6
    (fresh_dir,) = glob.glob(str(tmp_path / "lake" / "inbox" / "lyon" / "*" / "fresh"))
    (other,) = glob.glob(str(tmp_path / "other" / "lyon" / "*" / "fresh" / "*.c3d"))
    shutil.copyfile(other, f"{fresh_dir}/walk02.c3d")  # the same subject's fresh session: a second trial
    ahead_done = threading.Event()
    real_ahead, real_flush = cohort.factorise_ahead, commits.flush

    def ahead(*a, **k):
        try:
            return real_ahead(*a, **k)
        finally:
            ahead_done.set()

    def flush(s):  # the night's flush after its trials: only once the factorisation ahead is over
        assert ahead_done.wait(300)
        return real_flush(s)

    monkeypatch.setattr(cohort, "factorise_ahead", ahead)
    monkeypatch.setattr(commits, "flush", flush)
    factorised = []
    real = cohort._factorise
    monkeypatch.setattr(cohort, "_factorise",
                        lambda m, **kw: factorised.append(threading.current_thread().name) or real(m, **kw))
    summary = run_night(settings.lake, quiet=True)
    assert summary["ingested"] == 1 and summary["trials_derived"] == 1 and not summary.get("analysis_errors")
    assert factorised and all(t.startswith("derive") for t in factorised), factorised
    assert cohort._AHEAD == {}


def test_the_ingest_waits_while_as_many_trials_as_are_held_are_not_derived(tmp_path, monkeypatch):
    """The night's ingest never runs further ahead of the derivations than the trials ``fresh_trials`` keeps
    whole: a trial's rows held would be dropped before its derivations read them (they would read the catalog)."""
    import concurrent.futures

    from flows import nightly
    from warehouse import fresh_trials

    release, submitted, waits = threading.Event(), [], []
    real_wait = concurrent.futures.wait

    def wait(fs, return_when):
        waits.append((len(fs), len(submitted)))
        release.set()  # the derivations may finish now
        return real_wait(fs, return_when=return_when)
    monkeypatch.setattr(concurrent.futures, "wait", wait)
    early = nightly._Derivations(str(tmp_path / "lake"), lambda lake, tid: release.wait(600) and 0,
                                 lambda lake, tid: {"trial_id": tid}, workers=2)
    try:
        for k in range(fresh_trials.KEPT_TRIALS + 3):
            early.submit(f"site:S1:{k:012x}")
            submitted.append(k)
    finally:
        release.set()
        early._pool.shutdown(wait=True)
    # the first wait: as the KEPT_TRIALS-th trial was submitted, with every one of them still underived
    assert waits and waits[0] == (fresh_trials.KEPT_TRIALS, fresh_trials.KEPT_TRIALS - 1), waits
    assert all(f.result()[0] == tid for tid, f in early._futures.items())


def test_a_killed_nights_read_ahead_copies_are_swept_by_the_next(tmp_path):
    """A night killed with ``kill -9`` cannot remove its read-ahead folder (a copy of an inbox file): the next
    process's read-ahead removes the folders of processes that are gone, and nothing else."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        made = {}
        for who, pid in (("dead", dead.pid), ("alive", alive.pid), ("me", os.getpid())):
            made[who] = tmp_path / f"{read_ahead.PREFIX}{pid}-abc"
            made[who].mkdir()
            (made[who] / "copy.c3d").write_bytes(b"x")
        (tmp_path / "target").mkdir()
        (tmp_path / "target" / "keep.c3d").write_bytes(b"x")
        (tmp_path / f"{read_ahead.PREFIX}{dead.pid}-link").symlink_to(tmp_path / "target")
        (tmp_path / f"{read_ahead.PREFIX}notapid").mkdir()
        assert read_ahead.sweep_orphans(str(tmp_path)) == [str(made["dead"])]
        assert not made["dead"].exists() and made["alive"].exists() and made["me"].exists()
        assert (tmp_path / "target" / "keep.c3d").exists() and (tmp_path / f"{read_ahead.PREFIX}notapid").exists()
    finally:
        alive.kill()
        alive.wait()
