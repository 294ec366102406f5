"""Test databases cloned from a migrated template instead of migrated once per xdist worker (issue 21).

pytest-django migrates a new test database in every xdist worker (``test_atlas_gw0``,
``test_atlas_gw1``, ...): about 9 CPU seconds each on PostgreSQL (client and server), about 5 on
SQLite, for the same result every time. Here the first worker of a pass migrates one *template*
database; every worker then gets its own copy of it:

- PostgreSQL: ``CREATE DATABASE test_atlas_gw0 TEMPLATE test_atlas_tpl_<key>`` (a file copy
  inside the server);
- SQLite: the template file copied to the worker's file (the test database is a file, see
  ``atlas/settings.py``).

The template is named after a key: a hash of every installed app's migration files (their paths
and contents) and Django's version. A new or edited migration gives a new key, so a stale
template is never used; templates with another key are dropped when a new one is made. The
template is built under a temporary name and renamed when complete, so a run killed half-way
leaves nothing that looks finished. Workers take turns (a file lock per test database) to build
and copy. What a worker gets is exactly what ``migrate`` makes (``test_testdb.py`` compares the
two), so tests see no difference; the workers' databases are dropped at the end as before, the
template is kept for the next pass or run with the same migrations.

Off with ``ATLAS_TEST_DB_TEMPLATE=0`` (each worker migrates, pytest-django's way), and with
``--reuse-db`` or ``--nomigrations``, which pytest-django handles itself.

**After a transactional test, PostgreSQL truncates only the tables that hold rows** (and the
tables whose foreign keys reference them, which PostgreSQL's ``TRUNCATE`` requires even when they
are empty): see :func:`flush_sql`. Django truncates every table of every app, about 110 with
their indexes, each given new files: about 0.2 CPU s of the server's for each transactional test,
where a test leaves rows in a dozen. The tables left alone are empty, so the database after the
flush is the same. SQLite's flush (a ``DELETE`` per table) is left as Django does it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ENABLED = os.environ.get("ATLAS_TEST_DB_TEMPLATE", "1").lower() not in ("0", "false", "no")
_WORKER_SUFFIX = re.compile(r"_gw\d+$")


def migrations_key() -> str:
    """A hash of what ``migrate`` would build: every installed app's migration files and Django's version."""
    import django
    from django.apps import apps

    digest = hashlib.sha256(f"django {django.__version__}\n".encode())
    for app in sorted(apps.get_app_configs(), key=lambda a: a.label):
        folder = Path(app.path) / "migrations"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.py")):
            digest.update(f"{app.label}/{path.name}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def template_name(test_name: str, key: str, vendor: str) -> str:
    """The template's name beside the worker's: ``test_atlas_gw0`` -> ``test_atlas_tpl_<key>``."""
    base = _WORKER_SUFFIX.sub("", test_name)
    if vendor == "sqlite":
        return f"{base}.tpl-{key}"
    return f"{base}_tpl_{key}"


@contextlib.contextmanager
def _locked(connection, test_name: str) -> Iterator[None]:
    """One worker at a time builds or copies the template of this test database (same machine)."""
    where = f"{connection.settings_dict.get('HOST')}:{connection.settings_dict.get('PORT')}:" if connection.vendor != "sqlite" else ""
    tag = hashlib.sha256((where + _WORKER_SUFFIX.sub("", test_name)).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"atlas-testdb-{tag}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _set_name(connection, name: str) -> None:
    from django.conf import settings

    connection.close()
    connection.settings_dict["NAME"] = name
    settings.DATABASES[connection.alias]["NAME"] = name


def _migrate_into(connection, name: str, verbosity: int) -> None:
    """``migrate`` (and ``createcachetable``) into a new database ``name``, as Django's test runner does."""
    test = connection.settings_dict.setdefault("TEST", {})
    given, test["NAME"] = test.get("NAME"), name
    try:
        connection.creation.create_test_db(verbosity=verbosity, autoclobber=True, serialize=False, keepdb=False)
    finally:
        test["NAME"] = given
    connection.close()


def _quote(connection, name: str) -> str:
    return connection.ops.quote_name(name)


def _postgres_clone(connection, test_name: str, template: str, verbosity: int) -> None:
    creation = connection.creation
    with creation._nodb_cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [_like_prefix(template)])
        present = {row[0] for row in cursor.fetchall()}
    if template not in present:
        building = f"{template}_new"
        _migrate_into(connection, building, verbosity)
        with creation._nodb_cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {_quote(connection, building)} RENAME TO {_quote(connection, template)}")
    with creation._nodb_cursor() as cursor:
        for stale in sorted(present - {template}):  # other keys (older migrations), or a build killed half-way
            cursor.execute(f"DROP DATABASE IF EXISTS {_quote(connection, stale)}")
        cursor.execute(f"DROP DATABASE IF EXISTS {_quote(connection, test_name)}")
        cursor.execute(f"CREATE DATABASE {_quote(connection, test_name)} TEMPLATE {_quote(connection, template)}")


def _like_prefix(template: str) -> str:
    prefix = template.rsplit("_tpl_", 1)[0] + "_tpl_"
    return prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"


def _remove_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def _sqlite_clone(connection, test_name: str, template: str, verbosity: int) -> None:
    if not os.path.exists(template):
        building = f"{template}.new"
        _remove_sqlite(building)
        _migrate_into(connection, building, verbosity)
        # closed (the last connection checkpoints the WAL into the file), so the file is the whole database
        if os.path.exists(building + "-wal"):
            raise RuntimeError(f"{building}: its write-ahead log is still open after migrate")
        os.replace(building, template)
    prefix = template.rsplit(".tpl-", 1)[0] + ".tpl-"
    for stale in Path(template).parent.glob(Path(prefix).name + "*"):
        if str(stale) != template:
            _remove_sqlite(str(stale))
    _remove_sqlite(test_name)
    shutil.copyfile(template, test_name)


def flush_sql(style, connection, *, reset_sequences=True, allow_cascade=False) -> list[str]:
    """Django's ``sql_flush`` for ``manage.py flush``; on PostgreSQL, only the tables that hold rows.

    Those tables, and every table whose foreign key references one of them (again and again:
    ``TRUNCATE`` refuses to leave a referencing table out, empty or not). With
    ``reset_sequences`` (a sequence can have moved in an empty table) every table, as Django does.
    """
    from django.core.management.sql import sql_flush

    if connection.vendor != "postgresql" or reset_sequences:
        return sql_flush(style, connection, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    if not tables:
        return []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(
            f"SELECT %s WHERE EXISTS (SELECT 1 FROM {quote(table)})" for table in tables
        ), tables)
        holding = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT r.relname, t.relname FROM pg_catalog.pg_constraint c"
            " JOIN pg_catalog.pg_class r ON r.oid = c.conrelid JOIN pg_catalog.pg_class t ON t.oid = c.confrelid"
            " WHERE c.contype = 'f' AND r.relnamespace = t.relnamespace"
            " AND r.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema())"
        )
        references = cursor.fetchall()
    known = set(tables)
    while True:
        more = {referrer for referrer, target in references if target in holding and referrer in known} - holding
        if not more:
            break
        holding |= more
    if not holding:
        # Every table is empty (a test emptied them all). Django's flush sends ``post_migrate`` only when
        # it was given statements (an empty list means "no tables"), and ``post_migrate`` is what makes the
        # content types, permissions and role groups again: without a statement the next transactional
        # test found no "Operator" group. A statement that changes nothing keeps Django's behaviour.
        return ["SELECT 1"]
    return connection.ops.sql_flush(style, sorted(holding), reset_sequences=False, allow_cascade=allow_cascade)


def _install_flush_sql() -> None:
    """``manage.py flush`` in this process (a transactional test's teardown) uses :func:`flush_sql`."""
    from django.core.management.commands import flush

    flush.sql_flush = flush_sql


def setup_from_template(connection, verbosity: int = 0) -> str:
    """Give ``connection`` its test database, a copy of the migrated template; return the name it had."""
    test_name = connection.creation._get_test_db_name()
    if connection.vendor not in ("postgresql", "sqlite") or test_name == ":memory:" or "mode=memory" in test_name:
        raise ValueError(f"no template copy for {connection.vendor} database {test_name!r}")
    old_name = connection.settings_dict["NAME"]
    template = template_name(test_name, migrations_key(), connection.vendor)
    with _locked(connection, test_name):
        if connection.vendor == "postgresql":
            _postgres_clone(connection, test_name, template, verbosity)
        else:
            _sqlite_clone(connection, test_name, template, verbosity)
    _set_name(connection, test_name)
    connection.ensure_connection()
    return old_name


@pytest.fixture(scope="session")
def django_db_setup(  # noqa: PLR0917 - pytest-django's signature
    request,
    django_test_environment,  # noqa: ARG001
    django_db_blocker,
    django_db_use_migrations,
    django_db_keepdb,
    django_db_createdb,  # noqa: ARG001
    django_db_modify_db_settings,  # noqa: ARG001
):
    """pytest-django's ``django_db_setup``, each database a copy of one migrated template (see the module)."""
    from django.db import connections
    from django.test.utils import teardown_databases

    verbosity = request.config.option.verbose
    _install_flush_sql()
    if not ENABLED or django_db_keepdb or not django_db_use_migrations:
        from pytest_django.fixtures import django_db_setup as theirs

        yield from theirs._get_wrapped_function()(
            request, None, django_db_blocker, django_db_use_migrations, django_db_keepdb, django_db_createdb, None
        )
        return
    made = []
    with django_db_blocker.unblock():
        for alias in connections:
            connection = connections[alias]
            if connection.settings_dict.get("TEST", {}).get("MIRROR"):
                continue
            made.append((connection, setup_from_template(connection, max(verbosity - 1, 0))))
    yield
    with django_db_blocker.unblock():
        try:
            teardown_databases([(c, old, True) for c, old in made], verbosity=verbosity)
        except Exception as exc:  # noqa: BLE001 - as pytest-django: a warning, the tests' results stand
            request.node.warn(pytest.PytestWarning(f"Error when trying to teardown test databases: {exc!r}"))
