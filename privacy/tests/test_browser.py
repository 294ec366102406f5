"""The request admin page in a real headless Chromium: run the erasure action, see the proof."""

from __future__ import annotations

import pytest

from privacy import service
from privacy.models import DataSubjectRequest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]



def test_running_an_erasure_from_the_request_list_shows_the_proof(browser_page, shop):
    page, url = browser_page
    req = service.verify(service.submit("erasure", {"email": ["bob@example.com"]}))
    page.goto(f"{url}/admin/privacy/datasubjectrequest/")
    assert "due in" in page.inner_text("#result_list")
    page.check(f"input[name=_selected_action][value='{req.pk}']")
    page.select_option("select[name=action]", "run_requests")
    page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist")
    assert f"{req}: background task (succeeded)" in page.inner_text("ul.messagelist")  # tests run tasks inline
    assert DataSubjectRequest.objects.get(pk=req.pk).status == "completed"
    page.goto(f"{url}/admin/privacy/datasubjectrequest/{req.pk}/change/")
    proof = page.inner_text("#dsr-proof")
    assert "zero rows found" in proof and "explore.customers" in proof and "chart.orders" in proof
    assert "Erased: kept only as HMAC hashes" in page.inner_text("body")
    assert "bob@example.com" not in page.content()


def test_a_request_is_typed_a_field_per_kind_then_verified_and_run_from_its_page(browser_page, shop):
    """Issue 18, item 5: no JSON to type; the request's page holds Verify, then Run."""
    page, url = browser_page
    page.goto(f"{url}/admin/privacy/datasubjectrequest/add/")
    page.select_option("select[name=kind]", "erasure")
    page.fill("textarea[name=identifiers_email]", "Bob@Example.com\n")
    page.fill("input[name=reference]", "Letter 12")
    page.get_by_role("button", name="Save and continue editing").click()
    page.wait_for_url("**/admin/privacy/datasubjectrequest/*/change/")
    req = DataSubjectRequest.objects.get()
    assert req.identifiers == {"email": ["bob@example.com"]}
    assert page.get_by_role("button", name="Run").count() == 0  # not before it is verified
    page.get_by_role("button", name="Verify").click()
    page.wait_for_selector("ul.messagelist")
    assert f"{req}: verified." in page.inner_text("ul.messagelist")
    page.get_by_role("button", name="Run").click()
    page.wait_for_selector("ul.messagelist")
    assert "background task (succeeded)" in page.inner_text("ul.messagelist")
    assert "zero rows found" in page.inner_text("#dsr-proof")
    assert DataSubjectRequest.objects.get(pk=req.pk).status == "completed"


def test_subject_keys_are_proposed_and_confirmed_from_the_dataset_page(browser_page, shop):
    """Issue 18: where the operator meets the personal data, not through the key list's dropdown."""
    from compliance.models import PiiFinding
    from privacy.models import SubjectKey

    _, ds, _ = shop
    PiiFinding.objects.create(dataset=ds["raw_customers"], column="phone", entity="PHONE_NUMBER", status="confirmed")
    page, url = browser_page
    page.goto(f"{url}/admin/pipelines/dataset/{ds['raw_customers'].pk}/change/")
    panel = page.locator("#privacy-keys")
    assert "phone (phone)" in panel.locator("#privacy-keys-candidates").inner_text()
    panel.get_by_role("button", name="Propose keys from PII findings and lineage").click()
    page.wait_for_url(f"**/admin/pipelines/dataset/{ds['raw_customers'].pk}/change/#privacy-keys")
    assert "proposed from PII findings and lineage (raw_customers.phone)" in page.inner_text("ul.messagelist")
    row = page.locator("#privacy-keys tr[data-column=phone]")
    assert row.get_attribute("data-status") == "proposed"
    row.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#privacy-keys tr[data-column=phone][data-status=confirmed]")
    assert "Confirmed raw_customers.phone as a phone subject key" in page.inner_text("ul.messagelist")
    assert SubjectKey.objects.get(dataset=ds["raw_customers"], column="phone").status == "confirmed"
