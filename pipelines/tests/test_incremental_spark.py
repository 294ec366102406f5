"""Incremental transforms on the Spark warehouse (issue 21): exact against a full recomputation, as on the other engines.

The shop of ``test_incremental.py`` on the session's local Spark Connect server (``wh`` is the
Spark warehouse here). The keyed merge writes one new Parquet part, the published rows whose key
is not replaced plus the new rows, and swaps the view (``SparkWarehouse.publish``). Few tests,
each a claim the Spark merge must keep (a catalog operation costs about a second): updated, new,
repeated and late keys read from the new batch only equal a full refresh; a key whose latest row a
drop check refuses leaves the table, counted as the catalogue says. The issue's failure, the demo's
refines after a 1 % append, is in ``demo/tests/test_demo_spark.py``.
"""

from __future__ import annotations

import pytest

from .test_incremental import shop  # noqa: F401 - the shop fixture, shared
from .test_incremental import (
    test_a_key_whose_latest_row_a_drop_check_refuses_leaves_the_table_as_in_full as drop_check_refusal,
)
from .test_incremental import (
    test_new_keys_updated_keys_and_late_rows_equal_a_full_recomputation as keys_updated_new_and_late,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def wh(spark_wh):
    return spark_wh


def test_on_spark_new_updated_and_late_keys_equal_a_full_recomputation(shop, wh):  # noqa: F811
    keys_updated_new_and_late(shop, wh)


@pytest.mark.step_hooks("quality.hooks.QualityGate")
def test_on_spark_a_key_whose_latest_row_a_drop_check_refuses_leaves_the_table(shop, wh):  # noqa: F811
    drop_check_refusal(shop, wh)
