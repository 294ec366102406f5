"""Column lineage of one SELECT: what each output column is made of, and how — the one engine.

The PII gate (``compliance``: which output columns carry PII from which input
columns) and the lineage graph and OpenLineage ``columnLineage`` facet
(``lineage``) both read :func:`column_lineage`, so they cannot tell two stories
about the same step.

The query (PostgreSQL dialect) is qualified first with sqlglot — every column
bound to its relation, ``*`` expanded from the catalogue, ``GROUP BY 1``
resolved, unnamed outputs named as PostgreSQL names them — then each output
column is traced by scope through WITH queries, subqueries, set operations and
lateral calls down to the columns of the datasets read. Each input column is classified as OpenLineage's
column-lineage facet does:

* DIRECT — the output value is made from the input's: IDENTITY (copied),
  TRANSFORMATION (computed from one row), AGGREGATION (from several rows);
* INDIRECT — the input decides something else about the output: which rows
  exist (FILTER, JOIN, GROUP_BY, also a plain DISTINCT, which groups by every
  column), their order (SORT), a window's partition and order (WINDOW), which
  branch of a CASE is taken (CONDITIONAL).

An INDIRECT input that concerns one output column (a window's partition, a
CASE condition, an aggregate's FILTER, the WHERE of a scalar subquery) is
listed with that column; one that shapes every row goes to ``dataset``.

Nothing the validator accepts is refused here: a name the catalogue cannot
bind (a column a dataset does not have, ``*`` over a dataset whose columns
are not known yet) is left out of the lineage and listed in ``unresolved``;
the callers decide what an incomplete trace is worth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from .errors import SQLRefused
from .functions import function_name
from .rows import output_name
from .validate import DIALECT, parse_statement

DIRECT, INDIRECT = "DIRECT", "INDIRECT"
IDENTITY, TRANSFORMATION, AGGREGATION = "IDENTITY", "TRANSFORMATION", "AGGREGATION"
JOIN, FILTER, GROUP_BY, SORT, WINDOW, CONDITIONAL = "JOIN", "FILTER", "GROUP_BY", "SORT", "WINDOW", "CONDITIONAL"
_STRENGTH = {IDENTITY: 0, TRANSFORMATION: 1, AGGREGATION: 2}

# The catalogue: each dataset's columns in table order, None while they are not known.
Columns = Mapping[tuple[str, str], Sequence[str] | None]
Key = tuple[str, str, str]  # (layer, table, column)
Mode = tuple[str, str]  # (type, subtype): how the part of the expression being walked reaches the output
_Relation = tuple[Key, str, str]


@dataclass(frozen=True, order=True)
class Source:
    """One input column of an output column (or of the whole output), and how it gets there."""

    layer: str
    table: str
    column: str
    type: str  # DIRECT or INDIRECT
    subtype: str  # IDENTITY, TRANSFORMATION, AGGREGATION; JOIN, FILTER, GROUP_BY, SORT, WINDOW, CONDITIONAL

    @property
    def key(self) -> Key:
        return (self.layer, self.table, self.column)


@dataclass(frozen=True)
class Lineage:
    """What a SELECT's output is made of; every list in a deterministic order."""

    outputs: tuple[str, ...]  # the output columns, in order (as PostgreSQL names them)
    fields: Mapping[str, tuple[Source, ...]]  # output column -> its inputs, sorted
    dataset: tuple[Source, ...]  # INDIRECT inputs that shape every output row, sorted
    tables: tuple[tuple[str, str], ...]  # datasets read, (layer, table)
    unresolved: tuple[str, ...]  # references the catalogue could not bind (left out of the lineage)

    def inputs(self, column: str) -> set[Key]:
        """The input columns of one output column: what the PII gate follows (all of ``fields``)."""
        return {s.key for s in self.fields.get(column, ())}


def column_lineage(sql: str, catalog: Columns) -> Lineage:
    """The column lineage of one SELECT (PostgreSQL dialect) over datasets named ``layer.table``.

    ``catalog`` gives the columns of the datasets the query may read, in table
    order (None, or no entry, while they are not known): they expand ``*`` and
    bind unqualified names. Refuses (``SQLRefused``) only what is not one query.
    """
    frozen = tuple(sorted((key, None if cols is None else tuple(cols)) for key, cols in catalog.items()))
    return _column_lineage(sql, frozen)


@lru_cache(maxsize=256)
def _column_lineage(sql: str, catalog: tuple[tuple[tuple[str, str], tuple[str, ...] | None], ...]) -> Lineage:
    known = dict(catalog)
    root = parse_statement(sql)
    if not isinstance(root, exp.Query):
        raise SQLRefused(f"Only a SELECT (or WITH ... SELECT) has column lineage, not {root.key.upper()}.")
    _name_outputs(root)
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for (layer, table), columns in known.items():
        if columns is not None:
            schema.setdefault(layer, {})[table] = dict.fromkeys(columns, "text")
    try:
        scope = build_scope(_qualify(root, schema))
    except SqlglotError as exc:
        raise SQLRefused(f"The query's column lineage cannot be traced: {str(exc).splitlines()[0]}.") from exc
    if scope is None:
        raise SQLRefused("The statement is not a query; it has no column lineage.")
    tracer = _Tracer(scope, known)
    outputs = _output_names(scope)
    fields = {name: _sources(tracer.projection(scope, name)) for name in outputs}
    dataset = tuple(sorted({Source(*key, INDIRECT, sub) for key, _typ, sub in tracer.indirect(scope)}))
    tracer.unresolved.update(_unexpanded_stars(scope))
    return Lineage(
        outputs=tuple(outputs),
        fields=MappingProxyType(fields),
        dataset=dataset,
        tables=tuple(_tables(scope)),
        unresolved=tuple(sorted(tracer.unresolved)),
    )


def _qualify(root: exp.Expression, schema: dict) -> exp.Expression:
    """Tables and (where sqlglot can) columns qualified, ``*`` expanded, positions resolved.

    PostgreSQL reads an output name only in GROUP BY and ORDER BY (where, in GROUP
    BY, an input column of that name wins): alias references are not expanded
    by sqlglot's rules but bound by the tracer. sqlglot gives up on columns of a
    correlated subquery when a relation's columns are not known: the names are
    then left bare, and the tracer binds every one of them.
    """
    options = {
        "dialect": DIALECT, "schema": schema, "validate_qualify_columns": False, "expand_alias_refs": False,
        "quote_identifiers": False, "identify": False,
    }
    try:
        return qualify(root.copy(), **options)
    except OptimizeError:
        return qualify(root, **options, qualify_columns=False)


def _sources(relations: Iterable[_Relation]) -> tuple[Source, ...]:
    """One DIRECT source per input column (its strongest kind) and every INDIRECT one, sorted."""
    direct: dict[Key, str] = {}
    out: set[Source] = set()
    for key, typ, sub in relations:
        if typ == DIRECT:
            direct[key] = max(direct.get(key, IDENTITY), sub, key=_STRENGTH.__getitem__)
        else:
            out.add(Source(*key, INDIRECT, sub))
    out.update(Source(*key, DIRECT, sub) for key, sub in direct.items())
    return tuple(sorted(out))


def _compose(mode: Mode, relation: _Relation) -> _Relation:
    """An input reached through ``mode``: INDIRECT anywhere makes it INDIRECT (the outer reason
    wins), a DIRECT chain is as strong as its strongest link (a copy of an aggregate is an aggregate)."""
    key, typ, sub = relation
    if mode[0] == INDIRECT:
        return key, INDIRECT, mode[1]
    if typ == INDIRECT:
        return relation
    return key, DIRECT, max(mode[1], sub, key=_STRENGTH.__getitem__)


def _indirect(mode: Mode, subtype: str) -> Mode:
    return mode if mode[0] == INDIRECT else (INDIRECT, subtype)


# --- names -----------------------------------------------------------------------------
def _name_outputs(root: exp.Expression) -> None:
    """Alias every unnamed select item as PostgreSQL names it (``upper(email)`` is ``upper``),
    so that output names and references to them (``sub.upper``) mean what they mean there."""
    for select in list(root.find_all(exp.Select)):
        for item in list(select.expressions):
            if isinstance(item, exp.Alias | exp.Column | exp.Star):
                continue
            item.replace(exp.alias_(item.copy(), _pg_name(item), quoted=True))


def _pg_name(item: exp.Expression) -> str:
    while isinstance(item, exp.Window | exp.Filter | exp.WithinGroup | exp.Paren):
        item = item.this
    if isinstance(item, exp.Func) and not isinstance(item, exp.Cast):
        return function_name(item)
    return output_name(item)


def _output_names(scope: Scope) -> list[str]:
    expression = scope.expression
    while isinstance(expression, exp.SetOperation):
        expression = expression.this
    if isinstance(expression, exp.Subquery):
        expression = expression.unnest()
    if not isinstance(expression, exp.Select):
        return []
    return [name for name in expression.named_selects if name != "*"]


def _unexpanded_stars(root: Scope) -> set[str]:
    """``*`` the catalogue could not expand (its relation's columns are not known yet)."""
    found = set()
    for scope in root.traverse():
        if not isinstance(scope.expression, exp.Select):
            continue
        for item in scope.expression.expressions:
            if isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
                sources = [scope.sources.get(item.table)]
            elif isinstance(item, exp.Star):
                sources = [source for _node, source in scope.selected_sources.values()]
            else:
                continue
            found.update(f"{s.db}.{s.name}.*" if _is_dataset(s) else "*" for s in sources if not isinstance(s, Scope))
    return found


def _tables(root: Scope) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for scope in root.traverse():
        for source in scope.sources.values():
            if _is_dataset(source) and (source.db, source.name) not in seen:
                seen.append((source.db, source.name))
    return seen


def _is_dataset(source: object) -> bool:
    return isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier) and bool(source.db)


# --- the trace ---------------------------------------------------------------------------
class _Tracer:
    def __init__(self, root: Scope, catalog: dict[tuple[str, str], tuple[str, ...] | None]) -> None:
        self.catalog = catalog
        self.scopes = {id(s.expression): s for s in root.traverse()}
        self.unresolved: set[str] = set()
        self._projections: dict[tuple[int, str], set[_Relation]] = {}
        self._indirect: dict[int, set[_Relation]] = {}
        self._names: dict[int, list[str]] = {}
        self._select_items: dict[int, dict[str, exp.Expression]] = {}

    def names(self, scope: Scope) -> list[str]:
        """The output columns of ``scope``, in order (computed once per scope)."""
        if id(scope) not in self._names:
            self._names[id(scope)] = _output_names(scope)
        return self._names[id(scope)]

    def _items(self, scope: Scope) -> dict[str, exp.Expression]:
        """A SELECT's items by output name (the first of a name, as PostgreSQL reads a reference)."""
        if id(scope) not in self._select_items:
            items: dict[str, exp.Expression] = {}
            for item in scope.expression.expressions:
                items.setdefault(item.alias_or_name, item)
            self._select_items[id(scope)] = items
        return self._select_items[id(scope)]

    # --- one output column of a scope -------------------------------------------------
    def projection(self, scope: Scope, name: str) -> set[_Relation]:
        """Input columns feeding output ``name`` of ``scope`` (DIRECT, and per-column INDIRECT)."""
        memo = (id(scope), name)
        if memo in self._projections:
            return self._projections[memo]
        self._projections[memo] = set()  # a recursive WITH query reads itself: nothing more from there
        expression = scope.expression
        result: set[_Relation] = set()
        if isinstance(expression, exp.SetOperation):
            # Branches line up by position; the output has the first branch's names. EXCEPT's
            # right branch gives no value, it only removes rows (see ``indirect``).
            names = self.names(scope)
            index = names.index(name) if name in names else -1
            branches = scope.set_operation_scopes[:1] if isinstance(expression, exp.Except) else scope.set_operation_scopes
            for branch in branches:
                branch_names = self.names(branch)
                if 0 <= index < len(branch_names):
                    result |= self.projection(branch, branch_names[index])
        elif isinstance(expression, exp.Select):
            item = self._items(scope).get(name)
            if item is not None:
                result = self.walk(scope, item.unalias(), (DIRECT, IDENTITY))
        else:
            # VALUES, unnest(), a lateral call: every argument feeds every column it yields.
            result = self.walk(scope, expression, (DIRECT, TRANSFORMATION))
        self._projections[memo] = result
        return result

    def walk(self, scope: Scope, node: exp.Expression, mode: Mode) -> set[_Relation]:
        """The inputs an expression of ``scope`` reads, reached through ``mode``."""
        if isinstance(node, exp.Column):
            return {_compose(mode, r) for r in self.column(scope, node)}
        nested = self.scopes.get(id(node))
        if nested is not None and nested is not scope:
            return self._subquery(nested, node, mode)
        if isinstance(node, exp.Subquery | exp.TableAlias | exp.Identifier):
            return set().union(*(self.walk(scope, c, mode) for c in node.iter_expressions()))
        if mode == (DIRECT, IDENTITY) and not isinstance(node, exp.Paren):
            mode = (DIRECT, TRANSFORMATION)
        if isinstance(node, exp.Window):
            return self.walk(scope, node.this, mode) | self._window(scope, node, _indirect(mode, WINDOW))
        if isinstance(node, exp.Case):
            condition = _indirect(mode, CONDITIONAL)
            out = self.walk(scope, node.this, condition) if node.this else set()
            for branch in node.args.get("ifs") or []:
                out |= self.walk(scope, branch.this, condition) | self.walk(scope, branch.args["true"], mode)
            default = node.args.get("default")
            return out | (self.walk(scope, default, mode) if default is not None else set())
        if isinstance(node, exp.If):
            out = self.walk(scope, node.this, _indirect(mode, CONDITIONAL))
            for part in (node.args.get("true"), node.args.get("false")):
                if part is not None:
                    out |= self.walk(scope, part, mode)
            return out
        if isinstance(node, exp.Filter):  # count(*) FILTER (WHERE ...)
            return self.walk(scope, node.this, mode) | self.walk(scope, node.expression, _indirect(mode, FILTER))
        if isinstance(node, exp.WithinGroup):  # percentile_cont(0.5) WITHIN GROUP (ORDER BY x): x is the value
            inner = mode if mode[0] == INDIRECT else (DIRECT, AGGREGATION)
            out = self.walk(scope, node.this, inner)
            for key in node.expression.expressions if node.expression else []:
                out |= self.walk(scope, key, inner)
            return out
        if isinstance(node, exp.AggFunc) and mode[0] == DIRECT:
            mode = (DIRECT, AGGREGATION)
        if isinstance(node, exp.Order):  # array_agg(x ORDER BY y): y only sorts
            out = self.walk(scope, node.this, mode) if node.this else set()
            for key in node.expressions:
                out |= self.walk(scope, key, _indirect(mode, SORT))
            return out
        result: set[_Relation] = set()
        for child in node.iter_expressions():
            result |= self.walk(scope, child, mode)
        return result

    def _window(self, scope: Scope, window: exp.Window, mode: Mode) -> set[_Relation]:
        """A window's partition and order (``OVER w`` looked up in the query's WINDOW clause)."""
        out: set[_Relation] = set()
        for part in window.args.get("partition_by") or []:
            out |= self.walk(scope, part, mode)
        order = window.args.get("order")
        for key in order.expressions if order else []:
            out |= self.walk(scope, key, mode)
        named = window.args.get("alias")
        select = scope.expression
        if named is not None and isinstance(select, exp.Select):
            for definition in select.args.get("windows") or []:
                if definition.name == named.name and definition is not window:
                    out |= self._window(scope, definition, mode)
        return out

    def _subquery(self, nested: Scope, node: exp.Expression, mode: Mode) -> set[_Relation]:
        """A subquery inside an expression: its value (unless under EXISTS), and what decides its rows."""
        out: set[_Relation] = set()
        if not isinstance(node.parent, exp.Exists):
            for name in self.names(nested):
                out |= {_compose(mode, r) for r in self.projection(nested, name)}
        return out | {_compose(mode, r) if mode[0] == INDIRECT else r for r in self.indirect(nested)}

    # --- one column reference -----------------------------------------------------------
    def column(self, scope: Scope, column: exp.Column) -> set[_Relation]:
        """Where a column reference of ``scope`` comes from, down to dataset columns."""
        name, table = column.name, column.table
        if not table:
            return self._unqualified(scope, column)
        owner: Scope | None = scope
        while owner is not None and table not in owner.sources:
            owner = owner.parent  # a correlated reference to an enclosing query
        if owner is None:
            self.unresolved.add(f"{table}.{name}")
            return set()
        return self._read(owner, owner.sources[table], name, label=f"{table}.{name}")

    def _read(self, owner: Scope, source: exp.Expression | Scope, name: str, *, label: str) -> set[_Relation]:
        """Column ``name`` of one relation of ``owner``."""
        if isinstance(source, Scope):
            select = source.expression
            if name in self.names(source) or not isinstance(select, exp.Select):
                return self.projection(source, name)
            if _has_star(select):  # over columns not known yet
                return self._unqualified(source, exp.column(name))
        elif _is_dataset(source):
            columns = self.catalog.get((source.db, source.name))
            if columns is None or name in columns:
                return {((source.db, source.name, name), DIRECT, IDENTITY)}
            label = f"{source.db}.{source.name}.{name}"
        elif isinstance(source, exp.Table):  # generate_series(...) AS g(d): computed from its arguments
            return self.walk(owner, source.this, (DIRECT, TRANSFORMATION))
        self.unresolved.add(label)
        return set()

    def _unqualified(self, scope: Scope, column: exp.Column) -> set[_Relation]:
        """A bare name: an output name in ORDER BY or GROUP BY, else the one relation in reach that
        has it (innermost query first), else the one relation there whose columns are not known."""
        name = column.name
        select = scope.expression
        clause = _clause(column, select)
        alias = clause in ("order", "group", "distinct") and name in self.names(scope)
        if alias and clause != "group":
            return self.projection(scope, name)  # ORDER BY, DISTINCT ON: an output name wins
        owner: Scope | None = scope
        while owner is not None:
            having, unknown = [], []
            for _node, source in owner.selected_sources.values():
                has = self._has(source, name)
                (having if has else unknown if has is None else []).append(source)
            if len(having) == 1 or (not having and len(unknown) == 1):
                return self._read(owner, (having or unknown)[0], name, label=name)
            if having or unknown:
                break
            if owner is scope and alias:
                return self.projection(scope, name)  # GROUP BY: an output name, no input column of that name
            owner = owner.parent
        self.unresolved.add(name)
        return set()

    def _has(self, source: exp.Expression | Scope, name: str) -> bool | None:
        """Whether a relation has column ``name`` (None: its columns are not known)."""
        if isinstance(source, Scope):
            if name in self.names(source):
                return True
            return None if isinstance(source.expression, exp.Select) and _has_star(source.expression) else False
        if _is_dataset(source):
            columns = self.catalog.get((source.db, source.name))
            return None if columns is None else name in columns
        return False

    # --- what decides the rows ------------------------------------------------------------
    def indirect(self, scope: Scope) -> set[_Relation]:
        """Input columns that decide the rows of ``scope`` (and of every relation it reads)."""
        if id(scope) in self._indirect:
            return self._indirect[id(scope)]
        self._indirect[id(scope)] = set()
        result: set[_Relation] = set()
        expression = scope.expression
        if isinstance(expression, exp.SetOperation):
            for branch in scope.set_operation_scopes:
                result |= self.indirect(branch)
            if isinstance(expression, exp.Except):  # the right branch only removes rows
                right = scope.set_operation_scopes[-1]
                for name in self.names(right):
                    result |= {_compose((INDIRECT, FILTER), r) for r in self.projection(right, name)}
            if expression.args.get("distinct"):  # without ALL: one row per distinct value
                for name in self.names(scope):
                    result |= {_compose((INDIRECT, GROUP_BY), r) for r in self.projection(scope, name)}
        elif isinstance(expression, exp.Select):
            clauses: list[tuple[exp.Expression | None, str]] = [
                (expression.args.get("where"), FILTER),
                (expression.args.get("having"), FILTER),
                (expression.args.get("qualify"), FILTER),
                (expression.args.get("group"), GROUP_BY),
                (expression.args.get("order"), SORT),
            ]
            clauses.extend((join.args.get("on"), JOIN) for join in expression.args.get("joins") or [])
            distinct = expression.args.get("distinct")
            if isinstance(distinct, exp.Distinct):
                on = distinct.args.get("on")
                clauses.extend([(on, GROUP_BY)] if on is not None else [(e, GROUP_BY) for e in expression.expressions])
            for clause, subtype in clauses:
                if clause is not None:
                    result |= self.walk(scope, clause, (INDIRECT, subtype))
            for join in expression.args.get("joins") or []:  # USING (a): column a of both sides
                for name in (i.name for i in join.args.get("using") or []):
                    for _node, source in scope.selected_sources.values():
                        if self._has(source, name) is not False:
                            read = self._read(scope, source, name, label=name)
                            result |= {_compose((INDIRECT, JOIN), r) for r in read}
            for _node, source in scope.selected_sources.values():
                if isinstance(source, Scope):
                    result |= self.indirect(source)
        self._indirect[id(scope)] = result
        return result


def _clause(column: exp.Column, select: exp.Expression) -> str | None:
    """Which clause of ``select`` holds ``column`` (``expressions``, ``where``, ``order``...)."""
    node: exp.Expression | None = column
    while node is not None and node.parent is not select:
        node = node.parent
    return node.arg_key if node is not None else None


def _has_star(select: exp.Select) -> bool:
    return any(isinstance(item, exp.Star) for item in select.expressions)
