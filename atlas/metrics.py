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

Atlas's own families (schedules, the audit log) are here; every app adds its
own by contributing ``metric_sources`` in its ``AppConfig`` (:mod:`atlas.extensions`):
``pipelines`` its runs, steps and datasets, ``quality`` its check results, and
so on. This module imports no app.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import extensions
from .doors import scrape_token_ok

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


# --- schedules ---------------------------------------------------------------------
def beat_metrics() -> Iterator[Metric]:
    """How late each enabled periodic task is: now minus when it was last due and not run."""
    lag = GaugeMetricFamily(
        "atlas_beat_schedule_lag_seconds",
        "Seconds a periodic task is overdue (0 when beat ran it on time).",
        labels=["task"],
    )
    for name, seconds in schedule_lags().items():
        lag.add_metric([name], seconds)
    yield lag


def schedule_lags() -> dict[str, float]:
    """Seconds each enabled periodic task is overdue (0 when beat ran it on time), by task name."""
    from django_celery_beat.models import PeriodicTask

    lags: dict[str, float] = {}
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
        lags[task.name] = max(-remaining.total_seconds(), 0.0) if remaining is not None else 0.0
    return lags


def audit_metrics() -> Iterator[Metric]:
    from atlas.models import AuditEvent

    events = CounterMetricFamily("atlas_audit_events", "Events appended to the audit log.")
    events.add_metric([], AuditEvent.objects.count())
    yield events


BUILTIN_SOURCES: tuple[MetricSource, ...] = (beat_metrics, audit_metrics)


def sources() -> list[MetricSource]:
    """Atlas's own sources, then every app's (``metric_sources`` in its AppConfig, :mod:`atlas.extensions`)."""
    return [*BUILTIN_SOURCES, *extensions.contributions("metric_sources")]


def _merged(families: Iterable[Metric]) -> Iterator[Metric]:
    """One family per name: two apps reporting the same gauge or counter add up, sample by sample.

    (The quarantine holds what ingest rejected and what drop checks moved: ``pipelines``
    and ``quality`` each count theirs into ``atlas_quarantined_rows``.)
    """
    by_name: dict[str, Metric] = {}
    for family in families:
        first = by_name.get(family.name)
        if first is None:
            by_name[family.name] = family
            continue
        if first.type != family.type or first.type not in ("gauge", "counter"):
            logger.warning("Metric family %s is reported twice; the second is left out.", family.name)
            continue
        values = {(s.name, tuple(sorted(s.labels.items()))): i for i, s in enumerate(first.samples)}
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in values:
                i = values[key]
                first.samples[i] = first.samples[i]._replace(value=first.samples[i].value + sample.value)
            else:
                values[key] = len(first.samples)
                first.samples.append(sample)
    yield from by_name.values()


class AtlasCollector:
    """Reads Atlas's state from the database on every scrape (see the module docstring)."""

    def describe(self) -> list[Metric]:
        # Registering must not query the database (it happens at import).
        return []

    def collect(self) -> Iterator[Metric]:
        families: list[Metric] = []
        for source in sources():
            try:
                families.extend(source())
            except Exception:  # one broken source must not hide all the others
                logger.exception("Metric source %s failed", getattr(source, "__name__", source))
        yield from _merged(families)


atlas_registry = CollectorRegistry(auto_describe=False)
atlas_registry.register(AtlasCollector())


def process_registry() -> CollectorRegistry:
    """django-prometheus' metrics: this process's, or every process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


# --- serving: snapshots ------------------------------------------------------------------------
SNAPSHOT_KEY = "atlas:metrics:snapshot:v2:{sources}"
REFRESH_LOCK_KEY = "atlas:metrics:refreshing:{sources}"
REFRESH_LOCK_SECONDS = 30  # a refresher that died frees the refresh after this


@dataclass(frozen=True)
class Snapshot:
    """An exposition text as it was at ``made_at`` (epoch seconds), with its ETag."""

    made_at: float
    text: bytes
    etag: str

    @classmethod
    def of(cls, text: bytes) -> Snapshot:
        return cls(time.time(), text, hashlib.sha256(text).hexdigest()[:32])


_LOCAL: dict[str, Snapshot] = {}  # this process's last snapshot of each part


def snapshot_seconds() -> float:
    return float(getattr(settings, "ATLAS_METRICS_CACHE_SECONDS", 0) or 0)


def _sources_key() -> str:
    names = ",".join(f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', f)}" for f in sources())
    return hashlib.sha256(names.encode()).hexdigest()[:16]


def atlas_snapshot() -> Snapshot:
    """Atlas's families, read from the database at most once every ``ATLAS_METRICS_CACHE_SECONDS`` (N).

    A scrape answers the snapshot when it is less than N s old: this process's own copy (no
    round trip), else the one in the shared cache (every web process reads the database once per N s
    between them, not once per scrape). An older one is refreshed by one process — the one that wins
    the refresh lock in the shared cache — while the others answer the previous snapshot for the time
    the refresh takes. So what a scrape shows is at most N s old, plus at most one refresh's duration
    (a few tens of milliseconds; ``REFRESH_LOCK_SECONDS`` if the refresher dies), and the response
    says exactly how old (``Age``, ``Last-Modified``). 0 reads the database at every scrape.
    """
    ttl = snapshot_seconds()
    if ttl <= 0:
        return Snapshot.of(generate_latest(atlas_registry))
    from django.core.cache import cache

    now = time.time()
    try:
        sources_key = _sources_key()
        key = SNAPSHOT_KEY.format(sources=sources_key)
        local = _LOCAL.get(key)
        if local is not None and now - local.made_at < ttl:
            return local
        shared = cache.get(key)
        if shared is not None and (local is None or shared.made_at > local.made_at):
            _LOCAL[key] = local = shared
        if local is not None and now - local.made_at < ttl:
            return local
        lock = REFRESH_LOCK_KEY.format(sources=sources_key)
        refreshing = cache.add(lock, 1, REFRESH_LOCK_SECONDS)
        if not refreshing and local is not None and now - local.made_at < ttl + REFRESH_LOCK_SECONDS:
            return local  # another process is refreshing it
    except Exception:  # noqa: BLE001 — no cache: read the database
        logger.warning("Metrics cache unavailable", exc_info=True)
        return Snapshot.of(generate_latest(atlas_registry))
    try:
        fresh = Snapshot.of(generate_latest(atlas_registry))
        _LOCAL[key] = fresh
        cache.set(key, fresh, max(60.0, 10 * ttl))
    except Exception:  # noqa: BLE001
        logger.warning("Could not store the metrics snapshot", exc_info=True)
        return _LOCAL.get(key) or Snapshot.of(generate_latest(atlas_registry))
    finally:
        if refreshing:
            try:
                cache.delete(lock)
            except Exception:  # noqa: BLE001 — it expires
                logger.debug("Could not free the metrics refresh lock", exc_info=True)
    return fresh


def process_snapshot() -> Snapshot:
    """django-prometheus' families (this process's, or every process's in multiprocess mode), at most N s old."""
    ttl = snapshot_seconds()
    local = _LOCAL.get("process")
    if local is None or ttl <= 0 or time.time() - local.made_at >= ttl:
        local = _LOCAL["process"] = Snapshot.of(generate_latest(process_registry()))
    return local


def atlas_exposition() -> bytes:
    return atlas_snapshot().text


def exposition() -> bytes:
    """The whole exposition text: process metrics, then Atlas's."""
    return process_snapshot().text + atlas_snapshot().text


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``/metrics``: the snapshots (see :func:`atlas_snapshot`), with their ETag and age; ``If-None-Match`` → 304.

    Open like django-prometheus' own view behind :func:`atlas.doors.metrics_door`.
    """
    process, atlas = process_snapshot(), atlas_snapshot()
    etag = f'"{process.etag[:16]}{atlas.etag[:16]}"'
    oldest = min(process.made_at, atlas.made_at)
    if etag in [t.strip() for t in request.META.get("HTTP_IF_NONE_MATCH", "").split(",")]:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(process.text + atlas.text, content_type=CONTENT_TYPE_LATEST)
    response["ETag"] = etag
    response["Age"] = str(max(0, int(time.time() - oldest)))
    response["Last-Modified"] = http_date(oldest)
    response["Cache-Control"] = "private, no-cache"
    return response


class EarlyMetricsMiddleware:
    """Answers a Prometheus scrape (``Authorization: Bearer <ATLAS_METRICS_TOKEN>``) before sessions, CSRF,
    authentication and the rest: it needs none of them. A staff user's browser goes the usual way."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/metrics" and request.method in ("GET", "HEAD") and scrape_token_ok(request):
            return metrics_view(request)
        return self.get_response(request)
