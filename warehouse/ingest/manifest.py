"""Site manifests: ``<lake>/inbox/<site>/manifest.yaml`` (subjects, sessions, channel map)."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

import yaml

from schemas import vocab
from transforms import frames
from transforms.qc import AMPLITUDE_BASES

#: Keys that would carry direct identifiers; a manifest containing them is rejected.
FORBIDDEN_KEYS = {"name", "first_name", "last_name", "surname", "full_name", "birth_date", "birthdate",
                  "date_of_birth", "dob", "email", "e_mail", "phone", "telephone", "address", "nhs_number",
                  "ssn", "mrn"}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"\+?\d[\d \-().]{8,}\d")


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
        elif _PHONE.fullmatch(node.strip()):
            found.append(f"a phone number at {where}")
    return found


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


def parse_manifest(text: str, *, site: str) -> Manifest:
    """Parse and check a manifest.

    Raises
    ------
    ManifestError
        ``manifest_yaml`` (not YAML), ``manifest_identifiers`` (direct identifiers found),
        ``manifest_schema`` (missing or inconsistent fields).
    """
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ManifestError("manifest_yaml", f"manifest.yaml of site '{site}' is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError("manifest_schema", f"manifest.yaml of site '{site}' must be a mapping.")
    ids = _scan_identifiers(doc)
    if ids:
        raise ManifestError("manifest_identifiers", f"manifest.yaml of site '{site}' contains direct identifiers "
                            f"({'; '.join(ids[:5])}); use pseudonyms only and remove them.")
    if doc.get("site") not in (None, site):
        raise ManifestError("manifest_schema", f"manifest says site '{doc.get('site')}' but sits in inbox '{site}'.")
    subjects = doc.get("subjects") or []
    subject_ids = {str(s.get("id")) for s in subjects if isinstance(s, dict)}
    sessions = []
    for i, s in enumerate(doc.get("sessions") or []):
        missing = [k for k in ("id", "subject", "files") if not s.get(k)]
        if missing:
            raise ManifestError("manifest_schema", f"session #{i + 1} of site '{site}' lacks {', '.join(missing)}.")
        if str(s["subject"]) not in subject_ids:
            raise ManifestError("manifest_schema", f"session '{s['id']}' names subject '{s['subject']}' "
                                "which is not in 'subjects'.")
        files = s["files"] if isinstance(s["files"], list) else [s["files"]]
        gain, basis, axis = _emg_keys(s, f"session '{s['id']}'", site)
        sessions.append(Session(str(s["id"]), str(s["subject"]), str(s["date"]) if s.get("date") else None,
                                s.get("condition"), s.get("task"), s.get("terrain"), [str(f) for f in files],
                                vertical_axis=axis, gain=gain, amplitude_basis=basis))
    channels = doc.get("channels") or {}
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
    return Manifest(site=site, mains_hz=float(mains) if mains else None, timezone=doc.get("timezone"),
                    subjects=subjects, sessions=sessions, channels=channels,
                    embargo_until=str(doc["embargo_until"]) if doc.get("embargo_until") else None,
                    consent=doc.get("consent"), vertical_axis=site_axis, gain=site_gain, amplitude_basis=site_basis)
