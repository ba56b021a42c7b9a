"""Dynamic muscle activation maps from time-normalised envelopes (pure; no I/O).

Input
    A mapping ``{(muscle, side): cycles}`` where ``cycles`` is an
    ``N x 101`` array of time-normalised envelopes (point ``p`` is ``p`` %
    of the cycle, 0..100; amplitude unit as produced upstream, typically
    normalised to a reference).  Cycles containing any non-finite value are
    dropped whole; ``n_cycles`` counts the cycles used.

Per-% profile
    At each point the mean and the sample SD (``ddof = 1``) across cycles;
    SD is null for a single cycle.

Per-phase summary
    Gait phases after Perry & Burnfield (2010) as % of the cycle from
    initial contact (``GAIT_PHASES_PCT``): loading response 0-10, mid stance
    10-30, terminal stance 30-50, pre-swing 50-60, swing 60-100.  A phase
    ``[a, b)`` holds the points with ``a <= pct < b`` (the last phase also
    holds 100 %).  Each cycle's envelope is averaged over the phase's
    points; the phase ``envelope_mean`` / ``envelope_sd`` are the mean and
    sample SD of those per-cycle averages (so SD is cycle-to-cycle
    variability of phase activity).

Heatmap matrices
    :func:`activation_matrices` turns the per-% profile into one
    ``muscles x 101`` matrix per side with a shared muscle order (rows of a
    muscle absent on a side are NaN), for a renderer elsewhere.

Reference
---------
Perry J, Burnfield JM (2010). Gait Analysis: Normal and Pathological
Function, 2nd ed. SLACK Inc.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

#: Points per time-normalised cycle (0..100 %).
N_POINTS = 101
#: Perry gait phases: name -> (start %, end %), half-open except the last.
GAIT_PHASES_PCT: dict[str, tuple[float, float]] = {
    "loading_response": (0.0, 10.0),
    "mid_stance": (10.0, 30.0),
    "terminal_stance": (30.0, 50.0),
    "pre_swing": (50.0, 60.0),
    "swing": (60.0, 100.0),
}
#: Sides accepted in keys.
SIDES: tuple[str, ...] = ("L", "R")

PROFILE_COLUMNS: tuple[str, ...] = ("muscle", "side", "pct", "envelope_mean", "envelope_sd", "n_cycles")
PHASE_COLUMNS: tuple[str, ...] = (
    "muscle",
    "side",
    "phase",
    "start_pct",
    "end_pct",
    "envelope_mean",
    "envelope_sd",
    "n_cycles",
)


def _clean(envelopes: Mapping[tuple[str, str], object]) -> dict[tuple[str, str], np.ndarray]:
    if not isinstance(envelopes, Mapping) or not envelopes:
        raise ValueError("envelopes must be a non-empty mapping {(muscle, side): cycles x 101 array}")
    out = {}
    for key, cycles in envelopes.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"keys must be (muscle, side) tuples, got {key!r}")
        muscle, side = key
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r} for muscle {muscle!r}")
        arr = np.asarray(cycles, dtype=float)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != N_POINTS:
            raise ValueError(f"{key}: cycles must be (N, {N_POINTS}), got shape {arr.shape}")
        arr = arr[np.all(np.isfinite(arr), axis=1)]
        out[(str(muscle), side)] = arr
    return out


def activation_profile(envelopes: Mapping[tuple[str, str], object], /) -> pl.DataFrame:
    """Mean and SD envelope at each % of the cycle, per muscle and side.

    Parameters
    ----------
    envelopes : Mapping[(str, str), array_like]
        ``{(muscle, side): cycles}`` with ``cycles`` of shape ``(N, 101)``
        (a single 1-D cycle of 101 points is accepted); side ``"L"``/``"R"``.

    Returns
    -------
    polars.DataFrame
        Long frame ``muscle, side, pct (0..100), envelope_mean,
        envelope_sd, n_cycles``; mean/SD null when no complete cycle
        remains, SD null for one cycle.  Sorted by muscle, side, pct.

    Raises
    ------
    ValueError
        On an empty mapping, a bad key or side, or a wrong array shape.
    """
    data = _clean(envelopes)
    keys = list(data)
    means, sds, counts = [], [], []
    for key in keys:  # one frame of every key's columns (a frame per key cost ~0.2 ms each)
        arr = data[key]
        n = arr.shape[0]
        means.append(arr.mean(axis=0) if n else np.full(N_POINTS, np.nan))
        sds.append(arr.std(axis=0, ddof=1) if n >= 2 else np.full(N_POINTS, np.nan))
        counts.append(n)
    out = pl.DataFrame({
        "muscle": [m for m, _ in keys for _ in range(N_POINTS)],
        "side": [s for _, s in keys for _ in range(N_POINTS)],
        "pct": np.tile(np.arange(N_POINTS, dtype=np.int64), len(keys)),
        "envelope_mean": np.concatenate(means),
        "envelope_sd": np.concatenate(sds),
        "n_cycles": np.repeat(np.asarray(counts, dtype=np.int64), N_POINTS),
    }, schema_overrides={"muscle": pl.String, "side": pl.String})
    out = out.with_columns(pl.col("envelope_mean").fill_nan(None), pl.col("envelope_sd").fill_nan(None))
    return out.sort("muscle", "side", "pct")


def phase_activation(
    envelopes: Mapping[tuple[str, str], object],
    /,
    *,
    phases_pct: Mapping[str, Sequence[float]] = GAIT_PHASES_PCT,
) -> pl.DataFrame:
    """Mean and SD of phase-averaged envelope per muscle, side and gait phase.

    Parameters
    ----------
    envelopes : Mapping[(str, str), array_like]
        As :func:`activation_profile`.
    phases_pct : Mapping[str, (float, float)], keyword-only
        Phase name -> ``(start %, end %)``; default Perry phases.  Phases
        are half-open ``[start, end)``; a phase ending at 100 also holds
        100 %.

    Returns
    -------
    polars.DataFrame
        ``muscle, side, phase, start_pct, end_pct, envelope_mean,
        envelope_sd, n_cycles``, phases in the given order.

    Raises
    ------
    ValueError
        As :func:`activation_profile`, or on a phase outside 0..100, with
        ``end <= start``, or containing no point.
    """
    data = _clean(envelopes)
    pct = np.arange(N_POINTS, dtype=float)
    masks = {}
    for name, bounds in phases_pct.items():
        a, b = (float(x) for x in bounds)
        if not (0.0 <= a < b <= 100.0):
            raise ValueError(f"phase {name!r} must satisfy 0 <= start < end <= 100, got {bounds!r}")
        mask = (pct >= a) & ((pct <= b) if b == 100.0 else (pct < b))
        if not mask.any():
            raise ValueError(f"phase {name!r} contains no % point")
        masks[name] = (a, b, mask)
    rows = []
    for (muscle, side), arr in data.items():
        n = arr.shape[0]
        for name, (a, b, mask) in masks.items():
            per_cycle = arr[:, mask].mean(axis=1) if n else np.empty(0)
            mean = float(per_cycle.mean()) if n else None
            sd = float(per_cycle.std(ddof=1)) if n >= 2 else None
            rows.append((muscle, side, name, a, b, mean, sd, n))
    schema = {
        "muscle": pl.String,
        "side": pl.String,
        "phase": pl.String,
        "start_pct": pl.Float64,
        "end_pct": pl.Float64,
        "envelope_mean": pl.Float64,
        "envelope_sd": pl.Float64,
        "n_cycles": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def activation_matrices(
    profile: pl.DataFrame,
    /,
    *,
    value_col: str = "envelope_mean",
    muscle_order: Sequence[str] | None = None,
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Muscles x 101 matrices per side from an :func:`activation_profile` frame.

    Parameters
    ----------
    profile : polars.DataFrame
        Columns ``muscle, side, pct`` and ``value_col``.
    value_col : str, keyword-only
        Column to place in the matrix (``envelope_mean`` or ``envelope_sd``).
    muscle_order : sequence of str or None, keyword-only
        Row order shared by both sides (default: sorted muscle names present
        on any side).

    Returns
    -------
    dict
        ``{side: (muscles, matrix)}`` for each side present, ``matrix`` of
        shape ``(len(muscles), 101)``; NaN where a muscle/point is missing or
        null.

    Raises
    ------
    ValueError
        On missing columns, pct outside 0..100, or duplicate
        (muscle, side, pct) rows.
    """
    needed = ["muscle", "side", "pct", value_col]
    missing = [c for c in needed if c not in profile.columns]
    if missing:
        raise ValueError(f"profile is missing columns: {missing}")
    if profile.select(pl.struct("muscle", "side", "pct").is_duplicated().any()).item():
        raise ValueError("profile has duplicate (muscle, side, pct) rows")
    pct = profile["pct"].to_numpy()
    if pct.size and (pct.min() < 0 or pct.max() > N_POINTS - 1 or np.any(pct != np.round(pct))):
        raise ValueError(f"pct must be integers in 0..{N_POINTS - 1}")
    muscles = list(muscle_order) if muscle_order is not None else sorted(profile["muscle"].unique().to_list())
    row_of = {m: i for i, m in enumerate(muscles)}
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    for side in sorted(profile["side"].unique().to_list()):
        mat = np.full((len(muscles), N_POINTS), np.nan)
        sub = profile.filter(pl.col("side") == side)
        for m, p, v in zip(sub["muscle"].to_list(), sub["pct"].to_list(), sub[value_col].to_list()):
            if m in row_of and v is not None:
                mat[row_of[m], int(p)] = v
        out[side] = (list(muscles), mat)
    return out
