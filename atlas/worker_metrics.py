"""A Celery worker's own ``/metrics``, for Prometheus to scrape (and to page when it is gone).

The web process's ``/metrics`` carries Atlas's state (read from the database) and,
with ``PROMETHEUS_MULTIPROC_DIR`` shared, every local process's counters. Workers in
other containers or on other machines share no directory with the web process, so
each serves its own processes' metrics on ``ATLAS_WORKER_METRICS_PORT``: counters
counted in the worker (lineage deliveries) and, through Prometheus' ``up`` series of
the scrape, whether the worker is alive at all (``AtlasWorkerAbsent`` in
deploy/prometheus/alerts.yml). Unset (the default), a worker serves nothing.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import start_http_server

logger = logging.getLogger(__name__)


def configured_port(environ: dict[str, str] | None = None) -> int | None:
    """``ATLAS_WORKER_METRICS_PORT`` as a port number; None when unset; a clear error when not a port."""
    raw = (environ if environ is not None else os.environ).get("ATLAS_WORKER_METRICS_PORT", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"ATLAS_WORKER_METRICS_PORT must be a TCP port number (1-65535), not {raw!r}.")
    return int(raw)


def start_exporter(port: int, addr: str | None = None):
    """Serve the worker's metrics on ``addr:port`` from a daemon thread; returns the server."""
    # The worker's counters are declared in atlas.metrics; in multiprocess mode (the pool's
    # processes) the registry sums every process's, as the web process's /metrics does.
    from atlas.metrics import process_registry

    addr = addr or os.environ.get("ATLAS_WORKER_METRICS_ADDR", "0.0.0.0")  # noqa: S104  a container's port
    server, _thread = start_http_server(port, addr=addr, registry=process_registry())
    logger.info("Worker metrics on http://%s:%d/metrics", addr, port)
    return server


def on_worker_ready(**_kwargs) -> None:
    """Celery's ``worker_ready`` signal (the main process, once): start the exporter if configured."""
    port = configured_port()
    if port is not None:
        start_exporter(port)
