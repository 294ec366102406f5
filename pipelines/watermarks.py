"""Incremental extraction from a database source by a watermark column.

A SQL source with ``{"watermark": "updated_at"}`` in its options reads, on each
load, only the rows whose watermark is greater than the greatest one already
published into the step's dataset:

1. the bounds: ``max(w)`` of the new rows and the number of NULL watermarks, in one
   query on the source database;
2. the rows ``w > last AND w <= max``, exported as the load's file (both values bound
   by the source database's driver, never written into the SQL);
3. the new maximum is stored as *pending* with the file's checksum before the load
   publishes, and becomes the watermark once the warehouse's batch ledger holds that
   checksum: right after the publish, or on the next load if the worker died in
   between. A load that fails never advances it; a load that publishes always does.

The rules (README, "Backfills and parameters"):

* the column must be one of the query's columns (else the load fails, naming them);
* a NULL watermark fails the load (the row could never be read incrementally): fill
  the column or leave those rows out in the query (``WHERE w IS NOT NULL``);
* watermarks must grow: a row that appears later with a watermark at or below the
  stored one is never read (use a sequence or a commit timestamp, not a business date);
* rows with the same watermark as the maximum must arrive together.

The watermark is stored per source and dataset (:class:`~pipelines.models.SourceWatermark`);
deleting it in the admin makes the next load read everything again.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from dataclasses import dataclass
from typing import Any

from atlas.warehouse import registry
from atlas.warehouse.filereader import IngestError

from .models import Dataset, Source, SourceWatermark

OPTION = "watermark"
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def column_of(source: Source) -> str | None:
    """The watermark column a source names (None: it loads everything each time)."""
    opts = source.options if isinstance(source.options, dict) else {}
    return opts.get(OPTION) or None


def check_option(source: Source) -> str | None:
    """What is wrong with a source's watermark option, or None."""
    value = (source.options or {}).get(OPTION) if isinstance(source.options, dict) else None
    if value is None:
        return None
    if source.kind != Source.Kind.SQL:
        return "watermark is for SQL sources only (a database query); files are skipped by checksum instead."
    if not isinstance(value, str) or not COLUMN_RE.match(value):
        return "watermark must be a column name of the query (letters, digits, underscores)."
    return None


# --- values, stored as JSON with their type -------------------------------------------------------
def dump(value: Any) -> dict[str, str]:
    if isinstance(value, bool):
        raise IngestError("A boolean column cannot be a watermark; choose a growing number or timestamp.")
    if isinstance(value, dt.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, int):
        return {"type": "int", "value": str(value)}
    if isinstance(value, decimal.Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    raise IngestError(
        f"A watermark of type {type(value).__name__} is not supported; use a number, a date, a timestamp or text."
    )


LOADERS = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "int": int,
    "decimal": decimal.Decimal,
    "float": float,
    "str": str,
}


def load(stored: dict | None) -> Any:
    if not stored:
        return None
    return LOADERS[stored["type"]](stored["value"])


# --- one load -------------------------------------------------------------------------------------
@dataclass
class Incremental:
    """The watermark of one load: where it starts, and the maximum it read (pending until published)."""

    record: SourceWatermark
    column: str
    last: Any

    @property
    def shown(self) -> str:
        return "the start" if self.last is None else repr(self.record.value["value"])


def begin(source: Source, dataset: Dataset, wh) -> Incremental | None:
    """The watermark state for a load of ``source`` into ``dataset``; a pending maximum settled first."""
    column = column_of(source)
    if column is None:
        return None
    record, _ = SourceWatermark.objects.get_or_create(source=source, dataset=dataset, defaults={"column": column})
    if record.column != column:
        raise IngestError(
            f"Source {source.name!r} now names the watermark column {column!r}, but the watermark stored for"
            f" {dataset.name} is of {record.column!r}. Delete that watermark (admin, Source watermarks) to read"
            " the source again from the start."
        )
    settle(record, dataset, wh)
    return Incremental(record=record, column=column, last=load(record.value))


def settle(record: SourceWatermark, dataset: Dataset, wh) -> None:
    """A pending maximum becomes the watermark if its batch was published; else it is dropped."""
    if not record.pending_checksum:
        return
    if wh.loaded_batch(dataset.qualified_table, record.pending_checksum):
        record.value = record.pending_value
    record.pending_value, record.pending_checksum = None, ""
    record.save(update_fields=["value", "pending_value", "pending_checksum", "updated_at"])


def published(state: Incremental | None, dataset: Dataset, wh) -> None:
    """After the load's publish: its maximum is the watermark now."""
    if state is not None:
        state.record.refresh_from_db()
        settle(state.record, dataset, wh)


def export(source: Source, url: str, query: str, path: str, state: Incremental) -> bool:
    """Write the new rows of ``query`` to ``path`` (CSV); False when there is none.

    The maximum read is recorded as pending (with the file's checksum, by :func:`pending`).
    """
    dialect = registry.source_sql(url)
    columns, _ = registry.query_rows(url, f"SELECT * FROM ({query}) AS _atlas_src LIMIT 0")
    actual = next((c for c in columns if c == state.column), None) or next(
        (c for c in columns if c.lower() == state.column.lower()), None
    )
    if actual is None:
        raise IngestError(
            f"Source {source.name!r}: the watermark column {state.column!r} is not among the query's columns"
            f" ({', '.join(columns)})."
        )
    w = dialect.quote(actual)
    src = f"({dialect.text(query)}) AS _atlas_src"
    newer = w if state.last is None else f"CASE WHEN {w} > {dialect.param} THEN {w} END"
    params = [] if state.last is None else [state.last]
    _, rows = registry.query_rows(
        url, f"SELECT max({newer}), sum(CASE WHEN {w} IS NULL THEN 1 ELSE 0 END) FROM {src}", params
    )
    upper, nulls = rows[0] if rows else (None, 0)
    if nulls:
        raise IngestError(
            f"Source {source.name!r}: {int(nulls)} row(s) have no value in the watermark column {actual!r}."
            " Incremental extraction reads rows by that value and would never read them: fill the column, or"
            f" leave them out in the query (WHERE {actual} IS NOT NULL)."
        )
    if upper is None:
        return False
    bounded = f"SELECT * FROM {src} WHERE {w} <= {dialect.param}" + ("" if state.last is None else f" AND {w} > {dialect.param}")
    registry.export_query(url, f"{bounded} ORDER BY {w}", path, [upper, *params])
    state.record.pending_value = dump(upper)
    return True


def pending(state: Incremental, checksum: str) -> None:
    """Store the load's maximum as pending, with the checksum of the file it was read into."""
    state.record.pending_checksum = checksum
    state.record.save(update_fields=["pending_value", "pending_checksum", "updated_at"])
