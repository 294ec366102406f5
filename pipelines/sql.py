"""Operator SQL: validated by Atlas' SQL toolkit (``atlas.sql``) and refused unless it is allowed.

Steps are written in the PostgreSQL dialect and refer to datasets as
``layer.table`` (``explore.orders``); the warehouse backend transpiles them.
The toolkit validates by allowlist (syntax, functions per engine, relations
resolved by scope, no whole-row references); this module adapts it to the
pipelines' datasets and to Django's ValidationError.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from sqlglot import exp

from atlas.sql import Catalog, SQLRefused, parse_statement, validate_select
from atlas.sql.functions import check_function
from atlas.sql.nodes import check_syntax
from atlas.sql.params import typed_sql
from atlas.sql.transpile import check_same_meaning
from atlas.warehouse.base import LAYER_SCHEMAS

from . import memo


class SQLValidationError(ValidationError):
    """The SQL is not one read-only SELECT over known datasets; the message says why."""

    def __str__(self) -> str:
        return "; ".join(self.messages)


@dataclass(frozen=True)
class CheckedSelect:
    sql: str
    tables: tuple[tuple[str, str], ...]  # (schema, table), in order of appearance
    parameters: tuple[str, ...] = ()  # run parameters it uses (``atlas.sql.params``)


def _columns_lookup(known: Iterable[tuple[str, str]] | Mapping[tuple[str, str], Any]):
    """Column names per dataset: from the warehouse when the table exists, else the catalogue.

    ``known`` maps (layer, table) to a ``Dataset`` (the runner's and the
    models' calls) or to column names (tests, tools); a plain iterable of
    (layer, table) knows no columns. The warehouse is asked first because it
    is what PostgreSQL will resolve names against when the step runs.
    """
    if not isinstance(known, Mapping):
        return None
    cache: dict[tuple[str, str], frozenset[str] | None] = {}

    def columns(layer: str, table: str) -> frozenset[str] | None:
        key = (layer, table)
        if key not in cache:
            cache[key] = _dataset_columns(layer, table, known.get(key))
        return cache[key]

    return columns


def _dataset_columns(layer: str, table: str, value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):  # column -> type
        return frozenset(str(k) for k in value) or None
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        names = frozenset(str(v) for v in value)
        return names or None
    if getattr(value, "pk", None) is None:  # a Dataset not saved yet: nothing known
        return None
    from atlas.warehouse import WarehouseError, get_warehouse

    try:
        columns = memo.table_columns(get_warehouse(), layer, table)
        if columns is not None:
            return frozenset(c.name for c in columns) or None
    except WarehouseError:
        pass
    return frozenset(value.columns.values_list("name", flat=True)) or None


def _dataset_types(layer: str, table: str, value: Any) -> dict[str, str] | None:
    """Column types of a dataset (warehouse first, then the catalogue), or None where unknown."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()} or None
    if value is None or getattr(value, "pk", None) is None:  # names only, or a Dataset not saved yet
        return None
    from atlas.warehouse import WarehouseError, get_warehouse

    try:
        columns = memo.table_columns(get_warehouse(), layer, table)
        if columns is not None:
            return {c.name: c.type for c in columns} or None
    except WarehouseError:
        pass
    typed = {c.name: c.data_type for c in value.columns.all()}
    return typed if typed and all(typed.values()) else None


def check_same_meaning_on_engines(
    sql: str, tables: Iterable[tuple[str, str]], known: Iterable[tuple[str, str]] | Mapping[tuple[str, str], Any]
) -> None:
    """Refuse what would not mean the same on DuckDB as on PostgreSQL, by the datasets' column types."""
    types: dict[tuple[str, str], dict[str, str]] = {}
    complete = isinstance(known, Mapping)
    for key in tables:
        found = _dataset_types(*key, known.get(key)) if isinstance(known, Mapping) else None
        if found is None:
            complete = False
        else:
            types[key] = found
    from atlas.warehouse import get_warehouse

    try:
        check_same_meaning(sql, types, types_known=complete)
        get_warehouse().check_operator_sql(sql, types, types_known=complete)  # Spark: what is known equal there
    except SQLRefused as exc:
        raise SQLValidationError(str(exc)) from exc


def check_single_select(sql: str, dialect: str = "postgres") -> exp.Expression:
    """One read-only query, whatever it reads (for SQL sources on other databases, in their ``dialect``)."""
    try:
        root = parse_statement(sql, dialect=dialect)
        if not isinstance(root, exp.Query):
            raise SQLRefused(f"Only a SELECT (or WITH ... SELECT) is allowed, not {root.key.upper()}.")
        for node in root.walk():  # any table of that database; no writes, no side-effect functions
            if isinstance(node, exp.Func):
                check_function(node)
            elif not isinstance(node, exp.DataType):
                check_syntax(node)
    except SQLRefused as exc:
        raise SQLValidationError(str(exc)) from exc
    return root


def check_select(
    sql: str, known: Iterable[tuple[str, str]] | Mapping[tuple[str, str], Any]
) -> CheckedSelect:
    """Validate a step's SELECT; every table it reads must be a known dataset.

    ``known`` is the datasets as (layer, table) pairs, or a mapping from them
    to their ``Dataset`` or column names (then whole-row references and
    ``alias.name`` that is no column are refused precisely).
    """
    keys = known.keys() if isinstance(known, Mapping) else known
    key = _memo_key(sql, known)
    found = _recall(key)
    if found is not None:
        if isinstance(found, str):
            raise SQLValidationError(found)
        return found
    catalog = Catalog.of(keys, _columns_lookup(known), LAYER_SCHEMAS)
    try:
        try:
            checked = validate_select(sql, catalog)
        except SQLRefused as exc:
            raise SQLValidationError(str(exc)) from exc
        check_same_meaning_on_engines(typed_sql(checked.sql), checked.tables, known)
    except SQLValidationError as exc:
        _remember(key, "; ".join(exc.messages))
        raise
    result = CheckedSelect(sql=checked.sql, tables=checked.tables, parameters=checked.parameters)
    _remember(key, result)
    return result


# Saving one step validates its SQL, then every step's again to plan the pipeline and to store
# inputs (2N+1 validations for N steps), and each run plans them all: parsing and transpiling cost
# about 40 µs a character. Above MEMO_MIN_CHARS (at any length inside a run: pipelines.memo) a
# result is remembered, keyed on the SQL and on everything validation reads: the datasets known
# and the columns and types of each one whose table name occurs in the text (a table read is always
# named in it; a name also occurring elsewhere only widens the key). Below it, outside a run,
# reading that key would cost more than validating.
# Across runs too: a pipeline's next run validates none of its unchanged steps again while its
# inputs keep their columns and types (an edited step, or an input reshaped, is a new key). Sized
# for a worker executing a few hundred pipelines in turn (issue 14: 200 due in the same minute).
MEMO_MIN_CHARS = 2_000
MEMO_SIZE = 512
_CHECKED: OrderedDict[tuple, CheckedSelect | str] = OrderedDict()
_CHECKED_LOCK = threading.Lock()  # gunicorn's gthread workers share it


def _memo_key(sql: str, known: Iterable[tuple[str, str]] | Mapping[tuple[str, str], Any]) -> tuple | None:
    text = sql.lower()
    # In a run (a pipelines.memo scope) the key's warehouse lookups are remembered and validation
    # makes the same ones: the key costs next to nothing, so a statement of any length is remembered.
    if (len(sql) < MEMO_MIN_CHARS and not memo.active()) or "u&" in text:  # U&"...": a name spelled with escapes
        return None
    if not isinstance(known, Mapping):
        return (sql, frozenset(known))
    named = sorted(key for key in known if key[1].lower() in text)
    shapes = tuple(
        (key, _dataset_columns(*key, known[key]), tuple(sorted((_dataset_types(*key, known[key]) or {}).items())))
        for key in named
    )
    # Only the datasets named in the text: validation looks up no other (``known_tables(sqls)`` reads
    # no other), so a run's plan and its step, each with its own catalogue, share one validation.
    return (sql, shapes)


def _recall(memo: tuple | None) -> CheckedSelect | str | None:
    if memo is None:
        return None
    with _CHECKED_LOCK:
        found = _CHECKED.get(memo)
        if found is not None:
            _CHECKED.move_to_end(memo)
        return found


def _remember(memo: tuple | None, result: CheckedSelect | str) -> None:
    if memo is None:
        return
    with _CHECKED_LOCK:
        _CHECKED[memo] = result
        while len(_CHECKED) > MEMO_SIZE:
            _CHECKED.popitem(last=False)
