"""The lake on S3 for real: moto's standalone S3 server on 127.0.0.1, a real C3D in the inbox, the
nightly logic writing raw objects (s3fs) and DuckLake Parquet files (DuckDB httpfs) to the bucket,
and a SQLite catalog on local disk.

Depends on the warehouse/zones.py fix for ``s3://`` parents (``PurePosixPath`` folds ``s3://`` into
``s3:/``, so storing the first raw object failed with "Bucket create failed 's3:'").
"""
from __future__ import annotations

import hashlib

import pytest
from conftest import fixture

from flows.nightly import run_night
from schemas.contracts import TABLES
from warehouse import catalog, zones
from warehouse.settings import get_settings

MANIFEST = """
site: gaita
subjects: [{id: G01, mass_kg: 70}]
sessions:
  - {id: G01-S1, subject: G01, condition: fresh, task: walk, files: ["*.c3d"]}
"""


def test_nightly_logic_on_an_s3_lake(s3_lake, tmp_path):
    settings, b = s3_lake
    good, bad = fixture("gaitalytics/test_small.c3d"), fixture("bad/Empty.c3d")
    b.put("lake/inbox/gaita/test_small.c3d", good.read_bytes())
    b.put("lake/inbox/gaita/Empty.c3d", bad.read_bytes())
    b.put("lake/inbox/gaita/manifest.yaml", MANIFEST.encode())

    summary = run_night(settings.lake, quiet=True)
    assert (summary["sites"], summary["ingested"], summary["quarantined"]) == (["gaita"], 1, 1), summary
    assert summary["trials_derived"] == 1 and not summary.get("analysis_errors"), summary

    # raw zone: byte-for-byte copies named by their sha256, in the bucket
    raw = b.keys("lake/raw/")
    for src in (good, bad):
        sha = hashlib.sha256(src.read_bytes()).hexdigest()
        key = f"lake/raw/{sha[:2]}/{sha}.c3d"
        assert key in raw, (key, sorted(raw))
        assert b.get(key) == src.read_bytes()
    assert len(raw) == 2
    # the quarantine record of the empty file, beside the table
    q = [k for k in b.keys("lake/quarantine/gaita/") if k.endswith(".json")]
    assert len(q) == 1 and b"empty_file" in b.get(q[0])

    # DuckLake data files: Parquet objects under lake/tables/, every one the catalog lists is there
    tables = b.keys("lake/tables/")
    assert tables and all(k.endswith(".parquet") for k in tables)
    con = catalog.connect(settings, read_only=True)
    try:
        listed = {r[0] for t in ("trials", "emg_channels", "emg_samples", "emg_envelopes", "activation_onsets")
                  for r in con.execute(f"SELECT data_file FROM ducklake_list_files('{catalog.LAKE}', '{t}')")
                  .fetchall()}
        assert listed and all(f.startswith(f"s3://{b.name}/lake/tables/") for f in listed), listed
        assert {f.removeprefix(f"s3://{b.name}/") for f in listed} <= set(tables)

        # a read-only query answers from the bucket
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 1
        status = dict(con.execute("SELECT status, count(*) FROM files GROUP BY 1").fetchall())
        assert status == {"ingested": 1, "quarantined": 1}
        n_chan, n_expected = con.execute("SELECT count(*), sum(n_samples) FROM emg_channels").fetchone()
        assert n_chan > 0
        assert con.execute("SELECT count(*) FROM emg_samples").fetchone()[0] == n_expected
        assert con.execute("SELECT count(*) FROM emg_envelopes").fetchone()[0] == summary["envelope_rows"] > 0
        assert con.execute("SELECT count(*) FROM activation_onsets").fetchone()[0] > 0
        for name, t in TABLES.items():  # no duplicate keys anywhere
            key = ", ".join(f'"{k}"' for k in t.primary_key)
            assert con.execute(f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY ALL "
                               "HAVING count(*) > 1)").fetchone()[0] == 0, name
        with pytest.raises(Exception, match="(?i)read.only"):
            con.execute("DELETE FROM trials")
    finally:
        con.close()

    # nothing but the catalog on local disk
    assert not (tmp_path / "tables").exists() and not (tmp_path / "lake").exists()
    assert (tmp_path / "catalog" / "catalog.sqlite").exists()

    # a second night with nothing new writes nothing to the bucket
    before = b.keys("lake/")
    again = run_night(settings.lake, quiet=True)
    assert again["files_new"] == 0 and again["ingested"] == 0 and again.get("trials_derived", 0) == 0
    assert b.keys("lake/") == before


def test_zones_on_s3(s3_lake, monkeypatch):
    """Listing, hashing and the raw copy go through s3fs against the same server."""
    settings, b = s3_lake
    b.put("lake/inbox/siteb/sub/a.c3d", b"abc")
    b.put("lake/inbox/sitea/manifest.yaml", b"subjects: []")
    zones.filesystem(settings).invalidate_cache()
    assert zones.list_sites(settings) == ["sitea", "siteb"]
    assert zones.list_site_files(settings, "siteb") == ["sub/a.c3d"]
    sha, size = zones.sha256_of(settings, f"{settings.lake}/inbox/siteb/sub/a.c3d")
    assert (sha, size) == (hashlib.sha256(b"abc").hexdigest(), 3)
    dst = zones.store_raw(settings, f"{settings.lake}/inbox/siteb/sub/a.c3d", sha, "a.c3d")
    assert dst == f"{settings.lake}/raw/{sha[:2]}/{sha}.c3d"
    assert b.get(f"lake/raw/{sha[:2]}/{sha}.c3d") == b"abc"
    path = f"{settings.lake}/inbox/siteb/sub/a.c3d"  # an object's metadata vouches for its bytes once settled
    assert zones.entry_stat(settings, path) is None
    monkeypatch.setattr(zones, "STAT_SETTLED_S", -3600.0)  # S3 times are to the second: as if an hour old
    key = zones.entry_stat(settings, path)
    assert key.startswith("s3:3:") and hashlib.md5(b"abc").hexdigest() in key  # size, ETag
    b.put("lake/inbox/siteb/sub/a.c3d", b"abd")  # other bytes of the same size: another ETag
    zones.filesystem(settings).invalidate_cache()
    assert zones.entry_stat(settings, path) not in (None, key)


def test_the_inbox_on_s3_is_scanned_as_data(s3_lake, monkeypatch):
    """Object keys have no links or special files; folders named like data and the size limit apply as on disk."""
    from warehouse.ingest import inbox

    settings, b = s3_lake
    b.put("lake/inbox/sitec/manifest.yaml", b"subjects: []")
    b.put("lake/inbox/sitec/ok.c3d", b"abc")
    b.put("lake/inbox/sitec/big.c3d", b"0123456789")
    b.put("lake/inbox/sitec/walk.c3d/inner.csv", b"x")
    zones.filesystem(settings).invalidate_cache()
    monkeypatch.setenv("MYOMAP_MAX_FILE_BYTES", "c3d=5")
    settings = get_settings(settings.lake)
    scan = inbox.scan(settings, "sitec")
    assert scan.entries == ["big.c3d", "ok.c3d", "walk.c3d", "walk.c3d/inner.csv"] and scan.refused == []
    assert inbox.inspect(settings, "sitec", "ok.c3d") == 3
    big = inbox.inspect(settings, "sitec", "big.c3d")
    assert (big.reason_code, big.size_bytes) == ("file_too_large", 10)
    assert inbox.inspect(settings, "sitec", "walk.c3d").reason_code == "directory_named_like_data"


# --------------------------------------------------------------------------- S3 faults (throttling, 5xx, timeouts)
@pytest.fixture
def faulty_s3_lake(s3_lake, moto_server, monkeypatch):
    """The same bucket reached through a FaultProxy: (settings, bucket, proxy). Short timeouts and back-off."""
    from fault_proxy import FaultProxy

    settings, b = s3_lake
    proxy = FaultProxy(moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("MYOMAP_S3_TIMEOUT_S", "1")
    monkeypatch.setenv("MYOMAP_STORAGE_WAIT_S", "0.05")
    b.put("lake/inbox/gaita/test_small.c3d", fixture("gaitalytics/test_small.c3d").read_bytes())
    b.put("lake/inbox/gaita/Empty.c3d", fixture("bad/Empty.c3d").read_bytes())
    b.put("lake/inbox/gaita/manifest.yaml", MANIFEST.encode())
    try:
        yield get_settings(settings.lake), b, proxy
    finally:
        proxy.close()


def test_throttling_5xx_and_timeouts_are_retried_and_the_night_completes(faulty_s3_lake):
    settings, b, proxy = faulty_s3_lake
    assert settings.s3["endpoint_url"] == proxy.url
    proxy.fail("PUT", "/lake/raw/", status=503, code="SlowDown", times=2)  # the raw copy, throttled twice
    proxy.fail("GET", "/lake/inbox/gaita/test_small.c3d", status=500, code="InternalError", times=1)
    proxy.hang("PUT", "/lake/quarantine/", times=1)  # the quarantine record: no answer, the client times out
    proxy.fail("PUT", "/lake/tables/", status=503, code="SlowDown", times=1)  # a Parquet file (DuckDB httpfs)

    s = run_night(settings.lake, quiet=True)

    assert (s["status"], s["ingested"], s["quarantined"], s["errors"]) == ("completed", 1, 1, 0), s
    assert len(proxy.injected) == 5, proxy.injected
    sha = hashlib.sha256(fixture("gaitalytics/test_small.c3d").read_bytes()).hexdigest()
    assert b.get(f"lake/raw/{sha[:2]}/{sha}.c3d") == fixture("gaitalytics/test_small.c3d").read_bytes()
    assert len([k for k in b.keys("lake/quarantine/gaita/") if k.endswith(".json")]) == 1
    con = catalog.connect(settings, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM emg_samples").fetchone()[0] == \
            con.execute("SELECT sum(n_samples) FROM emg_channels").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("where", ["raw", "tables"])
def test_an_object_store_that_keeps_failing_stops_the_night_and_the_rerun_converges(faulty_s3_lake, where):
    settings, b, proxy = faulty_s3_lake
    proxy.fail("PUT", f"/lake/{where}/", status=503, code="ServiceUnavailable")  # every time

    s = run_night(settings.lake, quiet=True)

    assert s["status"] == "stopped", s
    assert "the object store kept failing after retries" in s["message"] and "run again" in s["message"].lower()
    assert s["site_outcomes"]["gaita"]["outcome"] == "stopped"
    con = catalog.connect(settings, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 0
        if where == "raw":  # the catalog's Parquet files can still be written: the run says why it stopped
            assert con.execute("SELECT status, message FROM runs").fetchall() == [("stopped", s["message"])]
        else:  # nothing can be written, not even the runs row: the summary (and the CLI) says so
            assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
            assert "object store kept failing" in s["run_not_recorded"]
    finally:
        con.close()
    if where == "raw":
        assert not b.keys("lake/raw/")

    proxy.clear()  # the store answers again
    again = run_night(settings.lake, quiet=True)
    assert (again["status"], again["ingested"], again["quarantined"]) == ("completed", 1, 1), again
    con = catalog.connect(settings, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 1
        assert dict(con.execute("SELECT status, count(*) FROM files GROUP BY 1").fetchall()) == {
            "ingested": 1, "quarantined": 1}
        for name, t in TABLES.items():
            key = ", ".join(f'"{k}"' for k in t.primary_key)
            assert con.execute(f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY ALL "
                               "HAVING count(*) > 1)").fetchone()[0] == 0, name
    finally:
        con.close()
