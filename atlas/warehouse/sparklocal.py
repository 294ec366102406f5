"""A local Spark Connect server started from the ``pyspark`` package (tests, benchmarks, a laptop).

The ``pyspark`` wheel (4.x, the ``spark`` extra) carries the whole server: Spark's jars, the
Spark Connect service (``jars/spark-connect_*.jar``), Hive's metastore client and Derby. Nothing
is downloaded when it starts; Java 17 must be on the ``PATH`` (or ``JAVA_HOME``).

:func:`start` runs ``spark-submit --class org.apache.spark.sql.connect.service.SparkConnectServer``
in the foreground of a child process (so the caller owns its process id and stops exactly it),
with ``local[N]`` cores, a bounded driver heap, a warehouse directory and a Derby metastore (a
persistent catalog: schemas and tables survive a restart) under ``root``, listening on
127.0.0.1 only, on a free port. :func:`missing` says why it cannot start here, or None.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"

# JVM flags for a server that lives minutes and runs many small, different statements (the test
# suite): HotSpot's C1 compiler only, and a code cache large enough that it is never swept. By
# default the optimising C2 compiler's threads took about two thirds of the server's CPU on the
# contract tests, compiling Spark's planner code that a test pass never runs long enough to repay;
# C1 alone filled JDK 17's default cache, and its sweeper then flushed and recompiled. Measured on a
# 2-CPU machine (2026-12-05): atlas/tests/test_warehouse_spark.py (24 tests) 155-188 s of server CPU by
# default, 82 s with these; the whole Spark pass 629 s, 529 s. What is left is mostly Hive's embedded
# metastore: Spark Connect runs each operation in a new thread, and the metastore builds a HiveConf
# (every jar searched, the XML defaults parsed) for each new thread's first catalogue call.
# A long-lived server (docker-compose's spark profile, the 10M benchmark) keeps the defaults.
SHORT_LIVED_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=512m"


class SparkUnavailable(RuntimeError):
    """The local Spark Connect server cannot start (no pyspark, no Java) or did not come up."""


def pyspark_home() -> Path | None:
    """The installed ``pyspark`` package's directory (its ``bin/`` and ``jars/``), or None."""
    try:
        import pyspark
    except ImportError:
        return None
    return Path(pyspark.__file__).resolve().parent


def java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def missing() -> str | None:
    """Why a local Spark Connect server cannot start on this machine, or None when it can."""
    home = pyspark_home()
    if home is None:
        return "pyspark is not installed (pip install 'atlas[spark]')"
    if not list((home / "jars").glob("spark-connect_*.jar")):
        return f"the pyspark package at {home} has no Spark Connect server jar (pyspark 4.x ships it)"
    if java() is None:
        return "Java (17 or later) is not on the PATH and JAVA_HOME is not set"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class LocalSpark:
    """A running server: its URL (``sc://127.0.0.1:PORT``), process and directories."""

    url: str
    port: int
    root: Path
    process: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 30) -> None:
        """Stop the server (its own process group: the JVM spark-submit started), waiting for it to end."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def start(
    root: Path, *, cores: int = 2, memory: str = "1g", port: int | None = None, timeout: float = 180,
    conf: dict[str, str] | None = None, java_options: str = "", niceness: int = 0,
) -> LocalSpark:
    """Start a Spark Connect server with its warehouse and catalog under ``root``; wait until it listens.

    ``cores``: ``local[cores]``; ``memory``: the driver's heap (``-Xmx``; local mode runs the
    executors in the driver); ``java_options``: more JVM flags; ``niceness``: the server's (``nice
    -n``), so that beside other work it takes the CPU they leave (``make test``: atlas/tests/passes.py).
    The server stays in the caller's session: with Linux's scheduler autogroups (on by default),
    a process in a session of its own competes as one group with all the caller's processes,
    niced or not. Raises :class:`SparkUnavailable`
    with the reason and the end of the server's log when it cannot start or does not listen within
    ``timeout`` seconds.
    """
    if reason := missing():
        raise SparkUnavailable(reason)
    home = pyspark_home()
    assert home is not None
    root = Path(root).resolve()
    (root / "warehouse").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    port = port or free_port()
    settings = {
        "spark.master": f"local[{int(cores)}]",
        "spark.driver.memory": memory,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        "spark.sql.catalogImplementation": "hive",
        # Derby: the metastore is a directory under root (a persistent catalog, no server)
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true",
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root} -Djava.io.tmpdir={root / 'tmp'} {java_options}".strip(),
        "spark.local.dir": str(root / "tmp"),
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": str(max(int(cores) * 2, 2)),
        "spark.sql.session.timeZone": "UTC",
        # The steps' Spark facts (stages, tasks, bytes read: atlas/warehouse/sparkfacts.py) come from Spark
        # Connect's progress reports, sent every interval while an operation runs (default 2 s): a step whose
        # jobs each took less (a few rows, a quiet machine) reported none. 20 ms reports every job but the
        # smallest, for a few messages per operation.
        "spark.connect.progress.reportInterval": "20ms",
        **(conf or {}),
    }
    args = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    if niceness and shutil.which("nice"):
        args = ["nice", "-n", str(int(niceness)), *args]
    for key, value in settings.items():
        args += ["--conf", f"{key}={value}"]
    args.append("spark-internal")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": "python3"}
    env.pop("SPARK_CONF_DIR", None)
    log = root / "server.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            args, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            # its own process group (stop() ends the JVM, not only the script), in our session: a new
            # session (setsid) is a new scheduler autogroup on Linux, which gets as much CPU as all
            # of ours together whatever its niceness (see start's docstring)
            process_group=0,
        )
    server = LocalSpark(url=f"sc://127.0.0.1:{port}", port=port, root=root, process=process, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SparkUnavailable(f"the Spark Connect server exited with {process.returncode}: {_tail(log)}")
        if _listening(port):
            return server
        time.sleep(0.5)
    server.stop()
    raise SparkUnavailable(f"the Spark Connect server did not listen on port {port} within {timeout:g} s: {_tail(log)}")


def start_for_tests(root: Path, *, niceness: int = 0) -> LocalSpark:
    """The test suite's server (its session fixture, and ``make test``'s background one): ``local[2]``,
    a 1 GiB heap and :data:`SHORT_LIVED_JAVA_OPTIONS`."""
    return start(root, cores=2, memory="1g", java_options=SHORT_LIVED_JAVA_OPTIONS, niceness=niceness)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
