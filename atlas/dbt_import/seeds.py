"""A seed's columns typed as dbt's seed loader types them (dbt-postgres), as a SELECT over Explore.

Explore keeps every column of a file as text; dbt loads a seed with types that agate infers
(``dbt_common.clients.agate_helper``): per column, the first of number, date (``%Y-%m-%d``),
datetime (``%Y-%m-%d %H:%M:%S`` or ISO 8601), boolean (``true``/``false``) that every value
casts to, else text; ``''`` and ``null`` (any case, spaces around) are NULL; a number column
is ``integer`` without decimals and ``float8`` with them. ``column_types`` in the seed's
config overrides a column's type, as in dbt.
"""

from __future__ import annotations

import csv
import datetime
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

NULLS = ("", "null")
PLAIN_NUMBER_RE = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
TYPE_RE = re.compile(r"^[a-z][a-z0-9 _]*(\(\d+(,\s*\d+)?\))?$", re.I)
ISO_DT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


class SeedError(ValueError):
    """The seed cannot be typed as dbt types it; the message names the column."""


def _is_number(v: str) -> bool:
    try:
        Decimal(v)
    except InvalidOperation:
        return False
    return True


def _is_date(v: str) -> bool:
    try:
        datetime.datetime.strptime(v, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _is_datetime(v: str) -> bool:
    try:
        datetime.datetime.strptime(v, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return bool(ISO_DT_RE.match(v))
    return True


def _type_of(name: str, values: list[str]) -> str:
    present = [v.strip() for v in values if v.strip().lower() not in NULLS]
    if all(_is_number(v) for v in present):
        if not all(PLAIN_NUMBER_RE.match(v) for v in present):
            raise SeedError(f"column {name!r} holds numbers Atlas cannot cast the way dbt reads them"
                            " (symbols, or not a decimal number): give it a type in column_types.")
        decimals = any(Decimal(v).as_tuple().exponent < 0 for v in present)  # type: ignore[operator]
        return "float8" if decimals else "integer"
    if all(_is_date(v) for v in present):
        return "date"
    if all(_is_datetime(v) for v in present):
        return "timestamp"
    if all(v.lower() in ("true", "false") for v in present):
        return "boolean"
    return "text"


def read_header_and_types(path: Path, column_types: dict[str, str], delimiter: str = ",") -> list[tuple[str, str]]:
    """(column, type) for each column of the seed file, in file order."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh, delimiter=delimiter))
    if not rows or not rows[0]:
        raise SeedError("the file has no header row.")
    header = rows[0]
    out = []
    for i, name in enumerate(header):
        if name in column_types:
            typ = str(column_types[name])
            if not TYPE_RE.match(typ):
                raise SeedError(f"column_types gives {name!r} the type {typ!r}, which Atlas does not read.")
            out.append((name, typ))
        else:
            out.append((name, _type_of(name, [r[i] if i < len(r) else "" for r in rows[1:]])))
    return out


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def typed_select(explore_table: str, columns: list[tuple[str, str]]) -> str:
    """The SELECT that makes the typed table from the Explore table (text columns)."""
    items = []
    for name, typ in columns:
        col = _q(name)
        empty = f"{col} IS NULL OR lower(trim({col})) IN ('', 'null')"
        if typ == "text":
            value = col
        elif typ == "boolean":
            value = f"lower(trim({col})) = 'true'"
        else:
            value = f"CAST(trim({col}) AS {typ})"
        items.append(f"    CASE WHEN {empty} THEN NULL ELSE {value} END AS {_q(name.lower())}")
    return "SELECT\n" + ",\n".join(items) + f"\nFROM explore.{explore_table}\n"
