"""Per-trial analysis (issue 5): gait events (plates, kinematics; :mod:`warehouse.analysis.events`),
cycles, activation timing, cycle metrics, co-contraction and burst spectra, written to the lake per trial.

Storage-side wiring only: every computation is a pure function in ``transforms/``.
All rows of one trial are replaced in one transaction, so re-running is idempotent.
"""
from __future__ import annotations

import logging

import numpy as np
import polars as pl
import pyarrow as pa

from schemas import vocab
from transforms import cocontraction, gait, onsets_baseline, onsets_refine, spectral
from transforms import cycles as cyc
from transforms import emg as emg_tx
from transforms import onsets as ons
from warehouse import catalog, fresh_trials
from warehouse.analysis import commits
from warehouse.analysis import events as ev
from warehouse.analysis.derived import (
    ENVELOPE_PARAMS,
    block_envelopes,
    channel_blocks,
    envelopes_taken,
    pending_envelopes,
    read_channels,
    take_handed_over,
)
from warehouse.settings import Settings

log = logging.getLogger(__name__)

ONSET_METHOD_PARAMS = {"hodges_bui": {}, "tkeo": {}, "double_threshold": {}, "tkeo_refined": {}}
#: Envelope plateau for the bias correction: median envelope this long after the onset
#: (as docs/methods_timing.md: the 6 Hz zero-phase step response has settled by then).
PLATEAU_WINDOW_MS = (100.0, 250.0)
#: Stance outside this range (% of the cycle) means the foot-off is wrong (e.g. a belt still loaded
#: by the other foot); the cycle is kept for EMG but its stance is left unknown. Running has a flight
#: phase: its stance is 20-50 % of the stride (sprinting to jogging).
STANCE_PLAUSIBLE_PCT = (45.0, 80.0)
STANCE_PLAUSIBLE_RUN_PCT = (20.0, 50.0)
#: Mains frequency assumed where a session declares none (as channel QC does).
DEFAULT_MAINS_HZ = 50.0
#: What the double threshold and the burst spectra read (recorded in the analysis hash).
CONDITIONING = "dc_removal+mains_comb+bandpass"
#: How envelopes are amplitude-normalised before the co-contraction index (recorded per row): each
#: muscle's cycle-normalised envelopes divided by the peak of their mean cycle in the trial, so the index
#: does not depend on electrode gain (Falconer & Winter 1985 assume comparable amplitudes).
CCI_NORMALISATION = "mean_cycle_peak"
ANALYSIS_PARAMS = {"envelope": {"band_hz": emg_tx.DEFAULT_BAND_HZ, "lowpass_hz": emg_tx.DEFAULT_LOWPASS_HZ,
                                "order": emg_tx.DEFAULT_ORDER},
                   "conditioning": CONDITIONING, "cci_normalisation": CCI_NORMALISATION,
                   "default_onset_method": ons.DEFAULT_ONSET_METHOD, "k_sd": ons.DEFAULT_K_SD,
                   "refine": {"back_ms": onsets_refine.REFINE_BACK_MS,
                              "ahead_ms": onsets_refine.REFINE_AHEAD_MS, "ramps_ms": onsets_refine.RAMP_GRID_MS,
                              "plateaus": onsets_refine.AMPLITUDE_GRID, "highpass_hz": onsets_refine.REFINE_HIGHPASS_HZ,
                              "rest_prior_bins": onsets_refine.REST_PRIOR_BINS,
                              "guard_ms": onsets_refine.AFTER_OFFSET_GUARD_MS},
                   "min_duration_ms": ons.DEFAULT_MIN_DURATION_MS, "plateau_window_ms": PLATEAU_WINDOW_MS,
                   "force_threshold_n": gait.FORCE_THRESHOLD_N, "edge_censor_ms": onsets_baseline.EDGE_CENSOR_MS,
                   "stance_pct": (STANCE_PLAUSIBLE_PCT, STANCE_PLAUSIBLE_RUN_PCT),
                   "baseline": {"stride_fraction": onsets_baseline.BASELINE_STRIDE_FRACTION,
                                "min_window_ms": onsets_baseline.BASELINE_MIN_WINDOW_MS,
                                "max_window_ms": ons.DEFAULT_BASELINE_WINDOW_MS},
                   "events": {"source_priority": ev.SOURCE_PRIORITY,
                              "foot_off_agreement_frames": ev.FOOT_OFF_AGREEMENT_FRAMES,
                              "annotation_match_s": ev.ANNOTATION_MATCH_S, "zeni": (
                                  gait.ZENI_MIN_INTERVAL_MS, gait.ZENI_MIN_PROMINENCE_MM)}}
PARAMS_HASH = emg_tx.params_hash(**ANALYSIS_PARAMS)
#: The tables the analysis reads (from ``warehouse.fresh_trials`` when it holds them all): the trial's, and its
#: site's sessions (the trial's task, terrain and mains frequency).
ANALYSIS_INPUTS = ("trials", "emg_channels", "emg_samples", "channel_qc", "gait_events", "markers", "grf",
                   "force_plates", "sessions")


def _bias_corrected(env, on_idx, rate, thr, base) -> np.ndarray:
    """Onset times (s) with the documented low-pass bias of threshold detection removed: each onset's plateau
    is the median envelope ``PLATEAU_WINDOW_MS`` after it (the onsets' full windows as one array), the
    crossing of its threshold fraction from ``onsets.lowpass_step_crossings_ms`` (all fractions at once)."""
    on_idx = np.asarray(on_idx, dtype=np.int64)
    a, b = (int(PLATEAU_WINDOW_MS[0] * rate / 1000), int(PLATEAU_WINDOW_MS[1] * rate / 1000))
    plateau = np.full(len(on_idx), np.nan)
    full = on_idx + b <= len(env) if b > a else np.zeros(len(on_idx), bool)
    if full.any():
        plateau[full] = np.median(env[on_idx[full, None] + np.arange(a, b)], axis=1)
    for k in np.flatnonzero(~full):  # a window cut by the record's end (or empty)
        seg = env[on_idx[k] + a: on_idx[k] + b]
        plateau[k] = float(np.median(seg)) if len(seg) else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(plateau > thr, (thr - base) / (plateau - base), np.nan)
    ok = (frac > 0) & (frac < 1)
    corr = np.zeros(len(on_idx))
    if ok.any():
        corr[ok] = ons.lowpass_step_crossings_ms(frac[ok], rate_hz=rate)
    return on_idx / rate - corr / 1000.0


def _trial_events(con, trial_id: str, task, terrain, grf: dict | None = None
                  ) -> tuple[pl.DataFrame, list[dict], list[dict], dict, list]:
    """(annotated, plate rows, kinematic rows, chosen events per side, plausibility findings); ``grf``: the
    trial's ``events.trial_grf``."""
    annotated = con.execute(
        "SELECT side, event, time_s FROM gait_events WHERE trial_id = ? AND source = 'annotated' ORDER BY time_s",
        [trial_id]).pl()
    tracks = ev.marker_tracks(con, trial_id)
    plate, treadmill = ev.plate_events(con, trial_id, terrain, annotated, tracks, grf)
    kinematic = ev.kinematic_events(tracks) if task in ev.KINEMATIC_TASKS else []
    chosen, findings = ev.choose_events(annotated.filter(pl.col("side").is_in(vocab.SIDES)), plate, kinematic,
                                        treadmill=treadmill, point_rate_hz=tracks.get("rate"))
    return annotated, plate, kinematic, chosen, findings


def _events_table(trial_id: str, plate: list[dict], kinematic: list[dict]) -> pa.Table:
    rows = [{**e, "source": "force_plate"} for e in plate] + [{**e, "source": "kinematic"} for e in kinematic]
    return pa.table({"trial_id": [trial_id] * len(rows), "side": [e["side"] for e in rows],
                     "event": [e["event"] for e in rows], "time_s": pa.array([e["time_s"] for e in rows], pa.float64()),
                     "source": [e["source"] for e in rows], "plate": pa.array([e["plate"] for e in rows], pa.int16()),
                     "reason": [e["reason"] for e in rows]})


def median_stride_s(chosen: dict) -> float | None:
    """Median ipsilateral strike-to-strike time over both sides (plausible cycles only), s."""
    d = np.concatenate([np.diff(v[0]) for v in chosen.values()]) if chosen else np.array([])
    d = d[(d >= cyc.MIN_CYCLE_S) & (d <= cyc.MAX_CYCLE_S)]
    return float(np.median(d)) if d.size else None


def analyse_trial(settings: Settings, trial_id: str) -> dict:
    """Compute events, cycles, onsets, metrics, CCI and spectra for one trial."""
    handed = take_handed_over(settings, trial_id)  # this trial's EMG, if its envelope step just read it here
    con = catalog.connect(settings)
    reads = catalog.RetryingReads(con, settings)  # other trials of the night may be committing meanwhile
    fresh = fresh_trials.source(settings, trial_id, needs=ANALYSIS_INPUTS)  # the rows just committed, if held
    src = fresh if fresh is not None else reads  # the trial's own tables and its site's sessions
    try:
        meta = src.execute("SELECT t.subject_id, t.session_id, s.task, s.terrain, s.mains_hz FROM trials t "
                           "LEFT JOIN sessions s USING (session_id) WHERE trial_id = ?", [trial_id]).fetchone()
        if meta is None:
            return {"trial_id": trial_id, "skipped": "unknown trial"}
        subject, session, task, terrain, mains_hz = meta
        grf = ev.trial_grf(src, trial_id)  # read once: plate contacts and the cycles' forces
        annotated, plate, kinematic, chosen, findings = _trial_events(src, trial_id, task, terrain, grf)
        all_chans = src.execute(
            "SELECT c.channel, c.muscle, c.side, c.rate_hz, q.verdict, q.flags FROM emg_channels c LEFT JOIN "
            "channel_qc q USING (trial_id, channel) WHERE c.trial_id = ? ORDER BY c.channel", [trial_id]).fetchall()
        excluded = [{"trial_id": trial_id, "channel": ch, "muscle": m, "side": sd,
                     "reason": f"qc verdict bad ({flags})"} for ch, m, sd, _, v, flags in all_chans if v == "bad"]
        excluded += [{"trial_id": trial_id, "channel": ch, "muscle": m, "side": sd,
                      "reason": "side unknown (U): no cycles, no asymmetry" if sd == "U"
                      else "no gait events for this side"} for ch, m, sd, _, v, _f in all_chans
                     if v != "bad" and sd not in chosen]
        chans = [(ch, m, sd, r) for ch, m, sd, r, v, _ in all_chans if v != "bad"]
        window_ms = onsets_baseline.stride_baseline_window_ms(median_stride_s(chosen))
        rows = _analyse_channels(src, trial_id, subject, session, chans, chosen, annotated, window_ms,
                                 stance_pct=STANCE_PLAUSIBLE_RUN_PCT if task == "run" else STANCE_PLAUSIBLE_PCT,
                                 mains_hz=mains_hz or DEFAULT_MAINS_HZ,
                                 handed=handed)
        cycles_rows = rows.pop("gait_cycles")
        cycles_rows += _grf_per_cycle(src, trial_id, chosen, plate, grf)
        tables = {
            "gait_events": _events_table(trial_id, plate, kinematic),
            "gait_cycles": _dedupe_cycles(trial_id, cycles_rows),
            "analysis_exclusions": _table(excluded),
            "plausibility": _table([{"trial_id": trial_id, **f} for f in findings]),
            **rows,
        }

        envelopes = pending_envelopes(settings, trial_id)  # this thread's envelope step left them to commit here
        # alone, or in the night's batch (warehouse.analysis.commits); either way the rows are then held
        commits.commit(settings, con, commits.Analysis(trial_id, tables, envelopes, PARAMS_HASH))
        if envelopes is not None:
            envelopes_taken(settings, trial_id)
        return {"trial_id": trial_id, **{k: (v.num_rows if v is not None else 0) for k, v in tables.items()}}
    finally:
        if fresh is not None:
            fresh.close()
        con.close()


def _analyse_channels(con, trial_id, subject, session, chans, chosen, annotated=None,
                      baseline_window_ms: float = ons.DEFAULT_BASELINE_WINDOW_MS,
                      stance_pct: tuple[float, float] = STANCE_PLAUSIBLE_PCT,
                      mains_hz: float = 50.0, handed: tuple[dict, dict] | None = None) -> dict:
    onset_rows, metric_rows, spec_rows = [], [], []
    cycle_rows = _gait_cycle_rows(chosen, annotated, stance_pct)
    norm_by_side: dict[str, dict[str, np.ndarray]] = {"L": {}, "R": {}}
    ids = {"trial_id": trial_id, "subject_id": subject, "session_id": session}
    # the samples and envelopes the trial's envelope step just computed on this thread, else one scan
    samples, known = handed if handed is not None else (read_channels(con, trial_id), {})
    wanted = {ch: r for ch, _, _, r in chans if len(samples.get(ch, ())) >= int(r)}
    envs = {ch: known[ch] for ch in wanted if ch in known}
    envs.update(block_envelopes(samples, {ch: r for ch, r in wanted.items() if ch not in envs}, **ENVELOPE_PARAMS))
    side_cycles = {side: cyc.segment_cycles(v[0], foot_offs_s=v[1] if len(v[1]) else None) for side, v in chosen.items()}
    side_valid = {side: cdf.filter(pl.col("valid")) for side, cdf in side_cycles.items()}
    metrics, normalised = _cycle_blocks(chans, envs, side_cycles, side_valid)
    timed = [(ch, rate) for ch, _, side, rate in chans if side in chosen and len(samples.get(ch, ())) >= int(rate)]
    conditioned = _conditioned_channels(samples, timed, mains_hz)
    tkeo_bursts = _tkeo_channels(samples, timed, baseline_window_ms)
    for ch, muscle, side, rate in chans:
        raw = samples.get(ch, np.empty(0, np.float32)).astype(np.float64)
        if len(raw) < int(rate):  # under a second: nothing to time
            continue
        env = envs[ch]
        if side not in chosen:
            continue
        cond = conditioned[ch]
        strikes = chosen[side][0]
        valid = side_valid[side]
        rows, default_on, default_off = _channel_onsets(raw, env, rate, strikes, valid, ch=ch, muscle=muscle,
                                                        side=side, ids=ids, baseline_window_ms=baseline_window_ms,
                                                        conditioned=cond, tkeo_bursts=tkeo_bursts.get(ch))
        onset_rows += rows
        # per-cycle metrics
        if valid.height:
            for r in metrics[ch]:
                metric_rows.append({**ids, "muscle": muscle, "side": side, "cycle": r["cycle"], "peak": r["peak"],
                                    "iemg": r["iemg"], "time_of_peak_pct": r["peak_pct"],
                                    "mean_stance_mv": r["mean_stance"], "mean_swing_mv": r["mean_swing"],
                                    "mean_loading_response_mv": r["mean_loading_response"],
                                    "params_hash": PARAMS_HASH})
            norm_by_side[side][muscle] = normalised[ch]
        if default_on is not None and len(default_on):
            spec_rows += _burst_spectra(cond, rate, default_on, default_off, trial_id=trial_id, ch=ch,
                                        muscle=muscle, side=side)
    return {"activation_onsets": _table(onset_rows), "emg_cycle_metrics": _table(metric_rows),
            "co_contraction": _table(_cci_rows(norm_by_side, ids)), "emg_spectra": _table(spec_rows),
            "gait_cycles": cycle_rows}


def _cycle_blocks(chans, envs: dict, side_cycles: dict, side_valid: dict | None = None) -> tuple[dict, dict]:
    """Per channel with an envelope and a side with cycles: its valid cycles' metrics (rows of
    ``transforms.cycles.cycle_metrics``, in cycle order) and its time-normalised valid cycles. Computed once
    per block of channels sharing a side, a rate and a length (the same arithmetic row by row as one
    channel at a time, without the per-channel overhead)."""
    if side_valid is None:
        side_valid = {side: cdf.filter(pl.col("valid")) for side, cdf in side_cycles.items()}
    blocks: dict[tuple, list[int]] = {}
    for ch, _, side, rate in chans:
        if ch in envs and side in side_cycles and side_valid[side].height:
            blocks.setdefault((side, float(rate), len(envs[ch])), []).append(ch)
    metrics: dict[int, list[dict]] = {}
    normalised: dict[int, np.ndarray] = {}
    for (side, rate, _), chs in blocks.items():
        block = np.stack([envs[ch] for ch in chs])
        cdf = side_cycles[side]
        for r in cyc.cycle_metrics(block, rate_hz=rate, cycles=cdf, channel_names=[str(ch) for ch in chs]).filter(
                pl.col("valid")).iter_rows(named=True):
            metrics.setdefault(int(r["channel"]), []).append(r)
        stacked = cyc.normalise_cycles(block, rate_hz=rate, cycles=cdf)  # cycles x channels x points
        for i, ch in enumerate(chs):
            normalised[ch] = np.ascontiguousarray(stacked[:, i, :])
            metrics.setdefault(ch, [])
    return metrics, normalised


def _gait_cycle_rows(chosen, annotated, stance_pct: tuple[float, float] = STANCE_PLAUSIBLE_PCT) -> list[dict]:
    """Gait cycles per side; an implausible stance takes an annotated foot off inside the cycle, or none."""
    ann_offs = {}
    if annotated is not None and annotated.height:
        for side in ("L", "R"):
            ann_offs[side] = annotated.filter((pl.col("side") == side) & (pl.col("event") == "foot_off"))[
                "time_s"].to_list()
    cycle_rows = []
    for side, (strikes, offs, source, off_sources) in chosen.items():
        cdf = cyc.segment_cycles(strikes, foot_offs_s=offs if len(offs) else None)
        for r in cdf.iter_rows(named=True):
            fo = r["foot_off_s"]
            fo_src = next((s for t, s in zip(offs, off_sources) if fo is not None and abs(t - fo) < 1e-9), None)
            if r["stance_pct"] is not None and not (stance_pct[0] <= r["stance_pct"] <= stance_pct[1]):
                # e.g. a treadmill belt still loaded by the other foot (cross-over step): use an annotated foot
                # off inside the cycle if it gives a plausible stance, else leave the stance unknown
                r, fo_src = {**r, "foot_off_s": None, "stance_pct": None}, None
                for t in ann_offs.get(side, ()):
                    pct = (t - r["start_s"]) / r["duration_s"] * 100
                    if r["start_s"] < t < r["end_s"] and stance_pct[0] <= pct <= stance_pct[1]:
                        r, fo_src = {**r, "foot_off_s": float(t), "stance_pct": float(pct)}, "annotated"
            cycle_rows.append({**r, "side": side, "event_source": source, "foot_off_source": fo_src})
    return cycle_rows


def _conditioned(raw, rate, mains_hz) -> np.ndarray:
    """Raw EMG conditioned as the envelope's input (DC removal, mains comb, band-pass ``DEFAULT_BAND_HZ``):
    what the double threshold and the burst spectra see (``CONDITIONING``)."""
    return emg_tx.condition(raw, rate_hz=rate, mains_hz=mains_hz if mains_hz < 0.45 * rate else None,
                            band_hz=emg_tx.DEFAULT_BAND_HZ, order=emg_tx.DEFAULT_ORDER)


def _conditioned_channels(samples: dict, chans: list[tuple], mains_hz) -> dict:
    """``{channel: _conditioned(its float64 samples)}`` of the ``(channel, rate)`` pairs: channels of one rate and
    length conditioned as one block (``emg.zero_phase`` filters them side by side; each row the same bits as
    alone)."""
    out = {}
    for rate, chs in channel_blocks(samples, chans):
        block = _conditioned(np.stack([samples[ch] for ch in chs]).astype(np.float64), rate, mains_hz)
        out.update(zip(chs, block))
    return out


def _tkeo_channels(samples: dict, chans: list[tuple], baseline_window_ms: float) -> dict:
    """``{channel: (onsets, offsets)}`` of the TKEO detector on the ``(channel, rate)`` pairs' raw EMG, channels of
    one rate and length as one block (``onsets.onsets_tkeo_2d``: each the same bursts as detected alone). A block
    the detector refuses is left out: its channels are detected one by one (and their errors logged) as before."""
    out = {}
    for rate, chs in channel_blocks(samples, chans):
        try:
            out.update(zip(chs, ons.onsets_tkeo_2d(np.stack([samples[ch] for ch in chs]).astype(np.float64),
                                                   rate_hz=rate, baseline_window_ms=baseline_window_ms,
                                                   **ONSET_METHOD_PARAMS["tkeo"])))
        except ValueError:
            continue
    return out


def _detect(method, raw, env, rate, baseline_window_ms, conditioned=None, found=None):
    """(onsets, offsets, start_censored, end_censored): samples, and the bursts cut by the record's edges.
    Hodges-Bui reads the envelope, TKEO the raw EMG (it band-passes itself), the double threshold the
    conditioned EMG. ``found`` (method -> bursts) lets the refined TKEO start from the TKEO bursts already
    detected on the same channel instead of detecting them again (the same computation), and holds the TKEO
    bursts when the trial's block detected them (``_tkeo_channels``)."""
    sig = env if method == "hodges_bui" else (
        conditioned if method == "double_threshold" and conditioned is not None else raw)
    if method == "tkeo_refined" and found is not None and "tkeo" in found and not ONSET_METHOD_PARAMS[method]:
        on, off = onsets_refine.refine_bursts(raw, *found["tkeo"], rate_hz=rate, baseline_window_ms=baseline_window_ms)
    elif method == "tkeo" and found is not None and "tkeo" in found:  # detected with its trial's block
        on, off = found["tkeo"]
    else:
        on, off = ons.detect_onsets(sig, rate_hz=rate, method=method, baseline_window_ms=baseline_window_ms,
                                    **ONSET_METHOD_PARAMS[method])
    if found is not None:
        found[method] = (on, off)
    return (on, off, *onsets_baseline.censored_bursts(on, off, n_samples=len(raw), rate_hz=rate))


def _channel_onsets(raw, env, rate, strikes, valid, *, ch, muscle, side, ids,
                    baseline_window_ms: float = ons.DEFAULT_BASELINE_WINDOW_MS,
                    conditioned=None, tkeo_bursts=None) -> tuple[list[dict], object, object]:
    """Onsets of one channel by every method, relative to the valid cycles; and the default method's
    complete bursts' onsets and offsets in s (None when it found none).

    A burst already active at the first sample (its onset within ``onsets_baseline.EDGE_CENSOR_MS`` of it)
    is kept as its cycle's burst 0 with ``censored = true`` and no onset (it is never dropped, so the next
    burst is not renumbered as the first); one still active at the last sample keeps its onset and has no
    offset."""
    rows = []
    default_on = default_off = None
    ok_cycles = set(valid["cycle"].to_list())
    found: dict = {} if tkeo_bursts is None else {"tkeo": tkeo_bursts}
    for method in ons.ONSET_METHODS:
        try:
            on, off, start_cut, end_cut = _detect(method, raw, env, rate, baseline_window_ms, conditioned, found)
            censored = start_cut | end_cut
        except ValueError as exc:
            log.info("%s ch%s %s: %s", ids["trial_id"], ch, method, exc)
            continue
        if not len(on):
            continue
        on_s = on / rate
        corrected = False
        if method == "hodges_bui":
            mean, sd, _ = ons.baseline_stats(env, rate_hz=rate, baseline_window_ms=baseline_window_ms)
            on_s = np.where(start_cut, on_s, _bias_corrected(env, on, rate, mean + ons.DEFAULT_K_SD * sd, mean))
            corrected = True
        if method == ons.DEFAULT_ONSET_METHOD:
            default_on, default_off = on_s[~censored], off[~censored] / rate
        try:
            rel = cyc.onsets_relative_arrays(on_s, off / rate, strikes_s=strikes)
        except ValueError:
            continue
        for r in _bursts_in_cycles(rel, start_cut, end_cut):
            if r["cycle"] not in ok_cycles:
                continue
            start_c, end_c = r["start_censored"], r["end_censored"]
            rows.append({**ids, "muscle": muscle, "side": side, "cycle": r["cycle"], "method": method,
                         "burst": r["burst"], "onset_ms": None if start_c else r["onset_ms"],
                         "offset_ms": None if end_c else r["offset_ms"],
                         "onset_pct": None if start_c else r["onset_pct"],
                         "offset_pct": None if end_c else r["offset_pct"], "censored": bool(start_c or end_c),
                         "is_default": method == ons.DEFAULT_ONSET_METHOD,
                         "bias_corrected": corrected and not start_c, "params_hash": PARAMS_HASH})
    return rows, default_on, default_off


def _bursts_in_cycles(cols: dict[str, np.ndarray], start_cut, end_cut) -> list[dict]:
    """The bursts of ``cycles.onsets_relative_arrays`` that fall in a cycle, in their order, with their censoring
    flags and ``burst`` (0, 1, ... by onset within the cycle; ties in order). numpy on a few dozen rows: a
    polars expression per channel and method costs more than the arithmetic."""
    keep = np.flatnonzero(cols["cycle"] >= 0)
    cycle, onset = cols["cycle"][keep], cols["onset_s"][keep]
    order = np.lexsort((keep, onset, cycle))  # by cycle, then onset, then position
    first = np.r_[0, np.flatnonzero(np.diff(cycle[order])) + 1]
    burst = np.empty(keep.size, np.int64)
    burst[order] = np.arange(keep.size) - np.repeat(first, np.diff(np.r_[first, keep.size]))

    def num(x):
        return None if x != x else float(x)  # NaN is null, as in the transform's frame
    return [{"cycle": int(cycle[j]), "burst": int(burst[j]), "start_censored": bool(start_cut[i]),
             "end_censored": bool(end_cut[i]), **{c: num(cols[c][i]) for c in ("onset_ms", "offset_ms", "onset_pct",
                                                                             "offset_pct")}}
            for j, i in enumerate(keep)]


def _burst_spectra(raw, rate, default_on, default_off, *, trial_id, ch, muscle, side) -> list[dict]:
    """Mean burst median/mean frequency and the MDF slope over the trial (fatigue); bursts over 0.1 s."""
    bursts = np.column_stack([default_on, default_off])
    bursts = bursts[(bursts[:, 1] - bursts[:, 0]) > 0.1]
    if not len(bursts):
        return []
    try:
        fr = spectral.burst_frequencies(raw, rate_hz=rate, bursts_s=bursts)
        mdf, mnf, centre = (fr[c].to_numpy() for c in ("mdf_hz", "mnf_hz", "centre_s"))  # nulls are NaN
        keep = ~np.isnan(mdf)  # bursts too short for a spectrum have none
        n = int(keep.sum())
        if not n:
            return []
        slope = (spectral.frequency_slope(centre[keep], mdf[keep]) if n >= 3 else {"slope_hz_per_s": None})
        return [{"trial_id": trial_id, "channel": ch, "muscle": muscle, "side": side,
                 "mdf_hz": float(pl.Series(mdf[keep]).mean()),
                 "mnf_hz": float(pl.Series(mnf[keep], nan_to_null=True).mean()),
                 "mdf_slope_hz_per_s": slope["slope_hz_per_s"], "n_bursts": n,
                 "params_hash": PARAMS_HASH}]
    except ValueError as exc:
        log.info("%s ch%s spectra: %s", trial_id, ch, exc)
        return []


def _cci_rows(norm_by_side, ids) -> list[dict]:
    """Co-contraction index per antagonist pair and cycle, from cycle- and amplitude-normalised envelopes."""
    cci_rows = []
    for side, envs in norm_by_side.items():
        if not envs:
            continue
        scaled = {m: np.clip(e, 0, None) / max(float(np.nanmax(np.nanmean(np.clip(e, 0, None), axis=0))), 1e-12)
                  for m, e in envs.items()}
        df = cocontraction.cci_pairs(scaled, pairs=vocab.ANTAGONIST_PAIRS)
        for r in df.iter_rows(named=True):
            cci_rows.append({**ids, "side": side, "cycle": r["cycle"], "muscle_a": r["muscle_a"],
                             "muscle_b": r["muscle_b"], "cci": r["cci"], "normalisation": CCI_NORMALISATION})
    return cci_rows


def _grf_per_cycle(con, trial_id, chosen, plate, grf: dict | None = None) -> list[dict]:
    """Stance peak force and impulse of every cycle whose strike is a plate contact of that side (within
    ``ANNOTATION_MATCH_S``, whatever source the cycle's events come from), from the plate's own strike
    to its foot off. ``grf``: the trial's ``events.trial_grf`` (else read when a cycle needs it)."""
    out = []
    for side, (strikes, offs, source, _) in chosen.items():
        mine = [e for e in plate if e["side"] == side and e["event"] == "foot_strike"]
        for k in range(len(strikes) - 1):
            near = [e for e in mine if abs(e["time_s"] - strikes[k]) <= ev.ANNOTATION_MATCH_S]
            if not near:
                continue
            hit = min(near, key=lambda e: abs(e["time_s"] - strikes[k]))
            off = [e["time_s"] for e in plate if e["plate"] == hit["plate"] and e["event"] == "foot_off"
                   and hit["time_s"] < e["time_s"] < strikes[k + 1]]
            if not off:
                continue
            if grf is None:  # the trial's forces, read once (not one query per cycle)
                grf = ev.trial_grf(con, trial_id)
            g = grf.get(hit["plate"])
            t, fz_n = (g["time_s"], g["force_z_n"]) if g is not None else (np.empty(0), np.empty(0))
            keep = np.ma.filled((t >= hit["time_s"]) & (t <= min(off)), False)  # as SQL BETWEEN: NULL out
            if keep.sum() > 2:
                fz = np.abs(fz_n[keep].astype(float))
                out.append({"side": side, "cycle": k, "peak_force_z_n": float(fz.max()),
                            "impulse_z_ns": float(np.trapezoid(fz, t[keep]))})
    return out


def _dedupe_cycles(trial_id: str, rows: list[dict]) -> pa.Table | None:
    """Merge the GRF rows into the cycle rows (one row per side x cycle)."""
    base = {}
    for r in rows:
        key = (r["side"], r["cycle"])
        base.setdefault(key, {}).update({k: v for k, v in r.items() if v is not None or k not in base.get(key, {})})
    cols = ["side", "cycle", "start_s", "end_s", "foot_off_s", "duration_s", "stance_pct", "valid", "reason",
            "event_source", "foot_off_source", "peak_force_z_n", "impulse_z_ns"]
    recs = [r for r in base.values() if "start_s" in r]
    if not recs:
        return None
    tbl = pl.DataFrame([{c: r.get(c) for c in cols} for r in recs],
                       schema={"side": pl.Utf8, "cycle": pl.Int32, "start_s": pl.Float64, "end_s": pl.Float64,
                               "foot_off_s": pl.Float64, "duration_s": pl.Float64, "stance_pct": pl.Float64,
                               "valid": pl.Boolean, "reason": pl.Utf8, "event_source": pl.Utf8,
                               "foot_off_source": pl.Utf8, "peak_force_z_n": pl.Float64, "impulse_z_ns": pl.Float64})
    tbl = tbl.with_columns(reason=pl.when(pl.col("reason") == "").then(None).otherwise(pl.col("reason")),
                           trial_id=pl.lit(trial_id))
    return tbl.to_arrow()


def _table(rows: list[dict]) -> pa.Table | None:
    return pa.Table.from_pylist(rows) if rows else None
