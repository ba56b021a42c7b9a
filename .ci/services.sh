#!/usr/bin/env bash
# Throw-away services for the tests: a PostgreSQL server on 127.0.0.1 (DuckLake catalog tests).
#
#   .ci/services.sh start    start it (installs Debian's postgresql if no initdb is found), print the DSN
#   .ci/services.sh stop     stop it and delete its data
#   .ci/services.sh status   exit 0 if it runs (and print the DSN)
#   .ci/services.sh dsn      print the DSN
#
# Environment:
#   MYOMAP_SERVICES_DIR  state folder (default ${TMPDIR:-/tmp}/myomap-services): data in pgdata/,
#                        sockets in sock/, log in postgres.log, the DSN in postgres.dsn
#   MYOMAP_PG_PORT       TCP port on 127.0.0.1 (default 54329)
#
# The server trusts every local connection (user myomap, database myomap) and runs with
# fsync off: it is for tests only. As root it runs as the `postgres` user (initdb refuses root).
set -euo pipefail

STATE=${MYOMAP_SERVICES_DIR:-${TMPDIR:-/tmp}/myomap-services}
PORT=${MYOMAP_PG_PORT:-54329}
PGDATA_DIR=$STATE/pgdata
SOCK=$STATE/sock
LOG=$STATE/postgres.log
DSN_FILE=$STATE/postgres.dsn
DSN="postgresql://myomap@127.0.0.1:${PORT}/myomap"

pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"; return 0
    fi
    return 1
}

ensure_postgres() {
    if pg_bindir >/dev/null; then return 0; fi
    if [ "$(id -u)" != 0 ]; then
        echo "services.sh: PostgreSQL not found; install it (apt-get install -y postgresql)" >&2
        exit 1
    fi
    echo "services.sh: installing Debian's postgresql ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    # the package may start its own cluster on 5432: leave it, ours has its own port and data
    pg_bindir >/dev/null || { echo "services.sh: initdb still not found after install" >&2; exit 1; }
}

# run a command as the server's owner (postgres when we are root)
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        if command -v runuser >/dev/null 2>&1; then runuser -u postgres -- "$@"
        else su -s /bin/sh postgres -c "$(printf '%q ' "$@")"; fi
    else
        "$@"
    fi
}

running() {
    local bin; bin=$(pg_bindir) || return 1
    [ -f "$PGDATA_DIR/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

start() {
    ensure_postgres
    local bin; bin=$(pg_bindir)
    if running; then
        echo "$DSN" > "$DSN_FILE"; echo "$DSN"; return 0
    fi
    mkdir -p "$STATE"
    if [ "$(id -u)" = 0 ]; then chown postgres "$STATE"; fi
    if ! as_owner test -w "$STATE"; then
        echo "services.sh: $STATE is not writable by the server's user (postgres): choose a MYOMAP_SERVICES_DIR" \
             "whose parent folders it can enter (e.g. under /tmp)" >&2
        exit 1
    fi
    as_owner mkdir -p "$SOCK"
    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
        rm -rf "$PGDATA_DIR"
        as_owner "$bin/initdb" -D "$PGDATA_DIR" -U myomap --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
            --no-sync >"$STATE/initdb.log" 2>&1 \
            || as_owner "$bin/initdb" -D "$PGDATA_DIR" -U myomap --auth=trust --encoding=UTF8 --no-sync \
            >"$STATE/initdb.log" 2>&1 \
            || { cat "$STATE/initdb.log" >&2; exit 1; }
    fi
    as_owner "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$LOG" -w -t 60 start \
        -o "-h 127.0.0.1 -p $PORT -k $SOCK -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null || { cat "$LOG" >&2; exit 1; }
    # the database the DSN names
    if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$PORT" -U myomap -d postgres -Atqc \
            "SELECT 1 FROM pg_database WHERE datname = 'myomap'" | grep -q 1; then
        as_owner "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U myomap myomap
    fi
    echo "$DSN" > "$DSN_FILE"
    chmod a+r "$DSN_FILE" 2>/dev/null || true
    echo "$DSN"
}

stop() {
    local bin
    if bin=$(pg_bindir) && [ -f "$PGDATA_DIR/PG_VERSION" ]; then
        as_owner "$bin/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PGDATA_DIR" "$SOCK" "$DSN_FILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if running; then echo "$DSN"; else echo "not running" >&2; exit 1; fi ;;
    dsn) echo "$DSN" ;;
    *) echo "usage: $0 start|stop|status|dsn" >&2; exit 2 ;;
esac
