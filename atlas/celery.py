"""The Celery application.

With a broker configured (``CELERY_BROKER_URL``) tasks go to workers; without
one, settings turn on eager execution so the embedded default runs them
in-process through the very same task functions.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")

app = Celery("atlas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
