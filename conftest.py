"""Test setup shared by every app: the fixtures live in one plugin, ``atlas/tests/plugin.py``.

The suite runs twice (``make test``): on the embedded default (SQLite +
DuckDB) and, with ``ATLAS_TEST_ENGINE=postgres``, on PostgreSQL for both the
metadata and the warehouse. Where PostgreSQL or Redis is missing, the tests
that need them skip with the reason; with ``CI=true`` they fail instead.
Step hooks are off unless a test asks for them (``@pytest.mark.step_hooks``).
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("atlas.tests.plugin")
pytest_plugins = ["atlas.tests.plugin", "atlas.tests.testdb", "atlas.tests.sparkserver", "atlas.tests.engine_free", "atlas.tests.cpu_report"]

from atlas.tests.plugin import ENGINE, IN_CI, service_or_skip  # noqa: E402, F401  (``from conftest import ...``)
