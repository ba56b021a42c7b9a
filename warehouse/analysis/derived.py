"""Derived tables computed by the analysis core (``transforms/``) from lake tables.

Storage-side wrappers: read the inputs of one trial, call pure transforms, write the
result in one transaction (delete + insert per trial, so re-running is idempotent).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow as pa

from transforms import emg as emg_tx
from warehouse import catalog, fresh_trials, trial_batch
from warehouse.settings import Settings

log = logging.getLogger(__name__)

#: Envelopes are low-passed at 6 Hz; storing them at ~100 Hz keeps the shape exactly
#: (> 16x the cut-off) at 1/20 of the raw volume. Onsets are computed at full rate.
ENVELOPE_STORE_HZ = 100.0
ENVELOPE_PARAMS = {"band_hz": emg_tx.DEFAULT_BAND_HZ, "lowpass_hz": emg_tx.DEFAULT_LOWPASS_HZ,
                   "order": emg_tx.DEFAULT_ORDER}
ENVELOPE_HASH = emg_tx.params_hash(**ENVELOPE_PARAMS)
#: The tables the envelope step reads (from ``warehouse.fresh_trials`` when it holds them).
ENVELOPE_INPUTS = ("emg_channels", "emg_samples")
#: The per-trial tables a session's synergies are computed from (``cohort.normalised_cycles``): what an analysed
#: trial keeps in ``warehouse.fresh_trials`` until its session is factorised ahead.
SESSION_INPUTS = ("trials", "channel_qc", "emg_envelopes", "gait_cycles", "analysis_exclusions")


def has_run(con, trial_id: str, step: str) -> bool:
    """Whether ``step`` ever ran on ``trial_id`` (any parameters), read inside the caller's transaction.

    A step's rows of a trial are written only together with its ``derivations`` row, and a re-ingested
    trial loses both (``warehouse.ingest.steps.REPLACED_ON_REINGEST``): when it never ran there is nothing
    of it to delete, and the deletes (one scan per table) are skipped."""
    return bool(con.execute("SELECT count(*) FROM derivations WHERE trial_id = ? AND step = ?",
                            [trial_id, step]).fetchone()[0])


def mark_done(con, trial_id: str, step: str, params_hash: str, *, replace: bool = True) -> None:
    """Record (inside the caller's transaction) that ``step`` ran on ``trial_id``; ``replace=False`` when
    :func:`has_run` said it never did."""
    if replace:
        con.execute("DELETE FROM derivations WHERE trial_id = ? AND step = ?", [trial_id, step])
    con.execute("INSERT INTO derivations VALUES (?, ?, ?, now())", [trial_id, step, params_hash])


def pending(settings: Settings, step: str, params_hash: str) -> list[str]:
    """Trials whose ``step`` never ran with these parameters (new, superseded or re-parameterised)."""
    con = catalog.connect(settings)
    try:
        return [r[0] for r in con.execute(
            "SELECT t.trial_id FROM trials t LEFT JOIN derivations d ON d.trial_id = t.trial_id AND d.step = ? "
            "AND d.params_hash = ? WHERE d.trial_id IS NULL ORDER BY t.trial_id", [step, params_hash]).fetchall()]
    finally:
        con.close()


def read_channel(con, trial_id: str, channel: int) -> np.ndarray:
    """One channel of one trial as float32 mV, in sample order."""
    return con.execute("SELECT emg_mv FROM emg_samples WHERE trial_id = ? AND channel = ? ORDER BY sample_index",
                       [trial_id, channel]).fetchnumpy()["emg_mv"]


def read_channels(con, trial_id: str) -> dict[int, np.ndarray]:
    """Every channel of one trial as float32 mV in sample order, ``{channel: samples}``: one scan, not one per channel."""
    d = con.execute("SELECT channel, sample_index, emg_mv FROM emg_samples WHERE trial_id = ?",
                    [trial_id]).fetchnumpy()
    ch, x = np.asarray(d["channel"]), np.asarray(d["emg_mv"])
    if not len(ch):
        return {}
    key = ch.astype(np.int64) * (1 << 32) + np.asarray(d["sample_index"]).astype(np.int64)  # (channel, sample_index)
    if not np.all(key[1:] > key[:-1]):  # rows as committed are in order already; sorting here costs ~1/3 of SQL's
        order = np.argsort(key, kind="stable")
        ch, x = ch[order], x[order]
    cut = np.flatnonzero(np.diff(ch)) + 1
    return {int(c[0]): v for c, v in zip(np.split(ch, cut), np.split(x, cut))}


def channel_blocks(samples: dict, chans) -> list[tuple[float, list]]:
    """``(rate, channels)`` of the ``(channel, rate)`` pairs ``chans``: channels of one rate and length together
    (one array for the block kernels), in order of first appearance."""
    groups: dict[tuple, list] = {}
    for ch, rate in chans:
        groups.setdefault((float(rate), len(samples[ch])), []).append(ch)
    return [(rate, chs) for (rate, _), chs in groups.items()]


def block_envelopes(samples: dict[int, np.ndarray], rates: dict[int, float], **params) -> dict[int, np.ndarray]:
    """Linear envelopes (float64) of the channels in ``rates``: the fused kernel runs once per block of
    channels sharing a rate and a length (a trial's EMG is usually one block), not channel by channel."""
    out = {}
    for rate, chs in channel_blocks(samples, rates.items()):
        block = np.stack([samples[ch].astype(np.float64) for ch in chs])
        out.update(zip(chs, emg_tx.envelope_fast(block, rate_hz=rate, **params)))
    return out


#: Per thread: the EMG and full-rate envelopes of the trial whose envelopes this thread computed last,
#: for the analysis of the same trial that follows on the same thread (``flows.nightly``): one read of the
#: samples and one envelope pass per trial, not two. Taken (and dropped) by the next :func:`take_handed_over`.
_HANDOFF = threading.local()


def take_handed_over(settings: Settings, trial_id: str) -> tuple[dict, dict] | None:
    """``(samples, envelopes)`` by channel that :func:`compute_envelopes` just computed for this trial on this
    thread (float32 mV as stored, float64 envelopes with :data:`ENVELOPE_PARAMS`), or None."""
    item, _HANDOFF.item = getattr(_HANDOFF, "item", None), None
    return item[1] if item is not None and item[0] == (settings.catalog, trial_id) else None


def write_envelopes(c, trial_id: str, table: pa.Table | None, ran: bool) -> None:
    """Replace the trial's ``emg_envelopes`` rows and record the step (inside the caller's transaction);
    ``ran``: :func:`has_run` of the step."""
    if ran:
        c.execute("DELETE FROM emg_envelopes WHERE trial_id = ?", [trial_id])
    if table is not None:
        c.register("_env", table)
        c.execute("INSERT INTO emg_envelopes BY NAME SELECT * FROM _env")
        c.unregister("_env")
    mark_done(c, trial_id, "envelopes", ENVELOPE_HASH, replace=ran)


def commit_envelopes(settings: Settings, con, trial_id: str, table: pa.Table | None) -> None:
    """The envelope step's transaction alone (then its rows are added to those held for the trial)."""
    trial_batch.committed_first(settings, [trial_id])
    catalog.write_atomically(settings, con, lambda c: write_envelopes(c, trial_id, table,
                                                                      has_run(c, trial_id, "envelopes")),
                             what=f"envelopes {trial_id}")
    fresh_trials.add(settings, trial_id, {"emg_envelopes": table})


#: Per thread: the trial whose envelopes and analysis follow each other on this thread (:func:`analysis_follows`)
#: and its envelope rows not committed yet (``pending``: a 1-tuple, the table or None).
_JOINED = threading.local()


@contextmanager
def analysis_follows(settings: Settings, trial_id: str) -> Iterator[None]:
    """Inside this block, on this thread, :func:`compute_envelopes` of ``trial_id`` leaves its rows for the
    trial's analysis to commit with its own (``warehouse.analysis.commits``: in its transaction, or its batch's;
    one transaction per trial, not two). Rows the analysis did not take (it failed, or was not run) are
    committed alone when the block ends; not after a storage error (the night stops, and the next derives the
    trial again)."""
    _JOINED.key, _JOINED.pending = (settings.catalog, trial_id), None
    try:
        yield
    except BaseException:
        _JOINED.key = _JOINED.pending = None
        raise
    pending, _JOINED.key, _JOINED.pending = _JOINED.pending, None, None
    if pending is not None:
        con = catalog.connect(settings)
        try:
            commit_envelopes(settings, con, trial_id, pending[0])
        except trial_batch.NotCommitted as exc:  # the trial itself was not committed: nothing derived from it is
            log.warning("envelopes of %s not committed: %s", trial_id, exc)
        finally:
            con.close()


def pending_envelopes(settings: Settings, trial_id: str) -> tuple | None:
    """``(table,)``: the trial's envelope rows left on this thread for its analysis's transaction, or None."""
    return _JOINED.pending if getattr(_JOINED, "key", None) == (settings.catalog, trial_id) else None


def envelopes_taken(settings: Settings, trial_id: str) -> None:
    """The analysis has taken the pending envelope rows into its own commit (``warehouse.analysis.commits``,
    which holds them for the trial)."""
    _JOINED.pending = None


def compute_envelopes(settings: Settings, trial_id: str) -> int:
    """Linear envelope of every EMG channel of a trial into ``emg_envelopes``; returns rows written."""
    con = catalog.connect(settings)
    reads = catalog.RetryingReads(con, settings)  # other trials of the night may be committing meanwhile
    fresh = fresh_trials.source(settings, trial_id, needs=ENVELOPE_INPUTS)  # the rows just committed, if held
    try:
        src = fresh if fresh is not None else reads
        chans = src.execute("SELECT channel, muscle, side, rate_hz FROM emg_channels WHERE trial_id = ? "
                            "ORDER BY channel", [trial_id]).fetchall()
        p_hash = ENVELOPE_HASH
        parts = []
        samples = read_channels(src, trial_id)
        envs = block_envelopes(samples, {ch: rate for ch, _, _, rate in chans if len(samples.get(ch, ())) >= 64},
                               **ENVELOPE_PARAMS)
        for ch, muscle, side, rate in chans:
            if ch not in envs:
                continue
            env = envs[ch]
            step = max(1, int(round(rate / ENVELOPE_STORE_HZ)))
            kept = env[::step]
            idx = np.arange(len(kept), dtype=np.int32)
            parts.append(pa.table({
                "trial_id": pa.repeat(pa.scalar(trial_id, pa.string()), len(kept)),
                "channel": pa.array(np.full(len(kept), ch, np.int16)),
                "muscle": pa.repeat(pa.scalar(muscle, pa.string()), len(kept)),
                "side": pa.repeat(pa.scalar(side, pa.string()), len(kept)),
                "sample_index": pa.array(idx),
                "time_s": pa.array(idx * step / rate),
                "envelope_mv": pa.array(kept.astype(np.float32)),
                "rate_hz": pa.array(np.full(len(kept), rate / step)),
                "params_hash": pa.array([p_hash] * len(kept), pa.string()),
            }))
        table = pa.concat_tables(parts) if parts else None
        _HANDOFF.item = None
        if getattr(_JOINED, "key", None) == (settings.catalog, trial_id):  # the analysis that follows commits it
            _JOINED.pending = (table,)
        else:
            commit_envelopes(settings, con, trial_id, table)
        _HANDOFF.item = ((settings.catalog, trial_id), (samples, envs))
        return 0 if table is None else table.num_rows
    finally:
        if fresh is not None:
            fresh.close()
        con.close()
