"""/healthz says the process is up; /readyz says its database, warehouse and broker are reachable."""

from __future__ import annotations

import pytest

from atlas import health
from conftest import service_or_skip


def test_healthz_is_up_without_the_database(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_200_when_database_migrations_and_warehouse_are_fine(client, wh, settings):
    settings.CELERY_BROKER_URL = ""
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "migrations", "warehouse"}
    assert all(c["ok"] for c in body["checks"].values())


@pytest.mark.redis
def test_readyz_checks_a_real_redis_broker(client, wh, settings):
    service_or_skip("Redis", "127.0.0.1", 6379)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["broker"]["ok"] is True


def test_readyz_is_503_with_the_reason_when_the_broker_is_down(admin_client, wh, settings):
    client = admin_client  # the reasons are for staff (issue 12); anonymous sees ok / not ok
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False and broker["reason"]
    assert response.json()["checks"]["database"]["ok"] is True


def test_readyz_is_503_when_the_warehouse_cannot_be_opened(client, db, settings, tmp_path):
    from atlas.warehouse import reset_warehouses

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    settings.WAREHOUSE_URL = f"duckdb:///{blocker}/wh.duckdb"
    reset_warehouses()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["warehouse"]["ok"] is False
    reset_warehouses()


def test_unapplied_migrations_are_named(db, monkeypatch):
    from django.db.migrations.executor import MigrationExecutor

    class Pending:
        app_label, name = "pipelines", "0099_future"

    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [(Pending(), False)])
    reason = health.check_migrations()
    assert reason is not None and "pipelines.0099_future" in reason and "migrate" in reason
