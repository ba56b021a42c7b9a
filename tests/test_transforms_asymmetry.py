"""Oracles for transforms.asymmetry (Robinson SI, Zifchock SA, asymmetry table)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.asymmetry import (
    asymmetry_table,
    symmetry_angle,
    symmetry_angle_array,
    symmetry_index,
    symmetry_index_array,
)

# (R, L, SI %, SA %) -- SI/SA values fixed by the issue (3 decimals).
ORACLES = [
    (2.0, 1.0, 66.667, 20.483),
    (1.1, 1.0, 9.524, 3.029),
    (10.0, 1.0, 163.636, 43.655),
]


@pytest.mark.parametrize(("right", "left", "si", "sa"), ORACLES)
def test_scalar_oracles_to_3_decimals(right, left, si, sa):
    si_val, si_reason = symmetry_index(right, left)
    sa_val, sa_reason = symmetry_angle(right, left)
    assert round(si_val, 3) == si and si_reason is None
    assert round(sa_val, 3) == sa and sa_reason is None


def test_zero_sum_si_undefined_sa_is_100():
    si_val, reason = symmetry_index(1.0, -1.0)
    assert si_val is None and reason == "zero_sum"
    sa_val, sa_reason = symmetry_angle(1.0, -1.0)
    assert sa_val == pytest.approx(100.0, abs=1e-12) and sa_reason is None


def test_vectorised_matches_oracles_and_nan_for_zero_sum():
    r = np.array([2.0, 1.1, 10.0, 1.0])
    l_ = np.array([1.0, 1.0, 1.0, -1.0])
    si = symmetry_index_array(r, l_)
    sa = symmetry_angle_array(r, l_)
    np.testing.assert_array_equal(np.round(si[:3], 3), [66.667, 9.524, 163.636])
    assert math.isnan(si[3])
    np.testing.assert_array_equal(np.round(sa, 3), [20.483, 3.029, 43.655, 100.0])


def test_right_zero_is_handled_by_the_arctan_limit():
    # arctan(L/0) -> sign(L) * 90 deg, so SA = (45 - 90) / 90 = -50 % for L > 0, and
    # (45 + 90) / 90 = 150 % -> minus 200 % = -50 % for L < 0.
    assert symmetry_angle(0.0, 3.0) == (pytest.approx(-50.0), None)
    assert symmetry_angle(0.0, -3.0) == (pytest.approx(-50.0), None)
    assert symmetry_angle(0.0, 0.0) == (None, "zero_sum")
    # SI with R = 0, L > 0 is -200 % (defined: R + L != 0).
    assert symmetry_index(0.0, 5.0)[0] == pytest.approx(-200.0)


def test_wrap_above_100_percent():
    # R=1, L=-2: arctan(-2) = -63.435 deg -> (45 + 63.435)/90*100 = 120.48 % -> -79.52 %.
    expected = (45.0 + math.degrees(math.atan(2.0))) / 90.0 * 100.0 - 200.0
    assert symmetry_angle(1.0, -2.0)[0] == pytest.approx(expected)


def test_non_finite_inputs():
    assert symmetry_index(float("nan"), 1.0) == (None, "non_finite")
    assert symmetry_angle(1.0, float("inf")) == (None, "non_finite")
    assert np.isnan(symmetry_index_array([np.nan], [1.0])[0])


def test_bad_scalar_and_shape_raise():
    with pytest.raises(ValueError):
        symmetry_index("2", 1.0)
    with pytest.raises(ValueError):
        symmetry_index_array([1.0, 2.0, 3.0], [1.0, 2.0])


positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(positive, positive)
def test_properties_for_positive_values(right, left):
    si = symmetry_index_array(right, left)
    si_swapped = symmetry_index_array(left, right)
    sa = symmetry_angle_array(right, left)
    sa_swapped = symmetry_angle_array(left, right)
    # Swapping sides flips the sign of both indices (arctan(x) + arctan(1/x) = 90 deg for x > 0).
    assert si == pytest.approx(-si_swapped, abs=1e-9)
    assert sa == pytest.approx(-sa_swapped, abs=1e-9)
    # Bounds: |SI| < 200 %, |SA| < 50 % for positive inputs; SA is scale-invariant.
    assert abs(si) <= 200.0 and abs(sa) <= 50.0
    assert symmetry_angle_array(3.7 * right, 3.7 * left) == pytest.approx(sa, abs=1e-9)


def _long(rows):
    keys = ("subject_id", "session_id", "condition", "muscle", "metric", "side", "value", "n_cycles")
    return pl.DataFrame([dict(zip(keys, r)) for r in rows])


def test_asymmetry_table_values_and_reasons():
    rows = [
        ("S1", "v1", "walk", "TA", "peak", "L", 1.0, 10),
        ("S1", "v1", "walk", "TA", "peak", "R", 2.0, 8),
        ("S2", "v1", "walk", "TA", "peak", "L", -1.0, 5),
        ("S2", "v1", "walk", "TA", "peak", "R", 1.0, 6),
        ("S3", "v1", "walk", "TA", "peak", "L", 1.0, 5),
        ("S4", "v1", "walk", "TA", "peak", "R", 1.0, 5),
        ("S5", "v1", "walk", "TA", "peak", "L", float("nan"), 5),
        ("S5", "v1", "walk", "TA", "peak", "R", 1.0, 5),
    ]
    out = asymmetry_table(_long(rows))
    assert out.columns == [
        "subject_id", "session_id", "condition", "muscle", "metric",
        "left", "right", "diff", "unit", "si_pct", "sa_pct", "n_cycles", "reason",
    ]
    by = {r["subject_id"]: r for r in out.iter_rows(named=True)}
    assert round(by["S1"]["si_pct"], 3) == 66.667 and round(by["S1"]["sa_pct"], 3) == 20.483
    assert by["S1"]["n_cycles"] == 8 and by["S1"]["reason"] is None
    assert by["S1"]["diff"] == 1.0 and by["S1"]["unit"] == "mV"
    # a peak of -1 mV is no positive magnitude: no SI/SA (the signed difference stays)
    assert by["S2"]["si_pct"] is None and by["S2"]["sa_pct"] is None and by["S2"]["diff"] == 2.0
    assert by["S2"]["reason"] == "zero_sum"
    assert by["S3"]["reason"] == "missing_right" and by["S3"]["si_pct"] is None
    assert by["S4"]["reason"] == "missing_left" and by["S4"]["n_cycles"] is None
    assert by["S5"]["reason"] == "non_finite" and by["S5"]["sa_pct"] is None


def test_asymmetry_table_rejects_bad_input():
    good = [("S1", "v1", "walk", "TA", "peak", "L", 1.0, 3)]
    with pytest.raises(ValueError, match="side"):
        asymmetry_table(_long([("S1", "v1", "walk", "TA", "peak", "X", 1.0, 3)]))
    with pytest.raises(ValueError, match="duplicate"):
        asymmetry_table(_long(good * 2))
    with pytest.raises(ValueError, match="missing columns"):
        asymmetry_table(_long(good).drop("n_cycles"))


def test_timing_metrics_get_signed_differences_not_si():
    """Onsets are positions relative to foot strike: SI of -20 vs +20 ms would be a division by zero, of
    5 vs 15 ms +100 %; the registry gives them R - L in ms (and in % of the cycle, wrapped at 100 %)."""
    rows = [
        ("S1", "v1", "walk", "TA", "onset_ms", "L", -20.0, 9), ("S1", "v1", "walk", "TA", "onset_ms", "R", 20.0, 9),
        ("S2", "v1", "walk", "TA", "onset_ms", "L", 5.0, 9), ("S2", "v1", "walk", "TA", "onset_ms", "R", 15.0, 9),
        ("S1", "v1", "walk", "TA", "onset_pct", "L", 98.0, 9), ("S1", "v1", "walk", "TA", "onset_pct", "R", 1.0, 9),
        ("S2", "v1", "walk", "TA", "time_of_peak_pct", "L", 10.0, 9),
        ("S2", "v1", "walk", "TA", "time_of_peak_pct", "R", 70.0, 9),
        ("S1", "v1", "walk", None, "stance_time_s", "L", 0.6, 9), ("S1", "v1", "walk", None, "stance_time_s", "R", 0.66, 9),
    ]
    out = asymmetry_table(_long(rows))
    by = {(r["subject_id"], r["metric"]): r for r in out.iter_rows(named=True)}
    assert by[("S1", "onset_ms")]["diff"] == 40.0 and by[("S2", "onset_ms")]["diff"] == 10.0
    assert all(by[(s, "onset_ms")]["si_pct"] is None and by[(s, "onset_ms")]["sa_pct"] is None for s in ("S1", "S2"))
    assert by[("S1", "onset_ms")]["reason"] == "timing_metric" and by[("S1", "onset_ms")]["unit"] == "ms"
    assert by[("S1", "onset_pct")]["diff"] == pytest.approx(3.0)  # 98 % -> 1 % is 3 % later, not 97 % earlier
    assert by[("S2", "time_of_peak_pct")]["diff"] == pytest.approx(-40.0)  # 60 % is 40 % the other way round
    assert by[("S2", "time_of_peak_pct")]["unit"] == "% cycle"
    st = by[("S1", "stance_time_s")]
    assert st["si_pct"] == pytest.approx(0.06 / 0.63 * 100) and st["diff"] == pytest.approx(0.06) and st["unit"] == "s"
    with pytest.raises(ValueError, match="schemas.metrics"):
        asymmetry_table(_long([("S1", "v1", "walk", "TA", "onset_sd", "L", 1.0, 3)]))
