"""The release disclosure attack of test_attacks on the demo consortium (real pipeline output).

Kept apart from test_attacks: its lakes set MYOMAP_CATALOG / AWS_* for a whole module, and the demo lake
(a session fixture) must be built with none of them.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from disclosure_model import check_release_keeps_its_promises

from warehouse.serving import releases


@pytest.mark.parametrize("scope", ["public_release", "pooled_analysis"])
def test_no_suppressed_cell_of_the_demo_release_can_be_rebuilt(demo_lake, scope):
    _, _, settings = demo_lake
    day = dt.date(2027, 1, 1)  # boston's embargo (until 2027-06-30) runs: it is in no release and no reference
    m = releases.publish(settings, f"attack-{scope.replace('_', '-')}", "1", required_consent=scope, today=day)
    assert "boston" not in m["sharing"]["included_sites"]
    check_release_keeps_its_promises(settings, Path(m["path"]), set(m["sharing"]["included_sites"]))
    prof = pq.read_table(Path(m["path"]) / "subject_profiles.parquet").to_pylist()
    assert not any(r["subject_id"].startswith("BOS") for r in prof)
    assert (scope == "public_release") == (not prof)  # no demo site consents to public per-subject data
