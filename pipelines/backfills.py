"""Backfills: a pipeline run once per interval of a past date range, one run at a time.

A backfill is a list of interval rows written when it is created, so an
interval can never be lost: each is ``pending`` until a run is started for it
(``active``, with the run linked), then ``succeeded``, ``failed`` or
``cancelled`` from its run's end. Nothing waits on anything: the next pending
interval is started

* when any run of the pipeline ends (``runner.run_ended`` calls :func:`after_run`);
* on beat's sweep (:func:`advance_backfills`, every minute), which also catches
  up after a lost callback, a worker that died or a refused start.

A start uses the pipeline's lock (one active run per pipeline, a partial unique
index): when the pipeline is busy (a scheduled run, another backfill) the
interval simply stays pending, so nothing can deadlock. At most
``ATLAS_BACKFILL_MAX_ACTIVE_RUNS`` backfill runs are active at once over all
pipelines (the workers keep room for scheduled runs). A failed interval does not
stop the others; the backfill ends ``failed`` with the failed intervals listed,
and :func:`rerun_failed` queues them again.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from atlas import audit

from . import runner
from .intervals import Interval, check_spec, intervals
from .models import Backfill, BackfillInterval, Pipeline, PipelineRun, RunStatus, Trigger

logger = logging.getLogger(__name__)
Status = BackfillInterval.Status
RUN_TO_INTERVAL = {
    RunStatus.SUCCEEDED: Status.SUCCEEDED,
    RunStatus.SKIPPED: Status.SUCCEEDED,
    RunStatus.FAILED: Status.FAILED,
    RunStatus.CANCELLED: Status.CANCELLED,
}


class BackfillRefused(ValueError):
    """A backfill that cannot be created or changed; the message says why."""


def plan(pipeline: Pipeline, start: dt.datetime, end: dt.datetime, interval: str = "") -> tuple[str, list[Interval]]:
    """The interval spec and the intervals a backfill would run; refuses what cannot be backfilled."""
    if not pipeline.enabled:
        raise BackfillRefused(f"Pipeline {pipeline.name!r} is disabled; enable it to backfill it.")
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise BackfillRefused("Give the start and end with a time zone (e.g. 2024-01-01T00:00:00Z).")
    spec = (interval or pipeline.schedule or "").strip()
    if not spec:
        raise BackfillRefused(
            f"Pipeline {pipeline.name!r} has no schedule; state an interval such as '1 day' or '6 hours'."
        )
    try:
        check_spec(spec)
        parts = intervals(spec, start, end)
    except ValueError as exc:
        raise BackfillRefused(str(exc)) from exc
    if not parts:
        raise BackfillRefused(
            f"No complete interval of {spec!r} fits between {start.isoformat()} and {end.isoformat()}."
        )
    return spec, parts


def create_backfill(
    pipeline: Pipeline, start: dt.datetime, end: dt.datetime, *, interval: str = "", actor=None,
    dispatch: bool = True,
) -> Backfill:
    """One interval row per interval of ``interval`` (default: the pipeline's crontab) in [start, end)."""
    spec, parts = plan(pipeline, start, end, interval)
    with transaction.atomic():
        backfill = Backfill.objects.create(
            pipeline=pipeline, start=start, end=end, interval=spec,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        BackfillInterval.objects.bulk_create(
            [BackfillInterval(backfill=backfill, start=p.start, end=p.end) for p in parts]
        )
        audit.record(
            "pipeline.backfill", actor=actor, target=pipeline, backfill_id=backfill.pk,
            start=start.isoformat(), end=end.isoformat(), interval=spec, intervals=len(parts),
        )
    if dispatch:
        transaction.on_commit(lambda: advance_backfills(dispatch=True))
    return backfill


def sync(backfill: Backfill) -> None:
    """Each active interval takes its run's end; the backfill ends when no interval is left to run."""
    for iv in backfill.intervals.filter(status=Status.ACTIVE).select_related("run"):
        run = iv.run
        if run is None:  # cannot happen (runs are protected); be safe: run it again
            BackfillInterval.objects.filter(pk=iv.pk, status=Status.ACTIVE).update(status=Status.PENDING)
        elif run.status in RUN_TO_INTERVAL:
            BackfillInterval.objects.filter(pk=iv.pk, status=Status.ACTIVE, run=run).update(
                status=RUN_TO_INTERVAL[run.status], error=run.error[:2000]
            )
    if backfill.status != Backfill.Status.RUNNING:
        return
    left = backfill.intervals.filter(status__in=[Status.PENDING, Status.ACTIVE]).exists()
    if not left:
        bad = backfill.intervals.exclude(status=Status.SUCCEEDED).exists()
        Backfill.objects.filter(pk=backfill.pk, status=Backfill.Status.RUNNING).update(
            status=Backfill.Status.FAILED if bad else Backfill.Status.SUCCEEDED, finished_at=timezone.now()
        )
        backfill.refresh_from_db()


def _room() -> bool:
    limit = settings.ATLAS_BACKFILL_MAX_ACTIVE_RUNS
    return PipelineRun.objects.active().filter(backfill__isnull=False).count() < limit


def advance(backfill: Backfill, *, dispatch: bool = True) -> PipelineRun | None:
    """Start a run for the backfill's next pending interval, if it may run now; the run, or None."""
    sync(backfill)
    if backfill.status != Backfill.Status.RUNNING:
        return None
    if backfill.intervals.filter(status=Status.ACTIVE).exists() or not _room():
        return None
    nxt = backfill.intervals.filter(status=Status.PENDING).order_by("start").first()
    if nxt is None:
        return None
    try:
        with transaction.atomic():
            run = runner.start_run(
                backfill.pipeline, trigger=Trigger.BACKFILL, dispatch=dispatch,
                interval=Interval(nxt.start, nxt.end), logical_date=nxt.start, backfill=backfill,
            )
            claimed = BackfillInterval.objects.filter(pk=nxt.pk, status=Status.PENDING).update(
                status=Status.ACTIVE, run=run, attempts=F("attempts") + 1, error=""
            )
            if not claimed:  # another process took it between our read and now: undo our run
                raise _Taken()
    except _Taken:
        return None
    except runner.RunRefused as exc:  # the pipeline is busy or disabled: the interval waits
        logger.info("Backfill #%s waits: %s", backfill.pk, exc)
        return None
    return run


class _Taken(Exception):
    pass


_local = threading.local()


def advance_backfills(*, dispatch: bool = True) -> int:
    """Move every running backfill on (beat's sweep, and after each run); the runs started.

    Embedded, a dispatched run executes inside this call and its end calls back here:
    the nested call only asks this loop for one more pass, so a backfill of any length
    runs as a loop, never as a recursion.
    """
    if getattr(_local, "active", False):
        _local.again = True
        return 0
    _local.active, started = True, 0
    try:
        while True:
            _local.again = False
            progressed = False
            for backfill in Backfill.objects.filter(status=Backfill.Status.RUNNING).select_related("pipeline").order_by("created_at", "id"):
                if advance(backfill, dispatch=dispatch) is not None:
                    started += 1
                    progressed = True
            if not (progressed or _local.again):
                return started
    finally:
        _local.active = False


def run_inline(backfill: Backfill) -> Backfill:
    """Run the backfill's intervals in this process, one after the other, until none may start.

    For ``manage.py backfill --sync`` and the embedded mode: the same claims and lock as
    the workers', so a worker or beat's sweep running beside it never doubles an interval.
    """
    while (run := advance(backfill, dispatch=False)) is not None:
        runner.execute_run(run.pk)
    sync(backfill)
    backfill.refresh_from_db()
    return backfill


def after_run(run_id: int) -> None:
    """A run ended: its interval takes the outcome and the next pending interval may start."""
    if Backfill.objects.filter(status=Backfill.Status.RUNNING).exists():
        advance_backfills()


def rerun_failed(backfill: Backfill, *, actor=None, dispatch: bool = True) -> int:
    """Queue the failed and cancelled intervals again; the number queued."""
    with transaction.atomic():
        count = backfill.intervals.filter(status__in=[Status.FAILED, Status.CANCELLED]).update(
            status=Status.PENDING, error=""
        )
        if count:
            Backfill.objects.filter(pk=backfill.pk).update(status=Backfill.Status.RUNNING, finished_at=None)
            audit.record("pipeline.backfill_rerun", actor=actor, target=backfill.pipeline,
                         backfill_id=backfill.pk, intervals=count)
    backfill.refresh_from_db()
    if count and dispatch:
        transaction.on_commit(lambda: advance_backfills(dispatch=True))
    return count


def cancel_backfill(backfill: Backfill, *, actor=None) -> int:
    """Stop a backfill: pending intervals cancelled, the active run asked to stop; the intervals cancelled."""
    with transaction.atomic():
        updated = Backfill.objects.filter(pk=backfill.pk, status=Backfill.Status.RUNNING).update(
            status=Backfill.Status.CANCELLED, finished_at=timezone.now()
        )
        if not updated:
            raise BackfillRefused(f"Backfill #{backfill.pk} has already ended ({backfill.status}).")
        count = backfill.intervals.filter(status=Status.PENDING).update(status=Status.CANCELLED)
        audit.record("pipeline.backfill_cancel", actor=actor, target=backfill.pipeline, backfill_id=backfill.pk)
    for iv in backfill.intervals.filter(status=Status.ACTIVE).select_related("run__pipeline"):
        if iv.run is not None:
            runner.cancel_run(iv.run, actor=actor)
    sync(backfill)
    backfill.refresh_from_db()
    return count


def with_counts(queryset):
    """``queryset`` of backfills annotated with their intervals' counts by state (read by :func:`summary`)."""
    from django.db.models import Count, Q

    return queryset.annotate(
        **{f"_intervals_{state}": Count("intervals", filter=Q(intervals__status=state)) for state in Status.values}
    )


def summary(backfill: Backfill) -> dict[str, int]:
    """How many intervals are in each state (every state listed); no query when annotated (:func:`with_counts`)."""
    if hasattr(backfill, f"_intervals_{Status.values[0]}"):
        return {state: getattr(backfill, f"_intervals_{state}") for state in Status.values}
    counts = dict.fromkeys(Status.values, 0)
    for status in backfill.intervals.values_list("status", flat=True):
        counts[status] += 1
    return counts
