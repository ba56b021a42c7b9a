"""Oracles for transforms.ultrasound, plus the real UltraTrack fixture."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import scipy.io

from conftest import fixture

from transforms.ultrasound import (
    align_to_emg_clock,
    interval_summary,
    pennation_rad_to_deg,
    shear_modulus_kpa,
    ultrasound_interval_metrics,
)

ULTRATRACK = fixture("ultrasound/PL_50_01_fascicle_ultratrack.mat")


def test_shear_modulus_oracle():
    # mu = rho c^2 = 1000 kg/m^3 * (3 m/s)^2 = 9000 Pa = 9 kPa
    assert float(shear_modulus_kpa(3.0)) == pytest.approx(9.0)
    np.testing.assert_allclose(shear_modulus_kpa(np.array([0.0, 1.0, 2.0, 5.0])), [0.0, 1.0, 4.0, 25.0])
    assert float(shear_modulus_kpa(3.0, density_kg_per_m3=1060.0)) == pytest.approx(9.54)
    assert math.isnan(float(shear_modulus_kpa(np.nan)))
    with pytest.raises(ValueError):
        shear_modulus_kpa(-1.0)
    with pytest.raises(ValueError):
        shear_modulus_kpa(1.0, density_kg_per_m3=0.0)


def test_pennation_conversion():
    np.testing.assert_allclose(pennation_rad_to_deg([0.0, math.pi / 2, math.pi / 12]), [0.0, 90.0, 15.0])


def test_interval_summary_on_a_sine():
    # FL = 70 + 10 sin(2 pi t) mm sampled at 1000 Hz: per 1-s cycle min 60, max 80 (samples at
    # t = k + 0.75 and k + 0.25 exist), excursion 20, mean exactly 70 over a whole period.
    t = np.arange(4000) / 1000.0
    fl = 70.0 + 10.0 * np.sin(2 * np.pi * t)
    out = interval_summary(fl, t, boundaries_s=[0.0, 1.0, 2.0, 3.0])
    assert out.height == 3
    np.testing.assert_allclose(out["min"], 60.0, atol=1e-9)
    np.testing.assert_allclose(out["max"], 80.0, atol=1e-9)
    np.testing.assert_allclose(out["mean"], 70.0, atol=1e-9)
    np.testing.assert_allclose(out["excursion"], 20.0, atol=1e-9)
    assert out["n_samples"].to_list() == [1000, 1000, 1000]  # [b_i, b_i+1): boundary sample goes to next


def test_contraction_intervals_are_closed_and_handle_dropouts():
    t = np.arange(10, dtype=float)
    v = np.arange(10, dtype=float)
    v[3] = np.nan
    out = interval_summary(v, t, boundaries_s=[[2.0, 5.0], [20.0, 30.0]])
    first = out.row(0, named=True)
    assert first["n_samples"] == 3 and first["min"] == 2.0 and first["max"] == 5.0  # NaN at t=3 ignored
    assert first["mean"] == pytest.approx((2 + 4 + 5) / 3)
    empty = out.row(1, named=True)
    assert empty["n_samples"] == 0 and empty["mean"] is None
    with pytest.raises(ValueError, match="increasing"):
        interval_summary(v, t, boundaries_s=[3.0, 2.0])
    with pytest.raises(ValueError, match="ending before"):
        interval_summary(v, t, boundaries_s=[[3.0, 2.0]])


def test_ultrasound_interval_metrics_long_frame():
    t = np.arange(200) / 100.0
    out = ultrasound_interval_metrics(
        t,
        boundaries_s=[0.0, 1.0, 2.0],
        fascicle_length_mm=np.full(200, 60.0),
        pennation_angle_rad=np.full(200, math.pi / 18),
        muscle_thickness_mm=np.full(200, 20.0),
    )
    assert set(out["variable"]) == {"fascicle_length_mm", "pennation_angle_deg", "muscle_thickness_mm"}
    pen = out.filter(pl.col("variable") == "pennation_angle_deg")
    np.testing.assert_allclose(pen["mean"], 10.0)
    np.testing.assert_allclose(pen["excursion"], 0.0)
    with pytest.raises(ValueError, match="not both"):
        ultrasound_interval_metrics(t, boundaries_s=[0, 1], pennation_angle_rad=t, pennation_angle_deg=t)
    with pytest.raises(ValueError, match="at least one"):
        ultrasound_interval_metrics(t, boundaries_s=[0, 1])


def test_alignment_is_exact_for_linear_signals_and_nan_outside():
    frames = 0.05 + np.arange(30) / 30.0  # 30 Hz triggers starting at 50 ms
    fl = 60.0 + 12.0 * frames  # linear in time -> linear interpolation is exact
    emg_t = np.arange(0, 1.2, 1 / 2000.0)
    out = align_to_emg_clock(fl, frame_times_s=frames, emg_times_s=emg_t)
    inside = (emg_t >= frames[0]) & (emg_t <= frames[-1])
    np.testing.assert_allclose(out[inside], 60.0 + 12.0 * emg_t[inside], rtol=0, atol=1e-9)
    assert np.all(np.isnan(out[~inside]))
    # exact frame values at the trigger times
    np.testing.assert_array_equal(align_to_emg_clock(fl, frame_times_s=frames, emg_times_s=frames), fl)


def test_alignment_nan_frame_only_affects_its_neighbouring_intervals():
    frames = np.arange(5, dtype=float)
    v = np.array([0.0, 1.0, np.nan, 3.0, 4.0])
    q = np.array([0.5, 1.0, 1.5, 2.5, 3.0, 3.5])
    out = align_to_emg_clock(v, frame_times_s=frames, emg_times_s=q)
    np.testing.assert_array_equal(np.isnan(out), [False, False, True, True, False, False])
    assert out[1] == 1.0 and out[4] == 3.0
    with pytest.raises(ValueError, match="strictly increasing"):
        align_to_emg_clock(v, frame_times_s=frames[::-1], emg_times_s=q)
    with pytest.raises(ValueError, match="equal length"):
        align_to_emg_clock(v[:3], frame_times_s=frames, emg_times_s=q)


def test_real_ultratrack_fixture():
    mat = scipy.io.loadmat(ULTRATRACK, squeeze_me=True, struct_as_record=False)
    region = np.atleast_1d(mat["Fdat"].Region)[0]
    fl = np.asarray(region.FL, float)
    pen = np.asarray(region.PEN, float)
    t = np.asarray(region.Time, float)
    assert fl.size == pen.size == t.size == 500
    # README facts: FL 58-81 mm, PEN 0.147-0.225 rad -> 8.4-12.9 deg.
    deg = pennation_rad_to_deg(pen)
    assert 8.4 <= deg.min() and deg.max() <= 12.9
    bounds = np.linspace(t[0], t[-1], 5)  # four equal "contractions"
    out = ultrasound_interval_metrics(t, boundaries_s=np.column_stack([bounds[:-1], bounds[1:]]),
                                      fascicle_length_mm=fl, pennation_angle_rad=pen)
    fl_rows = out.filter(pl.col("variable") == "fascicle_length_mm")
    assert fl_rows["min"].min() == pytest.approx(fl.min()) and fl_rows["max"].max() == pytest.approx(fl.max())
    assert 58.0 <= fl_rows["min"].min() and fl_rows["max"].max() <= 81.0
    np.testing.assert_allclose(fl_rows["excursion"], fl_rows["max"] - fl_rows["min"])
    # onto a 2000 Hz EMG clock covering 0-17 s: NaN before the first / after the last frame, and
    # every interpolated value lies between its two bracketing frames.
    emg_t = np.arange(0, 17.0, 1 / 2000.0)
    aligned = align_to_emg_clock(fl, frame_times_s=t, emg_times_s=emg_t)
    inside = (emg_t >= t[0]) & (emg_t <= t[-1])
    assert np.all(np.isnan(aligned[~inside])) and not np.any(np.isnan(aligned[inside]))
    j = np.clip(np.searchsorted(t, emg_t[inside], side="right") - 1, 0, t.size - 2)
    lo = np.minimum(fl[j], fl[j + 1]) - 1e-9
    hi = np.maximum(fl[j], fl[j + 1]) + 1e-9
    assert np.all((aligned[inside] >= lo) & (aligned[inside] <= hi))
