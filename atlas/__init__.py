"""Atlas project package: settings, URLs, the Celery app, warehouse backends, metrics."""

from .celery import app as celery_app

__all__ = ["celery_app"]
