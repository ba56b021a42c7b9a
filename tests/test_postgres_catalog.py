"""A PostgreSQL DuckLake catalog for real: the nightly logic end to end, and two site ingests
(`myomap ingest --site A` / `--site B`, two processes) committing at the same time.

The server (``pg_server`` in conftest.py): ``MYOMAP_TEST_PG_DSN`` (a ``postgresql://`` DSN whose user
may CREATE DATABASE) if set, else a throw-away server started once per test session with
``.ci/services.sh start`` on a free 127.0.0.1 port and stopped at the end. Each test gets its own database.

The concurrent-ingest test depends on the flows/nightly.py change that limits a ``--site`` run's
derivations to that site's trials (without it both processes may derive the same new trial at
once, and DuckLake lets both inserts commit: duplicate rows).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import drop, fixture

from flows.nightly import run_night
from schemas.contracts import TABLES
from warehouse import catalog
from warehouse.demo import generate_consortium
from warehouse.settings import get_settings

MANIFEST = """
site: gaita
subjects: [{id: G01, mass_kg: 70}]
sessions:
  - {id: G01-S1, subject: G01, condition: fresh, task: walk, files: ["*.c3d"]}
"""


def _pg(dsn: str, sql: str):
    import psycopg

    with psycopg.connect(dsn) as c:
        return c.execute(sql).fetchall()


def _duplicate_keys(con) -> dict[str, int]:
    out = {}
    for name, t in TABLES.items():
        key = ", ".join(f'"{k}"' for k in t.primary_key)
        n = con.execute(f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
        if n:
            out[name] = n
    return out


def test_nightly_end_to_end_with_a_postgres_catalog(pg_catalog, tmp_path):
    settings = get_settings(str(tmp_path / "lake"))
    assert settings.catalog_kind == "postgres" and settings.catalog == pg_catalog
    drop(settings, "gaita", {"test_small.c3d": fixture("gaitalytics/test_small.c3d"),
                             "Empty.c3d": fixture("bad/Empty.c3d")}, MANIFEST)
    s = run_night(settings.lake, quiet=True)
    assert (s["ingested"], s["quarantined"], s["trials_derived"]) == (1, 1, 1), s
    assert not s.get("analysis_errors") and s["cohort_rows"]
    assert s["compaction"]["files_merged"] > 0 and "error" not in s["compaction"]  # its plan reads PostgreSQL

    # the catalog lives in PostgreSQL (DuckLake's metadata tables), the data under <lake>/tables/
    tables = {r[0] for r in _pg(pg_catalog, "SELECT table_name FROM ducklake_table WHERE end_snapshot IS NULL")}
    assert {"trials", "emg_samples", "activation_onsets", "runs"} <= tables
    snapshots = _pg(pg_catalog, "SELECT count(*) FROM ducklake_snapshot")[0][0]
    assert not Path(settings.lake, "catalog.sqlite").exists()
    assert list(Path(settings.zone("tables")).rglob("*.parquet"))

    con = catalog.connect(settings, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 1
        assert dict(con.execute("SELECT status, count(*) FROM files GROUP BY 1").fetchall()) == {
            "ingested": 1, "quarantined": 1}
        n_chan, n_expected = con.execute("SELECT count(*), sum(n_samples) FROM emg_channels").fetchone()
        assert n_chan > 0 and con.execute("SELECT count(*) FROM emg_samples").fetchone()[0] == n_expected
        assert con.execute("SELECT count(*) FROM emg_envelopes").fetchone()[0] == s["envelope_rows"]
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        assert not _duplicate_keys(con)
    finally:
        con.close()

    again = run_night(settings.lake, quiet=True)
    assert again["files_new"] == 0 and again["trials_derived"] == 0
    assert _pg(pg_catalog, "SELECT count(*) FROM ducklake_snapshot")[0][0] == snapshots  # no empty snapshot


def test_two_site_ingests_commit_concurrently(prefect_harness, pg_catalog, tmp_path):
    from prefect.settings import PREFECT_API_URL

    root = tmp_path / "lake"
    truth = generate_consortium(root / "inbox", seed=5, subjects_per_site=1, duration_s=4.0)
    sites = sorted(truth["sites"])  # boston, lyon, oslo: 2 trials each
    a, b, c = sites
    settings = get_settings(str(root))
    env = {**os.environ, "MYOMAP_LAKE": str(root), "MYOMAP_CATALOG": pg_catalog,
           "PREFECT_API_URL": PREFECT_API_URL.value()}
    myomap = str(Path(sys.executable).with_name("myomap"))
    procs = {s: subprocess.Popen([myomap, "ingest", "--site", s, "--quiet"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for s in (a, b)}
    outs = {s: p.communicate(timeout=600)[0] for s, p in procs.items()}
    for s, p in procs.items():
        assert p.returncode == 0, outs[s]
        assert "2 ingested, 0 quarantined" in outs[s], outs[s]

    con = catalog.connect(settings, read_only=True)
    try:
        per_site = dict(con.execute("SELECT site_id, count(*) FROM trials GROUP BY 1").fetchall())
        assert per_site == {a: 2, b: 2}
        assert dict(con.execute("SELECT site_id, count(*) FROM files WHERE status = 'ingested' GROUP BY 1")
                    .fetchall()) == {a: 2, b: 2}
        assert con.execute("SELECT count(*) FROM sites").fetchone()[0] == 2
        # nothing lost: every trial has all its samples, its envelopes and its analysis, once
        assert con.execute("SELECT count(*) FROM emg_samples").fetchone()[0] == \
            con.execute("SELECT sum(n_samples) FROM emg_channels").fetchone()[0] > 0
        steps = con.execute("SELECT step, count(*), count(DISTINCT trial_id) FROM derivations "
                            "WHERE step IN ('envelopes', 'analysis') GROUP BY 1 ORDER BY 1").fetchall()
        assert steps == [("analysis", 4, 4), ("envelopes", 4, 4)]
        env_trials = con.execute("SELECT count(DISTINCT trial_id) FROM emg_envelopes").fetchone()[0]
        # each run derived its own site's trials only: the rows they report add up to the table
        reported = [int(re.search(r"(\d+) envelope rows", outs[s]).group(1)) for s in (a, b)]
        assert sum(reported) == con.execute("SELECT count(*) FROM emg_envelopes").fetchone()[0], reported
        onset_trials = con.execute("SELECT count(DISTINCT trial_id) FROM activation_onsets").fetchone()[0]
        assert (env_trials, onset_trials) == (4, 4)
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
        assert not _duplicate_keys(con)
    finally:
        con.close()

    # the next (whole) night takes the third site and rebuilds the cohort tables over all three
    s = run_night(str(root), quiet=True)
    assert (s["ingested"], s["trials_derived"]) == (2, 2), s
    assert s["skipped"] == 4  # the other sites' files are already in
    con = catalog.connect(settings, read_only=True)
    try:
        assert dict(con.execute("SELECT site_id, count(*) FROM trials GROUP BY 1").fetchall()) == {a: 2, b: 2, c: 2}
        assert con.execute("SELECT count(DISTINCT trial_id) FROM emg_cycle_metrics").fetchone()[0] == 6
        assert con.execute("SELECT count(DISTINCT subject_id) FROM subject_profiles").fetchone()[0] == 3
        assert {r[0] for r in con.execute("SELECT DISTINCT site_id FROM cohort_asymmetry").fetchall()} == {a, b, c}
        assert not _duplicate_keys(con)
    finally:
        con.close()


def test_cohort_tables_go_stale_when_another_run_commits_an_analysis_after_their_rebuild(pg_catalog, tmp_path):
    """Two writers: B's analysis began before A rebuilt the cohort tables but committed after it.

    Depends on the warehouse/analysis/cohort.py change (staleness by the set of analysed trials, not by
    time): comparing timestamps misses B's trial, and the cohort tables stay without it.
    """
    import datetime as dt

    from warehouse.analysis import cohort, trial

    settings = get_settings(str(tmp_path / "lake"))
    con = catalog.connect(settings)
    began = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30)
    try:
        catalog.write_atomically(settings, con, lambda c: c.execute(
            "INSERT INTO derivations VALUES ('siteA:S1:t1', 'analysis', ?, now())", [trial.PARAMS_HASH]),
            what="test")
        assert cohort.is_stale(settings)
        cohort.rebuild(settings)  # run A
        assert not cohort.is_stale(settings)
        catalog.write_atomically(settings, con, lambda c: c.execute(  # run B's commit, stamped when it began
            "INSERT INTO derivations VALUES ('siteB:S1:t1', 'analysis', ?, ?)", [trial.PARAMS_HASH, began]),
            what="test")
        assert cohort.is_stale(settings)
        cohort.rebuild(settings)
        assert not cohort.is_stale(settings)
        catalog.write_atomically(settings, con, lambda c: c.execute(  # a trial removed: stale again
            "DELETE FROM derivations WHERE trial_id = 'siteB:S1:t1'"), what="test")
        assert cohort.is_stale(settings)
    finally:
        con.close()


def test_a_commit_conflict_is_retried_even_though_the_rollback_after_it_fails(pg_catalog, tmp_path):
    """Two writers create the lake's tables at once (two `myomap ingest --site` on a fresh catalog). The loser's
    DuckLake COMMIT fails with a retryable conflict, after which its ROLLBACK raises "no transaction is
    active": that second error must not hide the first (it made `test_two_site_ingests_commit_concurrently`
    flaky). The other writer commits exactly between the loser's DDL and its COMMIT (a fault point)."""
    from warehouse import faults

    settings = get_settings(str(tmp_path / "lake"))
    other = catalog.connect(settings, create=False)
    other.execute("BEGIN")
    other.execute(TABLES["trials"].ddl(f"{catalog.LAKE}.main"))
    with faults.inject("tables_commit", lambda: other.execute("COMMIT")):
        con = catalog.connect(settings)  # creates every table: conflict on `trials`, retried, then done
    try:
        existing = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE "
                                              "table_catalog = 'lake'").fetchall()}
        assert set(TABLES) <= existing
    finally:
        con.close()
        other.close()

    # the same race inside any write: the conflict is what with_retry sees, and the retry commits
    a, b = catalog.connect(settings), catalog.connect(settings)
    try:
        a.execute("BEGIN")
        a.execute("CREATE TABLE lake.main.extra (x INTEGER)")
        attempts = []

        def body(c):
            attempts.append(1)
            c.execute("CREATE TABLE IF NOT EXISTS lake.main.extra (x INTEGER)")
            if len(attempts) == 1:
                a.execute("COMMIT")  # the other writer wins the race
            c.execute("INSERT INTO lake.main.extra VALUES (1)")
        catalog.write_atomically(settings, b, body, what="test write")
        assert len(attempts) == 2
        assert b.execute("SELECT count(*) FROM lake.main.extra").fetchone()[0] == 1
    finally:
        a.close()
        b.close()


def test_one_night_per_lake_with_a_postgres_catalog(pg_catalog, tmp_path):
    """The lease is a session advisory lock: held by a connection, gone when the session ends."""
    from warehouse.lease import NightAlreadyRunning, night_lease

    settings = get_settings(str(tmp_path / "lake"))
    assert settings.catalog_kind == "postgres"
    with night_lease(settings, run_id="pg-night-1"):
        with pytest.raises(NightAlreadyRunning, match=r"a night is already running since \d{4}-.*run pg-night-1, "
                                                      r"host .+, pid \d+"):
            with night_lease(settings, run_id="pg-night-2"):
                pass
        with pytest.raises(NightAlreadyRunning, match="a night is already running"):
            with night_lease(settings, run_id="pg-site", site="lyon"):
                pass
    with night_lease(settings, run_id="pg-lyon", site="lyon"), night_lease(settings, run_id="pg-oslo", site="oslo"):
        with pytest.raises(NightAlreadyRunning, match="a run of site lyon is already running since .*run pg-lyon"):
            with night_lease(settings, run_id="pg-lyon-2", site="lyon"):
                pass
        with pytest.raises(NightAlreadyRunning, match="already running"):
            with night_lease(settings, run_id="pg-night-3"):
                pass
    with night_lease(settings, run_id="pg-night-4"):
        pass
