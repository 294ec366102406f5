"""The production default (issue 12): a warehouse database of its own, and a metadata database
the operator-SQL roles cannot even connect to (users, sessions, token digests, the audit log)."""

from __future__ import annotations

import io
import os

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from atlas.warehouse import reset_warehouses
from atlas.warehouse.privileges import configured_roles

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _admin(dbname: str = "postgres") -> psycopg.Connection:
    meta = connection.settings_dict
    return psycopg.connect(
        host=meta["HOST"] or "127.0.0.1", port=meta["PORT"] or 5432, user=meta["USER"] or "postgres",
        dbname=dbname, autocommit=True,
    )


@pytest.fixture
def separate_warehouse(settings):
    """A warehouse database next to the test's metadata database; PUBLIC's CONNECT given back after."""
    meta = connection.settings_dict
    name = f"atlas_sep_wh_{os.environ.get('PYTEST_XDIST_WORKER', 'gw0')}"
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    settings.WAREHOUSE_URL = (
        f"postgresql://{meta['USER'] or 'postgres'}@{meta['HOST'] or '127.0.0.1'}:{meta['PORT'] or 5432}/{name}"
    )
    reset_warehouses()
    yield name
    reset_warehouses()
    with _admin() as admin:
        admin.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{meta["NAME"]}" TO PUBLIC')
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _connect_as(role: str, dbname: str) -> psycopg.Connection:
    meta = connection.settings_dict
    return psycopg.connect(host=meta["HOST"] or "127.0.0.1", port=meta["PORT"] or 5432, user=role, dbname=dbname)


def test_operator_sql_roles_cannot_connect_to_a_separate_metadata_database(separate_warehouse):
    out = io.StringIO()
    call_command("warehouse_roles", stdout=out)
    meta_db = connection.settings_dict["NAME"]
    assert f"Metadata database {meta_db!r}: the operator-SQL roles and PUBLIC may not connect to it." in out.getvalue()
    for role in configured_roles().operator_roles():
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            _connect_as(role, meta_db)
        with _connect_as(role, separate_warehouse) as conn:  # their own database: reachable
            assert conn.execute("SELECT current_user").fetchone()[0] == role
    # Django's own role still connects, and the command can run again.
    with _connect_as(connection.settings_dict["USER"] or "postgres", meta_db):
        pass
    call_command("warehouse_roles", stdout=io.StringIO())


def test_a_shared_database_is_said_to_be_shared(wh):
    out = io.StringIO()
    call_command("warehouse_roles", stdout=out)
    assert "share the database" in out.getvalue()
    assert "production default is a warehouse database of its own" in out.getvalue()
