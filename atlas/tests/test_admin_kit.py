"""The admin kit every app's admin uses: badges, links, text helpers and the read-only shapes."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User

from atlas.admin_kit import (
    RUNS,
    ImmutableMixin,
    Palette,
    ReadOnlyAdmin,
    ReadOnlyInline,
    RunRecordDisplay,
    ViewOnlyMixin,
    admin_link,
    badge,
    first_line,
    human_duration,
    json_pre,
    pre,
)
from atlas.models import AuditEvent


def test_badge_escapes_its_text_and_carries_its_classes():
    html = badge("<b>x</b>", "#123456", css_class="atlas-badge-x")
    assert html == '<span class="atlas-badge atlas-badge-x" style="background-color: #123456">&lt;b&gt;x&lt;/b&gt;</span>'


def test_palette_colours_by_status_with_a_grey_default_and_a_dash_for_none():
    palette = Palette({"ok": "#198754"}, css=("atlas-badge-{}", "app-{}"))
    assert palette.badge("ok", "All good") == (
        '<span class="atlas-badge atlas-badge-ok app-ok" style="background-color: #198754">All good</span>'
    )
    assert 'background-color: #6c757d">odd<' in palette.badge("odd")
    assert palette.badge(None) == palette.badge("") == "-"
    assert Palette({}, css=()).badge("x") == '<span class="atlas-badge" style="background-color: #6c757d">x</span>'


def test_run_palette_knows_every_run_status():
    for status in ("queued", "running", "succeeded", "failed", "cancelled", "skipped"):
        assert f"atlas-badge-{status}" in RUNS.badge(status)


@pytest.mark.parametrize(("seconds", "text"), [(None, None), (0.25, "0.2 s"), (75, "1 min 15 s"), (7500, "2 h 5 min")])
def test_human_duration(seconds, text):
    assert human_duration(None if seconds is None else timedelta(seconds=seconds)) == text


def test_first_line_pre_and_json_pre():
    assert first_line("\n  boom: it broke\n  at line 2") == "boom: it broke"
    assert first_line(None) == "" and len(first_line("x" * 500, 20)) == 20
    assert pre("") == "-" and pre("<tag>") == '<pre class="atlas-pre">&lt;tag&gt;</pre>'
    assert json_pre(None) == "-"
    assert json_pre({"b": 1, "a": [1]}, sort_keys=True) == pre('{\n  "a": [\n    1\n  ],\n  "b": 1\n}')


@pytest.mark.django_db
def test_admin_link_points_to_the_change_page():
    event = AuditEvent(pk=7)
    assert admin_link(event, "<seven>") == '<a href="/admin/atlas/auditevent/7/change/">&lt;seven&gt;</a>'
    assert admin_link(None) is None


@pytest.mark.django_db
def test_read_only_shapes():
    superuser = SimpleNamespace(user=User(is_superuser=True))
    staff = SimpleNamespace(user=User(is_staff=True))
    for shape in (ViewOnlyMixin(), ImmutableMixin(), ReadOnlyInline()):
        assert not shape.has_add_permission(staff) and not shape.has_change_permission(staff, None)
    history = ReadOnlyAdmin(AuditEvent, None)
    assert not history.has_add_permission(superuser) and not history.has_change_permission(superuser)
    assert history.has_delete_permission(superuser) and not history.has_delete_permission(staff)
    assert not ImmutableMixin().has_delete_permission(superuser)
    assert ReadOnlyInline.extra == 0 and ReadOnlyInline.can_delete is False


def test_run_record_display_uses_its_palette():
    run = SimpleNamespace(status="failed", get_status_display=lambda: "Failed", duration=timedelta(seconds=3),
                          error="boom\nmore", traceback="Traceback ...")

    class Display(RunRecordDisplay):
        palette = Palette({"failed": "#000000"}, css=("run-{}",))

    assert RunRecordDisplay().status_badge(run) == RUNS.badge("failed", "Failed")
    assert Display().status_badge(run) == '<span class="atlas-badge run-failed" style="background-color: #000000">Failed</span>'
    assert (RunRecordDisplay().duration_display(run), RunRecordDisplay().error_line(run)) == ("3.0 s", "boom")
    assert RunRecordDisplay().traceback_pre(run) == pre("Traceback ...")
