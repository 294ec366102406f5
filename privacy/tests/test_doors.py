"""The four doors: the demo's "done means" from the admin, the API (roles), the command."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from atlas.api.testing import assert_error, task_result, token_client, user_with_role
from atlas.models import AuditEvent
from compliance.policies import set_policy
from demo.install import PIPELINE
from pipelines.models import Dataset, Pipeline, PipelineRun, RunStatus
from privacy import keys
from privacy.models import DataSubjectRequest, SubjectKey

from .conftest import count, run_now

DEMO_HOOKS = [
    "compliance.hooks.PiiHook", "privacy.hooks.TombstoneGuard", "quality.hooks.QualityGate", "lineage.hooks.LineageHook",
]


def _admin_action(client, action: str, ids: list[int], **extra):
    url = reverse("admin:privacy_datasubjectrequest_changelist")
    return client.post(url, {"action": action, "_selected_action": ids, "index": 0, **extra}, follow=True)


@pytest.mark.slow
def test_done_means_a_steward_erases_a_demo_customer_by_email_from_the_admin(wh, settings, client):
    settings.ATLAS_STEP_HOOKS = DEMO_HOOKS
    settings.PII_SCAN_AFTER_INGEST = False
    call_command("load_demo", "--rows", "300")
    pipeline = Pipeline.objects.get(name=PIPELINE)
    ds = {(d.layer, d.table): d for d in Dataset.objects.all()}
    set_policy(ds[("chart", "customers")], "email", action="hash", actor=None)
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    steward = user_with_role("Steward", is_staff=True)
    client.force_login(steward)

    # Keys: the steward declares the raw ones; lineage proposes the rest; the steward confirms them in the admin.
    for table, column, kind in [("customers", "email", "email"), ("customers", "customer_id", "customer_id"),
                                ("orders", "customer_id", "customer_id"), ("orders", "order_id", "order_id"),
                                ("order_items", "order_id", "order_id"), ("payments", "order_id", "order_id")]:
        keys.declare_key(ds[("explore", table)], column, kind=kind, actor=steward)
    client.post(reverse("admin:privacy_subjectkey_propose"))
    proposed = list(SubjectKey.objects.filter(status="proposed").values_list("pk", flat=True))
    client.post(reverse("admin:privacy_subjectkey_changelist"), {"action": "confirm", "_selected_action": proposed})
    chart_email = SubjectKey.objects.get(dataset=ds[("chart", "customers")], column="email")
    assert (chart_email.status, chart_email.storage) == ("confirmed", "hashed")
    assert SubjectKey.objects.filter(dataset=ds[("navigate", "customer_lifetime_value")], column="customer_id").exists()

    # A demo customer with orders that count in revenue.
    with wh.cursor() as cur:
        customer_id, subject_revenue = cur.execute(
            "SELECT o.customer_id, sum(i.line_amount) FROM chart.orders o JOIN chart.order_items i ON i.order_id = o.order_id"
            " WHERE coalesce(o.status, '') NOT IN ('cancelled', 'returned') GROUP BY o.customer_id"
            " ORDER BY o.customer_id LIMIT 1"
        ).fetchone()
        email = cur.execute(
            "SELECT email FROM explore.customers WHERE trim(customer_id) = %s AND trim(email) <> '' LIMIT 1",
            [str(customer_id)],
        ).fetchone()[0]
        revenue_before = cur.execute("SELECT sum(revenue) FROM navigate.daily_revenue").fetchone()[0]

    response = client.post(reverse("admin:privacy_datasubjectrequest_add"), {
        "kind": "erasure", "identifiers_email": email, "reference": "Letter 2026-11",
        "received_at_0": "2026-11-20", "received_at_1": "09:00:00",
    }, follow=True)
    assert response.status_code == 200
    assert DataSubjectRequest.objects.exists(), response.context["adminform"].form.errors
    req = DataSubjectRequest.objects.get()
    assert req.submitted_by == steward and req.status == "received"
    _admin_action(client, "verify_requests", [req.pk])
    response = _admin_action(client, "run_requests", [req.pk])
    req.refresh_from_db()
    [message] = [str(m) for m in response.context["messages"]]  # enqueued; tests run tasks inline
    assert message.startswith(f"{req}: <a href=\"/admin/atlas/backgroundtask/") and message.endswith("(succeeded)"), req.error
    assert req.status == "completed", (req.error, req.residue)

    # The proof: zero rows anywhere, every layer and quarantine searched.
    assert req.proof["rows_found"] == 0
    layers = {(t["layer"], t["quarantine"]) for t in req.proof["tables"] if t["columns_searched"]}
    assert {("explore", False), ("chart", False), ("navigate", False), ("explore", True)} <= layers
    assert count(wh, "chart.orders", "customer_id = %s", [customer_id]) == 0
    assert count(wh, "navigate.customer_lifetime_value", "customer_id = %s", [customer_id]) == 0
    # The revenue table rebuilt by a recorded run, without the subject's orders.
    rebuilt = req.erasures.filter(method="rebuild", table="navigate.daily_revenue").get()
    run = PipelineRun.objects.get(pk=rebuilt.run_id)
    assert run.status == "succeeded" and run.triggered_by == steward
    with wh.cursor() as cur:
        revenue_after = cur.execute("SELECT sum(revenue) FROM navigate.daily_revenue").fetchone()[0]
    assert Decimal(revenue_before) - Decimal(revenue_after) == Decimal(subject_revenue)
    # Every step in the audit log, and the log verifies.
    actions = set(AuditEvent.objects.filter(actor=steward).values_list("action", flat=True))
    assert {"dsr.request.received", "dsr.request.verified", "dsr.request.in_progress", "dsr.erasure.deleted",
            "dsr.erasure.rebuilt", "pipeline.run", "dsr.tombstones", "dsr.erasure.verified",
            "dsr.request.completed", "dsr.key.confirmed"} <= actions
    call_command("verify_audit_log")
    # The request page shows the proof.
    page = client.get(reverse("admin:privacy_datasubjectrequest_change", args=[req.pk])).content.decode()
    assert "zero rows found" in page and "navigate.daily_revenue" in page and email.strip().lower() not in page


def test_admin_download_is_permission_checked_audited_and_refused_once_expired(shop, client):
    from datetime import timedelta

    from django.utils import timezone

    from privacy import service
    from privacy.models import DsrExport

    req = service.run(service.verify(service.submit("access", {"email": ["ann@example.com"]})))
    export = req.exports.get()
    url = reverse("admin:privacy_dsr_download", args=[req.pk, export.pk])
    auditor = user_with_role("Auditor", is_staff=True)
    client.force_login(auditor)
    assert client.get(url).status_code == 403
    page = client.get(reverse("admin:privacy_datasubjectrequest_change", args=[req.pk]))
    assert page.status_code == 200  # auditors read requests
    steward = user_with_role("Steward", is_staff=True)
    client.force_login(steward)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")
    assert AuditEvent.objects.filter(action="dsr.export.downloaded", actor=steward).count() == 1
    DsrExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    response = client.get(url)
    assert response.status_code == 410 and "expired" in response.content.decode()


def test_admin_reject_needs_a_reason_and_overdue_requests_are_flagged(shop, client):
    from datetime import timedelta

    from django.utils import timezone

    from privacy import service

    steward = user_with_role("Steward", is_staff=True)
    client.force_login(steward)
    late = service.submit("erasure", {"email": ["bob@example.com"]}, received_at=timezone.now() - timedelta(days=40))
    page = client.get(reverse("admin:privacy_datasubjectrequest_changelist") + "?deadline=overdue").content.decode()
    assert "OVERDUE" in page and f"DSR #{late.pk}" in page
    response = _admin_action(client, "reject", [late.pk], reason="")
    assert "needs a reason" in response.content.decode()
    _admin_action(client, "reject", [late.pk], reason="Not our customer.")
    late.refresh_from_db()
    assert late.status == "rejected" and late.reject_reason == "Not our customer."


def test_api_stewards_manage_auditors_read(shop):
    steward, auditor = token_client(user_with_role("Steward")), token_client(user_with_role("Auditor"))
    bad = steward.post("/api/v1/dsr-requests/", {"kind": "erasure", "identifiers": {"iban": ["x"]}}, format="json")
    assert "Unknown identifier kind 'iban'" in str(assert_error(bad, 409)["detail"])
    assert_error(auditor.post("/api/v1/dsr-requests/", {"kind": "erasure", "identifiers": {"email": ["a@b.c"]}}), 403)
    created = steward.post("/api/v1/dsr-requests/", {"kind": "erasure", "identifiers": {"email": ["bob@example.com"]}})
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert_error(steward.post(f"/api/v1/dsr-requests/{pk}/run/"), 409, "dsr_refused")
    assert_error(auditor.post(f"/api/v1/dsr-requests/{pk}/verify/"), 403)
    assert steward.post(f"/api/v1/dsr-requests/{pk}/verify/").json()["status"] == "verified"
    done = task_result(steward, steward.post(f"/api/v1/dsr-requests/{pk}/run/"))
    assert done["status"] == "completed" and done["proof"]["rows_found"] == 0 and done["identifiers_hashed"]
    body = auditor.get(f"/api/v1/dsr-requests/{pk}/").json()
    assert body["erasures"] and "bob@example.com" not in str(body)
    assert auditor.get("/api/v1/tombstones/").json()["count"] >= 1
    assert_error(steward.post(f"/api/v1/dsr-requests/{pk}/reject/", {"reason": "late"}), 409, "dsr_refused")
    keys_list = auditor.get("/api/v1/subject-keys/").json()
    assert keys_list["count"] == SubjectKey.objects.count()
    assert_error(auditor.post("/api/v1/subject-keys/propose/"), 403)
    assert steward.post("/api/v1/subject-keys/propose/").status_code == 200


def test_api_access_export_download_and_expiry(shop):
    from datetime import timedelta

    from django.utils import timezone

    from privacy.models import DsrExport

    steward, auditor = token_client(user_with_role("Steward")), token_client(user_with_role("Auditor"))
    pk = steward.post("/api/v1/dsr-requests/", {"kind": "access", "identifiers": {"customer_id": ["3"]}}).json()["id"]
    steward.post(f"/api/v1/dsr-requests/{pk}/verify/")
    body = task_result(steward, steward.post(f"/api/v1/dsr-requests/{pk}/run/"))
    export_id = body["exports"][0]["id"]
    url = f"/api/v1/dsr-requests/{pk}/exports/{export_id}/download/"
    assert_error(auditor.get(url), 403)
    response = steward.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    DsrExport.objects.filter(pk=export_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "expired" in assert_error(steward.get(url), 410, "gone")["message"]


def test_command_submit_run_verify_and_errors(shop, capsys):
    call_command("dsr", "submit", "--kind", "erasure", "--id", "email=cy@example.com", "--verified")
    req = DataSubjectRequest.objects.get()
    call_command("dsr", "run", str(req.pk))
    out = capsys.readouterr().out
    assert "completed" in out and "verification: 0 row(s) found" in out
    call_command("dsr", "verify-erasure", str(req.pk))
    with pytest.raises(CommandError, match="Unknown identifier kind 'iban'"):
        call_command("dsr", "submit", "--kind", "access", "--id", "iban=GB00")
    with pytest.raises(CommandError, match="write KIND=VALUE"):
        call_command("dsr", "submit", "--kind", "access", "--id", "cy@example.com")
    with pytest.raises(CommandError, match="No data-subject request #999"):
        call_command("dsr", "run", "999")
    with pytest.raises(CommandError, match="cannot be run again"):
        call_command("dsr", "run", str(req.pk))
    call_command("dsr", "submit", "--kind", "access", "--id", "customer_id=2", "--verified")
    access = DataSubjectRequest.objects.get(kind="access")
    call_command("dsr", "run", str(access.pk))
    call_command("dsr", "export", str(access.pk))
    assert access.exports.count() == 2 and "Export #" in capsys.readouterr().out


def test_keys_through_the_api_and_the_command(shop, capsys):
    steward = token_client(user_with_role("Steward"))
    bad = steward.post("/api/v1/subject-keys/", {"dataset": "orders", "column": "nope", "kind": "customer_id"})
    assert "has no column 'nope'" in str(assert_error(bad, 400)["detail"])
    made = steward.post("/api/v1/subject-keys/", {"dataset": "orders", "column": "order_id", "kind": "order_id"})
    assert made.status_code == 201 and made.json()["status"] == "confirmed"
    call_command("dsr", "key", "chart.orders", "amount", "amount_as_id")
    call_command("dsr", "keys")
    out = capsys.readouterr().out
    assert "chart.orders.order_id (order_id, clear)" in out and "amount_as_id" in out
    with pytest.raises(CommandError, match="Unknown dataset 'nope'"):
        call_command("dsr", "key", "nope", "x", "email")
    call_command("dsr", "list", "--overdue")


def test_admin_declares_a_key_and_refuses_a_bad_one(shop, client):
    from django.core.exceptions import ValidationError

    from privacy.models import ErasureSetting

    _, ds, _ = shop
    client.force_login(user_with_role("Steward", is_staff=True))
    url = reverse("admin:privacy_subjectkey_add")
    client.post(url, {"dataset": ds["orders"].pk, "column": "order_id", "kind": "order_id", "storage": "clear"})
    key = SubjectKey.objects.get(dataset=ds["orders"], column="order_id")
    assert key.status == "confirmed" and AuditEvent.objects.filter(action="dsr.key.confirmed", target_id=str(key.pk)).exists()
    response = client.post(url, {"dataset": ds["orders"].pk, "column": "nope", "kind": "x", "storage": "clear"}, follow=True)
    assert "has no column &#x27;nope&#x27;" in response.content.decode()
    assert not SubjectKey.objects.filter(column="nope").exists()
    with pytest.raises(ValidationError, match="apply to Navigate datasets"):
        ErasureSetting(dataset=ds["orders"]).full_clean()


def test_a_shared_address_stops_for_review_and_is_approved_through_the_api_and_the_command(shop, wh):
    with wh.cursor() as cur:  # Bob's row now carries Ann's address too (a shared family mailbox)
        cur.execute("UPDATE explore.customers SET email = 'ann@example.com' WHERE trim(customer_id) = '2'")
    steward, auditor = token_client(user_with_role("Steward")), token_client(user_with_role("Auditor"))
    pk = steward.post("/api/v1/dsr-requests/", {"kind": "erasure", "identifiers": {"email": ["ann@example.com"]}},
                      format="json").json()["id"]
    steward.post(f"/api/v1/dsr-requests/{pk}/verify/")
    body = task_result(steward, steward.post(f"/api/v1/dsr-requests/{pk}/run/"))
    assert body["status"] == "review" and body["review"]["reached"]["customer_id"] == 2
    assert count(wh, "explore.customers") == 3 and count(wh, "chart.orders") == 4  # nothing deleted
    assert "ann@example.com" not in str(auditor.get(f"/api/v1/dsr-requests/{pk}/").json())
    assert_error(auditor.post(f"/api/v1/dsr-requests/{pk}/approve-expansion/", {"note": "x"}), 403)
    assert_error(steward.post(f"/api/v1/dsr-requests/{pk}/approve-expansion/", {}), 400)
    with pytest.raises(CommandError, match="needs a note"):
        call_command("dsr", "approve-expansion", str(pk), "--note", " ")
    call_command("dsr", "approve-expansion", str(pk), "--note", "Ann and Bob share the mailbox and asked together.")
    assert AuditEvent.objects.filter(action="dsr.request.verified", target_id=str(pk)).count() == 2
    done = task_result(steward, steward.post(f"/api/v1/dsr-requests/{pk}/run/"))
    assert done["status"] == "completed", done["error"]
    assert count(wh, "explore.customers") == 1 and count(wh, "chart.orders") == 1
    assert_error(steward.post(f"/api/v1/dsr-requests/{pk}/approve-expansion/", {"note": "again"}), 409, "dsr_refused")
