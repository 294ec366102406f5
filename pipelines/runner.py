"""The runner: start a run, execute it step by step, record everything.

Every door (beat, admin, API, manage.py) calls :func:`start_run`; a Celery
task (or, embedded, a thread or the caller itself) calls :func:`execute_run`
with the run id. Executing is safe to repeat: a run is claimed with a
conditional update, and a second call claims nothing.

The runner owns the run and step lifecycle: it claims the run, plans the
steps, and for each step records its status, calls the step hooks
(:mod:`pipelines.hooks`) at every stage, stages and publishes through the
step's work (:class:`~pipelines.ingest.IngestWork`,
:class:`~pipelines.transform.TransformWork`, or the work a caller brings:
re-processing quarantined rows), and records the end. Other doors that run
steps (the privacy rebuild, quarantine re-processing) come through here too.

Recovery (issue 14, README "When things fail"): every claim is an attempt
(:class:`~pipelines.models.RunAttempt`); a run whose worker stopped beating for
``ATLAS_RUN_LOST_SECONDS`` is taken over by the next attempt, which resumes at
the first step that did not finish (:func:`reap_stale_runs`, or the redelivered
task itself). A step failing on a transient error is tried again with backoff
(:mod:`pipelines.retries`); a step that fails skips only the steps downstream of
it, and the run ends ``partial`` when independent steps went on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol, TypeVar

from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    connection,
    connections,
    transaction,
)
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from atlas import audit, extensions
from atlas.scrub import scrub, scrub_traceback
from atlas.warehouse import WarehouseError, get_warehouse

from . import as_code, freshness, hooks, incremental, live, memo
from .dag import PipelineDefinitionError, StepSpec, plan
from .heartbeat import RunHeartbeat
from .hooks import GateFailed, Origin, RunContext, StepContext
from .ingest import IngestWork, StepOutcome
from .intervals import Interval, default_interval
from .models import (
    ACTIVE_STATUSES,
    PARTIALLY_FAILED,
    Dataset,
    DatasetColumn,
    LoadedBatch,
    Pipeline,
    PipelineRun,
    RunAttempt,
    RunStatus,
    Step,
    StepRun,
    Trigger,
)
from .retries import backoff_seconds, is_transient
from .run_totals import run_totals
from .sql import SQLValidationError
from .transform import TransformWork, known_tables, publish_receipt, share_catalogue, step_inputs
from .watchdog import StepCancelled, StepStopped, watchdog

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Errors whose message is written for the operator: shown as they are.
EXPECTED_ERRORS = (WarehouseError, GateFailed, SQLValidationError, PipelineDefinitionError, StepStopped)


class StepWork(Protocol):
    """What a step does between its ``prepare`` hooks and its end: stage, call ``staged``, publish.

    :class:`~pipelines.ingest.IngestWork` and :class:`~pipelines.transform.TransformWork`
    are the steps' own; another door may bring its own (quarantine re-processing).
    """

    def begin(self, ctx: StepContext) -> None:
        """Before the ``prepare`` hooks (a transform checks its inputs and sets the SELECT)."""

    def run(self, ctx: StepContext, *, progress: Callable[[StepOutcome], None]) -> StepOutcome:
        """Stage, call :func:`pipelines.hooks.after_staging`, publish; the outcome to record."""


def save_step_state(ctx: StepContext, update_fields: list[str] | None = None, *, stage: str | None = None) -> None:
    """Store the step run's new status; ``stage`` hooks are called in the same transaction.

    What a hook writes there (lineage's OpenLineage outbox row) commits or rolls back with the status.
    """
    with transaction.atomic():
        ctx.step_run.save(update_fields=update_fields)
        if stage:
            hooks.call(stage, ctx)


class RunRefused(Exception):
    """A trigger that cannot start a run; the message says why."""


class RunAlreadyActive(RunRefused):
    def __init__(self, pipeline: Pipeline, active: PipelineRun | None) -> None:
        self.pipeline, self.active = pipeline, active
        which = f" (run #{active.pk}, {active.status})" if active else ""
        super().__init__(f"Pipeline {pipeline.name!r} already has a run in progress{which}; try again when it ends.")


class BrokerUnavailable(RunRefused):
    """The task could not be sent: the broker is down. The run is recorded as failed, nothing stays queued."""


def broker_errors() -> tuple[type[BaseException], ...]:
    from kombu.exceptions import OperationalError as KombuOperationalError

    return (KombuOperationalError, ConnectionError, TimeoutError)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def durably(fn: Callable[[], T], what: str, *, tries: int = 4) -> T:
    """Run ``fn`` (a write to Django's database), reconnecting when the connection is lost.

    Recording a failure must not depend on the thing that failed: after the database
    terminated our connection (restart, failover, ``pg_terminate_backend``), Django keeps
    the dead connection until it is closed. Closed here, the next try opens a fresh one.
    """
    for i in range(tries):
        try:
            return fn()
        except (DatabaseError, InterfaceError) as exc:
            if i == tries - 1 or connection.in_atomic_block:
                raise
            logger.warning("Could not record %s (%s); reconnecting, try %d of %d.", what, _one_line(exc), i + 2, tries)
            connection.close()
            time.sleep(min(0.25 * 2**i, 2.0))
    raise AssertionError("unreachable")


# --- planning -------------------------------------------------------------------
def plan_steps(
    pipeline: Pipeline, steps: list[Step] | None = None, *, check_reads: dict[int, set[int]] | None = None
) -> list[Step]:
    """The pipeline's steps in the order their data requires; refuses a broken definition.

    A step also runs after the producers of what its checks read (the ``step_reads``
    extension); ``check_reads``: more of those, by output dataset id (a check being saved).
    """
    # (by position within the pipeline: its Meta ordering would join the pipeline to order by its name)
    steps = list(pipeline.steps.select_related("output", "source").order_by("position", "id")) if steps is None else steps
    if not steps:
        raise PipelineDefinitionError(f"Pipeline {pipeline.name!r} has no steps.")
    known = known_tables([s.sql for s in steps if s.kind != Step.Kind.INGEST])
    specs, by_key = [], {}
    for step in steps:
        inputs: list[Dataset] = []
        if step.kind != Step.Kind.INGEST:
            try:
                inputs = step_inputs(step, known)
            except SQLValidationError as exc:
                raise PipelineDefinitionError(f"Step {step.name!r}: {exc}") from exc
        after = _step_reads(step) | (check_reads or {}).get(step.output_id, set())
        spec = StepSpec(
            key=id(step), name=step.name, output=step.output_id, inputs=frozenset(d.pk for d in inputs),
            after=frozenset(after),
        )
        specs.append(spec)
        by_key[spec.key] = step
    # Of what the steps read and none of them writes: what steps of other pipelines produce (not every output there is).
    outside = {ds for spec in specs for ds in spec.inputs} - {spec.output for spec in specs}
    others = Step.objects.exclude(pipeline=pipeline) if pipeline.pk else Step.objects.all()
    elsewhere = others.filter(output_id__in=outside).order_by().values_list("output_id", flat=True) if outside else ()
    names = {d.pk: d.qualified_table for d in known.values()}  # and the outputs', for the messages:
    names |= {s.output_id: s.output.qualified_table for s in steps if s.output_id and Step.output.is_cached(s)}
    if missing := {s.output_id for s in steps if s.output_id} - names.keys():
        names |= {d.pk: d.qualified_table for d in Dataset.objects.filter(pk__in=missing)}
    return [by_key[s.key] for s in plan(specs, produced_elsewhere=elsewhere, names=names)]


def _step_reads(step: Step) -> set[int]:
    """What the step's checks read (the ``step_reads`` extension), once per :func:`pipelines.memo.scope`."""
    return set(memo.remembered(("step_reads", step.pk, step.output_id), lambda: extensions.step_reads(step)))


def save_step_inputs(pipeline: Pipeline) -> None:
    """Store each step's inputs (derived from its SQL) for the admin and lineage to read."""
    known = known_tables()
    for step in pipeline.steps.all():
        step.inputs.set(step_inputs(step, known) if step.kind != Step.Kind.INGEST else [])


# --- triggering -----------------------------------------------------------------
def start_run(
    pipeline: Pipeline,
    *,
    actor=None,
    trigger: str = Trigger.MANUAL,
    dispatch: bool = True,
    only_steps: list[int] | None = None,
    rerun_of: PipelineRun | None = None,
    interval: Interval | None = None,
    logical_date=None,
    backfill=None,
    full_refresh: bool = False,
    force: bool = False,
) -> PipelineRun:
    """Queue a run of ``pipeline``; refused while another is queued or running.

    The database's partial unique index is the lock: two triggers at the same
    instant, from any number of processes, create one run. When the broker cannot
    be reached the run is recorded as failed and :class:`BrokerUnavailable` raised.
    ``only_steps``: the ids of the steps to run (default: all); ``rerun_of``: the run it re-runs.
    ``interval`` and ``logical_date``: the data the run is about (default: ``intervals.default_interval``).
    ``full_refresh``: load files again that were loaded already, rebuild appended and merged tables
    (``StepContext.write_mode``), as ``dbt build --full-refresh`` does. ``force``: run every step,
    even one up to date (``pipelines.freshness``); a full refresh is forced too.
    """
    if not pipeline.enabled:
        raise RunRefused(f"Pipeline {pipeline.name!r} is disabled; enable it to run it.")
    if interval is None:
        logical_date, interval = default_interval(pipeline.schedule, trigger, timezone.now())
    try:
        with transaction.atomic():
            run = PipelineRun.objects.create(
                pipeline=pipeline,
                trigger=trigger,
                triggered_by=actor if getattr(actor, "is_authenticated", False) else None,
                only_steps=only_steps,
                full_refresh=full_refresh,
                force=force or full_refresh,
                rerun_of=rerun_of,
                logical_date=logical_date or interval.start,
                data_interval_start=interval.start,
                data_interval_end=interval.end,
                backfill=backfill,
            )
            audit.record("pipeline.run", actor=actor, target=pipeline, run_id=run.pk, trigger=trigger,
                         **({"full_refresh": True} if full_refresh else {}), **({"force": True} if force else {}))
    except IntegrityError:
        raise RunAlreadyActive(pipeline, pipeline.runs.active().first()) from None
    if dispatch:
        transaction.on_commit(lambda: _dispatch_new(run))
    return run


def start_runs(pipeline_ids: list[int], *, trigger: str = Trigger.SCHEDULE) -> tuple[list[PipelineRun], list[str]]:
    """Queue a run of each pipeline in one transaction, then send their tasks: beat's batch of due pipelines.

    One commit for the lot instead of two per run. Each pipeline is refused on its own (a
    run still active, disabled, deleted): the others start. Returns the runs started and,
    one line each, why the others were refused. A broker that cannot be reached fails the
    runs not yet sent, each with the one-line reason, as a single trigger would.
    """
    pipelines = {p.pk: p for p in Pipeline.objects.filter(pk__in=pipeline_ids)}
    started, refused = [], []
    with transaction.atomic():
        for pk in dict.fromkeys(pipeline_ids):
            pipeline = pipelines.get(pk)
            if pipeline is None:
                refused.append(f"Scheduled pipeline {pk} no longer exists.")
                continue
            try:
                started.append(start_run(pipeline, trigger=trigger, dispatch=False))  # a savepoint each
            except RunRefused as exc:
                refused.append(str(exc))
    _dispatch_batch(started)
    return started, refused


def _dispatch_batch(runs: list[PipelineRun]) -> None:
    """Send the runs' tasks; their dispatch recorded in one transaction. Embedded, run them as one trigger would."""
    from .tasks import execute_run_task

    if settings.CELERY_TASK_ALWAYS_EAGER:
        for run in runs:
            dispatch_run(run.pk)
        return
    sent: list[tuple[PipelineRun, str]] = []
    for i, run in enumerate(runs):
        try:
            sent.append((run, execute_run_task.delay(run.pk).id))
        except broker_errors() as exc:
            logger.warning("Runs %s: their tasks could not be sent: %s", [r.pk for r in runs[i:]], _one_line(exc))
            error = (f"The task queue (broker) cannot be reached, so the run was not started ({_one_line(exc)})."
                     " Check that the broker (CELERY_BROKER_URL) is up, then trigger the run again.")
            for unsent in runs[i:]:
                _finish(unsent, RunStatus.FAILED, error=error, only_if=(RunStatus.QUEUED,))
            break
    now = timezone.now()
    with transaction.atomic():
        for run, task_id in sent:
            PipelineRun.objects.filter(pk=run.pk).update(celery_task_id=task_id, dispatched_at=now,
                                                         dispatches=F("dispatches") + 1)


def _dispatch_new(run: PipelineRun) -> None:
    try:
        dispatch_run(run.pk)
    except BrokerUnavailable as exc:
        _finish(run, RunStatus.FAILED, error=str(exc), only_if=(RunStatus.QUEUED,))
        run.refresh_from_db()
        raise


def dispatch_run(run_id: int) -> None:
    """Hand the run to a worker; embedded, run it in this process.

    Raises :class:`BrokerUnavailable` (one line, for the operator) when the task cannot be sent.
    """
    from .tasks import execute_run_task

    if not settings.CELERY_TASK_ALWAYS_EAGER:
        try:
            result = execute_run_task.delay(run_id)
        except broker_errors() as exc:
            logger.warning("Run %s: the task could not be sent: %s", run_id, _one_line(exc))
            raise BrokerUnavailable(
                f"The task queue (broker) cannot be reached, so the run was not started ({_one_line(exc)})."
                " Check that the broker (CELERY_BROKER_URL) is up, then trigger the run again."
            ) from exc
        PipelineRun.objects.filter(pk=run_id).update(
            celery_task_id=result.id, dispatched_at=timezone.now(), dispatches=F("dispatches") + 1
        )
    elif settings.ATLAS_EAGER_MODE == "thread":
        threading.Thread(target=_execute_in_thread, args=(run_id,), name=f"atlas-run-{run_id}", daemon=True).start()
    else:
        execute_run(run_id)


def _execute_in_thread(run_id: int) -> None:
    try:
        execute_run(run_id)
    finally:
        connections.close_all()


def cancel_run(run: PipelineRun, *, actor=None) -> str | None:
    """Cancel a queued run at once; ask a running one to stop after its current file or step.

    Returns ``"cancelled"``, ``"stopping"`` or None when the run had already ended.
    """
    with transaction.atomic():
        if PipelineRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now(), error="Cancelled before it started."
        ):
            outcome = "cancelled"
        elif PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(cancel_requested=True):
            outcome = "stopping"
        else:
            return None
        audit.record("pipeline.cancel", actor=actor, target=run.pipeline, run_id=run.pk, outcome=outcome)
    return outcome


def reap_stale_runs() -> int:
    """Recover runs whose worker is gone, and queued runs no worker took; the number acted on.

    Beat calls it every heartbeat interval. A running run without a heartbeat for
    ``ATLAS_RUN_LOST_SECONDS`` is queued again as its next attempt and sent to a worker
    (it resumes at the first step that did not finish), or failed with the reason when it
    cannot be resumed (attempt limit, a run doing other work than its steps'). A queued
    run whose task was never sent (the broker was down) is sent; one sent but not taken
    for ``ATLAS_RUN_REDISPATCH_SECONDS`` is sent again, at doubling intervals, and failed
    with the reason once it was sent ``ATLAS_RUN_MAX_DISPATCHES`` times (no worker consumes its queue).
    """
    count = 0
    for run in PipelineRun.objects.stale(settings.ATLAS_RUN_LOST_SECONDS).select_related("pipeline"):
        count += _recover_lost(run)
    count += _redispatch_queued()
    return count


def _recover_lost(run: PipelineRun) -> int:
    now = timezone.now()
    silent = (now - run.heartbeat_at).total_seconds() if run.heartbeat_at else settings.ATLAS_RUN_LOST_SECONDS
    reason = (
        f"The worker stopped reporting (no heartbeat for {silent:.0f} s, attempt {run.attempt}); it was probably"
        " killed or cut off. Published tables are as they were before or after each step, never half."
    )
    cutoff = now - timedelta(seconds=settings.ATLAS_RUN_LOST_SECONDS)
    lost = PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempt=run.attempt, heartbeat_at__lt=cutoff)
    if run.resumable and run.attempt < settings.ATLAS_RUN_MAX_ATTEMPTS and not run.cancel_requested:
        with transaction.atomic():
            if not lost.update(status=RunStatus.QUEUED, current_step="", celery_task_id="", dispatched_at=None):
                return 0
            _end_attempt(run.pk, run.attempt, RunAttempt.Outcome.LOST, reason)
        logger.warning("Run %s: %s Resuming as attempt %s.", run.pk, reason, run.attempt + 1)
        with contextlib.suppress(BrokerUnavailable):  # stays queued, never sent: the next pass sends it
            dispatch_run(run.pk)
        return 1
    why = (
        "it was cancelled" if run.cancel_requested
        else "its work cannot be resumed by a worker" if not run.resumable
        else f"it had {run.attempt} attempts (ATLAS_RUN_MAX_ATTEMPTS={settings.ATLAS_RUN_MAX_ATTEMPTS})"
    )
    status = RunStatus.CANCELLED if run.cancel_requested else RunStatus.FAILED
    with transaction.atomic():
        _end_attempt(run.pk, run.attempt, RunAttempt.Outcome.LOST, reason)
        if not _finish(run, status, error=f"{reason} Not resumed: {why}.", only_if=(RunStatus.RUNNING,), qs=lost):
            transaction.set_rollback(True)
            return 0
    StepRun.objects.filter(run=run, status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, finished_at=timezone.now(), error=reason
    )
    StepRun.objects.filter(run=run, status=RunStatus.QUEUED).update(status=RunStatus.CANCELLED)
    return 1


def _redispatch_queued() -> int:
    now = timezone.now()
    count = 0
    grace = now - timedelta(seconds=min(5.0, settings.ATLAS_RUN_REDISPATCH_SECONDS))
    for run in PipelineRun.objects.filter(status=RunStatus.QUEUED, resumable=True):
        if run.dispatched_at is None:  # never sent (the broker was down), or its sender died before sending
            due = run.created_at < grace
        else:
            wait = settings.ATLAS_RUN_REDISPATCH_SECONDS * 2 ** max(0, min(run.dispatches - 1, 6))
            due = (now - run.dispatched_at).total_seconds() >= wait
        if not due:
            continue
        if run.dispatched_at is not None and run.dispatches >= settings.ATLAS_RUN_MAX_DISPATCHES:
            count += _fail_untaken(run)
            continue
        logger.warning("Run %s is queued and no worker took it; sending it again.", run.pk)
        try:
            dispatch_run(run.pk)
        except BrokerUnavailable:
            continue
        count += 1
    return count


def _fail_untaken(run: PipelineRun) -> int:
    """A queued run sent ``ATLAS_RUN_MAX_DISPATCHES`` times that no worker ever took: failed, saying where to look."""
    queue = settings.ATLAS_PIPELINE_QUEUE
    error = (
        f"No worker took this run: it was sent {run.dispatches} times and stayed queued. Is a Celery worker"
        f" running and consuming the queue {queue!r} (ATLAS_PIPELINE_QUEUE)? Trigger the pipeline again once it is."
    )
    with transaction.atomic():
        if not _finish(run, RunStatus.FAILED, error=error, only_if=(RunStatus.QUEUED,)):
            return 0
        StepRun.objects.filter(run=run, status=RunStatus.QUEUED).update(status=RunStatus.CANCELLED)
    logger.warning("Run %s: %s", run.pk, error)
    return 1


def awaiting_takeover(run_id: int, task_id: str) -> bool:
    """Whether ``task_id`` is the task that started the run's current attempt, still marked running.

    Then the message was delivered again because its worker died (``acks_late``,
    ``reject_on_worker_lost``): it should wait for the heartbeat to go silent and resume the run.
    """
    return PipelineRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, celery_task_id=task_id).exists()


# --- executing ------------------------------------------------------------------
class AttemptSuperseded(Exception):
    """This attempt was declared lost and another took the run over: stop without recording anything."""


# The process's heartbeat thread marks every run it executes alive (pipelines.heartbeat).
_Heartbeat = RunHeartbeat


def _finish(
    run: PipelineRun,
    status: str,
    *,
    error: str = "",
    tb: str = "",
    only_if_running: bool = False,
    only_if: tuple[str, ...] | None = None,
    qs=None,
    step_runs: list[StepRun] | None = None,
) -> int:
    """Store the run's end (``run_finished`` hooks in the same transaction), reconnecting if need be.

    ``step_runs``: every step record of the run, as the caller holds them (else they are read).
    """

    error, tb = scrub(error), scrub_traceback(tb)

    def store() -> int:
        totals = run_totals(run.step_runs.all() if step_runs is None else step_runs)  # rows in: read by its ingest steps (pipelines.run_totals)
        which = qs if qs is not None else PipelineRun.objects.filter(pk=run.pk)
        if only_if_running:
            which = which.filter(status=RunStatus.RUNNING)
        if only_if is not None:
            which = which.filter(status__in=only_if)
        with transaction.atomic():
            updated = which.update(
                status=status, finished_at=timezone.now(), error=error, traceback=tb, current_step="", **totals
            )
            # What was just stored (and what another process changed: a cancel); the pipeline stays loaded.
            run.refresh_from_db(fields=_RUN_STATE_FIELDS)
            if updated:
                _end_attempt(run.pk, run.attempt, RunAttempt.Outcome.ENDED, "")
                hooks.call("run_finished", RunContext(run=run, status=status))
                transaction.on_commit(lambda: run_ended(run.pk))  # a backfill starts its next interval
        return updated

    return durably(store, f"the end of run {run.pk}")


_RUN_STATE_FIELDS = [f.attname for f in PipelineRun._meta.concrete_fields if not f.is_relation and not f.primary_key]


def run_ended(run_id: int) -> None:
    """After a run's end is stored: the pipeline's backfill, if any, moves on (never raises)."""
    from .backfills import after_run

    try:
        after_run(run_id)
    except Exception:  # beat's sweep (advance_backfills) catches up; the run's end stands
        logger.exception("Run %s ended, but its pipeline's backfill could not move on.", run_id)


def _end_attempt(run_id: int, number: int, outcome: str, reason: str) -> None:
    RunAttempt.objects.filter(run_id=run_id, number=number, outcome=RunAttempt.Outcome.RUNNING).update(
        outcome=outcome, ended_at=timezone.now(), reason=reason
    )


def worker_name() -> str:
    """Host and process; and the thread, in a worker's pool of threads (several runs share the process)."""
    thread = threading.current_thread()
    where = "" if thread is threading.main_thread() else f"/{thread.name}"
    return f"{socket.gethostname()}:{os.getpid()}{where}"[:255]


def _claim(run_id: int, *, task_id: str | None = None) -> PipelineRun | None:
    """Start the run's next attempt: a queued run, or a running one whose worker is lost. None: nothing to claim.

    Conditional updates: of any number of workers handed the same run, one claims it.
    The ``run_started`` hooks run once, with the first attempt, in the claiming transaction.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.ATLAS_RUN_LOST_SECONDS)
    fields = {"heartbeat_at": now, "attempt": F("attempt") + 1, "current_step": ""}
    if task_id:
        fields["celery_task_id"] = task_id
    mine = PipelineRun.objects.filter(pk=run_id)
    with transaction.atomic():
        claimed = mine.filter(status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=Coalesce(F("started_at"), Value(now)), **fields
        )
        taken_over = not claimed and mine.filter(
            status=RunStatus.RUNNING, heartbeat_at__lt=cutoff, resumable=True, cancel_requested=False
        ).update(**fields)
        if not claimed and not taken_over:
            logger.info("Run %s is not queued, nor lost; nothing to do.", run_id)
            return None
        run = PipelineRun.objects.select_related("pipeline").get(pk=run_id)
        if taken_over:
            _end_attempt(run.pk, run.attempt - 1, RunAttempt.Outcome.LOST,
                         f"No heartbeat for {settings.ATLAS_RUN_LOST_SECONDS:g} s; taken over by attempt {run.attempt}.")
        RunAttempt.objects.create(run=run, number=run.attempt, worker=worker_name(), celery_task_id=task_id or "")
        if run.attempt == 1:
            hooks.call("run_started", RunContext(run=run, status=RunStatus.RUNNING))
    if run.attempt > 1:
        logger.warning("Run %s resumed as attempt %s.", run.pk, run.attempt)
    return run


def execute_run(
    run_id: int,
    *,
    only: set[int] | None = None,
    work: dict[int, StepWork] | None = None,
    origin: str = Origin.RUN,
    task_id: str | None = None,
) -> PipelineRun | None:
    """Run a queued run (or resume a lost one) to its end. Returns None when there was nothing to claim.

    ``only``: the ids of the steps to run (the others are left out, the order is the
    pipeline's; default: the run's ``only_steps``); ``work``: by step id, the work to do
    instead of the step's own (see :func:`run_step`); ``origin``: why the steps run, for the
    hooks (:class:`Origin`); ``task_id``: the Celery task executing it.
    """
    run = _claim(run_id, task_id=task_id)
    if run is None:
        return None
    setattr(run, hooks.EXECUTED_HERE, True)
    try:
        return _execute(run, only=only, work=work, origin=origin)
    except AttemptSuperseded:
        logger.warning("Run %s attempt %s was taken over by another attempt; this one stops.", run.pk, run.attempt)
        return run
    except Exception as exc:
        # Recording the run's progress failed even after reconnecting (the database is gone, the
        # disk is full): try once more to record the failure; if that fails too, the heartbeat
        # has stopped with this frame, and the reaper resumes or fails the run within seconds.
        logger.exception("Run %s attempt %s could not record its progress.", run.pk, run.attempt)
        try:
            _finish(run, RunStatus.FAILED, error=f"Atlas could not record the run's progress: {_one_line(exc)}",
                    tb=traceback.format_exc(), only_if_running=True)
        except Exception:
            logger.exception("Run %s: the failure could not be recorded either; the reaper will.", run.pk)
            raise
        return run


def _execute(run: PipelineRun, *, only: set[int] | None, work: dict[int, StepWork] | None, origin: str) -> PipelineRun:
    with memo.scope() as planning:  # the catalogue and the steps' SQL read once to plan (pipelines.memo)
        try:
            steps = plan_steps(run.pipeline)
        except PipelineDefinitionError as exc:
            _finish(run, RunStatus.FAILED, error=str(exc))
            return run
        # What planning read of the catalogue (a memo hit: plan_steps read it for these texts)
        catalogue = known_tables([s.sql for s in steps if s.kind != Step.Kind.INGEST])
        steps, upstream = _planned(run, steps, only=only, work=work)
        planned = (dict(planning), catalogue)
    # The first try of a first attempt creates its step records without asking for earlier ones:
    # none can exist (only a claim makes an attempt; this one made none yet). A retry asks.
    first_try = iter([run.attempt == 1])
    step_runs = durably(lambda: _step_runs(run, steps, fresh=next(first_try, False)), f"the steps of run {run.pk}")
    executed = False  # a step of this attempt executed: the steps after it read afresh what planning read
    by_step = {step.pk: sr for step, sr in zip(steps, step_runs, strict=True)}
    with _Heartbeat(run.pk, run.attempt) as beat:
        for step, step_run in zip(steps, step_runs, strict=True):
            if beat.superseded:
                raise AttemptSuperseded()
            if step_run.status != RunStatus.QUEUED:  # finished in an earlier attempt: not redone
                if step_run.after_publish == "pending":
                    _after_publish(run, step, step_run, origin=origin)
                    executed = True  # its hooks ran now (a PII scan may change what later steps read)
                continue
            broken = [by_step[u] for u in upstream.get(step.pk, ()) if _blocks_downstream(by_step[u])]
            if broken:
                cancelled = _cancel_requested(run)
            else:  # the step is the current one, unless a cancel was asked for: one statement for both
                cancelled = not durably(lambda step=step: PipelineRun.objects.filter(pk=run.pk, cancel_requested=False)
                                        .update(current_step=step.name, heartbeat_at=timezone.now()), "the current step")
            if cancelled:
                _cancel_rest(step_runs)
                _finish(run, RunStatus.CANCELLED, error=f"Cancelled by request before step {step.name!r}.")
                return run
            if broken:
                _skip_downstream(step_run, broken)
                continue
            with _step_scope(step, None if executed else planned):  # what it reads: once for its versions, hooks, work
                # Issue 20: a step whose inputs and definition are unchanged is up to date (pipelines.freshness)
                decision = None if work or origin != Origin.RUN or not settings.ATLAS_SKIP_UP_TO_DATE else durably(
                    lambda step=step: freshness.decide(run, step), "a step's versions")
                if decision is not None and decision.up_to_date:
                    durably(lambda d=decision, sr=step_run: freshness.mark_up_to_date(sr, d), "an up-to-date step")
                    live.emit(live.ENDED, step_run)
                    continue
                executed = True
                run_step(run, step, step_run, work=(work or {}).get(step.pk), origin=origin,
                         versions=decision.versions if decision is not None else None)
            if decision is not None and freshness.VERSIONS not in (step_run.details or {}):  # not stored with its end
                durably(lambda d=decision, sr=step_run, step=step: freshness.record_execution(sr, step, d.versions),
                        "a step's versions")
            if step_run.status == RunStatus.CANCELLED:  # stopped by a cancel (pipelines.watchdog): no more steps
                _cancel_rest(step_runs)
                _finish(run, RunStatus.CANCELLED, error=step_run.error)
                return run
        hooks.call("run_ending", RunContext(run=run, status=RunStatus.RUNNING))  # e.g. the PII scans left
        incremental.drop_changes(step_runs)  # the rows merges kept for the steps after them: the run is over
    status, error = run_outcome(step_runs, upstream)
    _finish(run, status, error=error, step_runs=step_runs)
    return run


@contextlib.contextmanager
def _step_scope(step: Step, planned: tuple[dict, dict] | None):
    """A step's :func:`pipelines.memo.scope`; ``planned``: what planning's scope read, and its catalogue.

    Given to the steps the runner comes to before any step of the attempt executed (issue 14: a
    run's fixed cost): nothing of the run changed the catalogue, the checks or the warehouse since
    planning read them, so reading them again would find the same (an up-to-date step writes only
    its step record). Once a step executed, each step after it reads them afresh, as it starts.
    """
    with memo.scope(seed=planned[0] if planned else None) as scope:
        if planned is not None and step.kind != Step.Kind.INGEST:
            share_catalogue(planned[1], [step.sql])  # planning's, read for every step's SQL
        yield scope


def _planned(
    run: PipelineRun, steps: list[Step], *, only: set[int] | None, work: dict[int, StepWork] | None
) -> tuple[list[Step], dict[int, set[int]]]:
    """The steps this attempt runs (the run's ``only_steps``), recorded with their versions; and their upstream steps."""
    if only is None and run.only_steps is not None:
        only = set(run.only_steps)
    elif only is not None and run.attempt == 1:
        # Recorded with the run: a resumed attempt runs the same steps. Work brought by the
        # caller (re-processing) lives in its process only: such a run is failed, not resumed.
        run.only_steps, run.resumable = sorted(only), run.resumable and not work
        durably(lambda: PipelineRun.objects.filter(pk=run.pk).update(only_steps=run.only_steps,
                                                                      resumable=run.resumable), "the run's steps")
    if only is not None:
        steps = [s for s in steps if s.pk in only]
    if run.attempt == 1 and not run.definitions:  # the versions it executes (a resumed attempt runs the same)
        run.definitions = as_code.run_versions(run.pipeline, steps)
        durably(lambda: PipelineRun.objects.filter(pk=run.pk).update(definitions=run.definitions), "the run's definitions")
    return steps, upstream_steps(steps)


def upstream_steps(steps: list[Step]) -> dict[int, set[int]]:
    """By step id, the ids of the steps (among ``steps``) that produce what it reads — its SQL, and its checks.

    What a step's checks read (``step_reads``: a referential check's other dataset) is an
    edge like its SQL's: a failed producer of it skips the step, as it orders the step.
    """
    producer = {s.output_id: s.pk for s in steps}
    known = known_tables([s.sql for s in steps if s.kind != Step.Kind.INGEST])
    out: dict[int, set[int]] = {}
    for step in steps:
        reads = set(_step_reads(step))
        if step.kind != Step.Kind.INGEST:
            with contextlib.suppress(SQLValidationError):  # refused when the step runs, with the reason
                reads |= {d.pk for d in step_inputs(step, known)}
        found = {producer[ds] for ds in reads if ds in producer and producer[ds] != step.pk}
        if found:
            out[step.pk] = found
    return out


def _ancestors(step_id: int, upstream: dict[int, set[int]]) -> set[int]:
    seen: set[int] = set()
    todo = list(upstream.get(step_id, ()))
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo.extend(upstream.get(s, ()))
    return seen


def _blocks_downstream(sr: StepRun) -> bool:
    """A failed step, or one skipped because its own upstream failed (a skip for nothing new has no error)."""
    return sr.status == RunStatus.FAILED or (sr.status == RunStatus.SKIPPED and bool(sr.error))


def _skip_downstream(step_run: StepRun, broken: list[StepRun]) -> None:
    names = ", ".join(repr(b.step_name) for b in broken)
    step_run.status, step_run.finished_at = RunStatus.SKIPPED, timezone.now()
    step_run.error = f"Skipped: upstream {names} failed." if len(broken) == 1 else f"Skipped: upstream {names} failed."
    durably(lambda: step_run.save(update_fields=["status", "finished_at", "error"]), "a skipped step")


def run_outcome(step_runs: list[StepRun], upstream: dict[int, set[int]]) -> tuple[str, str]:
    """The run's status and summary from its steps' (``dbt build``: a failure skips only its downstream).

    Failed when a step failed and nothing independent of the failures succeeded;
    partially failed when independent steps went on and succeeded.
    """
    failed = [sr for sr in step_runs if sr.status == RunStatus.FAILED]
    if not failed:
        return RunStatus.SUCCEEDED, ""
    feeding = set().union(*(_ancestors(sr.step_id, upstream) for sr in failed))
    done = [sr for sr in step_runs if sr.status in (RunStatus.SUCCEEDED, RunStatus.SKIPPED) and not sr.error]
    independent = [sr for sr in done if sr.step_id not in feeding]
    skipped = [sr for sr in step_runs if sr.status == RunStatus.SKIPPED and sr.error]
    first = failed[0]
    error = f"Step {first.step_name!r} failed: {first.error}"
    if len(failed) > 1 or skipped or independent:
        parts = [f"{len(failed)} failed ({', '.join(sr.step_name for sr in failed)})"]
        if skipped:
            parts.append(f"{len(skipped)} skipped as their upstream failed ({', '.join(sr.step_name for sr in skipped)})")
        parts.append(f"{len(done)} succeeded")
        error += " Steps: " + "; ".join(parts) + "."
    return (PARTIALLY_FAILED if independent else RunStatus.FAILED), error


def _step_runs(run: PipelineRun, steps: list[Step], *, fresh: bool = False) -> list[StepRun]:
    """The run's step records: created on its first attempt; on a resume, the earlier ones.

    A step interrupted by the lost attempt (still ``running``) is queued again, its
    interrupted try kept in ``tries``; finished steps are kept as they are. The missing
    records are created in one statement. ``fresh``: the run has none yet (not read).
    """
    existing = {} if fresh else {sr.step_id: sr for sr in run.step_runs.all()}
    out: list[StepRun] = []
    new: list[StepRun] = []
    for i, s in enumerate(steps):
        sr = existing.get(s.pk)
        if sr is None:
            sr = StepRun(run=run, step=s, step_name=s.name, kind=s.kind, output=s.output, position=i)
            new.append(sr)
        elif sr.status == RunStatus.RUNNING:
            sr.tries = [*sr.tries, _try_record(sr, error="Interrupted: the worker executing it was lost.",
                                               attempt=run.attempt - 1, started=sr.started_at)]
            sr.status = RunStatus.QUEUED
            sr.save(update_fields=["tries", "status"])
        out.append(sr)
    if len(new) == 1:
        new[0].save(force_insert=True)  # one INSERT (bulk_create would wrap it in a transaction)
    elif new:
        StepRun.objects.bulk_create(new)  # their ids with them (RETURNING, on every engine Atlas runs on)
        if any(sr.pk is None for sr in new):  # a database that returns none: read them
            ids = {sr.step_id: sr.pk for sr in run.step_runs.filter(step_id__in=[sr.step_id for sr in new])}
            for sr in new:
                sr.pk = ids[sr.step_id]
    return out


def _try_record(step_run: StepRun, *, error: str = "", attempt: int, started=None, transient: bool = False,
                retry_in: float | None = None) -> dict:
    entry = {
        "try": len(step_run.tries) + 1,
        "run_attempt": attempt,
        "started_at": (started or timezone.now()).isoformat(),
        "ended_at": timezone.now().isoformat(),
        "error": scrub(error),
    }
    if transient:
        entry["transient"] = True
    if retry_in is not None:
        entry["retry_in"] = round(retry_in, 2)
    return entry


def run_work(
    step: Step, work: StepWork, *, origin: str, actor=None, trigger: str = Trigger.MANUAL
) -> tuple[PipelineRun, StepRun | None]:
    """Run ``work`` as ``step`` of its pipeline, now, in a run of its own: the same lifecycle, hooks and lock.

    For doors that write to a step's published table with other work than the
    step's own (re-processing quarantined rows). Raises :class:`RunRefused`
    when the pipeline is disabled or already running.
    """
    run = start_run(step.pipeline, actor=actor, trigger=trigger, dispatch=False, only_steps=[step.pk])
    execute_run(run.pk, only={step.pk}, work={step.pk: work}, origin=origin)
    run.refresh_from_db()
    return run, run.step_runs.filter(step=step).first()  # None: the pipeline's definition is broken


def rerun_failed(run: PipelineRun, *, actor=None, trigger: str = Trigger.MANUAL, dispatch: bool = True) -> PipelineRun:
    """A new run of the steps that failed or were skipped for a failure in ``run`` (like ``dbt retry``); a full refresh's too.

    Refused (:class:`RunRefused`) when the run did not fail, or a run is active.
    """
    if run.status not in (RunStatus.FAILED, PARTIALLY_FAILED):
        raise RunRefused(f"Run #{run.pk} {run.get_status_display().lower()}; only a failed or partially failed run"
                         " has failed and skipped steps to re-run.")
    ids = [sr.step_id for sr in run.step_runs.all() if sr.step_id and _blocks_downstream(sr)]
    ids += [sr.step_id for sr in run.step_runs.filter(status=RunStatus.CANCELLED) if sr.step_id]
    if not ids:
        raise RunRefused(f"Run #{run.pk} has no failed or skipped step left to re-run (deleted since?).")
    return start_run(
        run.pipeline, actor=actor, trigger=trigger, only_steps=sorted(set(ids)), rerun_of=run, dispatch=dispatch,
        full_refresh=run.full_refresh,  # what a full refresh left undone is still to be rebuilt, not appended
    )


def _cancel_rest(step_runs: list[StepRun]) -> None:
    StepRun.objects.filter(pk__in=[s.pk for s in step_runs], status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED
    )


def _progress(step_run: StepRun) -> Callable[[StepOutcome], None]:
    def report(outcome: StepOutcome) -> None:
        step_run.rows_in, step_run.rows_out, step_run.rows_rejected = (
            outcome.rows_in, outcome.rows_out, outcome.rows_rejected)
        fields = {"rows_in": outcome.rows_in, "rows_out": outcome.rows_out, "rows_rejected": outcome.rows_rejected}
        if outcome.files_done or outcome.files_total is not None:  # an ingest: its files so far (pipelines.live)
            step_run.details = {**(step_run.details or {}), "files": {
                "done": outcome.files_done, "total": outcome.files_total,
                "bytes_done": outcome.bytes_done, "bytes_total": outcome.bytes_total}}
            fields["details"] = step_run.details
        StepRun.objects.filter(pk=step_run.pk).update(**fields)
        PipelineRun.objects.filter(pk=step_run.run_id).update(heartbeat_at=timezone.now())
        live.emit(live.PROGRESS, step_run)

    return report


def step_work(step: Step) -> StepWork:
    """The work of a step of this kind: stage what it produces, call the ``staged`` hooks, publish."""
    return IngestWork() if step.kind == Step.Kind.INGEST else TransformWork()


def run_step(
    run: PipelineRun, step: Step, step_run: StepRun, *, work: StepWork | None = None, origin: str = Origin.RUN,
    versions: freshness.Versions | None = None,
) -> bool:
    """Execute one step; True when it succeeded (or had nothing new to do).

    The lifecycle, the same for every kind of step and every door: ``started`` (with the
    running status), the work's ``begin``, ``prepare``, the work's ``run`` (which stages,
    calls ``staged`` and publishes), then ``published`` or ``skipped`` after the status
    is stored — or ``failed``, with the staging tables dropped. A transient error
    (:func:`pipelines.retries.is_transient`) is retried up to ``ATLAS_STEP_RETRIES``
    times with backoff; every try is kept in ``step_run.tries``. ``versions``: what the step
    executes with (:func:`pipelines.freshness.decide`), stored with its published hooks' end.
    """
    wh = get_warehouse()
    retries = 0
    step_run.started_at = timezone.now()
    while True:
        if retries:
            memo.clear()  # each try reads afresh (the first reuses what the freshness decision just read)
        step_work_now = work or step_work(step)  # fresh per try: a transform's work keeps state
        ctx = StepContext(
            run=run, step=step, step_run=step_run, warehouse=wh, schema=step.output.layer, target=step.output.table,
            origin=origin,
        )
        try_started = timezone.now()
        step_run.status = RunStatus.RUNNING
        stage = None if retries else "started"
        durably(lambda ctx=ctx, stage=stage: save_step_state(ctx, ["status", "started_at"], stage=stage),
                "a step's start")
        if not retries:
            live.emit(live.STARTED, step_run)
        try:
            if _published_by_lost_attempt(ctx):
                outcome = StepOutcome(status=RunStatus.SUCCEEDED, rows_in=step_run.rows_in,
                                      rows_out=step_run.rows_out, rows_rejected=step_run.rows_rejected)
            else:
                wh.ensure_schemas()
                with watchdog(ctx):  # cancel and time limits interrupt the warehouse (pipelines.watchdog)
                    step_work_now.begin(ctx)
                    hooks.call("prepare", ctx)
                    outcome = step_work_now.run(ctx, progress=_progress(step_run))
                if outcome.status == RunStatus.SKIPPED and _published_by_earlier_try(step_run):
                    outcome.status = RunStatus.SUCCEEDED  # the lost attempt published it; its hooks are owed
            memo.forget_table(step.output.layer, step.output.table)
            if outcome.status != RunStatus.SKIPPED:
                refresh_dataset(step.output, row_count=outcome.table_rows)
            step_run.status = outcome.status
            step_run.rows_in, step_run.rows_out, step_run.rows_rejected = (
                outcome.rows_in,
                outcome.rows_out,
                outcome.rows_rejected,
            )
            step_run.finished_at = timezone.now()
            step_run.error = ""
            step_run.after_publish = "pending" if outcome.status != RunStatus.SKIPPED else ""
            if retries:
                step_run.tries = [*step_run.tries, _try_record(step_run, attempt=run.attempt, started=try_started)]
            durably(lambda ctx=ctx: save_step_state(ctx), "a step's end")
            if outcome.status != RunStatus.SKIPPED:
                _after_publish(run, step, step_run, origin=origin, ctx=ctx, versions=versions)
            else:
                hooks.call("skipped", ctx)
                _settle_owed(run, step, ctx)
            live.emit(live.ENDED, step_run)
            return True
        except Exception as exc:
            ctx.error = exc
            _drop_staging(ctx)
            # No row value in what is stored and sent (a database error quotes the value): atlas.scrub
            message = scrub(str(exc) if isinstance(exc, EXPECTED_ERRORS) else f"{type(exc).__name__}: {exc}")
            stopped = isinstance(exc, StepStopped)  # a cancel or a time limit: never retried
            if not stopped and is_transient(exc) and retries < settings.ATLAS_STEP_RETRIES and not _cancel_requested(run):
                retries += 1
                delay = backoff_seconds(retries)
                step_run.tries = [*step_run.tries, _try_record(step_run, error=message, attempt=run.attempt,
                                                               started=try_started, transient=True, retry_in=delay)]
                durably(lambda: step_run.save(update_fields=["tries"]), "a step's try")
                logger.warning("Run %s step %r: transient error (%s); try %d in %.1f s.", run.pk, step.name,
                               message, retries + 1, delay)
                _wait(delay, run)
                continue
            durably(lambda: step_run.refresh_from_db(fields=["rows_in", "rows_out", "rows_rejected"]), "a step")
            step_run.status = RunStatus.CANCELLED if isinstance(exc, StepCancelled) else RunStatus.FAILED
            step_run.finished_at = timezone.now()
            step_run.after_publish = ""
            step_run.error = message
            step_run.traceback = scrub_traceback(traceback.format_exc())
            step_run.tries = [*step_run.tries, _try_record(step_run, error=message, attempt=run.attempt,
                                                           started=try_started,
                                                           transient=not stopped and is_transient(exc))]
            durably(lambda ctx=ctx: save_step_state(ctx), "a step's failure")
            hooks.call("failed", ctx)
            logger.warning("Run %s step %r failed: %s", run.pk, step.name, step_run.error)
            live.emit(live.ENDED, step_run)
            return False


def _cancel_requested(run: PipelineRun) -> bool:
    return durably(lambda: PipelineRun.objects.filter(pk=run.pk, cancel_requested=True).exists(), "a cancel check")


def _wait(seconds: float, run: PipelineRun) -> None:
    """Sleep before a retry (the heartbeat goes on); wake early when the run is asked to cancel."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))
        if _cancel_requested(run):
            return


def _published_by_lost_attempt(ctx: StepContext) -> bool:
    """A transform of this run whose publish committed though its attempt died before recording it."""
    if ctx.step.kind == Step.Kind.INGEST or not ctx.step_run.tries:
        return False
    ctx.warehouse.ensure_schemas()
    return ctx.warehouse.has_receipt(publish_receipt(ctx))


def _published_by_earlier_try(step_run: StepRun) -> bool:
    """An ingest whose files were all skipped as loaded — by this very step run, in a try that was lost."""
    if step_run.kind != Step.Kind.INGEST or not step_run.tries:
        return False
    loaded = LoadedBatch.objects.filter(step_run=step_run, status=LoadedBatch.Status.LOADED).values("batch_id")
    return LoadedBatch.objects.filter(step_run=step_run, status=LoadedBatch.Status.SKIPPED, batch_id__in=loaded).exists()


def _settle_owed(run: PipelineRun, step: Step, ctx: StepContext) -> None:
    """Published hooks an earlier run owes this step (it published, then failed for good before them).

    Its files are now skipped as loaded; without this their PII scan would never happen.
    """
    owed = StepRun.objects.filter(step=step, after_publish="pending").exclude(run=run).exclude(
        run__status__in=ACTIVE_STATUSES
    )
    ids = list(owed.values_list("pk", flat=True))
    if not ids:
        return
    logger.warning("Run %s step %r: re-doing the published hooks run(s) %s left undone.", run.pk, step.name, ids)
    hooks.call("published", ctx)
    durably(lambda: StepRun.objects.filter(pk__in=ids).update(after_publish="done"), "owed published hooks")


def _after_publish(run: PipelineRun, step: Step, step_run: StepRun, *, origin: str, ctx: StepContext | None = None,
                   versions: freshness.Versions | None = None) -> None:
    """The ``published`` hooks (the PII scan after an ingest), recorded as owed until they are done.

    A resumed run calls them again for a step whose attempt was lost after publishing.
    ``versions``: what the step executed with, stored in the same statement as the hooks' end
    (:func:`pipelines.freshness.record_execution`, read after the hooks where they may have settled it).
    """
    if ctx is None:
        ctx = StepContext(
            run=run, step=step, step_run=step_run, warehouse=get_warehouse(), schema=step.output.layer,
            target=step.output.table, origin=origin,
        )
    hooks.call("published", ctx)
    if versions is not None:  # in the step's scope: what it remembers is what the step ran with (its checks)
        durably(lambda: freshness.executed_versions(step_run, step, versions), "a step's versions")
    step_run.after_publish = "done"
    durably(lambda: StepRun.objects.filter(pk=step_run.pk).update(after_publish="done", details=step_run.details),
            "a step's published hooks")


def _drop_staging(ctx: StepContext) -> None:
    for name in ctx.staged_tables:
        try:
            ctx.warehouse.drop_table(ctx.schema, name)
        except WarehouseError:
            logger.exception("Could not drop staging table %s.%s", ctx.schema, name)


def refresh_dataset(dataset: Dataset, row_count: int | None = None) -> None:
    """Columns, row count and load time of a dataset, as the warehouse now holds it.

    ``row_count``: when the caller knows it exactly (it just replaced the table), no count(*).
    """
    wh = get_warehouse()
    columns = wh.columns(dataset.layer, dataset.table)
    existing = {c.name: c for c in dataset.columns.order_by()}  # (no join: Meta ordering is by dataset)
    new, changed = [], []
    for pos, col in enumerate(columns):  # written only where the warehouse's differ from the catalogue's
        obj = existing.get(col.name)
        if obj is None:
            new.append(DatasetColumn(dataset=dataset, name=col.name, position=pos, data_type=col.type,
                                     nullable=col.nullable))
        elif (obj.position, obj.data_type, obj.nullable) != (pos, col.type, col.nullable):
            obj.position, obj.data_type, obj.nullable = pos, col.type, col.nullable
            changed.append(obj)
    DatasetColumn.objects.bulk_create(new)
    DatasetColumn.objects.bulk_update(changed, ["position", "data_type", "nullable"])
    keep = {col.name for col in columns}
    if gone := [c.pk for name, c in existing.items() if name not in keep]:
        dataset.columns.filter(pk__in=gone).delete()
    dataset.row_count = wh.row_count(dataset.layer, dataset.table) if row_count is None else row_count
    dataset.last_loaded_at = dataset.updated_at = timezone.now()
    # Bookkeeping fields only (no version, nothing audited: atlas.history, atlas.audit_tracking): one UPDATE.
    Dataset.objects.filter(pk=dataset.pk).update(
        row_count=dataset.row_count, last_loaded_at=dataset.last_loaded_at, updated_at=dataset.updated_at)
    if not gone and all(c.pk for c in new):  # ``dataset.columns.all()`` (lineage reads it next): what was just written
        dataset._prefetched_objects_cache = {
            **getattr(dataset, "_prefetched_objects_cache", {}),
            "columns": sorted([*existing.values(), *new], key=lambda c: c.position),
        }
