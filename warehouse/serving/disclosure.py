"""Disclosure control of releases: one policy per consent scope, small cells, and what may not go with them.

Release policies (declared once, :data:`RELEASE_POLICIES`)
    A release is published under one consent scope (``myomap publish
    --consent-scope``). The policy of that scope says who reads it and which
    sites' **per-subject** rows it may carry:

    ============== ================== =============================================
    scope          audience           per-subject rows (pseudonymous) for sites with
    ============== ================== =============================================
    public_release the public         ``public_subject_data`` in their consent
    pooled_analysis consortium members ``pooled_analysis`` (every site in it)
    ============== ================== =============================================

    Every other scope is refused. A site is in a release at all only with the
    scope in its consent and no running embargo; cohort summaries (aggregates)
    are released for every such site.

Small cells and complementary suppression
    1. A cohort cell (site x condition x muscle x metric) with fewer than
       ``min_cell_subjects`` subjects has its statistics nulled (``suppressed``).
    2. Per-subject rows would rebuild a suppressed cell (its mean is the mean of
       its subjects' values, and ``left``/``right`` or L/R profile values give the
       symmetry index back). So every session of a site x condition that has a
       suppressed cell is withheld from **every** per-subject table (asymmetry,
       variability, fatigue, subject_profiles, session maps), and a subject map
       is released only when all of that subject's sessions are.
    3. Pooled activation maps (condition, cohort) are sums over sessions: with the
       released session maps and ``n_cycles`` they give back the withheld ones. A
       condition map is released only when every site with data is in the
       release, it pools at least ``min_cell_subjects`` subjects, and the
       subjects whose session maps are withheld number zero or at least
       ``min_cell_subjects``; the cohort map (the margin of the condition maps)
       only when every condition map is released and the same holds for it.
    4. ``subject_profiles`` reference statistics (mean/SD, z, percentile, flag,
       n_reference) are recomputed over the released rows only
       (:func:`recomputed_profiles`): an embargoed or withheld subject is in no
       reference statistic of a release.

    ``tests/test_attacks.py`` tries to rebuild every suppressed cell from linear
    combinations of everything a release publishes and must find none.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from warehouse import catalog
from warehouse.serving.access import consent_scopes

L = catalog.LAKE
POOLED_SCOPES = ("condition", "cohort")


class ReleaseError(ValueError):
    """A release cannot be published (bad name, validation failed...)."""


@dataclass(frozen=True)
class ReleasePolicy:
    """What a release under one consent scope may publish."""

    scope: str
    audience: str
    subject_level_scope: str | None  # consent scope a site needs for its per-subject rows; None: never

    def to_dict(self) -> dict:
        return {"scope": self.scope, "audience": self.audience, "subject_level_scope": self.subject_level_scope}


#: One policy per consent scope a release may be published under.
RELEASE_POLICIES = {
    "public_release": ReleasePolicy("public_release", "the public", "public_subject_data"),
    "pooled_analysis": ReleasePolicy("pooled_analysis", "consortium members", "pooled_analysis"),
}


def policy_for(scope: str) -> ReleasePolicy:
    """The release policy of a consent scope.

    Raises
    ------
    ReleaseError
        For a scope without a declared policy.
    """
    if scope not in RELEASE_POLICIES:
        raise ReleaseError(f"no release policy is declared for consent scope {scope!r} (declared: "
                           f"{', '.join(sorted(RELEASE_POLICIES))}; docs/serving.md).")
    return RELEASE_POLICIES[scope]


def _in(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values) or "NULL"


def subject_level_sites(con: duckdb.DuckDBPyConnection, allowed: list[str], policy: ReleasePolicy) -> list[str]:
    """Released sites whose consent lets their per-subject rows be published under ``policy``."""
    if policy.subject_level_scope is None:
        return []
    rows = con.execute(f"SELECT site_id, consent FROM {L}.main.sites WHERE site_id IN ({_in(allowed)}) "
                       "ORDER BY 1").fetchall()
    return [site for site, consent in rows if policy.subject_level_scope in consent_scopes(consent)]


def suppressed_groups(cohort: dict[str, pa.Table]) -> list[tuple[str, str | None]]:
    """(site, condition) pairs with at least one suppressed cell in the released cohort tables."""
    out = set()
    for table in cohort.values():
        for r in table.select(["site_id", "condition", "suppressed"]).to_pylist():
            if r["suppressed"]:
                out.add((r["site_id"], r["condition"]))
    return sorted(out, key=lambda k: (k[0], k[1] or ""))


def mark_released_sessions(con: duckdb.DuckDBPyConnection, subject_sites: list[str],
                           suppressed: list[tuple[str, str | None]]) -> int:
    """Create temp tables ``_rel_sessions`` and ``_rel_subjects`` (per-subject rows that may be released).

    A session is released when its site is a subject-level site and its site x
    condition has no suppressed cell; a subject when all of its sessions are.
    Returns the number of released sessions.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE _suppressed_groups (site_id VARCHAR, condition VARCHAR)")
    if suppressed:
        con.executemany("INSERT INTO _suppressed_groups VALUES (?, ?)", [list(k) for k in suppressed])
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rel_sessions AS
        SELECT s.session_id, s.subject_id, s.site_id, s.condition FROM {L}.main.sessions s
        WHERE s.site_id IN ({_in(subject_sites)}) AND NOT EXISTS (
            SELECT 1 FROM _suppressed_groups g WHERE g.site_id = s.site_id
            AND g.condition IS NOT DISTINCT FROM s.condition)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _rel_subjects AS
        SELECT DISTINCT subject_id FROM _rel_sessions r WHERE NOT EXISTS (
            SELECT 1 FROM {L}.main.sessions s WHERE s.subject_id = r.subject_id
            AND s.session_id NOT IN (SELECT session_id FROM _rel_sessions))""")
    return con.execute("SELECT count(*) FROM _rel_sessions").fetchone()[0]


def pooled_maps(con: duckdb.DuckDBPyConnection, all_sites_in: bool, min_cell_subjects: int) -> dict:
    """Which pooled maps may be released: ``{"condition": [ids], "cohort": [ids], "withheld": {id: reason}}``.

    Reads the session maps of the lake (every site: pooled maps are only ever
    released when every site with data is in the release) and ``_rel_sessions``.
    """
    contrib = f"""
        SELECT DISTINCT s.subject_id, coalesce(s.condition, 'unknown') AS condition,
               s.session_id IN (SELECT session_id FROM _rel_sessions) AS released
        FROM {L}.main.activation_map m JOIN {L}.main.sessions s ON m.scope = 'session' AND m.scope_id = s.session_id"""
    count = "count(DISTINCT subject_id), count(DISTINCT subject_id) FILTER (WHERE NOT released)"
    by_condition = con.execute(f"SELECT condition, {count} FROM ({contrib}) GROUP BY 1 ORDER BY 1").fetchall()
    n_all, residual_all = con.execute(f"SELECT {count} FROM ({contrib})").fetchone()
    k = int(min_cell_subjects)
    out: dict = {"condition": [], "cohort": [], "withheld": {}}
    for cond, n, residual in by_condition:
        reason = _pooled_reason(all_sites_in, n, residual, k)
        if reason:
            out["withheld"][f"condition:{cond}"] = reason
        else:
            out["condition"].append(cond)
    reason = _pooled_reason(all_sites_in, n_all, residual_all, k)
    if not reason and out["withheld"]:
        reason = "a condition map is withheld and the cohort map is their margin (complementary suppression)"
    if reason:
        out["withheld"]["cohort:all"] = reason
    else:
        out["cohort"].append("all")
    return out


def _pooled_reason(all_sites_in: bool, n: int, residual: int, k: int) -> str | None:
    if not all_sites_in:
        return "pools sites that are not in the release"
    if n < k:
        return f"pools {n} subjects (< {k})"
    if 0 < residual < k:
        return f"pools {residual} subjects whose session maps are withheld (< {k}): they could be derived"
    return None


def recomputed_profiles(con: duckdb.DuckDBPyConnection, rows: pa.Table, columns: list[str]) -> pa.Table:
    """``subject_profiles`` rows with every reference statistic recomputed over ``rows`` only.

    Uses the lake's own method (:data:`warehouse.analysis.cohort.PROFILE_PARAMS`,
    :func:`transforms.profiles.patient_profiles`); columns and types as the lake's.
    """
    import polars as pl

    from transforms import profiles
    from warehouse.analysis.cohort import PROFILE_PARAMS

    base = ["subject_id", "session_id", "task", "condition", "muscle", "side", "metric", "value"]
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = ? "
                             "AND table_name = 'subject_profiles'", [L]).fetchall())
    frame = pl.from_arrow(rows.select(base)) if rows.num_rows else None
    out = profiles.patient_profiles(frame, **PROFILE_PARAMS) if frame is not None and frame.height else None
    select = ", ".join(f'CAST("{c}" AS {types[c]}) AS "{c}"' for c in columns)
    if out is None:
        return con.execute(f"SELECT {select} FROM {L}.main.subject_profiles WHERE FALSE").to_arrow_table()
    con.register("_rel_profiles", out.to_arrow())
    try:
        return con.execute(f"SELECT {select} FROM _rel_profiles").to_arrow_table()
    finally:
        con.unregister("_rel_profiles")
