"""The night's analyses commit in batches (warehouse.analysis.commits, issue 17): a batch leaves the lake that
one transaction per trial leaves, in fewer snapshots; a trial waiting in a batch is not in the lake yet but is
held for its session's synergies; a trial whose rows cannot be committed fails alone (its envelopes still
commit); a batch that ends on an exception commits nothing, and those trials are derived again."""
from __future__ import annotations

import pyarrow as pa
import pytest
from conftest import lake_fingerprint
from test_fresh_trials import _ingest  # the two real files ingested (their trials' ids)

from warehouse import catalog, fresh_trials
from warehouse.analysis import commits, derived, trial
from warehouse.settings import get_settings


def _derive(settings, tid) -> dict:
    """The trial's envelopes, then its analysis, as a night's thread derives it."""
    with derived.analysis_follows(settings, tid):
        derived.compute_envelopes(settings, tid)
        return trial.analyse_trial(settings, tid)


def _lake(settings, sql: str, params=None):
    con = catalog.connect(settings, read_only=True)
    try:
        return con.execute(sql, params).fetchall() if params else con.execute(sql).fetchall()
    finally:
        con.close()


def _snapshots(settings) -> int:
    return _lake(settings, f"SELECT count(*) FROM {catalog.LAKE}.snapshots()")[0][0]


def _steps(settings) -> list[tuple]:
    return _lake(settings, "SELECT trial_id, step FROM derivations ORDER BY ALL")


def test_a_batch_commits_the_rows_one_transaction_per_trial_commits(tmp_path):
    lakes, snaps = {}, {}
    for how in ("alone", "batched"):
        settings = lakes[how] = get_settings(str(tmp_path / how / "lake"))
        tids = _ingest(settings)
        before = _snapshots(settings)
        if how == "alone":
            for tid in tids:
                assert not _derive(settings, tid).get("error")
        else:
            with commits.batched(settings, size=len(tids)):
                assert not _derive(settings, tids[0]).get("error")
                # waiting: not in the lake yet, but held with what its session's synergies read
                assert _steps(settings) == [] and _snapshots(settings) == before
                held = fresh_trials._KEPT[(settings.catalog, tids[0])]
                assert set(held) == set(derived.SESSION_INPUTS) and held["emg_envelopes"] is not None
                assert not _derive(settings, tids[1]).get("error")  # the batch is full: both commit
                assert len(_steps(settings)) == 2 * len(tids)
        snaps[how] = _snapshots(settings) - before
    assert snaps == {"alone": 2, "batched": 1}
    assert lake_fingerprint(lakes["batched"]) == lake_fingerprint(lakes["alone"])


def test_a_trial_that_cannot_be_committed_fails_alone_and_keeps_its_envelopes(tmp_path, monkeypatch):
    settings = get_settings(str(tmp_path / "lake"))
    tids = _ingest(settings)
    bad = tids[1]
    real = trial._dedupe_cycles

    def cycles(trial_id, rows):  # the second trial's cycles: a duration the lake cannot store as a number
        t = real(trial_id, rows)
        if trial_id != bad:
            return t
        return t.set_column(t.column_names.index("duration_s"), "duration_s",
                            pa.array(["not a number"] * t.num_rows))

    monkeypatch.setattr(trial, "_dedupe_cycles", cycles)
    with commits.batched(settings, size=len(tids)) as batch:
        for tid in tids:
            assert not _derive(settings, tid).get("error")  # the rows are computed; the commit comes later
    assert list(batch.errors) == [bad] and "'not a number' to DOUBLE" in batch.errors[bad]
    assert _steps(settings) == sorted([(tids[0], "analysis"), (tids[0], "envelopes"), (bad, "envelopes")])
    assert _lake(settings, "SELECT count(*) FROM emg_envelopes WHERE trial_id = ?", [bad])[0][0] > 0
    assert _lake(settings, "SELECT count(*) FROM gait_cycles WHERE trial_id = ?", [bad])[0][0] == 0
    assert (settings.catalog, bad) not in fresh_trials._KEPT  # not the lake's rows: nothing held

    monkeypatch.setattr(trial, "_dedupe_cycles", real)  # the next run derives it
    assert derived.pending(settings, "analysis", trial.PARAMS_HASH) == [bad]
    assert not _derive(settings, bad).get("error")
    assert derived.pending(settings, "analysis", trial.PARAMS_HASH) == []


def test_a_batch_that_ends_on_an_exception_commits_nothing(tmp_path):
    settings = get_settings(str(tmp_path / "lake"))
    tids = _ingest(settings)
    before = _snapshots(settings)
    with pytest.raises(RuntimeError, match="night stopped"):
        with commits.batched(settings, size=len(tids) + 1):
            for tid in tids:
                _derive(settings, tid)
            raise RuntimeError("night stopped")
    assert _snapshots(settings) == before and _steps(settings) == []
    assert not any((settings.catalog, tid) in fresh_trials._KEPT for tid in tids)
    assert sorted(derived.pending(settings, "analysis", trial.PARAMS_HASH)) == sorted(tids)
