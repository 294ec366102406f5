"""retention's heavy action as a background task (``background_tasks``, :mod:`atlas.background`)."""

from __future__ import annotations

from atlas.background import Kind

from . import services
from .models import RetentionPolicy, RetentionRun


def apply_policy(task, policy_id: int, trigger: str = RetentionRun.Trigger.API) -> dict:
    """Apply a retention policy now; the run records its outcome (a failed apply is a failed run, not an error)."""
    run = services.apply_policy(RetentionPolicy.objects.get(pk=policy_id), trigger=trigger, actor=task.requested_by)
    task.result_path = f"/api/v1/retention-runs/{run.pk}/"
    task.save(update_fields=["result_path"])
    return {"retention_run": run.pk, "status": run.status}


KINDS = [Kind("retention.apply_policy", apply_policy)]
