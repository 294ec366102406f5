"""A worker's start-up (atlas/worker_start.py): every app's ``worker_start`` once per task-executing process."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from celery.concurrency import get_implementation

from atlas import extensions, worker_start


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(worker_start, "_started", False)
    calls: list[str] = []
    with extensions.added("startup_probe", {"worker_start": [lambda: calls.append("a"), lambda: calls.append("b")]}):
        # compliance's own contribution (the analyzer's build) is not what these tests are about
        monkeypatch.setattr("compliance.scan_tasks.warm_up", lambda: calls.append("compliance"))
        yield calls


def test_each_contribution_runs_once_per_process(fresh):
    assert worker_start.start() is True
    assert worker_start.start() is False  # worker_ready and worker_process_init both fire under solo
    assert fresh == ["compliance", "a", "b"]  # INSTALLED_APPS order, each once


def test_turned_off_it_loads_nothing(fresh, settings):
    settings.ATLAS_WORKER_WARM_UP = False
    assert worker_start.start() is False
    assert fresh == []


def test_a_failing_contribution_is_logged_and_the_others_still_run(monkeypatch, caplog):
    monkeypatch.setattr(worker_start, "_started", False)
    ran = []

    def broken():
        raise RuntimeError("no analyzer today")

    with extensions.added("startup_probe", {"worker_start": [broken, lambda: ran.append(1)]}):
        monkeypatch.setattr("compliance.scan_tasks.warm_up", lambda: None)
        with caplog.at_level(logging.WARNING, logger="atlas.worker_start"):
            assert worker_start.start() is True
    assert ran == [1]
    assert "Worker start-up of startup_probe failed" in caplog.text


@pytest.mark.parametrize(("pool", "forks"), [("prefork", True), ("threads", False), ("solo", False)])
def test_a_prefork_parent_leaves_the_start_up_to_its_children(pool, forks, fresh):
    cls = get_implementation(pool)
    consumer = SimpleNamespace(pool=cls.__new__(cls))
    assert worker_start.forks_children(consumer) is forks
    worker_start.on_worker_ready(consumer)
    assert bool(fresh) is not forks
