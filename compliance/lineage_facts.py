"""What compliance tells the lineage graph (``pii_columns``, atlas.extensions): PII found, and what protects it.

Lineage is a sibling app and does not import this one: it reads these facts
through the extension point, marks the columns on its graph and carries the
PII along column lineage (``lineage.graph.sync_pii``).
"""

from __future__ import annotations

from collections import defaultdict

from atlas.extensions import PiiColumn

from .models import ColumnPolicy, PiiFinding


def pii_columns() -> list[PiiColumn]:
    """Every column with a finding not dismissed, and every column with a policy (with the entity it
    protects): two queries."""
    entities: dict[tuple[int, str], set[str]] = defaultdict(set)
    for ds_id, column, entity in (
        PiiFinding.objects.exclude(status=PiiFinding.Status.DISMISSED).values_list("dataset_id", "column", "entity")
    ):
        entities[(ds_id, column)].add(entity)
    policies = {}
    for ds_id, column, action, by_default, entity in ColumnPolicy.objects.values_list(
        "dataset_id", "column", "action", "by_default", "entity"
    ):
        policies[(ds_id, column)] = (action, by_default)
        if entity:  # what the policy protects (a redacted column no longer traces back to its source)
            entities[(ds_id, column)].add(entity)
    return [
        PiiColumn(
            dataset_id=key[0],
            column=key[1],
            entities=tuple(sorted(entities.get(key, ()))),
            policy=policies.get(key, ("", False))[0],
            awaiting_review=policies.get(key, ("", False))[1],
        )
        for key in sorted(set(entities) | set(policies))
    ]
