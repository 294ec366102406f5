"""Cancel and time limits for a running step: a thread that watches and interrupts the warehouse.

While a step works (``with watchdog(ctx):`` in ``runner.run_step``), a side thread
checks every ``ATLAS_WATCHDOG_POLL_SECONDS`` whether the run was asked to cancel and
whether the step passed its time limits:

* **cancel** or the **soft limit** (``Step.timeout_seconds``, by default
  ``ATLAS_STEP_TIMEOUT_SECONDS``): the step's running warehouse statements are cancelled
  (PostgreSQL ``pg_cancel_backend`` from another connection, DuckDB ``interrupt()``),
  and every statement the step would start after is refused; the cancel is sent again at
  every poll until the step ends, so a statement that was about to start is caught too;
* the **hard limit** (``Step.hard_timeout_seconds``, by default
  ``ATLAS_STEP_HARD_TIMEOUT_SECONDS``), or ``ATLAS_STEP_STOP_GRACE_SECONDS`` after a cancel
  or soft limit the step did not heed: its warehouse connections are ended
  (``pg_terminate_backend``; DuckDB has only the interrupt).

The step then fails with :class:`StepCancelled` or :class:`StepTimedOut`, whatever error
the interrupted statement raised; nothing was published (publishing is one transaction,
rolled back), so published tables are as they were. Neither is a transient error: a
retry policy must never retry them. A step stuck outside the warehouse (Python code)
cannot be stopped from a thread (nor by Celery's time limits, which a pool of threads lacks):
it stops at its next warehouse statement, which the watch refuses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, connections

from atlas.warehouse import Warehouse

if TYPE_CHECKING:
    from .hooks import StepContext
    from .models import Step

logger = logging.getLogger(__name__)


class StepStopped(Exception):  # noqa: N818 - what happened to the step
    """The step was stopped on purpose; the message is for the operator. Never retried."""


class StepCancelled(StepStopped):
    """Someone cancelled the run while this step ran."""


class StepTimedOut(StepStopped):
    """The step ran past its time limit."""


@dataclass(frozen=True)
class Limits:
    """A step's time limits in seconds (None: none)."""

    soft: float | None = None
    hard: float | None = None

    def __post_init__(self) -> None:
        if self.soft is not None and self.hard is not None and self.hard < self.soft:
            raise ValueError(f"The hard time limit ({self.hard:g} s) must not be below the soft one ({self.soft:g} s).")


def _seconds(value: float | int | None) -> float | None:
    return float(value) if value else None  # 0 and None: no limit


def step_limits(step: Step) -> Limits:
    """The step's own limits, or the settings' defaults (0: no limit); the hard one never below the soft."""
    soft = _seconds(step.timeout_seconds) if step.timeout_seconds is not None else _seconds(
        settings.ATLAS_STEP_TIMEOUT_SECONDS
    )
    hard = _seconds(step.hard_timeout_seconds) if step.hard_timeout_seconds is not None else _seconds(
        settings.ATLAS_STEP_HARD_TIMEOUT_SECONDS
    )
    if soft is not None and hard is not None and hard < soft:
        hard = soft  # a default below the step's own soft limit yields to it
    return Limits(soft=soft, hard=hard)


class Watchdog:
    """Watches one step's work from a side thread; a context manager around the work.

    ``cancelled``: asked at every poll, from the watchdog's thread (it may read the
    database); ``limits``: the step's time limits; ``label``: the step, for messages.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        cancelled: Callable[[], bool],
        limits: Limits,
        label: str,
        poll: float | None = None,
        grace: float | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.cancelled = cancelled
        self.limits = limits
        self.label = label
        self.poll = float(settings.ATLAS_WATCHDOG_POLL_SECONDS if poll is None else poll)
        self.grace = float(settings.ATLAS_STEP_STOP_GRACE_SECONDS if grace is None else grace)
        self.stopped: StepStopped | None = None  # why the step was stopped, once it was
        self.stopped_after: float | None = None  # seconds from the start to the stop
        self.terminated = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"atlas-watchdog-{label}", daemon=True)

    # --- the work's side ---------------------------------------------------------
    def __enter__(self) -> Watchdog:
        self._scope = self.warehouse.watch()
        self.watch = self._scope.__enter__()
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._done.set()
        self._thread.join()
        self._scope.__exit__(None, None, None)
        if self.stopped is not None and exc is not None:
            # Whatever the interrupted statement raised (a cancelled query, a lost connection):
            # the step was stopped on purpose, and says so.
            raise self.stopped from exc

    # --- the watchdog's side -------------------------------------------------------
    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _run(self) -> None:
        try:
            while not self._done.wait(self.poll):
                try:
                    self.check()
                except DatabaseError as exc:  # the cancel flag could not be read: try again at the next poll
                    logger.warning("Step %s: the watchdog could not read the run (%s).", self.label, exc)
                    connections.close_all()
        except Exception:  # never let the watchdog die silently: the step would run unwatched
            logger.exception("Step %s: the watchdog stopped.", self.label)
        finally:
            connections.close_all()  # this thread's own database connections

    def check(self) -> None:
        """One look: stop, re-send the cancel, or end the connections, as the time and the flag say."""
        elapsed = self._elapsed()
        if self.stopped is None:
            if self.cancelled():
                self._stop(StepCancelled(
                    f"Cancelled by request while step {self.label!r} ran; its warehouse statement was stopped"
                    " and the published tables are as they were."
                ), elapsed)
            elif self.limits.soft is not None and elapsed >= self.limits.soft:
                self._stop(StepTimedOut(
                    f"Step {self.label!r} ran longer than its time limit of {self.limits.soft:g} s and was stopped"
                    " (the step's timeout_seconds, by default ATLAS_STEP_TIMEOUT_SECONDS); the published tables"
                    " are as they were."
                ), elapsed)
        hard_due = self.limits.hard is not None and elapsed >= self.limits.hard
        grace_over = self.stopped_after is not None and elapsed - self.stopped_after >= self.grace
        if (hard_due or grace_over) and not self.terminated:
            if self.stopped is None:
                self.stopped = StepTimedOut(
                    f"Step {self.label!r} ran past its hard time limit of {self.limits.hard:g} s; its warehouse"
                    " connections were ended (the step's hard_timeout_seconds, by default"
                    " ATLAS_STEP_HARD_TIMEOUT_SECONDS). The published tables are as they were."
                )
                self.stopped_after = elapsed
            self.terminated = True
            reached = self.warehouse.interrupt(self.watch, str(self.stopped), terminate=True)
            logger.warning("Step %s: ended %d warehouse connection(s). %s", self.label, reached, self.stopped)
        elif self.stopped is not None:
            # Again at every poll until the work ends: a statement that was starting when the
            # first cancel came (PostgreSQL ignores a cancel between statements) is stopped too.
            self.warehouse.interrupt(self.watch, str(self.stopped))

    def _stop(self, why: StepStopped, elapsed: float) -> None:
        self.stopped, self.stopped_after = why, elapsed
        reached = self.warehouse.interrupt(self.watch, str(why))
        logger.info("Step %s: %d warehouse session(s) interrupted. %s", self.label, reached, why)


def watchdog(ctx: StepContext) -> Watchdog:
    """The watchdog of a step of a run: the run's cancel flag, the step's time limits."""
    from .heartbeat import BEATS
    from .models import PipelineRun

    run_id = ctx.run.pk

    def cancelled() -> bool:
        beat = BEATS.of(run_id)  # executing here: the heartbeat thread reads the flag for all runs at once
        if beat is not None:
            return beat.cancel_requested
        return PipelineRun.objects.filter(pk=run_id, cancel_requested=True).exists()

    return Watchdog(ctx.warehouse, cancelled=cancelled, limits=step_limits(ctx.step), label=ctx.step.name)
