"""A night's trials commit a few per transaction (warehouse.trial_batch, issue 17). The lake is the one a commit
per trial gives; a later file's lookups see the trials still waiting; nothing derived from a waiting trial
commits before it; a trial waiting is never evicted from the rows held for its derivations; a batch that fails
commits none of its trials nor anything derived from them, and the night counts them as errors."""
from __future__ import annotations

from conftest import drop, fixture, lake_fingerprint
from test_real_analysis import MANIFEST  # the two real files' sessions (and their channel map)

from flows.nightly import run_night
from warehouse import catalog, faults, fresh_trials, trial_batch
from warehouse.analysis import commits, derived, trial
from warehouse.ingest import steps
from warehouse.settings import get_settings

FILES = {"small/test_small.c3d": fixture("gaitalytics/test_small.c3d"),
         "tread/treadmill_events.c3d": fixture("gaitalytics/treadmill_events.c3d")}


def _commits(monkeypatch) -> list[str]:
    """What each catalog transaction of the process was (``write_atomically``'s ``what``), in order."""
    whats: list[str] = []
    real = catalog.write_atomically

    def spy(settings, con, body, *, what):
        whats.append(what)
        return real(settings, con, body, what=what)
    monkeypatch.setattr(catalog, "write_atomically", spy)
    return whats


def _count(settings, sql: str) -> int:
    con = catalog.connect(settings, read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_a_sites_trials_commit_together_and_give_the_lake_of_one_commit_per_trial(tmp_path, monkeypatch):
    batched = get_settings(str(tmp_path / "batched" / "lake"))
    drop(batched, "real", FILES, MANIFEST)
    whats = _commits(monkeypatch)
    s = run_night(batched.lake, quiet=True)
    assert (s["ingested"], s["errors"]) == (2, 0), s
    assert [w for w in whats if "trial" in w and not w.startswith("analysis")] == ["commit 2 trial(s)"]

    alone = get_settings(str(tmp_path / "alone" / "lake"))  # each trial in its own transaction, as outside a night
    drop(alone, "real", FILES, MANIFEST)
    whats.clear()
    monkeypatch.setattr(trial_batch, "defers", lambda settings: False)
    s = run_night(alone.lake, quiet=True)
    assert (s["ingested"], s["errors"]) == (2, 0), s
    assert [w for w in whats if w.startswith("commit ")] == [w for w in whats if w.startswith("commit trial ")]
    assert len([w for w in whats if w.startswith("commit trial ")]) == 2
    assert lake_fingerprint(batched) == lake_fingerprint(alone)


def test_a_later_files_lookup_sees_the_trials_waiting(lake):
    """The same bytes at a second path of the site in the same night: a duplicate of the trial still waiting in
    the batch (its lookup commits the batch first), not a second trial with the same id."""
    files = {**FILES, "small/copy_of_small.c3d": FILES["small/test_small.c3d"]}
    drop(lake, "real", files, MANIFEST)
    s = run_night(lake.lake, quiet=True)
    assert (s["ingested"], s["duplicate"], s["errors"]) == (2, 1, 0), s
    assert _count(lake, "SELECT count(*) FROM trials") == 2
    assert _count(lake, "SELECT count(*) FROM files WHERE status = 'duplicate'") == 1


def test_nothing_derived_commits_before_its_trial_and_a_waiting_trial_stays_held(lake, monkeypatch):
    drop(lake, "real", FILES, MANIFEST)
    steps.sync_site(lake, "real", "run-1")
    whats = _commits(monkeypatch)
    with steps.site_turn(lake, "real", "run-1"):
        out = [steps.process_file(lake, "real", rel, "run-1") for rel in FILES]
        tids = [r["trial_id"] for r in out]
        assert [r["outcome"] for r in out] == [steps.INGESTED] * 2
        assert _count(lake, "SELECT count(*) FROM trials") == 0  # both wait in the batch
        for k in range(fresh_trials.KEPT_TRIALS + 2):  # more committed trials than are kept whole
            fresh_trials.remember(lake, f"real:R09-S1:{k:012x}", {"trials": None})
        assert all(fresh_trials.source(lake, tid) is not None for tid in tids)  # waiting: never evicted
        with commits.batched(lake, size=1):  # an analysis in the night's batch: the trial's batch commits first
            trial.analyse_trial(lake, tids[1])
        assert whats == ["commit 2 trial(s)", "analysis of 1 trial(s)"]
        assert _count(lake, "SELECT count(*) FROM trials") == 2
        assert _count(lake, f"SELECT count(*) FROM gait_cycles WHERE trial_id = '{tids[1]}'") > 0
    drop(lake, "real", {"small/again.c3d": fixture("btk/1123x01EMG.c3d")}, None)  # a third trial, in its own batch
    whats.clear()
    with steps.site_turn(lake, "real", "run-2"):
        tid = steps.process_file(lake, "real", "small/again.c3d", "run-2")["trial_id"]
        derived.compute_envelopes(lake, tid)  # its envelopes alone: the trial's batch commits first
        assert whats == ["commit 1 trial(s)", f"envelopes {tid}"]


def test_a_batch_that_fails_commits_none_of_its_trials_nor_their_derived_rows(tmp_path, monkeypatch):
    clean = get_settings(str(tmp_path / "clean" / "lake"))
    drop(clean, "real", FILES, MANIFEST)
    run_night(clean.lake, quiet=True)

    settings = get_settings(str(tmp_path / "failed" / "lake"))
    drop(settings, "real", FILES, MANIFEST)
    monkeypatch.setenv("MYOMAP_FAULTS", "trial_commit@2=error")  # inside the batch's transaction, 2nd trial
    faults.reset()
    s = run_night(settings.lake, quiet=True)
    assert s["status"] == "completed", s
    assert (s["ingested"], s["errors"]) == (0, 2), s  # counted as errors, not as ingested
    for table in ("trials", "emg_samples", "files", "emg_envelopes", "gait_cycles"):
        assert _count(settings, f"SELECT count(*) FROM {table}") == 0, table
    assert _count(settings, "SELECT count(*) FROM derivations WHERE step <> 'cohort'") == 0  # the rebuild's own row
    con = catalog.connect(clean, read_only=True)
    try:
        tids = [r[0] for r in con.execute("SELECT trial_id FROM trials").fetchall()]
    finally:
        con.close()
    assert len(tids) == 2 and trial_batch.not_committed(settings, tids) == set(tids)

    monkeypatch.delenv("MYOMAP_FAULTS")
    again = run_night(settings.lake, quiet=True)
    assert (again["ingested"], again["errors"]) == (2, 0), again
    assert not trial_batch.not_committed(settings, tids)
    assert lake_fingerprint(settings) == lake_fingerprint(clean)
