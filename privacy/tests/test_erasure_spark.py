"""Erasure with its independent proof on the Spark warehouse (issue 21): the same behaviour as on the other engines.

The shop of ``conftest.py`` on the session's local Spark Connect server (``wh`` is the Spark
warehouse here). Parquet has no DELETE: the erasure rewrites the parts of each published view
that hold the subject's rows (``atlas/warehouse/sparkparts.py``) and the counts stay exact.
"""

from __future__ import annotations

import pytest

from privacy import service

from .conftest import count
from .test_erasure import (
    test_erasure_by_email_removes_the_subject_everywhere_and_proves_it as erasure_everywhere,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def wh(spark_wh):
    return spark_wh


def test_an_access_export_then_an_erasure_on_spark_each_hold_or_remove_every_row_about_their_subject(shop, wh):
    """One shop for both (a six-step pipeline on Spark is the cost of this file): the export first, it deletes nothing."""
    req = service.run(service.verify(service.submit("access", {"email": ["bob@example.com"]})))
    assert req.status == "completed", req.error
    export = req.exports.get()
    tables = {d["table"]: d["rows"] for d in export.manifest["datasets"]}
    assert tables["explore.customers"] == 1 and tables["chart.orders"] == 1 and tables["explore.orders"] == 1
    assert export.rows == sum(tables.values())
    assert count(wh, "chart.orders", "customer_id = 2") == 1  # an export deletes nothing

    erasure_everywhere(shop, wh)  # the other engines' test of the same shop, on Spark
