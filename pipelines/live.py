"""A run as it happens: the state the run page polls, and the step events ``run_pipeline`` prints.

Two ways to follow a run, one shape of data (:func:`step_state`):

- in the process that executes it (``run_pipeline`` on the embedded default, or ``--sync``), the
  runner calls :func:`emit` as each step starts, reports progress and ends; :func:`listening`
  registers a listener for that time;
- from anywhere else (the admin's run page, ``run_pipeline`` waiting on a worker), :func:`run_state`
  reads the stored run and its steps, and :class:`RunWatcher` turns successive reads into the same
  events.

A listener that raises never breaks the run: it is logged and the run goes on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from atlas import humanize
from atlas.admin_kit import RUNS, human_duration

from . import freshness
from .models import PipelineRun, RunStatus, StepRun
from .run_totals import run_totals

logger = logging.getLogger(__name__)

STARTED, PROGRESS, ENDED = "started", "progress", "ended"
Listener = Callable[[str, dict[str, Any]], None]
_listeners: list[Listener] = []
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
HOOK_WORDS = {  # "<stage> <app>" -> what it is, in words
    "staged quality": "quality checks", "staged compliance": "PII policies", "prepare compliance": "PII policies",
    "published compliance": "PII scan", "published lineage": "lineage events", "staged privacy": "erasure filters",
}


def hook_label(key: str) -> str:
    stage, _, app = key.partition(" ")
    return HOOK_WORDS.get(key, f"{app} ({stage})")


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call ``listener(event, step_state)`` for every step event of runs executed in this process meanwhile."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def emit(event: str, step_run: StepRun) -> None:
    if not _listeners:
        return
    state = step_state(step_run)
    for listener in list(_listeners):
        try:
            listener(event, state)
        except Exception:  # a console that cannot print never stops a run
            logger.exception("A run listener failed on %s of step %r.", event, step_run.step_name)


def seconds(started: datetime | None, finished: datetime | None, now: datetime | None = None) -> float | None:
    """How long a step took, or has taken so far while it runs."""
    if started is None:
        return None
    return max(((finished or now or timezone.now()) - started).total_seconds(), 0.0)


def duration_words(value: float | None) -> str:
    """As the admin words a duration everywhere ('0.4 s', '3 min 5 s', '1 h 2 min'); '—' before it starts."""
    return human_duration(timedelta(seconds=value)) if value is not None else "—"


def _incremental(sr: StepRun) -> str | None:
    state = (sr.details or {}).get("incremental")  # pipelines.incremental.DETAILS
    return f"{state['mode']}: {state['reason']}" if isinstance(state, dict) and state.get("mode") else None


def step_state(sr: StepRun, now: datetime | None = None) -> dict[str, Any]:
    """One step run as the page and the console show it (JSON-ready; no row value, no SQL)."""
    files = (sr.details or {}).get("files") or {}
    took = seconds(sr.started_at, sr.finished_at, now)
    return {
        "id": sr.pk,
        "position": sr.position,
        "name": sr.step_name,
        "kind": sr.kind,
        "status": sr.status,
        "status_label": freshness.status_label(sr),  # "Up to date": skipped as unchanged (issue 20)
        "up_to_date": ((sr.details or {}).get(freshness.UP_TO_DATE) or {}).get("reason") if sr.details else None,
        "incremental": _incremental(sr),  # an incremental step: "incremental: 1 new batch of …" or "full: <why>"
        "running": sr.status == RunStatus.RUNNING,
        "rows_in": sr.rows_in,
        "rows_out": sr.rows_out,
        "rows_rejected": sr.rows_rejected,
        "seconds": took,
        "duration": duration_words(took),
        "files_done": files.get("done"),
        "files_total": files.get("total"),
        "bytes_done": files.get("bytes_done"),
        "bytes_total": files.get("bytes_total"),
        "error": (sr.error or "").splitlines()[0] if sr.error else "",
        "hooks_pending": sr.after_publish == "pending",  # published; the PII scan and lineage still to do
        # the hooks after publishing (the PII scan after an ingest, lineage): time outside the step's own
        "after": after_publishing(sr.details or {}),
    }


def after_publishing(details: dict[str, Any]) -> list[list]:
    """The hooks after publishing, in words, with their seconds; a hook that queued its work (``hooks_queued``:
    the PII scan, run at the gate that needs it or at the run's end) says so, with no time yet."""
    queued = details.get("hooks_queued") or []
    spent = {k: v for k, v in (details.get("hook_seconds") or {}).items() if k.startswith("published")}
    return [[f"{hook_label(k)} queued", None] if k in queued else [hook_label(k), spent[k]]
            for k in [*spent, *(k for k in queued if k not in spent)]]


def run_state(run: PipelineRun, now: datetime | None = None) -> dict[str, Any]:
    """The run and its steps now: status, current step, rows so far, each step's timing."""
    now = now or timezone.now()
    step_runs = list(run.step_runs.order_by("position", "pk"))
    steps = [step_state(sr, now) for sr in step_runs]
    active = run.status in ACTIVE
    totals = run_totals(step_runs)  # rows in: what the run took in (pipelines.run_totals), as its end stores
    took = seconds(run.started_at, run.finished_at, now)
    if run.status == RunStatus.QUEUED:
        summary = "Queued, waiting for a worker."
    elif active:
        where = f" step {run.current_step}" if run.current_step else ""
        of = f" (of {len(steps)} step{'s' if len(steps) != 1 else ''})" if steps else ""
        since = f" for {duration_words(took)}" if took is not None else ""
        summary = (f"Running{where}{of}{since}. Rows so far: {humanize.number(totals['rows_in'])} in,"
                   f" {humanize.number(totals['rows_out'])} out, {humanize.number(totals['rows_rejected'])} rejected.")
    else:
        summary = f"{run.get_status_display()} after {duration_words(took)}."
    if active and run.cancel_requested:
        summary += " Cancellation requested; it stops after the current file or step."
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "status_html": str(RUNS.badge(run.status, run.get_status_display())),
        "active": active,
        "current_step": run.current_step,
        "cancel_requested": run.cancel_requested,
        "seconds": took,
        "duration": duration_words(took),
        "summary": summary,
        "rows_so_far": totals,
        "steps": [{**s, "status_html": str(RUNS.badge(s["status"], s["status_label"]))} for s in steps],
    }


class RunWatcher:
    """Reads a run again and again (from another process's work) and tells what changed, as :func:`emit` would."""

    def __init__(self, run: PipelineRun) -> None:
        self.run = run
        self.seen: dict[int, dict[str, Any]] = {}

    def poll(self) -> list[tuple[str, dict[str, Any]]]:
        events = []
        for sr in self.run.step_runs.order_by("position", "pk"):
            now, before = step_state(sr), self.seen.get(sr.pk)
            was = before["status"] if before else RunStatus.QUEUED
            if sr.status == RunStatus.QUEUED or sr.started_at is None:
                continue
            if was == RunStatus.QUEUED:
                events.append((STARTED, now))
            if sr.status == RunStatus.RUNNING:
                if before and any(before[k] != now[k] for k in ("rows_in", "rows_out", "files_done")):
                    events.append((PROGRESS, now))
            elif now["hooks_pending"]:  # ended when its hooks after publishing are done too, as emit tells it
                now = {**now, "status": RunStatus.RUNNING}
            elif was in (RunStatus.QUEUED, RunStatus.RUNNING):
                events.append((ENDED, now))
            self.seen[sr.pk] = now
        return events
