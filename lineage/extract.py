"""Column lineage of one SELECT, derived with sqlglot from the query and the known schemas.

The query is qualified first (every column bound to its table, ``SELECT *``
expanded from the schema, ``GROUP BY 1`` resolved), then each output column is
traced through CTEs and subqueries down to the columns of the datasets read.
Edges are classified as OpenLineage does:

* DIRECT — the value comes from the input: IDENTITY (copied), TRANSFORMATION
  (computed from one row), AGGREGATION (computed from several rows);
* INDIRECT — the input decides which rows exist or how they are ordered:
  JOIN, FILTER, GROUP_BY, SORT, WINDOW. Per-column INDIRECT edges (a window's
  partition) go to that column; the others affect the whole output dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

DIRECT, INDIRECT = "DIRECT", "INDIRECT"
IDENTITY, TRANSFORMATION, AGGREGATION = "IDENTITY", "TRANSFORMATION", "AGGREGATION"
JOIN, FILTER, GROUP_BY, SORT, WINDOW = "JOIN", "FILTER", "GROUP_BY", "SORT", "WINDOW"
_RANK = {IDENTITY: 0, TRANSFORMATION: 1, AGGREGATION: 2}

ColumnKey = tuple[str, str, str]  # (schema, table, column)
Relation = tuple[ColumnKey, str, str]  # (input column, type, subtype)


class LineageExtractionError(Exception):
    """The query cannot be traced (it does not parse or names unknown columns); the message says why."""


@dataclass
class QueryLineage:
    """What a SELECT's output is made of."""

    outputs: list[str]
    # output column -> set of (input column, type, subtype)
    fields: dict[str, set[Relation]] = field(default_factory=dict)
    # input columns that affect every output row set: (input column, subtype)
    dataset: set[tuple[ColumnKey, str]] = field(default_factory=set)
    tables: list[tuple[str, str]] = field(default_factory=list)


def _compose(outer: str, inner: str) -> str:
    """A DIRECT chain is as strong as its strongest link (identity of an aggregate is an aggregate)."""
    return outer if _RANK[outer] >= _RANK[inner] else inner


def _reduce(relations: set[Relation]) -> set[Relation]:
    """Keep one DIRECT relation per input column (the strongest) and every INDIRECT one."""
    best: dict[ColumnKey, str] = {}
    out: set[Relation] = set()
    for key, typ, sub in relations:
        if typ == DIRECT:
            best[key] = _compose(best.get(key, IDENTITY), sub)
        else:
            out.add((key, typ, sub))
    out.update((key, DIRECT, sub) for key, sub in best.items())
    return out


class _Tracer:
    def __init__(self, root: Scope) -> None:
        self.root = root
        self._memo: dict[tuple[int, str], set[Relation]] = {}
        self._indirect_memo: dict[int, set[tuple[ColumnKey, str]]] = {}

    # --- direct (and per-column indirect) --------------------------------------------
    def projection(self, scope: Scope, name: str) -> set[Relation]:
        """Input columns feeding output ``name`` of ``scope``."""
        memo_key = (id(scope), name)
        if memo_key in self._memo:
            return self._memo[memo_key]
        self._memo[memo_key] = set()  # guards recursive CTEs
        result: set[Relation] = set()
        if isinstance(scope.expression, exp.SetOperation):
            # Branches line up by position; the output takes the first branch's names.
            names = list(scope.expression.named_selects)
            index = names.index(name) if name in names else -1
            for branch in scope.set_operation_scopes:
                branch_names = list(branch.expression.named_selects)
                if 0 <= index < len(branch_names):
                    result |= self.projection(branch, branch_names[index])
        else:
            select = scope.expression
            for proj in select.expressions if isinstance(select, exp.Select) else []:
                if proj.alias_or_name == name:
                    result |= self._expression(scope, proj.unalias() if isinstance(proj, exp.Alias) else proj)
                    break
        result = _reduce(result)
        self._memo[memo_key] = result
        return result

    def _expression(self, scope: Scope, expression: exp.Expression) -> set[Relation]:
        result: set[Relation] = set()
        for column in expression.find_all(exp.Column):
            if self._in_subquery(column, expression):
                continue
            typ, sub = self._classify(column, expression)
            for key, in_typ, in_sub in self.column(scope, column):
                if typ == INDIRECT or in_typ == INDIRECT:
                    result.add((key, INDIRECT, sub if typ == INDIRECT else in_sub))
                else:
                    result.add((key, DIRECT, _compose(sub, in_sub)))
        return result

    @staticmethod
    def _in_subquery(column: exp.Column, top: exp.Expression) -> bool:
        if column is top:
            return False
        node = column.parent
        while node is not None and node is not top:
            if isinstance(node, exp.Subquery | exp.Select):
                return True
            node = node.parent
        return False

    @staticmethod
    def _classify(column: exp.Column, top: exp.Expression) -> tuple[str, str]:
        if column is top:
            return DIRECT, IDENTITY
        aggregated = False
        node, child = column.parent, column
        while node is not None:
            if isinstance(node, exp.Window) and child is not node.this:
                return INDIRECT, WINDOW
            if isinstance(node, exp.AggFunc):
                aggregated = True
            if node is top:
                break
            node, child = node.parent, node
        return DIRECT, AGGREGATION if aggregated else TRANSFORMATION

    def column(self, scope: Scope, column: exp.Column) -> set[Relation]:
        """Where a column reference of ``scope`` comes from, down to dataset columns."""
        table = column.table
        if not table:
            # An unqualified name left by qualify is a reference to one of this scope's aliases.
            select = scope.expression
            names = {p.alias_or_name for p in select.expressions} if isinstance(select, exp.Select) else set()
            return self.projection(scope, column.name) if column.name in names else set()
        source = scope.sources.get(table)
        if isinstance(source, exp.Table):
            return {((source.db, source.name, column.name), DIRECT, IDENTITY)}
        if isinstance(source, Scope):
            return self.projection(source, column.name)
        return set()

    # --- indirect, for the whole output ------------------------------------------------
    def indirect(self, scope: Scope) -> set[tuple[ColumnKey, str]]:
        """Input columns that decide the rows of ``scope`` (and of every scope it reads)."""
        if id(scope) in self._indirect_memo:
            return self._indirect_memo[id(scope)]
        self._indirect_memo[id(scope)] = set()
        result: set[tuple[ColumnKey, str]] = set()
        if isinstance(scope.expression, exp.SetOperation):
            for branch in scope.set_operation_scopes:
                result |= self.indirect(branch)
        else:
            select = scope.expression
            clauses: list[tuple[exp.Expression | None, str]] = [
                (select.args.get("where"), FILTER),
                (select.args.get("having"), FILTER),
                (select.args.get("group"), GROUP_BY),
                (select.args.get("order"), SORT),
                (select.args.get("qualify"), FILTER),
            ]
            distinct = select.args.get("distinct")
            if isinstance(distinct, exp.Distinct):
                clauses.append((distinct.args.get("on"), GROUP_BY))
            clauses.extend((join.args.get("on"), JOIN) for join in select.args.get("joins") or [])
            for clause, subtype in clauses:
                if clause is None:
                    continue
                for column in clause.find_all(exp.Column):
                    for key, _typ, _sub in self.column(scope, column):
                        result.add((key, subtype))
            for source in scope.sources.values():
                if isinstance(source, Scope):
                    result |= self.indirect(source)
            for sub in scope.subquery_scopes:
                for column in sub.expression.find_all(exp.Column):
                    src = sub.sources.get(column.table)
                    if isinstance(src, exp.Table):
                        result.add(((src.db, src.name, column.name), FILTER))
                result |= self.indirect(sub)
        self._indirect_memo[id(scope)] = result
        return result


def extract(sql: str, schemas: dict[tuple[str, str], list[str]]) -> QueryLineage:
    """The column lineage of one SELECT (PostgreSQL dialect) over datasets named ``layer.table``.

    ``schemas`` gives the columns of every dataset the query may read; they
    expand ``SELECT *`` and bind unqualified column names to their table.
    """
    mapping: dict[str, dict[str, dict[str, str]]] = {}
    for (schema, table), columns in schemas.items():
        mapping.setdefault(schema, {})[table] = {c: "text" for c in columns}
    try:
        parsed = sqlglot.parse_one(sql, read="postgres")
        qualified = qualify(
            parsed,
            schema=mapping,
            dialect="postgres",
            validate_qualify_columns=True,
            quote_identifiers=False,
            identify=False,
        )
    except SqlglotError as exc:
        raise LineageExtractionError(f"Column lineage cannot be traced: {exc}") from exc
    root = build_scope(qualified)
    if root is None:
        raise LineageExtractionError("Column lineage cannot be traced: the statement is not a query.")
    tracer = _Tracer(root)
    outputs = list(qualified.named_selects)
    result = QueryLineage(outputs=outputs)
    for name in outputs:
        result.fields[name] = tracer.projection(root, name)
    result.dataset = tracer.indirect(root)
    seen: list[tuple[str, str]] = []
    for scope in root.traverse():
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and (source.db, source.name) not in seen:
                seen.append((source.db, source.name))
    result.tables = seen
    return result
