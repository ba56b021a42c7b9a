"""The nightly Prefect flow: scan every site inbox, register and ingest new files,
then compute the derived tables. Tasks take and return small keys only."""
from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import datetime as dt
import gc
import json
import logging
import threading
import time
import uuid

import warehouse.settings  # noqa: F401  (sets Prefect's no-telemetry variables before import)
from prefect import flow, task

from warehouse import catalog, faults, fresh_trials, lease, trial_batch, zones
from warehouse.analysis import cohort, commits, derived, trial
from warehouse.ingest import read_ahead, steps, warm_process
from warehouse.ingest.readers import is_companion
from warehouse.settings import get_settings


@task(name="scan-site")
def scan_site(lake: str, site: str, run_id: str) -> dict:
    """List one site's inbox (as data: nothing followed) and sync its manifest (subjects, sessions)."""
    s = steps.sync_site(get_settings(lake), site, run_id)
    names = [f.rsplit("/", 1)[-1] for f in s.files]
    files = sorted(s.files, key=lambda f: (not is_companion(f.rsplit("/", 1)[-1], names), f))  # companions first
    return {"site": site, "files": files, "manifest_error": s.manifest_error, "refused": s.refused or []}


@task(name="process-file")
def process_file(lake: str, site: str, rel_path: str, run_id: str, hold: str | None = None) -> dict:
    """Register, read, harmonise and commit one file (or quarantine / hold it)."""
    return steps.process_file(get_settings(lake), site, rel_path, run_id, hold=hold)


@task(name="record-refused")
def record_refused(lake: str, site: str, refusal: dict, run_id: str) -> dict:
    """Record an inbox entry refused unread at scan (e.g. a file name that is not UTF-8)."""
    return steps.record_refusal(get_settings(lake), site, refusal, run_id)


@task(name="envelopes")
def envelopes(lake: str, trial_id: str) -> int:
    """EMG linear envelopes of one trial."""
    return derived.compute_envelopes(get_settings(lake), trial_id)


@task(name="analyse-trial")
def analyse(lake: str, trial_id: str) -> dict:
    """Gait events from plates, cycles, onsets, cycle metrics, co-contraction, spectra."""
    try:
        return trial.analyse_trial(get_settings(lake), trial_id)
    except faults.StorageError:
        raise  # the storage, not the trial: the night stops
    except Exception as exc:  # one trial's analysis failure must not stop the night
        logging.getLogger(__name__).exception("analysis of %s failed", trial_id)
        return {"trial_id": trial_id, "error": f"{type(exc).__name__}: {exc}"}


@task(name="cohort-tables")
def cohort_tables(lake: str) -> dict:
    """Asymmetry, variability, fatigue, synergies, maps, profiles and cohort summaries."""
    return cohort.rebuild(get_settings(lake))


def warm_prefect_server() -> threading.Thread | None:
    """Start Prefect's local ephemeral API server on a thread (it takes 15-25 s to start here) so that other
    work (e.g. the demo's data generation) runs meanwhile; ``join()`` the thread before the first flow runs
    (until the server answers, a flow would not wait for it). None when an API server is configured
    (``PREFECT_API_URL``) or ephemeral servers are disabled. A failure to start is logged: the flow then
    starts the server itself, as it would have."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None

    def start() -> None:
        from prefect.server.api.server import SubprocessASGIServer

        try:
            SubprocessASGIServer().start()
        except Exception as exc:  # noqa: BLE001 - the flow starts it itself
            logging.getLogger(__name__).warning("Prefect's ephemeral server did not start early: %s", exc)
    t = threading.Thread(target=start, name="prefect-server", daemon=True)
    t.start()
    return t


def _echo(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


@flow(name="myomap-nightly")
def nightly(lake: str | None = None, site: str | None = None, quiet: bool = False, fan_out: bool = False,
            wait_s: float = 0.0) -> dict:
    """Run the night once: every site (or one), every new file, then derived tables.

    ``fan_out`` submits the per-trial transforms (envelopes, analysis) to the flow's task
    runner all at once instead of one after the other. Use it through ``flows/runners.py``,
    which refuses runners a SQLite catalog cannot take (parallel writers in one process).
    ``wait_s``: how long to wait for another night's lease (:mod:`warehouse.lease`).
    """
    return run_night(lake, site, quiet, scan=scan_site, process=process_file, refuse=record_refused,
                     derive=envelopes, analyse=analyse, cohort_step=cohort_tables, fan_out=fan_out, wait_s=wait_s)


#: The garbage collector's thresholds during a night (generation 0 allocations, then collections of the younger
#: generation before an older one is collected; Python's defaults are (700, 10, 10)). A night allocates millions of
#: short-lived objects (rows, frames, query results) beside a heap of ~300 000 long-lived ones (modules, numba,
#: DuckDB, polars); each full collection walked that heap (~0.1 s, holding the interpreter lock: every thread
#: waits) and found almost nothing to free. Measured on the demo night: 808 / 74 / 5 collections taking
#: 0.09 / 0.08 / 0.49 s; with these thresholds 106 / 5 / 0 taking 0.08 / 0.13 / 0 s.
NIGHT_GC_THRESHOLD = (5000, 20, 100)


@contextlib.contextmanager
def _collector(threshold: tuple[int, int, int]):
    """Run the block with the garbage collector's ``threshold``, then restore the previous one."""
    before = gc.get_threshold()
    gc.set_threshold(*threshold)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def run_night(lake: str | None = None, site: str | None = None, quiet: bool = False, *,
              scan=scan_site.fn, process=process_file.fn, refuse=record_refused.fn, derive=envelopes.fn,
              analyse=analyse.fn, cohort_step=cohort_tables.fn, fan_out: bool = False, wait_s: float = 0.0) -> dict:
    """The night's logic. The flow passes Prefect tasks; tests may pass the plain bodies.

    Holds the night's lease (:mod:`warehouse.lease`) throughout. Each site runs inside its
    own error boundary: whatever one site's inbox holds, the night goes on to the next
    site, and the site's outcome (with the reason and where) is in the ``runs`` row, which
    is written even when the run stops or fails. A storage error (disk full, object store
    failing after retries) stops the night early: the current file failed cleanly and the
    next run continues.

    Raises
    ------
    warehouse.lease.NightAlreadyRunning
        Another night holds the lease (after ``wait_s`` seconds).
    """
    settings = get_settings(lake)
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    with lease.night_lease(settings, run_id=run_id, site=site, wait_s=wait_s), _collector(NIGHT_GC_THRESHOLD):
        faults.point("night_started", settings)
        try:
            with catalog.pooled():  # one catalog instance per night (per thread): extensions loaded once
                return _run_leased(settings, run_id, site, quiet, dict(scan=scan, process=process, refuse=refuse),
                                   dict(derive=derive, analyse=analyse, cohort_step=cohort_step, fan_out=fan_out))
        finally:
            fresh_trials.forget_sites(settings)  # the sites' sessions held for the night's trials


def _run_leased(settings, run_id: str, site: str | None, quiet: bool, ingest: dict, derivation: dict) -> dict:
    started, t0 = steps.now(), time.time()
    summary = {"run_id": run_id, "sites": [], "files_seen": 0, "files_new": 0, "ingested": 0,
               "quarantined": 0, "held": 0, "duplicate": 0, "skipped": 0, "companion": 0, "envelope_rows": 0,
               "errors": 0, "manifest_errors": {}, "quarantine_reasons": {}, "site_outcomes": {},
               "status": "completed", "message": None}
    try:
        warm_process.start_server()  # the readers' forkserver imports while the inboxes are scanned
        summary["sites"] = sites = [site] if site else zones.list_sites(settings)
        with _Derivations.for_night(settings, **derivation) as early:  # each trial derived once it is ingested
            for s in sites:
                _night_site(settings, s, run_id, summary, quiet, early=early, **ingest)
            summary.update(run_derivations(settings.lake, quiet, sites=[site] if site else None, early=early,
                                           **derivation))
        if summary["files_new"] or summary.get("trials_derived"):
            summary["compaction"] = _compact(settings)
            _echo(quiet, "[compaction] " + ", ".join(f"{k} {v}" for k, v in summary["compaction"].items()))
    except faults.StorageError as exc:
        summary["status"], summary["message"] = "stopped", str(exc)
        for s in summary["sites"]:
            if s not in summary["site_outcomes"]:
                summary["site_outcomes"][s] = _site_outcome("not_reached", "night_stopped", "The night stopped "
                                                            "before this site: " + str(exc).split(":")[0])
        _echo(False, f"The night stopped early: {exc}")
    except BaseException as exc:
        summary["status"], summary["message"] = "failed", f"{type(exc).__name__}: {str(exc)[:500]}"
        raise
    finally:
        summary["seconds"] = round(time.time() - t0, 1)
        _record_run(settings, run_id, started, summary)
    return summary


def _compact(settings) -> dict:
    """Merge the night's small files per table (catalog.compact); a failure is logged, never fatal."""
    try:
        con = catalog.connect(settings)
        try:
            with catalog.every_core(con):  # the night's last step: nothing else runs
                return catalog.compact(settings, con)
        finally:
            con.close()
    except faults.StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - the night's data is committed; compaction can wait a night
        logging.getLogger(__name__).warning("compaction failed (retried next night): %s", exc)
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def _site_outcome(outcome: str = "ok", reason_code: str | None = None, message: str | None = None) -> dict:
    return {"outcome": outcome, "reason_code": reason_code, "message": message, "files_seen": 0, "files_new": 0,
            "ingested": 0, "quarantined": 0, "held": 0, "errors": 0, "quarantine_reasons": {}}


def _night_site(settings, s: str, run_id: str, summary: dict, quiet: bool, *, scan, process, refuse,
                early=None) -> None:
    """One site's turn, inside its own error boundary (storage errors alone stop the night)."""
    lake = settings.lake
    out = summary["site_outcomes"][s] = _site_outcome()
    faults.point("site_start", settings)
    try:
        sc = scan(lake, s, run_id)
    except faults.StorageError:
        out.update(outcome="stopped", reason_code="storage")
        raise
    except Exception as exc:  # the inbox could not be listed or the manifest synced: record, go on
        logging.getLogger(__name__).exception("scanning site %s failed", s)
        out.update(outcome="failed", reason_code="scan_failed",
                   message=f"inbox/{s}: {type(exc).__name__}: {str(exc)[:300]}")
        _echo(quiet, f"[{s}] scan failed: {out['message']}")
        return
    if sc["manifest_error"]:
        code, _, text = sc["manifest_error"].partition(": ")
        out.update(outcome="manifest_error", reason_code=code, message=f"inbox/{s}/manifest.yaml: {text}")
        summary["manifest_errors"][s] = sc["manifest_error"]
        _echo(quiet, f"[{s}] manifest problem: {sc['manifest_error']}")
    work = [(r["path"], lambda r=r: refuse(lake, s, r, run_id)) for r in sc.get("refused") or []]
    work += [(rel, lambda rel=rel: process(lake, s, rel, run_id, sc["manifest_error"])) for rel in sc["files"]]
    n = len(work)
    summary["files_seen"] += n
    out["files_seen"] = n
    readable = set() if sc["manifest_error"] else set(sc["files"])
    ingested: list[str] = []
    try:
        with steps.site_turn(settings, s, run_id) as done:  # the site's done files, read once
            if work and work[0][0] in readable:  # the first file too: read by the read-ahead's warm reader
                steps.read_ahead_file(settings, s, work[0][0], done=done)
            for i, (rel, step) in enumerate(work, 1):
                if i < n and work[i][0] in readable:  # decode the next file while this one is committed
                    steps.read_ahead_file(settings, s, work[i][0], done=done)
                r = _night_file(settings, s, summary, out, quiet, i, n, rel, step)
                if r and r["outcome"] == steps.INGESTED and r.get("trial_id"):
                    ingested.append(r["trial_id"])
                    if early is not None:
                        early.submit(r["trial_id"], site=s)
        # the turn's end committed the trials still waiting (warehouse.trial_batch)
        if early is not None:
            early.factorise_ahead(s)
    except faults.StorageError:
        if out["outcome"] != "stopped":
            out.update(outcome="stopped", reason_code="storage", message=f"inbox/{s}: the site's last trials were "
                       "not committed (the night stopped: see the run's message)")
        raise
    except Exception as exc:  # the commit of the site's last trials failed: recorded, the night goes on
        logging.getLogger(__name__).exception("committing site %s's last trials failed", s)
        out.update(outcome="failed", reason_code="commit_failed", message=f"inbox/{s}: {type(exc).__name__}: "
                   f"{str(exc)[:300]}")
        _echo(quiet, f"[{s}] committing its last trials failed: {out['message']}")
    finally:
        read_ahead.clear()
        _uncount(settings, summary, out, ingested)


def _night_file(settings, s: str, summary: dict, out: dict, quiet: bool, i: int, n: int, rel: str,
                step) -> dict | None:
    """One inbox entry of a site's turn: a bug on it is recorded and the site goes on. Returns the
    step's small result (None after a bug)."""
    try:
        r = step()
    except faults.StorageError:
        out.update(outcome="stopped", reason_code="storage", message=f"inbox/{s}/{rel}: not processed "
                   "(the night stopped: see the run's message)")
        raise
    except Exception as exc:  # a bug on one file: record it, keep the file for the next night
        logging.getLogger(__name__).exception("processing %s/%s failed", s, rel)
        summary["errors"] += 1
        out["errors"] += 1
        if out["outcome"] == "ok":
            out.update(outcome="failed", reason_code="file_error",
                       message=f"inbox/{s}/{rel}: {type(exc).__name__}: {str(exc)[:300]}")
        _echo(quiet, f"[{s} {i}/{n}] {rel}: error ({type(exc).__name__}: {str(exc)[:200]})")
        return None
    _count(summary, out, r)
    if r["new"]:
        _echo(quiet, f"[{s} {i}/{n}] {rel}: {r['outcome']}{_detail(r)}")
    faults.point("file_done", settings)
    return r


def _uncount(settings, summary: dict, out: dict, trial_ids: list[str]) -> None:
    """Trials counted as ingested whose batch then failed to commit: counted as errors instead (the files are
    read again next night)."""
    lost = len(trial_batch.not_committed(settings, trial_ids))
    for d in (summary, out) if lost else ():
        d["ingested"], d["errors"] = d.get("ingested", 0) - lost, d.get("errors", 0) + lost


def _count(summary: dict, out: dict, r: dict) -> None:
    kind = r["outcome"]
    summary[kind] = summary.get(kind, 0) + 1
    if kind in out:
        out[kind] += 1
    if r["new"]:
        summary["files_new"] += 1
        out["files_new"] += 1
    if kind == steps.QUARANTINED:
        for d in (summary["quarantine_reasons"], out["quarantine_reasons"]):
            d[r["reason"]] = d.get(r["reason"], 0) + 1


def _detail(r: dict) -> str:
    if r["outcome"] == steps.INGESTED:
        return f" ({r['n_emg']} EMG, {r['n_plates']} plates, {r['n_events']} events)"
    return f" ({r['reason']})" if r.get("reason") else ""


def run_derivations(lake: str | None = None, quiet: bool = False, *, derive=envelopes.fn, analyse=analyse.fn,
                    cohort_step=cohort_tables.fn, sites: list[str] | None = None, fan_out: bool = False,
                    early: _Derivations | None = None) -> dict:
    """Envelopes and analysis of every trial whose outputs are missing or stale, then cohort tables.

    ``sites`` limits the per-trial work to those sites' trials, so that two on-demand runs
    of different sites never compute (and insert) the same trial at the same time.
    ``fan_out`` (Prefect tasks only) submits every trial's envelopes and analysis to the
    flow's task runner at once; tasks take and return small keys (lake, trial id -> counts).
    ``early``: the night's derivation threads, which may have started trials as they were ingested
    (their results are reported here, in trial order, with the trials still pending).
    """
    settings = get_settings(lake)
    lake = settings.lake
    out = {"envelope_rows": 0}
    todo = sorted(set(derived.pending(settings, "envelopes", derived.ENVELOPE_HASH))
                  | set(derived.pending(settings, "analysis", trial.PARAMS_HASH)))
    if sites:
        todo = [tid for tid in todo if tid.split(":", 1)[0] in sites]
    if early is not None:  # trials started during the ingest are reported, finished or not
        todo = sorted(set(todo) | set(early.started()))
    for i, (tid, rows, a) in enumerate(_per_trial(lake, todo, derive, analyse, fan_out, early), 1):
        out["envelope_rows"] += rows
        if a.get("error"):
            out.setdefault("analysis_errors", {})[tid] = a["error"]
        _echo(quiet, f"[analysis {i}/{len(todo)}] {tid}: {a.get('gait_cycles', 0)} cycles, "
                     f"{a.get('activation_onsets', 0)} onsets")
    out["trials_derived"] = len(todo)
    failed = commits.flush(settings)  # the night's analyses still waiting in a batch: in the lake before the cohort
    if failed:
        out.setdefault("analysis_errors", {}).update(failed)
    if early is not None:
        early.wait_ahead()  # the sessions' synergies being factorised ahead: the rebuild takes them
    if todo or cohort.is_stale(settings):
        # runs of different sites may overlap: one cohort rebuild at a time, over every site's trials
        with lease.step_lease(settings, "cohort", run_id=f"derivations of {', '.join(sites or ['all sites'])}") as waited:
            if not waited or cohort.is_stale(settings):  # after waiting: unless the other run's rebuild has ours
                out["cohort_rows"] = cohort_step(lake)
                _echo(quiet, "[cohort] " + ", ".join(f"{k} {v}" for k, v in out["cohort_rows"].items()))
    return out


def _derive_one(lake: str, tid: str, derive, analyse) -> tuple[str, int, dict]:
    """``(trial_id, envelope rows, analysis summary)`` of one trial; a failure of its envelopes is recorded,
    not raised (storage errors excepted: they stop the night)."""
    with derived.analysis_follows(get_settings(lake), tid):  # the trial's envelopes commit with its analysis
        try:
            rows = derive(lake, tid)
        except faults.StorageError:
            raise
        except Exception as exc:  # one trial's envelopes failing must not stop the night
            logging.getLogger(__name__).exception("envelopes of %s failed", tid)
            return tid, 0, {"trial_id": tid, "error": f"envelopes: {type(exc).__name__}: {exc}"}
        return tid, rows, analyse(lake, tid)


def _factorise_session(lake: str, session: str, trials: list[concurrent.futures.Future]) -> None:
    """Once a session's trials of the night are derived, factorise its legs' synergies ahead of the cohort
    rebuild (:func:`warehouse.analysis.cohort.factorise_ahead`), on a derivation thread while the night
    goes on. Only an optimisation: the rebuild uses a result only if its input hashes the same, and a
    failure here is logged, never raised (the rebuild factorises the leg itself)."""
    concurrent.futures.wait(trials)
    try:
        cohort.factorise_ahead(get_settings(lake), session)
    except Exception as exc:  # noqa: BLE001 - see above
        logging.getLogger(__name__).info("synergies of %s not factorised ahead: %s", session, exc)


class _Derivations:
    """Trials derived ``workers`` at a time on threads, each started as soon as it is ingested (while the
    night reads and commits the next files) or when :func:`run_derivations` asks for it.

    numba, numpy, scipy and DuckDB release the GIL; every catalog statement of the process takes its turn
    (:func:`warehouse.catalog.connect` inside :func:`warehouse.catalog.pooled`). Each thread runs in a copy
    of the submitting thread's context, so Prefect records the task calls made there as this flow run's
    tasks. Only a trial's arrays being computed are in memory (a queued trial is its id)."""

    def __init__(self, lake: str, derive, analyse, workers: int):
        self._lake, self._derive, self._analyse = lake, derive, analyse
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="derive")
        self._futures: dict[str, concurrent.futures.Future] = {}
        self._session: tuple[str, str] | None = None  # (site, session) of the last trial the ingest submitted
        self._of_session: dict[tuple[str, str], list[concurrent.futures.Future]] = {}
        self._ahead: list[concurrent.futures.Future] = []

    @classmethod
    @contextlib.contextmanager
    def for_night(cls, settings, *, derive, analyse, fan_out: bool = False, **_):
        """The night's derivation threads, or None where trials are derived one after the other (one
        worker) or fanned out to the flow's task runner. Queued trials are dropped and running ones
        finished when the block ends (the night's lease is still held); their analyses commit in batches
        (:func:`warehouse.analysis.commits.batched`), the last when the block ends."""
        workers = settings.derive_workers
        if fan_out or workers <= 1:
            yield None
            return
        early = cls(settings.lake, derive, analyse, workers)
        with commits.batched(settings):  # the threads' analyses commit a few trials at a time
            try:
                yield early
            finally:
                early._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, tid: str, *, site: str | None = None) -> None:
        """Derive ``tid``; ``site``: the night's site whose files gave it (its session is then factorised
        ahead when the night moves to another session: :meth:`factorise_ahead`)."""
        if tid not in self._futures:
            self._futures[tid] = self._pool.submit(contextvars.copy_context().run, _derive_one, self._lake, tid,
                                                   self._derive, self._analyse)
        if site is not None and tid.startswith(f"{site}:"):  # trial ids are site:session:<hash>
            session = tid[len(site) + 1:].rsplit(":", 1)[0]
            if self._session not in (None, (site, session)):
                self._factorise_ahead(*self._session)
            self._session = (site, session)
            self._of_session.setdefault(self._session, []).append(self._futures[tid])
        self._keep_up()

    def _keep_up(self) -> None:
        """Wait until fewer than ``fresh_trials.KEPT_TRIALS`` trials submitted are not derived yet: the ingest
        never runs so far ahead that a trial's rows held are dropped before its derivations read them (they
        would read the catalog instead: measured at 260 trials, the derivations' time x1.7)."""
        while True:
            behind = [f for f in self._futures.values() if not f.done()]
            if len(behind) < fresh_trials.KEPT_TRIALS:
                return
            concurrent.futures.wait(behind, return_when=concurrent.futures.FIRST_COMPLETED)

    def factorise_ahead(self, site: str) -> None:
        """The site's turn is over: its last session's synergies are factorised once its trials are derived."""
        if self._session is not None and self._session[0] == site:
            self._factorise_ahead(*self._session)
            self._session = None

    def _factorise_ahead(self, site: str, session: str) -> None:
        futures = self._of_session.pop((site, session), [])
        self._ahead.append(self._pool.submit(contextvars.copy_context().run, _factorise_session, self._lake,
                                             session, futures))

    def wait_ahead(self) -> None:
        concurrent.futures.wait(self._ahead)
        self._ahead = []

    def started(self) -> list[str]:
        return list(self._futures)

    def result(self, tid: str) -> tuple[str, int, dict]:
        return self._futures.pop(tid).result()


def _per_trial(lake: str, todo: list[str], derive, analyse, fan_out: bool, early: _Derivations | None = None):
    """Yield ``(trial_id, envelope rows, analysis summary)`` per trial, in ``todo`` order."""
    if early is not None:
        for tid in todo:
            early.submit(tid)
        yield from (early.result(tid) for tid in todo)
        return
    if not (fan_out and hasattr(derive, "submit") and hasattr(analyse, "submit")):
        yield from (_derive_one(lake, tid, derive, analyse) for tid in todo)
        return
    # a trial's envelopes and analysis read only ingested tables: every task can start at once
    env = [derive.submit(lake, tid) for tid in todo]
    ana = [analyse.submit(lake, tid) for tid in todo]
    for tid, e, a in zip(todo, env, ana):
        yield tid, e.result(), a.result()


def _record_run(settings, run_id, started, summary) -> None:
    """Write the run's ``runs`` row, whatever happened (best effort: the catalog itself may be failing)."""
    quiet_night = (summary["status"] == "completed" and not summary["files_new"] and not summary["manifest_errors"]
                   and not summary.get("trials_derived") and not summary["errors"]
                   and all(o["outcome"] == "ok" for o in summary["site_outcomes"].values()))
    if quiet_night:
        return  # a night with nothing new leaves no trace in the lake (no empty snapshot)
    row = {"run_id": run_id, "started_at": started, "finished_at": steps.now(), "sites": ",".join(summary["sites"]),
           "files_seen": summary["files_seen"], "files_new": summary["files_new"],
           "trials_ingested": summary["ingested"], "quarantined": summary["quarantined"], "held": summary["held"],
           "status": summary["status"], "message": summary["message"],
           "site_outcomes": json.dumps(summary["site_outcomes"], sort_keys=True)}
    try:
        con = catalog.connect(settings)
        try:
            catalog.write_atomically(settings, con, lambda c: c.execute(
                f"INSERT INTO runs BY NAME SELECT {', '.join('? AS ' + k for k in row)}", list(row.values())),
                what="record run")
        finally:
            con.close()
        faults.point("run_recorded", settings)
    except Exception as exc:  # noqa: BLE001 - never hide the night's own outcome behind this one
        summary["run_not_recorded"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        logging.getLogger(__name__).error("run %s could not be recorded in the lake: %s", run_id, exc)
        _echo(False, f"The run could not be recorded in the lake ({summary['run_not_recorded']}).")
