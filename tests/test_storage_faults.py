"""A full disk (ENOSPC) or quota (EDQUOT) while copying to raw/, writing a quarantine record or committing a
trial's Parquet files: the current file fails cleanly, the lake stays consistent, the night stops early with
a clear message and a `runs` row, and the rerun after space is freed converges to the clean result.

Faults are injected at named write steps (``MYOMAP_FAULTS``, warehouse/faults.py): deterministic, no tmpfs."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import drop, fixture, lake_fingerprint

from flows.nightly import run_night
from warehouse import catalog, faults
from warehouse.settings import get_settings

SITE_A = "subjects: [{id: A01, mass_kg: 70}]\nsessions:\n  - {id: A01-S1, subject: A01, task: walk, files: ['*']}\n"
SITE_B = SITE_A.replace("A01", "B01")


def make_inbox(settings) -> None:
    drop(settings, "a", {"emg1.c3d": fixture("btk/1123x01EMG.c3d"), "emg2.c3d": fixture("btk/Res16bits.c3d"),
                         "empty.c3d": fixture("bad/Empty.c3d")}, SITE_A)
    drop(settings, "b", {"emg.c3d": fixture("btk/ADemo1_rewrite_c3d_pc_float.c3d")}, SITE_B)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    settings = get_settings(str(tmp_path_factory.mktemp("clean") / "lake"))
    make_inbox(settings)
    s = run_night(settings.lake, quiet=True)
    assert (s["status"], s["ingested"], s["quarantined"]) == ("completed", 3, 1), s
    return lake_fingerprint(settings)


@pytest.mark.parametrize("fault, stopped_at", [
    ("raw_write@2=enospc", "a"),  # the second file's copy to raw/
    ("quarantine_write@1=edquot", "a"),  # the empty file's quarantine record
    ("trial_commit@2=enospc", "a"),  # the second trial's Parquet files, inside its transaction
])
def test_disk_full_stops_the_night_cleanly_and_the_rerun_converges(clean, tmp_path, monkeypatch, fault, stopped_at):
    settings = get_settings(str(tmp_path / "lake"))
    make_inbox(settings)
    monkeypatch.setenv("MYOMAP_FAULTS", fault)
    faults.reset()
    s = run_night(settings.lake, quiet=True)

    assert s["status"] == "stopped", s
    assert "storage full" in s["message"] and ("No space left on device" in s["message"]
                                               or "Disk quota exceeded" in s["message"]), s["message"]
    assert "run again" in s["message"]
    assert s["site_outcomes"][stopped_at]["outcome"] == "stopped"
    assert s["site_outcomes"]["b"]["outcome"] == "not_reached"
    assert "trials_derived" not in s  # nothing is derived after a stop
    assert not [p for p in Path(settings.zone("raw")).rglob("*") if ".part" in p.name]
    con = catalog.connect(settings, read_only=True)
    try:
        status, message = con.execute("SELECT status, message FROM runs").fetchone()
        assert (status, message) == ("stopped", s["message"])
        # consistent: every visible trial is whole, every registered raw copy exists
        assert con.execute("SELECT count(*) FROM trials t WHERE n_emg_channels <> (SELECT count(*) FROM emg_channels "
                           "c WHERE c.trial_id = t.trial_id)").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM emg_samples WHERE trial_id NOT IN (SELECT trial_id FROM trials)"
                           ).fetchone()[0] == 0
        raws = [r[0] for r in con.execute("SELECT raw_path FROM files WHERE raw_path IS NOT NULL").fetchall()]
        assert all(Path(p).exists() for p in raws)
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] < 3
    finally:
        con.close()

    monkeypatch.delenv("MYOMAP_FAULTS")  # space freed
    again = run_night(settings.lake, quiet=True)
    assert again["status"] == "completed" and again["errors"] == 0, again
    assert lake_fingerprint(settings) == clean


def test_duckdb_disk_full_and_s3_errors_are_classified():
    import errno

    import duckdb

    full = duckdb.IOException('Could not write file "/lake/tables/x.parquet": No space left on device')
    assert faults.classify(full) == faults.FULL
    assert faults.classify(OSError(errno.EDQUOT, "Disk quota exceeded")) == faults.FULL
    from botocore.exceptions import ClientError, ReadTimeoutError
    from s3fs.errors import translate_boto_error

    for code, status in (("SlowDown", 503), ("InternalError", 500), ("ServiceUnavailable", 503)):
        boto = ClientError({"Error": {"Code": code, "Message": "Please reduce your request rate."},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")
        assert faults.classify(translate_boto_error(boto)) == faults.TRANSIENT, code  # what s3fs raises
    assert faults.classify(ReadTimeoutError(endpoint_url="http://s3")) == faults.TRANSIENT
    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    assert faults.classify(translate_boto_error(denied)) is None
    assert faults.classify(duckdb.IOException("HTTP PUT error on 'http://s3/x.parquet' (HTTP 503)")) == \
        faults.TRANSIENT
    assert faults.classify(ValueError("bad value")) is None
    assert faults.classify(FileNotFoundError(2, "No such file")) is None


def test_transient_errors_are_retried_with_back_off_then_give_up(monkeypatch):
    monkeypatch.setenv("MYOMAP_STORAGE_RETRIES", "3")
    monkeypatch.setenv("MYOMAP_STORAGE_WAIT_S", "0.001")
    settings = get_settings("/tmp/unused-lake")
    calls = []

    def flaky(n_failures):
        def fn():
            calls.append(1)
            if len(calls) <= n_failures:
                raise TimeoutError("read timed out")
            return "done"
        return fn

    assert faults.storage_retry(flaky(3), settings, what="put") == "done" and len(calls) == 4
    calls.clear()
    with pytest.raises(faults.StorageUnavailable, match="put: the object store kept failing"):
        faults.storage_retry(flaky(10), settings, what="put")
    assert len(calls) == 4  # the first attempt and 3 retries
    calls.clear()

    def full():
        calls.append(1)
        raise OSError(28, "No space left on device")
    with pytest.raises(faults.StorageFull):
        faults.storage_retry(full, settings, what="copy")
    assert len(calls) == 1  # never retried
