"""What quality contributes to a step's definition version (``step_versions``, pipelines.freshness).

The checks on a step's output gate, drop and record what it publishes: a check added, removed,
enabled or edited makes the step run again instead of being skipped as up to date.
"""

from __future__ import annotations

from .models import Check


def step_versions(step) -> list[list]:
    """The checks of the step's output dataset, as their definitions (sorted by name)."""
    return [
        [c.name, c.kind, c.columns, c.params, c.severity, c.tolerance, c.enabled]
        for c in Check.objects.filter(dataset_id=step.output_id).order_by("name")
    ]
