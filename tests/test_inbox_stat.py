"""A night reads no file it has done whose inbox entry is unchanged, and every file whose entry changed in any
way (issue 17: a night's cost must not grow with the inbox; before, every night hashed every file of every
site). The entry's metadata (``zones.entry_stat``) includes the status-change time, which no write keeps and no
one can set back: an attacker or a careless lab that overwrites a file with bytes of the same size and restores
its modification time is still read."""
from __future__ import annotations

import os
import shutil

from flows.nightly import run_night
from warehouse import catalog, zones
from warehouse.demo import generate_consortium
from warehouse.settings import get_settings

SUBJECTS = {"lyon": 1, "boston": 1, "oslo": 1}


def _stats(settings) -> dict[str, str | None]:
    con = catalog.connect(settings, read_only=True)
    try:
        return dict(con.execute("SELECT path, inbox_stat FROM files WHERE site_id = 'lyon'").fetchall())
    finally:
        con.close()


def test_a_night_reads_no_unchanged_file_and_every_changed_one(tmp_path, monkeypatch):
    monkeypatch.setattr(zones, "STAT_SETTLED_S", 0.0)  # the files were written just now (see the next test)
    generate_consortium(tmp_path / "gen", seed=3, subjects_per_site=SUBJECTS, duration_s=6.0)
    settings = get_settings(str(tmp_path / "lake"))
    shutil.copytree(tmp_path / "gen", settings.zone("inbox"))
    first = run_night(settings.lake, quiet=True)
    assert first["ingested"] >= 6 and not first["errors"], first
    assert all(_stats(settings).values())  # every lyon file's entry recorded with its row

    reads: list[str] = []
    hashed = zones.sha256_of

    def counting(s, path):
        reads.append(path)
        return hashed(s, path)
    monkeypatch.setattr(zones, "sha256_of", counting)
    again = run_night(settings.lake, quiet=True)
    assert again["files_new"] == 0 and again["trials_derived"] == 0
    assert reads == []  # nothing new: no file's bytes read

    rel = sorted(p.relative_to(settings.zone("inbox")) for p in (tmp_path / "lake/inbox/lyon").rglob("*.c3d"))[0]
    target = f"{settings.zone('inbox')}/{rel}"
    before = os.stat(target)
    data = bytearray(open(target, "rb").read())
    data[-1000] ^= 0x01  # one bit of an analog sample: the same size, other bytes
    with open(target, "r+b") as fh:
        fh.write(data)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # its modification time set back
    after = os.stat(target)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    third = run_night(settings.lake, quiet=True)
    assert reads == [target]  # read again: its status-change time moved
    assert third["ingested"] == 1 and third["trials_derived"] == 1, third


def test_an_entry_changed_just_now_is_not_vouched_for(tmp_path, monkeypatch):
    """A write in the same clock tick as the look would leave the same metadata on other bytes: an entry changed
    within ``STAT_SETTLED_S`` is hashed each night until it has settled."""
    settings = get_settings(str(tmp_path / "lake"))
    path = tmp_path / "f.c3d"
    path.write_bytes(b"x" * 100)
    assert zones.entry_stat(settings, str(path)) is None
    monkeypatch.setattr(zones, "STAT_SETTLED_S", 0.0)
    key = zones.entry_stat(settings, str(path))
    assert key is not None and key.split(":")[1] == "100"
    os.chmod(path, 0o600)  # any change of the entry: another key (here its mode, whatever the clock's tick)
    assert zones.entry_stat(settings, str(path)) != key
