"""Retention's sections of the dataset page (contributed in ``RetentionConfig``, :mod:`atlas.extensions`).

The retention / records-of-processing panel computes the status live from the
warehouse (min(ts) against the cutoff) each time the page is shown, and stores
it, so the changelist badge follows.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import render_to_string

from pipelines.models import Dataset

from . import services
from .admin import APPLY_PERMISSION, badge


def dataset_panel(request: HttpRequest, dataset: Dataset) -> str:
    from compliance.models import PiiFinding

    user = getattr(request, "user", None)
    policy = getattr(dataset, "retention_policy", None)
    if policy is not None:
        services.refresh_status(policy)
    record = getattr(dataset, "processing_record", None)
    pii = sorted(
        set(
            PiiFinding.objects.filter(
                dataset=dataset,
                status__in=[PiiFinding.Status.CONFIRMED, PiiFinding.Status.PROPOSED],
            ).values_list("entity", flat=True)
        )
    )
    last_run = dataset.retention_runs.order_by("-started_at", "-id").first()
    context = {
        "dataset": dataset,
        "policy": policy,
        "badge": badge(policy.status, policy.get_status_display()) if policy else None,
        "last_run": last_run,
        "last_run_badge": badge(last_run.status, last_run.get_status_display()) if last_run else None,
        "record": record,
        "pii": pii,
        "can_apply": bool(user and user.has_perm(APPLY_PERMISSION)),
        "can_add_policy": bool(user and user.has_perm("retention.add_retentionpolicy")),
        "can_add_record": bool(user and user.has_perm("retention.add_processingrecord")),
    }
    return render_to_string("admin/retention/_dataset_panel.html", context, request=request)
