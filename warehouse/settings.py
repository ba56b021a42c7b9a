"""Settings: the one module that reads the environment.

Every ``MYOMAP_*`` variable is read here and nowhere else. Other modules receive a
:class:`Settings` object (or call :func:`get_settings`).

Variables
---------
MYOMAP_LAKE
    Lake root: a local folder (default ``./lake``) or ``s3://bucket/prefix``.
MYOMAP_CATALOG
    DuckLake catalog. Default: the SQLite file ``<lake>/catalog.sqlite``. A
    ``postgresql://`` DSN selects a PostgreSQL catalog (multi-writer deployments);
    a path ending in ``.sqlite``/``.db`` selects another SQLite file.
MYOMAP_LOCK_RETRIES, MYOMAP_LOCK_WAIT_S
    How often and how long a writer retries when the SQLite catalog says
    "database is locked" (defaults 60 and 0.25 s, growing).
MYOMAP_STORAGE_RETRIES, MYOMAP_STORAGE_WAIT_S, MYOMAP_S3_TIMEOUT_S
    Retries (default 4) and first back-off (0.5 s, doubling, with jitter) after a
    transient storage error (S3 throttling, 5xx, timeouts), and the S3 connect/read
    timeout (30 s). Disk full (ENOSPC/EDQUOT) is never retried: the night stops.
MYOMAP_MAX_MANIFEST_BYTES, MYOMAP_MAX_YAML_ALIASES, MYOMAP_MAX_YAML_DEPTH
    Largest manifest.yaml read (256 KiB), YAML aliases (16) and nesting depth (16) accepted.
MYOMAP_MAX_FILE_BYTES
    Largest inbox file per format, e.g. ``c3d=512M,edf=1G,*=256M`` (merged over
    :data:`DEFAULT_MAX_FILE_BYTES`). A larger file is refused before it is hashed or copied.
MYOMAP_MAX_CHANNELS, MYOMAP_MAX_SAMPLES, MYOMAP_READER_MEMORY_BYTES
    Most channels (1024) and decoded values (channels x samples, 32 M) a file's header may
    declare, and the address-space cap of the isolated C3D reader process (1.5 GiB).
MYOMAP_FAULTS
    Tests only: named fault points (``step[@n]=action``), see :mod:`warehouse.faults`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Prefect must never phone home; set before Prefect is imported anywhere.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


MiB = 1 << 20
#: Largest inbox file accepted per format (by file extension; ``*`` for any other).
#: Sized to hold the ``samples`` limit (32 M values: 128 MB as C3D floats, 96 MB as BDF) with room to spare.
DEFAULT_MAX_FILE_BYTES = {"c3d": 256 * MiB, "edf": 256 * MiB, "bdf": 256 * MiB, "mat": 512 * MiB,
                          "csv": 256 * MiB, "txt": 256 * MiB, "trc": 256 * MiB, "mot": 256 * MiB,
                          "anc": 256 * MiB, "tsv": 64 * MiB, "json": 16 * MiB, "*": 256 * MiB}


@dataclass(frozen=True)
class Limits:
    """Input limits (one declaration): what a site's inbox may cost the night.

    A file over its format's size is refused before it is hashed or copied to raw/;
    a header declaring more channels or values than allowed is refused before its
    samples are decoded (``warehouse/ingest/limits.py``). README "Limits" gives the
    memory these bound.
    """

    manifest_bytes: int = 256 * 1024
    yaml_aliases: int = 16
    yaml_depth: int = 16
    file_bytes: dict = field(default_factory=lambda: dict(DEFAULT_MAX_FILE_BYTES))
    channels: int = 1024  # markers count as channels (C3D points)
    samples: int = 32_000_000  # decoded values per file (all channels x samples; 256 MB as float64)
    reader_memory_bytes: int = 1536 * MiB

    def max_file_bytes(self, name: str) -> int:
        """Size limit of a file called ``name`` (by its extension)."""
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        return self.file_bytes.get(ext, self.file_bytes["*"])


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one lake."""

    lake: str
    catalog: str
    lock_retries: int = 60
    lock_wait_s: float = 0.25
    s3: dict = field(default_factory=dict)  # endpoint_url, key, secret, region (AWS_* variables)
    limits: Limits = field(default_factory=Limits)
    storage_retries: int = 4
    storage_wait_s: float = 0.5
    s3_timeout_s: float = 30.0
    faults: str = ""  # tests only: MYOMAP_FAULTS (warehouse/faults.py)

    @property
    def is_s3(self) -> bool:
        return self.lake.startswith("s3://")

    def zone(self, name: str) -> str:
        """Path of a lake zone (``inbox``, ``raw``, ``quarantine``, ``tables``, ``releases``)."""
        return f"{self.lake.rstrip('/')}/{name}"

    @property
    def catalog_kind(self) -> str:
        if self.catalog.startswith(("postgresql://", "postgres://")):
            return "postgres"
        return "sqlite"


def _default_catalog(lake: str) -> str:
    if lake.startswith("s3://"):
        # A SQLite catalog must be a local file; keep it beside the working dir.
        return str(Path("./catalog.sqlite").resolve())
    return str(Path(lake) / "catalog.sqlite")


def parse_size(text: str) -> int:
    """``'512M'`` -> bytes (suffixes K, M, G, T; powers of 1024).

    Raises
    ------
    ValueError
        When ``text`` is not a size.
    """
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def _limits(env) -> Limits:
    """Limits from ``MYOMAP_MAX_*`` variables.

    Raises
    ------
    ValueError
        A variable that is not a number or size, naming it.
    """
    d = Limits()
    sizes = dict(d.file_bytes)
    for part in filter(None, (env.get("MYOMAP_MAX_FILE_BYTES") or "").split(",")):
        ext, _, size = part.partition("=")
        try:
            sizes[ext.strip().lower().lstrip(".") or "*"] = parse_size(size)
        except ValueError:
            raise ValueError(f"MYOMAP_MAX_FILE_BYTES: {part!r} is not EXT=SIZE (e.g. c3d=512M,*=256M)") from None
    try:
        return _limits_from(env, d, sizes)
    except ValueError as exc:
        raise ValueError(f"a MYOMAP_MAX_* or MYOMAP_READER_MEMORY_BYTES variable is not a number or size: {exc}") \
            from None


def _limits_from(env, d: Limits, sizes: dict) -> Limits:
    return Limits(
        manifest_bytes=parse_size(env.get("MYOMAP_MAX_MANIFEST_BYTES") or str(d.manifest_bytes)),
        yaml_aliases=int(env.get("MYOMAP_MAX_YAML_ALIASES") or d.yaml_aliases),
        yaml_depth=int(env.get("MYOMAP_MAX_YAML_DEPTH") or d.yaml_depth),
        file_bytes=sizes,
        channels=int(env.get("MYOMAP_MAX_CHANNELS") or d.channels),
        samples=int(float(env.get("MYOMAP_MAX_SAMPLES") or d.samples)),
        reader_memory_bytes=parse_size(env.get("MYOMAP_READER_MEMORY_BYTES") or str(d.reader_memory_bytes)),
    )


def get_settings(lake: str | None = None, catalog: str | None = None) -> Settings:
    """Build settings from explicit arguments, else ``MYOMAP_*`` variables, else defaults."""
    lake = lake or os.environ.get("MYOMAP_LAKE") or "./lake"
    if not lake.startswith("s3://"):
        lake = str(Path(lake).expanduser().resolve())
    catalog = catalog or os.environ.get("MYOMAP_CATALOG") or _default_catalog(lake)
    return Settings(
        lake=lake,
        catalog=catalog,
        lock_retries=int(os.environ.get("MYOMAP_LOCK_RETRIES", "60")),
        lock_wait_s=float(os.environ.get("MYOMAP_LOCK_WAIT_S", "0.25")),
        limits=_limits(os.environ),
        storage_retries=int(os.environ.get("MYOMAP_STORAGE_RETRIES", "4")),
        storage_wait_s=float(os.environ.get("MYOMAP_STORAGE_WAIT_S", "0.5")),
        s3_timeout_s=float(os.environ.get("MYOMAP_S3_TIMEOUT_S", "30")),
        faults=os.environ.get("MYOMAP_FAULTS", ""),
        s3={k: v for k, v in {
            "endpoint_url": os.environ.get("AWS_ENDPOINT_URL"),
            "key": os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        }.items() if v},
    )
