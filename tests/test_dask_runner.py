"""Scale-out: the per-trial transforms on a Dask cluster give the same tables as the default runner.

Depends on the flows/nightly.py change that submits the per-trial tasks when
``nightly(..., fan_out=True)`` (flows/runners.py passes it for every runner but ``default``).
"""
from __future__ import annotations

import pytest

from flows.nightly import run_night
from flows.runners import check_runner, make_task_runner, run_nightly
from schemas.contracts import TABLES
from warehouse import catalog
from warehouse.demo import generate_consortium
from warehouse.settings import get_settings

#: Per-trial outputs of the two fanned-out tasks, then the cohort tables built from them.
COMPARED = ("emg_envelopes", "gait_events", "gait_cycles", "activation_onsets", "emg_cycle_metrics",
            "co_contraction", "emg_spectra", "analysis_exclusions", "asymmetry", "variability", "fatigue",
            "activation_map", "subject_profiles", "cohort_asymmetry", "cohort_variability")


def table_digest(con, table: str) -> tuple[int, str]:
    """(rows, md5 of every row in primary-key order); floats rounded to 9 significant digits."""
    cols = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = 'lake' "
                       "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    exprs = []
    for name, dtype in cols:
        if "TIMESTAMP" in dtype or name == "run_id":
            continue
        q = f'"{name}"'
        if dtype in ("DOUBLE", "FLOAT", "REAL"):
            q = f"CASE WHEN {q} = 0 OR NOT isfinite({q}) THEN {q}::VARCHAR ELSE " \
                f"printf('%.9g', {q}) END"
        exprs.append(f"coalesce(({q})::VARCHAR, '∅')")
    order = ", ".join(f'"{k}"' for k in TABLES[table].primary_key)
    n, digest = con.execute(f"SELECT count(*), md5(coalesce(string_agg(concat_ws('|', {', '.join(exprs)}), "
                            f"'\n' ORDER BY {order}), '')) FROM {table}").fetchone()
    return n, digest


def digests(settings) -> dict[str, tuple[int, str]]:
    con = catalog.connect(settings, read_only=True)
    try:
        return {t: table_digest(con, t) for t in COMPARED}
    finally:
        con.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A demo consortium (3 sites x 1 subject x 2 conditions) processed by the default, sequential runner."""
    root = tmp_path_factory.mktemp("ref") / "lake"
    generate_consortium(root / "inbox", seed=11, subjects_per_site=1, duration_s=5.0)
    s = run_night(str(root), quiet=True)
    assert s["ingested"] == 6 and s["trials_derived"] == 6 and not s.get("analysis_errors"), s
    return digests(get_settings(str(root)))


def test_dask_runner_gives_the_same_tables_as_the_default_runner(prefect_harness, tmp_path, reference):
    root = tmp_path / "lake"
    generate_consortium(root / "inbox", seed=11, subjects_per_site=1, duration_s=5.0)
    s = run_nightly(str(root), quiet=True, runner="dask", workers=2)
    assert s["ingested"] == 6 and s["trials_derived"] == 6 and not s.get("analysis_errors"), s
    assert s["envelope_rows"] == reference["emg_envelopes"][0]
    got = digests(get_settings(str(root)))
    assert all(reference[t][0] > 0 for t in ("emg_envelopes", "activation_onsets", "emg_cycle_metrics",
                                                "gait_cycles", "activation_map"))
    diff = {t: (reference[t], got[t]) for t in COMPARED if reference[t] != got[t]}
    assert not diff, diff
    # the per-trial tasks ran as Prefect task runs of this flow run (on the Dask workers)
    from prefect import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    async def names():
        async with get_client() as client:
            runs = await client.read_task_runs(task_run_filter=TaskRunFilter(
                name=TaskRunFilterName(like_="envelopes")))
            return [r for r in runs if r.state and r.state.is_completed()]
    import asyncio
    assert len(asyncio.run(names())) >= 6


def test_runner_choices_are_checked(tmp_path):
    sqlite_lake = get_settings(str(tmp_path / "lake"))
    pg_lake = get_settings(str(tmp_path / "lake"), "postgresql://u@127.0.0.1:5/db")
    with pytest.raises(ValueError, match="unknown runner"):
        make_task_runner("ray")
    with pytest.raises(ValueError, match="--runner dask"):
        make_task_runner("threads", "tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="one process"):
        check_runner(sqlite_lake, "threads")
    with pytest.raises(ValueError, match="one process"):
        check_runner(sqlite_lake, "dask", processes=False)
    with pytest.raises(ValueError, match="postgresql://"):
        check_runner(sqlite_lake, "dask", "tcp://127.0.0.1:8786")
    check_runner(sqlite_lake, "dask")  # local worker processes: fine
    check_runner(pg_lake, "threads")
    check_runner(pg_lake, "dask", "tcp://127.0.0.1:8786")
    assert make_task_runner("default") is None
    r = make_task_runner("dask", workers=3)
    assert r.cluster_kwargs["n_workers"] == 3 and r.cluster_kwargs["host"] == "127.0.0.1"
    assert make_task_runner("dask", "tcp://127.0.0.1:8786").address == "tcp://127.0.0.1:8786"


def test_ingest_command_refuses_threads_on_a_sqlite_catalog(tmp_path):
    """Depends on the flows/cli.py change adding --runner/--address/--workers to `myomap ingest`."""
    from click.testing import CliRunner

    from flows.cli import main

    r = CliRunner().invoke(main, ["ingest", "--lake", str(tmp_path / "lake"), "--runner", "threads"])
    assert r.exit_code != 0 and "SQLite catalog" in r.output
    assert not (tmp_path / "lake").exists()
