"""The tests' worker fork server (``pipelines/tests/zygote.py``): a forked worker behaves as a started one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from . import workers, zygote

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not zygote.ENABLED, reason="ATLAS_TEST_ZYGOTE=0: the workers are started as commands")


def test_a_forked_command_runs_in_its_own_environment_and_its_output_is_its_log(tmp_path):
    log = tmp_path / "version.log"
    proc = zygote.spawn(["--version"], cwd=ROOT, env={**os.environ, "ATLAS_ZYGOTE_TEST": "1"}, log=log)
    assert isinstance(proc, zygote.Forked) and proc.pid != os.getpid()
    assert proc.wait(timeout=60) == -1 and proc.poll() == -1  # ended; its status is the zygote's to know
    assert version("celery") in log.read_text()


def test_a_forked_worker_is_signalled_and_waited_for_like_a_popen(tmp_path):
    env = workers._env(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:9/0")  # the tests' workers'; no broker there: it keeps trying
    log = tmp_path / "worker.log"
    proc = zygote.spawn(["-A", "atlas", "worker", "--pool=solo", "--loglevel=INFO"], cwd=ROOT, env=env, log=log)
    try:
        assert log.exists()  # there at once, as Popen's output file was
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
        assert proc.poll() is None
        deadline = time.monotonic() + 60
        while "connecting to 127.0.0.1:9." not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "connecting to 127.0.0.1:9." in log.read_text()  # the broker of its environment, not this process's
        assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[0] == sys.executable.encode()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -1
    finally:
        proc.kill()  # ended: nothing to signal, no error
