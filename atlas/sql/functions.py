"""The function allowlist, per engine: what a data team's SELECTs and checks call, nothing more.

Operator SQL is parsed in the PostgreSQL dialect and runs on PostgreSQL as
written and on DuckDB as transpiled, so each engine has its allowlist and a
query must pass both. sqlglot parses the functions it knows into typed nodes
(``exp.Lower``) and the rest into ``exp.Anonymous`` with the name as written;
the allowlist names the typed nodes by class and the rest by name.

Left out on purpose (and so refused): whatever reads files or reaches the
network (pg_read_file, lo_import, dblink, read_csv, read_parquet, glob,
getenv ...), changes state (set_config, nextval, advisory locks, pg_notify,
large objects, pg_terminate_backend ...), reads the catalogue or the session
(current_setting, current_query, version, current_user, inet_*, to_regclass,
has_*_privilege ...), sleeps, and anything that serialises whole rows, tables
or schemas (table_to_xml, schema_to_xml, query_to_xml, row_to_json, to_json,
to_jsonb, json_agg, hstore ...).
"""

from __future__ import annotations

from sqlglot import exp

from .errors import SQLRefused

# Typed functions both engines run with the same meaning.
COMMON: frozenset[type[exp.Func]] = frozenset(
    {
        # logic, conditionals, casts
        exp.And, exp.Or, exp.Xor, exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Greatest,
        exp.Least, exp.Cast, exp.TryCast, exp.Exists, exp.Array, exp.Extract,
        # strings
        exp.Lower, exp.Upper, exp.Trim, exp.Length, exp.Substring, exp.Concat, exp.ConcatWs,
        exp.Replace, exp.Left, exp.Right, exp.Pad, exp.StrPosition, exp.SplitPart, exp.Initcap,
        exp.Reverse, exp.Repeat, exp.RegexpReplace, exp.RegexpLike, exp.RegexpILike,
        exp.RegexpSubstr, exp.RegexpCount, exp.RegexpExtract, exp.MD5, exp.SHA2Digest, exp.Chr,
        exp.Ascii, exp.Translate, exp.Format, exp.StartsWith, exp.BitLength, exp.Overlay,
        exp.StringToArray,
        # numbers
        exp.Abs, exp.Ceil, exp.Floor, exp.Round, exp.Trunc, exp.Sqrt, exp.Pow, exp.Exp, exp.Ln,
        exp.Log, exp.Sign, exp.Rand, exp.Pi, exp.Cbrt,
        # dates and times
        exp.TimestampTrunc, exp.DateTrunc, exp.CurrentDate, exp.CurrentTimestamp, exp.CurrentTime,
        exp.Localtimestamp, exp.TimeToStr, exp.StrToDate, exp.StrToTime, exp.UnixToTime,
        exp.TimestampFromParts, exp.Date, exp.DateBin,
        # aggregates
        exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.ArrayAgg, exp.GroupConcat,
        exp.LogicalAnd, exp.LogicalOr, exp.Stddev, exp.StddevPop, exp.StddevSamp, exp.Variance,
        exp.VariancePop, exp.PercentileCont, exp.PercentileDisc, exp.Mode, exp.Corr,
        exp.CovarPop, exp.CovarSamp, exp.RegrSlope, exp.AnyValue, exp.Median, exp.ApproxDistinct,
        # window functions
        exp.RowNumber, exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist, exp.Ntile, exp.Lag,
        exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue,
        # JSON accessors and arrays of values
        exp.JSONExtract, exp.JSONExtractScalar,
        exp.ArraySize, exp.ArrayToString, exp.ArrayPosition, exp.ArrayConcat, exp.ArrayAppend,
        exp.ArrayContainsAll, exp.ArrayOverlaps, exp.ArrayRemove,
        # set-returning, in FROM or the select list
        exp.Explode, exp.ExplodingGenerateSeries, exp.Unnest,
        # identifiers
        exp.Uuid,
    }
)

# Functions sqlglot does not type, by the name written (PostgreSQL dialect).
POSTGRES_NAMES: frozenset[str] = frozenset(
    {
        "regexp_split_to_array", "make_date", "json_array_length", "cardinality", "isfinite",
        "date_part", "to_char", "btrim", "char_length", "clock_timestamp", "statement_timestamp",
        "transaction_timestamp", "epoch",
    }
)
# Left out although harmless, because DuckDB gives them another meaning or lacks them (a step
# must mean the same on both engines): regexp_matches, age, every, div, to_number, encode,
# decode, octet_length, width_bucket, justify_*, num_nulls, #> / #>>, jsonb_* and json_build_*.

# What the transpiler writes for the functions above, on DuckDB.
DUCKDB_TYPED: frozenset[type[exp.Func]] = COMMON | frozenset(
    {
        exp.RegexpExtractAll, exp.Transform, exp.ArrayFilter, exp.GenerateSeries, exp.Split,
        exp.TimeToUnix, exp.DateFromParts, exp.SHA2, exp.Unhex,
    }
)
DUCKDB_NAMES: frozenset[str] = frozenset(POSTGRES_NAMES)

ENGINES: dict[str, tuple[frozenset[type[exp.Func]], frozenset[str]]] = {
    "postgres": (COMMON, POSTGRES_NAMES),
    "duckdb": (DUCKDB_TYPED, DUCKDB_NAMES),
}


def function_name(node: exp.Func, dialect: str = "postgres") -> str:
    """The function's name as the operator wrote it (for messages)."""
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    try:
        rendered = node.sql(dialect=dialect)
    except Exception:  # noqa: BLE001 - a name for a message; the node's key will do
        return node.key
    return rendered.split("(", 1)[0].strip().lower() or node.key


def check_function(node: exp.Func, engine: str = "postgres") -> None:
    """Refuse ``node`` unless it is on ``engine``'s allowlist."""
    typed, names = ENGINES[engine]
    if isinstance(node, exp.Anonymous):
        if str(node.this).lower() in names:
            return
    elif type(node) in typed:
        return
    name = function_name(node)
    where = "" if engine == "postgres" else f" (as rendered for {engine})"
    raise SQLRefused(
        f"The function {name}() is not allowed{where}: operator SQL may call the ordinary string,"
        " number, date, conditional, aggregate, window and JSON-accessor functions of Atlas'"
        " allowlist (atlas/sql/functions.py), nothing that reads files, reaches the network,"
        " changes state, reads the catalogue or serialises whole rows."
    )
