"""The night derives each trial as soon as it is ingested, while the next files are read and committed
(issue 17): the derivation threads overlap the ingest instead of waiting for the whole inbox. Checked
deterministically: the ingest of a file after the first ingested one waits until a derivation has started
(with the derivations only after the ingest, it never would: the guard's timeout fails the test)."""
from __future__ import annotations

import threading

from flows import nightly
from flows.nightly import run_night
from warehouse.demo import generate_consortium
from warehouse.ingest import steps
from warehouse.settings import get_settings

GUARD_S = 120  # only a guard against a hang: the event is set as soon as a derivation starts


def test_trials_are_derived_while_the_next_files_are_ingested(tmp_path, monkeypatch):
    settings = get_settings(str(tmp_path / "lake"))
    generate_consortium(settings.zone("inbox"), seed=1, subjects_per_site={"lyon": 1, "boston": 1, "oslo": 1},
                        duration_s=5.0)
    monkeypatch.setenv("MYOMAP_DERIVE_WORKERS", "2")
    derivation_started, ingested, waited, in_vain = threading.Event(), [], [], []

    def derive(lake, tid):
        derivation_started.set()
        return nightly.envelopes.fn(lake, tid)

    def process(lake, site, rel, run_id, hold=None):
        if ingested and not waited:  # a trial is in the lake: its derivation must start before this file
            waited.append(rel)
            if not derivation_started.wait(GUARD_S):
                in_vain.append(rel)
        r = nightly.process_file.fn(lake, site, rel, run_id, hold)
        if r["outcome"] == steps.INGESTED:
            ingested.append(r["trial_id"])
        return r

    summary = run_night(settings.lake, quiet=True, process=process, derive=derive)
    assert waited and not in_vain, "no trial was derived while the inbox was being ingested"
    assert summary["ingested"] == len(ingested) == 6 and summary["trials_derived"] == 6
    assert not summary.get("analysis_errors") and summary["errors"] == 0, summary


def test_one_worker_derives_after_the_ingest(tmp_path, monkeypatch):
    """MYOMAP_DERIVE_WORKERS=1: one step after the other, the derivations after the whole ingest."""
    settings = get_settings(str(tmp_path / "lake"))
    generate_consortium(settings.zone("inbox"), seed=1, subjects_per_site=1,
                        duration_s=5.0)
    monkeypatch.setenv("MYOMAP_DERIVE_WORKERS", "1")
    order = []

    def derive(lake, tid):
        order.append("derive")
        return nightly.envelopes.fn(lake, tid)

    def process(lake, site, rel, run_id, hold=None):
        order.append("ingest")
        return nightly.process_file.fn(lake, site, rel, run_id, hold)

    run_night(settings.lake, quiet=True, process=process, derive=derive)
    assert order == ["ingest"] * order.count("ingest") + ["derive"] * order.count("derive")
    assert order.count("derive") == 6
