"""Retention in the admin: policies (apply now, check), runs (read-only), records of processing (export).

Thin: every button and action calls :mod:`retention.services` or
:mod:`retention.records`, as the API, the command and the beat task do. The
dataset changelist gains a "retention" badge and filter (from the status each
policy keeps, :mod:`retention.dataset_admin`), the dataset page a retention /
Art. 30 panel (:mod:`retention.panels`): both contributed in ``RetentionConfig``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from simple_history.admin import SimpleHistoryAdmin

from atlas.admin_kit import (
    ADMIN_CSS,
    ManagedFromFilesWarning,
    Palette,
    ReadOnlyAdmin,
    RunRecordDisplay,
    enqueue_from_admin,
)

from . import records, services
from .models import ProcessingRecord, RetentionPolicy, RetentionRun

APPLY_PERMISSION = "retention.apply_retention"

STATUS_COLOURS = {
    RetentionPolicy.Status.WITHIN: "#198754",
    RetentionPolicy.Status.OVERDUE: "#dc3545",
    RetentionPolicy.Status.ERROR: "#fd7e14",
    RetentionPolicy.Status.EMPTY: "#6c757d",
    RetentionPolicy.Status.UNKNOWN: "#6c757d",
    RetentionRun.Status.RUNNING: "#0d6efd",
    RetentionRun.Status.SUCCEEDED: "#198754",
    RetentionRun.Status.FAILED: "#dc3545",
    RetentionRun.Status.SKIPPED: "#6c757d",
}
STATUS = Palette(STATUS_COLOURS, css=("atlas-badge-{}", "atlas-retention-{}"))


def badge(status: str, label: str) -> str:
    return STATUS.badge(status, label)


def policy_badge(policy: RetentionPolicy | None) -> str:
    if policy is None:
        return "-"
    return badge(policy.status, policy.get_status_display())


def report_runs(request: HttpRequest, runs: list[RetentionRun]) -> None:
    """One message per run: what it removed, or why it failed."""
    for run in runs:
        if run.status == RetentionRun.Status.FAILED:
            messages.error(request, f"Retention of {run.dataset.name} failed: {run.error}")
            continue
        text = (
            f"Retention of {run.dataset.name}: {run.rows_removed} rows removed"
            f" ({run.method}), {run.partitions_dropped} partitions dropped, cutoff {run.cutoff:%Y-%m-%d %H:%M %Z}."
        )
        if run.method == "report":
            text = f"Retention of {run.dataset.name} (report only): {run.rows_expired} rows past retention, none deleted."
        if run.unparseable_rows:
            text += f" {run.unparseable_rows} rows kept: their {run.column} does not parse as a timestamp."
            messages.warning(request, text)
        else:
            messages.success(request, text)


# --- policies ------------------------------------------------------------------------
@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(ManagedFromFilesWarning, SimpleHistoryAdmin):
    list_display = (
        "dataset",
        "column",
        "period_days",
        "action",
        "enabled",
        "status_badge",
        "oldest_value",
        "expired_rows",
        "unparseable_rows",
        "checked_at",
    )
    list_filter = ("status", "action", "enabled", "dataset__layer")
    search_fields = ("dataset__name", "column")
    autocomplete_fields = ("dataset",)
    readonly_fields = (
        "status_badge",
        "oldest_value",
        "expired_rows",
        "unparseable_rows",
        "checked_at",
        "status_error",
        "updated_by",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("dataset", "column", "period_days", "action", "enabled")}),
        (
            "Status (from the warehouse)",
            {
                "fields": (
                    "status_badge",
                    "oldest_value",
                    "expired_rows",
                    "unparseable_rows",
                    "checked_at",
                    "status_error",
                )
            },
        ),
        ("History", {"fields": ("updated_by", "created_at", "updated_at")}),
    )
    actions = ("apply_now", "check_now")

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("dataset")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: RetentionPolicy) -> str:
        return policy_badge(obj)

    def save_model(self, request, obj, form, change) -> None:
        services.save_policy(obj, actor=request.user, created=not change)

    def delete_model(self, request, obj) -> None:
        services.delete_policy(obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            services.delete_policy(obj, actor=request.user)

    def has_apply_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPLY_PERMISSION)

    @admin.action(description="Apply retention now (delete expired rows, in the background)", permissions=["apply"])
    def apply_now(self, request: HttpRequest, queryset) -> None:
        for policy in queryset:
            enqueue_from_admin(self, request, "retention.apply_policy", target=policy, policy_id=policy.pk,
                               trigger=RetentionRun.Trigger.MANUAL)

    @admin.action(description="Check now: is the data past retention?", permissions=["view"])
    def check_now(self, request: HttpRequest, queryset) -> None:
        for policy in queryset:
            services.refresh_status(policy)
            level = messages.WARNING if policy.is_overdue or policy.status_error else messages.INFO
            detail = f" ({policy.expired_rows} rows past retention)" if policy.is_overdue else ""
            self.message_user(
                request, f"{policy.dataset.name}: {policy.get_status_display()}{detail}.", level
            )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/apply/",
                self.admin_site.admin_view(self.apply_view),
                name="retention_policy_apply",
            ),
            *super().get_urls(),
        ]

    def apply_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The dataset page's "Apply retention now" button (POST); back to where it came from."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_apply_permission(request):
            raise PermissionDenied
        policy = get_object_or_404(
            RetentionPolicy.objects.select_related("dataset"), pk=unquote(object_id)
        )
        report_runs(
            request,
            [
                services.apply_policy(
                    policy, trigger=RetentionRun.Trigger.MANUAL, actor=request.user
                )
            ],
        )
        return HttpResponseRedirect(
            reverse("admin:pipelines_dataset_change", args=[policy.dataset_id])
        )


# --- runs ------------------------------------------------------------------------------
@admin.register(RetentionRun)
class RetentionRunAdmin(RunRecordDisplay, ReadOnlyAdmin):
    list_display = (
        "id",
        "dataset",
        "status_badge",
        "trigger",
        "cutoff",
        "method",
        "rows_removed",
        "partitions_dropped",
        "quarantine_rows_removed",
        "unparseable_rows",
        "duration_display",
        "started_at",
    )
    list_filter = ("status", "trigger", "method", "dataset__layer")
    search_fields = ("dataset__name", "error")
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in RetentionRun._meta.fields] + ["duration_display"]

    palette = STATUS

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("dataset", "triggered_by")


# --- records of processing ----------------------------------------------------------
def export_response(fmt: str, request: HttpRequest, datasets: list[str] | None) -> HttpResponse:
    text = records.export_records(fmt, datasets=datasets, actor=request.user, door="admin")
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    response = HttpResponse(text, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{records.filename(fmt)}"'
    return response


@admin.register(ProcessingRecord)
class ProcessingRecordAdmin(ManagedFromFilesWarning, SimpleHistoryAdmin):
    list_display = ("dataset", "legal_basis", "purpose_line", "subjects", "retention", "updated_at")
    list_filter = ("legal_basis", "dataset__layer")
    search_fields = ("dataset__name", "purpose", "data_subject_categories", "recipients")
    autocomplete_fields = ("dataset",)
    readonly_fields = ("updated_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("dataset", "purpose", "legal_basis", "legal_basis_detail")}),
        (
            "Subjects and recipients",
            {"fields": ("data_subject_categories", "recipients", "transfers")},
        ),
        ("Retention and security", {"fields": ("retention_note", "security_measures")}),
        ("History", {"fields": ("updated_by", "created_at", "updated_at")}),
    )
    actions = ("export_csv", "export_json")
    change_list_template = "admin/retention/processingrecord/change_list.html"

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("dataset", "dataset__retention_policy")

    @admin.display(description="purpose")
    def purpose_line(self, obj: ProcessingRecord) -> str:
        return (
            (obj.purpose or "").strip().splitlines()[0][:120] if (obj.purpose or "").strip() else ""
        )

    @admin.display(description="data subjects")
    def subjects(self, obj: ProcessingRecord) -> str:
        return ", ".join(obj.subject_categories_list)

    @admin.display(description="retention")
    def retention(self, obj: ProcessingRecord) -> str:
        policy = getattr(obj.dataset, "retention_policy", None)
        return policy.describe() if policy else (obj.retention_note or "not set")

    def save_model(self, request, obj, form, change) -> None:
        records.save_record(obj, actor=request.user)

    @admin.action(description="Export selected records of processing (CSV)", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset) -> HttpResponse:
        return export_response("csv", request, [r.dataset.name for r in queryset])

    @admin.action(description="Export selected records of processing (JSON)", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset) -> HttpResponse:
        return export_response("json", request, [r.dataset.name for r in queryset])

    def get_urls(self):
        return [
            path(
                "export/<str:fmt>/",
                self.admin_site.admin_view(self.export_view),
                name="retention_records_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest, fmt: str) -> HttpResponse:
        """Every record (and every dataset with PII but no record) in one file."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if fmt not in records.FORMATS:
            messages.error(request, f"Unknown export format {fmt!r}: use csv or json.")
            return HttpResponseRedirect(reverse("admin:retention_processingrecord_changelist"))
        return export_response(fmt, request, None)
