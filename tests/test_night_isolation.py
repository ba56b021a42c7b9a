"""One site's inbox never stops another's night, never leaks a file from outside the inbox, and every
site ends up in `myomap status` with its outcome and reason (issue: a night survives anything a site drops)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import drop, fixture

from flows.cli import main
from flows.nightly import run_night
from warehouse import catalog
from warehouse.ingest.manifest import ManifestError, parse_manifest

GOOD = """
subjects: [{id: G01, mass_kg: 70}]
sessions:
  - {id: G01-S1, subject: G01, condition: fresh, task: walk, files: ["*.c3d"]}
"""
#: billion laughs: 9 levels of 9 aliases, 382 bytes, 387 million strings once expanded
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
BROKEN = {  # site -> manifest: valid YAML that used to raise out of the night
    "baddate": "subjects: [{id: D01}]\nsessions:\n  - {id: D01-S1, subject: D01, date: 2026-13-45, files: ['*']}\n",
    "neverembargo": "embargo_until: never\nsubjects: [{id: E01}]\nsessions: [{id: E01-S1, subject: E01, files: ['*']}]\n",
    "stringsessions": "subjects: [{id: S01}]\nsessions: [S01-S1, S01-S2]\n",
    "channellist": "subjects: [{id: C01}]\nsessions: [{id: C01-S1, subject: C01, files: ['*']}]\nchannels: [EMG1, EMG2]\n",
    "deep": "subjects: " + "[" * 5000 + "]" * 5000 + "\n",
    "bomb": BOMB,
}


@pytest.mark.parametrize("site", sorted(BROKEN))
def test_broken_manifests_are_errors_with_a_reason_not_exceptions(site):
    with pytest.raises(ManifestError) as err:
        parse_manifest(BROKEN[site], site=site)
    assert err.value.reason_code.startswith("manifest_") and err.value.message


def test_bomb_is_refused_for_its_aliases_and_dates_are_checked_where_they_are():
    with pytest.raises(ManifestError, match="more than 16 YAML aliases") as err:
        parse_manifest(BOMB, site="bomb")
    assert err.value.reason_code == "manifest_yaml_aliases"
    with pytest.raises(ManifestError, match=r"sessions\[0\]\.date: '2026-13-45' is not a date"):
        parse_manifest(BROKEN["baddate"], site="baddate")
    with pytest.raises(ManifestError, match="embargo_until: 'never' is not a date"):
        parse_manifest(BROKEN["neverembargo"], site="neverembargo")
    ok = parse_manifest("embargo_until: 2027-01-31\nsubjects: [{id: P}]\nsessions: [{id: S, subject: P, "
                        "date: 2026-09-14, files: ['*']}]\n", site="x")
    assert (ok.embargo_until, ok.sessions[0].date) == ("2027-01-31", "2026-09-14")


def test_manifests_too_large_linked_or_not_utf8_are_refused_unread(lake, tmp_path, monkeypatch):
    from warehouse.ingest.steps import load_manifest

    big = drop(lake, "big", {}, "subjects: [{id: B01}]\n# " + "x" * 300_000 + "\n")
    assert big.joinpath("manifest.yaml").stat().st_size > 256 * 1024
    linked = drop(lake, "linked", {}, None)
    secret = tmp_path / "secret.yaml"
    secret.write_text("subjects: [{id: S01}]\n")
    os.symlink(secret, linked / "manifest.yaml")
    latin = drop(lake, "latin", {}, None)
    (latin / "manifest.yaml").write_bytes("subjects: [{id: Z\u00e9}]\n".encode("latin-1"))
    codes = {}
    for site in ("big", "linked", "latin"):
        with pytest.raises(ManifestError) as err:
            load_manifest(lake, site)
        codes[site] = err.value.reason_code
    assert codes == {"big": "manifest_too_large", "linked": "manifest_not_a_file", "latin": "manifest_encoding"}
    monkeypatch.setenv("MYOMAP_MAX_MANIFEST_BYTES", "1M")  # the limit is a setting
    from warehouse.settings import get_settings
    assert load_manifest(get_settings(lake.lake), "big").subjects == [{"id": "B01"}]


def test_one_night_survives_broken_manifests_bombs_and_hostile_links(lake):
    good = fixture("btk/1123x01EMG.c3d")
    drop(lake, "good", {"emg.c3d": good}, GOOD)
    other = fixture("btk/Res16bits.c3d")  # bytes that only the broken sites hold
    for site, text in BROKEN.items():
        drop(lake, site, {"trial.c3d": other}, text)
    links = drop(lake, "links", {}, "subjects: [{id: L01}]\nsessions: [{id: L01-S1, subject: L01, files: ['*']}]\n")
    os.symlink("/etc/passwd", links / "passwd.c3d")
    os.symlink("/nonexistent/walk.c3d", links / "dangling.c3d")
    os.symlink("/etc", links / "etc.c3d")
    os.symlink(good, links / "copy_of_good.c3d")  # even a link to a valid recording is not followed

    summary = run_night(lake.lake, quiet=True)
    print(f"night with {len(BROKEN) + 2} sites: {summary['seconds']} s")

    assert summary["status"] == "completed" and summary["errors"] == 0
    outcomes = summary["site_outcomes"]
    assert set(outcomes) == {"good", "links", *BROKEN}
    assert outcomes["good"]["outcome"] == "ok" and outcomes["good"]["ingested"] == 1
    for site in BROKEN:
        assert outcomes[site]["outcome"] == "manifest_error", site
        assert outcomes[site]["message"].startswith(f"inbox/{site}/manifest.yaml: "), outcomes[site]
        assert outcomes[site]["held"] == 1
    assert outcomes["bomb"]["reason_code"] == "manifest_yaml_aliases"
    assert outcomes["deep"]["reason_code"] == "manifest_yaml_depth"
    assert "sessions[0].date: '2026-13-45'" in outcomes["baddate"]["message"]
    assert outcomes["links"]["quarantine_reasons"] == {"symlink": 4}

    con = catalog.connect(lake, read_only=True)
    try:
        assert con.execute("SELECT trial_id FROM trials").fetchall() == con.execute(
            "SELECT trial_id FROM files WHERE path = 'emg.c3d' AND starts_with(trial_id, 'good:G01-S1:')").fetchall()
        refused = con.execute("SELECT f.path, f.status, f.raw_path, q.stage, q.reason_code, q.message FROM files f "
                              "JOIN quarantine q USING (sha256, site_id, path) WHERE f.site_id = 'links' "
                              "ORDER BY 1").fetchall()
        assert [r[:5] for r in refused] == [(p, "quarantined", None, "inbox", "symlink") for p in
                                            ("copy_of_good.c3d", "dangling.c3d", "etc.c3d", "passwd.c3d")]
        assert "'/etc/passwd'" in refused[3][5]
        run = con.execute("SELECT status, site_outcomes FROM runs").fetchall()
        assert len(run) == 1 and run[0][0] == "completed" and json.loads(run[0][1]) == json.loads(
            json.dumps(outcomes))
    finally:
        con.close()

    # raw/ holds exactly the bytes of the regular files in the inboxes: nothing a link pointed at
    raw = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in Path(lake.zone("raw")).rglob("*") if p.is_file()}
    assert set(raw) == {hashlib.sha256(good.read_bytes()).hexdigest(), hashlib.sha256(other.read_bytes()).hexdigest()}
    assert not any(p.name.endswith(".part") or ".part-" in p.name for p in raw.values())

    # every site is in `myomap status`, with its outcome and why
    res = CliRunner().invoke(main, ["status", "--lake", lake.lake])
    assert res.exit_code == 0, res.output
    sites = res.output.split("Sites (outcome in the last run that reached them):")[1].split("\nTables:")[0]
    lines = {ln.split("|")[0].strip(): ln for ln in sites.splitlines() if "|" in ln}
    assert {"good", "links", *BROKEN} <= set(lines)
    assert "1 ingested" in lines["good"] and "4 symlink" in lines["links"]
    assert "manifest_yaml_aliases" in lines["bomb"] and "inbox/bomb/manifest.yaml" in lines["bomb"]
    assert "2026-13-45" in lines["baddate"]

    # the next night: nothing new, nothing re-copied, the same outcomes
    again = run_night(lake.lake, quiet=True)
    assert again["files_new"] == 0 and again["errors"] == 0
    assert {s: o["outcome"] for s, o in again["site_outcomes"].items()} == {s: o["outcome"] for s, o in
                                                                            outcomes.items()}


def test_a_site_whose_scan_fails_is_recorded_and_the_night_goes_on(lake):
    drop(lake, "a_broken", {}, GOOD)
    drop(lake, "b_good", {"emg.c3d": fixture("btk/1123x01EMG.c3d")}, GOOD.replace("G01", "G02"))

    def scan(lake_path, site, run_id):
        if site == "a_broken":
            raise PermissionError(13, "Permission denied", f"{lake_path}/inbox/{site}")
        from flows.nightly import scan_site
        return scan_site.fn(lake_path, site, run_id)

    s = run_night(lake.lake, quiet=True, scan=scan)
    assert s["status"] == "completed" and s["ingested"] == 1
    assert s["site_outcomes"]["a_broken"]["outcome"] == "failed"
    assert "Permission denied" in s["site_outcomes"]["a_broken"]["message"]
    assert s["site_outcomes"]["b_good"]["outcome"] == "ok"


def test_the_runs_row_is_written_when_the_night_fails(lake):
    drop(lake, "site", {"emg.c3d": fixture("btk/1123x01EMG.c3d")}, GOOD)

    def cohort(lake_path):
        raise ZeroDivisionError("a bug in the cohort tables")

    with pytest.raises(ZeroDivisionError):
        run_night(lake.lake, quiet=True, cohort_step=cohort)
    con = catalog.connect(lake, read_only=True)
    try:
        status, message, outcomes = con.execute("SELECT status, message, site_outcomes FROM runs").fetchone()
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 1
    finally:
        con.close()
    assert status == "failed" and message == "ZeroDivisionError: a bug in the cohort tables"
    assert json.loads(outcomes)["site"]["ingested"] == 1
