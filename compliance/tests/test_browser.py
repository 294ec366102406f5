"""The steward's flow in a real headless Chromium (Debian's, driven by Playwright; nothing downloads a browser).

A steward confirms findings with the list action, sees the proposed policies,
changes one through its form, scans a dataset with a sample size; after the
next run an analyst opens the dataset pages and sees masked values only.
"""

from __future__ import annotations

import os
import re

import pytest

from compliance.models import ColumnPolicy, PiiFinding, PiiScan
from pipelines.models import Dataset

from .conftest import run_now
from .demo import user_in_role

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]



@pytest.mark.step_hooks  # the default hooks: this test is about what they do
def test_the_steward_flow_in_the_admin(chromium, wh, customers_pipeline):
    from atlas.roles import sync_roles

    sync_roles()  # a transactional test starts from a flushed database
    url = chromium.url

    def login(username: str):
        return chromium.login(username, "pw-" + username)

    pipeline = customers_pipeline()
    assert run_now(pipeline).status == "succeeded"
    user_in_role("steward", "Steward")
    user_in_role("analyst", "Analyst")
    raw = Dataset.objects.get(name="raw_customers")
    chart = Dataset.objects.get(name="customers")

    steward = login("steward")
    # Confirm the email and phone findings with the list action.
    steward.goto(f"{url}/admin/compliance/piifinding/?dataset__id__exact={raw.pk}")
    for column in ("email", "phone"):
        pk = PiiFinding.objects.get(dataset=raw, column=column).pk
        steward.check(f'input[name="_selected_action"][value="{pk}"]')
    steward.select_option('select[name="action"]', "confirm")
    steward.click('button[name="index"]')
    assert "2 finding(s) confirmed; 2 policy(ies) proposed." in steward.inner_text("ul.messagelist")
    # The proposed policies are listed; the steward keeps fewer phone digits through the policy's form.
    steward.goto(f"{url}/admin/compliance/columnpolicy/")
    listing = steward.inner_text("#result_list")
    assert "Hash (keyed HMAC-SHA256 pseudonym)" in listing and "Mask (keep the last N characters)" in listing
    phone = ColumnPolicy.objects.get(dataset=chart, column="phone")
    steward.goto(f"{url}/admin/compliance/columnpolicy/{phone.pk}/change/")
    steward.fill('textarea[name="options"]', '{"keep_last": 2}')
    steward.fill('textarea[name="reason"]', "Support asks for the last two digits only.")
    steward.click('input[name="_save"]')
    steward.wait_for_url(f"{url}/admin/compliance/columnpolicy/")
    phone.refresh_from_db()
    assert phone.options == {"keep_last": 2} and not phone.proposed
    # Scan the raw table again from the dataset page, with a smaller sample.
    steward.goto(f"{url}/admin/pipelines/dataset/{raw.pk}/change/")
    steward.click("#atlas-scan-pii-link")
    steward.fill('input[name="sample_size"]', "3")
    steward.click('input[name="_scan"]')
    scan = PiiScan.objects.filter(trigger="manual").get()
    steward.wait_for_url(f"{url}/admin/compliance/piiscan/{scan.pk}/change/")
    assert scan.sample_size == 3 and scan.status == "succeeded"
    assert PiiFinding.objects.get(dataset=raw, column="email").status == "confirmed"  # the decision survives

    assert run_now(pipeline).status == "succeeded"

    analyst = login("analyst")
    analyst.goto(f"{url}/admin/pipelines/dataset/{raw.pk}/change/")
    text = analyst.inner_text("body")
    assert "[EMAIL_ADDRESS hidden]" in text and "[PHONE_NUMBER hidden]" in text
    assert "anna.schmidt@example.com" not in text and "1234567" not in text
    assert "atlas-scan-pii-link" not in analyst.content()
    analyst.goto(f"{url}/admin/pipelines/dataset/{chart.pk}/change/")
    text = analyst.inner_text("body")
    assert "anna.schmidt@example.com" not in text and "+49 30 1234567" not in text
    assert re.search(r"\b[0-9a-f]{64}\b", text)  # the pseudonym
    assert "************67" in text  # "+49 30 1234567" with its last two characters
    os.makedirs("var/screenshots", exist_ok=True)
    analyst.screenshot(path="var/screenshots/pii-analyst.png", full_page=True)


def test_a_finding_is_kept_in_clear_from_its_page_with_a_reason(browser_page, wh, pii_hook, customers_pipeline):
    """Issue 18, item 5: the finding's page holds the decision; Keep in clear asks for the reason first."""
    page, url = browser_page
    assert run_now(customers_pipeline()).status == "succeeded"
    finding = PiiFinding.objects.get(dataset__name="raw_customers", column="email")
    page.goto(f"{url}/admin/compliance/piifinding/{finding.pk}/change/")
    box = page.locator("#finding-decide")
    assert "customers.email" in box.inner_text()  # where its data reaches
    box.get_by_role("button", name="Keep in clear with this reason").click()
    page.wait_for_load_state()
    assert "needs a reason" in page.inner_text(".messagelist")
    page.locator("#finding-decide input[name=reason]").fill("Support replies by e-mail")
    page.locator("#finding-decide").get_by_role("button", name="Keep in clear with this reason").click()
    page.wait_for_load_state()
    assert "Confirmed as PII and kept in clear (customers.email): Support replies by e-mail" in page.inner_text(".messagelist")
    assert ColumnPolicy.objects.get(dataset__name="customers", column="email").action == "keep"
    assert "Confirmed" in page.inner_text("div.field-status_badge")
