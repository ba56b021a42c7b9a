"""Prefect deployments of myomap: the scheduled night, one site on demand, one release on demand.

Two ways to run them (docs/operations.md):

``myomap serve``
    One long-running process (:func:`serve`) that registers the deployments with the
    Prefect API (``PREFECT_API_URL``) and runs their flow runs itself: the night at
    ``--cron`` (default ``0 2 * * *``) in ``--timezone`` (default ``Europe/Paris``,
    the consortium's time zone), the others when triggered
    (``prefect deployment run 'myomap-site/site' -p site=lyon``).
``prefect deploy --all``
    The same deployments from ``prefect.yaml`` for a work pool and its workers.

The builders below are plain functions so that tests (and ``myomap serve --dry-run``)
can read the schedules without starting anything.
"""
from __future__ import annotations

import zoneinfo

import warehouse.settings  # noqa: F401  (sets Prefect's no-telemetry variables before import)
from prefect import flow

from flows.nightly import nightly

DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "Europe/Paris"
NIGHTLY = "nightly"
SITE = "site"
RELEASE = "release"


@flow(name="myomap-site")
def site_night(site: str, lake: str | None = None, quiet: bool = True) -> dict:
    """Ingest one site's inbox now (and derive that site's trials): the night restricted to ``site``."""
    return nightly(lake=lake, site=site, quiet=quiet)


@flow(name="myomap-release")
def release(name: str, version: str, lake: str | None = None, min_cell_subjects: int = 5,
            licence: str = "CC-BY-4.0", required_consent: str = "public_release", as_of: str | None = None) -> dict:
    """Publish release ``name`` ``version`` of the cohort tables (``warehouse.serving.releases.publish``).

    Returns a small summary (path, snapshot, files) rather than the whole manifest.
    """
    from warehouse.serving import releases  # imported when the flow runs, not when deployments are built
    from warehouse.settings import get_settings

    m = releases.publish(get_settings(lake), name, version, min_cell_subjects=min_cell_subjects, licence=licence,
                         required_consent=required_consent, as_of=as_of)
    return {"name": name, "version": version, "path": m.get("path"), "snapshot_id": m.get("snapshot_id"),
            "files": [f.get("file") for f in m.get("files", []) if isinstance(f, dict)]}


def check_schedule(cron: str, timezone: str) -> None:
    """Raise ValueError for a cron expression or IANA time zone Prefect would not accept."""
    from prefect.client.schemas.schedules import CronSchedule

    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Paris)") from exc
    try:
        CronSchedule(cron=cron, timezone=timezone)
    except Exception as exc:  # pydantic's ValidationError
        errors = getattr(exc, "errors", lambda: [])()
        why = errors[0].get("msg", "") if errors else str(exc).splitlines()[0]
        raise ValueError(f"invalid cron expression {cron!r}: {why}") from exc


def nightly_deployment(*, timezone: str = DEFAULT_TIMEZONE, cron: str = DEFAULT_CRON, lake: str | None = None,
                       name: str = NIGHTLY, paused: bool = False):
    """The scheduled night: every site inbox at ``cron`` in ``timezone`` (a RunnerDeployment)."""
    from prefect.schedules import Cron

    check_schedule(cron, timezone)
    return nightly.to_deployment(
        name=name, schedules=[Cron(cron, timezone=timezone)], paused=paused, concurrency_limit=1,
        parameters={"lake": lake, "quiet": True},
        description=f"Every site inbox, every new file, derived and cohort tables; {cron} ({timezone}).",
        tags=["myomap", "nightly"])


def site_deployment(*, lake: str | None = None, name: str = SITE):
    """One site on demand (parameter ``site``); no schedule."""
    return site_night.to_deployment(name=name, parameters={"lake": lake, "quiet": True},
                                    description="Ingest one site's inbox now: -p site=<site>.",
                                    tags=["myomap", "on-demand"])


def release_deployment(*, lake: str | None = None, name: str = RELEASE):
    """One release on demand (parameters ``name``, ``version``...); no schedule."""
    return release.to_deployment(name=name, parameters={"lake": lake},
                                 description="Publish a versioned release: -p name=<name> -p version=<version>.",
                                 tags=["myomap", "on-demand"])


def deployments(*, timezone: str = DEFAULT_TIMEZONE, cron: str = DEFAULT_CRON, lake: str | None = None) -> list:
    """Every myomap deployment, as served by :func:`serve`."""
    return [nightly_deployment(timezone=timezone, cron=cron, lake=lake), site_deployment(lake=lake),
            release_deployment(lake=lake)]


def describe(deps: list) -> list[str]:
    """One line per deployment: ``flow/deployment: schedule`` (for ``--dry-run`` and logs)."""
    lines = []
    for d in deps:
        scheds = [f"cron '{s.schedule.cron}' ({s.schedule.timezone})" for s in d.schedules or []]
        lines.append(f"{d.flow_name}/{d.name}: {', '.join(scheds) or 'on demand'}")
    return lines


def serve(*, timezone: str = DEFAULT_TIMEZONE, cron: str = DEFAULT_CRON, lake: str | None = None,
          limit: int | None = None) -> None:  # pragma: no cover - runs until interrupted
    """Register the deployments and run their flow runs in this process until Ctrl-C."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments(timezone=timezone, cron=cron, lake=lake), limit=limit)


def serve_command(*, lake: str | None, cron: str, timezone: str, limit: int | None, dry_run: bool) -> None:
    """Body of ``myomap serve``: list the deployments, then serve them (needs a Prefect server)."""
    import click

    try:
        deps = deployments(timezone=timezone, cron=cron, lake=lake)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for line in describe(deps):
        click.echo(line)
    if dry_run:
        return
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise click.ClickException("myomap serve needs a Prefect server: run `prefect server start` and set "
                                   "PREFECT_API_URL (e.g. http://127.0.0.1:4200/api).")
    serve(timezone=timezone, cron=cron, lake=lake, limit=limit)


def register(main) -> None:
    """Add ``myomap serve`` to the click group ``main``.

    Importing this module imports Prefect and the nightly flow (~2 s): ``flows/cli.py``
    declares the same command itself and imports this module only when ``serve`` runs.
    """
    import click

    @main.command("serve")
    @click.option("--lake", default=None, metavar="PATH|s3://",
                  help="Lake root passed to every flow run (default: the worker's $MYOMAP_LAKE or ./lake).")
    @click.option("--cron", default=DEFAULT_CRON, show_default=True, help="When the night runs.")
    @click.option("--timezone", "timezone", default=DEFAULT_TIMEZONE, show_default=True,
                  help="IANA time zone of --cron (the consortium's).")
    @click.option("--limit", default=None, type=int, help="At most this many flow runs at once.")
    @click.option("--dry-run", is_flag=True, help="Print the deployments and their schedules, then exit.")
    def serve_cmd(lake, cron, timezone, limit, dry_run) -> None:
        """Serve the nightly, per-site and release deployments (needs PREFECT_API_URL: a Prefect server)."""
        serve_command(lake=lake, cron=cron, timezone=timezone, limit=limit, dry_run=dry_run)
