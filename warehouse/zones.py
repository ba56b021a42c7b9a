"""Lake zones on a local folder or ``s3://``: inbox (drop zone), raw (content-addressed
originals, never deleted), quarantine (JSON records beside the table), tables, releases."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator

import fsspec

from warehouse.settings import Settings

CHUNK = 1 << 20


def filesystem(settings: Settings) -> fsspec.AbstractFileSystem:
    if settings.is_s3:
        s3 = settings.s3
        kw = {"key": s3.get("key"), "secret": s3.get("secret")}
        client = {k: v for k, v in {"endpoint_url": s3.get("endpoint_url"),
                                    "region_name": s3.get("region")}.items() if v}
        return fsspec.filesystem("s3", client_kwargs=client, **{k: v for k, v in kw.items() if v})
    return fsspec.filesystem("file")


def inbox(settings: Settings, site: str | None = None) -> str:
    base = settings.zone("inbox")
    return f"{base}/{site}" if site else base


def list_sites(settings: Settings) -> list[str]:
    fs = filesystem(settings)
    root = inbox(settings)
    if not fs.exists(root):
        return []
    return sorted(PurePosixPath(p).name for p in fs.ls(root, detail=False) if fs.isdir(p))


def list_site_files(settings: Settings, site: str) -> list[str]:
    """Every file under ``inbox/<site>/`` as a POSIX path relative to that folder, sorted."""
    fs = filesystem(settings)
    root = inbox(settings, site).rstrip("/")
    out = []
    for p in fs.find(root):
        rel = str(PurePosixPath(p).relative_to(PurePosixPath(root.replace("s3://", ""))
                                               if settings.is_s3 else PurePosixPath(root)))
        out.append(rel)
    return sorted(out)


def sha256_of(settings: Settings, path: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with filesystem(settings).open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def parent(path: str) -> str:
    """Parent folder of a lake path (``PurePosixPath`` would fold ``s3://`` into ``s3:/``)."""
    return path.rstrip("/").rsplit("/", 1)[0]


def raw_path(settings: Settings, sha256: str, name: str) -> str:
    suffix = "".join(PurePosixPath(name).suffixes[-1:]).lower()
    return f"{settings.zone('raw')}/{sha256[:2]}/{sha256}{suffix}"


def store_raw(settings: Settings, src: str, sha256: str, name: str) -> str:
    """Copy ``src`` byte-for-byte into the raw zone (once; raw files are never overwritten)."""
    fs = filesystem(settings)
    dst = raw_path(settings, sha256, name)
    if not fs.exists(dst):
        fs.makedirs(parent(dst), exist_ok=True)
        tmp = dst + ".part"
        if settings.is_s3:
            fs.copy(src, dst)
        else:
            shutil.copyfile(src, tmp)
            Path(tmp).replace(dst)
    return dst


def write_quarantine_record(settings: Settings, record: dict) -> str:
    """A human-readable JSON copy of a quarantine record under ``quarantine/<site>/``."""
    fs = filesystem(settings)
    key = hashlib.sha256(f"{record['path']}|{record['stage']}".encode()).hexdigest()[:12]
    dst = f"{settings.zone('quarantine')}/{record['site_id']}/{record['sha256'][:16]}-{key}.json"
    fs.makedirs(parent(dst), exist_ok=True)
    with fs.open(dst, "w") as fh:
        json.dump(record, fh, indent=2, default=str)
    return dst


@contextmanager
def local_files(settings: Settings, paths: dict[str, str]) -> Iterator[dict[str, Path]]:
    """Local paths for the given lake paths (downloaded to a temp dir when on S3)."""
    if not settings.is_s3:
        yield {k: Path(v) for k, v in paths.items()}
        return
    fs = filesystem(settings)
    with tempfile.TemporaryDirectory(prefix="myomap-") as tmp:
        out = {}
        for k, v in paths.items():
            dst = Path(tmp) / f"{k}-{PurePosixPath(v).name}"
            fs.get(v, str(dst))
            out[k] = dst
        yield out


def exists(settings: Settings, path: str) -> bool:
    return filesystem(settings).exists(path)
