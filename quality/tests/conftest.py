"""Small factories for quality tests: a typed warehouse table, its dataset, checks on it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pipelines.models import Dataset, DatasetColumn
from quality.models import Check

COLUMNS = (("id", "integer"), ("name", "text"), ("amount", "numeric(12,2)"), ("code", "text"), ("seen_at", "timestamp"))


def create_table(wh, schema: str, table: str, rows: Sequence[Sequence], columns=COLUMNS) -> None:
    with wh.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {wh.table(schema, table)}")
        cur.execute(f"CREATE TABLE {wh.table(schema, table)} ({', '.join(f'{wh.quote(n)} {t}' for n, t in columns)})")
        if rows:
            marks = ", ".join(["%s"] * len(columns))
            cur.executemany(f"INSERT INTO {wh.table(schema, table)} VALUES ({marks})", [list(r) for r in rows])


@pytest.fixture
def table(wh):
    """Create ``chart.<name>`` with rows and its dataset (columns recorded); returns the dataset."""

    def make(rows: Sequence[Sequence], name: str = "items", layer: str = "chart", columns=COLUMNS) -> Dataset:
        create_table(wh, layer, name, rows, columns)
        dataset, _ = Dataset.objects.get_or_create(name=name, defaults={"layer": layer, "table": name})
        for pos, (col, typ) in enumerate(columns):
            DatasetColumn.objects.get_or_create(dataset=dataset, name=col, defaults={"position": pos, "data_type": typ})
        return dataset

    return make


@pytest.fixture
def check(db):
    def make(ds: Dataset, kind: str, cols=(), severity: str = "warn", name: str | None = None, **params) -> Check:
        tolerance = params.pop("tolerance", None)
        return Check.objects.create(
            dataset=ds, kind=kind, columns=list(cols), params=params, severity=severity,
            tolerance=tolerance, name=name or f"{kind}_{'_'.join(cols) or 'table'}",
        )

    return make


def rows_of(wh, schema: str, table: str, order: str = "id") -> list[tuple]:
    with wh.cursor() as cur:
        return cur.execute(f"SELECT * FROM {wh.table(schema, table)} ORDER BY {wh.quote(order)}").fetchall()
