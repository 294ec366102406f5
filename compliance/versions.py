"""What compliance contributes to a step's definition version (``step_versions``, pipelines.freshness).

A refine writes Chart through the column policies of its output (privacy by default from the
findings it reads), keyed by ``PII_HASH_KEY`` for hash policies: a policy added or edited, a finding
confirmed, dismissed or newly above the default-protection confidence, or another hash key (by its
id, never its value), makes the step run again instead of being skipped as up to date.
"""

from __future__ import annotations

from django.conf import settings

from .models import ColumnPolicy, PiiFinding


def step_versions(step) -> dict | None:
    if step.kind != "refine":
        return None  # policies apply where a refine writes Chart (compliance.hooks.PiiHook)
    policies = [
        [p.column, p.action, p.options, p.by_default]
        for p in ColumnPolicy.objects.filter(dataset_id=step.output_id).order_by("column")
    ]
    read = [step.output_id, *step.inputs.values_list("pk", flat=True)]
    threshold = settings.PII_DEFAULT_PROTECT_CONFIDENCE
    findings = [
        [f.dataset_id, f.column, f.entity, f.status, f.free_text, f.confidence >= threshold]
        for f in PiiFinding.objects.filter(dataset_id__in=read).order_by("dataset_id", "column", "entity")
    ]
    key = ""
    if settings.PII_HASH_KEY and any(p[1] == ColumnPolicy.Action.HASH for p in policies):
        from .policies import hash_key

        key = hash_key().key_id  # not secret: an HMAC of a constant under the key
    return {"policies": policies, "findings": findings, "key": key, "threshold": threshold}
