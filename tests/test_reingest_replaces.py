"""A corrected re-upload replaces everything the trial had, derived rows included (issue 17): the ingest
deletes every table keyed by the trial when its file is replaced, so the derivations can skip their
deletes for a trial they never ran on. The lake after "first version, night, corrected version, night"
holds exactly what a lake that only ever saw the corrected version holds (trial ids aside: a re-upload
keeps its trial's id)."""
from __future__ import annotations

import shutil

from conftest import VOLATILE_COLUMNS

from flows.nightly import run_night
from schemas.contracts import TABLES
from warehouse import catalog
from warehouse.demo import generate_consortium
from warehouse.settings import get_settings

SUBJECTS = {"lyon": 1, "boston": 1, "oslo": 1}
HISTORY = {"runs", "files", "validations"}  # what a re-upload is meant to add to, not replace


def _rows(settings) -> dict[str, list[tuple]]:
    con = catalog.connect(settings, read_only=True)
    try:
        out = {}
        for name, t in TABLES.items():
            if name in HISTORY:
                continue
            cols = [c.name for c in t.columns if c.name not in VOLATILE_COLUMNS | {"trial_id"}]
            # the cohort's derivations row names its inputs by trial id: per-trial steps only
            where = " WHERE step IN ('envelopes', 'analysis')" if name == "derivations" else ""
            sel = ", ".join(f'"{c}"' for c in cols)
            out[name] = con.execute(f"SELECT {sel} FROM {name}{where} ORDER BY ALL").fetchall()
        return out
    finally:
        con.close()


def test_a_corrected_reupload_leaves_the_lake_of_the_corrected_file_alone(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    generate_consortium(first, seed=3, subjects_per_site=SUBJECTS, duration_s=6.0)
    generate_consortium(second, seed=4, subjects_per_site=SUBJECTS, duration_s=6.0)
    rel = sorted(p.relative_to(first) for p in first.glob("lyon/**/*.c3d"))[0]
    assert (second / rel).read_bytes() != (first / rel).read_bytes()

    replaced = get_settings(str(tmp_path / "replaced"))
    shutil.copytree(first, replaced.zone("inbox"))
    assert run_night(replaced.lake, quiet=True)["ingested"] >= 6
    shutil.copyfile(second / rel, f"{replaced.zone('inbox')}/{rel}")
    again = run_night(replaced.lake, quiet=True)
    assert again["ingested"] == 1 and again["trials_derived"] == 1, again

    alone = get_settings(str(tmp_path / "alone"))
    shutil.copytree(first, alone.zone("inbox"))
    shutil.copyfile(second / rel, f"{alone.zone('inbox')}/{rel}")
    run_night(alone.lake, quiet=True)

    got, want = _rows(replaced), _rows(alone)
    assert sum(len(want[t]) for t in ("activation_onsets", "gait_cycles", "emg_envelopes")) > 100
    for name in want:  # compared as text, where NaN equals NaN
        assert repr(got[name]) == repr(want[name]), f"{name}: {len(got[name])} rows after the re-upload, {len(want[name])} expected"
