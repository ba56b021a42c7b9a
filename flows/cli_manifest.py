"""`myomap manifest init|check|schema`: scaffold a site's manifest.yaml from the files in its inbox, check
it against the inbox (a dry run), print its JSON Schema."""
from __future__ import annotations

import click

from warehouse.settings import get_settings


@click.group()
def manifest() -> None:
    """Site manifests (inbox/<site>/manifest.yaml): subjects, sessions, channel map."""


@manifest.command()
@click.argument("site")
@click.option("--lake", default=None, metavar="PATH|s3://", help="Lake root (default: $MYOMAP_LAKE or ./lake).")
@click.option("--force", is_flag=True, help="Overwrite an existing manifest.yaml.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the manifest instead of writing it.")
@click.option("--max-files", default=None, type=click.IntRange(min=1),
              help="Read at most this many data files for channel labels (default: all).")
def init(site: str, lake: str | None, force: bool, to_stdout: bool, max_files: int | None) -> None:
    """Scaffold inbox/SITE/manifest.yaml from the files present.

    Sessions are guessed from the paths (one per subject and condition), channel labels are
    read from the files: labels the vocabulary resolves are listed as comments, the others
    become `channels:` entries with `muscle: TODO`. Fill every TODO, then `myomap ingest --site SITE`.
    """
    from warehouse import zones
    from warehouse.ingest.manifest_init import render_manifest, survey_site

    settings = get_settings(lake)
    fs = zones.filesystem(settings)
    folder = zones.inbox(settings, site)
    if not fs.exists(folder):
        raise click.ClickException(f"Site '{site}' has no inbox folder ({folder}); drop its files there first.")
    target = f"{folder}/manifest.yaml"
    if not to_stdout and not force and (fs.exists(target) or fs.exists(f"{folder}/manifest.yml")):
        raise click.ClickException(f"{target} (or manifest.yml) already exists; use --force to overwrite it "
                                   "or --stdout to print the scaffold.")
    sv = survey_site(settings, site, max_files=max_files)
    if not sv.data_files:
        raise click.ClickException(f"Site '{site}' has no data files in {folder}: nothing to scaffold from.")
    text = render_manifest(sv)
    if to_stdout:
        click.echo(text, nl=False)
        return
    with fs.open(target, "w") as fh:
        fh.write(text)
    click.echo(f"Wrote {target}: {len(sv.subjects)} subject(s), {len(sv.sessions)} session(s), "
               f"{len(sv.resolved)} channel label(s) resolved, {len(sv.unresolved)} to map (muscle: TODO), "
               f"{len(sv.failed)} unreadable file(s), {len(sv.unassigned)} file(s) without a subject.")
    click.echo(f"Fill every TODO, then run: myomap ingest --site {site}")


@manifest.command()
@click.argument("site")
@click.option("--lake", default=None, metavar="PATH|s3://", help="Lake root (default: $MYOMAP_LAKE or ./lake).")
@click.option("--no-read", is_flag=True, help="Do not open the data files (manifest and globs only).")
@click.option("--max-files", default=None, type=click.IntRange(min=1),
              help="Read at most this many data files for channel labels (default: all).")
@click.option("--verbose", "-v", is_flag=True, help="Also list the channel labels judged not EMG, with why.")
def check(site: str, lake: str | None, no_read: bool, max_files: int | None, verbose: bool) -> None:
    """Dry run: check inbox/SITE/manifest.yaml against the site's files, nothing written.

    Lists every manifest problem at once (unknown keys with "did you mean", numbers, dates,
    subjects of sessions, globs that match no file, files no glob claims), then which session and
    subject claim each file, then what each channel label becomes (muscle and side, and from where:
    manifest, alias, description) or why it is unresolved, ignored or not EMG. No Prefect server,
    no catalog. Exit status 0 when there is no error (warnings allowed), 1 otherwise.
    """
    from warehouse import zones
    from warehouse.ingest.manifest_check import check_site, render

    settings = get_settings(lake)
    fs = zones.filesystem(settings)
    if not fs.exists(zones.inbox(settings, site)):
        raise click.ClickException(f"Site '{site}' has no inbox folder ({zones.inbox(settings, site)}).")
    rep = check_site(settings, site, read_files=not no_read, max_files=max_files)
    click.echo(render(rep, verbose=verbose), nl=False)
    if rep.errors:
        raise SystemExit(1)


@manifest.command()
def schema() -> None:
    """Print the manifest's JSON Schema (the same as docs/manifest.schema.json), for editors."""
    import json

    from schemas.manifest_schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


def register(main: click.Group) -> None:
    main.add_command(manifest)
