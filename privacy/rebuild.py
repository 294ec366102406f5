"""Rebuilding Navigate tables after an erasure: the steps lineage finds downstream, re-run through the runner.

Each pipeline concerned gets a real :class:`PipelineRun` (queued, audited,
locked like any run: refused while another run of it is active) that the
runner executes like any other — its run and step hooks, lineage's run START
included — with only the steps producing the Navigate datasets to rebuild, in
the order the pipeline's data requires.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pipelines import runner
from pipelines.models import Dataset, Layer, PipelineRun, Step, Trigger


def downstream_datasets(changed: Iterable[Dataset]) -> set[int]:
    """Datasets downstream of ``changed``: the lineage graph's dataset edges, and the steps' own inputs."""
    start = {d.pk for d in changed}
    found: set[int] = set()
    try:
        from lineage import graph
        from lineage.models import LineageNode, NodeKind

        nodes = LineageNode.objects.filter(dataset_id__in=start, kind=NodeKind.DATASET).values_list("pk", flat=True)
        reached = graph.walk(list(nodes), graph.DOWNSTREAM, columns=False)
        found |= set(
            LineageNode.objects.filter(pk__in=list(reached), dataset__isnull=False).values_list("dataset_id", flat=True)
        )
    except ImportError:  # lineage not installed: the steps' inputs still say what reads what
        pass
    frontier = set(start)
    while frontier:
        outputs = set(Step.objects.filter(inputs__in=frontier).values_list("output_id", flat=True)) - found - start
        found |= outputs
        frontier = outputs
    return found - start


def rebuild(datasets: Iterable[Dataset], *, actor=None, trigger: str = Trigger.MANUAL) -> list[PipelineRun]:
    """Re-run the steps producing ``datasets`` (Navigate), one run per pipeline; returns the runs."""
    wanted = {d.pk for d in datasets if d.layer == Layer.NAVIGATE}
    steps = Step.objects.filter(output_id__in=wanted).select_related("pipeline")
    by_pipeline: dict[int, set[int]] = defaultdict(set)
    pipelines = {}
    for step in steps:
        by_pipeline[step.pipeline_id].add(step.pk)
        pipelines[step.pipeline_id] = step.pipeline
    return [_run_steps(pipelines[pid], ids, actor=actor, trigger=trigger) for pid, ids in sorted(by_pipeline.items())]


def _run_steps(pipeline, step_ids: set[int], *, actor, trigger: str) -> PipelineRun:
    """One run of ``pipeline`` with only these steps, through the runner: the run and step hooks, the lock."""
    # forced: an erasure rebuilds even where nothing the versions see changed (pipelines.freshness)
    run = runner.start_run(pipeline, actor=actor, trigger=trigger, dispatch=False, force=True)
    runner.execute_run(run.pk, only=step_ids)
    run.refresh_from_db()
    return run
