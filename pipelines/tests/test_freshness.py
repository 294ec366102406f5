"""Skip what has not changed (issue 20, pipelines.freshness): exact on both engines.

Each test builds its own small generated shop (two branches: orders and customers meeting in one
aggregate), runs it, changes one thing, runs again, and checks (a) exactly the steps the change
reaches ran and the others were up to date, and (b) every table equals a full recomputation (a
forced full refresh of the same definitions and files). Marked ``up_to_date``: the suite runs every
step otherwise (``atlas/tests/plugin.py``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import F

from atlas.tests.plugin import run_now
from pipelines import freshness, runner
from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step

pytestmark = [pytest.mark.up_to_date, pytest.mark.slow]

SHOP_SQL = {
    "refine_orders": "SELECT CAST(order_id AS integer) AS order_id, CAST(customer_id AS integer) AS customer_id,"
    " CAST(amount AS numeric(12,2)) AS amount, CAST(ordered_at AS timestamp) AS ordered_at FROM explore.orders",
    "refine_customers": "SELECT CAST(customer_id AS integer) AS customer_id, upper(trim(country)) AS country"
    " FROM explore.customers",
    "revenue": "SELECT c.country, count(*) AS orders, sum(o.amount) AS revenue FROM chart.orders AS o"
    " JOIN chart.customers AS c ON c.customer_id = o.customer_id GROUP BY c.country",
}
TABLES = [("explore", "orders"), ("explore", "customers"), ("chart", "orders"), ("chart", "customers"),
          ("navigate", "revenue")]
# Columns that name a load, not its data: a full refresh loads the same rows as new batches.
LOAD_COLUMNS = {"_batch_id", "_ingested_at", "_source"}


def _orders_csv(path: Path, first: int, count: int, customers: int, seed: int) -> None:
    rng = random.Random(seed)
    lines = ["order_id,customer_id,amount,ordered_at"]
    lines += [f"{i},{rng.randrange(1, customers + 1)},{rng.randrange(100, 99999) / 100:.2f},"
              f"2026-{1 + i % 12:02d}-{1 + i % 28:02d} 10:00:00" for i in range(first, first + count)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def shop(db, tmp_path):
    """A generated shop: orders in files under a glob (more can be appended), customers in one file."""
    data = tmp_path / "shop"
    data.mkdir()
    _orders_csv(data / "orders_001.csv", 1, 300, 40, seed=1)
    rng = random.Random(2)
    countries = [" fr", "de ", "Fr", "es", "DE"]
    (data / "customers.csv").write_text(
        "customer_id,country\n" + "".join(f"{i},{rng.choice(countries)}\n" for i in range(1, 41))
    )
    orders = Source.objects.create(name="orders", location=str(data / "orders_*.csv"))
    customers = Source.objects.create(name="customers", location=str(data / "customers.csv"))
    ds = {f"{layer}.{table}": Dataset.objects.create(name=f"{layer}_{table}", layer=layer, table=table)
          for layer, table in TABLES}
    pipeline = Pipeline.objects.create(name="shop")
    Step.objects.create(pipeline=pipeline, name="ingest_orders", kind="ingest", source=orders,
                        output=ds["explore.orders"], write_mode="append")
    Step.objects.create(pipeline=pipeline, name="ingest_customers", kind="ingest", source=customers,
                        output=ds["explore.customers"], write_mode="append", position=1)
    Step.objects.create(pipeline=pipeline, name="refine_orders", kind="refine", output=ds["chart.orders"],
                        sql=SHOP_SQL["refine_orders"], position=2)
    Step.objects.create(pipeline=pipeline, name="refine_customers", kind="refine", output=ds["chart.customers"],
                        sql=SHOP_SQL["refine_customers"], position=3)
    Step.objects.create(pipeline=pipeline, name="revenue", kind="aggregate", output=ds["navigate.revenue"],
                        sql=SHOP_SQL["revenue"], position=4)
    runner.save_step_inputs(pipeline)
    pipeline.data = data
    return pipeline


def snapshot(wh) -> dict[str, list[tuple]]:
    """Every table's rows (load columns left out), sorted: what a recomputation must equal."""
    out = {}
    for layer, table in TABLES:
        cols = [c.name for c in wh.columns(layer, table) if c.name not in LOAD_COLUMNS]
        listed = ", ".join(f'"{c}"' for c in cols)
        with wh.cursor() as cur:
            rows = cur.execute(f'SELECT {listed} FROM {layer}."{table}"').fetchall()
        out[f"{layer}.{table}"] = sorted(rows, key=repr)
    return out


def statuses(run) -> dict[str, str]:
    """Each step: "ran", "up to date" (skipped as unchanged), or its status."""
    out = {}
    for sr in run.step_runs.all():
        if freshness.is_up_to_date(sr):
            out[sr.step_name] = "up to date"
        else:
            out[sr.step_name] = "ran" if sr.status == RunStatus.SUCCEEDED else sr.status
    return out


def assert_equals_full_recomputation(shop, wh) -> None:
    incremental = snapshot(wh)
    run = run_now(shop, full_refresh=True)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert set(statuses(run).values()) == {"ran"}  # a full refresh is forced: nothing skipped
    assert snapshot(wh) == incremental


ALL_UP_TO_DATE = {s: "up to date" for s in ("ingest_orders", "ingest_customers", "refine_orders",
                                             "refine_customers", "revenue")}


# --- never skipped: the failure paths first -----------------------------------------------------
def test_an_output_trimmed_by_retention_since_is_never_skipped(shop, wh):
    """Retention trimmed chart.orders after the run: its rows changed outside any step."""
    from datetime import UTC, datetime

    from retention import services
    from retention.models import RetentionPolicy, RetentionRun

    run_now(shop)
    before = snapshot(wh)
    orders = Dataset.objects.get(layer="chart", table="orders")
    policy = services.save_policy(RetentionPolicy(dataset=orders, column="ordered_at", period_days=200))
    trim = services.apply_policy(policy, now=datetime(2026, 12, 31, tzinfo=UTC))
    assert trim.status == RetentionRun.Status.SUCCEEDED and trim.rows_removed > 0, trim.error

    run = run_now(shop)

    assert statuses(run) == {**ALL_UP_TO_DATE, "refine_orders": "ran", "revenue": "ran"}
    assert run.step_runs.get(step_name="refine_orders").rows_out == 300
    assert snapshot(wh) == before  # rebuilt from its inputs, as a full recomputation would


def test_an_output_changed_outside_any_step_is_never_skipped(shop, wh):
    """An erasure deletes a subject's rows and bumps data_version as retention does (privacy.service)."""
    run_now(shop)
    before = snapshot(wh)
    with wh.cursor() as cur:
        cur.execute('DELETE FROM navigate."revenue" WHERE orders > 0')
    Dataset.objects.filter(layer="navigate", table="revenue").update(data_version=F("data_version") + 1)

    run = run_now(shop)

    assert statuses(run) == {**ALL_UP_TO_DATE, "revenue": "ran"}
    assert snapshot(wh) == before


def test_a_dropped_output_table_is_rebuilt(shop, wh):
    run_now(shop)
    wh.drop_table("navigate", "revenue")
    run = run_now(shop)
    assert statuses(run)["revenue"] == "ran"
    assert wh.table_exists("navigate", "revenue")
    assert_equals_full_recomputation(shop, wh)


def test_a_step_whose_last_execution_failed_runs_even_with_its_old_definition_back(shop, wh):
    run_now(shop)
    step = shop.steps.get(name="refine_customers")
    step.sql = "SELECT CAST(country AS integer) AS customer_id, country FROM explore.customers"  # fails at run time
    step.save()
    failed = run_now(shop)
    assert failed.step_runs.get(step_name="refine_customers").status == RunStatus.FAILED

    step.sql = SHOP_SQL["refine_customers"]  # the definition of its last success, back
    step.save()
    run = run_now(shop)

    sr = run.step_runs.get(step_name="refine_customers")
    assert sr.status == RunStatus.SUCCEEDED
    assert statuses(run)["revenue"] == "ran"  # skipped as its upstream failed last time: runs now
    assert statuses(run)["refine_orders"] == "up to date"
    assert_equals_full_recomputation(shop, wh)


def test_sql_that_reads_the_clock_is_never_up_to_date(shop, wh):
    step = shop.steps.get(name="revenue")
    step.sql = SHOP_SQL["revenue"].replace("SELECT c.country,", "SELECT c.country, current_date AS on_day,")
    step.save()
    run_now(shop)
    run = run_now(shop)
    assert statuses(run) == {**ALL_UP_TO_DATE, "revenue": "ran"}


def test_a_forced_run_and_a_full_refresh_run_every_step(shop, wh):
    run_now(shop)
    forced = run_now(shop, force=True)
    assert statuses(forced) == {**{s: "ran" for s in ALL_UP_TO_DATE}, "ingest_orders": "up to date",
                                "ingest_customers": "up to date"}  # its files are loaded: nothing new
    assert forced.force
    assert_equals_full_recomputation(shop, wh)


# --- exactness: unchanged, one SQL, one file appended, one check, a touched file ------------------
def test_an_unchanged_rerun_is_all_up_to_date_and_equals_a_full_recomputation(shop, wh):
    first = run_now(shop)
    assert first.status == RunStatus.SUCCEEDED, first.error
    assert set(statuses(first).values()) == {"ran"}

    run = run_now(shop)

    assert run.status == RunStatus.SUCCEEDED
    assert statuses(run) == ALL_UP_TO_DATE
    sr = run.step_runs.get(step_name="revenue")
    assert sr.details["up_to_date"]["since_run"] == first.pk
    assert sr.status == "skipped" and sr.get_status_display() == "Up to date" == freshness.status_label(sr)
    again = run_now(shop)  # up to date since the first run still, not since the one that skipped
    assert {sr.details["up_to_date"]["since_run"] for sr in again.step_runs.all()} == {first.pk}
    assert {sr.details["up_to_date"]["reason"] for sr in again.step_runs.all()} == {f"unchanged since run #{first.pk}"}
    assert_equals_full_recomputation(shop, wh)


def test_a_changed_sql_reruns_that_step_and_its_downstream_only(shop, wh):
    run_now(shop)
    step = shop.steps.get(name="refine_customers")
    step.sql = SHOP_SQL["refine_customers"].replace("upper(trim(country))", "lower(trim(country))")
    step.save()

    run = run_now(shop)

    assert statuses(run) == {**ALL_UP_TO_DATE, "refine_customers": "ran", "revenue": "ran"}
    with wh.cursor() as cur:
        assert {r[0] for r in cur.execute('SELECT country FROM navigate."revenue"').fetchall()} <= {"fr", "de", "es"}
    assert_equals_full_recomputation(shop, wh)


def test_an_appended_file_reruns_its_ingest_and_downstream_only(shop, wh):
    run_now(shop)
    _orders_csv(shop.data / "orders_002.csv", 301, 3, 40, seed=3)  # 1 % more orders

    run = run_now(shop)

    assert statuses(run) == {**ALL_UP_TO_DATE, "ingest_orders": "ran", "refine_orders": "ran", "revenue": "ran"}
    assert run.step_runs.get(step_name="ingest_orders").rows_out == 3
    assert_equals_full_recomputation(shop, wh)


def test_a_touched_file_with_the_same_content_is_read_then_found_up_to_date(shop, wh):
    run_now(shop)
    path = shop.data / "customers.csv"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))

    run = run_now(shop)

    sr = run.step_runs.get(step_name="ingest_customers")
    assert sr.started_at is not None and sr.details["up_to_date"]["reason"] == "every file was loaded already"
    assert sr.details["files"]["done"] == 1  # it read the file (the quick check saw a new mtime)
    assert statuses(run) == ALL_UP_TO_DATE  # nothing it published changed: downstream up to date
    again = run_now(shop)
    ingest = again.step_runs.get(step_name="ingest_customers")
    assert "files" not in ingest.details  # the quick check holds again
    assert ingest.details["up_to_date"]["reason"] == f"unchanged since run #{run.pk}"


def test_a_changed_check_reruns_the_step_it_gates(shop, wh):
    from quality.models import Check

    run_now(shop)
    Check.objects.create(dataset=Dataset.objects.get(layer="chart", table="orders"), name="amount_set",
                         kind="not_null", columns=["amount"], severity="warn")

    run = run_now(shop)

    assert statuses(run) == {**ALL_UP_TO_DATE, "refine_orders": "ran", "revenue": "ran"}
    assert_equals_full_recomputation(shop, wh)


@pytest.mark.step_hooks("compliance.hooks.PiiHook")
def test_a_changed_column_policy_reruns_the_refine_and_its_downstream(shop, wh, settings):
    from compliance.models import ColumnPolicy

    settings.PII_SCAN_AFTER_INGEST = False
    run_now(shop)
    assert statuses(run_now(shop)) == ALL_UP_TO_DATE
    ColumnPolicy.objects.create(dataset=Dataset.objects.get(layer="chart", table="customers"), column="country",
                                action="redact", options={"text": "XX"})

    run = run_now(shop)

    assert statuses(run) == {**ALL_UP_TO_DATE, "refine_customers": "ran", "revenue": "ran"}
    with wh.cursor() as cur:
        assert cur.execute('SELECT DISTINCT country FROM navigate."revenue"').fetchall() == [("XX",)]
    assert_equals_full_recomputation(shop, wh)


def test_run_pipeline_prints_up_to_date_and_force_runs_everything(shop, wh, capsys):
    call_command("run_pipeline", "shop", "--sync")
    call_command("run_pipeline", "shop", "--sync")
    out = capsys.readouterr().out
    assert "revenue                      up to date (unchanged since run #" in out
    call_command("run_pipeline", "shop", "--sync", "--force")
    out = capsys.readouterr().out
    assert "up to date (unchanged" not in out
    assert "revenue                      succeeded" in out


# --- the doors: admin, API, /metrics, the live run page ---------------------------------------
def test_the_admin_forced_action_and_the_api_force_run_every_step(shop, wh, admin_client,
                                                                   django_capture_on_commit_callbacks):
    from django.urls import reverse

    from atlas.api.testing import token_client, user_with_role
    from pipelines.models import PipelineRun

    run_now(shop)
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(reverse("admin:pipelines_pipeline_changelist"),
                                 {"action": "run_now_forced", "_selected_action": [shop.pk]})
    assert resp.status_code == 302
    forced = PipelineRun.objects.latest("pk")
    assert forced.force and forced.status == RunStatus.SUCCEEDED, forced.error
    assert statuses(forced)["revenue"] == "ran"

    api = token_client(user_with_role("Operator", "ops"))
    bad = api.post(f"/api/v1/pipelines/{shop.pk}/run/", {"force": "maybe"}, format="json")
    assert bad.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        unforced = api.post(f"/api/v1/pipelines/{shop.pk}/run/", {}, format="json")
    assert unforced.status_code == 201, unforced.content
    assert unforced.json()["force"] is False
    run_id = unforced.json()["id"]
    steps = api.get(f"/api/v1/runs/{run_id}/").json()["step_runs"]
    revenue = next(s for s in steps if s["step_name"] == "revenue")
    assert (revenue["status"], revenue["status_label"], revenue["up_to_date"]) == ("skipped", "Up to date", True)
    assert revenue["details"]["up_to_date"]["since_run"] == forced.pk
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/pipelines/{shop.pk}/run/", {"force": True}, format="json")
    assert response.status_code == 201 and response.json()["force"] is True
    assert statuses(PipelineRun.objects.get(pk=response.json()["id"]))["revenue"] == "ran"


def test_metrics_and_the_live_page_say_up_to_date(shop, wh, admin_client):
    from django.urls import reverse

    from pipelines import live
    from pipelines.metrics import step_metrics

    run_now(shop)
    run = run_now(shop)
    family = next(m for m in step_metrics() if m.name == "atlas_steps_up_to_date")
    counts = {s.labels["layer"]: s.value for s in family.samples}
    assert counts == {"explore": 2, "chart": 2, "navigate": 1}
    state = live.run_state(run)
    revenue = next(s for s in state["steps"] if s["name"] == "revenue")
    assert revenue["status_label"] == "Up to date" and revenue["up_to_date"].startswith("unchanged since run #")
    page = admin_client.get(reverse("admin:pipelines_pipelinerun_change", args=[run.pk])).content.decode()
    assert "Up to date" in page


def test_sql_that_binds_the_runs_interval_is_up_to_date_only_for_the_same_interval(shop, wh):
    from datetime import UTC, datetime

    from pipelines.intervals import Interval

    step = shop.steps.get(name="revenue")
    step.sql = ("SELECT c.country, count(*) AS orders, sum(o.amount) AS revenue FROM chart.orders AS o"
                " JOIN chart.customers AS c ON c.customer_id = o.customer_id"
                " WHERE o.ordered_at >= :data_interval_start AND o.ordered_at < :data_interval_end GROUP BY c.country")
    step.save()
    march = Interval(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    april = Interval(datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
    assert run_now(shop, interval=march).status == RunStatus.SUCCEEDED

    assert statuses(run_now(shop, interval=march)) == ALL_UP_TO_DATE
    other = run_now(shop, interval=april)

    assert statuses(other) == {**ALL_UP_TO_DATE, "revenue": "ran"}  # its output is April's now
    with wh.cursor() as cur:
        april_orders = cur.execute('SELECT sum(orders) FROM navigate."revenue"').fetchone()[0]
        expected = cur.execute("SELECT count(*) FROM chart.orders WHERE ordered_at >= '2026-04-01'"
                               " AND ordered_at < '2026-05-01'").fetchone()[0]
    assert april_orders == expected
    assert statuses(run_now(shop, interval=march)) == {**ALL_UP_TO_DATE, "revenue": "ran"}  # back to March: again


@pytest.mark.step_hooks("compliance.hooks.PiiHook")
def test_another_hash_key_reruns_the_refine_it_keys(shop, wh, settings):
    from compliance.models import ColumnPolicy

    settings.PII_SCAN_AFTER_INGEST = False
    settings.PII_HASH_KEY = "the first key, long enough to be a real one 0123456789"
    ColumnPolicy.objects.create(dataset=Dataset.objects.get(layer="chart", table="customers"), column="country",
                                action="hash")
    run_now(shop)
    assert statuses(run_now(shop)) == ALL_UP_TO_DATE
    with wh.cursor() as cur:
        first = sorted(r[0] for r in cur.execute('SELECT country FROM navigate."revenue"').fetchall())

    settings.PII_HASH_KEY = "the second key, just as long and just as random 9876543210"
    run = run_now(shop)

    assert statuses(run) == {**ALL_UP_TO_DATE, "refine_customers": "ran", "revenue": "ran"}
    with wh.cursor() as cur:
        second = sorted(r[0] for r in cur.execute('SELECT country FROM navigate."revenue"').fetchall())
    assert len(second) == len(first) and not set(second) & set(first)  # every token changed with the key
    assert_equals_full_recomputation(shop, wh)


@pytest.mark.step_hooks()
def test_what_a_steps_own_gate_settles_does_not_make_it_run_again(shop, wh, settings):
    """The PII scan its gate runs and the policy privacy by default adds are part of what the step wrote.

    Both change what compliance contributes to the refine's definition while the refine runs;
    the versions recorded after it must include them, or every second run re-runs it for nothing.
    """
    from compliance.models import ColumnPolicy, PiiFinding

    settings.PII_SCAN_AFTER_INGEST = True
    (shop.data / "customers.csv").write_text(
        "customer_id,country,email\n" + "".join(f"{i},fr,person.{i}@example.org\n" for i in range(1, 41))
    )
    Step.objects.filter(pipeline=shop, name="refine_customers").update(
        sql="SELECT CAST(customer_id AS integer) AS customer_id, upper(trim(country)) AS country, email"
        " FROM explore.customers"
    )
    first = run_now(shop)
    assert first.status == RunStatus.SUCCEEDED, first.error
    assert PiiFinding.objects.filter(dataset__table="customers", column="email").exists()
    assert ColumnPolicy.objects.filter(dataset__layer="chart", dataset__table="customers", column="email").exists()

    assert statuses(run_now(shop)) == ALL_UP_TO_DATE
