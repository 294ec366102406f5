"""Local times with their age everywhere in the admin (issue 18, item 7): list cells and read-only fields."""

from __future__ import annotations

import re
from datetime import timedelta

from django.contrib.admin import helpers, utils
from django.contrib.admin.templatetags import admin_list
from django.utils import timezone

from atlas import humanize
from pipelines.models import Pipeline, PipelineRun


def test_every_admin_helper_words_date_times_as_local_times_with_their_age():
    assert all(getattr(m.display_for_field, "atlas_local_time", False) for m in (utils, helpers, admin_list))
    humanize.install_admin_times()  # once only: a second call wraps nothing again
    field = PipelineRun._meta.get_field("created_at")
    shown = utils.display_for_field(timezone.now() - timedelta(hours=3), field, "-")
    assert shown.startswith("<time datetime=") and "(3 h ago)" in shown
    assert utils.display_for_field(None, field, "-") == "-"
    assert utils.display_for_value(timezone.now() - timedelta(days=3), "-").endswith('(3 days ago)</span></time>')
    assert utils.display_for_value(12.5, "-") == "12.5"  # the rest as Django words it


def test_run_pages_show_local_times_with_age_not_raw_stamps(admin_client, db):
    pipeline = Pipeline.objects.create(name="p")
    run = PipelineRun.objects.create(pipeline=pipeline, trigger="api", status="succeeded", created_at=timezone.now() - timedelta(minutes=10),
                                     started_at=timezone.now() - timedelta(minutes=10),
                                     finished_at=timezone.now() - timedelta(minutes=9))
    for url in ("/admin/pipelines/pipelinerun/", f"/admin/pipelines/pipelinerun/{run.pk}/change/"):
        html = admin_client.get(url).content.decode()
        assert re.search(r"<time datetime=\"[^\"]+\" title=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d"
                         r" <span class=\"atlas-age\">\((9|10) min ago\)</span></time>", html), url
