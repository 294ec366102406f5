"""What privacy contributes to a step's definition version (``step_versions``, pipelines.freshness).

What a step publishes leaves out the rows of erased subjects (``privacy.hooks.TombstoneGuard``) by
the dataset's confirmed subject keys: a new tombstone of a kind the output holds, or a key confirmed
or removed, makes the step run again instead of being skipped as up to date.
"""

from __future__ import annotations

from django.db.models import Count, Max

from .keys import confirmed_keys
from .models import Tombstone


def step_versions(step) -> dict | None:
    keys = confirmed_keys(step.output_id)
    if not keys:
        return None
    stones = Tombstone.objects.filter(kind__in={k[1] for k in keys}).aggregate(n=Count("id"), last=Max("id"))
    return {"keys": [list(k) for k in keys], "tombstones": [stones["n"], stones["last"]]}
