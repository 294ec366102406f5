"""What a Celery worker process does once, when it starts, before its first task.

A worker's first run used to pay for what only its first use loads: the PII analyzer (Presidio
imports spaCy, compiles its recognizers' expressions and loads the name lists, about 2 CPU s)
was built inside the first scan, beside the first ingest. A long-lived worker pays that once in
its life, so it pays it at its start: every app's ``worker_start`` contributions
(:mod:`atlas.extensions`) run here, each in the background where it says so, while the worker
waits for its first task. Nothing depends on it having finished: a task that needs the analyzer
before it is built waits for the same build (``compliance.analyzer.analyzer``).

Which process: the one that executes tasks. With the ``threads`` pool (compose's) or ``solo``
that is the worker's own process (``worker_ready``); with ``prefork`` it is each forked child
(``worker_process_init``), and the parent, which runs no task, loads nothing.
``ATLAS_WORKER_WARM_UP=false`` turns it off (the tests' short-lived workers that never scan).
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_started = False


def forks_children(consumer) -> bool:
    """Whether the worker's pool runs tasks in forked child processes (``prefork``), not in this one."""
    pool = getattr(consumer, "pool", None)
    return pool is not None and type(pool).__module__.endswith(".prefork")


def on_worker_ready(sender=None, **_kwargs) -> None:
    """Celery's ``worker_ready`` (the worker's main process): start up here unless children run the tasks."""
    if not forks_children(sender):
        start()


def start() -> bool:
    """Run every ``worker_start`` contribution once in this process; False when already done or turned off."""
    global _started
    if not settings.ATLAS_WORKER_WARM_UP:
        return False
    with _lock:
        if _started:
            return False
        _started = True
    from atlas.extensions import registry

    for label, item in registry().items("worker_start"):
        try:
            item()
        except Exception:  # a worker that cannot warm up still serves: the task meets the failure and reports it
            logger.warning("Worker start-up of %s failed; its first task will load it instead.", label,
                           exc_info=True)
    return True
