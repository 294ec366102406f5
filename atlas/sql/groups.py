"""Affected groups (issue 20): a GROUP BY recomputed only for the groups a keyed merge of its inputs touched.

An aggregate step whose SELECT groups rows of tables that changed by keyed merges (an incremental
refine replaced the rows of some keys, ``pipelines.incremental``) is exact when it recomputes every
group whose rows changed and merges those groups into its published table by the group key:
whatever the aggregates are (sum, count, min, max, avg, count distinct, HAVING), a group's row
depends only on that group's rows. Each merge keeps the rows it replaced and the rows it wrote for
the keys it touched (``old`` and ``new``, :class:`Change`); from them this module builds

* the **affected groups**: every group key some row of the query had, before or after the merges,
  that involves a changed row (:meth:`Grouped.affected_sql`);
* the **recomputation**: the step's own SELECT restricted to those groups (:meth:`Grouped.recompute_sql`).

The shapes accepted, and why they are exact:

* one SELECT with a GROUP BY whose keys are all projected (by position, alias or the same
  expression) and are exactly the step's merge keys; no window function, set operation, LIMIT,
  DISTINCT ON, GROUPING SETS, and no subquery inside an expression (each gives its reason);
* every group key is computed from the columns of the table in the FROM (``G``), an input read
  directly: every row of the query comes from one row of ``G``, so a row's group is a function of
  its ``G`` row (LEFT JOINs keep ``G`` on their preserved side);
* every other table is INNER or LEFT JOINed with at least one equality between one of its columns
  and a column of a table before it (its *links*); it is an input, or a derived table (a FROM
  subquery or WITH query) over one input with no join of its own, whose linked columns are plain
  columns of that input (group columns if it groups).

Why the affected groups are all the changed ones: a ``G`` row that did not change and whose
combinations of joined rows are the same before and after keeps its group's rows; the groups of
changed ``G`` rows are taken from their old and new rows directly; any other ``G`` row whose rows
differ is linked, through the link equalities (which every combination of the query satisfies),
to a changed row of a joined table — found by joining that table's old and new rows back to ``G``
through the tables in between, each as its rows now together with the rows its merge replaced (a
superset of both states, so every link that held before or holds now is followed). Extra groups
cost time, never exactness: the recomputation of an unchanged group gives its published row again.
A derived table's rows of a linked value change only when rows of its input with that value do.

The recomputation adds ``EXISTS (group key in the affected groups)`` to the WHERE (a filter on
``G``'s columns only, so it removes whole groups and nothing else) and restricts each derived
table to the values its links can reach from the affected groups' ``G`` rows (rows it drops
could join no row left). NULL group keys match with ``IS NOT DISTINCT FROM``, as GROUP BY
groups them; the statement that does it runs only when an affected group has a NULL key.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from .incremental import NotIncremental, one_select
from .names import normalized
from .relations import visible_cte

GROUPS_ALIAS = "atlas_g"
WITH = "with_" if "with_" in exp.Select.arg_types else "with"  # the key sqlglot keeps a WITH under


@dataclass(frozen=True)
class Change:
    """What one keyed merge changed in an input: tables (schema, name) of the rows it replaced and wrote."""

    old: tuple[str, str]
    new: tuple[str, str]


@dataclass
class _Item:
    alias: str
    index: int
    table: tuple[str, str]  # the input it reads: (layer, table)
    derived: exp.Select | None = None  # a FROM subquery or WITH query over ``table``
    columns: dict[str, str] = field(default_factory=dict)  # derived: its column -> the input's column
    star: bool = False  # derived: SELECT * (each column is the input's own)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (its column, earlier alias, their column)
    join: exp.Join | None = None

    def source_column(self, column: str) -> str:
        return column if self.derived is None or (self.star and column not in self.columns) else self.columns[column]


def _table(schema: str, name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name), db=exp.to_identifier(schema))


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _refuse_subqueries(node: exp.Expression | None, where: str) -> None:
    if node is None:
        return
    for sub in node.walk():
        if sub is not node and isinstance(sub, exp.Select | exp.Exists):
            raise NotIncremental(f"a subquery in {where} reads rows of other groups")


def _from_table(select: exp.Select) -> exp.Expression | None:
    src = select.args.get("from") or select.args.get("from_")
    return src.this if src is not None else None


class Grouped:
    """A grouped SELECT proven recomputable by affected groups (see the module); :class:`NotIncremental` otherwise."""

    def __init__(self, sql: str, *, keys: Sequence[str], changed: dict[tuple[str, str], Change]) -> None:
        root = one_select(sql)
        self.root, self.changed, self.sql = root, changed, sql
        for node in root.walk():
            if isinstance(node, exp.Window):
                raise NotIncremental("a window function over inputs changed by merge")
            if isinstance(node, exp.Union | exp.Except | exp.Intersect):
                raise NotIncremental(f"a set operation ({node.key.upper()}) over inputs changed by merge")
            if isinstance(node, exp.With) and node.args.get("recursive"):
                raise NotIncremental("a recursive WITH query")
            if isinstance(node, exp.Lateral):
                raise NotIncremental("a LATERAL join")
        if root.args.get("limit") or root.args.get("offset") or root.args.get("fetch"):
            raise NotIncremental("LIMIT or OFFSET over groups")
        distinct = root.args.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            raise NotIncremental("DISTINCT ON over groups")
        for clause in ("expressions", "where", "group", "having"):
            value = root.args.get(clause)
            for part in value if isinstance(value, list) else [value]:
                _refuse_subqueries(part, "the SELECT" if clause == "expressions" else clause.upper())
        self.group = self._group_keys(keys)
        self.items = self._items()
        self._check_group_columns()
        self._check_changed_reads()

    # --- analysis ---------------------------------------------------------------------------------
    def _group_keys(self, keys: Sequence[str]) -> list[tuple[str, exp.Expression]]:
        group = self.root.args.get("group")
        if group is None or not group.expressions:
            raise NotIncremental("the SELECT has no GROUP BY")
        if any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets")):
            raise NotIncremental("GROUPING SETS, ROLLUP or CUBE")
        projections = self.root.expressions
        if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
               for p in projections):
            raise NotIncremental("SELECT * with GROUP BY")
        out: list[tuple[str, exp.Expression]] = []
        for g in group.expressions:
            found = None
            if isinstance(g, exp.Literal) and g.is_int and 1 <= int(g.this) <= len(projections):
                found = projections[int(g.this) - 1]
            else:
                text = g.sql(dialect="postgres")
                found = next((p for p in projections if p.unalias().sql(dialect="postgres") == text), None)
                if found is None and isinstance(g, exp.Column) and not g.table:
                    found = next((p for p in projections if isinstance(p, exp.Alias)
                                  and normalized(p.args["alias"]) == normalized(g.this)), None)
            if found is None:
                raise NotIncremental(f"the group key {g.sql(dialect='postgres')} is not a column of the result")
            out.append((found.alias_or_name.lower(), found.unalias()))
        names = [n for n, _ in out]
        want = [k.lower() for k in keys]
        if sorted(set(names)) != sorted(want) or len(set(names)) != len(names):
            raise NotIncremental(f"the merge keys ({', '.join(keys)}) are not the GROUP BY's columns"
                                 f" ({', '.join(names)})")
        return [next(x for x in out if x[0] == k) for k in want]

    def _items(self) -> list[_Item]:
        first = _from_table(self.root)
        if not isinstance(first, exp.Table) or not first.args.get("db"):
            raise NotIncremental("the FROM is not an input table (the groups are taken from its rows)")
        items = [_Item(alias=normalized(first.alias_or_name), index=0,
                       table=(normalized(first.args["db"]), normalized(first.this)))]
        seen = {items[0].alias}
        for n, join in enumerate(self.root.args.get("joins") or [], start=1):
            side, kind = (join.args.get("side") or "").upper(), (join.args.get("kind") or "").upper()
            if side not in ("", "LEFT") or kind not in ("", "INNER", "OUTER") or (kind == "OUTER" and not side):
                raise NotIncremental(f"a {' '.join(x for x in (side, kind) if x) or 'CROSS'} JOIN over inputs"
                                     " changed by merge (INNER and LEFT joins only)")
            if join.args.get("using") or join.args.get("on") is None:
                raise NotIncremental("a join without ON (its rows cannot be followed back to the groups)")
            item = self._item(join.this, n)
            item.join = join
            if item.alias in seen:
                raise NotIncremental(f"the name {item.alias} is used twice in the FROM")
            _refuse_subqueries(join.args["on"], "a join's ON")
            for c in _conjuncts(join.args["on"]):
                if not (isinstance(c, exp.EQ) and isinstance(c.this, exp.Column) and isinstance(c.expression, exp.Column)):
                    continue
                for mine, theirs in ((c.this, c.expression), (c.expression, c.this)):
                    if normalized(mine.table) == item.alias and normalized(theirs.table) in seen:
                        item.links.append((normalized(mine.this), normalized(theirs.table), normalized(theirs.this)))
            if not item.links:
                raise NotIncremental(f"{item.alias} is joined without an equality to a column of a table before it")
            for col, _, _ in item.links:
                if item.derived is not None and col not in item.columns and not item.star:
                    raise NotIncremental(f"{item.alias}.{col} is not a plain column of {'.'.join(item.table)}"
                                         f"{' grouped by' if item.derived.args.get('group') else ''}")
            seen.add(item.alias)
            items.append(item)
        return items

    def _item(self, node: exp.Expression, index: int) -> _Item:
        alias = normalized(node.alias_or_name)
        if isinstance(node, exp.Table) and node.args.get("db"):
            return _Item(alias=alias, index=index, table=(normalized(node.args["db"]), normalized(node.this)))
        if isinstance(node, exp.Table):
            cte = visible_cte(node, normalized(node.this))
            if cte is None:
                raise NotIncremental(f"{alias} is not an input or a WITH query")
            body = cte.this
        elif isinstance(node, exp.Subquery):
            body = node.this
        else:
            raise NotIncremental(f"{alias} is not an input, a FROM subquery or a WITH query")
        return self._derived(body, alias, index)

    def _derived(self, body: exp.Expression, alias: str, index: int) -> _Item:
        if not isinstance(body, exp.Select):
            raise NotIncremental(f"{alias} is not one SELECT")
        inner = _from_table(body)
        if (not isinstance(inner, exp.Table) or not inner.args.get("db") or body.args.get("joins")
                or body.args.get(WITH)):
            raise NotIncremental(f"{alias} reads more than one input table")
        if body.args.get("limit") or body.args.get("offset") or body.args.get("fetch"):
            raise NotIncremental(f"LIMIT or OFFSET in {alias}")
        d = body.args.get("distinct")
        if d is not None and d.args.get("on") is not None:
            raise NotIncremental(f"DISTINCT ON in {alias}")
        for clause in ("expressions", "where", "group", "having"):
            value = body.args.get(clause)
            for part in value if isinstance(value, list) else [value]:
                _refuse_subqueries(part, f"{alias}")
        group = body.args.get("group")
        grouped = {normalized(g.this) for g in (group.expressions if group else []) if isinstance(g, exp.Column)}
        item = _Item(alias=alias, index=index, table=(normalized(inner.args["db"]), normalized(inner.this)),
                     derived=body)
        for p in body.expressions:
            if isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star)):
                item.star = group is None
                continue
            value = p.unalias()
            if isinstance(value, exp.Column) and (group is None or normalized(value.this) in grouped):
                item.columns[p.alias_or_name.lower()] = normalized(value.this)
        return item

    def _check_group_columns(self) -> None:
        g = self.items[0].alias
        for name, expr in self.group:
            _refuse_subqueries(expr, f"the group key {name}")
            for col in expr.find_all(exp.Column):
                table = normalized(col.table)
                if table != g and not (not table and len(self.items) == 1):
                    raise NotIncremental(f"the group key {name} is not computed from {g}'s columns alone"
                                         f" (the table in the FROM)")

    def _check_changed_reads(self) -> None:
        """Every read of a changed input is the FROM table or one of the joined items (their changes are followed)."""
        reads = [t for t in self.root.find_all(exp.Table) if t.args.get("db")
                 and (normalized(t.args["db"]), normalized(t.this)) in self.changed]
        # a WITH query read by two joins counts once in the text and twice as items: compare the distinct nodes
        used = {id(t) for t in reads}
        accounted = set()
        for item in self.items:
            if item.index == 0:
                accounted.add(id(_from_table(self.root)))
            elif item.derived is not None:
                accounted.add(id(_from_table(item.derived)))
            elif item.join is not None:
                accounted.add(id(item.join.this))
        stray = used - accounted
        if stray:
            node = next(t for t in reads if id(t) in stray)
            raise NotIncremental(f"{normalized(node.args['db'])}.{normalized(node.this)} is read where its changes"
                                 " cannot be followed to the groups")

    # --- what changed ------------------------------------------------------------------------------
    @property
    def changed_inputs(self) -> list[tuple[str, str]]:
        return sorted({i.table for i in self.items if i.table in self.changed})

    def _rows(self, item: _Item, columns: list[str], state: str) -> exp.Expression:
        """``item``'s rows for the link ``columns`` in ``state`` ("now", "old" or "new"), under its alias."""
        src = _table(*item.table) if state == "now" else _table(*getattr(self.changed[item.table], state))
        cols = [exp.alias_(exp.column(item.source_column(c)), c) for c in columns] or [exp.alias_(exp.true(), "x")]
        return exp.Subquery(this=exp.select(*cols).from_(src),
                            alias=exp.TableAlias(this=exp.to_identifier(item.alias)))

    def _needed_columns(self, chain: list[_Item]) -> dict[str, list[str]]:
        need: dict[str, set[str]] = {i.alias: set() for i in chain}
        for i in chain:
            for col, other, theirs in i.links:
                need[i.alias].add(col)
                need[other].add(theirs)
        return {a: sorted(c) for a, c in need.items()}

    def _ancestors(self, item: _Item) -> list[_Item]:
        by_alias = {i.alias: i for i in self.items}
        found, todo = {item.alias}, [item]
        while todo:
            for _, other, _ in todo.pop().links:
                if other not in found:
                    found.add(other)
                    todo.append(by_alias[other])
        return sorted((by_alias[a] for a in found), key=lambda i: i.index)

    def _chain(self, target: _Item, *, changed_rows: bool, extra: str | None = None) -> list[exp.Select]:
        """G joined, through the link equalities only, to ``target``: its changed rows (old and new), the tables
        between as their rows now and the rows their merges replaced (``changed_rows``); or every table as now.

        One SELECT per choice of each table's rows (their UNION ALL is the join of the unions): each joins
        tables the engine has statistics of, so it can follow the few changed rows through the key indexes
        (a join to a union is planned blind: PostgreSQL then hashes every table whole).
        """
        chain = self._ancestors(target)
        need = self._needed_columns(chain)
        if extra is not None and extra not in need[target.alias]:
            need[target.alias].append(extra)
        g = self.items[0]
        choices = [("old", "new") if changed_rows and i is target else
                   ("now", "old") if changed_rows and i.table in self.changed else ("now",) for i in chain[1:]]
        selects = []
        for states in itertools.product(*choices):
            select = exp.select().from_(_table(*g.table).as_(g.alias))
            for i, state in zip(chain[1:], states, strict=True):
                on = exp.and_(*[exp.EQ(this=exp.column(c, table=i.alias), expression=exp.column(t, table=o))
                                for c, o, t in i.links])
                select = select.join(self._rows(i, need[i.alias], state), on=on, join_type="inner")
            selects.append(select)
        return selects

    def _keys_select(self, source: exp.Select) -> exp.Select:
        return source.select(*[exp.alias_(e.copy(), n) for n, e in self.group], append=False)

    def lookups(self) -> list[tuple[tuple[str, str], tuple[str, ...]]]:
        """The input columns the statements look rows up by: (input table, columns), each once.

        Both sides of every link (the affected groups follow a few changed rows back to ``G``; the
        recomputation follows the affected groups' ``G`` rows forward), and ``G``'s group key columns
        when every key is a plain column. An engine that keeps indexes on them (``ensure_key_index``)
        makes both cost the rows they reach, not the tables.
        """
        by_alias = {i.alias: i for i in self.items}
        found: list[tuple[tuple[str, str], tuple[str, ...]]] = []
        g = self.items[0]
        if all(isinstance(e, exp.Column) for _, e in self.group):
            found.append((g.table, tuple(normalized(e.this) for _, e in self.group)))
        for item in self.items[1:]:
            for other in dict.fromkeys(o for _, o, _ in item.links):
                pairs = [(c, t) for c, o, t in item.links if o == other]
                found.append((item.table, tuple(dict.fromkeys(item.source_column(c) for c, _ in pairs))))
                found.append((by_alias[other].table,
                              tuple(dict.fromkeys(by_alias[other].source_column(t) for _, t in pairs))))
        return list(dict.fromkeys(found))

    # --- the statements ---------------------------------------------------------------------------
    def affected_sql(self) -> str:
        """SELECT DISTINCT the group keys (named as the merge keys) of every group a change touched."""
        g = self.items[0]
        parts: list[exp.Select] = []
        if g.table in self.changed:
            for state in ("old", "new"):
                parts.append(self._keys_select(exp.select().from_(_table(*getattr(self.changed[g.table], state))
                                                                  .as_(g.alias))))
        for item in self.items[1:]:
            if item.table in self.changed:
                parts += [self._keys_select(select) for select in self._chain(item, changed_rows=True)]
        names = [n for n, _ in self.group]
        if not parts:
            empty = exp.select(*[exp.alias_(exp.null(), n) for n in names]).where(exp.false())
            return empty.sql(dialect="postgres")
        body = parts[0]
        for p in parts[1:]:
            body = exp.union(body, p, distinct=False)
        out = exp.select(*[exp.column(n) for n in names]).distinct().from_(
            exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier("atlas_a"))))
        return out.sql(dialect="postgres")

    def _match(self, groups: tuple[str, str], nulls: bool) -> exp.Expression:
        """The row's group is one of ``groups``: by equality; or (``nulls``) a group with a NULL key, null-safe."""
        table = _table(*groups).as_(GROUPS_ALIAS)
        if not nulls:
            cond = exp.and_(*[exp.EQ(this=exp.column(n, table=GROUPS_ALIAS), expression=e.copy()) for n, e in self.group])
            return exp.Exists(this=exp.select(exp.Literal.number(1)).from_(table).where(cond))
        some_null = exp.or_(*[exp.Is(this=exp.column(n, table=GROUPS_ALIAS), expression=exp.null())
                              for n, _ in self.group])
        same = exp.and_(*[exp.NullSafeEQ(this=exp.column(n, table=GROUPS_ALIAS), expression=e.copy())
                          for n, e in self.group])
        row_null = exp.or_(*[exp.Is(this=exp.paren(e.copy()), expression=exp.null()) for _, e in self.group])
        return exp.and_(exp.paren(row_null),
                        exp.Exists(this=exp.select(exp.Literal.number(1)).from_(table).where(exp.and_(
                            exp.paren(some_null), same))))

    def _restricted(self, groups: tuple[str, str], nulls: bool) -> exp.Select:
        q = self.root.copy()
        q.set("order", None)
        q.set(WITH, None)
        match = self._match(groups, nulls)
        q.where(match.copy(), append=True, copy=False)
        # each derived table: only the values its links can reach from the affected groups' rows
        joins = q.args.get("joins") or []
        for item in self.items[1:]:
            if item.derived is None:
                continue
            col, other, theirs = item.links[0]
            by_alias = {i.alias: i for i in self.items}
            reach = self._chain(by_alias[other], changed_rows=False, extra=theirs)[0] if other != self.items[0].alias else \
                exp.select().from_(_table(*self.items[0].table).as_(self.items[0].alias))
            reach = reach.select(exp.column(theirs, table=other), append=False).where(match.copy())
            body = item.derived.copy()
            body.set(WITH, None)
            body.where(exp.column(item.source_column(col)).isin(query=reach), append=True, copy=False)
            join = joins[item.index - 1]
            join.set("this", exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier(item.alias))))
        return q

    def recompute_sql(self, groups: tuple[str, str], *, nulls: bool) -> str:
        """The step's SELECT for the rows of ``groups`` (a table of the affected groups) only.

        ``nulls``: some affected group has a NULL key; a second SELECT, null-safe, recomputes those.
        """
        body: exp.Query = self._restricted(groups, False)
        if nulls:
            both = exp.union(body, self._restricted(groups, True), distinct=False)
            body = exp.select("*").from_(exp.Subquery(this=both, alias=exp.TableAlias(this=exp.to_identifier("atlas_r"))))
        with_ = self.root.args.get(WITH)
        if with_ is not None:
            body.set(WITH, with_.copy())
        return body.sql(dialect="postgres")
