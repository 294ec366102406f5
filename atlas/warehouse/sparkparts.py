"""Removing rows from a published Spark dataset part by part: erasure, retention (issue 21).

A published dataset on Spark is a view over immutable Parquet *parts* (``atlas.warehouse.spark``);
an Explore dataset has one part per loaded file (batch), whose rows share their ``_ingested_at``.
Parquet has no ``DELETE``, so removing rows is writing new parts and swapping the view:

* **A DELETE** (an erasure, a straddling batch) counts the matching rows of every part in one
  job, rewrites only the parts that hold some (each into a new part without them) and swaps the
  view once. The other parts, and so the batch structure retention relies on, stay as they were;
  the count is exact (parts never change once written, so what was counted is what went).
* **Retention by load date** drops whole parts: ``features.partitioned_explore_tables`` is true,
  ``ops.batch_partitions`` lists an Explore view's parts and ``ops.drop_partition`` swaps the view
  without one (no rewrite, no scan beyond one row and one count per candidate part).
  ``retention.expiry`` decides, as on PostgreSQL's batch partitions.

A reader sees the view before or after a swap, never a part half-written; a part no longer named
is retired (dropped after ``ATLAS_SPARK_RETIRE_SECONDS``), so a query planned before still runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import Column, Cursor

if TYPE_CHECKING:
    from .spark import SparkWarehouse


def _q(name: str) -> str:
    return "`" + str(name).replace("`", "``") + "`"


class SparkPartRewrites:
    """The Spark backend's part-wise rewrites (mixed into ``SparkWarehouse``)."""

    def _part_select(self: SparkWarehouse, schema: str, part: str, columns: Sequence[Column], have: set[str]) -> str:
        """A part's rows in the view's columns (NULL where the part lacks one, ``have``: its columns): what the view reads of it."""
        from .spark import _spark_type

        items = [
            _q(c.name) if c.name in have else f"CAST(NULL AS {_spark_type(c.type)}) AS {_q(c.name)}" for c in columns
        ]
        return f"SELECT {', '.join(items)} FROM {self.sq(schema, part)}"

    def _rewrite_view_without(
        self: SparkWarehouse, schema: str, view: str, cond: str, params: list[Any], *, alias: str | None = None,
        only: Sequence[str] | None = None,
    ) -> int:
        """Rows of ``view`` matching ``cond`` (Spark SQL, ``?`` bound by ``params``) removed; how many.

        ``only``: the parts to consider (default: every part of the view).
        """
        parts = self._parts(schema, view)
        candidates = [p for p in parts if only is None or p in only]
        if not candidates:
            return 0
        columns = self.columns(schema, view)
        columns_of = self._columns_of_parts(schema, candidates)
        name = _q(alias or view)
        # one job: how many rows of each part match (0 for most parts of an erasure)
        counts = " UNION ALL ".join(
            f"SELECT {i} AS part, count_if(coalesce(({cond}), false)) AS n FROM ({self._part_select(schema, p, columns, columns_of[p])}) AS {name}"
            for i, p in enumerate(candidates)
        )
        found = {int(i): int(n) for i, n in self._run(counts, list(params) * len(candidates))}
        touched = [p for i, p in enumerate(candidates) if found.get(i, 0)]
        if not touched:
            return 0
        replaced: dict[str, str] = {}
        for part in touched:
            new = self._new_part(view)
            self._command(
                f"CREATE TABLE {self.sq(schema, new)} USING parquet AS SELECT * FROM"
                f" ({self._part_select(schema, part, columns, columns_of[part])}) AS {name} WHERE NOT coalesce(({cond}), false)",
                params,
            )
            replaced[part] = new
        self._swap(schema, view, [replaced.get(p, p) for p in parts], columns)
        return sum(found.values())

    def _drop_parts(self: SparkWarehouse, schema: str, view: str, drop: Sequence[str]) -> None:
        """Swap ``view`` without the parts ``drop`` (an empty part stands in when none is left)."""
        columns = self.columns(schema, view)
        keep = [p for p in self._parts(schema, view) if p not in set(drop)]
        if not keep:
            from .spark import _spark_type

            empty = self._new_part(view)
            defs = ", ".join(f"{_q(c.name)} {_spark_type(c.type)}" for c in columns)
            self._command(f"CREATE TABLE {self.sq(schema, empty)} ({defs}) USING parquet")
            keep = [empty]
        self._swap(schema, view, keep, columns)


class SparkPartOperations:
    """``wh.ops`` on Spark for retention: an Explore view's parts are its batch partitions."""

    wh: SparkWarehouse

    def _views(self) -> dict[tuple[str, str], str]:
        views = self.__dict__.get("_part_views")
        if views is None:
            views = self.__dict__["_part_views"] = {}
        return views

    def batch_partitions(self, cur: Cursor, schema: str, table: str) -> list[tuple[str, str]] | None:
        if self.wh._kind(schema, table) != "VIEW":
            return None
        parts = self.wh._parts(schema, table)
        for part in parts:
            self._views()[(schema, part.lower())] = table
        return [(schema, p) for p in parts]

    def drop_partition(self, cur: Cursor, schema: str, table: str, part_schema: str, part: str) -> None:
        self.wh._drop_parts(schema, table, [part])

    def delete(self, cur: Cursor, sql: str, params: Sequence[Any]) -> int:
        """A DELETE; on one part of a view (a straddling batch) the part is rewritten and the view swapped."""
        from .spark import render

        target = _delete_target(render(sql))
        view = self._views().get((target[0], target[1].lower())) if target else None
        if target and view:
            return self.wh._rewrite_view_without(target[0], view, target[2], list(params), only=[target[1]])
        cur.execute(sql, params)
        return int(cur.rowcount)


def _delete_target(spark_sql: str) -> tuple[str, str, str] | None:
    """(schema, table, condition) of ``DELETE FROM schema.table WHERE condition``; None for anything else."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(spark_sql, read="spark")
    except SqlglotError:
        return None
    table, where = tree.this, tree.args.get("where")
    if not isinstance(tree, exp.Delete) or not isinstance(table, exp.Table) or table.alias or where is None:
        return None
    return table.db, table.name, where.this.sql(dialect="spark")
