"""Pipelines' definitions as code (``atlas.definitions``): sources, datasets, pipelines and their steps."""

from __future__ import annotations

from atlas.definitions.specs import Kind

from .dag import PipelineDefinitionError
from .models import Dataset, Pipeline, Source, Step


def check_pipelines(objects: list) -> None:
    """Every pipeline an apply touched must still order (no cycle, no input nobody produces); its inputs stored."""
    from atlas.definitions.plan import ApplyError

    from . import runner

    pipelines = {o.pipeline_id if isinstance(o, Step) else o.pk for o in objects}
    for pipeline in Pipeline.objects.filter(pk__in=pipelines).order_by("name"):
        if not pipeline.steps.exists():
            continue
        try:
            runner.plan_steps(pipeline)
        except PipelineDefinitionError as exc:
            raise ApplyError(f"pipelines {pipeline.name}: {exc}") from None
        runner.save_step_inputs(pipeline)


KINDS = [
    Kind("sources", Source, order=10),
    Kind("datasets", Dataset, leave_out=frozenset({"owner"}), order=20),
    Kind("pipelines", Pipeline, one_file_each=True, order=30, after_apply=check_pipelines),
    Kind("steps", Step, parent=("pipeline", "pipelines"), refs={"source": "sources", "output": "datasets"},
         files={"sql": ".sql"}, order=31, after_apply=check_pipelines),
]
