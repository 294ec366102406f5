"""The test databases copied from a migrated template (atlas/tests/testdb.py) are what ``migrate`` makes."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection

from atlas.tests import testdb


def _schema_sqlite(path: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()


_PG_SCHEMA = """
SELECT 'column', table_name, column_name, data_type, is_nullable, coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'index', tablename, indexname, indexdef, '', '' FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint', c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), '', ''
  FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'
ORDER BY 1, 2, 3
"""


def _schema_postgres(name: str) -> list[tuple]:
    import psycopg

    s = connection.settings_dict
    with psycopg.connect(dbname=name, user=s["USER"], password=s["PASSWORD"] or None, host=s["HOST"],
                         port=s["PORT"] or None) as db:
        return db.execute(_PG_SCHEMA).fetchall()


@pytest.mark.django_db
def test_the_test_database_is_fully_migrated_and_the_same_as_its_template():
    """migrate would do nothing more here, and the copy has its template's tables, columns, indexes and constraints."""
    from django.db.migrations.executor import MigrationExecutor

    if not testdb.ENABLED:
        pytest.skip("ATLAS_TEST_DB_TEMPLATE=0: each worker migrates its own database")
    executor = MigrationExecutor(connection)
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []
    applied = set(executor.recorder.applied_migrations())
    assert applied == set(executor.loader.disk_migrations)

    name = connection.settings_dict["NAME"]
    template = testdb.template_name(name, testdb.migrations_key(), connection.vendor)
    if connection.vendor == "sqlite":
        assert Path(template).is_file()
        ours, theirs = _schema_sqlite(name), _schema_sqlite(template)
    else:
        ours, theirs = _schema_postgres(name), _schema_postgres(template)
    assert ours and ours == theirs


def test_the_template_is_named_after_the_database_without_the_worker():
    assert testdb.template_name("test_atlas_gw3", "abc", "postgresql") == "test_atlas_tpl_abc"
    assert testdb.template_name("test_atlas", "abc", "postgresql") == "test_atlas_tpl_abc"
    assert testdb.template_name("/v/test_atlas.sqlite3_gw0", "abc", "sqlite") == "/v/test_atlas.sqlite3.tpl-abc"
    assert testdb._like_prefix("test_atlas_tpl_abc") == r"test\_atlas\_tpl\_%"


def _fake_apps(monkeypatch, tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / "app" / "migrations" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    from django.apps import apps

    monkeypatch.setattr(apps, "get_app_configs", lambda: [SimpleNamespace(label="app", path=str(tmp_path / "app"))])
    return testdb.migrations_key()


def test_the_key_changes_with_any_migration_file(monkeypatch, tmp_path):
    first = _fake_apps(monkeypatch, tmp_path, {"0001_initial.py": "ops = 1\n"})
    assert _fake_apps(monkeypatch, tmp_path, {"0001_initial.py": "ops = 1\n"}) == first
    edited = _fake_apps(monkeypatch, tmp_path, {"0001_initial.py": "ops = 2\n"})
    added = _fake_apps(monkeypatch, tmp_path, {"0002_more.py": "ops = 3\n"})
    assert len({first, edited, added}) == 3


def test_the_real_key_covers_every_app_with_migrations():
    from django.apps import apps

    with_migrations = [a for a in apps.get_app_configs() if (Path(a.path) / "migrations").is_dir()]
    assert {"pipelines", "auth", "contenttypes"} <= {a.label for a in with_migrations}
    assert testdb.migrations_key() == testdb.migrations_key()


def test_sqlite_builds_once_drops_stale_templates_and_ignores_a_half_build(monkeypatch, tmp_path):
    builds = []

    def migrate_into(conn, name, verbosity):  # noqa: ARG001 - stands for create_test_db
        assert not Path(name).exists()
        builds.append(name)
        with sqlite3.connect(name) as db:
            db.execute("CREATE TABLE t (v integer)")
            db.execute("INSERT INTO t VALUES (7)")
        db.close()

    monkeypatch.setattr(testdb, "_migrate_into", migrate_into)
    base = str(tmp_path / "test_atlas.sqlite3")
    stale, half = f"{base}.tpl-old", f"{base}.tpl-new1.new"
    Path(stale).write_text("an older key's template")
    Path(half).write_text("a build killed half-way")
    Path(f"{base}_gw0").write_text("last run's database")

    testdb._sqlite_clone(None, f"{base}_gw0", f"{base}.tpl-new1", 0)
    testdb._sqlite_clone(None, f"{base}_gw1", f"{base}.tpl-new1", 0)

    assert builds == [f"{base}.tpl-new1.new"]
    assert not Path(stale).exists() and not Path(half).exists()
    for worker in ("gw0", "gw1"):
        with sqlite3.connect(f"{base}_{worker}") as db:
            assert db.execute("SELECT v FROM t").fetchall() == [(7,)]
        db.close()
    with sqlite3.connect(f"{base}_gw0") as db:  # each worker's own copy
        db.execute("INSERT INTO t VALUES (8)")
    db.close()
    with sqlite3.connect(f"{base}_gw1") as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (1,)
    db.close()


def test_an_in_memory_database_is_refused():
    fake = SimpleNamespace(vendor="sqlite", creation=SimpleNamespace(_get_test_db_name=lambda: ":memory:"))
    with pytest.raises(ValueError, match="no template copy"):
        testdb.setup_from_template(fake)


def _tables_with_rows() -> set[str]:
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        return {t for t in tables if cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(t)} LIMIT 1").fetchone()}


@pytest.mark.django_db(transaction=True)
def test_a_flush_truncates_the_tables_holding_rows_and_their_referrers_and_leaves_every_table_empty():
    from django.contrib.auth.models import Group, User
    from django.core.management.color import no_style
    from django.core.management.sql import sql_flush

    if connection.vendor != "postgresql":
        assert testdb.flush_sql(no_style(), connection, reset_sequences=False) == sql_flush(
            no_style(), connection, reset_sequences=False)
        return
    user = User.objects.create(username="flushed")
    user.groups.add(Group.objects.create(name="flushed"))
    statements = testdb.flush_sql(no_style(), connection, reset_sequences=False)
    assert len(statements) == 1 and statements[0].startswith("TRUNCATE")
    truncated = set(re.findall(r'"(\w+)"', statements[0]))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.relname FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid"
            " WHERE c.contype = 'f' AND c.confrelid = 'auth_user'::regclass")
        referrers = {row[0] for row in cursor.fetchall()}
    assert {"auth_user", "auth_group", "auth_user_groups"} <= truncated
    assert referrers and referrers <= truncated  # TRUNCATE refuses to leave out a table that references one
    assert "auth_permission" in truncated  # rows made by migrate's post_migrate
    assert "pipelines_pipeline" not in truncated  # empty, referencing none of them
    connection.ops.execute_sql_flush(statements)
    assert _tables_with_rows() == set()
    # A flush of a database whose every table is empty still ends with post_migrate, as Django's does
    # (the next transactional test needs the role groups, the permissions and the content types again).
    call_command("flush", verbosity=0, interactive=False, reset_sequences=False)
    assert Group.objects.filter(name="Operator").exists()
    # with sequences to reset, every table, as Django does
    assert testdb.flush_sql(no_style(), connection, reset_sequences=True) == sql_flush(no_style(), connection)
