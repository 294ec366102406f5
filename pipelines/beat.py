"""Beat's scheduler: django-celery-beat's ``DatabaseScheduler``, pipelines triggered in beat itself.

Every entry is kept and edited as before (the admin's periodic tasks, ``pipelines.schedules``),
and every other entry is sent to the workers. A pipeline's entry
(``pipelines.trigger_scheduled_run``) is triggered here, in beat's process: the pipelines
due in one tick are gathered, then their runs created (queued) in one transaction and their
tasks sent (``runner.start_runs``) — work that, sent as one message per pipeline, would wait
for free slots of workers busy with runs, and cost two commits per run (README "200
pipelines due at once"). A run is queued at its due time whatever the workers are doing,
even with none running (the reaper sends it again when none took it). A refused trigger (a
run still active, the broker down) is logged, as the task would log it.

``CELERY_BEAT_SCHEDULER`` names it; ``celery -A atlas beat`` without ``-S`` uses it.
"""

from __future__ import annotations

import logging

from celery.beat import _evaluate_entry_args, _evaluate_entry_kwargs
from django_celery_beat.schedulers import DatabaseScheduler

from .schedules import TASK_NAME

logger = logging.getLogger(__name__)
# At most this many pipelines per transaction (a longer due list is triggered in several).
BATCH = 500


class Scheduler(DatabaseScheduler):
    #: Due pipelines gathered since the last batch was triggered (their entries already reserved).
    _due_pipelines: list[int]

    def __init__(self, *args, **kwargs) -> None:
        self._due_pipelines = []
        super().__init__(*args, **kwargs)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if entry.task != TASK_NAME:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        entry = self.reserve(entry) if advance else entry
        pipeline_id = _evaluate_entry_kwargs(entry.kwargs).get("pipeline_id")
        if pipeline_id is None:  # not an entry Atlas wrote: the task's own door
            from .tasks import trigger_scheduled_run

            trigger_scheduled_run(*_evaluate_entry_args(entry.args), **_evaluate_entry_kwargs(entry.kwargs))
        else:
            self._due_pipelines.append(pipeline_id)
            if len(self._due_pipelines) >= BATCH:
                self.trigger_due()
        return None

    def tick(self, *args, **kwargs):
        """One due entry per call (Celery's); once none is due now, the pipelines gathered are triggered at once."""
        interval = super().tick(*args, **kwargs)
        if interval and self._due_pipelines:
            self.trigger_due()
        return interval

    def trigger_due(self) -> None:
        """A run of every gathered pipeline, in one transaction (``runner.start_runs``); refusals logged."""
        from . import runner  # (models: once Django is set up)
        from .models import Trigger

        due, self._due_pipelines = self._due_pipelines, []
        try:
            started, refused = runner.start_runs(due, trigger=Trigger.SCHEDULE)
        except Exception:  # beat goes on; these entries come again at their next due time
            logger.exception("Could not trigger the %d due pipeline(s) %s.", len(due), due)
            return
        for reason in refused:
            logger.warning("Scheduled run refused: %s", reason)
        logger.info("Triggered %d scheduled run(s); %d refused.", len(started), len(refused))
