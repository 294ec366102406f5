"""The pipeline editor's SQL tools (issue 18, item 3): Validate and Preview rows on a step's SELECT."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from pipelines import editor
from pipelines.models import Dataset

from .conftest import run_now

REFINE = "SELECT CAST(id AS integer) AS id, upper(trim(name)) AS shout, CAST(amount AS numeric(12,2)) * 2 AS twice FROM explore.people"


@pytest.fixture
def loaded(wh, simple_pipeline):
    pipeline = simple_pipeline()
    run_now(pipeline)
    return pipeline


def test_validate_names_the_datasets_read_and_the_columns_produced(loaded):
    check = editor.check_step_sql("refine", REFINE)
    assert [ds.qualified_table for ds in check.reads] == ["explore.people"]
    assert check.columns == ["id", "shout", "twice"] and check.layer == "chart" and not check.missing
    total = editor.check_step_sql("aggregate", "SELECT count(*) AS n, max(name) AS top FROM chart.people")
    assert total.columns == ["n", "top"] and total.layer == "navigate"


@pytest.mark.parametrize(("kind", "sql", "message"), [
    ("ingest", "SELECT 1 AS one", "Only refine and aggregate steps have SQL"),
    ("refine", "  ;", "Write the step's SELECT first"),
    ("refine", "SELECT * FROM explore.nobody", "nobody"),
    ("refine", "DELETE FROM explore.people", "SELECT"),
    ("refine", "SELECT id FROM explore.people; SELECT 1", "one"),
    ("aggregate", "SELECT id FROM explore.people", "is not"),  # an aggregate reads chart or navigate
    ("refine", "SELECT pg_read_file('/etc/passwd') AS f FROM explore.people", "pg_read_file"),
])
def test_validate_refuses_what_a_run_would_refuse_with_atlas_own_words(loaded, kind, sql, message):
    with pytest.raises(editor.EditorError, match=message):
        editor.check_step_sql(kind, sql)


def test_an_input_not_loaded_yet_is_named_and_nothing_is_previewed(wh, simple_pipeline):
    simple_pipeline()  # nothing run: explore.people does not exist yet
    check = editor.check_step_sql("refine", REFINE)
    assert check.columns is None and [ds.qualified_table for ds in check.missing] == ["explore.people"]
    with pytest.raises(editor.EditorError, match=r"explore.people has not been loaded; run the step that produces it"):
        editor.preview_step_sql(None, "refine", REFINE)


def test_preview_gives_the_first_rows_as_a_run_would_stage_them(loaded):
    check, rows = editor.preview_step_sql(None, "refine", REFINE + " ORDER BY 1", limit=2)
    assert check.columns == ["id", "shout", "twice"]
    assert [[r[0], r[1], float(r[2])] for r in rows] == [[1, "ANN", 20.0], [2, "BOB", 40.0]]
    assert [editor.cell(v) for v in rows[0]] == [1, "ANN", "20.00"]
    assert editor.cell(float("nan")) == "nan" and editor.cell(b"\x01\xff") == "01ff"


def test_a_preview_that_fails_in_the_warehouse_says_why_without_the_value(loaded):
    with pytest.raises(editor.EditorError) as caught:
        editor.preview_step_sql(None, "refine", "SELECT CAST(name AS integer) AS n FROM explore.people")
    assert "Ann" not in str(caught.value) and "Bob" not in str(caught.value)


def post(client, **data):
    return client.post("/admin/pipelines/pipeline/step-sql/", data)


def test_the_editor_endpoint_answers_json_to_those_who_may_edit_pipelines(loaded, client):
    users = get_user_model().objects
    viewer = users.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pipeline"))
    client.force_login(viewer)
    refused = post(client, kind="refine", sql=REFINE)
    assert refused.status_code == 403 and refused.json() == {"error": "You may not edit pipelines."}

    editor_user = users.create_user("editor", is_staff=True)
    editor_user.user_permissions.add(Permission.objects.get(codename="change_pipeline"))
    client.force_login(editor_user)
    assert client.get("/admin/pipelines/pipeline/step-sql/").status_code == 405
    answer = post(client, kind="refine", sql=REFINE)
    people = Dataset.objects.get(layer="explore", table="people")
    assert answer.status_code == 200 and answer.json() == {
        "kind": "refine", "layer": "chart", "columns": ["id", "shout", "twice"], "missing": [],
        "reads": [{"name": "explore.people", "url": f"/admin/pipelines/dataset/{people.pk}/change/"}]}
    preview = post(client, kind="refine", sql=REFINE + " ORDER BY 1", action="preview").json()
    assert preview["rows"][0] == [1, "ANN", "20.00"] and len(preview["rows"]) == 3
    bad = post(client, kind="refine", sql="SELECT * FROM explore.nobody")
    assert bad.status_code == 400 and "nobody" in bad.json()["error"]
    assert post(client, kind="refine", sql=REFINE, action="drop").status_code == 400
