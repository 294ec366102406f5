"""The pipelines app's metric families (contributed as ``metric_sources``, read by ``atlas.metrics``).

Runs by pipeline and status, step durations and rows by layer, datasets' age and
size, and the ingest rejects each dataset's quarantine holds (``quality`` adds the
rows its drop checks moved to the same family).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from atlas.metrics import STEP_DURATION_BUCKETS


def pipeline_run_metrics() -> Iterator[Metric]:
    from pipelines.models import ACTIVE_STATUSES, PipelineRun, RunStatus

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

    # How long the oldest queued run has waited and the oldest running run has run (alerts: stuck runs).
    oldest = GaugeMetricFamily(
        "atlas_pipeline_run_oldest_active_seconds",
        "Seconds since the oldest queued run was created / the oldest running run started, by pipeline.",
        labels=["pipeline", "status"],
    )
    now = timezone.now()
    since = (
        PipelineRun.objects.filter(status__in=ACTIVE_STATUSES)
        .values_list("pipeline__name", "status")
        .annotate(created=Min("created_at"), started=Min("started_at"))
        .order_by()
    )
    for pipeline, status, created, started in since:
        began = started if status == RunStatus.RUNNING and started is not None else created
        oldest.add_metric([pipeline, status], max((now - began).total_seconds(), 0.0))
    yield oldest


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

    up_to_date = CounterMetricFamily(
        "atlas_steps_up_to_date", "Steps skipped as up to date (inputs and definition unchanged since their last good"
        " execution, pipelines.freshness), by the layer they write.", labels=["layer"]
    )
    skipped = dict(StepRun.objects.filter(status="skipped", output__isnull=False, details__has_key="up_to_date")
                   .values("output__layer").annotate(n=Count("id")).order_by().values_list("output__layer", "n"))
    for layer in Layer.values:
        up_to_date.add_metric([layer], skipped.get(layer, 0))
    yield up_to_date


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
    for name, n in sorted(held.items()):
        quarantined.add_metric([name], n)
    yield quarantined
