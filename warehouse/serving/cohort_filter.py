"""The cohort filter language of ``--cohort`` (extracts, reports) and its SQL with bound parameters.

Grammar
-------
::

    filter  ::= [ clause { ";" clause } ] [ ";" ]
    clause  ::= key op value { "," value }
    key     ::= "site" | "subject" | "session" | "condition" | "task" | "muscle" | "side" | "date"
    op      ::= "=" | "!="                      (every key)
              | ">=" | "<=" | ">" | "<"         (date only, one value)
    value   ::= [A-Za-z0-9] [A-Za-z0-9_.:-]*     (at most 128 characters)
              | YYYY-MM-DD                      (date: a real calendar date)

Spaces around keys, operators, values and separators are ignored. Clauses are
combined with AND; the values of one clause with OR (``site=lyon,boston`` means
site is lyon or boston). ``!=`` keeps rows whose value is null (unknown is not
excluded by "is not X"). Example::

    site=lyon,boston; condition=fatigued; task=walk; muscle=tibialis_anterior; side=L;
    date>=2026-01-01; date<=2026-12-31; subject=LYO01,LYO02

Keys map to ``sessions.site_id``, ``subject_id``, ``session_id``, ``condition``,
``task``, ``session_date`` and, on tables that have them, ``muscle`` and ``side``.

Validation
----------
Only the keys above are accepted; every value must match the token pattern (no
quotes, spaces, semicolons, parentheses or comment markers can get through), and
``muscle``/``side`` must be in :mod:`schemas.vocab`. ``condition``/``task`` must be
in the vocabulary or among the values the lake holds (``known=``); ``site`` must be
a known site when ``known`` lists them. Anything else raises
:class:`CohortFilterError` with the offending clause.

SQL
---
:meth:`CohortFilter.predicate` returns ``(sql, params)``: the SQL text is built only
from trusted column names and ``?`` placeholders (one per value); the values
themselves are only ever passed as bound parameters.
"""
from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas import vocab

#: One filter value: an id, a vocabulary term or a date.
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_LENGTH = 4000
_CLAUSE = re.compile(r"^\s*(?P<key>[A-Za-z_]+)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<values>.*?)\s*$", re.S)
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")

#: Key -> (session/table column it filters, vocabulary or None, operators allowed).
KEYS: dict[str, tuple[str, tuple[str, ...] | None, frozenset[str]]] = {
    "site": ("site_id", None, frozenset({"=", "!="})),
    "subject": ("subject_id", None, frozenset({"=", "!="})),
    "session": ("session_id", None, frozenset({"=", "!="})),
    "condition": ("condition", vocab.CONDITIONS, frozenset({"=", "!="})),
    "task": ("task", vocab.TASKS, frozenset({"=", "!="})),
    "muscle": ("muscle", vocab.MUSCLES, frozenset({"=", "!="})),
    "side": ("side", vocab.SIDES, frozenset({"=", "!="})),
    "date": ("session_date", None, frozenset({"=", "!=", ">=", "<=", ">", "<"})),
}
#: Keys answered by the sessions table (the cohort of sessions).
SESSION_KEYS = ("site", "subject", "session", "condition", "task", "date")
#: Keys answered by the rows of a table (muscle / side columns).
ROW_KEYS = ("muscle", "side")
#: Keys whose values may be checked against what the lake holds (``known=``).
_LAKE_VOCAB = ("condition", "task")


class CohortFilterError(ValueError):
    """The ``--cohort`` text is not a valid filter (message says what and where)."""


@dataclass(frozen=True)
class Clause:
    """``key op value[,value...]``."""

    key: str
    op: str
    values: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"key": self.key, "op": self.op, "values": list(self.values)}

    def __str__(self) -> str:
        return f"{self.key}{self.op}{','.join(self.values)}"


@dataclass(frozen=True)
class CohortFilter:
    """A parsed, validated filter. ``clauses`` are ANDed; empty means everyone."""

    text: str
    clauses: tuple[Clause, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.clauses

    def keys(self) -> set[str]:
        return {c.key for c in self.clauses}

    def to_dict(self) -> dict:
        """JSON-ready form (for manifests)."""
        return {"text": self.text, "clauses": [c.to_dict() for c in self.clauses]}

    def canonical(self) -> str:
        return "; ".join(str(c) for c in self.clauses)

    def predicate(self, columns: Mapping[str, str], *, keys: Iterable[str] | None = None) -> tuple[str, list]:
        """SQL boolean expression and its parameters for the clauses on ``columns``.

        Parameters
        ----------
        columns : mapping
            Filter key -> trusted SQL column reference (``"s.site_id"``). Clauses
            whose key is not in ``columns`` are left out.
        keys : iterable of str, optional
            Only these keys (default: all keys of ``columns``).

        Returns
        -------
        (str, list)
            ``("TRUE", [])`` when no clause applies. Values appear only in the list.
        """
        wanted = set(columns) if keys is None else set(keys) & set(columns)
        parts, params = [], []
        for c in self.clauses:
            if c.key not in wanted:
                continue
            col = columns[c.key]
            if not _COLUMN.match(col):
                raise ValueError(f"not a column reference: {col!r}")
            if c.key == "date":
                cast = "CAST(? AS DATE)"
                if c.op in ("=", "!="):
                    holders = ", ".join([cast] * len(c.values))
                    expr = f"{col} IN ({holders})"
                    parts.append(expr if c.op == "=" else f"({col} IS NULL OR NOT ({expr}))")
                else:
                    parts.append(f"{col} {c.op} {cast}")
            else:
                holders = ", ".join(["?"] * len(c.values))
                expr = f"{col} IN ({holders})"
                parts.append(expr if c.op == "=" else f"({col} IS NULL OR NOT ({expr}))")
            params += list(c.values)
        return (" AND ".join(parts) if parts else "TRUE"), params


def _suggest(value: str, pool: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, [p for p in pool if p], n=3, cutoff=0.6)
    return f" Did you mean {', '.join(close)}?" if close else ""


def parse(text: str | None, *, known: Mapping[str, Iterable[str]] | None = None,
          check_values: bool = True) -> CohortFilter:
    """Parse and validate a ``--cohort`` filter.

    Parameters
    ----------
    text : str or None
        The filter (see the module docstring); None or blank selects everyone.
    known : mapping, optional
        Values the lake holds, e.g. ``{"site": [...], "condition": [...], "task": [...]}``:
        ``site`` values must then be among them; ``condition``/``task`` may be
        vocabulary terms or among them.
    check_values : bool
        Check values against the vocabularies and ``known`` (default). False checks
        only the syntax and the token pattern (used before the lake is opened).

    Returns
    -------
    CohortFilter

    Raises
    ------
    CohortFilterError
        On an unknown key, a bad operator, a value outside the token pattern or
        the vocabulary, or an invalid date; the message names the clause.
    """
    text = "" if text is None else str(text)
    if len(text) > MAX_LENGTH:
        raise CohortFilterError(f"cohort filter longer than {MAX_LENGTH} characters.")
    known = {k: {str(v) for v in vs if v is not None} for k, vs in (known or {}).items()}
    clauses = []
    for n, raw in enumerate(text.split(";"), start=1):
        if not raw.strip():
            continue
        where = f"clause {n} ({raw.strip()[:60]!r})"
        m = _CLAUSE.match(raw)
        if not m:
            raise CohortFilterError(f"{where}: expected key=value[,value...] with key one of "
                                    f"{', '.join(KEYS)} (operators =, != and, for date, >=, <=, >, <).")
        key, op, values_text = m.group("key").lower(), m.group("op"), m.group("values")
        if key not in KEYS:
            raise CohortFilterError(f"{where}: unknown key {key!r}; keys are {', '.join(KEYS)}.{_suggest(key, KEYS)}")
        _, voc, ops = KEYS[key]
        if op not in ops:
            raise CohortFilterError(f"{where}: operator {op!r} is not allowed for {key} "
                                    f"(use {', '.join(sorted(ops))}).")
        values = tuple(v.strip() for v in values_text.split(","))
        if not values_text.strip() or any(not v for v in values):
            raise CohortFilterError(f"{where}: empty value; write {key}{op}value[,value...].")
        if op not in ("=", "!=") and len(values) != 1:
            raise CohortFilterError(f"{where}: {key}{op} takes exactly one value.")
        for v in values:
            if key == "date":
                _check_date(v, where)
                continue
            if not TOKEN.fullmatch(v):
                raise CohortFilterError(
                    f"{where}: value {v!r} is not allowed: values are ids or vocabulary terms made of letters, "
                    "digits and _ . : - (no quotes, spaces, semicolons or other SQL).")
            allowed = None
            if check_values and voc is not None:
                allowed = set(voc) | (known.get(key, set()) if key in _LAKE_VOCAB else set())
            elif check_values and key in known:
                allowed = known[key]
            if allowed is not None and v not in allowed:
                listing = ", ".join(sorted(allowed)) if len(allowed) <= 30 else f"{len(allowed)} values"
                raise CohortFilterError(f"{where}: unknown {key} {v!r} (known: {listing}).{_suggest(v, allowed)}")
        clauses.append(Clause(key, op, values))
    return CohortFilter(text=text.strip(), clauses=tuple(clauses))


def _check_date(value: str, where: str) -> None:
    if not DATE.fullmatch(value):
        raise CohortFilterError(f"{where}: date {value!r} must be written YYYY-MM-DD.")
    try:
        dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CohortFilterError(f"{where}: {value!r} is not a calendar date ({exc}).") from None


def grammar_help() -> str:
    """One paragraph for ``--help`` texts."""
    return ("Cohort filter: clauses 'key=value[,value...]' separated by ';' (AND; values OR). Keys: site, subject, "
            "session, condition, task, muscle, side, date. Operators: = and != (date also >=, <=, >, <). "
            "Example: 'site=lyon,boston; condition=fatigued; muscle=tibialis_anterior; side=L; date>=2026-01-01'.")
