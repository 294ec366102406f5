"""Edges from checks: a check that reads another dataset orders its step after that dataset's producer.

A referential check on ``navigate.orders`` that looks up ``navigate.customers`` needs
customers published first, whatever order the steps are listed in. Quality contributes
:func:`step_reads` to the ``step_reads`` extension point, which the runner's planner
(``pipelines.runner.plan_steps``) reads; the admin and the API refuse a step whose
pipeline would then form a cycle, and :func:`cycle_error` refuses such a check when it
is saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.dag import PipelineCycleError, PipelineDefinitionError
from pipelines.models import Dataset, Step

from .kinds import get_kind
from .models import Check, Severity
from .versions import dataset_checks

if TYPE_CHECKING:
    from collections.abc import Iterable


def datasets_read(checks: Iterable[Check]) -> set[int]:
    """Ids of the datasets the checks read besides their own (unknown names are left out)."""
    names: set[str] = set()
    for check in checks:
        try:
            names |= get_kind(check.kind).reads(check)
        except ValueError:  # an unknown kind is refused where the check is saved
            continue
    return set(Dataset.objects.filter(name__in=names).values_list("pk", flat=True)) if names else set()


def step_reads(step: Step) -> set[int]:
    """The ``step_reads`` contribution: what the enabled checks on the step's output read."""
    if not step.output_id:
        return set()
    return datasets_read([c for c in dataset_checks(step.output_id) if c.enabled]) - {step.output_id}


def step_row_reads(step: Step) -> set[int]:
    """The ``step_row_reads`` contribution: what the enabled drop checks on the step's output read.

    Their verdict on a row can change when what they read changes (a referential check's parent
    rows), so an incremental step recomputes in full then (``pipelines.incremental``).
    """
    if not step.output_id:
        return set()
    drops = [c for c in dataset_checks(step.output_id) if c.enabled and c.severity == Severity.DROP]
    return datasets_read(drops) - {step.output_id}


def cycle_error(check: Check) -> str | None:
    """Why saving ``check`` would make its dataset's pipeline form a cycle, or None."""
    if not check.enabled or not check.dataset_id:
        return None
    reads = datasets_read([check]) - {check.dataset_id}
    producer = Step.objects.filter(output_id=check.dataset_id).select_related("pipeline").first() if reads else None
    if producer is None:
        return None
    from pipelines.runner import plan_steps

    try:
        plan_steps(producer.pipeline, check_reads={check.dataset_id: reads})
    except PipelineCycleError as exc:
        return f"Pipeline {producer.pipeline.name!r} could not order its steps with this check: {exc}"
    except PipelineDefinitionError:
        return None  # another problem of the pipeline: refused where its steps are saved, reported by its runs
    return None
