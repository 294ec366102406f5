"""A database restart does not cost a 500 per web process (issue 17).

Gunicorn keeps each worker's connection open between requests (CONN_MAX_AGE). When PostgreSQL
restarts, every kept connection is dead; without CONN_HEALTH_CHECKS the first request of each
worker used it and answered 500. The requests here go through Django's WSGI handler itself, as
gunicorn sends them (the test client skips the per-request connection handling), and every
connection to the test database is terminated between two of them.
"""

from __future__ import annotations

import io
import sys
from wsgiref.util import setup_testing_defaults

import psycopg
import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection

from atlas.api.tokens import create_token
from atlas.warehouse import reset_warehouses

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def wsgi_get(path: str, token: str) -> int:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "HTTP_AUTHORIZATION": f"Token {token}"}
    setup_testing_defaults(environ)
    environ["wsgi.errors"] = io.StringIO()
    statuses: list[str] = []
    body = WSGIHandler()(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(body)
    if hasattr(body, "close"):
        body.close()  # request_finished: where Django keeps or closes the connection
    return int(statuses[0].split()[0])


def terminate_every_connection() -> int:
    """What a PostgreSQL restart does to the connections Atlas keeps."""
    meta = connection.settings_dict
    with psycopg.connect(
        host=meta["HOST"] or "127.0.0.1", port=meta["PORT"] or 5432, user=meta["USER"] or "postgres",
        dbname=meta["NAME"], autocommit=True,
    ) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return row[0]


@pytest.fixture
def kept_connection(django_user_model):
    """Production's connection handling on the test's connection: kept 60 s, health checks as configured."""
    django_user_model.objects.create_superuser("reader", password="x" * 16)
    _, key = create_token("reader")
    saved = {k: connection.settings_dict[k] for k in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")}
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = 60

    def configure(*, health_checks: bool) -> str:
        connection.close()
        connection.settings_dict["CONN_HEALTH_CHECKS"] = health_checks
        return key

    yield configure
    connection.close()
    connection.settings_dict.update(saved)
    reset_warehouses()  # its connections were terminated too


def test_without_health_checks_the_first_request_after_a_restart_fails(kept_connection, caplog):
    """The fault as it was: the kept, dead connection answers the next request with a 500."""
    token = kept_connection(health_checks=False)
    assert wsgi_get("/api/v1/pipelines/", token) == 200
    assert connection.connection is not None, "the connection is kept between requests"
    assert terminate_every_connection() >= 1
    assert wsgi_get("/api/v1/pipelines/", token) == 500
    assert wsgi_get("/api/v1/pipelines/", token) == 200  # the failed one was closed after its request


def test_with_the_configured_health_checks_no_request_fails_after_a_restart(kept_connection):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    token = kept_connection(health_checks=settings.DATABASES["default"]["CONN_HEALTH_CHECKS"])
    assert wsgi_get("/api/v1/pipelines/", token) == 200
    before = connection.connection.info.backend_pid
    assert terminate_every_connection() >= 1
    assert wsgi_get("/api/v1/pipelines/", token) == 200
    assert connection.connection.info.backend_pid != before, "a new connection replaced the dead one"
    assert wsgi_get("/api/v1/pipelines/", token) == 200


def test_health_checks_can_be_turned_off_from_the_environment(tmp_path):
    import subprocess

    code = "from django.conf import settings; print(settings.DATABASES['default']['CONN_HEALTH_CHECKS'])"
    env = {
        "PATH": "/usr/bin:/bin", "DEBUG": "true", "ATLAS_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused", "DJANGO_SETTINGS_MODULE": "atlas.settings",
    }
    out = [
        subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"], env={**env, **extra},
            cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()
        for extra in ({}, {"CONN_HEALTH_CHECKS": "false"})
    ]
    assert out == ["True", "False"]
