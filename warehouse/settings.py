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


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one lake."""

    lake: str
    catalog: str
    lock_retries: int = 60
    lock_wait_s: float = 0.25
    s3: dict = field(default_factory=dict)  # endpoint_url, key, secret, region (AWS_* variables)

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
        s3={k: v for k, v in {
            "endpoint_url": os.environ.get("AWS_ENDPOINT_URL"),
            "key": os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        }.items() if v},
    )
