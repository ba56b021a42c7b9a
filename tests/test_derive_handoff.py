"""Analysis from memory (issue 17): a trial's analysis uses the EMG and envelopes its envelope step just
computed on the same thread instead of reading the samples back; what it writes is exactly what it writes
from the lake's samples."""
from __future__ import annotations

from conftest import lake_fingerprint

from flows.nightly import run_night
from warehouse.analysis import derived, trial
from warehouse.demo import generate_consortium
from warehouse.settings import get_settings


def test_handed_over_emg_gives_the_rows_the_lake_gives(tmp_path, monkeypatch):
    settings = get_settings(str(tmp_path / "lake"))
    generate_consortium(settings.zone("inbox"), seed=2, subjects_per_site={"lyon": 1, "boston": 1, "oslo": 1},
                        duration_s=6.0)
    monkeypatch.setenv("MYOMAP_DERIVE_WORKERS", "1")
    assert run_night(settings.lake, quiet=True)["trials_derived"] == 6
    tid = sorted(derived.pending(settings, "analysis", "no such hash"))[0]
    reads = []
    real = derived.read_channels
    monkeypatch.setattr(trial, "read_channels", lambda con, t: (reads.append(t), real(con, t))[1])

    derived.compute_envelopes(settings, tid)
    trial.analyse_trial(settings, tid)  # from memory
    assert reads == []
    handed = lake_fingerprint(settings)

    assert derived.take_handed_over(settings, tid) is None  # taken once: nothing left on the thread
    trial.analyse_trial(settings, tid)  # from the lake
    assert reads == [tid]
    assert lake_fingerprint(settings) == handed
    # handed to the same trial only
    derived.compute_envelopes(settings, tid)
    assert derived.take_handed_over(settings, "lyon:other:trial") is None


def _snapshots(settings) -> int:
    from warehouse import catalog

    con = catalog.connect(settings, read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {catalog.LAKE}.snapshots()").fetchone()[0]
    finally:
        con.close()


def test_envelopes_commit_with_the_analysis_or_alone_when_it_fails(tmp_path, monkeypatch):
    """In the night a trial's envelopes and analysis follow each other on one thread (``analysis_follows``): the
    envelope rows commit in the analysis's transaction, one snapshot, and the lake is the lake of two
    transactions. When the analysis fails, the envelopes still commit, alone, as the block ends."""
    from conftest import drop, fixture
    from test_real_analysis import MANIFEST

    from flows import nightly
    from warehouse.ingest import steps

    lakes = {}
    for how in ("joined", "apart"):
        settings = lakes[how] = get_settings(str(tmp_path / how / "lake"))
        drop(settings, "real", {"small/a.c3d": fixture("gaitalytics/test_small.c3d")}, MANIFEST)
        steps.sync_site(settings, "real", "run-1")
        tid = steps.process_file(settings, "real", "small/a.c3d", "run-1")["trial_id"]
        before = _snapshots(settings)
        if how == "joined":
            with derived.analysis_follows(settings, tid):
                derived.compute_envelopes(settings, tid)
                assert derived.pending_envelopes(settings, tid) is not None
                trial.analyse_trial(settings, tid)
                assert derived.pending_envelopes(settings, tid) is None
        else:
            derived.compute_envelopes(settings, tid)
            trial.analyse_trial(settings, tid)
        assert _snapshots(settings) - before == (1 if how == "joined" else 2)
    assert lake_fingerprint(lakes["joined"]) == lake_fingerprint(lakes["apart"])

    settings = lakes["joined"]
    monkeypatch.setattr(trial, "_analyse_channels", lambda *a, **k: 1 / 0)
    with derived.analysis_follows(settings, tid):
        derived.compute_envelopes(settings, tid)
        before = _snapshots(settings)
        assert "ZeroDivisionError" in nightly.analyse.fn(settings.lake, tid)["error"]
        assert _snapshots(settings) == before  # nothing committed yet
    assert _snapshots(settings) == before + 1  # the envelopes, alone
    assert lake_fingerprint(lakes["joined"]) == lake_fingerprint(lakes["apart"])
