"""A run's timeline: each step as a bar from its start, with the time its hooks took inside and after it.

The step's own time includes its ``prepare`` and ``staged`` hooks (quality checks, policies); the
``published`` hooks (the PII scan after an ingest, lineage) run after the step ends and before the
next one starts — the time that "the step durations do not add up to the run" was missing.
Contributed as a ``run_panels`` item; the numbers are also given as a table.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils.html import format_html

from atlas import charts, humanize

from .live import hook_label
from .models import PipelineRun


def spans(run: PipelineRun) -> list[charts.Span]:
    step_runs = [s for s in run.step_runs.order_by("started_at", "position", "pk") if s.started_at]
    if not step_runs:
        return []
    origin = run.started_at or step_runs[0].started_at
    out = []
    for s in step_runs:
        own = ((s.finished_at or s.started_at) - s.started_at).total_seconds()
        spent = (s.details or {}).get("hook_seconds") or {}
        inside = [(k, hook_label(k), v) for k, v in spent.items() if not k.startswith("published")]
        after = [(k, hook_label(k), v) for k, v in spent.items() if k.startswith("published")]
        out.append(charts.Span(s.step_name, (s.started_at - origin).total_seconds(), own, s.status, inside, after))
    return out


def run_panel(request, obj) -> str | None:
    if not isinstance(obj, PipelineRun):
        return None
    rows = spans(obj)
    if not rows:
        return None
    total = ((obj.finished_at or obj.heartbeat_at or obj.started_at) - obj.started_at).total_seconds() if obj.started_at else None
    steps_total = sum(r.seconds for r in rows)
    hooks_after = sum(a[2] for r in rows for a in r.after)
    caption = format_html(
        "Steps took {} s in all; hooks after publishing (PII scan, lineage) {} s{}.",
        humanize.number(round(steps_total, 2)), humanize.number(round(hooks_after, 2)),
        format_html(", of a run of {} s", humanize.number(round(total, 2))) if total is not None else "",
    )
    table = [
        [r.label, r.key, humanize.number(round(r.start, 2)), humanize.number(round(r.seconds, 2)),
         ", ".join(f"{label} {humanize.number(round(v, 2))} s" for _k, label, v in r.inside) or "—",
         ", ".join(f"{label} {humanize.number(round(v, 2))} s" for _k, label, v in r.after) or "—"]
        for r in rows
    ]
    return render_to_string("admin/pipelines/_timeline.html", {
        "svg": charts.timeline(rows, title=f"Timeline of run #{obj.pk}"), "caption": caption,
        "columns": ["step", "status", "starts at (s)", "took (s)", "of which hooks", "then, after publishing"],
        "rows": table,
    })
