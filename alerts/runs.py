"""The events of a finished pipeline run: failed, partially failed, recovered, plus what other apps add.

Read in the transaction that stores the run's end (``run_finished``). The text
names the pipeline, the run and its failed steps and counts them; the run's
error and traceback are never read (a warehouse error can quote a row value).
"""

from __future__ import annotations

from atlas import extensions
from atlas.adminpaths import change_path
from atlas.alerting import ERROR, WARNING, Event
from pipelines.models import PipelineRun

FAILED = "failed"
# Added to RunStatus by the partial-failure work (issue 14); named here so alerts works with or without it.
PARTIALLY_FAILED = "partially_failed"
SUCCEEDED = "succeeded"
FAILURES = (FAILED, PARTIALLY_FAILED)


def _previous(run: PipelineRun) -> tuple[int, str] | None:
    """(pk, status) of the pipeline's last run that ended succeeded or failed before this one.

    Two columns, not the run (its definitions and traceback): every successful run asks.
    """
    return (
        PipelineRun.objects.filter(pipeline_id=run.pipeline_id, status__in=(SUCCEEDED, *FAILURES))
        .exclude(pk=run.pk)
        .filter(created_at__lte=run.created_at)
        .order_by("-created_at", "-pk")
        .values_list("pk", "status")
        .first()
    )


def _facts(run: PipelineRun) -> dict:
    steps = list(run.step_runs.order_by("position", "pk").values_list("step_name", "status"))
    failed = [name for name, status in steps if status == FAILED]
    facts = {
        "pipeline": run.pipeline.name,
        "run": run.pk,
        "status": run.status,
        "trigger": run.trigger,
        "steps": len(steps),
        "steps_failed": len(failed),
        "steps_skipped": sum(1 for _n, status in steps if status in ("skipped", "cancelled")),
        "failed_steps": ", ".join(failed)[:300],
        "rows_in": run.rows_in,
        "rows_out": run.rows_out,
    }
    if run.duration is not None:
        facts["duration_seconds"] = round(run.duration.total_seconds(), 1)
    return facts


def run_events(run: PipelineRun) -> list[Event]:
    """What ``run``'s end alerts on (it is stored already, in the current transaction)."""
    path = change_path(PipelineRun, run.pk)  # not reverse(): it loads the whole URLconf (atlas.adminpaths)
    name = run.pipeline.name
    events: list[Event] = []
    if run.status in FAILURES:
        facts = _facts(run)
        partial = run.status == PARTIALLY_FAILED
        what = "partially failed" if partial else "failed"
        steps = f" at step(s) {facts['failed_steps']}" if facts["failed_steps"] else ""
        events.append(Event(
            kind="run_partially_failed" if partial else "run_failed", severity=ERROR,
            title=f"Pipeline {name}: run #{run.pk} {what}{steps}", pipeline_id=run.pipeline_id,
            admin_path=path, facts=facts,
        ))
    elif run.status == SUCCEEDED:
        previous = _previous(run)
        if previous is not None and previous[1] in FAILURES:
            previous_pk, previous_status = previous
            facts = _facts(run) | {"after_run": previous_pk, "after_status": previous_status}
            events.append(Event(
                kind="run_recovered", severity=WARNING,
                title=f"Pipeline {name}: run #{run.pk} succeeded after run #{previous_pk} {previous_status.replace('_', ' ')}",
                pipeline_id=run.pipeline_id, admin_path=path, facts=facts,
            ))
    for source in extensions.contributions("run_alert_events"):
        events.extend(source(run))
    return events
