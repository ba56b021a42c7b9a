"""A reader process runs `myomap sql` while the nightly flow writes (SQLite DuckLake catalog)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import drop, fixture

MANIFEST = """
subjects: [{id: P0#}]
sessions:
  - {id: P0#-S1, subject: P0#, condition: fresh, task: walk, files: ["*.c3d"]}
"""


def test_reader_queries_while_nightly_flow_writes(lake):
    for i in range(8):
        drop(lake, f"site{i}", {"test_small.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST.replace("#", str(i)))
    myomap = str(Path(sys.executable).with_name("myomap"))
    env = {**os.environ, "MYOMAP_LAKE": lake.lake}
    # the catalog exists before the reader starts (the writer creates it on first attach)
    from warehouse import catalog
    catalog.connect(lake).close()
    writer = subprocess.Popen([myomap, "ingest", "--quiet"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    reads_during_write, seen = 0, set()
    try:
        while writer.poll() is None:
            r = subprocess.run([myomap, "sql", "SELECT count(*) FROM trials", "--format", "csv"], env=env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            seen.add(int(r.stdout.splitlines()[1]))
            if writer.poll() is None:
                reads_during_write += 1
    finally:
        out = writer.communicate(timeout=300)[0]
    assert writer.returncode == 0, out
    assert reads_during_write >= 2, (reads_during_write, out)
    final = subprocess.run([myomap, "sql", "SELECT count(*) FROM trials", "--format", "csv"], env=env,
                           capture_output=True, text=True)
    assert final.stdout.splitlines()[1] == "8"
    assert all(0 <= n <= 8 for n in seen)
