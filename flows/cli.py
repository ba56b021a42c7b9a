"""The ``myomap`` command line: demo, ingest, sql, status."""
from __future__ import annotations

import time
from pathlib import Path

import click

from flows.cli_output import print_rows, require_operator
from flows.cli_params import AS_OF, AS_OF_HELP, snapshot_error
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
@click.option("--wait", "wait_s", default=0.0, type=click.FloatRange(min=0), metavar="SECONDS", show_default=True,
              help="When another night holds the lake (or this site), wait up to SECONDS for it instead of exiting.")
def ingest(lake: str | None, site: str | None, quiet: bool, runner: str, address: str | None,
           workers: int | None, wait_s: float) -> None:
    """Run the nightly flow once now (every site inbox, or --site).

    One night runs per lake at a time (runs of different sites may overlap). Exit status:
    0 the night completed (bad files are quarantined, not errors), 1 it could not start (another
    night is running) or failed, 3 it stopped early because the lake's storage is full or
    unavailable (free space or wait, then run again: it continues where it stopped).
    """
    from flows.runners import check_runner, run_nightly
    from warehouse.lease import NightAlreadyRunning

    settings = get_settings(lake)
    try:
        check_runner(settings, runner, address)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Ingesting {settings.zone('inbox')} (catalog {settings.catalog_display}) ...")
    try:
        summary = run_nightly(lake=settings.lake, site=site, quiet=quiet, runner=runner, address=address,
                              workers=workers, wait_s=wait_s)
    except NightAlreadyRunning as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # a bug, not bad input: the run is recorded as failed, the log has the traceback
        raise click.ClickException(f"the night failed ({type(exc).__name__}: {str(exc)[:300]}); it is recorded "
                                   "as failed in `runs` (myomap status) and the log above has the details") from None
    _print_summary(summary)
    if summary.get("status") == "stopped":
        click.echo(f"Stopped early: {summary['message']}", err=True)
        raise SystemExit(3)


def _print_summary(s: dict) -> None:
    click.echo(f"Run {s['run_id']}: {s['files_seen']} files seen, {s['files_new']} new; "
               f"{s['ingested']} ingested, {s['quarantined']} quarantined, {s['held']} held, "
               f"{s['duplicate']} duplicate, {s['companion']} companion; {s['envelope_rows']} envelope rows; {s['seconds']} s")
    for site, out in s.get("site_outcomes", {}).items():
        if out["outcome"] != "ok":
            click.echo(f"  site {site}: {out['outcome']} ({out['reason_code']}): {out['message']}")
    for code, n in s["quarantine_reasons"].items():
        click.echo(f"  quarantined ({code}): {n}")
    if s.get("errors"):
        click.echo(f"  {s['errors']} file(s) failed with an error and stay for the next night (see above)")


@main.command()
@click.argument("query", required=False)
@_lake_option
@click.option("-f", "--file", "sql_file", type=click.Path(exists=True, dir_okay=False),
              help="Run the statements in a .sql file.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--as-of", default=None, type=AS_OF, help=AS_OF_HELP)
def sql(query: str | None, lake: str | None, sql_file: str | None, fmt: str, as_of: str | None) -> None:
    """Query the lake read-only (a query, a .sql file, or an interactive shell).

    You see what your identity may see (MYOMAP_MEMBER / MYOMAP_MEMBERS_FILE, docs/serving.md): a member
    sees their site and the sites that share with members, through views named like the tables
    (SHOW TABLES); only analysis functions are allowed, and anything else is refused ("Refused: ...").
    """
    import duckdb

    from warehouse import catalog
    from warehouse.serving import access, views
    from warehouse.settings import IdentityError, redact

    settings = get_settings(lake)
    try:
        con = access.open_member_session(settings, as_of=as_of)
    except (catalog.CatalogError, views.HardeningError, IdentityError, access.UnknownSiteError) as exc:
        raise click.ClickException(redact(str(exc), settings))
    except duckdb.Error as exc:
        raise (snapshot_error(settings, as_of, exc) if as_of else None) or \
            click.ClickException(redact(f"cannot open the lake: {str(exc).splitlines()[0]}", settings)) from None
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
    run_cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_catalog "
                                          "= ? AND table_name = 'runs'", [catalog.LAKE]).fetchall()}
    has_outcomes = {"status", "message", "site_outcomes"} <= run_cols  # lakes older than the per-site outcomes
    runs = con.execute("SELECT run_id, finished_at, files_seen, files_new, trials_ingested, quarantined, held, status"
                       f"{', message' if has_outcomes else ''} FROM runs ORDER BY started_at DESC LIMIT 5").fetchall()
    print_rows(["run_id", "finished_at", "seen", "new", "ingested", "quarantined", "held", "status"]
               + (["message"] if has_outcomes else []), runs, "table")
    if has_outcomes:
        _print_sites(con)
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
    _print_held(settings, con)
    _print_unmapped(con)
    click.echo("\nQuarantine:")
    q = con.execute("SELECT site_id, stage, reason_code, count(*) AS n, any_value(message) AS example "
                    "FROM quarantine GROUP BY ALL ORDER BY n DESC").fetchall()
    print_rows(["site", "stage", "reason_code", "n", "example"], q, "table")


def _print_held(settings, con, limit: int = 50) -> None:
    """Held files by name: why each is held and what to edit (the site's manifest, read now)."""
    from warehouse.ingest.manifest_check import explain_held

    held = con.execute("SELECT site_id, path FROM files WHERE status = 'held' ORDER BY 1, 2").fetchall()
    if not held:
        return
    click.echo(f"\nHeld files ({len(held)}; kept, waiting for a manifest to claim them):")
    rows = []
    for site in sorted({s for s, _ in held}):
        paths = [p for s, p in held if s == site]
        try:
            rows += [(site, *r) for r in explain_held(settings, site, paths)]
        except Exception as exc:  # the explanation must not take status down
            rows += [(site, p, f"could not be explained ({type(exc).__name__})", "") for p in paths]
    print_rows(["site", "file", "why held", "what to edit"], rows[:limit], "table")
    if len(rows) > limit:
        click.echo(f"  ... and {len(rows) - limit} more (SELECT site_id, path FROM files WHERE status = 'held')")


def _print_unmapped(con) -> None:
    """Channels skipped and recorded (unmapped, TODO, unknown unit): one line per site and label."""
    rows = con.execute(
        "SELECT q.site_id, substr(q.path, length(f.path) + 2) AS label, q.reason_code, count(*) AS files, "
        "any_value(q.message) AS message FROM quarantine q JOIN files f ON f.sha256 = q.sha256 AND f.site_id = "
        "q.site_id AND starts_with(q.path, f.path || '#') WHERE q.stage = 'harmonise' AND q.resolved_at IS NULL "
        "GROUP BY ALL ORDER BY 1, 2").fetchall()
    if rows:
        click.echo(f"\nChannels skipped and recorded ({len(rows)} site label(s); map them under channels: or write "
                   "ignore, then `myomap quarantine retry --site SITE`):")
        print_rows(["site", "label", "reason_code", "files", "what to do"], rows, "table")


def _print_sites(con) -> None:
    """Every site with its outcome in the last run that reached it, and why."""
    import json

    latest: dict[str, tuple] = {}
    for run_id, text in con.execute("SELECT run_id, site_outcomes FROM runs WHERE site_outcomes IS NOT NULL "
                                    "ORDER BY started_at DESC LIMIT 200").fetchall():
        for site, o in json.loads(text).items():
            latest.setdefault(site, (run_id, o))
    rows = []
    for site, (run_id, o) in sorted(latest.items()):
        counts = [f"{o.get(k, 0)} {k}" for k in ("ingested", "quarantined", "held") if o.get(k)]
        reasons = ", ".join(f"{n} {code}" for code, n in sorted(o.get("quarantine_reasons", {}).items()))
        why = o.get("message") or "; ".join(filter(None, [", ".join(counts), reasons and f"quarantined: {reasons}"]))
        rows.append((site, o["outcome"], o.get("reason_code") or "", why or "", run_id))
    click.echo("\nSites (outcome in the last run that reached them):")
    print_rows(["site", "outcome", "reason_code", "why (what and where)", "run"], rows, "table")


@main.command()
@_lake_option
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option("--subjects-per-site", default=None, type=int,
              help="Subjects at every site (default: lyon 5, boston 5, oslo 3).")
@click.option("--duration-s", default=20.0, show_default=True, help="Length of each trial.")
def demo(lake: str | None, seed: int, subjects_per_site: int, duration_s: float) -> None:
    """Generate a synthetic 3-site consortium into the inbox, ingest it, show example SQL."""
    from flows.nightly import nightly, warm_prefect_server
    from warehouse import catalog
    from warehouse.demo import generate_consortium

    settings = get_settings(lake)
    if settings.is_s3:
        raise click.ClickException("myomap demo writes a local lake; unset MYOMAP_LAKE or pass --lake DIR.")
    t0 = time.time()
    server = warm_prefect_server()  # Prefect's local server starts (~20 s) while the data are generated
    inbox = Path(settings.zone("inbox"))
    click.echo(f"Generating the demo consortium into {inbox} (seed {seed}) ...")
    truth = generate_consortium(inbox, seed=seed, subjects_per_site=subjects_per_site, duration_s=duration_s,
                                progress=lambda m: click.echo("  " + m))
    click.echo(f"Ground truth: {inbox / 'ground_truth.json'}  ({time.time() - t0:.1f} s)")
    if server is not None:
        click.echo("Waiting for Prefect's local ephemeral server ...")
        server.join()
    click.echo("Running the nightly flow ...")
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
