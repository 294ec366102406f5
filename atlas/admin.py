from django.contrib import admin
from django.utils.html import format_html

from .admin_kit import RUN_COLOURS, ImmutableMixin, badge, first_line
from .humanize import audit_action
from .models import AuditEvent, BackgroundTask


@admin.register(AuditEvent)
class AuditEventAdmin(ImmutableMixin, admin.ModelAdmin):
    """Read-only for everyone: the log is append-only, and the admin cannot change that."""

    list_display = ("seq", "at", "actor_name", "event", "target_type", "target_repr")
    list_filter = ("action", "target_type")
    search_fields = ("actor_name", "action", "target_repr", "target_id")
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    @admin.display(description="event", ordering="action")
    def event(self, obj: AuditEvent) -> str:
        """The action in words; the machine name stays in the filter and on the event's page."""
        return audit_action(obj.action)


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
