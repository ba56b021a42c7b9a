"""The statement gate of ``myomap sql``: every statement parsed by DuckDB, every name allow-listed.

A hardened session (:func:`warehouse.serving.views.harden`) sends each statement
through :func:`check_statements` before DuckDB runs it. The gate **fails closed**:

* only queries run: ``SELECT`` (with ``FROM``-first, ``WITH``, ``VALUES``,
  ``DESCRIBE``, ``SUMMARIZE``, ``SHOW TABLES``) and ``EXPLAIN`` of a query;
  every other statement type is refused;
* the query's parse tree (DuckDB's own ``json_serialize_sql``) is walked and
  **every** function, table function, relation and parse-tree construct must be
  on an allow-list: :data:`SCALAR_FUNCTIONS` (analysis functions: arithmetic,
  maths, strings, dates, lists, structs, JSON values, aggregates, windows),
  :data:`TABLE_FUNCTIONS` (``range``, ``unnest``, DuckLake snapshot listings...),
  :data:`OPERATOR_TABLE_FUNCTIONS` for operators only, and as relations only the
  views of the session (plus the query's own CTEs and ``information_schema``).
  A function DuckDB or an extension adds tomorrow is refused until it is listed
  here; a file path, another catalog (``lake.main.files``,
  ``__ducklake_metadata_lake``) or time travel (``AT (...)``; use ``--as-of``)
  is refused;
* scanners, ``*_scan``/``*_query``/``*_execute``/``*_attach``, file readers,
  SQL-running and configuration-reading functions are refused **by name** with a
  reason (:func:`refusal_reason`).

Every refusal is a :class:`ReadOnlyViolation` whose message starts with ``Refused``.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field

import duckdb

#: Statement types a hardened session runs (for callers that classify statements).
QUERY_TYPES = frozenset({duckdb.StatementType.SELECT})
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?P<inner>.+)$", re.I | re.S)
_FIRST_WORD = re.compile(r"^(?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?P<word>[A-Za-z_]+)", re.S)
#: A relation or CTE name a query may use: a plain ASCII identifier (never a path, a URL or a look-alike).
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*|[-+*/%^&|<>=~!@#]+|!__postfix")
_local = threading.local()


def _parser() -> duckdb.DuckDBPyConnection:
    """A private, empty, locked connection per thread that only parses (``json_serialize_sql`` is the
    pure parser: no binder, no catalog, no PRAGMA handler; ``extract_statements`` is not used
    because it runs PRAGMA handlers, measured: ``pragma import_database`` opens files)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect(config={"enable_external_access": False, "autoload_known_extensions": False,
                                     "autoinstall_known_extensions": False, "lock_configuration": True})
        _local.con = con
    return con


class ReadOnlyViolation(duckdb.PermissionException):
    """A statement the session refuses (message starts with ``Refused``).

    Subclasses :class:`duckdb.Error` so callers that report DuckDB errors
    (``myomap sql``) report this one the same way.
    """


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Scalar, aggregate and window functions (and the operators the parser turns into functions).
SCALAR_FUNCTIONS = _names("""
+ - * / // % ** ^ & | << >> ~ @ !__postfix || ~~ !~~ ~~* !~~* ~~~ ^@ @> <@ && ->> <-> <=>
add subtract multiply divide mod fdiv fmod
abs acos acosh asin asinh atan atan2 atanh cbrt ceil ceiling cos cosh cot degrees radians even exp factorial
floor gamma lgamma gcd lcm greatest_common_divisor least_common_multiple isfinite isinf isnan ln log log10 log2
nextafter pi pow power round round_even roundbankers sign signbit sin sinh sqrt tan tanh trunc xor bit_count
greatest least random
ascii bar bit_length char_length character_length chr concat concat_ws contains damerau_levenshtein editdist3
ends_with format format_bytes formatreadabledecimalsize formatreadablesize hamming instr jaccard
jaro_similarity jaro_winkler_similarity lcase left len length levenshtein like_escape ilike_escape
not_like_escape not_ilike_escape lower lpad ltrim md5 mismatches nfc_normalize octet_length ord position
prefix printf regexp_escape regexp_extract regexp_extract_all regexp_full_match regexp_matches regexp_replace
regexp_split_to_array repeat replace reverse right rpad rtrim sha1 sha256 split split_part starts_with
str_split str_split_regex string_split string_split_regex string_to_array strip_accents strlen strpos substr
substring suffix translate trim ucase unicode upper hash base64 to_base64 from_base64 hex unhex to_hex
from_hex bin unbin to_binary from_binary to_base encode decode url_encode url_decode uuid gen_random_uuid
uuidv4 uuidv7 typeof
age century current_date current_localtime current_localtimestamp date_add date_diff date_part date_sub
date_trunc datediff datepart datesub datetrunc day dayname dayofmonth dayofweek dayofyear days_in_month
decade epoch epoch_ms epoch_ns epoch_us era get_current_time get_current_timestamp hour isodow isoyear julian
last_day make_date make_time make_timestamp make_timestamp_ms make_timestamp_ns make_timestamptz microsecond
millennium millisecond minute month monthname nanosecond normalized_interval now quarter second strftime
strptime try_strptime time_bucket timezone timezone_hour timezone_minute to_centuries to_days to_decades
to_hours to_microseconds to_millennia to_milliseconds to_minutes to_months to_quarters to_seconds
to_timestamp to_weeks to_years today transaction_timestamp week weekday weekofyear year yearweek
array_aggr array_aggregate array_append array_apply array_cat array_concat array_contains
array_cosine_distance array_cosine_similarity array_cross_product array_distance array_distinct
array_dot_product array_extract array_filter array_grade_up array_has array_has_all array_has_any
array_indexof array_inner_product array_intersect array_length array_pop_back array_pop_front array_position
array_prepend array_push_back array_push_front array_reduce array_resize array_reverse array_reverse_sort
array_select array_slice array_sort array_to_string array_transform array_unique array_value array_where
array_zip cardinality element_at flatten generate_series grade_up list_aggr list_aggregate list_any_value
list_append list_apply list_approx_count_distinct list_avg list_bit_and list_bit_or list_bit_xor
list_bool_and list_bool_or list_cat list_concat list_contains list_cosine_distance list_cosine_similarity
list_count list_distance list_distinct list_dot_product list_element list_entropy list_extract list_filter
list_first list_grade_up list_has list_has_all list_has_any list_histogram list_indexof list_inner_product
list_intersect list_kurtosis list_kurtosis_pop list_last list_mad list_max list_median list_min list_mode
list_pack list_position list_prepend list_product list_reduce list_resize list_reverse list_reverse_sort
list_select list_sem list_skewness list_slice list_sort list_stddev_pop list_stddev_samp list_string_agg
list_sum list_transform list_unique list_value list_var_pop list_var_samp list_where list_zip range reduce
apply filter unnest generate_subscripts
map map_concat map_contains map_contains_entry map_contains_value map_entries map_extract map_extract_value
map_from_entries map_keys map_values row struct_concat struct_contains struct_extract struct_extract_at
struct_has struct_indexof struct_insert struct_keys struct_pack struct_position struct_update struct_values
union_extract union_tag union_value
json json_array json_array_length json_contains json_exists json_extract json_extract_path
json_extract_path_text json_extract_string json_keys json_merge_patch json_object json_pretty json_quote
json_structure json_transform json_transform_strict json_type json_valid json_value to_json from_json
from_json_strict array_to_json row_to_json
nullif
any_value approx_count_distinct approx_quantile approx_top_k arbitrary arg_max arg_max_null arg_max_nulls_last
arg_min arg_min_null arg_min_nulls_last argmax argmin array_agg avg bit_and bit_or bit_xor bitstring_agg
bool_and bool_or corr count count_if count_star countif covar_pop covar_samp entropy favg first fsum
geomean geometric_mean group_concat histogram histogram_exact kahan_sum kurtosis kurtosis_pop last list
listagg mad max max_by mean median min min_by mode product quantile quantile_cont quantile_disc
reservoir_quantile regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy
regr_syy sem skewness stddev stddev_pop stddev_samp string_agg sum sum_no_overflow sumkahan var_pop var_samp
variance wavg weighted_avg json_group_array json_group_object json_group_structure
cume_dist dense_rank first_value fill lag last_value lead nth_value ntile percent_rank rank rank_dense
row_number
version
""")
#: Table functions anyone may call: generators and the DuckLake snapshot listings (no rows, no paths).
TABLE_FUNCTIONS = _names("""
range generate_series unnest json_each json_tree
ducklake_snapshots ducklake_current_snapshot ducklake_last_committed_snapshot
duckdb_columns duckdb_views duckdb_functions duckdb_types duckdb_keywords
""")
#: Table functions only operators may call: they read raw lake rows or file lists past the members' views.
OPERATOR_TABLE_FUNCTIONS = _names("""
ducklake_table_info ducklake_list_files ducklake_table_changes ducklake_table_insertions ducklake_table_deletions
duckdb_tables
""")
#: ``information_schema`` views that only describe (names and types).
INFORMATION_SCHEMA = _names("tables columns views schemata")
#: ``SHOW <x>`` a session answers (``SHOW TABLES``).
SHOW_ALLOWED = frozenset({'"tables"', "tables"})

_TABLE_REF_TYPES = frozenset({"BASE_TABLE", "EMPTY", "JOIN", "SUBQUERY", "PIVOT", "EXPRESSION_LIST",
                              "TABLE_FUNCTION", "SHOW_REF"})
_EXPRESSION_CLASSES = frozenset({"CONSTANT", "COLUMN_REF", "FUNCTION", "STAR", "OPERATOR", "CAST", "COMPARISON",
                                 "LAMBDA", "LAMBDA_REF", "SUBQUERY", "WINDOW", "POSITIONAL_REFERENCE",
                                 "PARAMETER", "CASE", "BETWEEN", "COLLATE", "CONJUNCTION", "DEFAULT"})
_QUALIFIERS = frozenset({"", "main", "system", "pg_catalog"})

#: Named refusals: (pattern, reason). The first match gives the message.
_REFUSED = (
    (re.compile(r"_(execute|query|attach)$|^(query|query_table|json_execute_serialized_sql|json_deserialize_sql)$"),
     "runs SQL or attaches a database past the gate"),
    (re.compile(r"^(sqlite|postgres|mysql|odbc|iceberg|delta|arrow|pandas|python|seq)_|_(scan|scan_pushdown)$"),
     "is a scanner: it reads databases and files past the lake's views"),
    (re.compile(r"^(read_|parquet_|glob$|sniff_csv$|summary$)"),
     "reads files: a session reads only the lake's views"),
    (re.compile(r"^(duckdb_(databases|secrets|settings|extensions|memory|temporary_files|logs|variables|"
                r"prepared_statements|external_file_cache)|which_secret|current_setting|getvariable|getenv|"
                r"pragma_|pg_)"),
     "shows connection details, settings or secrets"),
    (re.compile(r"^ducklake_|^(checkpoint|force_checkpoint|set_option|set_commit_message|commit|add_data_files|"
                r"cleanup_old_files|delete_orphaned_files|expire_snapshots|flush_inlined_data|"
                r"merge_adjacent_files|rewrite_data_files)$"),
     "maintains or writes the lake (measured: a clean-up deletes data files even on a read-only attach)"),
)


def refusal_reason(name: str) -> str:
    """Why a function that is not on the allow-list is refused (named refusals first): a phrase
    that follows the function's name ("... is a scanner: ...")."""
    for pattern, reason in _REFUSED:
        if pattern.search(name):
            return reason
    return "is not on the allow-list of analysis functions (docs/serving.md)"


@dataclass(frozen=True)
class Gate:
    """What one session may name: its views and, for operators, the operator table functions."""

    relations: frozenset[str] = field(default_factory=frozenset)
    operator: bool = False

    def check(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        check_statements(con, sql, self)


def _refuse(message: str) -> ReadOnlyViolation:
    return ReadOnlyViolation("Refused: " + message)


def _ascii_lower(text: str) -> str:
    """DuckDB folds ASCII letters only; so does the gate (Python's lower() maps e.g. the Kelvin sign to k)."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _check_function(node: dict, table: bool, gate: Gate) -> None:
    raw = str(node.get("function_name", ""))
    if not _FUNCTION_NAME.fullmatch(raw):
        raise _refuse(f"function name {raw[:60]!r}: only plain ASCII names are allowed.")
    name = _ascii_lower(raw)
    qualifier = (str(node.get("catalog") or "").lower(), str(node.get("schema") or "").lower())
    if qualifier[0] not in _QUALIFIERS or qualifier[1] not in _QUALIFIERS:
        raise _refuse(f"{'.'.join(p for p in qualifier if p)}.{name}: functions of other catalogs "
                      "(the lake's maintenance macros) are not available in a session: only DuckDB's own functions.")
    allowed = (TABLE_FUNCTIONS | (OPERATOR_TABLE_FUNCTIONS if gate.operator else frozenset())) if table \
        else SCALAR_FUNCTIONS
    if name not in allowed:
        kind = "table function" if table else "function"
        if table and name in OPERATOR_TABLE_FUNCTIONS:
            raise _refuse(f"{name} reads raw lake rows or file lists past your views "
                          "(operators only).")
        raise _refuse(f"{kind} {name} {refusal_reason(name)}.")


def _check_relation(node: dict, ctes: set[str], gate: Gate) -> None:
    name = str(node.get("table_name", ""))
    catalog, schema = str(node.get("catalog_name") or ""), str(node.get("schema_name") or "")
    shown = ".".join(p for p in (catalog, schema, name) if p)
    if not all(IDENTIFIER.fullmatch(p) for p in (catalog, schema, name) if p) or not name:
        what = "a file path or URL" if re.search(r"[/\\:.~]", name) else "not a plain ASCII name"
        raise _refuse(f"{shown[:120]!r} is {what}; a session reads only the lake's views (SHOW TABLES).")
    if node.get("at_clause"):
        raise _refuse(f"time travel on {name} (AT ...); open the session at a snapshot instead (--as-of).")
    catalog, schema, name = _ascii_lower(catalog), _ascii_lower(schema), _ascii_lower(name)
    if catalog in ("", "temp") and schema in ("", "main") and (name in gate.relations or name in ctes):
        return
    if catalog in ("", "system") and schema == "information_schema" and name in INFORMATION_SCHEMA:
        return
    if catalog or schema:
        raise _refuse(f"{shown} is not reachable: a session queries its own views, by their plain name "
                      "(SHOW TABLES).")
    raise _refuse(f"{shown} is not a view of this session (SHOW TABLES lists them; some tables are for operators "
                  "only).")


def _check_tree(tree: dict, gate: Gate) -> None:
    ctes: set[str] = set()
    stack: list = [tree]
    nodes = []
    while stack:  # first pass: CTE names anywhere in the query (scoping is DuckDB's job)
        n = stack.pop()
        if isinstance(n, dict):
            nodes.append(n)
            cte_map = n.get("cte_map")
            if isinstance(cte_map, dict):
                for e in cte_map.get("map", []):
                    key = str(e.get("key", "")) if isinstance(e, dict) else ""
                    if not IDENTIFIER.fullmatch(key):
                        raise _refuse(f"CTE name {key[:60]!r}: CTEs have plain ASCII names.")
                    ctes.add(_ascii_lower(key))
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)
    table_functions = {id(n["function"]) for n in nodes if n.get("type") == "TABLE_FUNCTION"
                       and isinstance(n.get("function"), dict)}
    for n in nodes:
        cls, typ = n.get("class"), n.get("type")
        if cls is not None:
            if cls not in _EXPRESSION_CLASSES:
                raise _refuse(f"a query construct the gate does not know ({cls}).")
            if "function_name" in n:
                _check_function(n, id(n) in table_functions, gate)
            continue
        if not isinstance(typ, str) or not {"alias", "sample", "query_location"} <= n.keys():
            continue  # not a table reference (query nodes, modifiers, types...)
        if typ not in _TABLE_REF_TYPES:
            raise _refuse(f"a table reference the gate does not know ({typ}).")
        if typ == "BASE_TABLE":
            _check_relation(n, ctes, gate)
        elif typ == "SHOW_REF" and n.get("query") is None and str(n.get("table_name", "")).lower() not in SHOW_ALLOWED:
            raise _refuse(f"SHOW {str(n.get('table_name', '')).strip(chr(34))}: a session shows its tables only "
                          "(SHOW TABLES, DESCRIBE <view>).")
        elif typ == "TABLE_FUNCTION" and not isinstance(n.get("function"), dict):
            raise _refuse("a table function the gate cannot read.")


def _parse(sql: str) -> dict:
    return json.loads(_parser().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])


def check_query(con: duckdb.DuckDBPyConnection | None, query: str, gate: Gate) -> None:
    """Refuse a text of SELECT statements unless every name in their parse trees is allowed
    (``con`` is not used: parsing happens in a private connection)."""
    check_statements(con, query, gate)


def check_statements(con: duckdb.DuckDBPyConnection | None, sql: str, gate: Gate) -> None:
    """Refuse ``sql`` unless every statement in it is an allowed query (or ``EXPLAIN [ANALYZE]`` of one).

    ``con`` is accepted for the callers' convenience and not used: the text is parsed
    by DuckDB's own parser in a private, empty, locked connection.

    Raises
    ------
    ReadOnlyViolation
        Naming the first refused statement, function or relation ("Refused: ...").
    """
    tree = _parse(sql)
    if tree.get("error"):
        m = _EXPLAIN.match(sql)
        inner = _parse(m.group("inner")) if m else tree
        if m and not inner.get("error") and len(inner.get("statements", [])) == 1:
            _check_tree(inner, gate)
            return
        first = _FIRST_WORD.match(sql)
        word = first.group("word").upper() if first else "?"
        if tree.get("error_type") == "parser":
            raise _refuse(f"text that does not parse: {tree.get('error_message')}")
        if word in ("SELECT", "FROM", "WITH", "VALUES", "TABLE", "SHOW", "DESCRIBE", "SUMMARIZE", "EXPLAIN", "PIVOT",
                    "UNPIVOT"):
            raise _refuse("the text holds a statement that is not a query (only queries run on the read-only "
                          "lake: SELECT, FROM, WITH, VALUES, SHOW TABLES, DESCRIBE, SUMMARIZE, EXPLAIN <query>; "
                          "PIVOT with an IN list).")
        raise _refuse(f"{word} statements do not run here: only queries (SELECT, FROM, WITH, VALUES, SHOW TABLES, "
                      "DESCRIBE, SUMMARIZE, EXPLAIN <query>) run on the read-only lake.")
    if not tree.get("statements"):
        raise _refuse("an empty statement.")
    _check_tree(tree, gate)
