"""``make test``: the suite's three passes, with what only waits overlapped (issue 21: CI under 15 minutes).

The passes are the Makefile's own targets, unchanged when run alone: ``test-embedded``,
``test-postgres`` and ``test-spark``. This runs them together:

- the Spark Connect server (a JVM that takes tens of seconds to listen) is started first, in
  the background and niced, from the ``pyspark`` package (:mod:`atlas.warehouse.sparklocal`);
  ``test-spark`` gets it as ``ATLAS_TEST_SPARK_URL`` and it is stopped at the end. Where it
  cannot start, ``test-spark`` starts its own and says why (it skips locally and fails under
  ``CI=true``, as before);
- the Spark pass runs from the start beside the embedded pass and then the PostgreSQL one (see
  :func:`schedule`; each pass has its own databases, and the Spark pass's metadata is its own
  SQLite file); each pass's output is printed whole when it ends. ``--side-by-side`` runs all
  three at once, ``--one-by-one`` each alone in turn.

Every pass runs to its end even when another failed; the exit status is non-zero when any did.
Each pass's wall time and CPU (its whole process tree: pytest, its workers and what they
start) is printed at the end, the server's CPU too, so CI logs say where the time went.

    python -m atlas.tests.passes [--side-by-side | --one-by-one] [--make make]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Set by ``make test`` (this module) in the embedded pass's environment when its PostgreSQL
# pass will run: tests marked ``once_on_postgres`` then run there only. They exercise the HTTP API
# over the metadata (schemathesis's generated requests, every check for every role), which does not
# depend on the warehouse engine; PostgreSQL, production's database, is the stricter of the two
# (NUL bytes, lengths, types), and each costs tens of CPU seconds a pass. Alone, ``make
# test-embedded`` runs them as before.
POSTGRES_PASS_FOLLOWS = "ATLAS_TEST_POSTGRES_PASS_FOLLOWS"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The background Spark server's niceness (``nice -n``): it runs beside the other passes from the start
# and takes the CPU they leave (see :func:`schedule`). 5 weighs a server thread about a third of a test
# worker's when both want a CPU. At 10 (a tenth), the Spark pass ended 11, 64 and 94 s after the
# PostgreSQL pass in three runs: a tail with one CPU mostly idle. With the metastore a service (session 18,
# 2026-12-05, about 35 % less server CPU) both are the same: make test 832 s at 5 (Spark ended 188 s before
# the PostgreSQL pass), 822 s at 10 (61 s before); 5 keeps the margin for a slower machine.
SPARK_NICENESS = 5


@dataclass
class Pass:
    """One pass: its make target, environment additions, and what it took."""

    target: str
    env: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    wall: float = 0.0
    cpu: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == 0


def run_pass(make: str, one: Pass, *, log: Path | None = None) -> Pass:
    """Run ``make <target>``, its output to ``log`` (or ours), and record status, wall and CPU time.

    The CPU time is the pass's whole process tree as the kernel accounts it when it ends
    (``wait4``: the pass and every descendant it waited for).
    """
    started = time.monotonic()
    out = open(log, "ab") if log else None  # noqa: SIM115 - closed below, after the process (after a note run_passes wrote)
    try:
        process = subprocess.Popen(
            [make, "--no-print-directory", one.target], env={**os.environ, **one.env},
            stdout=out or None, stderr=subprocess.STDOUT if out else None,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if out:
            out.close()
    one.status = process.returncode
    one.wall = time.monotonic() - started
    one.cpu = usage.ru_utime + usage.ru_stime
    return one


class SparkInBackground:
    """A local Spark Connect server started in a thread; :meth:`url` waits for it (``""`` if it failed)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="atlas-test-spark-"))
        self.server = None
        self.reason = ""
        self.started_in = 0.0
        self._thread = threading.Thread(target=self._start, name="spark-server", daemon=True)

    def start(self) -> SparkInBackground:
        self._thread.start()
        return self

    def _start(self) -> None:
        from atlas.warehouse import sparklocal

        began = time.monotonic()
        try:
            # the same server the tests' session fixture starts (atlas/tests/sparkserver.py)
            self.server = sparklocal.start_for_tests(self.root, niceness=SPARK_NICENESS)
        except Exception as exc:  # noqa: BLE001 - any reason: test-spark then starts its own and reports
            self.reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.started_in = time.monotonic() - began

    def url(self) -> str:
        self._thread.join()
        return self.server.url if self.server else ""

    def stop(self) -> float:
        """Stop the server and remove its directory; return its CPU seconds (0 when it did not run)."""
        self._thread.join()
        cpu = 0.0
        if self.server is not None:
            before = os.times()
            self.server.stop()
            after = os.times()
            cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        shutil.rmtree(self.root, ignore_errors=True)
        return cpu


def wanted_spark() -> bool:
    """Start a server here unless one is given (``ATLAS_TEST_SPARK_URL``) or it cannot run on this machine."""
    if os.environ.get("ATLAS_TEST_SPARK_URL"):
        return False
    from atlas.warehouse import sparklocal

    return sparklocal.missing() is None


def postgres_pass_will_run() -> bool:
    """Whether the PostgreSQL pass will run its tests: its server answers, or CI (where it must)."""
    return IN_CI or reachable("127.0.0.1", 5432)


def reachable(host: str, port: int) -> bool:
    """Whether a server listens at ``host:port`` (the suite's service guards use it too: atlas/tests/plugin.py)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def run_passes(make: str, passes: list[Pass], after: dict[str, tuple[str, ...]], *,
               before: dict[str, Callable[[], str]] | None = None) -> None:
    """Run each pass as soon as the passes it comes ``after`` have ended; print each one's output whole when it ends.

    Passes whose turn comes together run at the same time, each in its own thread, its output kept in
    a file until it ends (then printed whole, in the order they end). ``before``: by target, a
    callable run in that pass's thread first (the Spark pass waits there for its server, so the
    others need not); what it returns heads the pass's output.
    """
    logs = {one.target: Path(tempfile.mkstemp(prefix=f"atlas-{one.target}-", suffix=".log")[1]) for one in passes}
    ended = {one.target: threading.Event() for one in passes}
    lock = threading.Lock()

    def run(one: Pass) -> None:
        try:
            for target in after.get(one.target, ()):
                if target in ended:
                    ended[target].wait()
            if before and one.target in before:
                note = before[one.target]()
                if note:
                    logs[one.target].write_text(note + "\n")
            run_pass(make, one, log=logs[one.target])
            with lock:
                print(f"==== {one.target} ({'passed' if one.ok else 'FAILED'}, {one.wall:.0f} s)", flush=True)
                sys.stdout.write(logs[one.target].read_text(errors="replace"))
                sys.stdout.flush()
        finally:
            logs[one.target].unlink(missing_ok=True)
            ended[one.target].set()

    threads = [threading.Thread(target=run, args=(one,), name=one.target) for one in passes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def schedule(mode: str) -> dict[str, tuple[str, ...]]:
    """Each pass and the passes it starts after (passes free to start together run at the same time).

    - ``spark-early`` (the default): the Spark pass from the start, its server niced
      (:data:`SPARK_NICENESS`); the embedded pass, then the PostgreSQL one. The Spark pass is one
      client waiting on a server that runs one small job at a time: niced, the server takes the
      CPU the other passes leave (their xdist workers wait on databases, subprocesses, a browser),
      so they run nearly as fast as alone and the Spark pass ends with them. Measured on one 2-CPU
      machine (2026-12-05), ``make test`` with the server at niceness 10: **945 s** this way
      (embedded 395 s, then PostgreSQL 538 s; Spark 929 s beside both; 1,620 CPU s in all), against about **1,210 s** for
      the schedule before it (embedded 410 s alone, then PostgreSQL and Spark together 805 s).
    - ``all``: the three at once (``--side-by-side``; more memory, and the passes' times printed
      below overlap);
    - ``one-by-one``: embedded, PostgreSQL, Spark in turn (each pass's time alone).

    The server must share our scheduler autogroup for its niceness to count
    (:func:`atlas.warehouse.sparklocal.start`). In a session of its own, as it was before, it got
    as much CPU as every pass together: the embedded pass then took 624 s beside it instead of
    307 s alone, which is why the Spark pass used to wait for the embedded one.
    """
    return {
        "spark-early": {"test-postgres": ("test-embedded",)},
        "all": {},
        "one-by-one": {"test-postgres": ("test-embedded",), "test-spark": ("test-postgres",)},
    }[mode]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side-by-side", action="store_true", help="the three passes at the same time")
    parser.add_argument("--one-by-one", action="store_true", help="the passes in turn, each alone")
    parser.add_argument("--make", default=os.environ.get("MAKE", "make"))
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, a kill of the job) unwinds as an exit, so the server below is stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    began = time.monotonic()
    spark = SparkInBackground().start() if wanted_spark() else None
    passes = {target: Pass(target) for target in ("test-embedded", "test-postgres", "test-spark")}
    if postgres_pass_will_run():
        passes["test-embedded"].env[POSTGRES_PASS_FOLLOWS] = "1"

    def spark_ready() -> str:
        """Wait for the background server and hand its URL to the Spark pass; say what happened."""
        if spark is None:
            return ""
        url = spark.url()
        if url:
            passes["test-spark"].env["ATLAS_TEST_SPARK_URL"] = url
            metastore = "a service" if spark.server.metastore else "embedded (the service did not start: see above)"
            return f"(server started in the background in {spark.started_in:.0f} s: {url}; its metastore: {metastore})"
        return f"(the background server did not start: {spark.reason}; the pass starts its own)"

    mode = "all" if args.side_by_side else "one-by-one" if args.one_by_one else "spark-early"
    try:
        run_passes(args.make, list(passes.values()), schedule(mode), before={"test-spark": spark_ready})
    finally:
        server_cpu = spark.stop() if spark is not None else 0.0

    print(f"==== make test ({mode}): {time.monotonic() - began:.0f} s", flush=True)
    for one in passes.values():
        print(f"  {one.target:14} {'passed' if one.ok else 'FAILED':7} {one.wall:6.0f} s wall {one.cpu:7.0f} s CPU")
    if spark is not None:
        print(f"  {'spark server':14} {'':7} {spark.started_in:6.0f} s to listen {server_cpu:5.0f} s CPU (its metastore's included)")
    return 0 if all(one.ok for one in passes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
