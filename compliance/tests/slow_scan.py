"""Imported by a test worker (``celery worker --include compliance.tests.slow_scan``): each PII scan's
classification first writes the process id where ``ATLAS_TEST_SCAN_MARK`` says, then waits
``ATLAS_TEST_SCAN_SECONDS`` — long enough for a test to see the scan running on that worker, to make a
gate wait for it, or to kill the worker in the middle of it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from compliance import detection

_classify = detection.classify


def classify(samples, **kwargs):
    mark = os.environ.get("ATLAS_TEST_SCAN_MARK")
    if mark:
        Path(mark).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("ATLAS_TEST_SCAN_SECONDS", "0")))
    return _classify(samples, **kwargs)


detection.classify = classify
