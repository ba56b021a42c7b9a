"""Releases: reproducible bytes, immutability, disclosure control, documents, listing."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_views_extracts import FATIGUED, SITES, TODAY, _cli, build_lake

from warehouse import catalog
from warehouse.serving import releases


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    return build_lake(tmp_path_factory.mktemp("rel") / "lake")


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def data_hashes(path: str) -> dict[str, str]:
    return {p.name: sha(p) for p in sorted(Path(path).glob("*.parquet"))}


def test_release_contents_and_disclosure_control(lake):
    m = releases.publish(lake, "cohort", "1.0.0", today=TODAY)
    root = Path(m["path"])
    assert root == Path(lake.zone("releases")) / "cohort" / "1.0.0"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [f"{t}.parquet" for t in releases.RELEASE_TABLES] + ["manifest.json", "README.md", "data_dictionary.md",
                                                              "datacite.json"])
    on_disk = json.loads((root / "manifest.json").read_text())
    assert on_disk["version"] == "1.0.0" and on_disk["licence"] == "CC-BY-4.0"
    assert on_disk["validation"]["passed"] and on_disk["validation"]["n_checks"] > 20
    con = catalog.connect(lake, read_only=True)
    latest = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone()[0]
    assert on_disk["snapshot_id"] == latest
    for f in on_disk["files"]:  # every file listed with its real hash (and rows for data)
        assert sha(root / f["file"]) == f["sha256"], f["file"]
        if f["kind"] == "data":
            assert pq.read_metadata(root / f["file"]).num_rows == f["rows"]
    # only lyon: boston is embargoed, tokyo did not consent to public release; both said so
    reasons = {d["site_id"]: d["reasons"] for d in on_disk["sharing"]["excluded_sites"]}
    assert reasons == {"boston": ["embargoed until 2999-01-01"],
                       "tokyo": ["consent lacks 'public_release' (has: pooled_analysis)"]}
    readme = (root / "README.md").read_text()
    assert "boston (embargoed until 2999-01-01)" in readme and "tokyo" in readme
    # per-subject rows: lyon consents to public_subject_data; its fatigued cells (3 subjects) are suppressed,
    # so the fatigued sessions are withheld from every per-subject table (they would rebuild the cells)
    for t in ("asymmetry", "variability", "fatigue", "subject_profiles"):
        rows = pq.read_table(root / f"{t}.parquet").to_pylist()
        assert {r["subject_id"] for r in rows} == set(SITES["lyon"][0]), t
        assert {r["session_id"] for r in rows} == {f"{x}-fresh" for x in SITES["lyon"][0]}, t
    assert on_disk["disclosure"]["subject_level_sites"] == ["lyon"]
    assert on_disk["disclosure"]["suppressed_site_conditions"] == [{"site_id": "lyon", "condition": "fatigued"}]
    assert on_disk["disclosure"]["withheld_subject_sessions"] == len(FATIGUED)
    # small cells: lyon/fatigued has 3 subjects (< 5): statistics nulled and suppressed;
    # 5-subject cells keep the lake's values
    lake_rows = {(r[0], r[1], r[2]): r[3:] for r in con.execute(
        "SELECT site_id, condition, muscle, n_subjects, mean, sd, p50 FROM cohort_asymmetry").fetchall()}
    con.close()
    rel = pq.read_table(root / "cohort_asymmetry.parquet").to_pylist()
    assert {r["site_id"] for r in rel} == {"lyon"}
    for r in rel:
        n, mean, sd, p50 = lake_rows[(r["site_id"], r["condition"], r["muscle"])]
        assert r["n_subjects"] == n
        if r["condition"] == "fatigued":
            assert n == len(FATIGUED) and r["suppressed"] is True
            assert all(r[c] is None for c in releases.STAT_COLUMNS)
        else:
            assert r["suppressed"] is False and (r["mean"], r["sd"], r["p50"]) == (mean, sd, p50)
    assert [f.get("suppressed_cells") for f in on_disk["files"][:2]] == [2, 6]  # 2 muscles; x 3 variability stats
    # pooled maps hold excluded sites' data: withheld; session maps of lyon kept
    amap = pq.read_table(root / "activation_map.parquet")
    assert set(amap.column("scope").to_pylist()) == {"session"} and not on_disk["pooled_maps_released"]
    assert {s.split("-")[0] for s in amap.column("scope_id").to_pylist()} == set(SITES["lyon"][0])
    # rows sorted by primary key
    keys = [(r["subject_id"], r["session_id"], r["muscle"], r["side"])
            for r in pq.read_table(root / "variability.parquet").to_pylist()]
    assert keys == sorted(keys)
    # documents: dictionary restricted to the released tables, DataCite metadata ready for a DOI
    dictionary = (root / "data_dictionary.md").read_text()
    assert "## `cohort_asymmetry`" in dictionary and "## `subject_profiles`" in dictionary
    assert "## `emg_samples`" not in dictionary and "## `files`" not in dictionary
    dc = json.loads((root / "datacite.json").read_text())["data"]["attributes"]
    assert dc["types"]["resourceTypeGeneral"] == "Dataset" and dc["version"] == "1.0.0"
    assert dc["creators"] and dc["titles"] and dc["publisher"]["name"]
    assert dc["publicationYear"] == int(on_disk["created_at"][:4])
    assert dc["rightsList"][0]["rightsIdentifier"] == "cc-by-4.0"
    assert {"Abstract", "Methods"} <= {d["descriptionType"] for d in dc["descriptions"]}


def test_same_snapshot_same_bytes_and_versions_are_immutable(tmp_path):
    s = build_lake(tmp_path / "lake")
    first = releases.publish(s, "cohort", "1.0.0", today=TODAY)
    con = catalog.connect(s)  # the lake moves on
    con.execute("INSERT INTO variability (subject_id, session_id, condition, muscle, side, metric, cv_pct) "
                "VALUES ('LYO01', 'LYO01-fresh', 'fresh', 'gluteus_medius', 'L', 'envelope', 20.0)")
    con.close()
    again = releases.publish(s, "cohort", "1.0.1", as_of=str(first["snapshot_id"]), today=TODAY)
    assert again["snapshot_id"] == first["snapshot_id"]
    assert data_hashes(again["path"]) == data_hashes(first["path"]) and len(data_hashes(first["path"])) == 7
    created = json.loads((Path(first["path"]) / "manifest.json").read_text())["created_at"]
    assert all(created.encode() not in p.read_bytes() for p in Path(first["path"]).glob("*.parquet"))
    newer = releases.publish(s, "cohort", "1.1.0", today=TODAY)
    changed = {k for k, v in data_hashes(newer["path"]).items() if data_hashes(first["path"])[k] != v}
    assert changed == {"variability.parquet"}
    # a published version is never written again
    before = {p.name: sha(p) for p in Path(first["path"]).iterdir()}
    with pytest.raises(releases.ReleaseExistsError, match="already exists.*never overwritten"):
        releases.publish(s, "cohort", "1.0.0", today=TODAY)
    assert {p.name: sha(p) for p in Path(first["path"]).iterdir()} == before
    mode = os.stat(first["path"]).st_mode
    assert stat.S_IMODE(mode) == 0o555
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o444 for p in Path(first["path"]).iterdir())
    r = CliRunner().invoke(_cli(), ["publish", "cohort", "1.0.0", "--lake", s.lake])
    assert r.exit_code != 0 and "never overwritten" in r.output and "Traceback" not in r.output
    # listing
    listed = releases.list_releases(s)
    assert [(x["name"], x["version"]) for x in listed] == [("cohort", "1.0.0"), ("cohort", "1.0.1"),
                                                           ("cohort", "1.1.0")]
    r = CliRunner().invoke(_cli(), ["releases", "--lake", s.lake])
    assert r.exit_code == 0 and "1.0.1" in r.output and "(3 rows)" in r.output


def test_concurrent_publishers_of_one_version_exactly_one_wins(tmp_path):
    s = build_lake(tmp_path / "lake")
    outcomes: list = []

    def run():
        try:
            outcomes.append(releases.publish(s, "race", "1.0.0", today=TODAY)["snapshot_id"])
        except releases.ReleaseExistsError as exc:
            outcomes.append(exc)
    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, int) for o in outcomes) == 1
    assert sum(isinstance(o, releases.ReleaseExistsError) for o in outcomes) == 2
    assert [p.name for p in (Path(s.zone("releases")) / "race").iterdir()] == ["1.0.0"]  # no temp left


def test_thresholds_pooled_maps_and_bad_names(tmp_path):
    s = build_lake(tmp_path / "lake")
    # everyone shareable (after the embargo, pooled_analysis scope): pooled maps are released
    m = releases.publish(s, "all", "1", required_consent="pooled_analysis", min_cell_subjects=3,
                         today=TODAY.replace(year=3000))
    assert m["sharing"]["excluded_sites"] == [] and m["pooled_maps_released"]
    root = Path(m["path"])
    assert {"condition", "session"} <= set(pq.read_table(root / "activation_map.parquet").column("scope").to_pylist())
    cells = pq.read_table(root / "cohort_asymmetry.parquet").to_pylist()
    assert {r["site_id"] for r in cells} == set(SITES) and not any(r["suppressed"] for r in cells)
    assert all(r["mean"] is not None for r in cells)
    # a scope without a declared release policy is refused (before: any scope was accepted)
    with pytest.raises(releases.ReleaseError, match="no release policy is declared for consent scope 'open_data'"):
        releases.publish(s, "none", "1", required_consent="open_data", today=TODAY)
    for name, version in (("../evil", "1"), ("Cohort", "1"), ("ok", "1/2"), ("ok", "../1"), ("ok", "")):
        with pytest.raises(releases.ReleaseError):
            releases.publish(s, name, version)
    assert sorted(p.name for p in Path(s.zone("releases")).iterdir()) == ["all"]
