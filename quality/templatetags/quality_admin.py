"""``{% quality_panel obj %}``: the check results of a pipeline run, a step run or a dataset, on their admin pages.

The pipelines templates load this library; the pipelines app itself never imports quality.
"""

from __future__ import annotations

from django import template
from django.urls import reverse

from pipelines.models import Dataset, PipelineRun, StepRun
from quality.admin import badge
from quality.models import CheckResult, CheckRun
from quality.status import dataset_status

register = template.Library()


@register.inclusion_tag("admin/quality/_panel.html", takes_context=True)
def quality_panel(context, obj) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("quality.view_checkresult"):
        return {"visible": False}
    if isinstance(obj, Dataset):
        status = dataset_status(obj)
        return {
            "visible": True,
            "dataset": obj,
            "status": status,
            "status_badge": badge(status["status"]),
            "page": reverse("admin:quality_dataset", args=[obj.pk]),
        }
    runs = CheckRun.objects.none()
    if isinstance(obj, PipelineRun):
        runs = CheckRun.objects.filter(step_run__run=obj)
    elif isinstance(obj, StepRun):
        runs = CheckRun.objects.filter(step_run=obj)
    results = (
        CheckResult.objects.filter(check_run__in=runs)
        .select_related("check_run__dataset", "check_run__step_run")
        .order_by("check_run__started_at", "check_run_id", "check_name")
    )
    rows = [
        {
            "result": r,
            "badge": badge(r.outcome),
            "url": reverse("admin:quality_checkresult_change", args=[r.pk]),
            "run_url": reverse("admin:quality_checkrun_change", args=[r.check_run_id]),
            "dataset_url": reverse("admin:quality_dataset", args=[r.check_run.dataset_id]),
            "quarantine_url": reverse("admin:quality_quarantine", args=[r.check_run.dataset_id]) + f"?check_run={r.check_run_id}",
        }
        for r in results
    ]
    return {"visible": True, "rows": rows, "runs": [(r, badge(r.status)) for r in runs.order_by("started_at", "id")]}
