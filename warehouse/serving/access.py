"""Members and what they see: the one member-scoped read session behind ``sql``, ``extract`` and ``report``.

:func:`open_member_session` is the entry point (``myomap sql`` and, later, a Python
API call it; extracts and reports use its unhardened half, :func:`scoped_connection`):

1. one pinned DuckLake snapshot, attached read-only (:func:`pinned_connection`);
2. the identity from configuration (:func:`warehouse.settings.resolve_identity`);
   a caller may ask to act as another member (``member=``, ``--requester-site``)
   only when the configured identity is an operator;
3. the sites this identity may see (:func:`sharing_decisions` with the members'
   scope ``pooled_analysis``): an operator sees every site; a member of site A
   sees A and every site B that has a ``sites`` row, no running embargo and
   ``pooled_analysis`` in its consent; the public reads releases only;
4. one TEMP view per lake table **with the same name**, filtered row by row to
   those sites (:func:`create_scoped_views`); members never get the operational
   tables (``runs``, ``derivations``, ``validations``) nor the columns that
   quote inbox or raw-zone paths (:data:`HIDDEN_COLUMNS`); pooled activation maps
   only when every site with data is visible; ``subject_profiles`` reference
   statistics recomputed over the visible subjects when a site is hidden (an
   embargoed site is in no reference statistic a member sees);
5. the documented ``v_*`` views on top (:mod:`warehouse.serving.views`), then
   :func:`warehouse.serving.views.harden`: the statement gate lets a query name
   these views only.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from schemas.contracts import TABLES
from warehouse import catalog
from warehouse.serving import views
from warehouse.settings import Identity, IdentityError, Settings, resolve_identity

L = catalog.LAKE
#: Consent scope a site grants for other sites' members to see its rows.
MEMBER_SCOPE = "pooled_analysis"
#: Tables only operators see, and why.
OPERATOR_ONLY = {
    "runs": "operational log of the nightly flow",
    "derivations": "operational bookkeeping of derived steps",
    "validations": "validation details quote raw values of every site",
}
#: Columns only operators see: inbox paths, raw-zone paths and messages that quote them.
HIDDEN_COLUMNS = frozenset({"path", "raw_path", "message"})
POOLED_SCOPES = ("condition", "cohort")


class UnknownSiteError(ValueError):
    """A site that the lake does not know."""


# --------------------------------------------------------------------------- sharing rules
@dataclass(frozen=True)
class SiteDecision:
    """Whether one site's data may go to the requester, and why not."""

    site_id: str
    included: bool
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"site_id": self.site_id, "included": self.included, "reasons": list(self.reasons)}


def sharing_decisions(con: duckdb.DuckDBPyConnection, *, requester_site: str | None,
                      required_scope: str, today: dt.date) -> list[SiteDecision]:
    """Apply the consortium rules to every site known to the lake (sites and sessions).

    Returns
    -------
    list of SiteDecision
        Sorted by site; the requester's own site is always included.
    """
    rows = con.execute(f"""
        SELECT k.site_id, s.site_id IS NOT NULL AS has_row, s.embargo_until, s.consent
        FROM (SELECT site_id FROM {L}.main.sites UNION SELECT site_id FROM {L}.main.sessions) k
        LEFT JOIN {L}.main.sites s USING (site_id) WHERE k.site_id IS NOT NULL ORDER BY k.site_id""").fetchall()
    out = []
    for site, has_row, embargo, consent in rows:
        if site == requester_site:
            out.append(SiteDecision(site, True, ("requester's own site",)))
            continue
        reasons = []
        if not has_row:
            reasons.append("no sites row: consent and embargo unknown")
        if embargo is not None and embargo > today:
            reasons.append(f"embargoed until {embargo.isoformat()}")
        scopes = consent_scopes(consent)
        if has_row and required_scope not in scopes:
            have = ", ".join(sorted(scopes)) or "none"
            reasons.append(f"consent lacks '{required_scope}' (has: {have})")
        out.append(SiteDecision(site, not reasons, tuple(reasons)))
    return out


def consent_scopes(consent: str | None) -> set[str]:
    """The scopes of a ``sites.consent`` value (comma-separated)."""
    return {s.strip() for s in (consent or "").split(",") if s.strip()}


# --------------------------------------------------------------------------- who
@dataclass(frozen=True)
class Access:
    """What one session may see: who asked, as which site, and the sites visible to it."""

    identity: Identity  # the configured identity
    role: str  # effective role: operator or member
    site: str | None  # the site whose member rules apply (None: an operator seeing everything)
    today: dt.date
    decisions: tuple[SiteDecision, ...]  # per site, for MEMBER_SCOPE from `site`'s point of view
    snapshot_id: int
    snapshot_time: str | None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def visible_sites(self) -> list[str]:
        return [d.site_id for d in self.decisions if self.is_operator or d.included]

    @property
    def all_visible(self) -> bool:
        return self.is_operator or all(d.included for d in self.decisions)

    def to_dict(self) -> dict:
        return {"identity": self.identity.to_dict(), "role": self.role, "site": self.site,
                "visible_sites": self.visible_sites}


def requested_identity(configured: Identity, member: Identity | str | None) -> Identity:
    """The identity a session runs as: the configured one, or whom an operator acts as.

    ``member``: ``None`` (the configured identity), ``"operator"``, ``"public"``, a
    site id (a member of that site) or an :class:`Identity`.

    Raises
    ------
    IdentityError
        When a non-operator asks to be someone else (message starts with ``Refused``).
    """
    if member is None:
        return configured
    if isinstance(member, Identity):
        wanted = member
    elif member in ("operator", "public"):
        wanted = Identity(member, member, None, "requested")
    else:
        wanted = Identity(str(member), "member", str(member), "requested")
    if configured.is_operator:
        return Identity(wanted.name, wanted.role, wanted.site, f"operator {configured.name} acting as {wanted.name}")
    if (wanted.role, wanted.site) == (configured.role, configured.site):
        return configured
    mine = f"{configured.role}" + (f" of site {configured.site}" if configured.site else "")
    raise IdentityError(f"Refused: you are {configured.name} ({mine}, from {configured.source}); only an operator "
                        f"may read as {wanted.role + ' of site ' + wanted.site if wanted.site else wanted.role}.")


def pinned_connection(settings: Settings,
                      as_of: str | None = None) -> tuple[duckdb.DuckDBPyConnection, int, str | None]:
    """A read-only connection at one snapshot: ``as_of`` or the current one. Returns (con, id, time).

    Without ``as_of`` the current snapshot id is read, then the catalog is attached
    again at that snapshot (time travel), so a writer committing meanwhile changes
    nothing that this connection reads. (A long read transaction would pin it
    too, but holds the SQLite catalog and makes the nightly writer's commit fail.)
    """
    con = catalog.connect(settings, read_only=True, as_of=as_of)
    try:
        snap = int(con.execute(f"FROM ducklake_current_snapshot('{L}')").fetchone()[0])
        if as_of is None:
            con.execute("USE memory")
            con.execute(f"DETACH {L}")
            catalog.with_retry(lambda: con.execute(catalog.attach_sql(settings, True, str(snap))), settings,
                               what="attach catalog")
            con.execute(f"USE {L}")
        con.execute("SET TimeZone = 'UTC'")
        t = con.execute(f"SELECT snapshot_time FROM ducklake_snapshots('{L}') WHERE snapshot_id = ?",
                        [snap]).fetchone()
        return con, snap, (t[0].astimezone(dt.timezone.utc).isoformat() if t and t[0] else None)
    except BaseException:
        con.close()
        raise


def scoped_connection(settings: Settings, member: Identity | str | None = None, as_of: str | None = None, *,
                      today: dt.date | None = None) -> tuple[duckdb.DuckDBPyConnection, Access]:
    """A pinned read-only connection whose lake tables are shadowed by views scoped to the identity.

    For trusted serving code (extracts, reports) that adds its own temp tables;
    user SQL goes through :func:`open_member_session`. The caller closes ``con``.

    Raises
    ------
    warehouse.catalog.CatalogError
        No catalog yet.
    IdentityError
        No identity, the public role, or a non-operator asking to be someone else.
    UnknownSiteError
        A member of a site the lake does not know.
    """
    con, snap, snap_time = pinned_connection(settings, as_of)
    try:
        who = requested_identity(resolve_identity(settings), member)
        if who.role == "public":
            raise IdentityError("Refused: the public role reads published releases only (`myomap releases`); "
                                "the lake itself is for consortium members.")
        sites = {r[0] for r in con.execute(f"SELECT site_id FROM {L}.main.sites UNION SELECT site_id FROM "
                                           f"{L}.main.sessions").fetchall() if r[0] is not None}
        if who.role == "member" and who.site not in sites:
            raise UnknownSiteError(f"unknown requester site {who.site!r}; sites: {', '.join(sorted(sites))}.")
        today = today or dt.datetime.now(dt.timezone.utc).date()
        decisions = sharing_decisions(con, requester_site=who.site, required_scope=MEMBER_SCOPE, today=today)
        access = Access(who, who.role, who.site, today, tuple(decisions), snap, snap_time)
        create_scoped_views(con, access)
        con.execute("USE memory")  # plain names now find the scoped views only (and SHOW TABLES lists them)
        return con, access
    except BaseException:
        con.close()
        raise


# --------------------------------------------------------------------------- scoped views
def _literal_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values) or "NULL"


def _lake_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_catalog = ? "
            "AND table_schema = 'main' ORDER BY table_name, ordinal_position", [L]).fetchall():
        out.setdefault(table, []).append((column, dtype))
    return out


def member_filter(table: str, columns: list[str], access: Access) -> str | None:
    """SQL condition (alias ``x``) keeping the rows of ``table`` a member may see; None: not for members."""
    v = _literal_list(access.visible_sites)
    sessions = f"(SELECT session_id FROM {L}.main.sessions WHERE site_id IN ({v}))"
    hidden_subjects = (f"(SELECT subject_id FROM {L}.main.sessions WHERE subject_id IS NOT NULL AND "
                       f"(site_id IS NULL OR site_id NOT IN ({v})) UNION SELECT subject_id FROM {L}.main.subjects "
                       f"WHERE subject_id IS NOT NULL AND (site_id IS NULL OR site_id NOT IN ({v})))")
    subjects = (f"(SELECT subject_id FROM {L}.main.subjects WHERE site_id IN ({v}) UNION "
                f"SELECT subject_id FROM {L}.main.sessions WHERE site_id IN ({v}))")

    def subject_ok(col: str) -> str:  # a pseudonym two sites share belongs to neither (fail closed)
        return f"({col} IN {subjects} AND {col} NOT IN {hidden_subjects})"

    if table in OPERATOR_ONLY:
        return None
    if table == "activation_map":
        pooled = "TRUE" if access.all_visible else "FALSE"
        scopes = ", ".join(f"'{s}'" for s in POOLED_SCOPES)
        return (f"((x.scope = 'session' AND x.scope_id IN {sessions}) OR "
                f"(x.scope = 'subject' AND {subject_ok('x.scope_id')}) OR (x.scope IN ({scopes}) AND {pooled}))")
    if "site_id" in columns:
        return f"x.site_id IN ({v})"
    if "session_id" in columns:
        return f"x.session_id IN {sessions}"
    if "trial_id" in columns:
        return f"x.trial_id IN (SELECT trial_id FROM {L}.main.trials WHERE site_id IN ({v}))"
    if "subject_id" in columns:
        return subject_ok("x.subject_id")
    return None  # no way to tell whose rows these are: not for members


def create_scoped_views(con: duckdb.DuckDBPyConnection, access: Access) -> list[str]:
    """One TEMP view per lake table, same name, scoped to ``access``. Returns the names created."""
    made = []
    for table, cols in _lake_columns(con).items():
        names = [c for c, _ in cols]
        if access.is_operator:
            con.execute(f'CREATE OR REPLACE TEMP VIEW "{table}" AS SELECT * FROM {L}.main."{table}"')
            made.append(table)
            continue
        if table not in TABLES:
            continue  # a table these contracts do not describe: nobody decided who may see it
        where = member_filter(table, names, access)
        if where is None:
            continue
        shown = ", ".join(f'x."{c}"' for c in names if c not in HIDDEN_COLUMNS)
        if table == "subject_profiles" and not access.all_visible:
            _member_profiles(con, access, cols, where)
        else:
            con.execute(f'CREATE OR REPLACE TEMP VIEW "{table}" AS SELECT {shown} FROM {L}.main."{table}" x '
                        f"WHERE {where}")
        made.append(table)
    return made


def _member_profiles(con, access: Access, cols: list[tuple[str, str]], where: str) -> None:
    """``subject_profiles`` with reference statistics recomputed over the visible subjects only."""
    from transforms import profiles
    from warehouse.analysis.cohort import PROFILE_PARAMS

    base = ["subject_id", "session_id", "task", "condition", "muscle", "side", "metric", "value"]
    frame = con.execute(f"SELECT {', '.join('x.' + c for c in base)} FROM {L}.main.subject_profiles x "
                        f"WHERE {where}").pl()
    select = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in cols if c not in HIDDEN_COLUMNS)
    if frame.height:
        out = profiles.patient_profiles(frame, **PROFILE_PARAMS)
        con.register("_myomap_profiles", out.to_arrow())
        source = "_myomap_profiles"
    else:
        source = f"(SELECT * FROM {L}.main.subject_profiles WHERE FALSE)"
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE subject_profiles AS SELECT {select} FROM {source} "
                    "ORDER BY subject_id, session_id, muscle, side, metric")
    finally:
        if frame.height:
            con.unregister("_myomap_profiles")


# --------------------------------------------------------------------------- the session
class MemberSession(views.ReadOnlySession):
    """A hardened, member-scoped session: ``execute`` runs gated queries on the member's views.

    Attributes: ``access`` (identity, role, site, visible sites, snapshot), ``views``.
    """

    def __init__(self, session: views.ReadOnlySession, access: Access):
        super().__init__(session._con, session.views, session.gate)
        self.access = access

    @property
    def snapshot_id(self) -> int:
        return self.access.snapshot_id


def open_member_session(settings: Settings, member: Identity | str | None = None, as_of: str | None = None, *,
                        today: dt.date | None = None) -> MemberSession:
    """Open the read session of ``member`` (default: the configured identity) at ``as_of``.

    Parameters
    ----------
    settings : Settings
        The lake (and, through it, the configured identity).
    member : Identity or str, optional
        Read as this member instead (``"operator"``, ``"public"`` or a site id);
        only an operator may ask for someone else.
    as_of : str, optional
        Snapshot id or timestamp (default: the current snapshot, pinned).
    today : datetime.date, optional
        Date the embargo rule is evaluated on (default: today, UTC).

    Returns
    -------
    MemberSession
        ``execute(sql, params)`` runs gated queries; ``access`` says who and what.

    Raises
    ------
    warehouse.catalog.CatalogError, IdentityError, UnknownSiteError
    """
    con, access = scoped_connection(settings, member, as_of, today=today)
    try:
        views.create_views(con)
        session = views.harden(con, operator=access.is_operator)
        return MemberSession(session, access)
    except BaseException:
        con.close()
        raise
