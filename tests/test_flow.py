"""The nightly Prefect flow end to end (one session-scoped Prefect test server)."""
from __future__ import annotations

from conftest import drop, fixture

from flows.nightly import nightly
from warehouse import catalog

MANIFEST = """
site: gaita
subjects: [{id: G01}]
sessions:
  - {id: G01-S1, subject: G01, condition: fresh, task: walk, files: ["*.c3d"]}
"""


def test_nightly_flow_ingests_and_quarantines_in_one_night(prefect_harness, lake):
    drop(lake, "gaita", {"test_small.c3d": fixture("gaitalytics/test_small.c3d"),
                         "Empty.c3d": fixture("bad/Empty.c3d"),
                         "phasespace.c3d": fixture("bad/sample20_phasespace_sample.c3d")}, MANIFEST)
    summary = nightly(lake=lake.lake, quiet=True)
    assert summary["ingested"] == 1 and summary["quarantined"] == 2
    con = catalog.connect(lake, read_only=True)
    reasons = dict(con.execute("SELECT path, reason_code FROM quarantine WHERE stage = 'read'").fetchall())
    assert reasons == {"Empty.c3d": "empty_file", "phasespace.c3d": "no_frames"}
    assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    again = nightly(lake=lake.lake, quiet=True)
    assert again["files_new"] == 0 and again["ingested"] == 0
