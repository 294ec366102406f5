"""A step hook for the recovery benchmark: the ingest pauses after staging (marker file), so the kill lands there."""

from __future__ import annotations

import os
import time
from pathlib import Path


class PauseAfterStaging:
    def staged(self, ctx):
        marks = Path(os.environ["BENCH_FAULT_DIR"])
        marker = marks / f"run{ctx.run.pk}.reached"
        if ctx.step.kind != "ingest" or marker.exists():
            return
        marker.write_text(str(os.getpid()))
        time.sleep(600)  # killed here
