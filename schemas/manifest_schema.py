"""The site manifest's schema: one declaration, checked strictly and exported as JSON Schema.

``MANIFEST`` declares every key a ``manifest.yaml`` may hold (site, subject, session and channel
level). :func:`check` walks a parsed YAML document against it and returns **every** problem at
once, each with its path (``subjects[0].mass_kg``) and, for an unknown key, the closest known key
("did you mean 'terrain'?"). :func:`json_schema` renders the same declaration as JSON Schema
(``docs/manifest.schema.json``, for editors). Pure data and pure functions; no I/O.

Channel maps (``channels:``, at site level and per session) map a label to ``{muscle, side}``
(``muscle: TODO`` is allowed: the channel is skipped and recorded, never stored), to per-channel
``gain`` / ``amplitude_basis``, or to ``ignore`` (``ignore``, ``ignore: footswitch`` or
``{ignore: sync}``): the label is not EMG, which records the decision once.
"""
from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass, field

from schemas import vocab

#: Reasons a channel may be ignored for (``channels: {"FSW 1": {ignore: footswitch}}``).
IGNORE_REASONS = ("not_emg", "footswitch", "sync", "unused", "trigger", "accelerometer", "force", "other")
#: Placeholder ``manifest init`` writes for what a person must fill in.
TODO = "TODO"
#: Amplitude bases (same values as ``transforms.qc.AMPLITUDE_BASES``; a test keeps them equal).
AMPLITUDE_BASES = ("electrode_mv", "amplifier_output")
#: Sexes a subject may be given (as in the ``subjects`` contract).
SEXES = ("F", "M", "X")
_AXIS = re.compile(r"^\s*[+-]?\s*[XYZxyz]\s*$")
_COMMA_DECIMAL = re.compile(r"^\s*[-+]?\d+,\d+\s*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class Problem:
    """One finding: ``path`` (``sessions[2].subject``), ``message``, ``severity`` error|warning."""

    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path or '(top level)'}: {self.message}"


# ------------------------------------------------------------------------------------ declaration
@dataclass(frozen=True)
class Text:
    doc: str
    pattern: re.Pattern | None = None
    hint: str = ""

    def check(self, v, path, out):
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            out.append(Problem(path, f"{v!r} is not text{self.hint}"))
        elif self.pattern is not None and not self.pattern.match(str(v)):
            out.append(Problem(path, f"{str(v)!r} is not a valid value{self.hint}"))

    def json(self):
        d = {"type": ["string", "integer"], "description": self.doc}
        if self.pattern is not None:
            d = {"type": "string", "pattern": self.pattern.pattern, "description": self.doc}
        return d


@dataclass(frozen=True)
class Number:
    doc: str
    positive: bool = False
    choices: tuple = ()

    def check(self, v, path, out):
        if isinstance(v, bool):
            out.append(Problem(path, f"{v!r} must be a number (yes/no/true/false read as a boolean)"))
        elif not isinstance(v, (int, float)):
            hint = f" (write {str(v).replace(',', '.').strip()}: a point, not a comma)" \
                if isinstance(v, str) and _COMMA_DECIMAL.match(v) else ""
            out.append(Problem(path, f"{v!r} is not a number{hint}"))
        elif self.positive and not v > 0:
            out.append(Problem(path, f"{v!r} must be a positive number"))
        elif self.choices and v not in self.choices:
            out.append(Problem(path, f"{v!r} must be one of {', '.join(map(str, self.choices))}"))

    def json(self):
        d = {"type": "number", "description": self.doc}
        if self.positive:
            d["exclusiveMinimum"] = 0
        if self.choices:
            d["enum"] = list(self.choices)
        return d


@dataclass(frozen=True)
class Date:
    doc: str

    def check(self, v, path, out):
        try:
            dt.date.fromisoformat(str(v))
        except ValueError:
            out.append(Problem(path, f"{str(v)!r} is not a date (write YYYY-MM-DD, e.g. 2026-09-14)"))

    def json(self):
        return {"type": "string", "format": "date", "description": self.doc}


@dataclass(frozen=True)
class Choice:
    doc: str
    values: tuple
    todo: bool = False  # TODO is accepted (a warning): manifest init leaves it for a person

    def check(self, v, path, out):
        if self.todo and v == TODO:
            out.append(Problem(path, "TODO: not filled in yet (the channel is skipped and recorded until it is)",
                               "warning"))
        elif v not in self.values:
            close = difflib.get_close_matches(str(v), [str(x) for x in self.values], n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            shown = ", ".join(map(str, self.values)) if len(self.values) <= 12 else \
                f"one of the {len(self.values)} values of schemas/vocab.py"
            out.append(Problem(path, f"{v!r} is not one of {shown}{hint}"))

    def json(self):
        return {"enum": list(self.values) + ([TODO] if self.todo else []), "description": self.doc}


@dataclass(frozen=True)
class ListOf:
    doc: str
    item: object
    scalar_ok: bool = False  # a single value stands for a one-item list

    def check(self, v, path, out):
        if self.scalar_ok and not isinstance(v, list):
            v = [v]
        if not isinstance(v, list):
            out.append(Problem(path, f"must be a list, got {type(v).__name__} {str(v)[:60]!r}"))
            return
        for i, x in enumerate(v):
            self.item.check(x, f"{path}[{i}]", out)

    def json(self):
        d = {"type": "array", "items": self.item.json(), "description": self.doc}
        if self.scalar_ok:
            d = {"anyOf": [d, self.item.json()], "description": self.doc}
        return d


@dataclass(frozen=True)
class Obj:
    doc: str
    fields: dict
    required: tuple = ()
    extra: tuple = ()  # keys checked elsewhere (e.g. forbidden identifiers): not "unknown"

    def check(self, v, path, out):
        if not isinstance(v, dict):
            out.append(Problem(path, f"must be a mapping {{{', '.join(list(self.fields)[:4])}, ...}}, got "
                                     f"{type(v).__name__} {str(v)[:60]!r}"))
            return
        for k in self.required:
            if v.get(k) in (None, "", []):
                out.append(Problem(_join(path, k), "is required"))
        for k, x in v.items():
            spec = self.fields.get(str(k))
            if spec is None:
                if str(k) not in self.extra:
                    close = difflib.get_close_matches(str(k), list(self.fields), n=1, cutoff=0.6)
                    hint = f"; did you mean '{close[0]}'?" if close else \
                        f" (known keys: {', '.join(self.fields)})"
                    out.append(Problem(_join(path, k), f"unknown key '{k}'{hint}"))
            elif x is not None:
                spec.check(x, _join(path, k), out)

    def json(self):
        return {"type": "object", "description": self.doc, "additionalProperties": False,
                "required": list(self.required), "properties": {k: s.json() for k, s in self.fields.items()}}


@dataclass(frozen=True)
class Channels:
    """``{LABEL: {muscle, side, gain, amplitude_basis} | ignore | {ignore: reason}}``."""

    doc: str
    entry: Obj = field(default=None)

    def check(self, v, path, out):
        if not isinstance(v, dict):
            out.append(Problem(path, "must be a mapping {LABEL: {muscle, side} | ignore}, got a "
                                     f"{type(v).__name__}"))
            return
        for label, m in v.items():
            where = f"{path}[{str(label)!r}]"
            if m == "ignore" or (isinstance(m, dict) and "ignore" in m):
                reason = m.get("ignore") if isinstance(m, dict) else None
                if isinstance(m, dict) and set(m) - {"ignore"}:
                    out.append(Problem(where, "an ignored channel takes only {ignore: <reason>}"))
                if reason not in (None, True) and reason not in IGNORE_REASONS:
                    IGNORE.check(reason, f"{where}.ignore", out)
                continue
            if isinstance(m, str) and m.startswith("ignore"):
                IGNORE.check(m.split(":", 1)[-1].strip() or None, f"{where}.ignore", out)
                continue
            if not isinstance(m, dict) or not m:
                out.append(Problem(where, f"must be {{muscle: <vocabulary id>, side: L|R|U}}, {{gain: ...}} or "
                                          f"ignore; got {m!r}"))
                continue
            self.entry.check(m, where, out)
            if (m.get("muscle") is None) != (m.get("side") is None):
                out.append(Problem(where, "muscle and side go together (side U when the label names no side)"))

    def json(self):
        ignore = {"anyOf": [{"const": "ignore"}, {"type": "string", "pattern": "^ignore: ?(" +
                                                   "|".join(IGNORE_REASONS) + ")$"},
                            {"type": "object", "additionalProperties": False, "required": ["ignore"],
                             "properties": {"ignore": {"enum": list(IGNORE_REASONS)}}}]}
        return {"type": "object", "description": self.doc,
                "additionalProperties": {"anyOf": [self.entry.json(), ignore]}}


IGNORE = Choice("Why the channel is not EMG.", IGNORE_REASONS)
_GAIN = Number("EMG amplifier gain from the electrode to the stored value (samples are divided by it).",
               positive=True)
_BASIS = Choice("What the stored EMG values are when there is no gain: at the electrode or the amplifier output.",
                AMPLITUDE_BASES)
_AXIS_FIELD = Text("The files' vertical axis (+X, -X, +Y, -Y, +Z, -Z), overriding detection.", _AXIS,
                   " (one of +X, -X, +Y, -Y, +Z, -Z)")
CHANNEL = Obj("One channel label's mapping.", {
    "muscle": Choice("Muscle id (schemas.vocab.MUSCLES); TODO while unknown (the channel is skipped).",
                     vocab.MUSCLES, todo=True),
    "side": Choice("Body side: L, R, or U (the label names no side).", vocab.CHANNEL_SIDES, todo=True),
    "gain": _GAIN, "amplitude_basis": _BASIS})
CHANNELS = Channels("Channel label -> {muscle, side} (wins over the built-in aliases), per-channel gain, or "
                    "ignore (not EMG; reason one of " + ", ".join(IGNORE_REASONS) + ").", CHANNEL)
SUBJECT = Obj("A subject, by pseudonym only.", {
    "id": Text("Pseudonym (no names).", _ID, " (letters, digits, '_', '-', '.')"),
    "sex": Choice("F, M or X.", SEXES),
    "mass_kg": Number("Body mass in kg.", positive=True),
    "height_m": Number("Height in m.", positive=True),
}, required=("id",))
SESSION = Obj("A recording session: which files, whose, under which condition.", {
    "id": Text("Session id, unique in the consortium.", _ID, " (letters, digits, '_', '-', '.')"),
    "subject": Text("The subject's id (one of subjects[].id)."),
    "date": Date("Session date, YYYY-MM-DD."),
    "condition": Choice("Condition.", vocab.CONDITIONS),
    "task": Choice("Task.", vocab.TASKS),
    "terrain": Text("Terrain, e.g. treadmill / overground."),
    "files": ListOf("Glob patterns relative to the site folder (case-sensitive).", Text("A glob pattern."),
                    scalar_ok=True),
    "side": Choice("Side of every channel whose label names none (default U).", vocab.SIDES),
    "channels": CHANNELS,
    "vertical_axis": _AXIS_FIELD, "gain": _GAIN, "amplitude_basis": _BASIS,
}, required=("id", "subject", "files"))
MANIFEST = Obj("inbox/<site>/manifest.yaml: a site's subjects, sessions and channel map.", {
    "site": Text("The site id (the inbox folder's name)."),
    "mains_hz": Number("Mains frequency of the lab (50 or 60 Hz).", choices=(50, 60)),
    "timezone": Text("IANA time zone of the lab, e.g. Europe/Paris."),
    "consent": ListOf("Scopes the participants consented to.",
                      Choice("Consent scope.", ("pooled_analysis", "public_release", "public_subject_data")),
                      scalar_ok=True),
    "embargo_until": Date("Nothing of the site is shared before this date (YYYY-MM-DD)."),
    "subjects": ListOf("Subjects, pseudonyms only.", SUBJECT),
    "sessions": ListOf("Sessions.", SESSION),
    "side": Choice("Side of every channel whose label names none, for the whole site (default U).", vocab.SIDES),
    "channels": CHANNELS,
    "vertical_axis": _AXIS_FIELD, "gain": _GAIN, "amplitude_basis": _BASIS,
})


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


# ------------------------------------------------------------------------------------ checks
def check(doc, *, site: str) -> list[Problem]:
    """Every problem of a parsed manifest against :data:`MANIFEST` plus the cross-references
    (session subjects listed, ids unique, ``site:`` the inbox's name), in document order."""
    out: list[Problem] = []
    if doc is None:
        doc = {}
    MANIFEST.check(doc, "", out)
    if not isinstance(doc, dict):
        return out
    if doc.get("site") not in (None, site):
        out.append(Problem("site", f"the manifest says site '{doc.get('site')}' but sits in inbox '{site}'"))
    subjects = doc.get("subjects") if isinstance(doc.get("subjects"), list) else []
    ids = [str(s.get("id")) for s in subjects if isinstance(s, dict) and s.get("id") is not None]
    for i, s in enumerate(subjects):
        if isinstance(s, dict) and s.get("id") is not None and ids.count(str(s["id"])) > 1:
            out.append(Problem(f"subjects[{i}].id", f"subject '{s['id']}' is listed more than once"))
    sessions = doc.get("sessions") if isinstance(doc.get("sessions"), list) else []
    seen: set[str] = set()
    for i, s in enumerate(sessions):
        if not isinstance(s, dict):
            continue
        if s.get("subject") is not None and str(s["subject"]) not in ids:
            close = difflib.get_close_matches(str(s["subject"]), ids, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else " (add it under subjects:)"
            out.append(Problem(f"sessions[{i}].subject", f"subject '{s['subject']}' is not in 'subjects'{hint}"))
        if s.get("id") is not None:
            if str(s["id"]) in seen:
                out.append(Problem(f"sessions[{i}].id", f"session '{s['id']}' is listed more than once"))
            seen.add(str(s["id"]))
    return out


def json_schema() -> dict:
    """:data:`MANIFEST` as a JSON Schema (draft 2020-12) document."""
    body = MANIFEST.json()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://github.com/myomap/myomap/docs/manifest.schema.json",
            "title": "myomap site manifest", **body}


__all__ = ["MANIFEST", "Problem", "check", "json_schema", "IGNORE_REASONS", "TODO", "AMPLITUDE_BASES"]
