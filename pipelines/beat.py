"""Beat's scheduler: django-celery-beat's ``DatabaseScheduler``, pipelines triggered in beat itself.

Every entry is kept and edited as before (the admin's periodic tasks, ``pipelines.schedules``),
and every other entry is sent to the workers. A pipeline's entry
(``pipelines.trigger_scheduled_run``) is run here, in beat's process: it creates the run
(queued) and sends the run's own task — milliseconds of work that, sent as a message, would
wait for a free slot of a worker busy with runs (README "200 pipelines due at once"). A run
is queued at its due time whatever the workers are doing, even with none running (the reaper
sends it again when none took it). A refused trigger (a run still active, the broker down) is
logged, as the task would log it.

``CELERY_BEAT_SCHEDULER`` names it; ``celery -A atlas beat`` without ``-S`` uses it.
"""

from __future__ import annotations

from celery.beat import _evaluate_entry_args, _evaluate_entry_kwargs
from django_celery_beat.schedulers import DatabaseScheduler

from .schedules import TASK_NAME


class Scheduler(DatabaseScheduler):
    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if entry.task != TASK_NAME:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        from .tasks import trigger_scheduled_run

        entry = self.reserve(entry) if advance else entry
        try:
            # Calling the task runs its body here: beat's door, the same function as the workers'.
            trigger_scheduled_run(*_evaluate_entry_args(entry.args), **_evaluate_entry_kwargs(entry.kwargs))
        finally:
            self._tasks_since_sync += 1
            if self.should_sync():
                self._do_sync()
        return None
