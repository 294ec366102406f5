"""Imported by a test worker (``celery worker --include pipelines.tests.killable_task``): a background
task kind that writes its process id where ``ATLAS_TEST_TASK_MARK`` says, then waits to be killed.

It is declared as a pretend app's contribution in that worker only (the test process declares the
same name for the time of its ``enqueue``): the reaper test kills the worker while it runs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from atlas import background, extensions

KIND = "test.wait_to_be_killed"


def wait_to_be_killed(task) -> dict:
    Path(os.environ["ATLAS_TEST_TASK_MARK"]).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("ATLAS_TEST_TASK_SECONDS", "600")))
    return {"waited": True}


extensions.registry().add("test_killable_task", {"background_tasks": [background.Kind(KIND, wait_to_be_killed)]})
