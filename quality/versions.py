"""What quality contributes to a step's definition version (``step_versions``, pipelines.freshness).

The checks on a step's output gate, drop and record what it publishes: a check added, removed,
enabled or edited makes the step run again instead of being skipped as up to date.
"""

from __future__ import annotations

from pipelines import memo

from .models import Check


def dataset_checks(dataset_id: int) -> list[Check]:
    """Every check of the dataset (enabled or not), by name; read once per :func:`pipelines.memo.scope`.

    A step's scope reads them for its versions (``step_versions``), for what they read
    (``step_reads``) and for its gate: one query, and the gate runs the very checks the step's
    versions record. Outside a scope, read every time.
    """
    return memo.remembered(
        ("checks", dataset_id),
        lambda: list(Check.objects.filter(dataset_id=dataset_id).select_related("dataset").order_by("name")),
    )


def step_versions(step) -> list[list]:
    """The checks of the step's output dataset, as their definitions (sorted by name)."""
    return [[c.name, c.kind, c.columns, c.params, c.severity, c.tolerance, c.enabled]
            for c in dataset_checks(step.output_id)]
