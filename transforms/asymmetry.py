"""Bilateral asymmetry indices (pure numpy / polars; no I/O).

Two indices are provided, both signed so that a positive value means the
right side is larger than the left side:

* Robinson symmetry index (Robinson et al., 1987)::

      SI = (R - L) / (0.5 * (R + L)) * 100   [%]

  SI is undefined where ``R + L == 0``; it is then returned as NaN (arrays) or
  ``None`` (scalars / polars null) together with a reason string.

* Zifchock symmetry angle (Zifchock et al., 2008)::

      SA = (45 deg - arctan(L / R)) / 90 deg * 100   [%]

  and, when that value is above 100 %, 200 % is subtracted (equivalent to
  subtracting 180 deg from the angle before dividing by 90 deg).  As arctan
  lies in [-90, 90] deg, SA lies in (-100 %, 100 %]: in [-50 %, 50 %] when R
  and L have the same sign (or one is 0), beyond +-50 % only for opposite
  signs (100 % at L = -R, towards -100 % as L / R -> -1 from below).
  ``arctan`` is the ordinary one-argument arctangent (no ``arctan2``).  For
  ``R == 0`` the ratio ``L / R`` is taken as its limit ``sign(L) * inf``
  (arctan = +-90 deg), which gives SA = -50 % whenever ``L != 0``.  SA is
  undefined (NaN / None) only when ``R == L == 0`` or an input is not finite.

References
----------
Robinson RO, Herzog W, Nigg BM (1987). Use of force platform variables to
quantify the effects of chiropractic manipulation on gait symmetry. J
Manipulative Physiol Ther 10(4):172-176.

Zifchock RA, Davis I, Higginson J, Royer T (2008). The symmetry angle: a novel,
robust method of quantifying asymmetry. Gait Posture 27(4):622-627.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from schemas import metrics as registry

#: Reason given when both sides sum to zero (SI undefined).
REASON_ZERO_SUM = "zero_sum"
#: Reason given when the right side is missing from the long frame.
REASON_MISSING_RIGHT = "missing_right"
#: Reason given when the left side is missing from the long frame.
REASON_MISSING_LEFT = "missing_left"
#: Reason given when a side's value is null, NaN or infinite.
REASON_NON_FINITE = "non_finite"
#: Reason SI/SA are null for a timing metric (signed difference only; see ``schemas.metrics``).
REASON_TIMING = "timing_metric"
#: Reason SI/SA are null for a ratio-scale metric with a side <= 0 (SI/SA need positive magnitudes).
REASON_NOT_POSITIVE = "not_positive"

#: Value subtracted from SA (in %) when the raw angle exceeds 100 % (Zifchock 2008).
SA_WRAP_PCT = 200.0

#: Key columns of the long per-side metric frame (besides ``side``/``value``/``n_cycles``).
ASYMMETRY_KEYS: tuple[str, ...] = ("subject_id", "session_id", "condition", "muscle", "metric")

#: Columns of the ``asymmetry`` table, in order.
ASYMMETRY_COLUMNS: tuple[str, ...] = (
    *ASYMMETRY_KEYS,
    "left",
    "right",
    "diff",
    "unit",
    "si_pct",
    "sa_pct",
    "n_cycles",
    "reason",
)


def _as_float_arrays(right, left) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(right, dtype=float)
    l_ = np.asarray(left, dtype=float)
    try:
        r, l_ = np.broadcast_arrays(r, l_)
    except ValueError as exc:
        raise ValueError(f"right and left must broadcast together: shapes {r.shape} and {l_.shape}") from exc
    return r, l_


def symmetry_index_array(right, left, /) -> np.ndarray:
    """Vectorised Robinson symmetry index.

    Parameters
    ----------
    right, left : array_like
        Right- and left-side values of the same metric, in the same (any)
        unit; broadcast together.

    Returns
    -------
    numpy.ndarray
        SI in percent, NaN where ``right + left == 0`` or an input is not
        finite.

    Raises
    ------
    ValueError
        If the inputs cannot be converted to float or broadcast together.
    """
    r, l_ = _as_float_arrays(right, left)
    total = r + l_
    out = np.full(r.shape, np.nan)
    ok = np.isfinite(r) & np.isfinite(l_) & (total != 0.0)
    out[ok] = (r[ok] - l_[ok]) / (0.5 * total[ok]) * 100.0
    return out


def symmetry_angle_array(right, left, /) -> np.ndarray:
    """Vectorised Zifchock symmetry angle.

    Parameters
    ----------
    right, left : array_like
        Right- and left-side values, same unit; broadcast together.

    Returns
    -------
    numpy.ndarray
        SA in percent, in (-100, 100] ([-50, 50] for same-sign inputs); NaN
        where both sides are zero or an input is not finite.  ``right == 0``
        with ``left != 0`` gives -50 %.

    Raises
    ------
    ValueError
        If the inputs cannot be converted to float or broadcast together.
    """
    r, l_ = _as_float_arrays(right, left)
    out = np.full(r.shape, np.nan)
    finite = np.isfinite(r) & np.isfinite(l_)
    nz = finite & (r != 0.0)
    atan_deg = np.empty(r.shape)
    atan_deg[nz] = np.degrees(np.arctan(l_[nz] / r[nz]))
    # R == 0: arctan(L / R) -> sign(L) * 90 deg (limit); undefined when L == 0 too.
    rz = finite & (r == 0.0) & (l_ != 0.0)
    atan_deg[rz] = np.sign(l_[rz]) * 90.0
    ok = nz | rz
    sa = (45.0 - atan_deg[ok]) / 90.0 * 100.0
    sa = np.where(sa > 100.0, sa - SA_WRAP_PCT, sa)
    out[ok] = sa
    return out


def symmetry_index(right: float, left: float, /) -> tuple[float | None, str | None]:
    """Robinson symmetry index of one right/left pair.

    Parameters
    ----------
    right, left : float
        Right- and left-side values, same unit.

    Returns
    -------
    (si_pct, reason) : tuple
        ``si_pct`` in percent, or ``None`` with ``reason`` one of
        ``"zero_sum"`` / ``"non_finite"``; ``reason`` is ``None`` when defined.

    Raises
    ------
    ValueError
        If an input is not a real number.
    """
    r, l_ = _scalar(right, "right"), _scalar(left, "left")
    if not (math.isfinite(r) and math.isfinite(l_)):
        return None, REASON_NON_FINITE
    if r + l_ == 0.0:
        return None, REASON_ZERO_SUM
    return float(symmetry_index_array(r, l_)), None


def symmetry_angle(right: float, left: float, /) -> tuple[float | None, str | None]:
    """Zifchock symmetry angle of one right/left pair.

    Parameters
    ----------
    right, left : float
        Right- and left-side values, same unit.

    Returns
    -------
    (sa_pct, reason) : tuple
        ``sa_pct`` in percent, or ``None`` with ``reason`` ``"zero_sum"``
        (both sides zero) or ``"non_finite"``.

    Raises
    ------
    ValueError
        If an input is not a real number.
    """
    r, l_ = _scalar(right, "right"), _scalar(left, "left")
    if not (math.isfinite(r) and math.isfinite(l_)):
        return None, REASON_NON_FINITE
    if r == 0.0 and l_ == 0.0:
        return None, REASON_ZERO_SUM
    return float(symmetry_angle_array(r, l_)), None


def _scalar(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {type(x).__name__}")
    return float(x)


def asymmetry_table(
    per_side: pl.DataFrame,
    /,
    *,
    keys: Sequence[str] = ASYMMETRY_KEYS,
) -> pl.DataFrame:
    """Build the ``asymmetry`` table from a long frame of per-side metrics.

    Parameters
    ----------
    per_side : polars.DataFrame
        Long frame with the ``keys`` columns (default ``subject_id,
        session_id, condition, muscle, metric``) plus ``side`` (``"L"`` or
        ``"R"``), ``value`` (float, any unit shared by both sides) and
        ``n_cycles`` (integer, cycles behind the value).
    keys : sequence of str, keyword-only
        Columns identifying one bilateral comparison.

    Returns
    -------
    polars.DataFrame
        One row per key with columns ``*keys, left, right, diff, unit, si_pct, sa_pct, n_cycles,
        reason``.  ``diff`` is the signed ``right - left`` in the metric's ``unit`` (both from
        :mod:`schemas.metrics`), wrapped into (-period/2, period/2] for circular timing (% of the
        cycle).  ``si_pct`` / ``sa_pct`` apply only to positive ratio-scale magnitudes: null for timing
        metrics (``reason`` ``timing_metric``) and where a side is <= 0 (``not_positive``).
        ``n_cycles`` is the smaller of the two sides' counts (the cycles supporting the weaker
        side), null when a side is missing.  ``reason`` also says ``missing_left``,
        ``missing_right``, ``non_finite`` or ``zero_sum``; it is null for a fully defined row.
        Rows are sorted by keys.

    Raises
    ------
    ValueError
        On missing columns, a side other than ``"L"``/``"R"``, a key that has more than one row for
        the same side, or a metric that is not in the registry.
    """
    keys = list(keys)
    required = [*keys, "side", "value", "n_cycles"]
    missing = [c for c in required if c not in per_side.columns]
    if missing:
        raise ValueError(f"per-side frame is missing columns: {missing}")
    bad_side = per_side.filter(~pl.col("side").is_in(["L", "R"]) | pl.col("side").is_null())
    if bad_side.height:
        raise ValueError(f"side must be 'L' or 'R'; found {bad_side['side'].unique().to_list()}")
    unknown = sorted(set(per_side["metric"].drop_nulls().to_list()) - set(registry.METRICS))
    if unknown:
        raise ValueError(f"metrics not in schemas.metrics: {unknown}")
    dup = per_side.group_by([*keys, "side"]).len().filter(pl.col("len") > 1)
    if dup.height:
        raise ValueError(f"duplicate rows for the same key and side, e.g. {dup.row(0, named=True)}")

    frame = per_side.select(*keys, "side", pl.col("value").cast(pl.Float64), pl.col("n_cycles").cast(pl.Int64))
    left = frame.filter(pl.col("side") == "L").drop("side").rename({"value": "left", "n_cycles": "_n_l"})
    right = frame.filter(pl.col("side") == "R").drop("side").rename({"value": "right", "n_cycles": "_n_r"})
    wide = left.join(right, on=keys, how="full", coalesce=True, nulls_equal=True)
    if wide.height == 0:
        return pl.DataFrame(schema={**{k: per_side.schema[k] for k in keys}, "left": pl.Float64,
                                    "right": pl.Float64, "diff": pl.Float64, "unit": pl.String,
                                    "si_pct": pl.Float64, "sa_pct": pl.Float64, "n_cycles": pl.Int64,
                                    "reason": pl.String})

    has_l = wide["_n_l"].is_not_null() | wide["left"].is_not_null()
    has_r = wide["_n_r"].is_not_null() | wide["right"].is_not_null()
    l_arr = wide["left"].fill_null(np.nan).to_numpy().astype(float)
    r_arr = wide["right"].fill_null(np.nan).to_numpy().astype(float)
    specs = [registry.metric(m) for m in wide["metric"].to_list()]
    ratio = np.array([m.scale == "ratio" for m in specs], dtype=bool)
    positive = ratio & (l_arr > 0) & (r_arr > 0)
    si = np.where(positive, symmetry_index_array(r_arr, l_arr), np.nan)
    sa = np.where(positive, symmetry_angle_array(r_arr, l_arr), np.nan)
    diff = signed_difference(r_arr, l_arr, periods=[m.period for m in specs])

    reasons = [_reason(*a) for a in zip(has_l.to_list(), has_r.to_list(), l_arr, r_arr, ratio)]
    out = wide.with_columns(
        pl.Series("diff", diff).fill_nan(None),
        pl.Series("unit", [m.unit for m in specs], dtype=pl.String),
        pl.Series("si_pct", si).fill_nan(None),
        pl.Series("sa_pct", sa).fill_nan(None),
        pl.when(pl.col("_n_l").is_not_null() & pl.col("_n_r").is_not_null())
        .then(pl.min_horizontal("_n_l", "_n_r"))
        .otherwise(None)
        .alias("n_cycles"),
        pl.Series("reason", reasons, dtype=pl.String),
    )
    return out.select(*keys, "left", "right", "diff", "unit", "si_pct", "sa_pct", "n_cycles",
                      "reason").sort(keys, nulls_last=True)


def _reason(has_l: bool, has_r: bool, lv: float, rv: float, is_ratio: bool) -> str | None:
    """Why SI/SA of one row are null (None when they are defined)."""
    if not has_l:
        return REASON_MISSING_LEFT
    if not has_r:
        return REASON_MISSING_RIGHT
    if not (np.isfinite(lv) and np.isfinite(rv)):
        return REASON_NON_FINITE
    if not is_ratio:
        return REASON_TIMING
    if lv + rv == 0.0:
        return REASON_ZERO_SUM
    if lv <= 0 or rv <= 0:
        return REASON_NOT_POSITIVE
    return None


def signed_difference(right, left, /, *, periods: Sequence[float | None] | None = None) -> np.ndarray:
    """Signed ``right - left``, wrapped into (-period/2, period/2] where a period is given.

    Parameters
    ----------
    right, left : array_like
        Right- and left-side values in the same unit.
    periods : sequence of float or None, keyword-only
        Per element, the wrap-around of a circular metric (e.g. 100 for % of the cycle) or None.

    Returns
    -------
    numpy.ndarray
        The difference in the values' unit; NaN where an input is not finite.

    Raises
    ------
    ValueError
        If the inputs cannot be broadcast together or ``periods`` has the wrong length.
    """
    r, l_ = _as_float_arrays(right, left)
    d = r - l_
    if periods is None:
        return d
    per = np.array([np.nan if p is None else float(p) for p in periods], dtype=float)
    if per.shape != d.shape:
        raise ValueError(f"periods has {per.size} entries for {d.size} differences")
    wrap = np.isfinite(per) & np.isfinite(d)
    d[wrap] = -((-(d[wrap]) + per[wrap] / 2) % per[wrap] - per[wrap] / 2)
    return d
