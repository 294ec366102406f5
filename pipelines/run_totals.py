"""A run's row totals from its steps' counts (issue 18: "Rows in" summed every step's input).

Each step records the rows it read, wrote and rejected. Added up over a run they mean:

* **rows in** — the rows the run *took in*: those its ingest steps read from their sources. A refine
  reading what the run's ingest loaded is not counted again: 300 rows loaded and refined are 300
  rows in, not 600. A run without an ingest step (a rebuild after an erasure, a quarantine
  re-processing) takes in what the steps of its first kind read: its refine steps (from Explore),
  else its aggregate steps (from Chart).
* **rows out** — the rows the run wrote, every step's output added (each layer's table is written).
* **rows rejected** — every step's rejects (unparseable records, rows dropped by checks): each is a
  different row refused at a different gate, so they add up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

KINDS_IN_ORDER = ("ingest", "refine", "aggregate")  # the layers a run's data passes, in order


def entry_steps(step_runs: Iterable[Any]) -> list[Any]:
    """The step runs whose input came from outside the run (see the module's doc)."""
    runs = list(step_runs)
    for kind in KINDS_IN_ORDER:
        entries = [sr for sr in runs if sr.kind == kind]
        if entries:
            return entries
    return []


def run_totals(step_runs: Iterable[Any]) -> dict[str, int]:
    """``{"rows_in", "rows_out", "rows_rejected"}`` of a run from its step runs."""
    runs = list(step_runs)
    return {
        "rows_in": sum(sr.rows_in for sr in entry_steps(runs)),
        "rows_out": sum(sr.rows_out for sr in runs),
        "rows_rejected": sum(sr.rows_rejected for sr in runs),
    }
