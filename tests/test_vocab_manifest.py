"""Muscle vocabulary, label aliases and site manifests."""
from __future__ import annotations

import pytest

from schemas.vocab import MUSCLES, resolve_label
from warehouse.ingest.manifest import ManifestError, parse_manifest


@pytest.mark.parametrize("label, muscle, side", [
    ("Voltage.RTA", "tibialis_anterior", "R"), ("Voltage.LGAS", "gastrocnemius_medialis", "L"),
    ("Voltage.RVL", "vastus_lateralis", "R"), ("Voltage.LERS", "erector_spinae", "L"),
    ("RTIB", "tibialis_anterior", "R"), ("LJUM", "gastrocnemius_medialis", "L"), ("RVAS", "vastus_lateralis", "R"),
    ("LISC", "hamstrings", "L"), ("R Tib Ant", "tibialis_anterior", "R"), ("L Glut Med", "gluteus_medius", "L"),
    ("RTTI", "tibialis_anterior", "R"), ("Left Soleus", "soleus", "L"), ("R Semitend", "semitendinosus", "R"),
])
def test_real_labels_resolve(label, muscle, side):
    r = resolve_label(label)
    assert (r.muscle, r.side) == (muscle, side)
    assert r.muscle in MUSCLES


@pytest.mark.parametrize("label", ["Voltage.15", "Mini sensor 1: EMG 1", "R GM", "EMG7"])
def test_unmapped_or_ambiguous_labels_are_not_guessed(label):
    assert not resolve_label(label).resolved


def test_ambiguous_gm_suggests_both_readings():
    assert set(resolve_label("R GM").suggestions) == {"gastrocnemius_medialis", "gluteus_medius"}


def test_manifest_override_wins():
    r = resolve_label("Mini sensor 1: EMG 1", {"Mini sensor 1: EMG 1": {"muscle": "soleus", "side": "L"}})
    assert (r.muscle, r.side, r.confidence) == ("soleus", "L", 1.0)


GOOD = """
site: lyon
mains_hz: 50
subjects: [{id: LYO01, sex: F, mass_kg: 60}]
sessions:
  - {id: S1, subject: LYO01, condition: fresh, task: walk, files: ["LYO01/fresh/*.c3d"]}
channels:
  "EMG 1": {muscle: soleus, side: R}
"""


def test_manifest_claims_files_by_glob():
    m = parse_manifest(GOOD, site="lyon")
    assert m.session_for("LYO01/fresh/a.c3d").id == "S1"
    assert m.session_for("LYO01/fatigued/a.c3d") is None
    assert m.mains_hz == 50.0


@pytest.mark.parametrize("extra, code", [
    ("  - {id: X, name: John Smith}\n", "manifest_identifiers"),
    ("  - {id: X, email: j.smith@example.org}\n", "manifest_identifiers"),
    ("  - {id: X, birth_date: 1990-01-01}\n", "manifest_identifiers"),
])
def test_manifest_with_direct_identifiers_is_rejected(extra, code):
    text = GOOD.replace("subjects: [{id: LYO01, sex: F, mass_kg: 60}]", "subjects:\n  - {id: LYO01}\n" + extra)
    with pytest.raises(ManifestError) as e:
        parse_manifest(text, site="lyon")
    assert e.value.reason_code == code


def test_manifest_errors_are_specific():
    with pytest.raises(ManifestError, match="not valid YAML"):
        parse_manifest("site: [", site="lyon")
    with pytest.raises(ManifestError, match="not in 'subjects'"):
        parse_manifest(GOOD.replace("subject: LYO01", "subject: NOPE"), site="lyon")
    with pytest.raises(ManifestError, match="channels"):
        parse_manifest(GOOD.replace("muscle: soleus", "muscle: bicep"), site="lyon")
    with pytest.raises(ManifestError, match="inbox 'oslo'"):
        parse_manifest(GOOD, site="oslo")


@pytest.mark.parametrize("label, muscle, side", [
    ("L PE", "peroneus_longus", "L"), ("R GA", "gastrocnemius_medialis", "R"),  # Plug-in Gait codes
    ("L Add Mag", "adductor_magnus", "L"), ("R AM", "adductor_magnus", "R"),
    ("R Rec Fem", "rectus_femoris", "R"), ("Voltage.L Gas Lat", "gastrocnemius_lateralis", "L"),
    ("Left Per Lon", "peroneus_longus", "L"), ("R Glu Max", "gluteus_maximus", "R"),  # abbreviation rule
    ("RT TIB.ANT.", "tibialis_anterior", "R"), ("LT MED. GASTRO", "gastrocnemius_medialis", "L"),  # Noraxon
    ("RT VLO", "vastus_lateralis", "R"), ("L Ext Dig Lon", "extensor_digitorum_longus", "L"),
    ("Sinistra Retto Femorale", "rectus_femoris", "L"), ("Dx Soleo", "soleus", "R"),
])
def test_marker_set_codes_and_abbreviations_resolve(label, muscle, side):
    r = resolve_label(label)
    assert (r.muscle, r.side) == (muscle, side)


def test_ambiguous_abbreviations_are_suggestions_never_guesses(monkeypatch):
    from schemas import vocab

    assert vocab.abbreviation_matches(["re", "fe"]) == []  # under three letters: no rule
    monkeypatch.setitem(vocab._FULL_NAMES, ("gastrocnemius", "lateral", "head"), "gastrocnemius_lateralis")
    monkeypatch.setitem(vocab._FULL_NAMES, ("gastrocnemius", "latissimus"), "biceps_femoris")  # a made-up clash
    assert vocab.abbreviation_matches(["gas", "lat"]) == ["gastrocnemius_lateralis", "biceps_femoris"]
    r = resolve_label("R Gast Lat")
    assert r.muscle is None and not r.resolved and r.suggestions[:2] == ("gastrocnemius_lateralis", "biceps_femoris")


def test_resolved_labels_are_kept_per_label_and_overrides_still_win():
    """A label is resolved from the vocabulary once (its fuzzy suggestions are the costly part), the kept result
    equal to resolving it afresh; a manifest's override of the label still wins afterwards."""
    from schemas import vocab

    labels = ["Voltage.RTA", "L Tib Ant", "Force.Fx1", "EMG7", "R GM", "biceps femoris caput longu L", "xyzzy"]
    for label in labels:
        vocab.resolve_label(label)
    before = vocab._resolve.cache_info()
    for label in labels:
        assert vocab.resolve_label(label) == vocab._resolve.__wrapped__(label)
    assert vocab._resolve.cache_info().hits - before.hits == len(labels)
    assert vocab.resolve_label("xyzzy").suggestions == vocab._resolve.__wrapped__("xyzzy").suggestions
    over = vocab.resolve_label("EMG7", {"EMG7": {"muscle": "soleus", "side": "L"}})
    assert (over.muscle, over.side, over.confidence) == ("soleus", "L", 1.0)
