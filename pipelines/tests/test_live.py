"""A run as it happens (issue 18, item 6): the state the run page polls, and what ``run_pipeline`` prints."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from pipelines import live
from pipelines.models import PipelineRun, RunStatus, Source, StepRun
from pipelines.run_console import RunConsole, ended_line

from .conftest import run_now


def two_files(make_csv, pipeline) -> None:
    first = make_csv("id,name,amount\n1,Ann,10\n2,Bob,20\n", "parts/a.csv")
    make_csv("id,name,amount\n3,Cy,5\n", "parts/b.csv")
    Source.objects.filter(name="people").update(location=str(first.parent / "*.csv"))


def test_the_runner_tells_a_listener_each_step_as_it_starts_progresses_and_ends(wh, simple_pipeline, make_csv):
    pipeline = simple_pipeline()
    two_files(make_csv, pipeline)
    heard: list[tuple[str, dict]] = []
    with live.listening(lambda event, state: heard.append((event, state))):
        run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED
    assert [(e, s["name"]) for e, s in heard if e != live.PROGRESS] == [
        ("started", "ingest"), ("ended", "ingest"), ("started", "refine"), ("ended", "refine"),
        ("started", "total"), ("ended", "total")]
    # the ingest's files, one at a time: rows so far and files done of the two
    progress = [(s["files_done"], s["files_total"], s["rows_in"]) for e, s in heard if e == live.PROGRESS]
    assert progress == [(1, 2, 2), (2, 2, 3)]
    ended = {s["name"]: s for e, s in heard if e == live.ENDED}
    assert ended["ingest"]["rows_out"] == 3 and ended["ingest"]["status"] == RunStatus.SUCCEEDED
    assert ended["refine"]["seconds"] == pytest.approx(
        (lambda sr: (sr.finished_at - sr.started_at).total_seconds())(run.step_runs.get(step_name="refine")))
    # no listener after the block: nothing more is heard
    run_now(pipeline, full_refresh=True)
    assert len(heard) == 8


def test_a_listener_that_fails_never_stops_the_run(wh, simple_pipeline):
    def broken(event, state):
        raise OSError("stdout closed")

    with live.listening(broken):
        run = run_now(simple_pipeline())
    assert run.status == RunStatus.SUCCEEDED


@pytest.mark.step_hooks
def test_run_pipeline_prints_each_step_as_it_starts_and_ends_with_rows_time_and_the_scan_after(
        wh, simple_pipeline, make_csv, capsys):
    two_files(make_csv, simple_pipeline())
    call_command("run_pipeline", "people")
    lines = capsys.readouterr().out.splitlines()
    steps = [line.split()[:2] for line in lines[1:-1] if not line.startswith("    ")]
    assert steps == [["ingest", "started"], ["ingest", "succeeded"], ["refine", "started"], ["refine", "succeeded"],
                     ["total", "started"], ["total", "succeeded"]]
    ingest = next(line for line in lines if line.split()[:2] == ["ingest", "succeeded"])
    # the scan is a task of its own (compliance.scan_tasks): queued when the ingest ends, run by the refine's gate
    assert re.search(r"in \d+\.\d s: 3 rows in, 3 out, 0 rejected, 2 of 2 files; then PII scan queued", ingest), ingest
    assert re.match(r"Run #\d+ succeeded in \d", lines[-1])
    ingested = StepRun.objects.get(step_name="ingest")  # once it ran, the ingest's state tells its time
    assert "PII scan" in [label for label, secs in live.step_state(ingested)["after"] if secs is not None]


def test_steps_that_never_started_are_listed_with_why(wh, simple_pipeline, capsys):
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="refine").update(sql="SELECT CAST(name AS integer) AS id FROM explore.people")
    with pytest.raises(Exception, match="failed"):
        call_command("run_pipeline", "people")
    out = capsys.readouterr().out
    assert "  refine" in out and "error: " in out
    assert re.search(r"^  total\s+skipped\n    why: Skipped: upstream 'refine' failed", out, re.MULTILINE), out


def test_the_state_of_a_running_run_counts_rows_so_far_and_times_the_running_step(wh, simple_pipeline):
    pipeline = simple_pipeline()
    now = timezone.now()
    run = PipelineRun.objects.create(pipeline=pipeline, trigger="api", status=RunStatus.RUNNING,
                                     current_step="refine", started_at=now - timedelta(seconds=75))
    StepRun.objects.create(run=run, step_name="ingest", kind="ingest", position=0, status=RunStatus.SUCCEEDED,
                           rows_in=1200, rows_out=1190, rows_rejected=10, started_at=now - timedelta(seconds=75),
                           finished_at=now - timedelta(seconds=60), details={"files": {"done": 3, "total": 3}})
    StepRun.objects.create(run=run, step_name="refine", kind="refine", position=1, status=RunStatus.RUNNING,
                           rows_in=500, started_at=now - timedelta(seconds=12))
    StepRun.objects.create(run=run, step_name="total", kind="aggregate", position=2)
    state = live.run_state(run, now=now)
    assert state["active"] and state["status"] == "running"
    assert state["summary"] == ("Running step refine (of 3 steps) for 1 min 15 s."
                                " Rows so far: 1,200 in, 1,190 out, 10 rejected.")  # in: what the ingest read
    assert [(s["name"], s["status"], s["duration"]) for s in state["steps"]] == [
        ("ingest", "succeeded", "15.0 s"), ("refine", "running", "12.0 s"), ("total", "queued", "—")]
    assert state["steps"][0]["files_done"] == 3 and 'class="atlas-badge' in state["steps"][1]["status_html"]

    # a watcher reading the same run again tells what changed, as the runner's listener would
    watcher = live.RunWatcher(run)
    assert [(e, s["name"]) for e, s in watcher.poll()] == [("started", "ingest"), ("ended", "ingest"),
                                                          ("started", "refine")]
    assert watcher.poll() == []
    StepRun.objects.filter(run=run, step_name="refine").update(rows_in=900)
    assert [(e, s["name"], s["rows_in"]) for e, s in watcher.poll()] == [("progress", "refine", 900)]
    # published, its PII scan still to do: not ended yet
    StepRun.objects.filter(run=run, step_name="refine").update(status=RunStatus.SUCCEEDED, finished_at=now,
                                                               after_publish="pending")
    assert watcher.poll() == []
    StepRun.objects.filter(run=run, step_name="refine").update(after_publish="done")
    assert [(e, s["name"]) for e, s in watcher.poll()] == [("ended", "refine")]


def test_a_queued_run_waits_for_a_worker_and_an_ended_one_says_how_long_it_took(wh, simple_pipeline):
    pipeline = simple_pipeline()
    queued = PipelineRun.objects.create(pipeline=pipeline, trigger="api", status=RunStatus.QUEUED)
    assert live.run_state(queued)["summary"] == "Queued, waiting for a worker."
    queued.delete()
    run = run_now(pipeline)
    state = live.run_state(run)
    assert not state["active"] and state["summary"].startswith("Succeeded after ")
    assert [s["status"] for s in state["steps"]] == ["succeeded"] * 3


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_console_draws_a_bar_for_an_ingest_on_a_terminal_only(wh, simple_pipeline, make_csv):
    pipeline = simple_pipeline()
    two_files(make_csv, pipeline)
    out, bar = io.StringIO(), Terminal()
    console = RunConsole(out, bar_to=bar)
    with live.listening(console):
        run_now(pipeline)
    console.close()
    assert "ingest" in bar.getvalue() and "2/2 files" in bar.getvalue()  # rich drew it on the terminal
    assert "\x1b" not in out.getvalue() and "2/2" not in out.getvalue()  # the lines themselves stay plain
    piped = io.StringIO()
    RunConsole(io.StringIO(), bar_to=piped)(live.STARTED, live.step_state(run_now(pipeline).step_runs.first()))
    assert piped.getvalue() == ""


def test_the_ended_line_words_durations():
    assert live.duration_words(0.42) == "0.4 s"
    assert live.duration_words(75) == "1 min 15 s"
    assert live.duration_words(3725) == "1 h 2 min"
    assert live.duration_words(None) == "—"
    state = {"name": "load", "kind": "ingest", "status": "failed", "status_label": "Failed", "rows_in": 1500,
             "rows_out": 0, "rows_rejected": 1500, "seconds": 2.0, "duration": "2.0 s", "files_done": 1,
             "files_total": None, "error": "orders.csv: 1500 of 1500 records could not be parsed", "after": []}
    assert ended_line(state) == ("  load                         failed in 2.0 s: 1,500 rows in, 0 out, 1,500 rejected,"
                                 " 1 of ? files\n    error: orders.csv: 1500 of 1500 records could not be parsed")


def test_the_run_page_polls_the_runs_state_as_json_for_those_who_may_see_the_run(wh, simple_pipeline, client):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    run = run_now(simple_pipeline())
    users = get_user_model().objects
    client.force_login(users.create_user("viewer", is_staff=True))
    url = f"/admin/pipelines/pipelinerun/{run.pk}/live/"
    refused = client.get(url)
    assert refused.status_code == 404 and refused.json() == {"error": "No such run."}
    users.get(username="viewer").user_permissions.add(Permission.objects.get(codename="view_pipelinerun"))
    answer = client.get(url)
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    body = answer.json()
    assert body["status"] == "succeeded" and not body["active"]
    assert [s["name"] for s in body["steps"]] == ["ingest", "refine", "total"]
    assert body["rows_so_far"]["rows_out"] == sum(s["rows_out"] for s in body["steps"])
    assert client.get("/admin/pipelines/pipelinerun/999999/live/").status_code == 404
