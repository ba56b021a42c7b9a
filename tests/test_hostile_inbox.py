"""40 hostile inputs through one real night (bench/hostile_inbox.py, the product's run_night in a process
of its own): every input accounted for, no aborted run, nothing from outside the inbox in raw/, no copy of
a file refused for its size, and the night's peak memory under 1 GB."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import PurePosixPath

from conftest import REPO

from warehouse import zones
from warehouse.settings import get_settings

#: input -> (status, reason) where the reason is the point of the input (the rest: any reason, see the bench)
EXPECTED = {
    "sparse.c3d": ("quarantined", "file_too_large"),
    "passwd.c3d": ("quarantined", "symlink"), "shadow.csv": ("quarantined", "symlink"),
    "dangling.edf": ("quarantined", "symlink"), "etcdir.c3d": ("quarantined", "symlink"),
    "loop.c3d": ("quarantined", "symlink"), "fifo.c3d": ("quarantined", "special_file"),
    "folder.c3d": ("quarantined", "directory_named_like_data"), "caf\\xe9.c3d": ("quarantined", "name_not_utf8"),
    "header_bomb.c3d": ("quarantined", "too_many_samples"), "channels_bomb.edf": ("quarantined", "too_many_channels"),
    "records_bomb.edf": ("quarantined", "too_many_samples"), "zlib_bomb.mat": ("quarantined", "too_many_samples"),
    "hdf5_bomb.mat": ("quarantined", "too_many_samples"), "Empty.c3d": ("quarantined", "empty_file"),
    "random.anc": ("quarantined", "companion_of_quarantined"),  # the ANC half of random.trc
}


def test_forty_hostile_inputs_one_night(tmp_path):
    out = tmp_path / "result.json"
    r = subprocess.run([sys.executable, str(REPO / "bench" / "hostile_inbox.py"), "--no-baseline", "--json", str(out),
                        "--keep", str(tmp_path / "lakes")], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(out.read_text())
    fig = res["figures"]
    print(r.stdout.splitlines()[-1])
    assert res["night"].get("error") is None, res["night"]
    assert fig["hostile_inputs"] == 40
    assert fig["accounted"] == 40, {k: v for k, v in res["per_input"].items()
                                    if v[0] not in ("ingested", "quarantined") or (v[0] == "quarantined" and not v[1])}
    assert fig["aborted_runs"] == 0 and fig["good_trials"] == 1
    assert fig["leaked_from_outside"] == 0
    for name, (status, reason) in EXPECTED.items():
        assert tuple(res["per_input"][name]) == (status, reason), name
    assert fig["raw_max_file_mb"] < 16  # the 1 GiB file was neither copied nor hashed
    assert fig["peak_rss_night_mb"] < 1024 and fig["peak_rss_reader_mb"] < 1024, fig


def test_a_files_siblings_are_what_the_site_listing_has_in_its_folder(tmp_path):
    """``zones.list_folder_files`` (a new file's siblings, one folder read) lists exactly what the whole site's
    listing has in that folder: regular files only, no link or special file, no name that is not UTF-8, and
    nothing through a linked folder."""
    settings = get_settings(str(tmp_path / "lake"))
    site = tmp_path / "lake" / "inbox" / "s"
    (site / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.c3d").write_bytes(b"x")
    for rel in ("a.c3d", "manifest.yaml", "sub/b.c3d", "sub/b_events.tsv", "sub/deep/c.edf"):
        (site / rel).write_bytes(b"data")
    (site / "sub" / "link.c3d").symlink_to(site / "a.c3d")
    (site / "sub" / "dangling.c3d").symlink_to(tmp_path / "nowhere")
    (site / "linked").symlink_to(tmp_path / "outside")
    os.mkfifo(site / "sub" / "fifo.c3d")
    os.close(os.open(os.fsencode(site / "sub") + b"/caf\xe9.c3d", os.O_CREAT | os.O_WRONLY, 0o644))
    listed = zones.list_site_files(settings, "s")
    for folder in (".", "sub", "sub/deep", "linked", "missing"):
        want = [PurePosixPath(f).name for f in listed if str(PurePosixPath(f).parent) == folder]
        assert zones.list_folder_files(settings, "s", folder) == want, folder
    assert zones.list_folder_files(settings, "s", "sub") == ["b.c3d", "b_events.tsv"]
    assert zones.list_folder_files(settings, "s", "linked") == []
