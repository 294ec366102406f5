"""The worker tests' broker reset (``pipelines/tests/workers.py``) leaves Celery's app registering tasks.

It used ``celery_app.close()``, which deregisters the app from Celery's active apps: a ``shared_task``
imported afterwards was never registered on the (finalized) app, so a later test in the same xdist
worker failed with NotRegistered ('alerts.evaluate_conditions' after the worker tests, in a CI run
with three workers).
"""

from __future__ import annotations

from celery import _state, shared_task

from pipelines.tests.workers import _reset_celery_connections, celery_app, celery_conf

NAME = "atlas.tests.defined_after_a_broker_reset"


def test_a_task_defined_after_a_broker_reset_is_registered_on_the_finalized_app():
    celery_app.finalize()
    _reset_celery_connections()
    assert celery_app in set(_state._apps)

    @shared_task(name=NAME)
    def later() -> int:
        return 1

    try:
        assert NAME in celery_app.tasks
    finally:
        celery_app.tasks.pop(NAME, None)


def test_a_changed_configuration_is_exactly_the_settings_again_after_the_block(settings):
    eager = settings.CELERY_TASK_ALWAYS_EAGER
    with celery_conf(task_always_eager=not eager):
        assert celery_app.conf.task_always_eager is (not eager)
    assert celery_app.conf.task_always_eager is eager
    assert "task_always_eager" not in celery_app.conf.changes
