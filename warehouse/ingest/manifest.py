"""Site manifests: ``<lake>/inbox/<site>/manifest.yaml`` (subjects, sessions, channel map)."""
from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field

import yaml

from schemas import vocab
from warehouse.settings import Limits
from transforms import frames
from transforms.qc import AMPLITUDE_BASES

#: Keys that would carry direct identifiers; a manifest containing them is rejected.
FORBIDDEN_KEYS = {"name", "first_name", "last_name", "surname", "full_name", "birth_date", "birthdate",
                  "date_of_birth", "dob", "email", "e_mail", "phone", "telephone", "address", "nhs_number",
                  "ssn", "mrn"}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"\+?\d[\d \-().]{8,}\d")
_ISO_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")  # dates stay text when loaded: not phone numbers


class ManifestError(Exception):
    def __init__(self, reason_code: str, message: str):
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


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

    def vertical_axis_for(self, session: Session) -> str | None:
        """The manifest's vertical-axis override for a session's files (session, else site), or None."""
        return session.vertical_axis or self.vertical_axis

    def emg_context(self, session: Session) -> dict:
        """Gain and amplitude basis per channel label, for harmonisation: ``{"gain", "amplitude_basis",
        "channels": {label: {"gain", "amplitude_basis"}}}`` (channel wins over session over site)."""
        return {"gain": session.gain if session.gain is not None else self.gain,
                "amplitude_basis": session.amplitude_basis or self.amplitude_basis,
                "channels": {lab: {k: m.get(k) for k in ("gain", "amplitude_basis")}
                             for lab, m in self.channels.items() if isinstance(m, dict)}}

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


def _date(value, where: str, site: str) -> str | None:
    """An ISO date (``YYYY-MM-DD``) as text, or None when absent."""
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}': {where}: {str(value)!r} is not a "
                            "date (write YYYY-MM-DD, e.g. 2026-09-14).") from None


def _emg_keys(node: dict, where: str, site: str) -> tuple[float | None, str | None, str | None]:
    """(gain, amplitude_basis, vertical_axis) of a manifest node, checked."""
    gain, basis, axis = node.get("gain"), node.get("amplitude_basis"), node.get("vertical_axis")
    if gain is not None and (isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0):
        raise ManifestError("manifest_schema", f"{where} of site '{site}': gain must be a positive number "
                            f"(the amplifier gain, e.g. 1000); got {gain!r}.")
    if basis is not None and basis not in AMPLITUDE_BASES:
        raise ManifestError("manifest_schema", f"{where} of site '{site}': amplitude_basis must be one of "
                            f"{', '.join(AMPLITUDE_BASES)}; got {basis!r}.")
    if axis is not None:
        try:
            frames.parse_axis(str(axis))
        except ValueError:
            raise ManifestError("manifest_schema", f"{where} of site '{site}': vertical_axis must be +X, -X, +Y, "
                                f"-Y, +Z or -Z; got {axis!r}.") from None
    return (float(gain) if gain is not None else None), basis, (str(axis) if axis is not None else None)


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
    if not isinstance(doc, dict):
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}' must be a mapping.")
    ids = _scan_identifiers(doc)
    if ids:
        raise ManifestError("manifest_identifiers", f"manifest.yaml of site '{site}' contains direct identifiers "
                            f"({'; '.join(ids[:5])}); use pseudonyms only and remove them.")
    if doc.get("site") not in (None, site):
        raise ManifestError("manifest_schema", f"manifest says site '{doc.get('site')}' but sits in inbox '{site}'.")
    subjects = doc.get("subjects") or []
    if not isinstance(subjects, list) or not all(isinstance(s, dict) and s.get("id") is not None for s in subjects):
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}': subjects must be a list of "
                            "{id: ..., sex: ..., mass_kg: ...} mappings.")
    subject_ids = {str(s.get("id")) for s in subjects}
    for i, s in enumerate(subjects):
        for k in ("mass_kg", "height_m"):
            if s.get(k) is not None and (isinstance(s[k], bool) or not isinstance(s[k], (int, float))):
                raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}': subjects[{i}].{k}: "
                                    f"{s[k]!r} is not a number.")
    sessions = []
    raw_sessions = doc.get("sessions") or []
    if not isinstance(raw_sessions, list):
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}': sessions must be a list.")
    for i, s in enumerate(raw_sessions):
        if not isinstance(s, dict):
            raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}': sessions[{i}] must be a mapping "
                                f"{{id, subject, files, ...}}, got {type(s).__name__} {str(s)[:60]!r}.")
        missing = [k for k in ("id", "subject", "files") if not s.get(k)]
        if missing:
            raise ManifestError("manifest_schema", f"session #{i + 1} of site '{site}' lacks {', '.join(missing)}.")
        if str(s["subject"]) not in subject_ids:
            raise ManifestError("manifest_schema", f"session '{s['id']}' names subject '{s['subject']}' "
                                "which is not in 'subjects'.")
        files = s["files"] if isinstance(s["files"], list) else [s["files"]]
        gain, basis, axis = _emg_keys(s, f"session '{s['id']}'", site)
        sessions.append(Session(str(s["id"]), str(s["subject"]), _date(s.get("date"), f"sessions[{i}].date", site),
                                s.get("condition"), s.get("task"), s.get("terrain"), [str(f) for f in files],
                                vertical_axis=axis, gain=gain, amplitude_basis=basis))
    channels = doc.get("channels") or {}
    if not isinstance(channels, dict):
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}': channels must be a mapping "
                            "{LABEL: {muscle, side}}, got a " + type(channels).__name__ + ".")
    for label, m in channels.items():
        mapped = isinstance(m, dict) and (m.get("muscle") is not None or m.get("side") is not None)
        if not isinstance(m, dict) or (mapped and (m.get("muscle") not in vocab.MUSCLES
                                                   or m.get("side") not in vocab.SIDES)) or (
                not mapped and m.get("gain") is None and m.get("amplitude_basis") is None):
            raise ManifestError("manifest_schema", f"channels['{label}'] must be {{muscle: <one of the vocabulary>, "
                                f"side: L|R}} and/or {{gain: <amplifier gain>, amplitude_basis: "
                                f"electrode_mv|amplifier_output}}; got {m!r}.")
        _emg_keys(m, f"channels['{label}']", site)
    site_gain, site_basis, site_axis = _emg_keys(doc, "manifest", site)
    mains = doc.get("mains_hz")
    if mains is not None and (isinstance(mains, bool) or not isinstance(mains, (int, float))):
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}': mains_hz: {mains!r} is not a "
                            "number (50 or 60).")
    consent = doc.get("consent")
    if consent is not None and not isinstance(consent, (list, str)):
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}': consent must be a list of scopes.")
    return Manifest(site=site, mains_hz=float(mains) if mains else None, timezone=doc.get("timezone"),
                    subjects=subjects, sessions=sessions, channels=channels,
                    embargo_until=_date(doc.get("embargo_until"), "embargo_until", site),
                    consent=[consent] if isinstance(consent, str) else consent,
                    vertical_axis=site_axis, gain=site_gain, amplitude_basis=site_basis)
