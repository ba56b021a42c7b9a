"""Force plates computed on the whole analog block (warehouse/ingest/readers/c3d_plates.py) against ezc3d's own
per-frame extraction (``extract_forceplat_data=True``) on real files of every plate type the fixtures hold."""
from __future__ import annotations

import logging

import ezc3d
import numpy as np
import pytest
from conftest import fixture
from ezc3d import ezc3d as swig

from warehouse.ingest.readers import c3d, c3d_plates

#: file, plate types in it; types 2 and 4 are vectorised, type 3 (Kistler) copied from ezc3d
FILES = [("gaitalytics/test_small.c3d", [2, 2, 2, 2]), ("gaitalytics/treadmill_events.c3d", [2, 2]),
         ("btk/Gait.c3d", [4, 4]), ("c3dorg/sample10_type-4a.c3d", [4, 4]), ("btk/Res16bits.c3d", [4] * 6),
         ("c3dorg/sample01_Eb015vr.c3d", [2, 2]), ("c3dorg/sample15_FP1.C3D", [3])]
KEYS = ("force", "center_of_pressure", "Tz", "corners")


def _assert_same(mine: dict, theirs: dict) -> None:
    for k in KEYS:
        a, b = np.asarray(mine[k]), np.asarray(theirs[k])
        assert a.shape == b.shape, k
        assert np.array_equal(np.isfinite(a), np.isfinite(b)), k
        fin = np.isfinite(b)
        np.testing.assert_allclose(a[fin], b[fin], rtol=0, atol=1e-12 * max(float(np.abs(b[fin]).max(initial=0)), 1.0),
                                   err_msg=k)


@pytest.mark.parametrize("rel,types", FILES)
def test_every_frame_equals_ezc3d(rel, types):
    """Every frame of every plate (not only the frames checked at read time) equals ezc3d's extraction."""
    path = str(fixture(rel))
    theirs = ezc3d.c3d(path, extract_forceplat_data=True)["data"]["platform"]
    c = ezc3d.c3d(path)
    plates = swig.ForcePlatforms(c.c3d_swig).forcePlatforms()
    assert [p.type() for p in plates] == types
    mine = c3d_plates.platforms(c)
    assert len(mine) == len(theirs) == len(types)
    analogs = np.asarray(c["data"]["analogs"], dtype=np.float64)[0]
    channels = np.asarray(c["parameters"]["FORCE_PLATFORM"]["CHANNEL"]["value"])
    for i, (m, t, pf) in enumerate(zip(mine, theirs, plates)):
        _assert_same(m, t)
        if pf.type() in c3d_plates.VECTORISED_TYPES:  # the block equations themselves, all frames
            direct = c3d_plates._vectorised(pf, analogs, channels[:, i].astype(int) - 1)
            assert direct is not None
            _assert_same({**direct, "corners": t["corners"]}, t)


def test_a_plate_that_disagrees_with_ezc3d_is_copied_from_ezc3d(monkeypatch, caplog):
    """Fault injected: the block equations give values 1 N off. The read-time check catches it and the plate
    comes from ezc3d's own values, with a warning naming the plate."""
    path = str(fixture("gaitalytics/treadmill_events.c3d"))
    theirs = ezc3d.c3d(path, extract_forceplat_data=True)["data"]["platform"]
    real = c3d_plates._vectorised

    def off_by_one_newton(*a, **k):
        out = real(*a, **k)
        out["force"] = out["force"] + 1.0
        return out
    monkeypatch.setattr(c3d_plates, "_vectorised", off_by_one_newton)
    monkeypatch.setattr(c3d_plates, "_VERIFIED", set())  # as in a fresh reader process
    monkeypatch.setattr(c3d_plates, "_KNOWN", {})
    with caplog.at_level(logging.WARNING, logger=c3d_plates.__name__):
        mine = c3d_plates.platforms(ezc3d.c3d(path))
    for m, t in zip(mine, theirs):
        _assert_same(m, t)
    assert "force plate 1 (type 2)" in caplog.text and "copied frame by frame" in caplog.text


def test_a_configuration_is_checked_once_per_process(monkeypatch):
    """The second file with the same plates (type, channels, calibration, origin, corners) is not checked
    again: the equations are the same for every frame; a new configuration is."""
    checked = []
    real = c3d_plates._matches_ezc3d
    monkeypatch.setattr(c3d_plates, "_matches_ezc3d", lambda pf, plate: checked.append(pf.type()) or real(pf, plate))
    monkeypatch.setattr(c3d_plates, "_VERIFIED", set())
    monkeypatch.setattr(c3d_plates, "_KNOWN", {})
    for _ in range(2):
        c3d_plates.platforms(ezc3d.c3d(str(fixture("gaitalytics/treadmill_events.c3d"))))
    assert checked == [2, 2]  # two plates, checked on the first read only
    c3d_plates.platforms(ezc3d.c3d(str(fixture("btk/Gait.c3d"))))
    assert checked == [2, 2, 4, 4]


def test_reader_plates_match_ezc3d_extraction():
    """The C3D reader's ForcePlate arrays are ezc3d's extraction (force, CoP, free moment Tz_z)."""
    path = fixture("btk/Gait.c3d")
    theirs = ezc3d.c3d(str(path), extract_forceplat_data=True)["data"]["platform"]
    rec = c3d.read_c3d(path, isolate=False)
    assert len(rec.plates) == len(theirs)
    for p, t in zip(rec.plates, theirs):
        np.testing.assert_array_equal(np.isfinite(p.force_n), np.isfinite(t["force"]))
        np.testing.assert_allclose(np.nan_to_num(p.force_n), np.nan_to_num(t["force"]), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(np.nan_to_num(p.free_moment_nmm), np.nan_to_num(t["Tz"][2]), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("rel", ["gaitalytics/treadmill_events.c3d", "btk/Gait.c3d", "btk/Res16bits.c3d"])
def test_a_file_with_known_parameters_skips_ezc3d_plate_module_and_equals_it(rel, monkeypatch):
    """After a file whose plates were all vectorised and checked, a file with the same plate parameters is
    computed from the kept constants, without ezc3d's force-plate module (which extracts every frame in
    C++), and still equals ezc3d's extraction on every frame; a file with other parameters goes through it."""
    monkeypatch.setattr(c3d_plates, "_VERIFIED", set())
    monkeypatch.setattr(c3d_plates, "_KNOWN", {})
    path = str(fixture(rel))
    theirs = ezc3d.c3d(path, extract_forceplat_data=True)["data"]["platform"]
    c3d_plates.platforms(ezc3d.c3d(path))
    assert len(c3d_plates._KNOWN) == 1

    def refused(*a, **k):
        raise AssertionError("ezc3d's force-plate module was used")
    monkeypatch.setattr(swig, "ForcePlatforms", refused)
    mine = c3d_plates.platforms(ezc3d.c3d(path))
    assert len(mine) == len(theirs)
    for m, t in zip(mine, theirs):
        _assert_same(m, t)
    with pytest.raises(AssertionError, match="force-plate module"):  # other parameters: not known
        c3d_plates.platforms(ezc3d.c3d(str(fixture("c3dorg/sample01_Eb015vr.c3d"))))


def test_parameters_key_follows_every_plate_parameter():
    c = ezc3d.c3d(str(fixture("btk/Gait.c3d")))
    shape = (28, 100)
    base = c3d_plates._parameters_key(c, shape)
    assert c3d_plates._parameters_key(c, shape) == base
    assert c3d_plates._parameters_key(c, (29, 100)) != base and c3d_plates._parameters_key(c, (28, 0)) != base
    for group, name in (("FORCE_PLATFORM", "ORIGIN"), ("FORCE_PLATFORM", "CAL_MATRIX"), ("FORCE_PLATFORM", "ZERO"),
                        ("POINT", "UNITS"), ("ANALOG", "UNITS")):
        entry = c["parameters"][group][name]
        kept = entry["value"]
        entry["value"] = ["m"] if isinstance(kept, list) and kept and isinstance(kept[0], str) else np.asarray(kept) + 1
        assert c3d_plates._parameters_key(c, shape) != base, (group, name)
        entry["value"] = kept
    assert c3d_plates._parameters_key(c, shape) == base
