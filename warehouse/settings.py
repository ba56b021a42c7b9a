"""Settings: the one module that reads the environment.

Every ``MYOMAP_*`` variable is read here and nowhere else. Other modules receive a
:class:`Settings` object (or call :func:`get_settings`).

Variables
---------
MYOMAP_LAKE
    Lake root: a local folder (default ``./lake``) or ``s3://bucket/prefix``.
MYOMAP_CATALOG
    DuckLake catalog. Default: the SQLite file ``<lake>/catalog.sqlite``. A
    ``postgresql://`` DSN selects a PostgreSQL catalog (multi-writer deployments);
    a path ending in ``.sqlite``/``.db`` selects another SQLite file.
MYOMAP_LOCK_RETRIES, MYOMAP_LOCK_WAIT_S
    How often and how long a writer retries when the SQLite catalog says
    "database is locked" (defaults 60 and 0.25 s, growing).
MYOMAP_STORAGE_RETRIES, MYOMAP_STORAGE_WAIT_S, MYOMAP_S3_TIMEOUT_S
    Retries (default 4) and first back-off (0.5 s, doubling, with jitter) after a
    transient storage error (S3 throttling, 5xx, timeouts), and the S3 connect/read
    timeout (30 s). Disk full (ENOSPC/EDQUOT) is never retried: the night stops.
MYOMAP_MAX_MANIFEST_BYTES, MYOMAP_MAX_YAML_ALIASES, MYOMAP_MAX_YAML_DEPTH
    Largest manifest.yaml read (256 KiB), YAML aliases (16) and nesting depth (16) accepted.
MYOMAP_MAX_FILE_BYTES
    Largest inbox file per format, e.g. ``c3d=512M,edf=1G,*=256M`` (merged over
    :data:`DEFAULT_MAX_FILE_BYTES`). A larger file is refused before it is hashed or copied.
MYOMAP_MAX_CHANNELS, MYOMAP_MAX_SAMPLES, MYOMAP_READER_MEMORY_BYTES
    Most channels (1024) and decoded values (channels x samples, 32 M) a file's header may
    declare, and the address-space cap of the isolated C3D reader process (1.5 GiB).
MYOMAP_DERIVE_WORKERS
    Trials whose envelopes and analysis are computed at the same time in the night process,
    each started as soon as it is ingested (threads; default 3: on 2 cores, 3 threads beside the
    ingest keep both busy while others wait for the catalog; 1 = one after the other, after the
    ingest). Commits stay one at a time.
MYOMAP_FAULTS
    Tests only: named fault points (``step[@n]=action``), see :mod:`warehouse.faults`.
MYOMAP_MEMBER, MYOMAP_MEMBERS_FILE, MYOMAP_MEMBER_KEY
    Who is reading: see :func:`resolve_identity` and ``docs/serving.md`` (members and roles).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import posixpath
import pwd
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

# Prefect must never phone home; set before Prefect is imported anywhere.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


MiB = 1 << 20
#: Largest inbox file accepted per format (by file extension; ``*`` for any other).
#: Sized to hold the ``samples`` limit (32 M values: 128 MB as C3D floats, 96 MB as BDF) with room to spare.
DEFAULT_MAX_FILE_BYTES = {"c3d": 256 * MiB, "edf": 256 * MiB, "bdf": 256 * MiB, "mat": 512 * MiB,
                          "csv": 256 * MiB, "txt": 256 * MiB, "trc": 256 * MiB, "mot": 256 * MiB,
                          "anc": 256 * MiB, "tsv": 64 * MiB, "json": 16 * MiB, "*": 256 * MiB}


@dataclass(frozen=True)
class Limits:
    """Input limits (one declaration): what a site's inbox may cost the night.

    A file over its format's size is refused before it is hashed or copied to raw/;
    a header declaring more channels or values than allowed is refused before its
    samples are decoded (``warehouse/ingest/limits.py``). README "Limits" gives the
    memory these bound.
    """

    manifest_bytes: int = 256 * 1024
    yaml_aliases: int = 16
    yaml_depth: int = 16
    file_bytes: dict = field(default_factory=lambda: dict(DEFAULT_MAX_FILE_BYTES))
    channels: int = 1024  # markers count as channels (C3D points)
    samples: int = 32_000_000  # decoded values per file (all channels x samples; 256 MB as float64)
    reader_memory_bytes: int = 1536 * MiB

    def max_file_bytes(self, name: str) -> int:
        """Size limit of a file called ``name`` (by its extension)."""
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        return self.file_bytes.get(ext, self.file_bytes["*"])


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one lake."""

    lake: str
    catalog: str = field(repr=False)  # may hold a password: shown as catalog_display
    lock_retries: int = 60
    lock_wait_s: float = 0.25
    s3: dict = field(default_factory=dict, repr=False)  # endpoint_url, key, secret, region (AWS_* variables)
    limits: Limits = field(default_factory=Limits)
    storage_retries: int = 4
    storage_wait_s: float = 0.5
    s3_timeout_s: float = 30.0
    derive_workers: int = 3  # MYOMAP_DERIVE_WORKERS
    faults: str = ""  # tests only: MYOMAP_FAULTS (warehouse/faults.py)
    member: str | None = None  # MYOMAP_MEMBER
    members_file: str | None = None  # MYOMAP_MEMBERS_FILE
    member_key: str | None = field(default=None, repr=False)  # MYOMAP_MEMBER_KEY (never shown)

    @property
    def is_s3(self) -> bool:
        return self.lake.startswith("s3://")

    def zone(self, name: str) -> str:
        """Path of a lake zone (``inbox``, ``raw``, ``quarantine``, ``tables``, ``releases``)."""
        return f"{self.lake.rstrip('/')}/{name}"

    @property
    def catalog_kind(self) -> str:
        if self.catalog.startswith(("postgresql://", "postgres://")):
            return "postgres"
        return "sqlite"

    @property
    def catalog_display(self) -> str:
        """The catalog for messages: a PostgreSQL DSN without its password."""
        if self.catalog_kind != "postgres":
            return self.catalog
        u = urlparse(self.catalog)
        if u.password is None:
            return self.catalog
        host = u.hostname or ""
        netloc = f"{u.username}:***@{host}" + (f":{u.port}" if u.port else "")
        return u._replace(netloc=netloc).geturl()


def _default_catalog(lake: str) -> str:
    if lake.startswith("s3://"):
        # A SQLite catalog must be a local file; keep it beside the working dir.
        return str(Path("./catalog.sqlite").resolve())
    return str(Path(lake) / "catalog.sqlite")


def parse_size(text: str) -> int:
    """``'512M'`` -> bytes (suffixes K, M, G, T; powers of 1024).

    Raises
    ------
    ValueError
        When ``text`` is not a size.
    """
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def _limits(env) -> Limits:
    """Limits from ``MYOMAP_MAX_*`` variables.

    Raises
    ------
    ValueError
        A variable that is not a number or size, naming it.
    """
    d = Limits()
    sizes = dict(d.file_bytes)
    for part in filter(None, (env.get("MYOMAP_MAX_FILE_BYTES") or "").split(",")):
        ext, _, size = part.partition("=")
        try:
            sizes[ext.strip().lower().lstrip(".") or "*"] = parse_size(size)
        except ValueError:
            raise ValueError(f"MYOMAP_MAX_FILE_BYTES: {part!r} is not EXT=SIZE (e.g. c3d=512M,*=256M)") from None
    try:
        return _limits_from(env, d, sizes)
    except ValueError as exc:
        raise ValueError(f"a MYOMAP_MAX_* or MYOMAP_READER_MEMORY_BYTES variable is not a number or size: {exc}") \
            from None


def _limits_from(env, d: Limits, sizes: dict) -> Limits:
    return Limits(
        manifest_bytes=parse_size(env.get("MYOMAP_MAX_MANIFEST_BYTES") or str(d.manifest_bytes)),
        yaml_aliases=int(env.get("MYOMAP_MAX_YAML_ALIASES") or d.yaml_aliases),
        yaml_depth=int(env.get("MYOMAP_MAX_YAML_DEPTH") or d.yaml_depth),
        file_bytes=sizes,
        channels=int(env.get("MYOMAP_MAX_CHANNELS") or d.channels),
        samples=int(float(env.get("MYOMAP_MAX_SAMPLES") or d.samples)),
        reader_memory_bytes=parse_size(env.get("MYOMAP_READER_MEMORY_BYTES") or str(d.reader_memory_bytes)),
    )


def get_settings(lake: str | None = None, catalog: str | None = None) -> Settings:
    """Build settings from explicit arguments, else ``MYOMAP_*`` variables, else defaults."""
    lake = lake or os.environ.get("MYOMAP_LAKE") or "./lake"
    if lake.startswith("s3://"):
        lake = normalise_location(lake).rstrip("/")
    else:
        lake = str(Path(lake).expanduser().resolve())
    catalog = catalog or os.environ.get("MYOMAP_CATALOG") or _default_catalog(lake)
    return Settings(
        lake=lake,
        catalog=catalog,
        lock_retries=int(os.environ.get("MYOMAP_LOCK_RETRIES", "60")),
        lock_wait_s=float(os.environ.get("MYOMAP_LOCK_WAIT_S", "0.25")),
        limits=_limits(os.environ),
        storage_retries=int(os.environ.get("MYOMAP_STORAGE_RETRIES", "4")),
        storage_wait_s=float(os.environ.get("MYOMAP_STORAGE_WAIT_S", "0.5")),
        s3_timeout_s=float(os.environ.get("MYOMAP_S3_TIMEOUT_S", "30")),
        derive_workers=max(1, int(os.environ.get("MYOMAP_DERIVE_WORKERS") or 3)),
        faults=os.environ.get("MYOMAP_FAULTS", ""),
        s3={k: v for k, v in {
            "endpoint_url": os.environ.get("AWS_ENDPOINT_URL"),
            "key": os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        }.items() if v},
        member=os.environ.get("MYOMAP_MEMBER") or None,
        members_file=os.environ.get("MYOMAP_MEMBERS_FILE") or None,
        member_key=os.environ.get("MYOMAP_MEMBER_KEY") or None,
    )


def secret_values(settings: Settings) -> list[str]:
    """Every secret the configuration holds (catalog password, S3 keys, member key), longest first."""
    from urllib.parse import parse_qsl
    out = []
    if settings.catalog_kind == "postgres":
        u = urlparse(settings.catalog)
        out += [u.password or "", unquote(u.password or ""), dict(parse_qsl(u.query)).get("password", "")]
    out += [settings.s3.get("key") or "", settings.s3.get("secret") or "", settings.member_key or ""]
    return sorted({v for v in out if len(v) >= 4}, key=len, reverse=True)


def redact(text: str, settings: Settings) -> str:
    """``text`` with every configured secret replaced by ``***`` (last line of defence for messages)."""
    for v in secret_values(settings):
        text = text.replace(v, "***")
    return text


# --------------------------------------------------------------------------- locations
class LocationError(ValueError):
    """A path or URL that cannot be normalised safely."""


def normalise_location(path: str) -> str:
    """A local path or ``s3://bucket/key`` with ``.``/``..``, doubled slashes and %-escapes resolved.

    Every "is this inside that folder" check compares normalised locations: the S3
    HTTP client resolves ``..`` itself, so ``s3://b/lake/tables/../../x`` must be
    judged as ``s3://b/x``, not by its prefix. Local paths are resolved (symlinks too).

    Raises
    ------
    LocationError
        For a ``..`` that climbs out of the bucket, a bucket name change by ``..``,
        or another URL scheme.
    """
    text = str(path)
    if "://" not in text:
        return str(Path(text).expanduser().resolve())
    scheme, rest = text.split("://", 1)
    if scheme.lower() not in ("s3", "s3a", "gs", "gcs", "r2", "http", "https", "hf", "az", "abfss"):
        raise LocationError(f"unsupported location scheme {scheme!r}")
    rest = unquote(rest).replace("\\", "/")
    bucket, _, key = rest.partition("/")
    if not bucket or bucket in (".", "..") or "%" in rest:
        raise LocationError(f"location {text!r} has no valid bucket")
    parts: list[str] = []
    for part in key.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise LocationError(f"location {text!r} climbs out of bucket {bucket!r}")
            parts.pop()
            continue
        parts.append(part)
    trailing = "/" if key.endswith("/") and parts else ""
    return f"{scheme.lower()}://{bucket}/" + posixpath.join(*parts) + trailing if parts else f"{scheme.lower()}://{bucket}/"


def is_within(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or inside it, after :func:`normalise_location` of both.

    Raises
    ------
    LocationError
        When either cannot be normalised (callers refuse what they cannot place).
    """
    p, r = normalise_location(path).rstrip("/"), normalise_location(root).rstrip("/")
    return p == r or p.startswith(r + "/")


# --------------------------------------------------------------------------- identity
#: What each role may do (docs/serving.md, "Members and roles").
ROLES = ("operator", "member", "public")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = {"site", "role", "os_users", "key_sha256"}


class IdentityError(RuntimeError):
    """No identity, or not the one asked for. Messages start with ``Refused``."""


@dataclass(frozen=True)
class Identity:
    """Who is reading: a member ``name`` with a ``role`` and, for members, a ``site``.

    ``source`` says how the identity was established (for messages and manifests).
    """

    name: str
    role: str
    site: str | None = None
    source: str = ""

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "site": self.site}


@dataclass(frozen=True)
class MemberEntry:
    """One entry of the members file."""

    name: str
    role: str
    site: str | None
    os_users: tuple[str, ...]
    key_sha256: str | None


def _os_user() -> str:
    """The effective OS user from the password database (never ``$USER``, which anyone can set)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def load_members_file(path: str) -> list[MemberEntry]:
    """Read and check a members file (format: docs/serving.md).

    Raises
    ------
    IdentityError
        When the file is missing, writable by group or others, or not valid.
    """
    import yaml

    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError:
        raise IdentityError(f"Refused: the members file {p} (MYOMAP_MEMBERS_FILE) cannot be read.") from None
    if not stat.S_ISREG(st.st_mode) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise IdentityError(f"Refused: the members file {p} must be a regular file that only its owner can "
                            "write (chmod go-w); anyone who can edit it can make themselves an operator.")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise IdentityError(f"Refused: the members file {p} is not valid YAML ({type(exc).__name__}).") from None
    members = doc.get("members") if isinstance(doc, dict) else None
    if not isinstance(members, dict) or set(doc) - {"members"}:
        raise IdentityError(f"Refused: the members file {p} must hold one mapping `members:` of name -> entry.")
    out = []
    for name, e in members.items():
        where = f"members file {p}, member {str(name)[:64]!r}"
        if not isinstance(name, str) or not _NAME.fullmatch(name) or not isinstance(e, dict):
            raise IdentityError(f"Refused: {where}: a name (letters, digits, _.:@-) with a mapping of fields.")
        if set(e) - _ENTRY_KEYS:
            raise IdentityError(f"Refused: {where}: unknown fields {sorted(set(e) - _ENTRY_KEYS)}.")
        role = e.get("role", "member")
        site = e.get("site")
        users = e.get("os_users") or []
        key = e.get("key_sha256")
        if role not in ROLES:
            raise IdentityError(f"Refused: {where}: role must be one of {', '.join(ROLES)}.")
        if (role == "member") != (site is not None) or (site is not None and not _NAME.fullmatch(str(site))):
            raise IdentityError(f"Refused: {where}: a member names its site; operators and the public do not.")
        if not isinstance(users, list) or not all(isinstance(u, str) and u for u in users):
            raise IdentityError(f"Refused: {where}: os_users must be a list of user names.")
        if key is not None and not (isinstance(key, str) and _SHA256.fullmatch(key)):
            raise IdentityError(f"Refused: {where}: key_sha256 must be 64 lower-case hex digits (sha256 of the key).")
        if "*" in users and role != "public":
            raise IdentityError(f"Refused: {where}: only a public entry may match every OS user ('*').")
        out.append(MemberEntry(name, role, str(site) if site is not None else None, tuple(users), key))
    return out


def _from_spec(spec: str, source: str) -> Identity:
    """``operator``, ``public`` or a site id (a member of that site)."""
    spec = spec.strip()
    if spec in ("operator", "public"):
        return Identity(spec, spec, None, source)
    if not _NAME.fullmatch(spec):
        raise IdentityError(f"Refused: MYOMAP_MEMBER must be `operator`, `public` or a site id, not {spec[:64]!r}.")
    return Identity(spec, "member", spec, source)


def _from_members_file(settings: Settings) -> Identity:
    entries = load_members_file(settings.members_file)
    if settings.member_key:
        digest = hashlib.sha256(settings.member_key.encode()).hexdigest()
        found = [e for e in entries if e.key_sha256 and hmac.compare_digest(e.key_sha256, digest)]
        how = "member key"
    else:
        user = _os_user()
        found = ([e for e in entries if user in e.os_users]
                 or [e for e in entries if "*" in e.os_users])
        how = f"OS user {user}"
    if len(found) != 1:
        raise IdentityError(f"Refused: the members file names {'no' if not found else 'more than one'} member for "
                            f"this {how.split(' ')[0] if settings.member_key else how}.")
    e = found[0]
    me = Identity(e.name, e.role, e.site, f"members file ({how})")
    if settings.member and settings.member not in (e.name, e.site):
        if not me.is_operator:
            raise IdentityError(f"Refused: MYOMAP_MEMBER={settings.member[:64]} is not you: the members file "
                                f"makes you {e.name} ({e.role}{', site ' + e.site if e.site else ''}).")
        return _from_spec(settings.member, f"operator {e.name} acting as {settings.member[:64]}")
    return me


def resolve_identity(settings: Settings) -> Identity:
    """Who is reading this lake, from configuration only.

    1. ``MYOMAP_MEMBERS_FILE`` set: the entry whose ``key_sha256`` is the sha256 of
       ``MYOMAP_MEMBER_KEY``, else the entry listing the effective OS user (else a
       public entry with ``os_users: ['*']``). ``MYOMAP_MEMBER`` may then only repeat
       that entry's name or site, unless the entry is an operator (who may act as
       anyone, e.g. to see what a site's members see).
    2. Else ``MYOMAP_MEMBER``: ``operator``, ``public`` or a site id (a member of it).
       Whoever sets the environment chooses: set it in the service that runs
       queries for members, where they cannot change it.
    3. Else the owner of the lake's SQLite catalog file (the person who ran
       ``myomap demo`` or ``ingest``) is its operator: they can read every byte of it
       anyway.
    4. Else no identity: :class:`IdentityError` (fail closed).

    Raises
    ------
    IdentityError
        With a message starting ``Refused``.
    """
    if settings.members_file:
        return _from_members_file(settings)
    if settings.member:
        return _from_spec(settings.member, "MYOMAP_MEMBER")
    if settings.catalog_kind == "sqlite":
        try:
            owner = os.stat(settings.catalog).st_uid
        except OSError:
            owner = None
        if owner is not None and owner == os.geteuid():
            return Identity(_os_user(), "operator", None, "owner of the lake's catalog file")
    raise IdentityError("Refused: no member identity. Set MYOMAP_MEMBER (operator, public or your site) in the "
                        "process that serves you, or MYOMAP_MEMBERS_FILE; see docs/serving.md (members and roles).")
