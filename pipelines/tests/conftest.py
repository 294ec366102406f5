"""Pipeline test helpers; the shared fixtures (``make_csv``, ``simple_pipeline``, ``ingest_pipeline``) are in
``atlas/tests/plugin.py``."""

from __future__ import annotations

from atlas.tests.plugin import explore_rows, quarantine_rows, run_now  # noqa: F401  (``from .conftest import ...``)

from .connector_fixtures import api, s3, s3_endpoint  # noqa: F401  (S3 and JSON API connectors: real local servers)
from .interval_fixtures import events_pipeline  # noqa: F401  (run parameters, backfills, watermarks)
from .workers import broker, start  # noqa: F401  (the real worker fixtures: test_worker, test_faults)
