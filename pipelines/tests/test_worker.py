"""A real Celery worker and beat against PostgreSQL and Redis (no mocks of either)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from atlas.celery import app as celery_app
from conftest import service_or_skip
from pipelines import runner
from pipelines.models import PipelineRun, RunStatus, Trigger

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
# One Redis database per xdist worker, so parallel runs never take each other's tasks
# (ATLAS_TEST_REDIS_DB moves the base, for two suites side by side on one Redis).
_REDIS_DB = int(os.environ.get("ATLAS_TEST_REDIS_DB", "10")) + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
BROKER = f"redis://127.0.0.1:6379/{_REDIS_DB}"


@pytest.fixture
def broker(settings):
    service_or_skip("Redis", "127.0.0.1", 6379)
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = BROKER
    keys = ("task_always_eager", "broker_url", "broker_read_url", "broker_write_url")
    saved = {k: celery_app.conf.get(k) for k in keys}
    _reset_celery_connections()
    celery_app.conf.update(task_always_eager=False, broker_url=BROKER, broker_read_url=None, broker_write_url=None)
    yield BROKER
    celery_app.conf.update(saved)
    _reset_celery_connections()


def _reset_celery_connections() -> None:
    """Drop pooled broker connections and producers made under other settings earlier in the session."""
    celery_app.close()
    celery_app.amqp._producer_pool = None


def _env(tmp_path: Path) -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "ATLAS_VAR_DIR": str(tmp_path / "worker-var"),
        "ATLAS_DATA_ROOTS": str(tmp_path),  # the test's files live there (sources are confined)
        "SECRET_KEY": "worker-test",
        "ATLAS_AUDIT_KEY": "worker-test-audit-key-of-at-least-32-characters",  # required without DEBUG
        "DJANGO_SETTINGS_MODULE": "atlas.settings",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def start(tmp_path):
    procs: list[subprocess.Popen] = []

    def launch(*args: str, **env: str) -> subprocess.Popen:
        log = open(tmp_path / f"{args[0]}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "atlas", *args, "--loglevel=INFO"],
            cwd=ROOT, env={**_env(tmp_path), **env}, stdout=log, stderr=subprocess.STDOUT,
        )
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


def test_a_triggered_run_is_executed_by_a_worker_process(broker, simple_pipeline, start, tmp_path):
    assert django_settings.CELERY_TASK_ALWAYS_EAGER is False
    pipeline = simple_pipeline()
    start(*WORKER)
    run = runner.start_run(pipeline, trigger=Trigger.API)  # no --sync: on commit, to the broker
    run.refresh_from_db()
    assert run.celery_task_id

    def finished():
        run.refresh_from_db()
        return not run.is_active

    _wait_for(finished, tmp_path)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.step_runs.count() == 3 and run.rows_out == 7


def test_beat_fires_a_pipeline_whose_schedule_is_due(broker, simple_pipeline, start, tmp_path):
    pipeline = simple_pipeline()
    pipeline.schedule = "* * * * *"
    pipeline.save()
    PeriodicTask.objects.filter(pk=pipeline.periodic_task_id).update(
        last_run_at=timezone.now() - timedelta(hours=1)
    )
    start(*WORKER)
    start("beat", "-S", "django", "--max-interval", "1", "--schedule", str(tmp_path / "beat-schedule"))

    def scheduled_run_done():
        run = PipelineRun.objects.filter(trigger=Trigger.SCHEDULE).first()
        return run if run and not run.is_active else None

    run = _wait_for(scheduled_run_done, tmp_path, timeout=120)
    assert run.status == RunStatus.SUCCEEDED, run.error


def test_a_worker_serves_its_metrics_for_prometheus(broker, start, tmp_path):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start(*WORKER, ATLAS_WORKER_METRICS_PORT=str(port), ATLAS_WORKER_METRICS_ADDR="127.0.0.1")

    def scraped():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            return None

    body = _wait_for(scraped, tmp_path, timeout=60)
    assert "# TYPE atlas_lineage_deliveries_total counter" in body
