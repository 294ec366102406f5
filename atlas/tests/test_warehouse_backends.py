"""A third warehouse backend is one registry entry: the apps work with it without knowing it.

``ThirdWarehouse`` derives from the DuckDB backend (so it runs anywhere) but
answers to its own URL scheme and vendor name: any app code that still asked
"is this DuckDB or PostgreSQL?" would fail here. Its operations note what the
apps asked of them (a subclass, not a mock: every statement runs for real).
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from atlas.warehouse import WarehouseError, get_warehouse, registry, reset_warehouses
from atlas.warehouse.duckdb import DuckDBWarehouse
from atlas.warehouse.features import BaseFeatures
from atlas.warehouse.filereader import IngestError
from atlas.warehouse.operations import DuckDBOperations
from pipelines.models import Dataset, Source
from pipelines.sources import source_files
from privacy import keys, search
from retention import services
from retention.models import RetentionPolicy, RetentionRun

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class ThirdOperations(DuckDBOperations):
    asked: list[str] = []

    def try_cast_timestamptz(self, expr: str) -> str:
        self.asked.append("try_cast_timestamptz")
        return super().try_cast_timestamptz(expr)

    def delete(self, cur, sql, params) -> int:
        self.asked.append("delete")
        return super().delete(cur, sql, params)

    @classmethod
    def export_query_csv(cls, url: str, query: str, path: str) -> None:
        cls.asked.append("export_query_csv")
        super().export_query_csv(url, query, path)


class ThirdFeatures(BaseFeatures):
    pass


class ThirdWarehouse(DuckDBWarehouse):
    vendor = "third"
    operations_class = ThirdOperations
    features_class = ThirdFeatures


@pytest.fixture
def third(db, settings, tmp_path):
    """The warehouse (and a source database) served by the third backend, registered under ``third://``."""
    registry.register_backend("third", ThirdWarehouse)
    ThirdOperations.asked = []
    reset_warehouses()
    settings.WAREHOUSE_URL = f"third://{tmp_path / 'third.duckdb'}"
    wh = get_warehouse()
    wh.ensure_schemas()
    yield wh
    reset_warehouses()
    registry.unregister_backend("third")


def test_the_scheme_picks_the_backend(third):
    assert type(third) is ThirdWarehouse
    assert isinstance(third.ops, ThirdOperations) and isinstance(third.features, ThirdFeatures)
    assert third.path.endswith("third.duckdb")


def test_a_backend_can_be_named_in_settings_by_its_dotted_path(db, settings, tmp_path):
    settings.ATLAS_WAREHOUSE_BACKENDS = {"third2": f"{__name__}.ThirdWarehouse"}
    settings.WAREHOUSE_URL = f"third2://{tmp_path / 'w.duckdb'}"
    reset_warehouses()
    try:
        assert type(get_warehouse()) is ThirdWarehouse
    finally:
        reset_warehouses()


def test_an_unknown_scheme_is_refused_with_the_known_ones(db, settings):
    settings.WAREHOUSE_URL = "mysql://db/warehouse"
    reset_warehouses()
    with pytest.raises(WarehouseError, match=r"Unsupported WAREHOUSE_URL 'mysql://db/warehouse'.*known: duckdb, postgres"):
        get_warehouse()


def test_a_scheme_with_its_separator_is_refused():
    with pytest.raises(ValueError, match="without '://'"):
        registry.register_backend("third://", ThirdWarehouse)


def test_retention_expires_rows_on_the_third_backend(third):
    with third.cursor() as cur:
        cur.execute("CREATE TABLE chart.events (id integer, seen text)")
        cur.executemany(
            "INSERT INTO chart.events VALUES (%s, %s)",
            [
                (1, (NOW - timedelta(days=40)).isoformat()),
                (2, (NOW - timedelta(days=5)).isoformat()),
                (3, "31/12/2024"),  # unparseable: counted, never deleted
                (4, None),
            ],
        )
    ds = Dataset.objects.create(name="events", layer="chart", table="events")
    policy = services.save_policy(RetentionPolicy(dataset=ds, column="seen", period_days=30))
    run = services.apply_policy(policy, now=NOW)
    assert run.status == RetentionRun.Status.SUCCEEDED, run.error
    assert (run.rows_removed, run.unparseable_rows) == (1, 1)
    with third.cursor() as cur:
        assert [r[0] for r in cur.execute("SELECT id FROM chart.events ORDER BY id").fetchall()] == [2, 3, 4]
    assert {"try_cast_timestamptz", "delete"} <= set(ThirdOperations.asked)


def test_privacy_finds_a_subject_by_its_keys_on_the_third_backend(third):
    with third.cursor() as cur:
        cur.execute("CREATE TABLE chart.customers (customer_id integer, email text)")
        cur.executemany(
            "INSERT INTO chart.customers VALUES (%s, %s)", [(1, " Ann@Example.com"), (2, "bob@example.com")]
        )
        cur.execute("CREATE TABLE chart.orders (order_id integer, customer_id integer)")
        cur.executemany("INSERT INTO chart.orders VALUES (%s, %s)", [(10, 1), (11, 1), (12, 2)])
    customers = Dataset.objects.create(name="customers", layer="chart", table="customers")
    orders = Dataset.objects.create(name="orders", layer="chart", table="orders")
    keys.declare_key(customers, "email", kind="email")
    keys.declare_key(customers, "customer_id", kind="customer_id")
    keys.declare_key(orders, "customer_id", kind="customer_id")
    # No expression indexes on this engine: nothing to create, nothing fails.
    assert keys.ensure_indexes_for(customers, third) == []

    targets = keys.targets()
    subject, _ = search.expand(search.subject_of({"email": ["ann@example.com"]}), targets, third)
    assert subject.clear["customer_id"] == {"1"}
    found = {}
    for match in search.matches(subject, targets, third, quarantine=False):
        with third.cursor() as cur:
            found[match.table] = cur.execute(
                f"SELECT count(*) FROM {third.table(match.layer, match.table)} WHERE {match.where}", match.params
            ).fetchone()[0]
    assert found == {"customers": 1, "orders": 2}


def test_a_sql_source_is_extracted_through_the_third_backend(third, settings, tmp_path):
    src_db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(src_db))
    con.execute("CREATE TABLE c AS SELECT * FROM (VALUES (1, 'a@x.org'), (2, NULL)) AS t(id, email)")
    con.close()
    settings.ATLAS_SOURCE_DATABASES = {"shop": f"third://{src_db}"}
    source = Source(name="shop", kind=Source.Kind.SQL, database="shop", query="SELECT id, email FROM c ORDER BY id;")
    with source_files(source) as files, open(files[0].path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["id", "email"], ["1", "a@x.org"], ["2", ""]]
    assert "export_query_csv" in ThirdOperations.asked


def test_a_source_database_of_an_unknown_scheme_is_refused(db, settings):
    settings.ATLAS_SOURCE_DATABASES = {"shop": "oracle://db/shop"}  # mysql:// is served since issue 16
    source = Source(name="shop", kind=Source.Kind.SQL, database="shop", query="SELECT 1")
    pattern = r"Unsupported database URL for source 'shop': use one of duckdb, .*sqlite"
    with pytest.raises(IngestError, match=pattern), source_files(source):
        pass


# The apps ask the warehouse's ``ops`` and ``features``, never which engine it is.
ENGINE_NAMES = re.compile(r"""\.vendor\b|isinstance\([^)]*Warehouse\)|["'](?:duckdb|postgres(?:ql)?)://""")
APPS = ("pipelines", "retention", "privacy", "compliance", "lineage")


def test_no_app_asks_which_engine_the_warehouse_is():
    root = Path(__file__).resolve().parents[2]
    offenders = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for app in APPS
        for path in sorted((root / app).rglob("*.py"))
        if "tests" not in path.parts and "migrations" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ENGINE_NAMES.search(line)
    ]
    assert offenders == []
