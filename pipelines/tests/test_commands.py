import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from pipelines.models import Pipeline, PipelineRun, RunStatus


def test_run_pipeline_prints_the_outcome(wh, simple_pipeline, capsys):
    simple_pipeline()
    call_command("run_pipeline", "people")
    out = capsys.readouterr().out
    assert "succeeded" in out and "refine" in out
    assert PipelineRun.objects.get().trigger == "cli"


def test_run_pipeline_exits_non_zero_when_the_run_fails(wh, simple_pipeline):
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="refine").update(sql="SELECT CAST(name AS integer) AS id FROM explore.people")
    with pytest.raises(CommandError, match="failed"):
        call_command("run_pipeline", "people")
    assert PipelineRun.objects.get().status == RunStatus.FAILED


def test_run_pipeline_names_the_known_pipelines_for_a_typo(wh, simple_pipeline):
    simple_pipeline()
    with pytest.raises(CommandError, match=r"No pipeline named 'peeple' \(known: people\)"):
        call_command("run_pipeline", "peeple")


def test_run_pipeline_is_refused_while_a_run_is_active(wh, simple_pipeline):
    pipeline = simple_pipeline()
    PipelineRun.objects.create(pipeline=pipeline, trigger="api", status="running")
    with pytest.raises(CommandError, match="already has a run in progress"):
        call_command("run_pipeline", "people")


def test_ensure_admin_prints_the_password_once(db, capsys):
    call_command("ensure_admin")
    first = capsys.readouterr().out
    assert "password:" in first
    password = first.split("password:")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)
    call_command("ensure_admin")
    assert "password:" not in capsys.readouterr().out.replace("its password was printed", "")


def test_load_demo_refuses_a_bad_row_count(db):
    with pytest.raises(CommandError):
        call_command("load_demo", "--rows", "0")
    assert not Pipeline.objects.exists()
