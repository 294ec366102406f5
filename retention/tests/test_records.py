"""Records of processing (GDPR Art. 30): validation, and the export with the PII Atlas found."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.exceptions import ValidationError

from atlas.models import AuditEvent
from compliance.models import PiiFinding
from pipelines.models import Dataset
from retention import records, services
from retention.models import LegalBasis, ProcessingRecord, RetentionPolicy

from .conftest import days_ago

pytestmark = pytest.mark.django_db


def record_for(ds: Dataset, **fields) -> ProcessingRecord:
    values = {
        "purpose": "Deliver orders and invoice customers.",
        "legal_basis": LegalBasis.CONTRACT,
        "data_subject_categories": "customers\nprospects",
        "recipients": "payment provider; carrier",
    }
    values.update(fields)
    return records.save_record(ProcessingRecord(dataset=ds, **values))


@pytest.fixture
def customers(typed_table):
    ds = typed_table([(1, days_ago(1))], table="customers")
    PiiFinding.objects.create(
        dataset=ds, column="email", entity="EMAIL_ADDRESS", status="confirmed"
    )
    PiiFinding.objects.create(dataset=ds, column="phone", entity="PHONE_NUMBER", status="proposed")
    PiiFinding.objects.create(dataset=ds, column="notes", entity="PERSON", status="dismissed")
    return ds


def test_a_record_needs_purpose_basis_and_subjects(db):
    ds = Dataset.objects.create(name="orders", layer="chart", table="orders")
    with pytest.raises(ValidationError) as err:
        ProcessingRecord(
            dataset=ds, purpose=" ", legal_basis="because", data_subject_categories=""
        ).full_clean()
    assert {"purpose", "legal_basis", "data_subject_categories"} <= set(err.value.message_dict)


@pytest.mark.parametrize(
    ("basis", "message"),
    [
        (LegalBasis.LEGITIMATE_INTERESTS, "legitimate interest"),
        (LegalBasis.LEGAL_OBLIGATION, "legal obligation"),
    ],
)
def test_legitimate_interests_and_legal_obligation_need_their_detail(db, basis, message):
    ds = Dataset.objects.create(name="orders", layer="chart", table="orders")
    with pytest.raises(ValidationError) as err:
        record_for(ds, legal_basis=basis)
    assert message in err.value.message_dict["legal_basis_detail"][0]
    record_for(
        ds, legal_basis=basis, legal_basis_detail="Fraud prevention; balancing test of 2026-01."
    )


def test_the_export_lists_records_with_retention_and_the_pii_found(wh, customers, typed_table):
    record_for(customers, retention_note="Invoices: 10 years (commercial law).")
    services.save_policy(RetentionPolicy(dataset=customers, column="happened_at", period_days=730))
    undocumented = typed_table([(1, days_ago(1))], table="leads")
    PiiFinding.objects.create(
        dataset=undocumented, column="email", entity="EMAIL_ADDRESS", status="proposed"
    )
    typed_table(
        [(1, days_ago(1))], table="no_pii"
    )  # no record, no PII: not a processing activity to list

    doc = json.loads(records.export_records("json", actor="tester"))
    assert doc["standard"] == "GDPR Art. 30(1)"
    by_name = {e["dataset"]: e for e in doc["records"]}
    assert set(by_name) == {"chart_customers", "chart_leads"}
    entry = by_name["chart_customers"]
    assert entry["record"] == "present"
    assert entry["legal_basis"] == "Contract — Art. 6(1)(b)"
    assert entry["data_subject_categories"] == ["customers", "prospects"]
    assert entry["recipients"] == ["payment provider", "carrier"]
    assert entry["retention"]["policy"] == {
        "column": "happened_at",
        "period_days": 730,
        "action": "delete",
        "enabled": True,
    }
    assert (
        "730 days on happened_at" in entry["retention"]["text"]
        and "10 years" in entry["retention"]["text"]
    )
    assert entry["pii"]["confirmed"] == ["EMAIL_ADDRESS"]
    assert entry["pii"]["proposed"] == ["PHONE_NUMBER"]
    assert {c["entity"] for c in entry["pii"]["columns"]} == {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
    }  # dismissed left out
    missing = by_name["chart_leads"]
    assert missing["record"] == "missing" and missing["pii"]["proposed"] == ["EMAIL_ADDRESS"]
    assert missing["retention"]["text"] == "not set"

    event = AuditEvent.objects.get(action="retention.records_exported")
    assert event.detail["format"] == "json" and event.detail["missing_records"] == ["chart_leads"]


def test_the_csv_export_has_one_row_per_dataset(wh, customers):
    record_for(customers)
    rows = list(csv.DictReader(io.StringIO(records.export_records("csv"))))
    assert [r["dataset"] for r in rows] == ["chart_customers"]
    assert rows[0]["data_subject_categories"] == "customers; prospects"
    assert rows[0]["pii_confirmed"] == "EMAIL_ADDRESS" and rows[0]["pii_proposed"] == "PHONE_NUMBER"
    assert rows[0]["retention"] == "not set"
    assert set(records.CSV_COLUMNS) == set(rows[0])


def test_a_bad_format_or_dataset_is_refused(db):
    with pytest.raises(records.ExportError, match="use csv or json"):
        records.export_records("xml")
    with pytest.raises(records.ExportError, match="Unknown dataset"):
        records.export_records("csv", datasets=["nope"])
    with pytest.raises(records.ExportError, match="NUL"):
        records.export_records("csv", datasets=["a\x00b"])
    assert not AuditEvent.objects.filter(action="retention.records_exported").exists()
