"""DuckLake catalog: signed extensions from PyPI packages, Parquet (not inlined), read-only, storage."""
from __future__ import annotations

import numpy as np
import pytest

from schemas.contracts import TABLES
from warehouse import catalog
from warehouse.ingest.tables import emg_samples_table


def test_extensions_come_from_the_pypi_packages():
    for name in ("ducklake", "sqlite_scanner", "postgres_scanner", "httpfs"):
        path = catalog.extension_path(name)
        assert path and path.endswith(f"{name}.duckdb_extension"), name


def test_unsigned_extensions_stay_disallowed(lake):
    con = catalog.connect(lake)
    assert con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0] is False


def test_tables_match_contracts(lake):
    con = catalog.connect(lake)
    for name, t in TABLES.items():
        cols = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_catalog = 'lake' AND table_name = ? ORDER BY ordinal_position",
                           [name]).fetchall()
        assert [c for c, _ in cols] == t.column_names, name
        assert [d for _, d in cols] == [c.dtype for c in t.columns], name


def test_small_insert_lands_as_parquet_not_inlined(lake):
    con = catalog.connect(lake)
    con.execute("INSERT INTO runs (run_id, status) VALUES ('r1', 'completed')")
    files = con.execute("SELECT count(*) FROM ducklake_list_files('lake', 'runs')").fetchone()[0]
    assert files == 1
    assert list((lake.zone("tables") and __import__("pathlib").Path(lake.zone("tables"))).rglob("*.parquet"))


def test_read_only_connection_refuses_writes(lake):
    catalog.connect(lake).close()
    ro = catalog.connect(lake, read_only=True)
    assert ro.execute("SELECT count(*) FROM trials").fetchone()[0] == 0
    with pytest.raises(Exception, match="read-only|read only"):
        ro.execute("INSERT INTO runs (run_id) VALUES ('x')")
    with pytest.raises(Exception):
        ro.execute("DROP TABLE trials")


def test_emg_storage_under_two_bytes_per_sample(lake):
    """16 channels x 30 s x 2 kHz of EMG quantised like a 16-bit ADC (as every real system stores it):
    ~10 uV RMS baseline, bursts up to ~0.5 mV RMS during part of each 1.1 s gait cycle."""
    from pathlib import Path

    from warehouse.analysis import derived

    rng = np.random.default_rng(1)
    n, lsb = 60_000, 11.0 / 65536  # Trigno: 11 mV range, 16 bit
    t = np.arange(n) / 2000.0
    chans = []
    for ch in range(16):
        burst = 0.01 + 0.5 * np.clip(np.sin(2 * np.pi * t / 1.1 + ch), 0, None) ** 4
        chans.append(np.round(rng.normal(0, 1, n) * burst / lsb) * lsb)
    con = catalog.connect(lake)
    con.register("s", emg_samples_table("t1", chans))
    con.execute("INSERT INTO emg_samples SELECT * FROM s")
    size = sum(p.stat().st_size for p in Path(lake.zone("tables")).rglob("*.parquet") if "emg_samples" in str(p))
    assert size / (16 * n) <= 2.0, f"{size / (16 * n):.2f} bytes/sample"
    back = derived.read_channel(con, "t1", 5)
    np.testing.assert_array_equal(back, chans[5].astype(np.float32))


def test_committed_data_dictionary_is_generated_from_the_contracts(tmp_path):
    from pathlib import Path

    from warehouse.ingest.validation import write_data_dictionary

    doc = Path(__file__).resolve().parents[1] / "docs" / "data_dictionary.md"
    fresh = write_data_dictionary(tmp_path / "dd.md")
    assert doc.read_text() == Path(fresh).read_text(), "docs/data_dictionary.md is stale: run `make dictionary`"


def test_only_transient_catalog_errors_are_retried():
    import duckdb

    from warehouse import catalog

    first_attach = duckdb.Error('Failed to initialize DuckLake: Failed to execute query "CREATE TABLE "public".'
                                '"ducklake_metadata"(...)": ERROR:  relation "ducklake_metadata" already exists')
    conflict = duckdb.TransactionException("Failed to commit DuckLake transaction.\nTransaction conflict - "
                                           "attempting to create table \"t\"")
    assert catalog.is_retryable(first_attach) and catalog.is_retryable(conflict)
    assert catalog.is_retryable(duckdb.IOException("database is locked"))
    assert not catalog.is_retryable(duckdb.CatalogException('Table with name "t" already exists!'))
    assert not catalog.is_retryable(duckdb.TransactionException("cannot rollback - no transaction is active"))


def test_a_pooled_connection_takes_the_catalog_turn_only_when_it_reads(lake, monkeypatch):
    """The night's derivation threads connect for every trial but mostly read rows held in memory
    (``fresh_trials``): ``USE lake`` reads the SQLite catalog, so it waits for the first statement's turn
    instead of taking one of its own (each turn a thread waits for while another thread writes a batch)."""
    from contextlib import contextmanager

    catalog.connect(lake).close()
    turns = []
    taken = catalog._catalog_turn

    @contextmanager
    def counted(settings):
        turns.append(settings.catalog)
        with taken(settings):
            yield
    monkeypatch.setattr(catalog, "_catalog_turn", counted)
    with catalog.pooled():
        catalog.connect(lake).close()  # the thread's instance is opened (attached) in a turn
        opened = len(turns)
        catalog.connect(lake).close()  # nothing read: no turn
        assert len(turns) == opened
        con = catalog.connect(lake)
        assert con.execute("SELECT count(*) FROM trials").fetchone() == (0,)  # unqualified: USE ran first
        assert len(turns) == opened + 1  # in the statement's own turn
        assert con.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
        assert len(turns) == opened + 2
        con.close()
        raw = catalog.unwrap(catalog.connect(lake))  # the bare cursor (a transaction's): USE has run on it
        assert len(turns) == opened + 3
        assert raw.execute("SELECT count(*) FROM trials").fetchone() == (0,)
        raw.close()
