"""A trial's derivations read the rows its ingest just committed from memory (warehouse.fresh_trials, issue 17):
the same SQL over the inserted Arrow tables, typed as the lake stores them. Reading them so must give what
reading the catalog gives: the same rows, the same derived tables; a re-upload's commit replaces them, and a
commit that failed leaves nothing to read."""
from __future__ import annotations

import pytest
from conftest import drop, fixture, lake_fingerprint
from test_real_analysis import MANIFEST  # the two real files' sessions (and their channel map)

from schemas.contracts import TABLES
from warehouse import catalog, fresh_trials
from warehouse.analysis import derived, trial
from warehouse.ingest import steps
from warehouse.settings import get_settings

FILES = {"small/test_small.c3d": fixture("gaitalytics/test_small.c3d"),
         "tread/treadmill_events.c3d": fixture("gaitalytics/treadmill_events.c3d")}


def _ingest(settings) -> list[str]:
    drop(settings, "real", FILES, MANIFEST)
    steps.sync_site(settings, "real", "run-1")
    out = [steps.process_file(settings, "real", rel, "run-1") for rel in FILES]
    assert [r["outcome"] for r in out] == [steps.INGESTED] * len(FILES)
    return [r["trial_id"] for r in out]


def _lake_rows(settings, name: str, trial_id: str):
    con = catalog.connect(settings, read_only=True)
    try:
        cur = con.execute(f"SELECT * FROM {name} WHERE trial_id = ? ORDER BY ALL", [trial_id])
        return [d[:2] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def test_the_rows_held_are_the_lakes_rows_of_the_trial_typed_as_stored(lake):
    tids = _ingest(lake)
    for tid in tids:
        src = fresh_trials.source(lake, tid)
        assert src is not None
        try:
            held = {r[0] for r in src.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT starts_with(view_name, '_in_')").fetchall()}
            assert {"emg_samples", "emg_channels", "channel_qc", "grf", "markers", "gait_events", "trials"} <= held
            for name in sorted(held):
                cur = src.execute(f"SELECT * FROM {name} WHERE trial_id = ? ORDER BY ALL", [tid])
                got = ([d[:2] for d in cur.description], cur.fetchall())
                want = _lake_rows(lake, name, tid)
                assert [c.name for c in TABLES[name].columns] == [d[0] for d in got[0]], name
                assert got[0] == want[0], f"{name}: column types differ from the lake's"
                assert repr(got[1]) == repr(want[1]), f"{name}: rows differ from the lake's"
        finally:
            src.close()
        views = "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT starts_with(view_name, '_in_')"
        src = fresh_trials.source(lake, tid, needs=derived.ENVELOPE_INPUTS)  # what a step reads: those only
        try:
            assert sorted(r[0] for r in src.execute(views).fetchall()) == sorted(derived.ENVELOPE_INPUTS)
        finally:
            src.close()


def test_derivations_from_the_rows_held_equal_derivations_from_the_catalog(tmp_path, monkeypatch):
    """Two lakes ingest the same files; one derives its trials from the rows held (as the night does, right
    after each commit), the other from the catalog: every table is the same."""
    lakes, reads = {}, {}
    real_source = fresh_trials.source
    for how in ("held", "catalog"):
        settings = lakes[how] = get_settings(str(tmp_path / how / "lake"))
        tids = _ingest(settings)
        if how == "catalog":
            for tid in tids:
                fresh_trials.forget(settings, tid)
        reads[how] = []
        monkeypatch.setattr(fresh_trials, "source", lambda s, t, how=how, **k: reads[how].append(
            real_source(s, t, **k) is not None) or real_source(s, t, **k))
        onsets = 0
        for tid in tids:
            assert derived.compute_envelopes(settings, tid) > 0
            result = trial.analyse_trial(settings, tid)
            assert not result.get("error") and result["gait_cycles"] > 0, result
            onsets += result["activation_onsets"]
            after = fresh_trials._KEPT.get((settings.catalog, tid))  # analysed: what its session's synergies read
            assert (after is not None) == (how == "held") and set(after or derived.SESSION_INPUTS) == set(
                derived.SESSION_INPUTS)
        assert onsets > 0
    assert reads["held"] == [True, True] * len(FILES)  # envelopes and analysis
    assert not any(reads["catalog"])
    assert lake_fingerprint(lakes["held"]) == lake_fingerprint(lakes["catalog"])


def test_a_sessions_normalised_cycles_from_the_rows_held_equal_the_catalogs(lake, monkeypatch):
    """Once its trials are analysed, a session's synergy input (``cohort.normalised_cycles``) is read from the
    rows held, as from the catalog; ``factorise_ahead`` reads it so, then lets the trials go."""
    import numpy as np

    from warehouse.analysis import cohort

    tids = _ingest(lake)
    for tid in tids:
        derived.compute_envelopes(lake, tid)
        trial.analyse_trial(lake, tid)
    compared = 0
    for session, tid in zip(("R01-S1", "R02-S1"), tids):
        held = fresh_trials.source(lake, [tid], needs=derived.SESSION_INPUTS)
        con = catalog.connect(lake, read_only=True)
        try:
            got, want = cohort.normalised_cycles(held, session_id=session), cohort.normalised_cycles(
                con, session_id=session)
        finally:
            held.close()
            con.close()
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
            compared += want[k].size
    assert compared > 1000
    used = []
    real = cohort.normalised_cycles
    monkeypatch.setattr(cohort, "normalised_cycles", lambda con, **k: used.append(type(con).__name__) or real(con, **k))
    cohort.factorise_ahead(lake, "R02-S1")
    assert used == ["DuckDBPyConnection"] and fresh_trials.source(lake, tids[1]) is None
    cohort.factorise_ahead(lake, "R02-S1")  # not held any more: from the catalog
    assert used[-1] == "RetryingReads"


def test_a_recommit_replaces_the_rows_held_and_a_failed_commit_leaves_none(lake, monkeypatch):
    tids = _ingest(lake)
    small = tids[0]
    drop(lake, "real", {"small/test_small.c3d": fixture("btk/1123x01EMG.c3d")}, None)  # new bytes, same path
    monkeypatch.setenv("MYOMAP_FAULTS", "trial_commit=error")
    with pytest.raises(RuntimeError):
        steps.process_file(get_settings(lake.lake), "real", "small/test_small.c3d", "run-2")
    assert fresh_trials.source(lake, small) is None  # the trial's commit failed: the earlier rows are not the lake's
    monkeypatch.delenv("MYOMAP_FAULTS")
    r = steps.process_file(get_settings(lake.lake), "real", "small/test_small.c3d", "run-3")
    assert (r["outcome"], r["trial_id"]) == (steps.INGESTED, small)
    src = fresh_trials.source(lake, small)
    try:
        got = src.execute("SELECT count(*), sum(emg_mv::DOUBLE) FROM emg_samples").fetchone()
    finally:
        src.close()
    con = catalog.connect(lake, read_only=True)
    try:
        want = con.execute("SELECT count(*), sum(emg_mv::DOUBLE) FROM emg_samples WHERE trial_id = ?",
                           [small]).fetchone()
    finally:
        con.close()
    assert got == want and got[0] > 0


def test_the_analysis_reads_its_sites_sessions_as_the_nights_sync_left_them(lake, monkeypatch):
    """The night's sync holds the site's sessions (``remember_site``): a trial's analysis takes its task, terrain
    and mains frequency from them, not from the catalog; they are the catalog's rows, typed as stored; the
    night's end lets them go (a later analysis reads the catalog)."""
    from flows.nightly import run_night

    tids = _ingest(lake)
    src = fresh_trials.source(lake, tids[0], needs=("sessions",))
    assert src is not None
    try:
        cur = src.execute("SELECT * FROM sessions ORDER BY ALL")
        got = ([d[:2] for d in cur.description], cur.fetchall())
    finally:
        src.close()
    con = catalog.connect(lake, read_only=True)
    try:
        cur = con.execute("SELECT * FROM sessions WHERE site_id = 'real' ORDER BY ALL")
        want = ([d[:2] for d in cur.description], cur.fetchall())
    finally:
        con.close()
    assert got[0] == want[0] and repr(got[1]) == repr(want[1]) and len(want[1]) == 2
    asked = []
    real_execute = catalog.RetryingReads.execute
    monkeypatch.setattr(catalog.RetryingReads, "execute",
                        lambda self, sql, params=None: asked.append(sql) or real_execute(self, sql, params))
    for tid in tids:
        derived.compute_envelopes(lake, tid)
        assert trial.analyse_trial(lake, tid)["gait_cycles"] > 0
    assert not [sql for sql in asked if "sessions" in sql], asked
    run_night(lake.lake, quiet=True)  # nothing new: its sync holds the sessions again, its end drops them
    assert fresh_trials.source(lake, tids[0], needs=("sessions",)) is None
    assert not [k for k in fresh_trials._SITES if k[0] == lake.catalog]
    kept = fresh_trials.source(lake, tids[0], needs=("trials",))  # the trial's own rows do not need its site's
    assert kept is not None
    kept.close()
