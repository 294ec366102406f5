"""Operator pages in a real headless Chromium (Debian's, driven by Playwright; nothing downloads a browser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.models import PipelineRun, RunStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def type_sql(page, step, sql: str) -> None:
    """Replace a step's SQL by typing it into its editor (CodeMirror), as an operator does."""
    step.locator(".CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type(sql)


def test_run_now_from_the_pipeline_page_shows_the_finished_run(browser_page, wh, simple_pipeline):
    page, url = browser_page
    pipeline = simple_pipeline()
    page.goto(f"{url}/admin/pipelines/pipeline/{pipeline.pk}/change/")
    page.get_by_role("button", name="Run now").click()
    run = PipelineRun.objects.get()
    page.wait_for_url(f"{url}/admin/pipelines/pipelinerun/{run.pk}/change/")
    body = page.inner_text("body")
    assert "succeeded" in body.lower()
    for step in ("ingest", "refine", "total"):
        assert step in body
    os.makedirs("var/screenshots", exist_ok=True)
    page.screenshot(path="var/screenshots/run.png", full_page=True)


def test_a_running_run_page_updates_in_place_until_it_ends(browser_page, wh, simple_pipeline):
    from datetime import timedelta

    from django.utils import timezone

    from pipelines.models import StepRun

    page, url = browser_page
    pipeline = simple_pipeline()
    now = timezone.now()
    run = PipelineRun.objects.create(pipeline=pipeline, trigger="api", status=RunStatus.RUNNING, current_step="refine",
                                     started_at=now - timedelta(seconds=20))
    StepRun.objects.create(run=run, step_name="ingest", kind="ingest", position=0, status=RunStatus.SUCCEEDED,
                           rows_in=3, rows_out=3, started_at=now - timedelta(seconds=20),
                           finished_at=now - timedelta(seconds=15))
    refine = StepRun.objects.create(run=run, step_name="refine", kind="refine", position=1, status=RunStatus.RUNNING,
                                    rows_in=100, started_at=now - timedelta(seconds=14))
    page.goto(f"{url}/admin/pipelines/pipelinerun/{run.pk}/change/")
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    page.evaluate("window.atlasSamePage = true")  # gone if the page were loaded again
    summary = page.locator("#run-live [data-live=summary]")
    assert "Running step refine (of 2 steps)" in summary.inner_text() and "Rows so far: 3 in" in summary.inner_text()  # in: what the ingest read

    # the worker moves on: the row's numbers and its duration change where they are drawn
    StepRun.objects.filter(pk=refine.pk).update(rows_in=250, rows_out=240)
    row = page.locator("#step_runs-1")
    page.wait_for_function("() => document.querySelector('#step_runs-1 td.field-rows_in p').textContent === '250'",
                           timeout=15_000)
    assert row.locator("td.field-rows_out p").inner_text() == "240"
    assert row.get_attribute("data-status") == "running"
    assert "Rows so far: 3 in, 243 out" in summary.inner_text()
    first = row.locator("td.field-duration_display p").inner_text()
    page.wait_for_function(
        f"() => document.querySelector('#step_runs-1 td.field-duration_display p').textContent !== '{first}'",
        timeout=15_000)  # the running step's time goes on

    # the run ends: the page takes the ended run's content (status, timeline) without loading again
    StepRun.objects.filter(pk=refine.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, current_step="", finished_at=timezone.now())
    page.wait_for_selector("#run-live", state="detached", timeout=15_000)
    assert page.evaluate("window.atlasSamePage") is True
    assert "Succeeded" in page.locator("div.field-status_badge .readonly").inner_text()
    assert page.locator("#run-timeline rect.atlas-span").count() == 2


def test_the_dataset_page_previews_warehouse_rows(browser_page, wh, simple_pipeline):
    from .conftest import run_now

    page, url = browser_page
    pipeline = simple_pipeline()
    run_now(pipeline)
    dataset = pipeline.steps.get(name="refine").output
    page.goto(f"{url}/admin/pipelines/dataset/{dataset.pk}/change/")
    text = page.inner_text("body")
    assert "Ann" in text and "Bob" in text
    page.screenshot(path="var/screenshots/dataset.png", full_page=True)


def test_the_pipeline_editor_shows_each_kind_its_fields_validates_and_previews(browser_page, wh, simple_pipeline):
    from .conftest import run_now

    page, url = browser_page
    pipeline = simple_pipeline()
    run_now(pipeline)
    page.goto(f"{url}/admin/pipelines/pipeline/{pipeline.pk}/change/")
    steps = page.locator("#steps-group .inline-related:not(.empty-form)")
    ingest, refine = steps.nth(0), steps.nth(1)
    # each step its kind's fields: the ingest its source and reject limit, no SQL; the refine its SQL, no source
    assert ingest.locator(".fieldBox.field-source").is_visible() and ingest.locator(".fieldBox.field-max_rejected_share").is_visible()
    assert not ingest.locator(".form-row.field-sql").is_visible() and not ingest.locator(".atlas-sql-tools").is_visible()
    assert refine.locator(".form-row.field-sql").is_visible() and not refine.locator(".fieldBox.field-source").is_visible()
    assert not refine.locator(".fieldBox.field-merge_keys").is_visible()
    refine.locator("select[name$='-write_mode']").select_option("merge")
    assert refine.locator(".fieldBox.field-merge_keys").is_visible()
    ingest.locator("select[name$='-kind']").select_option("refine")  # changing the kind changes the fields
    assert ingest.locator(".form-row.field-sql").is_visible() and not ingest.locator(".fieldBox.field-source").is_visible()
    ingest.locator("select[name$='-kind']").select_option("ingest")

    # Validate: Atlas's own validation, the datasets read (linked) and the columns produced
    refine.get_by_role("button", name="Validate").click()
    result = refine.locator(".atlas-sql-result")
    result.locator(".atlas-sql-columns").wait_for()
    assert result.get_attribute("data-state") == "valid"
    raw = pipeline.steps.get(name="ingest").output
    assert result.locator("a[data-dataset]").all_inner_texts() == ["explore.people"]
    assert result.locator("a[data-dataset]").get_attribute("href") == f"/admin/pipelines/dataset/{raw.pk}/change/"
    assert result.locator("code[data-column]").all_inner_texts() == ["id", "name", "amount"]

    # Preview rows: the first rows of the SELECT, in a table that scrolls inside the step
    refine.get_by_role("button", name="Preview rows").click()
    result.locator(".atlas-sql-preview table").wait_for()
    cells = [row.locator("td").all_inner_texts() for row in result.locator(".atlas-sql-preview tbody tr").all()]
    assert [c[:2] for c in cells] == [["1", "Ann"], ["2", "Bob"], ["3", "Cy"]]

    # a mistake is told in Atlas's words, where the SQL is
    type_sql(page, refine, "SELECT id FROM explore.nobody")
    refine.get_by_role("button", name="Validate").click()
    result.locator(".atlas-sql-error").wait_for()
    assert result.get_attribute("data-state") == "invalid" and "nobody" in result.inner_text()


def test_the_data_browser_pages_sorts_chooses_columns_and_downloads(browser_page, wh, simple_pipeline):
    from .conftest import run_now

    page, url = browser_page
    wide = ",".join(f"a_rather_long_column_name_{i}" for i in range(14))
    rows = "".join(f"{i}," + ",".join(f"value {i}-{j}" for j in range(14)) + "\n" for i in range(1, 61))
    pipeline = simple_pipeline(f"id,{wide}\n{rows}")
    pipeline.steps.exclude(name="ingest").delete()
    assert run_now(pipeline).status == "succeeded"
    raw = pipeline.steps.get(name="ingest").output
    page.goto(f"{url}/admin/pipelines/dataset/{raw.pk}/change/")
    page.get_by_role("link", name="Browse all rows: pages, sort, columns, CSV").click()
    page.wait_for_url(f"**/admin/pipelines/dataset/{raw.pk}/data/")
    assert "Rows 1–50 of 60." in page.inner_text(".atlas-data-summary")
    # a wide table scrolls inside its card; the page itself does not
    card = page.locator(".atlas-data-table")
    assert card.evaluate("e => e.scrollWidth > e.clientWidth")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")

    # sort by a column (twice: descending), then the next page, then fewer columns
    page.locator("th a[data-column=_row_number]").click()
    page.locator("th a[data-column=_row_number]").click()
    page.wait_for_url("**dir=desc**")
    assert "sorted by _row_number (descending)" in page.inner_text(".atlas-data-summary")
    first = page.locator(".atlas-data-table tbody tr").first.locator("td").all_inner_texts()
    assert "value 60-0" in first
    page.get_by_role("link", name="Next ›").click()
    page.wait_for_url("**page=2**")
    assert "Rows 51–60 of 60" in page.inner_text(".atlas-data-summary")
    page.locator("#data-controls summary").click()
    for box in page.locator("#data-controls input[name=col]").all():
        if box.get_attribute("value") not in ("id", "_row_number"):
            box.uncheck()
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**col=**")
    assert [t.strip() for t in page.locator(".atlas-data-table thead th").all_text_contents()] == ["id", "_row_number ▼"]
    with page.expect_download() as caught:
        page.get_by_role("link", name="Download CSV").click()
    lines = Path(caught.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,_row_number" and len(lines) == 61 and lines[1] == "60,60"


def test_the_pipeline_page_draws_its_last_runs_and_a_navigate_table_its_time_series(browser_page, wh, simple_pipeline):
    from pipelines.models import Dataset

    from .conftest import run_now
    from .test_pictures import SALES

    page, url = browser_page
    pipeline = simple_pipeline(SALES)
    pipeline.steps.filter(name="refine").update(
        sql="SELECT CAST(amount AS numeric(12,2)) AS amount, CAST(day AS date) AS day, cur FROM explore.people")
    pipeline.steps.filter(name="total").update(
        sql="SELECT day, cur, sum(amount) AS revenue FROM chart.people GROUP BY day, cur")
    runs = [run_now(pipeline), run_now(pipeline, full_refresh=True)]
    page.goto(f"{url}/admin/pipelines/pipeline/{pipeline.pk}/change/")
    history = page.locator("#pipeline-history")
    points = history.locator("circle.atlas-point[data-series=duration]")
    assert points.count() == 2
    for point, run in zip(points.all(), runs, strict=True):
        assert point.get_attribute("data-x") == f"#{run.pk}"
        assert float(point.get_attribute("data-value")) == pytest.approx(
            (run.finished_at - run.started_at).total_seconds(), abs=0.001)
        box = point.bounding_box()
        assert box is not None and box["width"] > 0
    assert [b.get_attribute("data-value") for b in history.locator("rect[data-series=rows]").all()] == [
        str(r.rows_out) for r in runs]
    history.locator("details summary").click()
    history.get_by_role("link", name=f"#{runs[-1].pk}").click()  # the table links each run
    page.wait_for_url(f"**/admin/pipelines/pipelinerun/{runs[-1].pk}/change/")

    total = Dataset.objects.get(layer="navigate", table="people_total")
    page.goto(f"{url}/admin/pipelines/dataset/{total.pk}/change/")
    chart = page.locator("#dataset-series .atlas-series-chart[data-column=revenue]")
    chart.scroll_into_view_if_needed()
    eur = chart.locator("circle[data-series=s0]")
    assert [(c.get_attribute("data-x"), float(c.get_attribute("data-value"))) for c in eur.all()] == [
        ("2026-01-01", 30.0), ("2026-01-03", 1.0)]
    assert "a line per cur" in page.inner_text("#dataset-series figcaption")


def test_the_step_sql_is_highlighted_and_validate_preview_and_save_use_what_was_typed(browser_page, wh, simple_pipeline):
    from pipelines.models import Step

    from .conftest import run_now

    page, url = browser_page
    pipeline = simple_pipeline()
    run_now(pipeline)
    before = Step.objects.get(pipeline=pipeline, name="refine").sql
    page.goto(f"{url}/admin/pipelines/pipeline/{pipeline.pk}/change/")
    refine = page.locator("#steps-group .inline-related:not(.empty-form)").nth(1)
    # the SQL is in an editor that highlights it (CodeMirror from static/, PostgreSQL mode); no CDN
    editor = refine.locator(".CodeMirror.atlas-sql-editor")
    editor.wait_for()
    assert not refine.locator("textarea[name$='-sql']").is_visible()  # the textarea stays the form's field
    keywords = [k.lower() for k in refine.locator(".cm-keyword").all_inner_texts()]
    assert {"select", "from", "as"} <= set(keywords)
    assert refine.locator(".cm-keyword").first.evaluate("e => getComputedStyle(e).color") != \
        refine.locator(".cm-variable-2, .cm-variable, .cm-builtin").first.evaluate("e => getComputedStyle(e).color")
    scripts = page.eval_on_selector_all("script[src], link[rel=stylesheet]", "els => els.map(e => e.src || e.href)")
    assert all(s.startswith(url) for s in scripts), scripts  # everything from Atlas's own static files

    # Validate and Preview read what was typed in the editor, not what the page loaded with
    edited = ("SELECT CAST(id AS integer) AS id, upper(trim(name)) AS name,"
              " CAST(amount AS numeric(12,2)) AS amount, amount AS amount_text FROM explore.people")
    type_sql(page, refine, edited)
    refine.get_by_role("button", name="Validate").click()
    result = refine.locator(".atlas-sql-result")
    result.locator(".atlas-sql-columns").wait_for()
    assert result.locator("code[data-column]").all_inner_texts() == ["id", "name", "amount", "amount_text"]
    refine.get_by_role("button", name="Preview rows").click()
    result.locator(".atlas-sql-preview table").wait_for()
    names = result.locator(".atlas-sql-preview tbody tr td:nth-child(2)").all_inner_texts()
    assert names == ["ANN", "BOB", "CY"]

    # and saving the form stores the edited SQL
    page.locator("input[name=_continue]").click()
    page.wait_for_load_state()
    assert page.locator(".messagelist .success").count() == 1, page.locator(".errornote, .errorlist").all_inner_texts()
    saved = Step.objects.get(pipeline=pipeline, name="refine").sql
    assert saved != before and " ".join(saved.split()) == edited
