"""The Python API (``import myomap``) on the demo consortium: the member rules of ``myomap sql``, lazy tables,
cohorts, signals, cycles, extracts through the CLI's own function, docs/api.md run as written, CSV in any locale."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from conftest import REPO

import myomap
from flows.cli import main
from warehouse import catalog
from warehouse.serving import extracts, reading

QUERIES = [
    "SELECT * FROM trials ORDER BY trial_id",
    "SELECT * FROM sites ORDER BY site_id",
    "SELECT site_id, count(*) AS n, min(onset_ms) AS lo, max(onset_ms) AS hi FROM v_onsets GROUP BY ALL ORDER BY ALL",
    "SELECT * FROM subject_profiles ORDER BY ALL LIMIT 200",
    "SELECT scope, count(*) AS n FROM activation_map GROUP BY ALL ORDER BY ALL",
    "SELECT trial_id, channel, emg_mv FROM emg_samples WHERE sample_index = 1000 ORDER BY ALL",
]


def _cli_json(settings, query: str, env: dict, as_of: int) -> list[dict]:
    r = CliRunner().invoke(main, ["sql", "--lake", settings.lake, "--format", "json", "--as-of", str(as_of), query],
                           env=env)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def _as_json(frame: pl.DataFrame) -> list[dict]:
    return json.loads(json.dumps(frame.to_dicts(), default=str))


def _hidden_sites(settings, today: dt.date, member_site: str) -> set[str]:
    """Sites a member of ``member_site`` may not see, from the sites rows (an independent reading of the rules)."""
    con = catalog.connect(settings, read_only=True)
    try:
        rows = con.execute("SELECT site_id, embargo_until, consent FROM sites").fetchall()
        known = {r[0] for r in con.execute("SELECT DISTINCT site_id FROM sessions").fetchall()}
    finally:
        con.close()
    hidden = {s for s, until, consent in rows if s != member_site and (
        (until is not None and until > today)
        or "pooled_analysis" not in {c.strip() for c in (consent or "").split(",")})}
    return hidden | (known - {r[0] for r in rows})


def test_a_member_gets_exactly_what_myomap_sql_gives(demo_lake, monkeypatch):
    _, _, settings = demo_lake
    monkeypatch.setenv("MYOMAP_MEMBER", "lyon")  # a member of lyon, by configuration (no members file)
    with myomap.open(settings.lake) as lake:
        assert lake.member["role"] == "member" and lake.member["site"] == "lyon"
        hidden = _hidden_sites(settings, dt.datetime.now(dt.timezone.utc).date(), "lyon")
        assert set(lake.hidden_sites) == hidden and not set(lake.visible_sites) & hidden
        for q in QUERIES:
            frame = lake.sql(q)
            assert isinstance(frame, pl.DataFrame)
            assert _as_json(frame) == _cli_json(settings, q, {"MYOMAP_MEMBER": "lyon"}, lake.snapshot_id), q
        sites = set(lake.sql("SELECT DISTINCT site_id FROM trials")["site_id"])
        assert sites == set(lake.visible_sites) and not sites & hidden  # embargoed sites' rows are not there
        assert lake.sql("SELECT count(*) AS n FROM trials")["n"][0] == lake.table("trials").collect().height
        with pytest.raises(myomap.ReadOnlyViolation, match="^Refused"):
            lake.sql("COPY trials TO 'x.csv'")
        with pytest.raises(myomap.ReadOnlyViolation, match="^Refused"):
            lake.sql("SELECT * FROM read_parquet('*.parquet')")
        with pytest.raises(myomap.IdentityError, match="^Refused"):
            myomap.open(settings.lake, member="boston")  # a member cannot read as another site
        arrow, pandas = lake.sql(QUERIES[1]).to_arrow(), lake.sql(QUERIES[1]).to_pandas()
        assert arrow.num_rows == len(pandas) == len(lake.visible_sites)
    # an operator reading as lyon sees the same rows
    monkeypatch.delenv("MYOMAP_MEMBER")
    with myomap.open(settings.lake, member="lyon") as lake2:
        assert _as_json(lake2.sql(QUERIES[0])) == _cli_json(settings, QUERIES[0], {"MYOMAP_MEMBER": "lyon"},
                                                           lake2.snapshot_id)
        with myomap.open(settings.lake) as everyone:
            assert everyone.member["role"] == "operator" and not everyone.hidden_sites
            n_all = everyone.sql("SELECT count(DISTINCT site_id) AS n FROM trials")["n"][0]
            n_lyon = lake2.sql("SELECT count(DISTINCT site_id) AS n FROM trials")["n"][0]
            assert n_all == n_lyon + len(hidden)


def test_lazy_tables_cohorts_and_their_pushdown(demo_lake):
    _, _, settings = demo_lake
    with myomap.open(settings.lake, member="lyon") as lake:
        fresh = lake.cohort("condition=fresh; muscle=tibialis_anterior")
        want = set(lake.sql("SELECT session_id FROM sessions WHERE condition = 'fresh'")["session_id"])
        assert set(fresh.session_ids) == want and len(fresh) == len(want)
        lf = lake.table("emg_cycle_metrics", cohort=fresh)
        assert isinstance(lf, pl.LazyFrame)
        issued = []
        original = reading.Reader.frame
        try:  # a spy (the real query still runs): what SQL does a collect send?
            reading.Reader.frame = lambda self, sql, params=None: issued.append(sql) or original(self, sql, params)
            got = lf.filter(pl.col("side") == "L").select("trial_id", "cycle", "peak").collect()
            head = lake.table("markers").head(7).collect()
        finally:
            reading.Reader.frame = original
        assert head.height == 7 and any("LIMIT 7" in q for q in issued)
        scan_sql = [q for q in issued if "emg_cycle_metrics" in q][0]
        assert scan_sql.startswith('SELECT "trial_id", "cycle", "peak", "side" FROM') or \
            set(re.findall(r'"(\w+)"', scan_sql.split(" FROM ")[0])) == {"trial_id", "cycle", "peak", "side"}
        ref = lake.sql("SELECT m.trial_id, m.cycle, m.peak FROM emg_cycle_metrics m JOIN sessions s USING "
                       "(session_id) WHERE s.condition = 'fresh' AND m.muscle = 'tibialis_anterior' AND m.side = 'L'")
        assert got.sort(got.columns).equals(ref.sort(ref.columns))
        with pytest.raises(myomap.LakeError, match="no table or view 'runs'.*you can read"):
            lake.table("runs")
        with pytest.raises(myomap.CohortFilterError, match="not allowed"):
            lake.cohort("site=A'; DROP TABLE trials; --")
        for site in lake.hidden_sites:  # as in extracts: a hidden site is a known name that selects nothing
            assert len(lake.cohort(f"site={site}")) == 0
            assert lake.table("trials", cohort=f"site={site}").collect().height == 0
        with pytest.raises(myomap.CohortFilterError, match="unknown site 'tokyo'"):
            lake.cohort("site=tokyo")
    with pytest.raises(myomap.LakeError, match="closed"):
        lf.collect()


def test_signals_of_one_trial_long_and_wide(demo_lake):
    _, _, settings = demo_lake
    with myomap.open(settings.lake, member="lyon") as lake:
        trial = lake.sql("SELECT trial_id FROM trials WHERE n_markers > 0 AND n_force_plates > 0 "
                         "ORDER BY trial_id LIMIT 1")["trial_id"][0]
        raw = lake.sql("SELECT s.channel, c.muscle, c.side, c.rate_hz, s.sample_index, s.emg_mv FROM emg_samples s "
                       "JOIN emg_channels c USING (trial_id, channel) WHERE trial_id = ? ORDER BY ALL", [trial])
        long = lake.signals(trial)
        assert long.height == raw.height and long["emg_mv"].equals(raw["emg_mv"])
        np.testing.assert_array_equal(long["time_s"].to_numpy(),
                                      raw["sample_index"].to_numpy() / raw["rate_hz"].to_numpy())
        wide = lake.signals(trial, "emg", layout="wide")
        ch0 = raw.filter(pl.col("channel") == 0)
        col = f"{ch0['muscle'][0]}_{ch0['side'][0]}_emg_mv"
        assert wide.columns[:2] == ["sample_index", "time_s"] and col in wide.columns
        assert wide.width == 2 + raw["channel"].n_unique() and wide[col].equals(ch0["emg_mv"].alias(col))
        env = lake.signals(trial, "envelope", layout="wide")
        assert all(c.endswith("_envelope_mv") for c in env.columns[2:])
        grf = lake.signals(trial, "grf", layout="wide")
        assert "plate1_force_z_n" in grf.columns and grf.height == lake.sql(
            "SELECT count(DISTINCT sample_index) AS n FROM grf WHERE trial_id = ?", [trial])["n"][0]
        mk = lake.signals(trial, "markers")
        assert mk.columns == ["marker", "frame", "time_s", "x_mm", "y_mm", "z_mm"]
        for bad, msg in (({"kind": "force"}, "kind must be one of"), ({"layout": "tall"}, "layout must be one of")):
            with pytest.raises(myomap.LakeError, match=msg):
                lake.signals(trial, **bad)
        with pytest.raises(myomap.UnknownTrialError, match="^unknown trial 'nope'"):
            lake.signals("nope")
        for site in lake.hidden_sites:  # a trial id of an embargoed site: refused, whether or not it exists
            with pytest.raises(myomap.UnknownTrialError, match=f"^Refused: trials of site {site} are not shared"):
                lake.signals(f"{site}:anything")


def test_cycles_replot_the_stored_session_activation_maps(demo_lake):
    """The activation maps of the lake (built by warehouse/analysis/cohort.py) are the means of Lake.cycles'
    envelope_norm over each session's cycles: the API has what a user needs to replot the report's maps."""
    _, _, settings = demo_lake
    with myomap.open(settings.lake, member="lyon") as lake:
        cyc = lake.cycles(cohort="site=lyon")
        assert set(cyc["pct"].unique().to_list()) == {float(p) for p in range(101)}
        per = cyc.group_by("trial_id", "side", "muscle").agg(pl.col("cycle").n_unique().alias("n"))
        valid = lake.sql("SELECT trial_id, side, count(*) AS valid FROM gait_cycles WHERE valid GROUP BY ALL")
        joined = per.join(valid, on=["trial_id", "side"])
        assert joined.height == per.height and (joined["n"] <= joined["valid"]).all() and joined["n"].sum() > 0
        maps = (cyc.group_by("session_id", "muscle", "side", "pct").agg(pl.col("envelope_norm").mean().alias("m")))
        stored = lake.sql("SELECT scope_id AS session_id, muscle, side, pct::DOUBLE AS pct, envelope_mean "
                          "FROM activation_map WHERE scope = 'session' AND scope_id LIKE 'LYO%'")
        both = maps.join(stored, on=["session_id", "muscle", "side", "pct"], how="full", coalesce=True)
        assert both.height == maps.height == stored.height > 0
        assert (both["m"] - both["envelope_mean"]).abs().max() < 1e-9
        one = cyc["trial_id"][0]
        assert lake.cycles(one, muscle="soleus", side="R")["muscle"].unique().to_list() in ([], ["soleus"])


def test_lake_extract_is_the_cli_extract(demo_lake, tmp_path):
    """Same function, same snapshot, same identity: byte-identical files."""
    _, _, settings = demo_lake
    with myomap.open(settings.lake, member="lyon") as lake:
        m1 = lake.extract(tmp_path / "api", tables=["sessions", "emg_cycle_metrics"], cohort="condition=fresh")
        snap = lake.snapshot_id
    r = CliRunner().invoke(main, ["extract", "--lake", settings.lake, "--tables", "sessions,emg_cycle_metrics",
                                  "--cohort", "condition=fresh", "--requester-site", "lyon", "--as-of", str(snap),
                                  "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    m2 = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert [(f["file"], f["sha256"]) for f in m1["files"]] == [(f["file"], f["sha256"]) for f in m2["files"]]
    assert m1["sharing"]["included_sites"] == m2["sharing"]["included_sites"]
    help_text = " ".join(CliRunner().invoke(main, ["extract", "--help"]).output.split())
    assert ", ".join(extracts.DEFAULT_TABLES) in help_text  # --help quotes the defaults Lake.extract uses
    r = CliRunner().invoke(main, ["extract", "--lake", settings.lake, "--format", "bids", "--tables", "trials",
                                  "--out", str(tmp_path / "b")])
    assert r.exit_code != 0 and "tables do not apply to a BIDS extract" in r.output


def test_docs_api_example_runs(demo_lake, tmp_path, monkeypatch):
    """Every ```python block of docs/api.md, in order, in one namespace, against the demo lake."""
    _, _, settings = demo_lake
    text = (REPO / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    monkeypatch.setenv("MYOMAP_LAKE", settings.lake)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md block {i + 1}", "exec"), namespace)  # noqa: S102 - our own docs
    assert (tmp_path / "fresh_extract" / "manifest.json").exists()
    assert (tmp_path / "fresh_bids" / "dataset_description.json").exists()


# --------------------------------------------------------------------------- CSV in any locale
def _german_locale() -> dict:
    """Environment selecting a German locale (decimal comma): the system's, or one compiled into a temp dir."""
    env = {"LC_ALL": "de_DE.UTF-8"}
    probe = "import locale; locale.setlocale(locale.LC_ALL, 'de_DE.UTF-8')"  # in a child: this process keeps its own
    if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0:
        return env
    path = Path(tempfile.mkdtemp(prefix="myomap-locale-"))
    r = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(path / "de_DE.UTF-8")], capture_output=True,
                       text=True)
    assert (path / "de_DE.UTF-8").exists(), f"cannot build a German locale (Debian package 'locales'): {r.stderr}"
    return {**env, "LOCPATH": str(path)}


CSV_RUN = """
import locale, sys
locale.setlocale(locale.LC_ALL, "")
print(locale.localeconv()["decimal_point"], file=sys.stderr)
from flows.cli import main
main(sys.argv[1:], standalone_mode=True)
"""


def test_csv_extracts_are_locale_independent(demo_lake, tmp_path):
    _, _, settings = demo_lake
    args = ["extract", "--lake", settings.lake, "--format", "csv", "--cohort", "site=lyon", "--requester-site",
            "lyon", "--tables", "sessions,subjects,emg_cycle_metrics,trials"]
    with myomap.open(settings.lake, member="lyon") as lake:
        args += ["--as-of", str(lake.snapshot_id)]
    outs = {}
    for name, extra in (("c", {"LC_ALL": "C.UTF-8"}), ("de", _german_locale())):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "MYOMAP_MEMBER"))}
        r = subprocess.run([sys.executable, "-c", CSV_RUN, *args, "--out", str(tmp_path / name)], cwd=REPO,
                           env={**env, **extra}, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        outs[name] = r.stderr
    assert outs["de"].splitlines()[0] == "," and outs["c"].splitlines()[0] == "."  # the locales really differ
    for f in ("sessions.csv", "subjects.csv", "emg_cycle_metrics.csv", "trials.csv"):
        de, c = (tmp_path / "de" / f).read_bytes(), (tmp_path / "c" / f).read_bytes()
        assert de == c, f
        rows = list(csv.reader(io.StringIO(de.decode("utf-8"))))  # quoted fields (JSON) may hold commas
        assert len(rows) > 1 and all(len(r) == len(rows[0]) for r in rows)  # no decimal comma split a field
    sessions = list(csv.DictReader(io.StringIO((tmp_path / "de" / "sessions.csv").read_text(encoding="utf-8"))))
    assert sessions and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["session_date"]) for r in sessions)
    metrics = list(csv.DictReader(io.StringIO((tmp_path / "de" / "emg_cycle_metrics.csv").read_text(encoding="utf-8"))))
    assert metrics and all(re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", r["peak"]) for r in metrics)
