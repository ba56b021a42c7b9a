"""The pieces of the serving layer's access control, one by one: the allow-list against DuckDB's own
function catalog, path normalisation, identities from configuration, secrets in settings, lake macros.
The attacks on the assembled whole are in test_attacks.py."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pwd

import duckdb
import pytest
from test_views_extracts import TODAY, build_lake

from warehouse import catalog
from warehouse.serving import access, gate, views
from warehouse.settings import (
    IdentityError,
    LocationError,
    get_settings,
    is_within,
    normalise_location,
    redact,
    resolve_identity,
)


def _all_functions() -> dict[str, set[str]]:
    """Every function DuckDB 1.5.5 and the lake's extensions define: name -> function types."""
    con = duckdb.connect()
    for ext in ("ducklake", "postgres_scanner", "sqlite_scanner", "httpfs"):
        catalog.load_extension(con, ext)
    out: dict[str, set[str]] = {}
    for name, kind in con.execute("SELECT DISTINCT function_name, function_type FROM duckdb_functions()").fetchall():
        out.setdefault(name.lower(), set()).add(kind)
    con.close()
    return out


def test_every_allowed_name_is_a_duckdb_function():
    known = _all_functions()
    listed = gate.SCALAR_FUNCTIONS | gate.TABLE_FUNCTIONS | gate.OPERATOR_TABLE_FUNCTIONS
    assert sorted(listed - set(known) - {"unnest"}) == []  # unnest is parser syntax, not in the catalog
    for name in gate.TABLE_FUNCTIONS | gate.OPERATOR_TABLE_FUNCTIONS:
        assert known[name] & {"table", "table_macro"}, name
    assert not any(gate.refusal_reason(n).startswith(("is a scanner", "runs SQL", "reads files", "shows"))
                   for n in listed if n.isidentifier()), "an allowed name matches a named refusal"


def test_every_other_function_is_refused_fail_closed():
    """Deny-list test inverted: each function DuckDB or an extension defines that is not listed is refused."""
    allowed = gate.Gate(frozenset({"trials"}), operator=True)
    refused = 0
    for name, kinds in _all_functions().items():
        if not name.isidentifier():
            continue
        scalar = f'SELECT "{name}"(1) FROM trials'
        table = f'SELECT * FROM "{name}"(1)'
        for sql, listed in ((scalar, name in gate.SCALAR_FUNCTIONS),
                            (table, name in gate.TABLE_FUNCTIONS | gate.OPERATOR_TABLE_FUNCTIONS)):
            if listed:
                gate.check_statements(None, sql, allowed)
                continue
            with pytest.raises(gate.ReadOnlyViolation, match="^Refused: "):
                gate.check_statements(None, sql, allowed)
            refused += 1
    assert refused > 400
    reasons = {n: gate.refusal_reason(n) for n in ("postgres_execute", "sqlite_query", "sqlite_attach", "query",
                                                   "sqlite_scan", "postgres_scan", "read_csv", "read_parquet",
                                                   "glob", "duckdb_secrets", "current_setting", "checkpoint",
                                                   "ducklake_cleanup_old_files", "brand_new_function")}
    assert reasons["postgres_execute"] == reasons["sqlite_query"] == reasons["sqlite_attach"] == reasons["query"]
    assert "runs SQL" in reasons["query"] and "scanner" in reasons["sqlite_scan"] == reasons["postgres_scan"]
    assert "reads files" in reasons["read_parquet"] and "secrets" in reasons["duckdb_secrets"]
    assert "deletes data files" in reasons["ducklake_cleanup_old_files"]
    assert "allow-list" in reasons["brand_new_function"]


def test_members_only_get_the_operator_table_functions_when_operators():
    member = gate.Gate(frozenset({"trials"}))
    for sql in ("FROM ducklake_table_insertions('lake', 'main', 'trials', 0, 5)", "FROM ducklake_list_files('lake', 't')",
                "FROM duckdb_tables()"):
        with pytest.raises(gate.ReadOnlyViolation, match="operators only"):
            gate.check_statements(None, sql, member)
        gate.check_statements(None, sql, dataclasses.replace(member, operator=True))


@pytest.mark.parametrize("path, expected", [
    ("s3://b/lake/tables/../x", "s3://b/lake/x"),
    ("s3://b//lake/./tables/", "s3://b/lake/tables/"),
    ("s3://b/lake/%2e%2e/x", "s3://b/x"),
    ("S3://b/lake\\..\\x", "s3://b/x"),
    ("s3://b/lake", "s3://b/lake"),
])
def test_s3_locations_are_normalised_before_any_directory_check(path, expected):
    assert normalise_location(path) == expected


def test_paths_that_climb_out_or_hide_are_refused():
    for bad in ("s3://b/lake/tables/../../../other-bucket/x.csv", "s3://b/lake/..%2f..%2fx", "s3://b/%252e%252e/x",
                "ftp://b/x", "s3:///x"):
        with pytest.raises(LocationError):
            normalise_location(bad)
    assert is_within("s3://b/lake/tables/../releases/x", "s3://b/lake/releases")
    assert not is_within("s3://b/lake2/x", "s3://b/lake") and not is_within("s3://c/lake/x", "s3://b/lake")
    assert get_settings("s3://b/lake/tables/../").lake == "s3://b/lake"


def _members_file(tmp_path, text: str, mode: int = 0o600):
    p = tmp_path / "members.yaml"
    p.write_text(text)
    os.chmod(p, mode)
    return str(p)


def test_identity_from_a_members_file(tmp_path):
    me = pwd.getpwuid(os.geteuid()).pw_name
    key = "lyon-api-key-123"
    text = f"""
members:
  alice: {{site: lyon, os_users: [{me}]}}
  robot: {{site: boston, key_sha256: "{hashlib.sha256(key.encode()).hexdigest()}"}}
  guests: {{role: public, os_users: ["*"]}}
"""
    s = dataclasses.replace(get_settings(str(tmp_path / "lake")), members_file=_members_file(tmp_path, text))
    who = resolve_identity(s)
    assert (who.name, who.role, who.site) == ("alice", "member", "lyon") and "OS user" in who.source
    assert resolve_identity(dataclasses.replace(s, member="lyon")).name == "alice"  # repeating oneself is fine
    with pytest.raises(IdentityError, match="^Refused: MYOMAP_MEMBER=boston is not you"):
        resolve_identity(dataclasses.replace(s, member="boston"))
    assert resolve_identity(dataclasses.replace(s, member_key=key)).site == "boston"
    with pytest.raises(IdentityError, match="^Refused: the members file names no member"):
        resolve_identity(dataclasses.replace(s, member_key="wrong"))
    ops = f"members:\n  ops: {{role: operator, os_users: [{me}]}}\n"
    s2 = dataclasses.replace(s, members_file=_members_file(tmp_path, ops))
    assert resolve_identity(s2).is_operator
    acting = resolve_identity(dataclasses.replace(s2, member="tokyo"))  # an operator may act as a member
    assert (acting.role, acting.site) == ("member", "tokyo") and "acting as" in acting.source
    with pytest.raises(IdentityError, match="only its owner can write"):
        resolve_identity(dataclasses.replace(s, members_file=_members_file(tmp_path, ops, 0o664)))
    for bad, msg in (("members: [a]", "one mapping"), (f"members:\n  x: {{role: member, os_users: [{me}]}}", "names its site"),
                     ("members:\n  x: {role: admin}", "role must be"), ("members:\n  x: {site: a, key: 1}", "unknown fields"),
                     ("members:\n  x: {role: operator, os_users: ['*']}", "only a public entry"),
                     ("members:\n  x: {site: a, key_sha256: abc}", "64 lower-case hex"), ("{{", "not valid YAML")):
        with pytest.raises(IdentityError, match=msg):
            resolve_identity(dataclasses.replace(s, members_file=_members_file(tmp_path, bad)))


def test_identity_without_a_members_file(tmp_path, monkeypatch):
    s = build_lake(tmp_path / "lake")
    owner = resolve_identity(s)
    assert owner.is_operator and owner.source == "owner of the lake's catalog file"
    assert resolve_identity(dataclasses.replace(s, member="lyon")).site == "lyon"
    assert resolve_identity(dataclasses.replace(s, member="public")).role == "public"
    with pytest.raises(IdentityError, match="^Refused: no member identity"):
        resolve_identity(dataclasses.replace(s, catalog="postgresql://u:pw@127.0.0.1:1/db"))
    # the owner default holds for the owner only: another OS user of the same lake gets no identity
    monkeypatch.setattr("warehouse.settings.os.geteuid", lambda: os.stat(s.catalog).st_uid + 4242)
    with pytest.raises(IdentityError, match="^Refused: no member identity"):
        resolve_identity(s)


def test_settings_never_show_a_secret():
    s = dataclasses.replace(get_settings("/tmp/lake", "postgresql://w:Pa55-word@h:5432/db"),
                            s3={"key": "AKIAKEY123", "secret": "s3cr3t-key"}, member_key="member-key-1")
    for text in (repr(s), str(s), s.catalog_display):
        assert "Pa55-word" not in text and "s3cr3t-key" not in text and "member-key-1" not in text
    assert s.catalog_display == "postgresql://w:***@h:5432/db"
    assert redact("x Pa55-word y AKIAKEY123 s3cr3t-key member-key-1", s) == "x *** y *** *** ***"
    attach = catalog.attach_sql(s, True, None)
    assert "Pa55-word" not in attach and "METADATA_PARAMETERS MAP {'SECRET': 'myomap_catalog'}" in attach


def test_a_lake_holding_macros_is_refused(tmp_path):
    """A macro stored in the lake named like a built-in would shadow it in every session: refuse to open."""
    s = build_lake(tmp_path / "lake")
    w = catalog.connect(s)
    w.execute("CREATE MACRO lake.main.upper(x) AS 'LAKE-MACRO'")
    w.close()
    with pytest.raises(views.HardeningError, match="macros or views"):
        access.open_member_session(s, "lyon", today=TODAY)
