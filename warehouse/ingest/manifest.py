"""Site manifests: ``<lake>/inbox/<site>/manifest.yaml`` (subjects, sessions, channel map)."""
from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field

import yaml

from schemas import manifest_schema
from transforms import frames
from warehouse.settings import Limits

#: Keys that would carry direct identifiers; a manifest containing them is rejected.
FORBIDDEN_KEYS = {"name", "first_name", "last_name", "surname", "full_name", "birth_date", "birthdate",
                  "date_of_birth", "dob", "email", "e_mail", "phone", "telephone", "address", "nhs_number",
                  "ssn", "mrn"}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"\+?\d[\d \-().]{8,}\d")
_ISO_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")  # dates stay text when loaded: not phone numbers


class ManifestError(Exception):
    """A manifest that cannot be used; ``problems`` lists every finding (schema errors) when known."""

    def __init__(self, reason_code: str, message: str, *, problems: list | None = None, document=None):
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.problems = list(problems or [])
        self.document = document  # the parsed YAML, when it parsed (``manifest check`` still checks its globs)


@dataclass
class Session:
    id: str
    subject: str
    date: str | None
    condition: str | None
    task: str | None
    terrain: str | None
    files: list[str]
    vertical_axis: str | None = None  # overrides the site's (and the detected) vertical axis of the files
    gain: float | None = None  # EMG amplifier gain (electrode -> stored value) for this session's files
    amplitude_basis: str | None = None  # electrode_mv / amplifier_output, when the site states it
    side: str | None = None  # side of channels whose label names none (else the site's, else U)
    channels: dict = field(default_factory=dict)  # overrides the site's channel map for this session's files


@dataclass
class Manifest:
    site: str
    mains_hz: float | None
    timezone: str | None
    subjects: list[dict]
    sessions: list[Session]
    channels: dict = field(default_factory=dict)
    embargo_until: str | None = None
    consent: list | None = None
    vertical_axis: str | None = None  # e.g. "+Y" for a lab whose vertical is Y (default: detected per file)
    gain: float | None = None
    amplitude_basis: str | None = None
    side: str | None = None
    warnings: list = field(default_factory=list)  # manifest_schema.Problem of severity warning (TODO left)
    document: dict = field(default_factory=dict, repr=False)  # the parsed YAML it was built from

    def channels_for(self, session: Session | None) -> dict:
        """The channel map for a session's files: the site's ``channels:``, overridden label by label by the
        session's. Values are ``{muscle, side, gain, amplitude_basis}`` or ``{"ignore": reason}``."""
        return {**self.channels, **(session.channels if session is not None else {})}

    def default_side(self, session: Session | None) -> str:
        """Side given to a channel whose label names a muscle but no side: session, site, else ``U``."""
        return (session.side if session is not None else None) or self.side or "U"

    def vertical_axis_for(self, session: Session) -> str | None:
        """The manifest's vertical-axis override for a session's files (session, else site), or None."""
        return session.vertical_axis or self.vertical_axis

    def emg_context(self, session: Session) -> dict:
        """Gain and amplitude basis per channel label, for harmonisation: ``{"gain", "amplitude_basis",
        "channels": {label: {"gain", "amplitude_basis"}}}`` (channel wins over session over site)."""
        return {"gain": session.gain if session.gain is not None else self.gain,
                "amplitude_basis": session.amplitude_basis or self.amplitude_basis,
                "channels": {lab: {k: m.get(k) for k in ("gain", "amplitude_basis")}
                             for lab, m in self.channels_for(session).items() if "ignore" not in m}}

    def session_for(self, rel_path: str) -> Session | None:
        """The session whose ``files`` globs match ``rel_path`` (first match wins)."""
        for s in self.sessions:
            if any(fnmatch.fnmatchcase(rel_path, g) for g in s.files):
                return s
        return None


def _scan_identifiers(node, where="") -> list[str]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if str(k).lower() in FORBIDDEN_KEYS:
                found.append(f"key '{k}' at {where or 'top level'}")
            found += _scan_identifiers(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _scan_identifiers(v, f"{where}[{i}]")
    elif isinstance(node, str):
        if _EMAIL.search(node):
            found.append(f"an e-mail address at {where}")
        elif _PHONE.fullmatch(node.strip()) and not _ISO_DATE.fullmatch(node.strip()):
            found.append(f"a phone number at {where}")
    return found


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with two more refusals: too many aliases, too deep a nesting.

    An alias re-uses a node: a few of them nested ("billion laughs") expand a 400-byte file
    into billions of nodes, and deep nesting exhausts the interpreter's stack. Dates stay
    strings (checked by :func:`_date`, so that ``2026-13-45`` is an error with its path,
    not an exception from the YAML constructor).
    """

    max_aliases = Limits.yaml_aliases
    max_depth = Limits.yaml_depth

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self.max_aliases:
                mark = self.peek_event().start_mark
                raise ManifestError("manifest_yaml_aliases", f"manifest.yaml uses more than {self.max_aliases} "
                                    f"YAML aliases (*name, line {mark.line + 1}): refused (a YAML bomb expands "
                                    "aliases into billions of values). Write the values out.")
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise ManifestError("manifest_yaml_depth", f"manifest.yaml nests deeper than {self.max_depth} "
                                    f"levels (line {mark.line + 1}): refused. A manifest is a few levels deep.")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_LimitedLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_yaml(text: str, *, limits: Limits | None = None):
    """Parse YAML text safely (no tags beyond plain data, bounded aliases and depth).

    Raises
    ------
    ManifestError
        ``manifest_yaml`` (not YAML), ``manifest_yaml_aliases``, ``manifest_yaml_depth``.
    """
    limits = limits or Limits()
    if len(text.encode("utf-8", "surrogatepass")) > limits.manifest_bytes:
        raise ManifestError("manifest_too_large", f"manifest.yaml is larger than {limits.manifest_bytes:,} bytes "
                            "(MYOMAP_MAX_MANIFEST_BYTES): refused unread. A manifest lists subjects, sessions and "
                            "globs; it needs a few kilobytes.")
    loader = type("Loader", (_LimitedLoader,), {"max_aliases": limits.yaml_aliases,
                                                "max_depth": limits.yaml_depth})(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ManifestError("manifest_yaml", f"manifest.yaml is not valid YAML: {exc}") from exc
    except RecursionError:
        raise ManifestError("manifest_yaml_depth", "manifest.yaml nests too deeply: refused.") from None
    finally:
        loader.dispose()


def parse_manifest(text: str, *, site: str, limits: Limits | None = None) -> Manifest:
    """Parse and check a manifest.

    Raises
    ------
    ManifestError
        ``manifest_yaml`` (not YAML), ``manifest_too_large``, ``manifest_yaml_aliases``/
        ``manifest_yaml_depth`` (a YAML bomb or absurd nesting; limits from ``Settings.limits``), ``manifest_identifiers`` (direct identifiers
        found), ``manifest_schema`` (missing, mistyped or inconsistent fields, with where).
    """
    doc = load_yaml(text, limits=limits) or {}
    try:
        return _parse_doc(doc, site)
    except ManifestError:
        raise
    except Exception as exc:  # a shape this parser did not foresee is the manifest's error, not the night's
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}' has an unexpected shape "
                            f"({type(exc).__name__}: {str(exc)[:200]}); compare it with the README example.") from None


def _parse_doc(doc, site: str) -> Manifest:
    if doc is not None and not isinstance(doc, dict):
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}' must be a mapping.")
    doc = doc or {}
    ids = _scan_identifiers(doc)
    if ids:
        raise ManifestError("manifest_identifiers", f"manifest.yaml of site '{site}' contains direct identifiers "
                            f"({'; '.join(ids[:5])}); use pseudonyms only and remove them.")
    problems = manifest_schema.check(doc, site=site)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}': " + "; ".join(map(str, errors))
                            + f" ({len(errors)} problem(s), each must be fixed; `myomap manifest check {site}` "
                            "lists them with the files they claim)", problems=problems, document=doc)
    return _build(doc, site, [p for p in problems if p.severity != "error"])


def _channel_map(node) -> dict:
    """A ``channels:`` node with ``ignore`` entries normalised to ``{"ignore": reason}``."""
    out = {}
    for label, m in (node or {}).items():
        if m == "ignore" or (isinstance(m, str) and m.startswith("ignore")):
            reason = m.split(":", 1)[1].strip() if ":" in m else "not_emg"
            out[str(label)] = {"ignore": reason}
        elif isinstance(m, dict) and "ignore" in m:
            out[str(label)] = {"ignore": m["ignore"] if isinstance(m["ignore"], str) else "not_emg"}
        else:
            out[str(label)] = dict(m)
    return out


def _num(v) -> float | None:
    return None if v is None else float(v)


def _build(doc: dict, site: str, warnings: list) -> Manifest:
    """The :class:`Manifest` of a document :func:`manifest_schema.check` found no error in."""
    sessions = []
    for s in doc.get("sessions") or []:
        files = s["files"] if isinstance(s["files"], list) else [s["files"]]
        sessions.append(Session(str(s["id"]), str(s["subject"]), _iso(s.get("date")), s.get("condition"),
                                s.get("task"), s.get("terrain"), [str(f) for f in files],
                                vertical_axis=_axis(s.get("vertical_axis")), gain=_num(s.get("gain")),
                                amplitude_basis=s.get("amplitude_basis"), side=s.get("side"),
                                channels=_channel_map(s.get("channels"))))
    subjects = [{**s, "id": str(s["id"])} for s in doc.get("subjects") or []]
    consent = doc.get("consent")
    return Manifest(site=site, mains_hz=_num(doc.get("mains_hz")), timezone=doc.get("timezone"),
                    subjects=subjects, sessions=sessions, channels=_channel_map(doc.get("channels")),
                    embargo_until=_iso(doc.get("embargo_until")),
                    consent=[consent] if isinstance(consent, str) else consent,
                    vertical_axis=_axis(doc.get("vertical_axis")), gain=_num(doc.get("gain")),
                    amplitude_basis=doc.get("amplitude_basis"), side=doc.get("side"), warnings=warnings,
                    document=doc)


def _iso(value) -> str | None:
    return None if value in (None, "") else dt.date.fromisoformat(str(value)).isoformat()


def _axis(value) -> str | None:
    if value is None:
        return None
    return frames.axis_name(*frames.parse_axis(str(value)))
