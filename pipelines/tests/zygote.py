"""A fork server for the tests' Celery workers and beat: their libraries imported once per test process.

Every worker a test started (``workers.start``) was a new interpreter importing Celery, kombu, redis,
Django's ORM, psycopg, DuckDB and sqlglot again: about 1.1 of the 1.5 CPU s a worker took to be
ready, and a PostgreSQL pass starts some 35 workers and beats. The zygote is one process per test
process with those imported and nothing of Atlas's (nothing that reads the settings, which come from
each worker's environment); each start forks it. The child sets its environment, working directory
and output first, then runs ``python -m celery`` with the test's arguments, exactly as the command
did: Celery's command line sets Django up from that environment.

What a test holds is a :class:`Forked`: the child's own pid (a task's ``os.getpid()`` is it), signals
sent to it, ``poll``/``wait`` watching it through a pidfd. The child is the zygote's, not the test's,
so its exit status is not known here: ``returncode`` is -1 once it has ended. ``ATLAS_TEST_ZYGOTE=0``
starts each worker as its own command again.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

# Imported by the zygote before it forks: what every worker imports, none of it Atlas's and none of it
# reading Django's settings on import.
PRELOAD = (
    "celery", "celery.bin.celery", "celery.apps.worker", "celery.worker", "celery.beat", "kombu.transport.redis",
    "redis", "click", "django.db.models", "psycopg", "duckdb", "sqlglot",
)
ENABLED = os.environ.get("ATLAS_TEST_ZYGOTE", "1").lower() not in ("0", "false", "no")


class Forked:
    """A worker forked from the zygote, with the part of ``subprocess.Popen`` the tests use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # ended (and reaped) already
            self._pidfd, self.returncode = None, -1

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self._ended()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            self._ended()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)

    def _ended(self) -> None:
        self.returncode = -1
        os.close(self._pidfd)
        self._pidfd = None


class Zygote:
    """The fork server process (``python -m pipelines.tests.zygote``): one request a line, one pid a line back."""

    def __init__(self, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.tests.zygote"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self.lock = threading.Lock()

    def spawn(self, args: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> Forked:
        request = json.dumps({"args": args, "cwd": str(cwd), "env": env, "log": str(log)})
        with self.lock:
            self.process.stdin.write(request.encode() + b"\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the tests' worker zygote did not fork (it answered {line!r}, status {self.process.poll()})")
        return Forked(int(line))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


_zygote: Zygote | None = None


def spawn(args: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> Forked | subprocess.Popen:
    """``python -m celery *args`` with ``env`` in ``cwd``, its output to ``log``: forked from this process's zygote."""
    global _zygote
    if not ENABLED:
        with open(log, "wb") as out:
            return subprocess.Popen([sys.executable, "-m", "celery", *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    log.write_bytes(b"")  # there when this returns, as Popen's output file was
    if _zygote is None or _zygote.process.poll() is not None:
        _zygote = Zygote(cwd)
        atexit.register(_zygote.stop)
    return _zygote.spawn(args, cwd=cwd, env=env, log=log)


def stop() -> None:
    """Stop this process's zygote and wait for it (its workers' CPU then counts in this process's children's)."""
    global _zygote
    if _zygote is not None:
        _zygote.stop()
        _zygote = None


# --- the zygote's side ------------------------------------------------------------------------


def _serve() -> None:
    import importlib
    import signal

    for name in PRELOAD:
        importlib.import_module(name)
    assert threading.active_count() == 1, "the zygote must not fork with threads running"
    # Children are reaped as they end, so that their CPU counts in the zygote's and, once the test process
    # has waited for the zygote, in the test process's children's (a pass's CPU figure includes its workers).
    signal.signal(signal.SIGCHLD, _reap)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        answers.write(f"{pid}\n".encode())
        answers.flush()


def _reap(_signum, _frame) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(request: dict) -> None:
    """In the forked child: become ``python -m celery ...`` as the request says; never returns."""
    import runpy
    import signal
    import traceback

    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.closerange(3, 1024)  # the zygote's pipes and the descriptors just duplicated
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [sys.executable, *request["args"]]
        runpy.run_module("celery", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported in the worker's log
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # the process ends either way
                stream.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve()
