"""Where CPU goes during a timed load (Linux ``/proc``; zeros elsewhere).

* ``process_cpu_s``: this process, every thread (DuckDB's included);
* ``postgres_cpu_s``: the PostgreSQL backends serving the bench database plus
  the server's shared writers (WAL writer, checkpointer, background writer),
  and backends that ended during the load (a connection opened for one part of
  a load: the postmaster's reaped children);
* ``other_cpu_s``: everything else the machine ran meanwhile — other people's
  work on a shared machine, kernel writeback. A large value flags a noisy sample.

On a machine with few cores, a streamed load whose parser and database
backend together need more CPU than there are cores cannot overlap fully.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_SHARED = (b"walwriter", b"checkpointer", b"background writer")


def _process_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _postgres_cpu(database: str) -> float:
    """CPU seconds so far of the postgres processes serving ``database``, and the shared writers."""
    wanted = (f" {database} ".encode(), *_SHARED)
    ticks = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            postmaster = cmdline.split(b"\0", 1)[0].endswith(b"/bin/postgres")
            if not postmaster and (not cmdline.startswith(b"postgres") or not any(w in cmdline for w in wanted)):
                continue
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if postmaster:  # backends that ended: their CPU is added to the postmaster's cutime, cstime
            ticks += int(fields[13]) + int(fields[14])
        else:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _TICK


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / _TICK, sum(values) / _TICK


@dataclass
class CpuUse:
    wall_s: float = 0.0
    process_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    machine_busy_share: float = 0.0  # of all cores, 0-1

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


class CpuMeter:
    """``with CpuMeter("atlas_bench") as m: ...`` then ``m.use``."""

    def __init__(self, database: str = "atlas_bench") -> None:
        self.database = database
        self.use = CpuUse()

    def __enter__(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._proc = _process_cpu()
        self._pg = _postgres_cpu(self.database)
        self._busy, self._total = _machine()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        busy, total = _machine()
        proc = _process_cpu() - self._proc
        pgcpu = _postgres_cpu(self.database) - self._pg
        self.use = CpuUse(
            wall_s=time.perf_counter() - self._wall,
            process_cpu_s=proc,
            postgres_cpu_s=pgcpu,
            other_cpu_s=max(0.0, (busy - self._busy) - proc - pgcpu),
            machine_busy_share=(busy - self._busy) / (total - self._total) if total > self._total else 0.0,
        )


QUIET_TIMEOUT_S = float(os.environ.get("BENCH_QUIET_TIMEOUT", "30"))


def wait_until_quiet(threshold: float = 0.2, window_s: float = 0.5, timeout_s: float | None = None) -> float:
    """Wait (up to ``timeout_s``) for a ``window_s`` in which the machine is under ``threshold`` busy.

    On a shared machine other people's work skews a timed load; starting each
    repetition on a quiet machine lowers the noise (it cannot prevent work that
    starts during the load: ``other_cpu_s`` reports that). Returns seconds waited.
    """
    timeout_s = QUIET_TIMEOUT_S if timeout_s is None else timeout_s
    start = time.perf_counter()
    while True:
        busy0, total0 = _machine()
        time.sleep(window_s)
        busy1, total1 = _machine()
        share = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
        waited = time.perf_counter() - start
        if share < threshold or waited >= timeout_s:
            return waited


def is_noisy(sample: dict[str, Any], share: float = 0.2) -> bool:
    """Whether other processes used more than ``share`` of one core during the timed load."""
    cpu = sample.get("cpu") or {}
    return float(cpu.get("other_cpu_s", 0.0)) > max(0.05, share * float(sample["seconds"]))


def least_noisy(run: Callable[[], dict[str, Any]], retries: int) -> dict[str, Any]:
    """``run()`` (one timed repetition) again while another process disturbed it, up to ``retries`` times.

    Returns the first clean sample, or the least disturbed one; ``attempts`` and
    ``noisy`` say what happened, so a reader can discount a disturbed figure.
    """
    attempts: list[dict[str, Any]] = []
    for _ in range(retries + 1):
        sample = run()
        attempts.append(sample)
        if not is_noisy(sample):
            break
    best = min(attempts, key=lambda s: float((s.get("cpu") or {}).get("other_cpu_s", 0.0)))
    return {**best, "attempts": len(attempts), "noisy": is_noisy(best)}
