"""Operator SQL on DuckDB with PostgreSQL's meaning: transpiling with column types.

Operator SQL is written in the PostgreSQL dialect. sqlglot renders it for
DuckDB, but a rendering without types cannot keep its meaning: ``qty / 2``
is integer division on PostgreSQL when ``qty`` is an integer and float
division on DuckDB. Here the types of every expression are worked out the
way PostgreSQL works them out (from the datasets' column types, through
WITH queries and subqueries), and the DuckDB rendering is rewritten where
the engines differ:

* ``int / int`` is DuckDB's ``//`` (truncation toward zero, as PostgreSQL);
  a division with a numeric operand stays numeric;
* ``round(double)`` rounds half to even (PostgreSQL's ``rint``);
  ``avg``, ``stddev``, ``variance``, ``sqrt`` ... of integers or numerics
  are numeric, ``extract`` is numeric (with the fraction of a second),
  ``date_part`` double precision, ``date_trunc`` of a date a timestamp with
  time zone;
* ``LIKE``/``ILIKE`` escape with a backslash by default; ``.`` in a regular
  expression matches a newline; ``substring`` from a position before the
  first character counts from there; a double precision written as text
  has no trailing ``.0``; text cast to an integer must be an integer.

What cannot be made equal is refused by ``check_same_meaning`` (called when
a step is saved and before it runs) with a message naming the construct:
the rules below are an allowlist of what is known equal, not a list of what
is known to differ. ``to_duckdb`` is the rendering; it never refuses (the
check did), and where a type is unknown it renders as sqlglot does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from .errors import SQLRefused
from .names import display, normalized

# (layer, table) -> {column: type name as the warehouse or the catalogue spells it}
ColumnTypes = Mapping[tuple[str, str], Mapping[str, str]]

# Type families: what "the same column type" means across the two engines.
INT, NUMERIC, FLOAT = "integer", "numeric", "double precision"
TEXT, BOOL, DATE, TIME = "text", "boolean", "date", "time"
TIMESTAMP, TIMESTAMPTZ, INTERVAL = "timestamp", "timestamp with time zone", "interval"
JSON, UUID, BYTES, ARRAY, NULL = "json", "uuid", "bytea", "array", "null"
NUMBERS = (INT, NUMERIC, FLOAT)

_FAMILIES: tuple[tuple[str, str], ...] = (
    # (regex over the lower-cased type name, family); first match wins
    (r"(\[\]$|^_|^array)", ARRAY),
    (r"^(smallint|integer|int|bigint|hugeint|tinyint|int2|int4|int8|utinyint|usmallint|uinteger|ubigint|uhugeint|serial|bigserial)\b", INT),
    (r"^(numeric|decimal)\b", NUMERIC),
    (r"^(double|real|float)", FLOAT),
    (r"^(text|varchar|character|char|bpchar|name|string)\b", TEXT),
    (r"^bool", BOOL),
    (r"^date$", DATE),
    (r"^(timestamptz|timestamp with time zone|timestamp\s*\(\d\) with time zone)$", TIMESTAMPTZ),
    (r"^(timestamp|datetime)", TIMESTAMP),
    (r"^(time|timetz)\b", TIME),
    (r"^interval", INTERVAL),
    (r"^json", JSON),
    (r"^uuid$", UUID),
    (r"^(bytea|blob|varbinary)$", BYTES),
)


def family(type_name: str | None) -> str | None:
    """The family of a type as PostgreSQL or DuckDB names it (``DECIMAL(10,2)`` is numeric), or None."""
    if not type_name:
        return None
    name = " ".join(str(type_name).strip().lower().split())
    for pattern, fam in _FAMILIES:
        if re.search(pattern, name):
            return fam
    return None


class AtlasPostgres(Postgres):
    """PostgreSQL as sqlglot reads it, except ``date_part`` is kept apart from ``extract``.

    The two differ on PostgreSQL (double precision against numeric); sqlglot
    parses both into ``exp.Extract``.
    """

    class Parser(Postgres.Parser):
        FUNCTION_PARSERS = {k: v for k, v in Postgres.Parser.FUNCTION_PARSERS.items() if k != "DATE_PART"}
        FUNCTIONS = {
            **Postgres.Parser.FUNCTIONS,
            "DATE_PART": lambda args: exp.Anonymous(this="date_part", expressions=args),
        }


def parse(sql: str) -> exp.Expression:
    return sqlglot.parse_one(sql, read=AtlasPostgres)


# --- PostgreSQL's types of expressions -------------------------------------------------------

_DTYPE_FAMILY: dict[exp.DataType.Type, str] = {}
for _fam, _types in (
    (INT, ("SMALLINT", "INT", "BIGINT", "TINYINT")),
    (NUMERIC, ("DECIMAL", "BIGDECIMAL")),
    (FLOAT, ("DOUBLE", "FLOAT")),
    (TEXT, ("TEXT", "VARCHAR", "CHAR", "NCHAR", "NVARCHAR", "BPCHAR", "NAME")),
    (BOOL, ("BOOLEAN",)),
    (DATE, ("DATE",)),
    (TIME, ("TIME", "TIMETZ")),
    (TIMESTAMP, ("TIMESTAMP", "DATETIME")),
    (TIMESTAMPTZ, ("TIMESTAMPTZ", "TIMESTAMPLTZ")),
    (INTERVAL, ("INTERVAL",)),
    (JSON, ("JSON", "JSONB")),
    (UUID, ("UUID",)),
    (BYTES, ("VARBINARY", "BINARY")),
    (ARRAY, ("ARRAY",)),
):
    for _t in _types:
        _DTYPE_FAMILY[exp.DataType.Type[_t]] = _fam


def datatype_family(node: exp.DataType) -> str | None:
    return _DTYPE_FAMILY.get(node.this)


def _common(types: list[str | None]) -> str | None:
    """The type PostgreSQL resolves a CASE/COALESCE/UNION to (NULLs and unknown literals give way)."""
    known = [t for t in types if t not in (None, NULL)]
    if any(t is None for t in types):
        return None
    if not known:
        return NULL
    if all(t in NUMBERS for t in known):
        return max(known, key=NUMBERS.index)
    if len(set(known)) == 1:
        return known[0]
    if set(known) <= {TIMESTAMP, TIMESTAMPTZ, DATE}:
        return TIMESTAMPTZ if TIMESTAMPTZ in known else TIMESTAMP
    return None


_TEXT_FUNCS = (
    exp.Lower, exp.Upper, exp.Trim, exp.Substring, exp.Concat, exp.ConcatWs, exp.Replace, exp.Left,
    exp.Right, exp.Pad, exp.Initcap, exp.Reverse, exp.Repeat, exp.RegexpReplace, exp.SplitPart,
    exp.Translate, exp.MD5, exp.Chr, exp.TimeToStr, exp.GroupConcat, exp.ArrayToString, exp.Overlay,
    exp.SHA2Digest, exp.JSONExtractScalar, exp.RegexpExtract, exp.RegexpSubstr, exp.Format,
)
_INT_FUNCS = (
    exp.Length, exp.StrPosition, exp.Ascii, exp.BitLength, exp.RegexpCount, exp.Count, exp.RowNumber,
    exp.Rank, exp.DenseRank, exp.Ntile, exp.ArraySize, exp.ArrayPosition,
)
_BOOL_FUNCS = (
    exp.RegexpLike, exp.RegexpILike, exp.StartsWith, exp.LogicalAnd, exp.LogicalOr, exp.Exists,
    exp.ArrayContainsAll, exp.ArrayOverlaps,
)
_FLOAT_FUNCS = (
    exp.PercentRank, exp.CumeDist, exp.Corr, exp.CovarPop, exp.CovarSamp, exp.RegrSlope, exp.Rand,
    exp.Pi, exp.Cbrt, exp.Pow,
)
_SAME_AS_ARG = (
    exp.Min, exp.Max, exp.Abs, exp.Lag, exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue,
    exp.AnyValue, exp.Mode, exp.PercentileDisc, exp.Sign,
)
# numeric for integer and numeric arguments, double precision for double precision ones
_NUMERIC_OF_EXACT = (exp.Avg, exp.Stddev, exp.StddevPop, exp.StddevSamp, exp.Variance, exp.VariancePop)
# numeric for numeric arguments, double precision for integers and doubles (PostgreSQL prefers float8)
_NUMERIC_OF_NUMERIC = (exp.Sqrt, exp.Exp, exp.Ln, exp.Log, exp.Ceil, exp.Floor, exp.Round, exp.Trunc)
_ANONYMOUS: dict[str, str] = {
    "char_length": INT, "btrim": TEXT, "date_part": FLOAT, "make_date": DATE, "to_char": TEXT,
    "cardinality": INT, "json_array_length": INT, "isfinite": BOOL, "regexp_split_to_array": ARRAY,
    "clock_timestamp": TIMESTAMPTZ, "statement_timestamp": TIMESTAMPTZ, "transaction_timestamp": TIMESTAMPTZ,
}


class Typer:
    """PostgreSQL's type family of each expression of one query, from its datasets' column types."""

    def __init__(self, root: exp.Expression, types: ColumnTypes | None) -> None:
        self.root = root
        self.types = {
            (layer.lower(), table.lower()): {str(c).lower(): family(t) for c, t in cols.items()}
            for (layer, table), cols in (types or {}).items()
        }
        try:
            self.scopes = {id(s.expression): s for s in traverse_scope(root)}
        except (SqlglotError, RecursionError, KeyError, ValueError):
            self.scopes = {}
        self.memo: dict[int, str | None] = {}

    # -- columns --
    def _scopes_of(self, node: exp.Expression) -> list[Scope]:
        found, current = [], node.parent
        while current is not None:
            scope = self.scopes.get(id(current))
            if scope is not None:
                found.append(scope)
            current = current.parent
        return found

    def _source_columns(self, source: exp.Expression | Scope) -> dict[str, str | None] | None:
        if isinstance(source, exp.Table):
            return self.types.get((normalized(source.args.get("db")), normalized(source.this)))
        if isinstance(source, Scope):
            return self._output_types(source.expression)
        return None

    def _output_types(self, query: exp.Expression) -> dict[str, str | None] | None:
        key = id(query)
        cache = getattr(self, "_outputs", None)
        if cache is None:
            cache = self._outputs = {}
        if key in cache:
            return cache[key]
        cache[key] = None  # a recursive WITH query refers to itself
        result = self._compute_outputs(query)
        cache[key] = result
        return result

    def _compute_outputs(self, query: exp.Expression) -> dict[str, str | None] | None:
        if isinstance(query, exp.Subquery):
            return self._output_types(query.unnest())
        if isinstance(query, exp.SetOperation):
            left, right = self._output_types(query.this), self._output_types(query.expression)
            if left is None or right is None or len(left) != len(right):
                return left
            return {name: _common([lt, rt]) for (name, lt), rt in zip(left.items(), right.values(), strict=True)}
        if not isinstance(query, exp.Select):
            return None
        out: dict[str, str | None] = {}
        scope = self.scopes.get(id(query))
        for item in query.expressions:
            if isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star)):
                if scope is None:
                    return None
                table = normalized(item.args.get("table")) if isinstance(item, exp.Column) else ""
                for alias, (_, source) in scope.selected_sources.items():
                    if table and alias.lower() != table:
                        continue
                    cols = self._source_columns(source)
                    if cols is None:
                        return None
                    out.update(cols)
                continue
            out[_output_name(item)] = self.of(item)
        return out

    def _column(self, column: exp.Column) -> str | None:
        name = normalized(column.this)
        table = normalized(column.args.get("table"))
        scopes = self._scopes_of(column)
        for scope in scopes:
            sources = {alias.lower(): source for alias, (_, source) in scope.selected_sources.items()}
            if table:
                if table in sources:
                    cols = self._source_columns(sources[table])
                    return None if cols is None else cols.get(name)
                continue
            for source in sources.values():
                cols = self._source_columns(source)
                if cols is not None and name in cols:
                    return cols[name]
            select = scope.expression if isinstance(scope.expression, exp.Select) else None
            if select is not None:  # ORDER BY / GROUP BY an output name
                for item in select.expressions:
                    if isinstance(item, exp.Alias) and normalized(item.args["alias"]) == name:
                        return self.of(item.this) if item.this is not column else None
        return None

    # -- expressions --
    def of(self, node: exp.Expression | None) -> str | None:
        if node is None:
            return None
        key = id(node)
        if key not in self.memo:
            self.memo[key] = None  # cycles (an alias referring to itself) are unknown
            self.memo[key] = self._of(node)
        return self.memo[key]

    def _of(self, node: exp.Expression) -> str | None:  # noqa: C901, PLR0911, PLR0912 - one rule per construct
        if isinstance(node, exp.Column):
            return self._column(node)
        if isinstance(node, exp.Alias | exp.Paren | exp.Neg | exp.Window | exp.Filter | exp.Ordered):
            return self.of(node.this)
        if isinstance(node, exp.WithinGroup):
            inner = node.this
            if isinstance(inner, exp.PercentileCont):
                return FLOAT
            if isinstance(inner, exp.PercentileDisc | exp.Mode):
                ordered = node.expression.expressions[0] if node.expression.expressions else None
                return self.of(ordered)
            return self.of(inner)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return TEXT
            text = node.this.lower()
            return NUMERIC if ("." in text or "e" in text) else INT
        if isinstance(node, exp.Null):
            return NULL
        if isinstance(node, exp.Boolean):
            return BOOL
        if isinstance(node, exp.Cast | exp.TryCast):
            return datatype_family(node.to)
        if isinstance(node, exp.Interval):
            return INTERVAL
        if isinstance(node, exp.Subquery):
            outputs = self._output_types(node)
            return next(iter(outputs.values()), None) if outputs and len(outputs) == 1 else None
        if isinstance(node, (exp.Predicate, exp.Not, exp.And, exp.Or, exp.Xor, *_BOOL_FUNCS)):
            return BOOL
        if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
            return self._arithmetic(node)
        if isinstance(node, exp.DPipe):
            left = self.of(node.left)
            return ARRAY if left == ARRAY else TEXT
        if isinstance(node, exp.Case):
            branches = [i.args.get("true") for i in node.args.get("ifs", [])]
            return _common([self.of(b) for b in [*branches, node.args.get("default") or exp.Null()]])
        if isinstance(node, exp.Coalesce | exp.Greatest | exp.Least):
            return _common([self.of(node.this), *(self.of(e) for e in node.expressions)])
        if isinstance(node, exp.Nullif | exp.If):
            return self.of(node.this) if isinstance(node, exp.Nullif) else _common(
                [self.of(node.args.get("true")), self.of(node.args.get("false") or exp.Null())]
            )
        if isinstance(node, _TEXT_FUNCS):
            return TEXT
        if isinstance(node, _INT_FUNCS):
            return INT
        if isinstance(node, _FLOAT_FUNCS):
            return FLOAT
        if isinstance(node, _SAME_AS_ARG):
            return self.of(node.this)
        if isinstance(node, exp.Sum):
            arg = self.of(node.this)
            return arg if arg in (INT, NUMERIC, FLOAT, INTERVAL) else None
        if isinstance(node, _NUMERIC_OF_EXACT):
            arg = self.of(node.this)
            return {INT: NUMERIC, NUMERIC: NUMERIC, FLOAT: FLOAT, INTERVAL: INTERVAL}.get(arg or "")
        if isinstance(node, _NUMERIC_OF_NUMERIC):
            arg = self.of(node.this)
            if isinstance(node, exp.Round | exp.Trunc) and node.args.get("decimals") is not None:
                return NUMERIC if arg in (INT, NUMERIC) else None
            return {INT: FLOAT, NUMERIC: NUMERIC, FLOAT: FLOAT}.get(arg or "")
        if isinstance(node, exp.Extract):
            return NUMERIC
        if isinstance(node, exp.DateTrunc | exp.TimestampTrunc):
            arg = self.of(node.this)
            return TIMESTAMPTZ if arg == DATE else arg
        if isinstance(node, exp.CurrentDate | exp.Date | exp.StrToDate | exp.DateFromParts):
            return DATE
        if isinstance(node, exp.CurrentTimestamp | exp.StrToTime | exp.UnixToTime):
            return TIMESTAMPTZ
        if isinstance(node, exp.Localtimestamp | exp.TimestampFromParts):
            return TIMESTAMP
        if isinstance(node, exp.CurrentTime):
            return TIME
        if isinstance(node, exp.ArrayAgg | exp.Array | exp.StringToArray | exp.ArrayConcat | exp.ArrayAppend
                      | exp.ArrayRemove):
            return ARRAY
        if isinstance(node, exp.JSONExtract):
            return JSON
        if isinstance(node, exp.Uuid):
            return UUID
        if isinstance(node, exp.Anonymous):
            return _ANONYMOUS.get(str(node.this).lower())
        return None

    def _arithmetic(self, node: exp.Binary) -> str | None:  # noqa: C901, PLR0911 - PostgreSQL's operator table
        left, right = self.of(node.left), self.of(node.right)
        if left is None or right is None:
            return None
        if left == NULL or right == NULL:
            return left if right == NULL else right
        if left == TEXT and right in NUMBERS:  # an untyped literal takes the other side's type
            left = right if isinstance(node.left, exp.Literal) else left
        if right == TEXT and left in NUMBERS:
            right = left if isinstance(node.right, exp.Literal) else right
        if left in NUMBERS and right in NUMBERS:
            return max(left, right, key=NUMBERS.index)
        pair = {left, right}
        if isinstance(node, exp.Add | exp.Sub):
            if left == DATE and right == INT:
                return DATE
            if isinstance(node, exp.Add) and left == INT and right == DATE:
                return DATE
            if isinstance(node, exp.Sub) and left == right == DATE:
                return INT
            if pair == {DATE, INTERVAL} or pair == {DATE, TIME}:
                return TIMESTAMP
            if pair <= {TIMESTAMP, INTERVAL} and INTERVAL in pair and (isinstance(node, exp.Add) or left != INTERVAL):
                return TIMESTAMP if TIMESTAMP in pair else INTERVAL
            if pair <= {TIMESTAMPTZ, INTERVAL} and INTERVAL in pair and (isinstance(node, exp.Add) or left != INTERVAL):
                return TIMESTAMPTZ if TIMESTAMPTZ in pair else INTERVAL
            if isinstance(node, exp.Sub) and left == right and left in (TIMESTAMP, TIMESTAMPTZ):
                return INTERVAL
        if isinstance(node, exp.Mul | exp.Div) and INTERVAL in pair and pair & set(NUMBERS):
            return INTERVAL if left == INTERVAL or isinstance(node, exp.Mul) else None
        return None


def _output_name(item: exp.Expression) -> str:
    if isinstance(item, exp.Alias):
        return normalized(item.args["alias"])
    if isinstance(item, exp.Column):
        return normalized(item.this)
    if isinstance(item, exp.Cast):
        return _output_name(item.this)
    return item.sql("postgres").lower()


# --- the rewrite --------------------------------------------------------------------------------

Rewrite = Callable[[exp.Expression], exp.Expression]


@dataclass
class _Plan:
    node: exp.Expression
    rewrite: Rewrite


def _sql(node: exp.Expression) -> str:
    return display(node.sql("postgres"))


def _decimal(precision: int, scale: int) -> exp.DataType:
    return exp.DataType.build(f"DECIMAL({precision}, {scale})")


def _cast(node: exp.Expression, to: str | exp.DataType) -> exp.Cast:
    return exp.Cast(this=node, to=to if isinstance(to, exp.DataType) else exp.DataType.build(to, dialect="duckdb"))


# PostgreSQL's numeric results keep at least 16 significant digits; DuckDB computes these in double
# precision, cast back to a decimal (38 digits, 16 after the point).
NUMERIC_RESULT = (38, 16)

# Regular expressions: the syntax PostgreSQL (ARE) and DuckDB (RE2) read alike.
_REGEX_ESCAPES = set("dDsStnr") | set(r"\.-()[]{}*+?|^$/")
_REGEX_FLAGS = set("gi")
_TO_CHAR_TOKENS = ("YYYY", "HH24", "MM", "DD", "MI", "SS", "US")
_TO_CHAR_SEPARATORS = set(" -:/.,T_")
_EXTRACT_PARTS = {
    "year", "month", "day", "hour", "minute", "second", "quarter", "dow", "isodow", "doy", "week",
    "isoyear", "epoch", "decade", "century", "millennium",
}


def _regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` may mean something else on DuckDB's RE2 than on PostgreSQL, or None."""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1: i + 2]
            if nxt not in _REGEX_ESCAPES or not nxt:
                return f"the escape \\{nxt}"
            i += 2
            continue
        if ch == "(" and pattern[i + 1: i + 2] == "?":
            return "a (?...) group"
        if ch == "[" and pattern[i + 1: i + 2] in (":", "=", "."):
            return "a [:class:]"
        if ch == "[" and pattern[i + 1: i + 3] in ("[:", "[=", "[.", "^["):
            return "a [[:class:]]"
        i += 1
    return None


def _literal_text(node: exp.Expression | None) -> str | None:
    return node.this if isinstance(node, exp.Literal) and node.is_string else None


class _Rewriter:
    """Decides, on the query as written, how each construct is rendered for DuckDB; or refuses it."""

    def __init__(self, root: exp.Expression, types: ColumnTypes | None, *, strict: bool, types_known: bool = True) -> None:
        self.root = root
        self.typer = Typer(root, types)
        self.strict = strict
        self.types_known = types_known
        self.plans: list[_Plan] = []

    def refuse(self, message: str) -> None:
        if self.strict:
            raise SQLRefused(message + " (operator SQL must mean the same on PostgreSQL and DuckDB).")

    def unknown(self, node: exp.Expression, what: str) -> None:
        if not self.types_known:
            return
        self.refuse(
            f"Atlas cannot tell the type of {what} in {_sql(node)}, and its meaning depends on it;"
            " cast the operand (CAST(x AS integer), CAST(x AS numeric(12, 2)), CAST(x AS double precision))"
        )

    def plan(self, node: exp.Expression, rewrite: Rewrite) -> None:
        self.plans.append(_Plan(node, rewrite))

    def run(self) -> None:
        for node in list(self.root.walk()):
            handler = _HANDLERS.get(type(node))
            if handler is not None:
                handler(self, node)

    def apply(self) -> exp.Expression:
        # Children first: a rewrite builds on its operands' own rewrites.
        order = {id(n): i for i, n in enumerate(self.root.walk())}
        root = self.root
        for plan in sorted(self.plans, key=lambda p: -order.get(id(p.node), 0)):
            if plan.node is root:
                root = plan.rewrite(plan.node)
                continue
            placeholder = exp.Null()  # the rewrite may wrap the node: detach it first
            plan.node.replace(placeholder)
            placeholder.replace(plan.rewrite(plan.node))
        return root

    # -- arithmetic --
    def div(self, node: exp.Div) -> None:
        left, right = self.typer.of(node.left), self.typer.of(node.right)
        result = self.typer.of(node)
        if result is None:
            if left in (INTERVAL, DATE, TIMESTAMP, TIMESTAMPTZ, TEXT, BOOL):
                self.refuse(f"The division {_sql(node)} divides a {left}")
            else:
                self.unknown(node, "the operands")
            return
        if result == INT:
            self.plan(node, lambda n: exp.IntDiv(this=n.left, expression=n.right))
        elif result == NUMERIC:
            self.plan(node, lambda n: _cast(n, _decimal(*NUMERIC_RESULT)))
        del right

    def mod(self, node: exp.Mod) -> None:
        result = self.typer.of(node)
        if result == FLOAT:
            self.refuse(f"{_sql(node)}: PostgreSQL has no % for double precision; cast to numeric")
        elif result is None:
            self.unknown(node, "the operands")

    def numeric_result(self, node: exp.Expression) -> None:
        """Aggregates and functions that PostgreSQL computes in numeric and DuckDB in double precision."""
        result = self.typer.of(node)
        arg = self.typer.of(node.this)
        if result == NUMERIC and arg in (INT, NUMERIC):
            outer = node  # avg(x) FILTER (...) OVER (...): the cast goes around the whole call
            while isinstance(outer.parent, exp.Filter | exp.Window) and outer.parent.this is outer:
                outer = outer.parent
            self.plan(outer, lambda n: _cast(n, _decimal(*NUMERIC_RESULT)))
        elif result is None and arg is None:
            self.unknown(node, "the argument")

    def rounding(self, node: exp.Round | exp.Trunc) -> None:
        arg = self.typer.of(node.this)
        decimals = node.args.get("decimals")
        name = "round" if isinstance(node, exp.Round) else "trunc"
        if arg is None:
            self.unknown(node, "the argument")
            return
        if arg not in NUMBERS:
            self.refuse(f"{name}() of a {arg} in {_sql(node)} is not a number")
            return
        if decimals is not None:
            if arg == FLOAT:
                self.refuse(
                    f"{name}(double precision, integer) does not exist on PostgreSQL ({_sql(node)});"
                    f" cast the value to numeric first: {name}(CAST(x AS numeric), n)"
                )
            elif arg == INT:
                self.plan(node, lambda n: n.set("this", _cast(n.this, "DECIMAL(38, 0)")) or n)
            return
        if arg == INT:  # PostgreSQL resolves round(integer) to round(double precision)
            self.plan(node, lambda n: n.set("this", _cast(n.this, "DOUBLE")) or n)
        elif arg == FLOAT and isinstance(node, exp.Round):  # rint(): half to even
            self.plan(node, lambda n: exp.Anonymous(this="round_even", expressions=[n.this, exp.Literal.number(0)]))

    def float_of_int(self, node: exp.Expression) -> None:
        """sqrt/exp/ln/log/ceil/floor: numeric in, numeric out; integer or double in, double out."""
        arg = self.typer.of(node.this)
        if arg == NUMERIC and not isinstance(node, exp.Ceil | exp.Floor):
            self.plan(node, lambda n: _cast(n, _decimal(*NUMERIC_RESULT)))
        elif arg == INT and isinstance(node, exp.Ceil | exp.Floor):
            self.plan(node, lambda n: n.set("this", _cast(n.this, "DOUBLE")) or n)
        elif arg is None:
            self.unknown(node, "the argument")
        elif arg not in NUMBERS:
            self.refuse(f"{_sql(node)} takes a number, not a {arg}")

    # -- text --
    def like(self, node: exp.Like | exp.ILike) -> None:
        if isinstance(node.parent, exp.Escape):
            return
        if isinstance(node.expression, exp.Any | exp.All):
            self.refuse(f"LIKE ANY/ALL in {_sql(node)} is not known equal; write OR of LIKEs")
            return
        self.plan(node, lambda n: exp.Escape(this=n, expression=exp.Literal.string("\\")))

    def similar(self, node: exp.SimilarTo) -> None:
        self.refuse(f"SIMILAR TO in {_sql(node)} reads a regular expression on DuckDB; write LIKE or ~")

    def regex(self, node: exp.Expression, pattern_arg: str = "expression") -> None:
        pattern = node.args.get(pattern_arg)
        text = _literal_text(pattern)
        name = _regex_name(node)
        if text is None:
            self.refuse(
                f"The regular expression of {name} in {_sql(node)} must be a string literal, so that Atlas"
                " can check that PostgreSQL and DuckDB read it alike"
            )
            return
        problem = _regex_problem(text)
        if problem is not None:
            self.refuse(
                f"The regular expression of {name} uses {problem}, which PostgreSQL and DuckDB (RE2) read"
                " differently; use literal characters, ., [...] sets, ^ $, groups, |, quantifiers and"
                " \\d \\s escapes"
            )
            return
        if isinstance(node, exp.RegexpReplace):
            replacement = _literal_text(node.args.get("replacement"))
            if replacement is None or re.search(r"\\[^1-9\\]", replacement):
                self.refuse(
                    f"The replacement of regexp_replace in {_sql(node)} must be a string literal using"
                    " only \\1 to \\9 back-references"
                )
                return
            flags = node.args.get("modifiers")
            if flags is not None and (_literal_text(flags) is None or set(_literal_text(flags) or "") - _REGEX_FLAGS):
                self.refuse(f"regexp_replace flags other than g and i in {_sql(node)} are not known equal")
                return
        # PostgreSQL's . matches a newline; RE2's does not unless (?s).
        self.plan(pattern, lambda n: exp.Literal.string("(?s)" + n.this))

    def substring(self, node: exp.Substring) -> None:
        start, length = node.args.get("start"), node.args.get("length")
        if start is not None and self.typer.of(start) == TEXT:
            self.refuse(
                f"substring(... FROM pattern) in {_sql(node)} is a regular-expression substring on PostgreSQL;"
                " use regexp_replace or substring with positions"
            )
            return
        if start is None or (isinstance(start, exp.Literal) and start.this.isdigit() and int(start.this) >= 1):
            return
        # DuckDB counts a start before 1 from the end; PostgreSQL counts the positions before the string.

        def rewrite(n: exp.Expression) -> exp.Expression:
            s = n.args["start"]
            first = exp.Anonymous(this="greatest", expressions=[s.copy(), exp.Literal.number(1)])
            n.set("start", first)
            if n.args.get("length") is not None:
                span = exp.Sub(this=exp.Add(this=s.copy(), expression=n.args["length"]), expression=first.copy())
                n.set("length", exp.Anonymous(this="greatest", expressions=[span, exp.Literal.number(0)]))
            return n

        del length
        self.plan(node, rewrite)

    def dpipe(self, node: exp.DPipe) -> None:
        for side in ("this", "expression"):
            operand = node.args.get(side)
            if self.typer.of(operand) == FLOAT:
                self.plan(operand, _float_text)

    def to_char(self, node: exp.TimeToStr) -> None:
        written = _to_char_format(node)
        if written is None:
            self.refuse(f"The format of to_char in {_sql(node)} must be a string literal")
            return
        rest = written
        while rest:
            token = next((t for t in _TO_CHAR_TOKENS if rest.startswith(t)), None)
            if token is not None:
                rest = rest[len(token):]
            elif rest[0] in _TO_CHAR_SEPARATORS:
                rest = rest[1:]
            else:
                self.refuse(
                    f"The to_char format {written!r} uses {rest[:4]!r}; Atlas renders only"
                    f" {', '.join(_TO_CHAR_TOKENS)} and separators alike on both engines"
                )
                return
        arg = self.typer.of(node.this)
        if arg is None:
            self.unknown(node, "the value")
        elif arg not in (DATE, TIMESTAMP, TIMESTAMPTZ):
            self.refuse(f"to_char of a {arg} in {_sql(node)}: Atlas knows to_char of dates and timestamps only")

    # -- dates --
    def extract(self, node: exp.Extract) -> None:
        part = node.this.name.lower()
        if part not in _EXTRACT_PARTS:
            self.refuse(f"extract({part} FROM ...) is not known equal on both engines")
            return
        if self.typer.of(node.expression) not in (DATE, TIMESTAMP, TIMESTAMPTZ, INTERVAL):
            self.unknown(node, "the date")
            return
        if part == "second":  # PostgreSQL keeps the fraction of the second
            self.plan(node, lambda n: _cast(
                exp.Div(this=exp.Anonymous(this="date_part", expressions=[exp.Literal.string("microsecond"),
                                                                           n.expression]),
                        expression=exp.Literal.number(1000000)),
                _decimal(9, 6)))
        elif part == "epoch":
            self.plan(node, lambda n: _cast(n, _decimal(38, 6)))
        else:
            self.plan(node, lambda n: _cast(n, _decimal(38, 0)))

    def date_part(self, node: exp.Anonymous) -> None:
        if str(node.this).lower() != "date_part":
            return
        part = _literal_text(node.expressions[0]) if node.expressions else None
        if part is None or part.lower() not in _EXTRACT_PARTS - {"second", "epoch"}:
            self.refuse(f"date_part in {_sql(node)} must name one of the parts Atlas knows equal"
                        " (year, month, day, hour, minute, quarter, dow, doy, week ...)")
            return
        self.plan(node, lambda n: _cast(n, "DOUBLE"))

    def date_trunc(self, node: exp.Expression) -> None:
        arg = self.typer.of(node.this)
        if arg == DATE:
            self.plan(node, lambda n: _cast(n, "TIMESTAMPTZ"))
        elif arg is None:
            self.unknown(node, "the date")

    # -- casts --
    def cast(self, node: exp.Cast) -> None:
        to = node.to
        target = datatype_family(to)
        source = self.typer.of(node.this)
        if target == NUMERIC:
            params = to.expressions
            if params:
                precision = int(params[0].this.this) if isinstance(params[0].this, exp.Literal) else 99
                if precision > 38:
                    self.refuse(f"numeric({precision}, ...) in {_sql(node)} is wider than DuckDB's 38 digits")
                return
            if source == INT:
                self.plan(node, lambda n: n.set("to", _decimal(38, 0)) or n)
            elif source == NUMERIC:
                self.plan(node, lambda n: n.this)  # PostgreSQL keeps the scale; DuckDB's DECIMAL would not
            else:
                self.refuse(
                    f"CAST(... AS numeric) in {_sql(node)}: numeric without precision and scale keeps every digit on PostgreSQL"
                    " and three decimals on DuckDB; write numeric(p, s), e.g. numeric(18, 6)"
                )
        elif target == TEXT and source == FLOAT:
            self.plan(node, lambda n: _float_text(n.this))
        elif target == INT and source == TEXT:
            self.plan(node, _strict_integer)
        elif target == TEXT and source == INTERVAL:
            self.refuse(f"{_sql(node)}: an interval is written as text differently (1 mon / 1 month)")


def _regex_name(node: exp.Expression) -> str:
    return {
        exp.RegexpLike: "~", exp.RegexpILike: "~*", exp.RegexpReplace: "regexp_replace",
        exp.RegexpCount: "regexp_count",
    }.get(type(node), node.key)


def _to_char_format(node: exp.TimeToStr) -> str | None:
    """The PostgreSQL format string of a to_char node (sqlglot stores it translated to strftime)."""
    fmt = node.args.get("format")
    if not isinstance(fmt, exp.Literal):
        return None
    text = fmt.this
    back = {"%Y": "YYYY", "%H": "HH24", "%m": "MM", "%d": "DD", "%M": "MI", "%S": "SS", "%f": "US"}
    out, i = "", 0
    while i < len(text):
        if text[i] == "%":
            code = text[i: i + 2]
            if code not in back:
                return text[i:i + 6] + "?"  # not a token Atlas knows: refused by the caller
            out += back[code]
            i += 2
        else:
            out += text[i]
            i += 1
    return out


def _float_text(node: exp.Expression) -> exp.Expression:
    """double precision as text the way PostgreSQL writes it: 1 and 10000000000, not 1.0."""
    whole = exp.and_(
        exp.EQ(this=node.copy(), expression=exp.Anonymous(this="trunc", expressions=[node.copy()])),
        exp.LT(this=exp.Abs(this=node.copy()), expression=exp.Literal.number("1e15")),
    )
    return exp.Case(
        ifs=[exp.If(this=whole, true=_cast(_cast(node.copy(), "BIGINT"), "VARCHAR"))],
        default=_cast(node.copy(), "VARCHAR"),
    )


def _strict_integer(node: exp.Cast) -> exp.Expression:
    """text to integer fails on PostgreSQL unless it is an integer; DuckDB would round 12.7 to 13."""
    value = node.this
    ok = exp.Anonymous(this="regexp_full_match", expressions=[value.copy(), exp.Literal.string(r"\s*[+-]?[0-9]+\s*")])
    return exp.Case(
        ifs=[exp.If(this=exp.or_(exp.Is(this=value.copy(), expression=exp.Null()), ok), true=node)],
        default=_cast(exp.Anonymous(this="error", expressions=[exp.Literal.string(
            f"invalid input syntax for type {node.to.sql('postgres').lower()}")]), node.to.copy()),
    )


_HANDLERS: dict[type, Callable[[_Rewriter, exp.Expression], None]] = {
    exp.Div: _Rewriter.div,
    exp.Mod: _Rewriter.mod,
    exp.Round: _Rewriter.rounding,
    exp.Trunc: _Rewriter.rounding,
    exp.Like: _Rewriter.like,
    exp.ILike: _Rewriter.like,
    exp.SimilarTo: _Rewriter.similar,
    exp.RegexpLike: _Rewriter.regex,
    exp.RegexpILike: _Rewriter.regex,
    exp.RegexpReplace: _Rewriter.regex,
    exp.RegexpCount: _Rewriter.regex,
    exp.Substring: _Rewriter.substring,
    exp.DPipe: _Rewriter.dpipe,
    exp.TimeToStr: _Rewriter.to_char,
    exp.Extract: _Rewriter.extract,
    exp.Anonymous: _Rewriter.date_part,
    exp.DateTrunc: _Rewriter.date_trunc,
    exp.TimestampTrunc: _Rewriter.date_trunc,
    exp.Cast: _Rewriter.cast,
    **{cls: _Rewriter.numeric_result for cls in _NUMERIC_OF_EXACT},
    **{cls: _Rewriter.float_of_int for cls in (exp.Sqrt, exp.Exp, exp.Ln, exp.Log, exp.Ceil, exp.Floor)},
}


# --- the toolkit's two entry points -------------------------------------------------------------

def check_same_meaning(
    sql: str | exp.Expression, types: ColumnTypes | None = None, *, types_known: bool = True
) -> None:
    """Refuse (``SQLRefused``) what would not mean the same on DuckDB as on PostgreSQL.

    ``types`` are the column types of the datasets the SQL reads. With
    ``types_known`` (every dataset's types are known), an expression whose
    meaning depends on a type Atlas cannot tell is refused; without (a step
    saved before its inputs exist) only what is refused whatever the types
    is, and the check runs again with the warehouse's types before the step runs.
    """
    try:
        root = parse(sql if isinstance(sql, str) else sql.sql("postgres"))
    except SqlglotError as exc:
        raise SQLRefused(f"The SQL does not parse: {str(exc).splitlines()[0]}.") from exc
    _Rewriter(root, types, strict=True, types_known=types_known).run()


def to_duckdb(sql: str, types: ColumnTypes | None = None) -> str:
    """``sql`` (PostgreSQL dialect) rendered for DuckDB with PostgreSQL's meaning, as far as types are known."""
    try:
        root = parse(sql)
        rewriter = _Rewriter(root, types, strict=False)
        rewriter.run()
        return rewriter.apply().sql(dialect="duckdb")
    except SqlglotError:  # not for operator SQL (validated first): Atlas's own SQL sqlglot reads only as written
        return sqlglot.transpile(sql, read="postgres", write="duckdb")[0]


def _spark_types(node: exp.Expression) -> exp.Expression:
    """PostgreSQL's ``timestamp`` (without time zone) is Spark's ``TIMESTAMP_NTZ``; Spark's ``TIMESTAMP`` is an instant."""
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.TIMESTAMP:
        return exp.DataType.build("TIMESTAMP_NTZ", dialect="spark")
    return node


def postgres_to_spark(sql: str) -> str:
    """Any PostgreSQL-dialect statement as Spark SQL, with PostgreSQL's timestamp types (Atlas's own SQL too)."""
    return sqlglot.parse_one(sql, read="postgres").transform(_spark_types).sql(dialect="spark")


# What Spark computes as PostgreSQL does once rewritten like DuckDB: integer division (``DIV``),
# numeric results of divisions and of avg/stddev/... over exact numbers. The other DuckDB rewrites
# name DuckDB's own functions; Spark renders the construct as sqlglot does.
def _spark_round(rewriter: _Rewriter, node: exp.Expression) -> None:
    """``round(double)`` rounds half to even on PostgreSQL: Spark's ``bround``."""
    if isinstance(node, exp.Round) and not node.args.get("decimals") and rewriter.typer.of(node.this) == FLOAT:
        rewriter.plan(node, lambda n: exp.Anonymous(this="bround", expressions=[n.this]))


_SPARK_INTEGERS = (exp.DataType.Type.INT, exp.DataType.Type.BIGINT, exp.DataType.Type.SMALLINT)


def _spark_cast(rewriter: _Rewriter, node: exp.Expression) -> None:
    """A double or numeric cast to an integer rounds on PostgreSQL (doubles half to even); Spark truncates."""
    if not isinstance(node, exp.Cast) or node.to.this not in _SPARK_INTEGERS:
        return
    operand = rewriter.typer.of(node.this)
    if operand in (FLOAT, NUMERIC):
        name = "bround" if operand == FLOAT else "round"
        rewriter.plan(node.this, lambda n: exp.Anonymous(this=name, expressions=[n]))


def _spark_regex(rewriter: _Rewriter, node: exp.Expression) -> None:
    """PostgreSQL's ``~``: ``.`` matches a newline (Java's ``(?s)``); ``~*`` ignores case, Unicode's too (``(?iu)``)."""
    flags = "(?isu)" if isinstance(node, exp.RegexpILike) else "(?s)"
    pattern = node.expression

    def rewrite(n: exp.Expression) -> exp.Expression:
        if isinstance(pattern, exp.Literal) and pattern.is_string:
            flagged: exp.Expression = exp.Literal.string(flags + pattern.this)
        else:
            flagged = exp.Anonymous(this="concat", expressions=[exp.Literal.string(flags), pattern.copy()])
        return exp.RegexpLike(this=n.this, expression=flagged)

    rewriter.plan(node, rewrite)


def _spark_date_trunc(rewriter: _Rewriter, node: exp.Expression) -> None:
    """``date_trunc`` of a timestamp (without time zone) is one on PostgreSQL; Spark's is an instant: cast back."""
    if isinstance(node, exp.TimestampTrunc) and rewriter.typer.of(node.this) == TIMESTAMP:
        rewriter.plan(node, lambda n: _cast(n, "timestamp"))


def _spark_distinct_on(node: exp.Expression) -> exp.Expression:
    """``DISTINCT ON (k) ... ORDER BY k, x``: the first row of each ``k`` by ``row_number()`` (sqlglot's rewrite),
    in the ORDER BY's order when its terms are output columns (the rewrite alone leaves the rows unordered)."""
    from sqlglot.transforms import eliminate_distinct_on

    distinct = node.args.get("distinct") if isinstance(node, exp.Select) else None
    if not isinstance(distinct, exp.Distinct) or distinct.args.get("on") is None:
        return node
    order = node.args.get("order")
    outputs = {s.alias_or_name for s in node.selects}
    outer = None
    if order is not None and all(isinstance(o.this, exp.Column) and o.this.name in outputs for o in order.expressions):
        outer = [exp.Ordered(this=exp.column(o.this.name), desc=o.args.get("desc"), nulls_first=o.args.get("nulls_first"))
                 for o in order.expressions]
    rewritten = eliminate_distinct_on(node)
    return rewritten.order_by(*outer, copy=False) if outer else rewritten


_SPARK_HANDLERS: dict[type, Callable[[_Rewriter, exp.Expression], None]] = {
    exp.TimestampTrunc: _spark_date_trunc,
    exp.RegexpLike: _spark_regex,
    exp.RegexpILike: _spark_regex,
    exp.Div: _Rewriter.div,
    exp.Round: _spark_round,
    exp.Cast: _spark_cast,
    **{cls: _Rewriter.numeric_result for cls in _NUMERIC_OF_EXACT},
}


def to_spark(sql: str, types: ColumnTypes | None = None) -> str:
    """``sql`` (PostgreSQL dialect) rendered as Spark SQL with PostgreSQL's meaning where it is known how.

    With the column types, ``int / int`` is Spark's ``DIV`` (integer division toward zero),
    numeric divisions stay numeric, ``round(double)`` is ``bround`` (half to even) and a double or
    numeric cast to an integer is rounded first; PostgreSQL's ``timestamp`` is ``TIMESTAMP_NTZ``. The run
    parameters keep their ``:name`` (Spark binds them). Which corpus statements still differ on
    Spark is listed in ``atlas/tests/sql_corpus/spark_differs.txt``.
    """
    from .params import typed_sql

    try:
        root = parse(typed_sql(sql))
        rewriter = _Rewriter(root, types, strict=False)
        for node in list(root.walk()):
            handler = _SPARK_HANDLERS.get(type(node))
            if handler is not None:
                handler(rewriter, node)
        return rewriter.apply().transform(_spark_types).transform(_spark_distinct_on).sql(dialect="spark")
    except SqlglotError:
        return sqlglot.transpile(sql, read="postgres", write="spark")[0]
