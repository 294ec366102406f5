"""What a warehouse engine can do (``wh.features``), the way Django's ``DatabaseFeatures`` says it.

Apps ask a capability, never an engine's name: a third backend answers these
questions (or inherits the answers of the engine it derives from) and every app
works with it unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Warehouse


class BaseFeatures:
    """The answers of an engine that can do only what every engine can."""

    # Explore tables are partitioned per batch (one partition per loaded file): a
    # batch can be dropped whole, without a DELETE scan (``ops.batch_partitions``).
    partitioned_explore_tables = False
    # An index on an expression serves lookups by it (``ops.create_expression_index``).
    # False where the engine scans columnar data faster than it maintains such an index.
    expression_indexes = False
    # ``load_file`` takes a compressed source's content as a stream (``StreamedFile``) and
    # loads it without writing it to disk first; else the file is written before the load.
    streamed_files = False
    # Statements in ``wh.transaction()`` commit or roll back together. False (Spark over Parquet): they
    # run one by one, and what must be all-or-nothing is written as new tables and a swap.
    transactions = True
    # ``publish`` merges deleting the published rows of the keys another staged table holds
    # (``delete_keys_from``): what an incremental transform needs (``pipelines.incremental``).
    incremental_transforms = False

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse


class DuckDBFeatures(BaseFeatures):
    incremental_transforms = True


class PostgresFeatures(BaseFeatures):
    partitioned_explore_tables = True
    expression_indexes = True
    incremental_transforms = True

    @property
    def streamed_files(self) -> bool:  # type: ignore[override]
        # The direct COPY reads the stream (``pgcopy``); with it switched off every file goes
        # through DuckDB, which reads files from disk.
        from django.conf import settings

        return bool(settings.ATLAS_INGEST_DIRECT_COPY)
