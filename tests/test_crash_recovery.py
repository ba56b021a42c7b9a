"""A nightly run killed with SIGKILL mid-write leaves no partial trial; the next run converges
to exactly the tables of an uninterrupted run, with no duplicate rows."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import drop, fixture

from flows.nightly import run_night
from schemas.contracts import TABLES
from warehouse import catalog
from warehouse.settings import get_settings

MANIFEST = """
subjects: [{id: P0#, mass_kg: 70}]
sessions:
  - {id: P0#-S1, subject: P0#, condition: fresh, task: walk, files: ["*.c3d"]}
"""
VOLATILE = {"received_at", "ingested_at", "run_id", "raw_path", "completed_at", "quarantined_at", "started_at",
            "finished_at"}
SITES = 6


def make_inbox(settings):
    for i in range(SITES):
        drop(settings, f"site{i}", {"walk.c3d": fixture("gaitalytics/test_small.c3d"),
                                    "broken.c3d": fixture("bad/sample20_phasespace_sample.c3d")}, MANIFEST.replace("#", str(i)))


def fingerprint(settings) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent hash of every table (volatile columns left out)."""
    con = catalog.connect(settings, read_only=True)
    out = {}
    for name, t in TABLES.items():
        if name == "runs":
            continue
        cols = [c.name for c in t.columns if c.name not in VOLATILE]
        sel = ", ".join(f'"{c}"' for c in cols)
        rows = con.execute(f"SELECT {sel} FROM {name} ORDER BY ALL").fetchall()
        h = hashlib.sha256(repr(rows).encode()).hexdigest()
        out[name] = (len(rows), h)
        key = ", ".join(f'"{k}"' for k in t.primary_key)
        dup = con.execute(f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY ALL HAVING count(*) > 1)").fetchone()
        assert dup[0] == 0, f"duplicate keys in {name}"
    con.close()
    return out


def test_kill_minus_nine_then_rerun_converges(tmp_path):
    ref = get_settings(str(tmp_path / "ref"))
    make_inbox(ref)
    run_night(ref.lake, quiet=True)
    expected = fingerprint(ref)
    assert expected["trials"][0] == SITES

    lake = get_settings(str(tmp_path / "killed"))
    make_inbox(lake)
    catalog.connect(lake).close()
    code = f"from flows.nightly import run_night; run_night({lake.lake!r}, quiet=True)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill it once it has committed some trials but not all (mid-night, mid-write)
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        try:
            con = catalog.connect(lake, read_only=True)
            n = con.execute("SELECT count(*) FROM trials").fetchone()[0]
            con.close()
        except Exception:
            n = 0
        if 2 <= n < SITES:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = n
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    assert proc.returncode == -signal.SIGKILL

    # nothing partial is visible: every visible trial has all its channels and samples
    con = catalog.connect(lake, read_only=True)
    partial = con.execute("""SELECT t.trial_id FROM trials t LEFT JOIN emg_channels c USING (trial_id)
                             GROUP BY t.trial_id, t.n_emg_channels HAVING count(c.channel) <> t.n_emg_channels""").fetchall()
    assert partial == []
    assert con.execute("SELECT count(*) FROM emg_samples WHERE trial_id NOT IN (SELECT trial_id FROM trials)").fetchone()[0] == 0
    con.close()

    run_night(lake.lake, quiet=True)
    assert fingerprint(lake) == expected
