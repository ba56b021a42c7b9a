"""Oracles for transforms.variability (Winter CV, VR, onset SD, ICC)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from transforms.variability import (
    between_session_icc,
    intraclass_correlation,
    onset_timing_sd,
    variance_ratio,
    winter_cv,
)

PCT = np.linspace(0.0, 1.0, 101)
PATTERN = 1.0 + np.sin(2 * np.pi * PCT) ** 2  # strictly positive envelope


def test_identical_cycles_have_zero_vr_and_cv():
    cycles = np.tile(PATTERN, (7, 1))
    assert variance_ratio(cycles) == 0.0
    assert winter_cv(cycles) == 0.0


def test_winter_cv_two_cycle_construction():
    # Cycles m_t + d and m_t - d: per-point sample variance (ddof=1) = 2 d^2, mean = m_t,
    # so CV = sqrt(2) d / mean_t |m_t| * 100.
    d = 0.1
    cycles = np.vstack([PATTERN + d, PATTERN - d])
    expected = math.sqrt(2.0) * d / np.mean(np.abs(PATTERN)) * 100.0
    assert winter_cv(cycles) == pytest.approx(expected, rel=1e-12)


def test_winter_cv_uses_absolute_mean_and_is_scale_invariant():
    rng = np.random.default_rng(3)
    cycles = PATTERN + rng.normal(0, 0.05, (10, 101))
    assert winter_cv(-cycles) == pytest.approx(winter_cv(cycles), rel=1e-12)
    assert winter_cv(4.0 * cycles) == pytest.approx(winter_cv(cycles), rel=1e-12)
    assert math.isnan(winter_cv(np.zeros((3, 101))))


def test_vr_of_iid_gaussian_noise_is_one():
    # For i.i.d. Gaussian x_it, W/(W+B) ~ Beta(a/2, b/2) with a = T(N-1), b = T-1, so
    # E[VR] = 1 exactly and Var[VR] = (b/a) / ((a+b)/2 + 1).  N=200, T=101 gives
    # SD ~ 7e-4; 0.01 is > 10 SD.
    n, t = 200, 101
    a, b = t * (n - 1), t - 1
    sd = math.sqrt((b / a) / ((a + b) / 2 + 1))
    rng = np.random.default_rng(2024)
    vr = variance_ratio(rng.normal(5.0, 2.0, (n, t)))
    assert abs(vr - 1.0) < 10 * sd < 0.01


def test_vr_is_invariant_to_offset_and_scale():
    rng = np.random.default_rng(5)
    cycles = PATTERN + rng.normal(0, 0.1, (15, 101))
    assert variance_ratio(3.0 * cycles + 7.0) == pytest.approx(variance_ratio(cycles), rel=1e-10)
    assert math.isnan(variance_ratio(np.ones((4, 101))))


def test_cycle_input_validation():
    with pytest.raises(ValueError, match="at least 2 cycles"):
        variance_ratio(np.ones((1, 101)))
    with pytest.raises(ValueError, match="2-D"):
        winter_cv(np.ones(101))
    bad = np.ones((3, 101))
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        winter_cv(bad)


def test_onset_timing_sd():
    # 10, 12, 14 -> mean 12, sample variance (4 + 0 + 4) / 2 = 4, SD 2; NaN cycles ignored.
    assert onset_timing_sd([10.0, np.nan, 12.0, 14.0]) == pytest.approx(2.0)
    assert math.isnan(onset_timing_sd([10.0, np.nan]))
    with pytest.raises(ValueError):
        onset_timing_sd([[1.0, 2.0]])
    with pytest.raises(ValueError):
        onset_timing_sd([1.0, np.inf])


# Shrout & Fleiss (1979) Table 2: 6 targets x 4 judges; published ICC(1,1)=.17,
# ICC(2,1)=.29, ICC(3,1)=.71.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)


@pytest.mark.parametrize(("form", "published"), [("1,1", 0.17), ("2,1", 0.29), ("3,1", 0.71)])
def test_icc_matches_shrout_fleiss_table(form, published):
    assert round(intraclass_correlation(SHROUT_FLEISS, form=form), 2) == published


def test_icc_offset_behaviour():
    rng = np.random.default_rng(11)
    true = rng.normal(100, 10, 30)
    same = np.column_stack([true, true])
    assert intraclass_correlation(same, form="2,1") == pytest.approx(1.0)
    shifted = np.column_stack([true, true + 15.0])
    # Consistency ignores a systematic session offset; absolute agreement does not.
    assert intraclass_correlation(shifted, form="3,1") == pytest.approx(1.0)
    assert intraclass_correlation(shifted, form="2,1") < 0.8
    with pytest.raises(ValueError):
        intraclass_correlation(same, form="4,1")


def test_icc_estimates_variance_component_ratio():
    # Subject SD 3, error SD 1 -> population ICC = 9 / (9 + 1) = 0.9.  With 2000 subjects the
    # sampling SD of ICC is ~0.004, so 0.02 is ~5 SD.
    rng = np.random.default_rng(7)
    s = rng.normal(0, 3, (2000, 1))
    x = s + rng.normal(0, 1, (2000, 3))
    assert intraclass_correlation(x, form="2,1") == pytest.approx(0.9, abs=0.02)


def test_between_session_icc_frame():
    rng = np.random.default_rng(1)
    rows = []
    true = rng.normal(50, 8, 12)
    for i, mu in enumerate(true):
        for sess in ("2024-01-10", "2024-02-10", "2024-03-10"):
            for _cycle in range(3):
                rows.append(("walk", "TA", "peak", f"S{i:02d}", sess, mu + rng.normal(0, 1)))
    rows.append(("walk", "TA", "peak", "S99", "2024-01-10", 10.0))  # one session only -> left out
    rows.append(("walk", "SO", "peak", "S01", "2024-01-10", 1.0))
    rows.append(("walk", "SO", "peak", "S01", "2024-02-10", 2.0))
    frame = pl.DataFrame(
        rows, schema=["condition", "muscle", "metric", "subject_id", "session_id", "value"], orient="row"
    )
    out = between_session_icc(frame)
    ta = out.filter(pl.col("muscle") == "TA").row(0, named=True)
    so = out.filter(pl.col("muscle") == "SO").row(0, named=True)
    assert ta["n_subjects"] == 12 and ta["n_sessions"] == 2 and ta["form"] == "2,1"
    # Oracle: the same ICC computed directly on the subject x (first two sessions) matrix of means.
    mat = (
        frame.filter((pl.col("muscle") == "TA") & (pl.col("subject_id") != "S99"))
        .filter(pl.col("session_id") != "2024-03-10")
        .group_by("subject_id", "session_id")
        .agg(pl.col("value").mean())
        .sort("subject_id", "session_id")["value"]
        .to_numpy()
        .reshape(12, 2)
    )
    assert ta["icc"] == pytest.approx(intraclass_correlation(mat, form="2,1"), rel=1e-12)
    assert ta["icc"] > 0.9
    assert so["icc"] is None and so["reason"] == "too_few_subjects"
    with pytest.raises(ValueError, match="missing columns"):
        between_session_icc(frame.drop("metric"))
