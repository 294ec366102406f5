"""The API's human pages: the browsable API's breadcrumbs, and ReDoc without the internet."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_breadcrumbs_start_at_the_api_root_not_at_not_found(admin_client):
    # issue 18: "/api/v1" (no slash) resolved to the catch-all 404 view, listed as a red "Not Found"
    page = admin_client.get("/api/v1/pipelines/", HTTP_ACCEPT="text/html").content.decode()
    crumbs = re.findall(r'<li(?: class="active")?><a href="([^"]+)">([^<]+)</a></li>', page.split('class="breadcrumb"')[1].split("</ul>")[0])
    assert crumbs == [("/api/v1/", "Api Root"), ("/api/v1/pipelines/", "Pipeline List")]
    assert "Not Found" not in page.split('class="breadcrumb"')[1].split("</ul>")[0]


def test_unknown_api_urls_still_answer_404_in_the_apis_shape(admin_client):
    response = admin_client.get("/api/v1/nope/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_redoc_loads_nothing_from_the_internet(admin_client):
    response = admin_client.get("/api/redoc/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "fonts.googleapis" not in page and "fonts.gstatic" not in page and "https://" not in page
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "img-src 'self' data: blob:" in csp and "font-src 'self' data:" in csp
    assert 'a[href*="redocly.com"]' in page  # the "API docs by Redocly" link and its cdn.redoc.ly logo hidden
