"""The pipeline editor's SQL tools (issue 18, item 3): validate a step's SELECT as a run would, preview its rows.

:func:`check_step_sql` is Atlas's own validation of a refine or aggregate step (one read-only SELECT
over known datasets of the layers the kind may read, the same meaning on every engine) and adds what
an operator wants to see while writing it: the datasets it reads and the columns it produces.
:func:`preview_step_sql` runs it for its first rows exactly as a run stages it — transpiled for the
warehouse, on the restricted operator-SQL connection of the step's output layer (on PostgreSQL its
least-privilege role, read only) — and hides what the user may not see, column by column, by where
each column's values come from (the ``select_masker`` compliance contributes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from atlas import extensions
from atlas.scrub import scrub
from atlas.sql.params import typed_sql, uses_parameters
from atlas.warehouse import WarehouseError, get_warehouse

from .models import Dataset, Step
from .sql import SQLValidationError
from .transform import step_inputs

PREVIEW_ROWS = 20
SQL_KINDS = (Step.Kind.REFINE, Step.Kind.AGGREGATE)
# The step form's fields that only some kinds have (the rest every kind has): the editor shows a step
# only its kind's fields; merge keys only when the write mode merges.
KIND_FIELDS = {
    "source": [Step.Kind.INGEST.value],
    "max_rejected_share": [Step.Kind.INGEST.value],
    "sql": [k.value for k in SQL_KINDS],
    "derived_inputs": [k.value for k in SQL_KINDS],
}


class EditorError(Exception):
    """The SQL cannot be validated or previewed; the message says why (no row value in it)."""


@dataclass
class SqlCheck:
    kind: str
    reads: list[Dataset]
    columns: list[str] | None  # None: an input is not loaded yet, so the warehouse cannot say
    missing: list[Dataset] = field(default_factory=list)  # inputs not loaded yet
    engine_sql: str = ""

    @property
    def layer(self) -> str:
        return Step.OUTPUT_LAYER[Step.Kind(self.kind)]


def check_step_sql(kind: str, sql: str) -> SqlCheck:
    """Validate ``sql`` as a step of ``kind`` would be, and find the columns it produces."""
    if kind not in SQL_KINDS:
        allowed = " and ".join(str(k) for k in SQL_KINDS)
        raise EditorError(f"Only {allowed} steps have SQL; an ingest step reads its source.")
    sql = (sql or "").strip().rstrip(";").strip()
    if not sql:
        raise EditorError("Write the step's SELECT first (PostgreSQL dialect, datasets as layer.table).")
    try:
        reads = step_inputs(Step(kind=kind, sql=sql))
    except SQLValidationError as exc:
        raise EditorError(str(exc)) from exc
    wh = get_warehouse()
    wh.ensure_schemas()
    missing = [ds for ds in reads if not wh.table_exists(ds.layer, ds.table)]
    check = SqlCheck(kind=kind, reads=reads, columns=None, missing=missing)
    if missing:
        return check
    types = {(ds.layer, ds.table): {c.name: c.type for c in wh.columns(ds.layer, ds.table)} for ds in reads}
    try:
        check.engine_sql = wh.transpile(typed_sql(sql) if uses_parameters(sql) else sql, types)
        check.columns = wh.operator_columns(check.engine_sql, layer=check.layer)
    except (WarehouseError, SQLValidationError) as exc:
        raise EditorError(scrub(str(exc))) from exc
    return check


def preview_step_sql(user: Any, kind: str, sql: str, limit: int = PREVIEW_ROWS) -> tuple[SqlCheck, list[list]]:
    """The check and the first ``limit`` rows of the SELECT, as ``user`` may see them."""
    check = check_step_sql(kind, sql)
    if check.missing:
        names = ", ".join(ds.qualified_table for ds in check.missing)
        raise EditorError(f"Nothing to preview yet: {names} has not been loaded; run the step that produces it.")
    wh = get_warehouse()
    bound_sql, params = wh.bind_parameters(check.engine_sql, None, planning=True)
    try:
        columns, rows = wh.operator_query(bound_sql, params, layer=check.layer, limit=max(1, min(int(limit), 200)))
    except WarehouseError as exc:
        raise EditorError(scrub(str(exc))) from exc
    check.columns = columns
    return check, extensions.mask_select_rows(user, sql, check.reads, columns, rows)


def cell(value: Any) -> Any:
    """A preview value for JSON: numbers, text, booleans and nulls as they are, the rest as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinities are no JSON numbers
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)
