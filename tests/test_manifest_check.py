"""Strict manifests and `myomap manifest check SITE` (issue: onboarding a site in one sitting)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO, drop, fixture

from flows.cli import main
from schemas import manifest_schema
from warehouse.ingest.manifest import ManifestError, parse_manifest

FOUR_MISTAKES = """
site: fx
mains_hz: 50
subjects:
  - {id: P01, sex: F, mass_kg: "72,5"}
sessions:
  - id: P01-S1
    subject: P01
    task: walk
    terain: treadmill
    files: ["P01/*.c3d"]
  - id: P02-S1
    subject: P02
    task: walk
    files: ["P02/walk/*.C3D"]
"""


def _run(*args):
    return CliRunner().invoke(main, ["manifest", *args])


def test_four_mistakes_all_named_in_one_check(lake):
    drop(lake, "fx", {"P01/gait.c3d": fixture("btk/Gait.c3d"), "P02/walk/emg.c3d": fixture("btk/1123x01EMG.c3d")},
         FOUR_MISTAKES)
    r = _run("check", "fx", "--lake", lake.lake)
    assert r.exit_code == 1, r.output
    out = r.output
    assert "sessions[0].terain: unknown key 'terain'; did you mean 'terrain'?" in out
    assert "subjects[0].mass_kg: '72,5' is not a number (write 72.5" in out
    assert "sessions[1].subject: subject 'P02' is not in 'subjects'" in out
    assert "sessions[1].files[0]: 'P02/walk/*.C3D' matches no file" in out and "case-sensitive" in out
    assert "'P02/walk/emg.c3d' is claimed by no session" in out
    assert "4 error(s)" in out
    # file -> session -> subject, and channel label -> muscle/side with where the answer came from
    assert "P01/gait.c3d -> P01-S1 -> P01" in out
    assert "'RTA' -> tibialis_anterior R (alias)" in out or "-> tibialis_anterior R (alias)" in out


def test_clean_manifest_checks_clean_and_shows_sources(lake):
    text = """
subjects: [{id: P01}]
sessions:
  - {id: P01-S1, subject: P01, files: ["*.c3d"], channels: {"LGRF": ignore, "RGRF": {ignore: force}}}
"""
    drop(lake, "ok", {"gait.c3d": fixture("btk/Gait.c3d")}, text)
    r = _run("check", "ok", "--lake", lake.lake, "--verbose")
    assert r.exit_code == 0, r.output
    assert "0 error(s)" in r.output and "OK: the manifest is clean." in r.output
    assert "gait.c3d -> P01-S1 -> P01" in r.output
    assert "'LGRF' (session P01-S1) -> ignored (not_emg, manifest)" in r.output
    assert "'RGRF' (session P01-S1) -> ignored (force, manifest)" in r.output and "UNRESOLVED" not in r.output


def test_check_of_a_missing_or_broken_manifest_fails_with_the_reason(lake):
    drop(lake, "nom", {"gait.c3d": fixture("btk/Gait.c3d")}, None)
    r = _run("check", "nom", "--lake", lake.lake, "--no-read")
    assert r.exit_code == 1 and "manifest_missing" in r.output
    drop(lake, "bad", {"gait.c3d": fixture("btk/Gait.c3d")}, "sessions: [")
    r = _run("check", "bad", "--lake", lake.lake, "--no-read")
    assert r.exit_code == 1 and "not valid YAML" in r.output
    assert _run("check", "nowhere", "--lake", lake.lake).exit_code != 0


@pytest.mark.parametrize("bad, where", [
    ("sesions: []\n", "sesions: unknown key 'sesions'; did you mean 'sessions'?"),
    ("mains_hz: 55\n", "mains_hz: 55 must be one of 50, 60"),
    ("embargo_until: soon\n", "embargo_until: 'soon' is not a date"),
    ("channels: {EMG1: {muscle: soleus, side: left}}\n", "channels['EMG1'].side: 'left' is not one of L, R, U"),
    ("channels: {EMG1: {muscle: solues, side: L}}\n", "did you mean 'soleus'?"),
    ("channels: {FSW: {ignore: footswich}}\n", "did you mean 'footswitch'?"),
    ("gain: yes\n", "gain: True must be a number"),
])
def test_each_mistake_has_its_path_and_a_hint(bad, where):
    base = "subjects: [{id: A}]\nsessions: [{id: A1, subject: A, files: ['*']}]\n"
    with pytest.raises(ManifestError) as err:
        parse_manifest(base + bad, site="s")
    assert err.value.reason_code == "manifest_schema" and where in err.value.message


def test_every_error_in_one_pass():
    text = ("terain: x\nsubjects: [{id: A, mass_kg: '72,5', height_m: -1}]\nsessions:\n"
            "  - {id: A1, subject: B, files: ['*'], task: walking}\n  - {id: A1, subject: A}\n")
    with pytest.raises(ManifestError) as err:
        parse_manifest(text, site="s")
    paths = {p.path for p in err.value.problems if p.severity == "error"}
    assert paths == {"terain", "subjects[0].mass_kg", "subjects[0].height_m", "sessions[0].subject",
                     "sessions[0].task", "sessions[1].files", "sessions[1].id"}


def test_todo_channels_and_scoped_maps_parse():
    text = """
side: L
subjects: [{id: A}]
channels:
  "Voltage.1": {muscle: tibialis_anterior, side: R}
  "EMG 9": {muscle: TODO, side: TODO}
  "FSW": ignore
  "Sync": "ignore: sync"
sessions:
  - {id: A1, subject: A, files: ["a/*"]}
  - {id: A2, subject: A, files: ["b/*"], side: R, channels: {"Voltage.1": {muscle: soleus, side: L}, "EMG 9": ignore}}
"""
    m = parse_manifest(text, site="s")
    a1, a2 = m.sessions
    assert m.channels_for(a1)["Voltage.1"] == {"muscle": "tibialis_anterior", "side": "R"}
    assert m.channels_for(a2)["Voltage.1"] == {"muscle": "soleus", "side": "L"}
    assert m.channels_for(a2)["EMG 9"] == {"ignore": "not_emg"} and m.channels_for(a1)["Sync"] == {"ignore": "sync"}
    assert m.channels_for(a1)["FSW"] == {"ignore": "not_emg"}
    assert (m.default_side(a1), m.default_side(a2)) == ("L", "R")
    assert {p.path for p in m.warnings} == {"channels['EMG 9'].muscle", "channels['EMG 9'].side"}


def test_exported_schema_matches_the_declaration_and_validates_real_manifests():
    exported = json.loads((REPO / "docs" / "manifest.schema.json").read_text(encoding="utf-8"))
    assert exported == manifest_schema.json_schema(), "run `myomap manifest schema > docs/manifest.schema.json`"
    validator = jsonschema.Draft202012Validator(exported)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    fixed = FOUR_MISTAKES.replace('"72,5"', "72.5").replace("terain", "terrain").replace("subject: P02", "subject: P01")
    for text in (example, fixed):
        doc = yaml.safe_load(text)
        doc = json.loads(json.dumps(doc, default=str))  # dates as text, as the loader keeps them
        assert not list(validator.iter_errors(doc)), text
        parse_manifest(text, site=doc.get("site", "fx"))
    bad = yaml.safe_load(FOUR_MISTAKES)
    assert {e.validator for e in validator.iter_errors(bad)} >= {"additionalProperties", "type"}


def test_amplitude_bases_are_the_transforms():
    from transforms.qc import AMPLITUDE_BASES

    assert manifest_schema.AMPLITUDE_BASES == AMPLITUDE_BASES


def test_schema_cli_prints_the_exported_schema():
    r = _run("schema")
    assert r.exit_code == 0 and json.loads(r.output) == json.loads(
        Path(REPO / "docs" / "manifest.schema.json").read_text(encoding="utf-8"))


def test_todo_channel_never_blocks_the_site_and_is_recorded_not_stored(lake):
    """Done-when 2: a manifest with a TODO channel ingests the site's files; that channel has a quarantine
    row (with what to do), the ignored one has none, and a side-less mapping is stored with side U."""
    from flows.nightly import run_night
    from warehouse import catalog

    text = """
subjects: [{id: P01, mass_kg: 70}]
channels:
  "LGRF": {muscle: TODO, side: TODO}
  "RGRF": {ignore: force}
sessions:
  - {id: P01-S1, subject: P01, task: walk, files: ["a/*.c3d"]}
  - {id: P01-S2, subject: P01, task: walk, files: ["b/*.c3d"], channels: {"RTIB": {muscle: tibialis_anterior, side: U}}}
"""
    drop(lake, "todo", {"a/gait.c3d": fixture("btk/Gait.c3d"), "b/gait2.c3d": fixture("btk/Gait.c3d")}, text)
    (Path(lake.zone("inbox")) / "todo" / "b" / "gait2.c3d").open("ab").write(b"\0" * 512)  # other bytes
    summary = run_night(lake.lake, quiet=True)
    assert summary["ingested"] == 2 and summary["held"] == 0, summary
    con = catalog.connect(lake, read_only=True)
    try:
        by_path = dict(con.execute("SELECT path, trial_id FROM files").fetchall())
        labels = {p: {r[0]: r[1] for r in con.execute("SELECT label, side FROM emg_channels WHERE trial_id = ?",
                                                      [t]).fetchall()} for p, t in by_path.items()}
        q = con.execute("SELECT path, reason_code, message FROM quarantine WHERE stage = 'harmonise' ORDER BY path")\
            .fetchall()
        excluded = con.execute("SELECT muscle, reason FROM analysis_exclusions WHERE side = 'U'").fetchall()
    finally:
        con.close()
    assert len(labels["a/gait.c3d"]) == 14 and "LGRF" not in labels["a/gait.c3d"] and "RGRF" not in labels["a/gait.c3d"]
    assert labels["b/gait2.c3d"]["RTIB"] == "U" and labels["a/gait.c3d"]["RTIB"] == "R"
    assert [r[:2] for r in q] == [("a/gait.c3d#LGRF", "unmapped_channel"), ("b/gait2.c3d#LGRF", "unmapped_channel")]
    assert all("TODO" in r[2] and "rest of the trial kept" in r[2] for r in q)
    # a side-U channel is analysed per trial but never paired left against right: excluded, with a reason
    assert summary["errors"] == 0 and excluded == [("tibialis_anterior", "side unknown (U): no cycles, no asymmetry")]


def test_status_explains_held_files_by_name(lake):
    """`myomap status` names each held file (its inbox path, not a hash), why it is held and what to edit."""
    from flows.nightly import run_night

    text = "subjects: [{id: P01}]\nsessions:\n  - {id: P01-S1, subject: P01, files: ['walk/*.C3D']}\n"
    d = drop(lake, "held", {"walk/gait.c3d": fixture("btk/Gait.c3d")}, text)
    drop(lake, "broken", {"emg.c3d": fixture("btk/1123x01EMG.c3d")}, "subjects: [{id: B1, mass_kg: '72,5'}]\n")
    summary = run_night(lake.lake, quiet=True)
    assert summary["held"] == 2
    out = CliRunner().invoke(main, ["status", "--lake", lake.lake]).output
    lines = {ln.split("|")[1].strip(): ln for ln in out.splitlines()
             if ln.count("|") >= 3 and ("walk/gait.c3d" in ln or "emg.c3d" in ln)}
    assert "no session's files: glob claims it" in lines["walk/gait.c3d"]
    assert "'walk/*.C3D' matches it only ignoring case" in lines["walk/gait.c3d"]
    assert "subjects[0].mass_kg: '72,5' is not a number" in lines["emg.c3d"]
    assert "myomap manifest check broken" in lines["emg.c3d"]
    (d / "manifest.yaml").write_text(text.replace(".C3D", ".c3d"))
    again = CliRunner().invoke(main, ["status", "--lake", lake.lake]).output
    assert any("walk/gait.c3d" in ln and "claimed now" in ln for ln in again.splitlines())
