"""The picture of a pipeline: its steps as a graph (producer -> reader), coloured by the last run.

Plain functions over the saved definition; the pipeline page draws it (:func:`atlas.charts.dag`)
and lists the same as a table.
"""

from __future__ import annotations

from django.urls import reverse

from atlas import charts

from .models import Pipeline, PipelineRun

NOT_RUN = "never"


def step_graph(pipeline: Pipeline) -> tuple[list[dict], list[tuple[str, str]], PipelineRun | None]:
    """(steps with their depth, row and last status; edges by step name; the last run)."""
    steps = list(pipeline.steps.select_related("output").prefetch_related("inputs").order_by("position", "pk"))
    producer = {s.output_id: s.name for s in steps}
    reads = {s.name: sorted({producer[d.pk] for d in s.inputs.all() if d.pk in producer} - {s.name}) for s in steps}
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset = frozenset()) -> int:
        if name not in depth:
            parents = [p for p in reads[name] if p not in seen]
            depth[name] = 1 + max((depth_of(p, seen | {name}) for p in parents), default=-1)
        return depth[name]

    last = pipeline.runs.order_by("-created_at", "-pk").first()
    status = {sr.step_name: sr for sr in last.step_runs.all()} if last else {}
    rows_used: dict[int, int] = {}
    out = []
    for s in steps:
        column = depth_of(s.name)
        row = rows_used.get(column, 0)
        rows_used[column] = row + 1
        step_run = status.get(s.name)
        out.append({"step": s, "column": column, "row": row, "reads": reads[s.name], "step_run": step_run,
                    "status": step_run.status if step_run else NOT_RUN})
    edges = [(parent, s.name) for s in steps for parent in reads[s.name]]
    return out, edges, last


def graph_context(pipeline: Pipeline) -> dict | None:
    nodes, edges, last = step_graph(pipeline)
    if not nodes:
        return None
    drawn = [
        charts.Node(
            key=n["step"].name, label=n["step"].name, column=n["column"], row=n["row"], status=n["status"],
            url=reverse("admin:pipelines_steprun_change", args=[n["step_run"].pk]) if n["step_run"] else "",
            title=f"{n['step'].name} ({n['step'].kind}) writes {n['step'].output.qualified_table}; last run: {n['status']}",
        )
        for n in nodes
    ]
    return {
        "svg": charts.dag(drawn, edges, title=f"Steps of {pipeline.name}"),
        "last_run": last,
        "rows": [[n["step"].name, n["step"].kind, n["step"].output.qualified_table, ", ".join(n["reads"]) or "—",
                  n["status"]] for n in nodes],
    }
