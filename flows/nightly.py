"""The nightly Prefect flow: scan every site inbox, register and ingest new files,
then compute the derived tables. Tasks take and return small keys only."""
from __future__ import annotations

import datetime as dt
import logging
import time
import uuid

import warehouse.settings  # noqa: F401  (sets Prefect's no-telemetry variables before import)
from prefect import flow, task

from warehouse import catalog, zones
from warehouse.analysis import cohort, derived, trial
from warehouse.ingest import steps
from warehouse.ingest.readers import is_companion
from warehouse.settings import get_settings


@task(name="scan-site")
def scan_site(lake: str, site: str, run_id: str) -> dict:
    """List one site's inbox and sync its manifest (subjects, sessions)."""
    s = steps.sync_site(get_settings(lake), site, run_id)
    names = [f.rsplit("/", 1)[-1] for f in s.files]
    files = sorted(s.files, key=lambda f: (not is_companion(f.rsplit("/", 1)[-1], names), f))  # companions first
    return {"site": site, "files": files, "manifest_error": s.manifest_error}


@task(name="process-file")
def process_file(lake: str, site: str, rel_path: str, run_id: str, hold: str | None = None) -> dict:
    """Register, read, harmonise and commit one file (or quarantine / hold it)."""
    return steps.process_file(get_settings(lake), site, rel_path, run_id, hold=hold)


@task(name="envelopes")
def envelopes(lake: str, trial_id: str) -> int:
    """EMG linear envelopes of one trial."""
    return derived.compute_envelopes(get_settings(lake), trial_id)


@task(name="analyse-trial")
def analyse(lake: str, trial_id: str) -> dict:
    """Gait events from plates, cycles, onsets, cycle metrics, co-contraction, spectra."""
    try:
        return trial.analyse_trial(get_settings(lake), trial_id)
    except Exception as exc:  # one trial's analysis failure must not stop the night
        logging.getLogger(__name__).exception("analysis of %s failed", trial_id)
        return {"trial_id": trial_id, "error": f"{type(exc).__name__}: {exc}"}


@task(name="cohort-tables")
def cohort_tables(lake: str) -> dict:
    """Asymmetry, variability, fatigue, synergies, maps, profiles and cohort summaries."""
    return cohort.rebuild(get_settings(lake))


def _echo(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


@flow(name="myomap-nightly")
def nightly(lake: str | None = None, site: str | None = None, quiet: bool = False, fan_out: bool = False) -> dict:
    """Run the night once: every site (or one), every new file, then derived tables.

    ``fan_out`` submits the per-trial transforms (envelopes, analysis) to the flow's task
    runner all at once instead of one after the other. Use it through ``flows/runners.py``,
    which refuses runners a SQLite catalog cannot take (parallel writers in one process).
    """
    return run_night(lake, site, quiet, scan=scan_site, process=process_file, derive=envelopes, analyse=analyse,
                     cohort_step=cohort_tables, fan_out=fan_out)


def run_night(lake: str | None = None, site: str | None = None, quiet: bool = False, *,
              scan=scan_site.fn, process=process_file.fn, derive=envelopes.fn, analyse=analyse.fn,
              cohort_step=cohort_tables.fn, fan_out: bool = False) -> dict:
    """The night's logic. The flow passes Prefect tasks; tests may pass the plain bodies."""
    settings = get_settings(lake)
    lake = settings.lake
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    started = steps.now()
    t0 = time.time()
    sites = [site] if site else zones.list_sites(settings)
    summary = {"run_id": run_id, "sites": sites, "files_seen": 0, "files_new": 0, "ingested": 0,
               "quarantined": 0, "held": 0, "duplicate": 0, "skipped": 0, "companion": 0, "envelope_rows": 0,
               "manifest_errors": {}, "quarantine_reasons": {}}
    trials = []
    for s in sites:
        sc = scan(lake, s, run_id)
        if sc["manifest_error"]:
            summary["manifest_errors"][s] = sc["manifest_error"]
            _echo(quiet, f"[{s}] manifest problem: {sc['manifest_error']}")
        n = len(sc["files"])
        summary["files_seen"] += n
        for i, rel in enumerate(sc["files"], 1):
            r = process(lake, s, rel, run_id, sc["manifest_error"])
            out = r["outcome"]
            summary[out] = summary.get(out, 0) + 1
            if r["new"]:
                summary["files_new"] += 1
            if out == steps.QUARANTINED:
                summary["quarantine_reasons"][r["reason"]] = summary["quarantine_reasons"].get(r["reason"], 0) + 1
            if out == steps.INGESTED:
                trials.append(r["trial_id"])
                detail = f"{r['n_emg']} EMG, {r['n_plates']} plates, {r['n_events']} events"
            else:
                detail = r.get("reason") or ""
            if r["new"]:
                _echo(quiet, f"[{s} {i}/{n}] {rel}: {out}{' (' + detail + ')' if detail else ''}")
    summary.update(run_derivations(lake, quiet, derive=derive, analyse=analyse, cohort_step=cohort_step,
                                   sites=[site] if site else None, fan_out=fan_out))
    summary["seconds"] = round(time.time() - t0, 1)
    _record_run(settings, run_id, started, summary)
    return summary


def run_derivations(lake: str | None = None, quiet: bool = False, *, derive=envelopes.fn, analyse=analyse.fn,
                    cohort_step=cohort_tables.fn, sites: list[str] | None = None, fan_out: bool = False) -> dict:
    """Envelopes and analysis of every trial whose outputs are missing or stale, then cohort tables.

    ``sites`` limits the per-trial work to those sites' trials, so that two on-demand runs
    of different sites never compute (and insert) the same trial at the same time.
    ``fan_out`` (Prefect tasks only) submits every trial's envelopes and analysis to the
    flow's task runner at once; tasks take and return small keys (lake, trial id -> counts).
    """
    settings = get_settings(lake)
    lake = settings.lake
    out = {"envelope_rows": 0}
    todo = sorted(set(derived.pending(settings, "envelopes", derived.ENVELOPE_HASH))
                  | set(derived.pending(settings, "analysis", trial.PARAMS_HASH)))
    if sites:
        todo = [tid for tid in todo if tid.split(":", 1)[0] in sites]
    for i, (tid, rows, a) in enumerate(_per_trial(lake, todo, derive, analyse, fan_out), 1):
        out["envelope_rows"] += rows
        if a.get("error"):
            out.setdefault("analysis_errors", {})[tid] = a["error"]
        _echo(quiet, f"[analysis {i}/{len(todo)}] {tid}: {a.get('gait_cycles', 0)} cycles, "
                     f"{a.get('activation_onsets', 0)} onsets")
    out["trials_derived"] = len(todo)
    if todo or cohort.is_stale(settings):
        out["cohort_rows"] = cohort_step(lake)
        _echo(quiet, "[cohort] " + ", ".join(f"{k} {v}" for k, v in out["cohort_rows"].items()))
    return out


def _per_trial(lake: str, todo: list[str], derive, analyse, fan_out: bool):
    """Yield ``(trial_id, envelope rows, analysis summary)`` per trial, in ``todo`` order."""
    if not (fan_out and hasattr(derive, "submit") and hasattr(analyse, "submit")):
        for tid in todo:
            yield tid, derive(lake, tid), analyse(lake, tid)
        return
    # a trial's envelopes and analysis read only ingested tables: every task can start at once
    env = [derive.submit(lake, tid) for tid in todo]
    ana = [analyse.submit(lake, tid) for tid in todo]
    for tid, e, a in zip(todo, env, ana):
        yield tid, e.result(), a.result()


def _record_run(settings, run_id, started, summary) -> None:
    if not summary["files_new"] and not summary["manifest_errors"] and not summary.get("trials_derived"):
        return  # a night with nothing new leaves no trace in the lake (no empty snapshot)
    con = catalog.connect(settings)
    try:
        catalog.write_atomically(settings, con, lambda c: c.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'completed')",
            [run_id, started, steps.now(), ",".join(summary["sites"]), summary["files_seen"],
             summary["files_new"], summary["ingested"], summary["quarantined"], summary["held"]]),
            what="record run")
    finally:
        con.close()
