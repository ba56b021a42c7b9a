"""Trial ids are pseudonymous: ``site:session:<opaque>``; the inbox path stays in ``files`` (issue #14).

The demo consortium is ingested for real (``demo_lake``), then an extract of every extractable
table, a release and the HTML report are written: no trial id in them carries a path component
of the inbox (folder, file name or stem), and none of the files' names or stems appears at all.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from warehouse import catalog
from warehouse.serving import extracts, releases
from warehouse.serving.report import render_report

OPAQUE = re.compile(r"^[0-9a-f]{12}$")


def _components(paths: list[str]) -> set[str]:
    out = set()
    for p in paths:
        pp = PurePosixPath(p)
        out |= {pp.name, pp.stem, *pp.parts[:-1]}
    return {c for c in out if c}


def test_no_trial_id_in_an_extract_release_or_report_holds_an_inbox_path(demo_lake, tmp_path):
    _, _, settings = demo_lake
    con = catalog.connect(settings, read_only=True)
    try:
        files = con.execute("SELECT path, site_id, session_id, trial_id FROM files WHERE trial_id IS NOT NULL")\
            .fetchall()
        trial_ids = {r[0] for r in con.execute("SELECT trial_id FROM trials").fetchall()}
    finally:
        con.close()
    assert files and trial_ids
    for path, site, session, tid in files:
        s, sess, opaque = tid.split(":")
        assert (s, sess) == (site, session) and OPAQUE.match(opaque), tid
        assert not (_components([path]) & {opaque}), (path, tid)
    components = _components([f[0] for f in files])
    names = {c for f in files for c in (PurePosixPath(f[0]).name, PurePosixPath(f[0]).stem)}

    extracts.extract(settings, cohort=None, tables=extracts.extractable_tables(), out_dir=str(tmp_path / "x"),
                     fmt="csv")
    rel = releases.publish(settings, "ids", "1")
    render_report(settings, str(tmp_path / "report.html"))
    release = Path(rel["path"])
    blobs = {p: p.read_text(encoding="utf-8", errors="replace") for p in (
        *sorted((tmp_path / "x").glob("*.csv")), *sorted(p for p in release.iterdir() if p.suffix in (".json", ".md")),
        tmp_path / "report.html")}
    for p in release.glob("*.parquet"):
        blobs[p] = pq.read_table(p).to_pandas().to_csv(index=False)
    seen = set()
    for p, text in blobs.items():
        for tid in trial_ids:
            if tid in text:
                seen.add(tid)
        for name in names:  # no file name or stem of the inbox anywhere (e.g. LYO01_fresh_walk01)
            assert name not in text, (p.name, name)
        for m in re.finditer(r"\b(?:lyon|boston|oslo):[A-Za-z0-9_.\-]+:([^\s,\"'<>]+)", text):
            assert OPAQUE.match(m.group(1)) and m.group(1) not in components, (p.name, m.group(0))
    assert seen, "the extract carries trial ids (otherwise this test checks nothing)"
