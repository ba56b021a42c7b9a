"""``myomap manifest check SITE``: a dry run of a site's manifest against its inbox.

Reads ``inbox/<site>/manifest.yaml`` and the site's files (through the readers, nothing written:
no catalog, no raw copy, no Prefect) and reports, in one pass,

* every problem of the manifest (:func:`schemas.manifest_schema.check`: unknown keys with
  "did you mean", numbers, dates, enums, ids, subjects of sessions);
* every glob that matches no file and every file that no glob claims, by name;
* per file: the session and subject that claim it;
* per channel label: the muscle and side it becomes and where the answer came from (manifest,
  alias, description), or why it is unresolved, ignored or not EMG (the ingest's own rule,
  :func:`warehouse.ingest.harmonise.decide`).
"""
from __future__ import annotations

import difflib
import fnmatch
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from schemas.manifest_schema import Problem
from warehouse import zones
from warehouse.ingest import harmonise as hz
from warehouse.ingest import inbox
from warehouse.ingest.manifest import Manifest, ManifestError
from warehouse.ingest.readers import ReaderError, companions_for, is_companion, read_any
from warehouse.settings import Settings


@dataclass
class FileLine:
    path: str
    session: str | None = None
    subject: str | None = None
    read_error: str | None = None  # "reason_code: message" when the reader refuses it (it will be quarantined)


@dataclass
class CheckReport:
    site: str
    problems: list[Problem] = field(default_factory=list)
    files: list[FileLine] = field(default_factory=list)
    channels: Counter = field(default_factory=Counter)  # (session scope, Decision) -> files
    fatal: bool = False  # the manifest could not be read at all (missing, not YAML, too large...)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]


def _globs(doc) -> list[tuple[int, int, str, dict]]:
    """``(session index, glob index, glob, session)`` of every well-formed glob of a manifest document."""
    out = []
    sessions = doc.get("sessions") if isinstance(doc, dict) and isinstance(doc.get("sessions"), list) else []
    for i, s in enumerate(sessions):
        if not isinstance(s, dict) or s.get("files") is None:
            continue
        files = s["files"] if isinstance(s["files"], list) else [s["files"]]
        out += [(i, j, str(g), s) for j, g in enumerate(files) if isinstance(g, (str, int))]
    return out


def _glob_problems(doc, files: list[str], site: str) -> tuple[list[Problem], dict[str, dict]]:
    """Globs matching nothing, files claimed by none; and the first session (document) claiming each file."""
    out: list[Problem] = []
    claimed: dict[str, dict] = {}
    for i, j, g, s in _globs(doc):
        hits = [f for f in files if fnmatch.fnmatchcase(f, g)]
        for f in hits:
            claimed.setdefault(f, s)
        if hits:
            continue
        nocase = [f for f in files if fnmatch.fnmatch(f.lower(), g.lower())]
        if nocase:
            hint = f"; globs are case-sensitive and it matches {len(nocase)} file(s) ignoring case, e.g. '{nocase[0]}'"
        else:
            close = difflib.get_close_matches(g, files, n=1, cutoff=0.5)
            hint = f"; closest file: '{close[0]}'" if close else ""
        out.append(Problem(f"sessions[{i}].files[{j}]", f"'{g}' matches no file in inbox/{site}/{hint}"))
    for f in files:
        if f not in claimed:
            out.append(Problem("files", f"'{f}' is claimed by no session: it will be held until a glob claims it",
                               "warning"))
    return out, claimed


def data_files(settings: Settings, site: str) -> tuple[list[str], dict[str, list[str]]]:
    """The site's data files (companions and the manifest left out) and the names in each folder."""
    entries = inbox.scan(settings, site).entries
    by_dir: dict[str, list[str]] = {}
    for f in entries:
        by_dir.setdefault(str(PurePosixPath(f).parent), []).append(PurePosixPath(f).name)
    files = [f for f in entries if not is_companion(PurePosixPath(f).name, by_dir[str(PurePosixPath(f).parent)])]
    return files, by_dir


def read_with_companions(settings: Settings, root: str, rel: str, by_dir: dict[str, list[str]]):
    """Read inbox file ``rel`` (under ``root``) with its companions from the same folder (``by_dir``, as
    :func:`data_files` gives it), under the reader memory cap, as the night reads it.

    Raises
    ------
    warehouse.ingest.readers.ReaderError
        The file cannot be read.
    """
    p = PurePosixPath(rel)
    parent = str(p.parent)
    prefix = "" if parent in ("", ".") else parent + "/"
    comps = {role: f"{root}/{prefix}{c}" for role, c in companions_for(p.name, by_dir[parent]).items()}
    with zones.local_files(settings, {"data": f"{root}/{rel}", **comps}) as local:
        return read_any(local["data"], companions={k: v for k, v in local.items() if k != "data"},
                        memory_bytes=settings.limits.reader_memory_bytes)


def check_site(settings: Settings, site: str, *, read_files: bool = True, max_files: int | None = None,
               progress=None) -> CheckReport:
    """Check ``inbox/<site>/`` (see the module docstring); nothing is written anywhere."""
    from warehouse.ingest.steps import load_manifest

    rep = CheckReport(site)
    files, by_dir = data_files(settings, site)
    man: Manifest | None = None
    doc = None
    try:
        man = load_manifest(settings, site)
        rep.problems += man.warnings
        doc = man.document
    except ManifestError as exc:
        if exc.reason_code != "manifest_schema" or not exc.problems:
            rep.problems.append(Problem("manifest.yaml", f"{exc.reason_code}: {exc.message}"))
            rep.fatal = True
        rep.problems += exc.problems
        doc = exc.document
    globs, claimed = _glob_problems(doc, files, site)
    rep.problems += globs
    root = zones.inbox(settings, site).rstrip("/")
    for n, rel in enumerate(files):
        s = claimed.get(rel)
        line = FileLine(rel, str(s.get("id")) if s else None, str(s.get("subject")) if s else None)
        rep.files.append(line)
        if not read_files or (max_files is not None and n >= max_files):
            continue
        if progress is not None:
            progress(rel)
        try:
            rec = read_with_companions(settings, root, rel, by_dir)
        except ReaderError as exc:
            line.read_error = f"{exc.reason_code}: {exc.message}"
            continue
        except Exception as exc:  # a reader bug: say so, keep checking
            line.read_error = f"reader_error: {type(exc).__name__}: {str(exc)[:200]}"
            continue
        session = next((x for x in man.sessions if x.id == line.session), None) if man else None
        cmap = man.channels_for(session) if man else {}
        side = man.default_side(session) if man else "U"
        scope = session.id if session is not None and session.channels else "site"
        for i, a in enumerate(rec.analogs):
            if i not in rec.plate_channel_indices:
                rep.channels[(scope, hz.decide(a, cmap, default_side=side))] += 1
    return rep


def render(rep: CheckReport, *, verbose: bool = False) -> str:
    """The report as text: problems first, then files, then channels."""
    out = [f"manifest check of site '{rep.site}': {len(rep.errors)} error(s), {len(rep.warnings)} warning(s), "
           f"{len(rep.files)} data file(s)"]
    if rep.problems:
        out.append("")
        out += [f"{'ERROR  ' if p.severity == 'error' else 'warning'} {p}" for p in rep.problems]
    if rep.files:
        out += ["", "files -> session -> subject:"]
        for f in rep.files:
            claim = f"{f.session} -> {f.subject}" if f.session else "(no session: held)"
            out.append(f"  {f.path} -> {claim}" + (f"  [unreadable, will be quarantined: {f.read_error}]"
                                                    if f.read_error else ""))
    if rep.channels:
        out += ["", "channel labels -> muscle/side (source) [files]:"]
        order = {hz.UNRESOLVED: 0, hz.EMG: 1, hz.IGNORED: 2, hz.NOT_EMG_KIND: 3}
        for (scope, d), n in sorted(rep.channels.items(), key=lambda kv: (order[kv[0][1].kind], kv[0][0],
                                                                          kv[0][1].label)):
            where = "" if scope == "site" else f" (session {scope})"
            if d.kind == hz.EMG:
                out.append(f"  {d.label!r}{where} -> {d.muscle} {d.side} ({d.source}) [{n}]")
            elif d.kind == hz.UNRESOLVED:
                sugg = f"; suggestions: {', '.join(d.suggestions)}" if d.suggestions else ""
                out.append(f"  {d.label!r}{where} -> UNRESOLVED ({d.why}{sugg}): skipped and recorded; map it "
                           f"under channels: or write ignore [{n}]")
            elif d.kind == hz.IGNORED:
                out.append(f"  {d.label!r}{where} -> ignored ({d.why}, manifest) [{n}]")
            elif verbose:
                out.append(f"  {d.label!r}{where} -> not EMG ({d.why}) [{n}]")
        hidden = sum(1 for (_, d) in rep.channels if d.kind == hz.NOT_EMG_KIND)
        if hidden and not verbose:
            out.append(f"  ... and {hidden} label(s) judged not EMG (--verbose lists them with why)")
    out.append("")
    out.append("OK: the manifest is clean." if not rep.errors else
               f"{len(rep.errors)} error(s): fix them, then run the check again.")
    return "\n".join(out) + "\n"


def explain_held(settings: Settings, site: str, paths: list[str]) -> list[tuple[str, str, str]]:
    """Why each held file of a site is held, and what to edit: ``(path, reason, what to edit)``."""
    from warehouse.ingest.steps import load_manifest

    where = f"inbox/{site}/manifest.yaml"
    try:
        man = load_manifest(settings, site)
    except ManifestError as exc:
        first = str(exc.problems[0]) if exc.problems else exc.message.split("\n")[0][:200]
        more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return [(p, f"the site's manifest is unusable ({exc.reason_code}): {first}{more}",
                 f"fix {where}; `myomap manifest check {site}` lists every problem") for p in paths]
    try:
        present, by_dir = data_files(settings, site)
    except OSError:
        present, by_dir = [], {}
    globs = [g for s in man.sessions for g in s.files]
    out = []
    for p in paths:
        pp = PurePosixPath(p)
        if is_companion(pp.name, by_dir.get(str(pp.parent))):
            out.append((p, "a companion file, read with the data file it accompanies",
                        "nothing, or drop the data file it belongs to beside it"))
        elif man.session_for(p) is None:
            close = [g for g in globs if fnmatch.fnmatch(p.lower(), g.lower())]
            hint = (f"'{close[0]}' matches it only ignoring case (globs are case-sensitive)" if close else
                    f"add a glob claiming it under sessions[].files in {where}")
            out.append((p, "no session's files: glob claims it", hint))
        elif p not in present:
            out.append((p, "no longer in the inbox", "nothing (its original is kept in raw/)"))
        else:
            out.append((p, "claimed now: it is ingested by the next night", f"nothing (or `myomap ingest --site {site}`)"))
    return out
