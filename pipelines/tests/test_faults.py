"""Fault injection with a real Celery worker, Redis and PostgreSQL (issue 14).

Each case breaks a run at a named point — SIGKILL of the worker during an ingest's
COPY, after staging, inside the publishing transaction; every worker connection,
or only the step's own, terminated by ``pg_terminate_backend``; a step blocked on a
lock and cancelled; the disk full; the broker down at trigger time and stopped
mid-run; two triggers at once — and checks: every published table exactly as before
or exactly as after (contents compared), the run resumed (or failed with a reason)
within the bound, no duplicate rows, nothing left behind once the janitor ran, and
the next scheduled run (beat's message, through the broker) taken and succeeding.

Small data and short heartbeats (0.5 s, lost after 1.5 s) keep each case to a few
seconds. The worker pauses at the fault point (``faults.PauseOnce``, a marker file
says where and which pid) so the kill lands exactly there. Two workers are started
at once: the one that pauses is killed, the other takes the resumed attempt.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from atlas.warehouse import get_warehouse
from pipelines import attempts, runner
from pipelines.models import PipelineRun, RunAttempt, RunStatus, Trigger

from .conftest import run_now
from .faults import start_at_once
from .workers import THREADED, WORKER, _wait_for, celery_conf

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
HEARTBEAT, LOST = 0.5, 1.5
# The bound a resume must meet: lost after LOST, seen by the next reaper pass, a worker takes it.
# Generous on purpose (a loaded CI machine); the benchmark measures the real figure.
RESUME_BOUND = 30.0
APP_NAME = "atlas-fault-worker"
NEW_ROWS = "id,name,amount\n4,Dee,7\n5,Eve,8\n"
AFTER = {
    "chart.people": [(1, "Ann", 10), (2, "Bob", 20), (3, "Cy", 5), (4, "Dee", 7), (5, "Eve", 8)],
    "navigate.people_total": [(5, 50)],
}


@pytest.fixture(autouse=True)
def short_heartbeats(settings):
    settings.ATLAS_RUN_HEARTBEAT_SECONDS, settings.ATLAS_RUN_LOST_SECONDS = HEARTBEAT, LOST


def contents(table: str) -> list[tuple]:
    with get_warehouse().cursor() as cur:
        rows = cur.execute(f"SELECT * FROM {table}").fetchall()
    return sorted(tuple(int(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, int) else v for v in r)
                  for r in rows)


def explore_ids() -> list[str]:
    with get_warehouse().cursor() as cur:
        return sorted(r[0] for r in cur.execute("SELECT id FROM explore.people").fetchall())


def published() -> dict[str, list[tuple]]:
    return {"chart.people": contents("chart.people"), "navigate.people_total": contents("navigate.people_total"),
            "explore.people": explore_ids()}


def leftovers() -> list[str]:
    return [f"{s}.{n}" for s, n, _ in get_warehouse().relations(["explore", "chart", "navigate"])
            if attempts.TAG_RE.search(n)]


@pytest.fixture
def loaded_once(simple_pipeline, tmp_path):
    """The pipeline run once (3 people published), then a new file with 2 more: the run to break."""
    pipeline = simple_pipeline()
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    before = published()
    assert before["explore.people"] == ["1", "2", "3"]
    Path(pipeline.steps.get(name="ingest").source.location).write_text(NEW_ROWS)
    return pipeline, before


def fault_env(tmp_path: Path, point: str, **extra: str) -> dict[str, str]:
    marks = tmp_path / "faults"
    marks.mkdir(exist_ok=True)
    return {
        "ATLAS_STEP_HOOKS": "pipelines.tests.faults.PauseOnce",
        "ATLAS_FAULT_AT": point,
        "ATLAS_FAULT_DIR": str(marks),
        "ATLAS_RUN_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "ATLAS_RUN_LOST_SECONDS": str(LOST),
        "ATLAS_STEP_RETRY_BASE_SECONDS": "0.1",
        "PGAPPNAME": APP_NAME,
        **extra,
    }


def reached(tmp_path: Path, point: str) -> int:
    """Wait until a worker pauses at ``point``; its pid."""
    marker = tmp_path / "faults" / f"{point}.reached"
    _wait_for(lambda: marker.exists() and marker.read_text(), tmp_path, timeout=300)
    return int(marker.read_text())


def ended(run: PipelineRun) -> PipelineRun | None:
    run.refresh_from_db()
    return None if run.is_active else run


def reap_until_done(run: PipelineRun, tmp_path: Path) -> PipelineRun:
    """Beat's part, done here: the reaper every heartbeat until the run ends."""

    def done():
        runner.reap_stale_runs()
        run.refresh_from_db()
        return None if run.is_active else run

    return _wait_for(done, tmp_path, timeout=300)


def retried_once_and_complete(run, pipeline, tmp_path: Path) -> None:
    """The ingest's transient error retried within the attempt; every row once, nothing left; the next run works."""
    ingest = run.step_runs.get(step_name="ingest")
    assert ingest.tries[0]["transient"] is True and ingest.tries[-1]["error"] == ""
    after = published()
    assert after["explore.people"] == ["1", "2", "3", "4", "5"] and {k: after[k] for k in AFTER} == AFTER
    attempts.clean_up_attempts()
    assert not leftovers()
    next_scheduled_run_succeeds(pipeline, tmp_path)
    assert published() == after  # nothing new to load: the same tables


@pytest.mark.parametrize(("point", "pool"), [("copy", WORKER), ("staged", WORKER), ("publish", WORKER),
                                            pytest.param("staged", THREADED, id="staged-threads")])
def test_a_worker_killed_mid_run_is_resumed_and_the_tables_are_exactly_as_after(
    broker, loaded_once, start, tmp_path, point, pool
):
    pipeline, before = loaded_once
    env = fault_env(tmp_path, point)
    workers = [start(*pool, "-n", f"w{i}@%h", **env) for i in (1, 2)]
    run = runner.start_run(pipeline, trigger=Trigger.API)
    pid = reached(tmp_path, point)
    if point != "publish":  # (inside publish, the paused transaction holds the table's lock)
        assert published() == before  # mid-run: exactly as before, never half
    victim = next(w for w in workers if w.pid == pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    killed_at = time.time()
    if point != "copy":  # staged and committed by the dead attempt (a COPY's transaction died with it)
        assert leftovers() and all(f"__r{run.pk}a1_" in name for name in leftovers())

    run = reap_until_done(run, tmp_path)
    assert run.status == RunStatus.SUCCEEDED, run.error
    second = RunAttempt.objects.get(run=run, number=2)
    assert second.started_at.timestamp() - killed_at < RESUME_BOUND
    assert RunAttempt.objects.get(run=run, number=1).outcome == RunAttempt.Outcome.LOST
    after = published()
    assert after["explore.people"] == ["1", "2", "3", "4", "5"]  # no duplicate rows after the resume
    assert {k: after[k] for k in AFTER} == AFTER
    ingest = run.step_runs.get(step_name="ingest")
    assert ingest.tries and ingest.tries[0]["error"].startswith("Interrupted")

    attempts.clean_up_attempts()
    assert not leftovers()  # what the dead attempt staged is gone (batches attached as partitions stay)
    next_scheduled_run_succeeds(pipeline, tmp_path)  # on the surviving worker
    assert published() == after


def test_a_lost_run_that_was_asked_to_cancel_is_cancelled_not_resumed(broker, loaded_once, start, tmp_path):
    pipeline, before = loaded_once
    worker = start(*WORKER, **fault_env(tmp_path, "staged"))
    run = runner.start_run(pipeline, trigger=Trigger.API)
    reached(tmp_path, "staged")
    runner.cancel_run(run)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    run = reap_until_done(run, tmp_path)
    assert run.status == RunStatus.CANCELLED and "Not resumed: it was cancelled" in run.error
    assert published() == before  # exactly as before
    assert attempts.clean_up_attempts().relations and not leftovers()
    start(*WORKER, **fault_env(tmp_path, "none"))  # a worker back
    next_scheduled_run_succeeds(pipeline, tmp_path)
    after = published()
    assert after["explore.people"] == ["1", "2", "3", "4", "5"] and {k: after[k] for k in AFTER} == AFTER


def test_terminated_connections_are_retried_and_the_run_succeeds(broker, loaded_once, start, tmp_path):
    pipeline, _ = loaded_once
    env = fault_env(tmp_path, "staged")
    start(*WORKER, **env)
    run = runner.start_run(pipeline, trigger=Trigger.API)
    reached(tmp_path, "staged")
    with psycopg.connect(_conninfo(), autocommit=True) as admin:
        killed = admin.execute(
            # this test's database only: the other xdist worker's fault worker has the same name
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            [APP_NAME],
        ).fetchone()[0]
    assert killed >= 1  # the step's connections, the heartbeat's, the metadata's
    (tmp_path / "faults" / "staged.release").write_text("go")

    run = _wait_for(lambda: ended(run), tmp_path, timeout=300)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempt == 1  # retried within the attempt, not resumed
    retried_once_and_complete(run, pipeline, tmp_path)


def _conninfo() -> str:
    db = connection.settings_dict
    return f"host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432} user={db['USER'] or 'postgres'} dbname={db['NAME']}"


def test_a_trigger_while_the_broker_is_down_fails_at_once_with_one_line(simple_pipeline, settings):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = f"redis://127.0.0.1:{port}/0"
    settings.CELERY_TASK_ALWAYS_EAGER, settings.CELERY_BROKER_URL = False, down
    pipeline = simple_pipeline()
    with celery_conf(task_always_eager=False, broker_url=down):
        t0 = time.monotonic()
        with pytest.raises(runner.BrokerUnavailable) as caught:
            runner.start_run(pipeline, trigger=Trigger.API)
        took = time.monotonic() - t0
        with pytest.raises(CommandError) as cli:
            call_command("run_pipeline", pipeline.name)
    assert "\n" not in str(caught.value) and "\n" not in str(cli.value)
    assert str(caught.value).startswith("The task queue (broker) cannot be reached")
    assert took < 30  # answers, does not hang
    assert not PipelineRun.objects.active().exists()  # nothing left queued
    assert set(PipelineRun.objects.values_list("status", flat=True)) == {RunStatus.FAILED}


def test_two_triggers_at_once_make_one_run_that_a_worker_executes(broker, simple_pipeline, start, tmp_path):
    pipeline = simple_pipeline()
    start(*WORKER, **fault_env(tmp_path, "none"))
    outcomes = start_at_once(pipeline, trigger=Trigger.API)
    assert sorted(map(str, outcomes))[1] == "refused"
    run = PipelineRun.objects.get()
    run = _wait_for(lambda: ended(run), tmp_path, timeout=300)
    assert run.status == RunStatus.SUCCEEDED and run.attempt == 1
    assert contents("navigate.people_total") == [(3, 35)]
    next_scheduled_run_succeeds(pipeline, tmp_path)
    assert contents("navigate.people_total") == [(3, 35)] and explore_ids() == ["1", "2", "3"]


# --- the next scheduled run starts --------------------------------------------------------------
def next_scheduled_run_succeeds(pipeline, tmp_path: Path) -> PipelineRun:
    """What beat sends for a due pipeline, through the broker to a worker: accepted, and it succeeds."""
    from pipelines.tasks import trigger_scheduled_run

    seen = set(PipelineRun.objects.filter(pipeline=pipeline).values_list("pk", flat=True))
    trigger_scheduled_run.delay(pipeline.pk)
    run = _wait_for(lambda: PipelineRun.objects.filter(pipeline=pipeline, trigger=Trigger.SCHEDULE)
                    .exclude(pk__in=seen).first(), tmp_path, timeout=300)
    run = _wait_for(lambda: ended(run), tmp_path, timeout=300)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


# --- the step's own connection terminated ---------------------------------------------------------
def test_the_steps_own_connection_terminated_is_retried_and_the_next_run_starts(broker, loaded_once, start, tmp_path):
    """Only the warehouse connection of the step (not the heartbeat's or the metadata's) is cut."""
    pipeline, _ = loaded_once
    start(*WORKER, **fault_env(tmp_path, "staged"))
    run = runner.start_run(pipeline, trigger=Trigger.API)
    reached(tmp_path, "staged")
    backend = int((tmp_path / "faults" / "staged.backend").read_text())
    with psycopg.connect(_conninfo(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [backend]).fetchone()[0] is True
        others = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND pid <> %s"
            " AND datname = current_database()", [APP_NAME, backend]
        ).fetchone()[0]
    assert others >= 1  # the worker's other connections stay up
    (tmp_path / "faults" / "staged.release").write_text("go")

    run = _wait_for(lambda: ended(run), tmp_path, timeout=300)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempt == 1
    retried_once_and_complete(run, pipeline, tmp_path)


# --- a step blocked on a lock, cancelled ---------------------------------------------------------
def test_a_step_blocked_on_a_lock_is_cancelled_within_seconds_and_the_next_run_starts(
    broker, loaded_once, start, tmp_path
):
    pipeline, before = loaded_once
    start(*WORKER, **fault_env(tmp_path, "none", ATLAS_WATCHDOG_POLL_SECONDS="0.2"))
    with psycopg.connect(_conninfo()) as holder:
        holder.execute("LOCK TABLE chart.people IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        run = runner.start_run(pipeline, trigger=Trigger.API)

        def blocked():
            with psycopg.connect(_conninfo(), autocommit=True) as probe:
                return probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'"
                    " AND datname = current_database()",
                    [APP_NAME],
                ).fetchone()[0]

        _wait_for(blocked, tmp_path, timeout=300)
        t0 = time.monotonic()
        assert runner.cancel_run(run) == "stopping"
        run = _wait_for(lambda: ended(run), tmp_path, timeout=300)
        took = time.monotonic() - t0
        assert run.status == RunStatus.CANCELLED, run.error
        assert took < RESUME_BOUND  # within seconds (a bound for a loaded CI machine; about 1 s measured)
        holder.rollback()
    now = published()
    assert {k: now[k] for k in AFTER} == {k: before[k] for k in AFTER}  # chart and navigate as before
    assert now["explore.people"] == ["1", "2", "3", "4", "5"]  # the ingest had published before the block
    attempts.clean_up_attempts()
    assert not leftovers()
    next_scheduled_run_succeeds(pipeline, tmp_path)
    after = published()
    assert after["explore.people"] == ["1", "2", "3", "4", "5"] and {k: after[k] for k in AFTER} == AFTER


# --- the disk fills during a step ----------------------------------------------------------------
BIG_ROWS = 20_000  # about 300 kB once decompressed: more than the small filesystem holds


def _mount_small_filesystem(where: Path) -> bool:
    """A 64 kB tmpfs at ``where`` (root only); False where it cannot be mounted."""
    import subprocess

    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_a_full_disk_fails_the_run_with_the_reason_tables_as_before_and_the_next_run_starts(
    broker, loaded_once, start, tmp_path
):
    """The worker's temporary directory is a 64 kB filesystem (or, without root, ``open`` fails as on one)."""
    import gzip
    import subprocess

    pipeline, before = loaded_once
    # mixed line ends: hygiene rewrites the file in the temporary directory (a clean gzip file
    # goes straight into COPY and needs no disk at all)
    rows = "".join(f"{i},P{i},{i % 97}\r\n" for i in range(4, 4 + BIG_ROWS))
    Path(pipeline.steps.get(name="ingest").source.location).write_bytes(gzip.compress(("id,name,amount\n" + rows).encode()))
    tmp = tmp_path / "worker-var" / "tmp"
    mounted = _mount_small_filesystem(tmp)
    env = fault_env(tmp_path, "none" if mounted else "enospc")
    worker = start(*WORKER, **env)
    try:
        run = runner.start_run(pipeline, trigger=Trigger.API)
        run = _wait_for(lambda: ended(run), tmp_path, timeout=300)
        assert run.status == RunStatus.FAILED
        assert "No space left on device" in run.error, run.error
        assert published() == before  # exactly as before
        attempts.clean_up_attempts()
        assert not leftovers()
    finally:
        if mounted:
            worker.terminate()
            worker.wait(timeout=20)
            subprocess.run(["umount", "-l", str(tmp)], check=True)
    if mounted:  # the disk has room again (the normal one); the fault-free worker takes the next run
        start(*WORKER, **fault_env(tmp_path, "none"))
    else:
        worker.terminate()
        worker.wait(timeout=20)
        start(*WORKER, **fault_env(tmp_path, "none"))
    next_scheduled_run_succeeds(pipeline, tmp_path)
    ids = explore_ids()
    assert len(ids) == 3 + BIG_ROWS and len(set(ids)) == len(ids)  # every row once
    assert contents("navigate.people_total")[0][0] == 3 + BIG_ROWS


# --- the broker stops mid-run ---------------------------------------------------------------------
@pytest.fixture
def private_broker(settings, tmp_path):
    """A redis-server of this test's own on a free port, that the test may stop and start again."""
    import shutil
    import socket
    import subprocess

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed: the broker-stopped case needs a Redis of its own")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"

    class Redis:
        proc: subprocess.Popen | None = None

        def up(self):
            log = open(tmp_path / "redis.log", "ab")  # noqa: SIM115
            self.proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                          "--appendonly", "no"], stdout=log, stderr=subprocess.STDOUT)
            import redis

            _wait_for(lambda: _pings(redis.Redis.from_url(url)), tmp_path, timeout=30)

        def down(self):
            self.proc.terminate()
            self.proc.wait(timeout=20)

    broker = Redis()
    broker.up()
    settings.CELERY_TASK_ALWAYS_EAGER, settings.CELERY_BROKER_URL = False, url
    try:
        with celery_conf(task_always_eager=False, broker_url=url, broker_read_url=None, broker_write_url=None):
            yield url, broker
    finally:
        if broker.proc.poll() is None:
            broker.down()


def _pings(client) -> bool:
    import redis

    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.mark.parametrize("pool", [WORKER, pytest.param(THREADED, id="threads")])
def test_the_broker_stopped_mid_run_the_run_finishes_and_the_next_run_starts_once_it_is_back(
    private_broker, loaded_once, start, tmp_path, pool
):
    url, broker = private_broker
    pipeline, _ = loaded_once
    start(*pool, **fault_env(tmp_path, "staged", CELERY_BROKER_URL=url))
    run = runner.start_run(pipeline, trigger=Trigger.API)
    reached(tmp_path, "staged")
    broker.down()  # mid-run: the task was taken, the broker (and its unacknowledged message) gone
    (tmp_path / "faults" / "staged.release").write_text("go")

    run = _wait_for(lambda: ended(run), tmp_path, timeout=300)
    assert run.status == RunStatus.SUCCEEDED, run.error  # a run's state lives in the database, not the broker
    assert run.attempt == 1
    after = published()
    assert after["explore.people"] == ["1", "2", "3", "4", "5"] and {k: after[k] for k in AFTER} == AFTER

    broker.up()  # back, empty: the worker reconnects; beat's next message reaches it
    from .workers import _reset_celery_connections

    _reset_celery_connections()
    next_scheduled_run_succeeds(pipeline, tmp_path)
    assert published() == after  # no duplicate rows
    assert PipelineRun.objects.filter(pipeline=pipeline).active().count() == 0


# --- the demo pipeline, its worker killed mid-run -------------------------------------------------
DEMO_ROWS = 300


def test_the_demo_pipeline_with_its_worker_killed_completes_on_its_own_within_a_minute_of_a_worker_back(
    broker, start, tmp_path, settings
):
    """Worker and beat (the reaper) as deployed, the project's default hooks (quality gates, PII scan)."""
    from atlas import extensions
    from demo.install import PIPELINE
    from pipelines.models import Dataset, Pipeline

    settings.ATLAS_DEMO_DIR = tmp_path / "demo"
    call_command("load_demo", "--rows", str(DEMO_ROWS))
    manifest = json.loads((settings.ATLAS_DEMO_DIR / "manifest.json").read_text())
    files, dirt = manifest["files"], manifest["dirt"]
    pipeline = Pipeline.objects.get(name=PIPELINE)
    hooks = [*(extensions.dotted(c) for c in extensions.step_hooks()), "pipelines.tests.faults.PauseOnce"]
    # Heartbeats of 2 s (lost after 6 s): short for a test, long enough for a loaded machine.
    env = {**fault_env(tmp_path, "staged-refine_orders"), "ATLAS_STEP_HOOKS": ",".join(hooks),
           "ATLAS_RUN_HEARTBEAT_SECONDS": "2", "ATLAS_RUN_LOST_SECONDS": "6"}
    worker = start(*WORKER, **env)
    run = runner.start_run(pipeline, trigger=Trigger.API)
    pid = reached(tmp_path, "staged-refine_orders")  # mid-run: three ingests and a refine published
    assert pid == worker.pid
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # as the killed worker left it

    (tmp_path / "worker.log").rename(tmp_path / "killed-worker.txt")
    start("beat", "--max-interval", "1", "--schedule", str(tmp_path / "beat-schedule"), **env)
    start(*WORKER, **env)  # the worker back
    back = _wait_for(lambda: b"ready." in (tmp_path / "worker.log").read_bytes() and time.time(), tmp_path, timeout=300)
    run = _wait_for(lambda: ended(run), tmp_path, timeout=600)
    took = run.finished_at.timestamp() - back
    print(f"demo run completed {took:.1f} s after a worker was back (attempt {run.attempt})")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempt == 2 and RunAttempt.objects.get(run=run, number=1).outcome == RunAttempt.Outcome.LOST
    assert took < 60

    steps = {s.step_name: s for s in run.step_runs.all()}
    assert steps["refine_orders"].tries[0]["error"].startswith("Interrupted")
    dropped = {"orders": dirt["orders"]["empty_status"]}
    with get_warehouse().cursor() as cur:
        for name, info in files.items():
            explore = cur.execute(f"SELECT count(*), count(DISTINCT _row_number || _batch_id) FROM explore.{name}").fetchone()
            assert explore == (info["good_rows"] + info["duplicate_rows"],) * 2, name  # every row once
            chart = cur.execute(f"SELECT count(*) FROM chart.{name}").fetchone()[0]
            assert chart == info["good_rows"] - dropped.get(name, 0), name
        orders = cur.execute("SELECT count(*), count(DISTINCT order_id) FROM chart.orders").fetchone()
        revenue = cur.execute("SELECT sum(revenue) FROM navigate.daily_revenue").fetchone()[0]
    assert orders[0] == orders[1] and revenue > 0
    clv = Dataset.objects.get(layer="navigate", table="customer_lifetime_value")
    assert clv.row_count == files["customers"]["good_rows"]
    attempts.clean_up_attempts()
    assert not leftovers()
