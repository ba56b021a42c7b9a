"""Deployments: the night's schedule (cron, time zone), prefect.yaml agreeing with the code,
the on-demand site and release flows, and `myomap serve --dry-run` (no server, nothing runs forever)."""
from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from flows import deployments as d
from flows.nightly import nightly

REPO = Path(__file__).resolve().parents[1]


def _cron(dep):
    (sched,) = dep.schedules
    return sched.schedule.cron, sched.schedule.timezone, sched.active


def _next_runs(cron: str, tz: str, start: dt.datetime, n: int = 2) -> list[dt.datetime]:
    from prefect.server.schemas.schedules import CronSchedule

    return asyncio.run(CronSchedule(cron=cron, timezone=tz).get_dates(n=n, start=start))


def test_nightly_deployment_runs_at_two_in_the_consortium_time_zone(monkeypatch):
    monkeypatch.chdir(REPO)
    dep = d.nightly_deployment()
    assert (dep.name, dep.flow_name, dep.entrypoint) == ("nightly", "myomap-nightly", "flows/nightly.py:nightly")
    assert _cron(dep) == ("0 2 * * *", "Europe/Paris", True)
    assert dep.parameters == {"lake": None, "quiet": True}
    assert not dep.paused
    # 02:00 Paris time is 00:00 UTC in summer and 01:00 UTC in winter
    summer = _next_runs(*_cron(dep)[:2], start=dt.datetime(2026, 7, 1, 12, tzinfo=dt.timezone.utc))
    winter = _next_runs(*_cron(dep)[:2], start=dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc))
    assert [x.astimezone(dt.timezone.utc).isoformat() for x in summer] == [
        "2026-07-02T00:00:00+00:00", "2026-07-03T00:00:00+00:00"]
    assert [x.astimezone(dt.timezone.utc).isoformat() for x in winter] == [
        "2026-12-02T01:00:00+00:00", "2026-12-03T01:00:00+00:00"]


def test_schedule_can_be_changed_and_is_checked():
    dep = d.nightly_deployment(timezone="America/New_York", cron="30 1 * * 1-5", lake="s3://bucket/lake")
    assert _cron(dep) == ("30 1 * * 1-5", "America/New_York", True)
    assert dep.parameters["lake"] == "s3://bucket/lake"
    with pytest.raises(ValueError, match="time zone"):
        d.nightly_deployment(timezone="Europe/Atlantis")
    with pytest.raises(ValueError, match="cron"):
        d.nightly_deployment(cron="61 2 * * *")


def test_on_demand_deployments_have_no_schedule_and_take_their_parameters(monkeypatch):
    monkeypatch.chdir(REPO)
    nightly_dep, site_dep, release_dep = d.deployments()
    assert [x.name for x in (nightly_dep, site_dep, release_dep)] == ["nightly", "site", "release"]
    assert site_dep.schedules == [] and release_dep.schedules == []
    assert site_dep.entrypoint == "flows/deployments.py:site_night"
    assert release_dep.entrypoint == "flows/deployments.py:release"
    # the parameters a caller must give: site; name + version
    site_params = inspect.signature(d.site_night.fn).parameters
    assert site_params["site"].default is inspect.Parameter.empty
    rel_params = inspect.signature(d.release.fn).parameters
    assert [p for p, v in rel_params.items() if v.default is inspect.Parameter.empty] == ["name", "version"]
    assert d.describe([nightly_dep, site_dep, release_dep]) == [
        "myomap-nightly/nightly: cron '0 2 * * *' (Europe/Paris)", "myomap-site/site: on demand",
        "myomap-release/release: on demand"]


def test_release_flow_calls_the_release_publisher(lake):
    from warehouse import catalog
    from warehouse.serving import releases

    catalog.connect(lake).close()  # an empty lake: publish refuses with its own error
    with pytest.raises(releases.ReleaseError, match="no site can be released"):
        d.release.fn("cohort", "1.0.0", lake=lake.lake)


def test_prefect_yaml_matches_the_served_deployments(monkeypatch):
    """prefect.yaml (for `prefect deploy`) validates with Prefect's own model and agrees with the code."""
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(REPO)
    raw = yaml.safe_load((REPO / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)
    by_name = {x.name: x for x in model.deployments}
    served = {x.name: x for x in d.deployments()}
    assert set(by_name) == set(served) == {"nightly", "site", "release"}
    for name, cfg in by_name.items():
        assert cfg.entrypoint == served[name].entrypoint
        flow = load_flow_from_entrypoint(cfg.entrypoint)
        assert flow.name == served[name].flow_name
        # every parameter set in the file is a parameter of the flow
        assert set(cfg.parameters) <= set(inspect.signature(flow.fn).parameters), name
        assert cfg.work_pool.name == "myomap"
    (sched,) = by_name["nightly"].schedules
    built = _schedule_config_to_deployment_schedule(sched.model_dump(exclude_unset=True))
    assert (built["schedule"].cron, built["schedule"].timezone) == (d.DEFAULT_CRON, d.DEFAULT_TIMEZONE)
    assert by_name["nightly"].concurrency_limit == served["nightly"].concurrency_limit == 1
    assert not by_name["site"].schedules and not by_name["release"].schedules
    assert load_flow_from_entrypoint("flows/nightly.py:nightly").name == nightly.name


def _cli():
    @click.group()
    def main():
        pass
    d.register(main)
    return main


def test_serve_command_dry_run_and_errors():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    r = CliRunner().invoke(_cli(), ["serve", "--dry-run", "--timezone", "Europe/Oslo", "--cron", "15 3 * * *"])
    assert r.exit_code == 0, r.output
    assert "myomap-nightly/nightly: cron '15 3 * * *' (Europe/Oslo)" in r.output
    assert "myomap-site/site: on demand" in r.output and "myomap-release/release: on demand" in r.output
    r = CliRunner().invoke(_cli(), ["serve", "--dry-run", "--timezone", "Paris"])
    assert r.exit_code != 0 and "unknown time zone 'Paris'" in r.output
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # no server: a clear error, not a hang
        r = CliRunner().invoke(_cli(), ["serve"])
    assert r.exit_code != 0 and "PREFECT_API_URL" in r.output


def test_myomap_serve_is_a_command_of_the_cli_with_the_same_defaults():
    """Depends on the flows/cli.py change that declares `myomap serve` (importing Prefect only when it runs)."""
    from flows.cli import main

    assert "serve" in main.commands
    r = CliRunner().invoke(main, ["serve", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert f"myomap-nightly/nightly: cron '{d.DEFAULT_CRON}' ({d.DEFAULT_TIMEZONE})" in r.output
