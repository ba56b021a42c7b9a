"""What a night knows of a site's ``files`` rows during the site's turn (issue 17).

A site's turn reads the site's ``files`` rows once (:func:`warehouse.ingest.steps.site_turn`). During the turn
only this night writes them (the night lease: ``myomap quarantine retry`` takes it too), and it writes them only
in :mod:`warehouse.ingest.steps`, which tells the turn what it may have written (:meth:`Turn.may_register`,
:meth:`Turn.may_assign`, :meth:`Turn.finished`). So a lookup whose answer is "no row" can be answered without
a query when the turn's rows had none and nothing written since could have made one:

- rows with a file's hash: a ``files`` row is only ever inserted for a hash the ingest registers;
- rows at a path: inserted only by that path's own processing, which notes the path when it is over;
- rows with a trial id: a trial id is only written as the ingest assigns it (its own file's row, its
  companions'), and a trial id starts with its site (``site:session:``; ids have no ``:``), so no other
  site's row has it.

Any other question, or any doubt, is still asked of the catalog. A file processed outside a turn (a retry,
a task on another worker) has no turn and queries as before.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable


class Turn:
    """A site's ``files`` rows at the start of its turn, and what the turn may have written since."""

    def __init__(self, rows: Iterable[tuple]):
        """``rows``: ``(path, sha256, status, size_bytes, trial_id)`` of every ``files`` row of the site."""
        rows = list(rows)
        self.shas = {r[1] for r in rows}
        self.paths = {r[0] for r in rows}
        self.trial_ids = {r[4] for r in rows if r[4] is not None}
        self._lock = threading.Lock()

    def no_rows_with_sha(self, sha: str) -> bool:
        with self._lock:
            return sha not in self.shas

    def no_rows_at_path(self, path: str) -> bool:
        with self._lock:
            return path not in self.paths

    def no_rows_with_trial_id(self, trial_id: str) -> bool:
        with self._lock:
            return trial_id not in self.trial_ids

    def may_register(self, sha: str) -> None:
        """A ``files`` row with these bytes may be written from now on."""
        with self._lock:
            self.shas.add(sha)

    def may_assign(self, trial_id: str) -> None:
        """Rows with this trial id may be written from now on."""
        with self._lock:
            self.trial_ids.add(trial_id)

    def finished(self, path: str) -> None:
        """The processing of ``path`` is over (whatever it wrote there is now in the catalog)."""
        with self._lock:
            self.paths.add(path)
