"""Requests: validated identifiers, due dates, the status machine, overdue ones; access exports and their expiry."""

from __future__ import annotations

import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from atlas.models import AuditEvent
from privacy import service
from privacy.models import DataSubjectRequest, DsrExport
from privacy.search import DsrError
from privacy.tasks import purge_expired_exports_task


@pytest.mark.parametrize(
    ("identifiers", "message"),
    [
        ({}, "at least one identifier"),
        ([], "at least one identifier"),
        ({"shoe_size": ["42"]}, "Unknown identifier kind 'shoe_size'.*known kinds: customer_id, email"),
        ({"Email!": ["x"]}, "lower-case letters"),
        ({"email": []}, "are empty"),
        ({"email": ["   "]}, "are empty"),
        ({"email": {"a": 1}}, "must be a list"),
    ],
)
def test_bad_identifiers_are_refused_with_a_clear_error(shop, identifiers, message):
    with pytest.raises(DsrError, match=message):
        service.submit("erasure", identifiers)
    assert not DataSubjectRequest.objects.exists()


def test_unknown_request_kind_is_refused(shop):
    with pytest.raises(DsrError, match="Unknown request kind 'forget'"):
        service.submit("forget", {"email": ["ann@example.com"]})


def test_due_date_follows_the_setting_and_overdue_requests_stand_out(shop, settings):
    settings.ATLAS_DSR_DUE_DAYS = 10
    received = timezone.now() - timedelta(days=12)
    late = service.submit("access", {"email": ["ann@example.com"]}, received_at=received)
    on_time = service.submit("access", {"email": ["bob@example.com"]})
    assert late.due_at == received + timedelta(days=10)
    assert late.is_overdue and not on_time.is_overdue
    assert list(DataSubjectRequest.objects.overdue()) == [late]
    service.reject(late, reason="Duplicate of an earlier request.")
    assert not DataSubjectRequest.objects.overdue().exists()


def test_illegal_transitions_are_refused_and_every_transition_is_audited(shop):
    req = service.submit("erasure", {"email": ["ann@example.com"]})
    with pytest.raises(DsrError, match="only a verified request.*verify it first"):
        service.run(req)
    with pytest.raises(DsrError, match="run the erasure before verifying it"):
        service.check_erasure(req)
    with pytest.raises(DsrError, match="needs a reason"):
        service.reject(req, reason="  ")
    service.verify(req)
    with pytest.raises(DsrError, match="is verified: it cannot become verified"):
        service.verify(req)
    service.reject(req, reason="Identity could not be confirmed.")
    req.refresh_from_db()
    assert req.status == "rejected" and req.reject_reason == "Identity could not be confirmed."
    with pytest.raises(DsrError, match="it cannot be run again"):
        service.run(req)
    with pytest.raises(DsrError, match="cannot become verified.*nothing \\(it is closed\\)"):
        service.verify(req)
    events = AuditEvent.objects.filter(target_type="privacy.datasubjectrequest", target_id=str(req.pk))
    actions = list(events.order_by("seq").values_list("action", flat=True))
    assert actions == ["dsr.request.received", "dsr.request.verified", "dsr.request.rejected"]


def test_access_export_holds_every_row_about_the_subject_with_a_manifest(shop, wh):
    req = service.run(service.verify(service.submit("access", {"email": ["ann@example.com"]}, reference="T-7")))
    assert req.status == "completed"
    export = req.exports.get()
    with zipfile.ZipFile(export.path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = set(zf.namelist())
        chart_orders = json.loads(zf.read("chart/orders.json"))
        csv_text = zf.read("explore/customers.csv").decode()
    by_table = {d["table"]: d["rows"] for d in manifest["datasets"]}
    assert by_table["explore.customers"] == 1 and by_table["chart.customers"] == 1
    assert by_table["explore.orders"] == 2 and by_table["chart.orders"] == 2 and by_table["navigate.customer_value"] == 1
    assert manifest["rows"] == export.rows == sum(by_table.values()) and manifest["reference"] == "T-7"
    assert {"explore/customers.json", "explore/customers.csv", "chart/customers.json", "navigate/customer_value.csv"} <= names
    assert sorted(o["order_id"] for o in chart_orders) == [10, 11]
    assert csv_text.splitlines()[0].startswith("customer_id,email,phone,name") and "Ann@Example.com" in csv_text
    # Read-only: nothing was removed.
    assert wh.row_count("chart", "customers") == 3


def test_hashed_keys_are_found_by_the_hash_of_the_identifier(shop, wh):
    from privacy.models import SubjectKey

    SubjectKey.objects.exclude(kind="email").delete()  # only e-mail keys: Chart holds it hashed
    req = service.run(service.verify(service.submit("access", {"email": ["ANN@example.com "]})))
    tables = {d["table"]: d["rows"] for d in req.exports.get().manifest["datasets"]}
    assert tables["chart.customers"] == 1 and tables["explore.customers"] == 1


def test_downloads_are_audited_and_expired_exports_refused_then_deleted(shop, settings):
    req = service.run(service.verify(service.submit("access", {"email": ["bob@example.com"]})))
    export = req.exports.get()
    path = service.download(export)
    assert path.is_file()
    assert AuditEvent.objects.filter(action="dsr.export.downloaded", target_id=str(req.pk)).count() == 1
    DsrExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    export.refresh_from_db()
    with pytest.raises(service.ExportExpired, match=f"Export #{export.pk} expired at .* create a new export"):
        service.download(export)
    assert purge_expired_exports_task.delay().get() == 1
    export.refresh_from_db()
    assert export.deleted_at is not None and not Path(export.path).exists()
    # A new export can be made for the same request.
    assert service.create_export(req).rows == export.rows


def test_exports_are_for_access_requests_only(shop):
    req = service.verify(service.submit("erasure", {"email": ["bob@example.com"]}))
    with pytest.raises(DsrError, match="exports are for access requests"):
        service.create_export(req)
