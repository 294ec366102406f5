"""The runner owns the run and step lifecycle: every stage, for every kind of step, in one order."""

from __future__ import annotations

import pytest

from atlas import extensions
from pipelines import hooks, runner
from pipelines.models import RunStatus

from .conftest import run_now

seen: list[tuple[str, str]] = []


class EveryStage:
    """Records each stage it is called at, with the step (or the run's status)."""

    def run_started(self, ctx):
        seen.append(("run_started", ctx.status))

    def run_finished(self, ctx):
        seen.append(("run_finished", ctx.status))

    def started(self, ctx):
        assert ctx.step_run.status == RunStatus.RUNNING
        seen.append(("started", ctx.step.name))

    def prepare(self, ctx):
        seen.append(("prepare", ctx.step.name))

    def staged(self, ctx):
        seen.append(("staged", ctx.step.name))

    def published(self, ctx):
        seen.append(("published", ctx.step.name))

    def skipped(self, ctx):
        seen.append(("skipped", ctx.step.name))

    def failed(self, ctx):
        seen.append(("failed", ctx.step.name))


HOOK = "pipelines.tests.test_lifecycle.EveryStage"


def step_stages(name: str, last: str = "published") -> list[tuple[str, str]]:
    return [("started", name), ("prepare", name), ("staged", name), (last, name)]


def test_every_stage_of_a_run_in_order(wh, simple_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = [HOOK]
    seen.clear()
    pipeline = simple_pipeline()
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert seen == [
        ("run_started", "running"), *step_stages("ingest"), *step_stages("refine"), *step_stages("total"),
        ("run_finished", "succeeded"),
    ]
    seen.clear()
    assert run_now(pipeline).status == RunStatus.SUCCEEDED  # the same file again: nothing new to load
    assert seen[:4] == [("run_started", "running"), ("started", "ingest"), ("prepare", "ingest"),
                          ("skipped", "ingest")]


def test_a_failing_step_ends_with_failed_and_the_run_with_its_status(wh, simple_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = [HOOK]
    seen.clear()
    pipeline = simple_pipeline()
    pipeline.steps.filter(name="total").update(sql="SELECT CAST(max(name) AS integer) AS boom FROM chart.people")
    assert run_now(pipeline).status == RunStatus.FAILED
    assert seen[-4:] == [("started", "total"), ("prepare", "total"), ("failed", "total"), ("run_finished", "failed")]


def test_only_the_chosen_steps_run_in_the_pipelines_order(wh, simple_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = [HOOK]
    pipeline = simple_pipeline()
    run_now(pipeline)
    seen.clear()
    run = runner.start_run(pipeline, dispatch=False)
    runner.execute_run(run.pk, only={pipeline.steps.get(name="total").pk})
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert [s.step_name for s in run.step_runs.all()] == ["total"]
    assert seen == [("run_started", "running"), *step_stages("total"), ("run_finished", "succeeded")]


def test_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="Unknown hook stage 'publishd'"):
        hooks.call("publishd", None)


def test_hooks_contributed_by_an_app_run_when_the_setting_is_unset(wh, simple_pipeline, settings):
    settings.ATLAS_STEP_HOOKS = None
    seen.clear()
    with extensions.added("zz_lifecycle", {"step_hooks": [EveryStage]}):
        # No ``order`` attribute: 500, after compliance, privacy and quality, before lineage (900).
        assert hooks.hook_paths()[-2:] == [HOOK, "lineage.hooks.LineageHook"]
        settings.ATLAS_STEP_HOOKS = [HOOK]  # the setting still overrides
        assert hooks.hook_paths() == [HOOK]


def test_the_dataset_admin_is_built_once_from_the_apps_contributions():
    from django.contrib import admin

    from compliance.dataset_admin import DatasetPiiScan, scan_for_pii
    from pipelines.admin import DatasetAdminBase, build_dataset_admin
    from pipelines.models import Dataset
    from retention.dataset_admin import DatasetRetention, RetentionStatusFilter

    registered = type(admin.site._registry[Dataset])
    assert registered.__mro__[1:4] == (DatasetPiiScan, DatasetRetention, DatasetAdminBase)
    assert scan_for_pii in registered.actions and RetentionStatusFilter in registered.list_filter
    bare = build_dataset_admin([])
    assert bare.list_filter == ("layer",) and not bare.actions
