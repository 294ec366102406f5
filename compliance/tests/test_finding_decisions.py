"""A finding's page decides it (issue 18, item 5): Confirm, Dismiss, or Keep in clear with a reason."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from atlas.models import AuditEvent
from compliance.models import ColumnPolicy, PiiFinding
from compliance.policies import PolicyError, keep_finding

from .conftest import run_now

pytestmark = pytest.mark.slow


@pytest.fixture
def finding(wh, pii_hook, customers_pipeline):
    run = run_now(customers_pipeline())
    assert run.status == "succeeded", run.error
    return PiiFinding.objects.get(dataset__name="raw_customers", column="email")


def test_keep_in_clear_confirms_and_keeps_every_chart_column_it_reaches_with_the_reason(finding, admin_user):
    kept = keep_finding(finding, reason="Support replies to customers by e-mail", actor=admin_user)
    finding.refresh_from_db()
    assert finding.status == "confirmed" and finding.note == "Support replies to customers by e-mail"
    assert [(p.dataset.name, p.column, p.action, p.reason) for p in kept] == [
        ("customers", "email", "keep", "Support replies to customers by e-mail")]
    assert ColumnPolicy.objects.get(dataset__name="customers", column="email").by_default is False
    assert AuditEvent.objects.filter(action="pii.policy.set", actor=admin_user).exists()


def test_keep_in_clear_without_a_reason_is_refused_and_changes_nothing(finding, admin_user):
    before = (finding.status, list(ColumnPolicy.objects.values_list("column", "action")))
    with pytest.raises(PolicyError, match="needs a reason"):
        keep_finding(finding, reason="   ", actor=admin_user)
    finding.refresh_from_db()
    assert (finding.status, list(ColumnPolicy.objects.values_list("column", "action"))) == before


def test_the_buttons_decide_for_who_may_change_findings(finding, client):
    url = reverse("admin:compliance_piifinding_decide", args=[finding.pk])
    page = reverse("admin:compliance_piifinding_change", args=[finding.pk])
    viewer = get_user_model().objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_piifinding"))
    client.force_login(viewer)
    assert "finding-decide" not in client.get(page).content.decode()  # no buttons for who may not decide
    assert client.post(url, {"decision": "dismiss"}).status_code == 403
    steward = get_user_model().objects.create_user("steward", is_staff=True)
    steward.user_permissions.add(*Permission.objects.filter(codename__in=["view_piifinding", "change_piifinding"]))
    client.force_login(steward)
    assert 'id="finding-decide"' in client.get(page).content.decode()
    assert client.get(url).status_code == 405
    refused = client.post(url, {"decision": "keep", "reason": ""}, follow=True)
    assert "Keeping a PII column in clear needs a reason." in refused.content.decode()
    assert "Choose Confirm, Dismiss or Keep" in client.post(url, {"decision": "maybe"}, follow=True).content.decode()
    finding.refresh_from_db()
    assert finding.status == "proposed"
    done = client.post(url, {"decision": "dismiss"}, follow=True)
    assert "Dismissed: not PII" in done.content.decode()
    finding.refresh_from_db()
    assert finding.status == "dismissed" and finding.decided_by == steward


def test_the_stewards_queue_puts_the_riskiest_first_and_an_empty_one_says_what_to_do(finding, client, admin_user):
    client.force_login(admin_user)
    url = reverse("admin:compliance_piifinding_changelist")
    PiiFinding.objects.exclude(pk=finding.pk).update(status="dismissed")  # decided: last
    listed = client.get(url).context["cl"].result_list
    assert listed[0] == finding and all(f.status == "dismissed" for f in listed[1:])
    assert [f.review_rank for f in listed] == sorted(f.review_rank for f in listed)
    assert "Ordered by risk" in client.get(url).content.decode()
    PiiFinding.objects.all().delete()
    assert "No PII findings yet. Every ingest scans what it" in client.get(url).content.decode()
