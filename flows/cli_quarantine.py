"""`myomap quarantine list|show|retry`: what was refused, why, and how to retry after a fix."""
from __future__ import annotations

import click

from flows.cli_output import require_operator
from warehouse.settings import get_settings


def _ro(lake):
    from warehouse import catalog

    settings = get_settings(lake)
    try:
        con = catalog.connect(settings, read_only=True)
    except catalog.CatalogError as exc:
        raise click.ClickException(str(exc))
    try:
        require_operator(settings, "myomap quarantine (it shows inbox paths)")
    except click.ClickException:
        con.close()
        raise
    return con


@click.group()
def quarantine() -> None:
    """Inspect quarantined files and channels, and retry them after fixing the cause."""


@quarantine.command("list")
@click.option("--lake", default=None, help="Lake root (default: $MYOMAP_LAKE or ./lake).")
@click.option("--site", default=None, help="Only this site.")
@click.option("--all", "show_all", is_flag=True, help="Include records already resolved by a retry.")
def list_(lake, site, show_all) -> None:
    """One line per quarantine record: sha256 prefix, site, path, stage, reason."""
    from flows.cli_output import print_rows

    con = _ro(lake)
    where = ["(? IS NULL OR site_id = ?)"] + ([] if show_all else ["resolved_at IS NULL"])
    rows = con.execute(f"SELECT left(sha256, 12), site_id, path, stage, reason_code, resolved_at IS NOT NULL "
                       f"FROM quarantine WHERE {' AND '.join(where)} ORDER BY site_id, path", [site, site]).fetchall()
    print_rows(["sha256", "site", "path", "stage", "reason_code", "resolved"], rows, "table")


@quarantine.command()
@click.argument("key")
@click.option("--lake", default=None, help="Lake root.")
def show(key, lake) -> None:
    """Full record(s) for a sha256 prefix or a path: what is wrong and what to do."""
    con = _ro(lake)
    rows = con.execute("SELECT sha256, site_id, path, stage, reason_code, message, quarantined_at, raw_path, "
                       "resolved_at FROM quarantine WHERE sha256 LIKE ? || '%' OR path = ? ORDER BY quarantined_at",
                       [key, key]).fetchall()
    if not rows:
        raise click.ClickException(f"No quarantine record matches '{key}'.")
    for sha, site, path, stage, code, msg, at, raw, res in rows:
        click.echo(f"{site}/{path}\n  sha256      {sha}\n  stage       {stage}\n  reason      {code}\n"
                   f"  when        {at}\n  kept at     {raw}\n  resolved    {res or 'no'}\n  what to do  {msg}\n")


@quarantine.command()
@click.argument("key", required=False)
@click.option("--lake", default=None, help="Lake root.")
@click.option("--site", default=None, help="Retry every unresolved file of this site.")
@click.option("--all", "retry_all", is_flag=True, help="Retry every unresolved quarantined file.")
def retry(key, lake, site, retry_all) -> None:
    """Re-process quarantined files (after fixing the manifest or upgrading a reader).

    KEY is a sha256 prefix or a path. The original bytes are taken from the inbox, or from
    the raw zone when the inbox copy is gone: nothing needs re-uploading.
    """
    from warehouse import lease
    from warehouse.ingest import steps

    if not (key or site or retry_all):
        raise click.UsageError("give a KEY, --site S or --all")
    settings = get_settings(lake)
    require_operator(settings, "myomap quarantine retry")
    run_id = "retry-" + steps.now().strftime("%Y%m%dT%H%M%SZ")
    try:
        with lease.night_lease(settings, run_id=run_id):  # a retry writes like a night: never beside one
            _retry(settings, key, site, retry_all, run_id)
    except lease.NightAlreadyRunning as exc:
        raise click.ClickException(f"{exc} Retry when it has finished.") from None


def _retry(settings, key, site, retry_all, run_id) -> None:
    from flows.nightly import run_derivations
    from warehouse import catalog
    from warehouse.ingest import steps

    con = catalog.connect(settings)
    targets = con.execute(
        "SELECT DISTINCT f.site_id, f.path FROM files f JOIN quarantine q ON q.sha256 = f.sha256 AND "
        "q.site_id = f.site_id AND (q.path = f.path OR q.path LIKE f.path || '#%') "
        "WHERE f.status IN ('quarantined', 'ingested') AND q.resolved_at IS NULL AND "
        "(? OR f.site_id = ? OR f.sha256 LIKE ? || '%' OR f.path = ? OR q.path = ?)",
        [retry_all, site, key or "\x00", key or "\x00", key or "\x00"]).fetchall()
    if not targets:
        raise click.ClickException("Nothing to retry: no unresolved quarantined file matches.")
    catalog.write_atomically(settings, con, lambda c: [c.execute(
        "UPDATE files SET status = 'held' WHERE site_id = ? AND path = ? AND status IN ('quarantined', 'ingested')",
        [s, p])
        for s, p in targets], what="reset for retry")
    con.close()
    for s, p in targets:
        r = steps.process_file(settings, s, p, run_id)
        click.echo(f"{s}/{p}: {r['outcome']}{' (' + r['reason'] + ')' if r.get('reason') else ''}")
    run_derivations(settings.lake, quiet=False)


def register(main: click.Group) -> None:
    main.add_command(quarantine)
