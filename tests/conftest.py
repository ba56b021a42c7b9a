"""Shared test fixtures. Real vendor files are read from ../shared/fixtures (never copied)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


def fixture(rel: str) -> Path:
    p = FIXTURES / rel
    assert p.exists(), f"missing real fixture {p}: ../shared/fixtures must sit beside the repo"
    return p


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session (it takes 15-25 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def lake(tmp_path):
    """An empty local lake; returns its Settings."""
    from warehouse.settings import get_settings

    root = tmp_path / "lake"
    (root / "inbox").mkdir(parents=True)
    return get_settings(str(root))


def drop(settings, site: str, files: dict[str, Path], manifest: str | None) -> Path:
    """Put files into a site inbox (name -> source path) and write its manifest."""
    d = Path(settings.zone("inbox")) / site
    d.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, d / name)
    if manifest is not None:
        (d / "manifest.yaml").write_text(manifest)
    return d


#: The demo consortium used by the end-to-end tests: a 5-subject, a 4-subject and a 3-subject site.
DEMO_SUBJECTS = {"lyon": 5, "boston": 4, "oslo": 3}


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory):
    """The demo consortium generated and ingested once per test session: (truth, summary, settings)."""
    from flows.nightly import run_night
    from warehouse.demo import generate_consortium
    from warehouse.settings import get_settings

    root = tmp_path_factory.mktemp("demo") / "lake"
    truth = generate_consortium(root / "inbox", seed=7, subjects_per_site=DEMO_SUBJECTS, duration_s=14.0)
    settings = get_settings(str(root))
    summary = run_night(settings.lake, quiet=True)
    return truth, summary, settings


#: Columns that differ between two runs over the same inbox (times, run ids, where raw copies live).
VOLATILE_COLUMNS = {"received_at", "ingested_at", "run_id", "raw_path", "completed_at", "quarantined_at", "started_at",
                    "finished_at"}


def lake_fingerprint(settings) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent hash of every table but ``runs`` (volatile columns left out).

    Asserts that no table holds two rows with the same primary key.
    """
    import hashlib

    from schemas.contracts import TABLES
    from warehouse import catalog

    con = catalog.connect(settings, read_only=True)
    out = {}
    try:
        for name, t in TABLES.items():
            if name == "runs":
                continue
            cols = [c.name for c in t.columns if c.name not in VOLATILE_COLUMNS]
            sel = ", ".join(f'"{c}"' for c in cols)
            rows = con.execute(f"SELECT {sel} FROM {name} ORDER BY ALL").fetchall()
            out[name] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
            key = ", ".join(f'"{k}"' for k in t.primary_key)
            dup = con.execute(f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY ALL HAVING count(*) > 1)")
            assert dup.fetchone()[0] == 0, f"duplicate keys in {name}"
    finally:
        con.close()
    return out
