"""The PII scan after an ingest, as a task of its own in the run (issue 20, part 3).

An ingest used to classify what it loaded inside its ``published`` hook: the run waited for
the scan after every ingest, and the time went to no step. Now the ingest *queues* a scan
(:func:`queue_after_ingest`): a :class:`~compliance.models.PiiScan` of the run, of the step run
that loaded, of the batches it loaded, shown on the run's page with its own status and time
(:func:`run_panel`). The run goes on with the next step. The scan runs

* before a refine step that reads the dataset (its PII gate and privacy by default need the
  findings: :func:`run_before_step`, from ``PiiHook.prepare``), or
* after the run's last step, for the scans no step needed (``PiiHook.run_ending``).

A scan of new batches reads their rows only and merges its evidence with the column's
(``detection.merge_findings``); a full refresh (the table replaced) scans the whole table.

When Celery runs for real (a broker, not tasks in-process), a queued scan is also sent as a task of its
own (``compliance.run_pii_scan`` on ``ATLAS_PII_SCAN_QUEUE``: :func:`dispatch`, :func:`run_dispatched`),
so another worker classifies while the run goes on. Whoever claims it first runs it (a conditional
update): the scan worker, or the gate that needs it while it is still queued, or the run's end. A gate
whose scan another worker is running waits for it (:func:`await_running`, at most
``ATLAS_PII_SCAN_WAIT_SECONDS``: then the step fails with the reason). A scan worker marks its scan alive
(``heartbeat_at``); one silent for ``ATLAS_PII_SCAN_LOST_SECONDS`` (its worker killed) is failed with the
reason and queued again, by whoever finds it: the gate waiting for it, its task delivered again, the run's
end, the next ingest, or beat (:func:`reap_lost`).

Nothing is left unscanned: there is at most one queued scan per dataset, and a new ingest's
scan takes over the batches of a queued one (a run cancelled, failed or lost before it ran)
and of one interrupted while running (a lost worker), which ends failed with the reason. An
ingest with nothing new adopts a queued scan of its dataset into its own run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from atlas.warehouse.base import WriteMode
from pipelines.hooks import GateFailed
from pipelines.models import Dataset, LoadedBatch, PipelineRun, RunStatus, StepRun

from .models import PiiScan

logger = logging.getLogger(__name__)

# Set on the run object when one of its ingests queues or adopts a scan: the run's end then runs what is left.
QUEUED_IN_RUN = "_atlas_pii_scans_queued"
TIMELINE_KEY = "published compliance"  # pipelines.timeline: hook time after the step (pipelines.live.HOOK_WORDS)
LOADED = (LoadedBatch.Status.LOADED, LoadedBatch.Status.PARTIAL)
INTERRUPTED = "Interrupted: the worker running it was lost; its batches are scanned by PII scan #{pk}."
# What run_dispatched found (its task's result).
RAN, NOT_QUEUED, RUNNING_ELSEWHERE = "ran", "not queued", "running elsewhere"
SCAN_TASK = "compliance.run_pii_scan"  # compliance.tasks.run_pii_scan


_warming = threading.Lock()
_warmed = False


def warm_up() -> None:
    """Build the analyzer (Presidio, spaCy, the name lists: about 2 CPU s, once per process) in a thread,
    instead of in the scan that needs it: beside the ingest that will need it (its work is mostly in the
    warehouse: DuckDB and the drivers release the GIL), or when a worker starts (``worker_start``, see
    atlas/worker_start.py), so that the worker's first run does not pay it. Once per process; a failure is
    the scan's to report, not this thread's."""
    global _warmed
    with _warming:
        if _warmed:
            return
        _warmed = True

    def build() -> None:
        began = time.thread_time()
        try:
            from .analyzer import analyzer

            analyzer()
            logger.info("PII analyzer ready (built in %.1f CPU s).", time.thread_time() - began)
        except Exception:  # the scan builds it again and records why it cannot
            logger.warning("Building the PII analyzer ahead of the scan failed.", exc_info=True)

    threading.Thread(target=build, name="atlas-pii-analyzer", daemon=True).start()


def loaded_batches(step_run) -> list[str]:
    """The batches this step run loaded (in load order)."""
    return list(
        LoadedBatch.objects.filter(step_run=step_run, status__in=LOADED).order_by("created_at", "id")
        .values_list("batch_id", flat=True)
    )


def queue_after_ingest(ctx) -> PiiScan:
    """Queue the scan of what an ingest step run published (idempotent for the same step run)."""
    dataset, step_run = ctx.step.output, ctx.step_run
    # The table replaced (a full refresh too), or a load the batch ledger does not name: all of it.
    whole_table = ctx.write_mode == WriteMode.REPLACE
    batches = [] if whole_table else loaded_batches(step_run)
    with transaction.atomic():
        # One ingest at a time writes a dataset; the lock orders this with a gate running its scan.
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        # Queued, or left running by a lost worker (a scan worker alive goes on with its own batches).
        owed = list(PiiScan.objects.filter(
            Q(status=RunStatus.QUEUED) | Q(status=RunStatus.RUNNING) & _lost(),
            dataset=dataset, trigger=PiiScan.Trigger.INGEST,
        ).order_by("id"))
        scan = next((s for s in owed if s.step_run_id == step_run.pk and s.status == RunStatus.QUEUED), None)
        if scan is None:
            scan = PiiScan.objects.create(
                dataset=dataset, trigger=PiiScan.Trigger.INGEST, status=RunStatus.QUEUED, run=ctx.run,
                step_run=step_run, triggered_by=_user(ctx.run.triggered_by), batches=batches,
                sample_size=settings.PII_SAMPLE_SIZE,
            )
        for earlier in owed:
            if earlier.pk == scan.pk:
                continue
            # Its batches are scanned by this one (no batch stays unscanned); a whole table covers all.
            if scan.batches and earlier.batches:
                scan.batches = [*earlier.batches, *[b for b in scan.batches if b not in earlier.batches]]
            elif not earlier.batches:
                scan.batches = []
            if earlier.status == RunStatus.RUNNING:
                earlier.fail(INTERRUPTED.format(pk=scan.pk))
            else:
                earlier.finish(RunStatus.SKIPPED, error=f"Taken over by PII scan #{scan.pk} (run #{ctx.run.pk}).")
        if scan.batches != batches and (scan.batches or batches):
            scan.save(update_fields=["batches"])
        dispatch(scan.pk)
    setattr(ctx.run, QUEUED_IN_RUN, True)
    return scan


def dispatched() -> bool:
    """Whether scans are sent to the PII scan queue's workers: Celery runs for real, not in-process."""
    return not settings.CELERY_TASK_ALWAYS_EAGER


def dispatch(scan_pk: int) -> None:
    """Send the scan's task once the transaction commits (in-process Celery: nothing, the run does it).

    A broker that cannot be reached: this worker runs the scan at once, as in-process Celery would at the run's end.
    """
    if not dispatched():
        return

    def send() -> None:
        from atlas.celery import app
        from pipelines.runner import broker_errors

        try:
            # By name, through Atlas's own app (routed to ATLAS_PII_SCAN_QUEUE by CELERY_TASK_ROUTES): whatever
            # Celery app is "current" in this process, and whether or not compliance.tasks was imported.
            app.send_task(SCAN_TASK, args=[scan_pk])
        except broker_errors() as exc:
            logger.warning("PII scan %s: its task could not be sent (%s); running it here.", scan_pk,
                           type(exc).__name__)
            run_queued(scans=[scan_pk])

    transaction.on_commit(send)


def _lost() -> Q:
    """Scans "running" that nobody runs: run by a run's worker (no heartbeat: found by another run, or by the
    run's own next attempt), or by a scan worker silent for ``ATLAS_PII_SCAN_LOST_SECONDS``."""
    silent = timezone.now() - timedelta(seconds=settings.ATLAS_PII_SCAN_LOST_SECONDS)
    return Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=silent)


def _silent() -> Q:
    """Scans a scan worker ran and stopped marking alive (its worker killed)."""
    silent = timezone.now() - timedelta(seconds=settings.ATLAS_PII_SCAN_LOST_SECONDS)
    return Q(heartbeat_at__isnull=False, heartbeat_at__lt=silent)


def _recover(scan: PiiScan) -> PiiScan | None:
    """``scan``, left running by a lost worker: failed with the reason, a queued one of the same batches in its
    place (sent to the scan queue too). None when someone else recovered it first."""
    with transaction.atomic():
        lost = PiiScan.objects.select_for_update().filter(pk=scan.pk, status=RunStatus.RUNNING).first()
        if lost is None:
            return None
        lost.fail("Interrupted")
        again = _queue_again(lost, INTERRUPTED)
        dispatch(again.pk)
    return again


class _Heartbeat:
    """Marks one scan alive every ``ATLAS_PII_SCAN_HEARTBEAT_SECONDS`` from a thread, while a scan worker runs it."""

    def __init__(self, scan_pk: int) -> None:
        self.scan_pk = scan_pk
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"atlas-pii-scan-{scan_pk}", daemon=True)

    def _beat(self) -> None:
        try:
            while not self.stop.wait(settings.ATLAS_PII_SCAN_HEARTBEAT_SECONDS):
                try:
                    PiiScan.objects.filter(pk=self.scan_pk, status=RunStatus.RUNNING).update(
                        heartbeat_at=timezone.now())
                except Exception:  # the database away for a moment: the next beat tries again
                    logger.warning("PII scan %s: marking it alive failed.", self.scan_pk, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def run_dispatched(scan_pk: int) -> str:
    """The scan task's work: claim the queued scan and run it, marked alive while it runs.

    Returns :data:`RAN`; :data:`NOT_QUEUED` when there is nothing to do (done, claimed by a gate or a run's
    end, its run cancelled: left queued for the dataset's next ingest); :data:`RUNNING_ELSEWHERE` when a
    scan worker still marks it alive (this message delivered again while it runs, or its worker just killed:
    the task looks again once it could be silent). A scan whose worker is silent is recovered and run here.
    """
    scan = PiiScan.objects.filter(pk=scan_pk).first()
    if scan is None:
        return NOT_QUEUED
    if scan.status == RunStatus.RUNNING:
        if PiiScan.objects.filter(_silent(), pk=scan.pk).exists():
            scan = _recover(scan)
            if scan is None:
                return NOT_QUEUED
        else:
            return RUNNING_ELSEWHERE if scan.heartbeat_at else NOT_QUEUED
    if scan.status != RunStatus.QUEUED or _cancelled(scan):
        return NOT_QUEUED
    now = timezone.now()
    if not PiiScan.objects.filter(pk=scan.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
    ):
        return NOT_QUEUED
    scan.refresh_from_db()
    from .detection import run_scan

    with _Heartbeat(scan.pk):
        run_scan(scan, actor=scan.triggered_by)
    _add_to_timeline(scan)
    return RAN


def await_running(datasets: Iterable[Dataset], *, step=None, run=None) -> list[PiiScan]:
    """Wait for the scans of ``datasets`` other workers are running (a gate needs their findings).

    Polls once every ``ATLAS_PII_SCAN_POLL_SECONDS``; a scan whose worker goes silent is recovered and run
    here; after ``ATLAS_PII_SCAN_WAIT_SECONDS`` (or the run's cancel) the gate fails with the reason.
    """
    datasets = list(datasets)
    deadline = time.monotonic() + settings.ATLAS_PII_SCAN_WAIT_SECONDS
    waited: dict[int, PiiScan] = {}
    while True:
        running = list(PiiScan.objects.filter(
            trigger=PiiScan.Trigger.INGEST, status=RunStatus.RUNNING, dataset__in=datasets
        ).select_related("dataset").order_by("id"))
        if not running:
            break
        for scan in running:
            waited.setdefault(scan.pk, scan)
        silent = [s for s in running if PiiScan.objects.filter(_silent(), pk=s.pk).exists()]
        for scan in silent:
            if _recover(scan) is not None:
                run_queued(datasets=[scan.dataset])
        if silent:
            continue
        stopping = run is not None and PipelineRun.objects.filter(pk=run.pk, cancel_requested=True).exists()
        if time.monotonic() >= deadline or stopping:
            what = ", ".join(f"#{s.pk} of {s.dataset.qualified_table}" for s in running)
            whose = f" before {step.output.qualified_table} is written" if step is not None else ""
            if stopping:
                raise GateFailed(f"Not run: the run was cancelled while waiting for the PII scan {what}.")
            raise GateFailed(
                f"Not run: the PII scan {what}, running on another worker, did not end within"
                f" {settings.ATLAS_PII_SCAN_WAIT_SECONDS:g} s (ATLAS_PII_SCAN_WAIT_SECONDS); its findings are"
                f" needed{whose}. The scan goes on; run the pipeline again once it has ended."
            )
        time.sleep(settings.ATLAS_PII_SCAN_POLL_SECONDS)
    done = list(PiiScan.objects.filter(pk__in=list(waited)))
    return done


def reap_lost() -> list[PiiScan]:
    """Beat's sweep: scans whose scan worker went silent (killed) are failed with the reason and queued again."""
    again = []
    for scan in PiiScan.objects.filter(_silent(), status=RunStatus.RUNNING, trigger=PiiScan.Trigger.INGEST):
        new = _recover(scan)
        if new is not None:
            again.append(new)
    return again


def adopt_queued(ctx) -> list[PiiScan]:
    """An ingest with nothing new: a scan its dataset still owes (an earlier run ended first) joins this run."""
    owed = PiiScan.objects.filter(dataset=ctx.step.output, trigger=PiiScan.Trigger.INGEST, status=RunStatus.QUEUED)
    scans = list(owed)
    if scans:
        owed.update(run=ctx.run)
        setattr(ctx.run, QUEUED_IN_RUN, True)
    return scans


def requeue_interrupted(run) -> list[PiiScan]:
    """Scans of ``run`` left running by a lost attempt (one attempt runs at a time, and this one runs none):
    each ends failed with the reason, and a queued scan of the same batches takes its place."""
    again = []
    # A scan worker still marking its scan alive is not lost: the scan goes on beside or after the run.
    running = PiiScan.objects.filter(_lost(), run=run, status=RunStatus.RUNNING)
    if not running.exists():  # the usual case, in one query: nothing was left running
        return again
    with transaction.atomic():
        for lost in running.select_for_update():
            lost.fail("Interrupted")
            again.append(_queue_again(lost, INTERRUPTED))
            dispatch(again[-1].pk)
    return again


def run_queued(*, run=None, datasets: Iterable[Dataset] | None = None, scans: Iterable[int] | None = None
               ) -> list[PiiScan]:
    """Run the queued scans of ``run`` (or of any run) on ``datasets`` (or all), or these ``scans``, oldest first."""
    queued = PiiScan.objects.filter(trigger=PiiScan.Trigger.INGEST, status=RunStatus.QUEUED)
    if scans is not None:
        queued = queued.filter(pk__in=list(scans))
    if run is not None:
        queued = queued.filter(run=run)
    if datasets is not None:
        queued = queued.filter(dataset__in=list(datasets))
    done = []
    for scan in queued.select_related("dataset").order_by("id"):
        if _cancelled(scan):
            continue  # its run is stopping: left queued for the dataset's next ingest
        # Claimed: a scan runs once even if two doors reach it.
        if PiiScan.objects.filter(pk=scan.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=timezone.now()
        ):
            scan.refresh_from_db()
            from .detection import run_scan

            done.append(run_scan(scan, actor=scan.triggered_by))
            _add_to_timeline(scan)
            if scan.status == RunStatus.FAILED and _cancelled(scan):
                _queue_again(scan, "Stopped by the run's cancel; its batches are scanned by PII scan #{pk}.")
    return done


def _cancelled(scan: PiiScan) -> bool:
    return scan.run_id is not None and PipelineRun.objects.filter(pk=scan.run_id, cancel_requested=True).exists()


def _queue_again(scan: PiiScan, reason: str) -> PiiScan:
    """A queued scan of the same batches in ``scan``'s place (the dataset's next ingest takes it over)."""
    again = PiiScan.objects.create(
        dataset_id=scan.dataset_id, trigger=scan.trigger, status=RunStatus.QUEUED, run_id=scan.run_id,
        step_run_id=scan.step_run_id, triggered_by_id=scan.triggered_by_id, batches=scan.batches,
        sample_size=scan.sample_size,
    )
    scan.error = reason.format(pk=again.pk)
    scan.save(update_fields=["error"])
    return again


def _add_to_timeline(scan: PiiScan) -> None:
    """The run's timeline draws the scan after the ingest that queued it (``published compliance``, as before)."""
    if scan.step_run_id is None or scan.duration is None:
        return
    with transaction.atomic():
        step_run = StepRun.objects.select_for_update().filter(pk=scan.step_run_id).first()
        if step_run is None:
            return
        details = dict(step_run.details or {})
        spent = dict(details.get("hook_seconds") or {})
        spent[TIMELINE_KEY] = round(spent.get(TIMELINE_KEY, 0.0) + scan.duration.total_seconds(), 3)
        queued = [key for key in details.get("hooks_queued") or [] if key != TIMELINE_KEY]
        step_run.details = {**details, "hook_seconds": spent, "pii_scan": scan.pk, "pii_scan_status": scan.status,
                            "hooks_queued": queued}
        step_run.save(update_fields=["details"])


def run_before_step(step, run=None) -> list[PiiScan]:
    """The queued scans of what a refine step reads: its PII gate and privacy by default need their findings."""
    from .policies import _inputs

    reads = list(step.inputs.all()) or _inputs(step)
    if not reads:
        return []
    if run is not None:
        requeue_interrupted(run)
    done = run_queued(datasets=reads)  # still queued: this worker runs it, no need to wait for another
    if dispatched():
        done += await_running(reads, step=step, run=run)
    return done


def describe(scan: PiiScan) -> str:
    """``PII scan of explore.orders: 0.4 s, 2 findings`` (or its state)."""
    what = f"PII scan of {scan.dataset.qualified_table}"
    covered = f" ({len(scan.batches)} new batch{'es' if len(scan.batches) != 1 else ''})" if scan.batches else ""
    if scan.status == RunStatus.SUCCEEDED:
        seconds = scan.duration.total_seconds() if scan.duration else 0.0
        found = f"{scan.findings_count} finding{'s' if scan.findings_count != 1 else ''}"
        return f"{what}{covered}: {seconds:.1f} s, {found}"
    if scan.status in (RunStatus.FAILED, RunStatus.SKIPPED):
        return f"{what}{covered}: {scan.get_status_display().lower()} ({scan.error})"
    return f"{what}{covered}: {scan.get_status_display().lower()}"


def run_panel(request, record) -> str | None:
    """The run page's section: each PII scan of the run (or of the step run) as a row with its status and time."""
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("compliance.view_piiscan"):
        return None
    if isinstance(record, PipelineRun):
        scans = PiiScan.objects.filter(run=record)
    elif isinstance(record, StepRun):
        scans = PiiScan.objects.filter(step_run=record)
    else:
        return None
    scans = list(scans.select_related("dataset").order_by("id"))
    if not scans:
        return None
    rows = format_html_join(
        "", '<tr><td><a href="{}">#{}</a></td><td>{}</td><td>{}</td></tr>',
        ((reverse("admin:compliance_piiscan_change", args=[s.pk]), s.pk, s.get_status_display(), describe(s))
         for s in scans),
    )
    return format_html(
        '<div class="module"><h2>PII scans</h2><table class="atlas-pii-scans"><thead><tr><th>scan</th>'
        "<th>status</th><th>what</th></tr></thead><tbody>{}</tbody></table></div>",
        rows,
    )


def _user(user):
    return user if getattr(user, "is_authenticated", False) else None
