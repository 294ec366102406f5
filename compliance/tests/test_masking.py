"""Who may see PII: admin pages never send clear values to a user without the permission."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from atlas.models import AuditEvent
from compliance.masking import mask_rows
from compliance.models import PiiFinding, PiiScan
from pipelines.models import Dataset

from .conftest import CUSTOMERS_CSV, run_now

pytestmark = pytest.mark.slow
CLEAR = ("anna.schmidt@example.com", "+49 30 1234567", "john.smith@example.org", "carl.broken@example.com")


@pytest.fixture
def loaded(wh, pii_hook, customers_pipeline):
    pipeline = customers_pipeline(CUSTOMERS_CSV + "5,Carl,carl.broken@example.com\n")
    pipeline.steps.filter(name="ingest").update(max_rejected_share=0.5)
    run = run_now(pipeline)
    assert run.status == "succeeded", run.error
    return Dataset.objects.get(name="raw_customers")


@pytest.fixture
def analyst(db):
    user = get_user_model().objects.create_user("analyst", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_dataset", "view_piifinding"]))
    return user


def test_an_analyst_sees_no_clear_pii_on_admin_pages(client, loaded, analyst):
    client.force_login(analyst)
    pages = [reverse("admin:pipelines_dataset_change", args=[loaded.pk])]
    pages += [reverse("admin:compliance_piifinding_change", args=[f.pk]) for f in PiiFinding.objects.all()]
    pages.append(reverse("admin:compliance_piifinding_changelist"))
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for value in CLEAR:
            assert value not in html, (url, value)
    dataset_page = client.get(pages[0]).content.decode()
    assert "[EMAIL_ADDRESS hidden]" in dataset_page and "[RAW RECORD hidden]" in dataset_page
    assert not AuditEvent.objects.filter(action="pii.view_clear").exists()


def test_a_user_with_the_permission_sees_clear_values_and_is_audited(client, loaded, admin_user):
    client.force_login(admin_user)
    html = client.get(reverse("admin:pipelines_dataset_change", args=[loaded.pk])).content.decode()
    assert "anna.schmidt@example.com" in html
    events = list(AuditEvent.objects.filter(action="pii.view_clear"))
    assert events and all(e.actor == admin_user for e in events)
    assert any("email" in e.detail["columns"] for e in events)


def test_mask_rows_for_api_callers(loaded, analyst, admin_user):
    rows = [(1, "Anna", "anna.schmidt@example.com", None)]
    columns = ["customer_id", "first_name", "email", "phone"]
    assert mask_rows(analyst, loaded, columns, rows) == [[1, "[PERSON hidden]", "[EMAIL_ADDRESS hidden]", None]]
    assert mask_rows(admin_user, loaded, columns, rows) == [list(rows[0])]
    assert mask_rows(None, loaded, columns, rows)[0][2] == "[EMAIL_ADDRESS hidden]"


def test_dismissed_findings_are_not_masked(loaded, analyst):
    PiiFinding.objects.filter(column="first_name").update(status="dismissed")
    assert mask_rows(analyst, loaded, ["first_name"], [("Anna",)]) == [["Anna"]]


def test_admin_actions_confirm_and_rescan(client, loaded, admin_user):
    client.force_login(admin_user)
    email = PiiFinding.objects.get(column="email")
    url = reverse("admin:compliance_piifinding_changelist")
    client.post(url, {"action": "confirm", "_selected_action": [email.pk]})
    email.refresh_from_db()
    assert email.status == "confirmed" and email.decided_by == admin_user
    assert email.dataset.column_policies.count() == 0  # explore: the policy lands on chart
    assert Dataset.objects.get(name="customers").column_policies.get(column="email").action == "hash"
    client.post(url, {"action": "rescan", "_selected_action": [email.pk]})
    assert PiiScan.objects.filter(trigger="manual", status="succeeded").count() == 1
    for name in ("compliance_piiscan_changelist", "compliance_columnpolicy_changelist"):
        assert client.get(reverse(f"admin:{name}")).status_code == 200


def test_the_pipeline_editors_preview_hides_each_column_made_of_pii(loaded, analyst, admin_user):
    """A SELECT not yet any dataset's: each output column masked by its lineage (issue 18, item 3)."""
    from pipelines import editor

    analyst.user_permissions.add(Permission.objects.get(codename="change_pipeline"))
    sql = ("SELECT customer_id AS id, lower(email) AS contact, length(email) AS n, first_name || '!' AS hello"
           " FROM explore.customers ORDER BY customer_id")
    check, rows = editor.preview_step_sql(analyst, "refine", sql, limit=2)
    assert check.columns == ["id", "contact", "n", "hello"]
    assert [r[1] for r in rows] == ["[EMAIL_ADDRESS hidden]"] * 2 and [r[3] for r in rows] == ["[PERSON hidden]"] * 2
    assert [r[0] for r in rows] == ["1", "2"]  # the key is no PII: clear (Explore keeps text as received)
    assert not AuditEvent.objects.filter(action="pii.view_clear").exists()
    _check, clear = editor.preview_step_sql(admin_user, "refine", sql, limit=2)
    assert clear[0][1] == "anna.schmidt@example.com"
    seen = AuditEvent.objects.get(action="pii.view_clear", actor=admin_user)
    assert set(seen.detail["columns"]) >= {"contact", "hello"} and seen.detail["rows"] == 2


def test_the_data_browser_and_its_csv_hide_pii_from_an_analyst(client, loaded, analyst, admin_user):
    """Issue 18, item 4: the page and the download are masked alike; a clear download is audited."""
    client.force_login(analyst)
    page = client.get(reverse("admin:pipelines_dataset_data", args=[loaded.pk]) + "?sort=email").content.decode()
    download = client.get(reverse("admin:pipelines_dataset_data_csv", args=[loaded.pk]))
    body = b"".join(download.streaming_content).decode()
    for text in (page, body):
        assert "[EMAIL_ADDRESS hidden]" in text and not any(value in text for value in CLEAR)
    assert not AuditEvent.objects.filter(action="pii.view_clear").exists()
    client.force_login(admin_user)
    clear = b"".join(client.get(reverse("admin:pipelines_dataset_data_csv", args=[loaded.pk])).streaming_content)
    assert b"anna.schmidt@example.com" in clear
    assert AuditEvent.objects.filter(action="dataset.downloaded", actor=admin_user).exists()
    assert AuditEvent.objects.filter(action="pii.view_clear", actor=admin_user).exists()
