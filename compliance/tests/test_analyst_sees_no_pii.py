"""An Analyst (no ``view_pii_clear``) never receives a clear PII value from any admin page.

The demo runs with a steward's decisions (so Chart is protected, and a kept
column and free text remain); then a crawler follows every admin link an
analyst can reach — changelists, change pages, previews, quarantine, lineage —
and looks for the demo's clear emails, phones, birth dates and names.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from urllib.parse import urldefrag, urlsplit

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

from atlas.models import AuditEvent
from compliance.masking import mask_dicts, mask_value
from pipelines.models import Dataset, RunStatus

from .conftest import run_now
from .demo import Needles, clear_pii, confirm_customer_findings, leaks, load_demo, user_in_role

pytestmark = [pytest.mark.slow, pytest.mark.step_hooks]  # the demo as it runs: PII scans, policies, gates
HREF = re.compile(r'href="(/admin/[^"]*)"')
SKIP = re.compile(r"/(logout|password_change|delete|jsi18n)/|/r/\d+/")
MAX_PAGES = 1500


def start_pages() -> list[str]:
    """Every changelist, every object's change page, and per-dataset extra pages."""
    pages = ["/admin/"]
    for model in admin.site._registry:
        opts = model._meta
        try:
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        except NoReverseMatch:
            continue
        for pk in model._default_manager.values_list("pk", flat=True)[:200]:
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]))
    for dataset in Dataset.objects.all():
        for name in ("quality_quarantine", "lineage_lineagenode_dataset"):
            with contextlib.suppress(NoReverseMatch):
                pages.append(reverse(f"admin:{name}", args=[dataset.pk]))
    return pages


def crawl(client, pages: list[str], follow: bool = True) -> tuple[dict[str, int], dict[str, str]]:
    """GET every page and (``follow``) every /admin/ link on it (no query strings); statuses and HTML by path."""
    statuses: dict[str, int] = {}
    texts: dict[str, str] = {}
    queue = deque(pages)
    while queue and len(statuses) < MAX_PAGES:
        url = urldefrag(queue.popleft())[0]
        path = urlsplit(url).path
        if path in statuses or SKIP.search(path):
            continue
        response = client.get(path)
        statuses[path] = response.status_code
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        texts[path] = response.content.decode()
        if follow:
            queue.extend(h.replace("&amp;", "&") for h in HREF.findall(texts[path]))
    return statuses, texts


def test_an_analyst_receives_no_clear_pii_from_any_admin_page(client, wh):
    pipeline = load_demo()
    steward, analyst = user_in_role("steward", "Steward"), user_in_role("analyst", "Analyst")
    confirm_customer_findings(steward)
    # The steward keeps city in clear (the proposed default, with its reason); notes are anonymised.
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    clear = clear_pii(wh)
    assert all(clear.values())

    client.force_login(analyst)
    statuses, pages = crawl(client, start_pages())
    visited = [p for p, s in statuses.items() if s == 200]
    raw = Dataset.objects.get(layer="explore", table="customers")
    customers = Dataset.objects.get(layer="chart", table="customers")
    must_see = [
        reverse("admin:pipelines_dataset_change", args=[raw.pk]),
        reverse("admin:pipelines_dataset_change", args=[customers.pk]),
    ]
    assert set(must_see) <= set(visited), set(must_see) - set(visited)
    assert len(visited) > 50
    needles = Needles(clear)
    problems = {path: found for path, text in pages.items() if (found := needles.found(text))}
    assert problems == {}, {p: v[:5] for p, v in problems.items()}
    # The analyst saw placeholders, never a clear value, and nothing was audited as seen in clear.
    assert "[EMAIL_ADDRESS hidden]" in pages[must_see[0]]
    assert not AuditEvent.objects.filter(action="pii.view_clear", actor=analyst).exists()

    # An Auditor reads everything (findings with their samples, scans, policies, the audit log), never PII.
    auditor = user_in_role("auditor", "Auditor")
    client.force_login(auditor)
    compliance_pages = [p for p in start_pages() if p.startswith(("/admin/compliance/", "/admin/atlas/"))]
    statuses, pages = crawl(client, compliance_pages + must_see, follow=False)
    finding = reverse("admin:compliance_piifinding_change", args=[raw.pii_findings.get(column="email").pk])
    assert statuses[finding] == 200 and "[EMAIL_ADDRESS hidden]" in pages[finding]
    problems = {path: found for path, text in pages.items() if (found := needles.found(text))}
    assert problems == {}, {p: v[:5] for p, v in problems.items()}

    # The steward, who may, sees clear values on the same page (and the view is audited).
    client.force_login(steward)
    page = client.get(must_see[0]).content.decode()
    assert leaks(page, clear)
    assert AuditEvent.objects.filter(action="pii.view_clear", actor=steward).exists()


def test_masking_helpers_for_api_payloads(wh):
    """What the API's serializers call: rows as dicts, single values."""
    load_demo(rows=60)
    analyst, steward = user_in_role("analyst", "Analyst"), user_in_role("steward", "Steward")
    raw = Dataset.objects.get(layer="explore", table="customers")
    rows = [{"customer_id": "1", "email": "anna@example.com", "phone": None}, {"customer_id": "2"}]
    assert mask_dicts(analyst, raw, rows) == [
        {"customer_id": "1", "email": "[EMAIL_ADDRESS hidden]", "phone": None}, {"customer_id": "2"}
    ]
    assert mask_dicts(steward, raw, rows) == rows
    assert mask_value(analyst, raw, "email", "anna@example.com") == "[EMAIL_ADDRESS hidden]"
    assert mask_value(analyst, raw, "customer_id", "1") == "1"
    assert mask_value(steward, raw, "email", "anna@example.com") == "anna@example.com"
