"""``myomap.open()`` and the :class:`Lake` it returns: thin wiring over ``warehouse/serving``.

One member session (:func:`warehouse.serving.access.open_member_session`, the session of
``myomap sql``) backs every method; the queries are in :mod:`warehouse.serving.reading` and
:mod:`warehouse.serving.signals`, extracts in :mod:`warehouse.serving.extracts` (the functions
``myomap extract`` calls).
"""
from __future__ import annotations

import datetime as dt
import threading

import polars as pl

from warehouse.serving import access, extracts, reading, signals
from warehouse.serving.cohort_filter import CohortFilterError
from warehouse.serving.reading import Cohort, LakeError
from warehouse.settings import IdentityError, Settings, get_settings


def _as_of(value) -> str | None:
    """A snapshot id (int or digits) or a timestamp (datetime, date or ISO text; UTC when no zone)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise LakeError(f"as_of must be a snapshot id or a timestamp, got {value!r}.")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if text.isascii() and text.isdigit():
            return str(int(text))
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise LakeError(f"as_of {value!r} is neither a snapshot id (0, 1, 2, ...) nor a timestamp "
                            "(e.g. '2026-09-14 02:30:00+02:00').") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).isoformat(sep=" ")


def open(lake: str | None = None, member: str | None = None, as_of=None) -> Lake:  # noqa: A001 (myomap.open)
    """Open the lake read-only, as the configured member (or, for an operator, as ``member``).

    Parameters
    ----------
    lake : str, optional
        Lake root (local folder or ``s3://``); default ``$MYOMAP_LAKE`` or ``./lake``.
    member : str, optional
        Read as this member: a site id, ``"operator"`` or ``"public"``. Only an operator may name
        someone else; default: the identity from ``MYOMAP_MEMBER`` / ``MYOMAP_MEMBERS_FILE``.
    as_of : int, str or datetime, optional
        Snapshot id or timestamp (default: the current snapshot). Either way the lake stays pinned
        to that one snapshot until closed.

    Returns
    -------
    Lake

    Raises
    ------
    warehouse.settings.IdentityError
        No identity, the public role, or a member naming someone else (message starts ``Refused``).
    warehouse.catalog.CatalogError
        No lake at that location.
    LakeError
        An ``as_of`` the lake has no snapshot for, or a site the lake does not know.
    """
    settings = get_settings(lake)
    try:
        session = access.open_member_session(settings, member, _as_of(as_of))
    except access.UnknownSiteError as exc:
        raise LakeError(str(exc)) from None
    except IdentityError:
        raise
    except Exception as exc:
        if "no snapshot found" in str(exc).lower():
            raise LakeError(f"as_of {as_of!r}: the lake has no such snapshot.") from None
        raise
    return Lake(settings, session, member)


class Lake:
    """A read-only view of the lake for one member at one snapshot. Use as a context manager or ``close()``.

    Attributes: ``snapshot_id``, ``snapshot_time``, ``member`` (who reads, as a dict),
    ``visible_sites``, ``hidden_sites`` (site -> reasons), ``tables`` (what :meth:`sql` and
    :meth:`table` may name).
    """

    def __init__(self, settings: Settings, session: access.MemberSession, member=None):
        self.settings = settings
        self._member = member
        self._reader = reading.Reader(settings, session, threading.RLock())
        a = session.access
        self.snapshot_id: int = a.snapshot_id
        self.snapshot_time: str | None = a.snapshot_time
        self.member: dict = a.to_dict()
        self.visible_sites: list[str] = a.visible_sites
        self.hidden_sites: dict[str, list[str]] = {d.site_id: list(d.reasons) for d in a.decisions
                                                   if not a.is_operator and not d.included}

    # -- life cycle
    def close(self) -> None:
        with self._reader.lock:
            if self._reader.session is not None:
                self._reader.session.close()
                self._reader.session = None

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._reader.session is None else f"snapshot {self.snapshot_id}"
        who = self.member["identity"]["name"] + (f" (site {self.member['site']})" if self.member["site"] else "")
        return f"<myomap.Lake {self.settings.lake} {state}, read as {who}>"

    @property
    def tables(self) -> list[str]:
        return self._reader.relations()

    # -- queries
    def sql(self, query: str, params: list | None = None) -> pl.DataFrame:
        """Run a read-only query (the rules of ``myomap sql``) and return a polars DataFrame.

        ``.to_arrow()`` and ``.to_pandas()`` on the result give Arrow and pandas. ``params`` bind
        ``?`` placeholders. Anything but a query on the lake's views is refused
        (:class:`warehouse.serving.gate.ReadOnlyViolation`, message ``Refused: ...``).
        """
        return self._reader.frame(query, params)

    def cohort(self, filter: str | None = None) -> Cohort:  # noqa: A002 (the grammar's name)
        """The sessions a cohort filter selects (``site=lyon; condition=fresh; muscle=soleus``...).

        Raises
        ------
        warehouse.serving.cohort_filter.CohortFilterError
            Bad syntax or an unknown value; the message names the clause.
        """
        return reading.cohort(self._reader, filter)

    def table(self, name: str, cohort: str | Cohort | None = None) -> pl.LazyFrame:
        """A table or ``v_*`` view as a polars LazyFrame at this snapshot, optionally within a cohort.

        Columns and a row limit are pushed into the query, row filters run in polars
        (``docs/api.md``, "Lazy tables").
        """
        return reading.scan(self._reader, name, None if cohort is None else self.cohort(cohort))

    # -- signals
    def signals(self, trial_id: str, kind: str = "emg", *, layout: str = "long",
                params_hash: str | None = None) -> pl.DataFrame:
        """Raw EMG (``emg``), envelopes (``envelope``), ground reaction forces (``grf``) or markers (``markers``)
        of one trial, ``long`` (one row per channel and sample) or ``wide`` (one column per channel)."""
        return signals.signals(self._reader, trial_id, kind, layout=layout, params_hash=params_hash)

    def cycles(self, trial_id: str | list[str] | None = None, *, cohort: str | Cohort | None = None,
               muscle: str | None = None, side: str | None = None, params_hash: str | None = None,
               n_points: int = 101) -> pl.DataFrame:
        """Time-normalised envelopes (0-100 % of each valid gait cycle) of trials: one trial, a list,
        a cohort's trials, or every trial you can see. ``envelope_norm`` is normalised as the report's
        activation maps (peak of the subject's mean cycle)."""
        if trial_id is not None and cohort is not None:
            raise LakeError("give trial_id or cohort, not both.")
        ids = [trial_id] if isinstance(trial_id, str) else (list(trial_id) if trial_id is not None else None)
        c = None if cohort is None else self.cohort(cohort)
        if c is not None:
            ids = self._reader.frame("SELECT trial_id FROM trials WHERE session_id IN (SELECT unnest(?)) "
                                     "ORDER BY trial_id", [c.session_ids])["trial_id"].to_list()
        out = signals.cycles(self._reader, ids, muscle=muscle, side=side, params_hash=params_hash,
                             n_points=n_points)
        for cl in c.filter.clauses if c is not None else ():  # the cohort's muscle/side clauses
            if cl.key in ("muscle", "side"):
                keep = pl.col(cl.key).is_in(list(cl.values))
                out = out.filter(keep if cl.op == "=" else ~keep)
        return out

    # -- extracts
    def extract(self, out: str, *, tables: list[str] | tuple[str, ...] | None = None,
                cohort: str | Cohort | None = None, format: str = "parquet",  # noqa: A002 (the CLI's --format)
                consent_scope: str = extracts.REQUIRED_SCOPE, progress=None) -> dict:
        """Write an extract as ``myomap extract`` does (same function), at this lake's snapshot and identity.

        ``format``: ``parquet``, ``csv`` or ``bids``; ``tables`` default to ``extracts.DEFAULT_TABLES``
        (none for BIDS). Returns the manifest (also written to ``<out>/manifest.json``).
        """
        text = cohort.filter.text if isinstance(cohort, Cohort) else cohort
        if tables is None:
            tables = () if format == "bids" else extracts.DEFAULT_TABLES
        return extracts.extract(self.settings, cohort=text, tables=list(tables), fmt=format, out_dir=str(out),
                                required_scope=consent_scope, as_of=str(self.snapshot_id), member=self._member,
                                progress=progress)


__all__ = ["Cohort", "CohortFilterError", "Lake", "LakeError", "open"]
