"""Quality's sections of other apps' admin pages (contributed in ``QualityConfig``, :mod:`atlas.extensions`).

The check results of a pipeline run, a step run or a dataset, each rendered with
quality's own template; the pages that show them (``pipelines``' admin) never
import quality.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from pipelines.models import Dataset, PipelineRun, StepRun

from .admin import badge
from .models import CheckResult, CheckRun
from .status import dataset_status

TEMPLATE = "admin/quality/_panel.html"


def _visible(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return user is not None and user.has_perm("quality.view_checkresult")


def dataset_panel(request: HttpRequest, dataset: Dataset) -> str | None:
    """The dataset's overall check status, with a link to its checks, history and quarantine."""
    if not _visible(request):
        return None
    status = dataset_status(dataset)
    context = {
        "visible": True,
        "dataset": dataset,
        "status": status,
        "status_badge": badge(status["status"]),
        "page": reverse("admin:quality_dataset", args=[dataset.pk]),
    }
    return render_to_string(TEMPLATE, context, request=request)


def run_panel(request: HttpRequest, obj: PipelineRun | StepRun) -> str | None:
    """The check results of a pipeline run's or a step run's staged tables."""
    if not _visible(request):
        return None
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
            "quarantine_url": reverse("admin:quality_quarantine", args=[r.check_run.dataset_id])
            + f"?check_run={r.check_run_id}",
        }
        for r in results
    ]
    context = {"visible": True, "rows": rows, "runs": [(r, badge(r.status)) for r in runs.order_by("started_at", "id")]}
    return render_to_string(TEMPLATE, context, request=request)


def dataset_tool(request: HttpRequest, dataset: Dataset) -> tuple[str, str, str] | None:
    """The "Quality" link above the dataset page."""
    if not request.user.has_perm("quality.view_check"):
        return None
    return "atlas-quality-link", "Quality", reverse("admin:quality_dataset", args=[dataset.pk])
