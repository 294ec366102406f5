"""A worker's own /metrics (atlas.worker_metrics): what Prometheus scrapes to know workers are alive."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from atlas import worker_metrics
from atlas.metrics import count_lineage_delivery


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_exporter_serves_the_worker_counters():
    port = _free_port()
    server = worker_metrics.start_exporter(port, addr="127.0.0.1")
    try:
        count_lineage_delivery("delivered")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert 'atlas_lineage_deliveries_total{outcome="delivered"}' in body


@pytest.mark.parametrize("raw", ["abc", "0", "70000", "-1", "80 80"])
def test_a_port_that_is_not_a_port_is_a_clear_error(raw):
    with pytest.raises(ValueError, match="ATLAS_WORKER_METRICS_PORT must be a TCP port"):
        worker_metrics.configured_port({"ATLAS_WORKER_METRICS_PORT": raw})


def test_unset_serves_nothing():
    assert worker_metrics.configured_port({}) is None
    assert worker_metrics.configured_port({"ATLAS_WORKER_METRICS_PORT": " "}) is None
