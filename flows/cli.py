"""The ``myomap`` command line: demo, ingest, sql, status."""
from __future__ import annotations

import time
from pathlib import Path

import click

from flows.cli_output import print_rows, require_operator
from warehouse.settings import get_settings  # sets Prefect's offline variables first

EXAMPLE_QUERIES = [
    ("EMG channels per muscle and side",
     "SELECT muscle, side, count(*) AS channels FROM emg_channels GROUP BY ALL ORDER BY muscle, side"),
    ("Trials and samples per site",
     "SELECT t.site_id, count(DISTINCT t.trial_id) AS trials, sum(c.n_samples) AS emg_samples "
     "FROM trials t JOIN emg_channels c USING (trial_id) GROUP BY ALL ORDER BY 1"),
    ("Mean tibialis anterior envelope by condition (mV)",
     "SELECT s.condition, e.side, round(avg(e.envelope_mv), 4) AS mean_envelope_mv FROM emg_envelopes e "
     "JOIN trials t USING (trial_id) JOIN sessions s USING (session_id) "
     "WHERE e.muscle = 'tibialis_anterior' GROUP BY ALL ORDER BY 1, 2"),
]


def _lake_option(f):
    return click.option("--lake", default=None, metavar="PATH|s3://",
                        help="Lake root (default: $MYOMAP_LAKE or ./lake).")(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """myomap: a research data lake for dynamic lower-limb muscle mapping.

    Site inboxes (<lake>/inbox/<site>/) are ingested by the nightly flow into DuckLake
    tables that you query with `myomap sql`.
    """


@main.command()
@_lake_option
@click.option("--site", default=None, help="Only this site's inbox.")
@click.option("--quiet", is_flag=True, help="Print only the summary.")
@click.option("--runner", type=click.Choice(["default", "threads", "dask"]), default="default", show_default=True,
              help="Where the per-trial transforms run: one after the other, on threads (PostgreSQL catalog), "
                   "or on Dask.")
@click.option("--address", default=None, metavar="tcp://HOST:PORT",
              help="Dask scheduler for --runner dask (default: a local cluster of --workers processes).")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Local threads/Dask workers (default 2).")
def ingest(lake: str | None, site: str | None, quiet: bool, runner: str, address: str | None,
           workers: int | None) -> None:
    """Run the nightly flow once now (every site inbox, or --site)."""
    from flows.runners import check_runner, run_nightly

    settings = get_settings(lake)
    try:
        check_runner(settings, runner, address)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Ingesting {settings.zone('inbox')} (catalog {settings.catalog_display}) ...")
    summary = run_nightly(lake=settings.lake, site=site, quiet=quiet, runner=runner, address=address,
                          workers=workers)
    _print_summary(summary)


def _print_summary(s: dict) -> None:
    click.echo(f"Run {s['run_id']}: {s['files_seen']} files seen, {s['files_new']} new; "
               f"{s['ingested']} ingested, {s['quarantined']} quarantined, {s['held']} held, "
               f"{s['duplicate']} duplicate, {s['companion']} companion; {s['envelope_rows']} envelope rows; {s['seconds']} s")
    for site, err in s["manifest_errors"].items():
        click.echo(f"  site {site}: {err}")
    for code, n in s["quarantine_reasons"].items():
        click.echo(f"  quarantined ({code}): {n}")


@main.command()
@click.argument("query", required=False)
@_lake_option
@click.option("-f", "--file", "sql_file", type=click.Path(exists=True, dir_okay=False),
              help="Run the statements in a .sql file.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--as-of", default=None, help="Snapshot id or timestamp: answer as the lake was then.")
def sql(query: str | None, lake: str | None, sql_file: str | None, fmt: str, as_of: str | None) -> None:
    """Query the lake read-only (a query, a .sql file, or an interactive shell).

    You see what your identity may see (MYOMAP_MEMBER / MYOMAP_MEMBERS_FILE, docs/serving.md): a member
    sees their site and the sites that share with members, through views named like the tables
    (SHOW TABLES); only analysis functions are allowed, and anything else is refused ("Refused: ...").
    """
    from warehouse import catalog
    from warehouse.serving import access, views
    from warehouse.settings import IdentityError, redact

    settings = get_settings(lake)
    try:
        con = access.open_member_session(settings, as_of=as_of)
    except (catalog.CatalogError, views.HardeningError, IdentityError, access.UnknownSiteError) as exc:
        raise click.ClickException(redact(str(exc), settings))
    if sql_file:
        query = Path(sql_file).read_text()
    if query:
        _run_and_print(settings, con, query, fmt)
        return
    who = con.access
    click.echo(f"myomap sql (read-only) as {who.identity.name} ({who.role}"
               + (f" of site {who.site}" if who.site else "") + f"), snapshot {con.snapshot_id}. Tables: "
               + ", ".join(r[0] for r in con.execute("SHOW TABLES").fetchall())
               + ". End a query with ';', quit with \\q.")
    buf = ""
    while True:
        try:
            line = input("myomap> " if not buf else "   ...> ")
        except EOFError:
            break
        if line.strip() in ("\\q", "quit", "exit"):
            break
        buf += line + "\n"
        if buf.strip().endswith(";"):
            _run_and_print(settings, con, buf, fmt, fail=False)
            buf = ""


def _run_and_print(settings, con, query: str, fmt: str, fail: bool = True) -> None:
    import duckdb

    from warehouse import catalog
    from warehouse.settings import redact

    try:
        rel = catalog.with_retry(lambda: con.execute(query), settings, what="query")
        cols = [d[0] for d in rel.description] if rel.description else []
        rows = rel.fetchall() if cols else []
    except (duckdb.Error, catalog.CatalogError) as exc:
        msg = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, settings)
        if not msg.startswith("Refused") and "read-only" in msg.lower():
            msg = "myomap sql is read-only: " + msg
        if fail:
            raise click.ClickException(msg)
        click.echo(f"error: {msg}")
        return
    print_rows(cols, rows, fmt)


@main.command()
@_lake_option
def status(lake: str | None) -> None:
    """Last runs, table row counts, file accounting and quarantine summary."""
    from schemas.contracts import TABLES
    from warehouse import catalog

    settings = get_settings(lake)
    try:
        con = catalog.connect(settings, read_only=True)
    except catalog.CatalogError as exc:
        raise click.ClickException(str(exc))
    require_operator(settings, "myomap status (it shows inbox paths)")
    click.echo(f"Lake {settings.lake}\nCatalog {settings.catalog_display}\n")
    click.echo("Last runs:")
    runs = con.execute("SELECT run_id, finished_at, files_seen, files_new, trials_ingested, quarantined, held "
                       "FROM runs ORDER BY started_at DESC LIMIT 5").fetchall()
    print_rows(["run_id", "finished_at", "seen", "new", "ingested", "quarantined", "held"], runs, "table")
    click.echo("\nTables:")
    existing = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    counts = [(t, con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES if t in existing]
    print_rows(["table", "rows"], counts, "table")
    click.echo("\nFiles by status:")
    by = con.execute("SELECT status, count(*) FROM files GROUP BY 1 ORDER BY 1").fetchall()
    print_rows(["status", "files"], by, "table")
    total = sum(n for _, n in by)
    click.echo(f"Accounted for: {total} files = " + " + ".join(f"{n} {s}" for s, n in by))
    click.echo("\nValidation (Great Expectations suites from the contracts), last run with checks:")
    existing_tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    last = (con.execute("SELECT run_id FROM validations ORDER BY run_id DESC LIMIT 1").fetchone()
            if "validations" in existing_tables else None)
    if last:
        n_ok, n_bad = con.execute("SELECT count(*) FILTER (success), count(*) FILTER (NOT success) FROM validations "
                                  "WHERE run_id = ?", [last[0]]).fetchone()
        click.echo(f"  run {last[0]}: {n_ok} expectations met, {n_bad} failed")
        for table, exp, col, detail in con.execute(
                "SELECT table_name, expectation, column_name, detail FROM validations WHERE run_id = ? AND NOT success "
                "ORDER BY table_name LIMIT 20", [last[0]]).fetchall():
            click.echo(f"  \u2718 {table}: {exp}({col or ''}) {detail or ''}")
    else:
        click.echo("  no validations recorded yet")
    click.echo("\nQuarantine:")
    q = con.execute("SELECT site_id, stage, reason_code, count(*) AS n, any_value(message) AS example "
                    "FROM quarantine GROUP BY ALL ORDER BY n DESC").fetchall()
    print_rows(["site", "stage", "reason_code", "n", "example"], q, "table")


@main.command()
@_lake_option
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option("--subjects-per-site", default=None, type=int,
              help="Subjects at every site (default: lyon 5, boston 5, oslo 3).")
@click.option("--duration-s", default=20.0, show_default=True, help="Length of each trial.")
def demo(lake: str | None, seed: int, subjects_per_site: int, duration_s: float) -> None:
    """Generate a synthetic 3-site consortium into the inbox, ingest it, show example SQL."""
    from flows.nightly import nightly
    from warehouse import catalog
    from warehouse.demo import generate_consortium

    settings = get_settings(lake)
    if settings.is_s3:
        raise click.ClickException("myomap demo writes a local lake; unset MYOMAP_LAKE or pass --lake DIR.")
    t0 = time.time()
    inbox = Path(settings.zone("inbox"))
    click.echo(f"Generating the demo consortium into {inbox} (seed {seed}) ...")
    truth = generate_consortium(inbox, seed=seed, subjects_per_site=subjects_per_site, duration_s=duration_s,
                                progress=lambda m: click.echo("  " + m))
    click.echo(f"Ground truth: {inbox / 'ground_truth.json'}  ({time.time() - t0:.1f} s)")
    click.echo("Running the nightly flow (Prefect starts a local ephemeral server: ~20 s) ...")
    summary = nightly(lake=settings.lake, quiet=False)
    _print_summary(summary)
    con = catalog.connect(settings, read_only=True)
    for title, q in EXAMPLE_QUERIES:
        click.echo(f"\n-- {title}\n$ myomap sql \"{q}\"")
        rel = con.execute(q)
        print_rows([d[0] for d in rel.description], rel.fetchall(), "table")
    n = con.execute("SELECT count(*) FROM emg_samples").fetchone()[0]
    click.echo(f"\n{n:,} EMG samples in the lake. Done in {time.time() - t0:.0f} s. Try: myomap status")
    del truth


@main.command()
@_lake_option
@click.option("--cron", default=None, help="When the night runs (default 0 2 * * *, see flows/deployments.py).")
@click.option("--timezone", default=None, help="IANA time zone of --cron, the consortium's (default Europe/Paris).")
@click.option("--limit", default=None, type=int, help="At most this many flow runs at once.")
@click.option("--dry-run", is_flag=True, help="List the deployments and their schedules, serve nothing.")
def serve(lake, cron, timezone, limit, dry_run) -> None:
    """Serve the nightly, per-site and release deployments (needs PREFECT_API_URL: a Prefect server)."""
    from flows import deployments  # Prefect is imported only when serving

    deployments.serve_command(lake=lake, cron=cron or deployments.DEFAULT_CRON,
                              timezone=timezone or deployments.DEFAULT_TIMEZONE, limit=limit, dry_run=dry_run)


def _register_subcommands() -> None:
    from flows import cli_manifest, cli_publish, cli_quarantine

    cli_manifest.register(main)
    cli_quarantine.register(main)
    cli_publish.register(main)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()
