"""Can an Arrow column go into a DuckDB column of the contract's type? (pure; no I/O)

:func:`type_problem` is the column-type check of :mod:`warehouse.ingest.validation`
(``expect_column_type_to_be_compatible``); :func:`normalise_type` gives the canonical DuckDB
spelling that :func:`~warehouse.ingest.validation.schema_drift` compares.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["normalise_type", "type_problem"]

_INT_BOUNDS = {"TINYINT": (-2 ** 7, 2 ** 7 - 1), "SMALLINT": (-2 ** 15, 2 ** 15 - 1),
               "INTEGER": (-2 ** 31, 2 ** 31 - 1), "BIGINT": (-2 ** 63, 2 ** 63 - 1),
               "UTINYINT": (0, 2 ** 8 - 1), "USMALLINT": (0, 2 ** 16 - 1), "UINTEGER": (0, 2 ** 32 - 1),
               "UBIGINT": (0, 2 ** 64 - 1), "HUGEINT": (-2 ** 127, 2 ** 127 - 1)}
_ALIASES = {"INT": "INTEGER", "INT4": "INTEGER", "INT2": "SMALLINT", "INT8": "BIGINT", "INT1": "TINYINT",
            "LONG": "BIGINT", "SHORT": "SMALLINT", "REAL": "FLOAT", "FLOAT4": "FLOAT", "FLOAT8": "DOUBLE",
            "TEXT": "VARCHAR", "STRING": "VARCHAR", "BOOL": "BOOLEAN", "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
            "DATETIME": "TIMESTAMP"}


def normalise_type(dtype: str) -> str:
    """Canonical DuckDB spelling of a type name (``INT`` -> ``INTEGER``, ``TIMESTAMPTZ`` -> ...)."""
    d = " ".join(dtype.upper().split())
    return _ALIASES.get(d, d)


def type_problem(dtype: str, col: pa.ChunkedArray | pa.Array) -> str | None:
    """Why an Arrow column cannot be inserted into a DuckDB ``dtype`` column (``None`` when it can).

    Integer columns accept any Arrow integer type whose values fit the target width;
    FLOAT/DOUBLE accept floats, integers and decimals; VARCHAR accepts (large/view)
    strings; TIMESTAMP WITH TIME ZONE needs a tz-aware timestamp, TIMESTAMP a naive
    one; an all-null Arrow ``null`` column fits anything. Unknown types are not checked.
    """
    t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    d = normalise_type(dtype)
    if pa.types.is_null(t):
        return None
    if d in _INT_BOUNDS:
        if not pa.types.is_integer(t):
            return f"Arrow type {t} is not an integer type"
        mm = pc.min_max(col).as_py() if len(col) else {"min": None, "max": None}
        lo, hi = _INT_BOUNDS[d]
        if mm["min"] is not None and (mm["min"] < lo or mm["max"] > hi):
            return f"values {mm['min']}..{mm['max']} do not fit {d} [{lo}, {hi}]"
        return None
    checks = {"FLOAT": lambda: pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t),
              "VARCHAR": lambda: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t),
              "BOOLEAN": lambda: pa.types.is_boolean(t), "DATE": lambda: pa.types.is_date(t),
              "TIMESTAMP WITH TIME ZONE": lambda: pa.types.is_timestamp(t) and t.tz is not None,
              "TIMESTAMP": lambda: pa.types.is_timestamp(t) and t.tz is None}
    checks["DOUBLE"] = checks["FLOAT"]
    if d.startswith("DECIMAL") or d.startswith("NUMERIC"):
        ok = pa.types.is_decimal(t) or pa.types.is_integer(t)
    elif d in checks:
        ok = checks[d]()
    else:
        return None
    if ok:
        return None
    if d == "TIMESTAMP WITH TIME ZONE" and pa.types.is_timestamp(t):
        return f"Arrow type {t} is a naive timestamp (needs a time zone)"
    return f"Arrow type {t} is not compatible with {d}"
