"""The disclosure attack on a release (issue 15): rebuild its suppressed cohort cells from what it publishes.

Each suppressed cell's mean is a linear functional of the lake's per-subject values; a cell is rebuilt when that
functional lies in the span of what the release publishes (unit values, and the unsuppressed cells' means).
Computed from the lake's per-subject tables, independently of the release code. Used by ``test_attacks`` (every
catalog backend) and ``test_attacks_demo`` (the demo lake).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from warehouse import catalog
from warehouse.serving import releases


def _unknowns_and_cells(settings):
    """The lake's per-subject values behind the cohort tables, and each cell's mean as a linear functional.

    Returns ``(cells, index)``: cell key -> {unknown id: coefficient} (mean of subject means), and the
    unknown ids. Computed here from the lake's per-subject tables, independently of the release code.
    """
    con = catalog.connect(settings, read_only=True)
    try:
        asym = con.execute("SELECT s.site_id, a.condition, a.muscle, a.metric, a.subject_id, a.session_id "
                           "FROM asymmetry a JOIN sessions s USING (session_id) WHERE a.si_pct IS NOT NULL").fetchall()
        var = con.execute("SELECT s.site_id, v.condition, v.muscle, v.side, v.metric, v.subject_id, v.session_id, "
                          "v.cv_pct, v.variance_ratio, v.onset_sd_ms FROM variability v JOIN sessions s "
                          "USING (session_id)").fetchall()
    finally:
        con.close()
    members: dict = {}
    for site, cond, muscle, metric, subj, sess in asym:
        key = ("cohort_asymmetry", site, cond, muscle, metric)
        members.setdefault(key, {}).setdefault(subj, []).append(("asym", sess, muscle, metric))
    for site, cond, muscle, side, metric, subj, sess, *stats in var:
        for stat, value in zip(("cv_pct", "variance_ratio", "onset_sd_ms"), stats):
            if value is not None:
                key = ("cohort_variability", site, cond, muscle, f"{metric}.{stat}")
                members.setdefault(key, {}).setdefault(subj, []).append(("var", sess, muscle, side, f"{metric}.{stat}"))
    cells = {}
    for key, by_subject in members.items():
        f: dict = {}
        for ids in by_subject.values():
            for u in ids:
                f[u] = f.get(u, 0.0) + 1.0 / len(by_subject) / len(ids)
        cells[key] = f
    return cells


def _values(settings) -> dict:
    """Value of every unknown of :func:`_unknowns_and_cells` (to check the model against published means)."""
    con = catalog.connect(settings, read_only=True)
    try:
        out = {("asym", sess, m, metric): v for sess, m, metric, v in con.execute(
            "SELECT session_id, muscle, metric, si_pct FROM asymmetry WHERE si_pct IS NOT NULL").fetchall()}
        for sess, m, side, metric, *stats in con.execute(
                "SELECT session_id, muscle, side, metric, cv_pct, variance_ratio, onset_sd_ms FROM variability"
                ).fetchall():
            for stat, v in zip(("cv_pct", "variance_ratio", "onset_sd_ms"), stats):
                out[("var", sess, m, side, f"{metric}.{stat}")] = v
        return out
    finally:
        con.close()


def _published(release: Path) -> tuple[list[dict], list[tuple], list[tuple]]:
    """Every linear fact a release publishes about the per-subject values: unit rows (values published
    outright, or derivable: L and R values give the symmetry index back), and the cohort rows."""
    units = set()
    read = {t: pq.read_table(release / f"{t}.parquet").to_pylist() for t in releases.RELEASE_TABLES}
    for r in read["asymmetry"]:
        if r["si_pct"] is not None or (r["left"] is not None and r["right"] is not None):
            units.add(("asym", r["session_id"], r["muscle"], r["metric"]))
    for r in read["variability"]:
        for stat in ("cv_pct", "variance_ratio", "onset_sd_ms"):
            if r[stat] is not None:
                units.add(("var", r["session_id"], r["muscle"], r["side"], f"{r['metric']}.{stat}"))
    sides: dict = {}
    for r in read["subject_profiles"]:
        if r["metric"] == "si_pct" and r["value"] is not None:
            units.add(("asym", r["session_id"], r["muscle"], "peak"))
        elif r["value"] is not None:
            sides.setdefault((r["session_id"], r["muscle"], r["metric"]), set()).add(r["side"])
    for r in read["fatigue"]:
        if r["onset_ms"] is not None:
            sides.setdefault((r["session_id"], r["muscle"], "onset_ms"), set()).add(r["side"])
    units |= {("asym", sess, m, metric) for (sess, m, metric), s in sides.items() if {"L", "R"} <= s}
    cohort = [(t, r) for t in releases.COHORT_TABLES for r in read[t]]
    return [{u: 1.0} for u in units], [(t, r) for t, r in cohort if not r["suppressed"]], \
        [(t, r) for t, r in cohort if r["suppressed"]]


def rebuilt_cells(settings, release: Path, extra_units: set = frozenset()) -> tuple[list, int]:
    """Suppressed cells of ``release`` whose mean is a linear combination of what it publishes.

    Returns ``(rebuilt, n_suppressed)``. ``extra_units`` adds values as if published (the control).
    """
    cells = _unknowns_and_cells(settings)
    rows, shown, hidden = _published(release)
    rows += [{u: 1.0} for u in extra_units]
    for t, r in shown:  # the published means are the model's: the model is the release's arithmetic
        f = cells[(t, r["site_id"], r["condition"], r["muscle"], r["metric"])]
        rows.append(f)
    rebuilt = []
    for t, r in hidden:
        target = cells.get((t, r["site_id"], r["condition"], r["muscle"], r["metric"]))
        if not target:
            continue
        support = set(target)
        used = [f for f in rows if support & set(f)]
        grown = True
        while grown:  # every row connected to the target through shared values
            cols = set().union(support, *used)
            more = [f for f in rows if cols & set(f) and f not in used]
            grown = bool(more)
            used += more
        cols = sorted(set().union(support, *used), key=repr)
        at = {c: i for i, c in enumerate(cols)}
        a = np.zeros((len(used) + 1, len(cols)))
        for i, f in enumerate([*used, target]):
            for u, c in f.items():
                a[i, at[u]] = c
        if np.linalg.matrix_rank(a) == np.linalg.matrix_rank(a[:-1]) if used else False:
            rebuilt.append((t, r["site_id"], r["condition"], r["muscle"], r["metric"]))
    return rebuilt, len(hidden)


def check_release_keeps_its_promises(settings, release: Path, allowed_sites: set[str]) -> None:
    cells = _unknowns_and_cells(settings)
    _, shown, hidden = _published(release)
    assert hidden, "no suppressed cell: the attack would prove nothing"
    values = _values(settings)
    for t, r in shown:  # the model reproduces every published mean (so the attack below models the release)
        f = cells[(t, r["site_id"], r["condition"], r["muscle"], r["metric"])]
        assert sum(c * values[u] for u, c in f.items()) == pytest.approx(r["mean"], rel=1e-9, abs=1e-12)
    rebuilt, n = rebuilt_cells(settings, release)
    assert rebuilt == [], f"{len(rebuilt)} of {n} suppressed cells rebuilt: {rebuilt[:5]}"
    # control: had the release published the per-subject values of its sites (as before issue 15),
    # the same attack rebuilds every suppressed cell
    every = {u for f in cells.values() for u in f}
    con = catalog.connect(settings, read_only=True)
    released_sessions = {r[0] for r in con.execute("SELECT session_id FROM sessions WHERE list_contains(?, site_id)",
                                                   [sorted(allowed_sites)]).fetchall()}
    con.close()
    rebuilt, n = rebuilt_cells(settings, release, {u for u in every if u[1] in released_sessions})
    assert len(rebuilt) == sum(1 for t, r in hidden if cells.get((t, r["site_id"], r["condition"], r["muscle"],
                                                                  r["metric"]))) > 0
