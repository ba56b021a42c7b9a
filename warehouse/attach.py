"""How a DuckDB instance attaches the lake: the ``ATTACH`` statement (:func:`attach_sql`) and the credentials it
needs, held in temporary secrets so that no statement, setting or error message shows them (a PostgreSQL
catalog's password, S3 keys). No connection of its own: :mod:`warehouse.catalog` opens them."""
from __future__ import annotations

import duckdb

from warehouse.settings import Settings

#: The attached catalog's name in every connection (as :data:`warehouse.catalog.LAKE`).
LAKE = "lake"

#: Name of the in-memory secret that holds the PostgreSQL catalog's password.
PG_SECRET = "myomap_catalog"


def attach_sql(settings: Settings, read_only: bool, as_of: str | None) -> str:
    """The ATTACH statement of the lake. It never contains a password: a PostgreSQL
    password lives in the temporary secret :data:`PG_SECRET` (:func:`warehouse.catalog.connect`), so
    ``duckdb_databases()``, EXPLAIN output and error messages cannot show it."""
    opts = [f"DATA_PATH '{_safe_literal(settings.zone('tables'))}/'"]
    if settings.catalog_kind == "postgres":
        target = f"ducklake:postgres:{_pg_conninfo(settings.catalog)}"
        # always the named secret: with persistent secrets off, an unnamed lookup fails ("Unknown secret
        # storage found: 'local_file'", measured)
        opts.append(f"METADATA_PARAMETERS MAP {{'SECRET': '{PG_SECRET}'}}")
    else:
        target = f"ducklake:sqlite:{settings.catalog}"
    if read_only:
        opts.append("READ_ONLY")
    else:
        opts.append("DATA_INLINING_ROW_LIMIT 0")
    if as_of:
        if as_of.isdigit():
            opts.append(f"SNAPSHOT_VERSION {int(as_of)}")
        else:
            opts.append(f"SNAPSHOT_TIME '{_safe_literal(as_of)}'")
    return f"ATTACH '{_safe_literal(target)}' AS {LAKE} ({', '.join(opts)})"


def _safe_literal(text: str) -> str:
    return text.replace("'", "''")


def _pg_conninfo(dsn: str) -> str:
    """Convert a postgresql:// URL to a libpq key=value string for DuckLake, **without** the password
    (query parameters such as ``sslmode`` are kept; a ``password`` parameter is dropped)."""
    from urllib.parse import parse_qsl, unquote, urlparse
    u = urlparse(dsn)
    parts = {"host": u.hostname, "port": u.port, "user": unquote(u.username or "") or None,
             "dbname": unquote((u.path or "/").lstrip("/")) or None}
    parts.update({k: v for k, v in parse_qsl(u.query) if k not in parts and k != "password"})
    return " ".join(f"{k}={_conninfo_value(str(v))}" for k, v in parts.items() if v)


def _conninfo_value(v: str) -> str:
    if v and not any(c in v for c in " '\\\"="):
        return v
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pg_password(dsn: str) -> str | None:
    from urllib.parse import parse_qsl, unquote, urlparse
    u = urlparse(dsn)
    return unquote(u.password or "") or dict(parse_qsl(u.query)).get("password") or None


def configure_pg_secret(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    password = _pg_password(settings.catalog)
    extra = f", PASSWORD '{_safe_literal(password)}'" if password else ""
    con.execute(f"CREATE OR REPLACE TEMPORARY SECRET {PG_SECRET} (TYPE postgres{extra})")


def configure_s3(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    # measured: loading httpfs copies AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment into
    # plain settings, which duckdb_settings() shows unredacted; the credentials live in the secret only
    con.execute("SET enable_global_s3_configuration = false")
    for key in ("s3_access_key_id", "s3_secret_access_key", "s3_session_token"):
        con.execute(f"SET {key} = ''")
    s3 = settings.s3
    opts = ["TYPE s3"]
    if s3.get("key"):
        opts += [f"KEY_ID '{_safe_literal(s3['key'])}'", f"SECRET '{_safe_literal(s3['secret'])}'"]
    if s3.get("region"):
        opts.append(f"REGION '{_safe_literal(s3['region'])}'")
    if s3.get("endpoint_url"):
        ep = s3["endpoint_url"]
        opts.append(f"ENDPOINT '{_safe_literal(ep.split('://', 1)[-1])}'")
        opts.append("URL_STYLE 'path'")
        opts.append(f"USE_SSL {'true' if ep.startswith('https') else 'false'}")
    con.execute(f"CREATE OR REPLACE TEMPORARY SECRET myomap_s3 ({', '.join(opts)})")
