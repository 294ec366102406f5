"""A real Celery worker and beat against PostgreSQL and Redis (no mocks of either)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from pipelines import runner
from pipelines.models import PipelineRun, RunStatus, Trigger

from .workers import THREADED, WORKER, _wait_for, pooled_pipelines

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


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


def test_a_worker_with_a_pool_of_threads_executes_runs_of_several_pipelines_and_takes_beats_triggers(
    broker, simple_pipeline, start, tmp_path
):
    """As docker-compose.yml runs it: runs side by side in one process, one heartbeat thread for them."""
    from pipelines.tasks import trigger_scheduled_run

    from .conftest import run_now

    assert run_now(simple_pipeline()).status == RunStatus.SUCCEEDED  # chart.people, which they all read
    pipelines = pooled_pipelines(3)
    start(*THREADED)
    for pipeline in pipelines:  # what beat sends: on the trigger queue, then the run on the pipeline queue
        trigger_scheduled_run.delay(pipeline.pk)

    def all_done():
        runs = list(PipelineRun.objects.filter(trigger=Trigger.SCHEDULE))
        return runs if len(runs) == 3 and not any(r.is_active for r in runs) else None

    runs = _wait_for(all_done, tmp_path, timeout=300)
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}, [r.error for r in runs]
    workers = [r.attempts.get().worker for r in runs]
    assert len({w.split("/")[0] for w in workers}) == 1  # one process
    assert all("/" in w for w in workers)  # each run on a thread of its pool


def test_beat_fires_a_pipeline_whose_schedule_is_due(broker, simple_pipeline, start, tmp_path):
    pipeline = simple_pipeline()
    pipeline.schedule = "* * * * *"
    pipeline.save()
    PeriodicTask.objects.filter(pk=pipeline.periodic_task_id).update(
        last_run_at=timezone.now() - timedelta(hours=1)
    )
    start(*WORKER)
    start("beat", "--max-interval", "1", "--schedule", str(tmp_path / "beat-schedule"))

    def scheduled_run_done():
        run = PipelineRun.objects.filter(trigger=Trigger.SCHEDULE).first()
        return run if run and not run.is_active else None

    run = _wait_for(scheduled_run_done, tmp_path, timeout=120)
    assert run.status == RunStatus.SUCCEEDED, run.error
    # Beat's scheduler (pipelines.beat) triggered it itself: the worker got the run, never the trigger.
    log = (tmp_path / "worker.log").read_text()
    assert "Task pipelines.execute_run[" in log and "Task pipelines.trigger_scheduled_run[" not in log


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


def test_a_background_task_is_sent_by_name_and_taken_by_a_worker(broker, start, tmp_path):
    """The web process sends by name (it need not import the task module); the worker runs it. The
    kind is declared only in this process, so the worker's answer proves it was the worker's."""
    from atlas import background, extensions

    with extensions.added("test_worker", {"background_tasks": [background.Kind("test.here_only", lambda task: {})]}):
        task = background.enqueue("test.here_only")
    start(*WORKER)

    def finished():
        task.refresh_from_db()
        return task.state not in ("queued", "running")

    _wait_for(finished, tmp_path)
    assert task.celery_task_id
    assert task.state == "failed" and "No app declares the background task kind 'test.here_only'" in task.error


def test_a_background_task_whose_worker_is_killed_is_failed_by_the_reaper(broker, start, tmp_path, settings):
    """A real worker runs a task, is SIGKILLed mid-task; the reaper fails the task with the reason.
    While the worker lives, its heartbeat keeps the task running past the bound."""
    import signal

    from atlas import background, extensions
    from atlas.models import BackgroundTask

    from .killable_task import KIND, wait_to_be_killed

    mark = tmp_path / "task.pid"
    settings.ATLAS_TASK_LOST_SECONDS = 2.0
    with extensions.added("test_worker", {"background_tasks": [background.Kind(KIND, wait_to_be_killed)]}):
        task = background.enqueue(KIND)
    worker = start(*WORKER, "--include=pipelines.tests.killable_task",
                   ATLAS_TEST_TASK_MARK=str(mark), ATLAS_TASK_HEARTBEAT_SECONDS="0.3")
    pid = int(_wait_for(lambda: mark.exists() and mark.read_text(), tmp_path))
    assert pid == worker.pid  # (--pool=solo: the task runs in the worker process itself)

    started = BackgroundTask.objects.get(pk=task.pk).started_at
    _wait_for(lambda: (timezone.now() - started).total_seconds() > 2 * settings.ATLAS_TASK_LOST_SECONDS, tmp_path)
    assert background.reap_lost_tasks() == 0  # alive: past the bound since it started, yet heartbeating
    task.refresh_from_db()
    assert task.state == "running" and task.heartbeat_at > task.started_at

    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    _wait_for(background.reap_lost_tasks, tmp_path, timeout=30)
    task.refresh_from_db()
    assert task.state == "failed" and task.finished_at
    assert "stopped reporting" in task.error and "ATLAS_TASK_LOST_SECONDS=2" in task.error
    assert background.reap_lost_tasks() == 0  # failed once


def test_a_worker_keeps_its_database_connection_between_runs_and_replaces_a_terminated_one(
    broker, simple_pipeline, start, tmp_path
):
    """atlas.worker_db: one metadata connection serves run after run (no backend forked per task); one
    terminated between two runs (a database restart) is replaced by the next task, which succeeds."""
    import psycopg
    from django.db import connection

    db = connection.settings_dict
    app_name = "atlas-kept-connection"
    start(*WORKER, DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
                                f"{db['PORT'] or 5432}/{db['NAME']}?application_name={app_name}")
    admin = psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "postgres",
                            dbname=db["NAME"], autocommit=True)

    def metadata_backends() -> set[int]:
        """The worker's Django connections (the warehouse's and operator SQL's have other names)."""
        return {pid for (pid,) in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
            [app_name]).fetchall()}

    def run_once(pipeline):
        run = runner.start_run(pipeline, trigger=Trigger.API)

        def ended():
            run.refresh_from_db()
            return not run.is_active

        _wait_for(ended, tmp_path, timeout=300)
        assert run.status == RunStatus.SUCCEEDED and run.attempt == 1, run.error
        # Once the run's heartbeat thread has closed its own connection, the task's is what is left.
        return _wait_for(lambda: (b := metadata_backends()) and len(b) == 1 and b, tmp_path)

    try:
        pipeline = simple_pipeline()
        kept = run_once(pipeline)
        assert run_once(pipeline) == kept, "the second run used the connection of the first"
        assert admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid = ANY(%s)",
                             [list(kept)]).fetchone()[0] == 1
        replaced = run_once(pipeline)
        assert replaced and replaced != kept
    finally:
        admin.close()


def test_a_worker_builds_the_pii_analyzer_when_it_starts_not_in_its_first_run(broker, start, tmp_path):
    """atlas/worker_start.py: the threads pool's process (compose's) builds it once, before any task."""
    start(*THREADED, ATLAS_WORKER_WARM_UP="true")
    log = tmp_path / "worker.log"
    _wait_for(lambda: "PII analyzer ready (built in" in log.read_text(), tmp_path, timeout=120)
    text = log.read_text()
    assert text.count("PII analyzer ready") == 1
    assert "Task " not in text  # before any task: nothing was sent
