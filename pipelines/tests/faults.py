"""Faults to inject, in this process (tests) or in a worker subprocess (ATLAS_STEP_HOOKS + environment).

``Killed`` stands for SIGKILL in this process: a BaseException, so nothing in the
runner catches it, and the run is left as a killed worker leaves it (running,
its heartbeat stopping). In a worker subprocess, :class:`PauseOnce` makes the
step wait at a stage (writing a marker file) so the test can SIGKILL the worker
or cut its connections there; the pause happens once per marker directory.
"""

from __future__ import annotations

import errno
import io
import os
import time
from pathlib import Path


class Killed(BaseException):
    """The process died here (in-process stand-in for SIGKILL)."""


class KillOnce:
    """Raise :class:`Killed` once, at ``stage`` of the step named ``step`` (class attributes, set by a test)."""

    stage = "staged"
    step = "refine"
    fired = False

    @classmethod
    def arm(cls, stage: str, step: str) -> None:
        cls.stage, cls.step, cls.fired = stage, step, False

    def _maybe(self, stage: str, ctx) -> None:
        if stage == type(self).stage and ctx.step.name == type(self).step and not type(self).fired:
            type(self).fired = True
            raise Killed(f"killed at {stage} of {ctx.step.name}")

    def staged(self, ctx):
        self._maybe("staged", ctx)

    def published(self, ctx):
        self._maybe("published", ctx)

    def prepare(self, ctx):
        self._maybe("prepare", ctx)


class Published:
    """Records every ``published`` call: (step name, run id, attempt)."""

    calls: list[tuple[str, int, int]] = []

    def published(self, ctx):
        type(self).calls.append((ctx.step.name, ctx.run.pk, ctx.run.attempt))


def pause_here(point: str) -> None:
    """In a worker: when ATLAS_FAULT_AT names ``point``, write the marker and wait (once per marker dir)."""
    if os.environ.get("ATLAS_FAULT_AT") != point:
        return
    marks = Path(os.environ["ATLAS_FAULT_DIR"])
    marker = marks / f"{point}.reached"
    if marker.exists():
        return  # the resumed attempt goes through
    marker.write_text(str(os.getpid()))
    release = marks / f"{point}.release"
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


class PauseOnce:
    """Worker-side: pause at ``staged`` (after staging, before publish) when ATLAS_FAULT_AT=staged.

    Created in the worker when the hooks load: installs the patches for the points that
    are not hook stages (during COPY, inside the publishing transaction).
    """

    def __init__(self) -> None:
        point = os.environ.get("ATLAS_FAULT_AT")
        if point == "copy":
            import psycopg

            real_write = psycopg.Copy.write

            def write(copy, buffer):
                pause_here("copy")
                return real_write(copy, buffer)

            psycopg.Copy.write = write
        elif point == "publish":
            from atlas.warehouse.base import Cursor

            real_execute = Cursor.execute

            def execute(cur, sql, params=None):
                result = real_execute(cur, sql, params)
                if "ATTACH PARTITION" in sql and "FOR VALUES IN" in sql:
                    pause_here("publish")  # inside the publishing transaction, the batch attached
                return result

            Cursor.execute = execute
        elif point == "enospc":  # a full disk where no small filesystem can be mounted (not root)
            from pipelines import hygiene

            hygiene.open = _full_disk_open  # the decompressed copy of a compressed source fails to write

    def staged(self, ctx):
        if ctx.step.kind == "ingest":
            if os.environ.get("ATLAS_FAULT_AT") == "staged":
                # The step's own warehouse connection, for a test that terminates just that one.
                with ctx.warehouse.cursor() as cur:
                    pid = cur.execute("SELECT pg_backend_pid()").fetchone()[0]
                (Path(os.environ["ATLAS_FAULT_DIR"]) / "staged.backend").write_text(str(pid))
            pause_here("staged")
        pause_here(f"staged-{ctx.step.name}")  # any step, by name (the demo pipeline's)


class _FullDisk(io.FileIO):
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _full_disk_open(file, mode="r", *args, **kwargs):
    """``open`` as on a full disk: a file opened for writing fails on its first write with ENOSPC."""
    if "w" in mode:
        return _FullDisk(file, "w")
    return open(file, mode, *args, **kwargs)


def start_at_once(pipeline, times: int = 2, **start_kwargs) -> list:
    """``runner.start_run`` from ``times`` threads released together; each outcome: the run's id or "refused"."""
    import threading

    from django.db import connection

    from pipelines import runner

    barrier, outcomes = threading.Barrier(times), []

    def trigger():
        barrier.wait()
        try:
            outcomes.append(runner.start_run(pipeline, **start_kwargs).pk)
        except runner.RunAlreadyActive:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger) for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes
