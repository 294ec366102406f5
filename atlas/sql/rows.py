"""Columns and whole rows: every column reference names a column, never a whole row.

PostgreSQL reads an unqualified name that is no column but names a relation
in scope as that relation's whole row (``SELECT c FROM t c``, ``row_to_json(c)``,
``c::text``), and ``alias.name`` that is no column as a call ``name(alias)``
on the whole row (``c.row_to_json``, ``c.text``). A whole row carries every
column, PII included, past the column policies (which apply by column name),
so both are refused: an unqualified name equal to a relation of its scope
must be a column of a relation there, ``alias.name`` must be a column of
``alias`` when its columns are known, and ``*``/``alias.*`` may only be an
item of a select list. Columns of datasets come from the catalogue; those of
WITH queries and subqueries from their select lists.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from .errors import SQLRefused
from .functions import function_name
from .names import display, normalized

# Returns a dataset's column names, or None while they are not known (not loaded yet).
ColumnsOf = Callable[[str, str], frozenset[str] | None]

# Unquoted, PostgreSQL reads these as functions of the session, not as columns.
SESSION_KEYWORDS = frozenset(
    {"user", "current_user", "session_user", "current_role", "current_catalog", "current_schema", "system_user"}
)
_WHOLE_ROW_ADVICE = "a whole row carries every column past the column policies; select the columns you need"


class _Columns:
    """Column names of the relations of a query, computed once per scope."""

    def __init__(self, columns_of: ColumnsOf) -> None:
        self.columns_of = columns_of
        self.memo: dict[int, frozenset[str] | None] = {}

    def of_source(self, source: exp.Expression | Scope) -> frozenset[str] | None:
        if isinstance(source, Scope):
            return self.of_scope(source)
        if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
            alias = source.args.get("alias")
            if alias is not None and alias.columns:
                return frozenset(normalized(c) for c in alias.columns)
            layer = normalized(source.args.get("db"))
            return self.columns_of(layer, normalized(source.this)) if layer else frozenset()
        alias = source.args.get("alias") if isinstance(source, exp.Expression) else None
        if isinstance(alias, exp.TableAlias) and alias.columns:
            return frozenset(normalized(c) for c in alias.columns)
        return frozenset()

    def of_scope(self, scope: Scope) -> frozenset[str] | None:
        key = id(scope.expression)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = frozenset()  # a recursive WITH query refers to itself: no columns from there
        result = self._compute(scope)
        self.memo[key] = result
        return result

    def _compute(self, scope: Scope) -> frozenset[str] | None:
        expression = scope.expression
        for holder in (expression, expression.parent):  # VALUES/unnest carry it, a subquery/CTE holds it
            alias = holder.args.get("alias") if holder is not None else None
            if isinstance(alias, exp.TableAlias) and alias.columns:
                return frozenset(normalized(c) for c in alias.columns)
        while isinstance(expression, exp.SetOperation):
            expression = expression.this
        if isinstance(expression, exp.Subquery):
            expression = expression.unnest()
        if not isinstance(expression, exp.Select):
            return frozenset()
        names: set[str] = set()
        for item in expression.expressions:
            if isinstance(item, exp.Star):
                parts = [self.of_source(s) for s in relations(scope).values()]
            elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
                source = relations(scope).get(normalized(item.args.get("table")).lower())
                parts = [self.of_source(source)] if source is not None else [frozenset()]
            else:
                parts = [frozenset({output_name(item)})]
            if any(p is None for p in parts):
                return None
            for part in parts:
                names |= part  # type: ignore[operator]
        return frozenset(names)


def output_name(item: exp.Expression) -> str:
    """The name PostgreSQL gives a select-list item (its alias, column, or function name)."""
    if isinstance(item, exp.Alias):
        return normalized(item.args["alias"])
    if isinstance(item, exp.Column):
        return normalized(item.this)
    if isinstance(item, exp.Cast):
        return output_name(item.this)
    if isinstance(item, exp.Func):
        return function_name(item)
    return "?column?"


def relations(scope: Scope) -> dict[str, exp.Expression | Scope]:
    """The relations of a scope's FROM and JOINs by lower-cased alias (or table name)."""
    return {alias.lower(): source for alias, (_, source) in scope.selected_sources.items()}


def _visible_scopes(node: exp.Expression, scopes: dict[int, Scope]) -> list[Scope]:
    """Scopes enclosing ``node``, innermost first."""
    found = []
    current: exp.Expression | None = node
    while current is not None:
        scope = scopes.get(id(current))
        if scope is not None:
            found.append(scope)
        current = current.parent
    return found


def _output_aliases(column: exp.Column) -> set[str]:
    """Output names an ORDER BY / GROUP BY / DISTINCT ON bare name may refer to, else empty."""
    parent = column.parent
    in_distinct_on = isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Distinct)
    if isinstance(parent, exp.Ordered) or in_distinct_on:
        parent = parent.parent
    if not isinstance(parent, exp.Order | exp.Group | exp.Distinct):
        return set()
    query = parent.parent
    while isinstance(query, exp.SetOperation):
        query = query.this
    if not isinstance(query, exp.Select):
        return set()
    return {normalized(e.args["alias"]) for e in query.expressions if isinstance(e, exp.Alias)}


def check_stars(root: exp.Expression) -> None:
    """``*`` and ``alias.*`` only as select-list items (and ``count(*)``)."""
    for star in root.find_all(exp.Star):
        parent = star.parent
        if isinstance(parent, exp.Column):
            where = parent
            label = f"{display(normalized(parent.args.get('table')))}.*"
        else:
            where = star
            label = "*"
        holder = where.parent
        if isinstance(holder, exp.Select) and any(e is where for e in holder.expressions):
            continue
        if where is star and isinstance(holder, exp.Count):
            continue
        raise SQLRefused(
            f"{label} may only be an item of a select list: used elsewhere it is the whole row,"
            f" and {_WHOLE_ROW_ADVICE} (alias.column)."
        )


def check_columns(root: exp.Expression, columns_of: ColumnsOf) -> None:
    """Refuse whole-row references and columns a relation does not have."""
    check_stars(root)
    try:
        scopes = {id(s.expression): s for s in traverse_scope(root)}
    except Exception as exc:  # noqa: BLE001 - sqlglot raises several kinds; the query is refused
        raise SQLRefused(f"The query's relations could not be resolved: {str(exc).splitlines()[0]}") from exc
    columns = _Columns(columns_of)
    for column in root.find_all(exp.Column):
        if isinstance(column.this, exp.Star):
            continue
        if column.args.get("db") or column.args.get("catalog"):
            raise SQLRefused(
                f"Qualify a column with its table's alias only (alias.column), not with a layer:"
                f" {display(column.sql('postgres'))}."
            )
        name = normalized(column.this)
        visible = _visible_scopes(column, scopes)
        table = column.args.get("table")
        if table is not None:
            _check_qualified(column, normalized(table), name, visible, columns)
            continue
        if not column.this.quoted and name in SESSION_KEYWORDS:
            raise SQLRefused(
                f"{name} is read by PostgreSQL as the session's {name.replace('_', ' ')}, not as a"
                f' column; quote the column ("{name}") or qualify it (alias.{name}).'
            )
        _check_unqualified(column, name, visible, columns)


def _check_qualified(
    column: exp.Column, alias: str, name: str, visible: list[Scope], columns: _Columns
) -> None:
    for scope in visible:
        source = relations(scope).get(alias.lower())
        if source is None:
            continue
        known = columns.of_source(source)
        if known is not None and name not in known:
            raise SQLRefused(
                f"{display(alias)} has no column {display(name)!r}; PostgreSQL would read"
                f" {display(alias)}.{display(name)} as {display(name)}() of the whole row, and"
                f" {_WHOLE_ROW_ADVICE}."
            )
        return
    raise SQLRefused(
        f"{display(alias)}.{display(name)} names no table of the query; qualify columns with the"
        " alias of a table in FROM."
    )


def _check_unqualified(column: exp.Column, name: str, visible: list[Scope], columns: _Columns) -> None:
    named = [source for scope in visible for alias, source in relations(scope).items() if alias == name.lower()]
    if not named:
        return
    if name in _output_aliases(column):
        return
    for scope in visible:
        for source in relations(scope).values():
            known = columns.of_source(source)
            if known is not None and name in known:
                return
    raise SQLRefused(
        f"{display(name)!r} here is the whole row of the table {display(name)!r}, not a column of it:"
        f" {_WHOLE_ROW_ADVICE} ({display(name)}.column), or rename the alias if {display(name)!r}"
        " is a column."
    )
