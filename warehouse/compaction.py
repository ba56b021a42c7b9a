"""Size-tiered compaction of the lake's Parquet files: which files :func:`warehouse.catalog.compact` merges
(issue 17). No I/O of its own: it reads DuckLake's metadata through the connection it is given.

Files below :data:`COMPACT_SMALL_BYTES` (4 MiB: Parquet files should be "at least a few megabytes", DuckLake's
advice) are merged whenever a table has two; above it, files fall in bands ``[SMALL * R^(i-1), SMALL * R^i)``
(R = :data:`COMPACT_RATIO`) merged once a band holds R files; files of :data:`COMPACT_MAX_BYTES` (DuckLake's own
target file size) or more are never rewritten. Each byte is so rewritten about log_R(MAX / SMALL) times in its
life, a night rewrites what it wrote and a bounded amount more, and a table keeps at most R - 1 files per band
besides its full-size ones. Measured 7 Dec: merging everything below 512 MB rewrote a 78-trial lake's 83 MB of
EMG samples for a night of 2 new trials (3.3 s of that night's 10.5 s; 0.5 s tiered).
"""
from __future__ import annotations

#: Files below this size merge whenever a table has two (bytes).
COMPACT_SMALL_BYTES = 4 << 20
#: A band merges once it holds this many files; the next band's bounds are this many times larger.
COMPACT_RATIO = 4
#: Files of this size or more are never rewritten (DuckLake's default target file size, bytes).
COMPACT_MAX_BYTES = 512 << 20


def bands() -> list[tuple[int, int, int]]:
    """``(lower, upper, files needed)`` of each size band, smallest first (bytes; lower inclusive)."""
    out, lo, hi = [(0, COMPACT_SMALL_BYTES, 2)], COMPACT_SMALL_BYTES, COMPACT_SMALL_BYTES * COMPACT_RATIO
    while lo < COMPACT_MAX_BYTES:
        out.append((lo, min(hi, COMPACT_MAX_BYTES), COMPACT_RATIO))
        lo, hi = hi, hi * COMPACT_RATIO
    return out


def merges_due(con, lake: str) -> list[tuple[str, int, int, int]]:
    """``(table, lower, upper, bytes)`` of every band of a table of the DuckLake catalog attached as ``lake``
    holding enough active files to be merged (read from DuckLake's metadata tables)."""
    meta = f"__ducklake_metadata_{lake}"
    sizes: dict[str, list[int]] = {}
    for table, size in con.execute(
            f"SELECT t.table_name, f.file_size_bytes FROM {meta}.ducklake_data_file f JOIN {meta}.ducklake_table t "
            "USING (table_id) WHERE f.end_snapshot IS NULL AND t.end_snapshot IS NULL").fetchall():
        sizes.setdefault(table, []).append(int(size))
    return [(table, lo, hi, sum(b for b in got if lo <= b < hi)) for table, got in sorted(sizes.items())
            for lo, hi, need in bands() if sum(lo <= b < hi for b in got) >= need]


def replaced_all_past(con, lake: str, grace: str) -> bool:
    """Whether files replaced by earlier compactions wait for deletion and every one of them was replaced more than
    ``grace`` (a SQL interval) ago. DuckLake 1.5.5's own ``ducklake_cleanup_old_files(older_than => ...)`` deleted
    files replaced a second before, with a SQLite catalog (measured 7 Dec: ``older_than => now() - INTERVAL '1
    hour'`` and the ``delete_older_than`` option alike): a query planned on the previous snapshot would no longer
    find them. The time is compared here, in DuckDB, and the files are deleted only when all are past it."""
    meta = f"__ducklake_metadata_{lake}"
    n, past = con.execute(
        f"SELECT count(*), bool_and(schedule_start::TIMESTAMPTZ < now() - INTERVAL '{grace}') "
        f"FROM {meta}.ducklake_files_scheduled_for_deletion").fetchone()
    return bool(n) and bool(past)
