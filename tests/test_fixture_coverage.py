"""Every real fixture file through one nightly run: ingested with asserted facts, or quarantined with a
specific reason (facts from ../shared/fixtures/README.md, never from our own output)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES

from flows.nightly import run_night
from warehouse import catalog
from warehouse.settings import get_settings

QUARANTINED = {
    "bad/Empty.c3d": "empty_file",
    "bad/badParameterOffset.c3d": "c3d_unreadable",
    "bad/mocap36.c3d": "c3d_unreadable",
    "bad/sample06_MACsample.c3d": "c3d_unsupported_processor",  # SGI, both readers fail
    "bad/sample18_bad_parameter_section.c3d": "c3d_bad_parameter_section",
    "bad/sample20_phasespace_sample.c3d": "no_frames",  # ezc3d returns 0 frames silently
    "delsys/trigno_emg.edf": "edf_metadata_conflict",  # truncated labels, 1000x range, 1259 Hz
    "synergies/RAW_DATA.RData": "unknown_format",
    "synergies/derived/ID0012_TW_01_cycles.csv": "unknown_format",
    "synergies/derived/ID0012_TW_01_raw_emg.csv": "unknown_format",
}
#: file -> (mapped EMG channels, force plates, duration s) from the fixtures README; None = not stated
INGESTED = {
    "gaitalytics/test_small.c3d": (14, 4, 3.37),
    "gaitalytics/test_small.mot": (0, 4, None),
    "gaitalytics/treadmill_events.c3d": (0, 2, 12.06),
    "btk/Gait.c3d": (14, 2, 4.87),  # 16 EMG, 2 of them 'GRF' = unknown muscle
    "btk/motion_analysis_raw/Gait.trc": (None, 2, None),
    "btk/1123x01EMG.c3d": (8, 0, None),
    "btk/ADemo1_rewrite_c3d_pc_float.c3d": (8, 1, None),
    "btk/ADemo1_rewrite_c3d_pc_integer.c3d": (8, 1, None),
    "btk/PiG_Motion3_FF.c3d": (None, 3, None),
    "btk/Res16bits.c3d": (14, 6, 1.0),  # 12 side-named EMG + 'TA' and 'SOL' (no side: stored with side U)
    "btk/FunctionalWalk.c3d": (None, 3, None),
    "btk/Analysis.c3d": (None, 0, None),
    "c3dorg/sample01_Eb015pi.c3d": (None, 2, None),
    "c3dorg/sample01_Eb015vr.c3d": (None, 2, None),
    "c3dorg/sample01_Eb015si.c3d": (None, 2, None),  # SGI: read by py-c3d
    "c3dorg/sample10_type-4a.c3d": (8, 2, None),
    "c3dorg/sample15_FP1.C3D": (None, 1, None),
    "c3dorg/sample24_MotionMonitorC3D.c3d": (None, 1, None),
    "c3dorg/sample28_dynamic.C3D": (None, 0, None),  # type-1 plate declared with ANALOG:USED = 0
    "bad/sample13_Dance.c3d": (None, None, None),  # ezc3d raises, py-c3d reads
    "bad/sample21_sample21.c3d": (None, 2, None),
    "bad/parameterOverflow.c3d": (None, None, None),
    "delsys/truncated_trigno_sample.csv": (None, 0, None),
    "pyomeca/nexus_analogs_delsys.csv": (None, None, None),
    "pyomeca/markers_commas.trc": (None, None, None),
    "pyomeca/inverse_kin_commas.mot": (None, None, None),
    "ultrasound/PL_50_01_fascicle_ultratrack.mat": (None, None, None),
    "ultrasound/PL_50_01_spike2_emg_torque.mat": (None, None, 17.0),
}
COMPANIONS = {"btk/motion_analysis_raw/Gait.anc", "btk/motion_analysis_raw/Forcepla.cal",
              "delsys/trigno_emg_channels.tsv"}


def all_fixture_files() -> list[str]:
    skip = {"README.md", "README_others.txt"}
    return sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*")
                  if p.is_file() and "LICENSES" not in p.parts and "readmes" not in p.parts and p.name not in skip)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    s = get_settings(str(tmp_path_factory.mktemp("fx") / "lake"))
    site = Path(s.zone("inbox")) / "fx"
    for rel in all_fixture_files():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / rel, site / rel)
    (site / "manifest.yaml").write_text("subjects: [{id: FX1, mass_kg: 70}]\nsessions:\n  - {id: FX1-S1, "
                                        "subject: FX1, condition: fresh, task: walk, files: ['*', '*/*', '*/*/*']}\n")
    summary = run_night(s.lake, quiet=True)
    con = catalog.connect(s, read_only=True)
    yield summary, con
    con.close()


def _tid(con, rel: str) -> str | None:
    """The trial a file produced (trial ids are opaque: the path is only in ``files``)."""
    row = con.execute("SELECT trial_id FROM files WHERE path = ?", [rel]).fetchone()
    return row[0] if row else None


def test_every_fixture_is_classified():
    assert set(all_fixture_files()) == set(QUARANTINED) | set(INGESTED) | COMPANIONS


def test_every_file_is_accounted_for(night):
    summary, con = night
    status = dict(con.execute("SELECT path, status FROM files").fetchall())
    assert set(status) == set(all_fixture_files())
    for rel, code in QUARANTINED.items():
        assert status[rel] == "quarantined", rel
        reasons = [r[0] for r in con.execute("SELECT reason_code FROM quarantine WHERE path = ? AND stage <> "
                                             "'harmonise'", [rel]).fetchall()]
        assert reasons == [code], (rel, reasons)
    for rel in INGESTED:
        assert status[rel] == "ingested", rel


@pytest.mark.parametrize("rel", sorted(INGESTED))
def test_ingested_facts(night, rel):
    _, con = night
    n_emg, n_fp, dur = INGESTED[rel]
    row = con.execute("SELECT n_emg_channels, n_force_plates, duration_s FROM trials WHERE trial_id = ?",
                      [_tid(con, rel)]).fetchone()
    assert row is not None, rel
    if n_emg is not None:
        assert row[0] == n_emg
    if n_fp is not None:
        assert row[1] == n_fp
    if dur is not None:
        assert row[2] == pytest.approx(dur, abs=0.02)


def test_specific_flags_on_real_files(night):
    _, con = night

    def findings(rel):
        return {r[0] for r in con.execute("SELECT code FROM plausibility WHERE trial_id = ?",
                                          [_tid(con, rel)]).fetchall()}

    def qc(rel):
        return dict(con.execute("SELECT label, flags FROM channel_qc WHERE trial_id = ?",
                                [_tid(con, rel)]).fetchall())

    assert "marker_plate_mismatch" in findings("bad/sample21_sample21.c3d")  # claims 60/1020 Hz
    assert "c3d_parameter_overflow" in findings("bad/parameterOverflow.c3d")
    assert all("already_processed" in f for f in qc("btk/ADemo1_rewrite_c3d_pc_float.c3d").values())
    assert all("time_normalised" in f for f in qc("btk/Analysis.c3d").values())
    # FunctionalWalk's EVENT:TIMES are stored flat (22 values for 11 events)
    n = con.execute("SELECT count(*) FROM gait_events WHERE trial_id = ? AND source = 'annotated'",
                    [_tid(con, "btk/FunctionalWalk.c3d")]).fetchone()[0]
    assert n == 11
    # the Gait.c3d 'GRF' channels (unknown muscle) are flagged, not guessed
    grf = con.execute("SELECT count(*) FROM quarantine WHERE path LIKE 'btk/Gait.c3d#%' AND "
                      "reason_code = 'unmapped_channel'").fetchone()[0]
    assert grf == 2


def _emg(con, rel):
    import numpy as np

    rows = con.execute("SELECT channel, emg_mv FROM emg_samples WHERE trial_id = ? ORDER BY channel, sample_index",
                       [_tid(con, rel)]).fetchnumpy()
    return {int(c): rows["emg_mv"][rows["channel"] == c] for c in np.unique(rows["channel"])}


def test_same_trial_in_float_and_integer_storage_agrees(night):
    """ADemo1 written as REAL and as INT: the same EMG within the integer quantisation (< 1 % of peak)."""
    import numpy as np

    _, con = night
    a, b = _emg(con, "btk/ADemo1_rewrite_c3d_pc_float.c3d"), _emg(con, "btk/ADemo1_rewrite_c3d_pc_integer.c3d")
    assert a.keys() == b.keys() and len(a) == 8
    for ch in a:
        assert np.max(np.abs(a[ch] - b[ch])) <= 0.01 * np.max(np.abs(a[ch]))


def test_three_processor_variants_give_the_same_plates(night):
    """sample01 as Intel INT, DEC REAL and SGI INT (the SGI one read by py-c3d): same vertical force."""
    import numpy as np

    _, con = night
    fz = {}
    for v in ("pi", "vr", "si"):
        fz[v] = con.execute("SELECT force_z_n FROM grf WHERE trial_id = ? AND plate = 1 ORDER BY sample_index",
                            [_tid(con, f"c3dorg/sample01_Eb015{v}.c3d")]).fetchnumpy()["force_z_n"]
    peak = np.max(np.abs(fz["pi"]))
    for v in ("vr", "si"):
        assert len(fz[v]) == len(fz["pi"])
        assert np.max(np.abs(fz[v] - fz["pi"])) <= 0.01 * peak


def test_truncated_point_unit_is_resolved(night):
    _, con = night
    # sample15: POINT:UNITS truncated to "mete": read as metres, stored in mm (markers of a person: ~1 m tall)
    z = con.execute("SELECT max(z_mm) FROM markers WHERE trial_id = ?", [_tid(con, "c3dorg/sample15_FP1.C3D")])\
        .fetchone()[0]
    assert 500 < z < 2500


def _independently_not_emg(a) -> str | None:
    """Why an analog channel is not surface EMG, from evidence computed here (Welch spectrum, unit, label
    words), or None when nothing shows it is not EMG."""
    import numpy as np
    from scipy.signal import welch

    if re.search(r"force|moment|torque|switch|fsw|sync|trigger|acc|gyro|angle|mag", a.label, re.I):
        return "label names another signal"
    if a.unit.strip().lower() not in ("v", "mv", "uv", "µv", "μv", "volt", "volts", "millivolt", "microvolt"):
        return f"unit {a.unit!r}"
    x = np.nan_to_num(np.asarray(a.data, dtype=np.float64))
    if a.rate_hz < 400 or len(x) < a.rate_hz / 2 or not np.ptp(x) > 0:
        return "too slow, too short or flat for EMG"
    f, p = welch(x - x.mean(), fs=a.rate_hz, nperseg=min(len(x), int(a.rate_hz)))
    mdf = f[np.searchsorted(np.cumsum(p) / p.sum(), 0.5)]
    low = p[f < 15].sum() / p.sum()
    if not 30 <= mdf <= 200 or low > 0.3:
        return f"spectrum not EMG (median {mdf:.0f} Hz, {100 * low:.0f} % below 15 Hz)"
    return None


def account_channels(con, rel: str, path: Path, trial_id: str) -> int:
    """Labels in, rows out for one ingested file: each analog channel (plates aside) is an emg_channels
    row, a harmonise quarantine row, or shown here not to be EMG; labels that say EMG or name a muscle are
    never in the last group. Returns the number of analog labels accounted for."""
    from collections import Counter

    from schemas.vocab import resolve_label
    from warehouse.ingest.readers import companions_for, read_any

    siblings = [p.name for p in path.parent.iterdir()]
    comps = {k: path.parent / v for k, v in companions_for(path.name, siblings).items()}
    rec = read_any(path, companions=comps)
    from warehouse.ingest.harmonise import blank_label

    labels_in = Counter(a.label or blank_label(i) for i, a in enumerate(rec.analogs)
                        if i not in rec.plate_channel_indices)
    stored = Counter(r[0] for r in con.execute("SELECT label FROM emg_channels WHERE trial_id = ?", [trial_id])
                     .fetchall())
    recorded = Counter(r[0][len(rel) + 1:] for r in con.execute(
        "SELECT path FROM quarantine WHERE stage = 'harmonise' AND starts_with(path, ?)", [rel + "#"]).fetchall())
    assert not (set(stored) & set(recorded)), rel
    assert stored + recorded <= labels_in, (rel, stored, recorded)
    for i, a in enumerate(rec.analogs):
        if i in rec.plate_channel_indices or a.label in stored or (a.label or blank_label(i)) in recorded:
            continue
        why = _independently_not_emg(a)
        says_emg = ("emg" in f"{a.label} {a.description}".lower() or resolve_label(a.label).muscle is not None) \
            and why != "label names another signal"  # e.g. 'Voltage.FootswitchA' described as "EMG"
        assert not says_emg and why, (rel, a.label, a.unit, a.rate_hz, "dropped without a record")
    return sum(labels_in.values())


def test_every_emg_looking_channel_is_stored_or_recorded(night):
    """Issue #14: nothing dropped without a record, on every fixture the night ingested."""
    _, con = night
    checked = [rel for rel in sorted(INGESTED) if account_channels(con, rel, FIXTURES / rel, _tid(con, rel))]
    assert len(checked) >= 10, checked  # the fixtures with analog channels
