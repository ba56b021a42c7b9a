"""Cohort rebuilds (warehouse/analysis/cohort.py): a leg's synergies are reused when its input hashes the same
(the rows equal a fresh factorisation; a changed leg is factorised again, the others are not), and the
envelopes are read a few trials at a time with the result of one read."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from transforms import synergies as syn
from warehouse import catalog
from warehouse.analysis import cohort

SORT_S = ["session_id", "side", "synergy", "muscle"]
SORT_A = ["session_id", "side", "synergy", "sample"]


def _legs(seed: int) -> dict:
    """Two sessions x one leg x 4 muscles, 6 cycles of 101 points: two synergies mixed with noise."""
    rng = np.random.default_rng(seed)
    pct = np.linspace(0, 1, 101)
    base = np.vstack([np.exp(-((pct - 0.1) / 0.08) ** 2), np.exp(-((pct - 0.6) / 0.1) ** 2)])
    out = {}
    for sess in ("S1", "S2"):
        w = rng.uniform(0.1, 1.0, (4, 2))
        for i, m in enumerate(("ta", "sol", "gm", "vl")):
            cycles = np.vstack([w[i] @ base + 0.02 * rng.random(101) for _ in range(6)])
            out[("P1", sess, m, "L")] = cycles
    return out


def _fail_if_called(*a, **k):
    raise AssertionError("factorised again")


def _sorted(out):
    return out["synergies"].sort(SORT_S), out["synergy_activations"].sort(SORT_A)


def test_same_input_reuses_the_rows_of_a_fresh_factorisation(monkeypatch):
    legs = _legs(1)
    fresh = cohort._synergies(legs)
    assert fresh["synergies"]["input_sha256"].n_unique() == 2
    monkeypatch.setattr(syn, "extract_synergies", _fail_if_called)
    again = cohort._synergies(legs, (fresh["synergies"], fresh["synergy_activations"]))
    for a, b in zip(_sorted(again), _sorted(fresh)):
        assert a.select(b.columns).equals(b)


def test_a_changed_leg_is_factorised_again_and_only_it(monkeypatch):
    legs = _legs(2)
    first = cohort._synergies(legs)
    changed = dict(legs)
    changed[("P1", "S2", "vl", "L")] = legs[("P1", "S2", "vl", "L")] * 1.5 + 0.1  # one muscle of S2 differs
    called = []
    real = syn.extract_synergies
    monkeypatch.setattr(syn, "extract_synergies", lambda d, **k: called.append(d.shape) or real(d, **k))
    out = cohort._synergies(changed, (first["synergies"], first["synergy_activations"]))
    assert len(called) == 1  # S2 only
    monkeypatch.setattr(syn, "extract_synergies", real)
    fresh = cohort._synergies(changed)
    for a, b in zip(_sorted(out), _sorted(fresh)):
        assert a.select(b.columns).equals(b)
    s1 = pl.col("session_id") == "S1"
    assert out["synergies"].filter(s1).sort(SORT_S).equals(first["synergies"].filter(s1).sort(SORT_S))


def test_method_parameters_are_part_of_the_key(monkeypatch):
    mat = np.random.default_rng(3).random((4, 303))
    key = cohort.synergy_input_key("S1", "L", ["a", "b", "c", "d"], mat)
    assert cohort.synergy_input_key("S1", "L", ["a", "b", "c", "d"], mat.copy()) == key
    assert cohort.synergy_input_key("S1", "R", ["a", "b", "c", "d"], mat) != key
    assert cohort.synergy_input_key("S1", "L", ["a", "b", "d", "c"], mat) != key
    monkeypatch.setattr(cohort, "SYNERGY_METHOD", cohort.SYNERGY_METHOD + "|changed")
    assert cohort.synergy_input_key("S1", "L", ["a", "b", "c", "d"], mat) != key


@pytest.fixture(scope="module")
def demo_con(demo_lake):
    con = catalog.connect(demo_lake[2], read_only=True)
    yield con
    con.close()


def test_demo_lake_rebuild_reuses_every_leg(demo_con, monkeypatch):
    """On the demo lake, the rows the night stored carry their input's hash, and building the cohort tables
    again from the lake (SQL path) gives the stored synergies without factorising anything."""
    stored = demo_con.execute("SELECT count(*), count(input_sha256) FROM synergies").fetchone()
    assert stored[0] > 0 and stored[0] == stored[1]
    monkeypatch.setattr(syn, "extract_synergies", _fail_if_called)
    out = cohort._synergies(cohort.normalised_cycles(demo_con), cohort._previous_synergies(demo_con))
    s = demo_con.execute("SELECT * FROM synergies").pl().sort(SORT_S)
    a = demo_con.execute("SELECT * FROM synergy_activations").pl().sort(SORT_A)
    got_s, got_a = _sorted(out)
    assert got_s.select(s.columns).cast(s.schema).equals(s)
    assert got_a.select(a.columns).cast(a.schema).equals(a)


@pytest.mark.parametrize("chunk", [1, 3])
def test_normalised_cycles_read_in_chunks_equal_one_read(demo_con, monkeypatch, chunk):
    """The rebuild reads envelopes a few trials at a time (memory flat as the lake grows): the same cycles,
    in the same order, as reading every trial at once."""
    monkeypatch.setattr(cohort, "ENVELOPE_CHUNK_TRIALS", 10**9)
    whole = cohort.normalised_cycles(demo_con)
    monkeypatch.setattr(cohort, "ENVELOPE_CHUNK_TRIALS", chunk)
    parts = cohort.normalised_cycles(demo_con)
    assert list(parts) == list(whole) and len(whole) > 50
    for k in whole:
        np.testing.assert_array_equal(parts[k], whole[k])


def test_a_session_read_alone_equals_its_part_of_the_whole_lake(demo_con):
    whole = cohort.normalised_cycles(demo_con)
    sessions = sorted({k[1] for k in whole})
    for sess in sessions[:3]:
        alone = cohort.normalised_cycles(demo_con, session_id=sess)
        assert list(alone) == [k for k in whole if k[1] == sess] and alone
        for k in alone:
            np.testing.assert_array_equal(alone[k], whole[k])


def test_legs_factorised_ahead_are_what_the_rebuild_takes(demo_lake, demo_con, monkeypatch):
    """A session's legs factorised ahead (the night's threads) give the rebuild the rows a factorisation in
    the rebuild gives (here: the stored ones), and are not kept after it."""
    sessions = sorted({k[1] for k in cohort.normalised_cycles(demo_con)})
    for sess in sessions:
        cohort.factorise_ahead(demo_lake[2], sess)
    assert len(cohort._AHEAD) >= len(sessions)
    monkeypatch.setattr(syn, "extract_synergies", _fail_if_called)
    out = cohort._synergies(cohort.normalised_cycles(demo_con))  # nothing from the previous rebuild
    s = demo_con.execute("SELECT * FROM synergies").pl().sort(SORT_S)
    got_s, _ = _sorted(out)
    assert got_s.select(s.columns).cast(s.schema).equals(s)
    assert cohort._AHEAD == {}
