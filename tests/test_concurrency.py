"""Readers and writers of one lake at the same time, made deterministic with fault points
(``MYOMAP_FAULTS=<step>@<n>=pause:<gate>``): the writer stops at a named step and waits for the test.

* `myomap sql` answers while the nightly run is inside a trial's transaction (SQLite catalog), and
  sees only committed trials.
* One night per lake: a second `myomap ingest` exits with "a night is already running since ...", or
  waits for it with --wait; two concurrent ingests leave no duplicate row.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, drop, fixture, lake_fingerprint

from warehouse import catalog
from warehouse.lease import NightAlreadyRunning, night_lease

MANIFEST = """
subjects: [{id: P0#}]
sessions:
  - {id: P0#-S1, subject: P0#, condition: fresh, task: walk, files: ["*.c3d"]}
"""
MYOMAP = str(Path(sys.executable).with_name("myomap"))


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    """Wait until the paused process reports that it reached its fault point (or died)."""
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the writer exited ({proc.returncode}) before its fault point: "
                                 f"{proc.communicate()[0][-3000:]}")
        time.sleep(0.05)


def _env(lake, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MYOMAP_FAULTS"}
    return {**env, "MYOMAP_LAKE": lake.lake, **extra}


def _count(lake) -> subprocess.CompletedProcess:
    return subprocess.run([MYOMAP, "sql", "SELECT count(*) FROM trials", "--format", "csv"], env=_env(lake),
                          capture_output=True, text=True, timeout=300)


def test_reader_queries_while_the_night_is_inside_a_trial_transaction(lake, tmp_path):
    for i in range(3):
        drop(lake, f"site{i}", {"emg.c3d": fixture("btk/1123x01EMG.c3d")}, MANIFEST.replace("#", str(i)))
    gate = tmp_path / "gate"
    code = f"from flows.nightly import run_night; run_night({lake.lake!r}, quiet=True)"
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env=_env(lake, MYOMAP_FAULTS=f"trial_commit@2=pause:{gate}"))
    try:
        _wait_for(Path(f"{gate}.reached"), writer)
        # the second trial's rows are written, its COMMIT not yet run: readers see one trial
        r = _count(lake)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[1] == "1"
        st = subprocess.run([MYOMAP, "status"], env=_env(lake), capture_output=True, text=True, timeout=300)
        assert st.returncode == 0 and "trials" in st.stdout, st.stderr
    finally:
        gate.touch()
        out = writer.communicate(timeout=600)[0]
    assert writer.returncode == 0, out
    r = _count(lake)
    assert r.stdout.splitlines()[1] == "3"


def test_one_night_per_lake(lake, tmp_path):
    with night_lease(lake, run_id="night-1"):
        with pytest.raises(NightAlreadyRunning, match=r"a night is already running since \d{4}-\d\d-\d\dT[\d:]+"
                                                      r"\+00:00 \(run night-1, host .+, pid \d+\)"):
            with night_lease(lake, run_id="night-2"):
                pass
        with pytest.raises(NightAlreadyRunning, match=r"a night is already running since .*run night-1"):
            with night_lease(lake, run_id="site-a", site="a"):
                pass
    with night_lease(lake, run_id="site-a", site="a"), night_lease(lake, run_id="site-b", site="b"):
        with pytest.raises(NightAlreadyRunning, match=r"a run of site a is already running since .*run site-a"):
            with night_lease(lake, run_id="site-a2", site="a"):
                pass
        with pytest.raises(NightAlreadyRunning, match=r"one site's run\) is already running since .*run site-"):
            with night_lease(lake, run_id="night-3"):
                pass
    with night_lease(lake, run_id="night-4"):  # every lease was released
        pass


def test_a_killed_night_releases_its_lease_at_once(lake, tmp_path):
    catalog.connect(lake).close()
    ready = tmp_path / "ready"
    code = ("import time; from warehouse.lease import night_lease; from warehouse.settings import get_settings\n"
            f"with night_lease(get_settings({lake.lake!r}), run_id='doomed'):\n"
            f"    open({str(ready)!r}, 'w').close(); time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(ready, holder)
        with pytest.raises(NightAlreadyRunning, match="run doomed"):
            with night_lease(lake, run_id="next"):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=60)
    with night_lease(lake, run_id="next"):  # no stale lease: the kernel dropped it with its holder
        pass


def test_two_concurrent_ingests_produce_no_duplicate_rows(prefect_harness, lake, tmp_path):
    from prefect.settings import PREFECT_API_URL

    for i in range(2):
        drop(lake, f"site{i}", {"emg.c3d": fixture("btk/1123x01EMG.c3d"), "res.c3d": fixture("btk/Res16bits.c3d")},
             MANIFEST.replace("#", str(i)))
    api = {"PREFECT_API_URL": PREFECT_API_URL.value()}
    gate = tmp_path / "gate"
    first = subprocess.Popen([MYOMAP, "ingest", "--quiet"], text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=_env(lake, MYOMAP_FAULTS=f"file_done@1=pause:{gate}", **api))
    waiting = None
    try:
        _wait_for(Path(f"{gate}.reached"), first)  # the first night is mid-way: one file done
        second = subprocess.run([MYOMAP, "ingest", "--quiet"], env=_env(lake, **api), capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 1
        assert "a night is already running since" in second.stderr and "--wait" in second.stderr, second.stderr
        waiting = subprocess.Popen([MYOMAP, "ingest", "--quiet", "--wait", "600"], text=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, env=_env(lake, **api))
    finally:
        gate.touch()
        out = first.communicate(timeout=600)[0]
    assert first.returncode == 0, out
    assert "4 files seen, 4 new; 4 ingested" in out, out
    out2 = waiting.communicate(timeout=600)[0]
    assert waiting.returncode == 0, out2
    assert "4 files seen, 0 new; 0 ingested" in out2, out2  # it waited, then found the work done

    fp = lake_fingerprint(lake)  # asserts no duplicate key in any table
    assert fp["files"][0] == 4 and fp["trials"][0] == 4
    con = catalog.connect(lake, read_only=True)
    try:
        # each batch was validated once (two nights at once used to record every check twice)
        assert con.execute("SELECT trial_id, table_name, expectation, column_name FROM validations GROUP BY ALL "
                           "HAVING count(*) > 1").fetchall() == []
    finally:
        con.close()
