"""Keep the graph current when a step is saved (its SQL, source or output may have changed)."""

from __future__ import annotations

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def step_saved(sender, instance, **kwargs) -> None:
    """Refresh the step's lineage once the save is committed; a step that cannot be traced keeps the old graph."""
    from . import graph

    step_id = instance.pk

    def refresh() -> None:
        from pipelines.models import Step

        step = Step.objects.select_related("pipeline", "output", "source").filter(pk=step_id).first()
        if step is None:
            return
        try:
            graph.refresh_step(step)
        except Exception:
            logger.warning("Lineage of step %r not refreshed on save.", step.name, exc_info=True)

    transaction.on_commit(refresh)
