"""The Celery application.

With a broker configured (``CELERY_BROKER_URL``) tasks go to workers; without
one, settings turn on eager execution so the embedded default runs them
in-process through the very same task functions.
"""

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")

# Celery's Django fix-up, keeping a worker's database connections between tasks (atlas.worker_db).
app = Celery("atlas", fixups=["atlas.worker_db:fixup"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _serve_worker_metrics(**kwargs) -> None:
    from atlas.worker_metrics import on_worker_ready

    on_worker_ready(**kwargs)


@worker_ready.connect
def _start_up_worker(sender=None, **kwargs) -> None:
    from atlas import worker_start

    worker_start.on_worker_ready(sender, **kwargs)


@worker_process_init.connect
def _start_up_pool_process(**_kwargs) -> None:  # a prefork child (and the solo pool's own process)
    from atlas import worker_start

    worker_start.start()
