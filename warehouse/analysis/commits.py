"""How a trial's analysis reaches the lake: its rows (and its envelope rows, when the envelope step left them
for it: :func:`warehouse.analysis.derived.analysis_follows`) replace the trial's earlier ones in one
transaction, with their ``derivations`` rows.

Inside the night's derivations (:func:`batched`) the analyses of several trials commit together: one
transaction, and one insert per table, for up to :data:`BATCH_TRIALS` trials. DuckLake's cost of a commit
grows with the tables it touches, not with their rows (~15 ms per table here), so a trial alone paid
~200 ms of catalog time for a few hundred rows. A trial waiting in a batch is not in the lake yet: a night
killed meanwhile derives it again the next night (its ``derivations`` rows commit with its rows). Its rows
are held for its session's synergies (:mod:`warehouse.fresh_trials`) as soon as it is submitted: those are
factorised ahead only as a guess that the cohort rebuild checks (the input's hash), never published as such.
A batch that fails is committed again trial by trial, so one trial's failure is that trial's alone.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from warehouse import catalog, faults, fresh_trials, trial_batch
from warehouse.analysis import derived
from warehouse.settings import Settings

log = logging.getLogger(__name__)

#: Trials whose analyses commit together inside the night (the last batch holds what is left).
BATCH_TRIALS = 8
#: The tables a re-run of the analysis replaces (with the two partial deletes of :func:`write`).
_REPLACED = ("gait_cycles", "activation_onsets", "emg_cycle_metrics", "co_contraction", "emg_spectra",
             "analysis_exclusions")


@dataclass(frozen=True)
class Analysis:
    """One trial's analysis to commit: its tables (name -> rows, None: no rows), the envelope rows its
    envelope step left for it (``(table,)``, or None) and the analysis's parameter hash."""

    trial_id: str
    tables: dict[str, pa.Table | None]
    envelopes: tuple | None
    params_hash: str


def write(c, analyses: list[Analysis]) -> None:
    """Inside the caller's transaction: replace the rows of every trial in ``analyses`` (one insert per
    table for all of them) and record the steps in ``derivations``."""
    ids = [a.trial_id for a in analyses]
    done = set(c.execute("SELECT DISTINCT trial_id, step FROM derivations WHERE list_contains(?, trial_id) "
                         "AND step IN ('envelopes', 'analysis')", [ids]).fetchall())
    steps = []  # (trial_id, step, params_hash)
    envelope_rows = []
    for a in analyses:
        if a.envelopes is not None:
            if (a.trial_id, "envelopes") in done:
                c.execute("DELETE FROM emg_envelopes WHERE trial_id = ?", [a.trial_id])
            if a.envelopes[0] is not None:
                envelope_rows.append(a.envelopes[0])
            steps.append((a.trial_id, "envelopes", derived.ENVELOPE_HASH))
        if (a.trial_id, "analysis") in done:  # an earlier analysis of the trial (other parameters): replaced
            c.execute("DELETE FROM gait_events WHERE trial_id = ? AND source <> 'annotated'", [a.trial_id])
            c.execute("DELETE FROM plausibility WHERE trial_id = ? AND code = 'treadmill_foot_off_disagrees'",
                      [a.trial_id])
            for name in _REPLACED:
                c.execute(f"DELETE FROM {name} WHERE trial_id = ?", [a.trial_id])
        steps.append((a.trial_id, "analysis", a.params_hash))
    catalog.insert_tables(c, "emg_envelopes", envelope_rows)
    for name in dict.fromkeys(n for a in analyses for n in a.tables):
        catalog.insert_tables(c, name, [a.tables[name] for a in analyses if a.tables.get(name) is not None])
    for tid, step, _ in steps:
        if (tid, step) in done:
            c.execute("DELETE FROM derivations WHERE trial_id = ? AND step = ?", [tid, step])
    c.register("_steps", pa.table({"trial_id": [s[0] for s in steps], "step": [s[1] for s in steps],
                                   "params_hash": [s[2] for s in steps]}))
    c.execute("INSERT INTO derivations SELECT trial_id, step, params_hash, now() FROM _steps")
    c.unregister("_steps")


def commit(settings: Settings, con, analysis: Analysis) -> None:
    """Commit one trial's analysis: alone (raising what the transaction raised), or into the night's batch
    when one is open (:func:`batched`; committed when the batch is full, or when the batch ends)."""
    batch = _BATCHES.get(settings.catalog)
    if batch is None:
        trial_batch.committed_first(settings, [analysis.trial_id])
        catalog.write_atomically(settings, con, lambda c: write(c, [analysis]), what=f"analysis {analysis.trial_id}")
        _hold(settings, analysis)
        return
    _hold(settings, analysis)  # for its session's synergies, factorised ahead before the batch commits
    batch.add(settings, analysis)


def _hold(settings: Settings, a: Analysis) -> None:
    """Add the trial's committed (or batched) rows to those held for it, then keep its session's inputs."""
    if a.envelopes is not None:
        fresh_trials.add(settings, a.trial_id, {"emg_envelopes": a.envelopes[0]})
    fresh_trials.add(settings, a.trial_id, {n: a.tables.get(n) for n in ("gait_cycles", "analysis_exclusions")})
    fresh_trials.settle(settings, a.trial_id, derived.SESSION_INPUTS)


class _Batch:
    def __init__(self, size: int):
        self.size, self._lock = size, threading.Lock()
        self._waiting: list[Analysis] = []
        self.errors: dict[str, str] = {}  # trial id -> why its analysis could not be committed

    def add(self, settings: Settings, a: Analysis) -> None:
        with self._lock:
            self._waiting.append(a)
            full = self._take() if len(self._waiting) >= self.size else []
        self._commit(settings, full)

    def flush(self, settings: Settings) -> None:
        with self._lock:
            waiting = self._take()
        self._commit(settings, waiting)

    def holds(self, trial_ids: set[str]) -> bool:
        with self._lock:
            return any(a.trial_id in trial_ids for a in self._waiting)

    def drop(self, settings: Settings) -> None:
        with self._lock:
            for a in self._take():
                fresh_trials.forget(settings, a.trial_id)

    def _take(self) -> list[Analysis]:
        taken, self._waiting = self._waiting, []
        return taken

    def _commit(self, settings: Settings, analyses: list[Analysis]) -> None:
        if analyses:  # their trials committed first (the ingest's batch); a trial that failed to commit: none
            try:
                trial_batch.flush_if_holds(settings, [a.trial_id for a in analyses])
            except faults.StorageError:
                raise
            except Exception as exc:  # noqa: BLE001 - the batch's trials are listed as not committed
                log.error("the trials of %d analyses could not be committed: %s", len(analyses), exc)
            lost = trial_batch.not_committed(settings, [a.trial_id for a in analyses])
            for a in (a for a in analyses if a.trial_id in lost):
                self.errors[a.trial_id] = "its trial's commit failed: the analysis is not committed"
                fresh_trials.forget(settings, a.trial_id)
            analyses = [a for a in analyses if a.trial_id not in lost]
        if not analyses:
            return
        con = catalog.connect(settings)
        try:
            try:
                catalog.write_atomically(settings, con, lambda c: write(c, analyses),
                                         what=f"analysis of {len(analyses)} trial(s)")
                return
            except faults.StorageError:
                for a in analyses:
                    fresh_trials.forget(settings, a.trial_id)
                raise
            except Exception as exc:  # noqa: BLE001 - each trial again on its own: a failure stays its own
                if len(analyses) == 1:
                    self._failed(settings, con, analyses[0], exc)
                    return
                log.info("a batch of %d analyses failed (%s): committing them one by one", len(analyses), exc)
            for a in analyses:
                try:
                    catalog.write_atomically(settings, con, lambda c, a=a: write(c, [a]), what=f"analysis {a.trial_id}")
                except faults.StorageError:
                    fresh_trials.forget(settings, a.trial_id)
                    raise
                except Exception as exc:  # noqa: BLE001 - recorded as the trial's analysis error
                    self._failed(settings, con, a, exc)
        finally:
            con.close()

    def _failed(self, settings: Settings, con, a: Analysis, exc: Exception) -> None:
        """The trial's analysis did not commit: its error is the night's, its envelopes commit alone."""
        log.error("analysis of %s could not be committed: %s", a.trial_id, exc)
        self.errors[a.trial_id] = f"{type(exc).__name__}: {exc}"
        fresh_trials.forget(settings, a.trial_id)
        if a.envelopes is not None:
            try:
                derived.commit_envelopes(settings, con, a.trial_id, a.envelopes[0])
            except faults.StorageError:
                raise
            except Exception as env_exc:  # noqa: BLE001 - recorded with the analysis error
                self.errors[a.trial_id] += f"; envelopes: {type(env_exc).__name__}: {env_exc}"


#: The open batch of each catalog in this process (:func:`batched`).
_BATCHES: dict[str, _Batch] = {}


@contextmanager
def batched(settings: Settings, size: int = BATCH_TRIALS) -> Iterator[_Batch]:
    """Inside this block, this process's analyses of the lake commit in batches of ``size`` trials. What
    waits when the block ends is committed (:meth:`_Batch.flush`), unless the block ends on an exception:
    then it is dropped (the next night derives those trials again). ``errors``: trials whose analysis
    could not be committed (each was tried alone; its envelopes were committed alone)."""
    batch = _Batch(size)
    _BATCHES[settings.catalog] = batch
    try:
        yield batch
    except BaseException:
        batch.drop(settings)
        raise
    finally:
        _BATCHES.pop(settings.catalog, None)
    batch.flush(settings)


def commit_waiting(settings: Settings, trial_ids) -> None:
    """Commit this process's batch now if an analysis of one of ``trial_ids`` waits in it (and the ingest's batch
    first, if one of the trials waits there): for a reader of the catalog that needs those trials as analysed (a
    session's synergies factorised ahead from the catalog). An
    analysis being committed by another thread at that moment is not waited for (the reader may then miss it:
    the rebuild factorises that leg itself, only time is lost)."""
    trial_batch.flush_if_holds(settings, trial_ids)
    batch = _BATCHES.get(settings.catalog)
    if batch is not None and batch.holds(set(trial_ids)):
        batch.flush(settings)



def flush(settings: Settings) -> dict[str, str]:
    """Commit what waits in this process's batch of the lake now; returns the trials that failed so far."""
    batch = _BATCHES.get(settings.catalog)
    if batch is None:
        return {}
    batch.flush(settings)
    return dict(batch.errors)
