"""Scaffold a site's ``manifest.yaml`` from the files already in its inbox.

``myomap manifest init <site>`` calls :func:`scaffold_manifest`, which

* guesses one session per (subject, condition) from folder names and file-name parts
  (``S01/fatigued/x.c3d``, ``S01_fresh_walk01.c3d``; conditions and tasks only from
  :data:`schemas.vocab.CONDITIONS` / :data:`schemas.vocab.TASKS`) with a glob per session
  that claims exactly that session's files;
* reads every data file (companions skipped) and lists every EMG-looking channel label (the
  ingest's own rule, :func:`warehouse.ingest.harmonise.decide`): labels the vocabulary resolves
  appear as comments, the others as ``channels:`` entries with ``muscle: TODO`` (and the closest
  vocabulary suggestions) for the data manager to fill; the labels judged not EMG are listed;
* looks for a 50 or 60 Hz mains line in the EMG to propose ``mains_hz``.

Nothing that cannot be read from the paths is guessed: sex, mass, height, dates, terrain,
timezone and consent are left as ``TODO`` comments. The text is valid YAML as written; it
passes :func:`warehouse.ingest.manifest.parse_manifest` as written (a ``muscle: TODO`` channel is
skipped and recorded at ingest, never blocking the site; ``myomap manifest check`` lists them).
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
import yaml

from schemas import vocab
from warehouse import zones
from warehouse.ingest.harmonise import EMG, NOT_EMG_KIND, decide
from warehouse.ingest.manifest_check import read_with_companions
from warehouse.ingest.readers import ReaderError, is_companion
from warehouse.settings import Settings

#: Words whose "<word><digits>" tokens are trial / session / repetition counters, never subjects.
_NOT_SUBJECT_WORDS = {"trial", "tr", "trl", "t", "ses", "sess", "session", "run", "rep", "take", "emg", "file",
                      "day", "visit", "v", "cond", "acq", "rec", "block", "set", "c", "static", "mvc", "task",
                      "walk", "cal", "calib", "fp", "ch", "channel", "sensor", "part", "version", "pre", "post",
                      "baseline", "shod", "barefoot", "tread", "treadmill", "overground", "ref", "max", "test", "trl",
                      "speed", "slow", "fast", "normal", "self", "pref", "stairs", "stair", "up", "down"}
#: A pseudonym in a folder name (``S01``, ``LYO03``, ``P_012``, ``sub-07``, ``012``) ...
_SUBJECT = re.compile(r"^(?:sub-[A-Za-z0-9]+|[A-Za-z]{1,8}[-_]?\d{1,5}|\d{2,3})$")
#: ... and in a file name, shorter: a stem like ``Walking1`` or ``Static03`` is a trial, not a subject.
_SUBJECT_IN_STEM = re.compile(r"^(?:sub-[A-Za-z0-9]+|[A-Za-z]{1,4}[-_]?\d{1,5})$")
_SEP = r"[/_\-. ]"
_GLOB_SPECIAL = re.compile(r"([\[\]*?])")
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

#: Mains detection: a line this many times above its spectral neighbourhood counts as hum.
MAINS_LINE_RATIO = 20.0
#: Files whose EMG is examined for a mains line.
MAINS_MAX_FILES = 8


@dataclass
class LabelInfo:
    label: str
    resolution: vocab.LabelResolution
    files: int = 0
    source: str = "alias"


@dataclass
class GuessedSession:
    id: str
    subject: str
    condition: str | None
    task: str | None
    tasks_seen: list[str]
    files: list[str]
    globs: list[str]


@dataclass
class SiteSurvey:
    """What :func:`survey_site` found in ``inbox/<site>/``."""

    site: str
    data_files: list[str] = field(default_factory=list)          # relative to the site inbox
    sessions: list[GuessedSession] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)          # no subject in the path
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (reason_code, message)
    labels: dict[str, LabelInfo] = field(default_factory=dict)   # EMG-looking labels
    ignored_labels: Counter = field(default_factory=Counter)     # other analog labels (not EMG)
    not_emg_why: dict[str, str] = field(default_factory=dict)    # label -> why it is not EMG
    files_read: int = 0
    mains_hz: int | None = None                                  # detected from the EMG, else None
    mains_votes: dict[int, int] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.sessions})

    @property
    def unresolved(self) -> list[LabelInfo]:
        return [self.labels[k] for k in sorted(self.labels, key=natural_key) if not self.labels[k].resolution.resolved]

    @property
    def resolved(self) -> list[LabelInfo]:
        return [self.labels[k] for k in sorted(self.labels, key=natural_key) if self.labels[k].resolution.resolved]


def natural_key(text: str) -> list:
    """Sort key putting "EMG 2" before "EMG 10"."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text) if t]


# ------------------------------------------------------------------------------------------ paths
def _has_term(text: str, term: str, digits: bool = False) -> bool:
    body = re.escape(term).replace("_", "[_\\- ]?")
    tail = r"\d*" if digits else ""
    return re.search(rf"(?:^|{_SEP}){body}{tail}(?:$|{_SEP})", text) is not None and \
        re.search(rf"(?:^|{_SEP}){body}-\d", text) is None  # BIDS "run-01" is a run index, not a task


def guess_parts(rel_path: str) -> dict:
    """Subject, condition and task read from a path relative to the site inbox (None when absent).

    The subject is the first folder (else the first file-name part) that looks like a pseudonym
    (``S01``, ``LYO03``, ``P_012``, ``sub-07``) and is not a trial/run counter or a vocabulary word.
    """
    p = PurePosixPath(rel_path)
    low = rel_path.lower()
    stem_tokens = [t for t in re.split(r"[_\s.]+", p.stem) if t]
    candidates = [(t, _SUBJECT) for t in p.parts[:-1]] + [
        (t, _SUBJECT_IN_STEM) for t in stem_tokens + [x for t in stem_tokens if "-" in t for x in t.split("-")]]
    subject = None
    for tok, rx in candidates:
        if not rx.match(tok):
            continue
        word = re.sub(r"[-_]?\d+$", "", tok).lower()
        if word in _NOT_SUBJECT_WORDS or word in vocab.TASKS or word in vocab.CONDITIONS or word in vocab.TASK_WORDS:
            continue
        subject = tok
        break
    condition = next((c for c in vocab.CONDITIONS if c != "unknown" and _has_term(low, c)), None)
    task = next((t for t in sorted(vocab.TASKS, key=len, reverse=True) if _has_term(low, t, digits=True)), None)
    if task is None:  # task words: Walking1, gait_03, CMJ2 ...
        task = next((t for w, t in sorted(vocab.TASK_WORDS.items(), key=lambda kv: -len(kv[0]))
                     if t and _has_term(low, w, digits=True)), None)
    return {"subject": subject, "condition": condition, "task": task}


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"[\1]", text)


def _claims(pattern: str, files: list[str]) -> set[str]:
    return {f for f in files if fnmatch.fnmatchcase(f, pattern)}


def _trim_prefix(prefix: str) -> str:
    """Cut a common name prefix back to its last separator (``S01_fresh_walk0`` -> ``S01_fresh_``)."""
    m = re.match(r"^(.*[_\-. ])", prefix)
    return m.group(1) if m else prefix


def session_globs(mine: list[str], every_file: list[str]) -> list[str]:
    """Glob patterns claiming all of ``mine`` and none of the other files in ``every_file``."""
    mine_set = set(mine)
    by_bucket: dict[tuple[str, str], list[str]] = defaultdict(list)
    for f in mine:
        p = PurePosixPath(f)
        by_bucket[(str(p.parent), p.suffix)].append(p.name)
    out = []
    for (parent, suffix), names in sorted(by_bucket.items()):
        base = "" if parent in ("", ".") else _glob_escape(parent) + "/"
        stems = [n[: len(n) - len(suffix)] if suffix else n for n in names]
        prefix = os.path.commonprefix(stems)
        cands = [f"{base}*{_glob_escape(suffix)}"]
        if prefix:
            cands += [f"{base}{_glob_escape(_trim_prefix(prefix))}*{_glob_escape(suffix)}",
                      f"{base}{_glob_escape(prefix)}*{_glob_escape(suffix)}"]
        for c in cands:
            claimed = _claims(c, every_file)
            if claimed <= mine_set and claimed >= {f"{parent}/{n}" if base else n for n in names}:
                out.append(c)
                break
        else:  # list the files one by one
            out += [base + _glob_escape(n) for n in sorted(names)]
    return out


# ------------------------------------------------------------------------------------------ signals
def _line_ratio(x: np.ndarray, rate: float, f0: float) -> float:
    """Peak power within +-1 Hz of ``f0`` over the median power 3-15 Hz away (0 when not measurable)."""
    if rate < 2 * (f0 + 20) or len(x) < rate:  # need the neighbourhood below Nyquist and >= 1 s
        return 0.0
    x = np.nan_to_num(np.asarray(x, dtype=np.float64)[: int(rate * 20)])
    x = x - x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    d = np.abs(freqs - f0)
    line, ref = spec[d <= 1.0], spec[(d > 3.0) & (d < 15.0)]
    if not len(line) or not len(ref):
        return 0.0
    med = float(np.median(ref))
    return float(line.max() / med) if med > 0 else 0.0


def mains_vote(x: np.ndarray, rate: float) -> int | None:
    """50 or 60 when one mains line clearly stands out in ``x``, else None."""
    r50, r60 = _line_ratio(x, rate, 50.0), _line_ratio(x, rate, 60.0)
    if r50 > MAINS_LINE_RATIO and r50 > 5 * r60:
        return 50
    if r60 > MAINS_LINE_RATIO and r60 > 5 * r50:
        return 60
    return None


# ------------------------------------------------------------------------------------------ survey
def survey_site(settings: Settings, site: str, *, max_files: int | None = None) -> SiteSurvey:
    """Read ``inbox/<site>/``: guess sessions from the paths and collect channel labels from the files.

    ``max_files`` limits how many data files are read for labels (None: all of them).
    """
    sv = SiteSurvey(site)
    files = zones.list_site_files(settings, site)
    by_dir: dict[str, list[str]] = defaultdict(list)
    for f in files:
        by_dir[str(PurePosixPath(f).parent)].append(PurePosixPath(f).name)
    data = [f for f in files if not is_companion(PurePosixPath(f).name, by_dir[str(PurePosixPath(f).parent)])]
    sv.data_files = data
    root = zones.inbox(settings, site).rstrip("/")
    unknown_format: set[str] = set()
    for i, rel in enumerate(data):
        if max_files is not None and i >= max_files:
            break
        try:
            rec = read_with_companions(settings, root, rel, by_dir)
        except ReaderError as exc:
            sv.failed[rel] = (exc.reason_code, exc.message)
            if exc.reason_code == "unknown_format":
                unknown_format.add(rel)
            continue
        except Exception as exc:  # a reader bug: report it, keep scaffolding
            sv.failed[rel] = ("reader_error", f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        sv.files_read += 1
        seen = set()
        for j, a in enumerate(rec.analogs):
            if j in rec.plate_channel_indices or a.label in seen:
                continue
            seen.add(a.label)
            d = decide(a)  # the ingest's own rule (warehouse.ingest.harmonise)
            if d.kind == NOT_EMG_KIND:
                sv.ignored_labels[a.label] += 1
                sv.not_emg_why.setdefault(a.label, d.why)
                continue
            res = vocab.LabelResolution(a.label, d.muscle, d.side, 1.0 if d.kind == EMG else 0.0, d.suggestions)
            info = sv.labels.setdefault(a.label, LabelInfo(a.label, res, source=d.source))
            info.files += 1
            if sv.files_read <= MAINS_MAX_FILES:
                v = mains_vote(a.data, a.rate_hz)
                if v:
                    sv.mains_votes[v] = sv.mains_votes.get(v, 0) + 1
    if sv.mains_votes:
        best = max(sv.mains_votes, key=sv.mains_votes.get)
        if sv.mains_votes[best] >= 2 * sum(n for hz, n in sv.mains_votes.items() if hz != best):
            sv.mains_hz = best

    # sessions: one per (subject, condition)
    groups: dict[tuple[str, str | None], list[tuple[str, str | None]]] = defaultdict(list)
    for rel in data:
        if rel in unknown_format:
            continue
        g = guess_parts(rel)
        if g["subject"] is None:
            sv.unassigned.append(rel)
            continue
        groups[(g["subject"], g["condition"])].append((rel, g["task"]))
    claimable = [f for f in data if f not in unknown_format]
    order = {c: i for i, c in enumerate(vocab.CONDITIONS)}
    keys = sorted(groups, key=lambda k: (k[0], order.get(k[1], len(order)) if k[1] else len(order) + 1))
    per_subject = Counter()
    for subject, condition in keys:
        members = groups[(subject, condition)]
        per_subject[subject] += 1
        tasks = sorted({t for _, t in members if t})
        task = tasks[0] if len(tasks) == 1 and all(t for _, t in members) else None
        sid = f"{subject}-{condition}" if condition else f"{subject}-S{per_subject[subject]}"
        mine = sorted(r for r, _ in members)
        sv.sessions.append(GuessedSession(sid, subject, condition, task, tasks, mine, session_globs(mine, claimable)))
    return sv


# ------------------------------------------------------------------------------------------ render
def _y(text: str) -> str:
    """A YAML scalar for ``text``: bare when it reads back as the same string, else double-quoted."""
    if _PLAIN.match(text):
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def _c(text: str) -> str:
    """One comment-safe line."""
    return " ".join(str(text).split())


def render_manifest(sv: SiteSurvey, *, today: dt.date | None = None) -> str:
    """The manifest text for a survey (see the module docstring)."""
    site = sv.site
    today = today or dt.date.today()
    n_todo = len(sv.unresolved)
    out = [
        f"# manifest.yaml of site '{site}', scaffolded by `myomap manifest init {site}` on {today.isoformat()}",
        f"# from {len(sv.data_files)} data file(s) ({sv.files_read} read). Check every guess, fill every TODO,",
        f"# then run `myomap ingest --site {site}`. Pseudonyms only: names, birth dates, e-mail addresses",
        "# and phone numbers are refused.",
        f"site: {_y(site)}",
    ]
    if sv.mains_hz:
        votes = ", ".join(f"{n} channel(s) at {hz} Hz" for hz, n in sorted(sv.mains_votes.items()))
        out.append(f"mains_hz: {sv.mains_hz}  # TODO confirm: mains hum found in the EMG ({votes})")
    else:
        out.append("mains_hz: 50  # TODO confirm: guessed (no clear hum line in the EMG); 60 in the Americas, "
                   "parts of Japan, Korea, Taiwan, Saudi Arabia")
    out += [
        "timezone: null  # TODO: IANA time zone of the lab, e.g. Europe/Paris",
        "consent: []  # TODO: scopes the participants consented to, e.g. [pooled_analysis, public_release]",
        "# embargo_until: YYYY-MM-DD  # optional: nothing is shared before this date",
        "",
    ]
    # subjects
    if sv.subjects:
        out.append("subjects:")
        for s in sv.subjects:
            out += [f"  - id: {_y(s)}", "    # sex: TODO (F|M)", "    # mass_kg: TODO", "    # height_m: TODO"]
    else:
        out.append("subjects: []  # TODO: no subject could be read from the file paths")
    out.append("")
    # sessions
    if sv.sessions:
        out.append("# One session per (subject, condition) found in the paths; ids must be unique in the consortium.")
        out.append("sessions:")
        for s in sv.sessions:
            out += [f"  - id: {_y(s.id)}", f"    subject: {_y(s.subject)}"]
            out.append(f"    condition: {s.condition}" if s.condition else
                       f"    # condition: TODO (one of {', '.join(vocab.CONDITIONS)})")
            if s.task:
                out.append(f"    task: {s.task}")
            elif s.tasks_seen:
                out.append(f"    # task: TODO (the files name several tasks: {', '.join(s.tasks_seen)}; "
                           "split the session or pick one)")
            else:
                out.append(f"    # task: TODO (one of {', '.join(vocab.TASKS)})")
            out += ["    # date: TODO (YYYY-MM-DD)", "    # terrain: TODO (e.g. treadmill, overground)",
                    f"    files: [{', '.join(json.dumps(g, ensure_ascii=False) for g in s.globs)}]"
                    f"  # {len(s.files)} file(s)"]
    else:
        out.append("sessions: []  # TODO: no session could be guessed from the file paths")
    if sv.unassigned:
        out.append("# TODO: no subject could be read from these paths; add sessions that claim them:")
        out += [f"#   {_c(f)}" for f in sv.unassigned]
    if sv.failed:
        out.append("# Files that could not be read (they will be quarantined until fixed or removed):")
        out += [f"#   {_c(f)}: {code}: {_c(msg)}" for f, (code, msg) in sorted(sv.failed.items())]
    out.append("")
    # channels
    out.append(f"# EMG channel labels found: {len(sv.labels)}; {len(sv.resolved)} resolved by the vocabulary, "
               f"{n_todo} to map.")
    if sv.resolved:
        out.append("# Resolved (nothing to do; add an entry under channels: to override one):")
        for i in sv.resolved:
            r = i.resolution
            out.append(f"# {json.dumps(i.label, ensure_ascii=False)} -> {r.muscle} {r.side} ({_c(i.source)})")
    if sv.ignored_labels:
        shown = sorted(sv.ignored_labels, key=natural_key)
        more = f" and {len(shown) - 12} more" if len(shown) > 12 else ""
        out.append(f"# Judged not EMG (the ingest's rule; map one under channels: if it is EMG): "
                   f"{', '.join(json.dumps(x, ensure_ascii=False) for x in shown[:12])}{more}")
    if n_todo:
        out.append("# Not resolved: set muscle (one of schemas.vocab.MUSCLES) and side (L|R, U = none) for each entry,")
        out.append("# or write `ignore` (e.g. {ignore: footswitch}) for a channel that is not EMG. A TODO left here")
        out.append("# never blocks the site: that channel is skipped and recorded (quarantine, unmapped_channel).")
        out.append("channels:")
        for i in sv.unresolved:
            r = i.resolution
            muscle = r.muscle or "TODO"
            side = r.side or "TODO"
            hint = (f"suggestions: {', '.join(r.suggestions)}" if r.suggestions and not r.muscle
                    else "muscle from the label; side not" if r.muscle else "no close vocabulary match")
            out.append(f"  {json.dumps(i.label, ensure_ascii=False)}: {{muscle: {muscle}, side: {side}}}"
                       f"  # {hint}; in {i.files} of {sv.files_read} file(s)")
    else:
        out.append("channels: {}")
    return "\n".join(out) + "\n"


def scaffold_manifest(settings: Settings, site: str, *, max_files: int | None = None) -> str:
    """Manifest text for ``inbox/<site>/`` built from the files present (see the module docstring).

    Raises
    ------
    FileNotFoundError
        The site has no inbox folder.
    """
    fs = zones.filesystem(settings)
    if not fs.exists(zones.inbox(settings, site)):
        raise FileNotFoundError(f"no inbox folder for site '{site}': {zones.inbox(settings, site)}")
    return render_manifest(survey_site(settings, site, max_files=max_files))


__all__ = ["scaffold_manifest", "survey_site", "render_manifest", "guess_parts", "session_globs", "SiteSurvey",
           "mains_vote"]
