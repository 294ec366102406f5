"""The run hook: a finished run's alert events, written in the transaction that stores its end."""

from __future__ import annotations

import logging

from django.db import transaction

from pipelines.hooks import RunContext

from . import runs, service

logger = logging.getLogger(__name__)


class AlertHook:
    """After the hooks that change data (quality is 300), before lineage (900); it only has ``run_finished``.

    The run's end is stored, its events and deliveries with it, in that transaction.

    In a savepoint: alerts that cannot be written are logged, and the run's end is stored all the same.
    """

    order = 400

    def run_finished(self, ctx: RunContext) -> None:
        try:
            with transaction.atomic():
                service.record(runs.run_events(ctx.run))
        except Exception:
            logger.exception("Run %s: its alert events could not be recorded.", ctx.run.pk)
