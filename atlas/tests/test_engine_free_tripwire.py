"""An engine-free test (atlas/tests/engine_free.py) that reaches the warehouse fails, in every pass."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.engine_free  # this module names the warehouse only to show that it is out of reach


def test_an_engine_free_test_that_reaches_the_warehouse_fails_loudly():
    from atlas.warehouse import WarehouseError, get_warehouse

    with pytest.raises(WarehouseError, match="engine-free-test://"):
        get_warehouse()
