"""A nightly run killed with SIGKILL at a named step leaves no partial trial; the next run converges to
exactly the tables of an uninterrupted run, with no duplicate rows and no half-copied raw file.

The kill comes from a fault point (``MYOMAP_FAULTS=<step>@<n>=kill``, warehouse/faults.py) inside the
run itself: the same step dies every time, no timing window."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, drop, fixture, lake_fingerprint

from flows.nightly import run_night
from warehouse import catalog
from warehouse.settings import get_settings

MANIFEST = """
subjects: [{id: P0#, mass_kg: 70}]
sessions:
  - {id: P0#-S1, subject: P0#, condition: fresh, task: walk, files: ["*.c3d"]}
"""
#: site -> its walking trial (a gait trial with plates and events; an EMG-only trial), each with a broken file
WALKS = {"site0": "gaitalytics/test_small.c3d", "site1": "btk/1123x01EMG.c3d"}
SITES = len(WALKS)


def make_inbox(settings):
    for i, (site, walk) in enumerate(WALKS.items()):
        drop(settings, site, {"walk.c3d": fixture(walk), "broken.c3d": fixture("bad/sample20_phasespace_sample.c3d")},
             MANIFEST.replace("#", str(i)))


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    ref = get_settings(str(tmp_path_factory.mktemp("ref") / "lake"))
    make_inbox(ref)
    run_night(ref.lake, quiet=True)
    fp = lake_fingerprint(ref)
    assert fp["trials"][0] == SITES
    return fp


@pytest.mark.parametrize("fault", [
    "raw_write@3=kill",  # mid-copy of site0/walk.c3d into raw/ (after its first MiB)
    "trial_commit@2=kill",  # inside site1's trial transaction: its Parquet files written, not committed
    "file_done@3=kill",  # between site1's two files
])
def test_kill_minus_nine_then_rerun_converges(expected, tmp_path, fault):
    lake = get_settings(str(tmp_path / "killed"))
    make_inbox(lake)
    code = f"from flows.nightly import run_night; run_night({lake.lake!r}, quiet=True)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**_env(), "MYOMAP_FAULTS": fault},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    # nothing partial is visible: every visible trial has all its channels and samples
    con = catalog.connect(lake, read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM trials").fetchone()[0]
        assert n < SITES
        partial = con.execute("""SELECT t.trial_id FROM trials t LEFT JOIN emg_channels c USING (trial_id)
                                 GROUP BY t.trial_id, t.n_emg_channels
                                 HAVING count(c.channel) <> t.n_emg_channels""").fetchall()
        assert partial == []
        assert con.execute("SELECT count(*) FROM emg_samples WHERE trial_id NOT IN (SELECT trial_id FROM trials)"
                           ).fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0  # killed: no row, no lie
    finally:
        con.close()

    summary = run_night(lake.lake, quiet=True)
    assert summary["status"] == "completed"
    assert lake_fingerprint(lake) == expected
    assert not [p for p in Path(lake.zone("raw")).rglob("*") if ".part" in p.name]


def _env() -> dict:
    import os
    return {k: v for k, v in os.environ.items() if k != "MYOMAP_FAULTS"}


def test_no_snapshot_holds_a_new_files_row_without_its_outcome(tmp_path):
    """A new file's ``files`` row is written in the transaction of its outcome (its trial's commit, its
    quarantine), not registered first: at every snapshot of the night, the files listed are exactly those
    with their trial, or with their quarantine record. A kill between two transactions leaves both or neither."""
    settings = get_settings(str(tmp_path / "lake"))
    make_inbox(settings)
    summary = run_night(settings.lake, quiet=True)
    assert (summary["ingested"], summary["quarantined"]) == (SITES, SITES)
    con = catalog.connect(settings, read_only=True)
    try:
        versions = [r[0] for r in con.execute(f"SELECT snapshot_id FROM {catalog.LAKE}.snapshots() ORDER BY 1")
                    .fetchall()]
    finally:
        con.close()
    listed_at = []
    for v in versions:
        con = catalog.connect(settings, as_of=str(v))
        try:
            if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'files'").fetchone()[0]:
                assert not listed_at, f"snapshot {v}: no files table after files arrived"
                continue  # before the lake's tables were created
            files = set(con.execute("SELECT site_id, path, status FROM files").fetchall())
            outcomes = {(s, p, "ingested") for s, p in con.execute(
                "SELECT f.site_id, f.path FROM files f JOIN trials t USING (trial_id)").fetchall()}
            outcomes |= {(s, p, "quarantined") for s, p in con.execute(  # whole files, not channels (path#label)
                "SELECT site_id, path FROM quarantine WHERE resolved_at IS NULL AND NOT contains(path, '#')").fetchall()}
        finally:
            con.close()
        assert files == outcomes, f"snapshot {v}: {files ^ outcomes}"
        listed_at.append(len(files))
    assert listed_at[-1] == 2 * SITES and sorted(listed_at) == listed_at  # the files arrived one by one
