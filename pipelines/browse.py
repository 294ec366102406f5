"""A dataset's data, browsed (issue 18, item 4): pages, a sort, the columns chosen, a CSV download.

The query comes from the page's URL (:func:`parse`): what names no column of the table is refused
with a message and left out, never guessed. Rows are read as operator SQL of the dataset's layer
(``Warehouse.browse``) and masked for users without the PII permission (the contributed row masker),
on the page and in the CSV alike; a download is audited.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from atlas import audit, extensions
from atlas.warehouse import get_warehouse

from .models import Dataset

PAGE_SIZES = (25, 50, 100, 200)
CSV_BATCH = 5_000


@dataclass
class Query:
    columns: list[str]  # chosen, in the table's order
    all_columns: list[str]
    sort: str | None = None
    descending: bool = False
    page: int = 1
    size: int = PAGE_SIZES[1]
    problems: list[str] = field(default_factory=list)

    def params(self, **change: Any) -> dict[str, Any]:
        """This query as URL parameters, with ``change`` applied (links to other pages and sorts)."""
        values = {"page": self.page, "size": self.size, "sort": self.sort or "", "dir": "desc" if self.descending else "asc"}
        values.update(change)
        out: dict[str, Any] = {k: v for k, v in values.items() if v not in ("", None)}
        if self.columns != self.all_columns:
            out["col"] = list(self.columns)
        return out


def table_columns(dataset: Dataset) -> list[str]:
    return [c.name for c in get_warehouse().columns(dataset.layer, dataset.table)]


def parse(params: Mapping[str, Any], all_columns: list[str]) -> Query:
    """The browser's query from URL parameters: ``col`` (repeated), ``sort``, ``dir``, ``page``, ``size``."""
    getlist = getattr(params, "getlist", lambda k: [params[k]] if k in params else [])
    query = Query(columns=list(all_columns), all_columns=list(all_columns))
    wanted = [c for c in getlist("col") if c]
    if wanted:
        unknown = [c for c in wanted if c not in all_columns]
        if unknown:
            query.problems.append(f"No column named {', '.join(repr(c[:60]) for c in unknown[:3])}: left out.")
        query.columns = [c for c in all_columns if c in wanted] or list(all_columns)
    sort = params.get("sort") or None
    if sort is not None and sort not in query.columns:
        query.problems.append(f"Cannot sort by {sort[:60]!r}: it is not a column shown; not sorted.")
        sort = None
    query.sort = sort
    direction = params.get("dir") or "asc"
    if direction not in ("asc", "desc"):
        query.problems.append("The sort direction is asc or desc; ascending.")
        direction = "asc"
    query.descending = direction == "desc"
    query.size = _whole(params.get("size"), PAGE_SIZES[1], query, "page size")
    if query.size not in PAGE_SIZES:
        query.problems.append(f"Page sizes are {', '.join(map(str, PAGE_SIZES))}; {PAGE_SIZES[1]} rows a page.")
        query.size = PAGE_SIZES[1]
    query.page = max(_whole(params.get("page"), 1, query, "page"), 1)
    return query


def _whole(value: Any, default: int, query: Query, what: str) -> int:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        query.problems.append(f"The {what} is a whole number; {default}.")
        return default


def page(user: Any, dataset: Dataset, query: Query) -> dict[str, Any]:
    """One page of rows as ``user`` may see them, with the count and the pages around it."""
    wh = get_warehouse()
    count = wh.row_count(dataset.layer, dataset.table)
    pages = max(math.ceil(count / query.size), 1)
    if query.page > pages:
        query.problems.append(f"There are {pages} page{'s' if pages != 1 else ''}; the last one is shown.")
        query.page = pages
    rows = wh.browse(dataset.layer, dataset.table, query.columns, order_by=query.sort, descending=query.descending,
                     limit=query.size, offset=(query.page - 1) * query.size)
    shown = extensions.mask_rows(user, dataset, query.columns, rows)
    first = (query.page - 1) * query.size + 1 if rows else 0
    return {"count": count, "pages": pages, "rows": shown, "first": first, "last": first + len(rows) - 1 if rows else 0}


def csv_lines(user: Any, dataset: Dataset, query: Query) -> Iterator[str]:
    """Every row (the chosen columns, in the chosen order) as CSV text, read and masked a batch at a time."""
    wh = get_warehouse()
    audit.record("dataset.downloaded", actor=user if getattr(user, "pk", None) else None, target=dataset,
                 columns=list(query.columns), sort=query.sort or "", format="csv")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(query.columns)
    offset = 0
    while True:
        rows = wh.browse(dataset.layer, dataset.table, query.columns, order_by=query.sort,
                         descending=query.descending, limit=CSV_BATCH, offset=offset)
        for row in extensions.mask_rows(user, dataset, query.columns, rows):
            writer.writerow(["" if v is None else v for v in row])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(rows) < CSV_BATCH:
            return
        offset += CSV_BATCH

