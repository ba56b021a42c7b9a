"""What makes the night cheap must not change what it checks (issue 17): the ingest's pyarrow contract
checks find exactly what the GX suite finds; one pooled catalog instance per night; compaction keeps
every snapshot readable; the onset bias table is computed once per filter."""
from __future__ import annotations

import gc
import os

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from scipy import signal
from test_validation import channels, with_nulls

from schemas.contracts import TABLES
from transforms import emg as emg_tx
from transforms import onsets as ons
from warehouse import catalog, compaction, fresh_trials
from warehouse.ingest import validation as v
from warehouse.settings import get_settings

BAD_BATCHES = {
    "good": channels(),
    "null label": with_nulls(channels(), "label", [2]),
    "side X": channels(side=pa.array(["L", "X", "R", "R"])),
    "rate out of range": channels(rate_hz=pa.array([60.0, 2000.0, 25000.0, 2000.0])),
    "duplicate key": channels(channel=pa.array([0, 1, 1, 3], pa.int16())),
    "missing column": channels().drop(["label"]),
    "extra column": channels().append_column("extra", pa.array([1, 2, 3, 4])),
    "NaN rate": channels(rate_hz=pa.array([np.nan, 2000.0, 2000.0, 2000.0])),
}


@pytest.mark.parametrize("case", BAD_BATCHES)
def test_pyarrow_engine_finds_what_the_gx_suite_finds(case):
    batch = BAD_BATCHES[case]
    gx, fast = (v.validate_batch("emg_channels", batch, engine=e) for e in ("great_expectations", "pyarrow"))
    assert fast.success == gx.success == (case == "good")
    key = [(r["expectation"], r["column"]) for r in gx.results]
    assert [(r["expectation"], r["column"]) for r in fast.results] == key  # same expectations, same order
    for g, f in zip(gx.results, fast.results):
        assert g["success"] == f["success"], (case, g, f)
        if g["unexpected_count"] is not None and g["expectation"] != "expect_compound_columns_to_be_unique":
            assert g["unexpected_count"] == f["unexpected_count"], (case, g, f)
            assert g["unexpected_rows"] == f["unexpected_rows"], (case, g, f)
    assert fast.full_batch_arrow and fast.gx_rows == 0


def test_pyarrow_engine_suite_matches_the_published_suite():
    for table in TABLES.values():
        suite = [(e.expectation_type, e.configuration.kwargs.get("column"),
                  tuple(e.configuration.kwargs.get("column_list") or ())) for e in v.suite_for(table).expectations]
        mine = [(t, kw.get("column"), tuple(kw.get("column_list") or ())) for t, kw in v.contract_expectations(table)]
        assert mine == suite, table.name
    with pytest.raises(ValueError, match="engine"):
        v.validate_batch("emg_channels", channels(), engine="pandas")


def test_one_instance_per_thread_inside_pooled(tmp_path):
    settings = get_settings(str(tmp_path / "lake"))
    with catalog.pooled():
        a = catalog.connect(settings)
        a.execute("CREATE TABLE memory.main.marker AS SELECT 1 AS x")  # in the instance's own in-memory database
        a.close()  # closes the cursor only
        b = catalog.connect(settings)
        assert b.execute("SELECT current_database()").fetchone()[0] == catalog.LAKE
        assert b.execute("SELECT count(*) FROM memory.main.marker").fetchone()[0] == 1  # same instance
        threads = "SELECT current_setting('threads')"
        assert b.execute(threads).fetchone()[0] == catalog.NIGHT_DUCKDB_THREADS == 1  # the night's instances
        with catalog.every_core(b):  # the night's last steps, alone: every core
            assert b.execute(threads).fetchone()[0] == os.cpu_count()
        assert b.execute(threads).fetchone()[0] == 1
        fresh = fresh_trials._cursor()  # the night's reads of the trials it just committed
        assert fresh.execute(threads).fetchone()[0] == 1
        fresh.close()
        ro = catalog.connect(settings, read_only=True)  # read-only sessions are never pooled (they get hardened)
        with pytest.raises(Exception):
            ro.execute("SELECT * FROM memory.main.marker")
        ro.close()
        b.close()
    c = catalog.connect(settings)  # outside the block: a fresh instance, as before, with every core
    assert c.execute("SELECT current_setting('threads')").fetchone()[0] == duckdb.connect().execute(
        "SELECT current_setting('threads')").fetchone()[0]
    with pytest.raises(Exception):
        c.execute("SELECT * FROM memory.main.marker")
    c.close()


def test_compaction_merges_files_and_keeps_every_snapshot(tmp_path):
    settings = get_settings(str(tmp_path / "lake"))
    con = catalog.connect(settings)
    try:
        versions = []
        for i in range(6):  # six small commits: six files
            catalog.write_atomically(settings, con, lambda c, i=i: c.execute(
                "INSERT INTO derivations VALUES (?, 'envelopes', 'h', now())", [f"t{i}"]), what="test")
            versions.append(con.execute(f"SELECT max(snapshot_id) FROM {catalog.LAKE}.snapshots()").fetchone()[0])
        files = f"SELECT count(*) FROM ducklake_list_files('{catalog.LAKE}', 'derivations')"
        assert con.execute(files).fetchone()[0] == 6
        out = catalog.compact(settings, con)
        assert out["files_merged"] == 6 and con.execute(files).fetchone()[0] == 1
        for k, snap in enumerate(versions, 1):  # time travel by version reads each snapshot's rows
            assert con.execute(f"SELECT count(*) FROM derivations AT (VERSION => {snap})").fetchone()[0] == k
        kept = versions[2]
        gone = catalog.expire_snapshots(settings, con, older_than_days=-1, keep={kept})
        assert kept not in gone and versions[0] in gone
        assert con.execute(f"SELECT count(*) FROM derivations AT (VERSION => {kept})").fetchone()[0] == 3
    finally:
        con.close()


def test_files_a_compaction_replaced_stay_readable_for_the_grace(tmp_path, monkeypatch):
    """A query planned on the snapshot before a compaction can still open the files it planned on: they stay on
    disk until a later compaction finds every replaced file past ``catalog.CLEANUP_GRACE`` (DuckLake's own
    ``older_than`` deleted them at once, measured), and are then deleted."""
    from pathlib import Path

    settings = get_settings(str(tmp_path / "lake"))
    con = catalog.connect(settings)
    on_disk = lambda: sorted(p.name for p in Path(settings.zone("tables")).rglob("*.parquet"))  # noqa: E731
    try:
        for i in range(3):
            catalog.write_atomically(settings, con, lambda c, i=i: c.execute(
                "INSERT INTO derivations VALUES (?, 'envelopes', 'h', now())", [f"t{i}"]), what="test")
        planned = on_disk()
        out = catalog.compact(settings, con)
        assert out["files_merged"] == 3 and out["files_deleted"] == 0
        assert set(planned) < set(on_disk())  # the replaced files are still there, beside the merged one
        old = [str(p) for p in Path(settings.zone("tables")).rglob("*.parquet") if p.name in planned]
        rows = con.execute(f"SELECT count(*) FROM read_parquet({old})").fetchone()[0]
        assert rows == 3  # a reader holding the old plan reads them
        assert catalog.compact(settings, con)["files_deleted"] == 0  # the next compaction, within the grace
        assert set(planned) < set(on_disk())
        monkeypatch.setattr(catalog, "CLEANUP_GRACE", "0 seconds")  # ... and past it: every replaced file goes
        out = catalog.compact(settings, con)
        assert out["files_deleted"] == 3 and not set(planned) & set(on_disk()) and len(on_disk()) == 1
        assert con.execute("SELECT count(*) FROM derivations").fetchone()[0] == 3
    finally:
        con.close()


def _active_files(con, table: str) -> dict[int, int]:
    meta = f"__ducklake_metadata_{catalog.LAKE}"
    return dict(con.execute(f"SELECT f.data_file_id, f.file_size_bytes FROM {meta}.ducklake_data_file f JOIN "
                            f"{meta}.ducklake_table t USING (table_id) WHERE f.end_snapshot IS NULL AND "
                            "t.end_snapshot IS NULL AND t.table_name = ?", [table]).fetchall())


def test_compaction_is_size_tiered_and_leaves_large_files_alone(tmp_path, monkeypatch):
    """Files below the small size merge whenever two are there; a band ``[small * R^(i-1), small * R^i)`` merges
    once it holds R files; a file in a band with fewer is never rewritten (a later night must not rewrite the
    lake). Sizes scaled down: small = 16 KiB; incompressible float32 samples make each file's size."""
    monkeypatch.setattr(compaction, "COMPACT_SMALL_BYTES", 16 << 10)
    settings = get_settings(str(tmp_path / "lake"))
    con = catalog.connect(settings)
    rng = np.random.default_rng(7)
    written, versions = [], {}

    def insert(n: int) -> int:
        x = rng.standard_normal(n).astype(np.float32)
        written.append(x)
        tid = f"t{len(written):03d}"
        catalog.write_atomically(settings, con, lambda c: catalog.insert_tables(c, "emg_samples", [pa.table({
            "trial_id": [tid] * n, "channel": pa.array(np.zeros(n, np.int16)),
            "sample_index": pa.array(np.arange(n, dtype=np.int32)), "emg_mv": x})]), what="test")
        versions[con.execute(f"SELECT max(snapshot_id) FROM {catalog.LAKE}.snapshots()").fetchone()[0]] = sum(
            map(len, written))
        return max(_active_files(con, "emg_samples"))  # the newest file

    try:
        big = insert(40_000)  # ~160 KB: band [64, 256) KiB
        mid = [insert(6_000) for _ in range(3)]  # ~24 KB each: band [16, 64) KiB, three of four
        tiny = [insert(200) for _ in range(3)]  # < 16 KiB
        sizes = _active_files(con, "emg_samples")
        assert 64 << 10 <= sizes[big] < 256 << 10 and all(16 << 10 <= sizes[f] < 64 << 10 for f in mid)
        assert all(sizes[f] < 16 << 10 for f in tiny)
        out = catalog.compact(settings, con)
        after = _active_files(con, "emg_samples")
        assert out["files_merged"] == 3 and len(after) == 5  # only the three small ones, into one file
        assert big in after and all(f in after for f in mid) and not any(f in after for f in tiny)
        assert out["mb_merged"] == round(sum(sizes[f] for f in tiny) / 1e6, 1)
        small = next(f for f in after if f != big and f not in mid)  # the three small ones merged: still small
        assert after[small] < 16 << 10
        mid.append(insert(6_000))  # a fourth in the band: the band merges, alone
        out = catalog.compact(settings, con)
        after = _active_files(con, "emg_samples")
        assert out["files_merged"] == 4 and len(after) == 3
        assert big in after and small in after and not any(f in after for f in mid)
        got = con.execute("SELECT emg_mv FROM emg_samples ORDER BY trial_id, sample_index").fetchnumpy()["emg_mv"]
        np.testing.assert_array_equal(got, np.concatenate(written))  # every row, once, bit for bit
        for version, rows in versions.items():  # time travel by version reads each snapshot's rows
            assert con.execute(f"SELECT count(*) FROM emg_samples AT (VERSION => {version})").fetchone()[0] == rows
    finally:
        con.close()


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5, 0.8])
def test_cached_step_response_gives_the_independent_crossing(fraction):
    rate, lp = 2000.0, 6.0
    # independent: the step filtered forward-backward with a freshly designed Butterworth (scipy only)
    sos = signal.butter(emg_tx.DEFAULT_ORDER, lp, btype="low", fs=rate, output="sos")
    half = 4000
    y = signal.sosfiltfilt(sos, np.r_[np.zeros(half), np.ones(half)])
    k_ref = int(np.argmax(y >= max(fraction, 0.5)))
    j = int(np.flatnonzero(y[:k_ref] < fraction)[-1])
    want = (j + (fraction - y[j]) / (y[j + 1] - y[j]) - half) / rate * 1e3
    assert ons.lowpass_step_crossing_ms(fraction, rate_hz=rate, lowpass_hz=lp) == pytest.approx(want, abs=0.05)
    before = emg_tx.lowpass_step_response.cache_info().hits
    ons.lowpass_step_crossing_ms(fraction, rate_hz=rate, lowpass_hz=lp)
    assert emg_tx.lowpass_step_response.cache_info().hits == before + 1  # the table is not recomputed


def test_step_crossings_of_many_fractions_at_once_equal_each_alone_and_the_bias_correction_per_onset():
    """``onsets.lowpass_step_crossings_ms`` (every fraction against one search table) gives each fraction exactly
    ``lowpass_step_crossing_ms`` (tested above against an independently filtered step); the analysis's bias
    correction (``trial._bias_corrected``: the onsets' plateau windows as one array) gives each onset exactly the
    per-onset computation written out here, windows cut by the record's end and onsets past it included."""
    from warehouse.analysis import trial

    rng = np.random.default_rng(5)
    for rate in (2000.0, 1500.0, 100.0):
        f = np.r_[rng.uniform(1e-6, 1 - 1e-6, 500), 0.5, np.nextafter(0.5, 0), np.nextafter(0.5, 1), 1e-9, 0.25]
        want = [ons.lowpass_step_crossing_ms(x, rate_hz=rate) for x in f]
        assert ons.lowpass_step_crossings_ms(f, rate_hz=rate).tolist() == want
    with pytest.raises(ValueError):
        ons.lowpass_step_crossings_ms([0.2, 1.0], rate_hz=2000.0)
    rate = 1000.0
    env = np.abs(np.cumsum(rng.standard_normal(3000))) * 0.01 + 0.02
    on_idx = np.r_[rng.integers(0, 2700, 40), 2800, 2890, 2999, 3050]  # the last ones: windows cut or empty
    thr, base = 0.1, 0.02
    a, b = int(trial.PLATEAU_WINDOW_MS[0] * rate / 1000), int(trial.PLATEAU_WINDOW_MS[1] * rate / 1000)
    want = []
    for i in on_idx:
        seg = env[i + a: i + b]
        plateau = float(np.median(seg)) if len(seg) else float("nan")
        frac = (thr - base) / (plateau - base) if plateau > thr else float("nan")
        corr = ons.lowpass_step_crossing_ms(frac, rate_hz=rate) if 0 < frac < 1 else 0.0
        want.append(i / rate - corr / 1000.0)
    got = trial._bias_corrected(env, on_idx, rate, thr, base)
    assert got.tolist() == want and sum(w != i / rate for w, i in zip(want, on_idx)) > 20


def test_warm_c3d_reader_reads_file_after_file_and_recovers(tmp_path):
    from conftest import fixture

    from warehouse.ingest.readers import c3d
    from warehouse.ingest.readers.base import ReaderError

    path = fixture("gaitalytics/test_small.c3d")
    here = c3d.read_c3d(path, isolate=False)
    first = c3d.read_c3d(path)
    pid = c3d._WARM.proc.pid
    second = c3d.read_c3d(path)
    assert c3d._WARM.proc.pid == pid  # the same warm process read both
    for rec in (first, second):
        assert [ch.label for ch in rec.analogs] == [ch.label for ch in here.analogs]
        np.testing.assert_array_equal(rec.analogs[0].data, here.analogs[0].data)
    c3d._WARM.proc.kill()  # a reader that died between files is replaced
    c3d._WARM.proc.join()
    assert c3d.read_c3d(path).analog_rate_hz == here.analog_rate_hz and c3d._WARM.proc.pid != pid
    long_c3d = tmp_path / "long.c3d"  # 16 EMG channels x 100 s at 2 kHz: 13 MB, decoded by ezc3d in ~0.2 GB
    _write_long_c3d(long_c3d, channels=16, frames=200_000)
    assert c3d.read_c3d(path, memory_bytes=256 * 2**20).analog_rate_hz == here.analog_rate_hz  # a small file fits
    with pytest.raises(ReaderError) as err:  # too little address space for this one: refused, the process retired
        c3d.read_c3d(long_c3d, memory_bytes=256 * 2**20)
    assert err.value.reason_code == "c3d_reader_memory", err.value.message
    assert c3d._WARM.proc is None
    assert len(c3d.read_c3d(long_c3d).analogs) == 16  # read whole without the cap
    assert c3d.read_c3d(path).analog_rate_hz == here.analog_rate_hz


def _write_long_c3d(path, *, channels: int, frames: int) -> None:
    """A valid C3D of ``channels`` analog channels x ``frames`` frames at 2 kHz (one marker at 100 Hz)."""
    import ezc3d

    c = ezc3d.c3d()
    p = c["parameters"]
    p["POINT"]["RATE"]["value"] = np.array([100.0])
    p["POINT"]["LABELS"]["value"] = ["M1"]
    p["ANALOG"]["RATE"]["value"] = np.array([2000.0])
    p["ANALOG"]["LABELS"]["value"] = [f"EMG{i}" for i in range(channels)]
    p["ANALOG"]["UNITS"]["value"] = ["V"] * channels
    c["data"]["points"] = np.ones((4, 1, frames // 20))
    c["data"]["analogs"] = np.random.default_rng(0).standard_normal((1, channels, frames)) * 1e-3
    c.write(str(path))


def test_block_envelopes_match_the_reference_channel_by_channel():
    from warehouse.analysis.derived import block_envelopes

    rng = np.random.default_rng(1)
    samples = {0: rng.normal(0, 0.1, 4000).astype(np.float32), 1: rng.normal(0, 0.2, 4000).astype(np.float32),
               2: rng.normal(0, 0.1, 3000).astype(np.float32), 5: rng.normal(0, 0.1, 2000).astype(np.float32)}
    rates = {0: 2000.0, 1: 2000.0, 2: 2000.0, 5: 1000.0}  # two channels share a block; others alone
    envs = block_envelopes(samples, rates)
    assert sorted(envs) == sorted(rates)
    for ch, x in samples.items():
        ref = emg_tx.linear_envelope(x.astype(np.float64), rate_hz=rates[ch])
        np.testing.assert_allclose(envs[ch], ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_cycle_metrics_by_block_equal_channel_by_channel():
    """The analysis computes cycle metrics and normalised cycles once per block of channels (side, rate,
    length): the same values, bit for bit, as one channel at a time."""
    import polars as pl

    from transforms import cycles as cyc
    from warehouse.analysis.trial import _cycle_blocks

    rng = np.random.default_rng(4)
    rate = 1000.0
    envs = {0: rng.random(12000), 1: rng.random(12000), 2: rng.random(12000), 3: rng.random(9000),
            4: rng.random(12000)}
    chans = [(0, "ta", "L", rate), (1, "sol", "L", rate), (2, "ta", "R", rate), (3, "gm", "L", rate),
             (4, "vl", "U", rate)]
    side_cycles = {"L": cyc.segment_cycles([0.5, 1.6, 2.7, 3.9, 5.0, 6.2], foot_offs_s=[1.2, 2.3, 3.4, 4.6, 5.7]),
                   "R": cyc.segment_cycles([1.0, 2.1, 3.3, 4.4])}
    metrics, normalised = _cycle_blocks(chans, envs, side_cycles)
    assert sorted(metrics) == sorted(normalised) == [0, 1, 2, 3]  # side U has no cycles
    for ch, _, side, _ in chans[:4]:
        one = cyc.cycle_metrics(envs[ch], rate_hz=rate, cycles=side_cycles[side], channel_names=[str(ch)])
        assert pl.DataFrame(metrics[ch]).equals(one.filter(pl.col("valid")))
        ref = cyc.normalise_cycles(envs[ch], rate_hz=rate, cycles=side_cycles[side])
        assert normalised[ch].shape == ref.shape and np.array_equal(normalised[ch], ref)


def test_cohort_normalises_a_trials_channels_by_block_as_one_at_a_time():
    """The cohort's normalised cycles (``cohort._add_normalised``): one lookup of the cycles per trial and side,
    one normalisation per block of channels of equal rate and length: the same arrays, bit for bit, in the
    same order, as each channel alone; a channel too short for a cycle loses only that cycle."""
    import polars as pl

    from transforms import cycles as cyc
    from warehouse.analysis.cohort import _add_normalised

    rng = np.random.default_rng(7)
    rate = 100.0
    lengths = {("t1", 0): 1200, ("t1", 1): 1200, ("t1", 2): 400, ("t2", 0): 1000, ("t2", 1): 1000}
    muscles = {0: ("ta", "L"), 1: ("sol", "L"), 2: ("gm", "L")}
    rows = [{"trial_id": t, "subject_id": "s", "session_id": "x", "muscle": muscles[ch][0], "side": "L",
             "rate_hz": rate, "envelope_mv": rng.random(n).astype(np.float32).tolist()}  # one row per channel
            for (t, ch), n in lengths.items()]
    env = pl.DataFrame(rows, schema_overrides={"envelope_mv": pl.List(pl.Float32)})
    cycles = {t: cyc.segment_cycles(s) for t, s in (("t1", [0.5, 1.6, 2.7, 3.8, 4.9]), ("t2", [1.0, 2.1, 3.2]))}
    cyc_df = pl.concat([c.with_columns(trial_id=pl.lit(t), side=pl.lit("L")) for t, c in cycles.items()]).filter(
        pl.col("valid"))
    out: dict = {}
    _add_normalised(out, env, cyc_df)
    expected: dict = {}
    for (t, ch), n in lengths.items():
        x = np.asarray(env.filter((pl.col("trial_id") == t) & (pl.col("muscle") == muscles[ch][0]))["envelope_mv"][0],
                       dtype=np.float64)
        c = cycles[t].filter(pl.col("valid") & (pl.col("end_s") < (n - 1) / rate))
        assert c.height
        expected.setdefault(("s", "x", muscles[ch][0], "L"), []).append(cyc.normalise_cycles(x, rate_hz=rate, cycles=c))
    assert sorted(out) == sorted(expected)
    for key, arrs in expected.items():
        assert len(out[key]) == len(arrs)
        for got, ref in zip(out[key], arrs):
            assert got.shape == ref.shape and np.array_equal(got, ref)
    assert [a.shape[0] for a in out[("s", "x", "ta", "L")]] == [4, 2]
    assert out[("s", "x", "gm", "L")][0].shape[0] == 3  # 4 s of gm: the cycle ending at 4.9 s is left out


def test_trial_conditions_its_channels_as_blocks_bit_for_bit_as_one_at_a_time():
    """The analysis conditions a trial's channels (DC, mains comb, band-pass: what the double threshold and the
    burst spectra read) and detects their TKEO bursts as blocks of one rate and length
    (``trial._conditioned_channels``, ``trial._tkeo_channels``): each channel the same array and bursts, bit for
    bit, as alone; channels of another rate or length in their own block."""
    import polars as pl

    from conftest import fixture
    from warehouse.analysis import trial

    real = pl.read_csv(fixture("synergies/derived/ID0012_TW_01_raw_emg.csv")).drop("time").to_numpy().T[:5, :8000]
    rng = np.random.default_rng(3)
    samples = {i: row.astype(np.float32) for i, row in enumerate(real)}
    samples.update({10: rng.standard_normal(3000).astype(np.float32), 11: rng.standard_normal(3000).astype(np.float32),
                    12: rng.standard_normal(2999).astype(np.float32)})
    chans = [(i, 2000.0) for i in range(5)] + [(10, 1000.0), (11, 1000.0), (12, 1000.0)]
    for mains in (50.0, 60.0):
        got = trial._conditioned_channels(samples, chans, mains)
        assert sorted(got) == sorted(ch for ch, _ in chans)
        for ch, rate in chans:
            np.testing.assert_array_equal(got[ch], trial._conditioned(samples[ch].astype(np.float64), rate, mains))
    # the TKEO bursts likewise; a block the detector refuses (too short to filter) is left to the channel loop
    samples[13] = rng.standard_normal(20).astype(np.float32)
    bursts = trial._tkeo_channels(samples, chans + [(13, 1000.0)], 400.0)
    assert sorted(bursts) == sorted(ch for ch, _ in chans)
    for ch, rate in chans:
        alone = ons.onsets_tkeo(samples[ch].astype(np.float64), rate_hz=rate, baseline_window_ms=400.0)
        np.testing.assert_array_equal(bursts[ch][0], alone[0])
        np.testing.assert_array_equal(bursts[ch][1], alone[1])


def test_read_channels_sorts_only_rows_out_of_order():
    """``derived.read_channels`` reads a trial's samples without an ORDER BY (the rows the ingest committed are in
    order) and sorts them by (channel, sample_index) itself when they are not: shuffled rows, as a scan of
    several files may return them, give the same channels."""
    import duckdb

    from warehouse.analysis import derived
    from warehouse.ingest import tables

    rng = np.random.default_rng(2)
    chans = [rng.standard_normal(n).astype(np.float32) for n in (500, 500, 300)]
    t = tables.emg_samples_table("t", chans)
    con = duckdb.connect()
    try:
        for rows in (t, t.take(rng.permutation(t.num_rows))):
            con.register("emg_samples", rows)
            got = derived.read_channels(con, "t")
            assert sorted(got) == [0, 1, 2] and all(np.array_equal(got[i], chans[i]) for i in range(3))
            con.unregister("emg_samples")
    finally:
        con.close()


def test_a_trials_id_column_is_one_dictionary_entry_that_duckdb_reads_as_the_plain_string():
    """The ingest's long tables repeat the trial id on every row (``tables.repeated``): held as a one-entry
    dictionary (a byte per row, not the id: a demo trial's rows held until its batch commits were 24 MB, 7.7 MB
    so), of every length including none, and what DuckDB reads from it (the inserts, the rows held for the
    derivations) is the plain VARCHAR column."""
    import duckdb

    from warehouse.ingest import tables

    tid = "lyon:LYO01-S1:0e75d4d494fd"
    for n in (0, 1, 5, 70_000):
        col = tables.repeated(tid, n)
        assert pa.types.is_dictionary(col.type) and col.type.index_type == pa.int8() and len(col) == n
        assert col.dictionary.to_pylist() == [tid] and col.nbytes <= n + 64
        assert col.cast(pa.string()).equals(pa.array([tid] * n, pa.string()))
    t = tables.emg_samples_table("t1", [np.zeros(3, np.float32), np.ones(2, np.float32)])
    con = duckdb.connect()
    try:
        con.register("t", t)
        assert con.execute("SELECT typeof(trial_id), count(*) FROM t WHERE trial_id = 't1' GROUP BY 1").fetchall() \
            == [("VARCHAR", 5)]
    finally:
        con.close()


def test_the_night_starts_the_readers_forkserver_before_it_scans_and_collects_garbage_less_often(lake, monkeypatch):
    """The readers' forkserver imports everything its workers run (~1 s of a core): the night starts it
    (``warm_process.start_server``, which does not wait for it) before scanning the inboxes, so that the import
    runs beside the scans, not while the first file waits for its reader. Its first file is then read as ever."""
    from conftest import drop, fixture

    from flows import nightly
    from warehouse.ingest import warm_process

    order = []
    real_start = warm_process.start_server
    monkeypatch.setattr(warm_process, "start_server", lambda: order.append("forkserver") or real_start())

    def scan(lake_path, site, run_id):
        order.append("scan")
        thresholds.append(gc.get_threshold())
        return nightly.scan_site.fn(lake_path, site, run_id)

    drop(lake, "g1", {"emg.c3d": fixture("btk/1123x01EMG.c3d")},
         "subjects: [{id: G01, mass_kg: 70}]\nsessions:\n  - {id: G01-S1, subject: G01, condition: fresh, task: walk, "
         "files: ['*.c3d']}\n")
    thresholds, before = [], gc.get_threshold()
    s = nightly.run_night(lake.lake, quiet=True, scan=scan)
    assert order[:2] == ["forkserver", "scan"] and s["ingested"] == 1
    # the night collects garbage less often (nightly.NIGHT_GC_THRESHOLD), and leaves the process as it was
    assert thresholds == [nightly.NIGHT_GC_THRESHOLD] != [before] and gc.get_threshold() == before
    with pytest.raises(RuntimeError), nightly._collector((123, 4, 5)):
        assert gc.get_threshold() == (123, 4, 5)
        raise RuntimeError
    assert gc.get_threshold() == before
