"""Relationships between dataset columns, as Atlas sees them: referential checks and the joins of step SQL.

A subject's rows are not only those holding an e-mail: ``orders.customer_id``
refers to ``customers.customer_id``, ``order_items.order_id`` to
``orders.order_id``. Two sources say so without anyone declaring it again:

* quality's referential checks (``{"dataset": ..., "column": ...}``): the
  checked column refers to the named one (directed);
* the equality joins in the SQL of refine and aggregate steps
  (``... JOIN chart.orders AS o ON o.customer_id = c.customer_id``): the two
  columns hold the same values (undirected; :mod:`privacy.keys` decides which
  side identifies subjects).

Each pair is ``((dataset_id, column), (dataset_id, column), directed)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from pipelines.models import Dataset, Step

logger = logging.getLogger(__name__)
Col = tuple[int, str]


@dataclass(frozen=True)
class Pair:
    child: Col  # the column that refers (for an undirected pair: either side)
    parent: Col
    directed: bool
    source: str  # "check:<name>" or "join:<step>"


def referential_pairs() -> list[Pair]:
    """Referential checks: the checked column refers to the named dataset's column."""
    from quality.models import Check, CheckKind

    by_name = dict(Dataset.objects.values_list("name", "pk"))
    out = []
    for check in Check.objects.filter(kind=CheckKind.REFERENTIAL):
        params, columns = check.params or {}, check.columns or []
        parent = by_name.get(params.get("dataset"))
        if parent is None or not columns or not params.get("column"):
            continue
        out.append(Pair((check.dataset_id, columns[0]), (parent, str(params["column"])), True, f"check:{check.name}"))
    return out


def join_pairs() -> list[Pair]:
    """Equality conditions between columns of two datasets in the JOIN ... ON of every step's SQL."""
    datasets = {(layer, table): pk for pk, layer, table in Dataset.objects.values_list("pk", "layer", "table")}
    out: list[Pair] = []
    for step in Step.objects.exclude(sql="").only("name", "sql"):
        try:
            out.extend(_joins(step.sql, datasets, step.name))
        except sqlglot.errors.SqlglotError:
            logger.info("Step %r: its SQL could not be parsed for joins.", step.name)
    return out


def _joins(sql: str, datasets: dict[tuple[str, str], int], step: str) -> list[Pair]:
    root = sqlglot.parse_one(sql, read="postgres")
    out = []
    for select in root.find_all(exp.Select):
        aliases: dict[str, int] = {}
        for table in [select.args.get("from_") or select.args.get("from"), *(select.args.get("joins") or [])]:
            node = table.this if table is not None else None
            if isinstance(node, exp.Table) and node.db and (node.db, node.name) in datasets:
                aliases[node.alias_or_name] = datasets[(node.db, node.name)]
        if len(aliases) < 2:
            continue
        for join in select.args.get("joins") or []:
            on = join.args.get("on")
            if on is None:
                continue
            for eq in on.find_all(exp.EQ):
                left, right = eq.left, eq.right
                if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
                    continue
                a, b = aliases.get(left.table), aliases.get(right.table)
                if a is None or b is None or a == b:
                    continue
                out.append(Pair((a, left.name), (b, right.name), False, f"join:{step}"))
    return out


def pairs() -> list[Pair]:
    return referential_pairs() + join_pairs()
