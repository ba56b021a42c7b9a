"""Serve and publish on the demo consortium: releases, extracts, injection, time travel, report."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from flows.cli import main
from warehouse import catalog


def counts(settings):
    con = catalog.connect(settings, read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("trials", "emg_samples", "asymmetry", "files")}, \
            con.execute("SELECT count(*) FROM ducklake_snapshots('lake')").fetchone()[0]
    finally:
        con.close()


def test_publish_twice_from_one_snapshot_gives_identical_files(demo_lake):
    from warehouse.serving.releases import ReleaseExistsError, publish

    _, _, settings = demo_lake
    m1 = publish(settings, "demo-cohort", "1")
    m2 = publish(settings, "demo-cohort", "2")
    data1 = {f["file"]: f["sha256"] for f in m1["files"] if f["kind"] == "data"}
    data2 = {f["file"]: f["sha256"] for f in m2["files"] if f["kind"] == "data"}
    assert data1 == data2 and data1
    with pytest.raises(ReleaseExistsError):
        publish(settings, "demo-cohort", "1")
    rel = Path(settings.zone("releases")) / "demo-cohort" / "1"
    manifest = json.loads((rel / "manifest.json").read_text())
    text = json.dumps(manifest)
    assert "boston" in text and "embargo" in text  # boston (embargoed) is excluded and the manifest says so
    import pyarrow.parquet as pq

    coh = pq.read_table(next(rel.glob("cohort_asymmetry*.parquet"))).to_pylist()
    assert {r["site_id"] for r in coh} <= {"lyon", "oslo"}
    oslo = [r for r in coh if r["site_id"] == "oslo"]
    assert oslo and all(r["suppressed"] and r["mean"] is None and r["n_subjects"] == 3 for r in oslo)
    assert any(not r["suppressed"] for r in coh if r["site_id"] == "lyon")


def test_extract_for_lyon_excludes_boston_embargoed_subjects(demo_lake, tmp_path):
    from warehouse.serving.extracts import extract

    truth, _, settings = demo_lake
    m = extract(settings, cohort="condition=fresh; muscle=tibialis_anterior", tables=["subjects", "activation_onsets"],
                fmt="parquet", out_dir=str(tmp_path / "x"), requester_site="lyon")
    import pyarrow.parquet as pq

    subs = {r["subject_id"] for r in pq.read_table(tmp_path / "x" / "subjects.parquet").to_pylist()}
    assert subs and not any(s.startswith("BOS") for s in subs)
    assert any(s.startswith("LYO") for s in subs)
    assert "boston" in json.dumps(m)
    for f in (tmp_path / "x").iterdir():
        if f.name != "manifest.json":
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            assert digest in json.dumps(m)


def test_injection_in_cohort_is_rejected_and_lake_unchanged(demo_lake, tmp_path):
    _, _, settings = demo_lake
    before = counts(settings)
    r = CliRunner().invoke(main, ["extract", "--lake", settings.lake, "--cohort", "site=A'; DROP TABLE trials; --",
                                  "--tables", "trials", "--out", str(tmp_path / "inj")])
    assert r.exit_code != 0 and "not allowed" in r.output and "Traceback" not in r.output
    assert counts(settings) == before


def test_sql_as_of_an_earlier_snapshot_returns_earlier_counts(demo_lake):
    _, _, settings = demo_lake
    con = catalog.connect(settings, read_only=True)
    snaps = con.execute("SELECT snapshot_id FROM ducklake_snapshots('lake') ORDER BY snapshot_id").fetchall()
    con.close()
    # find the snapshot in which the first trial landed: fewer trials than now
    runner = CliRunner()
    now = int(runner.invoke(main, ["sql", "--lake", settings.lake, "--format", "csv",
                                   "SELECT count(*) FROM trials"]).output.splitlines()[1])
    mid = snaps[len(snaps) // 4][0]
    r = runner.invoke(main, ["sql", "--lake", settings.lake, "--format", "csv", "--as-of", str(mid),
                             "SELECT count(*) FROM trials"])
    assert r.exit_code == 0, r.output
    earlier = int(r.output.splitlines()[1])
    assert earlier < now == 24


def test_myomap_sql_cannot_write(demo_lake):
    _, _, settings = demo_lake
    before = counts(settings)
    for stmt in ("DELETE FROM trials", "DROP TABLE trials", "INSERT INTO runs (run_id) VALUES ('x')",
                 "CREATE TABLE t AS SELECT 1", "COPY trials TO '/tmp/x.csv'"):
        r = CliRunner().invoke(main, ["sql", "--lake", settings.lake, stmt])
        assert r.exit_code != 0, stmt
    assert counts(settings) == before


def test_report_of_the_demo_has_maps_and_subject_pages(demo_lake, tmp_path):
    from warehouse.serving.report import render_report

    truth, _, settings = demo_lake
    out = tmp_path / "report.html"
    render_report(settings, str(out))
    html = out.read_text()
    assert html.count("<svg") >= 3 and "http://" not in html.replace("http://www.w3.org", "")
    assert re.search(r"LYO0\d", html)
