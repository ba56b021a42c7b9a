"""Signals and time-normalised cycles of the lake's trials, for analysts (``Lake.signals``, ``Lake.cycles``).

Every query runs through a :class:`~warehouse.serving.reading.Reader` (the member session: gated,
scoped, one pinned snapshot). Columns carry their units (``time_s``, ``emg_mv``, ``envelope_mv``,
``force_z_n``, ``x_mm``).

Layouts
    ``long`` (default): one row per channel (or plate, marker) and sample, with the channel's
    muscle and side: the lake's own layout, ready for ``group_by``/plotting libraries.
    ``wide``: one row per sample and one column per channel, named ``<muscle>_<side>_emg_mv``,
    ``<muscle>_<side>_envelope_mv``, ``plate<N>_force_z_n``..., ``<marker>_x_mm``...

Cycles
    :func:`cycles` time-normalises the stored envelopes of every valid gait cycle onto 101 points
    (0-100 % of the cycle) with the analysis core's own function
    (:func:`transforms.cycles.normalise_cycles`, the same cycles the analysis keeps: valid, and
    ending inside the envelope), and adds ``envelope_norm``: the envelope divided by the peak of
    the subject's mean cycle (largest over the subject's sessions), the normalisation of the
    report's activation maps. The mean of ``envelope_norm`` over a session's cycles is that
    session's activation map (``activation_map`` rows of scope ``session``).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import polars as pl

from transforms import cycles as cyc
from warehouse.serving.reading import LakeError, Reader, check_trial

KINDS = ("emg", "envelope", "grf", "markers")
LAYOUTS = ("long", "wide")
_SQL = {
    "emg": ("SELECT c.channel, c.muscle, c.side, c.label, c.rate_hz, s.sample_index, "
            "s.sample_index / c.rate_hz AS time_s, s.emg_mv FROM emg_samples s JOIN emg_channels c "
            "ON c.trial_id = s.trial_id AND c.channel = s.channel WHERE s.trial_id = ? "
            "ORDER BY c.channel, s.sample_index"),
    "envelope": ("SELECT e.channel, e.muscle, e.side, e.rate_hz, e.sample_index, e.time_s, e.envelope_mv "
                 "FROM emg_envelopes e WHERE e.trial_id = ? AND e.params_hash = ? ORDER BY e.channel, e.sample_index"),
    "grf": ("SELECT plate, sample_index, time_s, force_x_n, force_y_n, force_z_n, cop_x_mm, cop_y_mm, "
            "free_moment_nmm FROM grf WHERE trial_id = ? ORDER BY plate, sample_index"),
    "markers": "SELECT marker, frame, time_s, x_mm, y_mm, z_mm FROM markers WHERE trial_id = ? ORDER BY marker, frame",
}


def envelope_params(reader: Reader, trial_ids: list[str] | None, params_hash: str | None) -> str | None:
    """The one envelope ``params_hash`` of these trials (or the one asked for).

    Raises
    ------
    LakeError
        When the trials hold envelopes of several parameter sets and none was chosen, or the chosen
        one is not there.
    """
    where = " WHERE trial_id IN (SELECT unnest(?))" if trial_ids is not None else ""
    found = sorted(r for r in reader.arrow(f"SELECT DISTINCT params_hash FROM emg_envelopes{where}",
                                           [trial_ids] if trial_ids is not None else None).column(0).to_pylist())
    if params_hash is not None:
        if params_hash not in found:
            raise LakeError(f"no envelopes with params_hash {params_hash!r}; found: {', '.join(found) or 'none'}.")
        return params_hash
    if len(found) > 1:
        raise LakeError(f"envelopes of {len(found)} parameter sets ({', '.join(found)}): choose one with "
                        "params_hash=...")
    return found[0] if found else None


def signals(reader: Reader, trial_id: str, kind: str = "emg", *, layout: str = "long",
            params_hash: str | None = None) -> pl.DataFrame:
    """One trial's raw EMG, envelopes, ground reaction forces or marker trajectories.

    Raises
    ------
    LakeError
        Unknown ``kind`` or ``layout``; a wide EMG frame of channels with different rates.
    UnknownTrialError
        A trial the reader cannot see (``Refused`` for an embargoed or unconsented site).
    """
    if kind not in KINDS:
        raise LakeError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}.")
    if layout not in LAYOUTS:
        raise LakeError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    check_trial(reader, trial_id)
    params = [trial_id]
    if kind == "envelope":
        params.append(envelope_params(reader, [trial_id], params_hash))
    df = reader.frame(_SQL[kind], params)
    if layout == "long":
        return df
    if kind in ("emg", "envelope"):
        return _wide_channels(df, trial_id, "emg_mv" if kind == "emg" else "envelope_mv")
    if kind == "grf":
        return _wide(df, "plate", "sample_index", [c for c in df.columns if c.endswith(("_n", "_mm", "_nmm"))],
                     lambda p, col: f"plate{p}_{col}")
    return _wide(df, "marker", "frame", ["x_mm", "y_mm", "z_mm"], lambda m, col: f"{m}_{col}")


def _wide_channels(df: pl.DataFrame, trial_id: str, value: str) -> pl.DataFrame:
    rates = df.select("channel", "rate_hz").unique()
    if rates["rate_hz"].n_unique() > 1:
        raise LakeError(f"trial {trial_id!r} has channels at different rates ({sorted(rates['rate_hz'].unique())} "
                        "Hz): use layout='long'.")
    names, seen = {}, defaultdict(int)
    for ch, m, s in df.select("channel", "muscle", "side").unique().sort("channel").iter_rows():
        seen[(m, s)] += 1
        names[ch] = f"{m}_{s}" + (f"_ch{ch}" if seen[(m, s)] > 1 else "")
    out = _wide(df, "channel", "sample_index", [value], lambda ch, col: f"{names[ch]}_{col}")
    rate = float(rates["rate_hz"][0]) if rates.height else 1.0
    return out.with_columns((pl.col("sample_index") / rate).alias("time_s")).select(
        "sample_index", "time_s", *[c for c in out.columns if c not in ("sample_index", "time_s")])


def _wide(df: pl.DataFrame, key: str, index: str, values: list[str], name) -> pl.DataFrame:
    if df.is_empty():
        return pl.DataFrame({index: [], "time_s": []}, schema={index: pl.Int32, "time_s": pl.Float64})
    parts = []
    for k in df[key].unique(maintain_order=True).to_list():
        part = df.filter(pl.col(key) == k).select(index, *[pl.col(v).alias(name(k, v)) for v in values])
        parts.append(part)
    out = parts[0]
    for p in parts[1:]:
        out = out.join(p, on=index, how="full", coalesce=True)
    out = out.sort(index)
    if "time_s" in df.columns:
        times = df.group_by(index).agg(pl.col("time_s").first())
        out = out.join(times, on=index, how="left")
    return out.select(index, *(["time_s"] if "time_s" in out.columns else []),
                      *[c for c in out.columns if c not in (index, "time_s")])


# --------------------------------------------------------------------------- cycles
def cycles(reader: Reader, trial_ids: list[str] | None, *, muscle: str | None = None, side: str | None = None,
           params_hash: str | None = None, n_points: int = cyc.N_POINTS) -> pl.DataFrame:
    """Time-normalised envelopes of every valid gait cycle of the trials (all visible trials when None).

    Returns
    -------
    polars.DataFrame
        ``trial_id, subject_id, session_id, muscle, side, cycle, pct, envelope_mv, envelope_norm``,
        sorted by trial, muscle, side, cycle and pct (0..100 in ``n_points`` steps).

    Raises
    ------
    LakeError, UnknownTrialError
    """
    if trial_ids is not None:
        for t in trial_ids:
            check_trial(reader, t)
    wanted = None if trial_ids is None else set(trial_ids)
    subjects_sql = ("SELECT DISTINCT subject_id FROM trials" + (" WHERE trial_id IN (SELECT unnest(?))"
                                                                if wanted is not None else ""))
    scope = reader.frame(f"SELECT trial_id, subject_id, session_id FROM trials WHERE subject_id IN ({subjects_sql})",
                         [sorted(wanted)] if wanted is not None else None)  # every trial of those subjects: the peak
    ids = scope["trial_id"].to_list()
    ph = envelope_params(reader, ids, params_hash) if ids else None
    if ph is None:
        return _empty_cycles()
    env = reader.frame("SELECT trial_id, channel, muscle, side, rate_hz, envelope_mv FROM emg_envelopes WHERE "
                       "params_hash = ? AND trial_id IN (SELECT unnest(?)) ORDER BY trial_id, channel, sample_index",
                       [ph, ids])
    gc = reader.frame("SELECT trial_id, side, cycle, start_s, end_s, valid FROM gait_cycles WHERE valid AND "
                      "trial_id IN (SELECT unnest(?)) ORDER BY trial_id, side, cycle", [ids])
    meta = {r[0]: r[1:] for r in scope.iter_rows()}
    arrays, frames = defaultdict(list), []
    for (tid, ch, m, s), g in env.group_by(["trial_id", "channel", "muscle", "side"], maintain_order=True):
        c = gc.filter((pl.col("trial_id") == tid) & (pl.col("side") == s))
        x = g["envelope_mv"].to_numpy().astype(np.float64)
        rate = float(g["rate_hz"][0])
        c = c.filter(pl.col("end_s") < (len(x) - 1) / rate)
        if c.is_empty():
            continue
        arr = np.atleast_2d(cyc.normalise_cycles(x, rate_hz=rate, cycles=c, n_points=n_points))
        subj, sess = meta[tid]
        arrays[(subj, sess, m, s)].append(arr)
        if (wanted is None or tid in wanted) and muscle in (None, m) and side in (None, s):
            frames.append((tid, subj, sess, m, s, c["cycle"].to_list(), arr))
    peaks: dict[tuple, float] = {}
    for (subj, _, m, s), parts in arrays.items():  # as warehouse/analysis/cohort.py: largest session mean peak
        peak = float(np.nanmax(np.nanmean(np.vstack(parts), axis=0)))
        peaks[(subj, m, s)] = max(peaks.get((subj, m, s), 0.0), peak)
    pct = np.linspace(0.0, 100.0, n_points)
    out = []
    for tid, subj, sess, m, s, numbers, arr in frames:
        k, n = arr.shape
        out.append(pl.DataFrame({
            "trial_id": [tid] * (k * n), "subject_id": [subj] * (k * n), "session_id": [sess] * (k * n),
            "muscle": [m] * (k * n), "side": [s] * (k * n), "cycle": np.repeat(np.asarray(numbers, np.int32), n),
            "pct": np.tile(pct, k), "envelope_mv": arr.ravel(),
            "envelope_norm": arr.ravel() / max(peaks[(subj, m, s)], 1e-12)}))
    if not out:
        return _empty_cycles()
    return pl.concat(out).sort("trial_id", "muscle", "side", "cycle", "pct")


def _empty_cycles() -> pl.DataFrame:
    return pl.DataFrame(schema={"trial_id": pl.String, "subject_id": pl.String, "session_id": pl.String,
                                "muscle": pl.String, "side": pl.String, "cycle": pl.Int32, "pct": pl.Float64,
                                "envelope_mv": pl.Float64, "envelope_norm": pl.Float64})
