"""`myomap manifest init <site>`: scaffold a site's manifest.yaml from the files in its inbox."""
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


def register(main: click.Group) -> None:
    main.add_command(manifest)
