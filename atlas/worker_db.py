"""A worker's database connections kept between tasks, as a web process keeps them between requests.

Celery's Django fix-up closes every database connection of the executing thread before and
after each task (unless ``CELERY_DB_REUSE_MAX``, which ignores ``CONN_MAX_AGE`` and never
closes a broken connection). For a run, that is a new PostgreSQL connection per task — a
backend forked and authenticated, about 4 ms of CPU on the machine, and Django's connection
set up again — paid by every one of 200 runs due in the same minute (README "200 pipelines
due at once").

Here, before and after each task, the executing thread's connections go through Django's own
request rule (``close_old_connections``): a connection older than ``CONN_MAX_AGE`` is closed,
so is one left outside its autocommit default or broken by an error, and one kept is checked
before its first use in the next task (``CONN_HEALTH_CHECKS``: a database restart or a
``pg_terminate_backend`` between two tasks costs the next task a reconnect, not a failure).
``CONN_MAX_AGE=0`` closes every connection after each task, as before. Everything else of
Celery's fix-up (Django set up, connections closed when the worker starts, caches closed
after each task) is Celery's.

``atlas.celery`` installs it in place of Celery's (``Celery(fixups=...)``).
"""

from __future__ import annotations

import os
from typing import Any

from celery.fixups import django as celery_django


class WorkerFixup(celery_django.DjangoWorkerFixup):
    def on_task_prerun(self, sender: Any, **kwargs: Any) -> None:
        if not getattr(sender.request, "is_eager", False):
            keep_or_close_connections()

    def on_task_postrun(self, sender: Any, **kwargs: Any) -> None:
        if not getattr(sender.request, "is_eager", False):
            keep_or_close_connections()
            self.close_cache()


def keep_or_close_connections() -> None:
    """This thread's database connections: each closed when obsolete or unusable, else kept (and checked before reuse)."""
    from django.db import close_old_connections

    close_old_connections()


class DjangoFixup(celery_django.DjangoFixup):
    @property
    def worker_fixup(self) -> WorkerFixup:
        if self._worker_fixup is None:
            self._worker_fixup = WorkerFixup(self.app)
        return self._worker_fixup

    @worker_fixup.setter
    def worker_fixup(self, value: WorkerFixup) -> None:
        self._worker_fixup = value


def fixup(app: Any, env: str = "DJANGO_SETTINGS_MODULE") -> DjangoFixup | None:
    """Celery's ``celery.fixups.django:fixup``, with :class:`WorkerFixup` for the worker."""
    if os.environ.get(env) and "django" not in app.loader_cls.lower():
        return DjangoFixup(app).install()
    return None
