"""Pictures drawn from the data (issue 18, item 2): a pipeline's last runs, a Navigate table over time.

- :func:`run_history`: each of a pipeline's last runs — how long it took and the rows it wrote and
  rejected — as two charts over the runs, with the same numbers as a table;
- :func:`time_series`: a Navigate table's numeric columns over its time column, one small chart per
  column (their scales differ: revenue in thousands, orders in tens), read as operator SQL of the
  layer and masked like every preview.

Both are drawn on the server by :mod:`atlas.charts` (SVG, no script); each mark carries its numbers.
"""

from __future__ import annotations

from typing import Any

from atlas import charts, extensions, humanize
from atlas.warehouse import WarehouseError, get_warehouse

from .live import duration_words
from .models import Dataset, Pipeline, RunStatus

RUNS_SHOWN = 20
TIME_POINTS = 366
NUMERIC_CHARTS = 4
SPLIT_VALUES = 6
TIME_TYPES = ("date", "timestamp")
NUMERIC_TYPES = ("integer", "bigint", "smallint", "tinyint", "hugeint", "numeric", "decimal", "double", "real", "float")


def run_history(pipeline: Pipeline, limit: int = RUNS_SHOWN) -> dict[str, Any] | None:
    """The pipeline's last ended runs, oldest first: durations and rows as charts and a table; None before any."""
    runs = list(pipeline.runs.exclude(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
                .exclude(started_at=None).exclude(finished_at=None).order_by("-created_at", "-pk")[:limit])[::-1]
    if not runs:
        return None
    labels = [f"#{r.pk}" for r in runs]
    seconds = [round((r.finished_at - r.started_at).total_seconds(), 3) for r in runs]
    rows = charts.Series("rows", "rows written", [r.rows_out for r in runs])
    rejected = charts.Series("rejected", "rows rejected", [r.rows_rejected for r in runs])
    durations = charts.Series("duration", "seconds", seconds)
    return {
        "durations_svg": charts.lines(labels, [durations], title=f"Duration of the last {len(runs)} runs of {pipeline.name}",
                                      fmt=lambda v: f"{humanize.number(round(v, 1))} s"),
        "rows_svg": charts.stacked_bars(labels, [rows, rejected], title=f"Rows of the last {len(runs)} runs of {pipeline.name}"),
        "rows": [[r, r.get_status_display(), duration_words(s), humanize.number(r.rows_out), humanize.number(r.rows_rejected)]
                 for r, s in zip(runs, seconds, strict=True)],
        "count": len(runs),
    }


def chart_columns(types: dict[str, str]) -> tuple[str | None, list[str], list[str]]:
    """The time column (the first date or timestamp), the numeric columns and the others (dimensions), by type."""
    shown = {name: t.lower() for name, t in types.items() if not name.startswith("_")}
    time = next((n for n, t in shown.items() if t.startswith(TIME_TYPES)), None)
    numeric = [n for n, t in shown.items() if t.startswith(NUMERIC_TYPES)]
    others = [n for n in shown if n != time and n not in numeric]
    return time, numeric, others


def _split_by(user: Any, dataset: Dataset, wh: Any, dims: list[str]) -> tuple[str | None, list[Any]]:
    """A dimension with at most six values (a currency, a channel) to draw a line per value; none if masked."""
    q = wh.quote
    for dim in dims[:3]:
        sql = f"SELECT DISTINCT {q(dim)} FROM {wh.table(dataset.layer, dataset.table)} LIMIT {SPLIT_VALUES + 1}"
        found = wh.operator_query(sql, layer=dataset.layer)[1]
        if 1 < len(found) <= SPLIT_VALUES:
            values = [r[0] for r in found]
            if [r[0] for r in extensions.mask_rows(user, dataset, [dim], found)] != values:
                continue  # PII this user may not see: no line per value
            return dim, sorted(values, key=lambda v: (v is None, str(v)))
    return None, []


def time_series(user: Any, dataset: Dataset) -> dict[str, Any] | None:
    """A Navigate table's numeric columns over its time column; None when it has no time or numeric column.

    A dimension with a few values (a currency) gives a line per value — revenue in euros is not added
    to revenue in dollars; otherwise the values of one time are summed, and the caption says so.
    """
    if dataset.layer != "navigate":
        return None
    wh = get_warehouse()
    try:
        if not wh.table_exists(dataset.layer, dataset.table):
            return None
        time, numeric, dims = chart_columns({c.name: c.type for c in wh.columns(dataset.layer, dataset.table)})
        if time is None or not numeric:
            return None
        numeric = numeric[:NUMERIC_CHARTS]
        split, split_values = _split_by(user, dataset, wh, dims)
        q = wh.quote
        sums = ", ".join(f"sum({q(c)}) AS {q(c)}" for c in numeric)
        times = (f"SELECT DISTINCT {q(time)} FROM {wh.table(dataset.layer, dataset.table)} WHERE {q(time)} IS NOT NULL"
                 f" ORDER BY 1 DESC LIMIT {TIME_POINTS}")
        keys = f"{q(time)}, {q(split)}" if split else q(time)
        sql = (f"SELECT {keys}, {sums} FROM {wh.table(dataset.layer, dataset.table)}"
               f" WHERE {q(time)} IN ({times}) GROUP BY {keys}")
        columns, rows = wh.operator_query(sql, layer=dataset.layer)
    except WarehouseError as exc:
        return {"error": str(exc)}
    rows = extensions.mask_rows(user, dataset, columns, rows)
    first = 2 if split else 1
    by_time: dict[Any, dict[Any, list]] = {}
    for r in rows:
        by_time.setdefault(r[0], {})[r[1] if split else None] = list(r[first:])
    order = sorted(by_time)
    labels = [str(t)[:19] for t in order]
    groups = split_values if split else [None]
    pictures, hidden, table_columns = [], [], []
    for i, column in enumerate(numeric):
        cells = [[by_time[t].get(g, [None] * len(numeric))[i] for t in order] for g in groups]
        if any(isinstance(v, str) for values in cells for v in values):  # masked for this user: not drawn
            hidden.append(column)
            continue
        series = [charts.Series(f"s{n % 6}", column if g is None else f"{column} ({g})",
                                [None if v is None else float(v) for v in values])
                  for n, (g, values) in enumerate(zip(groups, cells, strict=True))]
        pictures.append({"column": column, "svg": charts.lines(labels, series, title=f"{column} by {time}",
                                                               width=760, height=200), "cells": cells})
        table_columns += [s.label for s in series]
    table = [[label, *[humanize.number(p["cells"][g][k]) for p in pictures for g in range(len(groups))]]
             for k, label in enumerate(labels)]
    return {
        "time": time, "split": split, "columns": table_columns, "hidden": hidden, "charts": pictures,
        "points": len(order), "limited": len(order) == TIME_POINTS, "table": table,
    }
