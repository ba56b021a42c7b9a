"""Session and cohort tables (issue 6): asymmetry, variability, fatigue, synergies,
activation maps, patient-specific profiles and the cohort summaries releases publish.

Rebuilt from the per-trial tables (``warehouse/analysis/trial.py``) in one transaction
whenever a night changed something. Every computation is a pure function in
``transforms/``; this module only reads, reshapes and writes.
"""
from __future__ import annotations

import hashlib
import logging
import threading

import numpy as np
import polars as pl

from schemas import metrics as metrics_registry
from transforms import activation_map as amap
from transforms import asymmetry as asym
from transforms import cycles as cyc
from transforms import profiles
from transforms import synergies as syn
from transforms import variability as var
from warehouse import catalog, fresh_trials, trial_batch
from warehouse.analysis import commits
from warehouse.analysis.derived import SESSION_INPUTS, mark_done
from warehouse.settings import Settings

log = logging.getLogger(__name__)

#: Onsets used for timing metrics: the default method's first burst of each cycle; summarised
#: per session by the median across cycles (robust to a missed or merged burst).
TIMING_FILTER = "is_default AND burst = 0"
#: How subject_profiles compares a subject with the cohort (serving recomputes the same
#: profiles over the subjects a reader may see: embargoed sites are in no reference).
PROFILE_PARAMS = {"reference": "robust", "z_threshold": profiles.ROBUST_Z_THRESHOLD,
                  "min_reference_sd": profiles.MIN_REFERENCE_SD}
#: A channel reaches envelopes used downstream, maps, variability, synergies, asymmetry and cohort tables
#: only if the analysis did not exclude it (``analysis_exclusions``: QC verdict bad, no events...) and its
#: QC verdict is not ``bad`` (``{a}`` is the alias of a table with ``trial_id`` and ``channel``).
GOOD_CHANNEL = ("NOT EXISTS (SELECT 1 FROM analysis_exclusions x WHERE x.trial_id = {a}.trial_id "
                "AND x.channel = {a}.channel) AND NOT EXISTS (SELECT 1 FROM channel_qc q "
                "WHERE q.trial_id = {a}.trial_id AND q.channel = {a}.channel AND q.verdict = 'bad')")
COHORT_TABLES = ("asymmetry", "variability", "fatigue", "fatigue_contrasts", "synergies", "synergy_activations",
                 "activation_map", "subject_profiles", "cohort_asymmetry", "cohort_variability")


def _q(con, sql: str, params=None) -> pl.DataFrame:
    return con.execute(sql, params or []).pl()


#: Trials whose envelopes a rebuild holds in memory at once (:func:`normalised_cycles` reads them in chunks:
#: its memory does not grow with the lake). ~0.1 MB of envelope per trial (16 channels at ~100 Hz): 64 trials
#: ~8 MB; each chunk is a query (measured 7 Dec, 260-trial lake: 16 per chunk 6.4-7.4 s, 64 4.9-5.2 s).
ENVELOPE_CHUNK_TRIALS = 64


def normalised_cycles(con, *, session_id: str | None = None) -> dict[tuple[str, str, str, str], np.ndarray]:
    """{(subject, session, muscle, side): cycles x 101} from stored envelopes and valid cycles (the envelopes
    read ``ENVELOPE_CHUNK_TRIALS`` trials at a time, in trial order); ``session_id``: that session's only
    (the same arrays as its entries of the whole lake's)."""
    only: list[str] = []
    if session_id is not None:  # the session's trials by id: each table's files are pruned by their stats
        only = [r[0] for r in con.execute("SELECT trial_id FROM trials WHERE session_id = ? ORDER BY 1",
                                          [session_id]).fetchall()]
        if not only:
            return {}
    of_trials = f" AND trial_id IN ({', '.join('?' * len(only))})" if only else ""
    cyc_df = _q(con, "SELECT trial_id, side, cycle, start_s, end_s, foot_off_s, duration_s, stance_pct, valid, "
                     f"coalesce(reason, '') AS reason FROM gait_cycles WHERE valid{of_trials} "
                     "ORDER BY trial_id, side, cycle", only)
    if cyc_df.is_empty():
        return {}
    # every trial with envelopes (a session's: the envelopes of its trials, if any, are read below)
    trials = only or [r[0] for r in con.execute("SELECT DISTINCT trial_id FROM emg_envelopes ORDER BY 1").fetchall()]
    out: dict[tuple, list] = {}
    for i in range(0, len(trials), ENVELOPE_CHUNK_TRIALS):
        chunk = trials[i:i + ENVELOPE_CHUNK_TRIALS]
        # materialised: the channel filter then runs on one row per channel (inlined, DuckDB planned it below the
        # aggregate, on every sample: 4x the query's time, measured 7 Dec on a 260-trial lake)
        env = _q(con, "WITH e AS MATERIALIZED (SELECT trial_id, channel, muscle, side, rate_hz, list(envelope_mv ORDER BY "
                      "sample_index) AS envelope_mv FROM emg_envelopes WHERE trial_id IN "
                      f"({', '.join('?' * len(chunk))}) GROUP BY ALL) "
                      "SELECT e.trial_id, t.subject_id, t.session_id, e.muscle, e.side, e.rate_hz, e.envelope_mv "
                      f"FROM e JOIN trials t USING (trial_id) WHERE {GOOD_CHANNEL.format(a='e')} "
                      "ORDER BY e.trial_id, e.channel", chunk)  # a channel's samples as one list: no row per sample
        _add_normalised(out, env, cyc_df)
    return {k: np.vstack(v) for k, v in out.items()}


def _add_normalised(out: dict, env: pl.DataFrame, cyc_df: pl.DataFrame) -> None:
    """Append to ``out`` the time-normalised valid cycles of each channel of ``env``. The cycles are looked up
    once per trial and side, and normalised once per block of a trial's channels sharing a side, a rate and
    a length (the same arithmetic row by row as channel by channel, as ``warehouse.analysis.trial``)."""
    cycles_of = cyc_df.partition_by("trial_id", "side", as_dict=True, include_key=False)
    lists = env["envelope_mv"].to_arrow()  # one array, whatever the frame's chunks
    offsets, samples = lists.offsets.to_numpy(), lists.values.to_numpy(zero_copy_only=False)  # nulls: NaN
    rows: dict[tuple, list[int]] = {}  # a key's rows (channels), in order
    for i, key in enumerate(zip(*(env[c].to_list() for c in ("trial_id", "subject_id", "session_id", "muscle",
                                                              "side")))):
        rows.setdefault(key, []).append(i)
    rates = env["rate_hz"].to_list()
    blocks: dict[tuple, list] = {}
    for (tid, subj, sess, muscle, side), idx in rows.items():
        if (tid, side) not in cycles_of:
            continue
        x = np.concatenate([samples[offsets[i]:offsets[i + 1]] for i in idx]).astype(np.float64)  # the channel's
        blocks.setdefault((tid, side, float(rates[idx[0]]), len(x)), []).append(((subj, sess, muscle, side), x))
    for (tid, side, rate, n), members in blocks.items():
        c = cycles_of[(tid, side)].filter(pl.col("end_s") < (n - 1) / rate)
        if c.is_empty():
            continue
        try:
            arr = cyc.normalise_cycles(np.stack([x for _, x in members]), rate_hz=rate, cycles=c)
        except ValueError as exc:
            log.info("%s %s %s: %s", tid, [k[2] for k, _ in members], side, exc)
            continue
        for i, (key, _) in enumerate(members):  # cycles x channels x points
            out.setdefault(key, []).append(np.atleast_2d(arr[:, i, :]))


def build_cohort_tables(con) -> dict[str, pl.DataFrame]:
    """Compute every cohort-level table from the per-trial tables of the lake."""
    sessions = _q(con, "SELECT session_id, subject_id, site_id, condition, task FROM sessions")
    cyc_norm = normalised_cycles(con)
    metrics = _session_metrics(con)
    out: dict[str, pl.DataFrame] = {}
    if metrics.height:
        out["asymmetry"] = asym.asymmetry_table(metrics)
    variability = _variability(con, cyc_norm, sessions)
    if variability is not None:
        out["variability"] = variability
    out.update(_fatigue(con))
    out.update(_synergies(cyc_norm, _previous_synergies(con)))
    out["activation_map"] = _activation_maps(cyc_norm, sessions, con)
    subject_profiles = _subject_profiles(metrics, out.get("asymmetry"), sessions)
    if subject_profiles is not None:
        out["subject_profiles"] = subject_profiles
    out.update(_cohort_summaries(out, sessions, _excluded_channels(con)))
    return out


def _session_metrics(con) -> pl.DataFrame:
    """Per session, muscle/side and metric: amplitude, timing and gait metrics (long frame; every metric is
    in ``schemas.metrics``). Amplitudes are cycle means, the time of peak a circular mean (% of the cycle
    wraps at 100), onsets and offsets the median of the cycles' first bursts."""
    return _q(con, f"""
        SELECT m.subject_id, m.session_id, s.condition, m.muscle, m.side, k.metric, avg(k.value) AS value,
               count(*)::INTEGER AS n_cycles
        FROM emg_cycle_metrics m JOIN sessions s USING (session_id),
        LATERAL (VALUES ('peak', m.peak), ('iemg', m.iemg)) k(metric, value)
        GROUP BY ALL
        UNION ALL
        SELECT m.subject_id, m.session_id, s.condition, m.muscle, m.side, 'time_of_peak_pct',
               (degrees(atan2(avg(sin(radians(m.time_of_peak_pct * 3.6))),
                              avg(cos(radians(m.time_of_peak_pct * 3.6))))) / 3.6 + 100) % 100,
               count(*)::INTEGER
        FROM emg_cycle_metrics m JOIN sessions s USING (session_id) WHERE m.time_of_peak_pct IS NOT NULL
        GROUP BY ALL
        UNION ALL
        SELECT a.subject_id, a.session_id, s.condition, a.muscle, a.side, k.metric, median(k.value), count(*)::INTEGER
        FROM activation_onsets a JOIN sessions s USING (session_id),
        LATERAL (VALUES ('onset_ms', a.onset_ms), ('offset_ms', a.offset_ms), ('onset_pct', a.onset_pct),
                        ('offset_pct', a.offset_pct)) k(metric, value)
        WHERE {TIMING_FILTER} AND k.value IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT t.subject_id, t.session_id, s.condition, NULL, g.side, k.metric, avg(k.value), count(*)::INTEGER
        FROM gait_cycles g JOIN trials t USING (trial_id) JOIN sessions s ON s.session_id = t.session_id,
        LATERAL (VALUES ('stance_time_s', g.duration_s * g.stance_pct / 100), ('grf_peak_n', g.peak_force_z_n),
                        ('grf_impulse_ns', g.impulse_z_ns)) k(metric, value)
        WHERE g.valid AND k.value IS NOT NULL GROUP BY ALL""")


def _variability(con, cyc_norm, sessions: pl.DataFrame) -> pl.DataFrame | None:
    """Cycle-to-cycle variability of envelopes (CV, VR, onset SD) and of gait scalars (CV)."""
    onsets = _q(con, f"SELECT subject_id, session_id, muscle, side, onset_ms FROM activation_onsets "
                     f"WHERE {TIMING_FILTER}")
    cond = dict(zip(sessions["session_id"], sessions["condition"]))
    onsets_of = _rows_by(onsets, ["session_id", "muscle", "side"])
    vrows = []
    for (subj, sess, muscle, side), arr in cyc_norm.items():
        o = onsets_of.get((sess, muscle, side), onsets.clear())
        vrows.append({"subject_id": subj, "session_id": sess, "condition": cond.get(sess), "muscle": muscle,
                      "side": side, "metric": "envelope", "cv_pct": _safe(var.winter_cv, arr),
                      "variance_ratio": _safe(var.variance_ratio, arr),
                      "onset_sd_ms": _safe(var.onset_timing_sd, o["onset_ms"].to_numpy()) if o.height >= 2 else None,
                      "sd": None, "unit": metrics_registry.metric("envelope").unit, "n_cycles": int(arr.shape[0])})
    scal = _q(con, """
        SELECT t.subject_id, t.session_id, s.condition, g.side, k.metric, k.value
        FROM gait_cycles g JOIN trials t USING (trial_id) JOIN sessions s ON s.session_id = t.session_id,
        LATERAL (VALUES ('stance_time_s', g.duration_s * g.stance_pct / 100), ('grf_peak_n', g.peak_force_z_n)) k(metric, value)
        WHERE g.valid AND k.value IS NOT NULL""")
    for (subj, sess, c, side, metric), g in scal.group_by(
            ["subject_id", "session_id", "condition", "side", "metric"], maintain_order=True):
        v, spec = g["value"].to_numpy(), metrics_registry.metric(metric)
        sd = float(np.std(v, ddof=1)) if len(v) > 1 else None
        cv = sd / float(np.mean(v)) * 100 if sd is not None and spec.variability == "cv" and np.all(v > 0) else None
        vrows.append({"subject_id": subj, "session_id": sess, "condition": c, "muscle": None, "side": side,
                      "metric": metric, "cv_pct": cv, "variance_ratio": None, "onset_sd_ms": None, "sd": sd,
                      "unit": spec.unit, "n_cycles": len(v)})
    return pl.DataFrame(vrows, infer_schema_length=None) if vrows else None


def _fatigue(con) -> dict[str, pl.DataFrame]:
    """``fatigue`` (spectra and onsets per session) and, with fresh and fatigued sessions, their contrasts."""
    fat = _q(con, f"""
        SELECT t.subject_id, t.session_id, s.condition, f.muscle, f.side, avg(f.mdf_hz) AS mdf_hz,
               avg(f.mnf_hz) AS mnf_hz, avg(f.mdf_slope_hz_per_s) AS mdf_slope_hz_per_s,
               sum(f.n_bursts)::INTEGER AS n_bursts,
               (SELECT median(a.onset_ms) FROM activation_onsets a WHERE a.session_id = t.session_id
                  AND a.muscle = f.muscle AND a.side = f.side AND a.{TIMING_FILTER.replace(' AND ', ' AND a.')})
                  AS onset_ms
        FROM emg_spectra f JOIN trials t USING (trial_id) JOIN sessions s ON s.session_id = t.session_id
        GROUP BY ALL""")
    if not fat.height:
        return {}
    out = {"fatigue": fat}
    fr = fat.filter(pl.col("condition") == "fresh")
    fa = fat.filter(pl.col("condition") == "fatigued")
    if fr.height and fa.height:
        keys = ["subject_id", "muscle", "side"]
        j = (fr.group_by(keys).agg(mdf_fresh_hz=pl.col("mdf_hz").mean(), onset_fresh_ms=pl.col("onset_ms").mean())
             .join(fa.group_by(keys).agg(mdf_fatigued_hz=pl.col("mdf_hz").mean(),
                                         onset_fatigued_ms=pl.col("onset_ms").mean()), on=keys))
        out["fatigue_contrasts"] = j.with_columns(
            mdf_shift_pct=(pl.col("mdf_fatigued_hz") - pl.col("mdf_fresh_hz")) / pl.col("mdf_fresh_hz") * 100,
            onset_shift_ms=pl.col("onset_fatigued_ms") - pl.col("onset_fresh_ms"))
    return out


#: What a leg's synergies depend on besides its input (part of ``synergies.input_sha256``): change it, or any
#: of these constants, and every leg is factorised again.
SYNERGY_METHOD = (f"nmf-hals-1|{syn.VAF_THRESHOLD}|{syn.LOCAL_VAF_THRESHOLD}|{syn.N_RESTARTS}|{syn.MAX_ITER}|"
                  f"{syn.TOL}|{syn.DEFAULT_SEED}")


def synergy_input_key(session_id: str, side: str, muscles: list[str], mat: np.ndarray) -> str:
    """``synergies.input_sha256``: the leg, its muscles, the matrix factorised (bytes) and :data:`SYNERGY_METHOD`."""
    h = hashlib.sha256(repr((SYNERGY_METHOD, session_id, side, muscles, mat.shape, str(mat.dtype))).encode())
    h.update(np.ascontiguousarray(mat).tobytes())
    return h.hexdigest()


def _previous_synergies(con) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The synergy rows of the last rebuild that carry their input's hash, and their activations."""
    s = _q(con, "SELECT * FROM synergies WHERE input_sha256 IS NOT NULL")
    a = _q(con, "SELECT a.* FROM synergy_activations a SEMI JOIN (SELECT session_id, side FROM synergies WHERE "
                "input_sha256 IS NOT NULL) k USING (session_id, side)") if s.height else pl.DataFrame()
    return s, a


#: Legs factorised ahead of the rebuild (:func:`factorise_ahead`: the night's threads, as each session's
#: trials are analysed), by ``synergies.input_sha256``: the rebuild takes a leg's result from here when its
#: input hashes the same (the same input, the same factorisation), else factorises it itself.
_AHEAD: dict[str, object] = {}
_AHEAD_LOCK = threading.Lock()


def _legs(cyc_norm):
    """``(session, side, muscle keys, cycles, matrix, input key)`` of each leg with >= 3 muscles and cycles:
    the muscles' first ``cycles`` normalised cycles, clipped at 0, each muscle scaled to its maximum."""
    of_leg: dict[tuple[str, str], list] = {}
    for k in cyc_norm:  # one pass (a scan per leg grew with the square of the lake)
        of_leg.setdefault((k[1], k[3]), []).append(k)
    for sess, side in sorted(of_leg):
        keys = sorted(of_leg[sess, side])
        n = min(cyc_norm[k].shape[0] for k in keys)
        if len(keys) < 3 or n < 3:
            continue
        mat = np.vstack([cyc_norm[k][:n].reshape(-1) for k in keys])
        mat = np.clip(mat, 0, None)
        mat = mat / np.maximum(mat.max(axis=1, keepdims=True), 1e-12)
        yield sess, side, keys, n, mat, synergy_input_key(sess, side, [k[2] for k in keys], mat)


def _factorise(mat: np.ndarray, *, parallel: bool = True):
    """The leg's synergies, or the ValueError its matrix raised. ``parallel=False`` where the night's other
    threads keep the cores busy (:func:`factorise_ahead`): the restarts on numba's threads beside them only cost
    more CPU (``transforms.synergies.nmf``), the same result."""
    try:
        return syn.extract_synergies(mat, parallel=parallel)
    except ValueError as exc:
        return exc


def factorise_ahead(settings: Settings, session_id: str) -> int:
    """Factorise the legs of one session whose trials are all analysed, ahead of the cohort rebuild that
    follows (kept in this process, by input hash, until that rebuild); returns how many. Reads beside the
    night's other writers (:class:`warehouse.catalog.RetryingReads`), or, when this process holds every trial
    of the session as committed (:mod:`warehouse.fresh_trials`), from those rows: the same SQL. Either way the
    rebuild takes a result only for the input it reads from the catalog (its hash)."""
    con = catalog.connect(settings)
    held = None
    try:
        reads = catalog.RetryingReads(con, settings)
        # the session's trials: waiting in the ingest's batch (held until committed; asked first: one committed
        # meanwhile is then in the catalog), or committed
        waiting = set(trial_batch.waiting(settings, session_id))
        trials = sorted(waiting | {r[0] for r in reads.execute("SELECT trial_id FROM trials WHERE session_id = ?",
                                                               [session_id]).fetchall()})
        held = fresh_trials.source(settings, trials, needs=SESSION_INPUTS)
        if held is None:  # from the catalog (trials of earlier nights): its analyses still batched go in first
            commits.commit_waiting(settings, trials)
        cyc_norm = normalised_cycles(held if held is not None else reads, session_id=session_id)
    finally:
        if held is not None:
            held.close()
        con.close()
    for tid in trials:  # the session's last reader of them
        fresh_trials.forget(settings, tid)
    done = 0
    for _, _, _, _, mat, key in _legs(cyc_norm):
        with _AHEAD_LOCK:
            if key in _AHEAD:
                continue
        res = _factorise(mat, parallel=False)
        with _AHEAD_LOCK:
            _AHEAD[key] = res
        done += 1
    return done


def _synergies(cyc_norm, previous: tuple[pl.DataFrame, pl.DataFrame] | None = None) -> dict[str, pl.DataFrame]:
    """Per session and leg (>= 3 muscles and cycles of that leg, each time-normalised to its own cycles):
    synergy weights, each muscle's local VAF, and the mean activation per cycle sample. The number of
    synergies is the smallest with VAF >= 90 % and every local VAF >= 75 % (``transforms.synergies``).
    A leg whose input hashes as in ``previous`` (the last rebuild's rows) keeps those rows, and one
    factorised ahead (:func:`factorise_ahead`) takes that result: the same input, the same factorisation,
    without computing it again (NMF is most of a rebuild's time)."""
    srows, arows = [], []
    prev_s, prev_a = previous if previous is not None else (pl.DataFrame(), pl.DataFrame())
    known = set(prev_s["input_sha256"].to_list()) if prev_s.height else set()
    reused: list[str] = []
    for sess, side, keys, n, mat, key in _legs(cyc_norm):
        if key in known:
            reused.append(key)
            continue
        with _AHEAD_LOCK:
            res = _AHEAD.pop(key, None)
        if res is None:
            res = _factorise(mat)
        if isinstance(res, ValueError):
            log.info("synergies %s %s: %s", sess, side, res)
            continue
        for j in range(res.n_synergies):
            for i, k in enumerate(keys):
                srows.append({"session_id": sess, "n_synergies": res.n_synergies, "vaf": res.vaf, "synergy": j,
                              "muscle": k[2], "side": side, "weight": float(res.weights[i, j]),
                              "local_vaf": float(res.local_vaf[i]), "reached_criteria": res.reached_threshold,
                              "n_cycles": n, "input_sha256": key})
            mean_act = res.activations[j].reshape(n, -1).mean(axis=0)
            for p, v in enumerate(mean_act):
                arows.append({"session_id": sess, "side": side, "synergy": j, "sample": p, "pct": float(p),
                              "activation": float(v)})
    with _AHEAD_LOCK:
        _AHEAD.clear()  # what this rebuild did not use (a session that changed after): never used later
    s_frames, a_frames = [pl.DataFrame(srows)] if srows else [], [pl.DataFrame(arows)] if arows else []
    if reused:
        kept = prev_s.filter(pl.col("input_sha256").is_in(reused))
        s_frames.append(kept)
        a_frames.append(prev_a.join(kept.select("session_id", "side").unique(), on=["session_id", "side"]))
    if not s_frames:
        return {}
    return {"synergies": pl.concat(s_frames, how="diagonal_relaxed"),
            "synergy_activations": pl.concat(a_frames, how="diagonal_relaxed") if a_frames else pl.DataFrame()}


def _subject_profiles(metrics: pl.DataFrame, asymmetry: pl.DataFrame | None,
                      sessions: pl.DataFrame) -> pl.DataFrame | None:
    """Each subject's timing, amplitude and SI against the robust leave-one-out cohort reference."""
    prof_in = metrics.filter(pl.col("muscle").is_not_null() & pl.col("metric").is_in(
        ["onset_ms", "offset_ms", "time_of_peak_pct", "peak"])).select(
        "subject_id", "session_id", "muscle", "side", "metric", "value")
    if asymmetry is not None:
        si = asymmetry.filter((pl.col("metric") == "peak") & pl.col("muscle").is_not_null()).select(
            "subject_id", "session_id", "muscle", side=pl.lit(None, pl.Utf8), metric=pl.lit("si_pct"),
            value=pl.col("si_pct"))
        prof_in = pl.concat([prof_in, si], how="vertical_relaxed")
    prof_in = prof_in.join(sessions.select("session_id", "task", "condition"), on="session_id", how="left")
    if not prof_in.height:
        return None
    try:
        return profiles.patient_profiles(prof_in, **PROFILE_PARAMS)
    except ValueError as exc:
        log.warning("subject profiles: %s", exc)
        return None


def _cohort_summaries(out: dict[str, pl.DataFrame], sessions: pl.DataFrame, excluded: pl.DataFrame | None = None
                      ) -> dict[str, pl.DataFrame]:
    """Per-site cohort distributions (small cells suppressed) of asymmetry and variability; each cell says
    how many cycles are behind it (``n_cycles``) and how many channels of its muscle were excluded
    (``n_channels_excluded``: QC, plausibility or analysis exclusions of that site x condition)."""
    site = sessions.select("session_id", "site_id")
    keys = ["site_id", "condition", "muscle", "metric"]
    summaries = {}
    if "asymmetry" in out:
        v = out["asymmetry"].join(site, on="session_id").filter(pl.col("si_pct").is_not_null())
        summaries["cohort_asymmetry"] = _with_counts(profiles.cohort_summary(
            v.rename({"si_pct": "value"}), group_cols=keys), v, excluded)
    if "variability" in out:
        v = out["variability"].join(site, on="session_id").unpivot(
            index=["site_id", "condition", "muscle", "subject_id", "metric", "n_cycles"],
            on=["cv_pct", "variance_ratio", "onset_sd_ms"], variable_name="stat", value_name="value")
        v = v.with_columns(metric=pl.col("metric") + "." + pl.col("stat")).drop("stat").drop_nulls("value")
        summaries["cohort_variability"] = _with_counts(profiles.cohort_summary(v, group_cols=keys), v, excluded)
    return summaries


def _with_counts(summary: pl.DataFrame, values: pl.DataFrame, excluded: pl.DataFrame | None) -> pl.DataFrame:
    """``summary`` with ``n_cycles`` (sum over the cell's rows) and ``n_channels_excluded`` columns."""
    keys = ["site_id", "condition", "muscle", "metric"]
    text = [pl.col(k).cast(pl.String) for k in keys]  # a column of nulls only (no condition anywhere) is typed Null
    summary, values = summary.with_columns(text), values.with_columns(text)
    n = values.group_by(keys).agg(n_cycles=pl.col("n_cycles").sum().cast(pl.Int64))
    summary = summary.join(n, on=keys, how="left", nulls_equal=True).with_columns(  # withheld with the values
        n_cycles=pl.when(pl.col("suppressed")).then(None).otherwise(pl.col("n_cycles")))
    if excluded is None or not excluded.height:
        return summary.with_columns(n_channels_excluded=pl.lit(0, pl.Int64))
    ex = excluded.with_columns(text[:3]).group_by("site_id", "condition", "muscle").agg(
        n_channels_excluded=pl.len().cast(pl.Int64))
    return summary.join(ex, on=["site_id", "condition", "muscle"], how="left", nulls_equal=True).with_columns(
        pl.col("n_channels_excluded").fill_null(0))


def _excluded_channels(con) -> pl.DataFrame:
    """Every channel kept out of the analysis, per site x condition x muscle (one row per trial x channel)."""
    return _q(con, f"""
        SELECT DISTINCT t.site_id, s.condition, c.muscle, c.trial_id, c.channel
        FROM emg_channels c JOIN trials t USING (trial_id) JOIN sessions s ON s.session_id = t.session_id
        WHERE NOT ({GOOD_CHANNEL.format(a='c')})""")


def _activation_maps(cyc_norm, sessions: pl.DataFrame, con) -> pl.DataFrame:
    meta = {r["session_id"]: r for r in sessions.iter_rows(named=True)}
    # normalise each subject x muscle x side to the peak of its mean cycle (across sessions)
    peaks: dict[tuple, float] = {}
    for (subj, sess, m, s), arr in cyc_norm.items():
        peaks[(subj, m, s)] = max(peaks.get((subj, m, s), 0.0), float(np.nanmax(np.nanmean(arr, axis=0))))
    scoped: dict[tuple[str, str], dict] = {}
    for (subj, sess, m, s), arr in cyc_norm.items():
        a = arr / max(peaks[(subj, m, s)], 1e-12)
        cond = meta.get(sess, {}).get("condition") or "unknown"
        for scope, sid in (("session", sess), ("subject", subj), ("condition", cond), ("cohort", "all")):
            scoped.setdefault((scope, sid), {}).setdefault((m, s), []).append(a)
    on = _q(con, f"SELECT a.session_id, s.subject_id, s.condition, a.muscle, a.side, a.onset_pct, a.offset_pct "
                 f"FROM activation_onsets a JOIN sessions s USING (session_id) WHERE a.{TIMING_FILTER.replace(' AND ', ' AND a.')} "
                 "ORDER BY ALL")  # sums in one order whatever order the rows were committed in
    of_scope = {scope: _rows_by(on, [col]) for scope, col in
                (("session", "session_id"), ("subject", "subject_id"), ("condition", "condition"))}
    frames = []
    for (scope, sid), d in sorted(scoped.items()):
        prof = amap.activation_profile({k: np.vstack(v) for k, v in d.items()})
        o = of_scope[scope].get((sid,), on.clear()) if scope in of_scope else on
        o = o.group_by("muscle", "side").agg(onset_mean_pct=pl.col("onset_pct").mean(),
                                              offset_mean_pct=pl.col("offset_pct").mean())
        frames.append(prof.join(o, on=["muscle", "side"], how="left").with_columns(
            scope=pl.lit(scope), scope_id=pl.lit(sid)))
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def _rows_by(df: pl.DataFrame, keys: list[str]) -> dict[tuple, pl.DataFrame]:
    """``df``'s rows by the values of ``keys`` (rows in their order; keys with a null left out, as an equality
    filter leaves them): one pass, where a filter per key would scan the frame once per key (quadratic in
    the lake's size)."""
    return df.drop_nulls(keys).partition_by(keys, as_dict=True, maintain_order=True)


def _safe(fn, x):
    try:
        v = fn(x)
        return None if v is None or not np.isfinite(v) else float(v)
    except ValueError:
        return None


COHORT_HASH = profiles.__name__ + ":robust-3.5"  # bump when cohort-level parameters change


def _inputs_key(con) -> str:
    """``COHORT_HASH#<digest>`` of what the cohort tables are built from: every analysed trial,
    its analysis parameters and the bytes (sha256) it was read from.

    Compared as a set, not by time: a trial whose analysis began before the last rebuild but
    committed after it (another process's run) still marks the cohort tables stale. The key
    holds no timestamp, so two lakes built from the same files get the same one.
    """
    rows = con.execute("SELECT d.trial_id, d.params_hash, t.sha256 FROM derivations d LEFT JOIN trials t "
                       "USING (trial_id) WHERE d.step = 'analysis' ORDER BY ALL").fetchall()
    return f"{COHORT_HASH}#{hashlib.sha256(repr(rows).encode()).hexdigest()[:16]}"


def is_stale(settings: Settings) -> bool:
    """True when trials were analysed, re-analysed or removed since the cohort tables were last built."""
    con = catalog.connect(settings)
    try:
        if not con.execute("SELECT count(*) FROM derivations WHERE step = 'analysis'").fetchone()[0]:
            return False
        built = {r[0] for r in con.execute(
            "SELECT params_hash FROM derivations WHERE step = 'cohort' AND trial_id = '*'").fetchall()}
        return _inputs_key(con) not in built
    finally:
        con.close()


def rebuild(settings: Settings) -> dict:
    """Recompute every cohort-level table and replace them in one transaction."""
    con = catalog.connect(settings)
    try:
        key = _inputs_key(con)  # read before the tables: a later analysis can only make them look stale
        with catalog.every_core(con):  # after the night's trials: the rebuild's reads run alone
            tables = build_cohort_tables(con)

        def body(c):
            for name in COHORT_TABLES:
                c.execute(f"DELETE FROM {name}")
                df = tables.get(name)
                if df is not None and df.height:
                    cols = [r[0] for r in c.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'lake' "
                        "AND table_name = ? ORDER BY ordinal_position", [name]).fetchall()]
                    arrow = df.select([pl.col(x) if x in df.columns else pl.lit(None).alias(x) for x in cols]).to_arrow()
                    c.register("_c", arrow)
                    c.execute(f"INSERT INTO {name} SELECT * FROM _c")
                    c.unregister("_c")
            mark_done(c, "*", "cohort", key)
        catalog.write_atomically(settings, con, body, what="cohort tables")
        return {k: v.height for k, v in tables.items()}
    finally:
        con.close()
