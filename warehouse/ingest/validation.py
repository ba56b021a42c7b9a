"""Contract validation of lake batches (Great Expectations 1.x + full-batch pyarrow checks).

Every expectation is derived from :mod:`schemas.contracts`; nothing is written by
hand. One :class:`~schemas.contracts.Table` gives one expectation suite
(:func:`suite_for`):

* ``expect_table_columns_to_match_set`` (exact set, **order ignored**: the ingest
  inserts ``BY NAME``, so column order in a batch does not matter);
* ``expect_column_values_to_not_be_null`` for every non-nullable column;
* ``expect_column_values_to_be_in_set`` for ``allowed`` (a ``None`` in ``allowed``
  only means "nullable" and is dropped from the set);
* ``expect_column_values_to_be_between`` for ``range`` (``None`` = open end);
* ``expect_column_values_to_be_unique`` (one-column key) or
  ``expect_compound_columns_to_be_unique`` (compound key) for the primary key.

Column types are checked here, not by GX (its type expectations see pandas dtypes, after nullable
integers became floats): ``expect_column_type_to_be_compatible`` compares each Arrow column type with
the contract's DuckDB type (integers must fit; :func:`~warehouse.ingest.column_types.type_problem`).

Large batches
-------------
A batch with more than ``max_rows_to_pandas`` rows is never converted to pandas as a
whole. GX runs the full suite on a deterministic subset (first row, every k-th row,
last row; :func:`subset_indices`), and the row-level checks (nulls, allowed values,
ranges, key uniqueness) are repeated on **all** rows with vectorised pyarrow compute.
Key uniqueness uses a cheap "key strictly increasing in ``sort_by`` order" test and
falls back to a hash group-by when the batch is not sorted. The reported counts and
examples of these checks then come from the full batch.

NaN counts as missing, as in pandas/GX: it fails ``not_null`` and is ignored by the set and range checks.

``import great_expectations`` costs seconds; it happens lazily, once per process, and the ephemeral
context, data source, batch definitions and suites are cached here.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.contracts import TABLES, Table, data_dictionary_markdown
from warehouse.ingest import arrow_values
from warehouse.ingest.column_types import normalise_type, type_problem

__all__ = ["ValidationReport", "suite_for", "contract_expectations", "validate_batch", "subset_indices", "type_problem",
           "validations_table", "write_data_dictionary", "schema_drift", "VALIDATION_COLUMNS"]

N_EXAMPLES = 3
TYPE_EXPECTATION = "expect_column_type_to_be_compatible"
#: Expectations evaluated row by row, repeated with pyarrow on all rows of large batches.
ROW_LEVEL = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set",
             "expect_column_values_to_be_between", "expect_column_values_to_be_unique",
             "expect_compound_columns_to_be_unique")
#: Columns of the ``validations`` table (:meth:`ValidationReport.to_rows`).
VALIDATION_COLUMNS = ("run_id", "trial_id", "table_name", "expectation", "column_name", "success",
                      "unexpected_count", "detail")

_LOCK = threading.RLock()
_STATE: dict[str, Any] = {}  # gx, context, datasource, batch_defs {name: bd}, suites {name: (Table, suite)}


# --------------------------------------------------------------------------- GX plumbing
def _gx():
    """The ``great_expectations`` module, imported on first use (several seconds)."""
    with _LOCK:
        if "gx" not in _STATE:
            import great_expectations as gx
            _STATE["gx"] = gx
        return _STATE["gx"]


def _context():
    """Cached ephemeral GX context with one pandas data source (no files, no analytics, no progress bars)."""
    with _LOCK:
        if "context" not in _STATE:
            gx = _gx()
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )
            cfg = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(),
                                    progress_bars=ProgressBarsConfig(globally=False), analytics_enabled=False)
            ctx = gx.get_context(mode="ephemeral", project_config=cfg)
            _STATE["datasource"] = ctx.data_sources.add_pandas("myomap")
            _STATE["batch_defs"], _STATE["suites"] = {}, {}
            _STATE["context"] = ctx
        return _STATE["context"]


def _cached_suite(table: Table):
    cached = _STATE["suites"].get(table.name)
    if cached is None or cached[0] != table:  # rebuilt when the contract changed in-process
        cached = _STATE["suites"][table.name] = (table, suite_for(table))
    return cached[1]


def _batch_definition(name: str):
    bds = _STATE["batch_defs"]
    if name not in bds:
        bds[name] = _STATE["datasource"].add_dataframe_asset(name).add_batch_definition_whole_dataframe("batch")
    return bds[name]


def _allowed(column) -> list | None:
    if column.allowed is None:
        return None
    values = [v for v in column.allowed if v is not None]
    return values or None


def contract_expectations(table: Table) -> list[tuple[str, dict]]:
    """The expectations of one contract table, in order: ``(expectation type, kwargs)``.

    The single source of :func:`suite_for` (GX) and of the pyarrow engine of :func:`validate_batch`.
    """
    out: list[tuple[str, dict]] = [("expect_table_columns_to_match_set",
                                    {"column_set": table.column_names, "exact_match": True})]
    for c in table.columns:
        if not c.nullable:
            out.append(("expect_column_values_to_not_be_null", {"column": c.name}))
        allowed = _allowed(c)
        if allowed:
            out.append(("expect_column_values_to_be_in_set", {"column": c.name, "value_set": allowed}))
        if c.range and (c.range[0] is not None or c.range[1] is not None):
            out.append(("expect_column_values_to_be_between",
                        {"column": c.name, "min_value": c.range[0], "max_value": c.range[1]}))
    if len(table.primary_key) == 1:
        out.append(("expect_column_values_to_be_unique", {"column": table.primary_key[0]}))
    elif table.primary_key:
        out.append(("expect_compound_columns_to_be_unique", {"column_list": list(table.primary_key)}))
    return out


def suite_for(table: Table):
    """Build the GX expectation suite of one contract table, from the contract only.

    Parameters
    ----------
    table : schemas.contracts.Table
        The contract.

    Returns
    -------
    great_expectations.ExpectationSuite
        Named ``myomap.<table>``; every expectation carries ``meta={"contract": <table>}``.
        Column set (unordered, exact), not-null for non-nullable columns, value sets
        for ``allowed``, bounds for ``range`` and uniqueness of the primary key.
    """
    gx = _gx()
    _context()  # GX 1.x needs an active context to build suites
    meta = {"contract": table.name}
    suite = gx.ExpectationSuite(name=f"myomap.{table.name}", meta={"source": "schemas/contracts.py"})
    for etype, kwargs in contract_expectations(table):
        suite.add_expectation(getattr(gx.expectations, etype.title().replace("_", ""))(**kwargs, meta=meta))
    return suite


# --------------------------------------------------------------------------- report
@dataclass
class ValidationReport:
    """Outcome of validating one batch against its contract.

    Attributes
    ----------
    table : str
        Contract table name.
    success : bool
        All expectations passed.
    n_rows : int
        Rows in the batch.
    results : list of dict
        One per expectation: ``expectation``, ``column`` (comma-joined for compound
        keys, ``None`` for table-level), ``args``, ``success``, ``element_count``
        (rows checked), ``unexpected_count``, ``unexpected_examples``,
        ``unexpected_rows`` (row numbers in the batch), ``observed``, ``engine``, ``detail``.
    gx_rows : int
        Rows handed to GX (``n_rows`` unless the batch was subsampled).
    full_batch_arrow : bool
        Row-level checks were repeated on all rows with pyarrow (large batch).
    """

    table: str
    success: bool
    n_rows: int
    results: list[dict] = field(default_factory=list)
    gx_rows: int = 0
    full_batch_arrow: bool = False

    @property
    def failures(self) -> list[dict]:
        return [r for r in self.results if not r["success"]]

    def render_text(self) -> str:
        """GX-style summary: a header, then one ``✔``/``✘`` line per expectation."""
        n_fail = len(self.failures)
        verdict = "passed" if self.success else f"FAILED ({n_fail} of {len(self.results)} expectations)"
        lines = [f"Validation of {self.table}: {verdict}; {self.n_rows:,} rows."]
        if self.full_batch_arrow:
            lines.append(f"  GX ran on a deterministic subset of {self.gx_rows:,} rows; nulls, allowed values, "
                         f"ranges and key uniqueness were checked on all {self.n_rows:,} rows with pyarrow.")
        for r in self.results:
            head = f"{'✔' if r['success'] else '✘'} {r['expectation']}({_render_args(r)})"
            lines.append(head if r["success"] else f"{head}: {r['detail']}")
        return "\n".join(lines)

    def to_rows(self, run_id: str, trial_id: str | None) -> list[dict]:
        """Rows for the ``validations`` table (keys = :data:`VALIDATION_COLUMNS`)."""
        return [{"run_id": run_id, "trial_id": trial_id, "table_name": self.table,
                 "expectation": r["expectation"], "column_name": r["column"], "success": bool(r["success"]),
                 "unexpected_count": r["unexpected_count"],
                 "detail": f"{r['detail'] or 'ok'} [{r['engine']}]"} for r in self.results]


class _Missing:
    """GX/pandas cannot tell NULL from NaN; shown as such in not-null examples."""

    def __repr__(self) -> str:
        return "NULL/NaN"


def _fmt(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, dict):
        v = tuple(v.values())
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return str(v)


def _render_args(r: dict) -> str:
    a = r["args"]
    if r["expectation"] == "expect_table_columns_to_match_set":
        return f"{len(a['column_set'])} columns"
    if r["expectation"] == "expect_column_values_to_be_in_set":
        vs = a["value_set"]
        shown = ", ".join(map(str, vs[:6])) + (f", ... {len(vs)} values" if len(vs) > 6 else "")
        return f"{r['column']}, {{{shown}}}"
    if r["expectation"] == "expect_column_values_to_be_between":
        lo, hi = (int(x) if isinstance(x, float) and x.is_integer() else x
                  for x in (a.get("min_value"), a.get("max_value")))
        return f"{r['column']}, {lo}, {hi}"
    if r["expectation"] == TYPE_EXPECTATION:
        return f"{r['column']}, {a['dtype']}"
    return r["column"] or ""


def _row_detail(r: dict) -> str:
    n, u = r["element_count"], r["unexpected_count"]
    text = f"{u:,} of {n:,} rows unexpected" if n is not None else f"{u:,} rows unexpected"
    ex = r["unexpected_examples"][:N_EXAMPLES]
    if ex:
        rows = r["unexpected_rows"][:N_EXAMPLES]
        parts = [f"{_fmt(v)} (row {i:,})" for v, i in zip(ex, rows)] if len(rows) == len(ex) else map(_fmt, ex)
        text += ", e.g. " + "; ".join(parts)
    return text


def _result(expectation, columns, args, *, success, engine, element_count=None, unexpected_count=None,
            examples=(), rows=(), observed=None, detail="") -> dict:
    r = {"expectation": expectation, "column": ", ".join(columns) if columns else None, "args": args,
         "success": bool(success), "element_count": element_count, "unexpected_count": unexpected_count,
         "unexpected_examples": list(examples)[:N_EXAMPLES], "unexpected_rows": [int(i) for i in rows][:N_EXAMPLES],
         "observed": observed, "engine": engine, "detail": detail}
    if not success and not detail and unexpected_count is not None:
        r["detail"] = _row_detail(r)
    return r


# --------------------------------------------------------------------------- GX results
def _exception_message(info) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    msgs = [v.get("exception_message") for v in info.values() if isinstance(v, dict) and v.get("exception_message")]
    return "; ".join(dict.fromkeys(msgs)) or None


def _from_gx(vr, row_of, batch_columns) -> dict:
    cfg = vr.expectation_config
    kw = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
    columns = kw.get("column_list") or ([kw["column"]] if "column" in kw else [])
    res = vr.result or {}
    error = _exception_message(vr.exception_info)
    missing = [c for c in columns if c not in batch_columns]
    if missing:
        return _result(cfg.type, columns, kw, success=False, engine="great_expectations",
                       detail=f"not evaluated: column {', '.join(missing)} missing from the batch")
    if error:
        return _result(cfg.type, columns, kw, success=False, engine="great_expectations",
                       detail=f"not evaluated: {error}")
    if cfg.type == "expect_table_columns_to_match_set":
        mism = (res.get("details") or {}).get("mismatched") or {}
        detail = "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in mism.items() if v)
        return _result(cfg.type, [], kw, success=vr.success, engine="great_expectations",
                       observed=res.get("observed_value"), detail="" if vr.success else detail or "column set differs")
    idx = res.get("partial_unexpected_index_list") or []
    examples = res.get("partial_unexpected_list") or []
    if cfg.type == "expect_column_values_to_not_be_null":
        examples = [_Missing()] * len(examples)
    return _result(cfg.type, columns, kw, success=vr.success, engine="great_expectations",
                   element_count=res.get("element_count"), unexpected_count=res.get("unexpected_count"),
                   examples=examples, rows=[row_of(i) for i in idx])


def _run_gx(table: Table, batch: pa.Table, rows: np.ndarray | None) -> list[dict]:
    """Run the cached suite through GX on ``batch`` (or on ``batch.take(rows)``)."""
    sub = batch if rows is None else batch.take(pa.array(rows))
    df = sub.to_pandas()
    with _LOCK:
        _context()
        suite = _cached_suite(table)
        result = _batch_definition(table.name).get_batch(batch_parameters={"dataframe": df}).validate(
            suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": N_EXAMPLES})
    row_of = (lambda i: i) if rows is None else (lambda i: rows[int(i)])
    by_key = {_key(vr.expectation_config.type, vr.expectation_config.kwargs): vr for vr in result.results}
    # keep the suite's (contract) order, not GX's metric-resolution order
    return [_from_gx(by_key[_key(e.expectation_type, e.configuration.kwargs)], row_of, batch.column_names)
            for e in suite.expectations]


def _key(etype: str, kwargs) -> tuple:
    return etype, kwargs.get("column"), tuple(kwargs.get("column_list") or ())


# --------------------------------------------------------------------------- pyarrow checks
def subset_indices(n_rows: int, max_rows: int) -> np.ndarray | None:
    """Rows GX sees: ``None`` (all) when ``n_rows <= max_rows``, else first, every k-th and last row.

    ``k = ceil(n_rows / (max_rows - 1))``, so the subset never exceeds ``max_rows``.
    """
    if n_rows <= max_rows:
        return None
    k = math.ceil(n_rows / (max_rows - 1))
    idx = np.arange(0, n_rows, k, dtype=np.int64)
    return idx if idx[-1] == n_rows - 1 else np.append(idx, n_rows - 1)


def _mask_result(expectation, columns, args, mask, values, n) -> dict:
    mask = mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask
    mask = pc.fill_null(mask, False)
    count = int(pc.sum(mask).as_py() or 0)
    rows = pc.indices_nonzero(mask).slice(0, N_EXAMPLES) if count else pa.array([], pa.uint64())
    examples = values.take(rows).to_pylist() if count else []
    return _result(expectation, columns, args, success=count == 0, engine="pyarrow", element_count=n,
                   unexpected_count=count, examples=examples, rows=rows.to_pylist())


def _arrow_unique(table: Table, batch: pa.Table, expectation, args) -> dict:
    keys, n = list(table.primary_key), batch.num_rows
    order = list(table.sort_by) if table.sort_by and set(table.sort_by) <= set(keys) else keys
    if arrow_values.strictly_increasing(batch, order):
        return _result(expectation, keys, args, success=True, engine="pyarrow", element_count=n, unexpected_count=0,
                       detail=f"key strictly increasing in ({', '.join(order)}) order")
    encoded = {k: arrow_values.codes(arrow_values.plain(batch.column(k))) for k in keys}
    plain = pa.table({k: codes for k, (codes, _) in encoded.items()})
    groups = plain.group_by(keys).aggregate([([], "count_all")])
    dup = groups.filter(pc.greater(groups["count_all"], 1))
    count = int(pc.sum(dup["count_all"]).as_py() or 0)
    dup = dup.slice(0, N_EXAMPLES)
    decoded = {k: (encoded[k][1].take(dup[k]) if encoded[k][1] is not None else dup[k]).to_pylist() for k in keys}
    examples = list(zip(*(decoded[k] for k in keys)))
    return _result(expectation, keys, args, success=count == 0, engine="pyarrow", element_count=n,
                   unexpected_count=count, examples=examples)


def _arrow_check(table: Table, batch: pa.Table, gx_result: dict) -> dict:
    """Repeat one row-level expectation on every row of ``batch`` with pyarrow."""
    try:
        return _arrow_check_unsafe(table, batch, gx_result)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        return _result(gx_result["expectation"], gx_result["column"].split(", "), gx_result["args"], success=False,
                       engine="pyarrow", detail=f"not evaluated on the full batch: {exc}")


def _arrow_check_unsafe(table: Table, batch: pa.Table, gx_result: dict) -> dict:
    e, args, n = gx_result["expectation"], gx_result["args"], batch.num_rows
    if e in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        return _arrow_unique(table, batch, e, args)
    col = batch.column(args["column"])
    parts = arrow_values.dictionary_parts(col)
    if parts is not None:  # the check on each dictionary entry, then per row through the indices
        indices, dictionary = parts
        mask = pc.take(arrow_values.row_mask(e, args, dictionary), indices)  # a null index: a null row
        return _mask_result(e, [args["column"]], args, pc.fill_null(mask, e == "expect_column_values_to_not_be_null"),
                            col, n)
    col = arrow_values.plain(col)
    if pa.types.is_null(col.type):  # nulls only (no side in an ultrasound file): typed as what is checked
        col = col.cast(pa.string() if e == "expect_column_values_to_be_in_set" else pa.float64())
    return _mask_result(e, [args["column"]], args, arrow_values.row_mask(e, args, col), col, n)


def _merge(gx_r: dict, ar: dict, gx_rows: int) -> dict:
    """Full-batch pyarrow result wins for counts/examples; success needs both engines."""
    if not gx_r["success"] and ar["success"]:  # cannot happen for a subset, but never hide a GX failure
        ar = dict(gx_r, detail=f"{gx_r['detail']} (GX on {gx_rows:,}-row subset)")
    out = dict(ar, engine=f"great_expectations ({gx_rows:,}-row subset) + pyarrow (all rows)",
               success=gx_r["success"] and ar["success"])
    out["gx_unexpected_count"] = gx_r["unexpected_count"]
    return out


def _run_arrow(table: Table, batch: pa.Table) -> list[dict]:
    """Every contract expectation on all rows with pyarrow, in contract order (no GX, no pandas)."""
    out = []
    for etype, kw in contract_expectations(table):
        columns = kw.get("column_list") or ([kw["column"]] if "column" in kw else [])
        if etype == "expect_table_columns_to_match_set":
            have, want = set(batch.column_names), set(table.column_names)
            detail = "; ".join(f"{k} {', '.join(sorted(v))}" for k, v in
                               (("unexpected", have - want), ("missing", want - have)) if v)
            out.append(_result(etype, [], kw, success=have == want, engine="pyarrow", observed=batch.column_names,
                               detail=detail))
            continue
        missing = [c for c in columns if c not in batch.column_names]
        if missing:
            out.append(_result(etype, columns, kw, success=False, engine="pyarrow",
                               detail=f"not evaluated: column {', '.join(missing)} missing from the batch"))
            continue
        out.append(_arrow_check(table, batch, {"expectation": etype, "args": kw, "column": ", ".join(columns)}))
    return out


# --------------------------------------------------------------------------- types
def _type_results(table: Table, batch: pa.Table) -> list[dict]:
    out = []
    for c in table.columns:
        if c.name not in batch.column_names:
            continue  # reported by expect_table_columns_to_match_set
        col = batch.column(c.name)
        problem = type_problem(c.dtype, col)
        out.append(_result(TYPE_EXPECTATION, [c.name], {"dtype": c.dtype}, success=problem is None,
                           engine="pyarrow (schema)", observed=str(col.type), detail=problem or ""))
    return out


# --------------------------------------------------------------------------- entry point
def validate_batch(table_name: str, batch: pa.Table, *, max_rows_to_pandas: int = 200_000,
                   engine: str = "great_expectations") -> ValidationReport:
    """Validate one batch (e.g. one trial's rows) against the contract of ``table_name``.

    Parameters
    ----------
    table_name : str
        A key of :data:`schemas.contracts.TABLES`.
    batch : pyarrow.Table
        The rows about to be written (a polars DataFrame is converted with ``to_arrow``).
    max_rows_to_pandas : int
        Largest batch GX sees whole. Above it GX validates :func:`subset_indices` rows
        and nulls / allowed values / ranges / key uniqueness are checked on all rows
        with pyarrow; the batch is never converted to pandas whole.
    engine : {"great_expectations", "pyarrow"}
        ``"pyarrow"`` checks the same expectations (:func:`contract_expectations`) on all rows
        with pyarrow compute only, in one pass per batch: no pandas, no GX (the nightly
        ingest's path; ~100x cheaper per batch than a GX validation).

    Returns
    -------
    ValidationReport
        ``success`` is False when any expectation (or a column type check) failed.

    Raises
    ------
    KeyError
        ``table_name`` is not a contract table.
    ValueError
        ``max_rows_to_pandas`` < 2, or an unknown ``engine``.
    """
    if table_name not in TABLES:
        raise KeyError(f"no contract for table {table_name!r}; known tables: {', '.join(sorted(TABLES))}")
    if max_rows_to_pandas < 2:
        raise ValueError(f"max_rows_to_pandas must be >= 2, got {max_rows_to_pandas}")
    if not isinstance(batch, pa.Table):
        batch = batch.to_arrow() if hasattr(batch, "to_arrow") else pa.table(batch)
    table, n = TABLES[table_name], batch.num_rows
    if engine == "pyarrow":
        results = _run_arrow(table, batch) + _type_results(table, batch)
        return ValidationReport(table=table_name, success=all(r["success"] for r in results), n_rows=n,
                                results=results, gx_rows=0, full_batch_arrow=True)
    if engine != "great_expectations":
        raise ValueError(f"unknown validation engine {engine!r}; use 'great_expectations' or 'pyarrow'")
    rows = subset_indices(n, max_rows_to_pandas)
    results = _run_gx(table, batch, rows)
    if rows is not None:
        gx_rows = len(rows)
        results = [_merge(r, _arrow_check(table, batch, r), gx_rows)
                   if r["expectation"] in ROW_LEVEL and r["unexpected_count"] is not None else r
                   for r in results]
    results += _type_results(table, batch)
    return ValidationReport(table=table_name, success=all(r["success"] for r in results), n_rows=n,
                            results=results, gx_rows=n if rows is None else len(rows),
                            full_batch_arrow=rows is not None)


# --------------------------------------------------------------------------- artefacts
def validations_table(rows: list[dict]) -> pa.Table:
    """Arrow table of :meth:`ValidationReport.to_rows` rows, typed like the ``validations`` contract."""
    schema = pa.schema([("run_id", pa.string()), ("trial_id", pa.string()), ("table_name", pa.string()),
                        ("expectation", pa.string()), ("column_name", pa.string()), ("success", pa.bool_()),
                        ("unexpected_count", pa.int64()), ("detail", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


def write_data_dictionary(path: str | Path) -> Path:
    """Write :func:`schemas.contracts.data_dictionary_markdown` to ``path`` (parents created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(data_dictionary_markdown() + "\n", encoding="utf-8")
    return p


def schema_drift(con) -> list[str]:
    """Differences between the live lake tables and the contracts (empty list when equal).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection with the lake attached as ``lake`` (``warehouse.catalog.connect``).

    Returns
    -------
    list of str
        Missing/extra tables, missing/extra columns, type and nullability mismatches
        and column-order differences (positional ``INSERT ... VALUES`` depends on order).
    """
    live: dict[str, list[tuple]] = {}
    for t, c, d, null in con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_catalog = 'lake' ORDER BY table_name, ordinal_position").fetchall():
        live.setdefault(t, []).append((c, d, null))
    out = []
    for name, table in TABLES.items():
        if name not in live:
            out.append(f"{name}: table missing from the lake (declared in schemas/contracts.py)")
            continue
        cols = {c: (d, null) for c, d, null in live[name]}
        for c in table.columns:
            if c.name not in cols:
                out.append(f"{name}.{c.name}: column missing from the lake (contract: {c.dtype})")
                continue
            dtype, null = cols[c.name]
            if normalise_type(dtype) != normalise_type(c.dtype):
                out.append(f"{name}.{c.name}: type {dtype} in the lake, {c.dtype} in the contract")
            if (null == "YES") != c.nullable:
                out.append(f"{name}.{c.name}: {'nullable' if null == 'YES' else 'NOT NULL'} in the lake, "
                           f"{'nullable' if c.nullable else 'NOT NULL'} in the contract")
        for c, d, _ in live[name]:
            if c not in table.column_names:
                out.append(f"{name}.{c}: extra column in the lake ({d}), not in the contract")
        common_live = [c for c, _, _ in live[name] if c in table.column_names]
        common_contract = [c for c in table.column_names if c in cols]
        if common_live != common_contract:
            out.append(f"{name}: column order differs (lake: {', '.join(common_live)}; "
                       f"contract: {', '.join(common_contract)})")
    for name in sorted(set(live) - set(TABLES)):
        out.append(f"{name}: extra table in the lake, not in the contracts")
    return out
