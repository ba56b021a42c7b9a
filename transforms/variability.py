"""Cycle-to-cycle variability and between-session reliability (pure; no I/O).

Inputs are time-normalised envelopes stacked as ``cycles x points`` arrays
(``N`` cycles, ``T`` points, normally ``T = 101`` for 0..100 % of the cycle).
Notation: ``x[i, t]`` is cycle ``i`` at point ``t``, ``xbar_t`` the mean over
cycles at point ``t``, ``xbar`` the grand mean.

* Winter's coefficient of variation (Winter 1984)::

      CV = sqrt( (1/T) sum_t s_t^2 ) / ( (1/T) sum_t |xbar_t| ) * 100   [%]

  with ``s_t^2`` the sample variance across cycles at point ``t``
  (``ddof = 1``).  NaN when the denominator is zero.

* Variance ratio (Hershler & Milner 1978; Kadaba et al. 1989)::

      VR = [ sum_t sum_i (x_it - xbar_t)^2 / (T (N - 1)) ]
           / [ sum_t sum_i (x_it - xbar)^2 / (T N - 1) ]

  0 for identical cycles; its expectation is exactly 1 for i.i.d. Gaussian
  noise (the within/total sum-of-squares ratio is Beta distributed).  NaN
  when every sample is identical (zero total variance).

* Onset timing SD: sample SD (``ddof = 1``) of per-cycle onset times in any
  unit (ms or % cycle); cycles without an onset (NaN) are ignored.  No
  circular wrap-around handling: onsets must not straddle 0/100 %.

* Intraclass correlation from a ``subjects x sessions`` matrix via two-way
  ANOVA mean squares (Shrout & Fleiss 1979; McGraw & Wong 1996), with
  ``n`` subjects and ``k`` sessions::

      ICC(1,1) = (MSR - MSW) / (MSR + (k-1) MSW)
      ICC(2,1) = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n)
      ICC(3,1) = (MSR - MSE) / (MSR + (k-1) MSE)

  ``ICC(2,1)`` (two-way random effects, absolute agreement, single
  measurement) is the default for between-session test-retest reliability,
  as recommended by Koo & Li (2016); ``ICC(3,1)`` (consistency) ignores a
  systematic offset between sessions.

References
----------
Winter DA (1984). Kinematic and kinetic patterns in human gait: variability
and compensating effects. Hum Mov Sci 3:51-76.
Hershler C, Milner M (1978). An optimality criterion for processing
electromyographic (EMG) signals relating to human locomotion. IEEE Trans
Biomed Eng 25(5):413-420.
Kadaba MP et al. (1989). Repeatability of kinematic, kinetic, and
electromyographic data in normal adult gait. J Orthop Res 7(6):849-860.
Shrout PE, Fleiss JL (1979). Intraclass correlations: uses in assessing rater
reliability. Psychol Bull 86(2):420-428.
McGraw KO, Wong SP (1996). Forming inferences about some intraclass
correlation coefficients. Psychol Methods 1(1):30-46.
Koo TK, Li MY (2016). A guideline of selecting and reporting intraclass
correlation coefficients for reliability research. J Chiropr Med
15(2):155-163.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

#: Minimum number of cycles for any across-cycle statistic (a variance needs two).
MIN_CYCLES = 2
#: Minimum number of cycles with a detected onset for ``onset_timing_sd``.
MIN_CYCLES_ONSET_SD = 2
#: ICC forms implemented (Shrout & Fleiss notation).
ICC_FORMS: tuple[str, ...] = ("1,1", "2,1", "3,1")
#: Default ICC form for between-session reliability (Koo & Li 2016).
ICC_DEFAULT_FORM = "2,1"
#: Default number of sessions per subject used for between-session ICC.
ICC_DEFAULT_N_SESSIONS = 2
#: Minimum number of subjects with complete sessions for an ICC.
ICC_MIN_SUBJECTS = 2
#: Default grouping columns for ``between_session_icc``.
ICC_GROUP_COLUMNS: tuple[str, ...] = ("condition", "muscle", "metric")

#: Reason strings used in ``between_session_icc``.
REASON_TOO_FEW_SUBJECTS = "too_few_subjects"
REASON_ZERO_VARIANCE = "zero_variance"


def _cycles(cycles, name: str = "cycles") -> np.ndarray:
    arr = np.asarray(cycles, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (cycles x points) array, got shape {arr.shape}")
    n, t = arr.shape
    if n < MIN_CYCLES:
        raise ValueError(f"{name} needs at least {MIN_CYCLES} cycles, got {n}")
    if t < 2:
        raise ValueError(f"{name} needs at least 2 points per cycle, got {t}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; drop incomplete cycles first")
    return arr


def winter_cv(cycles, /) -> float:
    """Winter's coefficient of variation of a time-normalised envelope.

    Parameters
    ----------
    cycles : array_like, shape (N, T)
        ``N >= 2`` cycles of ``T`` time-normalised points (any amplitude unit).

    Returns
    -------
    float
        ``sqrt(mean_t var_t) / mean_t |mean_t| * 100`` in percent, with
        ``var_t`` the across-cycle sample variance (``ddof = 1``) and
        ``mean_t`` the across-cycle mean at point ``t``.  NaN when the mean
        absolute envelope is zero.

    Raises
    ------
    ValueError
        If ``cycles`` is not 2-D, has fewer than 2 cycles or points, or
        contains non-finite values.
    """
    arr = _cycles(cycles)
    var_t = (arr - arr[:1]).var(axis=0, ddof=1)  # shift by cycle 0: exact 0 for identical cycles
    denom = np.mean(np.abs(arr.mean(axis=0)))
    if denom == 0.0:
        return float("nan")
    return float(np.sqrt(var_t.mean()) / denom * 100.0)


def variance_ratio(cycles, /) -> float:
    """Variance ratio (Hershler & Milner 1978; Kadaba et al. 1989).

    Parameters
    ----------
    cycles : array_like, shape (N, T)
        ``N >= 2`` cycles of ``T`` time-normalised points.

    Returns
    -------
    float
        Dimensionless VR: 0 for identical cycles, about 1 for unstructured
        noise.  NaN when all samples are equal (zero total variance).

    Raises
    ------
    ValueError
        If ``cycles`` is not 2-D, has fewer than 2 cycles or points, or
        contains non-finite values.
    """
    arr = _cycles(cycles)
    n, t = arr.shape
    # Within-point deviations are invariant to a per-point shift; subtracting the first cycle
    # makes identical cycles give exactly 0 (no rounding residue from the mean).
    dev = arr - arr[:1]
    within = np.sum((dev - dev.mean(axis=0, keepdims=True)) ** 2) / (t * (n - 1))
    total = np.sum((arr - arr.mean()) ** 2) / (t * n - 1)
    if total == 0.0:
        return float("nan")
    return float(within / total)


def onset_timing_sd(onsets, /, *, min_cycles: int = MIN_CYCLES_ONSET_SD) -> float:
    """Sample SD of per-cycle onset times.

    Parameters
    ----------
    onsets : array_like, shape (N,)
        One onset time per cycle (ms, s or % cycle; the result has the same
        unit).  NaN marks a cycle in which no onset was detected; it is
        ignored.
    min_cycles : int, keyword-only
        Minimum number of detected onsets; below it the result is NaN.

    Returns
    -------
    float
        SD with ``ddof = 1`` over the detected onsets, or NaN.

    Raises
    ------
    ValueError
        If ``onsets`` is not 1-D, contains infinite values, or
        ``min_cycles < 2``.
    """
    arr = np.asarray(onsets, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"onsets must be 1-D, got shape {arr.shape}")
    if np.any(np.isinf(arr)):
        raise ValueError("onsets contains infinite values")
    if min_cycles < 2:
        raise ValueError(f"min_cycles must be >= 2, got {min_cycles}")
    ok = arr[np.isfinite(arr)]
    if ok.size < min_cycles:
        return float("nan")
    return float(np.std(ok, ddof=1))


def intraclass_correlation(scores, /, *, form: str = ICC_DEFAULT_FORM) -> float:
    """Single-measurement intraclass correlation of a subjects x sessions matrix.

    Parameters
    ----------
    scores : array_like, shape (n, k)
        ``n >= 2`` subjects (rows) measured in ``k >= 2`` sessions (columns),
        complete (no NaN), any unit.
    form : {"1,1", "2,1", "3,1"}, keyword-only
        Shrout & Fleiss form; see the module docstring for formulas.

    Returns
    -------
    float
        The ICC (dimensionless, <= 1, may be negative).  NaN when its
        denominator is zero (e.g. every score identical).

    Raises
    ------
    ValueError
        If ``scores`` is not 2-D, has fewer than 2 rows or columns, contains
        non-finite values, or ``form`` is unknown.
    """
    if form not in ICC_FORMS:
        raise ValueError(f"form must be one of {ICC_FORMS}, got {form!r}")
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"scores must be 2-D (subjects x sessions), got shape {x.shape}")
    n, k = x.shape
    if n < 2 or k < 2:
        raise ValueError(f"scores needs >= 2 subjects and >= 2 sessions, got {n} x {k}")
    if not np.all(np.isfinite(x)):
        raise ValueError("scores contains NaN or infinite values; use complete subjects only")
    grand = x.mean()
    ss_total = np.sum((x - grand) ** 2)
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_err = ss_total - ss_rows - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_err = ss_err / ((n - 1) * (k - 1))
    if form == "1,1":
        ms_within = (ss_cols + ss_err) / (n * (k - 1))
        num, den = ms_rows - ms_within, ms_rows + (k - 1) * ms_within
    elif form == "2,1":
        num = ms_rows - ms_err
        den = ms_rows + (k - 1) * ms_err + k * (ms_cols - ms_err) / n
    else:
        num, den = ms_rows - ms_err, ms_rows + (k - 1) * ms_err
    if den == 0.0:
        return float("nan")
    return float(num / den)


def between_session_icc(
    values: pl.DataFrame,
    /,
    *,
    value_col: str = "value",
    group_cols: Sequence[str] = ICC_GROUP_COLUMNS,
    subject_col: str = "subject_id",
    session_col: str = "session_id",
    form: str = ICC_DEFAULT_FORM,
    n_sessions: int = ICC_DEFAULT_N_SESSIONS,
) -> pl.DataFrame:
    """Between-session reliability (ICC) per group from a long frame.

    Several rows for one subject and session (e.g. one per cycle) are first
    averaged.  Within each subject the sessions are ranked by sorting
    ``session_col``; the first ``n_sessions`` are used and subjects with
    fewer sessions are left out.

    Parameters
    ----------
    values : polars.DataFrame
        Long frame with ``subject_col``, ``session_col``, ``group_cols`` and
        ``value_col`` (numeric, any unit; nulls/NaN are dropped).
    value_col, subject_col, session_col : str, keyword-only
        Column names.
    group_cols : sequence of str, keyword-only
        One ICC is computed per combination (default condition, muscle,
        metric).
    form : {"1,1", "2,1", "3,1"}, keyword-only
        ICC form (default ``"2,1"``).
    n_sessions : int, keyword-only
        Sessions per subject (``k``), default 2.

    Returns
    -------
    polars.DataFrame
        Columns ``*group_cols, form, n_subjects, n_sessions, icc, reason``;
        ``icc`` null with ``reason`` ``too_few_subjects`` (fewer than
        ``ICC_MIN_SUBJECTS`` complete subjects) or ``zero_variance``.

    Raises
    ------
    ValueError
        On missing columns, an unknown ``form`` or ``n_sessions < 2``.
    """
    if form not in ICC_FORMS:
        raise ValueError(f"form must be one of {ICC_FORMS}, got {form!r}")
    if n_sessions < 2:
        raise ValueError(f"n_sessions must be >= 2, got {n_sessions}")
    group_cols = list(group_cols)
    needed = [*group_cols, subject_col, session_col, value_col]
    missing = [c for c in needed if c not in values.columns]
    if missing:
        raise ValueError(f"frame is missing columns: {missing}")
    per_session = (
        values.select(needed)
        .with_columns(pl.col(value_col).cast(pl.Float64).fill_nan(None))
        .drop_nulls(value_col)
        .group_by([*group_cols, subject_col, session_col])
        .agg(pl.col(value_col).mean())
        .sort([*group_cols, subject_col, session_col])
        .with_columns(
            pl.col(session_col).rank("ordinal").over([*group_cols, subject_col]).alias("_rank")
        )
        .filter(pl.col("_rank") <= n_sessions)
    )
    rows = []
    if group_cols:
        groups = per_session.partition_by(group_cols, as_dict=True, maintain_order=True)
    else:
        groups = {(): per_session}
    for key, g in groups.items():
        key = key if isinstance(key, tuple) else (key,)
        complete = g.group_by(subject_col).agg(pl.len().alias("_n")).filter(pl.col("_n") == n_sessions)
        g = g.join(complete.select(subject_col), on=subject_col).sort([subject_col, "_rank"])
        n_sub = complete.height
        icc, reason = None, None
        if n_sub < ICC_MIN_SUBJECTS:
            reason = REASON_TOO_FEW_SUBJECTS
        else:
            mat = g[value_col].to_numpy().reshape(n_sub, n_sessions)
            val = intraclass_correlation(mat, form=form)
            if np.isnan(val):
                reason = REASON_ZERO_VARIANCE
            else:
                icc = val
        rows.append((*key, form, n_sub, n_sessions, icc, reason))
    schema = {
        **{c: values.schema[c] for c in group_cols},
        "form": pl.String,
        "n_subjects": pl.Int64,
        "n_sessions": pl.Int64,
        "icc": pl.Float64,
        "reason": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")
