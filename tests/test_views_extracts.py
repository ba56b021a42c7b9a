"""Views, the hardened read-only connection, the cohort filter language and cohort extracts.

The synthetic consortium built here (also imported by test_releases / test_report):

* ``lyon``: 5 subjects (LYO01..05), consent pooled_analysis + public_release + public_subject_data; every
  subject has a ``fresh`` walk session, LYO01..03 also a ``fatigued`` one (a cohort
  cell of 3 subjects);
* ``boston``: 3 subjects, consent pooled_analysis + public_release, embargoed until 2999;
* ``tokyo``: 3 subjects, consent pooled_analysis only (no public release).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import REPO

from warehouse import catalog
from warehouse.serving import cohort_filter as cf
from warehouse.serving import access, extracts, views
from warehouse.settings import get_settings

TODAY = dt.date(2026, 6, 1)
SITES = {  # site -> (subjects, embargo_until, consent)
    "lyon": (["LYO01", "LYO02", "LYO03", "LYO04", "LYO05"], None, "pooled_analysis,public_release,public_subject_data"),
    "boston": (["BOS01", "BOS02", "BOS03"], dt.date(2999, 1, 1), "pooled_analysis, public_release"),
    "tokyo": (["TOK01", "TOK02", "TOK03"], None, "pooled_analysis"),
}
MUSCLES = ("tibialis_anterior", "soleus")
FATIGUED = {"LYO01", "LYO02", "LYO03"}
SECRET_PATH = "Jane_Doe_1961-02-03/walk01.c3d"  # a site-relative path with a name in it
OUTLIER_MS = 200.0  # LYO05's soleus L onset in subject_profiles: far from everyone (a delayed onset)


def sessions_of(subject: str) -> list[tuple[str, str, dt.date]]:
    """(session_id, condition, date) of a subject."""
    k = int(subject[3:])
    out = [(f"{subject}-fresh", "fresh", dt.date(2026, 3, k))]
    if subject in FATIGUED:
        out.append((f"{subject}-fatigued", "fatigued", dt.date(2026, 9, k)))
    return out


def onset_ms(subject: str, condition: str, muscle: str, side: str, cycle: int) -> float:
    """Known default-method onset: depends on subject, condition, muscle, side and cycle."""
    k = int(subject[3:])
    return (-40.0 if muscle == "tibialis_anterior" else 100.0) + 10 * k + (30 if condition == "fatigued" else 0) \
        + (5 if side == "R" else 0) + 2 * cycle


def _insert(con, table: str, rows: list[dict]) -> None:
    con.register("_rows", pa.Table.from_pylist(rows))
    con.execute(f"INSERT INTO lake.main.{table} BY NAME SELECT * FROM _rows")
    con.unregister("_rows")


def cohort_tables(rows: dict) -> dict[str, list[dict]]:
    """cohort_asymmetry / cohort_variability from the per-subject rows, as the nightly flow computes them
    (``warehouse/analysis/cohort.py``), with no suppression in the lake (releases apply their own)."""
    import polars as pl

    from transforms import profiles

    site = pl.DataFrame([{"session_id": r["session_id"], "site_id": r["site_id"]} for r in rows["sessions"]])
    a = pl.DataFrame(rows["asymmetry"]).join(site, on="session_id").filter(pl.col("si_pct").is_not_null())
    out = {"cohort_asymmetry": profiles.cohort_summary(
        a.rename({"si_pct": "value"}), group_cols=("site_id", "condition", "muscle", "metric"), min_cell_subjects=1)}
    v = pl.DataFrame(rows["variability"]).join(site, on="session_id").unpivot(
        index=["site_id", "condition", "muscle", "subject_id", "metric"],
        on=["cv_pct", "variance_ratio", "onset_sd_ms"], variable_name="stat", value_name="value")
    v = v.with_columns(metric=pl.col("metric") + "." + pl.col("stat")).drop("stat").drop_nulls("value")
    out["cohort_variability"] = profiles.cohort_summary(v, group_cols=("site_id", "condition", "muscle", "metric"),
                                                        min_cell_subjects=1)
    return {k: f.to_dicts() for k, f in out.items()}


def build_lake(root: Path):
    """Create the synthetic consortium lake at ``root``; returns its Settings."""
    s = get_settings(str(root))
    con = catalog.connect(s)
    rows: dict[str, list[dict]] = {t: [] for t in (
        "sites", "subjects", "sessions", "trials", "emg_channels", "emg_samples", "gait_cycles",
        "activation_onsets", "asymmetry", "variability", "fatigue", "subject_profiles", "activation_map",
        "cohort_asymmetry", "cohort_variability", "files", "quarantine", "emg_envelopes", "co_contraction")}
    for site, (subjects, embargo, consent) in SITES.items():
        rows["sites"].append({"site_id": site, "mains_hz": 50.0, "timezone": "UTC", "embargo_until": embargo,
                              "consent": consent})
        for subj in subjects:
            k = int(subj[3:])
            rows["subjects"].append({"subject_id": subj, "site_id": site, "sex": "F", "mass_kg": 60.0 + k,
                                     "height_m": 1.6})
            for sess, cond, date in sessions_of(subj):
                trial = f"{site}:{sess}:walk01"
                sha = hashlib.sha256(trial.encode()).hexdigest()
                rows["sessions"].append({"session_id": sess, "site_id": site, "subject_id": subj,
                                         "session_date": date, "condition": cond, "task": "walk",
                                         "terrain": "overground", "mains_hz": 50.0})
                rows["trials"].append({"trial_id": trial, "site_id": site, "subject_id": subj, "session_id": sess,
                                       "sha256": sha, "format": "c3d", "duration_s": 10.0,
                                       "analog_rate_hz": 1000.0, "n_emg_channels": 4})
                rows["files"].append({"sha256": sha, "site_id": site, "path": f"{subj}/{sess}.c3d", "size_bytes": 10,
                                      "received_at": dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc),
                                      "status": "ingested", "session_id": sess, "trial_id": trial})
                for ch, (muscle, side) in enumerate((m, sd) for m in MUSCLES for sd in "LR"):
                    rows["emg_channels"].append({"trial_id": trial, "channel": ch, "label": f"{side} {muscle}",
                                                 "muscle": muscle, "side": side, "unit": "mV", "rate_hz": 1000.0,
                                                 "n_samples": 5})
                    rows["emg_samples"] += [{"trial_id": trial, "channel": ch, "sample_index": i,
                                             "emg_mv": 0.01 * (i + ch)} for i in range(5)]
                    rows["emg_envelopes"] += [{"trial_id": trial, "channel": ch, "muscle": muscle, "side": side,
                                               "sample_index": i, "time_s": i / 100, "envelope_mv": 0.1,
                                               "rate_hz": 100.0, "params_hash": "envA"} for i in range(3)]
                    for cyc in (0, 1):
                        on = onset_ms(subj, cond, muscle, side, cyc)
                        for method, default in (("hodges_bui", True), ("tkeo", False)):
                            rows["activation_onsets"].append({
                                "trial_id": trial, "subject_id": subj, "session_id": sess, "muscle": muscle,
                                "side": side, "cycle": cyc, "method": method, "burst": 0,
                                "onset_ms": on + (0 if default else 500), "offset_ms": on + 300,
                                "onset_pct": on / 10, "offset_pct": (on + 300) / 10, "is_default": default,
                                "bias_corrected": False, "params_hash": "onsetA"})
                    rows["variability"].append({"subject_id": subj, "session_id": sess, "condition": cond,
                                                "muscle": muscle, "side": side, "metric": "envelope",
                                                "cv_pct": 10.0 + k,
                                                "variance_ratio": 0.1 * k, "onset_sd_ms": 5.0, "n_cycles": 2})
                    rows["fatigue"].append({"subject_id": subj, "session_id": sess, "condition": cond,
                                            "muscle": muscle, "side": side, "mdf_hz": 80.0 - k, "mnf_hz": 90.0,
                                            "onset_ms": on, "n_bursts": 2})
                    outlier = subj == "LYO05" and muscle == "soleus" and side == "L"  # a delayed onset
                    z = 3.0 if outlier else 0.1 * k
                    rows["subject_profiles"].append({
                        "subject_id": subj, "session_id": sess, "task": "walk", "condition": cond, "muscle": muscle,
                        "side": side, "metric": "onset_ms", "value": on + (OUTLIER_MS if outlier else 0),
                        "reference_mean": on - 5,
                        "reference_sd": 10.0, "z": z, "percentile": 50.0,
                        "flag": "delayed_onset" if z > 2 else "none", "n_reference": 4})
                    for pct in range(101):
                        rows["activation_map"].append({
                            "scope": "session", "scope_id": sess, "muscle": muscle, "side": side, "pct": float(pct),
                            "envelope_mean": ((pct + 7 * k + (40 if muscle == "soleus" else 0)) % 100) / 100,
                            "envelope_sd": 0.05, "n_cycles": 2,
                            "onset_mean_pct": 20.0 + k, "offset_mean_pct": 60.0 + k})
                    for cyc in (0, 1):
                        if muscle == MUSCLES[0]:
                            rows["gait_cycles"].append({"trial_id": trial, "side": side, "cycle": cyc,
                                                        "start_s": cyc * 1.0, "end_s": cyc + 1.0, "valid": True})
                for muscle in MUSCLES:
                    left, right = 1.0, 1.0 + 0.1 * k
                    rows["asymmetry"].append({
                        "subject_id": subj, "session_id": sess, "condition": cond, "muscle": muscle,
                        "metric": "peak", "left": left, "right": right,
                        "si_pct": (right - left) / (0.5 * (right + left)) * 100, "n_cycles": 2})
                rows["co_contraction"].append({"trial_id": trial, "subject_id": subj, "session_id": sess,
                                               "side": "L", "cycle": 0, "muscle_a": "tibialis_anterior",
                                               "muscle_b": "soleus", "cci": 0.3})
    for cond in ("fresh", "fatigued"):  # pooled maps over every site
        for muscle in MUSCLES:
            for side in "LR":
                rows["activation_map"] += [{"scope": "condition", "scope_id": cond, "muscle": muscle, "side": side,
                                            "pct": float(p), "envelope_mean": p / 100, "n_cycles": 20}
                                           for p in range(101)]
    rows.update(cohort_tables(rows))
    bad_sha = "f" * 64
    rows["files"].append({"sha256": bad_sha, "site_id": "lyon", "path": SECRET_PATH, "size_bytes": 3,
                          "received_at": dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc), "status": "quarantined"})
    rows["quarantine"].append({"sha256": bad_sha, "site_id": "lyon", "path": SECRET_PATH, "stage": "read",
                               "reason_code": "c3d_truncated", "message": f"{SECRET_PATH} is truncated",
                               "raw_path": f"raw/ff/{bad_sha}.c3d"})

    def body(c):
        for table, r in rows.items():
            _insert(c, table, r)
    catalog.write_atomically(s, con, body, what="test lake")
    con.close()
    return s


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    return build_lake(tmp_path_factory.mktemp("consortium") / "lake")


def lake_state(settings) -> tuple[dict, int]:
    """Row count of every table and the number of snapshots."""
    con = catalog.connect(settings, read_only=True)
    try:
        names = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in names}
        snaps = con.execute("SELECT count(*) FROM ducklake_snapshots('lake')").fetchone()[0]
        return counts, snaps
    finally:
        con.close()


# --------------------------------------------------------------------------- views
def test_views_answer_the_common_questions(consortium):
    con = catalog.connect(consortium, read_only=True)
    names = views.create_views(con)
    assert names == [v.name for v in views.VIEWS] and len(set(names)) == len(names)
    for v in views.VIEWS:  # documented and queryable
        assert v.description and con.execute(f"SELECT count(*) FROM {v.name}").fetchone()[0] >= 0
    # default-method onsets only, with session context
    n_sessions = sum(len(sessions_of(s)) for subs, _, _ in SITES.values() for s in subs)
    assert con.execute("SELECT count(*) FROM v_onsets").fetchone()[0] == n_sessions * 2 * 2 * 2
    assert con.execute("SELECT count(*) FROM v_onsets WHERE method <> 'hodges_bui'").fetchone()[0] == 0
    # timing: mean over subjects of subject means (fatigued TA left: LYO01..03, cycles 0 and 1)
    got = con.execute("SELECT n_subjects, onset_ms_mean FROM v_activation_timing WHERE condition = 'fatigued' "
                      "AND muscle = 'tibialis_anterior' AND side = 'L'").fetchone()
    expect = sum((onset_ms(s, "fatigued", "tibialis_anterior", "L", 0) + onset_ms(s, "fatigued", "tibialis_anterior",
                  "L", 1)) / 2 for s in sorted(FATIGUED)) / 3
    assert got == (3, pytest.approx(expect))
    # asymmetry by cohort: lyon fresh peak SI mean over its 5 subjects
    si = [(0.1 * k) / (0.5 * (2 + 0.1 * k)) * 100 for k in range(1, 6)]
    got = con.execute("SELECT n_subjects, si_pct_mean FROM v_asymmetry_by_cohort WHERE site_id = 'lyon' "
                      "AND condition = 'fresh' AND muscle = 'soleus' AND metric = 'peak'").fetchone()
    assert got == (5, pytest.approx(sum(si) / 5))
    got = con.execute("SELECT n_subjects, mean FROM v_variability_by_cohort WHERE site_id = 'boston' "
                      "AND muscle = 'soleus' AND side = 'R' AND metric = 'envelope.cv_pct'").fetchone()
    assert got == (3, pytest.approx(12.0))
    assert con.execute("SELECT subject_id, flag FROM v_subject_flags").fetchall() == [("LYO05", "delayed_onset")]
    assert con.execute("SELECT DISTINCT phase FROM v_activation_maps WHERE pct = 55").fetchall() == [("pre_swing",)]
    ov = con.execute("SELECT count(*), sum(n_valid_cycles) FROM v_trials_overview").fetchone()
    assert ov == (n_sessions, n_sessions * 4)
    assert con.execute("SELECT n_files FROM v_qc_files WHERE status = 'quarantined'").fetchall() == [(1,)]
    con.close()


# --------------------------------------------------------------------------- hardening
WRITES = [
    "INSERT INTO sites (site_id) VALUES ('evil')",
    "UPDATE sites SET consent = 'public_release'",
    "DELETE FROM trials",
    "DROP TABLE trials",
    "CREATE TABLE lake.main.evil (a INT)",
    "CREATE TABLE evil AS SELECT 1",
    "ALTER TABLE sites ADD COLUMN x INT",
    "COPY (SELECT * FROM sites) TO '{out}/sites.csv'",
    "COPY (SELECT 1) TO '{tables}/evil.parquet'",
    "EXPORT DATABASE '{out}/export'",
    "ATTACH 'ducklake:sqlite:{catalog}' AS w (DATA_PATH '{tables}/')",
    "ATTACH '{out}/new.duckdb' AS w2",
    "DETACH lake",
    "USE memory",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET lock_configuration",
    "SET allow_unsigned_extensions = true",
    "SET allowed_directories = ['/']",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CALL lake.set_option('parquet_compression', 'snappy')",
    "CHECKPOINT lake",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}/explained.csv'",
    "SELECT 1; DROP TABLE trials",
    "BEGIN TRANSACTION",
    "SELECT * FROM ducklake_expire_snapshots('lake', older_than => now())",
    "SELECT * FROM ducklake_merge_adjacent_files('lake')",
    "FROM checkpoint('lake')",
    "SELECT * FROM query('SELECT * FROM ducklake_cleanup_old_files(''lake'', cleanup_all => true)')",
]


def test_hardened_session_cannot_write_anything(consortium, tmp_path):
    before = lake_state(consortium)
    tables = consortium.zone("tables")
    files_before = sorted(p for p in Path(tables).rglob("*"))
    ro = access.open_member_session(consortium)
    for q in WRITES:
        sql = q.format(out=tmp_path, tables=tables, catalog=consortium.catalog)
        with pytest.raises(duckdb.Error):
            ro.execute(sql).fetchall()
    # every statement was refused before running: no file anywhere, lake unchanged, still usable
    assert list(tmp_path.iterdir()) == []
    assert sorted(p for p in Path(tables).rglob("*")) == files_before
    assert lake_state(consortium) == before
    assert ro.execute("SELECT count(*) FROM trials").fetchone()[0] == before[0]["trials"]
    assert ro.execute("SELECT count(*) FROM v_onsets").fetchone()[0] > 0
    with pytest.raises(views.ReadOnlyViolation, match="^Refused: table function read_csv reads files"):
        ro.execute("SELECT * FROM read_csv('/etc/hostname')")
    with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):  # the layer under the gate
        ro._con.execute("SELECT * FROM read_csv('/etc/hostname')")
    for ok in ("SHOW TABLES", "DESCRIBE sites", "SUMMARIZE sites", "EXPLAIN SELECT 1",
               "WITH a AS (SELECT 1 AS x) SELECT x FROM a", "FROM ducklake_snapshots('lake')"):
        ro.execute(ok).fetchall()
    with pytest.raises(views.ReadOnlyViolation, match="COPY"):
        ro.execute("COPY sites TO 'x.csv'")
    ro.close()


def test_maintenance_functions_cannot_delete_files_through_a_query(tmp_path):
    """DuckLake clean-up deletes files even on a READ_ONLY attachment: the session refuses it in any form."""
    s = get_settings(str(tmp_path / "lake"))
    w = catalog.connect(s)
    for i in range(3):
        w.execute("INSERT INTO runs (run_id) VALUES (?)", [f"r{i}"])
    w.execute("DELETE FROM runs WHERE run_id = 'r0'")
    w.execute("CALL ducklake_merge_adjacent_files('lake')")
    w.execute("CALL ducklake_expire_snapshots('lake', older_than => now())")
    scheduled = w.execute("SELECT count(*) FROM __ducklake_metadata_lake.ducklake_files_scheduled_for_deletion"
                          ).fetchone()[0]
    w.close()
    assert scheduled > 0
    files = sorted(Path(s.zone("tables")).rglob("*.parquet"))
    ro = access.open_member_session(s)
    for q in ("SELECT * FROM ducklake_cleanup_old_files('lake', cleanup_all => true)",
              'FROM "DUCKLAKE_CLEANUP_OLD_FILES"(\'lake\', cleanup_all => true)',
              "SELECT * FROM ducklake_delete_orphaned_files('lake', cleanup_all => true)",
              "SELECT count(*) FROM (SELECT * FROM ducklake_cleanup_old_files('lake', cleanup_all => true))",
              "EXPLAIN ANALYZE SELECT * FROM ducklake_cleanup_old_files('lake', cleanup_all => true)",
              "SELECT * FROM query('FROM ducklake_cleanup_old_files(''lake'', cleanup_all => true)')"):
        with pytest.raises(views.ReadOnlyViolation, match="cleanup|orphaned|query"):
            ro.execute(q)
    assert sorted(Path(s.zone("tables")).rglob("*.parquet")) == files
    assert ro.execute("SELECT run_id FROM runs ORDER BY 1").fetchall() == [("r1",), ("r2",)]
    assert ro.execute("SELECT count(*) > 0 FROM ducklake_snapshots('lake')").fetchone() == (True,)
    ro.close()


def test_harden_refuses_a_writable_connection(tmp_path):
    w = catalog.connect(get_settings(str(tmp_path / "lake")))
    with pytest.raises(views.HardeningError, match="read-only"):
        views.harden(w)
    w.close()


def test_myomap_sql_command_is_read_only(consortium, tmp_path):
    """The real `myomap sql` refuses writes; its session (access.open_member_session) refuses COPY too."""
    from flows.cli import _run_and_print, main

    before = lake_state(consortium)
    r = CliRunner().invoke(main, ["sql", "--lake", consortium.lake, "INSERT INTO sites (site_id) VALUES ('x')"])
    assert r.exit_code != 0 and "read-only" in r.output
    r = CliRunner().invoke(main, ["sql", "--lake", consortium.lake, "DROP TABLE trials"])
    assert r.exit_code != 0
    ro = access.open_member_session(consortium)
    import click
    with pytest.raises(click.ClickException, match="read-only"):
        _run_and_print(consortium, ro, f"COPY (SELECT * FROM subjects) TO '{tmp_path}/s.csv'", "csv")
    assert not (tmp_path / "s.csv").exists()
    assert lake_state(consortium) == before


def test_bad_as_of_values_get_one_clear_line(consortium, tmp_path):
    """`--as-of 99999`, `-1`, `²` used to print a Python traceback."""
    from flows.cli import main

    for bad in ("-1", "\u00b2", "yesterday", "2026-13-45", "1e3"):
        for cli, args in ((main, ["sql", "SELECT 1"]), (_cli(), ["extract", "--out", str(tmp_path / "x")])):
            r = CliRunner().invoke(cli, [*args, "--lake", consortium.lake, "--as-of", bad])
            assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (bad, r.output, r.exception)
            assert "is neither a snapshot id (0, 1, 2, ...) nor a timestamp" in r.output, r.output
    con = catalog.connect(consortium, read_only=True)
    last = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone()[0]
    con.close()
    for cli, args in ((main, ["sql", "SELECT 1"]), (_cli(), ["extract", "--out", str(tmp_path / "y")])):
        r = CliRunner().invoke(cli, [*args, "--lake", consortium.lake, "--as-of", "99999"])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
        assert f"--as-of 99999: there is no snapshot 99999 in this lake. The lake has snapshots 0 to {last}" \
            in r.output, r.output
    assert not [p for p in (tmp_path / "y").rglob("*") if p.is_file()]  # nothing written
    r = CliRunner().invoke(main, ["sql", "--lake", consortium.lake, "--as-of", "2001-01-01", "SELECT 1"])
    assert r.exit_code == 1 and "no snapshot at or before 2001-01-01 00:00:00+00:00" in r.output, r.output
    r = CliRunner().invoke(main, ["sql", "--lake", consortium.lake, "--as-of", str(last), "--format", "csv",
                                  "SELECT count(*) FROM sites"])
    assert r.exit_code == 0 and r.output.splitlines()[1] == str(len(SITES)), r.output


# --------------------------------------------------------------------------- cohort filter
def test_filter_grammar_parses_and_validates():
    f = cf.parse(" site=lyon,boston; condition=fatigued; task=walk; muscle=tibialis_anterior; side=L; "
                 "date>=2026-01-01; date<=2026-12-31; subject=LYO01,LYO02; ")
    assert [c.to_dict() for c in f.clauses][:2] == [
        {"key": "site", "op": "=", "values": ["lyon", "boston"]},
        {"key": "condition", "op": "=", "values": ["fatigued"]}]
    assert f.keys() == {"site", "condition", "task", "muscle", "side", "date", "subject"}
    sql, params = f.predicate({"site": "s.site_id", "date": "s.session_date"})
    assert sql == "s.site_id IN (?, ?) AND s.session_date >= CAST(? AS DATE) AND s.session_date <= CAST(? AS DATE)"
    assert params == ["lyon", "boston", "2026-01-01", "2026-12-31"]
    assert cf.parse("").is_empty and cf.parse(None).predicate({"site": "site_id"}) == ("TRUE", [])
    sql, params = cf.parse("condition!=fatigued").predicate({"condition": "condition"})
    assert sql == "(condition IS NULL OR NOT (condition IN (?)))" and params == ["fatigued"]
    bad = {
        "weight=3": "unknown key 'weight'",
        "site>lyon": "operator '>' is not allowed for site",
        "muscle=tibialis": "unknown muscle 'tibialis'",
        "side=left": "unknown side",
        "date>=2026-02-30": "not a calendar date",
        "date>=yesterday": "YYYY-MM-DD",
        "date>=2026-01-01,2026-02-01": "exactly one value",
        "site=": "empty value",
        "site=lyon,,boston": "empty value",
        "site lyon": "expected key=value",
        "condition=fatigue": "Did you mean fatigued",
    }
    for text, msg in bad.items():
        with pytest.raises(cf.CohortFilterError, match=msg):
            cf.parse(text)
    with pytest.raises(cf.CohortFilterError, match="unknown site 'lyonn'.*Did you mean lyon"):
        cf.parse("site=lyonn", known={"site": ["lyon", "boston"]})
    assert cf.parse("condition=pre_op", known={"condition": ["pre_op"]}).clauses[0].values == ("pre_op",)


INJECTIONS = [
    "site=A'; DROP TABLE trials; --",
    "site=lyon' OR '1'='1",
    "subject=LYO01) OR (1=1",
    "site=lyon;DROP TABLE trials",
    "site=lyon -- comment",
    "subject=LYO01/**/OR/**/1=1",
    "session=x\"; ATTACH 'evil.db' AS e; --",
    "site=lyon\x00",
    "muscle=soleus UNION SELECT * FROM subjects",
]


def test_injection_attempts_are_rejected_and_the_lake_is_unchanged(consortium, tmp_path):
    before = lake_state(consortium)
    for i, text in enumerate(INJECTIONS):
        with pytest.raises(cf.CohortFilterError):
            cf.parse(text)
        with pytest.raises(cf.CohortFilterError):
            extracts.extract(consortium, cohort=text, tables=["trials"], out_dir=str(tmp_path / f"x{i}"))
    r = CliRunner().invoke(_cli(), ["extract", "--lake", consortium.lake, "--cohort", INJECTIONS[0],
                                    "--table", "trials", "--out", str(tmp_path / "cli")])
    assert r.exit_code != 0 and "not allowed" in r.output and "Traceback" not in r.output
    assert lake_state(consortium) == before
    assert not any((tmp_path / f"x{i}" / "trials.parquet").exists() for i in range(len(INJECTIONS)))


def _cli():
    import click

    from flows.cli_publish import register

    @click.group()
    def group() -> None:
        pass
    register(group)
    return group


# --------------------------------------------------------------------------- extracts
def test_extract_applies_cohort_and_consortium_rules(consortium, tmp_path):
    out = tmp_path / "ex"
    m = extracts.extract(consortium, cohort="condition=fresh; muscle=tibialis_anterior; side=L",
                         tables=["subjects", "sessions", "trials", "activation_onsets", "emg_samples",
                                 "gait_cycles", "co_contraction", "cohort_asymmetry", "activation_map"],
                         out_dir=str(out), requester_site="lyon", today=TODAY)
    # boston is embargoed (future date) and excluded; tokyo shares pooled_analysis and is included
    assert m["sharing"]["included_sites"] == ["lyon", "tokyo"]
    assert m["sharing"]["excluded_sites"] == [
        {"site_id": "boston", "included": False, "reasons": ["embargoed until 2999-01-01"]}]
    sessions = pq.read_table(out / "sessions.parquet").to_pylist()
    assert {r["site_id"] for r in sessions} == {"lyon", "tokyo"}
    assert {r["condition"] for r in sessions} == {"fresh"} and len(sessions) == 8
    onsets = pq.read_table(out / "activation_onsets.parquet")
    assert set(onsets.column("muscle").to_pylist()) == {"tibialis_anterior"}
    assert set(onsets.column("side").to_pylist()) == {"L"}
    assert onsets.num_rows == 8 * 2 * 2  # sessions x cycles x methods
    # emg_samples has no muscle column: filtered through emg_channels (channel 0 = TA left)
    samples = pq.read_table(out / "emg_samples.parquet")
    assert set(samples.column("channel").to_pylist()) == {0} and samples.num_rows == 8 * 5
    assert pq.read_table(out / "gait_cycles.parquet").num_rows == 8 * 2  # side L only
    assert pq.read_table(out / "co_contraction.parquet").num_rows == 8  # TA-soleus pairs kept
    cohort = pq.read_table(out / "cohort_asymmetry.parquet").to_pylist()
    assert {(r["site_id"], r["condition"], r["muscle"]) for r in cohort} == {
        ("lyon", "fresh", "tibialis_anterior"), ("tokyo", "fresh", "tibialis_anterior")}
    amap = pq.read_table(out / "activation_map.parquet")
    assert set(amap.column("scope").to_pylist()) == {"session"} and amap.num_rows == 8 * 101
    assert "pooled" in " ".join(m["notes"]["activation_map"])
    # rows are sorted by primary key
    ids = pq.read_table(out / "trials.parquet").column("trial_id").to_pylist()
    assert ids == sorted(ids)
    # manifest: counts and hashes match the files, snapshot, filter, parameters
    for f in m["files"]:
        data = (out / f["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
        assert pq.read_metadata(out / f["file"]).num_rows == f["rows"]
    on_disk = json.loads((out / "manifest.json").read_text())
    con = catalog.connect(consortium, read_only=True)
    latest = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone()[0]
    assert on_disk["snapshot_id"] == latest
    con.close()
    assert on_disk["filter"]["parsed"][0] == {"key": "condition", "op": "=", "values": ["fresh"]}
    assert on_disk["parameters"]["params_hash"] == ["onsetA"]
    assert on_disk["code_version"].startswith("0.") and on_disk["created_at"]


def test_extract_never_exports_paths_and_refuses_operational_tables(consortium, tmp_path):
    for t in ("files", "quarantine", "runs"):
        with pytest.raises(extracts.ExtractError, match="never extracted"):
            extracts.extract(consortium, cohort=None, tables=[t], out_dir=str(tmp_path / t))
    out = tmp_path / "all"
    extracts.extract(consortium, cohort=None, tables=extracts.extractable_tables(), out_dir=str(out),
                     fmt="csv", requester_site="boston", today=TODAY)
    blob = b"".join(p.read_bytes() for p in out.iterdir())
    assert b"Jane_Doe" not in blob and b"raw/ff" not in blob
    for p in out.glob("*.csv"):
        header = p.read_text().splitlines()[0]
        assert "path" not in header.replace('"', "").split(","), p.name
    # requester boston gets its own (embargoed) data; without a requester, boston is excluded
    subjects = pacsv.read_csv(out / "subjects.csv").column("site_id").to_pylist()
    assert sorted(set(subjects)) == ["boston", "lyon", "tokyo"]
    m = extracts.extract(consortium, cohort=None, tables=["subjects"], out_dir=str(tmp_path / "anon"), today=TODAY)
    assert [d["site_id"] for d in m["sharing"]["excluded_sites"]] == ["boston"]
    # a stricter scope excludes tokyo for consent, and says why
    m = extracts.extract(consortium, cohort=None, tables=["subjects"], out_dir=str(tmp_path / "pub"),
                         requester_site="lyon", required_scope="public_release", today=TODAY)
    reasons = {d["site_id"]: d["reasons"] for d in m["sharing"]["excluded_sites"]}
    assert reasons["tokyo"] == ["consent lacks 'public_release' (has: pooled_analysis)"]
    with pytest.raises(extracts.ExtractError, match="not an empty folder"):
        extracts.extract(consortium, cohort=None, tables=["subjects"], out_dir=str(tmp_path / "pub"))
    with pytest.raises(extracts.ExtractError, match="unknown requester site 'paris'"):
        extracts.extract(consortium, cohort=None, tables=["subjects"], out_dir=str(tmp_path / "p"),
                         requester_site="paris")


def test_extract_is_pinned_to_a_snapshot(tmp_path):
    s = build_lake(tmp_path / "lake")
    con = catalog.connect(s)
    first = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshots('lake')").fetchone()[0]
    con.execute("INSERT INTO sessions (session_id, site_id, subject_id, condition) "
                "VALUES ('LYO09-fresh', 'lyon', 'LYO09', 'fresh')")
    con.close()
    old = extracts.extract(s, cohort="site=lyon", tables=["sessions"], out_dir=str(tmp_path / "old"),
                           as_of=str(first), requester_site="lyon")
    new = extracts.extract(s, cohort="site=lyon", tables=["sessions"], out_dir=str(tmp_path / "new"),
                           requester_site="lyon")
    assert (old["snapshot_id"], new["snapshot_id"]) == (first, first + 1)
    assert new["files"][0]["rows"] == old["files"][0]["rows"] + 1


def test_cli_commands_have_help_and_clear_errors(consortium, tmp_path):
    cli = _cli()
    for cmd in ("extract", "publish", "releases", "report"):
        r = CliRunner().invoke(cli, [cmd, "--help"])
        assert r.exit_code == 0 and "--lake" in r.output, cmd
    r = CliRunner().invoke(cli, ["extract", "--lake", consortium.lake, "--table", "files", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "never extracted" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["extract", "--lake", str(tmp_path / "nolake"), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "No lake catalog" in r.output
    r = CliRunner().invoke(cli, ["extract", "--lake", consortium.lake, "--cohort", "site=tokyo", "--table",
                                "sessions", "--out", str(tmp_path / "ok"), "--requester-site", "lyon"])
    assert r.exit_code == 0, r.output
    assert pq.read_table(tmp_path / "ok" / "sessions.parquet").num_rows == 3


def test_importing_the_publish_cli_loads_no_prefect():
    """flows/cli.py imports flows.cli_publish to register the commands: that must stay cheap."""
    code = "import flows.cli_publish as m, sys; print(sorted(k for k in sys.modules if k.startswith('prefect')))"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
