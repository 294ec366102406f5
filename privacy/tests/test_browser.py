"""The request admin page in a real headless Chromium: run the erasure action, see the proof."""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from conftest import IN_CI
from privacy import service
from privacy.models import DataSubjectRequest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_page(live_server, monkeypatch):
    if not shutil.which(CHROMIUM):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    get_user_model().objects.create_superuser("steward", "st@example.com", "s3cret-pass")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "steward")
        page.fill("#id_password", "s3cret-pass")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        yield page, live_server.url
        browser.close()
        connections.close_all()


def test_running_an_erasure_from_the_request_list_shows_the_proof(browser_page, shop):
    page, url = browser_page
    req = service.verify(service.submit("erasure", {"email": ["bob@example.com"]}))
    page.goto(f"{url}/admin/privacy/datasubjectrequest/")
    assert "due in" in page.inner_text("#result_list")
    page.check(f"input[name=_selected_action][value='{req.pk}']")
    page.select_option("select[name=action]", "run_requests")
    page.click("button[name=index]")
    page.wait_for_selector("ul.messagelist")
    assert f"{req}: done." in page.inner_text("ul.messagelist")
    assert DataSubjectRequest.objects.get(pk=req.pk).status == "completed"
    page.goto(f"{url}/admin/privacy/datasubjectrequest/{req.pk}/change/")
    proof = page.inner_text("#dsr-proof")
    assert "zero rows found" in proof and "explore.customers" in proof and "chart.orders" in proof
    assert "Erased: kept only as HMAC hashes" in page.inner_text("body")
    assert "bob@example.com" not in page.content()
