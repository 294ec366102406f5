"""``make test``: the suite's three passes, with what only waits overlapped (issue 21: CI under 15 minutes).

The passes are the Makefile's own targets, unchanged when run alone: ``test-embedded``,
``test-postgres`` and ``test-spark``. This runs them together:

- the Spark Connect server (a JVM that takes tens of seconds to listen) is started first, in
  the background, from the ``pyspark`` package (:mod:`atlas.warehouse.sparklocal`), while the
  other passes run; ``test-spark`` then gets it as ``ATLAS_TEST_SPARK_URL`` and it is stopped
  at the end. Where it cannot start, ``test-spark`` starts its own and says why (it skips
  locally and fails under ``CI=true``, as before);
- ``--side-by-side`` runs the embedded and PostgreSQL passes at the same time (each with its
  own xdist workers, databases and Redis databases; their output is printed whole when each
  ends); without it they run one after the other.

Every pass runs to its end even when another failed; the exit status is non-zero when any did.
Each pass's wall time and CPU (its whole process tree: pytest, its workers and what they
start) is printed at the end, the server's CPU too, so CI logs say where the time went.

    python -m atlas.tests.passes [--side-by-side] [--make make]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


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
    out = open(log, "wb") if log else None  # noqa: SIM115 - closed below, after the process
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
            self.server = sparklocal.start(self.root, cores=2, memory="1g")
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


def side_by_side(make: str, passes: list[Pass]) -> None:
    """Run the passes at the same time; print each one's output whole when it ends, in the order they end."""
    logs = {one.target: Path(tempfile.mkstemp(prefix=f"atlas-{one.target}-", suffix=".log")[1]) for one in passes}
    lock = threading.Lock()

    def run(one: Pass) -> None:
        run_pass(make, one, log=logs[one.target])
        with lock:
            print(f"==== {one.target} ({'passed' if one.ok else 'FAILED'}, {one.wall:.0f} s)", flush=True)
            sys.stdout.write(logs[one.target].read_text(errors="replace"))
            sys.stdout.flush()
            logs[one.target].unlink(missing_ok=True)

    threads = [threading.Thread(target=run, args=(one,), name=one.target) for one in passes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side-by-side", action="store_true", help="the embedded and PostgreSQL passes at the same time")
    parser.add_argument("--make", default=os.environ.get("MAKE", "make"))
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, a kill of the job) unwinds as an exit, so the server below is stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    began = time.monotonic()
    spark = SparkInBackground().start() if wanted_spark() else None
    embedded, postgres = Pass("test-embedded"), Pass("test-postgres")
    try:
        if args.side_by_side:
            side_by_side(args.make, [embedded, postgres])
        else:
            for one in (embedded, postgres):
                print(f"==== {one.target}", flush=True)
                run_pass(args.make, one)
        spark_pass = Pass("test-spark")
        if spark is not None:
            url = spark.url()
            if url:
                spark_pass.env["ATLAS_TEST_SPARK_URL"] = url
                print(f"==== test-spark (server started in the background in {spark.started_in:.0f} s: {url})", flush=True)
            else:
                print(f"==== test-spark (the background server did not start: {spark.reason}; the pass starts its own)", flush=True)
        else:
            print("==== test-spark", flush=True)
        run_pass(args.make, spark_pass)
    finally:
        server_cpu = spark.stop() if spark is not None else 0.0

    passes = [embedded, postgres, spark_pass]
    print(f"==== make test: {time.monotonic() - began:.0f} s", flush=True)
    for one in passes:
        print(f"  {one.target:14} {'passed' if one.ok else 'FAILED':7} {one.wall:6.0f} s wall {one.cpu:7.0f} s CPU")
    if spark is not None:
        print(f"  {'spark server':14} {'':7} {spark.started_in:6.0f} s to listen {server_cpu:5.0f} s CPU")
    return 0 if all(one.ok for one in passes) else 1


if __name__ == "__main__":
    sys.exit(main())
