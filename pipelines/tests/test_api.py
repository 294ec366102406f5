"""The pipelines API: an integrator drives Atlas end to end with a token; bad input is refused clearly."""

from __future__ import annotations

import pytest
from django.urls import reverse

from atlas.api.testing import assert_error, token_client, user_with_role
from atlas.models import AuditEvent
from pipelines import runner
from pipelines.models import Dataset, PipelineRun, RunStatus, Source, Step, StepRun, Trigger

from .conftest import run_now


@pytest.fixture
def operator(db):
    return user_with_role("Operator", "ops")


@pytest.fixture
def api(operator):
    return token_client(operator)


def test_an_integrator_drives_a_pipeline_end_to_end_with_a_token(
    wh, api, operator, make_csv, django_capture_on_commit_callbacks
):
    path = make_csv("id,email,amount\n1,a@x.io,10\n2,b@x.io,32\nnot,a,valid,row\n", "orders.csv")
    source = api.post("/api/v1/sources/", {"name": "orders", "kind": "path", "location": str(path)})
    assert source.status_code == 201, source.json()
    ids = {}
    for name, layer in (("raw_orders", "explore"), ("orders", "chart"), ("revenue", "navigate")):
        response = api.post("/api/v1/datasets/", {"name": name, "layer": layer, "table": name.removeprefix("raw_")})
        assert response.status_code == 201, response.json()
        ids[name] = response.json()["id"]
    pipeline = api.post("/api/v1/pipelines/", {"name": "orders", "description": "from the API"})
    assert pipeline.status_code == 201, pipeline.json()
    pid = pipeline.json()["id"]
    steps = [
        {"name": "load", "kind": "ingest", "source": source.json()["id"], "output": ids["raw_orders"],
         "write_mode": "append", "max_rejected_share": 0.5},
        {"name": "clean", "kind": "refine", "output": ids["orders"], "position": 1,
         "sql": "SELECT CAST(id AS integer) AS id, email, CAST(amount AS integer) AS amount FROM explore.orders"},
        {"name": "sum", "kind": "aggregate", "output": ids["revenue"], "position": 2,
         "sql": "SELECT sum(amount) AS revenue FROM chart.orders"},
    ]
    for step in steps:
        response = api.post("/api/v1/steps/", {"pipeline": pid, **step})
        assert response.status_code == 201, response.json()
    assert api.get(f"/api/v1/steps/{response.json()['id']}/").json()["inputs"] == [ids["orders"]]

    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(f"/api/v1/pipelines/{pid}/run/")
    assert started.status_code == 201, started.json()
    run = started.json()
    assert run["pipeline"] == pid and run["trigger"] == "api" and run["triggered_by"] == "ops"
    assert started["Location"].endswith(f"/api/v1/runs/{run['id']}/")

    polled = api.get(f"/api/v1/runs/{run['id']}/").json()
    assert polled["status"] == "succeeded", polled["error"]
    assert [s["step_name"] for s in polled["step_runs"]] == ["load", "clean", "sum"]
    step_runs = api.get("/api/v1/step-runs/", {"run": run["id"]}).json()["results"]
    by_name = {s["step_name"]: s for s in step_runs}
    assert by_name["load"]["rows_out"] == 2 and by_name["load"]["rows_rejected"] == 1
    assert by_name["sum"]["layer"] == "navigate" and by_name["sum"]["duration_seconds"] >= 0
    revenue = api.get(f"/api/v1/datasets/{ids['revenue']}/").json()
    assert revenue["row_count"] == 1 and [c["name"] for c in revenue["columns"]] == ["revenue"]
    with wh.cursor() as cur:
        assert cur.execute("SELECT revenue FROM navigate.revenue").fetchall() == [(42,)]
    assert AuditEvent.objects.filter(action="pipeline.run", actor=operator).count() == 1


def test_run_while_one_is_active_is_409_with_the_active_run(api, simple_pipeline):
    pipeline = simple_pipeline()
    active = runner.start_run(pipeline, dispatch=False)
    error = assert_error(api.post(f"/api/v1/pipelines/{pipeline.pk}/run/"), 409, "run_active")
    assert error["detail"] == {"active_run": active.pk}
    assert "already has a run in progress" in error["message"]
    assert PipelineRun.objects.count() == 1


def test_a_disabled_pipeline_is_refused_with_409(api, simple_pipeline):
    pipeline = simple_pipeline()
    pipeline.enabled = False
    pipeline.save()
    error = assert_error(api.post(f"/api/v1/pipelines/{pipeline.pk}/run/"), 409, "run_refused")
    assert "disabled" in error["message"]


def test_run_of_an_unknown_pipeline_is_404(api):
    assert_error(api.post("/api/v1/pipelines/999999/run/"), 404, "not_found")


def test_cancel_calls_the_runner_and_a_finished_run_is_409(api, operator, simple_pipeline):
    run = runner.start_run(simple_pipeline(), dispatch=False)
    response = api.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "cancelled" and response.json()["run"]["status"] == "cancelled"
    assert AuditEvent.objects.filter(action="pipeline.cancel", actor=operator).exists()
    assert_error(api.post(f"/api/v1/runs/{run.pk}/cancel/"), 409, "run_finished")


def test_an_analyst_can_read_runs_but_not_run_or_cancel(simple_pipeline):
    pipeline = simple_pipeline()
    run = runner.start_run(pipeline, dispatch=False)
    analyst = token_client(user_with_role("Analyst"))
    assert analyst.get(f"/api/v1/runs/{run.pk}/").status_code == 200
    assert_error(analyst.post(f"/api/v1/runs/{run.pk}/cancel/"), 403, "permission_denied")
    run.status = RunStatus.FAILED
    run.save()
    assert_error(analyst.post(f"/api/v1/pipelines/{pipeline.pk}/run/"), 403, "permission_denied")
    assert PipelineRun.objects.count() == 1


def test_runs_filter_by_pipeline_status_and_time(wh, api, simple_pipeline, ingest_pipeline, make_csv):
    people = simple_pipeline()
    ok = run_now(people)
    other = ingest_pipeline(table="other", location=str(make_csv("a\n1\n", "other.csv")))
    failed = runner.start_run(other, dispatch=False, trigger=Trigger.CLI)
    PipelineRun.objects.filter(pk=failed.pk).update(status=RunStatus.FAILED)

    def ids(**params):
        response = api.get("/api/v1/runs/", params)
        assert response.status_code == 200, response.json()
        return [r["id"] for r in response.json()["results"]]

    assert ids(pipeline=people.pk) == [ok.pk]
    assert ids(status="failed") == [failed.pk]
    assert sorted(ids(status=["failed", "succeeded"])) == sorted([ok.pk, failed.pk])
    assert ids(trigger="cli") == [failed.pk]
    assert ids(created_after=ok.created_at.isoformat(), pipeline_name="people") == [ok.pk]
    assert ids(created_before="2000-01-01T00:00:00Z") == []
    layers = {s["layer"] for s in api.get("/api/v1/step-runs/", {"pipeline": people.pk}).json()["results"]}
    assert layers == {"explore", "chart", "navigate"}
    assert [s["step_name"] for s in api.get("/api/v1/step-runs/", {"layer": "chart"}).json()["results"]] == ["refine"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"status": "exploded"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"pipeline": "not-an-id"}, "pipeline"),
        ({"pipeline": "0"}, "pipeline"),
        ({"pipeline": str(2**63)}, "pipeline"),  # beyond PostgreSQL's bigint: refused, never a database error
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "501"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
    ],
)
def test_bad_run_filters_are_400_naming_the_filter(api, params, field):
    error = assert_error(api.get("/api/v1/runs/", params), 400, "invalid")
    assert field in error["detail"]


def test_an_id_filter_naming_nothing_answers_an_empty_page(api, simple_pipeline):
    """Valid by the schema (an integer id): no such pipeline is an empty page, not a 400."""
    runner.start_run(simple_pipeline(), dispatch=False)
    response = api.get("/api/v1/runs/", {"pipeline": "999999"})
    assert response.status_code == 200 and response.json()["results"] == []
    assert api.get("/api/v1/step-runs/", {"run": "999999"}).json()["results"] == []


@pytest.mark.parametrize(
    "url, params, field",
    [
        ("/api/v1/pipelines/", {"enabled": "maybe"}, "enabled"),  # not ignored
        ("/api/v1/datasets/", {"ordering": "no_such_field"}, "ordering"),  # not ignored
        ("/api/v1/datasets/", {"ordering": "name,-"}, "ordering"),
        ("/api/v1/datasets/", {"page_size": "-3"}, "page_size"),  # not the default
        ("/api/v1/datasets/", {"layer": ""}, "layer"),  # an empty choice is not "no filter"
    ],
)
def test_a_query_value_the_schema_refuses_is_400_not_ignored(api, url, params, field):
    error = assert_error(api.get(url, params), 400, "invalid")
    assert field in error["detail"]


def test_the_values_the_schema_allows_are_accepted(api):
    for params in ({"enabled": "true"}, {"enabled": "false"}, {"ordering": "-name"}, {"ordering": "name,-created_at"},
                   {"page_size": "500"}):
        url = "/api/v1/datasets/" if "page_size" in params else "/api/v1/pipelines/"
        assert api.get(url, params).status_code == 200, params


def test_runs_page_with_a_cursor_without_skipping_or_repeating(api, simple_pipeline):
    pipeline = simple_pipeline()
    made = []
    for _ in range(5):
        run = runner.start_run(pipeline, dispatch=False)
        PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
        made.append(run.pk)
    seen, url = [], "/api/v1/runs/?page_size=2"
    while url:
        body = api.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert seen == sorted(made, reverse=True)
    assert_error(api.get("/api/v1/runs/?cursor=garbage"), 404, "not_found")


def test_a_source_that_breaks_its_model_rules_is_409_with_the_field(api):
    error = assert_error(api.post("/api/v1/sources/", {"name": "web", "kind": "url", "location": "ftp://x"}), 409, "conflict")
    assert "http" in str(error["detail"]["location"])
    error = assert_error(
        api.post("/api/v1/sources/", {"name": "f", "location": "/x.csv", "options": {"delimiter": ";;"}}), 409
    )
    assert "single character" in str(error["detail"]["options"])
    assert not Source.objects.exists()


def test_a_dataset_with_a_bad_table_name_is_refused(api):
    error = assert_error(api.post("/api/v1/datasets/", {"name": "x", "layer": "chart", "table": "Bad Name"}), 409)
    assert "table" in error["detail"]  # the model's rule (409); a layer outside the schema's enum breaks the schema (400)
    assert_error(api.post("/api/v1/datasets/", {"name": "x", "layer": "nowhere", "table": "x"}), 400)


def test_a_step_reading_an_unknown_table_or_forming_a_cycle_is_refused(api, simple_pipeline):
    pipeline = simple_pipeline()
    loop = Dataset.objects.create(name="loop", layer="chart", table="loop")
    error = assert_error(
        api.post("/api/v1/steps/", {"pipeline": pipeline.pk, "name": "bad", "kind": "refine", "output": loop.pk,
                                    "sql": "SELECT * FROM chart.nowhere"}),
        409,
    )
    assert "sql" in error["detail"]
    made = api.post("/api/v1/steps/", {"pipeline": pipeline.pk, "name": "loop", "kind": "refine", "output": loop.pk,
                                       "sql": "SELECT * FROM chart.people"})
    assert made.status_code == 201, made.json()
    refine = pipeline.steps.get(name="refine")
    error = assert_error(api.patch(f"/api/v1/steps/{refine.pk}/", {"sql": "SELECT * FROM chart.loop"}), 409)
    assert "cycle" in error["detail"]["non_field_errors"][0]
    assert Step.objects.get(pk=refine.pk).sql.endswith("FROM explore.people")


def test_deleting_a_step_others_read_is_409_and_keeps_it(api, simple_pipeline):
    pipeline = simple_pipeline()
    refine = pipeline.steps.get(name="refine")
    error = assert_error(api.delete(f"/api/v1/steps/{refine.pk}/"), 409, "breaks_pipeline")
    assert "no step produces" in error["message"]
    assert Step.objects.filter(pk=refine.pk).exists()
    assert api.delete(f"/api/v1/steps/{pipeline.steps.get(name='total').pk}/").status_code == 204


def test_deleting_a_dataset_in_use_is_409_naming_the_user(api, simple_pipeline):
    pipeline = simple_pipeline()
    dataset = pipeline.steps.get(name="ingest").output
    error = assert_error(api.delete(f"/api/v1/datasets/{dataset.pk}/"), 409, "in_use")
    assert error["detail"]["used_by"] == ["people / ingest"]


def test_step_runs_keep_their_history_read_only(api, wh, simple_pipeline):
    run = run_now(simple_pipeline())
    step_run = StepRun.objects.filter(run=run).first()
    assert_error(api.delete(f"/api/v1/step-runs/{step_run.pk}/"), 405, "method_not_allowed")
    assert_error(api.patch(f"/api/v1/runs/{run.pk}/", {"status": "queued"}), 405)


def test_every_list_has_a_browsable_page(client, operator):
    client.force_login(operator)
    for name in ("source", "dataset", "pipeline", "step", "pipelinerun", "steprun"):
        response = client.get(reverse(f"{name}-list"), HTTP_ACCEPT="text/html")
        assert response.status_code == 200, name
        assert b"Django REST framework" in response.content, name


def test_a_time_filter_with_an_extreme_offset_is_read_in_utc(api):
    # PostgreSQL refuses offsets beyond ±15:59; the filter converts to UTC first (found by schemathesis).
    response = api.get("/api/v1/runs/", {"created_after": "2345-03-23T23:47:56+21:33"})
    assert response.status_code == 200 and response.json()["results"] == []
