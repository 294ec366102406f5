"""Heavy actions as tasks: recorded, sent to a worker, read back through a status resource.

An erasure proof, an index build, a data-subject run, a retention apply or a PII
scan can take minutes: a request that waits for one outlives gunicorn's timeout.
Their doors (API, admin) call :func:`enqueue` instead, which records a
:class:`~atlas.models.BackgroundTask` and hands its id to Celery
(``atlas.run_background_task``) once the transaction commits; the API answers
``202 Accepted`` with ``Location: /api/v1/tasks/{id}/``. Embedded (no broker), the
task runs in-process as pipeline runs do (``ATLAS_EAGER_MODE``: a thread of the web
process, or inline in tests and scripts); the status resource reads the same either way.

Apps declare their kinds (``background_tasks`` in their ``AppConfig``, :mod:`atlas.extensions`)
as :class:`Kind`: a name, the function (``fn(task, **params) -> result dict``) and the
exceptions whose message is meant for the operator (written with no personal data, as
every Atlas error); any other failure is recorded by its class name only, the detail
going to the log, so a value from the data never reaches the status resource.

While a task runs, a side thread of the process running it writes ``heartbeat_at`` every
``ATLAS_TASK_HEARTBEAT_SECONDS``. A process killed mid-task (SIGKILL, OOM, a machine gone)
writes nothing more: :func:`reap_lost_tasks` (beat, every heartbeat interval) fails a running
task silent for ``ATLAS_TASK_LOST_SECONDS`` with the reason. It is not run again (a heavy
action half done is the operator's to request again), and a late finish of a process that was
only cut off does not overwrite the verdict (every state change is conditional on ``running``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from . import extensions
from .models import BackgroundTask

logger = logging.getLogger(__name__)
State = BackgroundTask.State


@dataclass(frozen=True)
class Kind:
    name: str
    run: Callable[..., dict | None]
    errors: tuple[type[BaseException], ...] = field(default=())  # whose message the operator may read


class TaskNotSent(RuntimeError):
    """The broker could not be reached: the task is recorded as failed, nothing stays queued."""


def kinds() -> dict[str, Kind]:
    return {k.name: k for k in extensions.contributions("background_tasks")}


def enqueue(kind: str, *, actor=None, target: Any = None, result_path: str = "", **params: Any) -> BackgroundTask:
    """Record a task of ``kind`` and send it when the current transaction commits (at once outside one)."""
    if kind not in kinds():
        raise KeyError(f"Unknown background task kind {kind!r}; known: {', '.join(sorted(kinds()))}.")
    task = BackgroundTask.objects.create(
        id=uuid.uuid4(), kind=kind, params=params, result_path=result_path,
        target=f"{target._meta.label_lower}:{target.pk}" if target is not None else "",
        requested_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    if transaction.get_connection().in_atomic_block and not _inline():
        transaction.on_commit(lambda: _send_or_fail(task.pk))
    else:
        dispatch(task.pk)
    task.refresh_from_db()
    return task


def _inline() -> bool:
    return settings.CELERY_TASK_ALWAYS_EAGER and settings.ATLAS_EAGER_MODE != "thread"


def _send_or_fail(task_id) -> None:
    with contextlib.suppress(TaskNotSent):  # recorded as failed by dispatch
        dispatch(task_id)


def dispatch(task_id) -> None:
    """Hand the task to a worker; embedded, run it here (a thread, or inline). Raises :class:`TaskNotSent`."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        # By name through the app, not through the task's shared_task proxy: the web process need
        # not have imported (registered) the task module, the worker has (CI once saw the proxy's
        # registry lookup miss in a long test process).
        from .celery import app

        try:
            sent = app.send_task("atlas.run_background_task", args=[str(task_id)])
        except _broker_errors() as exc:
            message = "The task queue (broker) cannot be reached; nothing was done. Try again once it is up."
            BackgroundTask.objects.filter(pk=task_id).update(state=State.FAILED, error=message, finished_at=timezone.now())
            logger.warning("Background task %s not sent: %s", task_id, exc)
            raise TaskNotSent(message) from exc
        BackgroundTask.objects.filter(pk=task_id).update(celery_task_id=sent.id or "")
    elif settings.ATLAS_EAGER_MODE == "thread":
        threading.Thread(target=_execute_in_thread, args=(task_id,), name=f"atlas-task-{task_id}", daemon=True).start()
    else:
        execute(task_id)


def _broker_errors() -> tuple[type[BaseException], ...]:
    from kombu.exceptions import OperationalError

    return (OperationalError, ConnectionError, TimeoutError)


def _execute_in_thread(task_id) -> None:
    try:
        execute(task_id)
    finally:
        connections.close_all()


def execute(task_id) -> BackgroundTask | None:
    """Run a queued task once (a second delivery finds it claimed and does nothing)."""
    now = timezone.now()
    if not BackgroundTask.objects.filter(pk=task_id, state=State.QUEUED).update(
        state=State.RUNNING, started_at=now, heartbeat_at=now
    ):
        return None
    task = BackgroundTask.objects.get(pk=task_id)
    kind = kinds().get(task.kind)
    try:
        if kind is None:
            raise LookupError(f"No app declares the background task kind {task.kind!r} in this process.")
        with _Heartbeat(task.pk):
            result = kind.run(task, **task.params) or {}
    except Exception as exc:  # noqa: BLE001 — recorded; the detail goes to the log, not the record
        known = kind is not None and isinstance(exc, kind.errors)
        logger.log(logging.INFO if known else logging.ERROR, "Background task %s (%s) failed", task.pk, task.kind,
                   exc_info=not known)
        error = str(exc) if known or isinstance(exc, LookupError) else (
            f"{type(exc).__name__} (the detail is in the worker's log, task {task.pk})."
        )
        finish(task, State.FAILED, error=error)
        return task
    finish(task, State.SUCCEEDED, result=result)
    return task


def finish(task: BackgroundTask, state: str, *, error: str = "", result: dict | None = None) -> bool:
    """Record the outcome of a running task; False when it was no longer running (the reaper failed it)."""
    task.state, task.error, task.finished_at = state, error, timezone.now()
    task.progress = 1.0 if state == State.SUCCEEDED else task.progress
    fields = {"state": state, "error": error, "finished_at": task.finished_at, "progress": task.progress}
    if result is not None:
        task.result = fields["result"] = result
    if BackgroundTask.objects.filter(pk=task.pk, state=State.RUNNING).update(**fields):
        return True
    logger.warning("Background task %s ended (%s) after it was declared lost; its record stays as it was.",
                   task.pk, state)
    task.refresh_from_db()
    return False


class _Heartbeat:
    """Writes ``heartbeat_at`` from a side thread every ``ATLAS_TASK_HEARTBEAT_SECONDS`` while a task runs."""

    def __init__(self, task_id) -> None:
        self.task_id = task_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"atlas-task-heartbeat-{task_id}", daemon=True)

    def _beat(self) -> None:
        interval = settings.ATLAS_TASK_HEARTBEAT_SECONDS
        try:
            while not self._stop.wait(interval):
                try:
                    BackgroundTask.objects.filter(pk=self.task_id, state=State.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError as exc:  # one missed beat must not end the thread (the task would look lost)
                    logger.warning("Background task %s: heartbeat not written (%s).", self.task_id, exc)
                    connections["default"].close()
        finally:
            connections.close_all()

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def reap_lost_tasks() -> int:
    """Fail running tasks whose process stopped reporting; the number failed (beat calls it).

    Lost: no heartbeat for ``ATLAS_TASK_LOST_SECONDS`` (a task claimed before heartbeats were
    recorded counts from its ``started_at``). The task is failed with the reason, not run again.
    """
    bound = settings.ATLAS_TASK_LOST_SECONDS
    now = timezone.now()
    cutoff = now - timedelta(seconds=bound)
    silent = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    count = 0
    for task in BackgroundTask.objects.filter(silent, state=State.RUNNING).only("pk", "heartbeat_at", "started_at"):
        last = task.heartbeat_at or task.started_at
        reason = (
            f"The process running it stopped reporting (no heartbeat for {(now - last).total_seconds():.0f} s,"
            f" ATLAS_TASK_LOST_SECONDS={bound:g}); it was probably killed or cut off. It is not run again:"
            " request it again."
        )
        # Conditional on the heartbeat read: one written since (a slow beat) keeps the task running.
        if BackgroundTask.objects.filter(pk=task.pk, state=State.RUNNING, heartbeat_at=task.heartbeat_at).update(
            state=State.FAILED, error=reason, finished_at=now
        ):
            logger.warning("Background task %s: %s", task.pk, reason)
            count += 1
    return count


def report_progress(task: BackgroundTask, fraction: float) -> None:
    """For a kind that knows how far it is (0 to 1)."""
    task.progress = max(0.0, min(1.0, float(fraction)))
    BackgroundTask.objects.filter(pk=task.pk).update(progress=task.progress)
