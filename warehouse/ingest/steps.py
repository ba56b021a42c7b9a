"""Nightly ingest steps (storage side): register files, read + harmonise, commit trials.

Each public function takes small keys (site, relative path, sha256, trial id) and a
:class:`Settings`, opens its own catalog connection, and commits atomically: a trial
and all its rows (channels, samples, plates, GRF, events, file status) land in one
DuckLake transaction, so a killed run never leaves a partial trial.
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath

from schemas import contracts
from warehouse import catalog, faults, fresh_trials, trial_batch, zones
from warehouse.ingest import check_worker, inbox, limits, read_ahead, tables, turn, validation
from warehouse.ingest.harmonise import harmonise
from warehouse.ingest.manifest import ManifestError
from warehouse.ingest.readers import companions_for, is_companion, read_any
from warehouse.ingest.readers.base import ReaderError
from warehouse.ingest.site_sync import SiteScan, load_manifest, sync_site  # noqa: F401 (steps' API)
from warehouse.settings import Settings

log = logging.getLogger(__name__)

#: Outcome labels returned by :func:`process_file`.
SKIPPED, INGESTED, QUARANTINED, HELD, DUPLICATE = "skipped", "ingested", "quarantined", "held", "duplicate"
COMPANION = "companion"
#: The ingest checks every batch against its contract on all rows with pyarrow, one pass per table
#: (validation.validate_batch engine "pyarrow": the same expectations as the published GX suites,
#: ~0.4 s less per batch than a GX validation, measured in bench/nightly.py).
VALIDATION_ENGINE = "pyarrow"


class ContractViolation(Exception):
    """A batch broke its table contract; the file was quarantined."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --------------------------------------------------------------------------- files
def process_file(settings: Settings, site: str, rel_path: str, run_id: str, *, hold: str | None = None) -> dict:
    """Register one inbox file and ingest it if a session claims it.

    Returns a small dict: ``{"outcome", "sha256", "trial_id", "reason", "new"}`` where
    ``new`` says whether the lake changed. Re-processing bytes already ingested,
    quarantined or marked duplicate is a no-op; held files are re-checked each night.
    ``hold`` (a reason, e.g. the site's manifest problem) registers the file and holds it.
    """
    seen = {"hold": hold}
    result = _process_file(settings, site, rel_path, run_id, seen)
    result["new"] = result["outcome"] in (INGESTED, QUARANTINED, DUPLICATE) or not seen.get("registered")
    if result["outcome"] == COMPANION:
        result["new"] = not seen.get("registered")
    if result["outcome"] == SKIPPED:
        result["new"] = False
    return result


def _locate(settings: Settings, con, site: str, rel_path: str) -> str | inbox.Refusal:
    """Where to read the file from (the inbox, or the kept raw copy of a cleaned inbox), or why not."""
    src = f"{zones.inbox(settings, site)}/{rel_path}"
    if zones.exists(settings, src):
        verdict = inbox.inspect(settings, site, rel_path)
        return verdict if isinstance(verdict, inbox.Refusal) else src
    # a retry after the inbox was cleaned: read the kept original
    kept = con.execute("SELECT raw_path FROM files WHERE site_id = ? AND path = ? AND raw_path IS NOT NULL "
                       "ORDER BY received_at DESC LIMIT 1", [site, rel_path]).fetchone()
    if kept is None:
        raise FileNotFoundError(f"{src} is gone and was never registered")
    return kept[0]


#: A file whose bytes at its path have one of these statuses is not read again (a re-run night skips it).
DONE_STATUSES = ("ingested", "quarantined", "duplicate", "superseded")
#: (catalog, site, run id) -> (``{(path, sha256): status}``, :class:`turn.Turn`, ``{(path, inbox_stat): (sha256,
#: status)}``) while a night processes that site (:func:`site_turn`).
_SITE_TURNS: dict[tuple[str, str, str], tuple[dict[tuple[str, str], str], turn.Turn, dict]] = {}
_SITE_TURNS_LOCK = threading.Lock()


@contextmanager
def site_turn(settings: Settings, site: str, run_id: str) -> Iterator[set[tuple[str, int]]]:
    """While a night processes ``site``'s files in this process: the site's files that were done
    (:data:`DONE_STATUSES`) when its turn began, read in one query, so that :func:`process_file` skips
    bytes already done at their path without a query per file, and without reading them when the entry's
    metadata is what it was when they were hashed (``files.inbox_stat``, :func:`warehouse.zones.entry_stat`: a
    night with nothing new reads each entry's metadata and nothing else; an entry changed in any way is hashed
    again). Only paths with a single row for their bytes are listed; anything else, and
    every file this turn registers, is decided by the per-file query. The same rows answer a new file's
    lookups that find nothing (:mod:`warehouse.ingest.turn`). Yields ``{(path, size)}`` of the same
    files (:func:`read_ahead_file`'s hint)."""
    con = catalog.connect(settings)
    try:
        rows = con.execute("SELECT path, sha256, status, size_bytes, trial_id, inbox_stat FROM files "
                           "WHERE site_id = ?", [site]).fetchall()
    finally:
        con.close()
    rows_of = collections.Counter((p, h) for p, h, *_ in rows)
    done = {(p, h): st for p, h, st, *_ in rows if st in DONE_STATUSES and rows_of[p, h] == 1}
    by_stat = {(p, e): (h, done[p, h]) for p, h, *_, e in rows if e is not None and (p, h) in done}
    key = (settings.catalog, site, run_id)
    with _SITE_TURNS_LOCK:
        _SITE_TURNS[key] = (done, turn.Turn([r[:5] for r in rows]), by_stat)
    try:
        with trial_batch.deferring(settings):  # this thread's trials commit a few at a time (all at the end)
            yield {(p, size) for p, _, st, size, *_ in rows if st in DONE_STATUSES}
    finally:
        with _SITE_TURNS_LOCK:
            _SITE_TURNS.pop(key, None)


def _turn_of(settings: Settings, site: str, run_id: str) -> tuple[dict, turn.Turn | None, dict]:
    """The site's turn in this process (its done files by path and hash, its :class:`turn.Turn`, its done files by
    path and inbox metadata), or ``({}, None, {})``."""
    with _SITE_TURNS_LOCK:
        return _SITE_TURNS.get((settings.catalog, site, run_id), ({}, None, {}))


def _process_file(settings: Settings, site: str, rel_path: str, run_id: str, seen: dict) -> dict:
    name = PurePosixPath(rel_path).name
    done_at_start, tn, done_stat = _turn_of(settings, site, run_id)
    seen["turn"] = tn
    con = catalog.connect(settings)
    if trial_batch.defers(settings):  # a question to the catalog first commits the trials waiting
        con = trial_batch.FlushFirst(con, settings)
    try:
        src = _locate(settings, con, site, rel_path)
        if isinstance(src, inbox.Refusal):
            return _refuse(settings, con, site, src, run_id, seen)
        entry = zones.entry_stat(settings, src) if src.startswith(zones.inbox(settings, site) + "/") else None
        known = done_stat.get((rel_path, entry)) if entry is not None else None
        if known is not None:  # the entry is as it was when these bytes were done here: not read again
            seen["registered"] = True
            return {"outcome": SKIPPED, "sha256": known[0], "trial_id": None, "reason": known[1]}
        try:
            sha, size = zones.sha256_of(settings, src)
        except zones.NotARegularFile as exc:  # swapped for a link or a FIFO since it was inspected
            return _refuse(settings, con, site, inbox.Refusal(rel_path, "symlink" if exc.errno else "special_file",
                                                              f"Became {exc.strerror} while the night read it: "
                                                              "not followed."), run_id, seen)
        done = done_at_start.get((rel_path, sha))
        if done is not None:  # these bytes at this path were done before the site's turn began: nothing to do
            seen["registered"] = True
            return {"outcome": SKIPPED, "sha256": sha, "trial_id": None, "reason": done}
        rows = [] if tn is not None and tn.no_rows_with_sha(sha) else con.execute(
            "SELECT path, status FROM files WHERE sha256 = ? AND site_id = ?", [sha, site]).fetchall()
        mine = [s for p, s in rows if p == rel_path]
        seen["registered"] = bool(mine)
        if mine and mine[0] in DONE_STATUSES:
            return {"outcome": SKIPPED, "sha256": sha, "trial_id": None, "reason": mine[0]}
        raw = zones.store_raw(settings, src, sha, name)
        if not mine:
            # a new file's row is written in the transaction of its outcome (its trial's commit, its
            # quarantine, its hold): a killed run leaves the row and the outcome, or neither
            seen["register"] = (sha, site, rel_path, size, now(), raw, run_id, entry)
            if tn is not None:
                tn.may_register(sha)
            other_ingested = [p for p, s in rows if s == "ingested" and p != rel_path]
            if other_ingested:
                _register(settings, con, seen, "duplicate")
                return {"outcome": DUPLICATE, "sha256": sha, "trial_id": None,
                        "reason": f"same bytes as {other_ingested[0]}"}
        # bytes never seen at the site have no quarantine rows there (those are written with a files row)
        seen["fresh"] = not rows
        return _ingest_registered(settings, con, site, rel_path, run_id, seen, sha=sha, raw=raw)
    finally:
        if seen.get("turn") is not None:
            seen["turn"].finished(rel_path)
        con.close()


#: A ``files`` row, all columns: :func:`_register`, a quarantine's or a trial's transaction.
_INSERT_FILE = "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _file_row(register: tuple, status: str, session_id: str | None = None, trial_id: str | None = None) -> list:
    """The ``files`` row of ``register`` = (sha256, site, path, size, received_at, raw_path, run_id, inbox_stat)."""
    return [*register[:5], status, session_id, trial_id, *register[5:]]


def _register(settings, con, seen: dict, status: str) -> None:
    """Write a new file's deferred ``files`` row (``seen["register"]``) with ``status``, if not written yet."""
    register = seen.pop("register", None)
    if register is not None:
        catalog.write_atomically(settings, con, lambda c: c.execute(_INSERT_FILE, _file_row(register, status)),
                                 what="register file")


def _ingest_registered(settings, con, site, rel_path, run_id, seen, *, sha, raw) -> dict:
    """Read, harmonise, validate and commit a file (or hold or quarantine it); a new file's ``files`` row
    (``seen["register"]``) is written with its outcome."""
    name = PurePosixPath(rel_path).name
    parent = PurePosixPath(rel_path).parent
    siblings = zones.list_folder_files(settings, site, str(parent))
    if is_companion(name, siblings):
        _register(settings, con, seen, "held")  # waits for the file it accompanies
        return {"outcome": COMPANION, "sha256": sha, "trial_id": None, "reason": "companion file"}
    if seen.get("hold"):
        _register(settings, con, seen, "held")
        return {"outcome": HELD, "sha256": sha, "trial_id": None, "reason": seen["hold"].split(":")[0]}
    try:
        man = load_manifest(settings, site)
    except ManifestError as exc:
        _register(settings, con, seen, "held")
        return {"outcome": HELD, "sha256": sha, "trial_id": None, "reason": exc.reason_code}
    session = man.session_for(rel_path)
    if session is None:
        _register(settings, con, seen, "held")
        return {"outcome": HELD, "sha256": sha, "trial_id": None, "reason": "no session claims this file"}
    trial_id, known = _trial_id(con, site, session.id, rel_path, sha, seen.get("turn"))
    companions = {role: f"{zones.inbox(settings, site)}/{str(parent / cname).lstrip('./')}"
                  for role, cname in companions_for(name, siblings).items()}
    try:
        ahead = read_ahead.take(f"{zones.inbox(settings, site)}/{rel_path}", read_ahead.key(
            sha, companions, man.vertical_axis_for(session), settings.limits.reader_memory_bytes))
        if ahead is not None:  # read while the previous file was committed: the same bytes and options
            rec = ahead.result()
        else:
            with zones.local_files(settings, {"data": raw, **companions}) as local:
                limits.check_declared(local["data"], settings.limits)
                rec = read_any(local["data"], companions={k: v for k, v in local.items() if k != "data"},
                               memory_bytes=settings.limits.reader_memory_bytes,
                               vertical_axis=man.vertical_axis_for(session))
        if rec.duration_s <= 0:
            raise ReaderError("no_frames", "The file holds no samples.")
    except ReaderError as exc:
        _quarantine(settings, con, sha, site, rel_path, "read", exc.reason_code, exc.message, raw, run_id,
                    register=seen.pop("register", None))
        _quarantine_companions(settings, con, site, rel_path, companions, exc.reason_code, run_id)
        return {"outcome": QUARANTINED, "sha256": sha, "trial_id": None, "reason": exc.reason_code}
    except faults.StorageError:
        raise  # the lake's storage, not the file: the night stops and the file is read next time
    except Exception as exc:  # a reader bug must not stop the night: quarantine with the error
        log.exception("reader crashed on %s", rel_path)
        _quarantine(settings, con, sha, site, rel_path, "read", "reader_error",
                    f"The reader failed unexpectedly ({type(exc).__name__}: {str(exc)[:200]}); "
                    "report it with the file's sha256.", raw, run_id, register=seen.pop("register", None))
        _quarantine_companions(settings, con, site, rel_path, companions, "reader_error", run_id)
        return {"outcome": QUARANTINED, "sha256": sha, "trial_id": None, "reason": "reader_error"}
    chans, chan_issues = harmonise(rec, man.channels_for(session), emg_context=man.emg_context(session),
                                   default_side=man.default_side(session))
    companion_shas = [zones.sha256_of(settings, p)[0] for p in companions.values()]
    try:
        _commit_trial(settings, con, site=site, rel_path=rel_path, sha=sha, trial_id=trial_id,
                      session=session, rec=rec, chans=chans, chan_issues=chan_issues, raw=raw,
                      run_id=run_id, companion_shas=companion_shas, session_mains_hz=man.mains_hz,
                      register=seen.pop("register", None), known=known, fresh=seen.get("fresh", False),
                      mass_kg=next((s.get("mass_kg") for s in man.subjects
                                    if str(s.get("id")) == session.subject), None))
    except ContractViolation:
        _quarantine_companions(settings, con, site, rel_path, companions, "contract_violation", run_id)
        return {"outcome": QUARANTINED, "sha256": sha, "trial_id": None, "reason": "contract_violation"}
    return {"outcome": INGESTED, "sha256": sha, "trial_id": trial_id, "reason": None,
            "n_emg": len(chans), "n_plates": len(rec.plates), "n_events": len(rec.events)}


def read_ahead_file(settings: Settings, site: str, rel_path: str, *, done: set | None = None) -> None:
    """Start reading the inbox file ``rel_path`` in the background (:mod:`warehouse.ingest.read_ahead`)
    with the options its ingest will use, if a session claims it; never raises (the ingest reads in line).
    ``done``: the site's :func:`done_files`, read once per site (else read here)."""
    try:
        if settings.is_s3:
            return
        size = inbox.inspect(settings, site, rel_path)  # the cheap checks first: a re-run night stops here
        if isinstance(size, inbox.Refusal) or (rel_path, size) in (done if done is not None
                                                                   else done_files(settings, site)):
            return
        name, parent = PurePosixPath(rel_path).name, PurePosixPath(rel_path).parent
        siblings = zones.list_folder_files(settings, site, str(parent))
        if is_companion(name, siblings):
            return
        man = load_manifest(settings, site)
        session = man.session_for(rel_path)
        if session is None:
            return
        companions = {role: f"{zones.inbox(settings, site)}/{str(parent / cname).lstrip('./')}"
                      for role, cname in companions_for(name, siblings).items()}
        read_ahead.start(settings, f"{zones.inbox(settings, site)}/{rel_path}", companions,
                         man.vertical_axis_for(session))
    except Exception as exc:  # noqa: BLE001 - only an optimisation: the ingest reads the file itself
        log.debug("no read-ahead of %s/%s: %s", site, rel_path, exc)


def done_files(settings: Settings, site: str) -> set[tuple[str, int]]:
    """``(path, size)`` of the site's files already ingested, quarantined or set aside: one query per site
    for :func:`read_ahead_file` (a hint only: the ingest decides by the bytes' hash)."""
    con = catalog.connect(settings)
    try:
        return set(con.execute("SELECT path, size_bytes FROM files WHERE site_id = ? AND status IN "
                               f"({', '.join('?' * len(DONE_STATUSES))})", [site, *DONE_STATUSES]).fetchall())
    finally:
        con.close()


def trial_id_for(con, site: str, session_id: str, rel_path: str, sha: str) -> str:
    """``site:session:<opaque>``: the opaque part is the first 12 hex digits of the content hash of the
    first bytes ingested at this path (a corrected re-upload keeps its trial); no inbox path in it,
    which stays in ``files`` for the site's operators only."""
    return _trial_id(con, site, session_id, rel_path, sha)[0]


def _trial_id(con, site: str, session_id: str, rel_path: str, sha: str,
              tn: turn.Turn | None = None) -> tuple[str, bool]:
    """(:func:`trial_id_for`, whether a ``files`` row already has that trial id: a corrected re-upload).
    ``tn``: the site's turn, which answers the lookups that find nothing (:mod:`warehouse.ingest.turn`)."""
    prefix = f"{site}:{session_id}:"
    row = None if tn is not None and tn.no_rows_at_path(rel_path) else con.execute(
        "SELECT trial_id FROM files WHERE site_id = ? AND path = ? AND starts_with(trial_id, ?) "
        "ORDER BY received_at LIMIT 1", [site, rel_path, prefix]).fetchone()
    if row:
        return row[0], True
    key = sha
    while True:  # the same first bytes at another path (once superseded there): another opaque part
        tid = prefix + key[:12]
        if (tn is not None and tn.no_rows_with_trial_id(tid)) or not con.execute(
                "SELECT 1 FROM files WHERE trial_id = ? AND NOT (site_id = ? AND path = ?) LIMIT 1",
                [tid, site, rel_path]).fetchone():
            if tn is not None:
                tn.may_assign(tid)
            return tid, False  # no row at this path has the prefix, none elsewhere has the id: no row has it
        key = hashlib.sha256(f"{key}\0{rel_path}".encode("utf-8", "surrogateescape")).hexdigest()


def _quarantine_companions(settings, con, site: str, rel_path: str, companions: dict, code: str, run_id: str) -> None:
    """A companion waits (held) for the file it accompanies; when that file is quarantined, so is it, saying why."""
    prefix = f"{zones.inbox(settings, site)}/"
    for path in companions.values():
        rel = path.removeprefix(prefix)
        try:
            csha = zones.sha256_of(settings, path)[0]
        except (OSError, zones.NotARegularFile):
            continue
        held = con.execute("SELECT raw_path FROM files WHERE sha256 = ? AND site_id = ? AND path = ? AND status = "
                           "'held'", [csha, site, rel]).fetchone()
        if held:
            _quarantine(settings, con, csha, site, rel, "read", "companion_of_quarantined",
                        f"Read only with {rel_path}, which was quarantined ({code}): fix that file, then retry "
                        "both (`myomap quarantine retry`).", held[0], run_id)


def record_refusal(settings: Settings, site: str, refusal: dict, run_id: str) -> dict:
    """Record an inbox entry refused at scan (e.g. a name that is not UTF-8): ``process_file``'s result."""
    seen: dict = {}
    con = catalog.connect(settings)
    try:
        result = _refuse(settings, con, site, inbox.Refusal(**refusal), run_id, seen)
    finally:
        con.close()
    result["new"] = result["outcome"] != SKIPPED
    return result


def _refuse(settings, con, site: str, refusal: inbox.Refusal, run_id: str, seen: dict) -> dict:
    """Quarantine an entry whose bytes are never read: a ``files`` row (no raw copy) and its reason."""
    key = refusal.key
    row = con.execute("SELECT status FROM files WHERE sha256 = ? AND site_id = ? AND path = ?",
                      [key, site, refusal.path]).fetchone()
    seen["registered"] = row is not None
    if row is not None and row[0] == "quarantined":
        return {"outcome": SKIPPED, "sha256": key, "trial_id": None, "reason": "quarantined"}
    tn = _turn_of(settings, site, run_id)[1]
    if tn is not None:
        tn.may_register(key)
    try:
        _quarantine(settings, con, key, site, refusal.path, inbox.STAGE, refusal.reason_code, refusal.message,
                    None, run_id,
                    register=None if row else (key, site, refusal.path, refusal.size_bytes, now(), None, run_id, None))
    finally:
        if tn is not None:
            tn.finished(refusal.path)
    return {"outcome": QUARANTINED, "sha256": key, "trial_id": None, "reason": refusal.reason_code}


def _quarantine(settings, con, sha, site, rel_path, stage, code, message, raw, run_id, *, file_status=True,
                register: tuple | None = None):
    """Record a refusal: the JSON record in quarantine/, then the table rows in one transaction.

    ``register`` (the ``files`` row of a new file, :func:`_file_row`) is inserted in the same
    transaction, so that a killed run leaves either both rows or neither.
    """
    record = {"sha256": sha, "site_id": site, "path": rel_path, "stage": stage, "reason_code": code,
              "message": message, "quarantined_at": now(), "raw_path": raw, "run_id": run_id}
    zones.write_quarantine_record(settings, record)

    def body(c):
        if register:
            c.execute(_INSERT_FILE, _file_row(register, "quarantined"))
        c.execute("DELETE FROM quarantine WHERE sha256 = ? AND site_id = ? AND path = ? AND stage = ?",
                  [sha, site, rel_path, stage])
        c.execute("INSERT INTO quarantine BY NAME SELECT ? AS sha256, ? AS site_id, ? AS path, ? AS stage, "
                  "? AS reason_code, ? AS message, ? AS quarantined_at, ? AS raw_path, ? AS run_id",
                  list(record.values()))
        if file_status:
            c.execute("UPDATE files SET status = 'quarantined', run_id = ? WHERE sha256 = ? AND site_id = ? "
                      "AND path = ?", [run_id, sha, site, rel_path])
    catalog.write_atomically(settings, con, body, what="quarantine")


def _commit_trial(settings, con, *, site, rel_path, sha, trial_id, session, rec, chans, chan_issues, raw,
                  run_id, companion_shas, session_mains_hz=None, mass_kg=None, register=None, known=True, fresh=False):
    """Validate the trial's batches against their contracts, then commit them in one transaction.

    The checks' tables (QC and plausibility, computed in the check worker meanwhile: ``check_worker``) are
    collected inside that transaction, once the trial's other rows are in it, and validated there: the
    worker computes while this thread inserts. If they break their contracts the transaction is rolled back
    and the file quarantined, as for any other batch."""
    batches, checks = tables.trial_batches(trial_id, site=site, session=session, sha=sha, rec=rec, chans=chans,
                                           ingested_at=now(), mains_hz=session_mains_hz, mass_kg=mass_kg,
                                           start_checks=check_worker.start, defer_checks=True)
    reports = _validate(batches)
    checked: dict = {}  # the checks' tables and reports, collected once (a retried transaction reuses them)

    def collect() -> dict:
        if not checked:
            late = tables.check_batches(checks.result())
            checked.update(tables=late, reports=_validate(late))
        return checked

    def quarantine() -> None:
        _quarantine_contract(settings, con, {**reports, **collect()["reports"]}, site=site, rel_path=rel_path,
                             sha=sha, trial_id=trial_id, raw=raw, run_id=run_id, register=register)

    def late():  # inside the transaction, after the trial's other rows
        got = collect()
        if not all(r.success for r in got["reports"].values()):
            raise _ChecksBreakContracts
        return got["tables"], _validations({**reports, **got["reports"]}, run_id, trial_id)

    if not all(r.success for r in reports.values()):
        quarantine()
    try:
        _write_trial(settings, con, batches, late, site=site, rel_path=rel_path, sha=sha, trial_id=trial_id,
                     session=session, chan_issues=chan_issues, raw=raw, run_id=run_id,
                     companion_shas=companion_shas, register=register, known=known, fresh=fresh)
    except _ChecksBreakContracts:  # rolled back: nothing of the trial is in the lake
        quarantine()


class _ChecksBreakContracts(Exception):
    """The checks' tables break their contracts (raised inside the trial's transaction, which rolls back)."""


def _validate(batches: dict) -> dict:
    """Every non-empty batch checked against its contract: ``{table: report}``."""
    return {n: validation.validate_batch(n, t, engine=VALIDATION_ENGINE) for n, t in batches.items() if t.num_rows}


def _validations(reports: dict, run_id: str, trial_id: str):
    """The ``validations`` rows of ``reports``."""
    return validation.validations_table([row for r in reports.values() for row in r.to_rows(run_id, trial_id)])


def _quarantine_contract(settings, con, reports: dict, *, site, rel_path, sha, trial_id, raw, run_id,
                         register=None) -> None:
    """A batch broke its contract: record the validation results, quarantine the file.

    Raises
    ------
    ContractViolation
        Always: nothing of the trial is committed.
    """
    val = _validations(reports, run_id, trial_id)
    failed = [r for r in reports.values() if not r.success]
    message = ("The file's data breaks the table contracts (nothing was committed):\n"
               + "\n\n".join(r.render_text() for r in failed))

    def record(c):
        _record_validations(c, val, run_id, trial_id)
    catalog.write_atomically(settings, con, record, what="record validations")
    _quarantine(settings, con, sha, site, rel_path, "validate", "contract_violation", message, raw, run_id,
                register=register)
    raise ContractViolation(message)


def _record_validations(c, val, run_id: str, trial_id: str, *, replace: bool = True) -> None:
    """Replace this run's validation rows of the trial (inside the caller's transaction); ``replace=False``
    for a trial no file ever had (nothing of it can be recorded yet), or whose rows the caller deleted."""
    if replace:
        c.execute("DELETE FROM validations WHERE run_id = ? AND trial_id = ?", [run_id, trial_id])
    c.register("_val", val)
    c.execute("INSERT INTO validations BY NAME SELECT * FROM _val")
    c.unregister("_val")


#: What a corrected re-upload replaces: every table keyed by the trial (derived ones too, so that a step
#: without a ``derivations`` row has no rows of the trial: the derivations skip their deletes on that
#: promise), except the history of its files and validations.
REPLACED_ON_REINGEST = tuple(name for name, t in contracts.TABLES.items()
                             if "trial_id" in t.column_names and name not in ("files", "validations"))

def _write_trial(settings, con, batches, late, *, site, rel_path, sha, trial_id, session, chan_issues, raw,
                 run_id, companion_shas, register=None, known=True, fresh=False):
    """Replace the trial's rows, mark its file (and companions) ingested, record channel issues: one transaction
    (the trial's own, or its batch's during a night's site turn: :mod:`warehouse.trial_batch`).

    ``late()``: the trial's remaining batches and its ``validations`` rows, asked for inside the transaction
    once ``batches`` are inserted (what it raises rolls the transaction back), or before the trial waits in the
    batch. ``register``: the new file's ``files`` row (:func:`_file_row`), inserted here. ``known``: whether a
    ``files`` row already has the trial id (:func:`_trial_id`). ``fresh``: the site never had these bytes (so
    no quarantine rows of them). Both were read in the site's turn, which only this night writes to."""
    def replaced(c):
        # a trial's rows are only ever written here, together with its files row: a trial id no file ever
        # had is new, and nothing keyed by it exists yet (no deletes: each scans a big table once compacted).
        # A corrected re-upload: every row keyed by the trial is replaced, derived ones included
        for t in REPLACED_ON_REINGEST:
            c.execute(f"DELETE FROM {t} WHERE trial_id = ?", [trial_id])
        c.execute("DELETE FROM validations WHERE run_id = ? AND trial_id = ?", [run_id, trial_id])

    def statements(c):
        _file_statements(c, site=site, rel_path=rel_path, sha=sha, trial_id=trial_id, session=session,
                         chan_issues=chan_issues, raw=raw, run_id=run_id, companion_shas=companion_shas,
                         register=register, known=known, fresh=fresh)

    fresh_trials.forget(settings, trial_id)  # rows of an earlier commit of the trial are no longer the lake's
    if trial_batch.defers(settings):  # the night's site turn: the trial waits in the batch, its rows held
        more, val = late()
        written = {**batches, **more}
        fresh_trials.remember(settings, trial_id, written, pinned=True)
        trial_batch.add(settings, trial_batch.Waiting(trial_id, session.id, {**written, "validations": val},
                                                      replaced if known else None, statements))
        return

    def body(c):
        if known:
            replaced(c)
        _insert_batches(c, batches)
        more, val = late()
        _insert_batches(c, more)
        written.update(batches, **more)
        _record_validations(c, val, run_id, trial_id, replace=False)  # replaced: the run's rows deleted
        statements(c)
        faults.point("trial_commit", settings, engine="duckdb", path=f"{settings.zone('tables')}/...parquet")

    written: dict = {}
    catalog.write_atomically(settings, con, body, what=f"commit trial {trial_id}")
    fresh_trials.remember(settings, trial_id, written)  # committed: its derivations read these, not the catalog


def _file_statements(c, *, site, rel_path, sha, trial_id, session, chan_issues, raw, run_id, companion_shas,
                     register, known, fresh) -> None:
    """A committed trial's ``files`` row (and its companions'), its quarantine rows resolved, its channel issues
    recorded (inside the trial's transaction, after its rows)."""
    if register is not None:
        c.execute(_INSERT_FILE, _file_row(register, "ingested", session.id, trial_id))
    else:
        c.execute("UPDATE files SET status = 'ingested', session_id = ?, trial_id = ?, run_id = ? "
                  "WHERE sha256 = ? AND site_id = ? AND path = ?", [session.id, trial_id, run_id, sha, site, rel_path])
    # quarantine rows of these bytes (a retried file, a channel set aside before): one look, then the updates
    in_quarantine = not fresh and c.execute("SELECT count(*) FROM quarantine WHERE sha256 = ? AND site_id = ?",
                                            [sha, site]).fetchone()[0]
    if in_quarantine:
        c.execute("UPDATE quarantine SET resolved_at = now() WHERE sha256 = ? AND site_id = ? AND path = ? "
                  "AND stage <> 'harmonise' AND resolved_at IS NULL", [sha, site, rel_path])
    if known:  # a corrected re-upload (new bytes, same trial) supersedes the old file; both stay in raw/ and files
        c.execute("UPDATE files SET status = 'superseded', run_id = ? WHERE site_id = ? AND trial_id = ? "
                  "AND sha256 <> ? AND status = 'ingested' AND path = ?", [run_id, site, trial_id, sha, rel_path])
    # companions set aside with a quarantined main file: one look (an UPDATE costs ~0.15 s even of no row)
    set_aside = {r[0] for r in c.execute(
        "SELECT DISTINCT sha256 FROM quarantine WHERE site_id = ? AND list_contains(?, sha256) AND reason_code = "
        "'companion_of_quarantined' AND resolved_at IS NULL", [site, list(companion_shas)]).fetchall()
    } if companion_shas else set()
    for csha in companion_shas:
        c.execute("UPDATE files SET status = 'ingested', session_id = ?, trial_id = ?, run_id = ? "
                  "WHERE sha256 = ? AND site_id = ? AND status IN ('held', 'quarantined') AND sha256 NOT IN "
                  "(SELECT sha256 FROM quarantine WHERE site_id = ? AND resolved_at IS NULL AND reason_code <> "
                  "'companion_of_quarantined')", [session.id, trial_id, run_id, csha, site, site])
        if csha in set_aside:
            c.execute("UPDATE quarantine SET resolved_at = now() WHERE sha256 = ? AND site_id = ? AND reason_code "
                      "= 'companion_of_quarantined' AND resolved_at IS NULL", [csha, site])
    if in_quarantine:
        c.execute("UPDATE quarantine SET resolved_at = now() WHERE sha256 = ? AND site_id = ? AND path LIKE ? "
                  "AND resolved_at IS NULL", [sha, site, rel_path + "#%"])
    for label, code, message in chan_issues:
        p = f"{rel_path}#{label}"
        if in_quarantine:
            c.execute("DELETE FROM quarantine WHERE sha256 = ? AND site_id = ? AND path = ?", [sha, site, p])
        c.execute("INSERT INTO quarantine BY NAME SELECT ? AS sha256, ? AS site_id, ? AS path, 'harmonise' AS "
                  "stage, ? AS reason_code, ? AS message, ? AS quarantined_at, ? AS raw_path, ? AS run_id",
                  [sha, site, p, code, message, now(), raw, run_id])


def _insert_batches(c, batches: dict) -> None:
    for name, tbl in batches.items():
        if tbl.num_rows:
            c.register("_arrow_in", tbl)
            c.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _arrow_in")
            c.unregister("_arrow_in")


