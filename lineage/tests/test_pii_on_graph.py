"""PII on the lineage graph and its API (issue 15 item 6), on the engine under test.

Compliance reports the PII it found and the policy on each column through the
``pii_columns`` extension point; lineage marks them, carries them along column
lineage, and says for each column the policy that protects it, or
``unprotected``. Lineage never imports compliance (import-linter's layers).
"""

from __future__ import annotations

import pytest

from atlas import extensions
from atlas.extensions import PiiColumn
from atlas.models import AuditEvent
from lineage import graph
from pipelines.models import Dataset, RunStatus

from .conftest import run_now


def columns(data: dict) -> dict[str, dict]:
    """``layer.table.column`` -> the column as the graph (page and API) gives it."""
    return {f"{n['name']}.{c['name']}": c for n in data["nodes"] for c in n["columns"]}


@pytest.fixture
def report():
    """A pretend provider: what compliance would report, changed by the test."""
    facts: list[PiiColumn] = []
    with extensions.added("pii_report_test", {"pii_columns": [lambda: list(facts)]}):
        yield facts


def test_reported_pii_is_marked_and_carried_with_the_policy_of_each_column(wh, simple_pipeline, lineage_hook, report):
    run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED, run.error
    raw, clean = Dataset.objects.get(name="raw_people"), Dataset.objects.get(name="people")

    # Found on Explore, nothing protects the Chart column yet: clear PII flows into it.
    report.append(PiiColumn(raw.pk, "name", ("PERSON",)))
    cols = columns(graph.graph("people"))
    assert cols["explore.people.name"]["pii"] == ["PERSON"]
    assert cols["explore.people.name"]["pii_protection"] == "unprotected"
    assert cols["explore.people.name"]["pii_flagged"] == "PERSON"
    assert cols["chart.people.name"]["pii"] == ["PERSON"]
    assert cols["chart.people.name"]["pii_protection"] == "unprotected"
    assert cols["chart.people.amount"]["pii_protection"] is None and cols["chart.people.amount"]["pii"] == []

    # A policy applied by default protects the Chart column: still marked, with its policy, awaiting review.
    report.append(PiiColumn(clean.pk, "name", (), "redact", True))
    cols = columns(graph.graph("people"))
    chart_name = cols["chart.people.name"]
    assert (chart_name["pii"], chart_name["pii_entities"]) == ([], ["PERSON"])
    assert (chart_name["pii_protection"], chart_name["pii_awaiting_review"], chart_name["pii_protected"]) == (
        "redact", True, True,
    )
    assert AuditEvent.objects.filter(action="lineage.pii_flag").exists()

    # Kept in clear with a reason: the PII flows on, and the graph says it is kept.
    report[1] = PiiColumn(clean.pk, "name", (), "keep", False)
    cols = columns(graph.graph("people"))
    assert cols["chart.people.name"]["pii"] == ["PERSON"] and cols["chart.people.name"]["pii_protection"] == "keep"

    # The report emptied (the finding dismissed): the marks it set go; a hand mark stays.
    graph.mark_pii("people", "amount", "SALARY")
    report.clear()
    cols = columns(graph.graph("people"))
    assert cols["explore.people.name"]["pii"] == [] and cols["chart.people.name"]["pii_protection"] is None
    assert cols["chart.people.amount"]["pii"] == ["SALARY"]
    assert cols["navigate.people_total.amount"]["pii"] == ["SALARY"]  # aggregated, still derived DIRECTly


def test_the_api_and_the_admin_page_show_it(admin_client, wh, simple_pipeline, lineage_hook, report):
    run_now(simple_pipeline())
    raw, clean = Dataset.objects.get(name="raw_people"), Dataset.objects.get(name="people")
    report.extend([PiiColumn(raw.pk, "name", ("PERSON",)), PiiColumn(clean.pk, "name", (), "hash", True)])
    body = admin_client.get("/api/v1/lineage", {"dataset": "people_total", "direction": "upstream"}).json()
    assert columns(body)["chart.people.name"]["pii_protection"] == "hash"
    by_id = admin_client.get(f"/api/v1/dataset-lineage/{clean.pk}/").json()
    assert columns(by_id)["explore.people.name"]["pii_protection"] == "unprotected"
    node = graph.find_dataset_node("people")
    page = admin_client.get(f"/admin/lineage/lineagenode/{node.pk}/graph/").content.decode()
    assert '"pii_protection": "hash"' in page and '"pii_awaiting_review": true' in page


@pytest.mark.slow
@pytest.mark.step_hooks  # the default hooks: compliance scans on ingest and protects by default
def test_the_demo_graph_shows_pii_from_explore_to_chart_with_its_policies(admin_client, wh):
    from compliance.models import PiiFinding
    from compliance.policies import decide_finding
    from compliance.tests.demo import load_demo, user_in_role

    load_demo()
    body = admin_client.get("/api/v1/lineage", {"dataset": "customers", "direction": "both"}).json()
    cols = columns(body)
    assert cols["explore.customers.email"]["pii"] == ["EMAIL_ADDRESS"]
    assert cols["explore.customers.email"]["pii_protection"] == "unprotected"
    email = cols["chart.customers.email"]
    assert (email["pii"], email["pii_entities"], email["pii_protection"], email["pii_awaiting_review"]) == (
        [], ["EMAIL_ADDRESS"], "hash", True,
    )
    for column, policy in {"phone": "mask", "birth_date": "generalise", "street_address": "redact"}.items():
        assert cols[f"chart.customers.{column}"]["pii_protection"] == policy, column
    # Below the default threshold, not reviewed: the graph says the city is unprotected.
    assert cols["chart.customers.city"]["pii"] == ["LOCATION"]
    assert cols["chart.customers.city"]["pii_protection"] == "unprotected"
    assert cols["chart.customers.customer_id"]["pii_protection"] is None
    # Downstream, the lifetime value reads only the customer id: no PII.
    assert all(c["pii_entities"] == [] for k, c in cols.items() if k.startswith("navigate.customer_lifetime_value"))

    steward = user_in_role("steward", "Steward")
    finding = PiiFinding.objects.get(dataset__layer="explore", dataset__table="customers", column="email")
    decide_finding(finding, status="confirmed", actor=steward)
    cols = columns(admin_client.get("/api/v1/lineage", {"dataset": "customers"}).json())
    assert (cols["chart.customers.email"]["pii_protection"], cols["chart.customers.email"]["pii_awaiting_review"]) == (
        "hash", False,
    )
