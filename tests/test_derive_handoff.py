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
