"""System checks (``manage.py check``): what the database holds that Atlas no longer accepts.

One writer per dataset: a step saved today is refused when another pipeline's step already
writes its output (``Step.clean``). An install from before that rule may hold datasets with
several writers; ``manage.py check --database default`` (and ``migrate``) names them, so
the operator keeps one. A database check, as Django means it: it reads the database, so
it runs only when asked for a database, never when a worker or the web server starts.
"""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError
from django.db.models import Count


@checks.register(checks.Tags.database)
def one_writer_per_dataset(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """A warning for every dataset that more than one step writes (none before the tables exist)."""
    from .models import Step

    if not databases or "default" not in databases:
        return []
    try:
        shared = list(
            Step.objects.values("output_id").annotate(writers=Count("id")).filter(writers__gt=1).values_list(
                "output_id", flat=True
            )
        )
        if not shared:
            return []
        steps = list(Step.objects.filter(output_id__in=shared).select_related("pipeline", "output").order_by("pk"))
    except DatabaseError:  # before ``migrate``: nothing to check yet
        return []
    by_dataset: dict[int, list] = {}
    for step in steps:
        by_dataset.setdefault(step.output_id, []).append(step)
    return [
        checks.Warning(
            f"Dataset {writers[0].output.name!r} is written by {len(writers)} steps: "
            + ", ".join(f"{s.name!r} of pipeline {s.pipeline.name!r}" for s in writers)
            + ". Their writes interleave (append) or the last one wins (replace).",
            hint="Keep one producing step: delete the others or point them at datasets of their own"
            " (README, How a run works).",
            obj=writers[0].output,
            id="pipelines.W001",
        )
        for writers in by_dataset.values()
    ]
