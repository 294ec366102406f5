"""Every PII decision is in the audit log, and ``verify_audit_log`` catches a tampered one."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from atlas import audit
from atlas.models import AuditEvent
from compliance.models import ColumnPolicy, PiiFinding
from compliance.policies import decide_finding

from .conftest import run_now
from .demo import user_in_role

pytestmark = pytest.mark.slow


def actions(actor) -> list[str]:
    return list(AuditEvent.objects.filter(actor=actor).order_by("seq").values_list("action", flat=True))


def test_pii_decisions_views_and_scans_are_audited_and_a_tampered_decision_is_caught(
    client, wh, pii_hook, customers_pipeline
):
    run_now(customers_pipeline())
    steward = user_in_role("steward", "Steward")
    client.force_login(steward)
    email = PiiFinding.objects.get(column="email")
    phone = PiiFinding.objects.get(column="phone")
    decide_finding(email, status="confirmed", actor=steward)
    decide_finding(phone, status="dismissed", actor=steward, note="test numbers")
    # Through the admin: a note, a policy changed with its form, a policy deleted, a scan, clear samples seen.
    finding_url = reverse("admin:compliance_piifinding_change", args=[email.pk])
    assert client.post(finding_url, {"note": "customer emails"}).status_code == 302
    policy = ColumnPolicy.objects.get(column="email")
    policy_url = reverse("admin:compliance_columnpolicy_change", args=[policy.pk])
    response = client.post(policy_url, {
        "dataset": policy.dataset_id, "column": "email", "action": "mask", "options": '{"keep_last": 3}',
        "reason": "", "entity": "EMAIL_ADDRESS",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    client.post(reverse("admin:compliance_columnpolicy_delete", args=[policy.pk]), {"post": "yes"})
    client.post(reverse("admin:compliance_piiscan_scan"), {"dataset": email.dataset_id, "sample_size": 10})
    client.get(finding_url)
    # Privacy by default: the run protected the findings before any review; confirming turns the email's
    # default into a proposal, dismissing withdraws the phone's (a re-scan may adjust other defaults).
    done = actions(steward)
    assert [a for a in done if not a.startswith("pii.policy.default_")] == [
        "pii.finding.confirmed", "pii.policy.proposed", "pii.finding.dismissed", "pii.finding.note",
        "pii.policy.set", "pii.policy.deleted", "pii.scan", "pii.view_clear",
    ]
    assert done[3] == "pii.policy.default_withdrawn"  # right after the dismissal
    changed = AuditEvent.objects.get(action="pii.policy.set")
    assert changed.detail["before"]["action"] == "hash" and changed.detail["policy"] == "mask"
    call_command("verify_audit_log")

    # Someone with database access turns the dismissal into a confirmation: the chain says where.
    event = AuditEvent.objects.get(action="pii.finding.dismissed")
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE atlas_auditevent SET action = %s, detail = %s WHERE seq = %s",
            ["pii.finding.confirmed", json.dumps({**event.detail, "note": ""}), event.seq],
        )
    assert [p.seq for p in audit.verify()] == [event.seq]
    with pytest.raises(CommandError, match="does not verify"):
        call_command("verify_audit_log")
