"""The serving layer attacked as a curious member would: SQLite and PostgreSQL catalogs, and an S3 lake.

Every attack of issue 15 ("What is wrong today") is tried on the three back ends (the ``target``
fixture): catalog writes through ``postgres_execute``, the catalog password in
``duckdb_databases()``, scanners reading other files and databases, S3 ``..`` traversal, functions a
deny-list would have let through, naming another site to get its embargoed rows (sql, extract,
report), forged releases; then a generated fuzz of SQL text. The consortium is the synthetic one of
``test_views_extracts`` (lyon, boston embargoed until 2999, tokyo without public consent), written
through the real catalog code to each back end. The disclosure attack on the demo consortium's releases:
``test_attacks_demo``.
"""
from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import numpy as np
import pyarrow.parquet as pq
import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from disclosure_model import check_release_keeps_its_promises
from test_views_extracts import SECRET_PATH, TODAY, build_lake

from flows.cli import main
from warehouse import catalog, zones
from warehouse.serving import access, extracts, gate, releases
from warehouse.serving.report import render_report
from warehouse.settings import IdentityError, get_settings

PG_PASSWORD = "Pg-Att4ck-" + uuid.uuid4().hex[:8]
S3_KEY, S3_SECRET = "AKIAMYOMAPATTACK0001", "s3-secret-" + uuid.uuid4().hex[:12]


@dataclasses.dataclass
class Target:
    """One consortium lake on one back end, with sentinel files outside it."""

    kind: str
    settings: object
    outside: Path  # files the lake process can read but a session must never show
    token: str  # the sentinels' content
    secrets: list[str]
    bucket: object = None
    pg_dsn: str | None = None

    def as_member(self, member: str | None):
        return dataclasses.replace(self.settings, member=member)

    def env(self, member: str | None = None) -> dict:
        return {"MYOMAP_MEMBER": member} if member else {}

    def state(self):
        """Row counts of every table, the snapshot count, the data files, the outside folder's files."""
        con = catalog.connect(self.as_member(None), read_only=True)
        try:
            names = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
            counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in names}
            snaps = con.execute("SELECT count(*) FROM ducklake_snapshots('lake')").fetchone()[0]
        finally:
            con.close()
        fs = zones.filesystem(self.settings)
        files = sorted(fs.find(self.settings.zone("tables")))
        extra = self.pg_tables() if self.pg_dsn else []
        return counts, snaps, files, sorted(p.name for p in self.outside.iterdir()), extra

    def pg_tables(self) -> list[str]:
        with psycopg.connect(self.pg_dsn) as c:
            return sorted(r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))


def _sentinels(folder: Path, token: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "outside.csv").write_text(f"k\n{token}\n")
    (folder / "outside.txt").write_text(token)
    with sqlite3.connect(folder / "outside.db") as c:  # e.g. Prefect's run database
        c.execute("CREATE TABLE t (k TEXT)")
        c.execute("INSERT INTO t VALUES (?)", [token])


@pytest.fixture(scope="module", params=["sqlite", "postgres", "s3"])
def target(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(f"attack-{kind}")
    token = f"SENTINEL-{uuid.uuid4().hex}"
    _sentinels(root / "outside", token)
    mp = pytest.MonkeyPatch()
    for var in ("MYOMAP_CATALOG", "MYOMAP_LAKE", "MYOMAP_MEMBER", "MYOMAP_MEMBERS_FILE", "MYOMAP_MEMBER_KEY"):
        mp.delenv(var, raising=False)
    bucket, dsn, secrets = None, None, [token]
    try:
        if kind == "sqlite":
            lake = str(root / "lake")
        elif kind == "postgres":
            server = request.getfixturevalue("pg_server")
            name = f"myomap_attack_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(server, autocommit=True) as c:
                c.execute(f'CREATE DATABASE "{name}"')
            u = psycopg.conninfo.conninfo_to_dict(server)
            dsn = f"postgresql://{u['user']}:{PG_PASSWORD}@{u['host']}:{u['port']}/{name}"
            mp.setenv("MYOMAP_CATALOG", dsn)
            lake, secrets = str(root / "lake"), [token, PG_PASSWORD]
        else:
            import boto3

            from conftest import Bucket

            endpoint = request.getfixturevalue("moto_server")
            for var, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", S3_KEY),
                               ("AWS_SECRET_ACCESS_KEY", S3_SECRET), ("AWS_REGION", "eu-west-3"),
                               ("AWS_DEFAULT_REGION", "eu-west-3")):
                mp.setenv(var, value)
            mp.setenv("MYOMAP_CATALOG", str(root / "catalog.sqlite"))
            client = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-3",
                                  aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)
            name = f"myomap-attack-{uuid.uuid4().hex[:8]}"
            for b in (name, name + "-other"):
                client.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
            bucket = Bucket(client, name)
            bucket.client.put_object(Bucket=name + "-other", Key="x.csv", Body=f"k\n{token}\n".encode())
            bucket.put("other/x.csv", f"k\n{token}\n".encode())
            lake, secrets = f"s3://{name}/lake", [token, S3_KEY, S3_SECRET]
        settings = get_settings(lake)
        if kind == "postgres":
            settings = dataclasses.replace(settings, member="operator")
            mp.setenv("MYOMAP_MEMBER", "operator")
        build_lake(lake)
        mp.delenv("MYOMAP_MEMBER", raising=False)
        yield Target(kind, dataclasses.replace(settings, member=None), root / "outside", token, secrets,
                     bucket, dsn)
    finally:
        mp.undo()


def _operator(t: Target):
    """Operator settings: the owner of a local SQLite catalog is one by default; PostgreSQL says so."""
    return t.as_member("operator" if t.kind == "postgres" else None)


def _attacks(t: Target) -> list[str]:
    out = t.outside
    data = t.settings.zone("tables")
    lake_bucket = t.bucket.name if t.bucket else "b"
    return [
        # catalog write through the catalog's own connection (the COMMIT ends the read-only transaction)
        "SELECT * FROM postgres_execute('__ducklake_metadata_lake', 'COMMIT; CREATE TABLE evil (a int)')",
        "CALL postgres_execute('__ducklake_metadata_lake', 'COMMIT; CREATE TABLE evil (a int)')",
        "FROM postgres_query('__ducklake_metadata_lake', 'SELECT * FROM ducklake_data_file')",
        "FROM __ducklake_metadata_lake.ducklake_data_file",
        "FROM __ducklake_metadata_lake.public.ducklake_snapshot",
        # credentials
        "SELECT path FROM duckdb_databases()", "FROM duckdb_databases", "SHOW DATABASES", "PRAGMA database_list",
        "SELECT * FROM duckdb_secrets()", "SELECT * FROM duckdb_settings()", "SELECT * FROM pragma_database_list()",
        "SELECT current_setting('s3_secret_access_key')", "FROM which_secret('s3://x/y', 's3')",
        "FROM postgres_scan('dbname=postgres host=127.0.0.1', 'public', 'pg_authid')",
        "FROM postgres_attach('dbname=postgres')",
        # other files and databases
        f"SELECT * FROM sqlite_scan('{out}/outside.db', 't')", f"FROM sqlite_attach('{out}/outside.db')",
        f"FROM sqlite_query('{out}/outside.db', 'SELECT * FROM t')", f"ATTACH '{out}/outside.db' (TYPE sqlite)",
        f"SELECT * FROM read_csv('{out}/outside.csv')", f"FROM '{out}/outside.csv'", f'FROM "{out}/outside.csv"',
        f"FROM read_text('{out}/outside.txt')", f"FROM read_blob('{out}/outside.txt')", f"FROM glob('{out}/*')",
        f"FROM query_table('{out}/outside.csv')", f"FROM query('SELECT * FROM read_text(''{out}/outside.txt'')')",
        f"DESCRIBE '{out}/outside.csv'", f"SUMMARIZE SELECT * FROM '{out}/outside.csv'",
        f"WITH \"{out}/outside.csv\" AS (SELECT * FROM \"{out}/outside.csv\") SELECT 1",
        f"FROM read_parquet('{data}/**/*.parquet')",  # the lake's own files: past the member's row filter
        # S3 traversal and other buckets
        f"SELECT * FROM read_csv('s3://{lake_bucket}/lake/tables/../../../{lake_bucket}-other/x.csv')",
        f"FROM 's3://{lake_bucket}/lake/tables/../other/x.csv'", f"FROM 's3://{lake_bucket}-other/x.csv'",
        f"COPY (SELECT 1) TO 's3://{lake_bucket}/lake/tables/evil.csv'",
        # writes and escalation
        f"COPY (SELECT 1) TO '{data}/evil.csv'", f"EXPORT DATABASE '{out}/exp'", "SET enable_external_access = true",
        f"ATTACH 'ducklake:sqlite:{out}/x.sqlite' AS w", "DETACH lake", "INSERT INTO sites (site_id) VALUES ('x')",
        "SELECT * FROM ducklake_cleanup_old_files('lake', cleanup_all => true)", "FROM lake.merge_adjacent_files()",
        "SELECT 1; DROP TABLE trials", "SELECT * FROM trials AT (VERSION => 1)", "FROM lake.main.files",
        # look-alikes and quoting
        "SELECT * FROM \"query\"('SELECT 1')", "FROM QUERY_TABLE('trials')", "FROM qu\u0435ry('SELECT 1')",
        "FROM \uff52\uff45\uff41\uff44_csv('x.csv')", "SELECT \u212aurtosis(1)", "FROM main.read_csv('x.csv')",
        "FROM system.main.glob('*')", "SELECT * FROM histogram(trials, duration_s)",
    ]


def _assert_clean(text: str, t: Target) -> None:
    for s in t.secrets:
        assert s not in text, f"secret or sentinel leaked: {text[:300]}"


def test_every_sql_attack_is_refused_and_leaves_no_trace(target):
    t = target
    before = t.state()
    for who in ("lyon", "operator"):
        session = access.open_member_session(_operator(t), who, today=TODAY)
        try:
            for sql in _attacks(t):
                with pytest.raises(gate.ReadOnlyViolation) as err:
                    session.execute(sql).fetchall()
                assert str(err.value).startswith("Refused"), (sql, str(err.value))
                _assert_clean(str(err.value), t)
            assert session.execute("SELECT count(*) FROM trials").fetchone()[0] > 0  # still usable
        finally:
            session.close()
    assert t.state() == before  # no write anywhere: lake, data files, outside folder, PostgreSQL tables
    if t.bucket:
        assert not any("evil" in k for k in t.bucket.keys(""))


def test_no_password_or_key_in_databases_secrets_settings_or_errors(target):
    t = target
    session = access.open_member_session(_operator(t), today=TODAY)
    try:
        con = session._con  # what DuckDB itself would show if the gate ever let these through
        shown = [con.execute(q).fetchall() for q in (
            "SELECT * FROM duckdb_databases()", "SELECT * FROM duckdb_settings()",
            "SELECT * FROM ducklake_settings('lake')", "SELECT * FROM ducklake_options('lake')")]
        # duckdb_secrets() redacts passwords and secret keys but shows an S3 access key *id*: the gate refuses it
        secrets = repr(con.execute("SELECT * FROM duckdb_secrets()").fetchall())
        assert PG_PASSWORD not in secrets and S3_SECRET not in secrets and t.token not in secrets
        shown.append(session.execute("EXPLAIN SELECT * FROM trials JOIN sessions USING (session_id)").fetchall())
        for bad in ("SELECT no_such_column FROM trials", "SELECT * FROM no_such_view", "SELECT 1 +"):
            with pytest.raises(duckdb.Error) as err:
                session.execute(bad).fetchall()
            shown.append(str(err.value))
        _assert_clean(repr(shown), t)
        if t.kind == "s3":
            assert dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name LIKE 's3_%key%'")
                        .fetchall()).get("s3_secret_access_key") in (None, "")
        if t.kind == "postgres":
            path = [r for r in shown[0] if r[0] == "lake"][0][2]
            assert path.startswith("postgres:") and "password" not in path
    finally:
        session.close()
    if t.kind == "postgres":  # a failing attach (wrong port) names neither the password nor the DSN with it
        u = urlparse(t.pg_dsn)
        wrong = dataclasses.replace(_operator(t), catalog=u._replace(netloc=u.netloc.rsplit(":", 1)[0] + ":1").geturl())
        with pytest.raises(Exception) as err:
            catalog.connect(wrong, read_only=True)
        _assert_clean(str(err.value), t)
        assert PG_PASSWORD not in repr(wrong) and PG_PASSWORD not in wrong.catalog_display
    r = CliRunner().invoke(main, ["status", "--lake", t.settings.lake], env=t.env("operator"))
    _assert_clean(r.output, t)


def _dump(session) -> str:
    """Every row of every view of a session, as text."""
    return "\n".join(repr(session.execute(f'SELECT * FROM "{v}"').fetchall()) for v in session.views)


def test_sql_member_sees_only_what_the_rules_allow(target):
    t = target
    member = access.open_member_session(t.as_member("lyon"), today=TODAY)
    operator = access.open_member_session(_operator(t), today=TODAY)
    try:
        assert member.access.visible_sites == ["lyon", "tokyo"] and member.access.identity.role == "member"
        seen = _dump(member)
        assert "BOS0" not in seen and "'boston'" not in seen  # boston is embargoed until 2999
        assert "TOK01" in seen and "LYO05" in seen
        assert SECRET_PATH not in seen and "raw/ff" not in seen  # no inbox or raw-zone path
        assert {"runs", "validations", "derivations"}.isdisjoint(member.views)
        assert "path" not in [r[0] for r in member.execute("DESCRIBE files").fetchall()]
        with pytest.raises(gate.ReadOnlyViolation, match="^Refused"):
            member.execute("SELECT * FROM runs")
        # the operator's view of the same lake has all of it: the checks above can fail
        everything = _dump(operator)
        assert "BOS0" in everything and SECRET_PATH in everything
        # reference statistics: boston is in none of the member's (recomputed over lyon + tokyo)
        ref = member.execute("SELECT n_reference FROM subject_profiles WHERE subject_id = 'LYO05' "
                             "AND session_id = 'LYO05-fresh' AND muscle = 'soleus' AND side = 'L'").fetchone()
        assert ref == (7,)  # 4 other lyon + 3 tokyo subjects; with boston it would be 10
        amap = member.execute("SELECT DISTINCT scope FROM activation_map ORDER BY 1").fetchall()
        assert amap == [("session",)]  # pooled maps include boston's sessions: not for lyon
    finally:
        member.close()
        operator.close()


def test_a_member_cannot_name_another_site(target, tmp_path):
    t = target
    lyon = t.as_member("lyon")
    with pytest.raises(IdentityError, match="^Refused: you are lyon .*only an operator may read as member of site boston"):
        access.open_member_session(lyon, "boston", today=TODAY)
    with pytest.raises(IdentityError, match="^Refused"):
        extracts.extract(lyon, cohort=None, tables=["subjects"], out_dir=str(tmp_path / "x"),
                         requester_site="boston", today=TODAY)
    with pytest.raises(IdentityError, match="^Refused"):
        render_report(lyon, str(tmp_path / "r.html"), requester_site="boston", today=TODAY)
    with pytest.raises(IdentityError, match="^Refused"):
        access.open_member_session(lyon, "operator")
    for cmd in (["extract", "--table", "subjects", "--out", str(tmp_path / "cli")], ["report", str(tmp_path / "c.html")]):
        r = CliRunner().invoke(main, [*cmd, "--lake", t.settings.lake, "--requester-site", "boston"],
                               env=t.env("lyon"))
        assert r.exit_code != 0 and "Refused" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    assert not (tmp_path / "c.html").exists() and not (tmp_path / "r.html").exists()


def test_extract_and_report_as_a_member_hold_no_embargoed_row(target, tmp_path):
    t = target
    r = CliRunner().invoke(main, ["extract", "--lake", t.settings.lake, "--out", str(tmp_path / "ex"), "--format",
                                  "csv", "--table", ",".join(extracts.extractable_tables())], env=t.env("lyon"))
    assert r.exit_code == 0, r.output
    blob = "".join(p.read_text() for p in (tmp_path / "ex").glob("*.csv"))
    assert "LYO01" in blob and "TOK01" in blob and "BOS0" not in blob and SECRET_PATH not in blob
    m = json.loads((tmp_path / "ex" / "manifest.json").read_text())
    assert m["sharing"]["requested_by"]["site"] == "lyon" and m["sharing"]["included_sites"] == ["lyon", "tokyo"]
    r = CliRunner().invoke(main, ["sql", "--lake", t.settings.lake, "--format", "csv",
                                  "SELECT DISTINCT site_id FROM sessions ORDER BY 1"], env=t.env("lyon"))
    assert r.exit_code == 0 and r.output.split() == ["site_id", "lyon", "tokyo"], r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path / "lyon.html"), "--lake", t.settings.lake],
                           env=t.env("lyon"))
    assert r.exit_code == 0, r.output
    html = (tmp_path / "lyon.html").read_text()
    assert "LYO01" in html and "TOK01" in html and "BOS0" not in html and SECRET_PATH not in html


def test_the_release_area_is_written_only_by_publish(target, tmp_path):
    t = target
    rel = t.settings.zone("releases")
    base = t.settings.lake
    for out in (f"{rel}/forged/1.0.0", f"{base}/tables/../releases/forged/2", f"{base}/inbox/boston/x", base,
                f"{base}//releases/./forged/3"):
        with pytest.raises(extracts.ExtractError, match="^Refused: .*inside the lake"):
            extracts.extract(_operator(t), cohort=None, tables=["subjects"], out_dir=out, today=TODAY)
        r = CliRunner().invoke(main, ["extract", "--lake", base, "--table", "subjects", "--out", out],
                               env=t.env("lyon"))
        assert r.exit_code != 0 and "Refused" in r.output, r.output
    with pytest.raises(extracts.ExtractError, match="^Refused"):
        render_report(_operator(t), f"{rel}/forged/report.html", today=TODAY)
    assert releases.list_releases(t.settings) == []
    # a folder written into the release area by other means is reported, never listed, never a crash
    fs = zones.filesystem(t.settings)
    for path, text in ((f"{rel}/forged/1.0.0/manifest.json", '{"kind": "myomap-extract", "files": []}'),
                       (f"{rel}/forged/2.0.0/manifest.json", "not json"),
                       (f"{rel}/forged/3.0.0/manifest.json", json.dumps({
                           "kind": "myomap-release", "name": "forged", "version": "3.0.0", "created_at": "x",
                           "snapshot_id": 1, "licence": "CC0-1.0", "files": [{"file": "a.parquet", "kind": "data"}]}))):
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "w") as fh:
            fh.write(text)
    m = releases.publish(_operator(t), "real", "1", today=TODAY)
    found, problems = releases.scan_releases(t.settings)
    assert [(r["name"], r["version"]) for r in found] == [("real", "1")] and m["name"] == "real"
    assert sorted(p["problem"].split(" (")[0] for p in problems) == [
        "listed file a.parquet is missing", "manifest.json is not readable JSON", "manifest.json lacks a valid 'name'"]
    r = CliRunner().invoke(main, ["releases", "--lake", base], env=t.env("public"))
    assert r.exit_code == 0 and "real" in r.output and "(1 row)" in r.output and "forged" in r.output, r.output
    r = CliRunner().invoke(main, ["publish", "evil", "1", "--lake", base], env=t.env("lyon"))
    assert r.exit_code != 0 and "Refused: myomap publish is for operators" in r.output


def test_roles_fail_closed(target):
    t = target
    for who in ("public",):
        with pytest.raises(IdentityError, match="^Refused: the public role reads published releases only"):
            access.open_member_session(t.as_member(who))
    with pytest.raises(IdentityError, match="^Refused: MYOMAP_MEMBER must be"):
        access.open_member_session(t.as_member("lyon; DROP"))
    with pytest.raises(access.UnknownSiteError, match="unknown requester site 'paris'"):
        access.open_member_session(t.as_member("paris"))
    r = CliRunner().invoke(main, ["sql", "--lake", t.settings.lake, "SELECT 1"], env=t.env("public"))
    assert r.exit_code != 0 and "Refused" in r.output
    if t.kind == "postgres":  # no local catalog file to own: without configuration nobody is anyone
        with pytest.raises(IdentityError, match="^Refused: no member identity"):
            access.open_member_session(t.settings)


# --------------------------------------------------------------------------- fuzz
_CALLS = [
    "read_csv('{out}/outside.csv')", "sqlite_scan('{out}/outside.db', 't')", "read_text('{out}/outside.txt')",
    "query('SELECT * FROM read_text(''{out}/outside.txt'')')", "glob('{out}/*')", "read_blob('{out}/outside.txt')",
    "postgres_execute('__ducklake_metadata_lake', 'COMMIT; CREATE TABLE pwned (a int)')",
    "postgres_query('__ducklake_metadata_lake', 'SELECT 1')", "duckdb_databases()", "duckdb_secrets()",
    "duckdb_settings()", "query_table('{out}/outside.csv')", "sqlite_attach('{out}/outside.db')",
    "ducklake_cleanup_old_files('lake', cleanup_all => true)", "ducklake_list_files('lake', 'trials')",
    "'{out}/outside.csv'", "__ducklake_metadata_lake.ducklake_data_file", "lake.main.files", "runs",
    "trials", "v_onsets", "range(3)", "unnest([1, 2])",
]
_WRAPPERS = [
    "SELECT * FROM {x}", "FROM {x}", "SELECT (SELECT count(*) FROM {x})", "SELECT * FROM trials WHERE trial_id IN "
    "(SELECT 'a' FROM {x})", "WITH c AS (SELECT * FROM {x}) SELECT * FROM c", "SELECT * FROM sessions, LATERAL "
    "(SELECT * FROM {x}) y", "SELECT list_transform([1], z -> (SELECT count(*) FROM {x}))", "EXPLAIN SELECT * FROM {x}",
    "EXPLAIN ANALYZE SELECT * FROM {x}", "SUMMARIZE SELECT * FROM {x}", "DESCRIBE SELECT * FROM {x}",
    "SELECT * FROM (SELECT * FROM (SELECT * FROM {x}))", "SELECT 1 UNION ALL SELECT count(*) FROM {x}",
]
_TAILS = ["", ";", "; SELECT 1", "; DROP TABLE trials", "; COPY (SELECT 1) TO '{out}/fuzz.csv'",
          "; ATTACH '{out}/fuzz.db' AS f", "; SET enable_external_access = true", " -- ; DROP TABLE trials",
          " /* */; CALL postgres_execute('__ducklake_metadata_lake', 'COMMIT; CREATE TABLE pwned2 (a int)')",
          "; INSTALL httpfs", "; EXPORT DATABASE '{out}/fuzz'", "; PRAGMA import_database('{out}')"]
_LOOKALIKES = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "c": "\u0441", "p": "\u0440", "r": "\uff52", "k": "\u212a"}


@st.composite
def _sql_text(draw):
    x = draw(st.sampled_from(_CALLS))
    name = x.split("(")[0]
    mutate = draw(st.sampled_from(["none", "upper", "quote", "lookalike", "comment", "space"]))
    if mutate == "upper":
        x = x.replace(name, name.upper(), 1)
    elif mutate == "quote" and "(" in x:
        x = x.replace(name, f'"{name}"', 1)
    elif mutate == "lookalike":
        ch = draw(st.sampled_from(sorted(_LOOKALIKES)))
        x = x.replace(name, name.replace(ch, _LOOKALIKES[ch], 1), 1)
    elif mutate == "comment" and "(" in x:
        x = x.replace("(", "/* c */ (", 1)
    elif mutate == "space":
        x = x.replace("(", " \n\t(", 1)
    text = draw(st.sampled_from(_WRAPPERS)).format(x=x) + draw(st.sampled_from(_TAILS))
    if draw(st.booleans()):
        text = draw(st.sampled_from(["/* hi */ ", "-- x\n", "  \n", ""])) + text
    return text


@pytest.mark.parametrize("who", ["lyon", "operator"])
def test_fuzzed_sql_never_writes_reads_outside_or_leaks(target, who):
    t = target
    out = t.outside
    before = t.state()
    session = access.open_member_session(_operator(t), who, today=TODAY)
    outputs = []

    @settings(max_examples={"sqlite": 250, "postgres": 60, "s3": 60}[t.kind], deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(_sql_text())
    def attempt(text):
        sql = text.replace("{out}", str(out))
        try:
            outputs.append(repr(session.execute(sql).fetchall()))
        except duckdb.Error as exc:
            outputs.append(str(exc))

    try:
        attempt()
    finally:
        session.close()
    _assert_clean("\n".join(outputs), t)
    assert t.state() == before
    assert sum(o.startswith("Refused") for o in outputs) > len(outputs) // 2  # the fuzz does reach the gate


# --------------------------------------------------------------------------- disclosure: rebuild suppressed cells
def test_no_suppressed_cell_can_be_rebuilt_from_a_release(target):
    t = target
    m = releases.publish(_operator(t), "attack", "1", today=TODAY)
    local = Path(m["path"]) if t.kind != "s3" else _download(t, m["path"])
    check_release_keeps_its_promises(_operator(t), local, set(m["sharing"]["included_sites"]))
    # references of the released profiles come from released rows only (boston is embargoed: in none)
    prof = pq.read_table(local / "subject_profiles.parquet").to_pylist()
    assert prof and {r["subject_id"][:3] for r in prof} == {"LYO"}
    for r in prof:
        others = {}
        for o in prof:
            if o["subject_id"] != r["subject_id"] and (o["muscle"], o["side"], o["metric"], o["condition"]) == \
                    (r["muscle"], r["side"], r["metric"], r["condition"]) and o["value"] is not None:
                others.setdefault(o["subject_id"], []).append(o["value"])
        assert r["n_reference"] == len(others)
        if others:
            assert r["reference_mean"] == pytest.approx(float(np.median([np.mean(v) for v in others.values()])))


def _download(t: Target, path: str) -> Path:
    out = t.outside.parent / f"release-{uuid.uuid4().hex[:6]}"
    zones.filesystem(t.settings).get(path.rstrip("/") + "/", str(out) + "/", recursive=True)
    return out
