"""Operator SQL that means the same on Spark as on PostgreSQL, or a refusal when the step is saved (issue 21).

``to_spark`` renders a statement for Spark with the column types, but some constructs still give
another answer there (``atlas/tests/sql_corpus/spark_differs.txt`` says which and why). When the
warehouse is Spark, a step's SQL is checked here as well as by ``check_same_meaning``: every syntax
node must be one the differential corpus shows to mean the same on Spark (``SPARK_EXACT``, an
allowlist), and the few whose meaning depends on their operands' types are allowed only for the
types shown equal (``_TYPED``). Anything else is refused with the construct named.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.errors import SqlglotError

from .errors import SQLRefused
from .params import typed_sql
from .transpile import DATE, FLOAT, INT, NULL, NUMERIC, TEXT, ColumnTypes, Typer, parse

# Syntax nodes the corpus shows to give PostgreSQL's answer on Spark as ``to_spark`` renders them.
SPARK_EXACT: frozenset[type[exp.Expression]] = frozenset({
    # the query's shape
    exp.Select, exp.From, exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit, exp.Offset,
    exp.Join, exp.Table, exp.TableAlias, exp.Column, exp.Identifier, exp.Alias, exp.Star, exp.Subquery,
    exp.With, exp.CTE, exp.Union, exp.Except, exp.Exists, exp.Distinct, exp.Paren, exp.Placeholder,
    # values, comparisons, logic
    exp.Literal, exp.Null, exp.Boolean, exp.DataType, exp.DataTypeParam, exp.Cast, exp.EQ, exp.NEQ, exp.GT,
    exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between, exp.NullSafeNEQ, exp.NullSafeEQ, exp.And, exp.Or,
    exp.Not, exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least,
    # arithmetic (typed below)
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, exp.Round, exp.Abs, exp.Interval,
    # text
    exp.DPipe, exp.Concat, exp.ConcatWs, exp.Length, exp.StrPosition, exp.SplitPart, exp.Trim, exp.Pad,
    exp.Replace, exp.Repeat, exp.Reverse, exp.Translate, exp.MD5, exp.StartsWith, exp.Like, exp.ILike,
    exp.Escape, exp.RegexpLike, exp.RegexpILike, exp.TimeToStr, exp.Upper, exp.Lower,
    # aggregates and windows
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Stddev, exp.StddevPop, exp.Variance, exp.LogicalAnd,
    exp.LogicalOr, exp.Filter, exp.Window, exp.WindowSpec, exp.RowNumber, exp.Rank, exp.DenseRank, exp.Ntile,
    exp.PercentRank, exp.CumeDist, exp.Lag, exp.Lead, exp.FirstValue, exp.LastValue,
    # dates (date_trunc of a timestamp is cast back to one by ``to_spark``; its units are checked below)
    exp.TimestampTrunc, exp.StrToDate, exp.StrToTime,
})


def _division(node: exp.Div, of: Callable[[exp.Expression], str | None]) -> str | None:
    if of(node.this) == NUMERIC and of(node.expression) == NUMERIC:
        return "a numeric divided by a numeric keeps another scale on Spark (6 digits at DECIMAL(38))"
    return None


def _dpipe(node: exp.DPipe, of: Callable[[exp.Expression], str | None]) -> str | None:
    if any(of(side) not in (TEXT, NULL) for side in (node.this, node.expression)):
        return "|| of a value that is not text writes numbers otherwise on Spark (1.0E10); cast it to text first"
    return None


def _cast(node: exp.Cast, of: Callable[[exp.Expression], str | None]) -> str | None:
    if node.to.is_type(*exp.DataType.TEXT_TYPES) and of(node.this) not in (TEXT, INT, NULL):
        return "a cast to text of a value that is not text or an integer is written otherwise on Spark"
    return None


def _date_arithmetic(node: exp.Add | exp.Sub, of: Callable[[exp.Expression], str | None]) -> str | None:
    if DATE in (of(node.this), of(node.expression)):
        return "date arithmetic gives an interval or a date where PostgreSQL gives an integer or a timestamp"
    return None


def _round(node: exp.Round, of: Callable[[exp.Expression], str | None]) -> str | None:
    if of(node.this) == INT:
        return "round of an integer stays an integer on Spark (double precision on PostgreSQL)"
    return None


def _aggregate(node: exp.Sum | exp.Avg, of: Callable[[exp.Expression], str | None]) -> str | None:
    arg = of(node.this)
    if arg == FLOAT or (isinstance(node, exp.Avg) and arg == NUMERIC):
        return f"{node.key} of a {arg} keeps another scale or summing order on Spark"
    return None


# date_trunc's units both engines truncate to alike (PostgreSQL's decade, century... Spark has not).
_TRUNC_UNITS = frozenset({"year", "quarter", "month", "week", "day", "hour", "minute", "second"})

_TYPED: dict[type[exp.Expression], Callable] = {
    exp.Div: _division, exp.DPipe: _dpipe, exp.Cast: _cast, exp.Add: _date_arithmetic, exp.Sub: _date_arithmetic,
    exp.Round: _round, exp.Sum: _aggregate, exp.Avg: _aggregate,
}


def check_spark_meaning(sql: str, types: ColumnTypes | None = None, *, types_known: bool = True) -> None:
    """Refuse (``SQLRefused``) a statement with a construct not known to mean the same on Spark as on PostgreSQL.

    ``types_known``: the column types of every dataset read are in ``types``; without them only what is
    refused whatever the types is (the check runs again with the warehouse's types before the step runs).
    """
    try:
        root = parse(typed_sql(sql))
    except SqlglotError as exc:
        raise SQLRefused(f"The SQL does not parse: {str(exc).splitlines()[0]}.") from exc
    typer = Typer(root, types)
    for node in root.walk():
        if type(node) not in SPARK_EXACT and not _allowed_here(node):
            if isinstance(node, exp.Anonymous):
                what = str(node.name).lower()
            else:
                what = node.sql_name() if isinstance(node, exp.Func) else node.key.upper()
            raise SQLRefused(
                f"{_shown(node)}: {what} is not known to give PostgreSQL's answer on the Spark warehouse;"
                " Atlas refuses it there (write it with the constructs the differential corpus shows equal)."
            )
        if isinstance(node, exp.TimestampTrunc):
            unit = node.args.get("unit")
            if unit is None or str(unit.name).lower() not in _TRUNC_UNITS:
                raise SQLRefused(
                    f"{_shown(node)}: date_trunc on the Spark warehouse takes one of {', '.join(sorted(_TRUNC_UNITS))}."
                )
        rule = _TYPED.get(type(node))
        if rule is None:
            continue
        why = rule(node, typer.of)
        typed = not isinstance(node, exp.Cast) or node.to.is_type(*exp.DataType.TEXT_TYPES)
        if why is None and types_known and typed and _unknown(node, typer):
            why = "Atlas cannot tell its operands' types, and its meaning on Spark depends on them; cast them"
        if why is not None:
            raise SQLRefused(f"{_shown(node)}: {why} (operator SQL must mean the same on the Spark warehouse).")


def _allowed_here(node: exp.Expression) -> bool:
    """Nodes allowed in one place only: an interval's or date_trunc's unit, DISTINCT ON's keys (``to_spark`` rewrites it)."""
    if isinstance(node, exp.Var):
        return isinstance(node.parent, exp.Interval | exp.TimestampTrunc)
    return isinstance(node, exp.Tuple) and isinstance(node.parent, exp.Distinct)


def _unknown(node: exp.Expression, typer: Typer) -> bool:
    operands = [node.this] if isinstance(node, exp.Cast | exp.Round | exp.Sum | exp.Avg) else [node.this, node.expression]
    return any(o is not None and typer.of(o) is None for o in operands)


def _shown(node: exp.Expression) -> str:
    text = node.sql(dialect="postgres")
    return text if len(text) <= 80 else text[:77] + "..."
