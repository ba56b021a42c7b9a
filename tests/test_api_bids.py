"""``myomap extract --format bids`` on the demo consortium: the official BIDS validator finds no error, the
export re-imports (myomap's BIDS reader and channel harmonisation: the ingest path) into the lake's own
``emg_samples``, ``gait_events`` and markers, and no inbox path or trial id leaves the lake."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import edfio
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from flows.cli import main
from warehouse import catalog
from warehouse.ingest.harmonise import harmonise
from warehouse.ingest.readers.bids import read_bids
from warehouse.ingest.tables import emg_samples_table, markers_table
from warehouse.serving.edf_write import WriteError
from warehouse.serving.extracts import code_version

#: Warnings the demo export is known to leave, and why (anything else fails the test: look at it first).
KNOWN_WARNINGS = {
    ("JSON_KEY_RECOMMENDED", "HEDVersion"): "no HED annotations",
    ("JSON_KEY_RECOMMENDED", "License"): "the lake does not know the consortium's licence",
    ("NO_AUTHORS", "Authors"): "the lake does not know the sites' authors",
    ("TOO_FEW_AUTHORS", None): "same",
    ("SIDECAR_KEY_RECOMMENDED", "SamplingFrequencyEffective"): "the lake stores the nominal marker rate only",
    ("SIDECAR_KEY_RECOMMENDED", "StimulusPresentation"): "gait events have no stimulus",
}


@pytest.fixture(scope="module")
def export(demo_lake, tmp_path_factory):
    """The demo as a member of lyon sees it, exported as BIDS through the CLI."""
    _, _, settings = demo_lake
    out = tmp_path_factory.mktemp("bids") / "demo_bids"
    r = CliRunner().invoke(main, ["extract", "--lake", settings.lake, "--format", "bids", "--requester-site", "lyon",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "BIDS dataset:" in r.output
    return settings, out, json.loads((out / "manifest.json").read_text())


def _validate(root: Path, *extra: str) -> tuple[int, dict]:
    exe = Path(sys.executable).with_name("bids-validator-deno")
    assert exe.exists(), "bids-validator-deno is a test dependency: pip install -e '.[test]'"
    report = root.parent / f"validator{'-'.join(extra)}.json"
    r = subprocess.run([str(exe), str(root), "--format", "json", "-o", str(report), "--max-rows", "-1", *extra],
                       capture_output=True, text=True, timeout=600)
    assert report.exists(), r.stdout[-2000:] + r.stderr[-2000:]
    return r.returncode, json.loads(report.read_text())


def test_bids_export_of_the_demo_passes_the_official_validator(export):
    settings, root, manifest = export
    rc, result = _validate(root)
    issues = result["issues"]["issues"]
    errors = [i for i in issues if i["severity"] == "error"]
    assert rc == 0 and errors == [], json.dumps(errors[:10], indent=1)
    warnings = sorted({(i["code"], i.get("subCode")) for i in issues if i["severity"] == "warning"}, key=str)
    print("validator warnings:", warnings)
    assert set(warnings) <= set(KNOWN_WARNINGS), set(warnings) - set(KNOWN_WARNINGS)
    summary = result["summary"]
    assert set(summary["dataTypes"]) == {"emg", "motion"} and summary["tasks"] == ["walk"]
    with catalog.connect(settings, read_only=True) as con:
        subjects = {r[0] for r in con.execute("SELECT DISTINCT subject_id FROM trials WHERE site_id IN "
                                              "(SELECT unnest(?))", [manifest["sharing"]["included_sites"]]).fetchall()}
    assert set(summary["subjects"]) == subjects and manifest["notes"]["bids_runs"] > 0
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["GeneratedBy"][0]["Version"] == code_version() == manifest["code_version"]
    assert f"snapshot {manifest['snapshot_id']}" in desc["GeneratedBy"][0]["Description"]
    assert (root / ".bidsignore").read_text().split() == ["manifest.json"]


def _trials_by_sha(settings) -> dict[str, str]:
    with catalog.connect(settings, read_only=True) as con:
        return dict(con.execute("SELECT sha256, trial_id FROM trials").fetchall())


def test_bids_export_reimports_into_the_same_emg_samples_gait_events_and_markers(export):
    settings, root, manifest = export
    by_sha, seen = _trials_by_sha(settings), set()
    recordings = read_bids(root)
    con = catalog.connect(settings, read_only=True)
    try:
        for sub, ses, rec in recordings:
            ent = dict(e.split("-", 1) for e in rec.notes[0].removeprefix("BIDS entities ").split(", "))
            stem = f"sub-{sub}_ses-{ses}_task-{ent['task']}_run-{ent['run']}"
            with open(root / f"sub-{sub}" / f"ses-{ses}" / f"sub-{sub}_ses-{ses}_scans.tsv", encoding="utf-8") as fh:
                scans = {r["filename"]: r["source_sha256"] for r in csv.DictReader(fh, delimiter="\t")}
            sha = scans[f"emg/{stem}_emg.bdf"]
            tid = by_sha[sha]
            seen.add(tid)
            chans, issues = harmonise(rec, {})  # what the nightly ingest does with a file's analog channels
            assert issues == []
            got = pl.from_arrow(emg_samples_table(tid, [c["data_mv"] for c in chans]))
            want = con.execute("SELECT * FROM emg_samples WHERE trial_id = ? ORDER BY channel, sample_index",
                               [tid]).pl()
            meta = con.execute("SELECT channel, muscle, side FROM emg_channels WHERE trial_id = ? ORDER BY channel",
                               [tid]).fetchall()
            assert [(c["muscle"], c["side"]) for c in chans] == [(m, s) for _, m, s in meta]
            assert got.select("trial_id", "channel", "sample_index").equals(want.select("trial_id", "channel",
                                                                                       "sample_index"))
            for k in range(len(chans)):  # within the BDF's 24-bit step of each channel (and float32 rounding)
                a = want.filter(pl.col("channel") == k)["emg_mv"].to_numpy().astype(np.float64)
                b = got.filter(pl.col("channel") == k)["emg_mv"].to_numpy().astype(np.float64)
                step = (a.max() - a.min()) / (2 ** 24 - 1)
                assert np.max(np.abs(a - b)) <= step + 2 * np.finfo(np.float32).eps * np.abs(a).max()
            events = sorted((e.side, e.event, e.time_s, e.source) for e in rec.events)
            assert events == sorted(con.execute("SELECT side, event, time_s, source FROM gait_events "
                                                "WHERE trial_id = ?", [tid]).fetchall())
            lake_markers = con.execute("SELECT marker, frame, x_mm, y_mm, z_mm FROM markers WHERE trial_id = ? "
                                       "ORDER BY marker, frame", [tid]).pl()
            if lake_markers.height:
                again = pl.from_arrow(markers_table(tid, rec)).select("marker", "frame", "x_mm", "y_mm", "z_mm")
                assert again.sort("marker", "frame").equals(lake_markers)  # float32 positions, bit for bit
            else:
                assert rec.markers_mm is None
        exported = {r[0] for r in con.execute("SELECT trial_id FROM trials WHERE site_id IN (SELECT unnest(?))",
                                              [manifest["sharing"]["included_sites"]]).fetchall()}
    finally:
        con.close()
    assert seen == exported and len(recordings) == len(exported)


def test_bids_headers_agree_with_their_sidecars(export):
    """What the validator never opens: each BDF's signals against its _channels.tsv and _emg.json."""
    _, root, _ = export
    files = sorted(root.glob("sub-*/ses-*/emg/*_emg.bdf"))
    assert files
    for f in files:
        bdf = edfio.read_bdf(f)
        stem = f.name.removesuffix("_emg.bdf")
        with open(f.with_name(f"{stem}_channels.tsv"), encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        side = json.loads(f.with_name(f"{stem}_emg.json").read_text())
        assert [s.label for s in bdf.signals] == [r["name"][:16] for r in rows]
        assert side["EMGChannelCount"] == len(rows) == sum(r["type"] == "EMG" for r in rows)
        for s, r in zip(bdf.signals, rows):
            assert s.sampling_frequency == pytest.approx(float(r["sampling_frequency"]), rel=1e-5)
            assert s.physical_dimension == r["units"] == "mV"
            assert int(r["n_samples"]) <= len(s.data)
        assert side["SamplingFrequency"] == pytest.approx(bdf.signals[0].sampling_frequency, rel=1e-5)
        assert side["RecordingDuration"] == pytest.approx(max(int(r["n_samples"]) / float(r["sampling_frequency"])
                                                              for r in rows), abs=1e-6)
        assert bdf.patient.code == f.name.split("_")[0].removeprefix("sub-")  # the pseudonym, nothing else


def test_bids_export_carries_no_inbox_path_or_trial_id(export):
    settings, root, manifest = export
    with catalog.connect(settings, read_only=True) as con:
        paths = [r[0] for r in con.execute("SELECT path FROM files WHERE status = 'ingested'").fetchall()]
        trial_ids = [r[0] for r in con.execute("SELECT trial_id FROM trials").fetchall()]
        subjects = {r[0] for r in con.execute("SELECT subject_id FROM subjects").fetchall()}
    needles = {n for p in paths for n in (p, Path(p).name, Path(p).stem) if len(n) >= 6} | set(trial_ids)
    assert len(needles) > len(trial_ids)
    for f in [p for p in root.rglob("*") if p.is_file()]:
        data = f.read_bytes()
        found = [n for n in needles if n.encode() in data]
        assert not found, f"{f.relative_to(root)} quotes {found[:3]}"
    with open(root / "participants.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert rows and all(r["participant_id"].removeprefix("sub-") in subjects for r in rows)
    assert list(rows[0]) == ["participant_id", "site", "sex", "mass_kg", "height_m"]
    assert all(f["file"] != "manifest.json" for f in manifest["files"])
    assert len(manifest["files"]) == sum(1 for p in root.rglob("*") if p.is_file()) - 1


S3_MANIFEST = """
site: gaita
subjects: [{id: G01, mass_kg: 70}]
sessions:
  - {id: G01-S1, subject: G01, condition: fresh, task: walk, files: ["*.c3d"]}
"""


def test_bids_extract_of_a_lake_on_s3_lands_in_the_bucket(s3_lake, tmp_path):
    """On an S3 lake the BIDS files are written locally, then copied under the s3:// --out (edfio writes files)."""
    from conftest import fixture

    from flows.nightly import run_night
    from warehouse.serving.extracts import extract

    settings, b = s3_lake
    b.put("lake/inbox/gaita/walk.c3d", fixture("gaitalytics/test_small.c3d").read_bytes())
    b.put("lake/inbox/gaita/manifest.yaml", S3_MANIFEST.encode())
    assert run_night(settings.lake, quiet=True)["ingested"] == 1
    with pytest.raises(WriteError, match="selects no trial"):  # the site states no consent: an operator's
        extract(settings, cohort=None, tables=[], fmt="bids", out_dir=f"s3://{b.name}/exports/none")  # rules drop it
    m = extract(settings, cohort=None, tables=[], fmt="bids", out_dir=f"s3://{b.name}/exports/g01", member="gaita")
    keys = b.keys("exports/g01/")
    assert {f"exports/g01/{f['file']}" for f in m["files"]} | {"exports/g01/manifest.json"} == set(keys)
    bdf = [k for k in keys if k.endswith("_emg.bdf")]
    assert bdf == ["exports/g01/sub-G01/ses-S1/emg/sub-G01_ses-S1_task-walk_run-1_emg.bdf"]
    entry = next(f for f in m["files"] if f["file"].endswith("_emg.bdf"))
    import hashlib

    assert hashlib.sha256(b.get(bdf[0])).hexdigest() == entry["sha256"]
    assert not list(tmp_path.glob("myomap-bids-*"))
