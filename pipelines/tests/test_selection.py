"""Selecting steps as dbt selects models: ``run_pipeline people --select +total`` (issue 19)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from atlas.api.testing import token_client, user_with_role
from pipelines.models import Dataset, PipelineRun, RunStatus, Step
from pipelines.selection import SelectionError, select_steps


@pytest.fixture
def branched(simple_pipeline):
    """ingest -> refine -> total (tag finance); refine -> names (another branch)."""
    pipeline = simple_pipeline()
    names = Dataset.objects.create(name="people_names", layer="navigate", table="people_names")
    Step.objects.create(pipeline=pipeline, name="names", kind="aggregate", output=names, position=3,
                        sql="SELECT string_agg(name, ',' ORDER BY name) AS names FROM chart.people")
    pipeline.steps.filter(name="total").update(tags=["finance", "daily"])
    return pipeline


def names_of(pipeline, ids):
    return sorted(Step.objects.filter(pipeline=pipeline, pk__in=ids).values_list("name", flat=True))


@pytest.mark.parametrize(
    ("select", "exclude", "expected"),
    [
        (["+total"], [], ["ingest", "refine", "total"]),
        (["refine+"], [], ["names", "refine", "total"]),
        (["ingest+1"], [], ["ingest", "refine"]),
        (["1+total"], [], ["refine", "total"]),
        (["+total+"], [], ["ingest", "refine", "total"]),
        (["tag:finance"], [], ["total"]),
        (["+tag:daily"], [], ["ingest", "refine", "total"]),
        (["refine+,tag:finance"], [], ["total"]),  # a comma: both
        (["total names"], [], ["names", "total"]),  # a space: either
        (["total", "names"], [], ["names", "total"]),
        (["chart.people"], [], ["refine"]),  # by table, qualified or not, or by dataset name
        (["people_total"], [], ["total"]),
        (["raw_people+1"], [], ["ingest", "refine"]),
        (["*"], ["names"], ["ingest", "refine", "total"]),
        ([], ["+names"], ["total"]),  # only an exclusion: from every step
    ],
)
def test_selectors_choose_the_steps_dbt_would(branched, select, exclude, expected):
    assert names_of(branched, select_steps(branched, select, exclude)) == expected


def test_no_selector_means_every_step(branched):
    assert select_steps(branched, [], []) is None


@pytest.mark.parametrize(
    ("select", "exclude", "message"),
    [
        (["custmers"], [], r"'custmers' matches no step \(steps: ingest, refine, total, names; tables: .*chart\.people"),
        (["tag:weekly"], [], r"'tag:weekly' matches no step .*tags: daily, finance"),
        (["+total;drop"], [], "Cannot read the selector"),
        (["total++"], [], "Cannot read the selector"),
        (["*"], ["*"], "leaves no step"),
    ],
)
def test_a_selection_that_names_nothing_is_refused_clearly(branched, select, exclude, message):
    with pytest.raises(SelectionError, match=message):
        select_steps(branched, select, exclude)


def test_run_pipeline_select_runs_the_upstream_of_a_table_only(wh, branched, capsys):
    call_command("run_pipeline", "people", "--select", "+people_total")
    run = PipelineRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert sorted(run.step_runs.values_list("step_name", flat=True)) == ["ingest", "refine", "total"]
    assert wh.row_count("navigate", "people_total") == 1 and not wh.table_exists("navigate", "people_names")
    # then only the other branch, reading what the first run published
    call_command("run_pipeline", "people", "--select", "names", "--exclude", "tag:finance")
    assert wh.table_exists("navigate", "people_names")
    assert sorted(PipelineRun.objects.latest("pk").step_runs.values_list("step_name", flat=True)) == ["names"]


def test_run_pipeline_refuses_a_selector_in_one_line(wh, branched):
    with pytest.raises(CommandError, match="'nope' matches no step"):
        call_command("run_pipeline", "people", "--select", "nope")
    assert not PipelineRun.objects.exists()


def test_the_api_runs_a_selection_and_refuses_a_bad_one_with_409(wh, branched):
    """A selector is a string the schema allows; one naming nothing (or unreadable) is refused by a rule: 409."""
    api = token_client(user_with_role("Operator", "ops"))
    bad = api.post(f"/api/v1/pipelines/{branched.pk}/run/", {"select": ["tag:nope"]}, format="json")
    assert bad.status_code == 409 and "matches no step" in str(bad.json())
    unreadable = api.post(f"/api/v1/pipelines/{branched.pk}/run/", {"select": ["total++"]}, format="json")
    assert unreadable.status_code == 409 and "Cannot read the selector" in str(unreadable.json())
    assert not PipelineRun.objects.exists()
    response = api.post(f"/api/v1/pipelines/{branched.pk}/run/", {"select": ["refine+"], "exclude": ["names"]}, format="json")
    assert response.status_code == 201, response.content
    run = PipelineRun.objects.get()
    assert names_of(branched, run.only_steps) == ["refine", "total"]


def test_tags_are_validated(branched):
    from django.core.exceptions import ValidationError

    step = branched.steps.get(name="total")
    step.tags = ["ok", "not ok!"]
    with pytest.raises(ValidationError, match="tags"):
        step.full_clean()
