"""How the contract checks read pyarrow columns value by value (:mod:`warehouse.ingest.validation`'s pyarrow
engine): dictionary columns through their entries and indices, keys compared row to row, the rows that break a
row-level expectation. No I/O."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def plain(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column's values (a dictionary column decoded: one value per row)."""
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


def dictionary_parts(col: pa.ChunkedArray) -> tuple[pa.Array, pa.Array] | None:
    """``(indices, dictionary)`` of a dictionary column whose chunks share one dictionary, else None. The ingest's
    long tables carry the trial id so (one entry, ``warehouse.ingest.tables.repeated``): a check of the entry
    applies to every row, where casting the column back to strings built one string per row."""
    if not pa.types.is_dictionary(col.type) or col.num_chunks == 0:
        return None
    dictionary = col.chunk(0).dictionary
    if any(not c.dictionary.equals(dictionary) for c in col.chunks[1:]):
        return None
    return pa.concat_arrays([c.indices for c in col.chunks]), dictionary


def comparable(col: pa.ChunkedArray):
    """A column whose order and equality from row to row are the values': a dictionary column's indices when its
    entries strictly increase and none is null (then indices compare as the values do), else the values."""
    parts = dictionary_parts(col)
    if parts is not None:
        indices, dictionary = parts
        if dictionary.null_count == 0 and (len(dictionary) < 2 or bool(
                pc.all(pc.greater(dictionary.slice(1), dictionary.slice(0, len(dictionary) - 1))).as_py())):
            return indices
    return plain(col)


def codes(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.Array | None]:
    """``(codes, dictionary)`` for string columns (group-by on integers is ~2x faster), else ``(col, None)``."""
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return col, None
    enc = pc.dictionary_encode(col.combine_chunks())
    return pa.chunked_array([enc.indices]), enc.dictionary


def strictly_increasing(batch: pa.Table, keys) -> bool:
    """True when the key tuple strictly increases from row to row (so it is unique)."""
    n = batch.num_rows
    if n < 2:
        return True
    acc = None
    for k in reversed(list(keys)):
        col = comparable(batch.column(k))
        a, b = col.slice(1), col.slice(0, n - 1)
        gt = pc.greater(a, b)
        acc = gt if acc is None else pc.or_kleene(gt, pc.and_kleene(pc.equal(a, b), acc))
    return bool(pc.all(pc.fill_null(acc, False)).as_py())


def row_mask(expectation: str, args: dict, col):
    """The values of ``col`` (an array or a chunked array) that break the row-level ``expectation``."""
    valid = pc.invert(pc.is_null(col, nan_is_null=True))
    if expectation == "expect_column_values_to_not_be_null":
        return pc.invert(valid)
    if expectation == "expect_column_values_to_be_in_set":
        value_set = pa.array(args["value_set"]).cast(col.type)
        return pc.and_(valid, pc.invert(pc.is_in(col, value_set=value_set)))
    lo, hi = args.get("min_value"), args.get("max_value")
    bad = pa.array(np.zeros(len(col), bool))
    if lo is not None:
        bad = pc.or_(bad, pc.less(col, lo))
    if hi is not None:
        bad = pc.or_(bad, pc.greater(col, hi))
    return pc.and_(valid, bad)
