"""Scan a dataset from the admin (form with a sample size, and an action on the datasets' list)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from atlas.models import AuditEvent
from compliance.models import PiiFinding, PiiScan
from pipelines.models import Dataset

from .conftest import run_now
from .demo import user_in_role

pytestmark = pytest.mark.slow


@pytest.fixture
def loaded(wh, customers_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = []  # nothing scanned on ingest: every scan here is the admin's
    run = run_now(customers_pipeline())
    assert run.status == "succeeded", run.error
    return Dataset.objects.get(name="raw_customers")


def test_a_steward_scans_a_dataset_with_a_sample_size(client, loaded):
    steward = user_in_role("steward", "Steward")
    client.force_login(steward)
    page = client.get(reverse("admin:pipelines_dataset_change", args=[loaded.pk])).content.decode()
    link = f'{reverse("admin:compliance_piiscan_scan")}?dataset={loaded.pk}'
    assert link in page
    form = client.get(link)
    assert form.status_code == 200 and f'<option value="{loaded.pk}" selected>' in form.content.decode()
    response = client.post(reverse("admin:compliance_piiscan_scan"), {"dataset": loaded.pk, "sample_size": 2})
    scan = PiiScan.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:compliance_piiscan_change", args=[scan.pk]
    )
    assert (scan.trigger, scan.status, scan.sample_size, scan.triggered_by) == ("manual", "succeeded", 2, steward)
    assert PiiFinding.objects.filter(column="email").get().sample_size == 2
    assert AuditEvent.objects.filter(action="pii.scan", actor=steward, detail__sample_size=2).exists()
    assert "Scan a dataset" in client.get(reverse("admin:compliance_piiscan_changelist")).content.decode()


@pytest.mark.parametrize("size", ["0", "-3", "abc", "", "1000001"])
def test_a_bad_sample_size_is_refused_with_a_reason(client, loaded, size):
    client.force_login(user_in_role("steward", "Steward"))
    response = client.post(reverse("admin:compliance_piiscan_scan"), {"dataset": loaded.pk, "sample_size": size})
    assert response.status_code == 200
    assert response.context["form"].errors["sample_size"]
    assert not PiiScan.objects.exists()


def test_an_unknown_dataset_is_refused(client, loaded):
    client.force_login(user_in_role("steward", "Steward"))
    response = client.post(reverse("admin:compliance_piiscan_scan"), {"dataset": 999999, "sample_size": 5})
    assert response.status_code == 200 and response.context["form"].errors["dataset"]
    assert not PiiScan.objects.exists()


def test_the_datasets_list_action_scans_each_selected_dataset(client, loaded):
    client.force_login(user_in_role("steward", "Steward"))
    url = reverse("admin:pipelines_dataset_changelist")
    client.post(url, {"action": "scan_for_pii", "_selected_action": [loaded.pk]})
    scan = PiiScan.objects.get()
    assert scan.dataset == loaded and scan.trigger == "manual" and scan.status == "succeeded"


def test_an_analyst_cannot_scan(client, loaded):
    analyst = user_in_role("analyst", "Analyst")
    client.force_login(analyst)
    assert client.get(reverse("admin:compliance_piiscan_scan")).status_code == 403
    assert client.post(reverse("admin:compliance_piiscan_scan"), {"dataset": loaded.pk, "sample_size": 5}).status_code == 403
    page = client.get(reverse("admin:pipelines_dataset_change", args=[loaded.pk])).content.decode()
    assert "atlas-scan-pii-link" not in page
    changelist = client.get(reverse("admin:pipelines_dataset_changelist")).content.decode()
    assert "scan_for_pii" not in changelist
    client.post(reverse("admin:pipelines_dataset_changelist"), {"action": "scan_for_pii", "_selected_action": [loaded.pk]})
    assert not PiiScan.objects.exists()
