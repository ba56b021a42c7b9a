"""Contract validation (warehouse.ingest.validation): GX suites derived from the contracts, large-batch
pyarrow checks, the validations rows, schema drift and the data dictionary."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from schemas.contracts import TABLES, C, Table
from warehouse.ingest import validation as v

TRIAL = "lyon:LYO01-S1:LYO01_fresh_walk01"

#: The declaration proposed for schemas/contracts.py (used until it is pasted there).
_VALIDATIONS = Table(
    "validations", "Contract checks of every batch written, one row per expectation.",
    "one row per run x trial x table x expectation x column",
    ("run_id", "trial_id", "table_name", "expectation", "column_name"),
    (C("run_id", "VARCHAR", "Run.", nullable=False), C("trial_id", "VARCHAR", "Trial."),
     C("table_name", "VARCHAR", "Table.", nullable=False), C("expectation", "VARCHAR", "Type.", nullable=False),
     C("column_name", "VARCHAR", "Column(s)."), C("success", "BOOLEAN", "Held.", nullable=False),
     C("unexpected_count", "BIGINT", "Rows.", range=(0, None)), C("detail", "VARCHAR", "Outcome.")),
)


def channels(n: int = 4, **override) -> pa.Table:
    cols = {
        "trial_id": pa.array([TRIAL] * n), "channel": pa.array(range(n), pa.int16()),
        "label": pa.array([f"EMG{i}" for i in range(n)]),
        "muscle": pa.array(["tibialis_anterior", "soleus", "vastus_lateralis", "rectus_femoris"][:n]),
        "side": pa.array(["L", "R"] * (n // 2)), "unit": pa.array(["mV"] * n),
        "source_unit": pa.array(["V"] * n), "rate_hz": pa.array([2000.0] * n, pa.float64()),
        "n_samples": pa.array([12000] * n, pa.int32()), "mapping": pa.array(["alias"] * n),
        "gain": pa.array([None] * n, pa.float64()), "amplitude_basis": pa.array(["amplifier_output"] * n),
    }
    cols.update(override)
    return pa.table(cols)


def samples(n_channels: int = 16, n: int = 187_500) -> pa.Table:
    total = n_channels * n
    return pa.table({
        "trial_id": pa.array([TRIAL] * total, pa.string()),
        "channel": pa.array(np.repeat(np.arange(n_channels, dtype=np.int16), n)),
        "sample_index": pa.array(np.tile(np.arange(n, dtype=np.int32), n_channels)),
        "emg_mv": pa.array(np.random.default_rng(0).normal(0, 0.05, total).astype(np.float32)),
    })


def with_nulls(tbl: pa.Table, name: str, rows: list[int]) -> pa.Table:
    values = tbl.column(name).to_numpy()
    mask = np.zeros(len(values), bool)
    mask[rows] = True
    return tbl.set_column(tbl.column_names.index(name), name, pa.array(values, mask=mask))


def failed(report, expectation: str, column: str) -> dict:
    hits = [r for r in report.results if r["expectation"] == expectation and r["column"] == column]
    assert len(hits) == 1, report.render_text()
    assert not hits[0]["success"], report.render_text()
    assert f"✘ {expectation}({column or ''}" in report.render_text()
    return hits[0]


# --------------------------------------------------------------------------- suites
def test_suite_is_derived_from_the_contract_only():
    t = TABLES["emg_channels"]
    suite = v.suite_for(t)
    got = {(e.expectation_type, e.configuration.kwargs.get("column")): e.configuration.kwargs
           for e in suite.expectations}
    assert got[("expect_table_columns_to_match_set", None)]["column_set"] == t.column_names
    assert suite.expectations[0].exact_match is True  # exact set, any order
    assert all(e.meta == {"contract": "emg_channels"} for e in suite.expectations)
    for c in t.columns:
        assert (("expect_column_values_to_not_be_null", c.name) in got) == (not c.nullable), c.name
    assert got[("expect_column_values_to_be_in_set", "side")]["value_set"] == ["L", "R", "U"]  # U: side unknown (#14)
    assert got[("expect_column_values_to_be_between", "rate_hz")]["min_value"] == 100
    assert got[("expect_column_values_to_be_between", "rate_hz")]["max_value"] == 20000
    assert got[("expect_compound_columns_to_be_unique", None)]["column_list"] == ["trial_id", "channel"]
    # None in `allowed` only means nullable; single-column keys use the one-column expectation
    sub = {(e.expectation_type, e.configuration.kwargs.get("column")): e.configuration.kwargs
           for e in v.suite_for(TABLES["subjects"]).expectations}
    assert sub[("expect_column_values_to_be_in_set", "sex")]["value_set"] == ["F", "M", "X"]
    assert ("expect_column_values_to_be_unique", "subject_id") in sub
    for table in TABLES.values():  # every contract yields a suite
        assert len(v.suite_for(table).expectations) >= 2, table.name


def test_great_expectations_is_imported_lazily():
    code = "import sys, warehouse.ingest.validation; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(v.__file__).parents[2]))


# --------------------------------------------------------------------------- small batches
def test_good_batch_passes():
    report = v.validate_batch("emg_channels", channels())
    assert report.success, report.render_text()
    assert report.n_rows == report.gx_rows == 4 and not report.full_batch_arrow
    text = report.render_text()
    assert "✘" not in text
    assert "✔ expect_column_values_to_not_be_null(trial_id)" in text
    assert "✔ expect_column_values_to_be_between(rate_hz, 100, 20000)" in text
    assert "✔ expect_column_type_to_be_compatible(channel, SMALLINT)" in text
    # column order is not part of the contract (the ingest inserts BY NAME)
    reordered = channels().select(list(reversed(TABLES["emg_channels"].column_names)))
    assert v.validate_batch("emg_channels", reordered).success


def test_ingest_sample_builder_passes():
    from warehouse.ingest.tables import emg_samples_table

    batch = emg_samples_table(TRIAL, [np.zeros(3000), np.ones(1500)])
    report = v.validate_batch("emg_samples", batch, max_rows_to_pandas=1000)
    assert report.success and report.full_batch_arrow, report.render_text()


def test_null_in_non_nullable_column_fails():
    report = v.validate_batch("emg_channels", with_nulls(channels(), "label", [2]))
    assert not report.success
    r = failed(report, "expect_column_values_to_not_be_null", "label")
    assert r["unexpected_count"] == 1 and r["unexpected_rows"] == [2]


def test_value_outside_allowed_set_fails():
    report = v.validate_batch("emg_channels", channels(side=pa.array(["L", "X", "R", "R"])))
    r = failed(report, "expect_column_values_to_be_in_set", "side")
    assert r["unexpected_examples"] == ["X"]
    assert "1 of 4 rows unexpected, e.g. 'X'" in report.render_text()


def test_rate_out_of_range_fails():
    report = v.validate_batch("emg_channels", channels(rate_hz=pa.array([2000.0, 60.0, 2000.0, 25000.0])))
    r = failed(report, "expect_column_values_to_be_between", "rate_hz")
    assert r["unexpected_count"] == 2
    assert "✘ expect_column_values_to_be_between(rate_hz, 100, 20000): 2 of 4 rows unexpected, e.g. 60.0" \
        in report.render_text()


def test_duplicated_primary_key_fails():
    report = v.validate_batch("emg_channels", channels(channel=pa.array([0, 1, 1, 3], pa.int16())))
    r = failed(report, "expect_compound_columns_to_be_unique", "trial_id, channel")
    assert r["unexpected_count"] == 2
    # single-column key
    runs = pa.table({"run_id": ["r1", "r1"], "status": ["completed", "completed"]})
    assert not v.validate_batch("runs", runs.append_column("files_seen", pa.array([1, 2], pa.int32()))).success


def test_a_column_of_nulls_only_passes_the_set_and_range_checks_on_every_row():
    """A nullable column with no value at all is Arrow type null (an ultrasound file without a side): the
    full-batch pyarrow checks compare it as the kind checked instead of failing to cast."""
    empty = pa.array([None] * 4)
    assert empty.type == pa.null()
    report = v.validate_batch("emg_channels", channels(gain=empty, amplitude_basis=empty), max_rows_to_pandas=2)
    assert report.success, report.render_text()
    assert not v.validate_batch("emg_channels", channels(label=empty), max_rows_to_pandas=2).success  # NOT NULL


def test_column_set_and_types():
    batch = channels().drop_columns(["mapping"]).append_column("extra", pa.array([1] * 4))
    report = v.validate_batch("emg_channels", batch)
    assert "missing mapping" in failed(report, "expect_table_columns_to_match_set", None)["detail"]
    # strings in a SMALLINT column fail; a wider integer type whose values fit is fine
    bad = v.validate_batch("emg_channels", channels(channel=pa.array(["0", "1", "2", "3"])))
    assert "not an integer type" in failed(bad, v.TYPE_EXPECTATION, "channel")["detail"]
    assert v.validate_batch("emg_channels", channels(channel=pa.array([0, 1, 2, 3], pa.int64()))).success
    assert "do not fit SMALLINT" in v.type_problem("SMALLINT", pa.array([0, 70_000]))
    assert v.type_problem("TIMESTAMP WITH TIME ZONE", pa.array([0], pa.timestamp("us"))) is not None
    assert v.type_problem("TIMESTAMP WITH TIME ZONE", pa.array([0], pa.timestamp("us", tz="UTC"))) is None
    assert v.type_problem("DOUBLE", pa.array([1, 2], pa.int32())) is None
    assert v.type_problem("INTEGER", pa.array([None, None])) is None  # all-null column
    with pytest.raises(KeyError, match="no contract for table 'nope'"):
        v.validate_batch("nope", channels())


def test_validation_rows_fit_the_validations_contract():
    report = v.validate_batch("emg_channels", channels(side=pa.array(["L", "X", "R", "R"])))
    rows = report.to_rows("run-1", TRIAL)
    assert len(rows) == len(report.results)
    assert all(tuple(r) == v.VALIDATION_COLUMNS for r in rows)
    side = [r for r in rows if r["column_name"] == "side" and r["expectation"].endswith("in_set")][0]
    assert side["success"] is False and side["unexpected_count"] == 1 and "'X'" in side["detail"]
    contract = TABLES.get("validations", _VALIDATIONS)
    assert contract.column_names == list(v.VALIDATION_COLUMNS)
    con = duckdb.connect()
    con.execute(contract.ddl("main"))
    con.register("rows_in", v.validations_table(rows))
    con.execute("INSERT INTO validations BY NAME SELECT * FROM rows_in")
    assert con.execute("SELECT count(*) FILTER (WHERE NOT success) FROM validations").fetchone()[0] == 1


# --------------------------------------------------------------------------- large batches
def test_large_batch_uses_a_subset_for_gx_and_arrow_for_all_rows():
    batch = samples()
    assert batch.num_rows == 3_000_000
    good = v.validate_batch("emg_samples", batch)
    assert good.success, good.render_text()
    assert good.full_batch_arrow and good.n_rows == 3_000_000
    assert good.gx_rows <= 200_000  # never the whole batch through pandas
    key = [r for r in good.results if r["expectation"] == "expect_compound_columns_to_be_unique"][0]
    assert key["element_count"] == 3_000_000 and "strictly increasing" in key["detail"]

    subset = v.subset_indices(3_000_000, 200_000)
    assert len(subset) == good.gx_rows and subset[0] == 0 and subset[-1] == 2_999_999
    assert 2_500_001 not in set(subset.tolist())  # GX alone cannot see this row
    bad = with_nulls(with_nulls(batch, "channel", [2_500_000]), "sample_index", [2_500_001])
    report = v.validate_batch("emg_samples", bad)
    assert not report.success and report.gx_rows == good.gx_rows
    ch = failed(report, "expect_column_values_to_not_be_null", "channel")
    assert ch["unexpected_count"] == 1 and ch["unexpected_rows"] == [2_500_000]
    si = failed(report, "expect_column_values_to_not_be_null", "sample_index")
    assert si["unexpected_rows"] == [2_500_001] and si["gx_unexpected_count"] == 0
    assert "1 of 3,000,000 rows unexpected, e.g. NULL (row 2,500,001)" in report.render_text()


def test_large_batch_nan_range_and_unsorted_duplicates_on_full_batch():
    n = 20_000
    grf = pa.table({
        "trial_id": pa.array([TRIAL] * n), "plate": pa.array(np.ones(n, np.int16)),
        "sample_index": pa.array(np.arange(n, dtype=np.int32)), "time_s": pa.array(np.arange(n) / 1000.0),
        **{c: pa.array(np.zeros(n, np.float32)) for c in
           ("force_x_n", "force_y_n", "force_z_n", "cop_x_mm", "cop_y_mm", "free_moment_nmm")},
    })
    t = grf.column("time_s").to_numpy().copy()
    t[12_345] = np.nan  # NaN in a NOT NULL column counts as missing
    report = v.validate_batch("grf", grf.set_column(3, "time_s", pa.array(t)), max_rows_to_pandas=1000)
    assert report.gx_rows <= 1000 and report.full_batch_arrow
    r = failed(report, "expect_column_values_to_not_be_null", "time_s")
    assert r["unexpected_rows"] == [12_345] and r["unexpected_examples"][0] != r["unexpected_examples"][0]  # NaN

    s = samples(n_channels=2, n=10_000)
    idx = s.column("sample_index").to_numpy().copy()
    idx[7_777] = -1
    report = v.validate_batch("emg_samples", s.set_column(2, "sample_index", pa.array(idx)), max_rows_to_pandas=500)
    assert failed(report, "expect_column_values_to_be_between", "sample_index")["unexpected_examples"] == [-1]

    # markers are stored marker-major in file order (not sorted by name): hash fallback finds duplicates
    frames = np.tile(np.arange(5_000, dtype=np.int32), 3)
    names = np.repeat(np.array(["RHEE", "LHEE", "RTOE"], dtype=object), 5_000)
    frames[9_000] = frames[8_999]  # LHEE frame repeated
    markers = pa.table({"trial_id": pa.array([TRIAL] * 15_000), "marker": pa.array(names, pa.string()),
                        "frame": pa.array(frames), "time_s": pa.array(frames / 100.0),
                        **{c: pa.array(np.zeros(15_000, np.float32)) for c in ("x_mm", "y_mm", "z_mm")}})
    report = v.validate_batch("markers", markers, max_rows_to_pandas=1000)
    key = failed(report, "expect_compound_columns_to_be_unique", "trial_id, marker, frame")
    assert key["unexpected_count"] == 2 and key["unexpected_examples"] == [(TRIAL, "LHEE", 3_999)]
    fixed = markers.set_column(2, "frame", pa.array(np.tile(np.arange(5_000, dtype=np.int32), 3)))
    ok = v.validate_batch("markers", fixed, max_rows_to_pandas=1000)
    assert ok.success, ok.render_text()


# --------------------------------------------------------------------------- lake artefacts
def test_schema_drift_on_a_live_lake(tmp_path):
    from warehouse import catalog
    from warehouse.settings import get_settings

    con = catalog.connect(get_settings(str(tmp_path / "lake")))
    assert v.schema_drift(con) == []
    con.execute("ALTER TABLE lake.trials ADD COLUMN extra INTEGER")
    con.execute("ALTER TABLE lake.runs DROP COLUMN held")
    con.execute("ALTER TABLE lake.runs ALTER COLUMN files_seen TYPE BIGINT")
    drift = v.schema_drift(con)
    assert "trials.extra: extra column in the lake (INTEGER), not in the contract" in drift
    assert "runs.held: column missing from the lake (contract: INTEGER)" in drift
    assert "runs.files_seen: type BIGINT in the lake, INTEGER in the contract" in drift
    assert len(drift) == 3, drift
    con.close()


def test_data_dictionary_lists_every_contract_table(tmp_path):
    path = v.write_data_dictionary(tmp_path / "docs" / "data_dictionary.md")
    text = path.read_text(encoding="utf-8")
    for name, table in TABLES.items():
        assert f"## `{name}`" in text, name
        assert all(f"| {c.name} |" in text for c in table.columns), name


def _dictionary(values: list, entries: list) -> pa.DictionaryArray:
    """``values`` (None: a null row) encoded against ``entries`` (which may hold None: a null entry)."""
    codes = [None if x is None else entries.index(x) for x in values]
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(entries, pa.string()))


def _outcomes(report) -> list[tuple]:
    return [(r["expectation"], r["column"], r["success"], r["unexpected_count"], r["unexpected_examples"],
             r["unexpected_rows"]) for r in report.results if r["expectation"] != v.TYPE_EXPECTATION]


@pytest.mark.parametrize("case", ["one_entry", "null_row", "null_entry", "not_in_set", "unsorted_entries",
                                  "duplicates", "repeated_entries", "chunks_with_other_dictionaries"])
def test_a_dictionary_column_is_checked_as_its_values(case):
    """The ingest's long tables carry the trial id as a one-entry dictionary; the contract checks read the
    entries and the indices instead of casting the column back to one string per row. Every check gives what it
    gives on the same values as plain strings: counts, examples and rows, for null rows and null entries, a value
    outside the allowed set, entries out of order (the key's order is then the values', not the indices'), an
    entry repeated (rows with other indices but the same value: duplicate keys) and duplicate keys."""
    n = 6
    trial = [TRIAL] * n
    entries = [TRIAL]
    side = ["L", "R", "L", "R", "L", "R"]
    side_entries = ["L", "R"]
    if case == "null_row":
        trial[2] = None
    if case == "null_entry":
        trial[4], entries = None, [TRIAL, None]
    if case == "not_in_set":
        side[3], side_entries = "X", ["L", "R", "X"]
    tbl = channels(n=4)
    plain = pa.table({"trial_id": pa.array(trial[:4], pa.string()), **{c: tbl.column(c) for c in tbl.column_names[1:]}})
    plain = plain.set_column(plain.column_names.index("side"), "side", pa.array(side[:4]))
    coded = plain.set_column(0, "trial_id", _dictionary(trial[:4], entries))
    coded = coded.set_column(coded.column_names.index("side"), "side", _dictionary(side[:4], side_entries))
    assert _outcomes(v.validate_batch("emg_channels", coded, engine="pyarrow")) == \
        _outcomes(v.validate_batch("emg_channels", plain, engine="pyarrow"))

    ids = ["b", "b", "a", "a"] if case == "unsorted_entries" else [TRIAL] * 4
    sample = [0, 1, 0, 1] if case != "duplicates" else [0, 0, 1, 1]
    s_plain = pa.table({"trial_id": pa.array(ids), "channel": pa.array([0, 0, 1, 1], pa.int16()),
                        "sample_index": pa.array(sample, pa.int32()),
                        "emg_mv": pa.array([0.1, 0.2, 0.3, 0.4], pa.float32())})
    if case == "unsorted_entries":  # rows in the values' order; the indices (0 = "b") decrease
        s_plain = s_plain.set_column(0, "trial_id", pa.array(["a", "a", "b", "b"]))
        s_coded = s_plain.set_column(0, "trial_id", _dictionary(["a", "a", "b", "b"], ["b", "a"]))
    elif case == "repeated_entries":  # rows 0 and 2 hold the same key through two entries of one value
        s_plain = s_plain.set_column(2, "sample_index", pa.array([0, 1, 0, 1], pa.int32()))
        s_plain = s_plain.set_column(1, "channel", pa.array([0, 0, 0, 0], pa.int16()))
        s_coded = s_plain.set_column(0, "trial_id", pa.DictionaryArray.from_arrays(
            pa.array([0, 0, 1, 1], pa.int8()), pa.array([TRIAL, TRIAL])))
        assert not v.validate_batch("emg_samples", s_coded, engine="pyarrow").success
    elif case == "chunks_with_other_dictionaries":
        col = pa.chunked_array([_dictionary([TRIAL] * 2, [TRIAL]), _dictionary([TRIAL] * 2, ["other", TRIAL])])
        s_coded = s_plain.set_column(0, "trial_id", col)
    else:
        s_coded = s_plain.set_column(0, "trial_id", _dictionary(ids, [TRIAL]))
    assert _outcomes(v.validate_batch("emg_samples", s_coded, engine="pyarrow")) == \
        _outcomes(v.validate_batch("emg_samples", s_plain, engine="pyarrow"))
    if case == "duplicates":
        assert not v.validate_batch("emg_samples", s_coded, engine="pyarrow").success
