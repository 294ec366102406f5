"""The quality API: checks (Operators manage them), results with cursor pages and filters, the quarantine, masked."""

from __future__ import annotations

from atlas.api.testing import assert_error
from pipelines.models import Dataset
from quality.models import Check, CheckResult


def test_an_operator_manages_checks_and_a_bad_definition_is_refused_as_in_the_admin(clients, wh):
    dataset = Dataset.objects.create(name="orders", layer="chart", table="orders")
    op = clients["Operator"]
    created = op.post("/api/v1/checks/", {"dataset": dataset.pk, "name": "positive", "kind": "range",
                                          "columns": ["amount"], "params": {"min": 0}, "severity": "fail"})
    assert created.status_code == 201, created.content
    check_id = created.json()["id"]
    assert created.json()["dataset_name"] == "orders" and Check.objects.get(pk=check_id).severity == "fail"

    bad = op.post("/api/v1/checks/", {"dataset": dataset.pk, "name": "inverted", "kind": "range",
                                      "columns": ["amount"], "params": {"min": 5, "max": 1}})
    error = assert_error(bad, 409, "conflict")
    assert error["detail"] and not Check.objects.filter(name="inverted").exists()
    regex = op.post("/api/v1/checks/", {"dataset": dataset.pk, "name": "re", "kind": "regex",
                                        "columns": ["code"], "params": {"pattern": "("}})
    assert_error(regex, 409, "conflict")
    duplicate = op.post("/api/v1/checks/", {"dataset": dataset.pk, "name": "positive", "kind": "not_null",
                                            "columns": ["amount"]})
    assert_error(duplicate, 409, "conflict")

    changed = op.patch(f"/api/v1/checks/{check_id}/", {"severity": "warn"})
    assert changed.status_code == 200 and changed.json()["severity"] == "warn"
    assert_error(op.patch(f"/api/v1/checks/{check_id}/", {"params": {"min": 3, "max": 2}}), 409, "conflict")
    for role in ("Analyst", "Steward", "Auditor"):
        assert_error(clients[role].patch(f"/api/v1/checks/{check_id}/", {"severity": "fail"}), 403, "permission_denied")
        assert clients[role].get(f"/api/v1/checks/{check_id}/").status_code == 200
    assert op.delete(f"/api/v1/checks/{check_id}/").status_code == 204


def test_results_filter_by_dataset_check_outcome_severity_and_time_in_cursor_pages(clients, checked_run):
    analyst = clients["Analyst"]
    people = Dataset.objects.get(name="people")
    every = analyst.get("/api/v1/check-results/", {"dataset": people.pk}).json()
    assert {r["check_name"]: r["outcome"] for r in every["results"]} == {"b_names": "warn", "has_amount": "pass"}
    dropped = analyst.get("/api/v1/check-results/", {"severity": "drop"}).json()["results"]
    assert [r["check_name"] for r in dropped] == ["b_names"] and dropped[0]["rows_quarantined"] == 2
    check = Check.objects.get(name="has_amount")
    by_check = analyst.get("/api/v1/check-results/", {"check": check.pk, "outcome": ["pass", "warn"]}).json()["results"]
    assert [r["check"] for r in by_check] == [check.pk]
    assert analyst.get("/api/v1/check-results/", {"created_after": "2999-01-01T00:00:00Z"}).json()["results"] == []
    assert_error(analyst.get("/api/v1/check-results/", {"outcome": "maybe"}), 400, "invalid")
    assert_error(analyst.get("/api/v1/check-results/", {"created_after": "yesterday"}), 400, "invalid")

    first = analyst.get("/api/v1/check-results/", {"page_size": 1}).json()
    assert len(first["results"]) == 1 and first["next"] and "cursor=" in first["next"]
    second = analyst.get(first["next"]).json()
    assert second["results"][0]["id"] < first["results"][0]["id"]
    assert_error(analyst.get("/api/v1/check-results/", {"cursor": "garbage"}), 404)


def test_failing_samples_are_masked_unless_you_may_see_pii(clients, checked_run, pii_on_names):
    result = CheckResult.objects.get(check_name="b_names")
    assert result.sample_rows, "the drop check keeps failing rows as samples"
    for role in ("Analyst", "Operator", "Auditor"):
        rows = clients[role].get(f"/api/v1/check-results/{result.pk}/").json()["sample_rows"]
        names = {r[result.sample_columns.index("name")] for r in rows}
        assert names == {"[PERSON hidden]"}, role
    clear = clients["Steward"].get(f"/api/v1/check-results/{result.pk}/").json()["sample_rows"]
    assert {r[result.sample_columns.index("name")] for r in clear} == {"Ann", "Cy"}


def test_the_quarantine_pages_rows_and_masks_pii_and_raw_records(clients, checked_run, pii_on_names):
    people = Dataset.objects.get(name="people")
    page = clients["Analyst"].get(f"/api/v1/quarantine/{people.pk}/").json()
    assert page["total"] == 2 and page["next_offset"] is None and page["table"] == "chart.people__quarantine"
    name = page["columns"].index("name")
    assert {r[name] for r in page["rows"]} == {"[PERSON hidden]"}
    clear = clients["Steward"].get(f"/api/v1/quarantine/{people.pk}/", {"limit": 1}).json()
    assert len(clear["rows"]) == 1 and clear["next_offset"] == 1 and clear["rows"][0][name] in {"Ann", "Cy"}

    raw = Dataset.objects.get(name="raw_people")
    ingest = clients["Analyst"].get(f"/api/v1/quarantine/{raw.pk}/").json()
    assert ingest["total"] == 1
    assert ingest["rows"][0][ingest["columns"].index("_raw_record")] == "[RAW RECORD hidden]"
    assert "Dee" in clients["Steward"].get(f"/api/v1/quarantine/{raw.pk}/").json()["rows"][0][ingest["columns"].index("_raw_record")]

    never = Dataset.objects.get(name="people_total")
    assert clients["Analyst"].get(f"/api/v1/quarantine/{never.pk}/").json() == {
        "dataset": never.pk, "table": "navigate.people_total__quarantine", "total": 0, "offset": 0, "limit": 50,
        "next_offset": None, "columns": [], "rows": [],
    }
    assert_error(clients["Analyst"].get(f"/api/v1/quarantine/{people.pk}/", {"limit": "-1"}), 400, "invalid")
    assert_error(clients["Analyst"].get(f"/api/v1/quarantine/{people.pk}/", {"offset": "x"}), 400, "invalid")
    assert_error(clients["Analyst"].get("/api/v1/quarantine/999999/"), 404, "not_found")


def test_a_dataset_shows_its_latest_check_status_and_pii_summary(clients, checked_run, pii_on_names):
    people = Dataset.objects.get(name="people")
    detail = clients["Analyst"].get(f"/api/v1/datasets/{people.pk}/").json()
    quality = detail["quality"]  # quality.status.dataset_status, as the admin shows it
    assert quality["status"] == "warned" and quality["last_check_run"]["rows_quarantined"] == 2
    assert quality["counts"] == {"pass": 1, "warn": 1, "fail": 0, "error": 0, "never": 0}
    assert {c["name"]: c["outcome"] for c in quality["checks"]} == {"b_names": "warn", "has_amount": "pass"}
    assert detail["pii"] == {
        "findings": {"proposed": 1, "confirmed": 0, "dismissed": 0},
        "entities": ["PERSON"],
        "clear_pii_columns": ["name"],
        "policies": 0,
    }
    total = clients["Analyst"].get("/api/v1/datasets/", {"name": "people_total"}).json()["results"][0]
    assert total["quality"]["status"] == "no_checks" and total["quality"]["last_check_run"] is None
    assert total["pii"]["findings"] == {"proposed": 0, "confirmed": 0, "dismissed": 0}
