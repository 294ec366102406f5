"""A worker keeps its database connections between tasks (atlas.worker_db), as a web process does between requests.

Celery's own Django fix-up closed the executing thread's connections before and after every
task: a new PostgreSQL backend per run. Here each task's start and end go through the fix-up
the app installs, as Celery's signals call it; the real worker's side is in
``pipelines/tests/test_worker.py``.
"""

from __future__ import annotations

from types import SimpleNamespace

import psycopg
import pytest
from django.db import connection

from atlas import worker_db
from atlas.celery import app
from atlas.warehouse import reset_warehouses

pytestmark = pytest.mark.django_db(transaction=True)


def task(*, eager: bool = False) -> SimpleNamespace:
    """What Celery's task_prerun / task_postrun signals send: the task, with its request."""
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


@pytest.fixture
def worker_fixup():
    """The app's worker fix-up (not installed: its handlers are called as the signals would call them)."""
    fixups = [f for f in app._fixups if f is not None]
    assert [type(f) for f in fixups] == [worker_db.DjangoFixup], "Celery's own Django fix-up is replaced"
    return fixups[0].worker_fixup


@pytest.fixture
def max_age():
    """The test connection kept ``CONN_MAX_AGE`` seconds, health checks on, as in production; restored after."""
    saved = {k: connection.settings_dict.get(k) for k in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")}

    def configure(seconds: int) -> None:
        connection.close()
        connection.settings_dict.update(CONN_MAX_AGE=seconds, CONN_HEALTH_CHECKS=True)

    yield configure
    connection.close()
    connection.settings_dict.update(saved)
    reset_warehouses()


def one_task(fixup, *, eager: bool = False) -> None:
    fixup.on_task_prerun(task(eager=eager))
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    fixup.on_task_postrun(task(eager=eager))


def test_the_worker_fixup_is_celerys_with_the_connections_kept(worker_fixup):
    assert isinstance(worker_fixup, worker_db.WorkerFixup)
    assert type(worker_fixup).__mro__[1].__module__ == "celery.fixups.django"


def test_a_connection_is_kept_from_one_task_to_the_next(worker_fixup, max_age):
    max_age(60)
    one_task(worker_fixup)
    kept = connection.connection
    assert kept is not None, "kept after the task"
    one_task(worker_fixup)
    assert connection.connection is kept, "the next task used the same connection"


def test_with_conn_max_age_0_every_task_closes_its_connection_as_before(worker_fixup, max_age):
    max_age(0)
    one_task(worker_fixup)
    assert connection.connection is None


def test_a_connection_past_its_age_is_closed_after_the_task(worker_fixup, max_age):
    max_age(60)
    one_task(worker_fixup)
    connection.close_at = 0.0  # as it would be 60 s later
    worker_fixup.on_task_postrun(task())
    assert connection.connection is None


def test_a_connection_left_outside_autocommit_is_closed(worker_fixup, max_age):
    max_age(60)
    worker_fixup.on_task_prerun(task())
    connection.set_autocommit(False)  # a task that left its transaction open
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    worker_fixup.on_task_postrun(task())
    assert connection.connection is None


def test_an_eager_task_leaves_the_callers_connection_alone(worker_fixup, max_age):
    max_age(0)
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    kept = connection.connection
    one_task(worker_fixup, eager=True)
    assert connection.connection is kept


@pytest.mark.postgres
def test_the_same_backend_serves_the_next_task_and_a_terminated_one_is_replaced_not_failed(worker_fixup, max_age):
    """PostgreSQL forks a backend per connection: kept, the next task has the same; killed between tasks, a new one."""
    max_age(60)
    one_task(worker_fixup)
    backend = connection.connection.info.backend_pid
    one_task(worker_fixup)
    assert connection.connection.info.backend_pid == backend
    meta = connection.settings_dict
    with psycopg.connect(host=meta["HOST"] or "127.0.0.1", port=meta["PORT"] or 5432, user=meta["USER"] or "postgres",
                         dbname=meta["NAME"], autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [backend]).fetchone()[0] is True
    one_task(worker_fixup)  # checked before its first use (CONN_HEALTH_CHECKS): reconnects, no error
    assert connection.connection.info.backend_pid != backend
