"""The compliance API: findings (masked samples, decisions by POST) and column policies, through the admin's services."""

from __future__ import annotations

import pytest

from atlas.api.testing import assert_error, token_client, user_with_role
from atlas.models import AuditEvent
from compliance.models import ColumnPolicy, PiiFinding
from pipelines.models import Dataset


@pytest.fixture
def clients(db):
    return {role: token_client(user_with_role(role, f"{role.lower()}-c")) for role in ("Operator", "Steward", "Analyst", "Auditor")}


@pytest.fixture
def finding(db):
    raw = Dataset.objects.create(name="raw_customers", layer="explore", table="customers")
    Dataset.objects.create(name="customers", layer="chart", table="customers")
    return PiiFinding.objects.create(dataset=raw, column="email", entity="EMAIL_ADDRESS", share=0.9, mean_score=0.8,
                                     samples=["ann@example.com", "bob@example.com"], sample_size=2)


def test_findings_show_samples_masked_unless_you_may_see_pii(clients, finding):
    assert clients["Auditor"].get(f"/api/v1/pii-findings/{finding.pk}/").json()["samples"] == ["[EMAIL_ADDRESS hidden]"] * 2
    for role in ("Analyst", "Operator"):  # findings are the stewards' (and auditors') business
        assert_error(clients[role].get(f"/api/v1/pii-findings/{finding.pk}/"), 403, "permission_denied")
    assert clients["Steward"].get(f"/api/v1/pii-findings/{finding.pk}/").json()["samples"] == [
        "ann@example.com", "bob@example.com"
    ]
    assert AuditEvent.objects.filter(action="pii.view_clear").count() == 1  # who saw what, recorded
    auditor = clients["Auditor"]
    listed = auditor.get("/api/v1/pii-findings/", {"status": "proposed", "entity": "EMAIL_ADDRESS"}).json()
    assert [f["id"] for f in listed["results"]] == [finding.pk]
    assert auditor.get("/api/v1/pii-findings/", {"status": "confirmed"}).json()["results"] == []
    assert_error(auditor.get("/api/v1/pii-findings/", {"status": "sure"}), 400, "invalid")


def test_a_steward_decides_a_finding_as_the_admin_does(clients, finding):
    for role in ("Analyst", "Operator", "Auditor"):
        assert_error(clients[role].post(f"/api/v1/pii-findings/{finding.pk}/decision/", {"decision": "confirm"}),
                     403, "permission_denied")
    steward = clients["Steward"]
    assert_error(steward.post(f"/api/v1/pii-findings/{finding.pk}/decision/", {"decision": "maybe"}), 400, "invalid")
    assert_error(steward.post(f"/api/v1/pii-findings/{finding.pk}/decision/", {}), 400, "invalid")
    assert_error(steward.post("/api/v1/pii-findings/999999/decision/", {"decision": "confirm"}), 404, "not_found")

    response = steward.post(f"/api/v1/pii-findings/{finding.pk}/decision/", {"decision": "confirm", "note": "emails"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["finding"]["status"] == "confirmed" and body["finding"]["decided_by"] == "steward-c"
    assert body["finding"]["note"] == "emails"
    event = AuditEvent.objects.get(action="pii.finding.confirmed")
    assert event.actor_name == "steward-c" and event.detail["column"] == "email"
    dismissed = steward.post(f"/api/v1/pii-findings/{finding.pk}/decision/", {"decision": "dismiss"}).json()
    assert dismissed["finding"]["status"] == "dismissed" and dismissed["proposed_policies"] == []
    assert AuditEvent.objects.filter(action="pii.finding.dismissed").count() == 1


def test_a_steward_manages_column_policies_validated_and_audited(clients, finding):
    chart = Dataset.objects.get(name="customers")
    steward = clients["Steward"]
    created = steward.post("/api/v1/column-policies/", {"dataset": chart.pk, "column": "email", "action": "mask",
                                                       "options": {"keep_last": 4}, "entity": "EMAIL_ADDRESS"})
    assert created.status_code == 201, created.content
    policy = ColumnPolicy.objects.get(pk=created.json()["id"])
    assert (policy.action, policy.options, policy.entity, policy.updated_by.username) == (
        "mask", {"keep_last": 4}, "EMAIL_ADDRESS", "steward-c"
    )
    assert AuditEvent.objects.filter(action="pii.policy.set", target_id=str(policy.pk)).count() == 1

    assert_error(steward.post("/api/v1/column-policies/", {"dataset": finding.dataset_id, "column": "email",
                                                          "action": "hash"}), 409, "conflict")  # not Chart
    assert_error(steward.post("/api/v1/column-policies/", {"dataset": chart.pk, "column": "phone",
                                                          "action": "keep"}), 409, "conflict")  # keep needs a reason
    assert_error(steward.post("/api/v1/column-policies/", {"dataset": chart.pk, "column": "email",
                                                          "action": "hash"}), 409, "conflict")  # one per column
    assert_error(steward.post("/api/v1/column-policies/", {"dataset": chart.pk, "column": "x", "action": "mask",
                                                          "options": ["keep_last"]}), 400, "invalid")

    changed = steward.patch(f"/api/v1/column-policies/{policy.pk}/", {"action": "hash", "options": {}})
    assert changed.status_code == 200 and changed.json()["action"] == "hash"
    audit = AuditEvent.objects.filter(action="pii.policy.set", target_id=str(policy.pk)).order_by("seq").last()
    assert audit.detail["before"]["action"] == "mask"
    assert_error(steward.patch(f"/api/v1/column-policies/{policy.pk}/", {"column": "other"}), 409, "conflict")  # a rule
    assert ColumnPolicy.objects.get(pk=policy.pk).column == "email"

    for role in ("Analyst", "Operator", "Auditor"):
        assert_error(clients[role].patch(f"/api/v1/column-policies/{policy.pk}/", {"action": "drop"}), 403)
    assert clients["Auditor"].get(f"/api/v1/column-policies/{policy.pk}/").status_code == 200
    assert steward.delete(f"/api/v1/column-policies/{policy.pk}/").status_code == 204
    assert not ColumnPolicy.objects.exists()
    assert AuditEvent.objects.filter(action="pii.policy.deleted").count() == 1
