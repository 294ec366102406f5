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
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Protocol

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.utils import timezone

from atlas import audit
from atlas.warehouse import WarehouseError, get_warehouse

from . import hooks
from .dag import PipelineDefinitionError, StepSpec, plan
from .hooks import GateFailed, Origin, RunContext, StepContext
from .ingest import IngestWork, StepOutcome
from .intervals import Interval, default_interval
from .models import (
    ACTIVE_STATUSES,
    Dataset,
    DatasetColumn,
    Pipeline,
    PipelineRun,
    RunStatus,
    Step,
    StepRun,
    Trigger,
)
from .sql import SQLValidationError
from .transform import TransformWork, known_tables, step_inputs

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 15
# Errors whose message is written for the operator: shown as they are.
EXPECTED_ERRORS = (WarehouseError, GateFailed, SQLValidationError, PipelineDefinitionError)


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


# --- planning -------------------------------------------------------------------
def plan_steps(pipeline: Pipeline, steps: list[Step] | None = None) -> list[Step]:
    """The pipeline's steps in the order their data requires; refuses a broken definition."""
    steps = list(pipeline.steps.select_related("output", "source")) if steps is None else steps
    if not steps:
        raise PipelineDefinitionError(f"Pipeline {pipeline.name!r} has no steps.")
    known = known_tables()
    specs, by_key = [], {}
    for step in steps:
        inputs: list[Dataset] = []
        if step.kind != Step.Kind.INGEST:
            try:
                inputs = step_inputs(step, known)
            except SQLValidationError as exc:
                raise PipelineDefinitionError(f"Step {step.name!r}: {exc}") from exc
        spec = StepSpec(key=id(step), name=step.name, output=step.output_id, inputs=frozenset(d.pk for d in inputs))
        specs.append(spec)
        by_key[spec.key] = step
    others = Step.objects.exclude(pipeline=pipeline) if pipeline.pk else Step.objects.all()
    elsewhere = others.values_list("output_id", flat=True)
    names = {d.pk: d.qualified_table for d in known.values()}
    return [by_key[s.key] for s in plan(specs, produced_elsewhere=elsewhere, names=names)]


def save_step_inputs(pipeline: Pipeline) -> None:
    """Store each step's inputs (derived from its SQL) for the admin and lineage to read."""
    known = known_tables()
    for step in pipeline.steps.all():
        step.inputs.set(step_inputs(step, known) if step.kind != Step.Kind.INGEST else [])


# --- triggering -----------------------------------------------------------------
def start_run(
    pipeline: Pipeline, *, actor=None, trigger: str = Trigger.MANUAL, dispatch: bool = True,
    interval: Interval | None = None, logical_date=None, backfill=None,
) -> PipelineRun:
    """Queue a run of ``pipeline``; refused while another is queued or running.

    The database's partial unique index is the lock: two triggers at the same
    instant, from any number of processes, create one run. ``interval`` and
    ``logical_date``: the data the run is about (default: ``intervals.default_interval``).
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
                logical_date=logical_date or interval.start,
                data_interval_start=interval.start,
                data_interval_end=interval.end,
                backfill=backfill,
            )
            audit.record("pipeline.run", actor=actor, target=pipeline, run_id=run.pk, trigger=trigger)
    except IntegrityError:
        raise RunAlreadyActive(pipeline, pipeline.runs.active().first()) from None
    if dispatch:
        transaction.on_commit(lambda: dispatch_run(run.pk))
    return run


def dispatch_run(run_id: int) -> None:
    """Hand the run to a worker; embedded, run it in this process."""
    from .tasks import execute_run_task

    if not settings.CELERY_TASK_ALWAYS_EAGER:
        result = execute_run_task.delay(run_id)
        PipelineRun.objects.filter(pk=run_id).update(celery_task_id=result.id)
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
    """Fail runs whose worker stopped reporting, so the pipeline can run again."""
    stale = PipelineRun.objects.stale(settings.ATLAS_RUN_STALE_SECONDS)
    count = 0
    for run in stale:
        count += _finish(
            run,
            RunStatus.FAILED,
            error=f"The worker stopped reporting (no heartbeat for {settings.ATLAS_RUN_STALE_SECONDS} s);"
            " it was probably killed. Published tables are as they were before the step.",
            only_if_running=True,
        )
        run.step_runs.filter(status__in=ACTIVE_STATUSES).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
    return count


# --- executing ------------------------------------------------------------------
class _Heartbeat:
    """Marks the run alive from a side thread while a long step runs."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"atlas-heartbeat-{run_id}", daemon=True)

    def write(self) -> None:
        PipelineRun.objects.filter(pk=self.run_id, status=RunStatus.RUNNING).update(heartbeat_at=timezone.now())

    def _beat(self) -> None:
        try:
            while not self._stop.wait(HEARTBEAT_SECONDS):
                try:
                    self.write()
                except DatabaseError as exc:
                    # One missed beat (SQLite busy while a hook holds the write lock, a dropped
                    # connection) must not end the thread: the run would later look lost.
                    logger.warning("Run %s: heartbeat not written (%s); next try in %s s.", self.run_id, exc,
                                   HEARTBEAT_SECONDS)
                    connections.close_all()
        finally:
            connections.close_all()

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _finish(run: PipelineRun, status: str, *, error: str = "", tb: str = "", only_if_running: bool = False) -> int:
    totals = {"rows_in": 0, "rows_out": 0, "rows_rejected": 0}
    for sr in run.step_runs.all():
        for key in totals:
            totals[key] += getattr(sr, key)
    qs = PipelineRun.objects.filter(pk=run.pk)
    if only_if_running:
        qs = qs.filter(status=RunStatus.RUNNING)
    with transaction.atomic():
        updated = qs.update(
            status=status, finished_at=timezone.now(), error=error, traceback=tb, current_step="", **totals
        )
        run.refresh_from_db()
        if updated:
            hooks.call("run_finished", RunContext(run=run, status=status))
            transaction.on_commit(lambda: run_ended(run.pk))  # a backfill starts its next interval
    return updated


def run_ended(run_id: int) -> None:
    """After a run's end is stored: the pipeline's backfill, if any, moves on (never raises)."""
    from .backfills import after_run

    try:
        after_run(run_id)
    except Exception:  # beat's sweep (advance_backfills) catches up; the run's end stands
        logger.exception("Run %s ended, but its pipeline's backfill could not move on.", run_id)


def _claim(run_id: int) -> PipelineRun | None:
    """Mark a queued run running (the ``run_started`` hooks in the same transaction); None if not queued."""
    now = timezone.now()
    with transaction.atomic():
        if not PipelineRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
        ):
            logger.info("Run %s is not queued any more; nothing to do.", run_id)
            return None
        run = PipelineRun.objects.select_related("pipeline").get(pk=run_id)
        hooks.call("run_started", RunContext(run=run, status=RunStatus.RUNNING))
    return run


def execute_run(
    run_id: int,
    *,
    only: set[int] | None = None,
    work: dict[int, StepWork] | None = None,
    origin: str = Origin.RUN,
) -> PipelineRun | None:
    """Run a queued run to its end. Returns None when there was nothing to claim.

    ``only``: the ids of the steps to run (the others are left out, the order is the
    pipeline's); ``work``: by step id, the work to do instead of the step's own (see
    :func:`run_step`); ``origin``: why the steps run, for the hooks (:class:`Origin`).
    """
    run = _claim(run_id)
    if run is None:
        return None
    try:
        steps = plan_steps(run.pipeline)
    except PipelineDefinitionError as exc:
        _finish(run, RunStatus.FAILED, error=str(exc))
        return run
    if only is not None:
        steps = [s for s in steps if s.pk in only]
    step_runs = StepRun.objects.bulk_create(
        [
            StepRun(run=run, step=s, step_name=s.name, kind=s.kind, output=s.output, position=i)
            for i, s in enumerate(steps)
        ]
    )
    with _Heartbeat(run.pk):
        for step, step_run in zip(steps, step_runs, strict=True):
            if PipelineRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
                _cancel_rest(step_runs)
                _finish(run, RunStatus.CANCELLED, error=f"Cancelled by request before step {step.name!r}.")
                return run
            PipelineRun.objects.filter(pk=run.pk).update(current_step=step.name, heartbeat_at=timezone.now())
            if not run_step(run, step, step_run, work=(work or {}).get(step.pk), origin=origin):
                _cancel_rest(step_runs)
                _finish(run, RunStatus.FAILED, error=f"Step {step.name!r} failed: {step_run.error}")
                return run
    _finish(run, RunStatus.SUCCEEDED)
    return run


def run_work(
    step: Step, work: StepWork, *, origin: str, actor=None, trigger: str = Trigger.MANUAL
) -> tuple[PipelineRun, StepRun | None]:
    """Run ``work`` as ``step`` of its pipeline, now, in a run of its own: the same lifecycle, hooks and lock.

    For doors that write to a step's published table with other work than the
    step's own (re-processing quarantined rows). Raises :class:`RunRefused`
    when the pipeline is disabled or already running.
    """
    run = start_run(step.pipeline, actor=actor, trigger=trigger, dispatch=False)
    execute_run(run.pk, only={step.pk}, work={step.pk: work}, origin=origin)
    run.refresh_from_db()
    return run, run.step_runs.filter(step=step).first()  # None: the pipeline's definition is broken


def _cancel_rest(step_runs: list[StepRun]) -> None:
    StepRun.objects.filter(pk__in=[s.pk for s in step_runs], status=RunStatus.QUEUED).update(
        status=RunStatus.CANCELLED
    )


def _progress(step_run: StepRun) -> Callable[[StepOutcome], None]:
    def report(outcome: StepOutcome) -> None:
        StepRun.objects.filter(pk=step_run.pk).update(
            rows_in=outcome.rows_in, rows_out=outcome.rows_out, rows_rejected=outcome.rows_rejected
        )
        PipelineRun.objects.filter(pk=step_run.run_id).update(heartbeat_at=timezone.now())

    return report


def step_work(step: Step) -> StepWork:
    """The work of a step of this kind: stage what it produces, call the ``staged`` hooks, publish."""
    return IngestWork() if step.kind == Step.Kind.INGEST else TransformWork()


def run_step(
    run: PipelineRun, step: Step, step_run: StepRun, *, work: StepWork | None = None, origin: str = Origin.RUN
) -> bool:
    """Execute one step; True when it succeeded (or had nothing new to do).

    The lifecycle, the same for every kind of step and every door: ``started`` (with the
    running status), the work's ``begin``, ``prepare``, the work's ``run`` (which stages,
    calls ``staged`` and publishes), then ``published`` or ``skipped`` after the status
    is stored — or ``failed``, with the staging tables dropped.
    """
    wh = get_warehouse()
    work = work or step_work(step)
    ctx = StepContext(
        run=run, step=step, step_run=step_run, warehouse=wh, schema=step.output.layer, target=step.output.table,
        origin=origin,
    )
    step_run.status, step_run.started_at = RunStatus.RUNNING, timezone.now()
    save_step_state(ctx, ["status", "started_at"], stage="started")
    try:
        wh.ensure_schemas()
        work.begin(ctx)
        hooks.call("prepare", ctx)
        outcome = work.run(ctx, progress=_progress(step_run))
        if outcome.status != RunStatus.SKIPPED:
            refresh_dataset(step.output, row_count=outcome.table_rows)
        step_run.status = outcome.status
        step_run.rows_in, step_run.rows_out, step_run.rows_rejected = (
            outcome.rows_in,
            outcome.rows_out,
            outcome.rows_rejected,
        )
        step_run.finished_at = timezone.now()
        save_step_state(ctx)
        if outcome.status != RunStatus.SKIPPED:
            hooks.call("published", ctx)
        else:
            hooks.call("skipped", ctx)
        return True
    except Exception as exc:
        ctx.error = exc
        _drop_staging(ctx)
        step_run.refresh_from_db(fields=["rows_in", "rows_out", "rows_rejected"])
        step_run.status = RunStatus.FAILED
        step_run.finished_at = timezone.now()
        step_run.error = str(exc) if isinstance(exc, EXPECTED_ERRORS) else f"{type(exc).__name__}: {exc}"
        step_run.traceback = traceback.format_exc()
        save_step_state(ctx)
        hooks.call("failed", ctx)
        logger.warning("Run %s step %r failed: %s", run.pk, step.name, step_run.error)
        return False


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
    existing = {c.name: c for c in dataset.columns.all()}
    keep = set()
    for pos, col in enumerate(columns):
        keep.add(col.name)
        obj = existing.get(col.name) or DatasetColumn(dataset=dataset, name=col.name)
        obj.position, obj.data_type, obj.nullable = pos, col.type, col.nullable
        obj.save()
    dataset.columns.exclude(name__in=keep).delete()
    dataset.row_count = wh.row_count(dataset.layer, dataset.table) if row_count is None else row_count
    dataset.last_loaded_at = timezone.now()
    dataset.save(update_fields=["row_count", "last_loaded_at", "updated_at"])
