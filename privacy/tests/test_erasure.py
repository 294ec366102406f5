"""Erasure across Explore, Chart, Navigate and quarantine, with clear and hashed keys; verification; tombstones."""

from __future__ import annotations

import pytest

from atlas import audit
from atlas.models import AuditEvent
from compliance.policies import pseudonym
from pipelines.models import PipelineRun
from privacy import keys, service
from privacy.models import ErasureRecord, ErasureSetting, Tombstone
from privacy.search import DsrError

from .conftest import CUSTOMERS, count, run_now


def test_erasure_by_email_removes_the_subject_everywhere_and_proves_it(shop, wh):
    pipeline, ds, _ = shop
    req = service.submit("erasure", {"email": ["  ANN@example.com"]})
    service.verify(req)
    req = service.run(req)
    assert req.status == "completed", (req.error, req.residue)
    assert count(wh, "explore.customers") == 2 and count(wh, "chart.customers") == 2
    assert count(wh, "explore.orders", "trim(customer_id) = '1'") == 0 and count(wh, "explore.orders") == 2
    assert count(wh, "chart.orders", "customer_id = 1") == 0
    assert count(wh, "chart.customers", "email = %s", [pseudonym("ann@example.com")]) == 0
    assert count(wh, "navigate.customer_value", "customer_id = 1") == 0
    with wh.cursor() as cur:
        orders, revenue = cur.execute("SELECT orders, revenue FROM navigate.revenue").fetchone()
    assert orders == 2 and float(revenue) == 21.25
    removed = {e.table: e.rows_removed for e in req.erasures.exclude(method="rebuild")}
    assert removed["explore.customers"] == 1 and removed["explore.orders"] == 2
    assert removed["chart.customers"] == 1 and removed["chart.orders"] == 2 and removed["navigate.customer_value"] == 1
    rebuilt = req.erasures.filter(method=ErasureRecord.Method.REBUILD)
    assert [e.table for e in rebuilt] == ["navigate.revenue"]
    assert PipelineRun.objects.get(pk=rebuilt[0].run_id).status == "succeeded"
    assert req.proof["rows_found"] == 0 and all(t["rows_found"] == 0 for t in req.proof["tables"])
    assert {t["layer"] for t in req.proof["tables"]} == {"explore", "chart", "navigate"}
    # Remembered only by hashes.
    assert req.identifiers_hashed and "ann@example.com" not in str(req.identifiers) + str(req.resolved)
    assert Tombstone.objects.filter(kind="email", hash=pseudonym("ann@example.com")).exists()
    assert service.is_erased("customer_id", "1") and not service.is_erased("customer_id", "2")


def test_reingesting_a_modified_old_file_cannot_bring_the_subject_back(shop, wh):
    pipeline, ds, files = shop
    req = service.submit("erasure", {"email": ["ann@example.com"]})
    service.run(service.verify(req))
    # The old file again, with one changed line (the same file would be skipped by its checksum).
    files["customers"].write_text(CUSTOMERS + "4,dee@example.com,+44 20 7946 0004,Dee\n")
    run = run_now(pipeline)
    assert run.status == "succeeded", run.error
    ingest = run.step_runs.get(step_name="ingest_customers")
    assert ingest.rows_rejected == 1 and ingest.details["erased_subject_rows"] == 1
    assert count(wh, "explore.customers", "lower(trim(email)) = 'ann@example.com'") == 0
    assert count(wh, "explore.customers", "trim(customer_id) = '4'") == 1
    assert count(wh, "chart.customers", "customer_id = 1") == 0
    with wh.cursor() as cur:
        rows = cur.execute(
            'SELECT _reason, _raw_record FROM explore."customers__quarantine" WHERE _reason = %s', ["erased data subject"]
        ).fetchall()
    assert rows == [("erased data subject", None)]  # counted, kept nowhere in clear
    # The verification scan still finds nothing (the quarantined row holds no value of the person).
    assert service.check_erasure(req).residue == []


def test_a_full_refresh_loads_the_old_files_again_without_the_erased_subject(shop, wh):
    pipeline, _, _ = shop
    service.run(service.verify(service.submit("erasure", {"email": ["ann@example.com"]})))
    run = run_now(pipeline, full_refresh=True)  # every file again, the erased subject's included
    assert run.status == "succeeded", run.error
    assert run.step_runs.get(step_name="ingest_customers").details["erased_subject_rows"] == 1
    assert count(wh, "explore.customers") == 2 and count(wh, "chart.customers", "customer_id = 1") == 0
    assert count(wh, "explore.orders", "trim(customer_id) = '1'") == 0
    assert count(wh, "navigate.customer_value", "customer_id = 1") == 0


def test_quarantined_raw_records_are_searched_and_erased(shop, wh):
    _, ds, _ = shop
    wh.ensure_quarantine_table("explore", "customers")
    with wh.cursor() as cur:
        cur.execute(
            'INSERT INTO explore."customers__quarantine" (_batch_id, _reason, _raw_record, _quarantined_at)'
            " VALUES ('b1', 'bad line', '9,ANN@example.com,,,broken', current_timestamp),"
            " ('b1', 'bad line', '8,someone@else.org,,', current_timestamp)"
        )
    req = service.run(service.verify(service.submit("erasure", {"email": ["ann@example.com"]})))
    assert req.status == "completed"
    record = req.erasures.get(table="explore.customers__quarantine")
    assert record.method == "quarantine" and record.rows_removed == 1
    assert count(wh, 'explore."customers__quarantine"') == 1


def test_verification_keeps_the_request_in_progress_while_rows_remain(shop, wh):
    _, ds, _ = shop
    # A Navigate table holding customer ids that no key declares: erasure does not know it, the scan does.
    from pipelines.models import Dataset

    with wh.cursor() as cur:
        cur.execute("CREATE TABLE navigate.mailing AS SELECT customer_id, 'x' AS segment FROM chart.customers")
    mailing = Dataset.objects.create(name="mailing", layer="navigate", table="mailing")
    req = service.run(service.verify(service.submit("erasure", {"email": ["ann@example.com"]})))
    assert req.status == "in_progress" and not req.identifiers_hashed
    assert [(r["table"], r["column"], r["rows_found"], r["status"]) for r in req.residue] == [
        ("navigate.mailing", "customer_id", 1, "unexplained")
    ]
    assert "navigate.mailing.customer_id refers to the erased subject: declare it a key" in req.error
    # The steward declares the key, deletes its rows and runs the request again: now it completes.
    ErasureSetting.objects.create(dataset=mailing, mode="delete_rows")
    keys.declare_key(mailing, "customer_id", kind="customer_id")
    req = service.run(req)
    assert req.status == "completed" and req.proof["rows_found"] == 0


def test_identifier_expansion_is_bounded(shop, settings):
    settings.ATLAS_DSR_MAX_IDENTIFIERS = 1
    req = service.verify(service.submit("erasure", {"email": ["ann@example.com"]}))
    with pytest.raises(DsrError, match="ATLAS_DSR_MAX_IDENTIFIERS"):
        service.run(req)
    req.refresh_from_db()
    assert req.status == "in_progress" and "ATLAS_DSR_MAX_IDENTIFIERS" in req.error


def test_the_audit_log_holds_every_step_and_verifies(shop):
    req = service.run(service.verify(service.submit("erasure", {"customer_id": [2]})))
    actions = list(AuditEvent.objects.filter(target_id=str(req.pk), target_type="privacy.datasubjectrequest")
                   .order_by("seq").values_list("action", flat=True))
    for expected in ("dsr.request.received", "dsr.request.verified", "dsr.request.in_progress",
                     "dsr.erasure.deleted", "dsr.erasure.rebuilt", "dsr.tombstones", "dsr.erasure.verified",
                     "dsr.request.completed"):
        assert expected in actions
    assert list(audit.verify()) == []
