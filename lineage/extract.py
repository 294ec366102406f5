"""Column lineage of one SELECT as the lineage graph and the OpenLineage facet take it.

The tracing is :func:`atlas.sql.lineage.column_lineage`, the one engine the PII
gate (``compliance``) reads too; this module only puts its answer in the
graph's shape and refuses, for the graph, a statement it could not trace
completely (the graph then keeps the dataset edges and says why). Edges are
classified as OpenLineage does (see ``atlas.sql.lineage``): DIRECT IDENTITY,
TRANSFORMATION, AGGREGATION; INDIRECT JOIN, FILTER, GROUP_BY, SORT, WINDOW,
CONDITIONAL — per column where the input concerns one column, for the whole
output dataset otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from atlas.sql import SQLRefused
from atlas.sql.lineage import (
    AGGREGATION,
    CONDITIONAL,
    DIRECT,
    FILTER,
    GROUP_BY,
    IDENTITY,
    INDIRECT,
    JOIN,
    SORT,
    TRANSFORMATION,
    WINDOW,
    column_lineage,
)

__all__ = [  # the transformation kinds under the names the graph and privacy import them by
    "AGGREGATION", "CONDITIONAL", "DIRECT", "FILTER", "GROUP_BY", "IDENTITY", "INDIRECT", "JOIN", "SORT",
    "TRANSFORMATION", "WINDOW", "LineageExtractionError", "QueryLineage", "extract",
]

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


def extract(sql: str, schemas: dict[tuple[str, str], list[str]]) -> QueryLineage:
    """The column lineage of one SELECT (PostgreSQL dialect) over datasets named ``layer.table``.

    ``schemas`` gives the columns of every dataset the query may read; they
    expand ``SELECT *`` and bind unqualified column names to their table.
    """
    try:
        traced = column_lineage(sql, schemas)
    except SQLRefused as exc:
        raise LineageExtractionError(f"Column lineage cannot be traced: {exc}") from exc
    if traced.unresolved:
        raise LineageExtractionError(
            f"Column lineage cannot be traced: {', '.join(traced.unresolved)} is not a known column"
            " of the datasets read."
        )
    return QueryLineage(
        outputs=list(traced.outputs),
        fields={name: {(s.key, s.type, s.subtype) for s in sources} for name, sources in traced.fields.items()},
        dataset={(s.key, s.subtype) for s in traced.dataset},
        tables=list(traced.tables),
    )
