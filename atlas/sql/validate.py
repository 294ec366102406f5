"""Validation of operator SQL: one statement, parsed once, checked at every level against allowlists.

``validate_select`` is for a step's SELECT (PostgreSQL dialect) over known
datasets; ``validate_expression`` for a custom check's condition. Both refuse
with ``SQLRefused`` and a message that names what is wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from .errors import SQLRefused
from .functions import check_function
from .names import display, normalized
from .nodes import check_syntax
from .params import check_parameters
from .relations import cte_names, resolve_relations
from .rows import SESSION_KEYWORDS, ColumnsOf, check_columns

DIALECT = "postgres"
# Engines operator SQL must mean the same on: as written (PostgreSQL) and transpiled (DuckDB).
TRANSPILED_ENGINES = ("duckdb",)
DEFAULT_LAYERS = ("explore", "chart", "navigate")
# Bounds checked before parsing, in one pass over the tokens: a statement longer than this, or
# nested deeper (parentheses, subqueries), is refused with a clear message instead of exhausting
# the parser's recursion or the request's time. Far beyond hand-written and generated models alike.
MAX_SQL_CHARS = 100_000
MAX_NESTING = 100


def _no_columns(layer: str, table: str) -> frozenset[str] | None:
    return None


@dataclass(frozen=True)
class Catalog:
    """What operator SQL may read: the datasets (layer, table) and, where known, their columns."""

    tables: frozenset[tuple[str, str]]
    columns: ColumnsOf = field(default=_no_columns)
    layers: tuple[str, ...] = DEFAULT_LAYERS

    @classmethod
    def of(
        cls, tables: Iterable[tuple[str, str]], columns: ColumnsOf | None = None,
        layers: tuple[str, ...] = DEFAULT_LAYERS,
    ) -> Catalog:
        return cls(frozenset(tables), columns or _no_columns, layers)

    def is_known(self, layer: str, table: str) -> bool:
        return (layer, table) in self.tables


@dataclass(frozen=True)
class ValidatedSelect:
    sql: str  # as written, without a trailing semicolon
    tree: exp.Query
    tables: tuple[tuple[str, str], ...]  # (layer, table), in order of appearance
    parameters: tuple[str, ...] = ()  # run parameters it uses (``params.RUN_PARAMETERS``)


def parse_statement(sql: str, *, what: str = "SQL", dialect: str = DIALECT) -> exp.Expression:
    """Exactly one statement, parsed in the PostgreSQL dialect (or ``dialect``: a source database's)."""
    if not isinstance(sql, str) or not sql.strip():
        raise SQLRefused(f"The {what} is empty; write one SELECT.")
    tokens = check_bounds(sql, what=what, dialect=dialect)
    try:
        statements = [s for s in sqlglot.Dialect.get_or_raise(dialect).parser().parse(tokens, sql) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" (line {first.get('line')}, column {first.get('col')})" if first.get("line") else ""
        description = first.get("description") or str(exc).splitlines()[0]
        raise SQLRefused(f"The {what} does not parse{where}: {description}.") from exc
    except SqlglotError as exc:  # the tokenizer's errors (an unclosed quote) are not ParseErrors
        raise SQLRefused(f"The {what} does not parse: {str(exc).splitlines()[0]}.") from exc
    if len(statements) != 1:
        raise SQLRefused(f"Write exactly one statement; found {len(statements)}.")
    return statements[0]


def check_bounds(sql: str, *, what: str = "SQL", dialect: str = DIALECT) -> list:
    """The statement's size and nesting depth within :data:`MAX_SQL_CHARS` and :data:`MAX_NESTING`; its tokens.

    One pass of sqlglot's tokenizer (linear, not recursive), so strings and comments that hold
    parentheses do not count; the parser, which recurses per level, never sees what is refused,
    and parses these tokens rather than tokenizing again.
    """
    if len(sql) > MAX_SQL_CHARS:
        raise SQLRefused(
            f"The {what} is {len(sql):,} characters long; at most {MAX_SQL_CHARS:,} are accepted."
            " Split it into steps (each step's output is a dataset the next one reads)."
        )
    try:
        tokens = sqlglot.Dialect.get_or_raise(dialect).tokenize(sql)
    except SqlglotError as exc:
        raise SQLRefused(f"The {what} does not parse: {str(exc).splitlines()[0]}.") from exc
    depth = 0
    for token in tokens:
        if token.token_type == sqlglot.TokenType.L_PAREN:
            depth += 1
            if depth > MAX_NESTING:
                raise SQLRefused(
                    f"The {what} nests parentheses deeper than {MAX_NESTING} levels (line {token.line});"
                    " simplify it or split it into steps."
                )
        elif token.token_type == sqlglot.TokenType.R_PAREN:
            depth = max(0, depth - 1)
    return tokens


def check_nodes(root: exp.Expression, engine: str = DIALECT, *, parameters: bool = False) -> None:
    """Every node on the syntax allowlist, every function on ``engine``'s allowlist.

    ``parameters``: run parameters (``:name``, checked by ``params.check_parameters``) are allowed.
    """
    for node in root.walk():
        if parameters and isinstance(node, exp.Placeholder):
            continue
        if isinstance(node, exp.Func):
            check_function(node, engine)
        else:
            check_syntax(node)


def check_transpiled(root: exp.Expression, *, datasets: Iterable[tuple[str, str]] = ()) -> None:
    """The query as each other engine runs it: its functions on that engine's allowlist, same relations.

    The DuckDB backend runs sqlglot's rendering, not the text the operator
    wrote; what it calls and reads is checked again, so that a rewrite by the
    transpiler cannot introduce a function or a relation the check never saw.
    """
    sql = root.sql(DIALECT)
    allowed_tables = set(datasets)
    ctes = {n.lower() for n in cte_names(root)}
    for engine in TRANSPILED_ENGINES:
        try:
            rendered = sqlglot.transpile(sql, read=DIALECT, write=engine)[0]
            tree = sqlglot.parse_one(rendered, read=engine)
        except SqlglotError as exc:
            raise SQLRefused(f"The SQL cannot be rendered for {engine}: {str(exc).splitlines()[0]}.") from exc
        for node in tree.walk():
            if isinstance(node, exp.Func):
                check_function(node, engine)
            elif isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
                name, layer = normalized(node.this), normalized(node.args.get("db"))
                if (layer, name) in allowed_tables or (not layer and name.lower() in ctes):
                    continue
                raise SQLRefused(
                    f"The SQL reads {display(f'{layer}.{name}' if layer else name)} once rendered for"
                    f" {engine}, which is not a dataset of the query; simplify the query."
                )


def validate_select(sql: str, catalog: Catalog) -> ValidatedSelect:
    """A step's SELECT: one read-only query whose every part is allowed; returns what it reads."""
    root = parse_statement(sql)
    if not isinstance(root, exp.Query):
        raise SQLRefused(f"Only a SELECT (or WITH ... SELECT) is allowed, not {root.key.upper()}.")
    for node in root.walk():  # writes and locks first: the clearest reason
        if isinstance(node, exp.Lock | exp.DML | exp.DDL | exp.Into | exp.Returning | exp.Command):
            check_syntax(node)
    tables = resolve_relations(root, catalog.is_known, catalog.layers)
    check_columns(root, catalog.columns)  # before functions: a whole row is the better reason
    parameters = check_parameters(root)  # allowlisted names only; bound by the driver, never formatted
    check_nodes(root, parameters=True)
    if not tables:
        raise SQLRefused("The query reads no dataset.")
    check_transpiled(root, datasets=tables)
    return ValidatedSelect(
        sql=sql.strip().rstrip(";").strip(), tree=root, tables=tuple(tables), parameters=tuple(parameters)
    )


def check_expression(
    root: exp.Expression, *, columns: frozenset[str] | None = None,
    column_check: Callable[[exp.Column], None] | None = None,
) -> None:
    """A condition over one row (or its aggregates): allowed nodes and functions, real columns.

    ``columns``, when known, are the dataset's: a name that is none of them
    is refused (the check compiler binds each name to the row, and
    ``row.name`` that is no column is ``name(row)`` on PostgreSQL).
    """
    check_nodes(root)
    for column in root.find_all(exp.Column):
        if column_check is not None:
            column_check(column)
        if isinstance(column.this, exp.Star):
            raise SQLRefused("A whole row (*) is not allowed in a check; name the columns.")
        name = normalized(column.this)
        if not column.this.quoted and name in SESSION_KEYWORDS:
            raise SQLRefused(
                f"{name} is read by PostgreSQL as the session's {name.replace('_', ' ')}, not as a"
                f' column; quote the column ("{name}").'
            )
        if columns is not None and name not in columns:
            raise SQLRefused(
                f"The dataset has no column {display(name)!r} (known: {', '.join(sorted(columns))})."
            )
    for star in root.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            raise SQLRefused("A whole row (*) is not allowed in a check; name the columns.")
    check_transpiled(root)


def validate_expression(sql: str, *, columns: frozenset[str] | None = None) -> exp.Expression:
    """One SQL expression (PostgreSQL dialect) for a custom check; no statement, no query."""
    root = parse_statement(sql, what="expression")
    if isinstance(root, exp.Query):
        raise SQLRefused("Write an expression (e.g. amount >= 0), not a statement or a query.")
    check_expression(root, columns=columns)
    return root
