"""The Backfill admin: start one over a date range, follow its intervals, re-run what failed, cancel.

Registered by ``pipelines.admin``; whoever may run pipelines (``pipelines.change_pipeline``) may
backfill them, and every role that reads pipelines reads backfills.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html

from atlas import humanize
from atlas.admin_kit import ReadOnlyInline, admin_link

from . import backfills
from .models import Backfill, BackfillInterval, SourceWatermark

RUN_PERMISSION = "pipelines.change_pipeline"


class BackfillForm(forms.ModelForm):
    class Meta:
        model = Backfill
        fields = ("pipeline", "start", "end", "interval")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "interval" in self.fields:  # the add form; a backfill's page shows it read-only
            self.fields["interval"].required = False
            self.fields["interval"].help_text = "Blank: the pipeline's crontab. Or a crontab, or '1 day', '6 hours'."

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            spec, parts = backfills.plan(data["pipeline"], data["start"], data["end"], data.get("interval") or "")
        except backfills.BackfillRefused as exc:
            raise forms.ValidationError(str(exc)) from exc
        data["interval"] = spec
        self.intervals = parts
        return data


class BackfillIntervalInline(ReadOnlyInline, admin.TabularInline):
    model = BackfillInterval
    fields = ("start", "end", "status", "run_link", "attempts", "error")
    readonly_fields = fields

    @admin.display(description="run")
    def run_link(self, obj: BackfillInterval) -> str | None:
        return admin_link(obj.run, f"run #{obj.run_id}") if obj.run_id else None


@admin.register(Backfill)
class BackfillAdmin(admin.ModelAdmin):
    form = BackfillForm
    list_display = ("id", "pipeline", "start", "end", "interval", "status", "progress", "created_at")
    list_filter = ("status", "pipeline")
    list_select_related = ("pipeline",)
    inlines = (BackfillIntervalInline,)
    actions = ("rerun_failed", "cancel")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RUN_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # a backfill is changed by its actions, never edited

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # its runs are evidence

    def has_run_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm(RUN_PERMISSION)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ()
        return ("pipeline", "start", "end", "interval", "status", "progress", "created_by", "created_at", "finished_at")

    def get_fields(self, request: HttpRequest, obj=None):
        return ("pipeline", "start", "end", "interval") if obj is None else self.get_readonly_fields(request, obj)

    def get_inlines(self, request: HttpRequest, obj):
        return self.inlines if obj is not None else ()

    @admin.display(description="intervals")
    def progress(self, obj: Backfill) -> str:
        counts = backfills.summary(obj)
        return ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "none"

    def save_model(self, request: HttpRequest, obj: Backfill, form, change: bool) -> None:
        created = backfills.create_backfill(
            obj.pipeline, obj.start, obj.end, interval=obj.interval, actor=request.user
        )
        obj.pk, obj.status, obj.created_at = created.pk, created.status, created.created_at

    @admin.action(description="Re-run failed and cancelled intervals", permissions=["run"])
    def rerun_failed(self, request: HttpRequest, queryset) -> None:
        for backfill in queryset:
            count = backfills.rerun_failed(backfill, actor=request.user)
            self.message_user(
                request, format_html("{}: {} interval(s) queued again.", admin_link(backfill, str(backfill)), count),
                messages.SUCCESS if count else messages.WARNING,
            )

    @admin.action(description="Cancel selected backfills", permissions=["run"])
    def cancel(self, request: HttpRequest, queryset) -> None:
        for backfill in queryset:
            try:
                count = backfills.cancel_backfill(backfill, actor=request.user)
            except backfills.BackfillRefused as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"{backfill}: cancelled, {count} pending interval(s) will not run.")


@admin.register(SourceWatermark)
class SourceWatermarkAdmin(admin.ModelAdmin):
    """How far incremental extraction has read; deleting one makes the next load read everything again."""

    list_display = ("source", "dataset", "column", "shown_value", "updated_at")
    readonly_fields = ("source", "dataset", "column", "shown_value", "pending_value", "updated_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("pipelines.change_source")

    @admin.display(description="watermark")
    def shown_value(self, obj: SourceWatermark) -> str:
        return obj.value["value"] if obj.value else "(none yet: the next load reads everything)"


def run_interval_panel(request: HttpRequest, obj) -> str | None:
    """On a pipeline run's page: the data it is about (logical date, data interval, its backfill)."""
    from .models import PipelineRun

    if not isinstance(obj, PipelineRun) or obj.data_interval_start is None:
        return None
    backfill = format_html(" — {}", admin_link(obj.backfill, str(obj.backfill))) if obj.backfill_id else ""
    return format_html(
        '<fieldset class="module aligned"><h2>Data interval</h2><div class="form-row">'
        "logical date <strong>{}</strong>; interval [{}, {}){}</div></fieldset>",
        humanize.local_time(obj.logical_date) if obj.logical_date else "-",  # the exact instant in its title
        humanize.local_time(obj.data_interval_start), humanize.local_time(obj.data_interval_end), backfill,
    )
