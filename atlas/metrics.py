"""``/metrics`` for Prometheus: Django's own (django-prometheus) plus Atlas's, read from the database.

Why from the database at scrape time: runs execute in Celery workers (or in
a thread of the web process), several of each, restarted at will. Counters
kept in worker memory would disagree between processes and reset on every
deploy. The run records are already the truth, so every Atlas metric —
gauges of state *and* ``_total`` counters — is computed from them when
Prometheus scrapes: web and worker agree by construction, and nothing is
lost on restart. The counters are monotonic because run history is
append-only in normal operation (only a superuser deleting history lowers
them, which Prometheus treats as a counter reset).

django-prometheus' request metrics, and the few counters of events that
leave no row behind (:data:`LINEAGE_DELIVERIES`: each attempt to send an
OpenLineage event), live in process memory; set ``PROMETHEUS_MULTIPROC_DIR``
(the same directory for every web and worker process on a machine) and
prometheus-client writes them to files there, and this view adds up every
process's, living or gone, with its multiprocess collector.

Labels are bounded: pipeline, dataset, layer, status, periodic task name —
objects an operator declares — never run ids or users.

Other apps add their own families with :func:`register_source` (called from
their ``AppConfig.ready``); until they do, the built-in fallbacks below read
their models if and when those exist, and emit nothing otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

# Step durations: from a small file (seconds) to a long warehouse rebuild (hours).
STEP_DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)

# Counted where it happens (worker processes), summed across processes at scrape time (multiprocess mode).
LINEAGE_DELIVERIES = Counter(
    "atlas_lineage_deliveries",
    "Attempts to send an OpenLineage event to OPENLINEAGE_URL, by outcome (delivered, retry, failed).",
    ["outcome"],
)
DELIVERY_OUTCOMES = ("delivered", "retry", "failed")


def count_lineage_delivery(outcome: str, n: int = 1) -> None:
    if outcome not in DELIVERY_OUTCOMES:
        raise ValueError(f"Unknown delivery outcome {outcome!r} (one of {', '.join(DELIVERY_OUTCOMES)}).")
    LINEAGE_DELIVERIES.labels(outcome).inc(n)


MetricSource = Callable[[], Iterable[Metric]]
_sources: list[MetricSource] = []


def register_source(source: MetricSource) -> MetricSource:
    """Add a function yielding metric families to every scrape (usable as a decorator)."""
    if source not in _sources:
        _sources.append(source)
    return source


# --- pipelines ---------------------------------------------------------------------
def pipeline_run_metrics() -> Iterator[Metric]:
    from pipelines.models import ACTIVE_STATUSES, PipelineRun

    finished = CounterMetricFamily(
        "atlas_pipeline_runs", "Pipeline runs that ended, by pipeline and final status.", labels=["pipeline", "status"]
    )
    active = GaugeMetricFamily(
        "atlas_pipeline_runs_active", "Pipeline runs queued or running now.", labels=["pipeline", "status"]
    )
    rows = PipelineRun.objects.values_list("pipeline__name", "status").annotate(n=Count("id")).order_by()
    for pipeline, status, n in rows:
        (active if status in ACTIVE_STATUSES else finished).add_metric([pipeline, status], n)
    yield finished
    yield active


def step_metrics() -> Iterator[Metric]:
    from pipelines.models import FINISHED_STATUSES, Layer, StepRun

    ended = StepRun.objects.filter(
        status__in=FINISHED_STATUSES, started_at__isnull=False, finished_at__isnull=False, output__isnull=False
    ).annotate(took=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()))
    buckets = {
        f"le_{i}": Count("id", filter=Q(took__lte=timedelta(seconds=b))) for i, b in enumerate(STEP_DURATION_BUCKETS)
    }
    histogram = HistogramMetricFamily(
        "atlas_step_duration_seconds", "Time steps took, by the layer they write.", labels=["layer"]
    )
    per_layer = ended.values("output__layer").annotate(total=Count("id"), took_sum=Sum("took"), **buckets).order_by()
    for row in per_layer:
        cumulative = [(_le(b), row[f"le_{i}"]) for i, b in enumerate(STEP_DURATION_BUCKETS)]
        cumulative.append(("+Inf", row["total"]))
        took_sum = row["took_sum"]
        seconds = took_sum.total_seconds() if isinstance(took_sum, timedelta) else float(took_sum or 0) / 1e6
        histogram.add_metric([row["output__layer"]], cumulative, seconds)
    yield histogram

    processed = CounterMetricFamily(
        "atlas_rows_processed", "Rows steps wrote, by the layer they write.", labels=["layer"]
    )
    rejected = CounterMetricFamily(
        "atlas_rows_rejected", "Rows steps rejected (quarantined or dropped), by layer.", labels=["layer"]
    )
    totals = {row["output__layer"]: row for row in StepRun.objects.filter(output__isnull=False)
              .values("output__layer").annotate(out=Sum("rows_out"), rej=Sum("rows_rejected")).order_by()}
    for layer in Layer.values:
        row = totals.get(layer, {})
        processed.add_metric([layer], row.get("out") or 0)
        rejected.add_metric([layer], row.get("rej") or 0)
    yield processed
    yield rejected


def _le(bound: float) -> str:
    return str(float(bound))


def dataset_metrics() -> Iterator[Metric]:
    from pipelines.models import Dataset, LoadedBatch

    age = GaugeMetricFamily(
        "atlas_dataset_last_load_age_seconds",
        "Seconds since the dataset was last loaded successfully (absent: never loaded).",
        labels=["dataset", "layer"],
    )
    rows = GaugeMetricFamily("atlas_dataset_rows", "Rows the dataset held after its last load.", labels=["dataset", "layer"])
    now = timezone.now()
    for name, layer, loaded_at, count in Dataset.objects.values_list("name", "layer", "last_loaded_at", "row_count"):
        if loaded_at is not None:
            age.add_metric([name, layer], max((now - loaded_at).total_seconds(), 0.0))
        if count is not None:
            rows.add_metric([name, layer], count)
    yield age
    yield rows

    quarantined = GaugeMetricFamily(
        "atlas_quarantined_rows",
        "Rows sent to a dataset's quarantine: records that could not be parsed, and rows a drop check moved.",
        labels=["dataset"],
    )
    held: dict[str, int] = {}
    per_dataset = LoadedBatch.objects.values_list("dataset__name").annotate(n=Sum("rows_rejected")).order_by()
    for name, n in per_dataset:
        held[name] = held.get(name, 0) + (n or 0)
    check_runs = _model_with("quality", ("CheckRun",), ("rows_quarantined", "dataset"))
    if check_runs is not None:
        dropped = check_runs.objects.values_list("dataset__name").annotate(n=Sum("rows_quarantined")).order_by()
        for name, n in dropped:
            held[name] = held.get(name, 0) + (n or 0)
    for name, n in sorted(held.items()):
        quarantined.add_metric([name], n)
    yield quarantined


# --- schedules ---------------------------------------------------------------------
def beat_metrics() -> Iterator[Metric]:
    """How late each enabled periodic task is: now minus when it was last due and not run."""
    from django_celery_beat.models import PeriodicTask

    lag = GaugeMetricFamily(
        "atlas_beat_schedule_lag_seconds",
        "Seconds a periodic task is overdue (0 when beat ran it on time).",
        labels=["task"],
    )
    tasks = PeriodicTask.objects.filter(enabled=True).select_related("crontab", "interval", "solar", "clocked")
    for task in tasks:
        try:
            schedule = task.schedule
        except Exception as exc:  # a broken schedule row must not break the scrape
            logger.warning("Cannot read the schedule of periodic task %r: %s", task.name, exc)
            continue
        last = task.last_run_at or task.start_time or task.date_changed
        if last is None:
            continue
        remaining = schedule.remaining_estimate(last)
        lag.add_metric([task.name], max(-remaining.total_seconds(), 0.0) if remaining is not None else 0.0)
    yield lag


def audit_metrics() -> Iterator[Metric]:
    from atlas.models import AuditEvent

    events = CounterMetricFamily("atlas_audit_events", "Events appended to the audit log.")
    events.add_metric([], AuditEvent.objects.count())
    yield events


# --- the other apps, when their models exist -----------------------------------------
def _model_with(app_label: str, model_names: tuple[str, ...], fields: tuple[str, ...]):
    """The first of ``model_names`` in ``app_label`` that has every field, else None."""
    if not apps.is_installed(app_label) and app_label not in {c.label for c in apps.get_app_configs()}:
        return None
    for name in model_names:
        try:
            model = apps.get_model(app_label, name)
        except LookupError:
            continue
        try:
            for field in fields:
                model._meta.get_field(field)
        except FieldDoesNotExist:
            continue
        return model
    return None


def _count_by(model, fields: tuple[str, ...], name: str, doc: str, labels: list[str], kind=GaugeMetricFamily) -> Metric:
    family = kind(name, doc, labels=labels)
    for row in model.objects.values_list(*fields).annotate(n=Count("pk")).order_by():
        family.add_metric([str(v) for v in row[:-1]], row[-1])
    return family


def other_app_metrics() -> Iterator[Metric]:
    """Checks by outcome/severity, PII findings by entity/status, lineage outbox backlog."""
    results = _model_with("quality", ("CheckResult",), ("outcome", "severity"))
    if results is not None:
        yield _count_by(results, ("outcome", "severity"), "atlas_check_results",
                        "Quality check results recorded, by outcome and severity.", ["outcome", "severity"],
                        CounterMetricFamily)
    findings = _model_with("compliance", ("PiiFinding",), ("entity", "status"))
    if findings is not None:
        yield _count_by(findings, ("entity", "status"), "atlas_pii_findings",
                        "PII findings, by entity type and status.", ["entity", "status"])
    outbox = _model_with("lineage", ("OutboxEvent",), ("delivered_at",))
    if outbox is not None:
        backlog = GaugeMetricFamily("atlas_lineage_outbox_backlog", "Lineage events stored but not yet delivered.")
        backlog.add_metric([], outbox.objects.filter(delivered_at__isnull=True).count())
        yield backlog


BUILTIN_SOURCES: tuple[MetricSource, ...] = (
    pipeline_run_metrics,
    step_metrics,
    dataset_metrics,
    beat_metrics,
    audit_metrics,
    other_app_metrics,
)


class AtlasCollector:
    """Reads Atlas's state from the database on every scrape (see the module docstring)."""

    def describe(self) -> list[Metric]:
        # Registering must not query the database (it happens at import).
        return []

    def collect(self) -> Iterator[Metric]:
        seen: set[str] = set()
        for source in (*_sources, *BUILTIN_SOURCES):
            try:
                families = list(source())
            except Exception:  # one broken source must not hide all the others
                logger.exception("Metric source %s failed", getattr(source, "__name__", source))
                continue
            for family in families:
                if family.name not in seen:  # an app's own source replaces a fallback of the same name
                    seen.add(family.name)
                    yield family


atlas_registry = CollectorRegistry(auto_describe=False)
atlas_registry.register(AtlasCollector())


def process_registry() -> CollectorRegistry:
    """django-prometheus' metrics: this process's, or every process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition() -> bytes:
    """The whole exposition text: process metrics, then Atlas's."""
    return generate_latest(process_registry()) + generate_latest(atlas_registry)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics``: open like django-prometheus' own view; restrict it at the proxy if needed."""
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
