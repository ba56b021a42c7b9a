"""Controlled vocabularies: muscles, sides, conditions, events, statuses, and label aliases.

Pure data and pure functions; no I/O. Site manifests may override the aliases
(``channels:`` section), which always wins over this built-in table.
"""
from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field

SIDES = ("L", "R")
#: Sides an EMG channel may carry: ``U`` = the label (and the manifest) names no side; stored, never paired
#: left against right (asymmetry skips it with a reason).
CHANNEL_SIDES = ("L", "R", "U")
#: Sides a gait event may carry: ``U`` = unknown (a plate contact no evidence could assign; kept, never dropped).
EVENT_SIDES = ("L", "R", "U")
CONDITIONS = ("fresh", "fatigued", "baseline", "post_injury", "rehab", "unknown")
TASKS = ("walk", "run", "single_leg_landing", "cutting", "hopping", "static", "mvc", "jump", "squat",
         "stair_ascent", "stair_descent", "sit_to_stand", "balance")
EVENTS = ("foot_strike", "foot_off")
EVENT_SOURCES = ("annotated", "force_plate", "kinematic")
FILE_STATUSES = ("ingested", "duplicate", "superseded", "quarantined", "held")
#: EMG unit strings -> factor to mV. Anything else is not assumed (the channel is flagged).
EMG_UNIT_TO_MV = {"v": 1000.0, "volt": 1000.0, "volts": 1000.0, "mv": 1.0, "millivolt": 1.0,
                  "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "microvolt": 1e-3}


def emg_unit_factor(unit: str) -> float | None:
    """Factor converting ``unit`` to mV, or None when the unit is unknown."""
    return EMG_UNIT_TO_MV.get(unit.strip().lower())

#: Lower-limb (and trunk) muscles, snake_case ids.
MUSCLES = (
    "tibialis_anterior", "soleus", "gastrocnemius_medialis", "gastrocnemius_lateralis",
    "peroneus_longus", "extensor_digitorum_longus", "vastus_lateralis", "vastus_medialis",
    "rectus_femoris", "biceps_femoris", "semitendinosus", "semimembranosus",
    "hamstrings", "medial_hamstrings", "gluteus_medius", "gluteus_maximus",
    "tensor_fasciae_latae", "adductor_longus", "adductor_magnus", "sartorius",
    "gracilis", "iliopsoas", "erector_spinae", "quadriceps",
)

#: Normalised label text (lower case, words separated by one space) -> muscle id.
MUSCLE_ALIASES: dict[str, str] = {
    # tibialis anterior
    "ta": "tibialis_anterior", "tib": "tibialis_anterior", "tib ant": "tibialis_anterior",
    "ant tib": "tibialis_anterior", "tibialis anterior": "tibialis_anterior",
    "tibialis": "tibialis_anterior", "tibant": "tibialis_anterior", "tibia": "tibialis_anterior",
    "tti": "tibialis_anterior", "tibial anterieur": "tibialis_anterior",
    # triceps surae
    "sol": "soleus", "so": "soleus", "soleus": "soleus", "soleaire": "soleus",
    "gas": "gastrocnemius_medialis", "gast": "gastrocnemius_medialis",
    "gastroc": "gastrocnemius_medialis", "gastrocnemius": "gastrocnemius_medialis",
    "mg": "gastrocnemius_medialis", "gm": None,  # ambiguous: gastrocnemius / gluteus
    "med gas": "gastrocnemius_medialis", "gastrocnemius medialis": "gastrocnemius_medialis",
    "medial gastrocnemius": "gastrocnemius_medialis", "gasmed": "gastrocnemius_medialis",
    "jum": "gastrocnemius_medialis", "jumeau": "gastrocnemius_medialis",
    "jumeau interne": "gastrocnemius_medialis",
    "lg": "gastrocnemius_lateralis", "gl": "gastrocnemius_lateralis",
    "lat gas": "gastrocnemius_lateralis", "gastrocnemius lateralis": "gastrocnemius_lateralis",
    "lateral gastrocnemius": "gastrocnemius_lateralis", "jumeau externe": "gastrocnemius_lateralis",
    "pl": "peroneus_longus", "per": "peroneus_longus", "perl": "peroneus_longus",
    "peroneus longus": "peroneus_longus", "peroneus": "peroneus_longus",
    "fibularis longus": "peroneus_longus", "long fibulaire": "peroneus_longus",
    # quadriceps
    "vl": "vastus_lateralis", "vas": "vastus_lateralis", "vas lat": "vastus_lateralis",
    "vast lat": "vastus_lateralis", "vast med": "vastus_medialis", "glut max": "gluteus_maximus",
    "vastus lateralis": "vastus_lateralis", "vaste externe": "vastus_lateralis",
    "vm": "vastus_medialis", "vas med": "vastus_medialis", "vmo": "vastus_medialis",
    "vastus medialis": "vastus_medialis", "vaste interne": "vastus_medialis",
    "rf": "rectus_femoris", "rec": "rectus_femoris", "rect fem": "rectus_femoris",
    "rectus femoris": "rectus_femoris", "rectus": "rectus_femoris", "droit anterieur": "rectus_femoris",
    "quad": "quadriceps", "quads": "quadriceps", "quadriceps": "quadriceps",
    # hamstrings
    "bf": "biceps_femoris", "bic": "biceps_femoris", "bic fem": "biceps_femoris",
    "biceps femoris": "biceps_femoris", "bflh": "biceps_femoris", "biceps": "biceps_femoris",
    "biceps femoris long head": "biceps_femoris", "biceps femoral": "biceps_femoris",
    "st": "semitendinosus", "semitend": "semitendinosus", "semitendinosus": "semitendinosus",
    "semi tendinosus": "semitendinosus", "demi tendineux": "semitendinosus",
    "sm": "semimembranosus", "semimembranosus": "semimembranosus",
    "ham": "hamstrings", "hams": "hamstrings", "hamstring": "hamstrings", "biceps femoris caput longus": "biceps_femoris",
    "hamstrings": "hamstrings", "isc": "hamstrings", "ischio": "hamstrings",
    "ischio jambiers": "hamstrings", "med hams": "medial_hamstrings",
    "medial hamstrings": "medial_hamstrings", "mh": "medial_hamstrings",
    # hip
    "gmed": "gluteus_medius", "glut med": "gluteus_medius", "gluteus medius": "gluteus_medius",
    "gmd": "gluteus_medius", "me": "gluteus_medius", "moyen fessier": "gluteus_medius",
    "gmax": "gluteus_maximus", "gluteus maximus": "gluteus_maximus",
    "ma": "gluteus_maximus", "grand fessier": "gluteus_maximus",
    "tfl": "tensor_fasciae_latae", "fl": "tensor_fasciae_latae",
    "tensor fasciae latae": "tensor_fasciae_latae",
    "al": "adductor_longus", "add long": "adductor_longus", "adductor longus": "adductor_longus",
    "add": "adductor_longus", "adductor": "adductor_longus",
    "sart": "sartorius", "sartorius": "sartorius", "grac": "gracilis", "gracilis": "gracilis",
    "ilio": "iliopsoas", "iliopsoas": "iliopsoas",
    # trunk
    "ers": "erector_spinae", "es": "erector_spinae", "erector spinae": "erector_spinae",
    "erector": "erector_spinae", "paraspinal": "erector_spinae",
    # Plug-in Gait / Nexus two-letter codes and common system defaults (Noraxon, Delsys, Cometa, BTS)
    "pe": "peroneus_longus", "pel": "peroneus_longus", "fib": "peroneus_longus", "fibularis": "peroneus_longus",
    "per long": "peroneus_longus", "perlong": "peroneus_longus", "peroneo lungo": "peroneus_longus",
    "ga": "gastrocnemius_medialis", "gastro": "gastrocnemius_medialis", "med gastro": "gastrocnemius_medialis",
    "gas med": "gastrocnemius_medialis", "gastroc med": "gastrocnemius_medialis",
    "lat gastro": "gastrocnemius_lateralis", "gas lat": "gastrocnemius_lateralis",
    "gastroc lat": "gastrocnemius_lateralis", "ha": "hamstrings", "vlo": "vastus_lateralis",
    "am": "adductor_magnus", "add mag": "adductor_magnus", "addmag": "adductor_magnus",
    "adductor magnus": "adductor_magnus", "grand adducteur": "adductor_magnus", "grande adduttore": "adductor_magnus",
    "edl": "extensor_digitorum_longus", "extensor digitorum longus": "extensor_digitorum_longus",
    "glmax": "gluteus_maximus", "glmed": "gluteus_medius", "semimem": "semimembranosus",
    # Italian
    "tibiale anteriore": "tibialis_anterior", "soleo": "soleus", "gastrocnemio mediale": "gastrocnemius_medialis",
    "gastrocnemio laterale": "gastrocnemius_lateralis", "retto femorale": "rectus_femoris",
    "vasto laterale": "vastus_lateralis", "vasto mediale": "vastus_medialis", "bicipite femorale": "biceps_femoris",
    "semitendinoso": "semitendinosus", "gluteo medio": "gluteus_medius", "gluteo massimo": "gluteus_maximus",
}
#: Shortest word prefix the abbreviation rule accepts ("Rec Fem", "Gas Med", "Add Mag").
ABBREVIATION_MIN_LETTERS = 3
#: Task words in file and folder names -> task (``manifest init``); never read as a subject.
TASK_WORDS = {
    "walk": "walk", "walking": "walk", "gait": "walk", "run": "run", "running": "run", "jog": "run",
    "jogging": "run", "hop": "hopping", "hopping": "hopping", "jump": "jump", "jumping": "jump", "cmj": "jump",
    "dj": "jump", "squat": "squat", "squats": "squat", "sts": "sit_to_stand", "static": "static",
    "standing": "static", "stand": "static", "mvc": "mvc", "landing": "single_leg_landing", "sll": "single_leg_landing",
    "cut": "cutting", "cutting": "cutting", "balance": "balance", "stairs": None, "stair": None,
}

_SIDE_WORDS = {
    "r": "R", "right": "R", "rt": "R", "d": "R", "droit": "R", "droite": "R",
    "l": "L", "left": "L", "lt": "L", "g": "L", "gauche": "L",
    "sinistra": "L", "sinistro": "L", "sx": "L", "destra": "R", "destro": "R", "dx": "R",
}
_PREFIXES = re.compile(r"^(voltage|emg|analog emg|analog|sensor|emg\d+|channel)[\.:_ ]+", re.I)
_NONWORD = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class LabelResolution:
    """Result of mapping a channel label onto the vocabulary."""

    label: str
    muscle: str | None
    side: str | None
    confidence: float  # 1.0 exact alias / manifest, <1 guessed, 0 unmapped
    suggestions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def resolved(self) -> bool:
        return self.muscle is not None and self.side is not None


def _normalise(text: str) -> str:
    text = text.strip()
    while True:
        new = _PREFIXES.sub("", text)
        if new == text:
            break
        text = new
    text = text.lower()
    for a, b in (("é", "e"), ("è", "e"), ("ê", "e"), ("à", "a"), ("ï", "i")):
        text = text.replace(a, b)
    return " ".join(t for t in _NONWORD.split(text) if t)


def _split_side(words: list[str]) -> tuple[str | None, list[str]]:
    if not words:
        return None, words
    if words[0] in _SIDE_WORDS and len(words) > 1:
        return _SIDE_WORDS[words[0]], words[1:]
    if words[-1] in _SIDE_WORDS and len(words) > 1:
        return _SIDE_WORDS[words[-1]], words[:-1]
    # glued prefix: "rta", "lgas", "rttI" -> side + abbreviation
    if len(words) == 1 and len(words[0]) >= 3 and words[0][0] in "rl":
        rest = words[0][1:]
        if rest in MUSCLE_ALIASES or rest.rstrip("0123456789") in MUSCLE_ALIASES:
            return words[0][0].upper(), [rest]
    return None, words


def _full_names() -> dict[tuple[str, ...], str]:
    """Multi-word names (vocabulary ids and multi-word aliases) as word tuples -> muscle."""
    names = {tuple(m.split("_")): m for m in MUSCLES if "_" in m}
    names.update({tuple(k.split()): v for k, v in MUSCLE_ALIASES.items() if v and " " in k and len(k) > 8})
    return names


def abbreviation_matches(words: list[str]) -> list[str]:
    """Muscles whose multi-word name the words abbreviate, word by word (each word the first
    :data:`ABBREVIATION_MIN_LETTERS` or more letters of the name's word: "rec fem" -> rectus_femoris,
    "add mag" -> adductor_magnus). Several muscles = ambiguous (callers suggest, never guess)."""
    words = [w for w in words if w]
    if len(words) < 2 or any(len(w) < ABBREVIATION_MIN_LETTERS or w.isdigit() for w in words):
        return []
    found: list[str] = []
    for name, muscle in _FULL_NAMES.items():
        if len(words) <= len(name) and all(n.startswith(w) for w, n in zip(words, name)) and muscle not in found:
            found.append(muscle)
    return found


def resolve_label(label: str, overrides: dict | None = None) -> LabelResolution:
    """Map a vendor channel label onto ``(muscle, side)``.

    Parameters
    ----------
    label : str
        Channel label as written by the acquisition software (``"Voltage.RTA"``,
        ``"L Tib Ant"``, ``"Ant.Tib"``...).
    overrides : dict, optional
        Site manifest ``channels`` mapping ``label -> {muscle, side}``; wins over aliases.

    Returns
    -------
    LabelResolution
        ``muscle``/``side`` are None when the label is unmapped or ambiguous; then
        ``suggestions`` holds the closest vocabulary entries. Nothing is guessed.
    """
    if overrides and label in overrides:
        o = overrides[label] or {}
        return LabelResolution(label, o.get("muscle"), o.get("side"), 1.0)
    return _resolve(label)


@functools.lru_cache(maxsize=4096)
def _resolve(label: str) -> LabelResolution:
    """:func:`resolve_label` from the vocabulary alone, once per label (a trial's channels repeat from file to
    file, and the suggestions of an unmapped label cost ~10 ms of fuzzy matching)."""
    words = _normalise(label).split()
    side, rest = _split_side(words)
    key = " ".join(rest)
    muscle = MUSCLE_ALIASES.get(key)
    if muscle is None and rest:
        # numbered variants such as "ta1", "gas 2"
        stripped = " ".join(w.rstrip("0123456789") for w in rest).strip()
        muscle = MUSCLE_ALIASES.get(stripped)
    if muscle is None and len(rest) >= 2:
        # extended or truncated full names: "biceps femoris caput longu" starts with "biceps femoris"
        for n in range(len(rest) - 1, 1, -1):
            muscle = MUSCLE_ALIASES.get(" ".join(rest[:n]))
            if muscle:
                break
    ambiguous: list[str] = []
    if muscle is None and len(rest) >= 2:
        found = abbreviation_matches(rest)
        if len(found) == 1:
            muscle = found[0]
        else:
            ambiguous = found
    if muscle is not None and side is not None:
        return LabelResolution(label, muscle, side, 1.0)
    pool = sorted(set(MUSCLE_ALIASES) | set(MUSCLES))
    close = difflib.get_close_matches(key.replace(" ", "_") if key else "", pool, n=3, cutoff=0.6)
    close += difflib.get_close_matches(key, pool, n=3, cutoff=0.6)
    sugg = []
    for c in close:
        m = MUSCLE_ALIASES.get(c, c if c in MUSCLES else None)
        if m and m not in sugg:
            sugg.append(m)
    if muscle is not None:  # muscle known, side missing: not resolved, but say what we know
        return LabelResolution(label, muscle, None, 0.5, (muscle,))
    if key == "gm":
        sugg = ["gastrocnemius_medialis", "gluteus_medius"]
    if ambiguous:  # an abbreviation that fits several names: suggestions, never a guess
        sugg = ambiguous + [m for m in sugg if m not in ambiguous]
    return LabelResolution(label, None, side, 0.0, tuple(sugg[:3]))

_FULL_NAMES = _full_names()

#: Antagonist pairs for co-contraction (agonist, antagonist), vocabulary ids.
ANTAGONIST_PAIRS = (
    ("tibialis_anterior", "gastrocnemius_medialis"), ("tibialis_anterior", "soleus"),
    ("tibialis_anterior", "gastrocnemius_lateralis"), ("vastus_lateralis", "biceps_femoris"),
    ("vastus_medialis", "semitendinosus"), ("rectus_femoris", "biceps_femoris"),
)
#: Marker roles used for side assignment, kinematic (Zeni) events and the vertical-axis check, as
#: normalised label keys (lower case, side removed, see :func:`marker_key`), in order of preference.
#: Plug-in Gait / Helen Hayes (``LHEE``, ``LTOE``, ``SACR``, ``LPSI``, ``L.Heel``, ``V.Sacral``),
#: CAST / IOR and Qualisys (``L_FCC`` calcaneus, ``L_FM2`` / ``L_FM1`` / ``L_FM5`` metatarsal heads,
#: ``L_IPS`` / ``L_IAS`` iliac spines, ``LCA``), BTS (``r heel``, ``r met``, ``r 5meta``, ``sacrum``),
#: Motion Analysis (``R.Heel``, ``R.Toe``, ``R.Met``) and common free-form names (``RHeel``,
#: ``LeftHeel``, ``Right_TalonSup``, ``Right_Meta``).
MARKER_ROLES: dict[str, tuple[str, ...]] = {
    "heel": ("hee", "heel", "heelpost", "heel post", "fcc", "cal", "calc", "calcaneus", "ca", "talon", "talonsup",
             "talon sup", "hl"),
    "toe": ("toe", "toe2", "mt2", "met2", "fm2", "mth2", "meta", "met", "toe tip", "mt", "fm1", "mt1", "met1",
            "mth1", "mt5", "fm5", "met5", "mth5", "5meta", "meta5", "5met"),
    "sacrum": ("sacr", "sacrum", "sacral", "v sacral", "vsacral", "sac", "s2"),
    "psis": ("psi", "psis", "ips", "pis"),
    "asis": ("asi", "asis", "ias", "ais"),
}
#: Kept for callers that want the Plug-in Gait names directly.
HEEL_MARKERS = {"L": ("LHEE", "LHEEL", "L_HEEL", "LCAL"), "R": ("RHEE", "RHEEL", "R_HEEL", "RCAL")}
TOE_MARKERS = {"L": ("LTOE", "LMT2", "L_TOE", "LMET"), "R": ("RTOE", "RMT2", "R_TOE", "RMET")}
PELVIS_MARKERS = ("SACR", "SACRUM", "LPSI", "RPSI", "PELVIS")
_GLUED_SIDES = (("left", "L"), ("right", "R"), ("l", "L"), ("r", "R"))


def marker_key(label: str) -> tuple[str | None, str]:
    """``(side, key)`` of a marker label: side ``'L'``/``'R'``/None, key the rest normalised.

    A Vicon subject prefix (``S03:RHEE``) is dropped; the side is a separate word (``r heel``,
    ``L_FCC``, ``HEEL_L``, ``Right_TalonSup``) or glued in front (``RHEE``, ``LeftHeel``) when the
    rest is a known role key.
    """
    text = str(label).split(":")[-1].strip().lower()
    words = [w for w in _NONWORD.split(text) if w]
    if not words:
        return None, ""
    if len(words) > 1 and words[0] in _SIDE_WORDS and _SIDE_WORDS[words[0]] in SIDES and words[0] not in "dg":
        return _SIDE_WORDS[words[0]], " ".join(words[1:])
    if len(words) > 1 and words[-1] in ("l", "r", "left", "right"):
        return _SIDE_WORDS[words[-1]], " ".join(words[:-1])
    known = {k for keys in MARKER_ROLES.values() for k in keys}
    if len(words) == 1 and words[0][-1] in "lr" and words[0][:-1] in known:  # ASISl, PSISr
        return words[0][-1].upper(), words[0][:-1]
    for prefix, side in _GLUED_SIDES:
        rest = " ".join([words[0][len(prefix):]] + words[1:]).strip()
        if words[0].startswith(prefix) and rest in known:
            return side, rest
    return None, " ".join(words)


def find_markers(labels, /) -> dict[tuple[str | None, str], int]:
    """Index of the preferred marker per ``(side, role)`` among ``labels`` (roles of :data:`MARKER_ROLES`).

    Sacrum markers carry side None; heel, toe, PSIS and ASIS markers carry ``'L'``/``'R'``. Blank and
    duplicate labels are skipped after the first.
    """
    rank: dict[tuple[str | None, str], tuple[int, int]] = {}
    for i, lab in enumerate(labels):
        side, key = marker_key(lab)
        for role, keys in MARKER_ROLES.items():
            if key in keys and (side is not None or role == "sacrum"):
                pref = (keys.index(key), i)
                slot = (side if role != "sacrum" else None, role)
                if slot not in rank or pref < rank[slot]:
                    rank[slot] = pref
    return {slot: i for slot, (_, i) in rank.items()}


#: Gait-event names (normalised words) -> event; abbreviations may carry the side glued in front
#: (``LHS``, ``RTO``, ``L_FS``, ``RFC``) or behind (``HSL``).
EVENT_PHRASES = {
    "foot_strike": ("foot strike", "heel strike", "foot contact", "initial contact", "heel contact",
                    "touch down", "touchdown", "strike"),
    "foot_off": ("foot off", "toe off", "terminal contact", "lift off", "liftoff", "toeoff", "off"),
}
EVENT_ABBREVIATIONS = {"hs": "foot_strike", "fs": "foot_strike", "ic": "foot_strike", "fc": "foot_strike",
                       "hc": "foot_strike", "td": "foot_strike", "to": "foot_off", "fo": "foot_off",
                       "tc": "foot_off", "lo": "foot_off"}


def parse_gait_event(label: str, context: str | None = None) -> tuple[str, str] | None:
    """``(side, event)`` of an annotated gait event, side ``'L'``/``'R'`` or ``'U'`` (unknown); None
    when the label is not a foot strike / foot off.

    The side comes from the context when it names one (Vicon ``EVENT:CONTEXTS`` Left/Right), else from
    the label (``Left Foot Strike``, ``RHS``, ``LTO``, ``L_FS``, ``foot_off R``, ``HSL``); a context of
    ``General`` or none and a label without a side give ``'U'``.
    """
    words = [w for w in re.split(r"[^a-z]+", str(label).lower()) if w]
    if not words:
        return None
    side = _SIDE_WORDS.get(str(context or "").strip().lower())
    side = side if side in SIDES else None
    label_side = None
    rest = []
    for w in words:
        if w in ("l", "left", "lt", "r", "right", "rt"):
            label_side = _SIDE_WORDS[w]
        else:
            rest.append(w)
    text = " ".join(rest)
    event = next((ev for ev, phrases in EVENT_PHRASES.items() if text in phrases), None)
    if event is None:  # a multi-word phrase inside a longer annotation ("foot strike (auto)")
        padded = f" {text} "
        event = next((ev for ev, phrases in EVENT_PHRASES.items()
                      if any(f" {p} " in padded for p in phrases if " " in p)), None)
    if event is None and len(rest) == 1:
        w = rest[0]
        if w in EVENT_ABBREVIATIONS:
            event = EVENT_ABBREVIATIONS[w]
        elif len(w) == 3 and w[0] in "lr" and w[1:] in EVENT_ABBREVIATIONS:
            event, label_side = EVENT_ABBREVIATIONS[w[1:]], w[0].upper()
        elif len(w) == 3 and w[-1] in "lr" and w[:2] in EVENT_ABBREVIATIONS:
            event, label_side = EVENT_ABBREVIATIONS[w[:2]], w[-1].upper()
    if event is None:
        return None
    return (side or label_side or "U"), event
