"""What every app's admin uses: read-only shapes for history, links, badges, durations, preformatted text.

One place, so that a run record, a status or a JSON document looks the same on
every page, and a fix to one (escaping, a colour) reaches them all. Everything
that renders HTML goes through ``format_html``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

ADMIN_CSS = {"all": ["atlas/admin.css"]}
GREY = "#6c757d"
BLUE = "#0d6efd"
GREEN = "#198754"
ORANGE = "#fd7e14"
RED = "#dc3545"
PURPLE = "#6f42c1"

# Run-record statuses (pipeline runs, step runs, scans, retention runs ...) share one palette.
RUN_COLOURS: dict[str, str] = {
    "queued": GREY,
    "running": BLUE,
    "succeeded": GREEN,
    "failed": RED,
    "cancelled": ORANGE,
    "skipped": GREY,
}


# --- formatting ------------------------------------------------------------------
def badge(text: object, colour: str = GREY, *, css_class: str = "") -> str:
    """A coloured label (``atlas-badge``); ``css_class`` adds classes pages and tests can select."""
    classes = f"atlas-badge {css_class}".strip()
    return format_html('<span class="{}" style="background-color: {}">{}</span>', classes, colour, text)


class Palette:
    """Badges coloured by a status value: one palette per family of statuses.

    ``css``: class templates filled with the status (``"atlas-badge-{}"`` gives
    ``atlas-badge-failed``), so a page can style or find a status by class.
    """

    def __init__(self, colours: Mapping[str, str], *, css: Sequence[str] = ("atlas-badge-{}",), default: str = GREY) -> None:
        self.colours = dict(colours)
        self.css = tuple(css)
        self.default = default

    def colour(self, status: str) -> str:
        return self.colours.get(status, self.default)

    def badge(self, status: str | None, label: object | None = None) -> str:
        """The status as a badge (``label`` shown instead of the value when given); ``-`` for none."""
        if not status:
            return "-"
        css_class = " ".join(template.format(status) for template in self.css)
        return badge(label or status, self.colour(status), css_class=css_class)


RUNS = Palette(RUN_COLOURS)


def human_duration(value: timedelta | None) -> str | None:
    """``1.2 s``, ``3 min 4 s``, ``2 h 5 min``; None when the record has not started."""
    if value is None:
        return None
    seconds = max(value.total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def first_line(text: str | None, chars: int = 120) -> str:
    """The first non-blank line of ``text``, truncated: an error or a note in a list column."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return Truncator(line).chars(chars)


def admin_link(obj: Any, text: object | None = None) -> str | None:
    """A link to ``obj``'s change page (its ``str`` unless ``text``); None for no object."""
    if obj is None:
        return None
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def pre(text: str | None) -> str:
    """Preformatted text (SQL, a traceback), wrapped and scrollable; ``-`` for none."""
    return format_html('<pre class="atlas-pre">{}</pre>', text) if text else "-"


def json_pre(value: Any, *, sort_keys: bool = False) -> str:
    """A JSON document, pretty-printed in a ``pre``; ``-`` for None."""
    if value is None:
        return "-"
    return pre(json.dumps(value, indent=2, sort_keys=sort_keys, default=str))


# --- read-only shapes ------------------------------------------------------------
class ViewOnlyMixin:
    """Records the system writes: nobody adds or edits them in the admin (deleting follows the model permission)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """History: nobody adds or edits it; only superusers may delete it."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


class ImmutableMixin(ViewOnlyMixin):
    """Evidence nobody adds, edits or deletes in the admin (the audit log)."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(ImmutableMixin):
    """Rows of history listed on their parent's page, nothing to add, edit or delete."""

    extra = 0
    can_delete = False


class RunRecordDisplay:
    """Columns every run record shows (status, duration, error, traceback); ``palette`` colours the status."""

    palette: Palette = RUNS

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Any) -> str:
        return self.palette.badge(obj.status, obj.get_status_display())

    @admin.display(description="duration")
    def duration_display(self, obj: Any) -> str | None:
        return human_duration(obj.duration)

    @admin.display(description="error")
    def error_line(self, obj: Any) -> str:
        return first_line(obj.error)

    @admin.display(description="traceback")
    def traceback_pre(self, obj: Any) -> str:
        return pre(obj.traceback)


class ManagedFromFilesWarning:
    """On the change page of a definition an ``atlas apply`` wrote: edits here are overwritten by the next apply."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from django.contrib import messages

        from .definitions.plan import managed_from_files

        obj = self.get_object(request, object_id) if object_id else None
        applied = managed_from_files(obj) if obj is not None else None
        if applied is not None and request.method == "GET":
            messages.warning(
                request,
                f"This {obj._meta.verbose_name} is managed from files ({applied.history_change_reason},"
                f" {applied.history_date:%Y-%m-%d %H:%M}): the next apply of that project overwrites what is"
                " changed here. Change the files instead, or export what you change here.",
            )
        return super().change_view(request, object_id, form_url, extra_context)

# --- background tasks (atlas.background) -----------------------------------------------
def enqueue_from_admin(modeladmin: admin.ModelAdmin, request: HttpRequest, kind: str, *, target: Any = None,
                       result_path: str = "", **params: Any) -> Any:
    """An admin button's heavy action, enqueued: one message linking to its task, which shows its state."""
    from django.contrib import messages

    from . import background

    try:
        task = background.enqueue(kind, actor=request.user, target=target, result_path=result_path, **params)
    except background.TaskNotSent as exc:
        modeladmin.message_user(request, f"{target}: {exc}", messages.ERROR)
        return None
    task.refresh_from_db()
    level = {"failed": messages.ERROR, "succeeded": messages.SUCCESS}.get(task.state, messages.INFO)
    tail = f": {first_line(task.error)}" if task.error else ""
    modeladmin.message_user(
        request, format_html("{}: {} ({}{})", target, admin_link(task, "background task"), task.state, tail), level
    )
    return task
