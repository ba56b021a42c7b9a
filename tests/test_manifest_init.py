"""`myomap manifest init <site>`: scaffold a manifest from the files in a site inbox."""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from flows.cli_manifest import register
from warehouse.demo import generate_consortium
from warehouse.ingest.manifest import parse_manifest
from warehouse.ingest.manifest_init import guess_parts, scaffold_manifest, session_globs
from warehouse.settings import get_settings

SUBJECTS = {"lyon": ["LYO01", "LYO02"], "oslo": ["OSL01", "OSL02"]}


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("mi") / "lake"
    generate_consortium(root / "inbox", seed=1, subjects_per_site=2, duration_s=5.0)
    for site in ("lyon", "oslo"):
        (root / "inbox" / site / "manifest.yaml").unlink()
    return get_settings(str(root))


def _data_files(settings, site) -> list[str]:
    base = Path(settings.zone("inbox")) / site
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()
                  and not p.name.endswith("_events.tsv") and p.name != "manifest.yaml")


def _fill(text: str, tz: str) -> str:
    text = re.sub(r"muscle: TODO", "muscle: tibialis_anterior", text)
    text = re.sub(r"side: TODO", "side: R", text)
    return text.replace("timezone: null", f"timezone: {tz}")


def test_guess_parts_and_globs():
    assert guess_parts("S01_fresh_walk01.c3d") == {"subject": "S01", "condition": "fresh", "task": "walk"}
    assert guess_parts("S01/fatigued/x.c3d") == {"subject": "S01", "condition": "fatigued", "task": None}
    assert guess_parts("P_012/post_injury/trial03.c3d")["subject"] == "P_012"
    assert guess_parts("P_012/post_injury/trial03.c3d")["condition"] == "post_injury"
    assert guess_parts("sub-07/ses-01/emg/sub-07_task-walk_run-01_emg.edf") == \
        {"subject": "sub-07", "condition": None, "task": "walk"}
    assert guess_parts("notes/overview.pdf")["subject"] is None
    # a stem like Walking1 / Static03 is a trial, never a subject; task words name the task
    assert guess_parts("Walking1.c3d") == {"subject": None, "condition": None, "task": "walk"}
    assert guess_parts("P01/Walking1.c3d") == {"subject": "P01", "condition": None, "task": "walk"}
    assert guess_parts("data/Static03.c3d")["subject"] is None and guess_parts("data/Static03.c3d")["task"] == "static"
    assert guess_parts("sub-07/x_CMJ2.c3d") == {"subject": "sub-07", "condition": None, "task": "jump"}
    assert guess_parts("AB12/Running_03.c3d")["task"] == "run"
    flat = ["S01_fresh_walk01.c3d", "S01_fresh_walk02.c3d", "S01_fatigued_walk01.c3d", "S02_fresh_walk01.c3d"]
    g = session_globs(flat[:2], flat)
    assert g == ["S01_fresh_*.c3d"]
    assert {f for f in flat if any(fnmatch.fnmatchcase(f, x) for x in g)} == set(flat[:2])
    assert session_globs(["a/[x].c3d"], ["a/[x].c3d", "a/y.c3d"]) == ["a/[[]x[]]*.c3d"]


def test_scaffold_lyon_and_oslo(demo_lake):
    for site in ("lyon", "oslo"):
        text = scaffold_manifest(demo_lake, site)
        doc = yaml.safe_load(text)
        assert doc["site"] == site and doc["mains_hz"] == 50  # both demo sites hum at 50 Hz
        assert [s["id"] for s in doc["subjects"]] == SUBJECTS[site]
        assert all(set(s) == {"id"} for s in doc["subjects"]) and "# mass_kg: TODO" in text
        pairs = sorted((s["subject"], s["condition"]) for s in doc["sessions"])
        assert pairs == sorted((sub, c) for sub in SUBJECTS[site] for c in ("fresh", "fatigued"))
        assert all(s["task"] == "walk" and "date" not in s for s in doc["sessions"])
        files = _data_files(demo_lake, site)
        for s in doc["sessions"]:  # each session's globs claim exactly its own files
            claimed = [f for f in files if any(fnmatch.fnmatchcase(f, g) for g in s["files"])]
            assert claimed == [f"{s['subject']}/{s['condition']}/{s['subject']}_{s['condition']}_walk01."
                               f"{'c3d' if site == 'lyon' else 'csv'}"]
        if site == "lyon":
            assert '# "Voltage.RTA" -> tibialis_anterior R (alias)' in text
            assert '# "Voltage.LGMED" -> gluteus_medius L (alias)' in text
            assert doc["channels"] == {}
            man = parse_manifest(text, site=site)  # nothing to fill for lyon's channels
            assert len(man.sessions) == 4 and man.consent == []
        else:
            assert set(doc["channels"]) == {f"Mini sensor {n}: EMG {n}" for n in range(1, 17)}
            assert all(v == {"muscle": "TODO", "side": "TODO"} for v in doc["channels"].values())
            assert "ACC" not in yaml.safe_dump(doc["channels"])
            todo = parse_manifest(text, site=site)  # a TODO never blocks: those channels are skipped and recorded
            assert {p.path for p in todo.warnings} >= {"channels['Mini sensor 1: EMG 1'].muscle"}
            assert all(p.severity == "warning" and "TODO" in p.message for p in todo.warnings)
            man = parse_manifest(_fill(text, "Europe/Oslo"), site=site)
            assert man.timezone == "Europe/Oslo"
            assert man.channels["Mini sensor 7: EMG 7"] == {"muscle": "tibialis_anterior", "side": "R"}
            assert man.session_for("OSL02/fatigued/OSL02_fatigued_walk01.csv").id == "OSL02-fatigued"
            assert man.session_for("OSL02/fatigued/OSL02_fatigued_walk01_events.tsv") is None


def test_cli_init_refuses_overwrite_and_help(demo_lake):
    grp = click.Group("myomap")
    register(grp)
    run = CliRunner().invoke
    lake = demo_lake.lake
    assert run(grp, ["manifest", "--help"]).exit_code == 0
    h = run(grp, ["manifest", "init", "--help"])
    assert h.exit_code == 0 and "--force" in h.output and "--stdout" in h.output
    r = run(grp, ["manifest", "init", "oslo", "--lake", lake, "--stdout"])
    assert r.exit_code == 0 and '"Mini sensor 16: EMG 16": {muscle: TODO' in r.output
    target = Path(demo_lake.zone("inbox")) / "oslo" / "manifest.yaml"
    assert not target.exists()  # --stdout writes nothing
    r = run(grp, ["manifest", "init", "oslo", "--lake", lake])
    assert r.exit_code == 0, r.output
    assert "16 to map" in r.output and yaml.safe_load(target.read_text())["site"] == "oslo"
    target.write_text("site: oslo\n")
    r = run(grp, ["manifest", "init", "oslo", "--lake", lake])
    assert r.exit_code != 0 and "--force" in r.output and target.read_text() == "site: oslo\n"
    r = run(grp, ["manifest", "init", "oslo", "--lake", lake, "--force"])
    assert r.exit_code == 0 and "scaffolded by" in target.read_text()
    assert run(grp, ["manifest", "init", "nowhere", "--lake", lake]).exit_code != 0
    from flows.cli import main
    if "manifest" in main.commands:  # once flows/cli.py registers the group
        assert CliRunner().invoke(main, ["manifest", "init", "--help"]).exit_code == 0
