"""The Spark warehouse's rows (issue 21): the data browser, the row locator of quality's drop checks, and the
check of operator SQL against what is known to mean the same on Spark (``atlas.sql.spark_meaning``).

Kept apart from ``spark.py`` (the backend's catalogue and publishing) as a mixin of ``SparkWarehouse``.

**The row locator.** A drop check moves failing rows by a locator that names one row of the staged
table (PostgreSQL: the partition and ``ctid``; DuckDB: ``rowid``). A staged table on Spark is a
Parquet table, immutable while the gate runs, and Spark's file sources expose each row's file and
its index in that file as hidden columns: ``_metadata.file_path`` and ``_metadata.row_index`` (the
row's position in its Parquet file, counted by the reader, not a value of the data). The pair is
unique and stable until the table is rewritten, which is what ``quality.quarantine`` needs; the
split itself is a rewrite on Spark (no ``DELETE`` on Parquet, no transactions): see
``quality.quarantine.split``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import WarehouseError


class SparkRows:
    """The data browser on Spark, and the row locator (see the module's docstring)."""

    row_locator: tuple[str, ...] = ("_metadata.file_path", "_metadata.row_index")

    def rows_not_in(self, table: str, locators: str) -> str:
        """The staged rows a drop split keeps, as a hashed anti join on the locator.

        ``NOT ((file, index) IN (SELECT ...))`` is null-aware, and Spark plans a null-aware anti join
        of more than one column as a nested loop: every staged row compared with every flagged one,
        file paths as strings. At 10M orders with some 100k rows flagged the demo's refine of orders
        ran 25 minutes in that loop before it was stopped (``benchmarks/results/scale.md``). A locator
        is never NULL, so ``LEFT ANTI JOIN`` on equality keeps exactly the same rows, and is hashed.
        """
        quote = self.quote  # type: ignore[attr-defined]
        on = " AND ".join(f"s.{c} = l.{quote(f'_atlas_loc{i}')}" for i, c in enumerate(self.row_locator))
        return f"SELECT s.* FROM {table} AS s LEFT ANTI JOIN {locators} AS l ON {on}"

    def check_operator_sql(self, sql: str, types: Any, *, types_known: bool) -> None:
        """Refuse what is not known to mean the same on Spark (``atlas.sql.spark_meaning``, an allowlist), when a step is saved."""
        from atlas.sql.spark_meaning import check_spark_meaning

        check_spark_meaning(sql, types, types_known=types_known)

    def browse(
        self, schema: str, name: str, columns: Sequence[str], *, order_by: str | None = None,
        descending: bool = False, limit: int = 50, offset: int = 0,
    ) -> list[tuple]:
        """See ``Warehouse.browse``: the same contract (columns refused unless the table has them; a total order).

        Spark puts NULLs first in an ascending sort; every key here says ``NULLS LAST``, as PostgreSQL's
        default, so a page holds the same rows as on the other engines. The page is read as one operator
        statement of the layer (no wrapper around it, so Spark's sort is the page's order).
        """
        known = {c.name for c in self.columns(schema, name)}  # type: ignore[attr-defined]
        unknown = [c for c in [*columns, *([order_by] if order_by else [])] if c not in known]
        if unknown or not columns:
            raise WarehouseError(f"{schema}.{name} has no column {unknown[0]!r}." if unknown else "Choose a column.")
        quote = self.quote  # type: ignore[attr-defined]
        keys = [f"{quote(order_by)} {'DESC' if descending else 'ASC'} NULLS LAST"] if order_by else []
        keys += [f"{quote(c)} ASC NULLS LAST" for c in columns]
        sql = (
            f"SELECT {', '.join(quote(c) for c in columns)} FROM {self.sq(schema, name)}"  # type: ignore[attr-defined]
            f" ORDER BY {', '.join(keys)} LIMIT {max(int(limit), 0)} OFFSET {max(int(offset), 0)}"
        )
        from . import privileges

        privileges.check_layer(schema)
        df = self._operator(sql)  # type: ignore[attr-defined]
        return [tuple(r) for r in self._timed_collect(df)] if limit else []  # type: ignore[attr-defined]

