"""Numbers and yes/no as people read them, everywhere in the admin (issue 18, item 7).

Floats are rounded to significant digits with the exact stored value in a title (no ``0.30000000000000004``
or 18-decimal shares on a page); a "no" is a quiet ✗, not Django's red icon, consistent with the ✓.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.contrib.admin import utils
from django.core.management import call_command
from django.urls import NoReverseMatch, reverse

from atlas import humanize
from quality.models import Check, CheckResult

LONG_DECIMAL = re.compile(r"\d\.\d{7,}")  # 7+ decimals: float noise or a value no one reads


# --- failure paths first: the values that used to show raw

def test_float_noise_is_rounded_and_the_exact_value_kept_in_the_title():
    shown = humanize.exact_number(0.1 + 0.2)
    assert shown == '<span class="atlas-number" title="0.30000000000000004">0.3</span>'
    assert humanize.exact_number(0.123456789012345678) == '<span class="atlas-number" title="0.12345678901234568">0.123</span>'
    assert humanize.exact_number(12.5) == "12.5" and humanize.exact_number(2.0) == "2"  # nothing to hide: no title


def test_float_fields_and_float_values_in_the_admin_are_rounded():
    field = CheckResult._meta.get_field("failing_share")
    assert utils.display_for_field(1 / 3, field, "-") == '<span class="atlas-number" title="0.3333333333333333">0.333</span>'
    assert utils.display_for_field(None, field, "-") == "-"
    assert utils.display_for_value(2 / 3, "-") == '<span class="atlas-number" title="0.6666666666666666">0.667</span>'
    assert utils.display_for_value(12.5, "-") == "12.5"


def test_no_is_a_quiet_cross_consistent_with_the_tick_never_django_s_red_icon():
    field = Check._meta.get_field("enabled")
    no, yes = utils.display_for_field(False, field, "-"), utils.display_for_field(True, field, "-")
    assert no == '<span class="atlas-bool atlas-bool-no" role="img" aria-label="no" title="no">✗</span>'
    assert yes == '<span class="atlas-bool atlas-bool-yes" role="img" aria-label="yes" title="yes">✓</span>'
    assert "icon-no.svg" not in utils.display_for_value(False, "-", boolean=True)
    assert "atlas-bool-unknown" in utils.display_for_value(None, "-", boolean=True)


def test_a_check_page_shows_its_share_rounded(db, admin_client, wh, simple_pipeline):
    from pipelines.tests.conftest import run_now

    pipeline = simple_pipeline()
    check = Check.objects.create(dataset=pipeline.steps.get(name="refine").output, name="names", kind="not_null",
                                 columns=["name"], severity="warn", tolerance=0.1 + 0.2, enabled=False)
    run_now(pipeline)
    for url in (reverse("admin:quality_check_changelist"), reverse("admin:quality_check_change", args=[check.pk])):
        page = admin_client.get(url).content.decode()
        assert not LONG_DECIMAL.search(_text(page)), url
        assert "icon-no.svg" not in page


# --- every page of the admin, on the demo after its runs

class _Text(HTMLParser):
    """The text a reader sees: no attributes (titles keep exact values), scripts, styles or form values."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "textarea"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "textarea") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def _text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return " ".join(parser.parts)


@pytest.mark.slow
@pytest.mark.step_hooks
@pytest.mark.django_db(transaction=True)
def test_no_admin_page_of_the_demo_shows_float_noise_or_a_red_no(wh, admin_client):
    from pipelines.models import Pipeline, RunStatus
    from pipelines.tests.conftest import run_now

    call_command("load_demo", "--rows", "100", verbosity=0)
    run = run_now(Pipeline.objects.get(name="ecommerce"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    pages = 0
    offenders: list[str] = []
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        try:
            urls = [reverse("admin:{}_{}_changelist".format(*info))]
        except NoReverseMatch:
            continue
        urls += [reverse("admin:{}_{}_change".format(*info), args=[pk])
                 for pk in model_admin.get_queryset(_request()).order_by("-pk").values_list("pk", flat=True)[:2]]
        for url in urls:
            response = admin_client.get(url)
            if response.status_code != 200:
                continue
            pages += 1
            page = response.content.decode()
            text = _text(page)
            found = LONG_DECIMAL.findall(text)
            if found or "admin/img/icon-no.svg" in page:
                offenders.append(f"{url}: {found[:3] or 'icon-no.svg'}")
    assert pages > 40
    assert not offenders, offenders


def _request():
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = get_user_model().objects.filter(is_superuser=True).first()
    return request
