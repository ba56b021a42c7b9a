"""Gait-cycle segmentation, time normalisation and per-cycle EMG metrics.

A cycle runs from an ipsilateral foot strike to the next one.  Times are seconds from
the first sample of the signals (``index / rate_hz``); percentages are of the cycle.

Onset-to-cycle rule (:func:`onsets_relative_to_cycles`)
-------------------------------------------------------
An onset belongs to cycle k (strike ``S_k``, duration ``T_k``) if it lies in
``[S_k - p T_k, S_{k+1} - p T_{k+1})`` with ``p = PRE_STRIKE_WINDOW_PCT / 100``
(30 %): an onset up to 30 % of a cycle *before* a strike belongs to the upcoming cycle
(e.g. tibialis anterior or hamstrings switching on in terminal swing) and is reported
with a negative latency.  The last cycle's window ends at ``S_last_end - p T_last``.
Onsets outside every window are reported with cycle = -1.  Offsets are expressed
relative to the same cycle as their onset (they may exceed 100 %).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import polars as pl

__all__ = [
    "N_POINTS",
    "STANCE_PCT",
    "LOADING_RESPONSE_END_PCT",
    "PRE_STRIKE_WINDOW_PCT",
    "MIN_CYCLE_S",
    "MAX_CYCLE_S",
    "segment_cycles",
    "time_normalise",
    "normalise_cycles",
    "normalise_stance_swing",
    "cycle_metrics",
    "onsets_relative_to_cycles",
    "onsets_relative_arrays",
    "activation_sequences",
    "sequence_consistency",
]

#: Points of a time-normalised cycle (0, 1, ..., 100 %).
N_POINTS = 101
#: Stance share used when stance and swing are normalised separately, % (Perry: ~60 %).
STANCE_PCT = 60.0
#: End of loading response, % of cycle (Perry & Burnfield: 0-10 %).
LOADING_RESPONSE_END_PCT = 10.0
#: Onsets this far (% of the cycle) before a strike belong to the upcoming cycle.
PRE_STRIKE_WINDOW_PCT = 30.0
#: Shortest plausible cycle, s (shorter = missed or spurious event).
MIN_CYCLE_S = 0.4
#: Longest plausible cycle, s (longer = a strike is missing).
MAX_CYCLE_S = 2.5


def _times(x, name: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D")
    return a


def segment_cycles(
    strikes_s,
    /,
    *,
    foot_offs_s=None,
    bad_intervals_s=(),
    min_cycle_s: float = MIN_CYCLE_S,
    max_cycle_s: float = MAX_CYCLE_S,
) -> pl.DataFrame:
    """Cycles from consecutive ipsilateral strikes, with exclusion reasons.

    Parameters
    ----------
    strikes_s : array_like
        Ipsilateral foot-strike times, s (NaN entries are dropped, order is not needed).
    foot_offs_s : array_like, optional
        Ipsilateral foot-off times, s; each valid cycle needs exactly one inside it.
    bad_intervals_s : sequence of (float, float, str)
        QC intervals ``(start_s, end_s, reason)``; an overlapping cycle is excluded.
    min_cycle_s, max_cycle_s : float
        Plausible cycle duration range, s.

    Returns
    -------
    polars.DataFrame
        Columns ``cycle`` (int), ``start_s``, ``end_s``, ``foot_off_s`` (null if none),
        ``duration_s``, ``stance_pct`` (null if no foot off), ``valid`` (bool),
        ``reason`` (str, "" when valid; several reasons joined by "; ").

    Raises
    ------
    ValueError
        On malformed inputs.
    """
    s = _times(strikes_s, "strikes_s")
    s = np.sort(s[np.isfinite(s)])
    fo = None if foot_offs_s is None else np.sort(_times(foot_offs_s, "foot_offs_s"))
    if fo is not None:
        fo = fo[np.isfinite(fo)]
    rows = []
    for k in range(max(0, s.size - 1)):
        a, b = float(s[k]), float(s[k + 1])
        reasons = []
        dur = b - a
        if dur < min_cycle_s:
            reasons.append(f"cycle too short ({dur:.3f} s < {min_cycle_s} s)")
        if dur > max_cycle_s:
            reasons.append(f"cycle too long ({dur:.3f} s > {max_cycle_s} s): missing strike?")
        off = None
        if fo is not None:
            inside = fo[(fo > a) & (fo < b)]
            if inside.size == 0:
                reasons.append("missing foot off")
            elif inside.size > 1:
                reasons.append(f"{inside.size} foot offs in one cycle")
            else:
                off = float(inside[0])
        for item in bad_intervals_s:
            try:
                q0, q1, why = item
            except (TypeError, ValueError):
                raise ValueError("bad_intervals_s items must be (start_s, end_s, reason)") from None
            if float(q0) < b and float(q1) > a:
                reasons.append(f"bad QC: {why}")
        rows.append(
            {
                "cycle": k,
                "start_s": a,
                "end_s": b,
                "foot_off_s": off,
                "duration_s": dur,
                "stance_pct": None if off is None else (off - a) / dur * 100.0,
                "valid": not reasons,
                "reason": "; ".join(reasons),
            }
        )
    schema = {
        "cycle": pl.Int64,
        "start_s": pl.Float64,
        "end_s": pl.Float64,
        "foot_off_s": pl.Float64,
        "duration_s": pl.Float64,
        "stance_pct": pl.Float64,
        "valid": pl.Boolean,
        "reason": pl.Utf8,
    }
    return pl.DataFrame(rows, schema=schema)


def _signal(x, name="x") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (1, 2) or a.shape[-1] < 2:
        raise ValueError(f"{name} must be 1-D or 2-D (channels x samples) with >= 2 samples")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _interp_at(x: np.ndarray, t_s: np.ndarray, rate: float) -> np.ndarray:
    """Linear interpolation of x (..., samples) at times t_s (s from the first sample)."""
    pos = t_s * rate
    n = x.shape[-1]
    if pos.min() < -1e-9 or pos.max() > n - 1 + 1e-9:
        raise ValueError(
            f"interval [{t_s.min():.4f}, {t_s.max():.4f}] s is outside the signal (0-{(n - 1) / rate:.4f} s)"
        )
    pos = np.clip(pos, 0, n - 1)
    i0 = np.minimum(np.floor(pos).astype(np.int64), n - 2)
    w = pos - i0
    return x[..., i0] * (1.0 - w) + x[..., i0 + 1] * w


def time_normalise(x, /, *, rate_hz: float, start_s: float, end_s: float, n_points: int = N_POINTS) -> np.ndarray:
    """Resample ``x`` between ``start_s`` and ``end_s`` onto ``n_points`` equally spaced
    points (0-100 % for 101 points), linear interpolation.

    Raises
    ------
    ValueError
        If the interval is empty or outside the signal, or on bad input.
    """
    a = _signal(x)
    if not (end_s > start_s):
        raise ValueError(f"end_s ({end_s}) must be after start_s ({start_s})")
    if n_points < 2:
        raise ValueError("n_points must be >= 2")
    return _interp_at(a, np.linspace(start_s, end_s, n_points), float(rate_hz))


def normalise_cycles(
    x, /, *, rate_hz: float, cycles: pl.DataFrame, n_points: int = N_POINTS, valid_only: bool = True
) -> np.ndarray:
    """Stack time-normalised cycles: (cycles x points) or (cycles x channels x points).

    Raises
    ------
    ValueError
        If a cycle lies outside the signal.
    """
    rows = cycles.filter(pl.col("valid")) if valid_only else cycles
    a = _signal(x)
    out = [
        time_normalise(a, rate_hz=rate_hz, start_s=r["start_s"], end_s=r["end_s"], n_points=n_points)
        for r in rows.iter_rows(named=True)
    ]
    shape = (0,) + a.shape[:-1] + (n_points,)
    return np.stack(out) if out else np.empty(shape)


def normalise_stance_swing(
    x,
    /,
    *,
    rate_hz: float,
    start_s: float,
    foot_off_s: float,
    end_s: float,
    stance_pct: float = STANCE_PCT,
    n_points: int = N_POINTS,
) -> np.ndarray:
    """Normalise stance and swing separately: stance maps to 0-``stance_pct`` % and swing
    to ``stance_pct``-100 % of an ``n_points`` grid (piecewise-linear time warp).

    Raises
    ------
    ValueError
        If the events are not ordered start < foot off < end, or on bad input.
    """
    a = _signal(x)
    if not (start_s < foot_off_s < end_s):
        raise ValueError(f"need start_s < foot_off_s < end_s, got {start_s}, {foot_off_s}, {end_s}")
    if not (0.0 < stance_pct < 100.0):
        raise ValueError(f"stance_pct must be in (0, 100), got {stance_pct}")
    pct = np.linspace(0.0, 100.0, n_points)
    t = np.interp(pct, [0.0, stance_pct, 100.0], [start_s, foot_off_s, end_s])
    return _interp_at(a, t, float(rate_hz))


def _row_means(a: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Each row's mean over the columns ``keep``, as ``a[i, keep].mean()`` bit for bit (a boolean index along
    the columns returns a column-major copy, whose row sums numpy would not add pairwise)."""
    return np.ascontiguousarray(a[:, keep]).mean(axis=1)


def cycle_metrics(
    envelope,
    /,
    *,
    rate_hz: float,
    cycles: pl.DataFrame,
    loading_response_end_pct: float = LOADING_RESPONSE_END_PCT,
    channel_names=None,
) -> pl.DataFrame:
    """Per-cycle envelope metrics for every channel.

    Per (cycle, channel): ``peak`` (max of the 101-point normalised envelope),
    ``peak_pct`` (its position, %), ``iemg`` (time integral of the envelope over the
    cycle, unit x s, trapezoid on the original samples), ``mean_cycle``,
    ``mean_stance`` / ``mean_swing`` (split at the foot off; null without one) and
    ``mean_loading_response`` (0 to ``loading_response_end_pct`` %).  Invalid cycles
    are kept with null metrics and their ``reason``.

    Returns
    -------
    polars.DataFrame
        One row per cycle and channel.

    Raises
    ------
    ValueError
        On bad input or a cycle outside the signal.
    """
    env = _signal(envelope, "envelope")
    env2 = env[None, :] if env.ndim == 1 else env
    rate = float(rate_hz)
    names = list(channel_names) if channel_names is not None else [f"ch{i}" for i in range(env2.shape[0])]
    if len(names) != env2.shape[0]:
        raise ValueError(f"{len(names)} channel names for {env2.shape[0]} channels")
    rows = []
    for r in cycles.iter_rows(named=True):
        base = {"cycle": r["cycle"], "valid": r["valid"], "reason": r["reason"]}
        if not r["valid"]:
            for name in names:
                rows.append({**base, "channel": name})
            continue
        a, b, fo = r["start_s"], r["end_s"], r["foot_off_s"]
        norm = time_normalise(env2, rate_hz=rate, start_s=a, end_s=b)
        grid = np.linspace(a, b, 4001)
        fine = np.ascontiguousarray(_interp_at(env2, grid, rate))  # rows summed pairwise, as 1-D
        pct = (grid - a) / (b - a) * 100.0
        i0, i1 = int(math.ceil(a * rate)), int(math.floor(b * rate))
        # every channel at once (each row's reductions are the 1-D ones: the same arithmetic)
        seg_t = np.concatenate([[a], np.arange(i0, i1 + 1) / rate, [b]])
        seg_v = np.concatenate([fine[:, :1], env2[:, i0 : i1 + 1], fine[:, -1:]], axis=1)
        peak, peak_at = norm.max(axis=1), np.argmax(norm, axis=1)
        iemg = np.trapezoid(seg_v, seg_t, axis=1)
        mean_cycle = fine.mean(axis=1)
        mean_lr = _row_means(fine, pct <= loading_response_end_pct)
        stance = swing = None
        if fo is not None:
            stance, swing = _row_means(fine, grid <= fo), _row_means(fine, grid >= fo)
        for c, name in enumerate(names):
            rows.append({
                **base,
                "channel": name,
                "peak": float(peak[c]),
                "peak_pct": float(peak_at[c]) * 100.0 / (norm.shape[-1] - 1),
                "iemg": float(iemg[c]),
                "mean_cycle": float(mean_cycle[c]),
                "mean_loading_response": float(mean_lr[c]),
                "mean_stance": None if stance is None else float(stance[c]),
                "mean_swing": None if swing is None else float(swing[c]),
            })
    schema = {
        "cycle": pl.Int64, "valid": pl.Boolean, "reason": pl.Utf8, "channel": pl.Utf8,
        "peak": pl.Float64, "peak_pct": pl.Float64, "iemg": pl.Float64, "mean_cycle": pl.Float64,
        "mean_loading_response": pl.Float64, "mean_stance": pl.Float64, "mean_swing": pl.Float64,
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def onsets_relative_to_cycles(
    onsets_s,
    offsets_s=None,
    /,
    *,
    strikes_s,
    pre_strike_window_pct: float = PRE_STRIKE_WINDOW_PCT,
) -> pl.DataFrame:
    """Express onsets (and offsets) relative to the ipsilateral strike starting their cycle.

    See the module docstring for the assignment rule.

    Returns
    -------
    polars.DataFrame
        Columns ``cycle`` (-1 = unassigned), ``onset_s``, ``onset_ms`` (relative to the
        cycle's strike; negative = before it), ``onset_pct``, and with offsets
        ``offset_s``, ``offset_ms``, ``offset_pct``.

    Raises
    ------
    ValueError
        On fewer than two strikes, mismatched onset/offset arrays or a bad window.
    """
    return pl.DataFrame(onsets_relative_arrays(onsets_s, offsets_s, strikes_s=strikes_s,
                                               pre_strike_window_pct=pre_strike_window_pct),
                        nan_to_null=True)  # NaN (no cycle, or a zero-length one) is null


def onsets_relative_arrays(
    onsets_s,
    offsets_s=None,
    /,
    *,
    strikes_s,
    pre_strike_window_pct: float = PRE_STRIKE_WINDOW_PCT,
) -> dict[str, np.ndarray]:
    """:func:`onsets_relative_to_cycles` as numpy arrays, without building a frame (for callers that take
    each channel's bursts apart in a loop: the frame cost more than the arithmetic).

    Returns
    -------
    dict of str -> numpy.ndarray
        The frame's columns (the same names), each 1-D with one value per onset: ``cycle`` int64
        (-1 = unassigned), the others float64 in s, ms or % of the cycle, NaN where the frame has null.

    Raises
    ------
    ValueError
        As :func:`onsets_relative_to_cycles`.
    """
    on = _times(onsets_s, "onsets_s")
    off = None if offsets_s is None else _times(offsets_s, "offsets_s")
    if off is not None and off.shape != on.shape:
        raise ValueError("onsets_s and offsets_s must have the same length")
    s = np.sort(_times(strikes_s, "strikes_s"))
    s = s[np.isfinite(s)]
    if s.size < 2:
        raise ValueError("need at least two strikes to define a cycle")
    if not (0.0 <= pre_strike_window_pct < 100.0):
        raise ValueError(f"pre_strike_window_pct must be in [0, 100), got {pre_strike_window_pct}")
    p = pre_strike_window_pct / 100.0
    dur = np.diff(s)
    lo = s[:-1] - p * dur
    hi = np.append(lo[1:], s[-1] - p * dur[-1])
    cyc = np.full(on.size, -1, dtype=np.int64)
    for k in range(dur.size):
        cyc[(on >= lo[k]) & (on < hi[k])] = k
    ok = cyc >= 0
    ref = np.where(ok, s[np.maximum(cyc, 0)], np.nan)
    T = np.where(ok, dur[np.maximum(cyc, 0)], np.nan)
    data = {
        "cycle": cyc,
        "onset_s": on,
        "onset_ms": (on - ref) * 1e3,
        "onset_pct": (on - ref) / T * 100.0,
    }
    if off is not None:
        data.update({"offset_s": off, "offset_ms": (off - ref) * 1e3, "offset_pct": (off - ref) / T * 100.0})
    return data


def activation_sequences(
    onsets_by_muscle: dict, /, *, strikes_s, pre_strike_window_pct: float = PRE_STRIKE_WINDOW_PCT
) -> pl.DataFrame:
    """Order of muscle onsets in each cycle (first onset of each muscle in the cycle).

    Parameters
    ----------
    onsets_by_muscle : dict of str -> array_like
        Onset times (s) per muscle.
    strikes_s : array_like
        Ipsilateral strikes defining the cycles.

    Returns
    -------
    polars.DataFrame
        Columns ``cycle`` and ``sequence`` (list of muscle names, earliest first; ties
        broken by name); muscles without an onset in a cycle are absent from its list.

    Raises
    ------
    ValueError
        As :func:`onsets_relative_to_cycles`.
    """
    firsts: dict[int, dict[str, float]] = {}
    n_cycles = np.sum(np.isfinite(_times(strikes_s, "strikes_s"))) - 1
    for name, ons in onsets_by_muscle.items():
        rel = onsets_relative_to_cycles(ons, strikes_s=strikes_s, pre_strike_window_pct=pre_strike_window_pct)
        for row in rel.filter(pl.col("cycle") >= 0).iter_rows(named=True):
            d = firsts.setdefault(row["cycle"], {})
            d[name] = min(d.get(name, math.inf), row["onset_ms"])
    rows = [
        {"cycle": k, "sequence": [m for m, _ in sorted(firsts.get(k, {}).items(), key=lambda kv: (kv[1], kv[0]))]}
        for k in range(int(max(n_cycles, 0)))
    ]
    return pl.DataFrame(rows, schema={"cycle": pl.Int64, "sequence": pl.List(pl.Utf8)})


def sequence_consistency(sequences, /) -> dict:
    """Consistency of activation sequences across cycles.

    Returns
    -------
    dict
        ``modal_sequence`` (tuple, the most frequent full ordering), ``modal_fraction``
        (share of cycles with exactly that ordering), ``pairwise_agreement`` (over all
        pairs of cycles and all muscle pairs present in both, the fraction ordered the
        same way: 1 = identical order in every cycle, 0.5 = random) and ``n_cycles``.

    Raises
    ------
    ValueError
        If no sequence is given.
    """
    seqs = [tuple(s) for s in (sequences.to_list() if isinstance(sequences, pl.Series) else sequences)]
    if not seqs:
        raise ValueError("no sequences given")
    modal, count = Counter(seqs).most_common(1)[0]
    agree = total = 0
    ranks = [{m: i for i, m in enumerate(s)} for s in seqs]
    for r1, r2 in itertools.combinations(ranks, 2):
        common = sorted(set(r1) & set(r2))
        for m1, m2 in itertools.combinations(common, 2):
            total += 1
            agree += (r1[m1] < r1[m2]) == (r2[m1] < r2[m2])
    return {
        "modal_sequence": modal,
        "modal_fraction": count / len(seqs),
        "pairwise_agreement": agree / total if total else float("nan"),
        "n_cycles": len(seqs),
    }
