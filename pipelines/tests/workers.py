"""A real Celery worker for tests: the broker (one Redis database per xdist worker), worker and beat processes.

The ``broker`` and ``start`` fixtures are registered in ``conftest.py``; ``test_worker.py`` and
``test_faults.py`` use them.
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from atlas.celery import app as celery_app
from atlas.tests.plugin import service_or_skip
from pipelines.models import Dataset, Pipeline, Step

from . import zygote

ROOT = Path(__file__).resolve().parents[2]
# One Redis database per xdist worker, so parallel runs never take each other's tasks
# (ATLAS_TEST_REDIS_DB moves the base, for two suites side by side on one Redis).
_REDIS_DB = int(os.environ.get("ATLAS_TEST_REDIS_DB", "10")) + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
BROKER = f"redis://127.0.0.1:6379/{_REDIS_DB}"


@contextmanager
def celery_conf(**values):
    """Celery's configuration changed for a block, then exactly as it was.

    Exactly: a key that was not overridden before is removed from the overrides again (not
    set to the value it read as), so the app goes back to reading it from Django's settings,
    and pooled broker connections made under the block's settings are dropped on both sides.
    """
    # Read a key first: until then ``conf`` is Celery's pending configuration, whose ``changes`` are not
    # the ones the loaded configuration keeps, and popping from those restored nothing (the next test of
    # the worker found tasks no longer eager: "No result backend is configured").
    celery_app.conf.task_always_eager  # noqa: B018 - loads the configuration
    changes = celery_app.conf.changes
    missing = object()
    saved = {k: changes.get(k, missing) for k in values}
    _reset_celery_connections()
    celery_app.conf.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is missing:
                changes.pop(key, None)
            else:
                changes[key] = value
        _reset_celery_connections()


@pytest.fixture
def broker(settings):
    service_or_skip("Redis", "127.0.0.1", 6379)
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = BROKER
    with celery_conf(task_always_eager=False, broker_url=BROKER, broker_read_url=None, broker_write_url=None):
        yield BROKER


def pooled_pipelines(n: int) -> list[Pipeline]:
    """``n`` one-step pipelines that all read ``chart.people`` (runs side by side in a thread pool)."""
    pipelines = []
    for i in range(n):
        pipeline = Pipeline.objects.create(name=f"pooled_{i}")
        out = Dataset.objects.create(name=f"pooled_{i}", layer="navigate", table=f"pooled_{i}")
        Step.objects.create(pipeline=pipeline, name="count", kind="aggregate", output=out,
                            sql=f"SELECT {i} AS pipeline, count(*) AS people FROM chart.people")
        pipelines.append(pipeline)
    return pipelines


def _reset_celery_connections() -> None:
    """Drop pooled broker connections and producers made under other settings earlier in the session.

    Not ``celery_app.close()``, which also deregisters the app from Celery's active apps: a
    ``shared_task`` module imported after that (``alerts.tasks``, say) was never registered on the
    finalized app, and the next test of that worker to send its task failed with NotRegistered.
    """
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "ATLAS_VAR_DIR": str(tmp_path / "worker-var"),
        "ATLAS_DATA_ROOTS": str(tmp_path),  # the test's files live there (sources are confined)
        "SECRET_KEY": "worker-test",
        "ATLAS_AUDIT_KEY": "worker-test-audit-key-of-at-least-32-characters",  # required without DEBUG
        # the test process's key: privacy by default hashes Chart columns in the worker too
        "PII_HASH_KEY": getattr(settings, "PII_HASH_KEY", "") or "worker-test-pii-hash-key-of-at-least-32-chars",
        "DJANGO_SETTINGS_MODULE": "atlas.settings",
        "PYTHONPATH": str(ROOT),
        # Off unless a test asks (atlas/worker_start.py): most of these short-lived workers never scan, and
        # the analyzer's build (about 2 CPU s in the background) would slow the test beside it.
        "ATLAS_WORKER_WARM_UP": "false",
        # Celery's Django fixup runs Django's system checks when a worker starts: they import the whole URL
        # conf (every view, the API, the admin) that a worker never serves, about 1.2 of its 3 CPU s. The
        # checks run in CI itself (manage.py check) and in their own tests; these workers skip them.
        "CELERY_SKIP_CHECKS": "true",
        **extra,
    }


@pytest.fixture
def start(tmp_path):
    procs: list[subprocess.Popen] = []

    def launch(*args: str, **env: str) -> zygote.Forked | subprocess.Popen:
        """``celery -A atlas <args>`` forked from the test process's zygote (``pipelines/tests/zygote.py``)."""
        proc = zygote.spawn(["-A", "atlas", *args, "--loglevel=INFO"], cwd=ROOT, env={**_env(tmp_path), **env},
                            log=tmp_path / f"{args[0]}.log")
        procs.append(proc)
        return proc

    yield launch
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("*.log"))


def _wait_for(predicate, tmp_path: Path, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out; worker/beat logs:\n{_logs(tmp_path)}")


WORKER = ("worker", "--pool=solo", "--without-mingle", "--without-gossip", "--without-heartbeat")
# As docker-compose.yml runs it: a pool of threads, several runs at once in one process.
THREADED = ("worker", "--pool=threads", "--concurrency=4", "--without-mingle", "--without-gossip",
            "--without-heartbeat")
