"""``myomap extract | publish | releases | report``: serving the lake to members and the public.

Thin wiring over :mod:`warehouse.serving.extracts`, :mod:`warehouse.serving.releases` and
:mod:`warehouse.serving.report`. ``flows/cli.py`` adds the commands with
``register(main)``. Every expected failure is a :class:`click.ClickException`
(one clear line, no traceback).
"""
from __future__ import annotations

import functools

import click

from flows.cli_params import AS_OF, AS_OF_HELP, snapshot_error
from warehouse.serving.cohort_filter import grammar_help
from warehouse.settings import get_settings  # sets Prefect's offline variables first

_COHORT_HELP = grammar_help()
#: warehouse.serving.extracts.DEFAULT_TABLES as --help shows it (not imported here: that costs 2 s per command;
#: tests/test_api.py checks the two agree).
_DEFAULT_TABLES = ("sites, subjects, sessions, trials, emg_channels, activation_onsets, emg_cycle_metrics, "
                   "asymmetry, variability, fatigue, subject_profiles")


def _lake_option(f):
    return click.option("--lake", default=None, metavar="PATH|s3://",
                        help="Lake root (default: $MYOMAP_LAKE or ./lake).")(f)


def _clear_errors(fn):
    """Turn the expected errors of the serving modules into one-line ClickExceptions."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import duckdb

        from warehouse import catalog
        from warehouse.serving import access, extracts, releases, views
        from warehouse.serving.cohort_filter import CohortFilterError
        from warehouse.serving.edf_write import WriteError
        from warehouse.settings import IdentityError, redact

        settings = get_settings(kwargs.get("lake"))
        try:
            return fn(*args, **kwargs)
        except CohortFilterError as exc:
            raise click.ClickException(f"--cohort: {exc}") from None
        except (extracts.ExtractError, releases.ReleaseError, catalog.CatalogError, IdentityError,
                access.UnknownSiteError, views.HardeningError, WriteError) as exc:
            raise click.ClickException(redact(str(exc), settings)) from None
        except duckdb.Error as exc:
            as_of = kwargs.get("as_of")
            raise (snapshot_error(settings, as_of, exc) if as_of else None) or \
                click.ClickException(redact(f"lake error: {str(exc).splitlines()[0]}", settings)) from None
        except OSError as exc:
            raise click.ClickException(redact(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
                                              settings)) from None
    return wrapper


@click.command()
@_lake_option
@click.option("--cohort", default=None, help=_COHORT_HELP)
@click.option("--tables", "--table", "tables", multiple=True, metavar="TABLE[,TABLE...]",
              help=f"Tables to extract, comma-separated or repeated (default: {_DEFAULT_TABLES}). "
                   "Not with --format bids.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "bids"]), default="parquet", show_default=True,
              help="parquet, csv (UTF-8, '.' decimals, ISO dates in any locale) or bids: an EMG-BIDS + Motion-BIDS "
                   "dataset (raw EMG as BDF+, markers, gait events; onsets and cycles under derivatives/myomap).")
@click.option("--out", "out_dir", required=True, help="New output folder (local or s3://).")
@click.option("--requester-site", default=None, metavar="SITE",
              help="Extract as a member of SITE (default: your identity, see docs/serving.md). A member may only "
                   "name their own site; an operator may name any. Other sites' data only when not embargoed "
                   "and consented.")
@click.option("--consent-scope", default="pooled_analysis", show_default=True,
              help="Consent scope other sites must have granted.")
@click.option("--as-of", default=None, type=AS_OF, help=AS_OF_HELP + " Default: the current snapshot.")
@_clear_errors
def extract(lake, cohort, tables, fmt, out_dir, requester_site, consent_scope, as_of) -> None:
    """Write a cohort extract: one file per table + manifest.json (filter, snapshot, sha256, rules applied),
    or with --format bids a BIDS dataset of the cohort's raw EMG, markers and events.

    You extract what your identity may see (MYOMAP_MEMBER / MYOMAP_MEMBERS_FILE). files, quarantine, runs,
    derivations and validations are never extracted: only pseudonyms leave the lake. --out must be outside
    the lake. Python: myomap.open().extract(...) does the same (docs/api.md).
    """
    from warehouse.serving import extracts

    default = () if fmt == "bids" else extracts.DEFAULT_TABLES
    names = [t.strip() for v in (tables or default) for t in v.split(",") if t.strip()]
    def progress(message: str) -> None:  # BIDS exports write one run after the other
        click.echo(f"\r  writing {message} ...", nl=False, err=True)

    m = extracts.extract(get_settings(lake), cohort=cohort, tables=names, fmt=fmt, out_dir=out_dir,
                         requester_site=requester_site, required_scope=consent_scope, as_of=as_of,
                         progress=progress if fmt == "bids" else None)
    if fmt == "bids":
        click.echo("", err=True)
    click.echo(f"Extract at snapshot {m['snapshot_id']}: {m['cohort']['subjects']} subjects, "
               f"{m['cohort']['sessions']} sessions -> {out_dir}")
    if fmt == "bids":
        click.echo(f"  BIDS dataset: {m['notes']['bids_runs']} runs, {m['notes']['bids_data_files']} data files, "
                   f"{len(m['files'])} files in all")
    for f in m["files"] if fmt != "bids" else []:
        click.echo(f"  {f['file']}: {f['rows']} rows")
    for d in m["sharing"]["excluded_sites"]:
        click.echo(f"  excluded site {d['site_id']}: {'; '.join(d['reasons'])}")


@click.command()
@click.argument("name")
@click.argument("version_arg", metavar="[VERSION]", required=False)
@click.option("--version", "version_opt", default=None, help="Release version (or give it as the 2nd argument).")
@_lake_option
@click.option("--min-cell-subjects", default=5, show_default=True, type=click.IntRange(1),
              help="Cohort cells with fewer subjects are suppressed.")
@click.option("--licence", default="CC-BY-4.0", show_default=True, help="SPDX licence id.")
@click.option("--consent-scope", default="public_release", show_default=True,
              help="Consent scope a site must have granted to appear in the release.")
@click.option("--as-of", default=None, type=AS_OF, help=AS_OF_HELP + " Default: the current snapshot.")
@_clear_errors
def publish(name, version_arg, version_opt, lake, min_cell_subjects, licence, consent_scope, as_of) -> None:
    """Publish release NAME --version V to <lake>/releases/NAME/V (never overwritten; operators only).

    The release policy of the consent scope decides what goes in (docs/serving.md): small cells
    suppressed with complementary suppression, per-subject rows only where consent allows them.
    """
    if (version_arg is None) == (version_opt is None):
        raise click.UsageError("give the version once: `myomap publish NAME --version V`")
    version = version_arg or version_opt
    from flows.cli_output import require_operator
    from warehouse.serving import releases

    require_operator(get_settings(lake), "myomap publish")

    m = releases.publish(get_settings(lake), name, version, min_cell_subjects=min_cell_subjects, licence=licence,
                         required_consent=consent_scope, as_of=as_of)
    click.echo(f"Published {name} {version} (snapshot {m['snapshot_id']}) at {m['path']}")
    for f in m["files"]:
        if f["kind"] == "data":
            click.echo(f"  {f['file']}: {f['rows']} rows")
    for d in m["sharing"]["excluded_sites"]:
        click.echo(f"  excluded site {d['site_id']}: {'; '.join(d['reasons'])}")


@click.command("releases")
@_lake_option
def releases_cmd(lake) -> None:
    """List the published releases (and, on stderr, folders of the release area that are not releases)."""
    from flows.cli_output import print_rows
    from warehouse.serving import releases

    found, problems = releases.scan_releases(get_settings(lake))
    rows = [(r["name"], r["version"], r["created_at"], r["snapshot_id"], r["licence"], r["rows"]) for r in found]
    print_rows(["name", "version", "created_at", "snapshot", "licence", "rows"], rows, "table")
    for p in problems:
        click.echo(f"not a release: {p['path']}: {p['problem']}", err=True)


@click.command()
@click.argument("out_arg", metavar="[OUT]", required=False, type=click.Path(dir_okay=False))
@click.option("--out", "out_opt", default=None, type=click.Path(dir_okay=False), help="Output HTML file.")
@_lake_option
@click.option("--cohort", default=None, help=_COHORT_HELP)
@click.option("--requester-site", default=None, metavar="SITE",
              help="Report as a member of SITE (as for extract: your own site, or any site for operators).")
@click.option("--consent-scope", default="pooled_analysis", show_default=True)
@click.option("--as-of", default=None, type=AS_OF, help=AS_OF_HELP)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@_clear_errors
def report(out_arg, out_opt, lake, cohort, requester_site, consent_scope, as_of, force) -> None:
    """Render a self-contained HTML report (channel QC beside activation maps, onset timing in ms and % cycle, gait summary per side, asymmetry, variability, subjects).

    An existing OUT is never replaced unless --force is given.
    """
    import os

    out = out_opt or out_arg
    if not out:
        raise click.UsageError("give the output file: `myomap report --out report.html`")
    if os.path.lexists(out) and not force:
        raise click.ClickException(f"{out} exists: choose another --out, or add --force to replace it.")
    if os.path.isdir(out):
        raise click.ClickException(f"{out} is a folder: give a file name, e.g. {os.path.join(out, 'report.html')}.")
    from warehouse.serving.report import render_report

    info = render_report(get_settings(lake), out, cohort=cohort, requester_site=requester_site,
                         required_scope=consent_scope, as_of=as_of)
    click.echo(f"Report at snapshot {info['snapshot_id']}: {info['figures']} figures, "
               f"{info['subjects']} subjects -> {out}")


def register(main: click.Group) -> None:
    """Add extract, publish, releases and report to the ``myomap`` group."""
    for cmd in (extract, publish, releases_cmd, report):
        main.add_command(cmd)
