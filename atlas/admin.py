from django.contrib import admin

from .admin_kit import ImmutableMixin
from .humanize import audit_action
from .models import AuditEvent


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


# --- Roles at the beat door (security) ----------------------------------------------------------
# django-celery-beat registered its admin first (it comes before atlas in INSTALLED_APPS); swap in
# the classes that refuse a task the user could not run (atlas.schedule_admin).
from . import schedule_admin  # noqa: E402

schedule_admin.install()
