"""Pipelines' definitions as code (``atlas.definitions``): sources, datasets, pipelines and their steps."""

from __future__ import annotations

from atlas.definitions.specs import Kind

from .dag import PipelineDefinitionError
from .models import Dataset, Pipeline, Source, Step


def check_pipelines(objects: list) -> None:
    """Every pipeline an apply touched must still order (no cycle, no input nobody produces); its inputs stored."""
    from atlas.definitions.plan import ApplyError

    from . import memo, runner

    pipelines = {o.pipeline_id if isinstance(o, Step) else o.pk for o in objects}
    # One pipelines.memo scope for the whole check: an apply writes definitions, never the warehouse,
    # so each input's columns are asked of the warehouse once and each step's SQL validated once,
    # where every plan and every stored input asked again (two queries a table each, 2N+1
    # validations a pipeline; 1,750 warehouse queries for the definitions tests' applies).
    # A scope of its own, not the apply's (apply_scope below): the apply's deletes came after its
    # saves, and a dataset it deleted must no longer be known here.
    with memo.scope():
        for pipeline in Pipeline.objects.filter(pk__in=pipelines).order_by("name"):
            if not pipeline.steps.exists():
                continue
            try:
                runner.plan_steps(pipeline)
            except PipelineDefinitionError as exc:
                raise ApplyError(f"pipelines {pipeline.name}: {exc}") from None
            runner.save_step_inputs(pipeline)


def _apply_scope():
    """One pipelines.memo scope around an apply's saves (``Kind.apply_scope``).

    Saving a step validates its SQL, and saving a check that reads another dataset plans its
    pipeline (``quality.dependencies.cycle_error``), which validates every step's SQL again and
    asks the warehouse for their inputs' columns: for a project of N checks, N plans. Datasets
    are saved before steps and steps before checks (``Kind.order``), and an apply writes no
    warehouse table, so what a save reads stays true for the saves after it: read once.
    (Deletes come after the saves; ``check_pipelines`` then reads afresh in a scope of its own.)
    """
    from . import memo

    return memo.scope()


def source_to_project(values: dict) -> dict:
    """A path source's location relative to its data root: the project runs on any machine."""
    from .confinement import portable_location

    if values.get("kind") == Source.Kind.PATH and values.get("location"):
        return {**values, "location": portable_location(values["location"])}
    return values


def source_from_project(values: dict) -> dict:
    """A path source's relative location resolved under this machine's data roots."""
    from .confinement import local_location

    if values.get("kind") == Source.Kind.PATH and values.get("location"):
        return {**values, "location": local_location(values["location"])}
    return values


KINDS = [
    Kind("sources", Source, order=10, to_project=source_to_project, from_project=source_from_project),
    Kind("datasets", Dataset, leave_out=frozenset({"owner"}), order=20),
    Kind("pipelines", Pipeline, one_file_each=True, order=30, after_apply=check_pipelines),
    Kind("steps", Step, parent=("pipeline", "pipelines"), refs={"source": "sources", "output": "datasets"},
         files={"sql": ".sql"}, order=31, after_apply=check_pipelines, apply_scope=_apply_scope),
]


def run_versions(pipeline: Pipeline, steps: list[Step]) -> dict[str, int]:
    """The current version of every definition a run of ``steps`` executes (``PipelineRun.definitions``).

    The pipeline, its steps, their sources and outputs, and what other apps define inside those
    datasets (quality's checks), found through the contributed kinds.
    """
    from atlas.definitions.specs import kinds
    from atlas.history import latest_versions

    outputs = [s.output_id for s in steps]
    # The steps' own sources and outputs (loaded with them by the runner's plan): no query for them.
    objects: list = [pipeline, *steps, *{s.source_id: s.source for s in steps if s.source_id}.values(),
                     *{s.output_id: s.output for s in steps}.values()]
    inside = [(kind.model, kind.model._default_manager.filter(**{f"{kind.parent[0]}__in": outputs}).order_by().values("pk"))
              for kind in kinds() if kind.parent and kind.parent[1] == "datasets"]
    return latest_versions(objects, also=inside)  # one query
