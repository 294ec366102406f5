"""Pictures drawn from the data (issue 18, item 2): a pipeline's last runs; a Navigate table over time."""

from __future__ import annotations

import re

import pytest

from pipelines import pictures
from pipelines.models import Dataset

from .conftest import run_now

SALES = ("id,name,amount,day,cur\n1,Ann,10,2026-01-01,EUR\n2,Bob,20,2026-01-01,EUR\n3,Cy,5,2026-01-01,USD\n"
         "4,Di,7.5,2026-01-02,USD\n5,Ed,1,2026-01-03,EUR\n")


@pytest.fixture
def sales(wh, simple_pipeline):
    pipeline = simple_pipeline(SALES)
    pipeline.steps.filter(name="refine").update(
        sql="SELECT CAST(id AS integer) AS id, trim(name) AS name, CAST(amount AS numeric(12,2)) AS amount,"
            " CAST(day AS date) AS day, cur FROM explore.people")
    pipeline.steps.filter(name="total").update(
        sql="SELECT day, cur, count(*) AS orders, sum(amount) AS revenue FROM chart.people GROUP BY day, cur")
    return pipeline


def values(svg: str, series: str) -> list[tuple[str, float]]:
    return [(x, float(v)) for x, v in re.findall(
        rf'<circle [^>]*data-series="{series}" data-x="([^"]+)" data-value="([^"]+)"', str(svg))]


def test_the_pipeline_page_draws_its_last_runs_durations_and_rows(sales):
    assert pictures.run_history(sales) is None  # never run: nothing drawn
    runs = [run_now(sales), run_now(sales, full_refresh=True)]
    history = pictures.run_history(sales)
    assert history["count"] == 2
    assert values(history["durations_svg"], "duration") == [
        (f"#{r.pk}", pytest.approx((r.finished_at - r.started_at).total_seconds(), abs=0.001)) for r in runs]
    bars = re.findall(r'data-series="rows" data-x="([^"]+)" data-value="([^"]+)"', str(history["rows_svg"]))
    assert bars == [(f"#{r.pk}", str(r.rows_out)) for r in runs]
    assert [row[0].pk for row in history["rows"]] == [r.pk for r in runs] and history["rows"][0][1] == "Succeeded"


def test_a_navigate_table_is_drawn_over_its_time_column_a_line_per_currency(sales):
    assert run_now(sales).status == "succeeded"
    total = Dataset.objects.get(layer="navigate", table="people_total")
    series = pictures.time_series(None, total)
    assert series["time"] == "day" and series["split"] == "cur" and series["points"] == 3
    assert [c["column"] for c in series["charts"]] == ["orders", "revenue"]
    revenue = series["charts"][1]["svg"]
    assert values(revenue, "s0") == [("2026-01-01", 30.0), ("2026-01-03", 1.0)]  # EUR: no value on the 2nd
    assert values(revenue, "s1") == [("2026-01-01", 5.0), ("2026-01-02", 7.5)]  # USD
    assert series["columns"] == ["orders (EUR)", "orders (USD)", "revenue (EUR)", "revenue (USD)"]
    assert series["table"][0] == ["2026-01-01", "2", "1", "30", "5"]


def test_only_navigate_tables_with_a_time_and_a_number_are_drawn(sales):
    run_now(sales)
    assert pictures.time_series(None, Dataset.objects.get(layer="chart", table="people")) is None
    sales.steps.filter(name="total").update(sql="SELECT cur, count(*) AS orders FROM chart.people GROUP BY cur")
    run_now(sales, full_refresh=True)
    assert pictures.time_series(None, Dataset.objects.get(layer="navigate", table="people_total")) is None
    assert pictures.chart_columns({"day": "DATE", "n": "BIGINT", "_batch": "varchar", "cur": "varchar"}) == (
        "day", ["n"], ["cur"])
    assert pictures.chart_columns({"at": "timestamp with time zone", "share": "double precision"})[:2] == ("at", ["share"])
