"""Shared test fixtures. Real vendor files are read from ../shared/fixtures (never copied)."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

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


#: Session fixtures that take tens of seconds to build (or install a service), with the names that mean a test
#: file uses one (the fixture itself, a fixture built on it). `make test` runs pytest-xdist with
#: ``-n 2 --dist loadfile``: each test file is one unit of work (its module fixtures are built once), and
#: the files naming the same one of these fixtures are one unit (it is built once per run, not per worker).
SHARED_SESSION_FIXTURES = {"demo_lake": ("demo_lake",), "real_lake": ("real_lake",),
                           "prefect_harness": ("prefect_harness",), "pg_server": ("pg_server", "pg_catalog")}


#: Test files measured slowest (tens of seconds each, ``--durations``), slowest first: under xdist their units
#: are handed out right after the shared-fixture units, so no long file is left for the end of the run
#: (a stale entry costs time, never correctness).
XDIST_SLOW_FILES = ("test_night_parallel.py", "test_crash_recovery.py", "test_ingest_real.py", "test_s3_lake.py",
                    "test_fixture_coverage.py", "test_storage_faults.py", "test_realdata_other_labs.py",
                    "test_lab_conventions.py", "test_hostile_inbox.py", "test_views_extracts.py")


def xdist_units(files: list[Path]) -> dict[str, tuple[int, str]]:
    """Test file (path relative to the repo) -> (rank, unit): the files naming the same shared session fixture
    are one unit (merged transitively, named after its first file in sort order), ranked 0; a unit holding one
    of XDIST_SLOW_FILES ranks after them in that order; every other file is a unit of its own, ranked last."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for path in sorted(files):
        rel = path.relative_to(REPO).as_posix()
        root(rel)
        text = path.read_text(encoding="utf-8")
        for fixture_name, names in SHARED_SESSION_FIXTURES.items():
            if any(re.search(rf"\b{n}\b", text) for n in names):
                a, b = root(rel), root(f"~{fixture_name}")  # "~" sorts after any path: a file names the unit
                parent[max(a, b)] = min(a, b)
    shared = {root(x) for x in parent if x.startswith("~")}
    rank = {u: 0 for u in shared}
    for i, name in enumerate(XDIST_SLOW_FILES):
        u = root(f"tests/{name}")
        rank[u] = min(rank.get(u, i + 1), i + 1)
    return {f: (rank.get(root(f), len(XDIST_SLOW_FILES) + 1), root(f)) for f in parent if not f.startswith("~")}


def _test_files() -> list[Path]:
    return list((REPO / "tests").glob("test_*.py"))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with the files sharing an expensive session fixture kept on one worker, and the
    units handed out in the workers' collection order (sorted below), not by their number of tests."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    units = xdist_units(_test_files())
    config.option.loadscopereorder = False

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return units.get(file, (0, file))[1]

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """In an xdist worker: the tests in unit order (shared-fixture units, then the slow files, then the rest;
    a unit's files together, each file's tests in their own order). Serial runs are left as they are."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    units = xdist_units(_test_files())
    first_seen: dict[str, int] = {}
    for item in items:
        first_seen.setdefault(item.nodeid.split("::", 1)[0], len(first_seen))

    def key(item):
        file = item.nodeid.split("::", 1)[0]
        rank, unit = units.get(file, (len(XDIST_SLOW_FILES) + 1, file))
        return rank, unit, first_seen[file]

    items.sort(key=key)


@pytest.fixture(autouse=True)
def _no_member_identity_from_the_caller(monkeypatch):
    """Tests choose their identity explicitly: a MYOMAP_MEMBER* of the shell running them never applies."""
    for var in ("MYOMAP_MEMBER", "MYOMAP_MEMBERS_FILE", "MYOMAP_MEMBER_KEY"):
        monkeypatch.delenv(var, raising=False)


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


@pytest.fixture(scope="session")
def real_lake(tmp_path_factory):
    """The two real gait files' lake (test_small.c3d as subject R01, treadmill_events.c3d as R02, with
    tests/test_real_analysis.py's manifest), ingested once per session; its Settings. Read-only for tests."""
    from test_real_analysis import MANIFEST

    from flows.nightly import run_night
    from warehouse.settings import get_settings

    s = get_settings(str(tmp_path_factory.mktemp("real") / "lake"))
    drop(s, "real", {"small/test_small.c3d": fixture("gaitalytics/test_small.c3d"),
                     "tread/treadmill_events.c3d": fixture("gaitalytics/treadmill_events.c3d")}, MANIFEST)
    run_night(s.lake, quiet=True)
    return s


#: Columns that differ between two runs over the same inbox (times, run ids, where raw copies live).
#: ``inbox_stat`` is the inbox entry's metadata (inode, times): never the same for two inboxes, and NULL while the
#: entry was changed less than ``zones.STAT_SETTLED_S`` before the night looked at it, so a slower run records it
#: where a faster one does not (a timing window: CI on 8 Dec failed the kill -9 convergence test on it).
VOLATILE_COLUMNS = {"received_at", "ingested_at", "run_id", "raw_path", "completed_at", "quarantined_at", "started_at",
                    "finished_at", "inbox_stat"}


def lake_fingerprint(settings) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent hash of every table but ``runs`` (volatile columns left out).

    The hash is the SHA-256 of the table's rows, each written as a JSON array of its exact values (floats
    round-trip; -0.0 counted as 0.0, as SQL compares them), sorted: computed inside DuckDB, so a lake of
    millions of samples is not turned into Python tuples. Asserts that no table holds two rows with the same
    primary key.
    """
    from schemas.contracts import TABLES
    from warehouse import catalog

    con = catalog.connect(settings, read_only=True)
    out = {}
    try:
        for name, t in TABLES.items():
            if name == "runs":
                continue
            cols = [c.name for c in t.columns if c.name not in VOLATILE_COLUMNS]
            quoted = ", ".join(f'"{c}"' for c in cols)
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT {quoted} FROM {name}").fetchall()}
            sel = ", ".join(f'("{c}"::DOUBLE + 0.0)' if types[c] in ("FLOAT", "DOUBLE") else f'"{c}"' for c in cols)
            out[name] = con.execute(f"SELECT count(*), sha256(coalesce(string_agg(r, chr(10) ORDER BY r), '')) "
                                    f"FROM (SELECT CAST(json_array({sel}) AS VARCHAR) AS r FROM {name})").fetchone()
            key = ", ".join(f'"{k}"' for k in t.primary_key)
            dup = con.execute(f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY ALL HAVING count(*) > 1)")
            assert dup.fetchone()[0] == 0, f"duplicate keys in {name}"
    finally:
        con.close()
    return out


# --------------------------------------------------------------------------- services (S3, PostgreSQL)
# Shared by test_s3_lake, test_postgres_catalog and test_attacks: one moto server and one PostgreSQL
# server per test session, a fresh bucket / database per test.
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """moto's standalone S3 server in a subprocess on a free loopback port; stopped at the end."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, "moto server exited"
                assert time.time() < deadline, "moto server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def s3_lake(moto_server, monkeypatch, tmp_path):
    """A fresh bucket; AWS_* variables pointing at moto; a local SQLite catalog; Settings of s3://bucket/lake."""
    import boto3

    from warehouse.settings import get_settings

    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "MYOMAP_LAKE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "myomap-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "myomap-test-secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.setenv("MYOMAP_CATALOG", str(tmp_path / "catalog" / "catalog.sqlite"))
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="eu-west-3")
    bucket = f"myomap-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    settings = get_settings(f"s3://{bucket}/lake")
    assert settings.is_s3 and settings.s3["endpoint_url"] == moto_server
    return settings, Bucket(s3, bucket)


class Bucket:
    """The test bucket through boto3 (independent of the code under test)."""

    def __init__(self, client, name: str):
        self.client, self.name = client, name

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def keys(self, prefix: str) -> dict[str, str]:
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        return out


@pytest.fixture(scope="session")
def pg_server():
    """DSN of a PostgreSQL server: $MYOMAP_TEST_PG_DSN, else one started (and stopped) by .ci/services.sh."""
    given = os.environ.get("MYOMAP_TEST_PG_DSN")
    if given:
        yield given
        return
    # as root the server runs as `postgres`, which must be able to enter the folder: keep it under /tmp
    state = tempfile.mkdtemp(prefix="myomap-pg-", dir="/tmp" if os.geteuid() == 0 else None)
    env = {**os.environ, "MYOMAP_SERVICES_DIR": state, "MYOMAP_PG_PORT": str(_free_port())}
    script = str(REPO / ".ci" / "services.sh")
    try:
        r = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"services.sh start failed:\n{r.stdout}\n{r.stderr}"
        dsn = r.stdout.strip().splitlines()[-1]
        assert dsn.startswith("postgresql://") and Path(state, "postgres.dsn").read_text().strip() == dsn
        yield dsn
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def pg_catalog(pg_server, monkeypatch):
    """A fresh database on the server; MYOMAP_CATALOG set to its DSN."""
    import psycopg

    name = f"myomap_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunparse(urlparse(pg_server)._replace(path=f"/{name}"))
    monkeypatch.setenv("MYOMAP_CATALOG", dsn)
    yield dsn
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
