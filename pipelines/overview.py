"""The pipelines' part of the admin's home: each pipeline's health, last and next run; runs per day.

Contributed as ``overview_sections`` (atlas.overview); plain functions, tested directly.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from celery.schedules import crontab
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from atlas import charts, humanize
from atlas.admin_kit import badge
from atlas.overview import BAD, OK, WARN, Chart, Section, worst

from .models import PARTIALLY_FAILED, Pipeline, PipelineRun, RunStatus
from .schedules import parse_crontab

DAYS = 14
RECENT = 5  # runs a pipeline's health looks back on
OUTCOMES = (  # series of the runs-per-day chart: (status, css key, label)
    (RunStatus.SUCCEEDED, "succeeded", "succeeded"),
    (PARTIALLY_FAILED, "partial", "partially failed"),
    (RunStatus.FAILED, "failed", "failed"),
    (RunStatus.CANCELLED, "cancelled", "cancelled"),
)
HEALTH_COLOURS = {OK: "#198754", WARN: "#b8860b", BAD: "#dc3545"}


def next_run(schedule: str, now: datetime) -> datetime | None:
    """When beat next triggers a pipeline with this crontab (in the site's time zone); None without one."""
    if not schedule:
        return None
    local = timezone.localtime(now)
    cron = crontab(**parse_crontab(schedule), nowfun=lambda: local)
    return local + cron.remaining_estimate(local)


def health(statuses: list[str], *, enabled: bool) -> tuple[str, str]:
    """(level, words) from a pipeline's latest run statuses, newest first."""
    if not statuses:
        return OK, "never run" if enabled else "disabled, never run"
    finished = [s for s in statuses if s not in (RunStatus.QUEUED, RunStatus.RUNNING)]
    if not finished:
        return OK, "first run in progress"
    latest = finished[0]
    if latest == RunStatus.FAILED:
        streak = next((i for i, s in enumerate(finished) if s != RunStatus.FAILED), len(finished))
        return BAD, "failing" if streak < 2 else f"failing ({streak} runs in a row)"
    if latest == PARTIALLY_FAILED:
        return WARN, "partially failing"
    if latest == RunStatus.CANCELLED:
        return WARN, "last run cancelled"
    return OK, "healthy" if enabled else "healthy, disabled"


def pipeline_rows(now: datetime) -> list[dict]:
    """Every pipeline with its latest runs (two queries), its health and its next scheduled run."""
    pipelines = list(Pipeline.objects.order_by("name"))
    recent: dict[int, list[PipelineRun]] = {p.pk: [] for p in pipelines}
    since = now - timedelta(days=60)
    runs = (
        PipelineRun.objects.filter(created_at__gte=since)
        .only("pk", "pipeline_id", "status", "created_at", "started_at", "finished_at")
        .order_by("-created_at", "-pk")
    )
    for run in runs:
        if len(recent[run.pipeline_id]) < RECENT:
            recent[run.pipeline_id].append(run)
    missing = [p.pk for p in pipelines if not recent[p.pk]]
    if missing:  # pipelines without a run in 60 days: their one latest run, if any
        for run in PipelineRun.objects.filter(pipeline_id__in=missing).order_by("pipeline_id", "-created_at", "-pk"):
            if not recent[run.pipeline_id]:
                recent[run.pipeline_id].append(run)
    rows = []
    for p in pipelines:
        runs_of = recent[p.pk]
        level, words = health([r.status for r in runs_of], enabled=p.enabled)
        rows.append({
            "pipeline": p, "last": runs_of[0] if runs_of else None, "level": level, "health": words,
            "next": next_run(p.schedule, now) if p.enabled else None,
        })
    return rows


def runs_per_day(now: datetime, days: int = DAYS) -> tuple[list[date], dict[str, list[int]]]:
    """Runs created on each of the last ``days`` local days, counted by outcome (one grouped query)."""
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    counts: Counter = Counter()
    grouped = (
        PipelineRun.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day", "status").annotate(n=Count("pk")).order_by()
    )
    for row in grouped:
        counts[(row["day"], row["status"])] += row["n"]
    labels = [first + timedelta(days=i) for i in range(days)]
    return labels, {status: [counts[(d, status)] for d in labels] for status, _k, _l in OUTCOMES}


def runs_chart(now: datetime) -> Chart:
    labels, by_status = runs_per_day(now)
    names = [d.strftime("%d %b") for d in labels]
    series = [charts.Series(key, label, by_status[status]) for status, key, label in OUTCOMES]
    total = sum(sum(v) for v in by_status.values())
    return Chart(
        svg=charts.stacked_bars(names, series, title=f"Pipeline runs per day over the last {DAYS} days, by outcome"),
        caption=f"{humanize.number(total)} run(s) over the last {DAYS} days, by the day they were triggered.",
        columns=["day", *[label for _s, _k, label in OUTCOMES]],
        rows=charts.table_rows(names, series),
    )


def section(request, now: datetime) -> Section | None:
    if not request.user.has_perm("pipelines.view_pipeline"):
        return None
    rows = pipeline_rows(now)
    table = []
    for row in rows:
        p, last = row["pipeline"], row["last"]
        name = format_html('<a href="{}">{}</a>', reverse("admin:pipelines_pipeline_change", args=[p.pk]), p.name)
        last_cell = (
            format_html('<a href="{}">#{}</a> {}', reverse("admin:pipelines_pipelinerun_change", args=[last.pk]),
                        last.pk, humanize.local_time(last.created_at, now))
            if last else "never"
        )
        status = PipelineRun(status=last.status).get_status_display() if last else ""
        table.append([
            name, badge(row["health"], HEALTH_COLOURS[row["level"]]),
            format_html("{} {}", status.lower(), last_cell) if last else last_cell,
            humanize.local_time(row["next"], now) if row["next"] else ("disabled" if not p.enabled else "no schedule"),
        ])
    bad = [r for r in rows if r["level"] != OK]
    if not rows:
        summary = "No pipelines yet: add one, or load the demo (manage.py load_demo)."
    elif bad:
        summary = f"{len(bad)} of {len(rows)} pipeline(s) need attention."
    else:
        summary = f"All {len(rows)} pipeline(s) healthy."
    return Section(
        key="pipelines", title="Pipelines", order=10, level=worst([r["level"] for r in rows]), summary=summary,
        columns=["pipeline", "health", "last run", "next scheduled run"], rows=table, total=len(rows),
        chart=runs_chart(now) if rows else None,
        link=reverse("admin:pipelines_pipelinerun_changelist"), link_label="All runs",
    )
