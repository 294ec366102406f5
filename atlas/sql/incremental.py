"""Incremental transforms (issue 20): a step's SELECT rewritten to read only the new batches of one input.

A refine step that keeps the latest row per key from an append-only Explore table,

    SELECT DISTINCT ON (k) k, ... FROM <row-local SQL over explore.t> ORDER BY k, _ingested_at DESC, ...

gives, for each key, the row of the latest load among the rows with that key. Every new batch is
loaded after every batch the step already read (``_ingested_at`` is set by the load), so over all
the batches the result for a key is the new batches' result for it where the new batches have the
key, and the published row otherwise. Reading only the new batches and replacing the published rows
of the keys they give is therefore the full recomputation, exactly, when:

* the outermost SELECT is ``DISTINCT ON`` exactly the merge keys (columns of its result),
  ordered by them and then by ``_ingested_at DESC`` (the latest load first);
* the input is read once, on the preserved side of its SELECT (its FROM, never a joined table),
  through WITH queries and FROM subqueries read once each, and ``_ingested_at`` passes through
  unchanged (only plain columns may be named ``_ingested_at``);
* nothing anywhere groups or compares rows with each other: no GROUP BY, aggregate, window
  function, DISTINCT, LIMIT/OFFSET, set operation or recursive WITH (each gives the reason);
* RIGHT and FULL joins are refused (they add rows the input does not give).

The other tables it joins must be unchanged since the step's last run: the caller checks that.
Anything else is not proven equivalent and :class:`NotIncremental` says why, in a line
("GROUP BY over an incremental input"): the step then recomputes in full.

The new batches are named as literals of Atlas's own batch ids (``b`` + hex, checked against
:data:`BATCH_ID`), built as syntax-tree nodes, never formatted from data; as literals they let
PostgreSQL prune the per-batch partitions of an Explore table when it plans the statement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from .names import normalized
from .relations import visible_cte

LOAD_ORDER = "_ingested_at"
BATCH_COLUMN = "_batch_id"
BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class NotIncremental(Exception):
    """The SELECT cannot be proven equal to the full recomputation when read incrementally; the message says why."""


def one_select(sql: str) -> exp.Select:
    """``sql`` (PostgreSQL's dialect) parsed, when it is one SELECT; :class:`NotIncremental` with the reason otherwise."""
    try:
        root = sqlglot.parse_one(sql, read="postgres")
    except SqlglotError as exc:
        raise NotIncremental(f"the SQL does not parse ({str(exc).splitlines()[0]})") from None
    if not isinstance(root, exp.Select):
        raise NotIncremental(f"the query is a {root.key.upper()}, not one SELECT")
    return root


def _refuse_rows_compared(root: exp.Expression, shown: str) -> None:
    """Nothing may group or compare rows: each construct that does gives its own reason."""
    outer_distinct = root.args.get("distinct")
    for node in root.walk():
        if isinstance(node, exp.Group):
            raise NotIncremental(f"GROUP BY over an incremental input ({shown})")
        if isinstance(node, exp.Window):
            raise NotIncremental(f"a window function over an incremental input ({shown})")
        if isinstance(node, exp.AggFunc):
            raise NotIncremental(f"an aggregate ({node.key}) over an incremental input ({shown})")
        if isinstance(node, exp.Having):
            raise NotIncremental(f"HAVING over an incremental input ({shown})")
        if isinstance(node, exp.Limit | exp.Offset | exp.Fetch):
            raise NotIncremental(f"LIMIT or OFFSET over an incremental input ({shown})")
        if isinstance(node, exp.Union | exp.Except | exp.Intersect):
            raise NotIncremental(f"a set operation ({node.key.upper()}) over an incremental input ({shown})")
        if isinstance(node, exp.Distinct) and node is not outer_distinct:
            raise NotIncremental(f"DISTINCT inside the query over an incremental input ({shown})")
        if isinstance(node, exp.With) and node.args.get("recursive"):
            raise NotIncremental("a recursive WITH query")
        if isinstance(node, exp.Join) and (node.args.get("side") or "").upper() in ("RIGHT", "FULL"):
            raise NotIncremental(f"a {node.args['side'].upper()} JOIN, which adds rows the input does not give")
        if isinstance(node, exp.Alias) and normalized(node.args.get("alias")) == LOAD_ORDER:
            inner = node.this
            if not (isinstance(inner, exp.Column) and normalized(inner.this) == LOAD_ORDER):
                raise NotIncremental(f"{LOAD_ORDER} is computed, not the load's own")


def _check_latest_per_key(root: exp.Select, keys: Sequence[str]) -> None:
    """DISTINCT ON exactly the keys, projected as themselves, ordered by them then ``_ingested_at DESC``."""
    want = [k.lower() for k in keys]
    distinct = root.args.get("distinct")
    on = distinct.args.get("on") if isinstance(distinct, exp.Distinct) else None
    hint = f"DISTINCT ON ({', '.join(keys)}) ... ORDER BY {', '.join(keys)}, {LOAD_ORDER} DESC"
    if on is None:
        raise NotIncremental(f"the SELECT does not keep one row per key ({hint})")
    on_exprs = list(on.expressions) if isinstance(on, exp.Tuple) else [on]
    names = [normalized(e.this) if isinstance(e, exp.Column) else None for e in on_exprs]
    if None in names or sorted(names) != sorted(want):
        raise NotIncremental(f"DISTINCT ON is not on the merge keys ({hint})")
    projected = {sel.alias_or_name.lower() for sel in root.expressions}
    if any(k not in projected for k in want):
        raise NotIncremental(f"the merge keys are not all columns of the result ({hint})")
    order = root.args.get("order")
    terms = list(order.expressions) if order is not None else []
    head = [normalized(t.this.this) if isinstance(t.this, exp.Column) else None for t in terms[: len(want)]]
    if sorted(h or "" for h in head) != sorted(want) or len(terms) <= len(want):
        raise NotIncremental(f"DISTINCT ON does not keep the latest load first ({hint})")
    latest = terms[len(want)]
    if not (isinstance(latest.this, exp.Column) and normalized(latest.this.this) == LOAD_ORDER
            and latest.args.get("desc")):
        raise NotIncremental(f"DISTINCT ON does not keep the latest load first ({hint})")


def _as_from_of(node: exp.Expression, shown: str) -> exp.Select:
    """The SELECT whose FROM ``node`` (a table or FROM subquery) is; refuses any other place."""
    parent = node.parent
    if not isinstance(parent, exp.From) or not isinstance(parent.parent, exp.Select):
        if isinstance(parent, exp.Join):
            raise NotIncremental(f"{shown} is joined to another table, not read as the FROM of its SELECT")
        raise NotIncremental(f"{shown} is read inside a subquery or expression")
    return parent.parent


def _chain_to_root(table: exp.Table, root: exp.Select, shown: str) -> None:
    """From the input's reference up to the outermost SELECT, each step is a FROM read once."""
    node: exp.Expression = table
    while True:
        select = _as_from_of(node, shown)
        if select is root:
            return
        container = select.parent
        if isinstance(container, exp.Subquery):  # (SELECT ...) AS alias in a FROM
            node = container
            continue
        if isinstance(container, exp.CTE):
            name = normalized(container.args["alias"].this)
            refs = [t for t in root.find_all(exp.Table) if not t.args.get("db") and normalized(t.this) == name
                    and visible_cte(t, name) is container]
            if len(refs) != 1:
                raise NotIncremental(f"the WITH query {name} over {shown} is read {len(refs)} times, not once")
            node = refs[0]
            continue
        raise NotIncremental(f"{shown} is read inside a subquery or expression")


def rewrite(sql: str, *, keys: Sequence[str], layer: str, table: str, batches: Sequence[str]) -> str:
    """``sql`` (PostgreSQL dialect) reading only ``batches`` of ``layer.table``; :class:`NotIncremental` says why not.

    The reference to ``layer.table`` becomes ``(SELECT * FROM layer.table WHERE _batch_id IN (...)) AS <alias>``
    under the alias (or name) it had, so the rest of the query reads it as before.
    """
    shown = f"{layer}.{table}"
    root = one_select(sql)
    _refuse_rows_compared(root, shown)
    _check_latest_per_key(root, keys)
    refs = [t for t in root.find_all(exp.Table)
            if normalized(t.args.get("db")) == layer and normalized(t.this) == table]
    if len(refs) != 1:
        raise NotIncremental(f"{shown} is read {len(refs)} times, not once")
    _chain_to_root(refs[0], root, shown)
    if not all(isinstance(b, str) and BATCH_ID.match(b) for b in batches):
        raise NotIncremental("a new batch has no valid id")
    ref = refs[0]
    new_batch = exp.column(BATCH_COLUMN).isin(*[exp.Literal.string(b) for b in batches]) if batches else exp.false()
    new_rows = exp.select("*").from_(exp.table_(table, db=layer)).where(new_batch)
    alias = ref.alias or table
    ref.replace(exp.Subquery(this=new_rows, alias=exp.TableAlias(this=exp.to_identifier(alias))))
    return root.sql(dialect="postgres")
