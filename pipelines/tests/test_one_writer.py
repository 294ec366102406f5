"""One writer per dataset: refused at save, named by ``manage.py check``, and a concurrently claimed file skipped."""

from __future__ import annotations

import hashlib
import random

import pytest
from django.core import checks
from django.core.exceptions import ValidationError

from atlas.api.testing import assert_error, token_client, user_with_role
from pipelines.attempts import attempt_tag, ingest_staging_name
from pipelines.checks import one_writer_per_dataset
from pipelines.models import Dataset, LoadedBatch, Pipeline, RunStatus, Step

from .conftest import explore_rows, run_now


def second_pipeline_writing(dataset: Dataset) -> Step:
    other = Pipeline.objects.create(name="another")
    return Step(pipeline=other, name="rewrite", kind="refine", output=dataset, sql="SELECT 1 AS one FROM explore.people")


def test_a_step_writing_a_dataset_another_pipeline_writes_is_refused_naming_the_other_step(wh, simple_pipeline):
    simple_pipeline()
    step = second_pipeline_writing(Dataset.objects.get(name="people"))
    with pytest.raises(ValidationError) as raised:
        step.full_clean()
    assert raised.value.message_dict["output"] == [
        "people is already written by step 'refine' of pipeline 'people'; a dataset has one producing step."
        " Read it from there, or move that step here."
    ]


def test_the_api_refuses_a_second_writer_too(wh, simple_pipeline):
    simple_pipeline()
    api = token_client(user_with_role("Operator", "ops"))
    other = Pipeline.objects.create(name="another")
    response = api.post(
        "/api/v1/steps/",
        {"pipeline": other.pk, "name": "rewrite", "kind": "refine", "output": Dataset.objects.get(name="people").pk,
         "sql": "SELECT 1 AS one FROM explore.people"},
        format="json",
    )
    body = assert_error(response, 409)
    assert "already written by step 'refine' of pipeline 'people'" in str(body)
    assert not other.steps.exists()


def test_the_step_itself_and_its_own_pipeline_are_no_second_writer(wh, simple_pipeline):
    pipeline = simple_pipeline()
    step = pipeline.steps.get(name="refine")
    step.full_clean()  # saving it again is no conflict
    assert step.other_writer() is None


def test_manage_py_check_names_datasets_an_older_install_writes_twice(wh, simple_pipeline):
    simple_pipeline()
    assert one_writer_per_dataset(databases=["default"]) == []
    second_pipeline_writing(Dataset.objects.get(name="people")).save()  # as before the rule: no clean()
    assert one_writer_per_dataset() == []  # a database check: only when asked for a database
    found = [m for m in checks.run_checks(tags=[checks.Tags.database], databases=["default"]) if m.id == "pipelines.W001"]
    assert len(found) == 1
    assert found[0].msg.startswith(
        "Dataset 'people' is written by 2 steps: 'refine' of pipeline 'people', 'rewrite' of pipeline 'another'."
    )
    assert "Keep one producing step" in found[0].hint


# --- a file claimed by a concurrent load -------------------------------------------------
class ClaimedMeanwhile:
    """A ``staged`` hook standing in for another load of the same content that publishes first."""

    def staged(self, ctx):
        if ctx.step.kind != "ingest":
            return
        with open(ctx.step.source.location, "rb") as fh:
            checksum = hashlib.sha256(fh.read()).hexdigest()
        with ctx.warehouse.cursor() as cur:
            cur.execute(
                "INSERT INTO atlas.loaded_batches (dataset, checksum, batch_id, source, rows_loaded, loaded_at)"
                " VALUES (%s, %s, %s, %s, %s, current_timestamp)",
                [ctx.step.output.qualified_table, checksum, "bconcurrent", "another load", 1],
            )


def people(rows: int, seed: int) -> str:
    rnd = random.Random(seed)
    return "id,name,amount\n" + "".join(f"{i},p{rnd.randint(1, 999)},{rnd.randint(1, 99)}\n" for i in range(rows))


def test_a_file_a_concurrent_load_published_first_is_skipped_with_a_clear_message(wh, simple_pipeline, settings):
    """Appending (a replace publishes the same content again: its ledger is replaced with the table)."""
    pipeline = simple_pipeline(people(25, seed=6), write_mode="append")
    first = run_now(pipeline)
    assert first.status == RunStatus.SUCCEEDED
    before = explore_rows(wh, "people")
    source = pipeline.steps.get(name="ingest").source
    with open(source.location, "w") as fh:  # new content, so the ledger does not skip it up front
        fh.write(people(40, seed=7))
    settings.ATLAS_STEP_HOOKS = ["pipelines.tests.test_one_writer.ClaimedMeanwhile"]
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    ingest = run.step_runs.get(step_name="ingest")
    assert ingest.status == RunStatus.SKIPPED and ingest.rows_out == 0
    batch = LoadedBatch.objects.get(step_run=ingest)
    assert batch.status == LoadedBatch.Status.SKIPPED
    assert "loaded by a concurrent load as batch bconcurrent" in batch.reason and "not loaded twice" in batch.reason
    assert explore_rows(wh, "people") == before  # nothing added, nothing replaced
    staging = ingest_staging_name("people", attempt_tag(run.pk, run.attempt), batch.batch_id)
    assert not wh.table_exists("explore", staging)  # its staging table was dropped
