"""Task runners for the nightly flow: run the per-trial transforms one by one, on threads, or on Dask.

The night has two halves. Ingest (scan a site inbox, register, read, harmonise and
commit each file) stays in the flow process, file after file. The per-trial
transforms (``envelopes`` and ``analyse-trial``: filtering, onsets, cycle metrics,
spectra) are independent across trials and take most of the CPU: with a runner
other than ``default`` they are submitted to the flow's task runner all at once
(``nightly(..., fan_out=True)``). Tasks take and return small keys (lake path,
trial id -> row counts): every worker reads its inputs from the lake and commits
its own DuckLake transaction, so nothing large crosses the network.

Runners
-------
``default``
    Prefect's default runner; trials run one after the other (the reference).
``threads``
    ``ThreadPoolTaskRunner(max_workers=workers)`` in the flow process (PostgreSQL
    catalog only: parallel writers in one process deadlock on SQLite's file locks).
``dask``
    ``prefect_dask.DaskTaskRunner``: a ``distributed.LocalCluster`` of ``workers``
    single-threaded worker processes on 127.0.0.1, or an existing cluster at
    ``address`` (``tcp://scheduler:8786``; needs a PostgreSQL catalog).

With a remote cluster every Dask worker runs Prefect's task engine: it must reach the
same lake (same ``MYOMAP_LAKE``/``MYOMAP_CATALOG``/``AWS_*`` values, which in
practice means an ``s3://`` lake and a ``postgresql://`` catalog), have this package
installed, and talk to the same Prefect API as the flow (``PREFECT_API_URL``, e.g.
``http://prefect-host:4200/api``), or its task runs are not recorded with the flow
run. See docs/operations.md.
"""
from __future__ import annotations

import warehouse.settings  # noqa: F401  (sets Prefect's no-telemetry variables before import)

RUNNERS = ("default", "threads", "dask")
DEFAULT_WORKERS = 2


def make_task_runner(runner: str = "default", address: str | None = None, *, workers: int | None = None,
                     processes: bool = True):
    """A Prefect task runner for ``runner``, or ``None`` for the flow's default.

    Parameters
    ----------
    runner : str
        ``default``, ``threads`` or ``dask``.
    address : str, optional
        Dask scheduler address (``tcp://host:8786``); ``None`` starts a local cluster
        for the duration of the flow run. Only with ``runner='dask'``.
    workers : int, optional
        Threads (``threads``) or local Dask workers (``dask`` without ``address``);
        default 2.
    processes : bool
        Local Dask workers as processes (default) or as threads of the flow process.

    Raises
    ------
    ValueError
        Unknown runner, or an address given to a runner that cannot use one.
    """
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}: choose one of {', '.join(RUNNERS)}")
    if address and runner != "dask":
        raise ValueError("--address is a Dask scheduler address: use it with --runner dask")
    if workers is not None and workers < 1:
        raise ValueError("workers must be >= 1")
    n = workers or DEFAULT_WORKERS
    if runner == "default":
        return None
    if runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner
        return ThreadPoolTaskRunner(max_workers=n)
    from prefect_dask import DaskTaskRunner
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": processes,
                                          "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"})


def nightly_with_runner(runner: str = "default", address: str | None = None, *, workers: int | None = None,
                        processes: bool = True):
    """The ``nightly`` flow with the task runner for ``runner`` (the flow itself for ``default``).

    Call the result with ``fan_out=True`` (as :func:`run_nightly` does) so that the
    per-trial tasks are submitted to that runner.
    """
    from flows.nightly import nightly

    task_runner = make_task_runner(runner, address, workers=workers, processes=processes)
    if task_runner is None:
        return nightly
    return nightly.with_options(task_runner=task_runner)


def check_runner(settings, runner: str, address: str | None = None, *, processes: bool = True) -> None:
    """Refuse combinations that cannot work on this lake.

    Parallel writers sharing one process deadlock on a SQLite catalog (SQLite's file
    locks are per process: a writer waiting for a reader of the same process never
    wakes up), so with SQLite only worker *processes* may run in parallel. A remote
    Dask cluster cannot open the flow machine's SQLite file at all: it needs a
    ``postgresql://`` catalog (and an ``s3://`` lake).
    """
    if settings.catalog_kind != "sqlite":
        return
    if runner == "threads" or (runner == "dask" and not address and not processes):
        raise ValueError("a SQLite catalog cannot take parallel writers in one process: use --runner dask "
                         "(worker processes) or a postgresql:// catalog (MYOMAP_CATALOG)")
    if runner == "dask" and address:
        raise ValueError("a remote Dask cluster needs a catalog every worker can reach: set MYOMAP_CATALOG to a "
                         "postgresql:// DSN (and MYOMAP_LAKE to s3://...)")


def run_nightly(lake: str | None = None, site: str | None = None, quiet: bool = False, *,
                runner: str = "default", address: str | None = None, workers: int | None = None,
                processes: bool = True, wait_s: float = 0.0) -> dict:
    """Run the nightly flow once with the given runner; returns the night's summary.

    ``wait_s``: how long to wait for another night's lease before giving up.

    Raises
    ------
    ValueError
        Unknown runner, or a runner this lake's catalog cannot take (:func:`check_runner`).
    warehouse.lease.NightAlreadyRunning
        Another night holds the lease.
    """
    from warehouse.settings import get_settings

    check_runner(get_settings(lake), runner, address, processes=processes)
    flow = nightly_with_runner(runner, address, workers=workers, processes=processes)
    return flow(lake=lake, site=site, quiet=quiet, fan_out=runner != "default", wait_s=wait_s)
