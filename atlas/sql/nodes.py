"""The syntax allowlist: the AST node kinds a read-only query over datasets is made of.

Anything else (INTO, locking clauses, data-modifying CTEs, COPY, SET, PRAGMA,
OPERATOR(...), schema-qualified calls, casts to catalogue types, ...) is
refused because it is not listed here, not because it was foreseen. Function
calls are ``exp.Func`` nodes and are judged by ``functions``.
"""

from __future__ import annotations

from sqlglot import exp

from .errors import SQLRefused

# Query structure, expressions and literals (not function calls).
SYNTAX: frozenset[type[exp.Expression]] = frozenset(
    {
        # query structure
        exp.Select, exp.Union, exp.Except, exp.Intersect, exp.Subquery, exp.With, exp.CTE,
        exp.From, exp.Join, exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit,
        exp.Offset, exp.Fetch, exp.Distinct, exp.Table, exp.TableAlias, exp.Alias, exp.Values,
        exp.Lateral, exp.Unnest, exp.GroupingSets, exp.Cube, exp.Rollup, exp.Window, exp.WindowSpec,
        exp.Filter, exp.WithinGroup,
        # names and literals
        exp.Column, exp.Identifier, exp.Star, exp.Literal, exp.Boolean, exp.Null, exp.Var,
        exp.Interval, exp.IntervalSpan, exp.DataType, exp.DataTypeParam, exp.Tuple, exp.Paren,
        exp.Bracket, exp.Slice, exp.Collate, exp.Heredoc, exp.RawString, exp.National,
        exp.HexString, exp.BitString, exp.ByteString, exp.Escape, exp.JSONPath, exp.JSONPathKey,
        exp.JSONPathRoot, exp.JSONPathSubscript,
        # operators
        exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, exp.Not, exp.DPipe,
        exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
        exp.Is, exp.In, exp.Between, exp.Like, exp.ILike, exp.SimilarTo, exp.Any, exp.All,
        exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift,
        exp.BitwiseRightShift, exp.AtTimeZone, exp.Overlaps,
    }
)

# Statements and clauses that write or lock: named in the message as such.
_WRITES = frozenset(
    name
    for name in (
        "Insert", "Update", "Delete", "Merge", "Drop", "Create", "Alter", "Command", "Copy",
        "TruncateTable", "Into", "Set", "Grant", "Revoke", "Use", "Pragma", "Transaction", "Commit",
        "Rollback", "LoadData", "Attach", "Detach", "Install", "Analyze", "Returning", "Export",
    )
)

# Types a cast may name: plain data, no catalogue (reg*, oid), no user-defined or pseudo types.
T = exp.DataType.Type
CAST_TYPES: frozenset[exp.DataType.Type] = frozenset(
    {
        T.TEXT, T.VARCHAR, T.CHAR, T.NCHAR, T.NVARCHAR, T.BPCHAR, T.NAME,
        T.SMALLINT, T.INT, T.BIGINT, T.TINYINT, T.DECIMAL, T.DOUBLE, T.FLOAT,
        T.BOOLEAN, T.DATE, T.TIME, T.TIMETZ, T.TIMESTAMP, T.TIMESTAMPTZ, T.TIMESTAMPLTZ, T.INTERVAL,
        T.JSON, T.JSONB, T.UUID, T.VARBINARY, T.BINARY, T.BIT, T.ARRAY,
    }
)


def kind(node: exp.Expression) -> str:
    """The construct's name for a message (``SELECT ... INTO`` is ``INTO``)."""
    return node.key.upper()


def check_syntax(node: exp.Expression) -> None:
    """Refuse ``node`` unless its kind is allowlisted (function calls are checked elsewhere)."""
    if isinstance(node, exp.Func):
        return
    if isinstance(node, exp.Lock) or (isinstance(node, exp.Select) and node.args.get("locks")):
        raise SQLRefused("Locking clauses (FOR UPDATE/SHARE) are not allowed.")
    if type(node).__name__ in _WRITES:
        raise SQLRefused(f"Only read-only queries are allowed; found {kind(node)}.")
    if isinstance(node, exp.Operator):
        raise SQLRefused("OPERATOR(...) is not allowed; write the plain operator (a + b, a < b).")
    if isinstance(node, exp.Dot):
        raise SQLRefused(
            f"{_dotted(node)} is not allowed: call functions by their plain name, and read"
            " fields of a row only as alias.column."
        )
    if isinstance(node, exp.ObjectIdentifier):
        raise SQLRefused(
            f"Casts to {node.name.lower()} are not allowed: catalogue types read the database's"
            " catalogue. Cast to a data type (text, integer, numeric, date, timestamp ...)."
        )
    if isinstance(node, exp.DataType):
        check_type(node)
        return
    if isinstance(node, exp.Placeholder):
        raise SQLRefused(
            "Parameters (:name) are allowed only in a step's SELECT, where the run binds them;"
            " write the value here."
        )
    if type(node) not in SYNTAX:
        raise SQLRefused(
            f"The SQL construct {kind(node)} is not allowed in operator SQL; write a plain read-only"
            " SELECT over datasets."
        )


def check_type(node: exp.DataType) -> None:
    if node.this not in CAST_TYPES:
        name = node.args["kind"].name if node.this == T.USERDEFINED and node.args.get("kind") else node.this.value
        raise SQLRefused(
            f"The type {name.lower()} is not allowed in a cast; use a data type such as text,"
            " integer, bigint, numeric, double precision, boolean, date, timestamp, interval,"
            " json or uuid."
        )


def _dotted(node: exp.Dot) -> str:
    parts = []
    for part in (node.this, node.expression):
        if isinstance(part, exp.Func):
            parts.append(part.name if isinstance(part, exp.Anonymous) else part.key)
        elif isinstance(part, exp.Identifier | exp.Column):
            parts.append(part.name)
        elif isinstance(part, exp.Star):
            parts.append("*")
        else:
            parts.append("(...)")
    return ".".join(p.lower() for p in parts)
