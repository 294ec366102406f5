from django.contrib import admin
from django.utils.html import format_html, format_html_join

from . import audit_words
from .admin_kit import RUN_COLOURS, ImmutableMixin, badge, first_line
from .humanize import audit_action
from .models import AuditEvent, BackgroundTask


class AuditActionFilter(admin.SimpleListFilter):
    """The recorded actions, listed in words (the machine name is the parameter)."""

    title = "event"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        actions = AuditEvent.objects.order_by().values_list("action", flat=True).distinct()
        return sorted(((a, audit_action(a)) for a in actions), key=lambda pair: pair[1].lower())

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ImmutableMixin, admin.ModelAdmin):
    """Read-only for everyone: the log is append-only, and the admin cannot change that.

    Each event reads as a sentence (``atlas.audit_words``): who did what to what, with its counts;
    the record as hashed (action code, JSON detail, hashes) stays on the event's page, folded.
    """

    list_display = ("seq", "at", "what_happened", "target_type")
    list_display_links = ("seq", "what_happened")
    list_filter = (AuditActionFilter, "target_type")
    search_fields = ("actor_name", "action", "target_repr", "target_id")
    date_hierarchy = "at"
    readonly_fields = ["what_happened", "details", *(f.name for f in AuditEvent._meta.fields)]
    fieldsets = (
        (None, {"fields": ("what_happened", "at", "details")}),
        ("The record as hashed", {
            "classes": ("collapse",),
            "fields": [f.name for f in AuditEvent._meta.fields if f.name not in ("id", "at")],
        }),
    )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        event = self.get_object(request, object_id)
        title = {"title": f"Event #{event.seq}", "subtitle": audit_words.sentence(event)} if event is not None else {}
        return super().change_view(request, object_id, form_url, {**title, **(extra_context or {})})

    @admin.display(description="what happened", ordering="action")
    def what_happened(self, obj: AuditEvent) -> str:
        """The event in words; the machine name stays in the record and the search."""
        return format_html('<span class="atlas-audit-event" title="{}">{}</span>', obj.action, audit_words.sentence(obj))

    @admin.display(description="details")
    def details(self, obj: AuditEvent) -> str:
        lines = audit_words.detail_lines(obj.detail)
        if not lines:
            return "—"
        return format_html(
            '<dl class="atlas-audit-detail">{}</dl>',
            format_html_join("", "<dt>{}</dt><dd>{}</dd>", lines),
        )


@admin.register(BackgroundTask)
class BackgroundTaskAdmin(ImmutableMixin, admin.ModelAdmin):
    """Heavy actions run in the background (atlas.background): their state, progress, result and error."""

    list_display = ("created_at", "kind", "state_badge", "progress", "target", "requested_by", "finished_at", "error_line")
    list_filter = ("state", "kind")
    readonly_fields = [f.name for f in BackgroundTask._meta.fields] + ["result_link"]

    @admin.display(description="state", ordering="state")
    def state_badge(self, task: BackgroundTask) -> str:
        return badge(task.state, RUN_COLOURS.get(task.state, "#6c757d"))

    @admin.display(description="error")
    def error_line(self, task: BackgroundTask) -> str:
        return first_line(task.error)

    @admin.display(description="result")
    def result_link(self, task: BackgroundTask) -> str | None:
        """The API resource holding the outcome (the request, the retention run ...)."""
        return format_html('<a href="{}">{}</a>', task.result_path, task.result_path) if task.result_path else None


# --- Roles at the beat door (security) ----------------------------------------------------------
# django-celery-beat registered its admin first (it comes before atlas in INSTALLED_APPS); swap in
# the classes that refuse a task the user could not run (atlas.schedule_admin).
from . import schedule_admin  # noqa: E402

schedule_admin.install()
