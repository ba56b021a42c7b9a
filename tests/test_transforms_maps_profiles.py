"""Oracles for transforms.activation_map and transforms.profiles."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from transforms.activation_map import (
    GAIT_PHASES_PCT,
    activation_matrices,
    activation_profile,
    phase_activation,
)
from transforms.asymmetry import symmetry_index_array
from transforms.profiles import MIN_CELL_SUBJECTS, cohort_summary, patient_profiles

PCT = np.arange(101, dtype=float)
PATTERN = 1.0 + np.cos(2 * np.pi * PCT / 100.0)


# ---------------------------------------------------------------- activation maps


def test_profile_mean_and_sd_per_point():
    # cycles = pattern - 1, pattern, pattern + 1 -> mean = pattern, sample SD = 1 everywhere.
    cycles = np.vstack([PATTERN - 1.0, PATTERN, PATTERN + 1.0])
    out = activation_profile({("TA", "R"): cycles})
    assert out.columns == ["muscle", "side", "pct", "envelope_mean", "envelope_sd", "n_cycles"]
    assert out["pct"].to_list() == list(range(101))
    np.testing.assert_allclose(out["envelope_mean"], PATTERN, atol=1e-12)
    np.testing.assert_allclose(out["envelope_sd"], 1.0, atol=1e-12)
    assert set(out["n_cycles"]) == {3}


def test_profile_drops_incomplete_cycles_and_single_cycle_sd_is_null():
    bad = PATTERN.copy()
    bad[40] = np.nan
    out = activation_profile({("SO", "L"): np.vstack([PATTERN, bad, PATTERN]), ("GM", "L"): PATTERN})
    so = out.filter(pl.col("muscle") == "SO")
    assert set(so["n_cycles"]) == {2}
    np.testing.assert_allclose(so["envelope_sd"], 0.0, atol=1e-12)
    gm = out.filter(pl.col("muscle") == "GM")
    assert set(gm["n_cycles"]) == {1} and gm["envelope_sd"].null_count() == 101


def test_phase_activation_perry_phases_on_a_ramp():
    # Envelope = pct: phase [a, b) averages the integers a..b-1, swing also holds 100.
    assert list(GAIT_PHASES_PCT) == ["loading_response", "mid_stance", "terminal_stance", "pre_swing", "swing"]
    cycles = np.vstack([PCT - 1.0, PCT, PCT + 1.0])
    out = phase_activation({("VL", "R"): cycles})
    expected = {"loading_response": 4.5, "mid_stance": 19.5, "terminal_stance": 39.5, "pre_swing": 54.5, "swing": 80.0}
    got = dict(zip(out["phase"], out["envelope_mean"]))
    assert got == pytest.approx(expected)
    np.testing.assert_allclose(out["envelope_sd"], 1.0)  # per-cycle phase means differ by exactly 1
    assert out["start_pct"].to_list() == [0.0, 10.0, 30.0, 50.0, 60.0]
    assert out["end_pct"].to_list() == [10.0, 30.0, 50.0, 60.0, 100.0]


def test_activation_matrices_share_muscle_order():
    env = {("TA", "R"): np.vstack([PATTERN, PATTERN]), ("SO", "R"): np.vstack([2 * PATTERN] * 2),
           ("TA", "L"): np.vstack([PATTERN] * 2)}
    mats = activation_matrices(activation_profile(env), muscle_order=["TA", "SO"])
    assert set(mats) == {"L", "R"}
    muscles, right = mats["R"]
    assert muscles == ["TA", "SO"] and right.shape == (2, 101)
    np.testing.assert_allclose(right[0], PATTERN)
    np.testing.assert_allclose(right[1], 2 * PATTERN)
    _, left = mats["L"]
    assert np.all(np.isnan(left[1]))  # SO absent on the left
    sd = activation_matrices(activation_profile(env), value_col="envelope_sd")["R"][1]
    np.testing.assert_allclose(sd, 0.0, atol=1e-12)


def test_activation_map_input_validation():
    with pytest.raises(ValueError, match="side"):
        activation_profile({("TA", "X"): np.ones((2, 101))})
    with pytest.raises(ValueError, match="101"):
        activation_profile({("TA", "L"): np.ones((2, 100))})
    with pytest.raises(ValueError, match="non-empty"):
        activation_profile({})
    with pytest.raises(ValueError, match="start < end"):
        phase_activation({("TA", "L"): np.ones((2, 101))}, phases_pct={"bad": (50.0, 40.0)})


# ---------------------------------------------------------------- patient profiles

SUBJECTS = [f"S{i:02d}" for i in range(1, 13)]
DELAYED = {"S03", "S08"}
ASYMMETRIC = "S11"
MUSCLES = {"TA": 120.0, "SO": 60.0, "VL": 20.0}  # baseline onset (ms after foot strike)


def _cohort():
    """12 subjects with deterministic, evenly spaced spreads (a permutation of 12 points on
    [-1, 1] per muscle/side/metric).  For 12 evenly spaced values the largest leave-one-out
    |z| is 1.81 (values 0..11: (11 - 5) / 3.317), so no control reaches |z| = 2 by
    construction.  Onset and duration share one permutation so that onset, offset
    (= onset + duration) and duration are all evenly spaced.  S03/S08 get TA onset +80 ms on
    both sides (offset unchanged); S11 a VL peak with R = 1.6 x L (controls |SI| < 10 %)."""
    rng = np.random.default_rng(0)
    spread = np.linspace(-1.0, 1.0, len(SUBJECTS))
    rows = []
    for muscle, onset0 in MUSCLES.items():
        peaks = {}
        for side in ("L", "R"):
            order = rng.permutation(spread)
            on = onset0 + 10.0 * order
            off = on + 400.0 + 15.0 * order
            tpk = 30.0 + 3.0 * rng.permutation(spread)
            pk = 1.0 + 0.1 * rng.permutation(spread)
            for i, s in enumerate(SUBJECTS):
                onset = on[i] + (80.0 if (s in DELAYED and muscle == "TA") else 0.0)
                for metric, v in (("onset_ms", onset), ("offset_ms", off[i]), ("time_of_peak_pct", tpk[i])):
                    rows.append((s, "v1", "walk", "baseline", muscle, side, metric, float(v)))
            peaks[side] = pk
        left = peaks["L"]
        right = left * (1.0 + 0.1 * rng.permutation(spread))  # controls |SI| < 10 %
        for i, s in enumerate(SUBJECTS):
            if s == ASYMMETRIC and muscle == "VL":
                right[i] = 1.6 * left[i]
            rows.append((s, "v1", "walk", "baseline", muscle, "L", "peak", float(left[i])))
            rows.append((s, "v1", "walk", "baseline", muscle, "R", "peak", float(right[i])))
        si = symmetry_index_array(right, left)
        for i, s in enumerate(SUBJECTS):
            rows.append((s, "v1", "walk", "baseline", muscle, None, "si_pct", float(si[i])))
    cols = ["subject_id", "session_id", "task", "condition", "muscle", "side", "metric", "value"]
    return pl.DataFrame(rows, schema=cols, orient="row")


def test_exactly_injected_subjects_are_flagged():
    out = patient_profiles(_cohort())
    assert out.columns == [
        "subject_id", "session_id", "task", "condition", "muscle", "side", "metric", "value",
        "reference_mean", "reference_sd", "n_reference", "z", "percentile", "flag",
    ]
    flagged = out.filter(pl.col("flag") != "none")
    got = {(r["subject_id"], r["muscle"], r["side"], r["metric"], r["flag"]) for r in flagged.iter_rows(named=True)}
    expected = {(s, "TA", side, "onset_ms", "delayed_onset") for s in DELAYED for side in ("L", "R")}
    expected.add((ASYMMETRIC, "VL", None, "si_pct", "asymmetric_output"))
    assert got == expected
    controls = set(SUBJECTS) - DELAYED - {ASYMMETRIC}
    assert out.filter(pl.col("subject_id").is_in(list(controls)) & (pl.col("flag") != "none")).height == 0
    asym = flagged.filter(pl.col("flag") == "asymmetric_output").row(0, named=True)
    assert asym["value"] == pytest.approx(0.6 / 1.3 * 100.0)  # R = 1.6 L -> SI 46.15 %


def test_leave_one_subject_out_reference_and_percentile():
    cohort = _cohort()
    out = patient_profiles(cohort)
    sel = (pl.col("muscle") == "TA") & (pl.col("side") == "R") & (pl.col("metric") == "onset_ms")
    values = dict(zip(cohort.filter(sel)["subject_id"], cohort.filter(sel)["value"]))
    for row in out.filter(sel).iter_rows(named=True):
        others = np.array([v for s, v in values.items() if s != row["subject_id"]])
        assert row["n_reference"] == 11
        assert row["reference_mean"] == pytest.approx(others.mean())
        assert row["reference_sd"] == pytest.approx(others.std(ddof=1))
        assert row["z"] == pytest.approx((row["value"] - others.mean()) / others.std(ddof=1))
        assert row["percentile"] == pytest.approx(100.0 * np.mean(others < row["value"]))  # no ties
    # the two delayed subjects hold the two largest onsets: one is above all 11 others, the
    # other above all but that one.
    pct = sorted(out.filter(sel & pl.col("subject_id").is_in(list(DELAYED)))["percentile"])
    assert pct == pytest.approx([100.0 * 10 / 11, 100.0])


def test_duration_derived_and_prolonged_and_early_offset_flags():
    # 8 subjects, two muscles: P7 ends TA early (offset 300 vs 500-512 ms; z far below -2),
    # P6 stays active long in SO (offset 900 -> duration ~800 vs ~400 ms).  Others evenly spaced.
    rows = []
    for i in range(8):
        s = f"P{i}"
        for muscle in ("TA", "SO"):
            onset, offset = 100.0 + i, 500.0 + 2 * i
            if s == "P7" and muscle == "TA":
                offset = 300.0
            if s == "P6" and muscle == "SO":
                offset = 900.0
            rows += [(s, "a", "walk", "c", muscle, "R", "onset_ms", onset),
                     (s, "a", "walk", "c", muscle, "R", "offset_ms", offset)]
    frame = pl.DataFrame(rows, schema=["subject_id", "session_id", "task", "condition", "muscle", "side", "metric", "value"], orient="row")
    out = patient_profiles(frame)
    dur = out.filter(pl.col("metric") == "duration_ms")
    assert dur.height == 16
    p7 = dur.filter((pl.col("subject_id") == "P7") & (pl.col("muscle") == "TA"))
    assert p7["value"][0] == pytest.approx(300.0 - 107.0)
    flags = {(r["subject_id"], r["muscle"], r["metric"]): r["flag"] for r in out.iter_rows(named=True) if r["flag"] != "none"}
    assert flags == {("P7", "TA", "offset_ms"): "early_offset", ("P6", "SO", "duration_ms"): "prolonged_activation"}


def test_small_reference_gives_null_z_and_duplicates_raise():
    rows = [(f"S{i}", "a", "walk", "c", "TA", "R", "onset_ms", 100.0 + i) for i in range(4)]
    frame = pl.DataFrame(rows, schema=["subject_id", "session_id", "task", "condition", "muscle", "side", "metric", "value"], orient="row")
    out = patient_profiles(frame)
    assert out["z"].null_count() == 4 and set(out["n_reference"]) == {3} and set(out["flag"]) == {"none"}
    with pytest.raises(ValueError, match="duplicate"):
        patient_profiles(pl.concat([frame, frame]))
    with pytest.raises(ValueError, match="missing columns"):
        patient_profiles(frame.drop("task"))


# ---------------------------------------------------------------- cohort summaries


def test_cohort_summary_percentiles_and_suppression():
    rows = []
    for v in range(101):  # site A: per-subject means 0..100 (two rows v-1, v+1 per subject)
        rows += [("A", "walk", "TA", "peak", f"A{v}", v - 1.0), ("A", "walk", "TA", "peak", f"A{v}", v + 1.0)]
    rows += [("B", "walk", "TA", "peak", f"B{i}", float(i)) for i in range(MIN_CELL_SUBJECTS - 1)]
    rows += [("C", "walk", "TA", "peak", f"C{i}", float(i)) for i in range(MIN_CELL_SUBJECTS)]
    frame = pl.DataFrame(rows, schema=["site", "condition", "muscle", "metric", "subject_id", "value"], orient="row")
    out = cohort_summary(frame)
    assert out.columns == ["site", "condition", "muscle", "metric", "n_subjects", "mean", "sd",
                           "p5", "p25", "p50", "p75", "p95", "suppressed"]
    a = out.filter(pl.col("site") == "A").row(0, named=True)
    # Linear-interpolated percentiles of 0..100 are the percentile itself; var(0..n-1) = n(n+1)/12.
    assert a["n_subjects"] == 101 and not a["suppressed"]
    assert [a[f"p{q}"] for q in (5, 25, 50, 75, 95)] == pytest.approx([5.0, 25.0, 50.0, 75.0, 95.0])
    assert a["mean"] == pytest.approx(50.0) and a["sd"] == pytest.approx(math.sqrt(101 * 102 / 12))
    b = out.filter(pl.col("site") == "B").row(0, named=True)
    assert b["suppressed"] and b["n_subjects"] == MIN_CELL_SUBJECTS - 1
    assert all(b[c] is None for c in ("mean", "sd", "p5", "p25", "p50", "p75", "p95"))
    c = out.filter(pl.col("site") == "C").row(0, named=True)
    assert not c["suppressed"] and c["p50"] == pytest.approx(2.0)
    assert cohort_summary(frame, min_cell_subjects=6).filter(pl.col("site") == "C")["suppressed"][0]
    with pytest.raises(ValueError, match="missing columns"):
        cohort_summary(frame.drop("site"))


def _interp_median(x: np.ndarray) -> float:
    """The median as polars interpolates it (``lo + (hi - lo) / 2`` for an even count)."""
    s = np.sort(x)
    lo, hi = s[(len(s) - 1) // 2], s[len(s) // 2]
    return lo + (hi - lo) * 0.5


def test_robust_leave_one_subject_out_reference_equals_a_brute_force_one():
    """The night's reference (``reference="robust"``): for each row, every *other* subject's mean over its sessions of
    the same task, condition, muscle, side and metric; the median, ``MAD_TO_SD`` x MAD, count and mid-rank
    percentile of those, computed here subject by subject. Ties (values on a coarse grid), nulls, subjects with
    several sessions or no value for a key, a side-less metric and a key held by one subject only."""
    from transforms.profiles import MAD_TO_SD

    rng = np.random.default_rng(7)
    rows = []
    for s in range(9):
        for sess in range(1 + s % 2):
            for muscle, side, metric in (("TA", "L", "onset_ms"), ("TA", "R", "onset_ms"), ("GM", None, "si_pct")):
                v = None if (s == 3 and muscle == "TA" and side == "L") else float(rng.integers(0, 6) * 10.0)
                rows.append({"subject_id": f"S{s}", "session_id": f"S{s}-{sess}", "task": "walk", "condition": "a",
                             "muscle": muscle, "side": side, "metric": metric, "value": v})
    rows.append({"subject_id": "S0", "session_id": "S0-0", "task": "run", "condition": "a", "muscle": "TA",
                 "side": "L", "metric": "onset_ms", "value": 5.0})  # the only subject of its key
    cohort = pl.DataFrame(rows)
    out = patient_profiles(cohort, reference="robust", min_reference_subjects=2)
    means = cohort.drop_nulls("value").group_by("subject_id", "task", "muscle", "side", "metric").agg(
        pl.col("value").mean())
    checked = 0
    for row in out.filter(pl.col("metric") != "duration_ms").iter_rows(named=True):
        key = ((pl.col("task") == row["task"]) & (pl.col("muscle") == row["muscle"])
               & (pl.col("metric") == row["metric"]))
        key &= pl.col("side").is_null() if row["side"] is None else pl.col("side") == row["side"]
        others = means.filter(key & (pl.col("subject_id") != row["subject_id"]))["value"].to_numpy()
        assert row["n_reference"] == len(others)
        if len(others) < 2:
            assert row["z"] is None and row["percentile"] is None
            continue
        centre = _interp_median(others)
        spread = MAD_TO_SD * _interp_median(np.abs(others - centre))
        assert row["reference_mean"] == pytest.approx(centre, rel=1e-12)
        assert row["reference_sd"] == pytest.approx(spread, rel=1e-12)
        if row["value"] is None:
            assert row["percentile"] is None
        else:
            below = np.sum(others < row["value"]) + 0.5 * np.sum(others == row["value"])
            assert row["percentile"] == pytest.approx(100.0 * below / len(others))
            assert (row["z"] is None) == (spread == 0)
        checked += 1
    assert checked > 30
