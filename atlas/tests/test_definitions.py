"""Definitions as code: export, plan, apply, round trip; every bad project refused with nothing changed (issue 19)."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from atlas.definitions import plan as plans
from atlas.definitions import project, schema, state
from atlas.models import AuditEvent
from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step
from quality.models import Check


@pytest.fixture
def demo(db, tmp_path):
    from demo.install import install

    return install(tmp_path / "data")


def files_of(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def wipe() -> None:
    Check.objects.all().delete()
    Step.objects.all().delete()
    Pipeline.objects.all().delete()
    Dataset.objects.all().delete()
    Source.objects.all().delete()


def test_export_then_apply_on_an_empty_database_round_trips(demo, tmp_path):
    out = tmp_path / "project"
    call_command("atlas", "export", str(out))
    exported = files_of(out)
    assert "pipelines/ecommerce.yml" in exported and "sources.yml" in exported and "datasets.yml" in exported
    assert any(name.startswith("pipelines/ecommerce/") and name.endswith(".sql") for name in exported)
    step = yaml.safe_load(exported["pipelines/ecommerce.yml"])["steps"][1]
    assert "sql" not in step and step["sql_file"].endswith(".sql")  # SQL in its own file, reviewable
    before = state.from_database()
    assert not plans.make_plan(project.read(out))  # the database already holds it
    applied = AuditEvent.objects.filter(action="definitions.apply").count()

    wipe()
    call_command("atlas", "apply", str(out))
    assert state.from_database() == before
    again = tmp_path / "again"
    call_command("atlas", "export", str(again))
    assert files_of(again) == exported
    assert AuditEvent.objects.filter(action="definitions.apply").count() == applied + 1


def test_a_plan_shows_each_change_and_apply_makes_it(demo, tmp_path, capsys):
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    pipeline_file = out / "pipelines" / "ecommerce.yml"
    doc = yaml.safe_load(pipeline_file.read_text())
    doc["description"] = "Reviewed in git."
    doc["schedule"] = "0 6 * * *"
    pipeline_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    sql_file = out / "pipelines" / doc["steps"][1]["sql_file"]
    sql_file.write_text(sql_file.read_text().replace("SELECT", "SELECT DISTINCT", 1))
    datasets = yaml.safe_load((out / "datasets.yml").read_text())
    datasets.append({"name": "extra", "layer": "chart", "table": "extra"})
    (out / "datasets.yml").write_text(yaml.safe_dump(datasets, sort_keys=False))

    call_command("atlas", "plan", str(out))
    text = capsys.readouterr().out
    assert "+ datasets extra" in text and "~ pipelines ecommerce" in text
    assert "schedule: '' -> '0 6 * * *'" in text and "+SELECT DISTINCT" in text
    assert "Plan: 1 to create, 2 to update, 0 to delete." in text
    call_command("atlas", "apply", str(out))
    pipeline = Pipeline.objects.get(name="ecommerce")
    assert pipeline.schedule == "0 6 * * *" and pipeline.periodic_task is not None  # saved as the admin saves
    assert Step.objects.get(pk=pipeline.steps.order_by("name")[1].pk).sql.startswith("SELECT DISTINCT")
    assert not plans.make_plan(project.read(out))


def test_a_project_that_would_delete_is_refused_unless_asked(demo, tmp_path):
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    datasets = yaml.safe_load((out / "datasets.yml").read_text())
    checked = next(d for d in datasets if d.get("checks"))
    checked["checks"] = checked["checks"][1:]
    (out / "datasets.yml").write_text(yaml.safe_dump(datasets, sort_keys=False))
    checks = Check.objects.count()
    with pytest.raises(CommandError, match=r"would delete 1 object\(s\) \(checks .*--allow-delete"):
        call_command("atlas", "apply", str(out))
    assert Check.objects.count() == checks
    call_command("atlas", "apply", str(out), "--allow-delete")
    assert Check.objects.count() == checks - 1


def edit(out: Path, name: str, change) -> None:
    path = out / name
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("pipelines/ecommerce.yml", lambda d: d.update(colour="red"), "Additional properties are not allowed"),
        ("pipelines/ecommerce.yml", lambda d: d.update(enabled="yes"), "at enabled: 'yes' is not of type 'boolean'"),
        ("pipelines/ecommerce.yml", lambda d: d.update(name="other"), "its name is 'other', the file says 'ecommerce'"),
        ("pipelines/ecommerce.yml", lambda d: d["steps"][0].update(kind="explode"), "is not one of"),
        ("pipelines/ecommerce.yml", lambda d: d["steps"][1].update(sql_file="../../../etc/passwd"), "is not a file of the project"),
        ("datasets.yml", lambda d: d.append(d[0]), "defined twice"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_nothing_changes(demo, tmp_path, name, change, message):
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    edit(out, name, change)
    before = state.from_database()
    with pytest.raises(project.ProjectError, match=message) as caught:
        plans.apply(project.read(out))
    assert str(out / name) in str(caught.value)
    assert state.from_database() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["steps"][1].update(output="no_such_dataset"), "output names datasets 'no_such_dataset'"),
        (lambda d: d["steps"][1].update(sql="SELECT * FROM chart.nowhere", sql_file=None) or d["steps"][1].pop("sql_file"),
         "Unknown dataset"),
        (lambda d: d["steps"][1].update(write_mode="merge", merge_keys="", incremental=False), "Merge needs at least one key column"),
    ],
)
def test_a_definition_the_models_refuse_is_refused_and_nothing_changes(demo, tmp_path, change, message):
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    edit(out, "pipelines/ecommerce.yml", change)
    (out / "datasets.yml").write_text(
        (out / "datasets.yml").read_text() + yaml.safe_dump([{"name": "new_one", "layer": "chart", "table": "new_one"}])
    )
    before = state.from_database()
    with pytest.raises(plans.ApplyError, match=message):
        plans.apply(project.read(out))
    assert state.from_database() == before  # the new dataset, applied first, was rolled back too


def test_a_cycle_made_by_the_files_is_refused(demo, tmp_path):
    out = tmp_path / "project"
    project.write(state.from_database(), out)

    def loop(doc):
        first_refine = next(s for s in doc["steps"] if s["kind"] == "refine")
        first_refine.pop("sql_file")
        first_refine["sql"] = "SELECT * FROM navigate.daily_revenue"

    edit(out, "pipelines/ecommerce.yml", loop)
    with pytest.raises(plans.ApplyError):
        plans.apply(project.read(out))


def test_an_apply_validates_each_steps_sql_once(db, tmp_path, monkeypatch):
    """Saving a check that reads another dataset plans its pipeline; within one apply those plans share what
    the steps' saves read (``Kind.apply_scope``): the demo took 24 validations and 55 column look-ups, now one
    validation a step."""
    import pipelines.sql
    from demo.install import install

    monkeypatch.setattr(pipelines.sql, "_CHECKED", OrderedDict())  # validations earlier tests of this process kept
    validated = []
    validate = pipelines.sql.validate_select
    monkeypatch.setattr(pipelines.sql, "validate_select", lambda sql, *a, **k: validated.append(sql) or validate(sql, *a, **k))
    install(tmp_path / "data")
    steps = list(Step.objects.exclude(sql="").values_list("sql", flat=True))
    assert len(steps) > 1 and Check.objects.exclude(kind__in=("not_null", "unique")).exists()
    assert sorted(validated) == sorted(steps)


def test_not_a_project_and_unreadable_yaml(tmp_path, db):
    with pytest.raises(project.ProjectError, match="no atlas.yml"):
        project.read(tmp_path)
    (tmp_path / "atlas.yml").write_text("version: 1\n")
    (tmp_path / "sources.yml").write_text("- name: [unclosed\n")
    with pytest.raises(project.ProjectError, match="sources.yml: cannot be read as YAML"):
        project.read(tmp_path)


def test_the_shipped_schema_is_the_models_and_validates_an_export(demo, tmp_path):
    assert json.loads(schema.SHIPPED.read_text()) == schema.build(), "run: manage.py atlas schema"
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    project.read(out)  # every file checked against it on the way


def test_a_pipeline_applied_from_files_runs(wh, demo, tmp_path):
    from atlas.tests.plugin import run_now
    from demo.generator import generate

    generate(tmp_path / "data", rows=400, seed=7)
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    wipe()
    plans.apply(project.read(out))
    run = run_now(Pipeline.objects.get(name="ecommerce"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert wh.row_count("navigate", "daily_revenue") > 0


def test_the_admin_warns_that_an_applied_definition_is_managed_from_files(demo, tmp_path, admin_client):
    out = tmp_path / "project"
    project.write(state.from_database(), out)
    by_hand = Pipeline.objects.create(name="by_hand")
    page = admin_client.get(f"/admin/pipelines/pipeline/{by_hand.pk}/change/")
    assert b"managed from files" not in page.content  # made in the admin, not applied
    pipeline = Pipeline.objects.get(name="ecommerce")
    page = admin_client.get(f"/admin/pipelines/pipeline/{pipeline.pk}/change/")
    assert b"managed from files" in page.content and b"demo/project" in page.content  # the demo is a project
    edit(out, "pipelines/ecommerce.yml", lambda d: d.update(description="From git."))
    plans.apply(project.read(out), origin=str(out), allow_delete=True)
    page = admin_client.get(f"/admin/pipelines/pipeline/{pipeline.pk}/change/")
    assert b"managed from files" in page.content and b"next apply of that project overwrites" in page.content
    assert pipeline.history.latest().history_change_reason == f"atlas apply {out}"[:100]
