"""What quality alerts on (contributed to ``alerts`` through atlas.extensions; quality never imports alerts).

* ``run_events`` (``run_alert_events``): the checks that failed or warned in a
  finished run, one event per check run (a gate on a staged table);
* ``freshness_conditions`` (``alert_sources``): every freshness expectation
  whose latest evaluation did not pass, at its level (warn age, error age).

Texts name datasets and checks and count them; a result's message and samples
are never read (they quote row values).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from atlas.adminpaths import change_path
from atlas.alerting import ERROR, WARNING, Event
from pipelines.models import Step

from . import freshness
from .models import CheckRun, Outcome


def _names(names: list[str]) -> str:
    return ", ".join(names)[:300]


def run_events(run) -> Iterator[Event]:
    check_runs = (
        CheckRun.objects.filter(step_run__run=run)
        .exclude(status__in=[CheckRun.Status.PASSED, CheckRun.Status.RUNNING])
        .select_related("dataset", "step_run")
        .order_by("pk")
    )
    for check_run in check_runs:
        outcomes = list(check_run.results.values_list("check_name", "outcome"))
        failed = [name for name, outcome in outcomes if outcome in (Outcome.FAIL, Outcome.ERROR)]
        warned = [name for name, outcome in outcomes if outcome == Outcome.WARN]
        is_fail = bool(failed) or check_run.status in (CheckRun.Status.FAILED, CheckRun.Status.ERROR)
        dataset = check_run.dataset
        summary = f"{len(failed)} failed, {len(warned)} warned" if outcomes else "the checks could not run"
        yield Event(
            kind="quality_fail" if is_fail else "quality_warn",
            severity=ERROR if is_fail else WARNING,
            title=f"Quality checks on {dataset.layer}.{dataset.name} ({summary}) in run #{run.pk} of {run.pipeline.name}",
            pipeline_id=run.pipeline_id,
            admin_path=change_path(CheckRun, check_run.pk),
            facts={
                "pipeline": run.pipeline.name, "run": run.pk, "step": check_run.step_run.step_name,
                "dataset": dataset.name, "layer": dataset.layer, "status": check_run.status,
                "checks": len(outcomes), "failed_checks": _names(failed), "warned_checks": _names(warned),
                "rows_checked": check_run.rows_checked, "rows_quarantined": check_run.rows_quarantined,
            },
        )


def freshness_conditions(now: datetime) -> Iterator[Event]:
    producers = dict(Step.objects.values_list("output_id", "pipeline_id").order_by("pk"))
    for state in freshness.states():
        if not state.breached:
            continue
        level = WARNING if state.outcome == Outcome.WARN else ERROR
        age = f"{state.age_hours:.1f} h old" if state.age_hours is not None else "no value"
        limit = state.warn_after_hours if level == WARNING else state.max_age_hours
        path = change_path(CheckRun, state.check_run_id) if state.check_run_id else ""
        yield Event(
            kind="freshness_breached", severity=level, key=f"freshness:{state.check_id}:{level}",
            title=f"Dataset {state.layer}.{state.dataset} is stale ({age}, {level} age {limit} h; check {state.check})",
            pipeline_id=producers.get(state.dataset_id), admin_path=path,
            facts={
                "dataset": state.dataset, "layer": state.layer, "check": state.check, "outcome": state.outcome,
                "level": level, "age_hours": state.age_hours, "warn_after_hours": state.warn_after_hours,
                "max_age_hours": state.max_age_hours,
            },
        )
